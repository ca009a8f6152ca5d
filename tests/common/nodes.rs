//! One linked pair of real Bitcoin SV regtest nodes per test binary.
//!
//! `getblocktemplate` on regtest refuses to work without a peer, so the second node `-addnode`s
//! the first. Each node runs under a small shell watchdog that kills it and deletes its data
//! directory as soon as the test binary exits (statics are never dropped in Rust, and a test
//! binary may die on a panic), so no node outlives its tests.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const RPC_USER: &str = "obtc";
pub const RPC_PASSWORD: &str = "obtcpass";

/// One running node.
#[derive(Debug)]
pub struct Node {
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub datadir: PathBuf,
    bin_dir: PathBuf,
}

/// The pair: the pool talks to `node1`; `node2` is its peer.
#[derive(Debug)]
pub struct NodePair {
    pub node1: Node,
    pub node2: Node,
}

/// The node pair of this test binary, started on first use.
pub fn nodes() -> &'static NodePair {
    static PAIR: OnceLock<NodePair> = OnceLock::new();
    PAIR.get_or_init(|| start_pair().unwrap_or_else(|e| panic!("cannot start regtest nodes: {e}")))
}

/// Where the node binaries are: `OBTC_NODE_BIN`, else `<repo>/.nodes/bsv/bin`.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("OBTC_NODE_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".nodes/bsv/bin"),
    }
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Node {
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// Runs `bitcoin-cli` against this node; JSON output is parsed, anything else is a string.
    pub fn try_cli(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(self.bin_dir.join("bitcoin-cli"))
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASSWORD}"))
            .arg("-rpcconnect=127.0.0.1")
            .arg("-rpcclienttimeout=30")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run bitcoin-cli: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(format!("bitcoin-cli {args:?}: {stderr}"));
        }
        Ok(serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)))
    }

    /// Like [`Node::try_cli`], panicking on failure (tests only).
    pub fn cli(&self, args: &[&str]) -> Value {
        self.try_cli(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn block_count(&self) -> u64 {
        self.cli(&["getblockcount"]).as_u64().expect("block count")
    }

    pub fn new_address(&self) -> String {
        self.cli(&["getnewaddress"])
            .as_str()
            .expect("address")
            .to_owned()
    }

    /// Waits (bounded) until `pred` holds for this node; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&Node) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pred(self)
    }
}

fn start_pair() -> Result<NodePair, String> {
    let bin = bin_dir();
    if !bin.join("bitcoind").is_file() || !bin.join("bitcoin-cli").is_file() {
        return Err(format!(
            "no bitcoind/bitcoin-cli in {}: run `scripts/nodes.sh install` (or set OBTC_NODE_BIN)",
            bin.display()
        ));
    }
    let node1 = spawn_node(&bin, 1, None)?;
    let node2 = spawn_node(&bin, 2, Some(node1.p2p_port))?;
    for node in [&node1, &node2] {
        let ready = node.wait_until(Duration::from_secs(60), |n| {
            n.try_cli(&["getblockchaininfo"]).is_ok()
        });
        if !ready {
            return Err(format!(
                "node in {} not ready within 60 s",
                node.datadir.display()
            ));
        }
    }
    // node2's -addnode attempt may have come before node1 listened, and bitcoind retries added
    // nodes only every minute or two: ask for a connection now.
    let peer = format!("127.0.0.1:{}", node1.p2p_port);
    let _ = node2.try_cli(&["addnode", &peer, "onetry"]);
    let linked = node1.wait_until(Duration::from_secs(30), |n| {
        n.try_cli(&["getconnectioncount"])
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            >= 1
    });
    if !linked {
        return Err("node2 did not connect to node1 within 30 s".into());
    }
    // A fresh chain is in initial block download (genesis is old): getblocktemplate answers
    // "downloading blocks" until one recent block exists.
    node1.try_cli(&["generate", "1"])?;
    let synced = node2.wait_until(Duration::from_secs(30), |n| n.block_count() >= 1);
    if !synced {
        return Err("node2 did not receive block 1 within 30 s".into());
    }
    Ok(NodePair { node1, node2 })
}

/// Watchdog: runs the node in the background and kills it (then removes its data directory)
/// when the test process is gone.
const WATCHDOG: &str = r#"testpid=$1; dir=$2; shift 2
"$@" & node=$!
while kill -0 "$testpid" 2>/dev/null && kill -0 "$node" 2>/dev/null; do sleep 0.3; done
kill "$node" 2>/dev/null; wait "$node"; rm -rf "$dir""#;

fn spawn_node(bin: &Path, n: u32, peer: Option<u16>) -> Result<Node, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let datadir =
        std::env::temp_dir().join(format!("obtc-test-node{n}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&datadir).map_err(|e| format!("create {}: {e}", datadir.display()))?;
    let node = Node {
        rpc_port: free_port(),
        p2p_port: free_port(),
        datadir,
        bin_dir: bin.to_owned(),
    };
    let mut args = vec![
        "-regtest".to_owned(),
        "-server=1".to_owned(),
        "-listen=1".to_owned(),
        "-discover=0".to_owned(),
        "-dnsseed=0".to_owned(),
        "-printtoconsole=0".to_owned(),
        format!("-datadir={}", node.datadir.display()),
        format!("-port={}", node.p2p_port),
        format!("-rpcport={}", node.rpc_port),
        "-rpcbind=127.0.0.1".to_owned(),
        "-rpcallowip=127.0.0.1".to_owned(),
        format!("-rpcuser={RPC_USER}"),
        format!("-rpcpassword={RPC_PASSWORD}"),
        "-excessiveblocksize=10000000000".to_owned(),
        "-maxstackmemoryusageconsensus=0".to_owned(),
        "-minminingtxfee=0.00000500".to_owned(),
        // Every pool a test starts holds one RPC thread in a long poll until the next block
        // (a SIGKILLed pool's long poll too): give the node plenty.
        "-rpcthreads=32".to_owned(),
        "-rpcworkqueue=128".to_owned(),
    ];
    if let Some(port) = peer {
        args.push(format!("-addnode=127.0.0.1:{port}"));
    }
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(&node.datadir)
        .arg(bin.join("bitcoind"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start bitcoind: {e}"))?;
    Ok(node)
}

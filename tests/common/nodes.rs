//! One linked pair of real regtest nodes per test binary: Bitcoin SV ([`nodes`]) or Litecoin
//! Core ([`litecoin_nodes`], the Bitcoin Core 0.21 code base: segwit, bech32, the modern wallet).
//!
//! `getblocktemplate` on regtest refuses to work without a peer, so the second node `-addnode`s
//! the first. Each node runs under a small shell watchdog that kills it as soon as the test
//! binary exits (statics are never dropped in Rust, and a test binary may die on a panic), and a
//! cleaner deletes its data directory then, so no node outlives its tests. A node stopped by a
//! test keeps its data and can be started again ([`Node::stop`], [`Node::start`]).

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const RPC_USER: &str = "obtc";
pub const RPC_PASSWORD: &str = "obtcpass";

/// Which node software.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeChain {
    /// Bitcoin SV 1.0.13 (`bitcoind`), the PyPI wheel `scripts/nodes.sh install` unpacks.
    Bsv,
    /// Litecoin Core 0.21.2.1 (`litecoind`), Debian's package.
    Litecoin,
}

impl NodeChain {
    fn daemon(self) -> &'static str {
        match self {
            NodeChain::Bsv => "bitcoind",
            NodeChain::Litecoin => "litecoind",
        }
    }

    fn cli(self) -> &'static str {
        match self {
            NodeChain::Bsv => "bitcoin-cli",
            NodeChain::Litecoin => "litecoin-cli",
        }
    }

    /// Where the binaries are: `OBTC_NODE_BIN` (BSV, else `<repo>/.nodes/bsv/bin`) or
    /// `OBTC_LITECOIN_BIN` (Litecoin, else `/usr/bin`).
    pub fn bin_dir(self) -> PathBuf {
        match self {
            NodeChain::Bsv => bin_dir(),
            NodeChain::Litecoin => std::env::var_os("OBTC_LITECOIN_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/bin")),
        }
    }

    /// The pool's chain preset for this node's regtest.
    pub fn preset(self) -> &'static str {
        match self {
            NodeChain::Bsv => "bsv-regtest",
            NodeChain::Litecoin => "litecoin-regtest",
        }
    }

    /// The node's own flags on top of the common ones.
    fn flags(self) -> &'static [&'static str] {
        match self {
            NodeChain::Bsv => &[
                "-excessiveblocksize=10000000000",
                "-maxstackmemoryusageconsensus=0",
                "-minminingtxfee=0.00000500",
            ],
            // Wallet sends on an empty regtest mempool need a fallback fee; MWEB can be activated
            // (BIP9, signalled by every block from height 0): see [`NodePair::activate_mweb`].
            NodeChain::Litecoin => &["-fallbackfee=0.0001", "-vbparams=mweb:0:999999999999"],
        }
    }
}

/// Litecoin's MWEB activates at this height under `-vbparams=mweb:0:…` on regtest (BIP9 window
/// 144, every block signalling): block 432 is the first that must carry the MWEB extension.
pub const LITECOIN_MWEB_HEIGHT: u64 = 432;

/// One running node.
#[derive(Debug)]
pub struct Node {
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub datadir: PathBuf,
    pub chain: NodeChain,
    /// Litecoin: the wallet `cli` talks to (Litecoin Core has no default wallet).
    pub wallet: Option<String>,
    bin_dir: PathBuf,
    args: Vec<String>,
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

/// The Litecoin node pair of this test binary, started on first use: node 1's wallet `pool` (the
/// pool's, holding nothing but what the pool's blocks pay it), node 2's wallet `miner`; node 2
/// mined the first block. MWEB is not active until [`NodePair::activate_mweb`].
pub fn litecoin_nodes() -> &'static NodePair {
    static PAIR: OnceLock<NodePair> = OnceLock::new();
    PAIR.get_or_init(|| {
        start_litecoin_payout_pair()
            .unwrap_or_else(|e| panic!("cannot start Litecoin regtest nodes: {e}"))
    })
}

/// A Litecoin node pair of the caller's own: node 1's wallet `pool` holds only pool rewards (the
/// set-up block comes from node 2's wallet `miner`). Both wallets are loaded again when a node
/// is restarted ([`Node::start`]).
pub fn start_litecoin_payout_pair() -> Result<NodePair, String> {
    start_chain_pair(NodeChain::Litecoin, &[], 2)
}

/// Where the BSV node binaries are: `OBTC_NODE_BIN`, else `<repo>/.nodes/bsv/bin`.
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
        let mut cmd = Command::new(self.bin_dir.join(self.chain.cli()));
        if let Some(wallet) = &self.wallet {
            // Calls that are not wallet calls are served on a wallet's endpoint too.
            cmd.arg(format!("-rpcwallet={wallet}"));
        }
        let out = cmd
            .arg("-regtest")
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASSWORD}"))
            .arg("-rpcconnect=127.0.0.1")
            .arg("-rpcclienttimeout=30")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.chain.cli()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(format!("{} {args:?}: {stderr}", self.chain.cli()));
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

    /// The txids in the node's mempool.
    pub fn mempool(&self) -> std::collections::BTreeSet<String> {
        self.cli(&["getrawmempool"])
            .as_array()
            .expect("a txid list")
            .iter()
            .map(|t| t.as_str().expect("a txid").to_owned())
            .collect()
    }

    /// A new address of the node's wallet (Litecoin: bech32 `rltc1…`; BSV: P2PKH).
    pub fn new_address(&self) -> String {
        self.cli(&["getnewaddress"])
            .as_str()
            .expect("address")
            .to_owned()
    }

    /// A new address of the given type: `legacy`, `p2sh-segwit`, `bech32` or (Litecoin) `mweb`.
    pub fn new_address_of(&self, kind: &str) -> String {
        self.cli(&["getnewaddress", "", kind])
            .as_str()
            .expect("address")
            .to_owned()
    }

    /// Mines `blocks` to a new address of this node's own wallet (`generatetoaddress`: neither
    /// node has `generate` on Litecoin).
    pub fn generate(&self, blocks: u64) -> Value {
        let address = self.new_address();
        self.cli(&["generatetoaddress", &blocks.to_string(), &address])
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

impl NodePair {
    /// Node 2 mines `blocks` to `address` (outside the pool's wallet) on top of node 1's best
    /// block (the pool's blocks reach node 2 through node 1: mining before that would orphan
    /// them), then waits (bounded) until node 1 has them.
    pub fn mine_outside(&self, address: &str, blocks: u64, timeout: Duration) {
        let tip = self.node1.cli(&["getbestblockhash"]);
        assert!(
            self.node2
                .wait_until(timeout, |n| n.cli(&["getbestblockhash"]) == tip),
            "node 2 did not get node 1's best block {tip}"
        );
        self.node2
            .cli(&["generatetoaddress", &blocks.to_string(), address]);
        let target = self.node2.block_count();
        assert!(
            self.node1
                .wait_until(timeout, |n| n.block_count() >= target),
            "node 1 did not reach node 2's height {target}"
        );
    }

    /// Mines `blocks` on node 2 (to `address`) once it has every transaction of node 1's
    /// mempool.
    pub fn confirm_payments(&self, address: &str, blocks: u64, timeout: Duration) {
        let txids = self.node1.mempool();
        assert!(
            self.node2
                .wait_until(timeout, |n| txids.is_subset(&n.mempool())),
            "node 2 never got node 1's mempool {txids:?}"
        );
        self.mine_outside(address, blocks, timeout);
    }

    /// Connects node 2 to node 1 again (after node 1 restarted: bitcoind retries an added node
    /// only every minute or two) and waits (bounded) until they are linked.
    pub fn relink(&self, timeout: Duration) -> bool {
        link(&self.node1, &self.node2, timeout)
    }

    /// Litecoin: brings the chain to the eve of MWEB. Node 2 mines (to its own wallet) up to
    /// height `LITECOIN_MWEB_HEIGHT - 1`, then pegs 1 LTC into an MWEB address of its wallet
    /// (the first MWEB block's HogEx needs an input: without a peg-in the node refuses it,
    /// "bad-txns-vin-empty"), and hands the peg-in to node 1's mempool. Block 432, the first
    /// one that must carry the MWEB extension, is left to the pool. Idempotent past that height.
    pub fn activate_mweb(&self, timeout: Duration) {
        assert_eq!(self.node1.chain, NodeChain::Litecoin, "MWEB is Litecoin's");
        let eve = LITECOIN_MWEB_HEIGHT - 1;
        let height = self.node1.block_count();
        if height > eve {
            return;
        }
        if height < eve {
            let address = self.node2.new_address();
            self.mine_outside(&address, eve - height, timeout);
        }
        let mweb = self.node2.new_address_of("mweb");
        let txid = self.node2.cli(&["sendtoaddress", &mweb, "1"]);
        let txid = txid.as_str().expect("a txid").to_owned();
        // The peg-in may not relay on its own before activation: give node 1 the raw transaction.
        let raw = self.node2.cli(&["getrawtransaction", &txid]);
        let raw = raw.as_str().expect("a raw transaction").to_owned();
        let _ = self.node1.try_cli(&["sendrawtransaction", &raw]);
        assert!(
            self.node1
                .wait_until(timeout, |n| n.mempool().contains(&txid)),
            "node 1 never got the peg-in {txid}"
        );
    }
}

/// Asks `node2` to connect to `node1` now; whether `node1` has a peer within `timeout`.
fn link(node1: &Node, node2: &Node, timeout: Duration) -> bool {
    let peer = format!("127.0.0.1:{}", node1.p2p_port);
    let _ = node2.try_cli(&["addnode", &peer, "onetry"]);
    node1.wait_until(timeout, |n| {
        n.try_cli(&["getconnectioncount"])
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            >= 1
    })
}

fn start_pair() -> Result<NodePair, String> {
    start_pair_with(&[])
}

/// A node pair of the caller's own (not the shared one), node1 started with `node1_args` on top
/// of the usual ones (later ones win in bitcoind, e.g. `-rpcworkqueue=1`).
pub fn start_pair_with(node1_args: &[&str]) -> Result<NodePair, String> {
    start_pair_mining_first_on(node1_args, 1)
}

/// A node pair of the caller's own for payout tests: node 1's wallet is the pool's and must hold
/// nothing but pool rewards, so the set-up block comes from node 2's wallet.
pub fn start_payout_pair() -> Result<NodePair, String> {
    start_pair_mining_first_on(&[], 2)
}

fn start_pair_mining_first_on(node1_args: &[&str], first_miner: u32) -> Result<NodePair, String> {
    start_chain_pair(NodeChain::Bsv, node1_args, first_miner)
}

fn start_chain_pair(
    chain: NodeChain,
    node1_args: &[&str],
    first_miner: u32,
) -> Result<NodePair, String> {
    let bin = chain.bin_dir();
    if !bin.join(chain.daemon()).is_file() || !bin.join(chain.cli()).is_file() {
        let hint = match chain {
            NodeChain::Bsv => "run `scripts/nodes.sh install` (or set OBTC_NODE_BIN)",
            NodeChain::Litecoin => {
                "run `scripts/nodes.sh --chain litecoin install` (or set OBTC_LITECOIN_BIN)"
            }
        };
        return Err(format!(
            "no {}/{} in {}: {hint}",
            chain.daemon(),
            chain.cli(),
            bin.display()
        ));
    }
    let mut node1 = spawn_node(chain, &bin, 1, None, free_port(), node1_args)?;
    let mut node2 = spawn_node(chain, &bin, 2, Some(node1.p2p_port), free_port(), &[])?;
    for node in [&node1, &node2] {
        node.ready_within(Duration::from_secs(60))?;
    }
    if chain == NodeChain::Litecoin {
        // No default wallet: one each, loaded again at every restart.
        for (node, name) in [(&mut node1, "pool"), (&mut node2, "miner")] {
            node.try_cli(&["createwallet", name])?;
            node.wallet = Some(name.to_owned());
            node.args.push(format!("-wallet={name}"));
        }
    }
    // node2's -addnode attempt may have come before node1 listened, and bitcoind retries added
    // nodes only every minute or two: ask for a connection now.
    if !link(&node1, &node2, Duration::from_secs(30)) {
        return Err("node2 did not connect to node1 within 30 s".into());
    }
    // A fresh chain is in initial block download (genesis is old): getblocktemplate answers
    // "downloading blocks" until one recent block exists.
    // Retried: a node with a tiny RPC work queue may answer "busy".
    let (miner, other) = if first_miner == 2 {
        (&node2, &node1)
    } else {
        (&node1, &node2)
    };
    let generated = miner.wait_until(Duration::from_secs(30), |n| match n.chain {
        NodeChain::Bsv => n.try_cli(&["generate", "1"]).is_ok(),
        NodeChain::Litecoin => n
            .try_cli(&["getnewaddress"])
            .ok()
            .and_then(|a| a.as_str().map(str::to_owned))
            .is_some_and(|a| n.try_cli(&["generatetoaddress", "1", &a]).is_ok()),
    });
    if !generated {
        return Err(format!(
            "node{first_miner} did not generate block 1 within 30 s"
        ));
    }
    let synced = other.wait_until(Duration::from_secs(30), |n| {
        n.try_cli(&["getblockcount"])
            .ok()
            .and_then(|v| v.as_u64())
            .is_some_and(|c| c >= 1)
    });
    if !synced {
        return Err("the other node did not receive block 1 within 30 s".into());
    }
    Ok(NodePair { node1, node2 })
}

/// Watchdog: runs the node in the background (its pid in `DIR/node.pid`) and kills it when the
/// test process is gone.
const WATCHDOG: &str = r#"testpid=$1; dir=$2; shift 2
"$@" & node=$!
echo "$node" > "$dir/node.pid"
while kill -0 "$testpid" 2>/dev/null && kill -0 "$node" 2>/dev/null; do sleep 0.3; done
kill "$node" 2>/dev/null; wait "$node""#;

/// Cleaner: once the test process is gone and the node has ended, removes the data directory.
const CLEANER: &str = r#"testpid=$1; dir=$2
while kill -0 "$testpid" 2>/dev/null; do sleep 0.5; done
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  pid=$(cat "$dir/node.pid" 2>/dev/null); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5
done
rm -rf "$dir""#;

impl Node {
    /// The node's process id (while it runs).
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.datadir.join("node.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn is_running(&self) -> bool {
        self.pid()
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    }

    /// Stops the node (`bitcoin-cli stop` / `litecoin-cli stop`) and waits (bounded) until its process has ended;
    /// its data stays for [`Node::start`].
    pub fn stop(&self) {
        let _ = self.try_cli(&["stop"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.is_running() {
            assert!(Instant::now() < deadline, "node did not stop within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a stopped node again with the same data, ports and arguments.
    pub fn start(&self) {
        launch(self.chain, &self.bin_dir, &self.datadir, &self.args).expect("restart the node");
    }

    /// Waits (bounded) until the node answers RPC calls.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |n| n.try_cli(&["getblockchaininfo"]).is_ok())
    }

    fn ready_within(&self, timeout: Duration) -> Result<(), String> {
        if self.wait_ready(timeout) {
            Ok(())
        } else {
            Err(format!(
                "node in {} not ready within {} s",
                self.datadir.display(),
                timeout.as_secs()
            ))
        }
    }
}

fn launch(chain: NodeChain, bin: &Path, datadir: &Path, args: &[String]) -> Result<(), String> {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(datadir)
        .arg(bin.join(chain.daemon()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot start {}: {e}", chain.daemon()))
}

/// A single node of the caller's own (no peer: `getblocktemplate` will not serve it), its RPC
/// server on `rpc_port` (chosen before the node exists), started with `extra_args` on top of the
/// usual ones.
pub fn start_single_on(rpc_port: u16, extra_args: &[&str]) -> Result<Node, String> {
    let node = spawn_node(NodeChain::Bsv, &bin_dir(), 3, None, rpc_port, extra_args)?;
    node.ready_within(Duration::from_secs(60))?;
    Ok(node)
}

fn spawn_node(
    chain: NodeChain,
    bin: &Path,
    n: u32,
    peer: Option<u16>,
    rpc_port: u16,
    extra: &[&str],
) -> Result<Node, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let datadir =
        std::env::temp_dir().join(format!("obtc-test-node{n}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&datadir).map_err(|e| format!("create {}: {e}", datadir.display()))?;
    let p2p_port = free_port();
    let mut args = vec![
        "-regtest".to_owned(),
        "-server=1".to_owned(),
        "-listen=1".to_owned(),
        "-discover=0".to_owned(),
        "-dnsseed=0".to_owned(),
        "-printtoconsole=0".to_owned(),
        format!("-datadir={}", datadir.display()),
        format!("-port={p2p_port}"),
        format!("-rpcport={rpc_port}"),
        "-rpcbind=127.0.0.1".to_owned(),
        "-rpcallowip=127.0.0.1".to_owned(),
        format!("-rpcuser={RPC_USER}"),
        format!("-rpcpassword={RPC_PASSWORD}"),
        // Every pool a test starts holds one RPC thread in a long poll until the next block
        // (a SIGKILLed pool's long poll too): give the node plenty.
        "-rpcthreads=32".to_owned(),
        "-rpcworkqueue=128".to_owned(),
    ];
    args.extend(chain.flags().iter().map(|f| f.to_string()));
    if let Some(port) = peer {
        args.push(format!("-addnode=127.0.0.1:{port}"));
    }
    // A node of another network (e.g. `-testnet`, for chain-check tests) is not a regtest node.
    if extra.contains(&"-testnet") {
        args.retain(|a| a != "-regtest");
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    Command::new("sh")
        .arg("-c")
        .arg(CLEANER)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(&datadir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cleaner: {e}"))?;
    launch(chain, bin, &datadir, &args)?;
    Ok(Node {
        rpc_port,
        p2p_port,
        datadir,
        chain,
        wallet: None,
        bin_dir: bin.to_owned(),
        args,
    })
}

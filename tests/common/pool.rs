//! Runs the real `obtc-pool run` binary against the test node pair, with a config written into a
//! temporary directory (the ledger lives there too). Killed on drop.

use super::nodes::{free_port, nodes, RPC_PASSWORD, RPC_USER};
use pool_core::Event;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Knobs of the generated config.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub payout_address: String,
    pub pool_block_difficulty: Option<f64>,
    pub start_difficulty: f64,
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    pub target_share_secs: f64,
    pub max_line_bytes: usize,
    pub idle_timeout_secs: u64,
    pub max_connections_per_ip: usize,
    pub longpoll: bool,
    pub refresh_secs: u64,
    /// Extra TOML appended verbatim.
    pub extra: String,
    /// Node RPC URL; default: the test pair's node1.
    pub node_url: Option<String>,
    /// The `[chain] preset`; default `bsv-regtest` (the test pair's chain).
    pub chain_preset: String,
}

impl PoolOptions {
    /// The options of the operator and audit tests: node 1 as the node and the wallet, `[rpc]`
    /// on `rpc`, PROP with a 1 % fee, miners bearing the network fee, a payout run a second
    /// final at depth 2.
    pub fn with_rpc_and_prop_payouts(
        pool_address: &str,
        node1: &super::nodes::Node,
        rpc: SocketAddr,
    ) -> PoolOptions {
        let mut options = PoolOptions::new(pool_address);
        options.node_url = Some(node1.rpc_url());
        options.extra = format!(
            "\n[rpc]\nlisten = \"{rpc}\"\n\n[wallet]\nurl = \"{}\"\nuser = \"{RPC_USER}\"\n\
             password = \"{RPC_PASSWORD}\"\nrpc_timeout_secs = 30\n\n[payout]\nscheme = \"prop\"\n\
             fee_bps = 100\nnetwork_fee_payer = \"miners\"\nmin_payment = 10000\nmax_outputs = 10\n\
             interval_secs = 1\nconfirmations = 2\n",
            node1.rpc_url()
        );
        options
    }

    pub fn new(payout_address: &str) -> PoolOptions {
        PoolOptions {
            payout_address: payout_address.to_owned(),
            pool_block_difficulty: None,
            start_difficulty: 1e-6,
            min_difficulty: 1e-9,
            max_difficulty: 1e6,
            target_share_secs: 10.0,
            max_line_bytes: 4096,
            idle_timeout_secs: 120,
            max_connections_per_ip: 64,
            longpoll: true,
            refresh_secs: 30,
            extra: String::new(),
            node_url: None,
            chain_preset: "bsv-regtest".to_owned(),
        }
    }

    /// Options for a pool on the test binary's Litecoin pair ([`litecoin_nodes`]): preset
    /// `litecoin-regtest`, node 1 as the node.
    ///
    /// [`litecoin_nodes`]: super::nodes::litecoin_nodes
    pub fn litecoin(payout_address: &str) -> PoolOptions {
        let mut options = PoolOptions::new(payout_address);
        options.chain_preset = "litecoin-regtest".to_owned();
        options.node_url = Some(super::nodes::litecoin_nodes().node1.rpc_url());
        options
    }
}

pub struct PoolProcess {
    child: Option<Child>,
    pub stratum: SocketAddr,
    pub notify: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// Extra environment of the next [`PoolProcess::spawn`] (test hooks).
    pub env: Vec<(String, String)>,
}

impl PoolProcess {
    pub fn start(options: &PoolOptions) -> PoolProcess {
        PoolProcess::start_with_config(|stratum, notify| config_text(options, stratum, notify))
    }

    /// Like [`PoolProcess::start`] with a config of the caller's own (another chain, no node):
    /// `config` gets the free stratum and notify addresses to listen on.
    pub fn start_with_config(config: impl FnOnce(SocketAddr, SocketAddr) -> String) -> PoolProcess {
        PoolProcess::start_with_env(config, &[])
    }

    /// Like [`PoolProcess::start_with_config`], the first run with extra environment variables.
    pub fn start_with_env(
        config: impl FnOnce(SocketAddr, SocketAddr) -> String,
        env: &[(&str, &str)],
    ) -> PoolProcess {
        let mut pool = PoolProcess::unstarted(config);
        pool.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pool.spawn();
        pool
    }

    /// The temporary directory and config of a pool, not started yet (to prepare its ledger
    /// first): [`PoolProcess::spawn`] starts it.
    pub fn unstarted(config: impl FnOnce(SocketAddr, SocketAddr) -> String) -> PoolProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let stratum: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let notify: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config_path = dir.path().join("pool.toml");
        std::fs::write(&config_path, config(stratum, notify)).unwrap();
        PoolProcess {
            child: None,
            stratum,
            notify,
            dir,
            config_path,
            env: Vec::new(),
        }
    }

    /// A pool whose ledger holds `events` (appended in one batch) before it starts.
    pub fn start_on_ledger(
        config: impl FnOnce(SocketAddr, SocketAddr) -> String,
        events: Vec<Event>,
    ) -> PoolProcess {
        let mut pool = PoolProcess::unstarted(config);
        if !events.is_empty() {
            let ledger = ledger::Ledger::open(&pool.ledger_dir()).expect("open the test ledger");
            ledger
                .append_batch_blocking(events)
                .expect("write the test ledger");
            ledger.close_blocking();
        }
        pool.spawn();
        pool
    }

    pub fn ledger_dir(&self) -> PathBuf {
        self.dir.path().join("ledger")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pool.log")).unwrap_or_default()
    }

    /// Starts the binary (again) with the same config and ledger, and waits until it accepts.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "pool already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pool.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "info,stratum=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start obtc-pool");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect_timeout(&self.stratum, Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("obtc-pool exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "obtc-pool did not listen within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("pool running").id()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("pool running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "obtc-pool did not exit within 30 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every event in the ledger; the pool must be stopped.
    pub fn ledger_events(&self) -> Vec<Event> {
        read_events(&self.ledger_dir())
    }
}

impl Drop for PoolProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read_events(dir: &Path) -> Vec<Event> {
    let ledger = ledger::Ledger::open_read_only(dir).expect("open ledger");
    ledger.verify().expect("ledger verifies");
    ledger
        .read_from(0)
        .map(|r| r.expect("ledger record").event)
        .collect()
}

pub fn config_text(o: &PoolOptions, stratum: SocketAddr, notify: SocketAddr) -> String {
    let block = match o.pool_block_difficulty {
        Some(d) => format!("pool_block_difficulty = {d:e}\n"),
        None => String::new(),
    };
    format!(
        r#"[chain]
preset = "{preset}"

[node]
url = "{url}"
user = "{RPC_USER}"
password = "{RPC_PASSWORD}"
rpc_timeout_secs = 30
longpoll = {longpoll}
longpoll_timeout_secs = 60
refresh_secs = {refresh}
max_retry_backoff_secs = 2

[stratum]
listen = "{stratum}"
extranonce2_size = 4
pool_tag = "/obtc-pool-test/"
version_rolling_mask = "1fffe000"
max_line_bytes = {max_line}
max_connections_per_ip = {max_conn}
idle_timeout_secs = {idle}

[stratum.vardiff]
target_share_secs = {interval:?}
min_difficulty = {min:e}
max_difficulty = {max:e}
start_difficulty = {start:e}

[pool]
payout_address = "{payout}"
{block}
[ledger]
data_dir = "ledger"

[notify]
listen = "{notify}"
{extra}"#,
        url = o
            .node_url
            .clone()
            .unwrap_or_else(|| nodes().node1.rpc_url()),
        preset = o.chain_preset,
        longpoll = o.longpoll,
        refresh = o.refresh_secs,
        max_line = o.max_line_bytes,
        max_conn = o.max_connections_per_ip,
        idle = o.idle_timeout_secs,
        interval = o.target_share_secs,
        min = o.min_difficulty,
        max = o.max_difficulty,
        start = o.start_difficulty,
        payout = o.payout_address,
        extra = o.extra,
    )
}

//! The scale-out pool as separate processes: a real 3-server NATS JetStream cluster
//! ([`super::nats`]), one `obtc-pool core` (the only ledger writer, with `[rpc]`, `[wallet]` and
//! `[payout]` on node 1) and two `obtc-pool edge`s (edge 1 on node 1, edge 2 on node 2 of the
//! test binary's BSV regtest pair), and `loadgen` runs against the edges.
//!
//! Shares are easy (difficulty 1e-12: every random hash `loadgen --mode valid` sends meets the
//! target) and blocks are rare enough (`pool_block_difficulty` [`BLOCK_DIFFICULTY`]: about one
//! share in 430 is a block) that a few seconds of load find blocks through both edges without
//! turning every job stale.
//!
//! Every process runs under a shell watchdog that kills it when the test binary exits (the
//! cluster lives in a static, never dropped); its stdout and stderr go to its log file, which a
//! failure message shows. Every wait is bounded.

use super::nats::{cleanup_after_exit, NatsCluster};
use super::nodes::{free_port, nodes, RPC_PASSWORD, RPC_USER};
use super::pool::{config_text, PoolOptions};
use pool_core::event::ShareWithWork;
use pool_core::Event;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The JetStream stream's name (the `[stream] name` default).
pub const STREAM: &str = "OBTC";
/// A share is a block when its hash also meets this difficulty: 1e-7 times the 2^32 hashes of
/// difficulty 1, one random hash in ~430.
pub const BLOCK_DIFFICULTY: f64 = 1e-7;
/// The share difficulty: every hash meets it.
pub const SHARE_DIFFICULTY: f64 = 1e-12;

/// Which role a process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Core,
    Edge(u16),
}

/// One `obtc-pool core` or `obtc-pool edge` process: its config, log and process.
pub struct RoleProcess {
    pub role: Role,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// The Stratum listener (edges; the core's config has one too, unused).
    pub stratum: SocketAddr,
    /// The core's JSON-RPC server.
    pub rpc: Option<SocketAddr>,
    log: PathBuf,
    pidfile: PathBuf,
    statusfile: PathBuf,
    running: bool,
    /// The watchdog shell, reaped once the process ended.
    watchdog: Option<std::process::Child>,
}

impl RoleProcess {
    fn new(
        role: Role,
        dir: PathBuf,
        config: String,
        stratum: SocketAddr,
        rpc: Option<SocketAddr>,
    ) -> RoleProcess {
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("pool.toml");
        std::fs::write(&config_path, config).unwrap();
        RoleProcess {
            role,
            config_path,
            stratum,
            rpc,
            log: dir.join("pool.log"),
            pidfile: dir.join("pid"),
            statusfile: dir.join("exit-status"),
            dir,
            running: false,
            watchdog: None,
        }
    }

    pub fn name(&self) -> String {
        match self.role {
            Role::Core => "core".into(),
            Role::Edge(id) => format!("edge {id}"),
        }
    }

    pub fn ledger_dir(&self) -> PathBuf {
        self.dir.join("ledger")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn pid(&self) -> Option<i32> {
        super::watchdog::read_pid(&self.pidfile)
    }

    fn alive(&self) -> bool {
        self.running && !self.statusfile.exists() && self.pid().is_some()
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Starts the process (again: same config, ledger, ports) and waits (bounded) until it
    /// listens: the Stratum port for an edge, the RPC port for the core.
    pub fn spawn(&mut self) {
        assert!(!self.running, "{} already running", self.name());
        let _ = std::fs::remove_file(&self.pidfile);
        let _ = std::fs::remove_file(&self.statusfile);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let command = match self.role {
            Role::Core => "core",
            Role::Edge(_) => "edge",
        };
        let watchdog = super::watchdog::command(
            &self.pidfile,
            &self.statusfile,
            env!("CARGO_BIN_EXE_obtc-pool"),
        )
        .arg(command)
        .arg("--config")
        .arg(&self.config_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start obtc-pool");
        self.watchdog = Some(watchdog);
        self.running = true;
        let listen = self.rpc.unwrap_or(self.stratum);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                return;
            }
            if self.statusfile.exists() {
                self.running = false;
                if let Some(mut w) = self.watchdog.take() {
                    let _ = w.wait();
                }
                panic!(
                    "{} exited early (status {}):\n{}",
                    self.name(),
                    std::fs::read_to_string(&self.statusfile)
                        .unwrap_or_default()
                        .trim(),
                    self.log_tail(80)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {listen} within 30 s:\n{}",
                self.name(),
                self.log_tail(80)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or to finish a batch. Waited for (bounded).
    pub fn kill(&mut self) {
        if !self.running {
            return;
        }
        if let Some(pid) = self.pid() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        self.wait_exit(Duration::from_secs(10));
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> i32 {
        assert!(self.running, "{} not running", self.name());
        if let Some(pid) = self.pid() {
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        self.wait_exit(Duration::from_secs(30))
    }

    fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = std::fs::read_to_string(&self.statusfile) {
                if let Ok(code) = status.trim().parse() {
                    self.running = false;
                    if let Some(mut w) = self.watchdog.take() {
                        let _ = w.wait();
                    }
                    return code;
                }
            }
            if Instant::now() > deadline {
                if let Some(pid) = self.pid() {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                panic!(
                    "{} did not exit within {timeout:?}:\n{}",
                    self.name(),
                    self.log_tail(80)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The NATS cluster, the core and the two edges of this test binary.
pub struct Cluster {
    pub nats: NatsCluster,
    pub core: RoleProcess,
    pub edges: Vec<RoleProcess>,
    /// The pool's coinbase address (node 1's wallet), also its fee address.
    pub pool_address: String,
    pub dir: PathBuf,
}

/// The cluster of this test binary, started on first use; tests hold the guard while they run
/// (one at a time) and [`Cluster::heal`] first, so a failed test does not break the next.
pub fn cluster() -> MutexGuard<'static, Cluster> {
    static CLUSTER: OnceLock<Mutex<Cluster>> = OnceLock::new();
    let mut guard = CLUSTER
        .get_or_init(|| Mutex::new(Cluster::start()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.heal();
    guard
}

/// `[stream]` of every role's config.
fn stream_section(nats: &NatsCluster) -> String {
    format!(
        "\n[stream]\n{}\nreplicas = 3\nack_timeout_ms = 2000\ncontrol_interval_ms = 500\n",
        nats.servers_toml()
    )
}

/// Options shared by the core and the edges: easy shares, a fixed difficulty, rare blocks,
/// flood protection off (a burst of stale shares after a block is not a flood here).
fn base_options(pool_address: &str, node_url: String) -> PoolOptions {
    let mut o = PoolOptions::new(pool_address);
    o.node_url = Some(node_url);
    o.pool_block_difficulty = Some(BLOCK_DIFFICULTY);
    o.start_difficulty = SHARE_DIFFICULTY;
    o.min_difficulty = SHARE_DIFFICULTY;
    o.max_difficulty = SHARE_DIFFICULTY;
    o.max_connections_per_ip = 1000;
    o.idle_timeout_secs = 600;
    o
}

impl Cluster {
    fn start() -> Cluster {
        let pair = nodes();
        let pool_address = pair.node1.new_address();
        let dir = tempfile::tempdir().expect("temp dir").keep();
        cleanup_after_exit(&dir);
        let nats = NatsCluster::start();
        let stream = stream_section(&nats);

        let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut core_options = base_options(&pool_address, pair.node1.rpc_url());
        core_options.extra = format!(
            "\n[rpc]\nlisten = \"{rpc}\"\n\n[wallet]\nurl = \"{}\"\nuser = \"{RPC_USER}\"\n\
             password = \"{RPC_PASSWORD}\"\nrpc_timeout_secs = 30\n\n[payout]\nscheme = \"prop\"\n\
             fee_bps = 100\nnetwork_fee_payer = \"miners\"\nmin_payment = 10000\nmax_outputs = 10\n\
             interval_secs = 1\nconfirmations = 2\nmax_per_run = 1000000000000000\nmax_per_day = 1000000000000000\n{stream}",
            pair.node1.rpc_url()
        );
        let core_stratum = local(free_port());
        let core_config = config_text(&core_options, core_stratum, local(free_port())).replace(
            "max_retry_backoff_secs = 2",
            "max_retry_backoff_secs = 2\nwatch_interval_secs = 1",
        );
        let mut core = RoleProcess::new(
            Role::Core,
            dir.join("core"),
            core_config,
            core_stratum,
            Some(rpc),
        );

        let mut edges = Vec::new();
        for (id, node) in [(1u16, &pair.node1), (2u16, &pair.node2)] {
            let mut o = base_options(&pool_address, node.rpc_url());
            o.extra = format!("\n[stratum.flood]\nenabled = false\n{stream}\n[edge]\nid = {id}\n");
            let stratum = local(free_port());
            let config = config_text(&o, stratum, local(free_port()));
            edges.push(RoleProcess::new(
                Role::Edge(id),
                dir.join(format!("edge{id}")),
                config,
                stratum,
                None,
            ));
        }
        core.spawn();
        for e in &mut edges {
            e.spawn();
        }
        Cluster {
            nats,
            core,
            edges,
            pool_address,
            dir,
        }
    }

    /// Starts whatever a previous (failed) test left stopped.
    pub fn heal(&mut self) {
        for i in 0..self.nats.servers.len() {
            if !self.nats.is_running(i) {
                self.nats.restart(i);
            }
        }
        if !self.core.is_running() {
            self.core.spawn();
        }
        for e in &mut self.edges {
            if !e.is_running() {
                e.spawn();
            }
        }
        for p in std::iter::once(&self.core).chain(&self.edges) {
            assert!(p.alive(), "{} died:\n{}", p.name(), p.log_tail(80));
        }
    }

    pub fn edge(&self, id: u16) -> &RoleProcess {
        &self.edges[usize::from(id - 1)]
    }

    pub fn edge_mut(&mut self, id: u16) -> &mut RoleProcess {
        &mut self.edges[usize::from(id - 1)]
    }

    /// `A,B` for `loadgen --target`: edge `first` then the other.
    pub fn targets(&self, first: u16) -> String {
        let other = 3 - first;
        format!("{},{}", self.edge(first).stratum, self.edge(other).stratum)
    }

    /// The logs of every process, the last lines of each, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in std::iter::once(&self.core).chain(&self.edges) {
            out.push_str(&format!(
                "---- {} log (last 60 lines) ----\n{}\n",
                p.name(),
                p.log_tail(60)
            ));
        }
        out.push_str(&self.nats.logs());
        out
    }

    /// Where each edge's log ends now (for [`Cluster::stall_lines`]).
    pub fn edge_log_marks(&self) -> Vec<usize> {
        self.edges.iter().map(|e| e.log().len()).collect()
    }

    /// What the edges logged since `marks` about the stream not acknowledging (a stall and how
    /// long it lasted), for the test's summary.
    pub fn stall_lines(&self, marks: &[usize]) -> Vec<String> {
        let mut lines = Vec::new();
        for (e, &mark) in self.edges.iter().zip(marks) {
            let log = e.log();
            let new = log.get(mark..).unwrap_or("");
            lines.extend(
                new.lines()
                    .filter(|l| {
                        l.contains("did not acknowledge") || l.contains("acknowledges again")
                    })
                    .map(|l| format!("{}: {}", e.name(), l.chars().take(220).collect::<String>())),
            );
        }
        lines
    }

    /// The core's RPC address.
    pub fn rpc(&self) -> SocketAddr {
        self.core.rpc.expect("the core has [rpc]")
    }

    /// Waits (bounded) until the stream holds no message the core has not acknowledged: every
    /// batch an edge had acknowledged by then is in the core's ledger.
    pub fn wait_drained(&self, timeout: Duration) {
        let started = Instant::now();
        let deadline = started + timeout;
        let core_mark = self.core.log().len();
        loop {
            if self.nats.stream_messages(STREAM) == Some(0) {
                if started.elapsed() > Duration::from_secs(10) {
                    // Slow, not wrong: show what the core said meanwhile.
                    let log = self.core.log();
                    eprintln!(
                        "the core took {:?} to drain the stream; its log meanwhile:\n{}",
                        started.elapsed(),
                        log.get(core_mark..).unwrap_or("")
                    );
                }
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the stream still holds {:?} messages after {timeout:?}\n{}",
                self.nats.stream_messages(STREAM),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Drains the stream, stops the core (SIGTERM: exit 0), checks its ledger with
    /// `obtc-pool ledger verify` and `obtc-pool audit`, reads it, and starts the core again.
    pub fn ledger_snapshot(&mut self) -> LedgerSnapshot {
        self.snapshot(false)
    }

    /// Like [`Cluster::ledger_snapshot`], the audit also against node 1 (`--node
    /// --check-anchors`): every block's money on chain, every coinbase anchor (made on an edge
    /// from the head the core published) naming a record of this ledger.
    pub fn ledger_snapshot_against_node(&mut self) -> LedgerSnapshot {
        self.snapshot(true)
    }

    fn snapshot(&mut self, against_node: bool) -> LedgerSnapshot {
        self.wait_drained(TIMEOUT);
        let status = self.core.terminate();
        assert_eq!(status, 0, "the core's exit on SIGTERM\n{}", self.logs());
        let dir = self.core.ledger_dir();
        let verify = obtc_pool(&["ledger", "verify", "--data", path(&dir)]);
        assert!(
            verify.status.success(),
            "ledger verify: {}",
            output_text(&verify)
        );
        let audit = obtc_pool(&[
            "audit",
            "--json",
            "--data",
            path(&dir),
            "--config",
            path(&self.core.config_path),
        ]);
        let stdout = String::from_utf8_lossy(&audit.stdout).into_owned();
        assert!(
            audit.status.success(),
            "audit failed: {}",
            output_text(&audit)
        );
        let report: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("audit --json: {e}: {stdout}"));
        assert_eq!(report["pass"], true, "{stdout}");
        if against_node {
            let node = nodes().node1.rpc_url();
            let out = obtc_pool(&[
                "audit",
                "--data",
                path(&dir),
                "--config",
                path(&self.core.config_path),
                "--node",
                &node,
                "--check-anchors",
            ]);
            let text = output_text(&out);
            let verdict = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned();
            assert!(
                out.status.success() && verdict.starts_with("audit: PASS"),
                "audit against the node: {text}"
            );
            assert!(verdict.contains("anchors"), "{verdict}");
        }
        let events = read_framed(&dir);
        self.core.spawn();
        LedgerSnapshot {
            events,
            audit: report,
        }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

pub fn obtc_pool(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run obtc-pool")
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A ledger event with the edge whose batch carried it (from the `StreamBatch` record before
/// the batch; `None`: written by the core itself, e.g. the payout rule or a chain verdict).
#[derive(Clone, Debug)]
pub struct Framed {
    pub seq: u64,
    pub edge: Option<u16>,
    pub event: Event,
}

/// Every event of a stopped ledger, framed by its `StreamBatch` records; a batch's record says
/// how many events follow, and they must be there.
pub fn read_framed(dir: &Path) -> Vec<Framed> {
    let ledger = ledger::Ledger::open_read_only(dir).expect("open the core's ledger");
    ledger.verify().expect("the core's ledger verifies");
    let mut out = Vec::new();
    let mut left = 0u32;
    let mut edge = None;
    for r in ledger.read_from(0) {
        let r = r.expect("ledger record");
        if left == 0 {
            edge = None;
        }
        if let Event::StreamBatch(b) = &r.event {
            assert_eq!(
                left, 0,
                "a StreamBatch at seq {} inside another batch",
                r.seq
            );
            left = b.events;
            edge = Some(b.edge_id);
            out.push(Framed {
                seq: r.seq,
                edge: None,
                event: r.event,
            });
            continue;
        }
        let framed_by = if left > 0 {
            left -= 1;
            edge
        } else {
            None
        };
        out.push(Framed {
            seq: r.seq,
            edge: framed_by,
            event: r.event,
        });
    }
    assert_eq!(left, 0, "the last StreamBatch's events are not all there");
    out
}

/// The core's ledger at one moment, checked by `ledger verify` and `audit` (its JSON report).
pub struct LedgerSnapshot {
    pub events: Vec<Framed>,
    pub audit: Value,
}

/// A share as the miner sent it: `(extranonce1, extranonce2, ntime, nonce, job id)`.
pub type ShareKey = (String, String, u32, u32, u64);

/// A share in the ledger: which worker (`ADDRESS.WORKER`) and which edge's batch.
#[derive(Clone, Debug)]
pub struct LedgerShare {
    pub worker: String,
    pub edge: Option<u16>,
    pub seq: u64,
}

impl LedgerSnapshot {
    /// Every `ShareWithWork`, by its key. Panics on a share that is there twice.
    pub fn shares(&self) -> HashMap<ShareKey, LedgerShare> {
        let mut shares = HashMap::new();
        for f in &self.events {
            if let Event::ShareWithWork(ShareWithWork { share, work }) = &f.event {
                let key = (
                    hex::encode(&work.extranonce1),
                    hex::encode(&work.extranonce2),
                    work.ntime,
                    work.nonce,
                    share.job_id,
                );
                let worker = format!("{}.{}", share.address.0, share.worker.0);
                if let Some(first) = shares.insert(
                    key.clone(),
                    LedgerShare {
                        worker,
                        edge: f.edge,
                        seq: f.seq,
                    },
                ) {
                    panic!(
                        "share {key:?} is in the ledger twice: seq {} and seq {}",
                        first.seq, f.seq
                    );
                }
            }
        }
        shares
    }

    /// `BlockFound` events by the edge whose batch carried them.
    pub fn blocks_found_by_edge(&self) -> BTreeMap<u16, u64> {
        let mut by_edge = BTreeMap::new();
        for f in &self.events {
            if let (Event::BlockFound(_), Some(edge)) = (&f.event, f.edge) {
                *by_edge.entry(edge).or_insert(0) += 1;
            }
        }
        by_edge
    }
}

/// One submit's outcome as `loadgen --record` wrote it.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// `true`, an error code, `unanswered` or `unreadable`.
    pub outcome: String,
    pub worker: String,
    pub key: ShareKey,
}

/// A `loadgen run` against the edges, in the background.
pub struct Loadgen {
    child: std::process::Child,
    record: PathBuf,
    pub label: String,
    /// When the load window opens (roughly: loadgen's handshakes come first).
    pub started: Instant,
}

/// What a finished `loadgen run` reported.
#[derive(Debug)]
pub struct LoadResult {
    pub label: String,
    pub json: Value,
    pub submitted: Vec<Submitted>,
    pub stderr: String,
}

/// The shape of a load.
#[derive(Clone, Debug)]
pub struct LoadShape {
    pub connections: usize,
    pub workers: usize,
    /// Submits per second over all connections (open loop).
    pub rate: u32,
    pub duration_secs: f64,
    /// How long to wait for replies owed after the window (covers a leader election's stall).
    pub drain_ms: u64,
}

impl Loadgen {
    /// Starts `loadgen run --mode valid` against `targets` (`A,B`) as `username` (an address of
    /// node 2's wallet), recording every submit.
    pub fn spawn(
        dir: &Path,
        label: &str,
        targets: &str,
        username: &str,
        shape: &LoadShape,
    ) -> Loadgen {
        let record = dir.join(format!("loadgen-{label}.record"));
        let child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--threads", "1", "run", "--json", "--mode", "valid"])
            .args(["--target", targets, "--username", username])
            .args(["--connections", &shape.connections.to_string()])
            .args(["--workers", &shape.workers.to_string()])
            .args(["--rate", &shape.rate.to_string()])
            .args(["--duration", &shape.duration_secs.to_string()])
            .args(["--drain-ms", &shape.drain_ms.to_string()])
            .args(["--handshake-timeout", "20"])
            .arg("--record")
            .arg(&record)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loadgen");
        Loadgen {
            child,
            record,
            label: label.to_owned(),
            started: Instant::now(),
        }
    }

    /// Waits (bounded) for the run to end and reads its result and record.
    pub fn wait(self, timeout: Duration) -> LoadResult {
        let Loadgen {
            mut child,
            record,
            label,
            started,
        } = self;
        let deadline = started + timeout;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("loadgen {label} did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("loadgen {label}: no JSON result ({e}): {stdout}\n{stderr}")
        });
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        let submitted = text.lines().map(|l| parse_record(&label, l)).collect();
        LoadResult {
            label,
            json,
            submitted,
            stderr,
        }
    }
}

fn parse_record(label: &str, line: &str) -> Submitted {
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 7, "loadgen {label} record line {line:?}");
    let hex32 = |s: &str| u32::from_str_radix(s, 16).unwrap_or_else(|_| panic!("hex in {line:?}"));
    // A job id is `ID` or `ID.RESEND` in hex; the ledger's is the number before the dot.
    let job = f[6].split('.').next().unwrap_or("");
    let job = u64::from_str_radix(job, 16).unwrap_or_else(|_| panic!("job id in {line:?}"));
    Submitted {
        outcome: f[0].to_owned(),
        worker: f[1].to_owned(),
        key: (
            f[2].to_owned(),
            f[3].to_owned(),
            hex32(f[4]),
            hex32(f[5]),
            job,
        ),
    }
}

impl LoadResult {
    pub fn accepted(&self) -> u64 {
        self.json["accepted"].as_u64().unwrap_or(0)
    }

    /// `accepted_by_worker` of the JSON result.
    pub fn accepted_by_worker(&self) -> BTreeMap<String, u64> {
        self.json["accepted_by_worker"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(w, n)| (w.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What [`check_acknowledged`] found.
#[derive(Debug, Default)]
pub struct AckCheck {
    /// Shares loadgen was told `true` for (all in the ledger once).
    pub acknowledged: u64,
    /// Shares answered with an error or never answered that are in the ledger anyway.
    pub unacknowledged_in_ledger: u64,
    /// Answered with an error or never answered, and not in the ledger.
    pub unacknowledged_missing: u64,
    /// Acknowledged shares per edge id (from the ledger's batch framing).
    pub acknowledged_by_edge: BTreeMap<u16, u64>,
}

/// Every share any of `runs` was told `true` for is in the ledger exactly once (the ledger never
/// holds a share twice: [`LedgerSnapshot::shares`]), counted per worker against loadgen's own
/// `accepted_by_worker`; every ledger share of these runs' workers is one they sent; each
/// share came in a batch of the edge whose id its extranonce1 and job id carry.
pub fn check_acknowledged(snapshot: &LedgerSnapshot, runs: &[&LoadResult]) -> AckCheck {
    let shares = snapshot.shares();
    let mut check = AckCheck::default();
    let mut sent: HashMap<&ShareKey, &Submitted> = HashMap::new();
    let mut ledger_by_worker: BTreeMap<String, u64> = BTreeMap::new();
    for run in runs {
        let mut recorded_true: BTreeMap<String, u64> = BTreeMap::new();
        for s in &run.submitted {
            // Each connection counts its own nonces from zero: the same share twice means two
            // connections were handed the same extranonce1 (and the same job).
            assert!(
                sent.insert(&s.key, s).is_none(),
                "loadgen sent {:?} twice: two connections got extranonce1 {}",
                s.key,
                s.key.0
            );
            let found = shares.get(&s.key);
            if s.outcome == "true" {
                *recorded_true.entry(s.worker.clone()).or_insert(0) += 1;
                let found = found.unwrap_or_else(|| {
                    panic!(
                        "loadgen {} was told true for {:?} ({}), not in the ledger",
                        run.label, s.key, s.worker
                    )
                });
                assert_eq!(found.worker, s.worker, "{:?}", s.key);
                *ledger_by_worker.entry(s.worker.clone()).or_insert(0) += 1;
                check.acknowledged += 1;
                let edge = found.edge.unwrap_or_else(|| {
                    panic!("share {:?} at seq {} is in no edge batch", s.key, found.seq)
                });
                *check.acknowledged_by_edge.entry(edge).or_insert(0) += 1;
                let prefix = u16::from_str_radix(&s.key.0[..2], 16).unwrap();
                assert_eq!(
                    prefix, edge,
                    "extranonce1 {} came through edge {edge}",
                    s.key.0
                );
                assert_eq!(s.key.4 >> 48, u64::from(edge), "job id {:x}", s.key.4);
            } else if found.is_some() {
                check.unacknowledged_in_ledger += 1;
            } else {
                check.unacknowledged_missing += 1;
            }
        }
        assert_eq!(
            recorded_true,
            run.accepted_by_worker(),
            "loadgen {}'s record and its accepted_by_worker",
            run.label
        );
    }
    // Per worker: the ledger holds exactly the acknowledged shares, plus unacknowledged ones
    // it may hold, and nothing these runs did not send.
    let workers: std::collections::BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.submitted.iter().map(|s| &s.worker))
        .collect();
    for (key, share) in &shares {
        if workers.contains(&share.worker) {
            assert!(
                sent.contains_key(key),
                "the ledger holds {key:?} of {} that loadgen never sent",
                share.worker
            );
        }
    }
    for run in runs {
        for (worker, n) in run.accepted_by_worker() {
            assert_eq!(
                ledger_by_worker.get(&worker).copied().unwrap_or(0),
                n,
                "worker {worker}: acknowledged shares in the ledger"
            );
        }
    }
    check
}

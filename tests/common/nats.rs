//! A real 3-server NATS JetStream cluster on loopback, as the scale-out roles (edges, core) use
//! it: free ports (client, cluster route, HTTP monitoring), a store directory per server in a
//! temporary directory, `jetstream { sync_interval: always }`, `max_payload: 8MB`, routes to all
//! three.
//!
//! Each server runs under the same kind of shell watchdog as the regtest nodes
//! ([`super::nodes`]): it is killed as soon as the test binary exits, so a cluster kept in a
//! static (never dropped) does not outlive its tests. Stdout and stderr go nowhere (`-l` writes
//! the log file; a server that kept the test's pipe open would hang a piped `cargo test`).
//! [`NatsCluster::kill`] is a SIGKILL of the server itself, [`NatsCluster::restart`] starts it
//! again on the same ports and store. The logs are printed when a test fails while the cluster
//! is dropped, or on demand ([`NatsCluster::logs`]).
//!
//! The binary: `$OBTC_NATS_BIN/nats-server` (`scripts/test.sh` installs 2.15.1 and sets it),
//! else `nats-server` on `PATH`.

use super::nodes::free_port;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a (re)started server may take to answer `/healthz` with 200.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// One server of the cluster.
#[derive(Debug)]
pub struct NatsServer {
    pub name: String,
    pub client_port: u16,
    pub cluster_port: u16,
    pub http_port: u16,
    conf: PathBuf,
    log: PathBuf,
    pidfile: PathBuf,
    /// Where the watchdog writes the server's exit status.
    statusfile: PathBuf,
    running: bool,
    /// The watchdog shell, reaped after a kill.
    watchdog: Option<std::process::Child>,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    fn http(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    fn pid(&self) -> Option<i32> {
        super::watchdog::read_pid(&self.pidfile)
    }

    fn alive(&self) -> bool {
        self.pid()
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    }
}

pub struct NatsCluster {
    pub dir: PathBuf,
    pub servers: Vec<NatsServer>,
    bin: PathBuf,
}

/// Where `nats-server` is: `$OBTC_NATS_BIN/nats-server`, else the one on `PATH`.
pub fn nats_bin() -> PathBuf {
    match std::env::var_os("OBTC_NATS_BIN") {
        Some(dir) => Path::new(&dir).join("nats-server"),
        None => PathBuf::from("nats-server"),
    }
}

impl NatsCluster {
    /// Starts three servers and waits (bounded) until every one is healthy (a meta leader is
    /// known).
    pub fn start() -> NatsCluster {
        let version = Command::new(nats_bin()).arg("--version").output();
        match version {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("v2.15.") => {}
            Ok(out) => panic!(
                "{} is {} (not 2.15.x): run `scripts/nats.sh install` and set OBTC_NATS_BIN",
                nats_bin().display(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            Err(e) => panic!(
                "no nats-server ({}: {e}): run `scripts/nats.sh install` and set OBTC_NATS_BIN \
                 to the directory it prints",
                nats_bin().display()
            ),
        }
        // Kept, and removed by a cleaner once the test binary has exited: a cluster in a static
        // is never dropped.
        let dir = tempfile::tempdir().expect("temp dir").keep();
        cleanup_after_exit(&dir);
        let bin = nats_bin();
        let servers: Vec<NatsServer> = (1..=3)
            .map(|n| NatsServer {
                name: format!("n{n}"),
                client_port: free_port(),
                cluster_port: free_port(),
                http_port: free_port(),
                conf: dir.join(format!("n{n}.conf")),
                log: dir.join(format!("n{n}.log")),
                pidfile: dir.join(format!("n{n}.pid")),
                statusfile: dir.join(format!("n{n}.status")),
                running: false,
                watchdog: None,
            })
            .collect();
        let routes: Vec<String> = servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.cluster_port))
            .collect();
        for s in &servers {
            let store = dir.join(format!("{}-store", s.name));
            std::fs::create_dir_all(&store).unwrap();
            let conf = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
                 max_payload: 8MB\njetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: obtc-test\n  listen: 127.0.0.1:{cluster}\n  routes: [{routes}]\n}}\n",
                name = s.name,
                client = s.client_port,
                http = s.http_port,
                store = store.display(),
                cluster = s.cluster_port,
                routes = routes.join(", "),
            );
            std::fs::write(&s.conf, conf).unwrap();
        }
        let mut cluster = NatsCluster { dir, servers, bin };
        for i in 0..3 {
            cluster.launch(i);
        }
        for i in 0..3 {
            cluster.wait_healthy(i, HEALTHY_WITHIN);
        }
        cluster
    }

    /// Every server's client URL (`nats://127.0.0.1:PORT`), for `[stream] servers`.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// `servers = [...]` as TOML.
    pub fn servers_toml(&self) -> String {
        let quoted: Vec<String> = self.urls().iter().map(|u| format!("{u:?}")).collect();
        format!("servers = [{}]", quoted.join(", "))
    }

    fn launch(&mut self, i: usize) {
        let s = &mut self.servers[i];
        assert!(!s.running, "{} already running", s.name);
        let _ = std::fs::remove_file(&s.pidfile);
        let watchdog = super::watchdog::command(&s.pidfile, &s.statusfile, &self.bin)
            .arg("-c")
            .arg(&s.conf)
            .arg("-l")
            .arg(&s.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sh for {}: {e}", self.bin.display()));
        s.watchdog = Some(watchdog);
        s.running = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.pid().is_none() {
            assert!(Instant::now() < deadline, "no pid file for {}", s.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until server `i` answers `/healthz` with 200.
    pub fn wait_healthy(&self, i: usize, timeout: Duration) {
        let s = &self.servers[i];
        let deadline = Instant::now() + timeout;
        loop {
            if http_get(s.http(), "/healthz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            assert!(s.alive(), "nats-server {} exited\n{}", s.name, self.logs());
            assert!(
                Instant::now() < deadline,
                "nats-server {} not healthy within {timeout:?}\n{}",
                s.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL of server `i` (no chance to flush or step down), waited for.
    pub fn kill(&mut self, i: usize) {
        let s = &mut self.servers[i];
        if let Some(pid) = s.pid() {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.alive() {
                assert!(Instant::now() < deadline, "{} survived SIGKILL", s.name);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(mut w) = s.watchdog.take() {
            let _ = w.wait();
        }
        s.running = false;
    }

    /// Starts server `i` again (same ports, config and store) and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.launch(i);
        self.wait_healthy(i, HEALTHY_WITHIN);
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].running
    }

    /// `/jsz?streams=true` of server `i`, parsed.
    pub fn jsz(&self, i: usize) -> Option<Value> {
        let (code, body) = http_get(self.servers[i].http(), "/jsz?streams=true")?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// Stream `name`'s detail (`stream_detail` entry) as server `i` sees it.
    fn stream_detail(&self, i: usize, name: &str) -> Option<Value> {
        let jsz = self.jsz(i)?;
        jsz["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == name)
    }

    /// The index of the server that leads stream `name` now: the running server whose own
    /// monitoring says it is the leader (a follower's view may lag an election).
    pub fn stream_leader(&self, name: &str) -> Option<usize> {
        (0..self.servers.len()).find(|&i| {
            self.servers[i].running
                && self
                    .stream_detail(i, name)
                    .is_some_and(|d| d["cluster"]["leader"] == self.servers[i].name.as_str())
        })
    }

    /// Waits (bounded) until stream `name` has a leader among the running servers.
    pub fn wait_stream_leader(&self, name: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.stream_leader(name) {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "stream {name} has no leader within {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Messages in stream `name` (on a work-queue stream: those the core has not acknowledged
    /// yet), as its leader reports them.
    pub fn stream_messages(&self, name: &str) -> Option<u64> {
        let leader = self.stream_leader(name)?;
        self.stream_detail(leader, name)?["state"]["messages"].as_u64()
    }

    /// Waits (bounded) until every replica of stream `name` is current with its leader (after a
    /// restarted server caught up).
    pub fn wait_replicas_current(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.stream_leader(name).and_then(|l| {
                let d = self.stream_detail(l, name)?;
                let replicas = d["cluster"]["replicas"].as_array()?.clone();
                Some(
                    replicas.len() + 1 == self.servers.len()
                        && replicas.iter().all(|r| r["current"] == true),
                )
            });
            if current == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stream {name}'s replicas not current within {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of every server's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            let text = std::fs::read_to_string(&s.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "---- nats-server {} log (last {} lines) ----\n{}\n",
                s.name,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Cleaner: once the test process is gone (and its watchdogs had time to kill what they
/// watch), removes `dir`.
const CLEANER: &str = r#"testpid=$1; dir=$2
while kill -0 "$testpid" 2>/dev/null; do sleep 0.5; done
sleep 2; rm -rf "$dir""#;

/// Removes `dir` (recursively) once the test binary has exited, however it ends.
pub fn cleanup_after_exit(dir: &Path) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(CLEANER)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A plain HTTP/1.0 GET on loopback: the status code and the body (`None`: no answer within a
/// second or two).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

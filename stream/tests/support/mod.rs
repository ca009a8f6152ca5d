//! One real `nats-server` with JetStream (`sync_interval: always`, `max_payload: 8MB`) for the
//! stream crate's tests: a free port, its own store directory, its output in a log file,
//! restartable on the same port and store, killed on drop. The binary is
//! `$OBTC_NATS_BIN/nats-server` when set, else `nats-server` on the PATH.

#![allow(dead_code)] // each test binary uses part of it

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a start or a freeze may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// One `nats-server -js`, restartable on the same port and store.
pub struct Nats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

pub fn nats_bin() -> PathBuf {
    match std::env::var_os("OBTC_NATS_BIN") {
        Some(dir) => PathBuf::from(dir).join("nats-server"),
        None => PathBuf::from("nats-server"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nats {
    pub fn start() -> Nats {
        let mut n = Nats {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        n.spawn();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn spawn(&mut self) {
        let conf = self.dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: \"127.0.0.1:{}\"\nmax_payload: 8MB\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                self.port,
                self.dir.path().join("store").display()
            ),
        )
        .unwrap();
        // Its output to a file, and no pipe of ours held open (a server holding the test's
        // pipe makes the test runner hang).
        let child = Command::new(nats_bin())
            .arg("-c")
            .arg(&conf)
            .arg("-l")
            .arg(self.dir.path().join("nats.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (set OBTC_NATS_BIN or put it on the PATH): {e}",
                    nats_bin().display()
                )
            });
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < PATIENCE, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Freezes the server and waits until every one of its threads is stopped (`kill`
    /// returns before they are).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let started = Instant::now();
        let tasks = format!("/proc/{}/task", self.pid());
        let stopped = || {
            std::fs::read_dir(&tasks).unwrap().all(|t| {
                let stat =
                    std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
                // The state follows the ")" that closes the command name.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
        };
        while !stopped() {
            assert!(started.elapsed() < PATIENCE, "nats-server did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

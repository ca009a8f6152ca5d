//! Runs the independent CPU miner `obtc-miner` against a pool: its output is collected as it
//! comes (the rejection lines carry the pool's error codes), and it is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to run the miner.
#[derive(Clone, Debug)]
pub struct MinerOptions {
    /// Stratum username: payout address, optionally `.worker`.
    pub user: String,
    /// `sha256d` or `heavyhash`.
    pub algo: String,
    /// The miner's own time limit (`--duration`), seconds.
    pub duration_secs: u64,
    /// `--max-shares` (0: no limit).
    pub max_shares: u64,
    pub threads: u32,
}

impl MinerOptions {
    pub fn new(user: &str, algo: &str) -> MinerOptions {
        MinerOptions {
            user: user.to_owned(),
            algo: algo.to_owned(),
            duration_secs: 30,
            max_shares: 0,
            threads: 1,
        }
    }
}

/// The miner's summary line: `obtc-miner: accepted N rejected M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinerCounts {
    pub accepted: u64,
    pub rejected: u64,
}

/// A finished run.
#[derive(Debug)]
pub struct MinerRun {
    pub status: ExitStatus,
    /// `None` when the miner did not print its summary (it was killed).
    pub counts: Option<MinerCounts>,
    pub stdout: String,
    pub stderr: String,
}

impl MinerRun {
    /// Asserts the miner exited cleanly after at least `shares` accepted shares (`pool_log` is
    /// shown on failure) and returns its counts.
    pub fn expect_accepted(&self, shares: u64, pool_log: &str) -> MinerCounts {
        assert!(self.status.success(), "miner: {self:?}\npool:\n{pool_log}");
        let counts = self
            .counts
            .unwrap_or_else(|| panic!("no summary: {self:?}"));
        assert!(
            counts.accepted >= shares,
            "miner stopped before {shares} shares: {self:?}\npool:\n{pool_log}"
        );
        counts
    }

    /// The Stratum error codes of the rejections the miner logged, in order.
    pub fn rejection_codes(&self) -> Vec<i64> {
        rejection_codes(&self.stderr)
    }
}

pub struct MinerProcess {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    stdout_reader: Option<JoinHandle<String>>,
}

impl MinerProcess {
    pub fn spawn(pool: SocketAddr, options: &MinerOptions) -> MinerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_obtc-miner"))
            .arg("--url")
            .arg(pool.to_string())
            .arg("--user")
            .arg(&options.user)
            .arg("--algo")
            .arg(&options.algo)
            .arg("--threads")
            .arg(options.threads.to_string())
            .arg("--duration")
            .arg(options.duration_secs.to_string())
            .arg("--max-shares")
            .arg(options.max_shares.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start obtc-miner");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_pipe = child.stderr.take().expect("miner stderr");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut stdout_pipe = child.stdout.take().expect("miner stdout");
        let stdout_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout_pipe.read_to_string(&mut text);
            text
        });
        MinerProcess {
            child: Some(child),
            stderr,
            stderr_reader: Some(stderr_reader),
            stdout_reader: Some(stdout_reader),
        }
    }

    /// What the miner wrote to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits (bounded) until `pred` holds for the stderr so far, or the miner exits; returns
    /// whether it held.
    pub fn wait_for_stderr(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.stderr_so_far()) {
                return true;
            }
            if Instant::now() >= deadline || self.stderr_reader_finished() {
                return pred(&self.stderr_so_far());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_reader_finished(&self) -> bool {
        self.stderr_reader
            .as_ref()
            .map_or(true, |reader| reader.is_finished())
    }

    /// Waits (bounded) for the miner to exit on its own; kills it at the deadline.
    pub fn wait(mut self, timeout: Duration) -> MinerRun {
        let mut child = self.child.take().expect("miner running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.collect(status)
    }

    /// SIGKILL (the miner prints no summary then).
    pub fn kill(mut self) -> MinerRun {
        let mut child = self.child.take().expect("miner running");
        let _ = child.kill();
        let status = child.wait().unwrap();
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> MinerRun {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stdout = self
            .stdout_reader
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default();
        MinerRun {
            status,
            counts: parse_counts(&stdout),
            stdout,
            stderr: self.stderr_so_far(),
        }
    }
}

impl Drop for MinerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Parses `obtc-miner: accepted N rejected M`.
pub fn parse_counts(stdout: &str) -> Option<MinerCounts> {
    stdout.lines().find_map(|line| {
        let rest = line.strip_prefix("obtc-miner: accepted ")?;
        let (accepted, rejected) = rest.split_once(" rejected ")?;
        Some(MinerCounts {
            accepted: accepted.trim().parse().ok()?,
            rejected: rejected.trim().parse().ok()?,
        })
    })
}

/// The codes of `obtc-miner: share rejected: [code, "message", null]` lines.
pub fn rejection_codes(stderr: &str) -> Vec<i64> {
    stderr
        .lines()
        .filter_map(|line| {
            let json = line.strip_prefix("obtc-miner: share rejected: ")?;
            let error: serde_json::Value = serde_json::from_str(json).ok()?;
            error.get(0)?.as_i64()
        })
        .collect()
}

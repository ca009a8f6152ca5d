//! `obtc-pool payout` as a child process of a test: its log, its exit, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `obtc-pool payout` on the pool's config file, killed on drop.
pub struct PayoutProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl PayoutProcess {
    pub fn spawn(config: &Path, env: &[(&str, &str)]) -> PayoutProcess {
        let log = config.with_file_name("payout.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
            .arg("payout")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,payout=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start obtc-pool payout");
        PayoutProcess {
            child: Some(child),
            log,
        }
    }

    /// Everything every payout process of this test wrote (stdout and stderr), in order.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit by itself (a crash hook).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "payout did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let id = self.child.as_ref().expect("running").id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(id.to_string())
            .status();
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for PayoutProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

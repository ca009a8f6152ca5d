//! Processes a test starts that must not outlive it: each runs under a small `sh` watchdog that
//! writes the process's pid to a file, kills the process once the test binary is gone (a test
//! harness kept in a static is never dropped), and writes the exit status to a second file once
//! the process ended. Used for the NATS servers and the pool's edge and core processes.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = r#"testpid=$1; pidfile=$2; statusfile=$3; shift 3
"$@" & child=$!
echo "$child" > "$pidfile"
while kill -0 "$testpid" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.1; done
kill -9 "$child" 2>/dev/null; wait "$child"; echo $? > "$statusfile""#;

/// `program` under the watchdog; the caller adds its arguments, environment and stdio, and
/// spawns it (the child is the watchdog; the program's pid is in `pidfile`).
pub fn command(pidfile: &Path, statusfile: &Path, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(pidfile)
        .arg(statusfile)
        .arg(program);
    command
}

/// The pid the watchdog wrote (`None` before it did, or once the file is removed).
pub fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

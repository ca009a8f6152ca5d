//! The README's demo in its short form, run by the test command so it cannot rot:
//! `scripts/demo.sh --short` with this build's binaries (the debug `obtc-pool` and `obtc-miner`
//! cargo built for this test: no second, release build), its own data directory in a temporary
//! directory and free ports (the script picks them), against real regtest nodes of its own
//! (`scripts/nodes.sh`, `OBTC_NODE_BIN`). It passes when every check of the demo's summary is ok.
//!
//! Bounded: the script bounds each of its waits (and says what it waited for); this test stops
//! it (SIGTERM: its trap stops the pool, the miners and the nodes) after [`LIMIT`].

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most the short demo may take (~30 s here, on a loaded 2-core machine; its own waits are
/// bounded shorter).
const LIMIT: Duration = Duration::from_secs(240);

#[test]
fn the_short_demo_passes_every_check() {
    let pool = Path::new(env!("CARGO_BIN_EXE_obtc-pool"));
    let miner = Path::new(env!("CARGO_BIN_EXE_obtc-miner"));
    let bin_dir = pool.parent().expect("the binaries' directory");
    assert_eq!(
        miner.parent(),
        Some(bin_dir),
        "obtc-pool and obtc-miner are built side by side"
    );
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let output_path = tmp.path().join("demo-output.txt");
    let output = File::create(&output_path).expect("the output file");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("--short")
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--data")
        .arg(tmp.path().join("demo"))
        .env_remove("STRATUM_PORT")
        .env_remove("DEMO_DIR")
        .env_remove("DEMO_BIN_DIR")
        // Its watchdog stops everything should this test process die first (e.g. Ctrl-C).
        .env("DEMO_WATCH_PID", std::process::id().to_string())
        // A process group of its own, so that a stop reaches the step it is in as well.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("the output file"))
        .stderr(output)
        .spawn()
        .expect("run scripts/demo.sh");
    let status = loop {
        if let Some(status) = child.try_wait().expect("the demo's status") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            stop(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&output_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            let summary = text
                .find(" SUMMARY ")
                .map_or(0, |i| text[..i].rfind('\n').unwrap_or(0));
            println!(
                "short demo passed in {:.0} s:{}",
                started.elapsed().as_secs_f64(),
                &text[summary..]
            );
        }
        Some(s) => panic!(
            "scripts/demo.sh --short failed ({s}) after {:.0} s; its output:\n{text}",
            started.elapsed().as_secs_f64()
        ),
        None => panic!(
            "scripts/demo.sh --short did not finish within {} s (stopped); its output:\n{text}",
            LIMIT.as_secs()
        ),
    }
}

/// SIGTERM to the script's process group (the script's trap then stops everything it started),
/// then SIGKILL if it lingers.
fn stop(child: &mut std::process::Child) {
    let group = child.id() as libc::pid_t;
    // SAFETY: kill(2) of our own child's process group; no memory is involved.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
}

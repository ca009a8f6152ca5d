//! The load generator against its own null server: a short closed-loop and open-loop run must
//! get answers, count them all as accepted and see no errors, and a run against a closed port
//! must fail with a non-zero exit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// The null server on a port the OS picks; killed on drop.
struct NullServer {
    child: Child,
    addr: String,
}

impl NullServer {
    fn start() -> NullServer {
        let mut child = Command::new(LOADGEN)
            .args(["--threads", "1", "null-server", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It prints "null-server listening on ADDR" once bound.
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("null-server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        NullServer { child, addr }
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> (std::process::ExitStatus, serde_json::Value) {
    let out = Command::new(LOADGEN)
        .args(["--threads", "1", "run", "--json", "--username", "addr.w"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON result ({e}): stdout {stdout:?} stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status, json)
}

fn assert_clean(json: &serde_json::Value, connections: u64) {
    assert_eq!(json["connected"], connections, "{json}");
    assert_eq!(json["connect_failures"], 0, "{json}");
    assert_eq!(json["dropped_connections"], 0, "{json}");
    assert_eq!(json["other_errors"], 0, "{json}");
    assert_eq!(json["rejected"], 0, "{json}");
    assert_eq!(json["unanswered"], 0, "{json}");
    let accepted = json["accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{json}");
    // The null server answers every submit, so every submit sent is an accepted one.
    assert_eq!(json["sent"].as_u64().unwrap(), accepted, "{json}");
    assert!(json["p50_us"].as_u64().unwrap() <= json["p999_us"].as_u64().unwrap());
}

#[test]
fn closed_loop_against_null_server_accepts_everything() {
    let server = NullServer::start();
    let (status, json) = run(&[
        "--target",
        &server.addr,
        "--connections",
        "4",
        "--in-flight",
        "4",
        "--duration",
        "1",
    ]);
    assert!(status.success(), "{json}");
    assert_clean(&json, 4);
}

#[test]
fn open_loop_against_null_server_sends_at_the_rate() {
    let server = NullServer::start();
    let (status, json) = run(&[
        "--target",
        &server.addr,
        "--connections",
        "5",
        "--rate",
        "500",
        "--duration",
        "1",
    ]);
    assert!(status.success(), "{json}");
    assert_clean(&json, 5);
    // 500/s for 1 s over 5 connections: the schedule holds exactly 100 sends per connection.
    assert_eq!(json["sent"], 500, "{json}");
}

#[test]
fn closed_port_fails_with_connect_failures() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (status, json) = run(&[
        "--target",
        &addr,
        "--connections",
        "2",
        "--duration",
        "0.2",
        "--handshake-timeout",
        "5",
    ]);
    assert_eq!(status.code(), Some(2), "{json}");
    assert_eq!(json["connect_failures"], 2, "{json}");
    assert_eq!(json["accepted"], 0, "{json}");
}

#[test]
fn workers_and_record_count_every_submit_by_worker() {
    let server = NullServer::start();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let (status, json) = run(&[
        "--target",
        &server.addr,
        "--connections",
        "4",
        "--workers",
        "2",
        "--rate",
        "400",
        "--duration",
        "0.5",
        "--record",
        record.to_str().unwrap(),
    ]);
    assert!(status.success(), "{json}");
    assert_clean(&json, 4);
    let by_worker = json["accepted_by_worker"].as_object().unwrap();
    assert_eq!(by_worker.len(), 2, "{json}");
    let sum: u64 = by_worker.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum, json["accepted"].as_u64().unwrap());
    // One line per submit: outcome, worker, extranonce1, extranonce2, ntime, nonce, job id;
    // never the same share twice.
    let text = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len() as u64, json["sent"].as_u64().unwrap());
    let mut keys = std::collections::BTreeSet::new();
    for l in &lines {
        assert_eq!(l.len(), 7, "{l:?}");
        assert_eq!(l[0], "true");
        assert!(l[1] == "addr.w.w0" || l[1] == "addr.w.w1", "{l:?}");
        assert!(keys.insert(l[2..].to_vec()), "duplicate share {l:?}");
    }
}

#[test]
fn a_closed_connection_fails_over_to_the_next_target() {
    let mut first = NullServer::start();
    let second = NullServer::start();
    let targets = format!("{},{}", first.addr, second.addr);
    let child = Command::new(LOADGEN)
        .args(["--threads", "1", "run", "--json", "--username", "addr.w"])
        .args(["--target", &targets, "--connections", "3", "--rate", "300"])
        .args(["--duration", "2", "--drain-ms", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let _ = first.child.kill();
    let _ = first.child.wait();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{json}");
    assert_eq!(json["reconnects"], 3, "every connection moved: {json}");
    assert_eq!(json["dropped_connections"], 0, "{json}");
    assert!(json["accepted"].as_u64().unwrap() > 300, "{json}");
}

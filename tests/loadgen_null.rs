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

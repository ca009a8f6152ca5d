//! `obtc-pool ledger head|dump|verify` on a real ledger directory, the missing-directory error
//! and the message for a ledger held by a running pool.

mod ledger_support;

use ledger::Ledger;
use ledger_support::{fixture_events, obtc_pool};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ledger_with(n: u64) -> (tempfile::TempDir, ledger::Head) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.append_batch_blocking(fixture_events(n)).unwrap();
    let head = ledger.head().unwrap();
    ledger.close_blocking();
    (dir, head)
}

#[test]
fn head_prints_seq_and_hash() {
    let (dir, head) = ledger_with(12);
    let out = obtc_pool(&["ledger", "head", "--data", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("seq 11\nhash {}\n", hex::encode(head.hash))
    );
}

#[test]
fn verify_reports_records_and_head() {
    let (dir, head) = ledger_with(12);
    let out = obtc_pool(&["ledger", "verify", "--data", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("12 records checked"), "{stdout}");
    assert!(stdout.contains(&format!("head seq 11 hash {}", hex::encode(head.hash))));
}

#[test]
fn dump_json_lines_one_event_per_line() {
    let (dir, head) = ledger_with(12);
    let d = dir.path().to_str().unwrap();
    let out = obtc_pool(&[
        "ledger", "dump", "--data", d, "--json", "--from", "3", "--limit", "9",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    let events = fixture_events(12);
    for (i, line) in lines.iter().enumerate() {
        let seq = 3 + i as u64;
        assert_eq!(line["seq"], seq);
        assert_eq!(line["version"], 1);
        assert!(line["time_ms"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(line["kind"], events[seq as usize].kind());
        let event: pool_core::Event = serde_json::from_value(line["event"].clone()).unwrap();
        assert_eq!(event, events[seq as usize]);
    }
    assert_eq!(lines[8]["hash"], hex::encode(head.hash));

    let plain = obtc_pool(&["ledger", "dump", "--data", d, "--limit", "2"]);
    assert!(plain.status.success());
    let plain = text(&plain.stdout);
    let plain: Vec<&str> = plain.lines().collect();
    assert_eq!(plain.len(), 2);
    assert!(plain[0].starts_with("0 "), "{}", plain[0]);
    assert!(plain[0].contains("ShareAccepted"), "{}", plain[0]);
    assert!(plain[1].starts_with("1 ") && plain[1].contains("BlockFound"));
}

#[test]
fn missing_directory_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-ledger-here");
    for cmd in ["verify", "head", "dump"] {
        let out = obtc_pool(&["ledger", cmd, "--data", missing.to_str().unwrap()]);
        assert!(!out.status.success(), "{cmd}");
        assert!(
            text(&out.stderr).contains("no ledger at"),
            "{cmd}: {}",
            text(&out.stderr)
        );
        assert!(!missing.exists(), "{cmd} created the directory");
    }
}

#[test]
fn ledger_held_by_a_running_pool_is_reported_as_in_use() {
    let (dir, _) = ledger_with(3);
    let d = dir.path().to_str().unwrap();
    let running = Ledger::open(dir.path()).unwrap();
    for cmd in ["verify", "head", "dump"] {
        let out = obtc_pool(&["ledger", cmd, "--data", d]);
        assert!(!out.status.success(), "{cmd}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "ledger at {d} is in use (is the pool running?); stop it or copy the directory"
            )),
            "{cmd}: {stderr}"
        );
    }
    running.close_blocking();
    let out = obtc_pool(&["ledger", "verify", "--data", d]);
    assert!(out.status.success(), "released after close");
}

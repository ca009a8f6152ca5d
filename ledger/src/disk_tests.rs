//! A full disk met by log writes (injected at a log file's end, torn and slow: see
//! `writer::test_faults`), with frames of three committers in flight, so later frames may lie
//! whole in the other file after a torn one: those appends are refused, the writer heals
//! without a restart, and neither the running ledger nor a copy of the directory taken as a
//! crash would leave it soon after each heal misses an acknowledged record. (Without emptying
//! the log at the heal, the copies lose records: checked by hand.)

use super::*;
use pool_core::event::PaymentFailed;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn event(id: u64) -> Event {
    Event::PaymentFailed(PaymentFailed {
        payment_id: id,
        reason: format!("disk test {id}"),
    })
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Copies the ledger directory as a crash would leave it (the pool's files as they are now).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every acknowledged record is in the ledger at `dir`, with its content, and it verifies.
fn check(dir: &Path, acked: &BTreeMap<u64, u64>) {
    let ledger = Ledger::open_read_only(dir).unwrap();
    ledger.verify().expect("verifies");
    let records: Vec<Record> = ledger.read_from(0).map(|r| r.unwrap()).collect();
    for (seq, id) in acked {
        let record = records
            .get(*seq as usize)
            .unwrap_or_else(|| panic!("acknowledged record {seq} missing in {}", dir.display()));
        assert_eq!(record.event, event(*id), "record {seq}");
    }
}

#[test]
fn torn_log_writes_are_refused_and_healed_without_losing_an_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let options = WriterOptions {
        wal_file_bytes: wal::MIN_FILE_BYTES,
        committers: 3,
        direct_io: true,
        min_free_bytes: 0,
        ..WriterOptions::default()
    };
    let ledger = Ledger::open_with(&path, options).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(false));
    let idle = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let (acks, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    const APPENDERS: u64 = 8;
    let threads: Vec<_> = (0..APPENDERS)
        .map(|task| {
            let (ledger, stop, acked) = (ledger.clone(), stop.clone(), acked.clone());
            let (pause, idle) = (pause.clone(), idle.clone());
            let (acks, refused) = (acks.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    if pause.load(Ordering::Relaxed) {
                        idle.fetch_add(1, Ordering::SeqCst);
                        while pause.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        idle.fetch_sub(1, Ordering::SeqCst);
                        continue;
                    }
                    let id = (task << 32) | i;
                    i += 1;
                    match ledger.append_blocking(event(id)) {
                        Ok(a) => {
                            acked.lock().unwrap().insert(a.seq, id);
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(LedgerError::DiskFull(_)) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => panic!("not a full disk: {e}"),
                    }
                }
            })
        })
        .collect();
    // Several rounds, so failures land in both files and across their turns. After each, a
    // copy of the directory as a crash would leave it soon after the heal (before a checkpoint
    // covers the new frames: where refused frames left whole in the log could hide new ones
    // from the replay).
    let mut crashes = Vec::new();
    for round in 0..8u32 {
        let before = acks.load(Ordering::Relaxed);
        wait_for("acknowledgements", || {
            acks.load(Ordering::Relaxed) >= before + 100
        });
        let refused_before = refused.load(Ordering::Relaxed);
        writer::test_faults::fail_writes(&path, 1 + round % 3);
        wait_for("refusals", || {
            refused.load(Ordering::Relaxed) > refused_before
        });
        let before = acks.load(Ordering::Relaxed);
        wait_for("acknowledgements after the heal", || {
            acks.load(Ordering::Relaxed) >= before + 3
        });
        pause.store(true, Ordering::Relaxed);
        wait_for("appenders paused", || {
            idle.load(Ordering::SeqCst) == APPENDERS
        });
        let crashed = dir.path().join(format!("crashed-{round}"));
        copy_dir(&path, &crashed);
        crashes.push((crashed, acked.lock().unwrap().clone()));
        pause.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    ledger.close_blocking();
    check(&path, &acked.lock().unwrap());
    for (crashed, acked) in &crashes {
        check(crashed, acked);
    }
    assert!(refused.load(Ordering::Relaxed) > 0);
}

//! A full disk under a writing ledger, on a small tmpfs (the tests run as root; without root or
//! a tmpfs they skip, saying so): appenders keep appending while a file fills the file system;
//! appends are then refused fast with `LedgerError::DiskFull` (never acknowledged), and once the
//! file is deleted they are acknowledged again, without reopening the ledger. Afterwards the
//! ledger verifies and every acknowledged record is in it with its content. Two shapes: log
//! files already zeroed to their size (sled's writes fail first, so sled is reopened), and
//! large log files still growing (the log's zeroing fails first); and a file system left just
//! under the low-water mark (half the reserve), refused before any write fails. Opening on a
//! nearly full file system is refused with a clear message.

mod ledger_support;
mod tmpfs;

use ledger::{Ledger, LedgerError, WriterOptions};
use pool_core::Event;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tmpfs::Tmpfs;

const APPENDERS: u64 = 4;
/// Bound of each phase of a test.
const PHASE_LIMIT: Duration = Duration::from_secs(20);

/// The ledger's log lines on the test's output (shown for a failing test, or with --nocapture).
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ledger=info")),
        )
        .with_test_writer()
        .try_init();
}

#[derive(Default)]
struct Seen {
    /// seq -> the appender's id of the event.
    acked: Mutex<BTreeMap<u64, u64>>,
    acks: AtomicU64,
    disk_full: AtomicU64,
    /// The slowest refusal, in microseconds.
    slowest_refusal_us: AtomicU64,
    other_errors: Mutex<Vec<String>>,
    first_refusal: Mutex<Option<String>>,
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Appends from `APPENDERS` threads while the file system fills (up to `leave` bytes left) and
/// is freed again; the first refusal's message.
fn full_disk_round(test: &str, tmpfs_bytes: u64, options: WriterOptions, leave: u64) -> String {
    init_logs();
    let fs = match Tmpfs::mount(tmpfs_bytes) {
        Ok(fs) => fs,
        Err(why) => {
            tmpfs::skip(test, &why);
            return String::new();
        }
    };
    let started = Instant::now();
    let dir = fs.path().join("ledger");
    let ledger = Ledger::open_with(&dir, options).expect("open on the tmpfs");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let threads: Vec<_> = (0..APPENDERS)
        .map(|task| {
            let (ledger, stop, seen) = (ledger.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = (task << 32) | i;
                    i += 1;
                    let asked = Instant::now();
                    match ledger.append_blocking(ledger_support::share(id)) {
                        Ok(appended) => {
                            seen.acked.lock().unwrap().insert(appended.seq, id);
                            seen.acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(LedgerError::DiskFull(why)) => {
                            seen.first_refusal.lock().unwrap().get_or_insert(why);
                            let us = asked.elapsed().as_micros() as u64;
                            seen.slowest_refusal_us.fetch_max(us, Ordering::Relaxed);
                            seen.disk_full.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => {
                            seen.other_errors.lock().unwrap().push(e.to_string());
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            })
        })
        .collect();

    wait_for("the first acknowledgements", PHASE_LIMIT, || {
        seen.acks.load(Ordering::Relaxed) >= 200
    });
    let filled = fs.fill("fill", leave);
    wait_for("appends refused on the full disk", PHASE_LIMIT, || {
        seen.disk_full.load(Ordering::Relaxed) >= 50
    });
    // Refused, and nothing acknowledged any more while the disk stays full.
    let acks_full = seen.acks.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        seen.acks.load(Ordering::Relaxed),
        acks_full,
        "acknowledged while the disk was full"
    );
    let refused = seen.disk_full.load(Ordering::Relaxed);
    fs.free("fill");
    wait_for(
        "acknowledgements after space was freed",
        PHASE_LIMIT,
        || seen.acks.load(Ordering::Relaxed) >= acks_full + 200,
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let other = seen.other_errors.lock().unwrap().clone();
    assert!(other.is_empty(), "errors other than DiskFull: {other:?}");
    ledger.close_blocking();

    // Every acknowledged record is there, with its content, and the chain verifies.
    let audit = Ledger::open_read_only(&dir).unwrap();
    let report = audit
        .verify()
        .expect("the ledger verifies after the full disk");
    let acked = seen.acked.lock().unwrap();
    let stored: Vec<_> = audit.read_from(0).map(|r| r.unwrap()).collect();
    assert_eq!(report.records, stored.len() as u64);
    for (seq, id) in acked.iter() {
        let record = stored
            .get(*seq as usize)
            .unwrap_or_else(|| panic!("acknowledged record {seq} missing"));
        assert_eq!(record.event, ledger_support::share(*id), "record {seq}");
    }
    let shares = stored
        .iter()
        .filter(|r| matches!(r.event, Event::ShareAccepted(_)))
        .count();
    eprintln!(
        "{test}: {} acknowledged ({} in the ledger), {refused} refused on the full disk \
         (the slowest refusal {} us), {filled} bytes filled, {:?}",
        acked.len(),
        shares,
        seen.slowest_refusal_us.load(Ordering::Relaxed),
        started.elapsed()
    );
    let first = seen.first_refusal.lock().unwrap().clone();
    first.unwrap_or_default()
}

#[test]
fn a_full_disk_refuses_appends_and_they_resume_when_space_is_freed() {
    // Log files zeroed to their (smallest) size at once, and no reserve (so no low-water
    // mark): the first write that fails is sled's, and sled is reopened.
    full_disk_round(
        "a_full_disk_refuses_appends_and_they_resume_when_space_is_freed",
        16 << 20,
        WriterOptions {
            wal_file_bytes: 64 * 1024,
            committers: 3,
            direct_io: true,
            min_free_bytes: 0,
            ..WriterOptions::default()
        },
        0,
    );
}

#[test]
fn below_the_low_water_mark_appends_are_refused_before_the_disk_is_full() {
    // 1.5 MiB left, under half of the 4 MiB reserve: refused while sled's writes (segments
    // of 512 KiB) and the log's would still fit.
    let refusal = full_disk_round(
        "below_the_low_water_mark_appends_are_refused_before_the_disk_is_full",
        16 << 20,
        WriterOptions {
            wal_file_bytes: 64 * 1024,
            committers: 1,
            direct_io: true,
            min_free_bytes: 4 << 20,
            ..WriterOptions::default()
        },
        3 << 19,
    );
    // Empty when skipped.
    assert!(
        refusal.is_empty() || refusal.contains("below the low-water mark"),
        "{refusal}"
    );
}

#[test]
fn a_full_disk_while_the_log_grows_refuses_appends_and_they_resume() {
    // Large log files, zeroed ahead as they fill: the log's zeroing hits the full disk too.
    full_disk_round(
        "a_full_disk_while_the_log_grows_refuses_appends_and_they_resume",
        32 << 20,
        WriterOptions {
            wal_file_bytes: 8 << 20,
            committers: 1,
            direct_io: true,
            min_free_bytes: 1 << 20,
            ..WriterOptions::default()
        },
        0,
    );
}

#[test]
fn opening_on_a_nearly_full_disk_is_refused_clearly() {
    let test = "opening_on_a_nearly_full_disk_is_refused_clearly";
    let fs = match Tmpfs::mount(8 << 20) {
        Ok(fs) => fs,
        Err(why) => return tmpfs::skip(test, &why),
    };
    let dir = fs.path().join("ledger");
    let options = WriterOptions {
        wal_file_bytes: 1 << 20,
        min_free_bytes: 2 << 20,
        ..WriterOptions::default()
    };
    // Needs 2 x 1 MiB for the log files plus the 2 MiB margin: leave 3 MiB.
    fs.fill("fill", 3 << 20);
    let err = Ledger::open_with(&dir, options).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("free") && message.contains("needs at least 4.0 MiB"),
        "{message}"
    );
    assert!(!dir.join("db").exists(), "nothing written on refusal");
    // With the space back it opens and appends.
    fs.free("fill");
    let ledger = Ledger::open_with(&dir, options).unwrap();
    ledger.append_blocking(ledger_support::share(1)).unwrap();
    ledger.close_blocking();
}

//! Old ledgers keep reading: `testdata/ledger-v1/` is a small ledger written by the v1 build
//! (a few dozen records of every `Event` variant). This test decodes and verifies a copy of it.
//!
//! To regenerate it (only if the v1 fixture events change; never for a format change, which
//! must keep reading the committed one):
//! `LEDGER_WRITE_TESTDATA=1 cargo test --test ledger_compat -- --ignored generate_ledger_v1_testdata`

mod ledger_support;

use ledger::Ledger;
use ledger_support::fixture_events;
use std::path::{Path, PathBuf};

/// Records in the committed ledger: 4 of each of the 11 variants.
const RECORDS: u64 = 44;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ledger-v1")
}

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

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dir_size(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[test]
fn committed_v1_ledger_decodes_and_verifies() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&testdata(), copy.path());
    let ledger = Ledger::open_read_only(copy.path()).unwrap();
    let report = ledger.verify().unwrap();
    assert_eq!(report.records, RECORDS);
    assert_eq!(report.head.map(|h| h.seq), Some(RECORDS - 1));
    let records: Vec<_> = ledger.read_from(0).map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, RECORDS);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.version, 1);
        assert!(
            r.time_ms > 1_700_000_000_000,
            "record {i} time {}",
            r.time_ms
        );
    }
    let events: Vec<_> = records.into_iter().map(|r| r.event).collect();
    assert_eq!(events, fixture_events(RECORDS));
    let mut kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), 11, "every variant is in the fixture");
    drop(ledger);

    // And the writer accepts it: the tail verifies, appends continue the chain.
    let ledger = Ledger::open(copy.path()).unwrap();
    let next = ledger.append_blocking(fixture_events(1).remove(0)).unwrap();
    assert_eq!(next.seq, RECORDS);
    assert_eq!(ledger.verify().unwrap().records, RECORDS + 1);
}

#[test]
fn committed_v1_ledger_stays_small() {
    let size = dir_size(&testdata());
    assert!(size < 256 * 1024, "testdata/ledger-v1 is {size} bytes");
}

/// Writes `testdata/ledger-v1/` afresh: a few single appends and a few batches, so both
/// one-record and many-record commit batches are in it.
#[test]
#[ignore = "generator: run by hand to rewrite testdata/ledger-v1"]
fn generate_ledger_v1_testdata() {
    // Guard against `cargo test -- --ignored` rewriting the committed ledger by accident.
    if std::env::var_os("LEDGER_WRITE_TESTDATA").is_none() {
        eprintln!("set LEDGER_WRITE_TESTDATA=1 to rewrite testdata/ledger-v1");
        return;
    }
    let dir = testdata();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let ledger = Ledger::open(&dir).unwrap();
    let events = fixture_events(RECORDS);
    let (singles, rest) = events.split_at(11);
    for e in singles {
        ledger.append_blocking(e.clone()).unwrap();
    }
    for chunk in rest.chunks(11) {
        ledger.append_batch_blocking(chunk.to_vec()).unwrap();
    }
    assert_eq!(ledger.verify().unwrap().records, RECORDS);
    ledger.close_blocking();
    // git keeps no empty directories; sled recreates `blobs/` on open.
    let _ = std::fs::remove_dir(dir.join("blobs"));
}

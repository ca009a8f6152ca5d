//! Tampering is detected: edit the stored bytes of a closed ledger directly (flip a byte,
//! delete a record, swap two records) and `obtc-pool ledger verify` must exit non-zero naming
//! the first bad sequence number.

mod ledger_support;

use ledger::record::batch_key;
use ledger::Ledger;
use ledger_support::{edit_batch, edit_tree, fixture_event, obtc_pool};
use std::path::Path;

/// Records 0..10 as one-record batches, 10..20 as one batch (key 10), 20 and 21 singly.
fn build(dir: &Path) {
    let ledger = Ledger::open(dir).unwrap();
    for n in 0..10 {
        ledger.append_blocking(fixture_event(n)).unwrap();
    }
    ledger
        .append_batch_blocking((10..20).map(fixture_event).collect())
        .unwrap();
    for n in 20..22 {
        ledger.append_blocking(fixture_event(n)).unwrap();
    }
    ledger.close_blocking();
}

/// Builds a ledger, applies `tamper`, runs the CLI and checks it names `bad_seq`.
fn assert_verify_fails_at(bad_seq: u64, what: &str, tamper: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let ok = obtc_pool(&["ledger", "verify", "--data", dir.path().to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "intact ledger must verify before tampering"
    );
    tamper(dir.path());
    let out = obtc_pool(&["ledger", "verify", "--data", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: verify exited 0: {stdout}");
    assert!(
        stdout.contains(&format!("FAILED at record {bad_seq}:")),
        "{what}: expected record {bad_seq} named, got: {stdout} {stderr}"
    );
    assert!(stderr.contains(&format!("first bad sequence number: {bad_seq}")));
}

#[test]
fn flipped_event_byte_in_a_one_record_batch() {
    assert_verify_fails_at(4, "flipped event byte", |dir| {
        edit_batch(dir, 4, |records| records[0].event[3] ^= 0x01);
    });
}

#[test]
fn flipped_event_byte_inside_a_batch() {
    assert_verify_fails_at(13, "flipped byte in batch", |dir| {
        edit_batch(dir, 10, |records| {
            let last = records[3].event.len() - 1;
            records[3].event[last] ^= 0x80;
        });
    });
}

#[test]
fn flipped_hash_byte() {
    assert_verify_fails_at(6, "flipped hash byte", |dir| {
        edit_batch(dir, 6, |records| records[0].hash[0] ^= 0xff);
    });
}

#[test]
fn flipped_time_byte() {
    assert_verify_fails_at(17, "flipped time byte", |dir| {
        edit_batch(dir, 10, |records| records[7].time_ms ^= 1);
    });
}

#[test]
fn deleted_one_record_batch() {
    assert_verify_fails_at(5, "deleted record", |dir| {
        edit_tree(dir, |tree| {
            tree.remove(batch_key(5)).unwrap().unwrap();
        });
    });
}

#[test]
fn deleted_last_record() {
    assert_verify_fails_at(21, "deleted last record", |dir| {
        edit_tree(dir, |tree| {
            tree.remove(batch_key(21)).unwrap().unwrap();
        });
    });
}

#[test]
fn deleted_record_inside_a_batch() {
    assert_verify_fails_at(15, "deleted record in batch", |dir| {
        edit_batch(dir, 10, |records| {
            records.remove(5);
        });
    });
}

#[test]
fn swapped_one_record_batches() {
    assert_verify_fails_at(2, "swapped records", |dir| {
        edit_tree(dir, |tree| {
            let a = tree.get(batch_key(2)).unwrap().unwrap();
            let b = tree.get(batch_key(3)).unwrap().unwrap();
            tree.insert(batch_key(2), b).unwrap();
            tree.insert(batch_key(3), a).unwrap();
        });
    });
}

#[test]
fn swapped_records_inside_a_batch() {
    assert_verify_fails_at(12, "swapped records in batch", |dir| {
        edit_batch(dir, 10, |records| records.swap(2, 3));
    });
}

#[test]
fn renumbered_records_still_fail_on_the_hash() {
    // A swap that also rewrites the sequence numbers: only the chain hash can catch it.
    assert_verify_fails_at(12, "swapped and renumbered", |dir| {
        edit_batch(dir, 10, |records| {
            records.swap(2, 3);
            records[2].seq = 12;
            records[3].seq = 13;
        });
    });
}

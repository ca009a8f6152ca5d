//! Tampering is detected: edit the stored bytes of a closed ledger directly (flip a byte,
//! delete a record, swap two records) and `obtc-pool ledger verify` must exit non-zero naming
//! the first bad sequence number; in a compacted ledger (format-2 chunks), the first record of
//! the edited chunk (a chunk stores only its last hash).

mod ledger_support;

use ledger::record::batch_key;
use ledger::Ledger;
use ledger_support::{edit_batch, edit_chunk, edit_tree, fixture_event, obtc_pool};
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

/// [`build`], then compacted in chunks of at least 8 records: records 0..8 a chunk (key 0),
/// 8..20 a chunk (key 8: two single records and the batch of ten), 20 and 21 left as batches.
fn build_compacted(dir: &Path) {
    build(dir);
    let options = ledger::CompactOptions {
        background: false,
        chunk_records: 8,
        ..ledger::CompactOptions::default()
    };
    let ledger = Ledger::open_tuned(dir, ledger::WriterOptions::default(), options).unwrap();
    let report = ledger.compact().unwrap();
    assert_eq!((report.chunks, report.records), (2, 20), "{report:?}");
    ledger.close_blocking();
}

/// Builds a ledger, applies `tamper`, runs the CLI and checks it names `bad_seq`.
fn assert_verify_fails_at(bad_seq: u64, what: &str, tamper: impl FnOnce(&Path)) {
    assert_tampered_fails_at(build, bad_seq, what, tamper)
}

fn assert_tampered_fails_at(
    build: fn(&Path),
    bad_seq: u64,
    what: &str,
    tamper: impl FnOnce(&Path),
) {
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

#[test]
fn compaction_leaves_verify_and_dump_output_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let data = dir.path().to_str().unwrap();
    let outputs = || {
        [
            &["ledger", "verify", "--data", data][..],
            &["ledger", "dump", "--json", "--data", data][..],
        ]
        .map(|args| {
            let out = obtc_pool(args);
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let before = outputs();
    let options = ledger::CompactOptions {
        background: false,
        chunk_records: 8,
        ..ledger::CompactOptions::default()
    };
    let ledger = Ledger::open_tuned(dir.path(), ledger::WriterOptions::default(), options).unwrap();
    assert_eq!(ledger.compact().unwrap().chunks, 2);
    ledger.close_blocking();
    let after = outputs();
    assert_eq!(before[1].lines().count(), 22);
    // verify's report counts stored values ("in N batches"), which compaction changes.
    let without_batches = |s: &str| {
        let (records, rest) = s.split_once(" in ").unwrap();
        format!("{records}{}", rest.split_once(';').unwrap().1)
    };
    assert_eq!(without_batches(&before[0]), without_batches(&after[0]));
    assert_eq!(before[1], after[1]);
}

#[test]
fn flipped_event_byte_inside_a_chunk() {
    assert_tampered_fails_at(build_compacted, 8, "edited record in a chunk", |dir| {
        edit_chunk(dir, 8, |records| {
            let last = records[5].event.len() - 1;
            records[5].event[last] ^= 0x80;
        });
    });
}

#[test]
fn flipped_time_inside_a_chunk() {
    assert_tampered_fails_at(build_compacted, 0, "edited time in a chunk", |dir| {
        edit_chunk(dir, 0, |records| records[3].time_ms ^= 1);
    });
}

#[test]
fn flipped_byte_of_a_chunks_compressed_body() {
    assert_tampered_fails_at(build_compacted, 8, "flipped compressed byte", |dir| {
        edit_tree(dir, |tree| {
            let mut value = tree.get(batch_key(8)).unwrap().unwrap().to_vec();
            let at = value.len() - 20;
            value[at] ^= 0x04;
            tree.insert(batch_key(8), value).unwrap();
        });
    });
}

#[test]
fn deleted_record_inside_a_chunk() {
    assert_tampered_fails_at(build_compacted, 8, "deleted record in a chunk", |dir| {
        edit_chunk(dir, 8, |records| {
            records.remove(4);
        });
    });
}

#[test]
fn deleted_chunk() {
    assert_tampered_fails_at(build_compacted, 0, "deleted chunk", |dir| {
        edit_tree(dir, |tree| {
            tree.remove(batch_key(0)).unwrap().unwrap();
        });
    });
}

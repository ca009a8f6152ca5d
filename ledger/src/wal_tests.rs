//! The write-ahead log: what a crash leaves in it is replayed exactly, and nothing else.
//! Frames are written here by hand (as a killed writer leaves them); the crash test in
//! `tests/ledger_crash.rs` kills a real writer.

use super::*;
use crate::record::{begin_batch, encode_event, finish_batch, push_record};
use pool_core::event::{BlockOrphaned, PaymentFailed};
use pool_core::{BlockId, EVENT_SCHEMA_VERSION};
use std::os::unix::fs::FileExt;

fn orphaned(n: u64) -> Event {
    Event::BlockOrphaned(BlockOrphaned {
        block_id: BlockId([n as u8; 32]),
        height: n,
    })
}

/// A stored batch of `orphaned(first..first + n)` chained onto `prev`, and its last record.
fn batch(prev: Head, first: u64, n: u64) -> (Vec<u8>, Head) {
    assert_eq!(prev.seq + 1, first, "test batches continue their prev");
    chained(prev.hash, first, n)
}

fn chained(prev: [u8; 32], first: u64, n: u64) -> (Vec<u8>, Head) {
    let mut out = begin_batch(0);
    let mut hash = prev;
    for seq in first..first + n {
        let event = encode_event(&orphaned(seq)).unwrap();
        hash = push_record(
            &mut out,
            &hash,
            seq,
            EVENT_SCHEMA_VERSION,
            1_700_000_000_000,
            &event,
        )
        .unwrap();
    }
    finish_batch(&mut out, n as u32);
    (
        out,
        Head {
            seq: first + n - 1,
            hash,
        },
    )
}

/// Writes frames one after another from offset 0 of a log file, as the writer does.
fn write_log(dir: &Path, file: &str, frames: &[wal::FrameBuf]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(file))
        .unwrap();
    let mut at = 0;
    for frame in frames {
        f.write_all_at(frame.bytes(), at).unwrap();
        at += frame.bytes().len() as u64;
    }
}

/// A closed ledger of three records (0..=2); returns its head.
fn ledger_of_three(dir: &Path) -> Head {
    let ledger = Ledger::open(dir).unwrap();
    let appended = ledger
        .append_batch_blocking(vec![orphaned(0), orphaned(1), orphaned(2)])
        .unwrap();
    ledger.close_blocking();
    Head {
        seq: 2,
        hash: appended[2].hash,
    }
}

fn seqs(ledger: &Ledger) -> Vec<u64> {
    ledger.read_from(0).map(|r| r.unwrap().seq).collect()
}

#[test]
fn a_clean_close_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of_three(dir.path());
    for name in wal::FILE_NAMES {
        assert!(wal::read_file(&dir.path().join(name)).unwrap().is_empty());
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(seqs(&ledger), vec![0, 1, 2]);
}

#[test]
fn durable_frames_past_the_store_are_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (a, a_head) = batch(head, 3, 2);
    let (b1, b1_head) = batch(a_head, 5, 2);
    let (b2, b2_head) = batch(b1_head, 7, 1);
    write_log(
        dir.path(),
        "wal.0",
        &[
            wal::encode_frame(9, 3, 2, &[a]),
            wal::encode_frame(9, 5, 3, &[b1, b2]),
        ],
    );
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(b2_head));
    assert_eq!(seqs(&ledger), (0..=7).collect::<Vec<_>>());
    assert_eq!(ledger.verify().unwrap().records, 8);
    // The chain goes on from the replayed records, and nothing is replayed twice.
    let next = ledger.append_blocking(orphaned(8)).unwrap();
    assert_eq!(next.seq, 8);
    ledger.close_blocking();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(seqs(&ledger), (0..=8).collect::<Vec<_>>());
    assert_eq!(ledger.verify().unwrap().records, 9);
}

#[test]
fn replay_stops_at_a_torn_frame() {
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (a, a_head) = batch(head, 3, 2);
    let (b, b_head) = batch(a_head, 5, 2);
    let (c, _) = batch(b_head, 7, 2);
    let mut torn = wal::encode_frame(4, 5, 2, &[b]);
    torn.bytes_mut()[wal::FRAME_HEADER_LEN + 20] ^= 0xff;
    write_log(
        dir.path(),
        "wal.0",
        &[
            wal::encode_frame(4, 3, 2, &[a]),
            torn,
            wal::encode_frame(4, 7, 2, &[c]),
        ],
    );
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(a_head));
    assert_eq!(seqs(&ledger), (0..=4).collect::<Vec<_>>());
    ledger.verify().unwrap();
}

#[test]
fn frames_that_do_not_continue_the_chain_are_not_replayed() {
    // A gap in the sequence.
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (gap, _) = chained(head.hash, 4, 2);
    write_log(dir.path(), "wal.0", &[wal::encode_frame(2, 4, 2, &[gap])]);
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(head));
    drop(ledger);

    // The right sequence number on a different chain.
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (other, _) = chained([7; 32], 3, 2);
    write_log(dir.path(), "wal.0", &[wal::encode_frame(2, 3, 2, &[other])]);
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(head));
    assert_eq!(ledger.verify().unwrap().records, 3);
}

#[test]
fn both_files_replay_in_generation_order() {
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (a, a_head) = batch(head, 3, 2);
    let (b, b_head) = batch(a_head, 5, 2);
    // The older generation (already stored records first) sits in wal.1.
    let (old, _) = chained(record::GENESIS_PREV_HASH, 0, 3);
    write_log(
        dir.path(),
        "wal.1",
        &[
            wal::encode_frame(11, 0, 3, &[old]),
            wal::encode_frame(11, 3, 2, &[a]),
        ],
    );
    write_log(dir.path(), "wal.0", &[wal::encode_frame(12, 5, 2, &[b])]);
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(b_head));
    assert_eq!(ledger.verify().unwrap().records, 7);
}

#[test]
fn frames_of_an_older_generation_behind_the_current_ones_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (a, a_head) = batch(head, 3, 2);
    let (stale, _) = batch(a_head, 5, 2);
    write_log(
        dir.path(),
        "wal.0",
        &[
            wal::encode_frame(8, 3, 2, &[a]),
            wal::encode_frame(7, 5, 2, &[stale]),
        ],
    );
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), Some(a_head));
}

#[test]
fn an_audit_sees_what_a_crash_left_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let head = ledger_of_three(dir.path());
    let (a, a_head) = batch(head, 3, 4);
    write_log(dir.path(), "wal.0", &[wal::encode_frame(1, 3, 4, &[a])]);
    let audit = Ledger::open_read_only(dir.path()).unwrap();
    let report = audit.verify().unwrap();
    assert_eq!(report.records, 7);
    assert_eq!(report.head, Some(a_head));
}

/// The smallest log files, and frames overlapping on their way to the disk.
fn small_log() -> WriterOptions {
    WriterOptions {
        wal_file_bytes: wal::MIN_FILE_BYTES,
        committers: 3,
        direct_io: true,
        cache_bytes: crate::DEFAULT_CACHE_BYTES,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_log_files_take_turns_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open_with(dir.path(), small_log()).unwrap();
    // ~70 bytes stored per record: 6,000 records fill the two 64 KiB files several times.
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250u64 {
                let n = t * 1_000 + i;
                if i % 10 == 0 {
                    ledger.append_batch(vec![orphaned(n); 3]).await.unwrap();
                } else {
                    ledger.append(orphaned(n)).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = 8 * (225 + 25 * 3);
    assert_eq!(ledger.head().map(|h| h.seq + 1), Some(total));
    for name in wal::FILE_NAMES {
        let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(len <= wal::MIN_FILE_BYTES, "{name} grew to {len} bytes");
    }
    ledger.close().await;
    let ledger = Ledger::open_with(dir.path(), small_log()).unwrap();
    assert_eq!(ledger.verify().unwrap().records, total);
    assert_eq!(ledger.read_from(0).count() as u64, total);
}

#[test]
fn an_event_larger_than_a_log_file_is_refused_and_the_ledger_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open_with(dir.path(), small_log()).unwrap();
    let huge = Event::PaymentFailed(PaymentFailed {
        payment_id: 1,
        reason: "x".repeat(100_000),
    });
    let err = ledger.append_blocking(huge).unwrap_err();
    assert!(matches!(err, LedgerError::Encode(_)), "{err}");
    assert!(err.to_string().contains("write-ahead log"), "{err}");
    assert_eq!(ledger.append_blocking(orphaned(0)).unwrap().seq, 0);
    // A large event that fits is stored whole.
    let big = Event::PaymentFailed(PaymentFailed {
        payment_id: 2,
        reason: "y".repeat(20_000),
    });
    assert_eq!(ledger.append_blocking(big.clone()).unwrap().seq, 1);
    ledger.close_blocking();
    let ledger = Ledger::open(dir.path()).unwrap();
    let last = ledger.read_from(1).next().unwrap().unwrap();
    assert_eq!(last.event, big);
}

#[test]
fn without_o_direct_the_log_commits_through_the_page_cache() {
    // Where the file system refuses O_DIRECT (older tmpfs, some network file systems) the log
    // writes with O_DSYNC alone; `direct_io: false` takes that path here.
    let dir = tempfile::tempdir().unwrap();
    let options = WriterOptions {
        direct_io: false,
        ..small_log()
    };
    let ledger = Ledger::open_with(dir.path(), options).unwrap();
    for n in 0..2_000u64 {
        assert_eq!(ledger.append_blocking(orphaned(n)).unwrap().seq, n);
    }
    ledger.close_blocking();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.verify().unwrap().records, 2_000);
}

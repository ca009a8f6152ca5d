//! Unit tests of the ledger: append, read back, verify, recover, lock.

use super::*;
use pool_core::event::{BlockOrphaned, PaymentFailed};
use pool_core::BlockId;

fn orphaned(n: u64) -> Event {
    Event::BlockOrphaned(BlockOrphaned {
        block_id: BlockId([n as u8; 32]),
        height: n,
    })
}

fn failed(n: u64) -> Event {
    Event::PaymentFailed(PaymentFailed {
        payment_id: n,
        reason: format!("reason {n}"),
    })
}

#[test]
fn appends_read_back_in_order_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), None);
    let a = ledger.append_blocking(orphaned(0)).unwrap();
    assert_eq!(a.seq, 0);
    let b = ledger
        .append_batch_blocking(vec![failed(1), orphaned(2)])
        .unwrap();
    assert_eq!(b.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        ledger.head(),
        Some(Head {
            seq: 2,
            hash: b[1].hash
        })
    );
    let records: Vec<Record> = ledger.read_from(0).map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].event, orphaned(0));
    assert_eq!(records[1].event, failed(1));
    assert_eq!(records[2].event, orphaned(2));
    assert_eq!(records[2].hash, b[1].hash);
    assert!(records.iter().all(|r| r.version == 1));
    let middle: Vec<u64> = ledger.read_range(1, 2).map(|r| r.unwrap().seq).collect();
    assert_eq!(middle, vec![1]);
    assert_eq!(ledger.read_from(3).count(), 0);
    let report = ledger.verify().unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(report.batches, 2);
    assert_eq!(report.head, ledger.head());
}

#[test]
fn genesis_hash_chains_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let a = ledger.append_blocking(orphaned(7)).unwrap();
    let r = ledger.read_from(0).next().unwrap().unwrap();
    let mut hashed = Vec::new();
    hashed.extend_from_slice(&0u64.to_be_bytes());
    hashed.extend_from_slice(&1u16.to_be_bytes());
    hashed.extend_from_slice(&r.time_ms.to_be_bytes());
    let event = bincode::serialize(&orphaned(7)).unwrap();
    hashed.extend_from_slice(&(event.len() as u32).to_be_bytes());
    hashed.extend_from_slice(&event);
    assert_eq!(record::chain_hash(&[0; 32], &hashed), a.hash);
}

#[test]
fn reopen_recovers_head_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    for n in 0..5 {
        ledger.append_blocking(orphaned(n)).unwrap();
    }
    let head = ledger.head();
    ledger.close_blocking();
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.head(), head);
    assert_eq!(ledger.append_blocking(failed(5)).unwrap().seq, 5);
    assert_eq!(ledger.verify().unwrap().records, 6);
}

#[test]
fn second_opener_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let _ledger = Ledger::open(dir.path()).unwrap();
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("is in use (is the pool running?)"));
    let err = Ledger::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
}

#[test]
fn read_only_open_of_a_missing_directory_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Ledger::open_read_only(&missing).unwrap_err();
    assert!(matches!(err, LedgerError::NotFound { .. }));
    assert!(!missing.exists());
}

#[test]
fn read_only_handle_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    Ledger::open(dir.path())
        .unwrap()
        .append_blocking(orphaned(1))
        .unwrap();
    let ledger = Ledger::open_read_only(dir.path()).unwrap();
    assert_eq!(ledger.head().map(|h| h.seq), Some(0));
    assert!(matches!(
        ledger.append_blocking(orphaned(2)),
        Err(LedgerError::ReadOnly)
    ));
}

#[test]
fn appends_after_close_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let other = ledger.clone();
    ledger.close_blocking();
    assert!(matches!(
        other.append_blocking(orphaned(1)),
        Err(LedgerError::Closed(_))
    ));
}

#[test]
fn unknown_version_is_a_clear_error() {
    let err = record::decode_event(2, &[]).unwrap_err();
    assert_eq!(err, Problem::UnknownVersion(2));
    assert!(err.to_string().contains("unknown event schema version 2"));
}

fn rewrite_batch(dir: &std::path::Path, key: u64, edit: impl FnOnce(&mut Vec<record::RawRecord>)) {
    let db = crate::open_db(dir).unwrap();
    let tree = db.open_tree(BATCH_TREE).unwrap();
    let value = tree.get(record::batch_key(key)).unwrap().unwrap();
    let mut records = record::decode_batch(&value).unwrap();
    edit(&mut records);
    tree.insert(record::batch_key(key), record::encode_batch(&records))
        .unwrap();
    db.flush().unwrap();
}

#[test]
fn corrupt_tail_refuses_appends_but_audit_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.append_blocking(orphaned(0)).unwrap();
    ledger
        .append_batch_blocking(vec![orphaned(1), failed(2)])
        .unwrap();
    ledger.close_blocking();
    rewrite_batch(dir.path(), 1, |records| records[1].event[5] ^= 1);
    let err = Ledger::open(dir.path()).unwrap_err();
    match &err {
        LedgerError::CorruptTail(v) => {
            assert_eq!(v.seq, 2);
            assert_eq!(v.problem, Problem::HashMismatch);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("refusing to append"));
    let audit = Ledger::open_read_only(dir.path()).unwrap();
    let bad = audit.verify().unwrap_err();
    assert_eq!(bad.seq, 2);
}

#[test]
fn verify_names_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger
        .append_batch_blocking((0..6).map(orphaned).collect())
        .unwrap();
    ledger.close_blocking();
    // A deleted record.
    rewrite_batch(dir.path(), 0, |records| {
        records.remove(3);
    });
    let audit = Ledger::open_read_only(dir.path()).unwrap();
    let bad = audit.verify().unwrap_err();
    assert_eq!(bad.seq, 3);
    assert_eq!(bad.problem, Problem::OutOfSequence { found: 4 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut rx = ledger.subscribe();
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..20u64 {
                seqs.push(ledger.append(failed(t * 1000 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..640).collect::<Vec<_>>());
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().map(|h| h.seq), Some(639));
    let report = ledger.verify().unwrap();
    assert_eq!(report.records, 640);
    assert!(report.batches < 640, "{} batches", report.batches);
    ledger.close().await;
}

#[test]
fn a_large_commit_is_stored_as_several_batches_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.append_blocking(orphaned(0)).unwrap();
    let events: Vec<Event> = (1..3001).map(failed).collect();
    let appended = ledger.append_batch_blocking(events.clone()).unwrap();
    assert_eq!(appended.first().unwrap().seq, 1);
    assert_eq!(appended.last().unwrap().seq, 3000);
    let report = ledger.verify().unwrap();
    assert_eq!(report.records, 3001);
    assert!(report.batches > 2, "{} batches", report.batches);
    let read: Vec<Event> = ledger.read_from(1).map(|r| r.unwrap().event).collect();
    assert_eq!(read, events);
    let one: Vec<Event> = ledger
        .read_range(2000, 2001)
        .map(|r| r.unwrap().event)
        .collect();
    assert_eq!(one, vec![failed(2000)]);
    ledger.close_blocking();
    let reopened = Ledger::open(dir.path()).unwrap();
    assert_eq!(reopened.head().map(|h| h.seq), Some(3000));
}

#[test]
fn parallel_and_sequential_verification_agree_on_every_corruption() {
    type Edit = fn(&mut Vec<record::RawRecord>);
    let edits: Vec<(u64, Edit)> = vec![
        (0, |r| r[3].event[0] ^= 1),
        (0, |r| r.swap(1, 2)),
        (0, |r| {
            r.remove(4);
        }),
        (8, |r| r[0].hash[31] ^= 1),
        (8, |r| r[0].seq = u64::MAX),
        (12, |r| r[0].version = 9),
        (12, |r| r.clear()),
    ];
    for (i, (key, edit)) in edits.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger
            .append_batch_blocking((0..8).map(orphaned).collect())
            .unwrap();
        ledger
            .append_batch_blocking((8..12).map(failed).collect())
            .unwrap();
        for n in 12..20 {
            ledger.append_blocking(orphaned(n)).unwrap();
        }
        ledger.close_blocking();
        rewrite_batch(dir.path(), key, edit);
        let audit = Ledger::open_read_only(dir.path()).unwrap();
        let parallel =
            verify::verify_tree(&audit.inner.store.get().unwrap().tree, None).unwrap_err();
        let sequential =
            verify::verify_sequential(&audit.inner.store.get().unwrap().tree, None).unwrap_err();
        assert_eq!(parallel, sequential, "edit {i}");
    }
}

#[test]
fn parallel_verification_reports_like_sequential_when_intact() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    for chunk in 0..30u64 {
        ledger
            .append_batch_blocking((0..(chunk % 7 + 1)).map(orphaned).collect())
            .unwrap();
    }
    let parallel = verify::verify_tree(&ledger.inner.store.get().unwrap().tree, None).unwrap();
    let sequential =
        verify::verify_sequential(&ledger.inner.store.get().unwrap().tree, None).unwrap();
    assert_eq!(parallel, sequential);
    assert_eq!(parallel.batches, 30);
    assert_eq!(parallel.head, ledger.head());
}

#[test]
fn handles_cross_threads_and_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Ledger>();
    send_sync::<LedgerError>();
    send::<RecordIter>();
}

#[test]
fn records_deleted_at_the_end_are_noticed_through_the_recorded_head() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut appended = Vec::new();
    for n in 0..6 {
        appended.push(ledger.append_blocking(orphaned(n)).unwrap());
    }
    ledger.close_blocking();
    let set_recorded = |head: Head| {
        let db = crate::open_db(dir.path()).unwrap();
        let tree = db.open_tree(HEAD_TREE).unwrap();
        tree.insert(record::HEAD_KEY, &record::encode_head(&head)[..])
            .unwrap();
        db.flush().unwrap();
    };
    // A recorded head behind the chain (a crash between the batch and the head) is fine.
    set_recorded(Head {
        seq: 3,
        hash: appended[3].hash,
    });
    assert_eq!(
        Ledger::open_read_only(dir.path())
            .unwrap()
            .verify()
            .unwrap()
            .records,
        6
    );
    // One that does not match the stored record is not.
    set_recorded(Head {
        seq: 3,
        hash: appended[2].hash,
    });
    let bad = Ledger::open_read_only(dir.path())
        .unwrap()
        .verify()
        .unwrap_err();
    assert_eq!((bad.seq, bad.problem), (3, Problem::HeadMismatch));
    // The last record deleted: the chain alone still verifies, the recorded head does not.
    set_recorded(Head {
        seq: 5,
        hash: appended[5].hash,
    });
    {
        let db = crate::open_db(dir.path()).unwrap();
        let tree = db.open_tree(BATCH_TREE).unwrap();
        tree.remove(record::batch_key(5)).unwrap().unwrap();
        db.flush().unwrap();
    }
    let audit = Ledger::open_read_only(dir.path()).unwrap();
    let bad = audit.verify().unwrap_err();
    assert_eq!(bad.seq, 5);
    assert_eq!(bad.problem, Problem::Truncated { recorded_head: 5 });
    assert!(bad.to_string().contains("deleted at the end"));
}

#[test]
fn a_snapshot_half_written_by_a_killed_process_does_not_make_the_ledger_unopenable() {
    // sled 0.34 reads `snap.*.generating` files on open and refuses a truncated one as corrupt;
    // a SIGKILL during snapshot generation leaves exactly that behind.
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut appended = Vec::new();
    for n in 0..5 {
        appended.push(ledger.append_blocking(orphaned(n)).unwrap());
    }
    ledger.close_blocking();
    let leftover = dir.path().join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&leftover, b"half a snapshot").unwrap();
    {
        let direct = sled::Config::new().path(dir.path()).open();
        assert!(
            matches!(direct, Err(sled::Error::Corruption { .. })),
            "sled itself refuses it: {direct:?}"
        );
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    assert!(!leftover.exists());
    assert_eq!(ledger.head().map(|h| h.seq), Some(4));
    assert_eq!(ledger.head().map(|h| h.hash), Some(appended[4].hash));
    ledger.verify().unwrap();
}

fn ten_values(dir: &Path) -> Ledger {
    let ledger = Ledger::open(dir).unwrap();
    for n in 0..10 {
        // One append at a time: one stored value each.
        ledger.append_blocking(orphaned(n)).unwrap();
    }
    ledger
}

#[test]
fn an_archived_and_dropped_prefix_verifies_from_the_base_and_joins_its_archive() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ten_values(dir.path());
    let whole = ledger.verify().unwrap();
    let cut = ledger.value_boundary(4).unwrap().unwrap();
    assert!(cut <= 4 && cut > 0);
    let out = dir.path().join("a.archive");
    let header = archive::write(&ledger, cut, b"snapshot", &out).unwrap();
    assert_eq!((header.first_seq, header.cut), (0, cut));
    let back = archive::verify(&out).unwrap();
    assert_eq!(back.header, header);
    assert_eq!(back.snapshot, b"snapshot");
    // Before the drop the ledger still holds the archive's records: it joins on its own copy.
    let hash_at = |s: u64| ledger.read_range(s, s + 1).next().map(|r| r.unwrap().hash);
    archive::check_join(&[header], None, hash_at).unwrap();
    assert!(archive::check_join(&[header], None, |_| Some([9; 32])).is_err());
    let base = ledger.drop_prefix(cut).unwrap();
    assert_eq!(base.seq, cut);
    assert_eq!(base.prev_hash, header.last_hash);
    assert!(matches!(
        ledger.read_from(0).next(),
        Some(Err(LedgerError::Corrupt(VerifyError {
            problem: Problem::Archived { .. },
            ..
        })))
    ));
    assert_eq!(ledger.read_from(cut).count() as u64, 10 - cut);
    let report = ledger.verify().unwrap();
    assert_eq!((report.first, report.records), (cut, 10 - cut));
    assert_eq!(report.head, whole.head);
    archive::check_join(&[header], ledger.base().unwrap(), |_| None).unwrap();
    // Dropping again at or below the base, or off a boundary, is refused.
    assert!(ledger.drop_prefix(cut).is_err());
    // The base survives a reopen, and appends go on.
    drop(ledger);
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.base().unwrap(), Some(base));
    ledger.append_blocking(orphaned(10)).unwrap();
    assert_eq!(ledger.verify().unwrap().records, 11 - cut);
    // A second archive continues the first; leaving one out breaks the join.
    let out2 = dir.path().join("b.archive");
    let second = archive::write(&ledger, 7, b"", &out2).unwrap();
    ledger.drop_prefix(7).unwrap();
    let base = ledger.base().unwrap();
    archive::check_join(&[header, second], base, |_| None).unwrap();
    assert!(archive::check_join(&[second], base, |_| None).is_err());
    assert!(archive::check_join(&[second, header], base, |_| None).is_err());
    assert!(archive::check_join(&[header], base, |_| None).is_err());
}

#[test]
fn every_flipped_byte_of_an_archive_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ten_values(dir.path());
    let out = dir.path().join("a.archive");
    archive::write(&ledger, 5, b"snapshot bytes", &out).unwrap();
    let good = std::fs::read(&out).unwrap();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&out, &bad).unwrap();
        assert!(archive::verify(&out).is_err(), "flip at {i} went unnoticed");
    }
    std::fs::write(&out, &good[..good.len() - 1]).unwrap();
    assert!(archive::verify(&out).is_err());
}

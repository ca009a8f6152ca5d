//! Tests of format 2 and the compactor: the chunk codec round-trips any records exactly, a
//! compacted ledger reads and verifies to the same records and hashes, and an edit inside a
//! chunk is caught.

use super::*;
use crate::chunk::{self, ChunkHeader};
use crate::record::{decode_batch, expand_value, RawRecord};
use pool_core::event::{
    JobCreated, LedgerAnchor, PaymentFailed, PayoutAddress, ShareAccepted, ShareWithWork,
    ShareWork, WorkerName,
};
use pool_core::{BlockId, Target, Work};
use proptest::prelude::*;

fn share(n: u64) -> Event {
    let share_target = Target::from_difficulty(1.0 + (n % 7) as f64).unwrap();
    Event::ShareAccepted(ShareAccepted {
        address: PayoutAddress(format!("bcrt1qminer{}", n % 13)),
        worker: WorkerName(format!("rig{}", n % 3)),
        share_target,
        // Every 50th share carries a weight that is not its target's work: stored as it is.
        weight: if n % 50 == 49 {
            Target::MAX.work()
        } else {
            share_target.work()
        },
        job_id: n / 10,
        height: 100 + n / 1000,
        network_target: Target::from_compact(0x207fffff).unwrap(),
        time_ms: 1_700_000_000_000 + n,
    })
}

/// The events of the chunk fixture (written before the work columns): shares and a
/// `PaymentFailed` every 97th.
fn event_before_work(n: u64) -> Event {
    if n % 97 == 5 {
        Event::PaymentFailed(PaymentFailed {
            payment_id: n,
            reason: format!("reason {n}"),
        })
    } else {
        share(n)
    }
}

/// What a miner submitted for share `n`: one extranonce1 per (address, worker) pair, except
/// that address 0's workers reconnect (a new extranonce1) now and then; a counter-like
/// extranonce2, the job's ntime (every 7th rolled), a scattered nonce, and half the shares
/// with BIP310 version bits rolled.
fn work(n: u64) -> ShareWork {
    let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ShareWork {
        extranonce1: vec![
            (n % 13) as u8,
            (n % 3) as u8,
            (n / 1000) as u8,
            u8::from(n % 13 == 0 && n % 200 > 100),
        ],
        extranonce2: ((n / 39) as u32).to_le_bytes().to_vec(),
        ntime: 1_700_000_000 + (n / 100) as u32 + u32::from(n % 7 == 0),
        nonce: (mixed >> 32) as u32,
        version: 0x2000_0000
            | if n % 2 == 0 {
                (mixed as u32) & 0x1fff_e000
            } else {
                0
            },
    }
}

fn job(n: u64) -> Event {
    Event::JobCreated(JobCreated {
        job_id: n / 10,
        height: 100 + n / 1000,
        prev_hash: BlockId([(n / 1000) as u8; 32]),
        coinbase1: vec![1, 0, 0, 0, 1, 0, 0, 0xaa, (n % 256) as u8],
        coinbase2: vec![0xff; 90],
        merkle_branch: vec![[1; 32], [(n % 256) as u8; 32]],
        version: 0x2000_0000,
        bits: 0x207f_ffff,
        ntime: 1_700_000_000 + (n / 100) as u32,
        anchor: (n > 0).then_some(LedgerAnchor {
            seq: n - 1,
            hash: [(n % 256) as u8; 32],
        }),
    })
}

/// The mix the compactor tests use: work shares, plain shares, a job every 10 records, a
/// `PaymentFailed` every 97th.
fn event(n: u64) -> Event {
    match n {
        n if n % 97 == 5 => event_before_work(n),
        n if n % 10 == 3 => job(n),
        n if n % 3 == 0 => share(n),
        n => {
            let Event::ShareAccepted(share) = share(n) else {
                unreachable!()
            };
            Event::ShareWithWork(ShareWithWork {
                share,
                work: work(n),
            })
        }
    }
}

/// Records chained from `prev` as a format-1 image, and as raw records.
fn image_of(
    prev: [u8; 32],
    first: u64,
    items: &[(u16, u64, Vec<u8>)],
) -> (Vec<u8>, Vec<RawRecord>) {
    let mut image = record::begin_batch(0);
    let mut prev = prev;
    for (i, (version, time, event)) in items.iter().enumerate() {
        prev = record::push_record(&mut image, &prev, first + i as u64, *version, *time, event)
            .unwrap();
    }
    record::finish_batch(&mut image, items.len() as u32);
    let records = decode_batch(&image).unwrap();
    (image, records)
}

fn arb_share() -> impl Strategy<Value = ShareAccepted> {
    (
        "[a-z0-9]{0,40}",
        "\\PC{0,8}",
        any::<[u8; 32]>(),
        any::<bool>(),
        any::<[u8; 32]>(),
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>(), any::<u64>()),
    )
        .prop_map(
            |(address, worker, target, derived, weight, (job, height, net, time))| {
                let share_target = Target::from_be_bytes(target);
                ShareAccepted {
                    address: PayoutAddress(address),
                    worker: WorkerName(worker),
                    share_target,
                    weight: if derived {
                        share_target.work()
                    } else {
                        Work::from_u256(Target::from_be_bytes(weight).as_u256())
                    },
                    job_id: job,
                    height,
                    network_target: Target::from_be_bytes(net),
                    time_ms: time,
                }
            },
        )
}

fn arb_share_bytes() -> impl Strategy<Value = Vec<u8>> {
    arb_share().prop_map(|s| record::encode_event(&Event::ShareAccepted(s)).unwrap())
}

/// Work shares; few distinct extranonce1s, so the "same as this worker's last" entries occur.
fn arb_share_with_work_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        arb_share(),
        prop_oneof![
            3 => (0u8..3).prop_map(|n| vec![n; 4]),
            1 => prop::collection::vec(any::<u8>(), 0..9),
        ],
        prop::collection::vec(any::<u8>(), 0..17),
        prop_oneof![any::<u32>(), 1_700_000_000u32..1_700_000_100],
        any::<u32>(),
        prop_oneof![Just(0x2000_0000u32), any::<u32>()],
    )
        .prop_map(|(share, extranonce1, extranonce2, ntime, nonce, version)| {
            record::encode_event(&Event::ShareWithWork(ShareWithWork {
                share,
                work: ShareWork {
                    extranonce1,
                    extranonce2,
                    ntime,
                    nonce,
                    version,
                },
            }))
            .unwrap()
        })
}

fn arb_job_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()),
        prop::collection::vec(any::<u8>(), 0..80),
        prop::collection::vec(any::<u8>(), 0..120),
        prop::collection::vec(any::<[u8; 32]>(), 0..4),
        any::<(u32, u32, u32)>(),
        prop::option::of(any::<(u64, [u8; 32])>()),
    )
        .prop_map(
            |(
                (job_id, height, prev),
                coinbase1,
                coinbase2,
                merkle_branch,
                (v, bits, t),
                anchor,
            )| {
                record::encode_event(&Event::JobCreated(JobCreated {
                    job_id,
                    height,
                    prev_hash: BlockId(prev),
                    coinbase1,
                    coinbase2,
                    merkle_branch,
                    version: v,
                    bits,
                    ntime: t,
                    anchor: anchor.map(|(seq, hash)| LedgerAnchor { seq, hash }),
                }))
                .unwrap()
            },
        )
}

fn arb_item() -> impl Strategy<Value = (u16, u64, Vec<u8>)> {
    (
        prop_oneof![Just(1u16), any::<u16>()],
        any::<u64>(),
        prop_oneof![
            4 => arb_share_bytes(),
            4 => arb_share_with_work_bytes(),
            1 => arb_job_bytes(),
            // Anything else, including bytes that are almost a share.
            1 => prop::collection::vec(any::<u8>(), 0..200),
            1 => arb_share_bytes().prop_map(|mut b| { b.pop(); b }),
            1 => arb_share_with_work_bytes().prop_map(|mut b| { b.pop(); b }),
            1 => arb_share_with_work_bytes().prop_map(|mut b| { b.push(0); b }),
        ],
    )
}

proptest! {
    #[test]
    fn chunks_round_trip_any_records(
        prev in any::<[u8; 32]>(),
        first in 0u64..1 << 40,
        items in prop::collection::vec(arb_item(), 1..60),
    ) {
        let (image, records) = image_of(prev, first, &items);
        let chunk = chunk::encode(&records, &prev).unwrap();
        let header = ChunkHeader::parse(&chunk).unwrap();
        prop_assert_eq!(header.first_seq, first);
        prop_assert_eq!(header.count as usize, items.len());
        prop_assert_eq!(header.last_hash, records.last().unwrap().hash);
        prop_assert_eq!(&expand_value(&chunk).unwrap()[..], &image[..]);
        prop_assert_eq!(record::value_tail(&chunk).unwrap(),
            record::value_tail(&image).unwrap());
    }
}

#[test]
fn a_chunk_with_an_edited_record_or_header_does_not_expand() {
    let items: Vec<(u16, u64, Vec<u8>)> = (0..300)
        .map(|n| {
            (
                1,
                1_700_000_000_000 + n,
                record::encode_event(&event(n)).unwrap(),
            )
        })
        .collect();
    let prev = [9u8; 32];
    let (_, records) = image_of(prev, 1000, &items);
    let good = chunk::encode(&records, &prev).unwrap();
    assert!(chunk::expand(&good).is_ok());
    // An edited record, re-encoded with the stored last hash kept: caught on expansion.
    let mut edited = records.clone();
    edited[17].time_ms += 1;
    let bad = chunk::encode(&edited, &prev).unwrap();
    assert_eq!(chunk::expand(&bad), Err(Problem::HashMismatch));
    // Header fields: previous hash, first seq, last hash (count: a malformed body).
    for at in [13, 1 + 7, 45] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        assert_eq!(chunk::expand(&bad), Err(Problem::HashMismatch), "byte {at}");
    }
    let mut bad = good.clone();
    bad[12] ^= 1;
    assert!(chunk::expand(&bad).is_err());
    // Any byte of the compressed body.
    for at in (chunk::CHUNK_HEADER_LEN..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        assert!(chunk::expand(&bad).is_err(), "body byte {at}");
    }
}

fn no_background(chunk_records: u64) -> CompactOptions {
    CompactOptions {
        background: false,
        chunk_records,
        ..CompactOptions::default()
    }
}

/// A ledger of `n` records appended in commits of 1 to 40 records.
fn build(dir: &std::path::Path, n: u64, chunk_records: u64) -> Ledger {
    let ledger =
        Ledger::open_tuned(dir, WriterOptions::default(), no_background(chunk_records)).unwrap();
    let mut seq = 0;
    while seq < n {
        let take = (seq % 40 + 1).min(n - seq);
        ledger
            .append_batch_blocking((seq..seq + take).map(event).collect())
            .unwrap();
        seq += take;
    }
    ledger
}

fn stored_formats(ledger: &Ledger) -> (u64, u64) {
    let (mut batches, mut chunks) = (0, 0);
    for entry in ledger.inner.store.get().unwrap().tree.iter() {
        let (_, v) = entry.unwrap();
        if record::is_chunk(&v) {
            chunks += 1;
        } else {
            batches += 1;
        }
    }
    (batches, chunks)
}

#[test]
fn compaction_replaces_values_and_reads_and_verify_see_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = build(dir.path(), 3_000, 500);
    let before: Vec<Record> = ledger.read_from(0).map(Result::unwrap).collect();
    let verified = ledger.verify().unwrap();
    let (batches_before, _) = stored_formats(&ledger);
    // A reader that started before the compaction and goes on after it.
    let mut early = ledger.read_from(10);
    assert_eq!(early.next().unwrap().unwrap().seq, 10);

    let report = ledger.compact().unwrap();
    assert_eq!(report.chunks, 5, "{report:?}");
    assert!(report.records >= 2_500 && report.records < 3_000);
    assert_eq!(report.refused, 0);
    assert!(report.bytes_after * 10 < report.bytes_before, "{report:?}");
    let (batches, chunks) = stored_formats(&ledger);
    assert_eq!(chunks, 5);
    assert_eq!(batches + report.batches, batches_before);

    let rest: Vec<Record> = early.map(Result::unwrap).collect();
    assert_eq!(rest, before[11..]);
    let after: Vec<Record> = ledger.read_from(0).map(Result::unwrap).collect();
    assert_eq!(after, before);
    for from in [0, 1, 499, 500, 777, 2_999] {
        let part: Vec<Record> = ledger
            .read_range(from, from + 30)
            .map(Result::unwrap)
            .collect();
        assert_eq!(part, before[from as usize..(from as usize + 30).min(3_000)]);
    }
    let report2 = ledger.verify().unwrap();
    assert_eq!(report2.records, verified.records);
    assert_eq!(report2.head, verified.head);
    assert_eq!(report2.batches, batches + chunks);
    // Nothing more to do until more records come.
    assert_eq!(ledger.compact().unwrap().chunks, 0);
    ledger.close_blocking();

    // Reopened: the chain continues, compaction resumes after the chunks.
    let ledger =
        Ledger::open_tuned(dir.path(), WriterOptions::default(), no_background(500)).unwrap();
    ledger
        .append_batch_blocking((3_000..3_600).map(event).collect())
        .unwrap();
    let more = ledger.compact().unwrap();
    assert!(more.chunks >= 1, "{more:?}");
    assert!(report.records + more.records > 3_600 - 540);
    let all: Vec<Record> = ledger.read_from(0).map(Result::unwrap).collect();
    assert_eq!(all[..3_000], before[..]);
    assert_eq!(ledger.verify().unwrap().records, 3_600);
    ledger.close_blocking();

    // An audit sees the same.
    let audit = Ledger::open_read_only(dir.path()).unwrap();
    assert_eq!(audit.verify().unwrap().records, 3_600);
    assert!(matches!(audit.compact(), Err(LedgerError::ReadOnly)));
}

#[test]
fn a_fully_compacted_ledger_reopens_and_the_background_compactor_runs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = build(dir.path(), 1_000, 100);
        ledger.close_blocking();
    }
    let options = CompactOptions {
        background: true,
        chunk_records: 100,
        interval: Duration::from_millis(20),
    };
    let ledger = Ledger::open_tuned(dir.path(), WriterOptions::default(), options).unwrap();
    let started = Instant::now();
    while stored_formats(&ledger).1 < 9 {
        assert!(started.elapsed() < Duration::from_secs(20), "no compaction");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ledger.verify().unwrap().records, 1_000);
    ledger.close_blocking();
    // The tail may be a chunk now: open checks it and continues the chain.
    let ledger =
        Ledger::open_tuned(dir.path(), WriterOptions::default(), no_background(100)).unwrap();
    ledger.append_blocking(event(1_000)).unwrap();
    assert_eq!(ledger.verify().unwrap().records, 1_001);
}

#[test]
fn verify_names_the_first_record_of_an_edited_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = build(dir.path(), 1_200, 300);
    ledger.compact().unwrap();
    let chunks: Vec<(u64, Vec<u8>)> = ledger
        .inner
        .store
        .get()
        .unwrap()
        .tree
        .iter()
        .map(Result::unwrap)
        .filter(|(_, v)| record::is_chunk(v))
        .map(|(k, v)| (record::key_seq(&k).unwrap(), v.to_vec()))
        .collect();
    assert!(chunks.len() >= 3);
    let (key, value) = chunks[1].clone();
    let header = ChunkHeader::parse(&value).unwrap();
    let mut records = decode_batch(&value).unwrap();
    records[5].event[10] ^= 1;
    let edited = chunk::encode(&records, &header.prev_hash).unwrap();
    ledger
        .inner
        .store
        .get()
        .unwrap()
        .tree
        .insert(record::batch_key(key), edited)
        .unwrap();
    let err = ledger.verify().unwrap_err();
    assert_eq!(err.seq, key);
    assert_eq!(err.problem, Problem::HashMismatch);
    assert_eq!(
        verify::verify_sequential(&ledger.inner.store.get().unwrap().tree, None).unwrap_err(),
        err
    );
    let read: Result<Vec<Record>, _> = ledger.read_from(0).collect();
    assert!(matches!(read, Err(LedgerError::Corrupt(e)) if e.seq == key));
}

#[test]
fn an_archive_of_compacted_chunks_reads_back_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = build(dir.path(), 1_500, 500);
    ledger.compact().unwrap();
    let (_, chunks) = stored_formats(&ledger);
    assert!(chunks >= 2, "{chunks} chunks");
    let cut = ledger.value_boundary(1_200).unwrap().unwrap();
    assert!(cut >= 1_000, "cut {cut}");
    let out = dir.path().join("chunks.archive");
    crate::archive::write(&ledger, cut, b"snapshot", &out).unwrap();
    let expected: Vec<Record> = ledger.read_range(0, cut).map(Result::unwrap).collect();
    let mut reader = crate::archive::ArchiveReader::open(&out).unwrap();
    let mut read = Vec::new();
    while let Some(records) = reader.next_records().unwrap() {
        read.extend(records);
    }
    assert_eq!(read, expected);
    assert_eq!(reader.finish().unwrap(), b"snapshot");
    crate::archive::verify(&out).unwrap();
}

/// The chunk of [`fixture_chunk_records`], as the format-2 codec wrote it before the work
/// columns (`ShareWithWork`, issue #18) were added: `ledger/testdata/chunk-v2-shares.bin`.
fn fixture_chunk_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/chunk-v2-shares.bin")
}

/// 300 records from seq 1000 chained onto `[9; 32]`: [`event_before_work`], shares (kind 1,
/// every 50th kind 2) and a raw `PaymentFailed` every 97th.
fn fixture_chunk_records() -> ([u8; 32], Vec<u8>, Vec<RawRecord>) {
    let items: Vec<(u16, u64, Vec<u8>)> = (0..300)
        .map(|n| {
            (
                1,
                1_700_000_000_000 + n,
                record::encode_event(&event_before_work(n)).unwrap(),
            )
        })
        .collect();
    let prev = [9u8; 32];
    let (image, records) = image_of(prev, 1000, &items);
    (prev, image, records)
}

/// A chunk written by the codec before the work columns still expands to exactly its records
/// (and the codec still writes such records the same way, byte for byte).
#[test]
fn a_chunk_written_before_the_work_columns_expands_byte_exactly() {
    let stored = std::fs::read(fixture_chunk_path()).unwrap();
    let (prev, image, records) = fixture_chunk_records();
    assert_eq!(chunk::expand(&stored).unwrap(), image);
    assert_eq!(chunk::encode(&records, &prev).unwrap(), stored);
}

/// Writes the fixture; run on the codec the fixture is meant to pin (never after a change to
/// it): `LEDGER_WRITE_TESTDATA=1 cargo test -p ledger -- --ignored write_chunk_fixture`.
#[test]
#[ignore]
fn write_chunk_fixture() {
    if std::env::var_os("LEDGER_WRITE_TESTDATA").is_none() {
        eprintln!("set LEDGER_WRITE_TESTDATA=1 to rewrite ledger/testdata/chunk-v2-shares.bin");
        return;
    }
    let (prev, _, records) = fixture_chunk_records();
    let path = fixture_chunk_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, chunk::encode(&records, &prev).unwrap()).unwrap();
}

/// Work shares round-trip through a chunk (the extranonce1 "same as this worker's last" entries,
/// reconnects, rolled ntimes and versions), and their work costs a few bytes a share in a chunk:
/// what is left is mostly the nonce, which no codec compresses.
#[test]
fn work_shares_round_trip_and_cost_a_few_bytes_in_a_chunk() {
    let (n, prev) = (16_384u64, [3u8; 32]);
    let chunk_of = |with_work: bool| {
        let items: Vec<(u16, u64, Vec<u8>)> = (0..n)
            .map(|i| {
                let Event::ShareAccepted(share) = share(i) else {
                    unreachable!()
                };
                let event = if with_work {
                    Event::ShareWithWork(ShareWithWork {
                        share,
                        work: work(i),
                    })
                } else {
                    Event::ShareAccepted(share)
                };
                (
                    1,
                    1_700_000_000_000 + i,
                    record::encode_event(&event).unwrap(),
                )
            })
            .collect();
        let (image, records) = image_of(prev, 0, &items);
        let chunk = chunk::encode(&records, &prev).unwrap();
        assert_eq!(chunk::expand(&chunk).unwrap(), image);
        chunk.len() as f64 / n as f64
    };
    let (plain, with_work) = (chunk_of(false), chunk_of(true));
    let cost = with_work - plain;
    // Format 1 spends 36 bytes a share on this work (4-byte extranonces).
    assert!(
        cost > 0.0 && cost < 8.0,
        "{plain:.2} -> {with_work:.2} B/share"
    );
}

/// An edit of any work field inside a chunk is caught on expansion.
#[test]
fn an_edited_work_field_in_a_chunk_is_caught() {
    let items: Vec<(u16, u64, Vec<u8>)> = (0..200)
        .map(|n| {
            (
                1,
                1_700_000_000_000 + n,
                record::encode_event(&event(n)).unwrap(),
            )
        })
        .collect();
    let prev = [5u8; 32];
    let (image, records) = image_of(prev, 0, &items);
    assert_eq!(
        chunk::expand(&chunk::encode(&records, &prev).unwrap()).unwrap(),
        image
    );
    let Event::ShareWithWork(original) = event(1) else {
        panic!("record 1 is not a work share")
    };
    let edits: [fn(&mut ShareWork); 5] = [
        |w| w.extranonce1[0] ^= 1,
        |w| w.extranonce2.push(0),
        |w| w.ntime += 1,
        |w| w.nonce ^= 1,
        |w| w.version ^= 1 << 13,
    ];
    for edit in edits {
        let mut w = original.clone();
        edit(&mut w.work);
        let mut edited = records.clone();
        edited[1].event = record::encode_event(&Event::ShareWithWork(w)).unwrap();
        let bad = chunk::encode(&edited, &prev).unwrap();
        assert_eq!(chunk::expand(&bad), Err(Problem::HashMismatch));
    }
}

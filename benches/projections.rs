//! Projection benchmarks: PPLNS credits for one block over a window of 1,000,000 shares; folding
//! 10,000,000 decoded share events into balances; a full replay from a ledger on disk, measured
//! next to the ledger's own read-and-verify of the same records, with a same-run summary of the
//! ratio.
//!
//! Run: `cargo bench --bench projections` (release). Targets: window credits < 50 ms; folding
//! >= 2,000,000 events/s; replay >= 80 % of the ledger's read-and-verify rate.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pool_core::event::{
    BlockFound, BlockMatured, PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};
use projections::{Projection, ProjectionConfig};
use std::time::{Duration, Instant};

const ADDRESSES: u64 = 1_000;

fn address(i: u64) -> PayoutAddress {
    PayoutAddress(format!("bcrt1qminer{:06}xxxxxxxxxxxxxxxxxxxxxxxxxx", i))
}

/// Share targets of difficulty 1.000 to 1.999 and their works.
fn share_targets() -> Vec<(Target, Work)> {
    (0..1_000)
        .map(|k| {
            let t = Target::from_difficulty(1.0 + f64::from(k) / 1_000.0).unwrap();
            (t, t.work())
        })
        .collect()
}

/// A share event of a scattered miner with one of `targets`.
fn share(i: u64, targets: &[(Target, Work)]) -> Event {
    // A cheap deterministic mix, so consecutive shares come from scattered miners.
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let miner = mixed % ADDRESSES;
    let (share_target, weight) = targets[((mixed >> 10) % targets.len() as u64) as usize];
    Event::ShareAccepted(ShareAccepted {
        address: address(miner),
        worker: WorkerName(format!("rig{}", mixed % 3)),
        share_target,
        weight,
        job_id: i / 1_000,
        height: 1_000,
        network_target: Target::DIFF1,
        time_ms: 1_700_000_000_000 + i * 5,
    })
}

fn block(n: u64, network_target: Target) -> Event {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    Event::BlockFound(BlockFound {
        height: 1_000 + n,
        block_id: BlockId(id),
        reward: Sats(312_500_000),
        network_target,
        finder: address(n % ADDRESSES),
        worker: WorkerName("rig0".into()),
        time_ms: 1_700_000_000_000 + n,
    })
}

fn pplns_window(c: &mut Criterion) {
    // 1,200,000 shares; the block's window (1 × its work) holds the last ~1,000,000.
    let targets = share_targets();
    let mut p = Projection::new(ProjectionConfig::default());
    let mut seq = 0;
    let mut window_weight = Work::ZERO;
    let total = 1_200_000u64;
    let mut events = vec![Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: 1,
            window_denominator: 1,
        },
        fee_bps: 100,
        fee_address: address(ADDRESSES + 1),
        network_fee_payer: pool_core::event::NetworkFeePayer::Pool,
    })];
    for i in 0..total {
        let e = share(i, &targets);
        if let (true, Event::ShareAccepted(s)) = (i >= total - 1_000_000, &e) {
            window_weight += s.weight;
        }
        events.push(e);
    }
    // A block whose work is (to float precision) the weight of the last 1,000,000 shares.
    let block_target = Target::from_difficulty(window_weight.as_difficulty()).unwrap();
    for e in &events {
        p.apply(seq, e).unwrap();
        seq += 1;
    }
    let found = block(1, block_target);
    let mut group = c.benchmark_group("projections");
    group.sample_size(20);
    group.bench_function("pplns_credits_1m_share_window", |b| {
        b.iter_batched(
            || p.clone(),
            |mut p| {
                p.apply(seq, &found).unwrap();
                p
            },
            BatchSize::LargeInput,
        )
    });
    let mut done = p.clone();
    done.apply(seq, &found).unwrap();
    let credited = done.blocks()[0].credits.len();
    println!("pplns window: {credited} addresses credited over ~1,000,000 shares");
    group.finish();
}

fn fold_shares(c: &mut Criterion) {
    const TOTAL: u64 = 10_000_000;
    const BATCH: u64 = 100_000;
    // One batch of decoded events, folded 100 times with rising sequence numbers.
    let targets = share_targets();
    let batch: Vec<Event> = (0..BATCH).map(|i| share(i, &targets)).collect();
    let mut group = c.benchmark_group("projections");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(TOTAL));
    group.bench_function("fold_10m_share_events", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let mut p = Projection::new(ProjectionConfig::default());
                let start = Instant::now();
                let mut seq = 0;
                for _ in 0..TOTAL / BATCH {
                    for e in &batch {
                        p.apply(seq, e).unwrap();
                        seq += 1;
                    }
                }
                elapsed += start.elapsed();
                assert_eq!(p.share_count(), TOTAL);
                drop(p);
            }
            elapsed
        })
    });
    group.finish();
}

fn replay_from_ledger(c: &mut Criterion) {
    const RECORDS: u64 = 500_000;
    let targets = share_targets();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(dir.path()).unwrap();
    let mut next_block = 0;
    let mut written = 0u64;
    while written < RECORDS {
        let mut events = Vec::with_capacity(10_000);
        for i in written..(written + 10_000).min(RECORDS) {
            // A block every 10,000 records, and its maturity 200,000 records later.
            if i % 10_000 == 9_999 {
                next_block += 1;
                events.push(block(next_block, Target::DIFF1));
            } else if i % 10_000 == 9_998 && next_block > 20 {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(next_block - 20u64).to_le_bytes());
                events.push(Event::BlockMatured(BlockMatured {
                    block_id: BlockId(id),
                    height: 1_000 + next_block - 20,
                }));
            } else {
                events.push(share(i, &targets));
            }
        }
        written += events.len() as u64;
        ledger.append_batch_blocking(events).unwrap();
    }
    let mut group = c.benchmark_group("projections");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("ledger_read_and_verify_500k", |b| {
        b.iter(|| {
            let report = ledger.verify().unwrap();
            assert_eq!(report.records, RECORDS);
        })
    });
    group.bench_function("replay_from_ledger_500k", |b| {
        b.iter(|| replay(&ledger, RECORDS))
    });
    group.finish();
    // The same comparison outside criterion, alternating the two so a change in the machine's
    // load hits both alike (best of 5 each).
    let (mut verify, mut replayed) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        verify.push(timed(|| {
            ledger.verify().unwrap();
        }));
        replayed.push(timed(|| drop(replay(&ledger, RECORDS))));
    }
    let rate = |d: &[Duration]| RECORDS as f64 / d.iter().min().unwrap().as_secs_f64();
    let (verify, replayed) = (rate(&verify), rate(&replayed));
    println!("ledger read-and-verify, {RECORDS} records: {verify:>10.0} records/s");
    println!("replay (read_from(0) + apply):             {replayed:>10.0} records/s");
    println!("ratio replay / read-and-verify: {:.2}", replayed / verify);
    ledger.close_blocking();
}

/// A full replay: every record decoded and folded.
fn replay(ledger: &ledger::Ledger, records: u64) -> Projection {
    let mut p = Projection::new(ProjectionConfig::default());
    for record in ledger.read_from(0) {
        let record = record.unwrap();
        p.apply(record.seq, &record.event).unwrap();
    }
    assert_eq!(p.next_seq(), records);
    p
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

criterion_group!(benches, pplns_window, fold_shares, replay_from_ledger);
criterion_main!(benches);

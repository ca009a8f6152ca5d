//! Projection benchmarks: PPLNS credits for one block over a window of 1,000,000 shares; folding
//! 10,000,000 decoded share events into balances; folding the ledger of a long-running PROP pool
//! (10,000 blocks with their lifecycle), next to the whole-ledger walk of PROP rounds the fold
//! replaced; a full replay from a ledger on disk, measured next to the ledger's own
//! read-and-verify of the same records, with a same-run summary of the ratio.
//!
//! Run: `cargo bench --bench projections` (release). Targets: window credits < 50 ms; folding
//! >= 2,000,000 events/s; replay >= 80 % of the ledger's read-and-verify rate.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pool_core::event::{
    BlockCandidate, BlockFound, BlockMatured, BlockOrphaned, BlockReinstated, NetworkFeePayer,
    PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
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

/// A long-running PROP pool's ledger: 10,000 blocks, each a candidate after 8 shares and found
/// 2 shares later (10 shares of scattered miners per block); as the chain watcher would record it,
/// every tenth block orphaned 3 blocks later (its round rolls into the next block's) and every
/// hundredth of those reinstated 2 blocks after that (it takes its round back), and every block
/// on the chain matured 100 blocks after it was found.
fn lifecycle_ledger() -> Vec<Event> {
    const BLOCKS: u64 = 10_000;
    const MATURITY: u64 = 100;
    let targets = share_targets();
    let id = |n: u64| {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_le_bytes());
        BlockId(id)
    };
    let orphaned = |n: u64| n % 10 == 0;
    let reinstated = |n: u64| n % 1_000 == 0;
    let mut events = vec![Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Prop,
        fee_bps: 100,
        fee_address: address(ADDRESSES + 1),
        network_fee_payer: NetworkFeePayer::Miners,
    })];
    let mut shares = 0..;
    for n in 0..BLOCKS {
        events.extend((&mut shares).take(8).map(|i| share(i, &targets)));
        let candidate = BlockCandidate {
            height: 1_000 + n,
            block_id: id(n),
            reward: Sats(312_500_000),
            network_target: Target::DIFF1,
            finder: address(n % ADDRESSES),
            worker: WorkerName("rig0".into()),
            time_ms: 1_700_000_000_000 + n,
            block: vec![0; 200],
        };
        events.push(Event::BlockCandidate(candidate.clone()));
        events.extend((&mut shares).take(2).map(|i| share(i, &targets)));
        events.push(Event::BlockFound(candidate.found(1_700_000_000_000 + n)));
        let back = |k: u64| n.checked_sub(k).map(|m| (m, id(m), 1_000 + m));
        if let Some((_, block_id, height)) = back(3).filter(|(m, ..)| orphaned(*m)) {
            events.push(Event::BlockOrphaned(BlockOrphaned { block_id, height }));
        }
        if let Some((_, block_id, height)) = back(5).filter(|(m, ..)| reinstated(*m)) {
            events.push(Event::BlockReinstated(BlockReinstated { block_id, height }));
        }
        let on_chain = |m: &u64| !orphaned(*m) || reinstated(*m);
        if let Some((_, block_id, height)) = back(MATURITY).filter(|(m, ..)| on_chain(m)) {
            events.push(Event::BlockMatured(BlockMatured { block_id, height }));
        }
    }
    events
}

fn fold_blocks_with_lifecycle(c: &mut Criterion) {
    let events = lifecycle_ledger();
    let fold_with = |mut p: Projection| {
        for (seq, e) in events.iter().enumerate() {
            p.apply(seq as u64, e).unwrap();
        }
        p
    };
    let fold = || fold_with(Projection::new(ProjectionConfig::default()));
    let full_walk = || fold_with(Projection::with_full_round_walk(ProjectionConfig::default()));
    let folded = fold();
    let totals = folded.pool_totals();
    assert!(folded.anomalies().is_empty());
    assert_eq!(totals.blocks_orphaned, 990);
    assert_eq!(totals.blocks_immature, 90);
    let mut group = c.benchmark_group("projections");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("fold_10k_prop_blocks_with_lifecycle", |b| b.iter(fold));
    group.finish();
    // The whole-ledger walk it replaced, once (it takes seconds), between two folds; and the
    // same state bytes at the end.
    let before = timed(|| drop(fold()));
    let mut walked = None;
    let full = timed(|| walked = Some(full_walk()));
    let after = timed(|| drop(fold()));
    let same = walked.unwrap().state_bytes().unwrap() == folded.state_bytes().unwrap();
    assert!(same, "the fold and the whole-ledger walk differ");
    let fold_ms = before.min(after).as_secs_f64() * 1e3;
    println!(
        "fold of a PROP pool's ledger ({} events, 10,000 blocks with their lifecycle): {fold_ms:>8.1} ms",
        events.len()
    );
    println!(
        "the same with the whole-ledger walk of PROP rounds (before):                 {:>8.1} ms",
        full.as_secs_f64() * 1e3
    );
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

criterion_group!(
    benches,
    pplns_window,
    fold_shares,
    fold_blocks_with_lifecycle,
    replay_from_ledger
);
criterion_main!(benches);

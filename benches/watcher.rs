//! Chain watcher benchmark: the catch-up after downtime over 10,000 found blocks, all immature in
//! the ledger while the node's tip moved past their maturity and every tenth was reorged out,
//! next to the plain fold of the same ledger's events, in the same run.
//!
//! The catch-up is what the watcher does in the pool process once the node has answered: the
//! watched blocks from the projection, the heights to read, the plan, and the planned events
//! applied to the projection (9,000 `BlockMatured`, 1,000 `BlockOrphaned`). The node's replies
//! are an in-memory chain: this measures the pool's side, not the RPC round trips. The plan
//! alone (no apply) is measured too, to tell the watcher's cost from the projection's.
//!
//! Run: `cargo bench --bench watcher -- --warm-up-time 1 --measurement-time 5`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use payout::watcher::{plan, watched_blocks, BestChain};
use pool_core::event::{BlockFound, PayoutAddress, ShareAccepted, WorkerName};
use pool_core::{BlockId, Event, Sats, Target};
use projections::{BlockStatus, Projection, ProjectionConfig};
use std::time::{Duration, Instant};

const BLOCKS: u64 = 10_000;
const SHARES_PER_BLOCK: u64 = 10;
const ADDRESSES: u64 = 100;
const FIRST_HEIGHT: u64 = 1_000;
const MATURITY: u64 = 100;
/// Every this many found blocks, one lost to a reorg.
const ORPHAN_EVERY: u64 = 10;

fn address(i: u64) -> PayoutAddress {
    PayoutAddress(format!("bcrt1qminer{:06}xxxxxxxxxxxxxxxxxxxxxxxxxx", i))
}

fn block_id(height: u64, branch: u8) -> BlockId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&height.to_le_bytes());
    id[31] = branch;
    BlockId(id)
}

/// The ledger: shares of scattered miners and a found block after every `SHARES_PER_BLOCK`.
fn ledger_events() -> Vec<Event> {
    // Block work 8: the default PPLNS window (2 x block work) holds the last 16 shares.
    let block_target = Target::from_difficulty(8.0 * Target::MAX.work().as_difficulty()).unwrap();
    let mut events = Vec::new();
    for n in 0..BLOCKS {
        for s in 0..SHARES_PER_BLOCK {
            let i = n * SHARES_PER_BLOCK + s;
            let miner = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            events.push(Event::ShareAccepted(ShareAccepted {
                address: address(miner % ADDRESSES),
                worker: WorkerName("rig0".into()),
                share_target: Target::MAX,
                weight: Target::MAX.work(),
                job_id: n,
                height: FIRST_HEIGHT + n,
                network_target: block_target,
                time_ms: 1_700_000_000_000 + i * 1_000,
            }));
        }
        let height = FIRST_HEIGHT + n;
        events.push(Event::BlockFound(BlockFound {
            height,
            block_id: block_id(height, 0),
            reward: Sats(312_500_000),
            network_target: block_target,
            finder: address(n % ADDRESSES),
            worker: WorkerName("rig0".into()),
            time_ms: 1_700_000_000_000 + n * SHARES_PER_BLOCK * 1_000,
        }));
    }
    events
}

/// The node's best chain by height: the pool's blocks, except every tenth replaced by another
/// branch's, and the tip past the last block's maturity.
fn node_chain() -> Vec<BlockId> {
    let last = FIRST_HEIGHT + BLOCKS - 1;
    (0..=last + MATURITY + 5)
        .map(|h| {
            let n = h.wrapping_sub(FIRST_HEIGHT);
            let reorged = h >= FIRST_HEIGHT && h <= last && n % ORPHAN_EVERY == 0;
            block_id(h, if reorged { 1 } else { 0 })
        })
        .collect()
}

fn fold(events: &[Event]) -> Projection {
    let mut p = Projection::new(ProjectionConfig {
        coinbase_maturity: MATURITY,
    });
    for (seq, e) in events.iter().enumerate() {
        p.apply(seq as u64, e).unwrap();
    }
    p
}

/// The watcher's side of a check on `p`: watched blocks, heights, plan.
fn plan_only(p: &Projection, chain: &[BlockId]) -> plan::Plan {
    let tip = chain.len() as u64 - 1;
    let blocks = watched_blocks(p, plan::matured_watch_floor(tip, MATURITY));
    let best = BestChain {
        tip_height: tip,
        ids: plan::heights_to_fetch(&blocks, tip, MATURITY)
            .into_iter()
            .map(|h| (h, chain[h as usize]))
            .collect(),
    };
    plan::plan(&blocks, &best, MATURITY)
}

/// The watcher's catch-up on `p`: watched blocks, heights, plan, apply. Returns the events.
fn catch_up(p: &mut Projection, chain: &[BlockId]) -> usize {
    let planned = plan_only(p, chain);
    for (seq, e) in (p.next_seq()..).zip(&planned.events) {
        p.apply(seq, e).unwrap();
    }
    planned.events.len()
}

fn watcher_catch_up(c: &mut Criterion) {
    let events = ledger_events();
    let chain = node_chain();
    let folded = fold(&events);
    // What the catch-up does, checked once.
    let mut done = folded.clone();
    assert_eq!(catch_up(&mut done, &chain), BLOCKS as usize);
    let totals = done.pool_totals();
    assert_eq!(totals.blocks_matured, BLOCKS - BLOCKS / ORPHAN_EVERY);
    assert_eq!(totals.blocks_orphaned, BLOCKS / ORPHAN_EVERY);
    assert!(done.anomalies().is_empty());
    assert_eq!(catch_up(&mut done, &chain), 0, "caught up: nothing more");
    assert!(done
        .blocks()
        .iter()
        .all(|b| b.status != BlockStatus::Immature));

    let mut group = c.benchmark_group("watcher");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BLOCKS));
    group.bench_function("fold_ledger_10k_blocks", |b| b.iter(|| fold(&events)));
    group.bench_function("plan_only_10k_blocks", |b| {
        b.iter(|| plan_only(&folded, &chain))
    });
    group.bench_function("catch_up_10k_blocks", |b| {
        b.iter_batched(
            || folded.clone(),
            |mut p| {
                catch_up(&mut p, &chain);
                p
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
    // The same comparison outside criterion, alternating the two so a change in the machine's
    // load hits both alike (best of 5 each).
    let (mut folds, mut catch_ups, mut plans) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        folds.push(timed(|| drop(fold(&events))));
        plans.push(timed(|| drop(plan_only(&folded, &chain))));
        let mut p = folded.clone();
        catch_ups.push(timed(|| {
            catch_up(&mut p, &chain);
        }));
    }
    let best = |d: &[Duration]| *d.iter().min().unwrap();
    let (folds, catch_ups, plans) = (best(&folds), best(&catch_ups), best(&plans));
    println!(
        "fold of the ledger ({} events, {BLOCKS} found blocks): {:>8.1} ms",
        events.len(),
        folds.as_secs_f64() * 1e3
    );
    println!(
        "watcher catch-up (plan + apply {BLOCKS} events):       {:>8.1} ms",
        catch_ups.as_secs_f64() * 1e3
    );
    println!(
        "  of which the plan (watched blocks, heights, plan):  {:>8.1} ms",
        plans.as_secs_f64() * 1e3
    );
    println!(
        "ratio catch-up / fold: {:.2}",
        catch_ups.as_secs_f64() / folds.as_secs_f64()
    );
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

criterion_group!(benches, watcher_catch_up);
criterion_main!(benches);

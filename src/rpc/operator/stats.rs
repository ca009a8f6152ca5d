//! `pool_stats` and `miner_workers`: the live projection's share windows and blocks (under one
//! read lock, with the head they reflect), the Stratum server's live connections and counters
//! (its registry), and the payout process as the pool sees it.

use crate::rpc::context::RpcContext;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use payout::api::operator::{
    BlockCounts, Hashrates, MinerWorkers, PayoutProcessStatus, PoolStats, WorkerInfo, ERR_UNKNOWN,
    METHOD_MINER_WORKERS, METHOD_POOL_STATS,
};
use pool_core::event::PayoutAddress;
use pool_core::Work;
use projections::stats::{ShareStats, WindowStats};
use projections::Projection;
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    module.register_method(METHOD_POOL_STATS, |_, ctx, _| {
        Ok::<PoolStats, ErrorObjectOwned>(pool_stats(ctx))
    })?;
    module.register_method(METHOD_MINER_WORKERS, |params, ctx, _| {
        miner_workers(params, ctx)
    })?;
    Ok(())
}

fn pool_stats(ctx: &RpcContext) -> PoolStats {
    let counts = ctx.registry.counts();
    let (shares_accepted, shares_rejected) = ctx.registry.share_counts();
    let payout_status = |open_payments| PayoutProcessStatus {
        last_report: ctx.live.payout_report(),
        last_error: ctx.live.payout_error(),
        paused: ctx.live.pause().get(),
        open_payments,
    };
    let state = ctx.live.read();
    let p = &state.projection;
    let totals = p.pool_totals();
    let blocks = BlockCounts {
        found: totals.blocks_immature + totals.blocks_matured + totals.blocks_orphaned,
        immature: totals.blocks_immature,
        matured: totals.blocks_matured,
        orphaned: totals.blocks_orphaned,
        rejected: totals.blocks_rejected,
        pending: p.open_candidates().len() as u64,
    };
    let last_block = p
        .block_statuses()
        .last()
        .and_then(|(id, _, _)| p.block_entry(&id))
        .map(crate::live::reads::block_summary);
    let open_payments = p.open_payments().len() as u64;
    PoolStats {
        ledger: crate::live::views::ledger_head(state.head),
        connections: counts.connections,
        workers_connected: counts.workers,
        addresses_connected: counts.addresses,
        hashrate: hashrates(&totals.shares),
        shares_per_sec: per_sec(&totals.shares.windows[0]),
        shares_accepted,
        shares_rejected,
        shares_total: p.share_count(),
        blocks,
        last_block,
        payout: payout_status(open_payments),
        uptime_secs: ctx.started.elapsed().as_secs(),
    }
}

/// `[address]` or `{"address": ...}`.
#[derive(Deserialize)]
struct AddressParam {
    address: String,
}

fn address_param(params: &Params<'_>) -> Result<String, ErrorObjectOwned> {
    if let Ok((address,)) = params.parse::<(String,)>() {
        return Ok(address);
    }
    params.parse::<AddressParam>().map(|p| p.address)
}

fn miner_workers(params: Params<'_>, ctx: &RpcContext) -> Result<MinerWorkers, ErrorObjectOwned> {
    let given = address_param(&params)?;
    let address = super::read::payout_address(METHOD_MINER_WORKERS, &given, ctx.live.chain())?;
    let live = ctx.registry.workers_of(&address.0);
    let state = ctx.live.read();
    let p = &state.projection;
    let mut workers: BTreeMap<String, WorkerInfo> = worker_stats_of(p, &address)
        .into_iter()
        .map(|(worker, s)| {
            let w = &s.windows;
            let info = WorkerInfo {
                worker: worker.clone(),
                hashrate: hashrates(&s),
                shares: s.total_shares,
                shares_1m: w[0].shares,
                shares_1h: w[1].shares,
                shares_24h: w[2].shares,
                last_share_ms: s.last_share_ms,
                connections: 0,
                difficulty: None,
            };
            (worker, info)
        })
        .collect();
    for (worker, l) in &live {
        let info = workers.entry(worker.clone()).or_insert_with(|| WorkerInfo {
            worker: worker.clone(),
            hashrate: Hashrates::default(),
            shares: 0,
            shares_1m: 0,
            shares_1h: 0,
            shares_24h: 0,
            last_share_ms: 0,
            connections: 0,
            difficulty: None,
        });
        info.connections = l.connections;
        info.difficulty = l.difficulty;
    }
    if workers.is_empty() && p.balance(&address).is_none() {
        return Err(ErrorObjectOwned::owned(
            ERR_UNKNOWN,
            format!(
                "the pool has no record of address {address}: no shares, no credits, no connection"
            ),
            None::<()>,
        ));
    }
    Ok(MinerWorkers {
        ledger: crate::live::views::ledger_head(state.head),
        address,
        workers: workers.into_values().collect(),
    })
}

/// `address`'s workers' share statistics, by worker name.
fn worker_stats_of(p: &Projection, address: &PayoutAddress) -> BTreeMap<String, ShareStats> {
    p.worker_stats()
        .into_iter()
        .filter(|((a, _), _)| a == address)
        .map(|((_, w), s)| (w.0, s))
        .collect()
}

fn hashrates(s: &ShareStats) -> Hashrates {
    Hashrates {
        h1m: hashrate(&s.windows[0]),
        h1h: hashrate(&s.windows[1]),
        h24h: hashrate(&s.windows[2]),
    }
}

/// Hashes per second over the window (its work over its length).
fn hashrate(w: &WindowStats) -> f64 {
    if w.window_ms == 0 {
        return 0.0;
    }
    work_f64(w.work) * 1000.0 / w.window_ms as f64
}

/// Shares per second over the window.
fn per_sec(w: &WindowStats) -> f64 {
    if w.window_ms == 0 {
        return 0.0;
    }
    w.shares as f64 * 1000.0 / w.window_ms as f64
}

/// Work (expected hashes) as a float, for display.
fn work_f64(w: Work) -> f64 {
    w.as_u256().as_limbs().iter().rev().fold(0.0, |acc, limb| {
        acc * 18_446_744_073_709_551_616.0 + *limb as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::Target;

    #[test]
    fn hashrates_are_work_over_the_window() {
        // The work of difficulty 1 is 2^256 / (0xffff * 2^208 + 1), a little over 2^32.
        let one = Target::DIFF1.work();
        assert_eq!(work_f64(one), 4_295_032_833.0);
        let w = WindowStats {
            window_ms: 60_000,
            shares: 30,
            work: one,
        };
        assert_eq!(hashrate(&w), 4_295_032_833.0 / 60.0);
        assert_eq!(per_sec(&w), 0.5);
        assert_eq!(hashrate(&WindowStats::default()), 0.0);
    }
}

//! Start-up of `run`: the ledger, the live projection, and what the pool reads from it before
//! serving (the payout rule recorded last and the open block candidates); the projection's
//! last catch-up and snapshot at a clean stop.

use crate::config::LedgerSettings;
use crate::live::{Live, SnapshotPolicy};
use anyhow::Context;
use pool_core::chain::ChainParams;
use pool_core::event::{BlockCandidate, PayoutRule};
use std::sync::Arc;
use std::time::Instant;

/// What the pool needs from its ledger at start.
pub struct StartScan {
    /// The last `PayoutRuleSet`, with its sequence number.
    pub last_rule: Option<(u64, PayoutRule)>,
    /// Block candidates with no verdict yet, in ledger order.
    pub open_candidates: Vec<BlockCandidate>,
}

/// Opens the ledger; on a nearly full disk this refuses, saying how much is free and how much
/// the ledger needs (see `[ledger] min_free_mb`).
pub fn open_ledger(settings: &LedgerSettings) -> anyhow::Result<ledger::Ledger> {
    let data_dir = &settings.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the ledger directory {}", data_dir.display()))?;
    let ledger = ledger::Ledger::open_with(data_dir, settings.writer_options())
        .with_context(|| format!("cannot open the ledger in {}", data_dir.display()))?;
    match ledger.head() {
        Some(head) => tracing::info!(seq = head.seq, dir = %data_dir.display(), "ledger opened"),
        None => tracing::info!(dir = %data_dir.display(), "ledger opened (empty)"),
    }
    Ok(ledger)
}

/// The live projection, from its snapshot plus the ledger's tail (or a full replay).
pub async fn open_live(
    ledger: ledger::Ledger,
    chain: &'static ChainParams,
) -> anyhow::Result<Arc<Live>> {
    let started = Instant::now();
    let live =
        tokio::task::spawn_blocking(move || Live::open(ledger, chain, SnapshotPolicy::default()))
            .await
            .context("the live projection's start stopped")??;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "start-up: live projection built"
    );
    Ok(Arc::new(live))
}

/// The payout rule recorded last and the open candidates (each read back from its record for
/// the block's bytes).
pub async fn scan(live: &Arc<Live>) -> anyhow::Result<StartScan> {
    let last_rule = live.read().projection.rule_history().last().cloned();
    let reader = live.clone();
    let open_candidates = tokio::task::spawn_blocking(move || reader.open_candidates())
        .await
        .context("reading the open block candidates stopped")??;
    Ok(StartScan {
        last_rule,
        open_candidates,
    })
}

/// Applies the tail and writes the snapshot; a failure is logged (the next start replays more).
pub async fn finish_live(live: Arc<Live>) {
    match tokio::task::spawn_blocking(move || live.finish()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("live projection not snapshotted at stop: {e:#}"),
        Err(e) => tracing::warn!("live projection not snapshotted at stop: {e}"),
    }
}

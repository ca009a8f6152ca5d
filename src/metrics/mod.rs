//! The pool's Prometheus metrics: one prometheus-client registry holding the crates' handles
//! (`stratum`, `ledger`, `node-rpc`: atomics their hot paths add to) and a scrape-time collector
//! of the live projection (blocks by status, balances, open payments, ledger head: read under
//! one read lock) and of the payout process's last report.
//!
//! Served as OpenMetrics text at `GET /metrics` on the RPC listener ([`http::MetricsLayer`])
//! and, with `[rpc] metrics_listen`, on a listener of its own ([`listen`]).

pub mod http;
pub mod listen;

use crate::live::Live;
use payout::api::PayoutProcessState;
use projections::BlockStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The pool process's registry.
pub struct Metrics {
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

impl Metrics {
    /// The registry of the pool process whose live projection is `live`, started at `started`.
    pub fn new(live: Arc<Live>, started: Instant) -> Metrics {
        let mut registry = Registry::default();
        stratum::metrics::metrics().register(&mut registry);
        ledger::metrics::metrics().register(&mut registry);
        node_rpc::metrics::metrics().register(&mut registry);
        registry.register_collector(Box::new(PoolCollector { live, started }));
        Metrics { registry }
    }

    /// The text a scrape returns.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!("cannot encode the metrics: {e}");
        }
        text
    }
}

/// Reads the live projection and the payout report at scrape time.
struct PoolCollector {
    live: Arc<Live>,
    started: Instant,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCollector(..)")
    }
}

/// What the collector takes from the projection (under its read lock, then released).
#[derive(Default)]
struct Figures {
    head_seq: Option<u64>,
    immature_blocks: u64,
    matured_blocks: u64,
    orphaned_blocks: u64,
    rejected_blocks: u64,
    pending_candidates: u64,
    open_payments: u64,
    immature: u64,
    payable: u64,
    in_flight: u64,
    paid: u64,
    debt: u64,
    addresses: u64,
}

impl PoolCollector {
    fn figures(&self) -> Figures {
        let state = self.live.read();
        let p = &state.projection;
        let mut f = Figures {
            head_seq: state.head.map(|h| h.seq),
            rejected_blocks: p.rejected_blocks().len() as u64,
            pending_candidates: p.open_candidates().len() as u64,
            open_payments: p.open_payments().len() as u64,
            ..Figures::default()
        };
        for (_, _, status) in p.block_statuses() {
            match status {
                BlockStatus::Immature => f.immature_blocks += 1,
                BlockStatus::Matured => f.matured_blocks += 1,
                BlockStatus::Orphaned => f.orphaned_blocks += 1,
            }
        }
        for b in p.balances().values() {
            f.addresses += 1;
            f.immature += b.immature.0;
            f.payable += b.payable.0;
            f.in_flight += b.in_flight.0;
            f.paid += b.paid.0;
            f.debt += b.debt.0;
        }
        f
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl Into<f64>,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value.into());
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for PoolCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = self.figures();
        let e = &mut e;
        gauge(
            e,
            "obtc_uptime_seconds",
            "Seconds since the pool process started",
            self.started.elapsed().as_secs_f64(),
        )?;
        gauge(
            e,
            "obtc_ledger_head_seq",
            "Sequence number of the last ledger record the live projection applied (-1: none)",
            f.head_seq.map_or(-1.0, |s| s as f64),
        )?;
        let durable = self.live.ledger().head().map_or(-1.0, |h| h.seq as f64);
        gauge(
            e,
            "obtc_ledger_durable_seq",
            "Sequence number of the last durable ledger record (-1: none)",
            durable,
        )?;
        // Found blocks by where they stand now (one block moves between these).
        gauge(
            e,
            "obtc_blocks_immature",
            "Found blocks on the best chain, coinbase not mature yet",
            f.immature_blocks as f64,
        )?;
        gauge(
            e,
            "obtc_blocks_matured",
            "Found blocks whose coinbase matured",
            f.matured_blocks as f64,
        )?;
        gauge(
            e,
            "obtc_blocks_orphaned",
            "Found blocks that left the best chain",
            f.orphaned_blocks as f64,
        )?;
        counter(
            e,
            "obtc_blocks_found",
            "Blocks the node accepted (immature, matured and orphaned)",
            f.immature_blocks + f.matured_blocks + f.orphaned_blocks,
        )?;
        counter(
            e,
            "obtc_blocks_rejected",
            "Block candidates the node refused",
            f.rejected_blocks,
        )?;
        gauge(
            e,
            "obtc_block_candidates_pending",
            "Block candidates without a verdict yet",
            f.pending_candidates as f64,
        )?;
        gauge(
            e,
            "obtc_addresses",
            "Payout addresses with a balance",
            f.addresses as f64,
        )?;
        gauge(
            e,
            "obtc_balance_immature_sats",
            "Sum of immature credits",
            f.immature as f64,
        )?;
        gauge(
            e,
            "obtc_balance_payable_sats",
            "Sum of payable balances",
            f.payable as f64,
        )?;
        gauge(
            e,
            "obtc_balance_in_flight_sats",
            "Sum of amounts in open payments",
            f.in_flight as f64,
        )?;
        gauge(
            e,
            "obtc_balance_paid_sats",
            "Sum of amounts paid",
            f.paid as f64,
        )?;
        gauge(e, "obtc_balance_debt_sats", "Sum of debts", f.debt as f64)?;
        gauge(
            e,
            "obtc_payments_open",
            "Payments prepared, signed or sent and not final",
            f.open_payments as f64,
        )?;
        let report = self.live.payout_report();
        let state = report.as_ref().map(|r| r.state);
        {
            let mut m = e.encode_descriptor(
                "obtc_payout_state",
                "1 for the state the payout process's last report said (running, paused, error)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (name, s) in [
                ("running", PayoutProcessState::Running),
                ("paused", PayoutProcessState::Paused),
                ("error", PayoutProcessState::Error),
            ] {
                let labels = [("state", name)];
                ConstGauge::new(i64::from(state == Some(s))).encode(m.encode_family(&labels)?)?;
            }
        }
        // The operator's pause (`payouts_pause`), as `payout_state` shows it.
        let paused = self.live.pause().get().is_some();
        gauge(
            e,
            "obtc_payouts_paused",
            "1 while the operator has paused payouts",
            i32::from(paused),
        )?;
        gauge(
            e,
            "obtc_payout_reported",
            "1 once the payout process has reported since the pool started",
            i32::from(report.is_some()),
        )?;
        let age = report.map_or(-1.0, |r| now_ms().saturating_sub(r.time_ms) as f64 / 1000.0);
        gauge(
            e,
            "obtc_payout_report_age_seconds",
            "Seconds since the payout process's last report (-1: none yet)",
            age,
        )?;
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

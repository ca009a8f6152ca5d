//! The Stratum server's metrics (one set per process: [`metrics`]): connections, shares accepted
//! and rejected by reason, submit-to-reply latency, block submissions.
//!
//! The per-share cost is an atomic add or two: the rejection counters are the label children of
//! one family, resolved once ([`StratumMetrics::rejected`]), and the latency histogram is a
//! [`ledger::metrics::AtomicHistogram`].

use crate::session::ShareRejection;
use ledger::metrics::AtomicHistogram;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

/// The `reason` label of a rejected share: every [`ShareRejection`], plus a share the session
/// accepted whose ledger append failed (answered with an error, not credited).
pub const REJECT_REASONS: [&str; 13] = [
    "not_subscribed",
    "unauthorized",
    "unknown_job",
    "stale_job",
    "duplicate",
    "low_difficulty",
    "ntime_out_of_range",
    "bad_extranonce2",
    "version_bits_outside_mask",
    "version_rolling_not_negotiated",
    "bad_hex_field",
    "extranonce1_mismatch",
    "ledger_error",
];

/// Index of [`REJECT_REASONS`]' `ledger_error`.
const LEDGER_ERROR: usize = 12;

/// The index of a rejection's `reason` label in [`REJECT_REASONS`].
pub fn reason_index(r: &ShareRejection) -> usize {
    match r {
        ShareRejection::NotSubscribed => 0,
        ShareRejection::Unauthorized => 1,
        ShareRejection::UnknownJob => 2,
        ShareRejection::StaleJob => 3,
        ShareRejection::Duplicate => 4,
        ShareRejection::LowDifficulty => 5,
        ShareRejection::NtimeOutOfRange => 6,
        ShareRejection::BadExtranonce2 { .. } => 7,
        ShareRejection::VersionBitsOutsideMask => 8,
        ShareRejection::VersionRollingNotNegotiated => 9,
        ShareRejection::BadHexField(_) => 10,
        ShareRejection::Extranonce1Mismatch => 11,
    }
}

type Labels = [(&'static str, &'static str); 1];

#[derive(Debug)]
pub struct StratumMetrics {
    /// Open miner connections.
    pub connections: Gauge,
    /// Connections accepted since start.
    pub connections_opened: Counter,
    /// Shares made durable and acknowledged.
    pub accepted: Counter,
    rejected_family: Family<Labels, Counter>,
    /// One child of the `reason` family per [`REJECT_REASONS`] entry.
    rejected: Vec<Counter>,
    /// From a `mining.submit` line read to its reply handed to the socket, seconds (accepted
    /// and rejected shares alike).
    pub submit_latency: AtomicHistogram,
    /// Connections cut for a share flood.
    pub flood_cuts: Counter,
    /// Block candidates handed to the submitter.
    pub block_submissions: Counter,
    /// Extra rounds of a block submission (node not answering, undecided verdicts).
    pub block_submit_retries: Counter,
}

impl StratumMetrics {
    fn new() -> StratumMetrics {
        let rejected_family = Family::<Labels, Counter>::default();
        let rejected = REJECT_REASONS
            .iter()
            .map(|&reason| rejected_family.get_or_create_owned(&[("reason", reason)]))
            .collect();
        StratumMetrics {
            connections: Gauge::default(),
            connections_opened: Counter::default(),
            accepted: Counter::default(),
            rejected_family,
            rejected,
            submit_latency: AtomicHistogram::latency(),
            flood_cuts: Counter::default(),
            block_submissions: Counter::default(),
            block_submit_retries: Counter::default(),
        }
    }

    /// Counts a rejected share.
    pub fn reject(&self, reason: &ShareRejection) {
        self.rejected[reason_index(reason)].inc();
    }

    /// Counts a share accepted by the session whose append failed.
    pub fn reject_ledger_error(&self) {
        self.rejected[LEDGER_ERROR].inc();
    }

    /// Rejections so far with the `reason` label at `index` of [`REJECT_REASONS`].
    pub fn rejected(&self, index: usize) -> u64 {
        self.rejected[index].get()
    }

    /// Registers every handle under `obtc_stratum_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("obtc_stratum");
        r.register(
            "connections",
            "Open miner connections",
            self.connections.clone(),
        );
        r.register(
            "connections_opened",
            "Miner connections accepted since start",
            self.connections_opened.clone(),
        );
        r.register(
            "shares_accepted",
            "Shares made durable and acknowledged",
            self.accepted.clone(),
        );
        r.register(
            "shares_rejected",
            "Shares refused, by reason",
            self.rejected_family.clone(),
        );
        r.register(
            "submit_latency_seconds",
            "From a mining.submit line read to its reply written",
            self.submit_latency.clone(),
        );
        r.register(
            "flood_cuts",
            "Connections cut for a share flood",
            self.flood_cuts.clone(),
        );
        r.register(
            "block_submissions",
            "Block candidates submitted to the node",
            self.block_submissions.clone(),
        );
        r.register(
            "block_submit_retries",
            "Retries of block submissions (node not answering or no verdict yet)",
            self.block_submit_retries.clone(),
        );
    }
}

static METRICS: LazyLock<StratumMetrics> = LazyLock::new(StratumMetrics::new);

/// The process's Stratum metrics (every server in this process counts into them).
pub fn metrics() -> &'static StratumMetrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_its_own_label() {
        let all = [
            ShareRejection::NotSubscribed,
            ShareRejection::Unauthorized,
            ShareRejection::UnknownJob,
            ShareRejection::StaleJob,
            ShareRejection::Duplicate,
            ShareRejection::LowDifficulty,
            ShareRejection::NtimeOutOfRange,
            ShareRejection::BadExtranonce2 { expected: 4 },
            ShareRejection::VersionBitsOutsideMask,
            ShareRejection::VersionRollingNotNegotiated,
            ShareRejection::BadHexField("nonce"),
            ShareRejection::Extranonce1Mismatch,
        ];
        let mut seen: Vec<usize> = all.iter().map(reason_index).collect();
        seen.push(LEDGER_ERROR);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), REJECT_REASONS.len());
        assert_eq!(REJECT_REASONS[LEDGER_ERROR], "ledger_error");
    }
}

//! The ledger writer's metrics (one set per process: [`metrics`]), and the lock-free histogram
//! the pool's hot paths observe into ([`AtomicHistogram`]).
//!
//! The handles are prometheus-client metrics (or encode like one), so the binary registers them
//! in its registry ([`LedgerMetrics::register`]); code that never registers them (tests, the
//! ledger CLI) only pays the atomic adds.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Latency bucket bounds, in seconds: 50 µs to 1 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Batch size bucket bounds, in records per commit.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// A histogram with fixed bounds whose `observe` is two relaxed atomic adds (no lock, no
/// allocation); it encodes as a prometheus-client histogram. Values are kept in integer units
/// (`scale` units per encoded unit: 1e9 for seconds observed as nanoseconds, 1 for counts).
#[derive(Clone, Debug)]
pub struct AtomicHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds in encoded units (for the `le` labels) and in integer units.
    bounds: Vec<(f64, u64)>,
    /// One per bound, plus +Inf.
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    scale: f64,
}

impl AtomicHistogram {
    pub fn new(bounds: &[f64], scale: f64) -> AtomicHistogram {
        let bounds: Vec<(f64, u64)> = bounds.iter().map(|&b| (b, (b * scale) as u64)).collect();
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram(Arc::new(Inner {
            bounds,
            buckets,
            sum: AtomicU64::new(0),
            scale,
        }))
    }

    /// Seconds, observed in nanoseconds.
    pub fn latency() -> AtomicHistogram {
        AtomicHistogram::new(LATENCY_BUCKETS, 1e9)
    }

    /// Observes `value` in integer units.
    pub fn observe_units(&self, value: u64) {
        let i = self
            .0
            .bounds
            .iter()
            .position(|&(_, b)| value <= b)
            .unwrap_or(self.0.bounds.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Observes a duration (for a histogram made by [`AtomicHistogram::latency`]).
    pub fn observe_duration(&self, d: Duration) {
        self.observe_units(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.0;
        let mut buckets = Vec::with_capacity(inner.buckets.len());
        let mut count = 0;
        for (i, bucket) in inner.buckets.iter().enumerate() {
            let n = bucket.load(Ordering::Relaxed);
            count += n;
            // f64::MAX is how prometheus-client spells the +Inf bucket.
            let le = inner.bounds.get(i).map_or(f64::MAX, |&(le, _)| le);
            buckets.push((le, n));
        }
        let sum = inner.sum.load(Ordering::Relaxed) as f64 / inner.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// What the group-commit writer counts.
#[derive(Debug)]
pub struct LedgerMetrics {
    /// Records made durable.
    pub appended_records: Counter,
    /// Frames written (one O_DSYNC write each: a group commit).
    pub commits: Counter,
    /// Frames that failed to be written or stored (their appends were refused).
    pub commit_failures: Counter,
    /// From a frame's write start to its appends acknowledged, seconds.
    pub commit_latency: AtomicHistogram,
    /// Records per commit.
    pub batch_records: AtomicHistogram,
}

impl LedgerMetrics {
    fn new() -> LedgerMetrics {
        LedgerMetrics {
            appended_records: Counter::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            commit_latency: AtomicHistogram::latency(),
            batch_records: AtomicHistogram::new(BATCH_BUCKETS, 1.0),
        }
    }

    /// Registers every handle under `obtc_ledger_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("obtc_ledger");
        r.register(
            "appended_records",
            "Ledger records made durable",
            self.appended_records.clone(),
        );
        r.register(
            "commits",
            "Group commits (write-ahead log frames written)",
            self.commits.clone(),
        );
        r.register(
            "commit_failures",
            "Group commits that failed (their appends were refused)",
            self.commit_failures.clone(),
        );
        r.register(
            "commit_latency_seconds",
            "From a frame's write start to its appends acknowledged",
            self.commit_latency.clone(),
        );
        r.register(
            "commit_batch_records",
            "Records per group commit",
            self.batch_records.clone(),
        );
    }
}

static METRICS: LazyLock<LedgerMetrics> = LazyLock::new(LedgerMetrics::new);

/// The process's ledger metrics (every ledger opened in this process counts into them).
pub fn metrics() -> &'static LedgerMetrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_atomic_histogram_encodes_cumulative_buckets() {
        let h = AtomicHistogram::latency();
        h.observe_duration(Duration::from_micros(10));
        h.observe_duration(Duration::from_micros(60));
        h.observe_duration(Duration::from_secs(3));
        assert_eq!(h.count(), 3);
        let mut registry = Registry::default();
        registry.register("lat_seconds", "latency", h);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("lat_seconds_count 3\n"), "{text}");
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.0001\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"1.0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_sum 3.00007\n"), "{text}");
    }
}

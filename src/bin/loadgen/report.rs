//! Counting what came back: per-connection tallies, their merge, the human summary and the
//! one-line JSON result a script reads.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies are kept in microseconds from 1 µs to 60 s with two significant digits (1% error).
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    match Histogram::new_with_bounds(1, 60_000_000, 2) {
        Ok(h) => h,
        Err(_) => unreachable!("constant histogram bounds are valid"),
    }
}

/// What one connection saw during the measured window (and its drain).
#[derive(Debug)]
pub struct Tally {
    pub sent: u64,
    pub accepted: u64,
    pub rejected_by_code: BTreeMap<String, u64>,
    /// Replies we could not read, replies to ids we never sent, lines that are not JSON.
    pub other_errors: u64,
    /// Submits still unanswered when the drain ended or the connection dropped.
    pub unanswered: u64,
    /// The connection ended (EOF or error) before the drain was over.
    pub dropped: bool,
    /// Submit latencies in microseconds; a plain vector is cheaper to append to on the hot
    /// path than a histogram per connection, and becomes one histogram at the end.
    pub latencies_us: Vec<u32>,
    /// Open loop only: submits sent more than 2 ms after their scheduled time, and the worst lag.
    pub late_sends: u64,
    pub max_send_lag: Duration,
    /// Time from the window's start to the last reply this connection received.
    pub last_reply_after: Duration,
    /// Accepted submits by the worker name they were submitted under.
    pub accepted_by_worker: BTreeMap<String, u64>,
    /// Failovers: connections made again (to the next target) after the pool closed one.
    pub reconnects: u64,
    /// `--record`: one line per submit's outcome (see `session`).
    pub record: Vec<u8>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            sent: 0,
            accepted: 0,
            rejected_by_code: BTreeMap::new(),
            other_errors: 0,
            unanswered: 0,
            dropped: false,
            latencies_us: Vec::new(),
            late_sends: 0,
            max_send_lag: Duration::ZERO,
            last_reply_after: Duration::ZERO,
            accepted_by_worker: BTreeMap::new(),
            reconnects: 0,
            record: Vec::new(),
        }
    }

    pub fn rejected(&self) -> u64 {
        self.rejected_by_code.values().sum()
    }

    pub fn merge(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        for (code, n) in &other.rejected_by_code {
            *self.rejected_by_code.entry(code.clone()).or_insert(0) += n;
        }
        self.other_errors += other.other_errors;
        self.unanswered += other.unanswered;
        self.dropped |= other.dropped;
        self.latencies_us.extend_from_slice(&other.latencies_us);
        self.late_sends += other.late_sends;
        self.max_send_lag = self.max_send_lag.max(other.max_send_lag);
        self.last_reply_after = self.last_reply_after.max(other.last_reply_after);
        for (worker, n) in &other.accepted_by_worker {
            *self.accepted_by_worker.entry(worker.clone()).or_insert(0) += n;
        }
        self.reconnects += other.reconnects;
        self.record.extend_from_slice(&other.record);
    }
}

/// The run's parameters, echoed in the result.
#[derive(Debug, Clone, Serialize)]
pub struct RunShape {
    pub target: String,
    pub mode: String,
    pub connections: usize,
    pub in_flight: usize,
    /// Open loop: total submits per second requested; absent for closed loop.
    pub rate: Option<f64>,
    pub duration_s: f64,
}

/// The one-line JSON result.
#[derive(Debug, Serialize)]
pub struct RunResult {
    #[serde(flatten)]
    pub shape: RunShape,
    pub connected: usize,
    pub connect_failures: usize,
    pub dropped_connections: usize,
    /// Seconds from the window's start to the last reply (the window plus what the drain took).
    pub elapsed_s: f64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_code: BTreeMap<String, u64>,
    /// Accepted submits by worker name (`--workers N`: `USERNAME.w0` .. `USERNAME.w{N-1}`).
    pub accepted_by_worker: BTreeMap<String, u64>,
    pub other_errors: u64,
    pub unanswered: u64,
    /// Connections made again to the next target after the pool closed one (`--target A,B`).
    pub reconnects: u64,
    pub accepted_per_s: f64,
    pub rejected_per_s: f64,
    pub answers_per_s: f64,
    pub sent_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub late_sends: u64,
    pub max_send_lag_us: u64,
    /// Open loop: false when more than 1% of submits left over 2 ms late (the generator could
    /// not keep the rate), so the latencies describe an overloaded generator too.
    pub kept_rate: bool,
}

impl RunResult {
    pub fn new(
        shape: RunShape,
        connected: usize,
        connect_failures: usize,
        dropped_connections: usize,
        total: &Tally,
    ) -> RunResult {
        let window = Duration::from_secs_f64(shape.duration_s);
        let elapsed = total.last_reply_after.max(window).as_secs_f64();
        let per_s = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        let rejected = total.rejected();
        let mut h = new_histogram();
        for &us in &total.latencies_us {
            h.saturating_record(u64::from(us.max(1)));
        }
        let kept_rate = shape.rate.is_none() || total.late_sends * 100 <= total.sent;
        RunResult {
            connected,
            connect_failures,
            dropped_connections,
            elapsed_s: elapsed,
            sent: total.sent,
            accepted: total.accepted,
            rejected,
            rejected_by_code: total.rejected_by_code.clone(),
            accepted_by_worker: total.accepted_by_worker.clone(),
            other_errors: total.other_errors,
            unanswered: total.unanswered,
            reconnects: total.reconnects,
            accepted_per_s: per_s(total.accepted),
            rejected_per_s: per_s(rejected),
            answers_per_s: per_s(total.accepted + rejected),
            sent_per_s: total.sent as f64 / shape.duration_s.max(f64::MIN_POSITIVE),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            late_sends: total.late_sends,
            max_send_lag_us: u64::try_from(total.max_send_lag.as_micros()).unwrap_or(u64::MAX),
            kept_rate,
            shape,
        }
    }

    pub fn human(&self) -> String {
        let s = &self.shape;
        let mut out = String::new();
        let load = match s.rate {
            Some(rate) => format!("open loop {rate:.0} submits/s"),
            None => format!("closed loop {} in flight", s.in_flight),
        };
        out.push_str(&format!(
            "target {} mode {}: {} connections ({} failed, {} dropped), {load}, {:.1} s window ({:.2} s to last reply)\n",
            s.target, s.mode, self.connected, self.connect_failures, self.dropped_connections,
            s.duration_s, self.elapsed_s
        ));
        out.push_str(&format!(
            "  sent {} ({:.0}/s)  accepted {} ({:.0}/s)  rejected {} ({:.0}/s) {:?}\n",
            self.sent,
            self.sent_per_s,
            self.accepted,
            self.accepted_per_s,
            self.rejected,
            self.rejected_per_s,
            self.rejected_by_code
        ));
        out.push_str(&format!(
            "  other errors {}  unanswered {}  reconnects {}\n  latency p50 {} us  p99 {} us  p999 {} us  max {} us\n",
            self.other_errors, self.unanswered, self.reconnects, self.p50_us, self.p99_us, self.p999_us, self.max_us
        ));
        if s.rate.is_some() {
            out.push_str(&format!(
                "  late sends (>2 ms) {}  max send lag {} us  {}\n",
                self.late_sends,
                self.max_send_lag_us,
                if self.kept_rate {
                    "rate kept"
                } else {
                    "COULD NOT KEEP THE RATE"
                }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut a = Tally::new();
        a.sent = 3;
        a.accepted = 2;
        a.rejected_by_code.insert("23".into(), 1);
        a.latencies_us.push(100);
        a.last_reply_after = Duration::from_millis(1200);
        let mut b = Tally::new();
        b.sent = 2;
        b.accepted = 1;
        b.rejected_by_code.insert("23".into(), 1);
        b.rejected_by_code.insert("21".into(), 1);
        b.latencies_us.push(300);
        b.dropped = true;
        a.accepted_by_worker.insert("addr.w0".into(), 2);
        b.accepted_by_worker.insert("addr.w0".into(), 1);
        b.accepted_by_worker.insert("addr.w1".into(), 0);
        b.reconnects = 1;
        a.merge(&b);
        assert_eq!(a.sent, 5);
        assert_eq!(a.accepted, 3);
        assert_eq!(a.rejected(), 3);
        assert_eq!(a.rejected_by_code["23"], 2);
        assert!(a.dropped);
        assert_eq!(a.latencies_us, vec![100, 300]);
        let shape = RunShape {
            target: "t".into(),
            mode: "valid".into(),
            connections: 2,
            in_flight: 1,
            rate: None,
            duration_s: 1.0,
        };
        let r = RunResult::new(shape, 2, 0, 1, &a);
        assert!((r.elapsed_s - 1.2).abs() < 1e-9);
        assert!((r.accepted_per_s - 2.5).abs() < 1e-9);
        assert!(r.p999_us >= 299 && r.p999_us <= 303);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["accepted"], 3);
        assert_eq!(json["connections"], 2);
        assert_eq!(json["rejected_by_code"]["21"], 1);
        assert_eq!(json["accepted_by_worker"]["addr.w0"], 3);
        assert_eq!(json["reconnects"], 1);
    }
}

//! Share statistics over sliding windows (1 minute, 1 hour, 24 hours), per worker and for the
//! pool, from the shares' own `time_ms` (never a clock).
//!
//! Each window is a ring of [`BUCKETS`] time buckets of `window / BUCKETS` milliseconds. "Now" is
//! the latest share time seen; a window covers the buckets whose start lies within one window of
//! now's bucket, so its edge is exact to one bucket (1 s, 1 min and 24 min respectively). A share
//! older than the ring (time going backwards by more than a window) still counts in the totals but
//! in no window. Hashrate estimates are display figures: work in the window divided by its length.

use pool_core::Work;
use ruint::aliases::U256;
use serde::{Deserialize, Serialize};

/// Buckets per window.
pub const BUCKETS: usize = 60;

/// The windows reported, in milliseconds.
pub const WINDOWS_MS: [u64; 3] = [60_000, 3_600_000, 86_400_000];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    /// `time_ms / bucket_ms` of the shares counted here.
    id: u64,
    shares: u64,
    work: Work,
}

/// One sliding window as a ring of buckets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Window {
    buckets: Vec<Bucket>,
}

impl Window {
    fn new() -> Window {
        Window {
            buckets: vec![Bucket::default(); BUCKETS],
        }
    }

    #[inline]
    fn add(&mut self, bucket_id: u64, weight: Work) {
        let slot = &mut self.buckets[(bucket_id % BUCKETS as u64) as usize];
        if slot.id != bucket_id {
            if slot.id > bucket_id && slot.shares > 0 {
                // Older than what the ring holds for this slot: outside every window.
                return;
            }
            *slot = Bucket {
                id: bucket_id,
                shares: 0,
                work: Work::ZERO,
            };
        }
        slot.shares += 1;
        slot.work += weight;
    }

    fn sum(&self, now_bucket: u64) -> (u64, Work) {
        let oldest = now_bucket.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.shares > 0 && b.id >= oldest && b.id <= now_bucket)
            .fold((0, Work::ZERO), |(n, w), b| (n + b.shares, w + b.work))
    }
}

/// Share counters of one worker (or of the whole pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShareCounters {
    pub(crate) total_shares: u64,
    pub(crate) total_work: Work,
    pub(crate) last_share_ms: u64,
    windows: [Window; 3],
}

impl Default for ShareCounters {
    fn default() -> Self {
        ShareCounters::new()
    }
}

impl ShareCounters {
    pub(crate) fn new() -> ShareCounters {
        ShareCounters {
            total_shares: 0,
            total_work: Work::ZERO,
            last_share_ms: 0,
            windows: [Window::new(), Window::new(), Window::new()],
        }
    }

    #[inline]
    pub(crate) fn add(&mut self, time_ms: u64, weight: Work) {
        self.total_shares += 1;
        self.total_work += weight;
        self.last_share_ms = self.last_share_ms.max(time_ms);
        for (window, len) in self.windows.iter_mut().zip(WINDOWS_MS) {
            window.add(time_ms / (len / BUCKETS as u64), weight);
        }
    }

    /// The report as of `now_ms`.
    pub(crate) fn report(&self, now_ms: u64) -> ShareStats {
        let mut windows = [WindowStats::default(); 3];
        for ((out, window), len) in windows.iter_mut().zip(&self.windows).zip(WINDOWS_MS) {
            let (shares, work) = window.sum(now_ms / (len / BUCKETS as u64));
            *out = WindowStats {
                window_ms: len,
                shares,
                work,
            };
        }
        ShareStats {
            total_shares: self.total_shares,
            total_work: self.total_work,
            last_share_ms: self.last_share_ms,
            windows,
        }
    }
}

/// Shares and work accepted within one sliding window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    pub window_ms: u64,
    pub shares: u64,
    /// Sum of the accepted shares' weights (the work of their targets).
    pub work: Work,
}

impl WindowStats {
    /// Accepted difficulty in the window, in difficulty-1 units (display only).
    pub fn difficulty(&self) -> f64 {
        self.work.as_difficulty()
    }

    /// Estimated hashes per second: the window's work over its length (integer, rounded down).
    pub fn hashrate(&self) -> U256 {
        if self.window_ms == 0 {
            return U256::ZERO;
        }
        self.work.as_u256().saturating_mul(U256::from(1000u64)) / U256::from(self.window_ms)
    }
}

/// A worker's, an address's or the pool's share statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStats {
    pub total_shares: u64,
    pub total_work: Work,
    pub last_share_ms: u64,
    /// 1 minute, 1 hour and 24 hours, in that order.
    pub windows: [WindowStats; 3],
}

impl ShareStats {
    pub(crate) fn empty() -> ShareStats {
        ShareCounters::new().report(0)
    }

    /// Adds another report of the same instant (an address's stats are the sum of its workers').
    pub(crate) fn merge(&mut self, other: &ShareStats) {
        self.total_shares += other.total_shares;
        self.total_work += other.total_work;
        self.last_share_ms = self.last_share_ms.max(other.last_share_ms);
        for (a, b) in self.windows.iter_mut().zip(&other.windows) {
            a.window_ms = b.window_ms;
            a.shares += b.shares;
            a.work += b.work;
        }
    }

    /// Total accepted difficulty in difficulty-1 units (display only).
    pub fn total_difficulty(&self) -> f64 {
        self.total_work.as_difficulty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64) -> Work {
        Work::from_u256(U256::from(v))
    }

    #[test]
    fn windows_slide_with_event_time() {
        let mut c = ShareCounters::new();
        c.add(0, w(10));
        c.add(30_000, w(20));
        c.add(3_000_000, w(5));
        let r = c.report(3_000_000);
        assert_eq!(r.total_shares, 3);
        assert_eq!(r.total_work, w(35));
        // The minute window holds only the last share; the hour all three.
        assert_eq!((r.windows[0].shares, r.windows[0].work), (1, w(5)));
        assert_eq!((r.windows[1].shares, r.windows[1].work), (3, w(35)));
        assert_eq!(r.windows[1].hashrate(), U256::from(0u8)); // 35 * 1000 / 3_600_000
        let r = c.report(3_000_000 + 120_000);
        assert_eq!(r.windows[0].shares, 0);
    }

    #[test]
    fn hashrate_is_work_per_second() {
        let s = WindowStats {
            window_ms: 60_000,
            shares: 1,
            work: w(600),
        };
        assert_eq!(s.hashrate(), U256::from(10u8));
    }

    #[test]
    fn shares_older_than_the_ring_count_only_in_totals() {
        let mut c = ShareCounters::new();
        c.add(10_000_000, w(1));
        c.add(10_000_000 - 61_000, w(1)); // one minute and a second back: another slot
        c.add(10_000_000 - 60_000, w(7)); // same slot as the first share, older: not windowed
        let r = c.report(10_000_000);
        assert_eq!(r.total_shares, 3);
        assert_eq!(r.windows[0].work, w(1));
    }
}

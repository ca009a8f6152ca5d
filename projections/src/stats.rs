//! Share statistics over sliding windows (1 minute, 1 hour, 24 hours), per worker, per address
//! and for the pool, from the shares' own `time_ms` (never a clock).
//!
//! Each window length has a log of [`BUCKETS`] consecutive time buckets of `window / BUCKETS`
//! milliseconds, shared by all workers: a bucket holds one entry per worker that sent shares in
//! it. "Now" is the latest event time seen; a window covers the buckets whose start lies within
//! one window of now's bucket, so its edge is exact to one bucket (1 s, 1 min and 24 min). A
//! share older than the log (time going backwards by more than a window) counts in the totals
//! only. Appending to a shared log keeps the per-share fold on hot memory; a worker remembers
//! where its latest entry is, so repeated shares in one bucket update that entry in place.
//!
//! Window work is held as `u128` (saturating): 2^128 hashes in one bucket is far beyond any real
//! hashrate, and these figures never reach money. Hashrates are display figures: work in the
//! window divided by its length.

use pool_core::{DifficultyUnit, Work};
use ruint::aliases::U256;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Buckets per window.
pub const BUCKETS: u64 = 60;

/// The windows reported, in milliseconds.
pub const WINDOWS_MS: [u64; 3] = [60_000, 3_600_000, 86_400_000];

fn work_u128(w: Work) -> u128 {
    let v = w.as_u256();
    if v.bit_len() > 128 {
        u128::MAX
    } else {
        v.to::<u128>()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    worker: u32,
    shares: u64,
    work: u128,
}

/// Where a worker's latest entry in one log is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    bucket_id: u64,
    index: u32,
}

impl Cursor {
    const NONE: Cursor = Cursor {
        bucket_id: u64::MAX,
        index: 0,
    };
}

/// The last [`BUCKETS`] buckets of one window length, for all workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BucketLog {
    bucket_ms: u64,
    /// Id (`time_ms / bucket_ms`) of `buckets[0]`; ids are consecutive.
    first_id: u64,
    buckets: VecDeque<Vec<Entry>>,
}

impl BucketLog {
    fn new(window_ms: u64) -> BucketLog {
        BucketLog {
            bucket_ms: window_ms / BUCKETS,
            first_id: 0,
            buckets: VecDeque::new(),
        }
    }

    #[inline]
    fn add(&mut self, cursor: &mut Cursor, worker: u32, time_ms: u64, work: u128) {
        let id = time_ms / self.bucket_ms;
        if self.buckets.is_empty() {
            self.first_id = id;
            self.buckets.push_back(Vec::new());
        }
        let last_id = self.first_id + self.buckets.len() as u64 - 1;
        if id > last_id {
            let gap = id - last_id;
            if gap >= BUCKETS {
                self.buckets.clear();
                self.first_id = id;
                self.buckets.push_back(Vec::new());
            } else {
                for _ in 0..gap {
                    let mut fresh = Vec::new();
                    if self.buckets.len() as u64 >= BUCKETS {
                        if let Some(mut old) = self.buckets.pop_front() {
                            old.clear();
                            fresh = old;
                        }
                        self.first_id += 1;
                    }
                    self.buckets.push_back(fresh);
                }
            }
        } else if id < self.first_id {
            // Time went backwards: open older buckets as long as the log spans one window.
            if last_id - id >= BUCKETS {
                return;
            }
            for _ in id..self.first_id {
                self.buckets.push_front(Vec::new());
            }
            self.first_id = id;
        }
        let Some(bucket) = self.buckets.get_mut((id - self.first_id) as usize) else {
            return;
        };
        if cursor.bucket_id == id {
            if let Some(e) = bucket.get_mut(cursor.index as usize) {
                if e.worker == worker {
                    e.shares += 1;
                    e.work = e.work.saturating_add(work);
                    return;
                }
            }
        }
        bucket.push(Entry {
            worker,
            shares: 1,
            work,
        });
        *cursor = Cursor {
            bucket_id: id,
            index: (bucket.len() - 1) as u32,
        };
    }

    /// Shares and work per worker within the window ending in now's bucket.
    fn sum(&self, now_ms: u64, workers: usize) -> Vec<(u64, u128)> {
        let mut out = vec![(0u64, 0u128); workers];
        let now_id = now_ms / self.bucket_ms;
        let oldest = now_id.saturating_sub(BUCKETS - 1);
        for (i, bucket) in self.buckets.iter().enumerate() {
            let id = self.first_id + i as u64;
            if id < oldest || id > now_id {
                continue;
            }
            for e in bucket {
                if let Some(slot) = out.get_mut(e.worker as usize) {
                    slot.0 += e.shares;
                    slot.1 = slot.1.saturating_add(e.work);
                }
            }
        }
        out
    }
}

/// A worker's running totals and its cursors into the window logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct WorkerTotals {
    shares: u64,
    work: Work,
    last_share_ms: u64,
    cursors: [Cursor; 3],
}

/// Share statistics of all workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShareCounters {
    workers: Vec<WorkerTotals>,
    logs: [BucketLog; 3],
}

impl Default for ShareCounters {
    fn default() -> Self {
        ShareCounters {
            workers: Vec::new(),
            logs: WINDOWS_MS.map(BucketLog::new),
        }
    }
}

impl ShareCounters {
    pub(crate) fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Registers the next worker id.
    pub(crate) fn add_worker(&mut self) {
        self.workers.push(WorkerTotals {
            shares: 0,
            work: Work::ZERO,
            last_share_ms: 0,
            cursors: [Cursor::NONE; 3],
        });
    }

    #[inline]
    pub(crate) fn add(&mut self, worker: u32, time_ms: u64, weight: Work) {
        let Some(w) = self.workers.get_mut(worker as usize) else {
            return;
        };
        w.shares += 1;
        w.work += weight;
        w.last_share_ms = w.last_share_ms.max(time_ms);
        let small = work_u128(weight);
        for (log, cursor) in self.logs.iter_mut().zip(w.cursors.iter_mut()) {
            log.add(cursor, worker, time_ms, small);
        }
    }

    /// Every worker's report as of `now_ms`, by worker id.
    pub(crate) fn reports(&self, now_ms: u64) -> Vec<ShareStats> {
        let n = self.workers.len();
        let sums: Vec<Vec<(u64, u128)>> = self.logs.iter().map(|l| l.sum(now_ms, n)).collect();
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut windows = [WindowStats::default(); 3];
                for (k, out) in windows.iter_mut().enumerate() {
                    let (shares, work) = sums[k][i];
                    *out = WindowStats {
                        window_ms: WINDOWS_MS[k],
                        shares,
                        work: Work::from_u256(U256::from(work)),
                    };
                }
                ShareStats {
                    total_shares: w.shares,
                    total_work: w.work,
                    last_share_ms: w.last_share_ms,
                    windows,
                }
            })
            .collect()
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
    /// Accepted difficulty in the window, in difficulty-1 shares of the chain's `unit`
    /// (display only).
    pub fn difficulty(&self, unit: DifficultyUnit) -> f64 {
        unit.work_difficulty(&self.work)
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
        let mut windows = [WindowStats::default(); 3];
        for (w, len) in windows.iter_mut().zip(WINDOWS_MS) {
            w.window_ms = len;
        }
        ShareStats {
            total_shares: 0,
            total_work: Work::ZERO,
            last_share_ms: 0,
            windows,
        }
    }

    /// Adds another report of the same instant (an address's stats are the sum of its workers').
    pub(crate) fn merge(&mut self, other: &ShareStats) {
        self.total_shares += other.total_shares;
        self.total_work += other.total_work;
        self.last_share_ms = self.last_share_ms.max(other.last_share_ms);
        for (a, b) in self.windows.iter_mut().zip(&other.windows) {
            a.shares += b.shares;
            a.work += b.work;
        }
    }

    /// Total accepted difficulty in difficulty-1 shares of the chain's `unit` (display only).
    pub fn total_difficulty(&self, unit: DifficultyUnit) -> f64 {
        unit.work_difficulty(&self.total_work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64) -> Work {
        Work::from_u256(U256::from(v))
    }

    fn one_worker() -> ShareCounters {
        let mut c = ShareCounters::default();
        c.add_worker();
        c
    }

    #[test]
    fn shown_difficulty_is_in_the_chains_unit_and_the_work_is_not() {
        // A scrypt difficulty-1 target is 65,536 times easier: 64 Bitcoin difficulty-1 shares
        // are 64 x 65,536 scrypt difficulty-1 shares.
        let mut c = one_worker();
        for t in 0..64 {
            c.add(0, t, pool_core::Target::DIFF1.work());
        }
        let r = c.reports(100)[0];
        assert_eq!(r.total_difficulty(DifficultyUnit::Bitcoin), 64.0);
        assert_eq!(r.total_difficulty(DifficultyUnit::Scrypt), 64.0 * 65_536.0);
        assert_eq!(
            r.windows[0].difficulty(DifficultyUnit::Scrypt),
            64.0 * 65_536.0
        );
        assert_eq!(r.windows[0].work, r.total_work);
    }

    #[test]
    fn windows_slide_with_event_time() {
        let mut c = one_worker();
        c.add(0, 0, w(10));
        c.add(0, 30_000, w(20));
        c.add(0, 3_000_000, w(5));
        let r = c.reports(3_000_000)[0];
        assert_eq!(r.total_shares, 3);
        assert_eq!(r.total_work, w(35));
        // The minute window holds only the last share; the hour all three.
        assert_eq!((r.windows[0].shares, r.windows[0].work), (1, w(5)));
        assert_eq!((r.windows[1].shares, r.windows[1].work), (3, w(35)));
        let r = c.reports(4_200_000)[0];
        assert_eq!(r.windows[0].shares, 0);
        assert_eq!(r.windows[1].shares, 1, "the first two are over an hour old");
    }

    #[test]
    fn repeated_shares_in_one_bucket_share_an_entry() {
        let mut c = ShareCounters::default();
        c.add_worker();
        c.add_worker();
        c.add(0, 1_000, w(1));
        c.add(0, 1_500, w(2));
        c.add(1, 1_600, w(4));
        c.add(0, 1_700, w(8));
        assert_eq!(
            c.logs[0].buckets[0].len(),
            2,
            "worker 0's later share joins its entry"
        );
        let r = c.reports(1_700);
        assert_eq!((r[0].windows[0].shares, r[0].windows[0].work), (3, w(11)));
        assert_eq!((r[1].windows[0].shares, r[1].windows[0].work), (1, w(4)));
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
    fn late_shares_count_in_the_windows_they_fall_in() {
        let mut c = one_worker();
        c.add(0, 10_000_000, w(1));
        c.add(0, 10_000_000 - 59_000, w(2)); // within the minute: counted in its bucket
        c.add(0, 10_000_000 - 61_000, w(7)); // over a minute before the newest: no minute bucket
        let r = c.reports(10_000_000)[0];
        assert_eq!(r.total_shares, 3);
        assert_eq!(r.windows[0].work, w(3));
        assert_eq!(r.windows[1].work, w(10));
        assert!(c.logs[0].buckets.len() as u64 <= BUCKETS);
    }

    #[test]
    fn a_long_gap_restarts_the_log() {
        let mut c = one_worker();
        c.add(0, 0, w(1));
        c.add(0, 500_000, w(2));
        assert_eq!(c.logs[0].buckets.len(), 1);
        let r = c.reports(500_000)[0];
        assert_eq!(r.windows[0].work, w(2));
        assert_eq!(r.windows[1].work, w(3));
    }
}

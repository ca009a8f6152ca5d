//! The core's record of what it applied from the stream (pure, no I/O but the ledger scan):
//! the last stream sequence applied, and per edge boot (`edge_id`, `boot_id`) the highest batch
//! counter applied and the counters below it that never arrived.
//!
//! [`Dedupe::decide`] says what to do with a message (its [`BatchId`] and stream sequence):
//! - [`Decision::Skip`] with [`SkipReason::Duplicate`]: its id was already applied for its boot
//!   (a publish retried past the stream's duplicate window, or a redelivery after a crash);
//! - [`Decision::Skip`] with [`SkipReason::StreamSeq`]: its stream sequence is at or below the
//!   last applied one (a redelivery: the stream only moves forward);
//! - [`Decision::Apply`], with the counters it skipped over when it is ahead of its boot's
//!   next counter ([`Apply::gap`]: they never arrived, and are reported), or marked
//!   [`Apply::late`] when it is one of those missing counters arriving after all.
//!
//! Nothing changes until [`Dedupe::record`] is called (once the append is durable), so a failed
//! append leaves the state as it was. The state is rebuilt at start from the ledger's
//! [`StreamBatch`] records ([`Dedupe::scan`]), which the core writes in the same append as each
//! batch's events, so the ledger alone says what was applied.

use crate::message::BatchId;
use ledger::{Ledger, LedgerError};
use pool_core::event::{Event, StreamBatch};
use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

/// The bincode variant index of [`Event::StreamBatch`] (the first four bytes of its encoding):
/// the scan decodes only these records.
const STREAM_BATCH_VARIANT: u32 = 15;

/// Why a message is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The batch id was applied already (its counter is at or below its boot's highest and not
    /// among the missing ones).
    Duplicate,
    /// The stream sequence is at or below the last one applied.
    StreamSeq { last_applied: u64 },
}

/// What to do with a batch that is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Apply {
    /// Counters of the same boot between the last applied and this one that never arrived
    /// (`None`: it follows on).
    pub gap: Option<RangeInclusive<u64>>,
    /// One of its boot's missing counters, arriving after a later one.
    pub late: bool,
    /// The first batch of a boot this core has seen.
    pub new_boot: bool,
}

/// See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Skip(SkipReason),
    Apply(Apply),
}

/// One edge boot's applied counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootState {
    /// The highest counter applied.
    pub last: u64,
    /// Counters below `last` that never arrived: disjoint ranges, start -> end (inclusive).
    missing: BTreeMap<u64, u64>,
}

impl BootState {
    fn is_missing(&self, counter: u64) -> bool {
        self.missing
            .range(..=counter)
            .next_back()
            .is_some_and(|(_, &end)| counter <= end)
    }

    fn remove_missing(&mut self, counter: u64) {
        let Some((&start, &end)) = self.missing.range(..=counter).next_back() else {
            return;
        };
        if counter > end {
            return;
        }
        self.missing.remove(&start);
        if start < counter {
            self.missing.insert(start, counter - 1);
        }
        if counter < end {
            self.missing.insert(counter + 1, end);
        }
    }

    /// How many counters below `last` never arrived.
    pub fn missing_count(&self) -> u64 {
        self.missing.iter().map(|(s, e)| e - s + 1).sum()
    }

    /// The missing counters, as ranges in order.
    pub fn missing(&self) -> Vec<RangeInclusive<u64>> {
        self.missing.iter().map(|(&s, &e)| s..=e).collect()
    }
}

/// The applied-batch state; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dedupe {
    /// The last stream sequence applied or skipped (`0`: none).
    last_stream_seq: u64,
    boots: HashMap<(u16, u64), BootState>,
    /// The next ledger seq a [`Dedupe::catch_up`] reads from.
    next_ledger_seq: u64,
}

/// What [`Dedupe::scan`] read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Ledger records read.
    pub records: u64,
    /// `StreamBatch` records among them.
    pub batches: u64,
    pub millis: u64,
}

impl Dedupe {
    pub fn new() -> Dedupe {
        Dedupe::default()
    }

    /// The last stream sequence applied or skipped (`0`: none).
    pub fn last_stream_seq(&self) -> u64 {
        self.last_stream_seq
    }

    /// A boot's state (`None`: never seen).
    pub fn boot(&self, edge_id: u16, boot_id: u64) -> Option<&BootState> {
        self.boots.get(&(edge_id, boot_id))
    }

    /// Edge boots seen.
    pub fn boot_count(&self) -> usize {
        self.boots.len()
    }

    /// The next ledger record [`Dedupe::catch_up`] reads.
    pub fn next_ledger_seq(&self) -> u64 {
        self.next_ledger_seq
    }

    /// Forgets the stream sequence floor (the stream was deleted and created anew, so its
    /// sequences started again at 1): from now on only batch ids decide.
    pub fn forget_stream_seq(&mut self) {
        self.last_stream_seq = 0;
    }

    /// What to do with the batch `id` delivered at `stream_seq` (changes nothing).
    pub fn decide(&self, id: &BatchId, stream_seq: u64) -> Decision {
        let boot = self.boots.get(&id.boot());
        if let Some(b) = boot {
            if id.counter <= b.last && !b.is_missing(id.counter) {
                return Decision::Skip(SkipReason::Duplicate);
            }
        }
        if stream_seq <= self.last_stream_seq {
            return Decision::Skip(SkipReason::StreamSeq {
                last_applied: self.last_stream_seq,
            });
        }
        Decision::Apply(match boot {
            None => Apply {
                gap: (id.counter > 1).then(|| 1..=id.counter - 1),
                late: false,
                new_boot: true,
            },
            Some(b) if id.counter > b.last => Apply {
                gap: (id.counter > b.last + 1).then(|| b.last + 1..=id.counter - 1),
                late: false,
                new_boot: false,
            },
            // Below `last` and missing (the duplicate case returned above).
            Some(_) => Apply {
                gap: None,
                late: true,
                new_boot: false,
            },
        })
    }

    /// Records that the batch `id` at `stream_seq` was applied (durably).
    pub fn record(&mut self, id: &BatchId, stream_seq: u64) {
        self.last_stream_seq = self.last_stream_seq.max(stream_seq);
        match self.boots.get_mut(&id.boot()) {
            None => {
                let mut b = BootState {
                    last: id.counter,
                    missing: BTreeMap::new(),
                };
                if id.counter > 1 {
                    b.missing.insert(1, id.counter - 1);
                }
                self.boots.insert(id.boot(), b);
            }
            Some(b) if id.counter > b.last => {
                if id.counter > b.last + 1 {
                    b.missing.insert(b.last + 1, id.counter - 1);
                }
                b.last = id.counter;
            }
            Some(b) => b.remove_missing(id.counter),
        }
    }

    /// Records that the message at `stream_seq` was skipped (and acknowledged): a later
    /// redelivery of it is skipped by its sequence.
    pub fn record_skip(&mut self, stream_seq: u64) {
        self.last_stream_seq = self.last_stream_seq.max(stream_seq);
    }

    /// Records a ledger `StreamBatch` record.
    pub fn record_stream_batch(&mut self, b: &StreamBatch) {
        let id = BatchId {
            edge_id: b.edge_id,
            boot_id: b.boot_id,
            counter: b.counter,
        };
        self.record(&id, b.stream_seq);
    }

    /// Notes that the ledger's records below `seq` were read (or written by the caller).
    pub fn set_next_ledger_seq(&mut self, seq: u64) {
        self.next_ledger_seq = self.next_ledger_seq.max(seq);
    }

    /// Builds the state from every `StreamBatch` record of the ledger (blocking: run it off
    /// the async workers). Only records of that variant are decoded.
    pub fn scan(ledger: &Ledger) -> Result<(Dedupe, ScanReport), LedgerError> {
        let started = std::time::Instant::now();
        let mut d = Dedupe::new();
        let from = ledger.base()?.map_or(0, |b| b.seq);
        d.next_ledger_seq = from;
        let mut report = d.catch_up(ledger)?;
        report.millis = started.elapsed().as_millis() as u64;
        Ok((d, report))
    }

    /// Reads the ledger's records from [`Dedupe::next_ledger_seq`] on and records their
    /// `StreamBatch`es: after an append whose outcome is unknown (it failed, but a failed append
    /// may still be durable), the ledger says what was applied.
    pub fn catch_up(&mut self, ledger: &Ledger) -> Result<ScanReport, LedgerError> {
        let mut report = ScanReport::default();
        for raw in ledger.read_raw_range(self.next_ledger_seq, u64::MAX) {
            let raw = raw?;
            report.records += 1;
            self.next_ledger_seq = raw.seq + 1;
            if raw.event.get(..4) != Some(&STREAM_BATCH_VARIANT.to_le_bytes()[..]) {
                continue;
            }
            let event: Event = bincode::deserialize(&raw.event).map_err(|e| {
                LedgerError::Encode(format!("ledger record {} does not decode: {e}", raw.seq))
            })?;
            if let Event::StreamBatch(b) = event {
                report.batches += 1;
                self.record_stream_batch(&b);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(edge_id: u16, boot_id: u64, counter: u64) -> BatchId {
        BatchId {
            edge_id,
            boot_id,
            counter,
        }
    }

    fn apply(gap: Option<RangeInclusive<u64>>, late: bool, new_boot: bool) -> Decision {
        Decision::Apply(Apply {
            gap,
            late,
            new_boot,
        })
    }

    #[test]
    fn in_order_batches_apply_and_repeats_are_skipped_saying_why() {
        let mut d = Dedupe::new();
        assert_eq!(d.decide(&id(1, 7, 1), 1), apply(None, false, true));
        d.record(&id(1, 7, 1), 1);
        assert_eq!(d.decide(&id(1, 7, 2), 2), apply(None, false, false));
        d.record(&id(1, 7, 2), 2);
        // A redelivery: both rules match; the id is named.
        assert_eq!(
            d.decide(&id(1, 7, 2), 2),
            Decision::Skip(SkipReason::Duplicate)
        );
        // A retry published again past the duplicate window: a new stream seq, an old id.
        assert_eq!(
            d.decide(&id(1, 7, 1), 9),
            Decision::Skip(SkipReason::Duplicate)
        );
        // A new id at an old stream seq.
        assert_eq!(
            d.decide(&id(2, 1, 1), 2),
            Decision::Skip(SkipReason::StreamSeq { last_applied: 2 })
        );
        d.forget_stream_seq();
        assert_eq!(d.decide(&id(2, 1, 1), 2), apply(None, false, true));
    }

    #[test]
    fn gaps_are_reported_and_late_arrivals_applied_once() {
        let mut d = Dedupe::new();
        d.record(&id(1, 7, 1), 1);
        assert_eq!(d.decide(&id(1, 7, 5), 2), apply(Some(2..=4), false, false));
        d.record(&id(1, 7, 5), 2);
        assert_eq!(d.boot(1, 7).unwrap().missing(), vec![2..=4]);
        assert_eq!(d.decide(&id(1, 7, 3), 3), apply(None, true, false));
        d.record(&id(1, 7, 3), 3);
        assert_eq!(d.boot(1, 7).unwrap().missing(), vec![2..=2, 4..=4]);
        assert_eq!(d.boot(1, 7).unwrap().missing_count(), 2);
        assert_eq!(
            d.decide(&id(1, 7, 3), 4),
            Decision::Skip(SkipReason::Duplicate)
        );
        // A boot first seen past counter 1 misses the ones before.
        assert_eq!(d.decide(&id(2, 9, 3), 5), apply(Some(1..=2), false, true));
        d.record(&id(2, 9, 3), 5);
        assert_eq!(d.decide(&id(2, 9, 1), 6), apply(None, true, false));
    }

    #[test]
    fn the_scan_rebuilds_the_state_from_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let mut live = Dedupe::new();
        let batches = [(1u16, 5u64, 1u64, 10u64), (1, 5, 2, 11), (2, 8, 3, 12)];
        for (edge_id, boot_id, counter, stream_seq) in batches {
            let b = StreamBatch {
                edge_id,
                boot_id,
                counter,
                stream_seq,
                events: 1,
                sealed_ms: 0,
            };
            let other = Event::PaymentFailed(pool_core::event::PaymentFailed {
                payment_id: 1,
                reason: "x".into(),
            });
            ledger
                .append_batch_blocking(vec![Event::StreamBatch(b), other])
                .unwrap();
            live.record_stream_batch(&b);
        }
        let (scanned, report) = Dedupe::scan(&ledger).unwrap();
        assert_eq!((report.records, report.batches), (6, 3));
        assert_eq!(scanned.last_stream_seq(), 12);
        assert_eq!(scanned.boots, live.boots);
        assert_eq!(scanned.next_ledger_seq(), 6);
        ledger.close_blocking();
    }

    proptest! {
        /// Any delivery order with repeats: each id is applied exactly once, every counter
        /// below a boot's highest is either applied or missing, and a missing counter is never
        /// one that was applied.
        #[test]
        fn every_id_applies_exactly_once(
            deliveries in proptest::collection::vec((0u64..3, 1u64..12), 1..80)
        ) {
            let mut d = Dedupe::new();
            let mut applied = std::collections::HashSet::new();
            for (i, (boot, counter)) in deliveries.iter().enumerate() {
                let batch = id(1, *boot, *counter);
                match d.decide(&batch, i as u64 + 1) {
                    Decision::Apply(a) => {
                        prop_assert!(applied.insert(batch), "{batch} applied twice");
                        if let Some(gap) = a.gap {
                            for c in gap {
                                prop_assert!(!applied.contains(&id(1, *boot, c)));
                            }
                        }
                        d.record(&batch, i as u64 + 1);
                    }
                    Decision::Skip(SkipReason::Duplicate) => {
                        prop_assert!(applied.contains(&batch));
                        d.record_skip(i as u64 + 1);
                    }
                    Decision::Skip(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            for boot in 0..3u64 {
                let Some(state) = d.boot(1, boot) else { continue };
                for c in 1..=state.last {
                    let was = applied.contains(&id(1, boot, c));
                    prop_assert_eq!(was, !state.is_missing(c), "counter {}", c);
                }
            }
        }
    }
}

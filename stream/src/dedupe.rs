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
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::Path;

/// The state file's format version.
const STATE_FILE_VERSION: u32 = 1;

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
    /// The state came from the state file up to this ledger seq (the scan read from there).
    pub from_file: Option<u64>,
}

/// The state file ([`Dedupe::save`]).
#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The state covers the ledger's records below this seq...
    next_ledger_seq: u64,
    /// ... and the record just below it has this chain hash.
    hash: [u8; 32],
    last_stream_seq: u64,
    boots: Vec<SavedBoot>,
}

/// One boot in the state file: (edge_id, boot_id, last, missing ranges as start, end).
type SavedBoot = (u16, u64, u64, Vec<(u64, u64)>);

/// Why the state file was not written or not used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("state file {path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}")]
    Ledger(#[from] LedgerError),
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

    /// The chain hash of ledger record `seq` (`None`: not in the ledger).
    fn hash_of(ledger: &Ledger, seq: u64) -> Result<Option<[u8; 32]>, LedgerError> {
        if ledger.head().map_or(true, |h| h.seq < seq) {
            return Ok(None);
        }
        if ledger.base()?.is_some_and(|b| seq < b.seq) {
            return Ok(None);
        }
        match ledger.read_raw_range(seq, seq + 1).next() {
            Some(r) => Ok(Some(r?.hash)),
            None => Ok(None),
        }
    }

    /// Writes the state (for the ledger's records below [`Dedupe::next_ledger_seq`]) to `path`,
    /// atomically (a temporary file, fsync, rename). Nothing to write before the first record.
    pub fn save(&self, ledger: &Ledger, path: &Path) -> Result<(), StateFileError> {
        let Some(last) = self.next_ledger_seq.checked_sub(1) else {
            return Ok(());
        };
        let io = |e: std::io::Error| StateFileError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let Some(hash) = Self::hash_of(ledger, last)? else {
            return Err(StateFileError::Io {
                path: path.display().to_string(),
                message: format!("ledger record {last} is not there"),
            });
        };
        let mut boots: Vec<SavedBoot> = self
            .boots
            .iter()
            .map(|(&(edge_id, boot_id), b)| {
                let missing = b.missing.iter().map(|(&s, &e)| (s, e)).collect();
                (edge_id, boot_id, b.last, missing)
            })
            .collect();
        boots.sort_by_key(|b| (b.0, b.1));
        let file = StateFile {
            version: STATE_FILE_VERSION,
            next_ledger_seq: self.next_ledger_seq,
            hash,
            last_stream_seq: self.last_stream_seq,
            boots,
        };
        let bytes = bincode::serialize(&file).map_err(|e| StateFileError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// The state file's state if it matches the ledger (see the module docs), else `Err` with
    /// why not.
    fn load(ledger: &Ledger, path: &Path) -> Result<Dedupe, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let file: StateFile = bincode::deserialize(&bytes).map_err(|e| e.to_string())?;
        if file.version != STATE_FILE_VERSION {
            return Err(format!("format {} is not known", file.version));
        }
        let last = file
            .next_ledger_seq
            .checked_sub(1)
            .ok_or("it covers no record")?;
        match Self::hash_of(ledger, last).map_err(|e| e.to_string())? {
            Some(hash) if hash == file.hash => {}
            Some(_) => return Err(format!("ledger record {last} has another hash")),
            None => return Err(format!("ledger record {last} is not there (or archived)")),
        }
        let boots = file
            .boots
            .into_iter()
            .map(|(edge_id, boot_id, last, missing)| {
                let state = BootState {
                    last,
                    missing: missing.into_iter().collect(),
                };
                ((edge_id, boot_id), state)
            })
            .collect();
        Ok(Dedupe {
            last_stream_seq: file.last_stream_seq,
            boots,
            next_ledger_seq: file.next_ledger_seq,
        })
    }

    /// The state from the state file and the ledger after it, or from a scan of the whole
    /// ledger when the file is missing or does not match (logged). Blocking.
    pub fn load_or_scan(ledger: &Ledger, path: &Path) -> Result<(Dedupe, ScanReport), LedgerError> {
        let started = std::time::Instant::now();
        match Self::load(ledger, path) {
            Ok(mut d) => {
                let from = d.next_ledger_seq;
                let mut report = d.catch_up(ledger)?;
                report.from_file = Some(from);
                report.millis = started.elapsed().as_millis() as u64;
                Ok((d, report))
            }
            Err(why) => {
                if path.exists() {
                    tracing::warn!(file = %path.display(), "applied-batch state file not used ({why}): scanning the whole ledger");
                }
                Self::scan(ledger)
            }
        }
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
        // Saved, then one more batch: the file's state plus the tail.
        let file = dir.path().join("stream-applied.bin");
        scanned.save(&ledger, &file).unwrap();
        let b = StreamBatch {
            edge_id: 1,
            boot_id: 5,
            counter: 4,
            stream_seq: 13,
            events: 0,
            sealed_ms: 0,
        };
        ledger
            .append_batch_blocking(vec![Event::StreamBatch(b)])
            .unwrap();
        let (loaded, report) = Dedupe::load_or_scan(&ledger, &file).unwrap();
        assert_eq!(report.from_file, Some(6));
        assert_eq!((report.records, report.batches), (1, 1));
        let (full, _) = Dedupe::scan(&ledger).unwrap();
        assert_eq!(loaded, full);
        assert_eq!(loaded.boot(1, 5).unwrap().missing(), vec![3..=3]);
        // A file of another ledger (another hash there) is not used.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Ledger::open(other_dir.path()).unwrap();
        for _ in 0..7 {
            other
                .append_blocking(Event::PaymentFailed(pool_core::event::PaymentFailed {
                    payment_id: 9,
                    reason: "y".into(),
                }))
                .unwrap();
        }
        let (fallback, report) = Dedupe::load_or_scan(&other, &file).unwrap();
        assert_eq!((report.from_file, report.records), (None, 7));
        assert_eq!(fallback.boot_count(), 0);
        other.close_blocking();
        ledger.close_blocking();
    }

    /// The start-up scan's cost on a large ledger (1M records: 10,000 batches of 99 shares).
    /// `cargo test --release -p stream --lib -- --ignored --nocapture scan_of_a_million`.
    #[test]
    #[ignore]
    fn scan_of_a_million_records() {
        use pool_core::event::{PayoutAddress, ShareAccepted, WorkerName};
        use pool_core::Target;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let share = Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress("mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX".into()),
            worker: WorkerName("rig".into()),
            share_target: Target::MAX,
            weight: Target::MAX.work(),
            job_id: 1,
            height: 1,
            network_target: Target::MAX,
            time_ms: 1,
        });
        for counter in 1..=10_000u64 {
            let mut batch = vec![Event::StreamBatch(StreamBatch {
                edge_id: 1 + (counter % 2) as u16,
                boot_id: 7,
                counter: counter / 2 + 1,
                stream_seq: counter,
                events: 99,
                sealed_ms: 0,
            })];
            batch.extend(std::iter::repeat(share.clone()).take(99));
            ledger.append_batch_blocking(batch).unwrap();
        }
        let (d, report) = Dedupe::scan(&ledger).unwrap();
        println!(
            "scan: {} records, {} stream batches, {} ms",
            report.records, report.batches, report.millis
        );
        assert_eq!((report.records, report.batches), (1_000_000, 10_000));
        assert_eq!(d.last_stream_seq(), 10_000);
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

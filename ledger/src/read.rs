//! Reading records back by sequence: find the batch holding the first wanted record, then
//! walk batches in key order.

use crate::error::{LedgerError, Problem, VerifyError};
use crate::record::{batch_key, BatchRecords};
use crate::Record;

/// Records in sequence order; see [`crate::Ledger::read_range`]. Stops after the first error.
pub struct RecordIter {
    batches: Option<sled::Iter>,
    current: Option<(sled::IVec, (usize, u32))>,
    /// The next sequence number this iterator must yield.
    next: u64,
    end: u64,
    /// `Some(base)`: the range starts below the ledger's base (its first item says so).
    archived: Option<u64>,
}

impl RecordIter {
    pub(crate) fn new(tree: &sled::Tree, from: u64, end: u64, base: u64) -> RecordIter {
        if from < base && from < end {
            return RecordIter {
                batches: None,
                current: None,
                next: from,
                end,
                archived: Some(base),
            };
        }
        let batches = if from >= end {
            None
        } else {
            // The batch holding `from` is the last one whose key (first seq) is <= from.
            let start = match tree.range(..=batch_key(from)).next_back() {
                Some(Ok((key, _))) => key,
                _ => batch_key(from).as_slice().into(),
            };
            Some(tree.range(start..))
        };
        RecordIter {
            batches,
            current: None,
            next: from,
            end,
            archived: None,
        }
    }

    fn fail(&mut self, problem: Problem) -> Option<Result<Record, LedgerError>> {
        self.batches = None;
        Some(Err(LedgerError::Corrupt(VerifyError {
            seq: self.next,
            problem,
        })))
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(base) = self.archived.take() {
            return self.fail(Problem::Archived { base });
        }
        loop {
            if self.next >= self.end {
                self.batches = None;
                return None;
            }
            let batches = self.batches.as_mut()?;
            let Some((value, position)) = self.current.take() else {
                let (_, value) = match batches.next() {
                    None => return self.fail(Problem::Malformed("ledger ends early".into())),
                    Some(Err(e)) => return self.fail(Problem::Storage(e.to_string())),
                    Some(Ok(entry)) => entry,
                };
                match BatchRecords::parse(&value) {
                    Ok(records) => {
                        let position = records.position();
                        self.current = Some((value, position));
                    }
                    Err(p) => return self.fail(p),
                }
                continue;
            };
            let mut records = BatchRecords::resume(&value, position);
            let view = match records.next_record() {
                Ok(None) => continue,
                Ok(Some(view)) => view,
                Err(p) => return self.fail(p),
            };
            let position = records.position();
            if view.seq < self.next {
                self.current = Some((value, position));
                continue;
            }
            if view.seq != self.next {
                return self.fail(Problem::OutOfSequence { found: view.seq });
            }
            let record = match view.decode_event() {
                Ok(event) => Record {
                    seq: view.seq,
                    version: view.version,
                    time_ms: view.time_ms,
                    event,
                    hash: view.hash,
                },
                Err(p) => return self.fail(p),
            };
            self.current = Some((value, position));
            self.next += 1;
            return Some(Ok(record));
        }
    }
}

//! Reading records back by sequence: find the batch holding the first wanted record, then
//! walk batches in key order. Chunks (format 2) are expanded to their format-1 image
//! ([`crate::record::expand_value`]) as they are reached. [`RecordIter`] decodes each record's
//! event; [`crate::RawRecordIter`] keeps its stored bytes: one walk ([`Walk`]) serves both.

use crate::error::{LedgerError, Problem, VerifyError};
use crate::record::{batch_key, expand_value, BatchRecords, RecordView};
use crate::Record;
use std::borrow::Cow;

/// Records in sequence order; see [`crate::Ledger::read_range`]. Stops after the first error.
pub struct RecordIter(Walk);

impl RecordIter {
    pub(crate) fn new(walk: Walk) -> RecordIter {
        RecordIter(walk)
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_with(|view| {
            Ok(Record {
                seq: view.seq,
                version: view.version,
                time_ms: view.time_ms,
                event: view.decode_event()?,
                hash: view.hash,
            })
        })
    }
}

/// The walk over stored values that every record reader shares ([`RecordIter`],
/// [`crate::RawRecordIter`]): it yields each wanted record's [`RecordView`] in sequence to a
/// builder that makes the item. Stops after the first error.
pub(crate) struct Walk {
    /// `None` for a walk that only yields `error`.
    tree: Option<sled::Tree>,
    /// An error to yield first (the store could not be read at all).
    error: Option<LedgerError>,
    batches: Option<sled::Iter>,
    /// Whether the walk has just sought again (see [`Walk::next_with`]).
    sought: bool,
    current: Option<(Stored, (usize, u32))>,
    /// The next sequence number this walk must yield.
    next: u64,
    end: u64,
    /// `Some(base)`: the range starts below the ledger's base (its first item says so).
    archived: Option<u64>,
}

/// A stored value being read: a format-1 batch in sled's buffer, or a chunk's expanded image.
enum Stored {
    Batch(sled::IVec),
    Image(Vec<u8>),
}

impl Stored {
    fn bytes(&self) -> &[u8] {
        match self {
            Stored::Batch(v) => v,
            Stored::Image(v) => v,
        }
    }
}

impl Walk {
    pub(crate) fn new(tree: &sled::Tree, from: u64, end: u64, base: u64) -> Walk {
        if from < base && from < end {
            return Walk {
                tree: None,
                error: None,
                batches: None,
                sought: false,
                current: None,
                next: from,
                end,
                archived: Some(base),
            };
        }
        let batches = (from < end).then(|| values_from(tree, from));
        Walk {
            tree: Some(tree.clone()),
            error: None,
            batches,
            sought: false,
            current: None,
            next: from,
            end,
            archived: None,
        }
    }

    /// A walk that yields `error` (unless nothing was asked for), then ends.
    pub(crate) fn failed(from: u64, end: u64, error: LedgerError) -> Walk {
        Walk {
            tree: None,
            error: (from < end).then_some(error),
            batches: None,
            sought: false,
            current: None,
            next: from,
            end,
            archived: None,
        }
    }

    fn fail<T>(&mut self, problem: Problem) -> Option<Result<T, LedgerError>> {
        self.batches = None;
        Some(Err(LedgerError::Corrupt(VerifyError {
            seq: self.next,
            problem,
        })))
    }
}

/// The stored values from the one holding `seq` on: the value holding it is the last one whose
/// key (first seq) is at or below it.
fn values_from(tree: &sled::Tree, seq: u64) -> sled::Iter {
    let start = match tree.range(..=batch_key(seq)).next_back() {
        Some(Ok((key, _))) => key,
        _ => batch_key(seq).as_slice().into(),
    };
    tree.range(start..)
}

impl Walk {
    /// The next wanted record, made by `build` from its view (a `build` error is the record's
    /// problem), or `None` at the end.
    pub(crate) fn next_with<T>(
        &mut self,
        build: impl FnOnce(&RecordView<'_>) -> Result<T, Problem>,
    ) -> Option<Result<T, LedgerError>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
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
                let (key, value) = match batches.next() {
                    None => return self.fail(Problem::Malformed("ledger ends early".into())),
                    Some(Err(e)) => return self.fail(Problem::Storage(e.to_string())),
                    Some(Ok(entry)) => entry,
                };
                // A value starting past the next wanted record: the compactor may have just
                // replaced the values holding it by a chunk (under an earlier key), so seek
                // the value holding it again, once; a real gap shows on the second look.
                let past = crate::record::key_seq(&key).is_some_and(|k| k > self.next);
                if let (true, false, Some(tree)) = (past, self.sought, &self.tree) {
                    self.sought = true;
                    self.batches = Some(values_from(tree, self.next));
                    continue;
                }
                self.sought = false;
                let stored = match expand_value(&value) {
                    Ok(Cow::Borrowed(_)) => Stored::Batch(value.clone()),
                    Ok(Cow::Owned(image)) => Stored::Image(image),
                    Err(p) => return self.fail(p),
                };
                match BatchRecords::parse(stored.bytes()) {
                    Ok(records) => {
                        let position = records.position();
                        self.current = Some((stored, position));
                    }
                    Err(p) => return self.fail(p),
                }
                continue;
            };
            let mut records = BatchRecords::resume(value.bytes(), position);
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
            let record = match build(&view) {
                Ok(record) => record,
                Err(p) => return self.fail(p),
            };
            self.current = Some((value, position));
            self.next += 1;
            return Some(Ok(record));
        }
    }
}

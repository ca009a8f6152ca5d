//! Reading records back as stored, undecoded ([`crate::Ledger::read_raw_range`]): the bytes an
//! export carries (`obtc-pool ledger export`, the `ledger_export` RPC), which must be exactly
//! the bytes the chain hash covers, not a re-encoding of the decoded event. The walk is
//! [`crate::RecordIter`]'s: find the stored value holding the first wanted record, expand a
//! chunk to its format-1 image, walk values in key order; only the event is not decoded.

use crate::error::{LedgerError, Problem, VerifyError};
use crate::record::{batch_key, expand_value, key_seq, BatchRecords, RawRecord};
use crate::Ledger;
use std::sync::atomic::Ordering;

impl Ledger {
    /// Durable records with `from <= seq < to_exclusive` as stored: schema version, time, the
    /// event's bytes (not decoded, so not checked to decode) and the stored chain hash (not
    /// checked either: [`Ledger::verify`] and the audit check the chain). Stops after the first
    /// error; a `from` below the ledger's base is [`Problem::Archived`].
    pub fn read_raw_range(&self, from: u64, to_exclusive: u64) -> RawRecordIter {
        let end = self.head().map_or(0, |h| h.seq + 1).min(to_exclusive);
        let base = self.inner.base_seq.load(Ordering::Acquire);
        let mut iter = RawRecordIter {
            tree: None,
            error: None,
            values: None,
            sought: false,
            current: None,
            next: from,
            end,
        };
        if from >= end {
            return iter;
        }
        if from < base {
            iter.error = Some(corrupt(from, Problem::Archived { base }));
            return iter;
        }
        match self.inner.store.get() {
            Ok(store) => {
                iter.values = Some(values_from(&store.tree, from));
                iter.tree = Some(store.tree);
            }
            Err(e) => iter.error = Some(e),
        }
        iter
    }
}

/// Stored records in sequence order; see [`Ledger::read_raw_range`].
pub struct RawRecordIter {
    tree: Option<sled::Tree>,
    /// An error to yield next (then the iterator ends).
    error: Option<LedgerError>,
    values: Option<sled::Iter>,
    /// Whether the iterator has just sought again (a compaction may have moved the values).
    sought: bool,
    /// The format-1 image of the value being read, and the position in it.
    current: Option<(Vec<u8>, (usize, u32))>,
    next: u64,
    end: u64,
}

fn corrupt(seq: u64, problem: Problem) -> LedgerError {
    LedgerError::Corrupt(VerifyError { seq, problem })
}

/// The stored values from the one holding `seq` on (the last one whose key is at or below it).
fn values_from(tree: &sled::Tree, seq: u64) -> sled::Iter {
    let start = match tree.range(..=batch_key(seq)).next_back() {
        Some(Ok((key, _))) => key,
        _ => batch_key(seq).as_slice().into(),
    };
    tree.range(start..)
}

impl RawRecordIter {
    fn fail(&mut self, problem: Problem) -> Option<Result<RawRecord, LedgerError>> {
        self.values = None;
        self.end = self.next;
        Some(Err(corrupt(self.next, problem)))
    }
}

impl Iterator for RawRecordIter {
    type Item = Result<RawRecord, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            self.end = self.next;
            return Some(Err(error));
        }
        loop {
            if self.next >= self.end {
                self.values = None;
                return None;
            }
            let values = self.values.as_mut()?;
            let Some((image, position)) = self.current.take() else {
                let (key, value) = match values.next() {
                    None => return self.fail(Problem::Malformed("ledger ends early".into())),
                    Some(Err(e)) => return self.fail(Problem::Storage(e.to_string())),
                    Some(Ok(entry)) => entry,
                };
                // A value starting past the next wanted record: the compactor may have just
                // replaced the values holding it by a chunk under an earlier key; seek once.
                let past = key_seq(&key).is_some_and(|k| k > self.next);
                if let (true, false, Some(tree)) = (past, self.sought, &self.tree) {
                    self.sought = true;
                    self.values = Some(values_from(tree, self.next));
                    continue;
                }
                self.sought = false;
                let image = match expand_value(&value) {
                    Ok(image) => image.into_owned(),
                    Err(p) => return self.fail(p),
                };
                match BatchRecords::parse(&image) {
                    Ok(records) => {
                        let position = records.position();
                        self.current = Some((image, position));
                    }
                    Err(p) => return self.fail(p),
                }
                continue;
            };
            let mut records = BatchRecords::resume(&image, position);
            let view = match records.next_record() {
                Ok(None) => continue,
                Ok(Some(view)) => view,
                Err(p) => return self.fail(p),
            };
            let position = records.position();
            if view.seq < self.next {
                self.current = Some((image, position));
                continue;
            }
            if view.seq != self.next {
                return self.fail(Problem::OutOfSequence { found: view.seq });
            }
            let record = RawRecord {
                seq: view.seq,
                version: view.version,
                time_ms: view.time_ms,
                event: view.event.to_vec(),
                hash: view.hash,
            };
            self.current = Some((image, position));
            self.next += 1;
            return Some(Ok(record));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::export::canonical_bytes;
    use crate::record::{chain_hash, encode_event, GENESIS_PREV_HASH};
    use crate::{CompactOptions, Ledger, WriterOptions};
    use pool_core::event::PaymentFailed;
    use pool_core::Event;

    fn event(i: u64) -> Event {
        Event::PaymentFailed(PaymentFailed {
            payment_id: i,
            reason: format!("reason {i}"),
        })
    }

    /// The raw records are the decoded ones' bytes and hashes, chain onto each other, in any
    /// range, before and after compaction.
    #[test]
    fn raw_records_are_the_stored_bytes_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let compaction = CompactOptions {
            background: false,
            chunk_records: 50,
            ..CompactOptions::default()
        };
        let ledger = Ledger::open_tuned(dir.path(), WriterOptions::default(), compaction).unwrap();
        for chunk in (0..300).collect::<Vec<u64>>().chunks(7) {
            ledger
                .append_batch_blocking(chunk.iter().map(|&i| event(i)).collect())
                .unwrap();
        }
        let check = |ledger: &Ledger| {
            let raw: Vec<_> = ledger
                .read_raw_range(0, u64::MAX)
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(raw.len(), 300);
            let mut prev = GENESIS_PREV_HASH;
            for (r, decoded) in raw.iter().zip(ledger.read_from(0)) {
                let decoded = decoded.unwrap();
                assert_eq!((r.seq, r.hash), (decoded.seq, decoded.hash));
                assert_eq!(r.event, encode_event(&decoded.event).unwrap());
                assert_eq!(chain_hash(&prev, &canonical_bytes(r)), r.hash);
                prev = r.hash;
            }
            let middle: Vec<_> = ledger.read_raw_range(45, 52).map(|r| r.unwrap()).collect();
            assert_eq!(middle, raw[45..52]);
            assert_eq!(ledger.read_raw_range(299, 1000).count(), 1);
            assert_eq!(ledger.read_raw_range(300, 1000).count(), 0);
        };
        check(&ledger);
        let compacted = ledger.compact().unwrap();
        assert!(compacted.chunks > 0, "{compacted:?}");
        check(&ledger);
        ledger.close_blocking();
    }
}

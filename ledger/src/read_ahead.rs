//! Reading ahead: the records of [`crate::Ledger::read_range`], read and decoded on a helper
//! thread while the caller consumes them, so a replay's decoding and its fold run side by side.
//! The helper hands over chunks of decoded records through a bounded channel (at most
//! [`CHUNKS_IN_FLIGHT`] chunks wait, so a slow consumer holds the memory of a few thousand
//! records, never the whole ledger).

use crate::error::LedgerError;
use crate::read::RecordIter;
use crate::Record;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Records per chunk handed from the helper to the consumer.
const CHUNK: usize = 1024;
/// Decoded chunks that may wait for the consumer.
const CHUNKS_IN_FLIGHT: usize = 4;

type Chunk = Vec<Result<Record, LedgerError>>;

/// The same records, in the same order, as [`RecordIter`] (and, like it, nothing after the
/// first error), decoded ahead on a helper thread. Dropping it early stops the helper and
/// waits for it.
pub struct ReadAhead {
    source: Source,
}

enum Source {
    Helper {
        /// `None` once the helper is done.
        chunks: Option<mpsc::Receiver<Chunk>>,
        current: std::vec::IntoIter<Result<Record, LedgerError>>,
        helper: Option<JoinHandle<()>>,
    },
    /// No helper thread could be started: read in the calling thread.
    Inline(Box<RecordIter>),
}

impl ReadAhead {
    pub(crate) fn new(tree: &sled::Tree, from: u64, end: u64) -> ReadAhead {
        if from >= end {
            // Nothing to read (a tail follower that is up to date): no thread for that.
            return ReadAhead {
                source: Source::Inline(Box::new(RecordIter::new(tree, from, end))),
            };
        }
        let (tx, rx) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let theirs = tree.clone();
        let spawned = std::thread::Builder::new()
            .name("ledger-read-ahead".into())
            .spawn(move || feed(RecordIter::new(&theirs, from, end), &tx));
        let source = match spawned {
            Ok(helper) => Source::Helper {
                chunks: Some(rx),
                current: Vec::new().into_iter(),
                helper: Some(helper),
            },
            Err(_) => Source::Inline(Box::new(RecordIter::new(tree, from, end))),
        };
        ReadAhead { source }
    }
}

/// The helper's loop: decode a chunk, hand it over, until the records end or the consumer
/// has gone.
fn feed(mut records: RecordIter, tx: &mpsc::SyncSender<Chunk>) {
    loop {
        let chunk: Chunk = records.by_ref().take(CHUNK).collect();
        if chunk.is_empty() || tx.send(chunk).is_err() {
            return;
        }
    }
}

impl Iterator for ReadAhead {
    type Item = Result<Record, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (chunks, current, helper) = match &mut self.source {
            Source::Inline(records) => return records.next(),
            Source::Helper {
                chunks,
                current,
                helper,
            } => (chunks, current, helper),
        };
        loop {
            if let Some(record) = current.next() {
                return Some(record);
            }
            match chunks.as_ref()?.recv() {
                Ok(chunk) => *current = chunk.into_iter(),
                Err(_) => {
                    // The helper has finished (or died): the records end here, unless it
                    // panicked, which must not pass for the end of the ledger.
                    *chunks = None;
                    let panicked = helper.take().is_some_and(|h| h.join().is_err());
                    if panicked {
                        return Some(Err(LedgerError::Storage(
                            "the read-ahead thread failed while reading the ledger".into(),
                        )));
                    }
                    return None;
                }
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Source::Helper { chunks, helper, .. } = &mut self.source {
            // Closing the channel makes the helper's next send fail, so it stops.
            *chunks = None;
            if let Some(helper) = helper.take() {
                let _ = helper.join();
            }
        }
    }
}

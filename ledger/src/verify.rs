//! Whole-chain verification and tail recovery, straight over the stored bytes: records are
//! checked where they lie in sled's buffers and only the event is decoded.

use crate::chunk::ChunkHeader;
use crate::error::{Problem, VerifyError};
use crate::record::{
    batch_key, decode_head, expand_value, is_chunk, key_seq, value_tail, BatchRecords, BASE_KEY,
    GENESIS_PREV_HASH, HEAD_KEY,
};
use crate::{Base, Head};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};

/// What a successful verification checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// The first record checked: 0, or the ledger's base once a prefix was dropped (the chain
    /// was checked onto the base's recorded previous hash).
    pub first: u64,
    /// Records checked (= head seq + 1 - first).
    pub records: u64,
    /// Commit batches (sled entries) checked.
    pub batches: u64,
    /// The last record, `None` for an empty ledger.
    pub head: Option<Head>,
}

fn bad(seq: u64, problem: Problem) -> VerifyError {
    VerifyError { seq, problem }
}

/// Checks one batch stored under `key` whose first record must be `expected` and must chain
/// onto `prev`; returns the last record's head. With `decode`, every event must decode too.
///
/// A chunk (format 2) is expanded first: its records' hashes are recomputed from its stored
/// previous hash, which must be `prev`, and the last one must be its stored last hash, so its
/// records' hashes need no second check here. A fault inside a chunk is reported at the
/// chunk's first record (only its last hash is stored).
pub(crate) fn check_batch(
    key: &[u8],
    value: &[u8],
    expected: u64,
    prev: [u8; 32],
    decode: bool,
) -> Result<Option<Head>, VerifyError> {
    check_value(key, value, expected, prev, decode).map(|(head, _)| Some(head))
}

/// [`check_batch`], also handing back the value's format-1 image (the value itself for a
/// batch, a chunk expanded), for a caller that reads the records next (no second expansion).
pub(crate) fn check_value<'a>(
    key: &[u8],
    value: &'a [u8],
    expected: u64,
    prev: [u8; 32],
    decode: bool,
) -> Result<(Head, std::borrow::Cow<'a, [u8]>), VerifyError> {
    let key = key_seq(key).ok_or_else(|| {
        bad(
            expected,
            Problem::Malformed(format!("batch key of {} bytes", key.len())),
        )
    })?;
    let chunk = is_chunk(value);
    if chunk {
        let header = ChunkHeader::parse(value).map_err(|p| bad(expected, p))?;
        if header.first_seq != expected {
            return Err(bad(
                expected,
                Problem::OutOfSequence {
                    found: header.first_seq,
                },
            ));
        }
        if key != header.first_seq {
            return Err(bad(
                expected,
                Problem::BatchKey {
                    key,
                    first: header.first_seq,
                },
            ));
        }
        if header.prev_hash != prev {
            return Err(bad(expected, Problem::HashMismatch));
        }
    }
    let image = expand_value(value).map_err(|p| bad(expected, p))?;
    let mut records = BatchRecords::parse(&image).map_err(|p| bad(expected, p))?;
    let mut seq = expected;
    let mut prev = prev;
    let mut head = None;
    let mut first = true;
    while let Some(r) = records.next_record().map_err(|p| bad(seq, p))? {
        if r.seq != seq {
            return Err(bad(seq, Problem::OutOfSequence { found: r.seq }));
        }
        if first && key != r.seq {
            return Err(bad(seq, Problem::BatchKey { key, first: r.seq }));
        }
        first = false;
        if !chunk && !r.hash_matches(&prev) {
            return Err(bad(seq, Problem::HashMismatch));
        }
        if decode {
            r.check_event().map_err(|p| bad(seq, p))?;
        }
        prev = r.hash;
        head = Some(Head { seq, hash: r.hash });
        seq += 1;
    }
    let head = head.ok_or_else(|| bad(expected, Problem::Malformed("empty batch".into())))?;
    Ok((head, image))
}

/// Verifies the whole chain from record 0, on up to [`MAX_VERIFY_THREADS`] threads.
///
/// Every record's hash covers the previous record's *stored* hash, so batches can be checked
/// independently once each knows the hash it must chain onto. This thread walks the batches in
/// order, reads each one's last stored hash from the record headers (no hashing, no decoding)
/// and hands the batch with its expected first sequence and previous hash to a worker, which
/// checks every record (sequence, chain hash, event decode). The reported error is the one with
/// the lowest sequence number, as a sequential pass would report.
pub(crate) fn verify_tree(
    tree: &sled::Tree,
    base: Option<Base>,
) -> Result<VerifyReport, VerifyError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_VERIFY_THREADS);
    if threads <= 1 {
        return verify_sequential(tree, base);
    }
    let (first, first_prev) = start(base);
    let first_bad = AtomicU64::new(u64::MAX);
    let found: Mutex<Option<VerifyError>> = Mutex::new(None);
    let report = |e: VerifyError| {
        let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
        let earlier = match found.as_ref() {
            None => true,
            Some(f) => e.seq < f.seq,
        };
        if earlier {
            first_bad.store(e.seq, Ordering::Relaxed);
            *found = Some(e);
        }
    };
    let mut head: Option<Head> = None;
    let mut batches = 0u64;
    std::thread::scope(|scope| {
        let mut jobs = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<(sled::IVec, sled::IVec, u64, [u8; 32])>(32);
            let report = &report;
            let first_bad = &first_bad;
            scope.spawn(move || {
                for (key, value, expected, prev) in rx {
                    // Batches after a known error need no checking.
                    if expected < first_bad.load(Ordering::Relaxed) {
                        if let Err(e) = check_batch(&key, &value, expected, prev, true) {
                            report(e);
                        }
                    }
                }
            });
            jobs.push(tx);
        }
        for entry in tree.range(batch_key(first)..) {
            let expected = head.map_or(first, |h| h.seq + 1);
            if expected >= first_bad.load(Ordering::Relaxed) {
                break;
            }
            let (key, value) = match entry {
                Ok(kv) => kv,
                Err(e) => {
                    report(bad(expected, Problem::Storage(e.to_string())));
                    break;
                }
            };
            let prev = head.map_or(first_prev, |h| h.hash);
            let tail = batch_tail(&value);
            let worker = &jobs[(batches % threads as u64) as usize];
            // A closed channel means the worker panicked; the scope re-raises that.
            let _ = worker.send((key, value, expected, prev));
            batches += 1;
            match tail {
                // The next batch must follow this one's records (the worker checks their
                // numbers).
                Ok((count, hash)) => {
                    head = Some(Head {
                        seq: expected + (count - 1),
                        hash,
                    })
                }
                // The worker checking this batch meets the same fault (or an earlier one in
                // it) and reports it with the exact sequence number.
                Err(_) => break,
            }
        }
        drop(jobs);
    });
    if let Some(e) = found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(VerifyReport {
        first,
        records: head.map_or(0, |h| h.seq + 1 - first),
        batches,
        head,
    })
}

/// Where the chain starts: record 0 onto the genesis hash, or the base.
pub(crate) fn start(base: Option<Base>) -> (u64, [u8; 32]) {
    base.map_or((0, GENESIS_PREV_HASH), |b| (b.seq, b.prev_hash))
}

/// Most threads [`verify_tree`] uses.
const MAX_VERIFY_THREADS: usize = 4;

/// [`verify_tree`] on this thread alone.
pub(crate) fn verify_sequential(
    tree: &sled::Tree,
    base: Option<Base>,
) -> Result<VerifyReport, VerifyError> {
    let (first, first_prev) = start(base);
    let mut head: Option<Head> = None;
    let mut batches = 0u64;
    for entry in tree.range(batch_key(first)..) {
        let expected = head.map_or(first, |h| h.seq + 1);
        let (key, value) = entry.map_err(|e| bad(expected, Problem::Storage(e.to_string())))?;
        let prev = head.map_or(first_prev, |h| h.hash);
        head = check_batch(&key, &value, expected, prev, true)?;
        batches += 1;
    }
    Ok(VerifyReport {
        first,
        records: head.map_or(0, |h| h.seq + 1 - first),
        batches,
        head,
    })
}

/// Recovers the head from the last batch, checking that batch's records and its linkage to
/// the batch before it.
pub(crate) fn recover_tail(
    tree: &sled::Tree,
    base: Option<Base>,
) -> Result<Option<Head>, VerifyError> {
    let storage = |e: sled::Error| bad(0, Problem::Storage(e.to_string()));
    let Some((last_key, last_value)) = tree.last().map_err(storage)? else {
        return Ok(None);
    };
    let (first, first_prev) = start(base);
    let first_key = batch_key(first);
    if last_key[..] < first_key[..] {
        return Err(bad(
            first,
            Problem::Malformed("every stored batch lies below the ledger's base".into()),
        ));
    }
    let (expected, prev) = match tree.range(&first_key[..]..&last_key[..]).next_back() {
        None => (first, first_prev),
        Some(entry) => {
            let (key, value) = entry.map_err(storage)?;
            let before = last_record(&value).map_err(|p| bad(key_seq(&key).unwrap_or(0), p))?;
            (before.seq.saturating_add(1), before.hash)
        }
    };
    check_batch(&last_key, &last_value, expected, prev, true)
}

/// The last record stored in a value (batch or chunk), as stored (unchecked).
pub(crate) fn last_record(value: &[u8]) -> Result<Head, Problem> {
    let (first, count, hash) = value_tail(value)?;
    Ok(Head {
        seq: first.wrapping_add(count - 1),
        hash,
    })
}

/// The number of records in a stored value (at least one) and the last one's stored hash,
/// read from the record headers (a chunk's header) alone.
fn batch_tail(value: &[u8]) -> Result<(u64, [u8; 32]), Problem> {
    value_tail(value).map(|(_, count, hash)| (count, hash))
}

/// The head the writer last recorded next to the chain, if any (ledgers written before it was
/// recorded have none).
pub(crate) fn recorded_head(head_tree: &sled::Tree) -> Result<Option<Head>, VerifyError> {
    match head_tree.get(HEAD_KEY) {
        Ok(None) => Ok(None),
        Ok(Some(v)) => decode_head(&v).map(Some).ok_or_else(|| {
            bad(
                0,
                Problem::Malformed("recorded head is not 40 bytes".into()),
            )
        }),
        Err(e) => Err(bad(0, Problem::Storage(e.to_string()))),
    }
}

/// The base recorded by [`crate::Ledger::drop_prefix`], if any.
pub(crate) fn recorded_base(head_tree: &sled::Tree) -> Result<Option<Base>, VerifyError> {
    match head_tree.get(BASE_KEY) {
        Ok(None) => Ok(None),
        Ok(Some(v)) => decode_head(&v)
            .map(|h| {
                Some(Base {
                    seq: h.seq,
                    prev_hash: h.hash,
                })
            })
            .ok_or_else(|| {
                bad(
                    0,
                    Problem::Malformed("recorded base is not 40 bytes".into()),
                )
            }),
        Err(e) => Err(bad(0, Problem::Storage(e.to_string()))),
    }
}

/// The verified chain must reach the recorded head, and hold it: a chain that ends before it
/// lost records at its end.
pub(crate) fn check_recorded_head(
    tree: &sled::Tree,
    recorded: Option<Head>,
    report: &VerifyReport,
) -> Result<(), VerifyError> {
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let end = report.head.map_or(report.first, |h| h.seq + 1);
    if recorded.seq >= end {
        return Err(bad(
            end,
            Problem::Truncated {
                recorded_head: recorded.seq,
            },
        ));
    }
    let stored = stored_hash(tree, recorded.seq).map_err(|p| bad(recorded.seq, p))?;
    if stored != recorded.hash {
        return Err(bad(recorded.seq, Problem::HeadMismatch));
    }
    Ok(())
}

/// The stored hash of record `seq` (known to be in the verified chain).
fn stored_hash(tree: &sled::Tree, seq: u64) -> Result<[u8; 32], Problem> {
    let (_, value) = tree
        .range(..=batch_key(seq))
        .next_back()
        .ok_or_else(|| Problem::Malformed("no batch holds the recorded head".into()))?
        .map_err(|e| Problem::Storage(e.to_string()))?;
    let image = expand_value(&value)?;
    let mut records = BatchRecords::parse(&image)?;
    while let Some(r) = records.next_record()? {
        if r.seq == seq {
            return Ok(r.hash);
        }
    }
    Err(Problem::Malformed(
        "no batch holds the recorded head".into(),
    ))
}

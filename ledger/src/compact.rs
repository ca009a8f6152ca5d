//! The compactor: re-stores runs of format-1 batches as format-2 chunks ([`crate::chunk`]) in
//! the same tree, never changing a record. A background thread of a writable [`crate::Ledger`]
//! runs a pass every [`CompactOptions::interval`]; [`crate::Ledger::compact`] runs one now.
//!
//! A pass walks the stored values from where the last one stopped. Consecutive format-1
//! batches are gathered until they hold at least [`CompactOptions::chunk_records`] records
//! (whole batches only: a chunk ends where a batch ends); then the gathered batches are checked
//! (every record in sequence, chained onto the previous value's last hash, every event
//! decodes), encoded as one chunk, the chunk expanded again and compared byte for byte with the
//! batches' records, and only then is the chunk stored under the first batch's key and the other
//! batches removed, in one atomic sled batch. Batches that do not verify are left as they are
//! (and logged). A run shorter than a chunk (the newest records) waits for the next pass.
//!
//! Only values wholly at or below the published head are touched: the writer only inserts
//! above it. The replacement is one sled batch, and sled's log is recovered in order, so after a
//! crash the store holds either the batches or the chunk, and the write-ahead log's replay
//! (which skips records the store already holds) is unaffected. The pass holds
//! `Inner::maintenance`, which [`crate::Ledger::verify`] also takes; readers
//! ([`crate::RecordIter`]) that meet a value a pass removed seek again.

use crate::chunk;
use crate::record::{
    batch_key, is_chunk, key_seq, value_tail, BatchRecords, RawRecord, BATCH_HEADER_LEN,
    GENESIS_PREV_HASH,
};
use crate::verify::check_batch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the compactor runs.
#[derive(Debug, Clone, Copy)]
pub struct CompactOptions {
    /// Run the background compactor (off: the ledger stores format 1 only, as before).
    pub background: bool,
    /// Records per chunk, at least (a chunk ends at the end of a stored batch).
    pub chunk_records: u64,
    /// Time between background passes.
    pub interval: Duration,
}

/// Records per chunk by default: see BENCHMARKS.md ("Compact storage") for the measurement.
pub const CHUNK_RECORDS: u64 = 16_384;

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            background: true,
            chunk_records: CHUNK_RECORDS,
            interval: Duration::from_millis(250),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Chunks written.
    pub chunks: u64,
    /// Records they hold.
    pub records: u64,
    /// Format-1 batches they replaced.
    pub batches: u64,
    /// Stored bytes of those batches, and of the chunks.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Runs left as they were because they did not verify.
    pub refused: u64,
}

/// The compactor's place in the tree: the key of the first value not known to be compacted,
/// and the last hash of the value before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    next: u64,
    prev: [u8; 32],
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            next: 0,
            prev: GENESIS_PREV_HASH,
        }
    }
}

fn storage(e: sled::Error) -> String {
    format!("sled: {e}")
}

/// One pass over `tree`, sealing complete runs of records below `limit` (exclusive) into
/// chunks, starting at `cursor` (moved past what is done). `stop` ends it early.
pub(crate) fn pass(
    tree: &sled::Tree,
    limit: u64,
    options: &CompactOptions,
    cursor: &mut Cursor,
    stop: &AtomicBool,
) -> Result<CompactReport, String> {
    let mut report = CompactReport::default();
    // The value before the cursor may have changed (a prefix dropped): start afresh then.
    if cursor.next > 0 {
        let before = tree
            .range(..batch_key(cursor.next))
            .next_back()
            .transpose()
            .map_err(storage)?;
        let fits =
            before
                .and_then(|(_, v)| value_tail(&v).ok())
                .is_some_and(|(first, count, hash)| {
                    first + count == cursor.next && hash == cursor.prev
                });
        if !fits {
            *cursor = Cursor::default();
        }
    }
    if cursor.next == 0 {
        // The first stored value may not be record 0 (a ledger whose prefix was archived):
        // its own chunk header or the first batch alone cannot say what it chains onto, so the
        // first value is left as it is and compaction starts after it.
        if let Some((key, value)) = tree.first().map_err(storage)? {
            let (first, count, hash) = value_tail(&value).map_err(|p| p.to_string())?;
            if key_seq(&key) != Some(first) {
                return Err(format!("stored value under key {key:?} starts at {first}"));
            }
            if first == 0 {
                cursor.prev = GENESIS_PREV_HASH;
            } else {
                cursor.next = first + count;
                cursor.prev = hash;
            }
        }
    }
    let mut run: Vec<(sled::IVec, sled::IVec)> = Vec::new();
    let mut run_records = 0u64;
    let mut run_start = *cursor;
    let mut at = *cursor;
    for entry in tree.range(batch_key(cursor.next)..) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (key, value) = entry.map_err(storage)?;
        let (first, count, hash) = value_tail(&value).map_err(|p| p.to_string())?;
        if first + count > limit {
            break;
        }
        if is_chunk(&value) || first != at.next {
            // Already compact (or not where expected: left for verify to report). A shorter
            // run before it stays as it is.
            run.clear();
            run_records = 0;
            at = Cursor {
                next: first + count,
                prev: hash,
            };
            run_start = at;
            *cursor = at;
            continue;
        }
        if run.is_empty() {
            run_start = at;
        }
        run.push((key, value));
        run_records += count;
        at = Cursor {
            next: first + count,
            prev: hash,
        };
        if run_records >= options.chunk_records {
            seal(tree, &run, run_start, &mut report)?;
            run.clear();
            run_records = 0;
            *cursor = at;
        }
    }
    if run.is_empty() {
        *cursor = at;
    } else {
        *cursor = run_start;
    }
    Ok(report)
}

/// Checks a run of batches, and replaces it by one chunk if it verifies and the chunk expands
/// to exactly its records.
fn seal(
    tree: &sled::Tree,
    run: &[(sled::IVec, sled::IVec)],
    start: Cursor,
    report: &mut CompactReport,
) -> Result<(), String> {
    let mut records: Vec<RawRecord> = Vec::new();
    let mut expected = start.next;
    let mut prev = start.prev;
    let mut canonical: Vec<u8> = Vec::new();
    for (key, value) in run {
        match check_batch(key, value, expected, prev, true) {
            Ok(Some(head)) => {
                expected = head.seq + 1;
                prev = head.hash;
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(
                    "not compacting stored records {}..: they do not verify ({e})",
                    start.next
                );
                report.refused += 1;
                return Ok(());
            }
        }
        canonical.extend_from_slice(&value[BATCH_HEADER_LEN..]);
        let mut batch = BatchRecords::parse(value).map_err(|p| p.to_string())?;
        while let Some(r) = batch.next_record().map_err(|p| p.to_string())? {
            records.push(RawRecord {
                seq: r.seq,
                version: r.version,
                time_ms: r.time_ms,
                event: r.event.to_vec(),
                hash: r.hash,
            });
        }
    }
    let encoded = chunk::encode(&records, &start.prev).map_err(|p| p.to_string())?;
    match chunk::expand(&encoded) {
        Ok(image) if image[BATCH_HEADER_LEN..] == canonical[..] => {}
        Ok(_) => {
            tracing::error!(
                "a chunk of records {}.. does not expand to its records; not compacting them",
                start.next
            );
            report.refused += 1;
            return Ok(());
        }
        Err(p) => {
            tracing::error!(
                "a chunk of records {}.. does not expand ({p}); not compacting them",
                start.next
            );
            report.refused += 1;
            return Ok(());
        }
    }
    let mut batch = sled::Batch::default();
    for (key, _) in &run[1..] {
        batch.remove(key.clone());
    }
    batch.insert(run[0].0.clone(), encoded.as_slice());
    tree.apply_batch(batch).map_err(storage)?;
    report.chunks += 1;
    report.records += records.len() as u64;
    report.batches += run.len() as u64;
    report.bytes_before += run.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
    report.bytes_after += encoded.len() as u64;
    Ok(())
}

/// The compactor's shared state: its cursor (one pass at a time, under the maintenance lock),
/// and the stop signal of the background thread.
pub(crate) struct Compactor {
    pub options: CompactOptions,
    pub cursor: Mutex<Cursor>,
    pub stop: AtomicBool,
    wake: (Mutex<()>, Condvar),
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Compactor {
    pub fn new(options: CompactOptions) -> Arc<Compactor> {
        Arc::new(Compactor {
            options,
            cursor: Mutex::new(Cursor::default()),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(()), Condvar::new()),
            thread: Mutex::new(None),
        })
    }

    /// Starts the background thread: `run_pass` every interval until stopped.
    pub fn start(
        self: &Arc<Compactor>,
        run_pass: impl Fn() -> Result<CompactReport, String> + Send + 'static,
    ) -> std::io::Result<()> {
        let this = self.clone();
        let handle = std::thread::Builder::new()
            .name("ledger-compactor".into())
            .spawn(move || {
                let mut failing = false;
                loop {
                    {
                        let guard = lock(&this.wake.0);
                        if this.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let _ = this.wake.1.wait_timeout(guard, this.options.interval);
                    }
                    if this.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match run_pass() {
                        Ok(report) => {
                            if failing {
                                tracing::info!("ledger compaction works again");
                            }
                            failing = false;
                            if report.chunks > 0 {
                                tracing::debug!(?report, "ledger compaction pass");
                            }
                        }
                        // Logged once; retried every interval (a full disk passes).
                        Err(why) if !failing => {
                            failing = true;
                            tracing::warn!("ledger compaction failed (retried later): {why}");
                        }
                        Err(_) => {}
                    }
                }
            })?;
        *lock(&self.thread) = Some(handle);
        Ok(())
    }

    /// Stops the background thread (a pass under way ends at its next chunk) and waits for it.
    pub fn shutdown(&self) {
        {
            let _guard = lock(&self.wake.0);
            self.stop.store(true, Ordering::Relaxed);
            self.wake.1.notify_all();
        }
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

//! The append-only, hash-chained event ledger on sled: the pool's only store of truth.
//!
//! This crate owns the stored form of [`pool_core::Event`]s: numbered records (sequence from
//! 0), each with its event schema version, its time, the bincode-encoded event and a SHA-256
//! chain hash over the previous record's hash and every other byte of the record, so any edit,
//! deletion or reordering is detectable ([`Ledger::verify`]). Appends go through the writer's
//! threads, which commit everything pending as one frame of a write-ahead log (`wal.0` and
//! `wal.1` in the directory, written with `O_DSYNC`, and `O_DIRECT` where the file system
//! allows), overlapping one frame's write with the next (group commit); an append returns only
//! once its record and every record before it are durable there. Records then go into sled,
//! stored as batches of consecutive records (one sled entry of a few KiB each, keyed by its
//! first sequence number), which a checkpoint (sled's flush plus an `fsync`) makes durable
//! before a log file is reused; opening the ledger replays what a crash left only in the log.
//! One process opens a ledger directory at a time. This crate must never rewrite or delete a
//! stored record, and never acknowledge an append before it is durable.
//!
//! ```no_run
//! # async fn demo(event: pool_core::Event) -> Result<(), ledger::LedgerError> {
//! let ledger = ledger::Ledger::open(std::path::Path::new("data/ledger"))?;
//! let appended = ledger.append(event).await?; // durable now: ack the miner
//! let mut tail = ledger.subscribe(); // follow the tail
//! let mut next = 0;
//! loop {
//!     for record in ledger.read_from(next) {
//!         let record = record?;
//!         next = record.seq + 1;
//!     }
//!     if tail.changed().await.is_err() {
//!         break; // writer gone
//!     }
//! }
//! # let _ = appended;
//! ledger.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! A dropped `append` future may still have its record committed: the writer owns the request
//! once it is sent. So may an append answered with a storage error (a log write reported failed
//! may still have reached the disk, and is replayed on open if it continues the chain): an
//! acknowledged record is never lost, an unacknowledged one is not guaranteed absent.

#[doc(hidden)]
pub mod decode;
mod error;
mod read;
#[doc(hidden)]
pub mod record;
mod validate;
mod verify;
mod wal;
mod writer;

pub use error::{LedgerError, Problem, VerifyError};
pub use read::RecordIter;
pub use verify::VerifyReport;

use pool_core::Event;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
pub use writer::WriterOptions;
use writer::{Acks, Answer, Events, Reply, Request};

/// Name of the sled tree holding the stored batches.
#[doc(hidden)]
pub const BATCH_TREE: &str = "ledger-batches";
/// Name of the sled tree holding the last committed head (see [`record::HEAD_KEY`]): with it,
/// `verify` also notices records deleted from the end of the chain, which the chain alone
/// cannot show.
#[doc(hidden)]
pub const HEAD_TREE: &str = "ledger-head";

/// sled's page cache by default: 128 MiB ([`WriterOptions::cache_bytes`]; read-only opens use
/// it too). sled's own default, 1 GiB, is most of a busy pool's resident memory.
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

/// The last record of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// A durable append's place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Appended {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// A record read back from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    /// Event schema version the event was written at.
    pub version: u16,
    /// Unix time in milliseconds when the writer committed the record.
    pub time_ms: u64,
    pub event: Event,
    pub hash: [u8; 32],
}

/// A handle to an open ledger; cheap to clone. The directory stays locked until the last
/// clone is dropped.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    tree: sled::Tree,
    head_tree: sled::Tree,
    // Kept so the directory stays open (and locked) as long as a handle lives.
    _db: sled::Db,
    head_tx: Arc<watch::Sender<Option<Head>>>,
    /// `None` for a read-only (audit) handle.
    requests: Option<mpsc::Sender<Request>>,
    /// The writer's threads (empty for a read-only handle, and once shut down).
    writer: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.inner.dir)
            .field("head", &self.head())
            .finish()
    }
}

/// How long `open` keeps retrying a held lock: a handle of this process that was just closed
/// may still be releasing the directory (sled drops its file from a background thread, which on a
/// loaded machine can take a while).
const LOCK_RETRY: Duration = Duration::from_secs(2);

fn open_db(dir: &Path) -> Result<sled::Db, LedgerError> {
    open_db_with(dir, DEFAULT_CACHE_BYTES)
}

/// Opens sled in `dir` with a page cache of `cache_bytes`.
fn open_db_with(dir: &Path, cache_bytes: u64) -> Result<sled::Db, LedgerError> {
    let started = Instant::now();
    let mut removed_incomplete_snapshots = false;
    loop {
        // Durability comes from the writer's explicit flush per commit batch; sled's own
        // periodic flusher would only compete with it.
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None);
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_RETRY {
                    return Err(LedgerError::Locked {
                        dir: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // sled 0.34 writes a snapshot to `snap.<lsn>.generating` and renames it when it is
            // complete, but on open it also reads a `.generating` file left by a process killed
            // mid-write, and then refuses the whole database as corrupt. Such a file is
            // incomplete by construction (the rename is sled's commit point), and sled's log
            // still holds everything, so remove it and open again. sled took the directory lock
            // before reading snapshots, so no other process is using the directory.
            Err(sled::Error::Corruption { .. }) if !removed_incomplete_snapshots => {
                removed_incomplete_snapshots = true;
                if remove_incomplete_snapshots(dir)? == 0 {
                    return Err(LedgerError::from(sled::Error::Corruption {
                        at: None,
                        bt: (),
                    }));
                }
            }
            Err(e) => return Err(LedgerError::from(e)),
        }
    }
}

/// Removes sled snapshot files that a killed process left half written; returns how many.
fn remove_incomplete_snapshots(dir: &Path) -> Result<usize, LedgerError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(sled::Error::from)? {
        let path = entry.map_err(sled::Error::from)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(
                file = %path.display(),
                "removing an incomplete sled snapshot left by a crash; the log is replayed instead"
            );
            std::fs::remove_file(&path).map_err(sled::Error::from)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Opens the sled database under `dir` the way the ledger does, retrying a lock that a just-closed
/// handle is still releasing. For tests and tools that must edit the stored bytes directly (the
/// tampering tests); everything else goes through [`Ledger`].
#[doc(hidden)]
pub fn open_sled_dir(dir: &Path) -> Result<sled::Db, LedgerError> {
    open_db(dir)
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `dir` for writing. Fails with
    /// [`LedgerError::Locked`] if another handle holds it, and with
    /// [`LedgerError::CorruptTail`] if the last stored batch does not verify.
    pub fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Self::open_with(dir, WriterOptions::default())
    }

    /// [`Ledger::open`] with the writer's settings spelled out: the pool sets sled's cache
    /// (`[ledger] cache_mb`); tests use small log files.
    pub fn open_with(dir: &Path, options: WriterOptions) -> Result<Ledger, LedgerError> {
        let db = open_db_with(dir, options.cache_bytes)?;
        let tree = db.open_tree(BATCH_TREE)?;
        let head_tree = db.open_tree(HEAD_TREE)?;
        let head = verify::recover_tail(&tree).map_err(LedgerError::CorruptTail)?;
        let recovered = wal::recover(dir, &db, &tree, &head_tree, head)?;
        let head = recovered.head;
        let head_tx = Arc::new(watch::Sender::new(head));
        let (requests, threads) = writer::start(
            dir.to_path_buf(),
            db.clone(),
            tree.clone(),
            head_tree.clone(),
            head,
            head_tx.clone(),
            recovered.max_gen + 1,
            options,
        )?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                tree,
                head_tree,
                _db: db,
                head_tx,
                requests: Some(requests),
                writer: Mutex::new(threads),
            }),
        })
    }

    /// Opens an existing ledger for auditing: reads and verification only, no writer, and
    /// no tail check (so a corrupt ledger can still be verified and dumped). A missing
    /// directory is [`LedgerError::NotFound`]; nothing is created. sled still locks the
    /// directory, so this fails with [`LedgerError::Locked`] while the pool runs.
    pub fn open_read_only(dir: &Path) -> Result<Ledger, LedgerError> {
        // sled keeps its log in `DIR/db`; without it there is no ledger to audit.
        if !dir.join("db").is_file() {
            return Err(LedgerError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let db = open_db(dir)?;
        let tree = db.open_tree(BATCH_TREE)?;
        let head_tree = db.open_tree(HEAD_TREE)?;
        // Durable records that a crash left only in the write-ahead log join the store first
        // (when the store's tail verifies; otherwise the store is audited as it is).
        match verify::recover_tail(&tree) {
            Ok(head) => {
                wal::recover(dir, &db, &tree, &head_tree, head)?;
            }
            Err(e) => tracing::warn!(
                "not replaying the write-ahead log onto a store whose tail does not verify: {e}"
            ),
        }
        // The head as stored, unchecked: `verify` says whether it can be trusted.
        let head = match tree.last()? {
            None => None,
            Some((_, value)) => verify::last_record(&value).ok(),
        };
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                tree,
                head_tree,
                _db: db,
                head_tx: Arc::new(watch::Sender::new(head)),
                requests: None,
                writer: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The directory this ledger lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn send(&self, events: Events, reply: Reply) -> Result<(), LedgerError> {
        let requests = self.inner.requests.as_ref().ok_or(LedgerError::ReadOnly)?;
        requests
            .send(Request::Append { events, reply })
            .map_err(|_| LedgerError::Closed("the ledger was closed".into()))
    }

    fn encode(event: &Event) -> Result<Vec<u8>, LedgerError> {
        let bytes = record::encode_event(event).map_err(|e| LedgerError::Encode(e.to_string()))?;
        // The stored length field is a u32.
        if u32::try_from(bytes.len()).is_err() {
            return Err(LedgerError::Encode(format!(
                "event of {} bytes is too long",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Appends one event; returns once its record is flushed to disk.
    pub async fn append(&self, event: Event) -> Result<Appended, LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Events::One(Self::encode(&event)?), Reply::Async(tx))?;
        one(rx.await.map_err(|_| closed_early())?)
    }

    /// Appends events as consecutive records; returns once all are flushed to disk.
    pub async fn append_batch(&self, events: Vec<Event>) -> Result<Vec<Appended>, LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Self::encode_all(&events)?, Reply::Async(tx))?;
        many(rx.await.map_err(|_| closed_early())?)
    }

    /// [`Ledger::append`] for callers outside async code (it blocks the calling thread; do
    /// not call it from an async task).
    pub fn append_blocking(&self, event: Event) -> Result<Appended, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Events::One(Self::encode(&event)?), Reply::Blocking(tx))?;
        one(rx.recv().map_err(|_| closed_early())?)
    }

    /// [`Ledger::append_batch`] for callers outside async code.
    pub fn append_batch_blocking(&self, events: Vec<Event>) -> Result<Vec<Appended>, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Self::encode_all(&events)?, Reply::Blocking(tx))?;
        many(rx.recv().map_err(|_| closed_early())?)
    }

    fn encode_all(events: &[Event]) -> Result<Events, LedgerError> {
        events
            .iter()
            .map(Self::encode)
            .collect::<Result<Vec<_>, _>>()
            .map(Events::Many)
    }

    /// The last durable record, `None` while the ledger is empty.
    pub fn head(&self) -> Option<Head> {
        *self.inner.head_tx.borrow()
    }

    /// A receiver that changes whenever new records become durable (follow the tail:
    /// read from your next seq, then `changed().await`).
    pub fn subscribe(&self) -> watch::Receiver<Option<Head>> {
        self.inner.head_tx.subscribe()
    }

    /// Durable records from `from` on (up to the head at the time of this call).
    pub fn read_from(&self, from: u64) -> RecordIter {
        self.read_range(from, u64::MAX)
    }

    /// Durable records with `from <= seq < to_exclusive`.
    pub fn read_range(&self, from: u64, to_exclusive: u64) -> RecordIter {
        let end = self.head().map_or(0, |h| h.seq + 1).min(to_exclusive);
        RecordIter::new(&self.inner.tree, from, end)
    }

    /// Verifies the whole chain: every record in sequence, every hash, every event decodes,
    /// and the chain reaches the last head the writer recorded (no records deleted at the end).
    pub fn verify(&self) -> Result<VerifyReport, VerifyError> {
        // Read the recorded head first: on a live ledger the chain only grows past it.
        let recorded = verify::recorded_head(&self.inner.head_tree)?;
        let report = verify::verify_tree(&self.inner.tree)?;
        verify::check_recorded_head(&self.inner.tree, recorded, &report)?;
        Ok(report)
    }

    /// Flushes, stops the writer and waits for it. Appends through other clones fail with
    /// [`LedgerError::Closed`] afterwards; the directory is released when the last clone drops.
    pub async fn close(self) {
        let _ = tokio::task::spawn_blocking(move || self.close_blocking()).await;
    }

    /// [`Ledger::close`] for callers outside async code.
    pub fn close_blocking(self) {
        self.inner.shutdown();
    }
}

fn one(answer: Answer) -> Result<Appended, LedgerError> {
    match answer.result? {
        Acks::One(appended) => Ok(appended),
        Acks::Many(mut appended) => appended.pop().ok_or_else(closed_early),
    }
}

fn many(answer: Answer) -> Result<Vec<Appended>, LedgerError> {
    match answer.result? {
        Acks::One(appended) => Ok(vec![appended]),
        Acks::Many(appended) => Ok(appended),
    }
}

fn closed_early() -> LedgerError {
    LedgerError::Closed("the writer stopped before answering".into())
}

impl Inner {
    fn shutdown(&self) {
        let threads = match self.writer.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if threads.is_empty() {
            return;
        }
        if let Some(requests) = &self.requests {
            let (done, wait) = mpsc::sync_channel(1);
            if requests.send(Request::Shutdown { done }).is_ok() {
                let _ = wait.recv();
            }
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wal_tests;

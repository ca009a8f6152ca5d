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
//! stored record, and never acknowledge an append before it is durable, with one deliberate
//! exception: [`Ledger::drop_prefix`] removes a prefix that was first sealed into an archive
//! ([`archive`]). It records the ledger's *base* (`base` in the head tree: the first live seq
//! and the hash of the record before it) before removing anything, so `verify` checks the chain
//! from the base onto that hash, reads below it say [`Problem::Archived`], and an audit joins
//! the archives onto it ([`archive::check_join`]).
//!
//! **Compaction** re-stores records, never changes them: a background thread of a writable
//! ledger (the compactor, [`CompactOptions`]; [`Ledger::compact`] runs a pass now) replaces
//! runs of stored batches by compact, zstd-compressed chunks of the same records (format 2,
//! see [`record`]), after checking that the chunk expands to exactly the batches' records
//! (bytes and chain hashes) and only for records that verify. Reads, [`Ledger::verify`] and
//! dumps see the same records, byte for byte and hash for hash, from either form; ledgers
//! written before compaction existed read as they are. Storage maintenance (compaction, and
//! anything else that replaces stored values) is serialized by one lock, which `verify` also
//! holds; a compactor error (a full disk) is logged once and retried, and never fails the
//! ledger or an append.
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
//!
//! A full disk is transient: appends are refused at once with [`LedgerError::DiskFull`] while
//! it lasts, and the writer resumes on its own once space is freed (sled reopened if it failed,
//! the log replayed, a new log generation; see the writer's docs in `writer.rs`). Opening for
//! writing refuses a file system without the room the two log files still need plus
//! [`WriterOptions::min_free_bytes`] ([`LedgerError::DiskFull`], saying how much is free and
//! needed). While sled is being reopened, reads fail with a transient `DiskFull` error.

pub mod archive;
#[doc(hidden)]
pub mod chunk;
mod compact;
#[doc(hidden)]
pub mod decode;
mod error;
pub mod export;
pub mod metrics;
mod read;
mod read_raw;
#[doc(hidden)]
pub mod record;
mod validate;
mod verify;
mod wal;
mod writer;

pub use compact::{CompactOptions, CompactReport};
pub use error::{LedgerError, Problem, VerifyError};
pub use read::RecordIter;
pub use read_raw::RawRecordIter;
pub use verify::VerifyReport;

use pool_core::Event;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use writer::{Acks, Answer, Events, Reply, Request};
pub use writer::{WriterOptions, DEFAULT_MIN_FREE_BYTES};

/// Name of the sled tree holding the stored batches.
#[doc(hidden)]
pub const BATCH_TREE: &str = "ledger-batches";
/// Name of the sled tree holding the last committed head (see [`record::HEAD_KEY`]): with it,
/// `verify` also notices records deleted from the end of the chain, which the chain alone
/// cannot show.
#[doc(hidden)]
pub const HEAD_TREE: &str = "ledger-head";

/// sled's page cache by default: 64 MiB ([`WriterOptions::cache_bytes`]; read-only opens use
/// it too). sled's own default, 1 GiB, is most of a busy pool's resident memory; the cache fills
/// under load and costs ~1.3 times its size in resident memory (BENCHMARKS.md).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// The last record of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// Where a ledger whose prefix was dropped ([`Ledger::drop_prefix`]) starts: its first live
/// record and the hash of the record before it (the last record of the archive that holds the
/// prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Base {
    pub seq: u64,
    pub prev_hash: [u8; 32],
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
    /// sled's handles (they keep the directory open and locked as long as a handle lives). The
    /// writer replaces them when sled failed on a full disk (see [`writer`]).
    store: StoreCell,
    head_tx: Arc<watch::Sender<Option<Head>>>,
    /// `None` for a read-only (audit) handle.
    requests: Option<mpsc::Sender<Request>>,
    /// The writer's threads (empty for a read-only handle, and once shut down).
    writer: Mutex<Vec<JoinHandle<()>>>,
    /// Serializes storage maintenance that replaces or removes stored values (compaction,
    /// dropping a prefix) with itself and with [`Ledger::verify`].
    maintenance: Arc<Mutex<()>>,
    /// `None` for a read-only handle.
    compactor: Option<Arc<compact::Compactor>>,
    /// The first live seq ([`Base::seq`]; 0 while nothing was dropped).
    base_seq: AtomicU64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.inner.dir)
            .field("head", &self.head())
            .finish()
    }
}

/// Period of sled's own flusher (and segment cleaner) in a compacting ledger.
const SLED_FLUSH_EVERY_MS: u64 = 1_000;

/// sled's database and the ledger's two trees in it.
#[derive(Clone)]
pub(crate) struct Store {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub head_tree: sled::Tree,
}

impl Store {
    /// Opens sled in `dir` with the writer's sled settings (the same at open and when the
    /// writer reopens it after a full disk).
    pub(crate) fn open(dir: &Path, options: &WriterOptions) -> Result<Store, LedgerError> {
        let db = open_db_with(dir, options.sled_flush_every_ms, options.cache_bytes)?;
        let tree = db.open_tree(BATCH_TREE)?;
        let head_tree = db.open_tree(HEAD_TREE)?;
        Ok(Store {
            db,
            tree,
            head_tree,
        })
    }
}

/// The store, shared by readers and the writer. sled 0.34 refuses every operation after one of
/// its log writes failed (a full disk) until it is opened again, so after such a failure the
/// writer takes the store out (`None` while sled is closed and reopened: readers get a
/// transient storage error) and puts a reopened one back.
#[derive(Clone)]
pub(crate) struct StoreCell(Arc<std::sync::RwLock<Option<Store>>>);

impl StoreCell {
    fn new(store: Store) -> StoreCell {
        StoreCell(Arc::new(std::sync::RwLock::new(Some(store))))
    }

    /// The current handles (clones: cheap).
    pub(crate) fn get(&self) -> Result<Store, LedgerError> {
        let guard = match self.0.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.clone().ok_or_else(|| {
            LedgerError::DiskFull(
                "the ledger's store is being reopened after a full disk; retry shortly".into(),
            )
        })
    }

    /// Takes the handles out (the caller drops them, so sled can be opened again).
    pub(crate) fn take(&self) -> Option<Store> {
        match self.0.write() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    pub(crate) fn put(&self, store: Store) {
        match self.0.write() {
            Ok(mut g) => *g = Some(store),
            Err(poisoned) => *poisoned.into_inner() = Some(store),
        }
    }
}

/// How long `open` keeps retrying a held lock: a handle of this process that was just closed
/// may still be releasing the directory (sled drops its file from a background thread, which on a
/// loaded machine can take a while).
const LOCK_RETRY: Duration = Duration::from_secs(2);

pub(crate) fn open_db(dir: &Path) -> Result<sled::Db, LedgerError> {
    open_db_with(dir, None, DEFAULT_CACHE_BYTES)
}

/// Opens sled in `dir`; `flush_every_ms`: sled's own background flusher, which is also what
/// cleans sled's log segments (moves the few live pages out of mostly dead segments so their
/// space is reused). Durability never depends on it (checkpoints do); a compacting ledger
/// needs it, or the log file keeps the space of every replaced value. `cache_bytes`: sled's
/// page cache.
pub(crate) fn open_db_with(
    dir: &Path,
    flush_every_ms: Option<u64>,
    cache_bytes: u64,
) -> Result<sled::Db, LedgerError> {
    let started = Instant::now();
    let mut removed_incomplete_snapshots = false;
    loop {
        match sled::Config::new()
            .path(dir)
            .flush_every_ms(flush_every_ms)
            .cache_capacity(cache_bytes)
            .open()
        {
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
        Self::open_tuned(dir, options, CompactOptions::default())
    }

    /// [`Ledger::open_with`] with the compactor's settings too (benches compare the storage
    /// with compaction off).
    #[doc(hidden)]
    pub fn open_tuned(
        dir: &Path,
        mut options: WriterOptions,
        compaction: CompactOptions,
    ) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            LedgerError::Storage(format!(
                "cannot create the ledger directory {}: {e}",
                dir.display()
            ))
        })?;
        // Refuse a nearly full disk before writing anything (see `wal::check_free_space`).
        wal::check_free_space(dir, options.wal_file_bytes, options.min_free_bytes)?;
        options.sled_flush_every_ms = compaction.background.then_some(SLED_FLUSH_EVERY_MS);
        let store = Store::open(dir, &options)?;
        let base = verify::recorded_base(&store.head_tree).map_err(LedgerError::CorruptTail)?;
        let head = verify::recover_tail(&store.tree, base).map_err(LedgerError::CorruptTail)?;
        if let Some(base) = base {
            // A crash during a drop may have left values below the base: finish it.
            remove_below(&store.db, &store.tree, base.seq)?;
        }
        let recovered = wal::recover(dir, &store.db, &store.tree, &store.head_tree, head)?;
        let head = recovered.head;
        let head_tx = Arc::new(watch::Sender::new(head));
        let store = StoreCell::new(store);
        let (requests, threads) = writer::start(
            dir.to_path_buf(),
            store.clone(),
            head,
            head_tx.clone(),
            recovered.max_gen + 1,
            options,
        )?;
        let maintenance = Arc::new(Mutex::new(()));
        let compactor = compact::Compactor::new(compaction);
        let ledger = Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                store: store.clone(),
                head_tx: head_tx.clone(),
                requests: Some(requests),
                writer: Mutex::new(threads),
                maintenance: maintenance.clone(),
                compactor: Some(compactor.clone()),
                base_seq: AtomicU64::new(base.map_or(0, |b| b.seq)),
            }),
        };
        if compaction.background {
            let c = compactor.clone();
            compactor
                .start(move || compact_pass(&store, &head_tx, &maintenance, &c))
                .map_err(|e| {
                    LedgerError::Storage(format!("cannot start the ledger compactor: {e}"))
                })?;
        }
        Ok(ledger)
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
        let store = Store::open(dir, &WriterOptions::default())?;
        let Store {
            db,
            tree,
            head_tree,
        } = &store;
        // Durable records that a crash left only in the write-ahead log join the store first
        // (when the store's tail verifies; otherwise the store is audited as it is).
        let base = verify::recorded_base(head_tree).ok().flatten();
        match verify::recover_tail(tree, base) {
            Ok(head) => {
                wal::recover(dir, db, tree, head_tree, head)?;
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
                store: StoreCell::new(store),
                head_tx: Arc::new(watch::Sender::new(head)),
                requests: None,
                writer: Mutex::new(Vec::new()),
                maintenance: Arc::new(Mutex::new(())),
                compactor: None,
                base_seq: AtomicU64::new(base.map_or(0, |b| b.seq)),
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

    /// [`Ledger::append`] in two steps: the event is encoded and handed to the writer now, in
    /// the calling thread, so its place in the chain is fixed before this returns (every append
    /// sent after it gets a later seq); the future then waits for it to be durable. For a
    /// caller that must order a record before something it does next (the job source records
    /// a job, then publishes it) without waiting for the disk. Dropping the future does not
    /// withdraw the record.
    pub fn submit(
        &self,
        event: Event,
    ) -> Result<impl std::future::Future<Output = Result<Appended, LedgerError>>, LedgerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Events::One(Self::encode(&event)?), Reply::Async(tx))?;
        Ok(async move { one(rx.await.map_err(|_| closed_early())?) })
    }

    /// [`Ledger::append_batch`] in two steps, as [`Ledger::submit`] is for one event: the
    /// events' places are fixed (and nothing else can come between them) when this returns;
    /// the future resolves once they are durable.
    pub fn submit_batch(
        &self,
        events: Vec<Event>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<Appended>, LedgerError>>, LedgerError>
    {
        let (tx, rx) = oneshot::channel();
        self.send(Self::encode_all(&events)?, Reply::Async(tx))?;
        Ok(async move { many(rx.await.map_err(|_| closed_early())?) })
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
        RecordIter::new(self.walk(from, to_exclusive))
    }

    /// The walk over the stored values of the durable records with `from <= seq <
    /// to_exclusive`, for [`Ledger::read_range`] and [`Ledger::read_raw_range`].
    fn walk(&self, from: u64, to_exclusive: u64) -> read::Walk {
        let end = self.head().map_or(0, |h| h.seq + 1).min(to_exclusive);
        let base = self.inner.base_seq.load(Ordering::Acquire);
        match self.inner.store.get() {
            Ok(store) => read::Walk::new(&store.tree, from, end, base),
            Err(e) => read::Walk::failed(from, end, e),
        }
    }

    /// Verifies the whole chain: every record in sequence, every hash, every event decodes,
    /// and the chain reaches the last head the writer recorded (no records deleted at the end).
    pub fn verify(&self) -> Result<VerifyReport, VerifyError> {
        // No stored value is replaced while the chain is walked.
        let _maintenance = compact::lock(&self.inner.maintenance);
        let store = self.inner.store.get().map_err(|e| VerifyError {
            seq: 0,
            problem: Problem::Storage(e.to_string()),
        })?;
        // Read the recorded head first: on a live ledger the chain only grows past it.
        let recorded = verify::recorded_head(&store.head_tree)?;
        let base = verify::recorded_base(&store.head_tree)?;
        let report = verify::verify_tree(&store.tree, base)?;
        verify::check_recorded_head(&store.tree, recorded, &report)?;
        Ok(report)
    }

    /// The ledger's base, once a prefix was dropped ([`Ledger::drop_prefix`]); `None` while it
    /// holds every record from 0.
    pub fn base(&self) -> Result<Option<Base>, LedgerError> {
        let store = self.inner.store.get()?;
        verify::recorded_base(&store.head_tree).map_err(LedgerError::Corrupt)
    }

    /// The first sequence number of the stored value holding `seq` (the largest stored value
    /// boundary at or below it, not below the base): a prefix can only be cut at a boundary.
    /// `None` for an empty ledger or a `seq` below the base.
    pub fn value_boundary(&self, seq: u64) -> Result<Option<u64>, LedgerError> {
        let base = self.inner.base_seq.load(Ordering::Acquire);
        if seq < base {
            return Ok(None);
        }
        let range = record::batch_key(base)..=record::batch_key(seq);
        let store = self.inner.store.get()?;
        match store.tree.range(range).next_back() {
            None => Ok(None),
            Some(entry) => Ok(record::key_seq(&entry?.0)),
        }
    }

    /// Drops the records below `before` from this ledger: records the new base (`before` and
    /// the stored hash of record `before - 1`) next to the head, makes it durable, then removes
    /// the stored values below it. `before` must be a stored value boundary
    /// ([`Ledger::value_boundary`]) above the current base, and at or below the last stored
    /// value's first record (the last value always stays, so the head is never dropped).
    ///
    /// The records are gone from this ledger afterwards: seal them into an archive first
    /// ([`archive::write`]); `verify` then checks the chain from the base, and an audit joins
    /// the archives onto it. Holds the maintenance lock; appends go on meanwhile.
    pub fn drop_prefix(&self, before: u64) -> Result<Base, LedgerError> {
        let _maintenance = self
            .inner
            .maintenance
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let store = self.inner.store.get()?;
        let tree = &store.tree;
        let current = self.inner.base_seq.load(Ordering::Acquire);
        if before <= current {
            return Err(LedgerError::BadCut(format!(
                "the ledger already starts at record {current}, at or above {before}"
            )));
        }
        let Some((last_key, _)) = tree.last()? else {
            return Err(LedgerError::BadCut("the ledger is empty".into()));
        };
        let last = record::key_seq(&last_key).unwrap_or(0);
        if before > last {
            return Err(LedgerError::BadCut(format!(
                "{before} is past the first record of the last stored value ({last}): the \
                 last value stays"
            )));
        }
        let prev = self.record_before_cut(tree, current, before)?;
        let base = Base {
            seq: before,
            prev_hash: prev.hash,
        };
        let encoded = record::encode_head(&Head {
            seq: base.seq,
            hash: base.prev_hash,
        });
        store.head_tree.insert(record::BASE_KEY, &encoded[..])?;
        store.db.flush()?;
        // Readers see the new base before the values go.
        self.inner.base_seq.store(before, Ordering::Release);
        remove_below(&store.db, tree, before)?;
        Ok(base)
    }

    /// The last record before `cut`, which must be a stored value boundary above `first` (the
    /// base): where a prefix drop or an archive ends.
    pub(crate) fn record_before_cut(
        &self,
        tree: &sled::Tree,
        first: u64,
        cut: u64,
    ) -> Result<Head, LedgerError> {
        if tree.get(record::batch_key(cut))?.is_none() {
            let below = self.value_boundary(cut)?.unwrap_or(first);
            return Err(LedgerError::BadCut(format!(
                "{cut} is not a stored value boundary (the value holding it starts at {below}); \
                 round it down"
            )));
        }
        let (_, value) = tree
            .range(record::batch_key(first)..record::batch_key(cut))
            .next_back()
            .ok_or_else(|| LedgerError::BadCut("no stored value below the cut".into()))??;
        let last = verify::last_record(&value).map_err(|p| {
            LedgerError::Corrupt(VerifyError {
                seq: cut - 1,
                problem: p,
            })
        })?;
        if last.seq + 1 != cut {
            return Err(LedgerError::Corrupt(VerifyError {
                seq: cut - 1,
                problem: Problem::OutOfSequence { found: last.seq },
            }));
        }
        Ok(last)
    }

    /// Runs one compaction pass now (see the crate docs): every complete run of
    /// [`CompactOptions::chunk_records`] records in format-1 batches is re-stored as a chunk.
    /// The background compactor does the same every [`CompactOptions::interval`].
    pub fn compact(&self) -> Result<CompactReport, LedgerError> {
        let compactor = self.inner.compactor.as_ref().ok_or(LedgerError::ReadOnly)?;
        compact_pass(
            &self.inner.store,
            &self.inner.head_tx,
            &self.inner.maintenance,
            compactor,
        )
        .map_err(LedgerError::Storage)
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

/// Removes every stored value below `seq` (the base), in sled batches, then flushes.
fn remove_below(db: &sled::Db, tree: &sled::Tree, seq: u64) -> Result<(), LedgerError> {
    let mut removed = 0u64;
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for entry in tree.range(..record::batch_key(seq)).take(4096) {
            batch.remove(entry?.0);
            n += 1;
        }
        if n == 0 {
            break;
        }
        tree.apply_batch(batch)?;
        removed += n;
    }
    if removed > 0 {
        db.flush()?;
    }
    Ok(())
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

/// One compaction pass over the values at or below the published head, holding the
/// maintenance lock.
fn compact_pass(
    store: &StoreCell,
    head_tx: &watch::Sender<Option<Head>>,
    maintenance: &Mutex<()>,
    compactor: &compact::Compactor,
) -> Result<CompactReport, String> {
    let _maintenance = compact::lock(maintenance);
    // Fresh handles each pass, dropped after it: the writer may reopen sled after a full disk
    // (a held handle would keep the directory locked).
    let store = store.get().map_err(|e| e.to_string())?;
    let tree = &store.tree;
    let limit = head_tx.borrow().map_or(0, |h| h.seq + 1);
    let mut cursor = compact::lock(&compactor.cursor);
    compact::pass(
        tree,
        limit,
        &compactor.options,
        &mut cursor,
        &compactor.stop,
    )
}

impl Inner {
    fn shutdown(&self) {
        if let Some(compactor) = &self.compactor {
            compactor.shutdown();
        }
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
mod compact_tests;
#[cfg(test)]
mod disk_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wal_tests;

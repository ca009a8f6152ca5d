//! The group-commit writer. A committer thread (`ledger-writer-N`) takes every pending append
//! request, gives the records sequence numbers and chain hashes, packs them into one frame of
//! the write-ahead log ([`crate::wal`]) and writes it (durable when the write returns).
//! Whatever arrives meanwhile goes into the next frame. With several committers (see
//! [`WriterOptions::committers`]) one builds and writes the next frame while earlier ones are
//! still on their way to the disk; frames complete in any order but are applied in order: the records of a frame go into sled
//! and its appends are acknowledged only once it and every frame before it are durable.
//! Acknowledgement therefore always means durable. A checkpoint thread makes sled durable
//! before a log file is reused; a grower thread zeroes log file room ahead of the frames, so a
//! commit never waits for that.
//!
//! # A full disk
//!
//! A full disk (`ENOSPC` or `EDQUOT` from a log write, the log's zeroing, sled's inserts or a
//! checkpoint) is a transient state, not a failure. From the first such error on, the writer
//! refuses every append at once with [`LedgerError::DiskFull`] (logged once), and lets the
//! frames already on their way finish: a frame that was written and applied in order is
//! acknowledged as usual (it is durable); any later frame of a failed one is refused. Once no
//! frame is in flight, the checkpoint thread tries to *heal*, with a backoff (100 ms doubling
//! to 2 s), only when the file system has the room a start needs (see
//! [`WriterOptions::min_free_bytes`]): if sled failed (sled 0.34 refuses everything after one
//! failed write until it is opened again) it closes and reopens sled; then it replays the
//! write-ahead log into the store exactly as opening the ledger would, and checkpoints. The
//! chain continues from the head that replay found (refused records that still reached the log
//! whole may be part of it, as after a crash; nothing acknowledged is ever missing from it), and
//! the log continues in a new generation in its other file, so nothing is written after a frame
//! whose write failed. Then appends are accepted again (logged once). Other errors still stop
//! the writer for good ([`LedgerError::Closed`]). The writer also enters this state, before any
//! write fails, when the free space falls below half of [`WriterOptions::min_free_bytes`]
//! (looked at every 100 ms while appending): sled then needs no reopen.

use crate::error::{io_error, LedgerError};
use crate::record::{push_record, GENESIS_PREV_HASH, HEAD_KEY, RECORD_HEADER_LEN};
use crate::wal::{self, FrameBuf, Wal};
use crate::{verify, Appended, Head, Store, StoreCell};
use pool_core::EVENT_SCHEMA_VERSION;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

/// Most records packed into one frame.
const MAX_FRAME_RECORDS: usize = 16_384;
/// Most event bytes packed into one frame (a single larger request still gets a frame of its
/// own, up to a whole log file).
const MAX_FRAME_BYTES: usize = 4 << 20;
/// Largest stored batch (one sled value) the writer builds; a frame holds several. sled keeps
/// up to 16 entries in a leaf node and writes any node over 128 KiB (a quarter of its 512 KiB
/// segment) as a separate blob file (a file create, write and delete per rewrite), so stored
/// batches are kept small enough that a full leaf stays under that.
const MAX_BATCH_BYTES: usize = 6 * 1024;
/// How often the checkpoint thread starts the write-back of sled's dirty pages between
/// checkpoints.
const WRITEBACK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// Frame buffers kept for reuse, and the largest kept.
const MAX_SPARE_FRAMES: usize = 4;
const MAX_SPARE_BYTES: usize = 1 << 20;
/// Stored bytes of a record besides its event: header and hash.
const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + 32;
/// After a full disk: the first wait before trying to heal, and the longest.
const HEAL_FIRST_BACKOFF: Duration = Duration::from_millis(100);
const HEAL_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a writer waiting for its frames in flight (to heal) looks again.
const HEAL_POLL: Duration = Duration::from_millis(10);
/// How often the writer looks at the free space while appending (a `statvfs`).
const FREE_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Default [`WriterOptions::min_free_bytes`].
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;

/// The encoded events of one append request (encoded by the caller, off the writer thread).
pub(crate) enum Events {
    One(Vec<u8>),
    Many(Vec<Vec<u8>>),
}

impl Events {
    fn as_slice(&self) -> &[Vec<u8>] {
        match self {
            Events::One(event) => std::slice::from_ref(event),
            Events::Many(events) => events,
        }
    }
}

/// Where each event of a request landed, in request order.
pub(crate) enum Acks {
    One(Appended),
    Many(Vec<Appended>),
}

/// The writer's answer to one request. It hands the encoded events back, so their buffers are
/// freed on the thread that allocated them (freeing on the writer thread contends on the
/// allocator's per-thread arena locks).
pub(crate) struct Answer {
    pub result: Result<Acks, LedgerError>,
    pub _events: Events,
}

/// Where the writer sends an append's outcome.
pub(crate) enum Reply {
    Async(oneshot::Sender<Answer>),
    Blocking(mpsc::SyncSender<Answer>),
}

impl Reply {
    fn send(self, result: Result<Acks, LedgerError>, events: Events) {
        let answer = Answer {
            result,
            _events: events,
        };
        // A caller that gave up waiting (dropped its receiver) needs no answer.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}

pub(crate) enum Request {
    Append {
        events: Events,
        reply: Reply,
    },
    /// Finish what is queued before this, checkpoint, stop.
    Shutdown {
        done: mpsc::SyncSender<()>,
    },
    /// The checkpoint thread made the store durable through this record (or failed).
    Checkpointed(Result<Option<u64>, LedgerError>),
    /// The grower zeroed more of a log file (or failed to).
    Grown(wal::Growth, Result<(), LedgerError>),
    /// The checkpoint thread healed the store after a full disk: the head the log's replay
    /// found; or why not (and whether sled was touched, so must be reopened next time).
    Healed(Result<Option<Head>, (LedgerError, bool)>),
}

/// Work for the checkpoint thread.
enum Maintenance {
    Checkpoint,
    /// See the module docs: reopen sled first if `reopen`; only if `needed` bytes are free.
    Heal {
        reopen: bool,
        needed: u64,
    },
}

/// How the writer is set up (defaults for production; tests shrink the log files).
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Size of each of the two write-ahead log files.
    pub wal_file_bytes: u64,
    /// Committer threads: how many frames may be on their way to the disk at once. One is
    /// best on the 2-core VM measured in BENCHMARKS.md (each frame's device write costs CPU
    /// there, so fewer, larger frames win); more can pay where writes overlap cheaply.
    pub committers: usize,
    /// Write the log with `O_DIRECT` where the file system allows (else, and when false,
    /// `O_DSYNC` writes through the page cache: as durable, a little slower).
    pub direct_io: bool,
    /// Free space kept in reserve: opening the ledger (and resuming after a full disk) needs
    /// the room the two log files still need to reach `wal_file_bytes` each, plus this much
    /// (for sled's checkpoints and the files beside the ledger); otherwise it is refused with
    /// [`LedgerError::DiskFull`]. While appending, free space below half of this (looked at
    /// every 100 ms) is treated as a full disk already, so sled does not meet one. 0: no
    /// reserve and no low-water mark. Default [`DEFAULT_MIN_FREE_BYTES`] (64 MiB).
    pub min_free_bytes: u64,
    /// sled's own background flusher period (it also cleans sled's log segments): set by
    /// [`crate::Ledger::open_tuned`] when the compactor runs; `None`: off.
    #[doc(hidden)]
    pub sled_flush_every_ms: Option<u64>,
    /// sled's page cache in bytes ([`crate::DEFAULT_CACHE_BYTES`]; sled's own default is 1 GiB).
    /// The cache holds recently read and written pages; the ledger's appends and its tail reads
    /// need little of it, so it mostly bounds the process's resident memory.
    pub cache_bytes: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            wal_file_bytes: wal::DEFAULT_FILE_BYTES,
            committers: 1,
            direct_io: true,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            sled_flush_every_ms: None,
            cache_bytes: crate::DEFAULT_CACHE_BYTES,
        }
    }
}

/// Records given their place in the chain, waiting to be written and applied.
struct Prepared {
    first_seq: u64,
    records: u32,
    /// The frame, built in place (sealed once it has its place in the log).
    frame: FrameBuf,
    /// The stored batches: first sequence number and place in the frame.
    batches: Vec<(u64, std::ops::Range<usize>)>,
    head: Head,
    replies: Vec<(Events, Reply, Acks)>,
}

impl Prepared {
    fn fail(self, err: &LedgerError) {
        for (events, reply, _) in self.replies {
            reply.send(Err(err.clone()), events);
        }
    }
}

/// A placed frame, for its committer to write.
struct Job {
    index: u64,
    file: usize,
    offset: u64,
    prepared: Prepared,
}

/// Applies written frames in order: into sled, then the acknowledgements.
pub(crate) struct Completion {
    store: StoreCell,
    head_tx: Arc<watch::Sender<Option<Head>>>,
    state: Mutex<CompletionState>,
    /// Frame buffers to reuse (fresh large allocations cost page faults on every frame).
    spare: Mutex<Vec<Vec<u8>>>,
}

struct CompletionState {
    next: u64,
    done: BTreeMap<u64, (Prepared, Result<(), LedgerError>)>,
    /// The first frame that failed (every later one is refused, until a heal resets this).
    fault: Option<Fault>,
}

/// Why a frame failed, and whether sled did (then it must be reopened to be used again).
#[derive(Clone, Debug)]
struct Fault {
    error: LedgerError,
    sled: bool,
}

impl Completion {
    fn fault(&self) -> Option<Fault> {
        lock(&self.state).fault.clone()
    }

    /// Frames finished so far (in order).
    fn finished(&self) -> u64 {
        lock(&self.state).next
    }

    /// After a heal: nothing is in flight; frames from now on are applied again.
    fn reset(&self) {
        let mut state = lock(&self.state);
        debug_assert!(state.done.is_empty());
        state.fault = None;
    }

    fn finish(&self, index: u64, prepared: Prepared, written: Result<(), LedgerError>) {
        let mut state = lock(&self.state);
        state.done.insert(index, (prepared, written));
        loop {
            let next = state.next;
            let Some((prepared, written)) = state.done.remove(&next) else {
                break;
            };
            state.next += 1;
            if let Some(fault) = &state.fault {
                // A frame after a failed one: its records chain onto records that were refused.
                let err = match &fault.error {
                    LedgerError::DiskFull(why) => LedgerError::DiskFull(why.clone()),
                    other => LedgerError::Closed(other.to_string()),
                };
                prepared.fail(&err);
                continue;
            }
            if let Err(fault) = self.apply(prepared, written) {
                state.fault = Some(fault);
            }
        }
    }

    /// A durable frame's records into sled (in memory until the next checkpoint; the log holds
    /// them), the new head published, the appends answered.
    fn apply(&self, prepared: Prepared, written: Result<(), LedgerError>) -> Result<(), Fault> {
        if let Err(error) = written {
            if !error.is_disk_full() {
                tracing::error!("ledger write failed, appends not acknowledged: {error}");
            }
            prepared.fail(&error);
            return Err(Fault { error, sled: false });
        }
        let head = prepared.head;
        let stored = self.store.get().and_then(|store| {
            prepared
                .batches
                .iter()
                .try_for_each(|(first, range)| {
                    store
                        .tree
                        .insert(
                            crate::record::batch_key(*first),
                            prepared.frame.batch(range.clone()),
                        )
                        .map(|_| ())
                })
                .and_then(|()| {
                    store
                        .head_tree
                        .insert(HEAD_KEY, &crate::record::encode_head(&head)[..])
                        .map(|_| ())
                })
                .map_err(LedgerError::from)
        });
        if let Err(e) = stored {
            let error = match e {
                LedgerError::DiskFull(why) => {
                    LedgerError::DiskFull(format!("storing durable records in sled: {why}"))
                }
                other => {
                    let why = format!("storing durable records in sled: {other}");
                    tracing::error!(
                        "{why}; appends not acknowledged (the write-ahead log holds them)"
                    );
                    LedgerError::Storage(why)
                }
            };
            prepared.fail(&error);
            return Err(Fault { error, sled: true });
        }
        self.head_tx.send_replace(Some(head));
        for (events, reply, acks) in prepared.replies {
            reply.send(Ok(acks), events);
        }
        let raw = prepared.frame.into_raw();
        let mut spare = lock(&self.spare);
        if spare.len() < MAX_SPARE_FRAMES && raw.capacity() <= MAX_SPARE_BYTES {
            spare.push(raw);
        }
        Ok(())
    }
}

/// Starts the committer threads, the checkpoint thread and the grower thread; returns where to
/// send requests and the threads to join once a shutdown was sent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    dir: PathBuf,
    store: StoreCell,
    head: Option<Head>,
    head_tx: Arc<watch::Sender<Option<Head>>>,
    gen: u64,
    options: WriterOptions,
) -> Result<(mpsc::Sender<Request>, Vec<JoinHandle<()>>), LedgerError> {
    let mut wal = Wal::open(&dir, options.wal_file_bytes, gen, options.direct_io)?;
    // Everything the log held that continues the chain is in the store now; made durable
    // (what sled read back at open may still sit unsynced in the page cache after a killed
    // run), the log is not needed any more. The rest (a torn frame, frames after one) must
    // not stand before this run's frames at the next replay, so the log starts empty.
    wal::checkpoint(&store.get()?.db, &dir)?;
    wal.clear().map_err(|e| {
        io_error(
            format_args!("emptying the write-ahead log in {}", dir.display()),
            &e,
        )
    })?;
    let thread_error =
        |e: std::io::Error| LedgerError::Storage(format!("cannot start a ledger thread: {e}"));
    let handles = || {
        wal.handles()
            .map_err(|e| LedgerError::Storage(format!("write-ahead log in {}: {e}", dir.display())))
    };
    let (files, grow_files) = (handles()?, handles()?);
    let (tx, rx) = mpsc::channel();
    let (checkpoint_tx, checkpoint_rx) = mpsc::channel::<Maintenance>();
    let (grow_tx, grow_rx) = mpsc::channel::<wal::Growth>();
    let committers = options.committers.max(1);
    let shared = Arc::new(Shared {
        intake: Mutex::new(Intake {
            rx,
            head,
            wal,
            pending: Vec::new(),
            stash: None,
            next_index: 0,
            checkpoint_tx,
            checkpoint_busy: false,
            grow_tx,
            checkpointed: head.map(|h| h.seq),
            failed: None,
            trouble: None,
            min_free_bytes: options.min_free_bytes,
            free_checked: Instant::now(),
            dir: dir.clone(),
            shutdowns: Vec::new(),
            frames: 0,
            records: 0,
        }),
        completion: Completion {
            store: store.clone(),
            head_tx: head_tx.clone(),
            state: Mutex::new(CompletionState {
                next: 0,
                done: BTreeMap::new(),
                fault: None,
            }),
            spare: Mutex::new(Vec::new()),
        },
        files,
        live: Mutex::new(committers),
        dir: dir.clone(),
    });
    let mut threads = Vec::new();
    {
        let (dir, store, head_tx, writer) =
            (dir.clone(), store.clone(), head_tx.clone(), tx.clone());
        threads.push(
            std::thread::Builder::new()
                .name("ledger-checkpoint".into())
                .spawn(move || {
                    let store_file = File::open(dir.join("db")).ok();
                    loop {
                        let job = match checkpoint_rx.recv_timeout(WRITEBACK_EVERY) {
                            Ok(job) => job,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                // Start writing sled's dirty pages back now, in small steps,
                                // rather than all at the next checkpoint's fsync.
                                if let Some(file) = &store_file {
                                    wal::start_writeback(file);
                                }
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        };
                        let answer = match job {
                            Maintenance::Checkpoint => {
                                // Everything applied so far is in sled; the checkpoint covers it.
                                let covered = head_tx.borrow().map(|h| h.seq);
                                let result = store
                                    .get()
                                    .and_then(|s| wal::checkpoint(&s.db, &dir))
                                    .map(|()| covered);
                                Request::Checkpointed(result)
                            }
                            Maintenance::Heal { reopen, needed } => {
                                Request::Healed(heal(&dir, &store, &options, reopen, needed))
                            }
                        };
                        if writer.send(answer).is_err() {
                            break;
                        }
                    }
                })
                .map_err(thread_error)?,
        );
    }
    {
        let (dir, writer) = (dir.clone(), tx.clone());
        threads.push(
            std::thread::Builder::new()
                .name("ledger-grower".into())
                .spawn(move || {
                    while let Ok(growth) = grow_rx.recv() {
                        let result = growth.run(&grow_files).map_err(|e| {
                            io_error(
                                format_args!("zeroing write-ahead log room in {}", dir.display()),
                                &e,
                            )
                        });
                        if writer.send(Request::Grown(growth, result)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(thread_error)?,
        );
    }
    for id in 0..committers {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("ledger-writer-{id}"))
                .spawn(move || committer(&shared))
                .map_err(thread_error)?,
        );
    }
    Ok((tx, threads))
}

/// What the committer threads share.
struct Shared {
    /// Requests, the chain's tip and the log's next place: taken by one committer at a time.
    intake: Mutex<Intake>,
    completion: Completion,
    files: [File; 2],
    /// Committers still running; the last one out makes the store durable.
    live: Mutex<usize>,
    dir: PathBuf,
}

/// After a full disk, with no frame in flight (see the module docs): reopens sled if `reopen`,
/// replays the log into the store and checkpoints; the head the replay found. Not tried (and
/// sled not touched) while fewer than `needed` bytes are free.
fn heal(
    dir: &std::path::Path,
    store: &StoreCell,
    options: &WriterOptions,
    reopen: bool,
    needed: u64,
) -> Result<Option<Head>, (LedgerError, bool)> {
    let free = wal::free_bytes(dir).map_err(|e| (io_error("free space", &e), false))?;
    if free < needed {
        return Err((
            LedgerError::DiskFull(format!("{free} bytes free, {needed} needed to resume")),
            false,
        ));
    }
    let touched = |e: LedgerError| (e, true);
    if reopen {
        // Every handle must be gone before sled opens the directory again (it locks it);
        // readers holding an old one get errors and let go of it soon.
        drop(store.take());
        let reopened = Store::open(dir, options).map_err(touched)?;
        store.put(reopened);
        tracing::info!(dir = %dir.display(), "ledger store reopened after a full disk");
    }
    let s = store.get().map_err(touched)?;
    let base = verify::recorded_base(&s.head_tree)
        .map_err(LedgerError::CorruptTail)
        .map_err(touched)?;
    let head = verify::recover_tail(&s.tree, base)
        .map_err(LedgerError::CorruptTail)
        .map_err(touched)?;
    let recovered = wal::recover(dir, &s.db, &s.tree, &s.head_tree, head).map_err(touched)?;
    wal::checkpoint(&s.db, dir).map_err(touched)?;
    Ok(recovered.head)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One committer: takes whatever is pending as one frame (waiting for requests if there are
/// none), writes it, applies it in order, again. While one writes, another takes the next
/// requests, so frames overlap on their way to the disk.
fn committer(shared: &Shared) {
    loop {
        let mut intake = lock(&shared.intake);
        let job = intake.next_job(&shared.completion);
        drop(intake);
        let Some(job) = job else { break };
        // O_DSYNC: durable once the write returns.
        let started = Instant::now();
        let records = job.prepared.records;
        let written = write_frame(shared, &job)
            .map_err(|e| io_error(format_args!("write-ahead log write at {}", job.offset), &e));
        let ok = written.is_ok();
        shared.completion.finish(job.index, job.prepared, written);
        let metrics = crate::metrics::metrics();
        if ok {
            metrics.commits.inc();
            metrics.appended_records.inc_by(u64::from(records));
            metrics.commit_latency.observe_duration(started.elapsed());
            metrics.batch_records.observe_units(u64::from(records));
        } else {
            metrics.commit_failures.inc();
        }
    }
    let last = {
        let mut live = lock(&shared.live);
        *live -= 1;
        *live == 0
    };
    if last {
        let mut intake = lock(&shared.intake);
        intake.finish(shared);
    }
}

fn write_frame(shared: &Shared, job: &Job) -> std::io::Result<()> {
    let (file, bytes) = (&shared.files[job.file], job.prepared.frame.bytes());
    #[cfg(test)]
    if test_faults::take(&shared.dir, || {
        // Only a frame at a file's end, so the frames after it go to the other file.
        let len = file.metadata().map_or(0, |m| m.len());
        job.offset + (bytes.len() + 2 * wal::ALIGN) as u64 >= len
    }) {
        // A torn write on a full disk: the frame's first block reaches the file, no more;
        // slowly, so that later frames are written (whole) meanwhile.
        if bytes.len() > wal::ALIGN {
            file.write_all_at(&bytes[..wal::ALIGN], job.offset)?;
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    file.write_all_at(bytes, job.offset)
}

struct Intake {
    rx: mpsc::Receiver<Request>,
    /// The last record given a place (written or not).
    head: Option<Head>,
    wal: Wal,
    pending: Vec<(Events, Reply)>,
    /// A prepared frame waiting for a log file to be free.
    stash: Option<Prepared>,
    next_index: u64,
    checkpoint_tx: mpsc::Sender<Maintenance>,
    /// A checkpoint or a heal is under way.
    checkpoint_busy: bool,
    grow_tx: mpsc::Sender<wal::Growth>,
    /// The store is durable through this record.
    checkpointed: Option<u64>,
    /// The writer stopped for good (appends refused with [`LedgerError::Closed`]).
    failed: Option<String>,
    /// The disk is full: appends refused with [`LedgerError::DiskFull`] until healed.
    trouble: Option<Trouble>,
    min_free_bytes: u64,
    /// When the free space was last looked at (see [`Intake::below_low_water`]).
    free_checked: Instant,
    dir: PathBuf,
    shutdowns: Vec<mpsc::SyncSender<()>>,
    /// Frames and records written since open (logged at close).
    frames: u64,
    records: u64,
}

/// The writer's full-disk state (see the module docs).
struct Trouble {
    error: LedgerError,
    since: Instant,
    /// sled failed: reopen it when healing.
    reopen: bool,
    /// A heal is under way on the checkpoint thread.
    healing: bool,
    next_try: Instant,
    backoff: Duration,
    /// Appends refused meanwhile (logged at the end).
    refused: u64,
}

impl Intake {
    /// The next frame to write, waiting for requests while there are none; `None` once the
    /// ledger is shutting down and everything before the shutdown is written.
    fn next_job(&mut self, completion: &Completion) -> Option<Job> {
        loop {
            while let Ok(request) = self.rx.try_recv() {
                self.handle(request, completion);
            }
            if self.failed.is_none() {
                if let Some(fault) = completion.fault() {
                    if fault.error.is_disk_full() {
                        self.disk_full(fault.error, fault.sled);
                    } else {
                        self.failed = Some(fault.error.to_string());
                    }
                }
            }
            if let Some(why) = &self.failed {
                let err = LedgerError::Closed(why.clone());
                if let Some(p) = self.stash.take() {
                    p.fail(&err);
                }
                for (events, reply) in self.pending.drain(..) {
                    reply.send(Err(err.clone()), events);
                }
            } else if let Some(trouble) = &mut self.trouble {
                let err = trouble.error.clone();
                if let Some(p) = self.stash.take() {
                    trouble.refused += p.replies.len() as u64;
                    p.fail(&err);
                }
                trouble.refused += self.pending.len() as u64;
                for (events, reply) in self.pending.drain(..) {
                    reply.send(Err(err.clone()), events);
                }
                if !self.shutdowns.is_empty() {
                    // Frames in flight finish on their own; `finish` waits for a heal.
                    return None;
                }
                let in_flight = self.next_index - completion.finished();
                let now = Instant::now();
                if !trouble.healing
                    && !self.checkpoint_busy
                    && in_flight == 0
                    && now >= trouble.next_try
                {
                    let heal = Maintenance::Heal {
                        reopen: trouble.reopen,
                        needed: self.wal.room_needed() + self.min_free_bytes,
                    };
                    if self.checkpoint_tx.send(heal).is_ok() {
                        trouble.healing = true;
                        self.checkpoint_busy = true;
                    } else {
                        self.failed = Some("the ledger's checkpoint thread stopped".into());
                    }
                    continue;
                }
                // Wait for requests (refused at once), the heal's answer, the next try, or
                // (polling) the frames still in flight.
                let wait = if trouble.healing || self.checkpoint_busy {
                    HEAL_MAX_BACKOFF
                } else if in_flight > 0 {
                    HEAL_POLL
                } else {
                    trouble.next_try.saturating_duration_since(now)
                };
                match self.rx.recv_timeout(wait) {
                    Ok(request) => self.handle(request, completion),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                }
                continue;
            }
            if self.stash.is_none() && !self.pending.is_empty() {
                self.stash = self.prepare(completion);
                continue;
            }
            if let Some(job) = self.place() {
                return Some(job);
            }
            if self.trouble.is_some() {
                continue;
            }
            if self.stash.is_none() && !self.shutdowns.is_empty() {
                // Nothing left from before the shutdown; in-flight frames finish on their own.
                return None;
            }
            // Wait for a request (or for the checkpoint a stashed frame needs).
            match self.rx.recv() {
                Ok(request) => self.handle(request, completion),
                Err(_) => return None,
            }
        }
    }

    /// Whether the file system has fallen below the low-water mark (half of
    /// [`WriterOptions::min_free_bytes`]; looked at every [`FREE_CHECK_EVERY`]): then the
    /// writer refuses appends as on a full disk (the stashed frame too) before sled itself
    /// meets one (so sled needs no reopen).
    fn below_low_water(&mut self) -> bool {
        if self.min_free_bytes == 0 || self.free_checked.elapsed() < FREE_CHECK_EVERY {
            return false;
        }
        self.free_checked = Instant::now();
        let low = self.min_free_bytes / 2;
        match wal::free_bytes(&self.dir) {
            Ok(free) if free < low => {
                let e = LedgerError::DiskFull(format!(
                    "{free} bytes free on the ledger's file system, below the low-water mark of \
                     {low} (half of min_free_bytes)"
                ));
                if let Some(prepared) = self.stash.take() {
                    prepared.fail(&e);
                }
                self.disk_full(e, false);
                true
            }
            _ => false,
        }
    }

    /// Enters (or stays in) the full-disk state; logged once per episode.
    fn disk_full(&mut self, error: LedgerError, sled: bool) {
        if let Some(trouble) = &mut self.trouble {
            trouble.reopen |= sled;
            return;
        }
        let needed = self.wal.room_needed() + self.min_free_bytes;
        let why = match &error {
            LedgerError::DiskFull(why) => why.clone(),
            other => other.to_string(),
        };
        tracing::error!(
            "LEDGER DISK FULL ({why}). Appends (shares) are refused (miners get an error) until \
             at least {} MiB are free on the ledger's file system; the pool resumes on its own \
             then. Free some space.",
            needed.div_ceil(1 << 20)
        );
        let now = Instant::now();
        self.trouble = Some(Trouble {
            error,
            since: now,
            reopen: sled,
            healing: false,
            next_try: now + HEAL_FIRST_BACKOFF,
            backoff: HEAL_FIRST_BACKOFF,
            refused: 0,
        });
    }

    /// The heal's answer (see the module docs).
    fn healed(
        &mut self,
        result: Result<Option<Head>, (LedgerError, bool)>,
        completion: &Completion,
    ) {
        self.checkpoint_busy = false;
        let Some(trouble) = &mut self.trouble else {
            return;
        };
        trouble.healing = false;
        let head = match result {
            Ok(head) => head,
            Err((e, touched)) => {
                tracing::debug!("ledger not healed yet: {e}");
                trouble.reopen |= touched;
                trouble.backoff = (trouble.backoff * 2).min(HEAL_MAX_BACKOFF);
                trouble.next_try = Instant::now() + trouble.backoff;
                if !e.is_disk_full() && !matches!(e, LedgerError::Locked { .. }) {
                    // Not a full disk any more, but something else: stop for good.
                    tracing::error!("ledger store cannot be recovered after a full disk: {e}");
                    self.failed = Some(format!("recovering from a full disk: {e}"));
                }
                return;
            }
        };
        // Everything acknowledged is in the log, so the replay reaches it.
        let published = *completion.head_tx.borrow();
        if head.map(|h| h.seq) < published.map(|h| h.seq) {
            let why = format!(
                "after a full disk the store's replayed head {:?} is behind the acknowledged {:?}",
                head.map(|h| h.seq),
                published.map(|h| h.seq)
            );
            tracing::error!("{why}; the ledger writer stops");
            self.failed = Some(why);
            return;
        }
        // The store is durable through `head`: the log starts empty (frames refused after a
        // failed one, possibly whole in the other file, must not stand before new frames at
        // a replay), in a new generation in its other file.
        if let Err(e) = self.wal.clear() {
            tracing::debug!("ledger not healed yet: emptying the write-ahead log: {e}");
            trouble.backoff = (trouble.backoff * 2).min(HEAL_MAX_BACKOFF);
            trouble.next_try = Instant::now() + trouble.backoff;
            if !crate::error::is_disk_full(&e) {
                tracing::error!("ledger write-ahead log cannot be emptied after a full disk: {e}");
                self.failed = Some(format!("emptying the write-ahead log: {e}"));
            }
            return;
        }
        self.head = head;
        self.checkpointed = head.map(|h| h.seq);
        self.wal.restart();
        completion.reset();
        if head != published {
            completion.head_tx.send_replace(head);
        }
        tracing::warn!(
            down_ms = trouble.since.elapsed().as_millis() as u64,
            refused = trouble.refused,
            head = head.map(|h| h.seq),
            "ledger disk space is back: appends are accepted again"
        );
        self.trouble = None;
    }

    fn handle(&mut self, request: Request, completion: &Completion) {
        match request {
            Request::Append { events, reply } => {
                if let Some(why) = &self.failed {
                    reply.send(Err(LedgerError::Closed(why.clone())), events);
                } else if let Some(trouble) = &mut self.trouble {
                    trouble.refused += 1;
                    reply.send(Err(trouble.error.clone()), events);
                } else if !self.shutdowns.is_empty() {
                    // Requests behind a shutdown are refused.
                    reply.send(
                        Err(LedgerError::Closed("the ledger was closed".into())),
                        events,
                    );
                } else {
                    self.pending.push((events, reply));
                }
            }
            Request::Shutdown { done } => self.shutdowns.push(done),
            Request::Grown(growth, result) => {
                self.wal.grown(growth, result.is_ok());
                match result {
                    Ok(()) => {}
                    Err(e) if e.is_disk_full() => self.disk_full(e, false),
                    Err(e) => tracing::warn!("{e} (retried when needed)"),
                }
            }
            Request::Checkpointed(result) => {
                self.checkpoint_busy = false;
                match result {
                    Ok(covered) => self.checkpointed = self.checkpointed.max(covered),
                    // sled refuses everything after a failed write: reopen it to heal.
                    Err(e) if e.is_disk_full() => self.disk_full(e, true),
                    Err(why) => {
                        tracing::error!("ledger checkpoint failed: {why}");
                        self.failed
                            .get_or_insert(format!("checkpoint failed: {why}"));
                    }
                }
            }
            Request::Healed(result) => self.healed(result, completion),
        }
    }

    fn request_checkpoint(&mut self) {
        if !self.checkpoint_busy {
            self.checkpoint_busy = self.checkpoint_tx.send(Maintenance::Checkpoint).is_ok();
        }
    }

    /// Gives the stashed frame its place in the log, if it has one now.
    fn place(&mut self) -> Option<Job> {
        let frame_len = self.stash.as_ref()?.frame.frame_len();
        if self.below_low_water() {
            return None;
        }
        if self.wal.needs_switch(frame_len) {
            if !self.wal.other_free(self.checkpointed) {
                // Wait for a checkpoint to cover the other file's records.
                self.request_checkpoint();
                return None;
            }
            self.wal.switch();
        }
        let last_seq = self.stash.as_ref()?.head.seq;
        let placed = self.wal.place(frame_len, last_seq);
        if let Some(growth) = self.wal.growth_wanted() {
            if self.grow_tx.send(growth).is_err() {
                self.wal.grown(growth, false);
            }
        }
        let slot = match placed {
            // Waits for the background growth to zero its room.
            Ok(None) => return None,
            Ok(Some(slot)) => slot,
            Err(e) => {
                if let Some(prepared) = self.stash.take() {
                    prepared.fail(&e);
                }
                if e.is_disk_full() {
                    self.disk_full(e, false);
                } else {
                    tracing::error!("{e}");
                    self.failed = Some(e.to_string());
                }
                return None;
            }
        };
        let mut prepared = self.stash.take()?;
        prepared
            .frame
            .seal(self.wal.generation(), prepared.first_seq, prepared.records);
        debug_assert_eq!(prepared.frame.bytes().len(), frame_len);
        let index = self.next_index;
        self.next_index += 1;
        self.frames += 1;
        self.records += u64::from(prepared.records);
        // Past half of the active file: make the store durable, so the other file is free by
        // the time this one is full.
        if self.wal.used() > self.wal.file_bytes() / 2 && !self.wal.other_free(self.checkpointed) {
            self.request_checkpoint();
        }
        Some(Job {
            index,
            file: slot.file,
            offset: slot.offset,
            prepared,
        })
    }

    /// Gives the pending appends (as many as fit a frame) their records: sequence numbers,
    /// time and chain hashes, in stored batches.
    fn prepare(&mut self, completion: &Completion) -> Option<Prepared> {
        let max_frame = self.wal.max_frame();
        let mut take = 0;
        let mut records = 0usize;
        let mut bytes = 0usize;
        for (events, _) in &self.pending {
            let n = events.as_slice().len();
            let b: usize = events
                .as_slice()
                .iter()
                .map(|e| e.len() + RECORD_OVERHEAD)
                .sum();
            if take > 0 && (records + n > MAX_FRAME_RECORDS || bytes + b > MAX_FRAME_BYTES) {
                break;
            }
            take += 1;
            records += n;
            bytes += b;
        }
        let appends: Vec<(Events, Reply)> = self.pending.drain(..take).collect();
        // Room for the frame header, batch headers and length prefixes.
        let batches_bound = bytes / (MAX_BATCH_BYTES / 2) + records.min(1) + 1;
        let capacity = wal::FRAME_HEADER_LEN + bytes + batches_bound * 9;
        if wal::padded(capacity) > max_frame {
            let err = LedgerError::Encode(format!(
                "{bytes} bytes of events do not fit the write-ahead log's {max_frame}-byte files"
            ));
            for (events, reply) in appends {
                reply.send(Err(err.clone()), events);
            }
            return None;
        }
        let first_seq = self.head.map_or(0, |h| h.seq + 1);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let recycled = lock(&completion.spare).pop();
        let mut frame = FrameBuf::new(capacity, recycled);
        let mut batches = Vec::new();
        frame.begin_batch();
        let mut batch_first = first_seq;
        let mut prev = self.head.map_or(GENESIS_PREV_HASH, |h| h.hash);
        let mut seq = first_seq;
        let mut replies: Vec<(Events, Reply, Acks)> = Vec::with_capacity(appends.len());
        for (events, reply) in appends {
            let mut many = match &events {
                Events::One(_) => None,
                Events::Many(events) => Some(Vec::with_capacity(events.len())),
            };
            let mut one = None;
            for event in events.as_slice() {
                if seq > batch_first
                    && frame.batch_len() + event.len() + RECORD_OVERHEAD > MAX_BATCH_BYTES
                {
                    let range = frame.finish_batch((seq - batch_first) as u32);
                    batches.push((batch_first, range));
                    frame.begin_batch();
                    batch_first = seq;
                }
                // Event lengths were checked by the caller (`Ledger::encode`).
                let pushed = push_record(
                    frame.out(),
                    &prev,
                    seq,
                    EVENT_SCHEMA_VERSION,
                    time_ms,
                    event,
                );
                let hash = match pushed {
                    Ok(hash) => hash,
                    Err(p) => {
                        // Cannot happen for a checked event; refuse everything taken.
                        let err = LedgerError::Encode(p.to_string());
                        reply.send(Err(err.clone()), events);
                        for (events, reply, _) in replies {
                            reply.send(Err(err.clone()), events);
                        }
                        return None;
                    }
                };
                let appended = Appended { seq, hash };
                match &mut many {
                    None => one = Some(appended),
                    Some(many) => many.push(appended),
                }
                prev = hash;
                seq += 1;
            }
            let acks = match (many, one) {
                (Some(many), _) => Acks::Many(many),
                (None, Some(one)) => Acks::One(one),
                (None, None) => Acks::Many(Vec::new()),
            };
            replies.push((events, reply, acks));
        }
        if seq == first_seq {
            // Only empty `append_batch` calls: nothing to write.
            for (events, reply, acks) in replies {
                reply.send(Ok(acks), events);
            }
            return None;
        }
        let range = frame.finish_batch((seq - batch_first) as u32);
        batches.push((batch_first, range));
        let head = Head {
            seq: seq - 1,
            hash: prev,
        };
        self.head = Some(head);
        Some(Prepared {
            first_seq,
            records: (seq - first_seq) as u32,
            frame,
            batches,
            head,
            replies,
        })
    }

    /// After the last frame (every committer has stopped): make the store durable, empty the
    /// log, answer the shutdowns.
    fn finish(&mut self, shared: &Shared) {
        tracing::info!(
            frames = self.frames,
            records = self.records,
            "ledger writer stopping"
        );
        // Wait for a checkpoint under way, so its answer does not race the final one, and for
        // a growth under way (it writes to the log files).
        while self.checkpoint_busy || self.wal.growing() {
            match self.rx.recv() {
                Ok(request) => self.handle(request, &shared.completion),
                Err(_) => break,
            }
        }
        // After a failure, or on a full disk not healed, the log keeps what it holds: the
        // next open replays it (and checks the free space first).
        let keep_log =
            self.failed.is_some() || self.trouble.is_some() || shared.completion.fault().is_some();
        let gen = self.wal.generation().to_le_bytes();
        let checkpointed = shared.completion.store.get().and_then(|store| {
            store
                .head_tree
                .insert(wal::GEN_KEY, &gen[..])
                .map_err(LedgerError::from)
                .and_then(|_| wal::checkpoint(&store.db, &shared.dir))
        });
        match checkpointed {
            Ok(()) if !keep_log => {
                if let Err(e) = self.wal.clear() {
                    tracing::warn!("could not mark the write-ahead log empty: {e}");
                }
            }
            Ok(()) => {}
            Err(e) => tracing::error!("final ledger checkpoint failed: {e}"),
        }
        // Requests that raced the shutdown.
        while let Ok(request) = self.rx.try_recv() {
            self.handle(request, &shared.completion);
        }
        for (events, reply) in self.pending.drain(..) {
            reply.send(
                Err(LedgerError::Closed("the ledger was closed".into())),
                events,
            );
        }
        for done in self.shutdowns.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Tests make log writes fail as on a full disk (a file system that allocates on every write
/// fails there; tmpfs and ext4 do not, the log's blocks being zeroed ahead).
#[cfg(test)]
pub(crate) mod test_faults {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAULTS: Mutex<Vec<(PathBuf, u32)>> = Mutex::new(Vec::new());

    /// The next `n` frame writes at the end of a log file of the ledger in `dir` fail with
    /// `ENOSPC`.
    pub fn fail_writes(dir: &Path, n: u32) {
        let mut faults = FAULTS.lock().unwrap();
        faults.retain(|(d, _)| d != dir);
        faults.push((dir.to_path_buf(), n));
    }

    /// Whether this write fails (if `here` says the write is one to fail).
    pub(super) fn take(dir: &Path, here: impl FnOnce() -> bool) -> bool {
        let mut faults = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
        match faults.iter_mut().find(|(d, n)| d == dir && *n > 0) {
            Some((_, n)) if here() => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

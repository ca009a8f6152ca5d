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

use crate::error::LedgerError;
use crate::record::{push_record, GENESIS_PREV_HASH, HEAD_KEY, RECORD_HEADER_LEN};
use crate::wal::{self, FrameBuf, Wal};
use crate::{Appended, Head};
use pool_core::EVENT_SCHEMA_VERSION;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};
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
    Checkpointed(Result<Option<u64>, String>),
    /// The grower zeroed more of a log file (or failed to).
    Grown(wal::Growth, bool),
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
    tree: sled::Tree,
    head_tree: sled::Tree,
    head_tx: Arc<watch::Sender<Option<Head>>>,
    state: Mutex<CompletionState>,
    /// Frame buffers to reuse (fresh large allocations cost page faults on every frame).
    spare: Mutex<Vec<Vec<u8>>>,
}

struct CompletionState {
    next: u64,
    done: BTreeMap<u64, (Prepared, Result<(), String>)>,
    failed: Option<String>,
}

impl Completion {
    fn failed(&self) -> Option<String> {
        lock(&self.state).failed.clone()
    }

    fn finish(&self, index: u64, prepared: Prepared, written: Result<(), String>) {
        let mut state = lock(&self.state);
        state.done.insert(index, (prepared, written));
        loop {
            let next = state.next;
            let Some((prepared, written)) = state.done.remove(&next) else {
                break;
            };
            state.next += 1;
            if let Some(why) = &state.failed {
                prepared.fail(&LedgerError::Closed(why.clone()));
                continue;
            }
            if let Err(why) = self.apply(prepared, written) {
                state.failed = Some(why);
            }
        }
    }

    /// A durable frame's records into sled (in memory until the next checkpoint; the log holds
    /// them), the new head published, the appends answered.
    fn apply(&self, prepared: Prepared, written: Result<(), String>) -> Result<(), String> {
        if let Err(why) = written {
            tracing::error!("ledger write failed, appends not acknowledged: {why}");
            prepared.fail(&LedgerError::Storage(why.clone()));
            return Err(why);
        }
        let head = prepared.head;
        let stored = prepared
            .batches
            .iter()
            .try_for_each(|(first, range)| {
                self.tree
                    .insert(
                        crate::record::batch_key(*first),
                        prepared.frame.batch(range.clone()),
                    )
                    .map(|_| ())
            })
            .and_then(|()| {
                self.head_tree
                    .insert(HEAD_KEY, &crate::record::encode_head(&head)[..])
                    .map(|_| ())
            });
        if let Err(e) = stored {
            let why = format!("storing durable records in sled: {e}");
            tracing::error!("{why}; appends not acknowledged (the write-ahead log holds them)");
            prepared.fail(&LedgerError::Storage(why.clone()));
            return Err(why);
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
    db: sled::Db,
    tree: sled::Tree,
    head_tree: sled::Tree,
    head: Option<Head>,
    head_tx: Arc<watch::Sender<Option<Head>>>,
    gen: u64,
    options: WriterOptions,
) -> Result<(mpsc::Sender<Request>, Vec<JoinHandle<()>>), LedgerError> {
    let wal = Wal::open(&dir, options.wal_file_bytes, gen, options.direct_io)?;
    let thread_error =
        |e: std::io::Error| LedgerError::Storage(format!("cannot start a ledger thread: {e}"));
    let handles = || {
        wal.handles()
            .map_err(|e| LedgerError::Storage(format!("write-ahead log in {}: {e}", dir.display())))
    };
    let (files, grow_files) = (handles()?, handles()?);
    let (tx, rx) = mpsc::channel();
    let (checkpoint_tx, checkpoint_rx) = mpsc::channel::<()>();
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
            shutdowns: Vec::new(),
            frames: 0,
            records: 0,
        }),
        completion: Completion {
            tree: tree.clone(),
            head_tree: head_tree.clone(),
            head_tx: head_tx.clone(),
            state: Mutex::new(CompletionState {
                next: 0,
                done: BTreeMap::new(),
                failed: None,
            }),
            spare: Mutex::new(Vec::new()),
        },
        files,
        live: Mutex::new(committers),
        dir: dir.clone(),
        db: db.clone(),
    });
    let mut threads = Vec::new();
    {
        let (dir, db, head_tx, writer) = (dir.clone(), db.clone(), head_tx.clone(), tx.clone());
        threads.push(
            std::thread::Builder::new()
                .name("ledger-checkpoint".into())
                .spawn(move || {
                    let store = File::open(dir.join("db")).ok();
                    loop {
                        match checkpoint_rx.recv_timeout(WRITEBACK_EVERY) {
                            Ok(()) => {}
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                // Start writing sled's dirty pages back now, in small steps,
                                // rather than all at the next checkpoint's fsync.
                                if let Some(store) = &store {
                                    wal::start_writeback(store);
                                }
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                        // Everything applied so far is in sled; the checkpoint covers it.
                        let covered = head_tx.borrow().map(|h| h.seq);
                        let result = wal::checkpoint(&db, &dir)
                            .map(|()| covered)
                            .map_err(|e| e.to_string());
                        if writer.send(Request::Checkpointed(result)).is_err() {
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
                        let ok = match growth.run(&grow_files) {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!(
                                    "zeroing write-ahead log room in {} failed (retried when needed): {e}",
                                    dir.display()
                                );
                                false
                            }
                        };
                        if writer.send(Request::Grown(growth, ok)).is_err() {
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
    db: sled::Db,
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
        let written = shared.files[job.file]
            .write_all_at(job.prepared.frame.bytes(), job.offset)
            .map_err(|e| format!("write-ahead log write at {}: {e}", job.offset));
        shared.completion.finish(job.index, job.prepared, written);
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

struct Intake {
    rx: mpsc::Receiver<Request>,
    /// The last record given a place (written or not).
    head: Option<Head>,
    wal: Wal,
    pending: Vec<(Events, Reply)>,
    /// A prepared frame waiting for a log file to be free.
    stash: Option<Prepared>,
    next_index: u64,
    checkpoint_tx: mpsc::Sender<()>,
    checkpoint_busy: bool,
    grow_tx: mpsc::Sender<wal::Growth>,
    /// The store is durable through this record.
    checkpointed: Option<u64>,
    failed: Option<String>,
    shutdowns: Vec<mpsc::SyncSender<()>>,
    /// Frames and records written since open (logged at close).
    frames: u64,
    records: u64,
}

impl Intake {
    /// The next frame to write, waiting for requests while there are none; `None` once the
    /// ledger is shutting down and everything before the shutdown is written.
    fn next_job(&mut self, completion: &Completion) -> Option<Job> {
        loop {
            while let Ok(request) = self.rx.try_recv() {
                self.handle(request);
            }
            if self.failed.is_none() {
                if let Some(why) = completion.failed() {
                    self.failed = Some(why);
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
            }
            if self.stash.is_none() && !self.pending.is_empty() {
                self.stash = self.prepare(completion);
                continue;
            }
            if let Some(job) = self.place() {
                return Some(job);
            }
            if self.stash.is_none() && !self.shutdowns.is_empty() {
                // Nothing left from before the shutdown; in-flight frames finish on their own.
                return None;
            }
            // Wait for a request (or for the checkpoint a stashed frame needs).
            match self.rx.recv() {
                Ok(request) => self.handle(request),
                Err(_) => return None,
            }
        }
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Append { events, reply } => {
                if let Some(why) = &self.failed {
                    reply.send(Err(LedgerError::Closed(why.clone())), events);
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
            Request::Grown(growth, ok) => self.wal.grown(growth, ok),
            Request::Checkpointed(result) => {
                self.checkpoint_busy = false;
                match result {
                    Ok(covered) => self.checkpointed = self.checkpointed.max(covered),
                    Err(why) => {
                        tracing::error!("ledger checkpoint failed: {why}");
                        self.failed
                            .get_or_insert(format!("checkpoint failed: {why}"));
                    }
                }
            }
        }
    }

    fn request_checkpoint(&mut self) {
        if !self.checkpoint_busy {
            self.checkpoint_busy = self.checkpoint_tx.send(()).is_ok();
        }
    }

    /// Gives the stashed frame its place in the log, if it has one now.
    fn place(&mut self) -> Option<Job> {
        let frame_len = self.stash.as_ref()?.frame.frame_len();
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
                tracing::error!("{e}");
                self.failed = Some(e.to_string());
                if let Some(prepared) = self.stash.take() {
                    prepared.fail(&e);
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
                Ok(request) => self.handle(request),
                Err(_) => break,
            }
        }
        let failed = self.failed.clone().or_else(|| shared.completion.failed());
        let gen = self.wal.generation().to_le_bytes();
        let checkpointed = shared
            .completion
            .head_tree
            .insert(wal::GEN_KEY, &gen[..])
            .map_err(LedgerError::from)
            .and_then(|_| wal::checkpoint(&shared.db, &shared.dir));
        match checkpointed {
            Ok(()) if failed.is_none() => {
                if let Err(e) = self.wal.clear() {
                    tracing::warn!("could not mark the write-ahead log empty: {e}");
                }
            }
            Ok(()) => {}
            Err(e) => tracing::error!("final ledger checkpoint failed: {e}"),
        }
        // Requests that raced the shutdown.
        while let Ok(request) = self.rx.try_recv() {
            self.handle(request);
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

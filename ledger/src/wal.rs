//! The write-ahead log: where an append becomes durable.
//!
//! sled's `flush` writes its log with `sync_file_range`, which neither flushes the disk's write
//! cache nor persists a grown file's size, and it wakes all of sled's I/O threads: slow, and not
//! durable against power loss. So every commit is first written here, as one frame with
//! `O_DSYNC` (and `O_DIRECT` where the file system allows it: no page cache, one device write),
//! into a file whose blocks were written before (zeros, written ahead of the frames by a
//! background thread), so the write needs no metadata commit.
//! Once the frame's write returns, its records are durable and are inserted into sled, which
//! is made durable (`flush` and `fsync` of its file) at checkpoints, off the append path.
//!
//! Two files, `wal.0` and `wal.1`, take turns. Each turn of a file is a new generation; frames
//! are written one after another from offset 0, each padded to [`ALIGN`] bytes:
//!
//! ```text
//! frame   := magic "OWF1" | gen:u64 LE | first_seq:u64 LE | records:u32 LE | payload_len:u32 LE
//!            | crc32:u32 LE (of everything before it and the payload) | payload | zero padding
//! payload := (batch_len:u32 LE | batch)*      batch: the stored form of crate::record
//! ```
//!
//! A file is read from offset 0 while frames are whole (magic, length, checksum) and of the
//! generation of its first frame; a torn write ends it. On open, frames of both files are taken
//! in generation order and every stored batch past the store's last record is replayed if it
//! continues the chain exactly (sequence and chain hash); the first that does not ends the
//! replay. The writer acknowledges a frame only once every earlier frame is durable too, so
//! nothing acknowledged lies beyond such an end. A file is reused only after a checkpoint
//! covers every record in it.

use crate::error::{io_error, LedgerError};
use crate::record::{self, GENESIS_PREV_HASH};
use crate::verify;
use crate::Head;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The log's files, used in turn.
pub(crate) const FILE_NAMES: [&str; 2] = ["wal.0", "wal.1"];
/// Frames start and end on this boundary (the strictest `O_DIRECT` alignment in common use).
pub(crate) const ALIGN: usize = 4096;
/// Default size of each log file.
pub(crate) const DEFAULT_FILE_BYTES: u64 = 64 << 20;
/// Smallest allowed log file (tests use small files to exercise the turns).
pub(crate) const MIN_FILE_BYTES: u64 = 16 * ALIGN as u64;
const FRAME_MAGIC: [u8; 4] = *b"OWF1";
pub(crate) const FRAME_HEADER_LEN: usize = 4 + 8 + 8 + 4 + 4 + 4;
/// Bytes written ahead (as zeros) the first time a file grows; each growth doubles the file.
const FIRST_GROWTH: u64 = 1 << 20;
/// Key in the head tree holding the highest generation the log has used (so generations keep
/// rising after the log was emptied).
pub(crate) const GEN_KEY: &[u8] = b"wal-gen";

/// `n` rounded up to [`ALIGN`].
pub(crate) fn padded(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// A zeroed buffer whose bytes start on an [`ALIGN`] boundary (as `O_DIRECT` requires),
/// without unsafe code: a larger vector, used from its first aligned byte.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn zeroed(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf { raw, start, len }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

/// A frame built in place: the writer appends stored batches straight into the buffer the log
/// write uses (no copy between building and writing), and the buffer is reused for later
/// frames. The frame starts at an [`ALIGN`]ed address inside a plain vector.
pub(crate) struct FrameBuf {
    raw: Vec<u8>,
    /// Where the frame starts in `raw` (aligned).
    start: usize,
    /// Where the open batch's length prefix is, while one is open.
    batch_at: Option<usize>,
}

impl FrameBuf {
    /// An empty frame with room for `capacity` bytes, in `recycled`'s memory if given.
    pub fn new(capacity: usize, recycled: Option<Vec<u8>>) -> FrameBuf {
        let mut raw = recycled.unwrap_or_default();
        raw.clear();
        raw.reserve(capacity + 2 * ALIGN);
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        raw.resize(start + FRAME_HEADER_LEN, 0);
        FrameBuf {
            raw,
            start,
            batch_at: None,
        }
    }

    /// The vector records are appended to (inside the open batch).
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.raw
    }

    /// Opens a stored batch (length prefix and batch header).
    pub fn begin_batch(&mut self) {
        debug_assert!(self.batch_at.is_none());
        self.batch_at = Some(self.raw.len());
        self.raw.extend_from_slice(&[0; 4]);
        self.raw.push(record::BATCH_FORMAT);
        self.raw.extend_from_slice(&[0; 4]);
    }

    /// Closes the open batch of `count` records; returns where it lies in the frame (for
    /// [`FrameBuf::batch`]).
    pub fn finish_batch(&mut self, count: u32) -> std::ops::Range<usize> {
        let at = self.batch_at.take().unwrap_or(self.raw.len());
        let batch = at + 4..self.raw.len();
        record::finish_batch(&mut self.raw[batch.clone()], count);
        let len = batch.len() as u32;
        self.raw[at..at + 4].copy_from_slice(&len.to_le_bytes());
        batch.start - self.start..batch.end - self.start
    }

    /// Bytes of the open batch so far (header included).
    pub fn batch_len(&self) -> usize {
        self.batch_at.map_or(0, |at| self.raw.len() - at - 4)
    }

    /// The frame's length once sealed.
    pub fn frame_len(&self) -> usize {
        padded(self.raw.len() - self.start)
    }

    /// Fills in the header and pads the frame to [`ALIGN`]; then [`FrameBuf::bytes`] is what
    /// the log writes. Moves the frame if the vector had to grow (and so lost its alignment).
    pub fn seal(&mut self, gen: u64, first_seq: u64, records: u32) {
        let payload_len = self.raw.len() - self.start - FRAME_HEADER_LEN;
        let len = self.frame_len();
        self.raw.resize(self.start + len, 0);
        if self.raw[self.start..].as_ptr().align_offset(ALIGN) != 0 {
            let mut moved = FrameBuf::new(len, None);
            moved.raw.truncate(moved.start);
            moved.raw.extend_from_slice(&self.raw[self.start..]);
            self.raw = moved.raw;
            self.start = moved.start;
        }
        let frame = &mut self.raw[self.start..];
        frame[0..4].copy_from_slice(&FRAME_MAGIC);
        frame[4..12].copy_from_slice(&gen.to_le_bytes());
        frame[12..20].copy_from_slice(&first_seq.to_le_bytes());
        frame[20..24].copy_from_slice(&records.to_le_bytes());
        frame[24..28].copy_from_slice(&(payload_len as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&frame[..28]);
        crc.update(&frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload_len]);
        frame[28..32].copy_from_slice(&crc.finalize().to_le_bytes());
    }

    /// The sealed frame.
    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..]
    }

    /// A batch of the frame, where [`FrameBuf::finish_batch`] said it is.
    pub fn batch(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.raw[self.start + range.start..self.start + range.end]
    }

    #[cfg(test)]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..]
    }

    /// The memory, for the next frame.
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }
}

/// Builds one whole frame from stored batches (tests write log files with it).
#[cfg(test)]
pub(crate) fn encode_frame(
    gen: u64,
    first_seq: u64,
    records: u32,
    batches: &[Vec<u8>],
) -> FrameBuf {
    let mut frame = FrameBuf::new(batches.iter().map(|b| b.len() + 4).sum(), None);
    for batch in batches {
        frame
            .out()
            .extend_from_slice(&(batch.len() as u32).to_le_bytes());
        frame.out().extend_from_slice(batch);
    }
    frame.seal(gen, first_seq, records);
    frame
}

/// A whole frame read back.
#[derive(Debug)]
pub(crate) struct Frame {
    pub gen: u64,
    pub first_seq: u64,
    pub batches: Vec<Vec<u8>>,
}

/// The whole frames of one log file, in file order (see the module docs for where it ends).
pub(crate) fn read_file(path: &Path) -> io::Result<Vec<Frame>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut frames: Vec<Frame> = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; FRAME_HEADER_LEN];
    while offset + FRAME_HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut header, offset)?;
        if header[0..4] != FRAME_MAGIC {
            break;
        }
        let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let half = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        let (gen, first_seq, payload_len, crc) = (word(4), word(12), half(24) as u64, half(28));
        if frames.first().is_some_and(|f| f.gen != gen) {
            break;
        }
        if offset + FRAME_HEADER_LEN as u64 + payload_len > len {
            break;
        }
        let mut payload = vec![0u8; payload_len as usize];
        file.read_exact_at(&mut payload, offset + FRAME_HEADER_LEN as u64)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[..28]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            break;
        }
        let Some(batches) = split_payload(&payload) else {
            break;
        };
        frames.push(Frame {
            gen,
            first_seq,
            batches,
        });
        offset += padded(FRAME_HEADER_LEN + payload_len as usize) as u64;
    }
    Ok(frames)
}

fn split_payload(mut payload: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut batches = Vec::new();
    while !payload.is_empty() {
        let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        let batch = payload.get(4..4 + len)?;
        batches.push(batch.to_vec());
        payload = &payload[4 + len..];
    }
    Some(batches)
}

/// What [`recover`] did.
pub(crate) struct Recovered {
    /// The store's last record after the replay.
    pub head: Option<Head>,
    /// The highest generation found in the log or recorded in the store.
    pub max_gen: u64,
}

/// Replays the log's durable records past `head` into the store and makes the store durable.
pub(crate) fn recover(
    dir: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    head_tree: &sled::Tree,
    head: Option<Head>,
) -> Result<Recovered, LedgerError> {
    let wal_error = |what: &str, e: io::Error| {
        LedgerError::Storage(format!("write-ahead log in {}: {what}: {e}", dir.display()))
    };
    let mut frames = Vec::new();
    for name in FILE_NAMES {
        frames.extend(read_file(&dir.join(name)).map_err(|e| wal_error(name, e))?);
    }
    // Stable: frames of one generation keep their file order.
    frames.sort_by_key(|f| f.gen);
    let stored_gen = head_tree
        .get(GEN_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
        .map_or(0, u64::from_le_bytes);
    let max_gen = frames
        .iter()
        .map(|f| f.gen)
        .max()
        .unwrap_or(0)
        .max(stored_gen);

    let mut expected = head.map_or(0, |h| h.seq + 1);
    let mut prev = head.map_or(GENESIS_PREV_HASH, |h| h.hash);
    let mut replayed = 0u64;
    'frames: for frame in &frames {
        for batch in &frame.batches {
            match verify::last_record(batch) {
                Ok(last) if last.seq < expected => continue, // already in the store
                Ok(_) => {}
                Err(problem) => {
                    tracing::warn!(%problem, "unreadable write-ahead log batch; replay stops");
                    break 'frames;
                }
            }
            // The batch must start at `expected` and chain onto `prev`; its key is checked
            // against its first record.
            let key = record::batch_key(expected);
            match verify::check_batch(&key, batch, expected, prev, true) {
                Ok(Some(h)) => {
                    tree.insert(key, &batch[..])?;
                    replayed += h.seq + 1 - expected;
                    expected = h.seq + 1;
                    prev = h.hash;
                }
                Ok(None) => break 'frames,
                Err(e) => {
                    tracing::warn!(
                        frame_first = frame.first_seq,
                        "write-ahead log does not continue the ledger here ({e}); replay stops"
                    );
                    break 'frames;
                }
            }
        }
    }
    let head = if expected == 0 {
        None
    } else {
        Some(Head {
            seq: expected - 1,
            hash: prev,
        })
    };
    if replayed > 0 {
        if let Some(h) = head {
            head_tree.insert(record::HEAD_KEY, &record::encode_head(&h)[..])?;
        }
        tracing::info!(
            replayed,
            head = head.map(|h| h.seq),
            "replayed durable records from the write-ahead log into the store"
        );
        checkpoint(db, dir)?;
    }
    Ok(Recovered { head, max_gen })
}

/// Makes everything inserted into sled so far durable: sled's flush, then an `fsync` of its
/// log file (sled's flush alone neither flushes the disk cache nor persists the file's size).
pub(crate) fn checkpoint(db: &sled::Db, dir: &Path) -> Result<(), LedgerError> {
    db.flush()?;
    sync_store_files(dir)
        .map_err(|e| io_error(format_args!("fsync of the store in {}", dir.display()), &e))
}

/// Bytes available to the ledger's process on the file system holding `dir` (`statvfs`).
pub(crate) fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `statvfs` writes into the zeroed struct we own; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// A log file's size as the writer uses it (see [`Wal::open`]).
fn normalized_file_bytes(file_bytes: u64) -> u64 {
    file_bytes.max(MIN_FILE_BYTES) / ALIGN as u64 * ALIGN as u64
}

/// The free space the ledger in `dir` needs to start (and, after a full disk, to resume): the
/// room its two log files still need to reach `file_bytes` each (the zeros written ahead of
/// the frames), plus `margin` for sled's checkpoints and the files beside the ledger (the
/// pool's projection snapshot). Refused with [`LedgerError::DiskFull`], saying how much is
/// free and how much is needed.
pub(crate) fn check_free_space(
    dir: &Path,
    file_bytes: u64,
    margin: u64,
) -> Result<(), LedgerError> {
    let file_bytes = normalized_file_bytes(file_bytes);
    let mut wal_room = 0;
    for name in FILE_NAMES {
        let len = match std::fs::metadata(dir.join(name)) {
            Ok(m) => m.len() / ALIGN as u64 * ALIGN as u64,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(format_args!("{}", dir.join(name).display()), &e)),
        };
        wal_room += file_bytes.saturating_sub(len);
    }
    let free = free_bytes(dir)
        .map_err(|e| io_error(format_args!("free space of {}", dir.display()), &e))?;
    let needed = wal_room + margin;
    if free < needed {
        return Err(LedgerError::DiskFull(format!(
            "{} has {} free, the ledger needs at least {} ({} for its write-ahead log files to \
             reach their size, plus a {} margin for the store's checkpoints); free some space",
            dir.display(),
            mib(free),
            mib(needed),
            mib(wal_room),
            mib(margin)
        )));
    }
    Ok(())
}

/// Bytes as MiB for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Starts the write-back of `file`'s dirty pages without waiting for it (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`): no durability, only smoother disk traffic.
pub(crate) fn start_writeback(file: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor; the result only tells success.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// `fsync` of sled's log file and of its blob files (values over ~128 KiB, which sled writes
/// to files of their own without syncing them).
fn sync_store_files(dir: &Path) -> io::Result<()> {
    File::open(dir.join("db"))?.sync_all()?;
    let blobs = dir.join("blobs");
    match std::fs::read_dir(&blobs) {
        Ok(entries) => {
            for entry in entries {
                let path = entry?.path();
                match File::open(&path) {
                    Ok(f) => f.sync_all()?,
                    // sled removes blobs it no longer needs.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            File::open(&blobs)?.sync_all()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// One open log file.
struct LogFile {
    file: File,
    /// Bytes from 0 that are allocated and written (zeros or frames).
    written_len: u64,
    /// The last record of the file's current generation, `None` while it holds none.
    last_seq: Option<u64>,
}

/// The writer's side of the log: which file and offset the next frame goes to.
pub(crate) struct Wal {
    dir: PathBuf,
    files: [LogFile; 2],
    file_bytes: u64,
    active: usize,
    gen: u64,
    offset: u64,
    /// The file a background growth is zeroing.
    growing: Option<usize>,
}

/// Zeros to write over `[from, to)` of a log file, in the background.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Growth {
    pub file: usize,
    pub from: u64,
    pub to: u64,
}

impl Growth {
    /// Writes the zeros through `files[self.file]`.
    pub fn run(&self, files: &[File; 2]) -> io::Result<()> {
        write_zeros(&files[self.file], self.from, self.to)
    }
}

/// Where one frame goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub file: usize,
    pub offset: u64,
}

impl Wal {
    /// Opens (creating if needed) both files; the first frame goes to `wal.0` at offset 0 with
    /// generation `gen`. Everything the files hold must already be in the durable store.
    /// `direct`: try `O_DIRECT` (falling back to page-cache writes where refused).
    pub fn open(dir: &Path, file_bytes: u64, gen: u64, direct: bool) -> Result<Wal, LedgerError> {
        let err = |e: io::Error| {
            LedgerError::Storage(format!("write-ahead log in {}: {e}", dir.display()))
        };
        let mut direct = direct;
        let mut open = |name: &str| -> io::Result<File> {
            let path = dir.join(name);
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true);
            if direct {
                match options
                    .clone()
                    .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
                    .open(&path)
                {
                    Ok(f) => return Ok(f),
                    // tmpfs and some others refuse O_DIRECT: write through the page cache.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => direct = false,
                    Err(e) => return Err(e),
                }
            }
            options.custom_flags(libc::O_DSYNC).open(&path)
        };
        let f0 = open(FILE_NAMES[0]).map_err(err)?;
        let f1 = open(FILE_NAMES[1]).map_err(err)?;
        if !direct {
            tracing::info!(
                "the file system refuses O_DIRECT: the write-ahead log uses O_DSYNC writes"
            );
        }
        // New files must survive a crash as directory entries too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        let file = |f: File| -> io::Result<LogFile> {
            // Only whole aligned blocks count as written: a shorter tail is rewritten as zeros.
            let len = f.metadata()?.len() / ALIGN as u64 * ALIGN as u64;
            Ok(LogFile {
                file: f,
                written_len: len.min(file_bytes),
                last_seq: None,
            })
        };
        Ok(Wal {
            dir: dir.to_path_buf(),
            files: [file(f0).map_err(err)?, file(f1).map_err(err)?],
            file_bytes: normalized_file_bytes(file_bytes),
            active: 0,
            gen,
            offset: 0,
            growing: None,
        })
    }

    /// The largest frame a file can hold.
    pub fn max_frame(&self) -> usize {
        self.file_bytes as usize
    }

    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Bytes used in the active file.
    pub fn used(&self) -> u64 {
        self.offset
    }

    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Whether a frame of `len` bytes needs the other file (see [`Wal::switch`]).
    pub fn needs_switch(&self, len: usize) -> bool {
        self.offset + len as u64 > self.file_bytes
    }

    /// Whether the other file is free to start a new generation in, given the store is
    /// durable through `checkpointed`.
    pub fn other_free(&self, checkpointed: Option<u64>) -> bool {
        match self.files[1 - self.active].last_seq {
            None => true,
            Some(last) => checkpointed.is_some_and(|c| c >= last),
        }
    }

    /// Moves to the other file, as a new generation, from offset 0.
    pub fn switch(&mut self) {
        self.active = 1 - self.active;
        self.gen += 1;
        self.offset = 0;
        self.files[self.active].last_seq = None;
    }

    /// Reserves room for a frame of `len` bytes (a multiple of [`ALIGN`]) holding records up to
    /// `last_seq` in the active file. Room not yet zeroed is zeroed here first, unless the
    /// background growth is already zeroing it: then `None`, and the frame waits for
    /// [`Wal::grown`].
    pub fn place(&mut self, len: usize, last_seq: u64) -> Result<Option<Slot>, LedgerError> {
        debug_assert!(!self.needs_switch(len));
        let end = self.offset + len as u64;
        if end > self.files[self.active].written_len {
            if self.growing == Some(self.active) {
                return Ok(None);
            }
            let grow_to = self.next_size(self.files[self.active].written_len).max(end);
            let file = &mut self.files[self.active];
            write_zeros(&file.file, file.written_len, grow_to).map_err(|e| {
                io_error(
                    format_args!("growing the write-ahead log in {}", self.dir.display()),
                    &e,
                )
            })?;
            file.written_len = grow_to;
        }
        let file = &mut self.files[self.active];
        file.last_seq = Some(last_seq);
        let slot = Slot {
            file: self.active,
            offset: self.offset,
        };
        self.offset = end;
        Ok(Some(slot))
    }

    /// The size a file of `written_len` zeroed bytes grows to: double, at least
    /// [`FIRST_GROWTH`], at most a whole file.
    fn next_size(&self, written_len: u64) -> u64 {
        (written_len * 2).max(FIRST_GROWTH).min(self.file_bytes)
    }

    /// Zeroing the log needs ahead of the frames, for the background (so commits do not wait
    /// for it): more of the active file once half of its zeroed room is used, or the next file
    /// once the active one is half full. One at a time; [`Wal::grown`] reports it done.
    pub fn growth_wanted(&mut self) -> Option<Growth> {
        if self.growing.is_some() {
            return None;
        }
        let active = &self.files[self.active];
        let headroom = active.written_len.saturating_sub(self.offset);
        let growth = if active.written_len < self.file_bytes && headroom <= active.written_len / 2 {
            Growth {
                file: self.active,
                from: active.written_len,
                to: self.next_size(active.written_len),
            }
        } else {
            let other = 1 - self.active;
            let next = &self.files[other];
            if self.offset <= self.file_bytes / 2 || next.written_len >= self.file_bytes {
                return None;
            }
            Growth {
                file: other,
                from: next.written_len,
                to: self.file_bytes,
            }
        };
        self.growing = Some(growth.file);
        Some(growth)
    }

    /// A background growth finished (`ok`) or failed (the room is then zeroed when needed).
    pub fn grown(&mut self, growth: Growth, ok: bool) {
        self.growing = None;
        if ok {
            let file = &mut self.files[growth.file];
            file.written_len = file.written_len.max(growth.to);
        }
    }

    /// After the writer recovered from a full disk (everything in the log checkpointed; the
    /// active file may end in a torn frame, or in frames that were refused): the next frame
    /// starts a new generation in the other file, so nothing is ever written after a frame
    /// whose write failed.
    pub fn restart(&mut self) {
        for file in &mut self.files {
            file.last_seq = None;
        }
        self.switch();
    }

    /// Zeroed room the two files still lack to reach their full size (the free space they
    /// will still take).
    pub fn room_needed(&self) -> u64 {
        self.files
            .iter()
            .map(|f| self.file_bytes.saturating_sub(f.written_len))
            .sum()
    }

    /// Whether a background growth is under way.
    pub fn growing(&self) -> bool {
        self.growing.is_some()
    }

    /// Handles for the I/O threads (the same open files).
    pub fn handles(&self) -> io::Result<[File; 2]> {
        Ok([
            self.files[0].file.try_clone()?,
            self.files[1].file.try_clone()?,
        ])
    }

    /// Marks the log empty after a final checkpoint: the first block of each file is zeroed,
    /// so the next open finds nothing to replay.
    pub fn clear(&mut self) -> io::Result<()> {
        let zeros = AlignedBuf::zeroed(ALIGN);
        for f in &self.files {
            if f.written_len >= ALIGN as u64 {
                f.file.write_all_at(zeros.bytes(), 0)?;
            }
        }
        Ok(())
    }
}

/// Writes zeros over `[from, to)` (whole aligned blocks), through the file's `O_DSYNC` handle.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = AlignedBuf::zeroed(CHUNK);
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(CHUNK);
        file.write_all_at(&zeros.bytes()[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_stop_at_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.0");
        let a = encode_frame(7, 0, 1, &[vec![1, 2, 3]]);
        let b = encode_frame(7, 1, 2, &[vec![4; 5000], vec![5; 10]]);
        let c = encode_frame(6, 3, 1, &[vec![6]]);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(a.bytes());
        bytes.extend_from_slice(b.bytes());
        bytes.extend_from_slice(c.bytes());
        assert_eq!(a.bytes().len(), ALIGN);
        assert_eq!(b.bytes().len(), 2 * ALIGN);
        std::fs::write(&path, &bytes).unwrap();
        let frames = read_file(&path).unwrap();
        // The third frame is of another (older) generation: the file ends before it.
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].first_seq, 1);
        assert_eq!(frames[1].batches, vec![vec![4; 5000], vec![5; 10]]);

        // A torn second frame ends the file after the first.
        bytes[ALIGN + FRAME_HEADER_LEN + 4000] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_file(&path).unwrap().len(), 1);
        // So does a zeroed first block.
        bytes[..ALIGN].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_file(&path).unwrap().is_empty());
    }
}

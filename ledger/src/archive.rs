//! Sealed archives: a prefix of the ledger in one compressed, self-verifying file, so the
//! prefix can be dropped from sled ([`crate::Ledger::drop_prefix`]) and still be audited.
//!
//! An archive holds the records `[first_seq, cut)` exactly as the ledger stores them (its sled
//! values copied byte for byte, whatever their stored format), the projection snapshot at the
//! cut (opaque bytes here: the pool writes its `live-projection.bin` image of the projection
//! that has applied record `cut - 1`), and a checksum over all of it. Layout (integers
//! big-endian, like the stored records):
//!
//! ```text
//! file     := header | zstd frame(payload) | sha256:[u8; 32]
//! header   := magic "OBTC-ARCHIVE\n" (13 bytes) | format:u32 (=1) | first_seq:u64 | cut:u64
//!             | prev_hash:[u8; 32] | last_hash:[u8; 32] | snapshot_len:u64
//! payload  := value * n | snapshot:[u8; snapshot_len]
//! value    := key:u64 (the value's first seq, its sled key) | len:u32 | stored value:[u8; len]
//! sha256    = SHA-256(header | the compressed payload)
//! ```
//!
//! `prev_hash` is the chain hash of record `first_seq - 1` (32 zero bytes for record 0), the
//! hash the first archived record chains onto; `last_hash` is record `cut - 1`'s. The values
//! follow one another until record `cut - 1` (the cut is always a stored value boundary).
//! Reading an archive ([`ArchiveReader`]) checks everything a ledger's `verify` checks for its
//! records (sequence, chain hash, every event decodes) plus the header's hashes and the
//! checksum, so a flipped byte anywhere is caught; [`check_join`] proves a list of archives and
//! the live ledger form one chain (each archive starts where the previous one ended, onto its
//! last hash, and the ledger's base continues the last one).

use crate::error::{LedgerError, Problem, VerifyError};
use crate::record::{self, BatchRecords, GENESIS_PREV_HASH};
use crate::verify::check_value;
use crate::{Base, Ledger, Record};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

const MAGIC: &[u8; 13] = b"OBTC-ARCHIVE\n";
/// Version of the archive layout.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 13 + 4 + 8 + 8 + 32 + 32 + 8;
/// Largest stored value an archive may hold (a bound against a damaged length field).
const MAX_VALUE_LEN: u32 = 1 << 30;
/// zstd level: the stored values compress well at the default.
const LEVEL: i32 = 3;

/// What an archive's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveHeader {
    /// The first archived record.
    pub first_seq: u64,
    /// One past the last archived record: the live ledger (or the next archive) starts here.
    pub cut: u64,
    /// The hash of record `first_seq - 1` (zeros for record 0).
    pub prev_hash: [u8; 32],
    /// The hash of record `cut - 1`.
    pub last_hash: [u8; 32],
    pub snapshot_len: u64,
}

impl ArchiveHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..13].copy_from_slice(MAGIC);
        out[13..17].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[17..25].copy_from_slice(&self.first_seq.to_be_bytes());
        out[25..33].copy_from_slice(&self.cut.to_be_bytes());
        out[33..65].copy_from_slice(&self.prev_hash);
        out[65..97].copy_from_slice(&self.last_hash);
        out[97..105].copy_from_slice(&self.snapshot_len.to_be_bytes());
        out
    }

    fn decode(b: &[u8; HEADER_LEN]) -> Result<ArchiveHeader, ArchiveError> {
        if &b[..13] != MAGIC {
            return Err(ArchiveError::Malformed(
                "not a ledger archive (no magic)".into(),
            ));
        }
        let version = u32::from_be_bytes(fixed(&b[13..17]));
        if version != FORMAT_VERSION {
            return Err(ArchiveError::Version(version));
        }
        let header = ArchiveHeader {
            first_seq: u64::from_be_bytes(fixed(&b[17..25])),
            cut: u64::from_be_bytes(fixed(&b[25..33])),
            prev_hash: fixed(&b[33..65]),
            last_hash: fixed(&b[65..97]),
            snapshot_len: u64::from_be_bytes(fixed(&b[97..105])),
        };
        if header.cut <= header.first_seq {
            return Err(ArchiveError::Malformed(format!(
                "the header's cut {} is not above its first record {}",
                header.cut, header.first_seq
            )));
        }
        Ok(header)
    }

    /// Records the archive holds.
    pub fn records(&self) -> u64 {
        self.cut - self.first_seq
    }
}

fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

/// Why an archive cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("unknown archive format version {0} (this build reads version {FORMAT_VERSION})")]
    Version(u32),
    #[error("malformed archive: {0}")]
    Malformed(String),
    /// An archived record does not verify.
    #[error("archived {0}")]
    Record(VerifyError),
    #[error("checksum mismatch: the archive file was changed after it was written")]
    Checksum,
    /// The archives and the ledger do not form one chain.
    #[error("the chain does not join: {0}")]
    Join(String),
}

struct HashWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Seals the ledger's records from its base up to `cut` (exclusive) into the archive file
/// `out`, with `snapshot` (the projection at the cut) inside. `cut` must be a stored value
/// boundary above the base ([`Ledger::value_boundary`]) and at most the last stored value's
/// first record. Written to `out` + `.tmp`, synced, renamed, and the directory synced; holds
/// the ledger's maintenance lock while it copies the values. Read it back with [`verify`]
/// before dropping anything.
pub fn write(
    ledger: &Ledger,
    cut: u64,
    snapshot: &[u8],
    out: &Path,
) -> Result<ArchiveHeader, LedgerError> {
    let inner = &ledger.inner;
    let _maintenance = inner.maintenance.lock().unwrap_or_else(|p| p.into_inner());
    let base = ledger.base()?;
    let store = inner.store.get()?;
    let first_seq = base.map_or(0, |b| b.seq);
    let prev_hash = base.map_or(GENESIS_PREV_HASH, |b| b.prev_hash);
    if cut <= first_seq {
        return Err(LedgerError::BadCut(format!(
            "the cut {cut} is not above the ledger's first record {first_seq}"
        )));
    }
    let last = ledger.record_before_cut(&store.tree, first_seq, cut)?;
    let header = ArchiveHeader {
        first_seq,
        cut,
        prev_hash,
        last_hash: last.hash,
        snapshot_len: snapshot.len() as u64,
    };
    let io =
        |e: io::Error| LedgerError::Storage(format!("writing the archive {}: {e}", out.display()));
    let tmp = tmp_path(out);
    let file = File::create(&tmp).map_err(io)?;
    let mut hashed = HashWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
    };
    hashed.write_all(&header.encode()).map_err(io)?;
    {
        let mut z = zstd::Encoder::new(&mut hashed, LEVEL).map_err(io)?;
        for entry in store
            .tree
            .range(record::batch_key(first_seq)..record::batch_key(cut))
        {
            let (key, value) = entry?;
            z.write_all(&key).map_err(io)?;
            z.write_all(&(value.len() as u32).to_be_bytes())
                .map_err(io)?;
            z.write_all(&value).map_err(io)?;
        }
        z.write_all(snapshot).map_err(io)?;
        z.finish().map_err(io)?;
    }
    let digest: [u8; 32] = hashed.hash.finalize().into();
    let mut file = hashed.inner;
    file.write_all(&digest).map_err(io)?;
    let file = file.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(io)?;
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    // The base cannot move while the maintenance lock is held.
    debug_assert_eq!(inner.base_seq.load(Ordering::Acquire), first_seq);
    Ok(header)
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    out.with_file_name(name)
}

type Payload = zstd::Decoder<'static, BufReader<HashReader<io::Take<BufReader<File>>>>>;

/// Reads an archive back, checking as it goes: every record's sequence, chain hash and event,
/// the header's hashes and, at [`ArchiveReader::finish`], the checksum. Nothing read is to be
/// trusted before `finish` succeeds.
pub struct ArchiveReader {
    header: ArchiveHeader,
    payload: Payload,
    digest: [u8; 32],
    /// The next record expected, and the hash it chains onto.
    next: u64,
    prev: [u8; 32],
    values: u64,
    /// Bytes of the file.
    pub file_len: u64,
}

impl ArchiveReader {
    pub fn open(path: &Path) -> Result<ArchiveReader, ArchiveError> {
        let mut file = File::open(path)?;
        let file_len = file.metadata()?.len();
        if file_len < (HEADER_LEN + 32) as u64 {
            return Err(ArchiveError::Malformed(
                "shorter than a header and checksum".into(),
            ));
        }
        let mut digest = [0u8; 32];
        {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::End(-32))?;
            file.read_exact(&mut digest)?;
            file.seek(SeekFrom::Start(0))?;
        }
        let mut hashed = HashReader {
            inner: BufReader::with_capacity(1 << 20, file).take(file_len - 32),
            hash: Sha256::new(),
        };
        let mut head = [0u8; HEADER_LEN];
        hashed.read_exact(&mut head)?;
        let header = ArchiveHeader::decode(&head)?;
        let payload = zstd::Decoder::new(hashed)?;
        Ok(ArchiveReader {
            next: header.first_seq,
            prev: header.prev_hash,
            header,
            payload,
            digest,
            values: 0,
            file_len,
        })
    }

    pub fn header(&self) -> &ArchiveHeader {
        &self.header
    }

    /// Stored values read so far.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// The next stored value, checked, as its format-1 image (a chunk expanded); `None` once the
    /// cut is reached.
    fn next_value(&mut self) -> Result<Option<(u64, Vec<u8>)>, ArchiveError> {
        if self.next >= self.header.cut {
            return Ok(None);
        }
        let truncated = |e: io::Error| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ArchiveError::Malformed(format!(
                    "the records end before the cut {} (at {})",
                    self.header.cut, self.next
                ))
            } else {
                ArchiveError::Io(e)
            }
        };
        let mut frame = [0u8; 12];
        self.payload.read_exact(&mut frame).map_err(truncated)?;
        let key = u64::from_be_bytes(fixed(&frame[..8]));
        let len = u32::from_be_bytes(fixed(&frame[8..]));
        if len > MAX_VALUE_LEN {
            return Err(ArchiveError::Malformed(format!(
                "a stored value of {len} bytes at {key}"
            )));
        }
        let mut value = vec![0u8; len as usize];
        self.payload.read_exact(&mut value).map_err(truncated)?;
        let (head, image) =
            check_value(&record::batch_key(key), &value, self.next, self.prev, true)
                .map_err(ArchiveError::Record)?;
        // The records are read from the checked image next (a chunk is not expanded twice).
        let image = match image {
            Cow::Owned(image) => Some(image),
            Cow::Borrowed(_) => None,
        };
        let image = image.unwrap_or(value);
        if head.seq >= self.header.cut {
            return Err(ArchiveError::Malformed(format!(
                "the stored value at {key} runs past the cut {}",
                self.header.cut
            )));
        }
        self.next = head.seq + 1;
        self.prev = head.hash;
        self.values += 1;
        if self.next == self.header.cut && head.hash != self.header.last_hash {
            return Err(ArchiveError::Record(VerifyError {
                seq: head.seq,
                problem: Problem::HeadMismatch,
            }));
        }
        Ok(Some((key, image)))
    }

    /// The records of the next stored value (checked, decoded); `None` once the cut is reached.
    pub fn next_records(&mut self) -> Result<Option<Vec<Record>>, ArchiveError> {
        let Some((key, image)) = self.next_value()? else {
            return Ok(None);
        };
        let bad = |p: Problem| {
            ArchiveError::Record(VerifyError {
                seq: key,
                problem: p,
            })
        };
        let mut records = BatchRecords::parse(&image).map_err(bad)?;
        let mut out = Vec::with_capacity(records.remaining() as usize);
        while let Some(view) = records.next_record().map_err(bad)? {
            out.push(Record {
                seq: view.seq,
                version: view.version,
                time_ms: view.time_ms,
                event: view.decode_event().map_err(bad)?,
                hash: view.hash,
            });
        }
        Ok(Some(out))
    }

    /// Checks the rest of the records (without decoding them into events), reads the snapshot
    /// and checks the checksum over the whole file; returns the snapshot's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, ArchiveError> {
        while self.next_value()?.is_some() {}
        let len = usize::try_from(self.header.snapshot_len)
            .map_err(|_| ArchiveError::Malformed("snapshot length".into()))?;
        let mut snapshot = Vec::new();
        (&mut self.payload)
            .take(len as u64)
            .read_to_end(&mut snapshot)?;
        if snapshot.len() != len {
            return Err(ArchiveError::Malformed("the snapshot is truncated".into()));
        }
        let mut extra = [0u8; 1];
        if self.payload.read(&mut extra)? != 0 {
            return Err(ArchiveError::Malformed("bytes after the snapshot".into()));
        }
        let mut rest = self.payload.finish();
        let mut trailing = 0u64;
        let mut buf = [0u8; 4096];
        loop {
            let n = rest.read(&mut buf)?;
            if n == 0 {
                break;
            }
            trailing += n as u64;
        }
        let hashed = rest.into_inner();
        let digest: [u8; 32] = hashed.hash.finalize().into();
        if digest != self.digest {
            return Err(ArchiveError::Checksum);
        }
        if trailing != 0 {
            return Err(ArchiveError::Malformed(format!(
                "{trailing} bytes after the compressed payload"
            )));
        }
        Ok(snapshot)
    }
}

/// A verified archive: its header, what it held, and its snapshot.
#[derive(Debug)]
pub struct Verified {
    pub header: ArchiveHeader,
    pub values: u64,
    pub file_len: u64,
    pub snapshot: Vec<u8>,
}

/// Reads the whole archive at `path` and checks it (see [`ArchiveReader`]).
pub fn verify(path: &Path) -> Result<Verified, ArchiveError> {
    let mut reader = ArchiveReader::open(path)?;
    while reader.next_value()?.is_some() {}
    let header = reader.header;
    let values = reader.values;
    let file_len = reader.file_len;
    let snapshot = reader.finish()?;
    Ok(Verified {
        header,
        values,
        file_len,
        snapshot,
    })
}

/// Proves that `archives` (in order) and then a ledger starting at `base` form one chain: the
/// first archive starts at record 0 onto the genesis hash, each next one starts at the
/// previous one's cut onto its last hash, and the ledger's base is the last one's cut with its
/// last hash. `live_hash_at` gives the live ledger's stored hash of a record it still holds
/// (when the prefix was archived but not dropped, the live ledger overlaps the last archive).
pub fn check_join(
    archives: &[ArchiveHeader],
    base: Option<Base>,
    live_hash_at: impl Fn(u64) -> Option<[u8; 32]>,
) -> Result<(), ArchiveError> {
    let join = |why: String| Err(ArchiveError::Join(why));
    let mut end = (0u64, GENESIS_PREV_HASH);
    for (i, a) in archives.iter().enumerate() {
        if (a.first_seq, a.prev_hash) != end {
            return join(if a.first_seq != end.0 {
                format!(
                    "archive {} starts at record {}, but the chain before it ends at {} (an \
                     archive is missing or out of order)",
                    i + 1,
                    a.first_seq,
                    end.0
                )
            } else {
                format!(
                    "archive {}'s first record does not chain onto the record before it (hash \
                     {} expected)",
                    i + 1,
                    hex::encode(end.1)
                )
            });
        }
        end = (a.cut, a.last_hash);
    }
    let first = base.map_or(0, |b| b.seq);
    let first_prev = base.map_or(GENESIS_PREV_HASH, |b| b.prev_hash);
    if first == end.0 {
        if first_prev != end.1 {
            return join(format!(
                "the ledger's first record {first} does not chain onto the last archive's last \
                 hash"
            ));
        }
        return Ok(());
    }
    if first > end.0 {
        return join(format!(
            "the ledger starts at record {first}, but the archives end at {} (an archive is \
             missing)",
            end.0
        ));
    }
    // The ledger still holds the archives' last record: it must be the same one.
    match live_hash_at(end.0 - 1) {
        Some(hash) if hash == end.1 => Ok(()),
        Some(_) => join(format!(
            "the ledger's record {} is not the last archive's last record",
            end.0 - 1
        )),
        None => join(format!(
            "the ledger does not hold record {} to join onto",
            end.0 - 1
        )),
    }
}

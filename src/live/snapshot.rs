//! The live projection's snapshot file, so the pool starts from its last state instead of
//! replaying the whole ledger: `live-projection.bin` in the ledger's directory.
//!
//! Layout (integers little-endian):
//! ```text
//! magic "OBTC-LIVE\n" | u32 format version | u64 ledger seq | [32] ledger hash
//! | u64 n | n x (u64 payment id, u64 record time ms) | u64 len | len bytes Projection::snapshot()
//! | u32 CRC-32 of everything after the magic and before it
//! ```
//! The ledger head `(seq, hash)` is the last record the projection reflects; a snapshot is used
//! only if the ledger's record at `seq` has that hash (so a snapshot of another ledger, or of a
//! ledger that was restored from an older copy, is never applied). It is written to a temporary
//! file, synced and renamed over the old one, then the directory is synced: a crash leaves
//! either the old snapshot or the new one, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name in the ledger's directory.
pub const SNAPSHOT_FILE: &str = "live-projection.bin";
const MAGIC: &[u8; 10] = b"OBTC-LIVE\n";
/// Version of this file's layout (the projection's bytes carry their own version).
pub const FORMAT_VERSION: u32 = 1;

/// What a snapshot holds besides the projection: the record it reflects and the record time
/// of every `PaymentPrepared` (for the payout process's daily cap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub seq: u64,
    pub hash: [u8; 32],
    pub prepared_times: BTreeMap<u64, u64>,
}

/// A snapshot read back and checked against its checksum (not yet against the ledger).
#[derive(Debug)]
pub struct SnapshotFile {
    pub header: SnapshotHeader,
    /// The whole file (the projection's bytes are not copied out of it: they are hundreds of
    /// megabytes on a large ledger).
    bytes: Vec<u8>,
    projection: std::ops::Range<usize>,
}

impl SnapshotFile {
    /// `Projection::snapshot()` bytes.
    pub fn projection(&self) -> &[u8] {
        &self.bytes[self.projection.clone()]
    }
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Why a snapshot file was not used (logged; the pool then replays the ledger from 0).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotUnusable {
    #[error("no snapshot file {0}")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Damaged(String),
    #[error("snapshot file format version {0}, this build reads version {FORMAT_VERSION}")]
    Version(u32),
}

/// Writes the snapshot durably (temporary file, `fsync`, rename, `fsync` of the directory).
pub fn write(dir: &Path, header: &SnapshotHeader, projection: &[u8]) -> std::io::Result<()> {
    write_at(&path_in(dir), header, projection)
}

/// The framing of a snapshot file around the projection's bytes: (what goes before them, the
/// checksum after them).
fn framing(header: &SnapshotHeader, projection: &[u8]) -> (Vec<u8>, [u8; 4]) {
    let mut body = Vec::with_capacity(64 + header.prepared_times.len() * 16);
    body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    body.extend_from_slice(&header.seq.to_le_bytes());
    body.extend_from_slice(&header.hash);
    body.extend_from_slice(&(header.prepared_times.len() as u64).to_le_bytes());
    for (id, time) in &header.prepared_times {
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&time.to_le_bytes());
    }
    body.extend_from_slice(&(projection.len() as u64).to_le_bytes());
    let mut sum = crc32fast::Hasher::new();
    sum.update(&body);
    sum.update(projection);
    (body, sum.finalize().to_le_bytes())
}

/// The whole file a snapshot is, in memory (what a sealed archive holds at its cut).
pub fn image(header: &SnapshotHeader, projection: &[u8]) -> Vec<u8> {
    let (body, digest) = framing(header, projection);
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + projection.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(projection);
    out.extend_from_slice(&digest);
    out
}

/// [`write`] to the file `path` (its directory must exist).
pub fn write_at(path: &Path, header: &SnapshotHeader, projection: &[u8]) -> std::io::Result<()> {
    let (body, digest) = framing(header, projection);
    write_file(path, |out| {
        out.write_all(MAGIC)?;
        out.write_all(&body)?;
        out.write_all(projection)?;
        out.write_all(&digest)
    })
}

/// Replaces the file `path` durably: `fill` writes it as `path.tmp`, which is synced, renamed
/// over `path`, and the directory synced. A half-written temporary file is removed (on a full
/// disk it only takes space the ledger needs).
pub fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads and checks a snapshot file's framing and checksum.
pub fn read(dir: &Path) -> Result<SnapshotFile, SnapshotUnusable> {
    read_at(&path_in(dir))
}

/// [`read`] of the file `path`.
pub fn read_at(path: &Path) -> Result<SnapshotFile, SnapshotUnusable> {
    let path = path.to_path_buf();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SnapshotUnusable::Missing(path))
        }
        Err(source) => return Err(SnapshotUnusable::Read { path, source }),
    };
    parse(bytes)
}

/// Checks a snapshot file's bytes (framing and checksum) and splits them.
pub fn parse(bytes: Vec<u8>) -> Result<SnapshotFile, SnapshotUnusable> {
    let damaged = |why: &str| SnapshotUnusable::Damaged(format!("damaged snapshot file: {why}"));
    if bytes.len() < MAGIC.len() + 4 + 4 || !bytes.starts_with(MAGIC) {
        return Err(damaged("not a snapshot file (no magic)"));
    }
    let version = u32::from_le_bytes(read_array(&bytes[MAGIC.len()..]));
    if version != FORMAT_VERSION {
        return Err(SnapshotUnusable::Version(version));
    }
    let end = bytes.len() - 4;
    let digest = crc32fast::hash(&bytes[MAGIC.len()..end]).to_le_bytes();
    if digest[..] != bytes[end..] {
        return Err(damaged("checksum mismatch"));
    }
    let mut r = Reader {
        bytes: &bytes[..end],
        at: MAGIC.len() + 4,
    };
    let short = || damaged("truncated header");
    let seq = r.u64().ok_or_else(short)?;
    let hash: [u8; 32] = r
        .take(32)
        .ok_or_else(short)?
        .try_into()
        .map_err(|_| short())?;
    let n = r.u64().ok_or_else(short)?;
    let mut prepared_times = BTreeMap::new();
    for _ in 0..n {
        let id = r.u64().ok_or_else(short)?;
        let time = r.u64().ok_or_else(short)?;
        prepared_times.insert(id, time);
    }
    let len = r.u64().ok_or_else(short)?;
    let start = r.at;
    if end.checked_sub(start) != Some(len as usize) {
        return Err(damaged("projection length does not match the file"));
    }
    Ok(SnapshotFile {
        header: SnapshotHeader {
            seq,
            hash,
            prepared_times,
        },
        bytes,
        projection: start..end,
    })
}

fn read_array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(read_array(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            seq: 41,
            hash: [7; 32],
            prepared_times: [(0, 1_700_000_000_000), (3, 1_700_000_500_000)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_replaces_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &header(), b"old").unwrap();
        write(dir.path(), &header(), b"projection bytes").unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back.header, header());
        assert_eq!(back.projection(), b"projection bytes");
        assert!(!dir.path().join(format!("{SNAPSHOT_FILE}.tmp")).exists());
    }

    #[test]
    fn missing_damaged_truncated_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(SnapshotUnusable::Missing(_))
        ));
        write(dir.path(), &header(), b"projection bytes").unwrap();
        let good = std::fs::read(path_in(dir.path())).unwrap();
        // Every single flipped byte is noticed.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(parse(bad).is_err(), "flip at {i} went unnoticed");
        }
        for cut in [0, 5, 20, good.len() - 1] {
            assert!(parse(good[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        let mut other = good.clone();
        other[MAGIC.len()] = 9;
        assert!(matches!(parse(other), Err(SnapshotUnusable::Version(9))));
    }
}

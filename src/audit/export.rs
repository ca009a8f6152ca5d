//! Writing the export format ([`pool_core::export`], docs/ledger.md) from a ledger: the lines of
//! `obtc-pool ledger export --data` and the pages of the `ledger_export` RPC, built by the same
//! functions, so a stopped pool's export and a running pool's are the same bytes at the same
//! head.
//!
//! A ledger whose prefix was dropped exports whole with its sealed archives (oldest first): their
//! records come first. An archive hands out decoded records; each one's bytes are its event
//! encoded again (the v1 encoding is canonical: one encoding per value, and the decoder refuses
//! any other), proved to be the stored bytes by the record's chain hash.

use anyhow::Context;
use ledger::archive::{ArchiveHeader, ArchiveReader};
use ledger::export::canonical_bytes;
use ledger::record::{chain_hash, decode_event, encode_event, RawRecord, GENESIS_PREV_HASH};
use ledger::{Head, Ledger, LedgerError, Record};
use pool_core::export::{ExportHead, ExportHeader, ExportRecord, EXPORT_FORMAT, EXPORT_VERSION};
use std::io::Write;
use std::path::PathBuf;

/// The line of one stored record: its canonical bytes in hex, its event decoded from them.
pub fn record_line(raw: &RawRecord) -> Result<ExportRecord, LedgerError> {
    let event = decode_event(raw.version, &raw.event).map_err(|problem| {
        LedgerError::Corrupt(ledger::VerifyError {
            seq: raw.seq,
            problem,
        })
    })?;
    let json = serde_json::to_value(&event)
        .map_err(|e| LedgerError::Encode(format!("record {}: {e}", raw.seq)))?;
    Ok(ExportRecord {
        seq: raw.seq,
        version: raw.version,
        time_ms: raw.time_ms,
        kind: event.kind().to_owned(),
        event: json,
        bytes: hex::encode(canonical_bytes(raw)),
        hash: hex::encode(raw.hash),
    })
}

/// The header of an export of records `first_seq..=last.seq` (`None`: no records).
pub fn header(first_seq: u64, prev_hash: [u8; 32], last: Option<Head>) -> ExportHeader {
    ExportHeader {
        format: EXPORT_FORMAT.to_owned(),
        version: EXPORT_VERSION,
        first_seq,
        prev_hash: hex::encode(prev_hash),
        records: last.map_or(0, |h| h.seq + 1 - first_seq),
        last: last.map(|h| ExportHead {
            seq: h.seq,
            hash: hex::encode(h.hash),
        }),
    }
}

/// The chain hash before record `seq`: zeros for 0, the base's for the ledger's first live
/// record, else record `seq - 1`'s stored hash.
pub fn prev_hash(ledger: &Ledger, seq: u64) -> Result<[u8; 32], LedgerError> {
    if seq == 0 {
        return Ok(GENESIS_PREV_HASH);
    }
    if let Some(base) = ledger.base()? {
        if base.seq == seq {
            return Ok(base.prev_hash);
        }
    }
    match ledger.read_raw_range(seq - 1, seq).next() {
        Some(r) => Ok(r?.hash),
        None => Err(LedgerError::Storage(format!(
            "record {} is not in the ledger",
            seq - 1
        ))),
    }
}

/// The ledger's first live record (0 unless a prefix was dropped).
pub fn first_seq(ledger: &Ledger) -> Result<u64, LedgerError> {
    Ok(ledger.base()?.map_or(0, |b| b.seq))
}

/// What [`write_ledger`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub first_seq: u64,
    pub records: u64,
    pub head: Option<Head>,
    pub bytes: u64,
}

/// Writes the export of every record of `ledger` from its first live record to its head (at
/// the time of the call) to `out`.
pub fn write_ledger(ledger: &Ledger, out: &mut impl Write) -> anyhow::Result<Written> {
    write_ledger_with_archives(ledger, &[], out)
}

/// [`write_ledger`] after the records of `archives` (oldest first), which must join each other
/// and the ledger's base (as `ledger verify --archive` proves).
pub fn write_ledger_with_archives(
    ledger: &Ledger,
    archives: &[PathBuf],
    out: &mut impl Write,
) -> anyhow::Result<Written> {
    let readers = open_archives(archives)?;
    let headers: Vec<ArchiveHeader> = readers.iter().map(|(_, r)| *r.header()).collect();
    // Without archives the export starts at the base, whatever it is.
    if !headers.is_empty() {
        if let Err(line) = super::source::join(ledger, &headers)? {
            anyhow::bail!("{line}");
        }
    }
    let live = first_seq(ledger)?;
    let (first, prev) = match headers.first() {
        Some(h) => (h.first_seq, h.prev_hash),
        None => (live, prev_hash(ledger, live)?),
    };
    let head = ledger.head();
    let mut counted = CountingWriter {
        inner: out,
        bytes: 0,
    };
    let header = header(first, prev, head);
    write_line(&mut counted, &header)?;
    let mut records = write_archives(readers, &mut counted)?;
    let end = head.map_or(live, |h| h.seq + 1);
    for raw in ledger.read_raw_range(live, end) {
        let raw = raw.context("reading the ledger")?;
        write_line(&mut counted, &record_line(&raw)?)?;
        records += 1;
    }
    anyhow::ensure!(
        records == header.records,
        "the ledger holds {records} records from {first}, not {} up to its head",
        header.records
    );
    counted.flush().context("writing the export")?;
    Ok(Written {
        first_seq: first,
        records,
        head,
        bytes: counted.bytes,
    })
}

/// One JSON line.
pub fn write_line(out: &mut impl Write, line: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line).context("writing the export")?;
    out.write_all(b"\n").context("writing the export")
}

/// Opens the archives (their headers read; the content is checked as it is written).
pub fn open_archives(archives: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, ArchiveReader)>> {
    archives
        .iter()
        .map(|path| {
            ArchiveReader::open(path)
                .map(|r| (path.clone(), r))
                .with_context(|| format!("archive {}", path.display()))
        })
        .collect()
}

/// Writes the lines of every archived record (the archives in order, each one read to its
/// checksum); returns how many.
pub fn write_archives(
    readers: Vec<(PathBuf, ArchiveReader)>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut records = 0u64;
    for (path, mut reader) in readers {
        let failed = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!("archive {} verification FAILED: {e}", path.display())
        };
        let mut prev = reader.header().prev_hash;
        while let Some(batch) = reader.next_records().map_err(|e| failed(&e))? {
            for record in batch {
                let raw = archived_raw(&record, &prev).map_err(|e| failed(&e))?;
                write_line(out, &record_line(&raw)?)?;
                prev = raw.hash;
                records += 1;
            }
        }
        reader.finish().map_err(|e| failed(&e))?;
    }
    Ok(records)
}

/// The stored form of an archived record: its event encoded again, proved by its chain hash.
fn archived_raw(record: &Record, prev: &[u8; 32]) -> Result<RawRecord, String> {
    if record.version != pool_core::EVENT_SCHEMA_VERSION {
        return Err(format!(
            "record {} is at schema version {}, which this build cannot re-encode",
            record.seq, record.version
        ));
    }
    let event = encode_event(&record.event).map_err(|e| format!("record {}: {e}", record.seq))?;
    let raw = RawRecord {
        seq: record.seq,
        version: record.version,
        time_ms: record.time_ms,
        event,
        hash: record.hash,
    };
    if chain_hash(prev, &canonical_bytes(&raw)) != raw.hash {
        return Err(format!(
            "record {}: its event encoded again is not the bytes its chain hash covers",
            record.seq
        ));
    }
    Ok(raw)
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One page of the export from record `from` (at most `limit` records, and no more once the
/// page's lines pass `max_bytes`, always at least one record when there is one), up to `head`.
/// Returns the page's header, records and the `from` of the next page (`None` once `head` is
/// reached).
pub fn page(
    ledger: &Ledger,
    from: u64,
    limit: u64,
    max_bytes: usize,
    head: Option<Head>,
) -> Result<(ExportHeader, Vec<ExportRecord>, Option<u64>), LedgerError> {
    let end = head.map_or(0, |h| h.seq + 1);
    let prev = if from < end {
        prev_hash(ledger, from)?
    } else {
        // Past the head: an empty page chaining onto the head.
        head.map_or(GENESIS_PREV_HASH, |h| h.hash)
    };
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut last = None;
    for raw in ledger.read_raw_range(from, end.min(from.saturating_add(limit))) {
        let raw = raw?;
        let line = record_line(&raw)?;
        // The JSON of the event is about as long as its bytes in hex; the line holds both.
        bytes += line.bytes.len() * 2 + 200;
        last = Some(Head {
            seq: raw.seq,
            hash: raw.hash,
        });
        records.push(line);
        if bytes >= max_bytes {
            break;
        }
    }
    let next = match last {
        Some(l) if l.seq + 1 < end => Some(l.seq + 1),
        _ => None,
    };
    let mut h = header(from, prev, last);
    h.records = records.len() as u64;
    Ok((h, records, next))
}

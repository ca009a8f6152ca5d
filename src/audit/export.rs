//! Writing the export format ([`pool_core::export`], docs/ledger.md) from a ledger: the lines of
//! `obtc-pool ledger export --data` and the pages of the `ledger_export` RPC, built by the same
//! functions, so a stopped pool's export and a running pool's are the same bytes at the same
//! head.

use anyhow::Context;
use ledger::export::canonical_bytes;
use ledger::record::{decode_event, RawRecord, GENESIS_PREV_HASH};
use ledger::{Head, Ledger, LedgerError};
use pool_core::export::{ExportHead, ExportHeader, ExportRecord, EXPORT_FORMAT, EXPORT_VERSION};
use std::io::Write;

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
    let first = first_seq(ledger)?;
    let head = ledger.head();
    let mut counted = CountingWriter {
        inner: out,
        bytes: 0,
    };
    let header = header(first, prev_hash(ledger, first)?, head);
    serde_json::to_writer(&mut counted, &header).context("writing the export")?;
    counted.write_all(b"\n").context("writing the export")?;
    let end = head.map_or(first, |h| h.seq + 1);
    let mut records = 0u64;
    for raw in ledger.read_raw_range(first, end) {
        let raw = raw.context("reading the ledger")?;
        let line = record_line(&raw)?;
        serde_json::to_writer(&mut counted, &line).context("writing the export")?;
        counted.write_all(b"\n").context("writing the export")?;
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

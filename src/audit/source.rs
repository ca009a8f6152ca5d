//! Where the audited records come from, chain hash checked: a stopped pool's ledger directory
//! (with the sealed archives of a dropped prefix, oldest first) or an export file
//! ([`pool_core::export`], docs/ledger.md).
//!
//! A ledger directory is verified as `ledger verify` does (the archives proved to join it)
//! before anything is replayed. An export is checked line by line as it is read, trusting only
//! each line's `bytes`: they must parse as a record (`seq | version | time_ms | event_len |
//! event`), continue the sequence, chain onto the previous record
//! (`hash = SHA-256(previous hash | bytes)`, the line's `hash`), and decode. The JSON beside
//! them (`seq`, `version`, `time_ms`, `kind`, `event`) is a convenience: where it disagrees
//! with the bytes the record is named in a finding (an edited amount with intact hex fails the
//! audit); the replay uses the bytes. The header must describe what follows (first record 0,
//! its count and last hash).
//!
//! Problems that leave nothing to replay (a chain that does not verify, a malformed line) are a
//! [`Refused`]; environmental errors (no ledger there, the pool holds it) are `Err`.

use super::Finding;
use anyhow::Context;
use ledger::archive::ArchiveReader;
use ledger::record::{chain_hash, decode_event, GENESIS_PREV_HASH, RECORD_HEADER_LEN};
use ledger::{Head, Ledger};
use pool_core::export::{ExportHeader, ExportRecord, EXPORT_FORMAT, EXPORT_VERSION};
use pool_core::Event;
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;

/// The records to audit.
#[derive(Clone, Debug)]
pub enum Source {
    /// A stopped pool's ledger directory (or a copy), after its archives (oldest first).
    Data {
        dir: PathBuf,
        archives: Vec<PathBuf>,
    },
    /// An export file (`obtc-pool ledger export`).
    Export(PathBuf),
}

impl Source {
    /// `ledger DIR` or `export FILE`: the report's first word.
    pub fn describe(&self) -> String {
        match self {
            Source::Data { dir, .. } => format!("ledger {}", dir.display()),
            Source::Export(path) => format!("export {}", path.display()),
        }
    }
}

/// What is done with each record, in sequence order.
pub trait Visit {
    fn record(&mut self, seq: u64, hash: &[u8; 32], event: &Event) -> anyhow::Result<()>;
    /// An archive's records ended: its projection snapshot (the pool's image at its cut).
    /// `Err(why)`: the replay disagrees with it.
    fn archive_end(&mut self, snapshot: Vec<u8>) -> Result<(), String>;
}

/// The records were read and their chain holds.
#[derive(Clone, Debug)]
pub struct Read {
    pub records: u64,
    pub head: Option<Head>,
    /// Lines whose JSON disagrees with their bytes.
    pub findings: Vec<Finding>,
}

/// The records cannot be audited: `line` says why in words (`ledger verification FAILED at
/// record 5: ...`), `finding` names the record.
#[derive(Clone, Debug)]
pub struct Refused {
    pub line: String,
    pub finding: Finding,
}

impl Refused {
    fn chain(seq: u64, problem: impl std::fmt::Display) -> Refused {
        Refused {
            line: format!("ledger verification FAILED at record {seq}: {problem}"),
            finding: Finding::at("chain", seq, problem.to_string()),
        }
    }

    fn export(seq: Option<u64>, what: String) -> Refused {
        Refused {
            line: format!("export refused: {what}"),
            finding: Finding {
                check: "export",
                seq,
                block: None,
                message: what,
            },
        }
    }

    fn archive(path: &std::path::Path, what: impl std::fmt::Display) -> Refused {
        let line = format!("archive {} verification FAILED: {what}", path.display());
        Refused {
            finding: Finding {
                check: "chain",
                seq: None,
                block: None,
                message: line.clone(),
            },
            line,
        }
    }
}

/// Reads every record of `source` into `visit`.
pub fn read(source: &Source, visit: &mut dyn Visit) -> anyhow::Result<Result<Read, Refused>> {
    match source {
        Source::Data { dir, archives } => {
            let ledger = Ledger::open_read_only(dir)?;
            read_ledger(&ledger, archives, visit)
        }
        Source::Export(path) => read_export(path, visit),
    }
}

/// The records of a ledger (opened read-only) after its archives.
pub fn read_ledger(
    ledger: &Ledger,
    archives: &[PathBuf],
    visit: &mut dyn Visit,
) -> anyhow::Result<Result<Read, Refused>> {
    // The archives' headers first: they must join the live ledger before anything is replayed
    // (their content is checked as it is read).
    let mut readers = Vec::with_capacity(archives.len());
    for path in archives {
        match ArchiveReader::open(path) {
            Ok(r) => readers.push((path.clone(), r)),
            Err(e) => return Ok(Err(Refused::archive(path, e))),
        }
    }
    let headers: Vec<_> = readers.iter().map(|(_, r)| *r.header()).collect();
    if let Err(line) = crate::cli::ledger::join(ledger, &headers)? {
        return Ok(Err(Refused {
            finding: Finding {
                check: "chain",
                seq: None,
                block: None,
                message: line.clone(),
            },
            line,
        }));
    }
    if let Err(bad) = ledger.verify() {
        return Ok(Err(Refused::chain(bad.seq, bad.problem)));
    }
    let mut records = 0u64;
    let mut next = 0u64;
    for (path, mut reader) in readers {
        loop {
            match reader.next_records() {
                Ok(Some(batch)) => {
                    for record in batch {
                        visit
                            .record(record.seq, &record.hash, &record.event)
                            .with_context(|| format!("replaying archived record {}", record.seq))?;
                        records += 1;
                        next = record.seq + 1;
                    }
                }
                Ok(None) => break,
                Err(e) => return Ok(Err(Refused::archive(&path, e))),
            }
        }
        let snapshot = match reader.finish() {
            Ok(image) => image,
            Err(e) => return Ok(Err(Refused::archive(&path, e))),
        };
        if let Err(why) = visit.archive_end(snapshot) {
            return Ok(Err(Refused::archive(&path, why)));
        }
    }
    if let Some(base) = ledger.base()? {
        if next < base.seq {
            return Ok(Err(Refused {
                line: format!(
                    "ledger verification FAILED: the ledger starts at record {} (its prefix \
                     was archived): pass the archives with --archive, oldest first",
                    base.seq
                ),
                finding: Finding::at(
                    "chain",
                    next,
                    format!(
                        "the ledger starts at record {}: its archives were not given",
                        base.seq
                    ),
                ),
            }));
        }
    }
    for record in ledger.read_from(next) {
        let record = record.context("reading the ledger")?;
        visit
            .record(record.seq, &record.hash, &record.event)
            .with_context(|| format!("replaying record {}", record.seq))?;
        records += 1;
    }
    Ok(Ok(Read {
        records,
        head: ledger.head(),
        findings: Vec::new(),
    }))
}

/// 64 hex digits as 32 bytes.
pub fn hash32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The record a line's `bytes` hold: `(seq, version, time_ms, event bytes)`.
fn parse_bytes(bytes: &[u8]) -> Result<(u64, u16, u64, &[u8]), String> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "its bytes are {} long, shorter than a record header ({RECORD_HEADER_LEN})",
            bytes.len()
        ));
    }
    let word = |at: usize, n: usize| {
        bytes[at..at + n]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    };
    let (seq, version, time_ms) = (word(0, 8), word(8, 2) as u16, word(10, 8));
    let len = word(18, 4) as usize;
    let event = &bytes[RECORD_HEADER_LEN..];
    if event.len() != len {
        return Err(format!(
            "its bytes say the event is {len} bytes but {} follow",
            event.len()
        ));
    }
    Ok((seq, version, time_ms, event))
}

/// Where two JSON values first differ: `(path, left, right)`.
fn first_difference(path: String, a: &Value, b: &Value) -> Option<(String, String, String)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let at = format!("{path}.{k}");
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(at, v, w) {
                            return Some(d);
                        }
                    }
                    None => return Some((at, v.to_string(), "nothing".into())),
                }
            }
            y.iter()
                .find(|(k, _)| !x.contains_key(*k))
                .map(|(k, w)| (format!("{path}.{k}"), "nothing".into(), w.to_string()))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(format!("{path}[{i}]"), v, w)),
        _ if a == b => None,
        _ => Some((path, a.to_string(), b.to_string())),
    }
}

/// What in a line's JSON disagrees with its bytes, if anything.
fn json_disagrees(
    line: &ExportRecord,
    seq: u64,
    version: u16,
    time_ms: u64,
    event: &Event,
) -> Option<String> {
    if line.seq != seq {
        return Some(format!(
            "its JSON says seq {} but its bytes {seq}",
            line.seq
        ));
    }
    if line.version != version {
        return Some(format!(
            "its JSON says version {} but its bytes {version}",
            line.version
        ));
    }
    if line.time_ms != time_ms {
        return Some(format!(
            "its JSON says time_ms {} but its bytes {time_ms}",
            line.time_ms
        ));
    }
    if line.kind != event.kind() {
        return Some(format!(
            "its JSON says kind {} but its bytes hold a {}",
            line.kind,
            event.kind()
        ));
    }
    let decoded = match serde_json::to_value(event) {
        Ok(v) => v,
        Err(e) => return Some(format!("its event has no JSON form: {e}")),
    };
    first_difference("event".into(), &line.event, &decoded).map(|(path, json, bytes)| {
        format!(
            "its JSON disagrees with its bytes: {path} is {json} in the JSON, {bytes} in the bytes"
        )
    })
}

/// The records of an export file.
pub fn read_export(
    path: &std::path::Path,
    visit: &mut dyn Visit,
) -> anyhow::Result<Result<Read, Refused>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the export {}", path.display()))?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, file).lines();
    let header_line = match lines.next() {
        Some(line) => line.with_context(|| format!("reading {}", path.display()))?,
        None => return Ok(Err(Refused::export(None, "the file is empty".into()))),
    };
    let header: ExportHeader = match serde_json::from_str(&header_line) {
        Ok(h) => h,
        Err(e) => {
            return Ok(Err(Refused::export(
                None,
                format!("its first line is not an export header: {e}"),
            )))
        }
    };
    if header.format != EXPORT_FORMAT || header.version != EXPORT_VERSION {
        return Ok(Err(Refused::export(
            None,
            format!(
                "its header is format {:?} version {}; this build reads {EXPORT_FORMAT:?} \
                 version {EXPORT_VERSION}",
                header.format, header.version
            ),
        )));
    }
    if header.first_seq != 0 || hash32(&header.prev_hash) != Some(GENESIS_PREV_HASH) {
        return Ok(Err(Refused::export(
            Some(header.first_seq),
            format!(
                "it starts at record {} (prev_hash {}), not at record 0: an audit replays the \
                 whole ledger",
                header.first_seq, header.prev_hash
            ),
        )));
    }
    let mut prev = GENESIS_PREV_HASH;
    let mut next = 0u64;
    let mut findings = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let seq = next;
        let line_no = i + 2;
        let refuse = |what: String| Ok(Err(Refused::export(Some(seq), what)));
        let record: ExportRecord = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => return refuse(format!("line {line_no} is not a record line: {e}")),
        };
        let Ok(bytes) = hex::decode(&record.bytes) else {
            return refuse(format!("line {line_no}: its bytes are not hex"));
        };
        let (bytes_seq, version, time_ms, event_bytes) = match parse_bytes(&bytes) {
            Ok(parts) => parts,
            Err(why) => return refuse(format!("line {line_no}: {why}")),
        };
        if bytes_seq != seq {
            return Ok(Err(Refused::chain(
                seq,
                format!("line {line_no} holds record {bytes_seq} where record {seq} belongs"),
            )));
        }
        let hash = chain_hash(&prev, &bytes);
        if hash32(&record.hash) != Some(hash) {
            return Ok(Err(Refused::chain(
                seq,
                format!(
                    "its hash {} is not the chain hash of its bytes on the previous record's ({})",
                    record.hash,
                    hex::encode(hash)
                ),
            )));
        }
        let event = match decode_event(version, event_bytes) {
            Ok(e) => e,
            Err(p) => return Ok(Err(Refused::chain(seq, p))),
        };
        if let Some(why) = json_disagrees(&record, seq, version, time_ms, &event) {
            findings.push(Finding::at("export", seq, why));
        }
        visit
            .record(seq, &hash, &event)
            .with_context(|| format!("replaying record {seq}"))?;
        prev = hash;
        next += 1;
    }
    let head = next.checked_sub(1).map(|seq| Head { seq, hash: prev });
    let says = header.last.as_ref().map(|l| (l.seq, l.hash.clone()));
    if header.records != next || says != head.map(|h| (h.seq, hex::encode(h.hash))) {
        return Ok(Err(Refused::export(
            head.map(|h| h.seq),
            format!(
                "its header says {} records ending at {:?}, but {next} records ending at {:?} \
                 follow (the file is truncated or its header edited)",
                header.records,
                says,
                head.map(|h| (h.seq, hex::encode(h.hash)))
            ),
        )));
    }
    Ok(Ok(Read {
        records: next,
        head,
        findings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_json_difference_is_named_by_its_path() {
        let bytes = json!({"BlockFound": {"reward": 5000000000u64, "height": 101, "ids": [1, 2]}});
        let edited = json!({"BlockFound": {"reward": 5000000001u64, "height": 101, "ids": [1, 2]}});
        assert_eq!(
            first_difference("event".into(), &edited, &bytes),
            Some((
                "event.BlockFound.reward".into(),
                "5000000001".into(),
                "5000000000".into()
            ))
        );
        assert_eq!(first_difference("event".into(), &bytes, &bytes), None);
        let extra =
            json!({"BlockFound": {"reward": 5000000000u64, "height": 101, "ids": [1, 2], "x": 1}});
        assert_eq!(
            first_difference("event".into(), &extra, &bytes).map(|d| d.0),
            Some("event.BlockFound.x".into())
        );
        let reordered =
            json!({"BlockFound": {"reward": 5000000000u64, "height": 101, "ids": [2, 1]}});
        assert_eq!(
            first_difference("event".into(), &reordered, &bytes).map(|d| d.0),
            Some("event.BlockFound.ids[0]".into())
        );
    }

    #[test]
    fn record_bytes_parse_and_their_length_is_checked() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&99u64.to_be_bytes());
        bytes.extend_from_slice(&3u32.to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse_bytes(&bytes), Ok((7, 1, 99, &[1u8, 2, 3][..])));
        assert!(parse_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_bytes(&bytes[..10]).is_err());
    }
}

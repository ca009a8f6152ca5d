//! The ledger's error types: what went wrong opening, appending, reading and verifying.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Errors of [`crate::Ledger`] operations. `Clone`, because one failed commit batch fails
/// every append that was waiting on it.
#[derive(Debug, Clone, Error)]
pub enum LedgerError {
    /// Another process (or another handle in this one) holds the ledger directory.
    #[error("ledger at {} is in use (is the pool running?); stop it or copy the directory", dir.display())]
    Locked { dir: PathBuf },
    /// An audit was asked for a directory that holds no ledger.
    #[error("no ledger at {}: the directory does not exist or holds no sled database", dir.display())]
    NotFound { dir: PathBuf },
    /// The last stored batch does not verify; appending onto it would extend a broken chain.
    #[error("the ledger's tail is corrupt, refusing to append: {0}")]
    CorruptTail(VerifyError),
    /// A stored record could not be read back.
    #[error("corrupt ledger: {0}")]
    Corrupt(VerifyError),
    /// sled reported an error (I/O, or its own corruption).
    #[error("ledger storage error: {0}")]
    Storage(String),
    /// The disk holding the ledger is full (or the start-up free-space margin is not met).
    /// Transient: while it lasts appends are refused at once (nothing is acknowledged that is
    /// not durable), and the writer resumes on its own once space is freed.
    #[error("the disk holding the ledger is full: {0}")]
    DiskFull(String),
    /// A prefix drop or an archive was asked for a cut it cannot take (the message says why).
    #[error("cannot cut the ledger there: {0}")]
    BadCut(String),
    /// The event could not be bincode-encoded.
    #[error("could not encode event: {0}")]
    Encode(String),
    /// The writer has stopped (after `close`, or after a failed flush).
    #[error("the ledger writer has stopped: {0}")]
    Closed(String),
    /// The ledger was opened for auditing only.
    #[error("the ledger was opened read-only")]
    ReadOnly,
}

impl From<sled::Error> for LedgerError {
    fn from(e: sled::Error) -> Self {
        match &e {
            sled::Error::Io(io) if is_disk_full(io) => LedgerError::DiskFull(e.to_string()),
            _ => LedgerError::Storage(e.to_string()),
        }
    }
}

impl LedgerError {
    /// Whether this is [`LedgerError::DiskFull`] (transient: retry once space is freed).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, LedgerError::DiskFull(_))
    }
}

/// Whether an I/O error says the disk (or the user's quota) is full. sled hands its stored
/// error back as a copy that keeps only the kind, so both the code and the kind count.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

/// An I/O error as a [`LedgerError`]: [`LedgerError::DiskFull`] for a full disk, else
/// [`LedgerError::Storage`]; `what` says what was being done.
pub(crate) fn io_error(what: impl std::fmt::Display, e: &std::io::Error) -> LedgerError {
    if is_disk_full(e) {
        LedgerError::DiskFull(format!("{what}: {e}"))
    } else {
        LedgerError::Storage(format!("{what}: {e}"))
    }
}

/// The first bad record found, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("record {seq}: {problem}")]
pub struct VerifyError {
    /// Sequence number of the first record that does not verify (the one expected at that
    /// position of the chain when a record is missing or out of place).
    pub seq: u64,
    pub problem: Problem,
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its chain hash does not match the previous record's hash and its own bytes: the record
    /// (or its hash) was edited.
    HashMismatch,
    /// A different record stands where this sequence number was expected: a record was
    /// deleted, or records were reordered.
    OutOfSequence { found: u64 },
    /// A batch is stored under a key that is not the sequence of its first record.
    BatchKey { key: u64, first: u64 },
    /// The stored bytes are not a well-formed batch of records.
    Malformed(String),
    /// The record's event schema version is one this build cannot decode.
    UnknownVersion(u16),
    /// The event bytes do not decode as an event of the record's schema version.
    Decode(String),
    /// The chain ends before the head the writer recorded: records were deleted at the end.
    Truncated { recorded_head: u64 },
    /// The recorded head's hash is not the stored hash of that record.
    HeadMismatch,
    /// sled failed while reading.
    Storage(String),
    /// The record lies below the ledger's base: it was archived and dropped from this ledger
    /// ([`crate::Ledger::drop_prefix`]); read it from the archive.
    Archived { base: u64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::HashMismatch => write!(
                f,
                "hash mismatch: the record's hash does not cover its content and the previous record's hash (edited record)"
            ),
            Problem::OutOfSequence { found } => write!(
                f,
                "out of sequence: found record {found} here (a record was deleted or records were reordered)"
            ),
            Problem::BatchKey { key, first } => write!(
                f,
                "batch stored under key {key} starts with record {first}"
            ),
            Problem::Malformed(why) => write!(f, "malformed stored batch: {why}"),
            Problem::UnknownVersion(v) => write!(
                f,
                "unknown event schema version {v} (this build reads versions 1..={})",
                pool_core::EVENT_SCHEMA_VERSION
            ),
            Problem::Decode(why) => write!(f, "event does not decode: {why}"),
            Problem::Truncated { recorded_head } => write!(
                f,
                "missing: the chain ends here but the writer recorded records up to {recorded_head} (records were deleted at the end)"
            ),
            Problem::HeadMismatch => write!(
                f,
                "the recorded head's hash differs from this record's stored hash"
            ),
            Problem::Storage(why) => write!(f, "storage error while reading: {why}"),
            Problem::Archived { base } => write!(
                f,
                "archived: this ledger starts at record {base} (earlier records were sealed into archives and dropped)"
            ),
        }
    }
}

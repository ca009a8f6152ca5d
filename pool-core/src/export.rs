//! The ledger's export format: one JSON line per record, for auditors who do not run our code
//! (`obtc-pool ledger export`, the `ledger_export` RPC; `docs/ledger.md` specifies it).
//!
//! ```text
//! line 1:  ExportHeader   {"format":"obtc-pool-ledger-export","version":1,"first_seq":N,
//!                          "prev_hash":HEX,"records":COUNT,"last":{"seq":..,"hash":HEX}|null}
//! then:    ExportRecord   {"seq":..,"version":..,"time_ms":..,"kind":"ShareWithWork",
//!                          "event":{...},"bytes":HEX,"hash":HEX}   one per record, in order
//! ```
//!
//! `bytes` is exactly what the record's chain hash covers after the previous hash (its
//! canonical format-1 bytes: `seq | version | time_ms | event_len | event`), so
//! `hash = SHA-256(previous hash | bytes)`, the first record's previous hash being the header's
//! `prev_hash`. `event` is serde's JSON form of the decoded [`crate::Event`] (externally tagged:
//! `{"ShareWithWork": {...}}`) and `kind` its variant name: a convenience, checked against
//! `bytes` by the audit, which refuses a record whose JSON disagrees with its bytes.

use serde::{Deserialize, Serialize};

/// `format` of an export's header line.
pub const EXPORT_FORMAT: &str = "obtc-pool-ledger-export";
/// `version` of the export format this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// The first line of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// The first exported record's sequence number (0 unless the ledger's prefix was dropped
    /// or a range was asked for).
    pub first_seq: u64,
    /// The chain hash before the first record (hex; 64 zeros for record 0).
    pub prev_hash: String,
    /// How many record lines follow.
    pub records: u64,
    /// The last exported record (`None`: no records).
    pub last: Option<ExportHead>,
}

/// A record's place in the chain: sequence number and chain hash (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHead {
    pub seq: u64,
    pub hash: String,
}

/// One record line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub seq: u64,
    /// The event's schema version.
    pub version: u16,
    /// When the writer committed the record (Unix ms).
    pub time_ms: u64,
    /// The event's variant name ([`crate::Event::kind`]).
    pub kind: String,
    /// The decoded event, serde's JSON form (a convenience: `bytes` is the truth).
    pub event: serde_json::Value,
    /// The exact bytes the chain hash covers after the previous hash, hex.
    pub bytes: String,
    /// The record's chain hash, hex.
    pub hash: String,
}

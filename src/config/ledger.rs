//! `[ledger]`: where the ledger lives, and the free space it keeps in reserve.

use super::resolve;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default `[ledger] min_free_mb`.
pub const DEFAULT_MIN_FREE_MB: u64 = ledger::DEFAULT_MIN_FREE_BYTES >> 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSettings {
    pub data_dir: PathBuf,
    /// The free space the pool keeps in reserve (see `ledger::WriterOptions::min_free_bytes`):
    /// it starts, and resumes after a full disk, only with the room its write-ahead log files
    /// still need plus this much free; below half of it, appends are refused as on a full
    /// disk.
    pub min_free_bytes: u64,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    data_dir: PathBuf,
    #[serde(default)]
    min_free_mb: Option<u64>,
}

pub(super) fn ledger_settings(raw: RawLedger, base: &Path) -> LedgerSettings {
    LedgerSettings {
        data_dir: resolve(base, raw.data_dir),
        min_free_bytes: raw.min_free_mb.unwrap_or(DEFAULT_MIN_FREE_MB) << 20,
    }
}

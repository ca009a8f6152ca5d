//! `[ledger]`: where the ledger lives, how much memory sled's page cache may hold, the free
//! space it keeps in reserve, and its automatic archiving (retention).

use super::{invalid, resolve, ParseError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default `[ledger] min_free_mb`.
pub const DEFAULT_MIN_FREE_MB: u64 = ledger::DEFAULT_MIN_FREE_BYTES >> 20;
/// `[ledger] cache_mb` when not given: [`ledger::DEFAULT_CACHE_BYTES`] in MiB.
pub const DEFAULT_CACHE_MB: u64 = ledger::DEFAULT_CACHE_BYTES >> 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSettings {
    pub data_dir: PathBuf,
    /// sled's page cache, in MiB (at least 1).
    pub cache_mb: u64,
    /// The free space the pool keeps in reserve (see `ledger::WriterOptions::min_free_bytes`):
    /// it starts, and resumes after a full disk, only with the room its write-ahead log files
    /// still need plus this much free; below half of it, appends are refused as on a full
    /// disk.
    pub min_free_bytes: u64,
    /// `archive_dir` and `retain_records`: the running pool seals old records into archives.
    pub retention: Option<Retention>,
}

/// Automatic archiving: when the live ledger holds more than twice `retain_records`, the pool
/// seals everything but the last `retain_records` (lowered to the safe cut) into a new archive in
/// `archive_dir` and drops it from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub archive_dir: PathBuf,
    pub retain_records: u64,
    /// How often the pool looks (`archive_check_secs`, default 60).
    pub check_secs: u64,
}

impl LedgerSettings {
    /// The ledger's open options for these settings.
    pub fn writer_options(&self) -> ledger::WriterOptions {
        ledger::WriterOptions {
            cache_bytes: self.cache_mb << 20,
            min_free_bytes: self.min_free_bytes,
            ..ledger::WriterOptions::default()
        }
    }
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    data_dir: PathBuf,
    cache_mb: Option<u64>,
    #[serde(default)]
    min_free_mb: Option<u64>,
    archive_dir: Option<PathBuf>,
    retain_records: Option<u64>,
    archive_check_secs: Option<u64>,
}

pub(super) fn ledger_settings(raw: RawLedger, base: &Path) -> Result<LedgerSettings, ParseError> {
    let cache_mb = raw.cache_mb.unwrap_or(DEFAULT_CACHE_MB);
    if cache_mb == 0 || cache_mb > 1 << 20 {
        return Err(invalid(
            "ledger.cache_mb",
            format!("{cache_mb}: give sled's cache in MiB, 1 to 1048576"),
        ));
    }
    let retention = match (raw.archive_dir, raw.retain_records) {
        (None, None) => None,
        (Some(dir), Some(retain_records)) => {
            if retain_records == 0 {
                return Err(invalid("ledger.retain_records", "must be at least 1"));
            }
            let check_secs = raw.archive_check_secs.unwrap_or(60);
            if check_secs == 0 {
                return Err(invalid("ledger.archive_check_secs", "must be at least 1"));
            }
            Some(Retention {
                archive_dir: resolve(base, dir),
                retain_records,
                check_secs,
            })
        }
        _ => {
            return Err(invalid(
                "ledger.archive_dir",
                "archive_dir and retain_records go together (automatic archiving needs both)",
            ))
        }
    };
    Ok(LedgerSettings {
        data_dir: resolve(base, raw.data_dir),
        cache_mb,
        min_free_bytes: raw.min_free_mb.unwrap_or(DEFAULT_MIN_FREE_MB) << 20,
        retention,
    })
}

//! `[ledger]`: where the ledger lives, and how much memory sled's page cache may hold.

use super::resolve;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[ledger] cache_mb` when not given: [`ledger::DEFAULT_CACHE_BYTES`] in MiB.
pub const DEFAULT_CACHE_MB: u64 = ledger::DEFAULT_CACHE_BYTES >> 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSettings {
    pub data_dir: PathBuf,
    /// sled's page cache, in MiB (at least 1).
    pub cache_mb: u64,
}

impl LedgerSettings {
    /// The ledger's open options for these settings.
    pub fn writer_options(&self) -> ledger::WriterOptions {
        ledger::WriterOptions {
            cache_bytes: self.cache_mb << 20,
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
}

pub(super) fn ledger_settings(raw: RawLedger, base: &Path) -> Result<LedgerSettings, String> {
    let cache_mb = raw.cache_mb.unwrap_or(DEFAULT_CACHE_MB);
    if cache_mb == 0 || cache_mb > 1 << 20 {
        return Err(format!(
            "[ledger] cache_mb = {cache_mb}: give sled's cache in MiB, 1 to 1048576"
        ));
    }
    Ok(LedgerSettings {
        data_dir: resolve(base, raw.data_dir),
        cache_mb,
    })
}

//! `[ledger]`: where the ledger lives.

use super::resolve;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSettings {
    pub data_dir: PathBuf,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLedger {
    data_dir: PathBuf,
}

pub(super) fn ledger_settings(raw: RawLedger, base: &Path) -> LedgerSettings {
    LedgerSettings {
        data_dir: resolve(base, raw.data_dir),
    }
}

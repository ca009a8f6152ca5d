//! `obtc-pool audit`: verify and replay a ledger without trusting the pool.
//!
//! The records come from a stopped pool's ledger directory (`--data DIR`, optionally with the
//! sealed archives of a dropped prefix) or from an export file (`--export FILE`, see
//! [`pool_core::export`] and docs/ledger.md), whose JSON is checked against its hex bytes. The
//! audit then:
//!
//! 1. verifies the hash chain ([`source`]);
//! 2. replays every event through a fresh projection: per-block credits, per-address balances,
//!    the conservation check (the report of `ledger balances`, which is this command);
//! 3. checks the work ([`work`]): every `ShareWithWork`'s header rebuilt from its `JobCreated`,
//!    hashed with the chain's proof of work, meets its recorded target; every job's coinbase
//!    pays the pool; no share counts twice;
//! 4. with `--node URL`, checks money and history against the chain ([`money`]): each job's
//!    previous block is a block the node knows, each `BlockFound` reward equals the block's
//!    coinbase outputs to the pool, each confirmed payment's transaction at its height pays the
//!    ledger's outputs net of deductions;
//! 5. with `--check-anchors` (and `--node`), scans the chain for the pool's blocks and proves
//!    the ledger extends every anchored head ([`anchors`]).
//!
//! Every problem is a [`Finding`] naming the record (or block) it is about; the verdict is
//! `PASS` when there is none, and the exit status is non-zero otherwise.

pub mod anchors;
pub mod money;
pub mod work;

use pool_core::chain::ChainParams;
use serde::Serialize;

/// Who the pool is, as the auditor knows it (from `--config`, or `--chain` and
/// `--pool-address`, optionally `--pool-tag`): what its coinbases must pay and carry.
#[derive(Clone, Debug)]
pub struct PoolIdentity {
    pub chain: &'static ChainParams,
    /// The pool's payout address as given.
    pub address: String,
    /// Its output script.
    pub payout_script: Vec<u8>,
    /// The pool tag in the coinbase scriptSig (`[stratum] pool_tag`, default `/obtc-pool/`).
    pub tag: Vec<u8>,
}

/// One problem the audit found. `seq` names the ledger record it is about (`None` for a
/// problem about a block that has no record, e.g. a pool block missing from the ledger);
/// `block` the chain block, when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that failed: `chain`, `export`, `replay`, `work`, `money`, `anchor`.
    pub check: &'static str,
    pub seq: Option<u64>,
    /// Display hex of the block concerned, if any.
    pub block: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn at(check: &'static str, seq: u64, message: impl Into<String>) -> Finding {
        Finding {
            check,
            seq: Some(seq),
            block: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.check)?;
        if let Some(seq) = self.seq {
            write!(f, ": record {seq}")?;
        }
        if let Some(block) = &self.block {
            write!(f, ": block {block}")?;
        }
        write!(f, ": {}", self.message)
    }
}

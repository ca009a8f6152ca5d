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
//! 3. checks the stream batches of a scale-out core's ledger ([`stream`]): per edge boot, its
//!    batches and counters (a gap is a batch the edge abandoned), no batch applied twice, in
//!    stream order, holding only what an edge publishes, each share on its own edge's job;
//! 4. checks the work ([`work`]): every `ShareWithWork`'s header rebuilt from its `JobCreated`,
//!    hashed with the chain's proof of work, meets its recorded target; every job's coinbase
//!    pays the pool; no share counts twice;
//! 5. with `--node URL`, checks money and history against the chain ([`money`]): each job's
//!    previous block is a block the node knows, each `BlockFound` reward equals the block's
//!    coinbase outputs to the pool, each confirmed payment's transaction at its height pays the
//!    ledger's outputs net of deductions;
//! 6. with `--check-anchors` (and `--node`), scans the chain for the pool's blocks and proves
//!    the ledger extends every anchored head ([`anchors`]).
//!
//! Every problem is a [`Finding`] naming the record (or block) it is about; the verdict is
//! `PASS` when there is none, and the exit status is non-zero otherwise ([`report`]).
//!
//! One pass over the records feeds the replay and every check's collector; the checks against
//! the node run after it. [`run_audit`] is the library entry (`obtc-pool audit`, `ledger
//! balances` and the audit benchmark call it).

pub mod anchors;
pub mod export;
pub mod money;
pub mod report;
pub mod source;
pub mod stream;
pub mod work;

use node_rpc::NodeClient;
use pool_core::chain::ChainParams;
use pool_core::Event;
use projections::{Projection, ProjectionConfig};
use report::AuditReport;
use serde::Serialize;
use source::{Source, Visit};

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
    /// The check that failed: `chain`, `export`, `replay`, `stream`, `work`, `money`, `anchor`.
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

/// What to check beyond the chain and the replay.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// Who the pool is: without it the work and node checks are skipped (the report says so).
    pub pool: Option<PoolIdentity>,
    /// The node to check money and history against (`--node`).
    pub node: Option<NodeClient>,
    /// Scan the chain for the pool's blocks and check their anchors (needs `node`).
    pub check_anchors: bool,
}

/// Audits the records of `source`: chain, replay, and the checks `options` allow. `Err` only
/// for what stops the audit from running (no ledger there, the pool holds it, a file that
/// cannot be read); every problem with the records is a finding in the report.
pub fn run_audit(source: &Source, options: &AuditOptions) -> anyhow::Result<AuditReport> {
    let mut skipped = Vec::new();
    let pool = options.pool.as_ref();
    let node = options.node.as_ref();
    if pool.is_none() {
        skipped.push(
            "work, money and anchors: no pool identity (`obtc-pool audit --config FILE`, or \
             --chain and --pool-address), so no share's work and nothing on the chain was \
             checked"
                .to_owned(),
        );
    } else if node.is_none() {
        skipped.push(
            "money and anchors: no --node, so rewards, payments, previous blocks and anchors \
             were not checked against the chain"
                .to_owned(),
        );
    } else if !options.check_anchors {
        skipped.push("anchors: not asked for (--check-anchors)".to_owned());
    }
    let on_node = pool.is_some() && node.is_some();
    let mut pass = Pass {
        // Only `blocks_due_for_maturity` reads the maturity, and the report does not use it.
        projection: Projection::new(ProjectionConfig::default()),
        stream: stream::StreamCheck::default(),
        work: pool.map(work::WorkCheck::new),
        money: on_node.then(money::MoneyFacts::default),
        anchors: (on_node && options.check_anchors).then(anchors::AnchorFacts::default),
    };
    let mut report = AuditReport {
        source: source.describe(),
        balances: None,
        refused: None,
        stream: None,
        work: None,
        money: None,
        anchors: None,
        skipped,
        findings: Vec::new(),
        pass: false,
        verdict: String::new(),
    };
    let read = match source::read(source, &mut pass)? {
        Ok(read) => read,
        Err(refused) => {
            report.refused = Some(format!("{}; refusing to report balances", refused.line));
            report.findings.push(refused.finding);
            report.conclude();
            return Ok(report);
        }
    };
    report.findings.extend(read.findings);
    let balances = report::balances_report(&pass.projection, read.records, read.head);
    if !balances.totals.conserved {
        report.findings.push(Finding {
            check: "replay",
            seq: None,
            block: None,
            message: format!(
                "balances sum to {} sat but the rewards of non-orphaned blocks are {} sat",
                balances.totals.balances_sum, balances.totals.rewards.0
            ),
        });
    }
    report.balances = Some(balances);
    let stream = pass.stream.finish();
    if stream.batches > 0 {
        report.findings.extend(stream.findings.iter().cloned());
        report.stream = Some(stream);
    }
    let work = pass.work.take().map(work::WorkCheck::finish);
    if let Some(w) = &work {
        report.findings.extend(w.findings.iter().cloned());
    }
    if let (Some(pool), Some(node)) = (pool, node) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let prev_hashes = work.as_ref().map_or(&[][..], |w| &w.prev_hashes[..]);
        if let Some(facts) = &pass.money {
            match runtime.block_on(money::check(node, pool, facts, prev_hashes)) {
                Ok(m) => {
                    report.findings.extend(m.findings.iter().cloned());
                    report.money = Some(m);
                }
                Err(e) => report.findings.push(node_failed("money", &e)),
            }
        }
        if let Some(facts) = &pass.anchors {
            match runtime.block_on(anchors::check(node, pool, facts)) {
                Ok(a) => {
                    report.findings.extend(a.findings.iter().cloned());
                    report.anchors = Some(a);
                }
                Err(e) => report.findings.push(node_failed("anchor", &e)),
            }
        }
    }
    report.work = work;
    report.conclude();
    Ok(report)
}

fn node_failed(check: &'static str, e: &anyhow::Error) -> Finding {
    Finding {
        check,
        seq: None,
        block: None,
        message: format!("the check against the node could not finish: {e:#}"),
    }
}

/// The one pass over the records: the replay and the collectors of the checks.
struct Pass {
    projection: Projection,
    stream: stream::StreamCheck,
    work: Option<work::WorkCheck>,
    money: Option<money::MoneyFacts>,
    anchors: Option<anchors::AnchorFacts>,
}

impl Visit for Pass {
    fn record(&mut self, seq: u64, hash: &[u8; 32], event: &Event) -> anyhow::Result<()> {
        self.projection.apply(seq, event)?;
        self.stream.apply(seq, event);
        if let Some(w) = &mut self.work {
            w.apply(seq, event);
        }
        if let Some(m) = &mut self.money {
            m.apply(seq, event);
        }
        if let Some(a) = &mut self.anchors {
            a.apply(seq, hash, event);
        }
        Ok(())
    }

    fn archive_end(&mut self, snapshot: Vec<u8>) -> Result<(), String> {
        let archived = crate::live::snapshot::parse(snapshot)
            .map_err(|e| e.to_string())
            .and_then(|f| Projection::from_snapshot(f.projection()).map_err(|e| e.to_string()))
            .map_err(|e| format!("its snapshot: {e}"))?;
        if same_state(&archived, &self.projection) {
            Ok(())
        } else {
            Err("its snapshot is not the state its records replay to".into())
        }
    }
}

/// Whether an archive's snapshot holds the state the audit's replay reached at its cut. The
/// pool's projection forgets old shares (and the audit's keeps them all), so their bytes differ;
/// everything a pool serves, credits or pays from must be equal. Every chain preset has the
/// default maturity, so the settings compare equal too.
fn same_state(archived: &Projection, replayed: &Projection) -> bool {
    archived.next_seq() == replayed.next_seq()
        && archived.config() == replayed.config()
        && archived.rule_history() == replayed.rule_history()
        && archived.blocks() == replayed.blocks()
        && archived.open_candidates() == replayed.open_candidates()
        && archived.balances() == replayed.balances()
        && archived.pool_totals() == replayed.pool_totals()
        && archived.payments() == replayed.payments()
        && archived.open_payments() == replayed.open_payments()
        && archived.anomalies() == replayed.anomalies()
        && archived.share_count() == replayed.share_count()
        && archived.worker_stats() == replayed.worker_stats()
        && archived.address_stats() == replayed.address_stats()
}

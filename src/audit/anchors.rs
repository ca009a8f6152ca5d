//! The anchor check (`audit --check-anchors --node URL`): scans the chain from the height of
//! the ledger's first record with a height to the tip for coinbases that pay the pool's payout
//! script and carry the pool tag (not trusting `BlockFound` events), reads each one's anchor
//! output ([`pool_core::anchor`]) and proves the audited ledger extends every anchored head: the
//! record at the anchor's `seq` has the anchor's `hash`. A ledger rewritten before an anchored
//! head fails and names the first block whose anchor no longer matches; a pool block the
//! ledger has no `BlockCandidate`/`BlockFound` for is reported.
//!
//! The same proof runs inside the ledger too: every `JobCreated` anchor must be the chain hash
//! of an earlier record of the audited ledger (the pool anchors the head it had when it built
//! the job). Those findings follow the chain's, so the first finding is the first pool block
//! (by height) whose anchor the ledger no longer extends.
//!
//! A pool block without an anchor output (mined before anchors existed, or on an empty ledger)
//! is counted, not a finding.

use super::money::{raw_block, RawBlock};
use super::{Finding, PoolIdentity};
use anyhow::Context as _;
use node_rpc::NodeClient;
use pool_core::anchor::parse_anchor_script;
use pool_core::event::LedgerAnchor;
use pool_core::{BlockId, Event};
use serde::Serialize;
use std::collections::HashSet;

/// At most this many findings about `JobCreated` anchors are kept.
const MAX_JOB_FINDINGS: usize = 1_000;

/// What the anchor check needs from the ledger, collected in one pass
/// ([`AnchorFacts::apply`]): every record's chain hash (32 bytes a record), the blocks the
/// ledger records, the first height.
#[derive(Clone, Debug, Default)]
pub struct AnchorFacts {
    first_seq: Option<u64>,
    /// The chain hash of record `first_seq + i` (zeros in a gap).
    hashes: Vec<[u8; 32]>,
    /// Sequence ranges `[from, to)` the records skipped (the source checks the chain; a
    /// directory with a dropped prefix starts late, which is not a gap).
    gaps: Vec<(u64, u64)>,
    /// Blocks with a `BlockCandidate` or `BlockFound` record.
    blocks: HashSet<BlockId>,
    /// The lowest height of a job, share or block record.
    first_height: Option<u64>,
    /// `JobCreated` records whose anchor is not a head of this ledger.
    job_findings: Vec<Finding>,
}

impl AnchorFacts {
    /// Collects from one record (call in sequence order) with its chain hash.
    pub fn apply(&mut self, seq: u64, hash: &[u8; 32], event: &Event) {
        let first = *self.first_seq.get_or_insert(seq);
        let next = first + self.hashes.len() as u64;
        if seq < next {
            return; // out of order: the source refuses such input before it gets here
        }
        if seq > next {
            self.gaps.push((next, seq));
            self.hashes.resize((seq - first) as usize, [0; 32]);
        }
        self.hashes.push(*hash);
        let height = match event {
            Event::JobCreated(job) => {
                if let Some(anchor) = job.anchor {
                    self.check_job_anchor(seq, job.job_id, &anchor);
                }
                Some(job.height)
            }
            Event::BlockCandidate(b) => {
                self.blocks.insert(b.block_id);
                Some(b.height)
            }
            Event::BlockFound(b) => {
                self.blocks.insert(b.block_id);
                Some(b.height)
            }
            e => e.share().map(|s| s.height),
        };
        if let Some(h) = height {
            self.first_height = Some(self.first_height.map_or(h, |f| f.min(h)));
        }
    }

    fn check_job_anchor(&mut self, seq: u64, job_id: u64, anchor: &LedgerAnchor) {
        let problem = match self.hash_at(anchor.seq) {
            _ if anchor.seq >= seq => Some(format!(
                "job {job_id} anchors record {}, which is not before it",
                anchor.seq
            )),
            HashAt::Is(h) if h == anchor.hash => None,
            // Before a dropped prefix the auditor was not given: unprovable, not contradicted.
            HashAt::Before(_) => None,
            other => Some(format!(
                "job {job_id} anchors record {} with hash {}, {}",
                anchor.seq,
                hex::encode(anchor.hash),
                other.describe()
            )),
        };
        if let Some(message) = problem {
            if self.job_findings.len() < MAX_JOB_FINDINGS {
                self.job_findings.push(Finding::at("anchor", seq, message));
            }
        }
    }

    /// The chain hash of record `seq`, as far as this ledger has it.
    fn hash_at(&self, seq: u64) -> HashAt {
        let Some(first) = self.first_seq else {
            return HashAt::After(None);
        };
        if seq < first {
            return HashAt::Before(first);
        }
        if self
            .gaps
            .iter()
            .any(|(from, to)| (*from..*to).contains(&seq))
        {
            return HashAt::Missing;
        }
        match self.hashes.get((seq - first) as usize) {
            Some(h) => HashAt::Is(*h),
            None => HashAt::After(Some(first + self.hashes.len() as u64 - 1)),
        }
    }

    /// The lowest height of a job, share or block record.
    pub fn first_height(&self) -> Option<u64> {
        self.first_height
    }
}

enum HashAt {
    Is([u8; 32]),
    /// The records start at this seq (a dropped prefix without its archive).
    Before(u64),
    Missing,
    /// Past the last record (`None`: no records).
    After(Option<u64>),
}

impl HashAt {
    fn describe(&self) -> String {
        match self {
            HashAt::Is(h) => format!("but the ledger's record has hash {}", hex::encode(h)),
            HashAt::Before(first) => format!("but the ledger starts at record {first}"),
            HashAt::Missing => "but the ledger skips that record".into(),
            HashAt::After(Some(last)) => format!("but the ledger ends at record {last}"),
            HashAt::After(None) => "but the ledger is empty".into(),
        }
    }
}

/// What the anchor check saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AnchorReport {
    /// Heights scanned, first and last.
    pub from_height: u64,
    pub to_height: u64,
    /// Pool blocks found on the chain (pay the pool's script, carry its tag).
    pub pool_blocks: u64,
    /// Of those, blocks with an anchor the ledger extends.
    pub anchors_matched: u64,
    /// Of those, blocks without an anchor output (before anchors, or an empty ledger).
    pub without_anchor: u64,
    /// Of those, blocks anchoring a record before the audited ledger's first (a dropped
    /// prefix whose archive was not given): neither proved nor contradicted.
    pub anchors_before_ledger: u64,
    pub findings: Vec<Finding>,
}

/// What one block of the chain is to the anchor check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Not the pool's: the coinbase does not pay its script or lacks its tag.
    NotPool,
    /// The pool's, without an anchor.
    NoAnchor { in_ledger: bool },
    /// The pool's, anchoring a record before the audited ledger's first.
    BeforeLedger { in_ledger: bool },
    /// The pool's; `problem` is why the ledger does not extend its anchor (`None`: it does).
    Anchored {
        anchor: LedgerAnchor,
        in_ledger: bool,
        problem: Option<String>,
    },
}

/// Judges one raw block (`block_id` is its id as the node names it).
pub fn judge_block(
    raw: &[u8],
    block_id: &BlockId,
    pool: &PoolIdentity,
    facts: &AnchorFacts,
) -> Result<BlockVerdict, String> {
    let coinbase = RawBlock::parse(raw)?
        .next_tx()?
        .ok_or("the block has no transaction")?;
    let pays_pool = coinbase
        .output
        .iter()
        .any(|o| o.script_pubkey.as_bytes() == pool.payout_script.as_slice());
    let tagged = coinbase.input.first().is_some_and(|input| {
        let sig = input.script_sig.as_bytes();
        pool.tag.is_empty()
            || sig
                .windows(pool.tag.len())
                .any(|w| w == pool.tag.as_slice())
    });
    if !(pays_pool && tagged) {
        return Ok(BlockVerdict::NotPool);
    }
    let in_ledger = facts.blocks.contains(block_id);
    let anchors: Vec<LedgerAnchor> = coinbase
        .output
        .iter()
        .filter_map(|o| parse_anchor_script(o.script_pubkey.as_bytes()))
        .collect();
    let Some(anchor) = anchors.first().copied() else {
        return Ok(BlockVerdict::NoAnchor { in_ledger });
    };
    let problem = match facts.hash_at(anchor.seq) {
        _ if anchors.len() > 1 => Some(format!("the coinbase has {} anchors", anchors.len())),
        HashAt::Is(h) if h == anchor.hash => None,
        HashAt::Before(_) => return Ok(BlockVerdict::BeforeLedger { in_ledger }),
        other => Some(other.describe()),
    };
    Ok(BlockVerdict::Anchored {
        anchor,
        in_ledger,
        problem,
    })
}

/// Blocks fetched ahead of the one being judged.
const SCAN_WINDOW: usize = 4;

/// The block at `height` on the node's best chain: its id and raw bytes.
async fn fetch(node: &NodeClient, height: u64) -> anyhow::Result<(BlockId, Vec<u8>)> {
    let hash = node
        .get_block_hash(height)
        .await
        .with_context(|| format!("getblockhash {height}"))?;
    let block_id = BlockId::from_display_hex(&hash)
        .with_context(|| format!("getblockhash {height}: {hash:?} is no block id"))?;
    Ok((block_id, raw_block(node, &hash).await?))
}

fn block_finding(block: &BlockId, message: String) -> Finding {
    Finding {
        check: "anchor",
        seq: None,
        block: Some(block.to_display_hex()),
        message,
    }
}

/// Runs the scan.
pub async fn check(
    node: &NodeClient,
    pool: &PoolIdentity,
    facts: &AnchorFacts,
) -> anyhow::Result<AnchorReport> {
    let mut report = AnchorReport::default();
    let Some(from) = facts.first_height else {
        // Nothing in the ledger was mined: no block to look for.
        report.findings = facts.job_findings.clone();
        return Ok(report);
    };
    let tip = node.get_block_count().await.context("getblockcount")?;
    report.from_height = from;
    report.to_height = tip;
    // A few blocks in flight at once (the node answers RPCs on several threads), judged in
    // height order.
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = from;
    loop {
        while next <= tip && in_flight.len() < SCAN_WINDOW {
            let node = node.clone();
            let height = next;
            in_flight.push_back((
                height,
                tokio::spawn(async move { fetch(&node, height).await }),
            ));
            next += 1;
        }
        let Some((height, task)) = in_flight.pop_front() else {
            break;
        };
        let (block_id, raw) = task.await.context("block fetch task")??;
        let verdict = match judge_block(&raw, &block_id, pool, facts) {
            Ok(v) => v,
            Err(e) => {
                report.findings.push(block_finding(
                    &block_id,
                    format!("height {height}: cannot read the block: {e}"),
                ));
                continue;
            }
        };
        let in_ledger = match verdict {
            BlockVerdict::NotPool => continue,
            BlockVerdict::NoAnchor { in_ledger } => {
                report.without_anchor += 1;
                in_ledger
            }
            BlockVerdict::BeforeLedger { in_ledger } => {
                report.anchors_before_ledger += 1;
                in_ledger
            }
            BlockVerdict::Anchored {
                anchor,
                in_ledger,
                problem,
            } => {
                match problem {
                    None => report.anchors_matched += 1,
                    Some(problem) => report.findings.push(block_finding(
                        &block_id,
                        format!(
                            "height {height}: its anchor (record {} hash {}) is not in this ledger: {problem}",
                            anchor.seq,
                            hex::encode(anchor.hash)
                        ),
                    )),
                }
                in_ledger
            }
        };
        report.pool_blocks += 1;
        if !in_ledger {
            report.findings.push(block_finding(
                &block_id,
                format!(
                    "height {height}: a pool block (pays the pool, carries its tag) the ledger has no BlockCandidate or BlockFound for"
                ),
            ));
        }
    }
    // The chain's evidence first (the verdict names the first block), then the ledger's own.
    report.findings.extend(facts.job_findings.iter().cloned());
    Ok(report)
}

#[cfg(test)]
mod tests;

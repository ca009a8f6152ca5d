//! The work check: every share's header rebuilt from its job and checked (docs/ledger.md,
//! "Rebuilding a share's header").
//!
//! Fed every record in order ([`WorkCheck::apply`]), it keeps the jobs by id (a share belongs
//! to the latest `JobCreated` with its `job_id` before it) and, for each `ShareWithWork`:
//! rebuilds the coinbase (`coinbase1 | extranonce1 | extranonce2 | coinbase2`), the merkle
//! root, the header; hashes it with the chain's proof of work; checks the hash meets the
//! share's recorded `share_target` (and that its `weight` is that target's work), and that no
//! earlier share had the same header. For each `JobCreated`: its coinbase parses as a
//! transaction whose outputs pay the pool's script, and its anchor output (if any) equals its
//! recorded `anchor`. `ShareAccepted` records (written before the work fields existed) are
//! counted, not checked.
//!
//! Memory: every job (the latest of each id, since a share may name any earlier job: its
//! coinbase halves and branch, a few hundred bytes, so about 0.3 GB for the million jobs of a
//! year at one job every 30 s), the HeavyHash matrices of the last few previous blocks
//! ([`MatrixCache`]), and the duplicate check's set of header keys: 16 bytes a share (the
//! first 16 bytes of the header's SHA-256d; two different headers share them with probability
//! 2^-128) in a hash set whose buckets cost 17 bytes (key and control byte) at a load of
//! 7/16..7/8: 19.5 to 39 bytes a share (measured: 22.3 at 100 000 shares, 35.7 at 1 million,
//! 23.8 at 3 million), 2 to 4 GB for 100 million shares, briefly 1.5 times that while the set
//! grows.

use super::{Finding, PoolIdentity};
use bitcoin::Transaction;
use pool_core::anchor::parse_anchor_script;
use pool_core::event::{JobCreated, LedgerAnchor, ShareWithWork};
use pool_core::merkle::{root_from_branch, sha256d};
use pool_core::pow::{MatrixCache, PowAlgorithm, PowHasher};
use pool_core::share::{build_header, coinbase_txid};
use pool_core::{BlockId, Event};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// At most this many findings are kept (a wrong chain or pool identity fails every record);
/// the rest are counted in [`WorkReport::findings_omitted`].
pub const MAX_FINDINGS: usize = 1_000;

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
    /// Findings past [`MAX_FINDINGS`], counted only.
    pub findings_omitted: u64,
}

/// A job as the shares need it: its record and what checking it once established.
struct JobEntry {
    seq: u64,
    job: JobCreated,
    /// `extranonce1.len() + extranonce2.len()` the coinbase's scriptSig length leaves room for
    /// (`None` when the coinbase did not parse: already a finding at the job).
    extranonce_len: Option<usize>,
}

/// The running check.
pub struct WorkCheck {
    pool_script: Vec<u8>,
    pow: PowAlgorithm,
    matrices: MatrixCache,
    jobs: HashMap<u64, JobEntry>,
    prev_seen: HashSet<BlockId>,
    /// First 16 bytes of each checked header's SHA-256d.
    headers: HashSet<u128, BuildHasherDefault<KeyHasher>>,
    report: WorkReport,
}

impl WorkCheck {
    pub fn new(pool: &PoolIdentity) -> WorkCheck {
        WorkCheck {
            pool_script: pool.payout_script.clone(),
            pow: pool.chain.pow,
            matrices: MatrixCache::default(),
            jobs: HashMap::new(),
            prev_seen: HashSet::new(),
            headers: HashSet::default(),
            report: WorkReport::default(),
        }
    }

    /// Checks one record (call in sequence order).
    pub fn apply(&mut self, seq: u64, event: &Event) {
        match event {
            Event::JobCreated(job) => self.on_job(seq, job),
            Event::ShareWithWork(share) => self.on_share(seq, share),
            Event::ShareAccepted(_) => self.report.shares_without_work += 1,
            _ => {}
        }
    }

    pub fn finish(self) -> WorkReport {
        self.report
    }

    fn finding(&mut self, seq: u64, message: String) {
        if self.report.findings.len() < MAX_FINDINGS {
            self.report.findings.push(Finding::at("work", seq, message));
        } else {
            self.report.findings_omitted += 1;
        }
    }

    fn on_job(&mut self, seq: u64, job: &JobCreated) {
        self.report.jobs += 1;
        if self.prev_seen.insert(job.prev_hash) {
            self.report.prev_hashes.push((job.prev_hash, seq));
        }
        let extranonce_len = match coinbase_skeleton(job) {
            Ok((tx, extranonce_len)) => {
                for problem in coinbase_problems(&tx, &self.pool_script, job.anchor) {
                    self.finding(seq, format!("job {}: {problem}", job.job_id));
                }
                Some(extranonce_len)
            }
            Err(problem) => {
                self.finding(
                    seq,
                    format!(
                        "job {}: the coinbase is not a transaction: {problem}",
                        job.job_id
                    ),
                );
                None
            }
        };
        self.jobs.insert(
            job.job_id,
            JobEntry {
                seq,
                job: job.clone(),
                extranonce_len,
            },
        );
    }

    fn on_share(&mut self, seq: u64, s: &ShareWithWork) {
        self.report.shares_checked += 1;
        let (share, work) = (&s.share, &s.work);
        let Some(entry) = self.jobs.get(&share.job_id) else {
            self.finding(
                seq,
                format!(
                    "share on job {}, which no JobCreated before it records",
                    share.job_id
                ),
            );
            return;
        };
        let job = &entry.job;
        let job_seq = entry.seq;
        let mut problems = Vec::new();
        let given = work.extranonce1.len() + work.extranonce2.len();
        if entry.extranonce_len.is_some_and(|room| room != given) {
            problems.push(format!(
                "extranonces of {given} bytes where job {} (record {job_seq}) has room for {}",
                job.job_id,
                entry.extranonce_len.unwrap_or_default()
            ));
        }
        if share.height != job.height {
            problems.push(format!(
                "height {} but its job (record {job_seq}) builds height {}",
                share.height, job.height
            ));
        }
        let txid = coinbase_txid(
            &job.coinbase1,
            &work.extranonce1,
            &work.extranonce2,
            &job.coinbase2,
        );
        let root = root_from_branch(&txid, &job.merkle_branch);
        let header = build_header(
            work.version,
            &job.prev_hash.0,
            &root,
            work.ntime,
            job.bits,
            work.nonce,
        );
        // Shares come job after job on the same few previous blocks: the cache nearly always
        // has the matrix (HeavyHash); SHA-256d needs none.
        let pow_hash = PowHasher::new(self.pow, &job.prev_hash.0, &self.matrices).hash(&header);
        if !share.share_target.is_met_by(&pow_hash) {
            problems.push(format!(
                "header {} (job record {job_seq}) hashes to {} above its share target {}",
                hex::encode(header),
                display_hex(&pow_hash),
                share.share_target
            ));
        }
        if share.weight != share.share_target.work() {
            problems.push(format!(
                "weight {} is not the work {} of its share target",
                share.weight,
                share.share_target.work()
            ));
        }
        let id = if self.pow == PowAlgorithm::Sha256d {
            pow_hash
        } else {
            sha256d(&header)
        };
        let mut key = [0u8; 16];
        key.copy_from_slice(&id[..16]);
        if !self.headers.insert(u128::from_le_bytes(key)) {
            problems.push(format!(
                "the same header as an earlier share (block id {}): counted twice",
                display_hex(&id)
            ));
        }
        for problem in problems {
            self.finding(seq, format!("share on job {}: {problem}", share.job_id));
        }
    }
}

fn display_hex(hash: &[u8; 32]) -> String {
    BlockId(*hash).to_display_hex()
}

/// The job's coinbase with zeros for the extranonces, parsed, and how many extranonce bytes
/// its scriptSig length leaves room for. `coinbase1` must be `version:4 | 01 (one input) |
/// null outpoint:36 | scriptSig length | the scriptSig's first bytes`.
pub fn coinbase_skeleton(job: &JobCreated) -> Result<(Transaction, usize), String> {
    let c1 = &job.coinbase1;
    const PREFIX: usize = 4 + 1 + 36;
    if c1.len() < PREFIX + 1 {
        return Err(format!("coinbase1 is {} bytes, too short", c1.len()));
    }
    if c1[4] != 1 {
        return Err(format!("coinbase1 has input count {} (not 1)", c1[4]));
    }
    let (script_len, varint_len) =
        read_compact_size(&c1[PREFIX..]).ok_or("coinbase1 ends inside the scriptSig length")?;
    let present = (c1.len() - PREFIX - varint_len) as u64;
    let Some(missing) = script_len.checked_sub(present) else {
        return Err(format!(
            "coinbase1 holds {present} scriptSig bytes, more than its length {script_len}"
        ));
    };
    if missing > 100 {
        return Err(format!(
            "{missing} extranonce bytes: over the scriptSig limit"
        ));
    }
    let missing = missing as usize;
    let mut bytes = Vec::with_capacity(c1.len() + missing + job.coinbase2.len());
    bytes.extend_from_slice(c1);
    bytes.resize(c1.len() + missing, 0);
    bytes.extend_from_slice(&job.coinbase2);
    let tx: Transaction = bitcoin::consensus::deserialize(&bytes).map_err(|e| e.to_string())?;
    if !tx.is_coinbase() {
        return Err("its input is not the null outpoint".into());
    }
    Ok((tx, missing))
}

/// What is wrong with a coinbase built by the pool: no output pays the pool's script, or its
/// anchor outputs differ from the job's recorded anchor.
pub fn coinbase_problems(
    tx: &Transaction,
    pool_script: &[u8],
    anchor: Option<LedgerAnchor>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let paid: u64 = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey.as_bytes() == pool_script)
        .map(|o| o.value.to_sat())
        .sum();
    if paid == 0 {
        problems.push(format!(
            "the coinbase pays nothing to the pool's script {}",
            hex::encode(pool_script)
        ));
    }
    let anchors: Vec<LedgerAnchor> = tx
        .output
        .iter()
        .filter_map(|o| parse_anchor_script(o.script_pubkey.as_bytes()))
        .collect();
    match (anchor, anchors.as_slice()) {
        (None, []) => {}
        (Some(want), [got]) if *got == want => {}
        (want, got) => problems.push(format!(
            "the coinbase's anchor outputs {} differ from the recorded anchor {}",
            describe_anchors(got),
            describe_anchors(want.as_slice())
        )),
    }
    problems
}

fn describe_anchors(anchors: &[LedgerAnchor]) -> String {
    if anchors.is_empty() {
        return "(none)".into();
    }
    let parts: Vec<String> = anchors
        .iter()
        .map(|a| format!("seq {} hash {}", a.seq, hex::encode(a.hash)))
        .collect();
    parts.join(", ")
}

/// Bitcoin's CompactSize at the start of `b`: the value and its length in bytes.
pub(crate) fn read_compact_size(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let width = match first {
        0xfd => 2,
        0xfe => 4,
        0xff => 8,
        n => return Some((u64::from(n), 1)),
    };
    let bytes = b.get(1..1 + width)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(bytes);
    Some((u64::from_le_bytes(v), 1 + width))
}

/// The header keys are already uniform hash bytes: their low 64 bits are a fine hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

#[cfg(test)]
pub(crate) mod tests;

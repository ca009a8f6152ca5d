//! Jobs: block templates turned into mining.notify work (coinbase split, merkle branch).
//!
//! A [`BlockTemplate`] is `getblocktemplate`'s JSON. [`JobBook::add_template`] turns it into a
//! [`Job`]: the coinbase split around the extranonces (`coinb1 || extranonce1 || extranonce2 ||
//! coinb2`, non-witness serialization), the merkle branch for the coinbase, the notify fields in
//! the byte orders miners expect, the block threshold, the proof-of-work handle for the block's
//! previous hash, and what is needed to assemble the full block for `submitblock`.
//!
//! Coinbase layout (what the shared Stratum vectors were mined with):
//! `version 1 | 1 input: null outpoint, scriptSig = BIP34 height push || pool tag || extranonce1 ||
//! extranonce2, sequence ffffffff | outputs: payout, extra outputs, ledger anchor, witness
//! commitment (segwit) | locktime 0`. The ledger anchor (value 0, [`pool_core::anchor`]) commits
//! to the ledger head when the job was built; it is left out while the ledger is empty. The scriptSig is never executed, so the tag is raw bytes; it must stay within
//! the consensus limit of 100 bytes.
//!
//! Litecoin's MWEB (MimbleWimble extension block), on chains with [`ChainParams::mweb`]: the
//! template's last transaction is the HogEx (its serialization carries the MWEB flag 0x08 after
//! the segwit marker) and its `mweb` field is the extension block. Litecoin Core serializes a
//! block whose last transaction is a HogEx as `header | transactions | OptionalPtr(mweb block)`,
//! the pointer being a byte 0x01 and the block's bytes: so the pool appends `0x01 || mweb` after
//! the transactions. The merkle root is over the txids, the HogEx's included; the witness
//! commitment over the wtxids as usual. A chain without MWEB refuses a template with `mweb`: a
//! block without its extension block is invalid, so no miner gets work for it.

use crate::message::{notify_line, NotifyParams};
use pool_core::anchor::anchor_script;
use pool_core::chain::ChainParams;
use pool_core::event::{JobCreated, LedgerAnchor};
use pool_core::merkle::{coinbase_branch, witness_commitment_script};
use pool_core::pow::{MatrixCache, PowHasher};
use pool_core::{Sats, Target};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use thiserror::Error;

/// Consensus limit on the coinbase scriptSig length.
pub const MAX_COINBASE_SCRIPT_SIG: usize = 100;
/// Largest extranonce2 size accepted in configuration.
pub const MAX_EXTRANONCE2_SIZE: usize = 16;
/// How many jobs a [`JobBook`] keeps by default.
pub const DEFAULT_JOB_BOOK_CAPACITY: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JobError {
    #[error("block template is not valid getblocktemplate JSON: {0}")]
    Json(String),
    #[error("block template field {field} is malformed: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("block template carries an MWEB extension block (`mweb`), but chain {0} has no MWEB: its blocks would be invalid, so no work is given for it (is the node on another chain than the pool's preset?)")]
    MwebOnChainWithoutMweb(&'static str),
    #[error("block template carries an MWEB extension block (`mweb`), but its last transaction is not the HogEx (MWEB flag 0x08): the block could not hold it")]
    MwebWithoutHogEx,
    #[error("block template's last transaction is a HogEx (MWEB flag 0x08) but the template has no `mweb` extension block to end the block with")]
    HogExWithoutMweb,
    #[error("block template requires rule {0:?}, which this pool does not implement")]
    UnsupportedRule(String),
    #[error("template's default_witness_commitment {given} does not match the one computed from its transactions' wtxids ({computed})")]
    WitnessCommitmentMismatch { given: String, computed: String },
    #[error("coinbase outputs ({outputs} sat) exceed the coinbase value ({value} sat)")]
    OutputsExceedValue { outputs: u64, value: u64 },
    #[error("coinbase scriptSig would be {len} bytes, over the {MAX_COINBASE_SCRIPT_SIG}-byte limit: shorten the pool tag")]
    ScriptSigTooLong { len: usize },
    #[error("extranonce sizes must be 1..={MAX_EXTRANONCE2_SIZE} bytes (extranonce2) and 1..=8 (extranonce1)")]
    BadExtranonceSize,
    #[error("a pool block target is only allowed on regtest chains, not on {0}")]
    BlockTargetNotAllowed(&'static str),
}

/// `getblocktemplate`'s result. Unknown fields are ignored, except those that would change what a
/// valid block is ([`BlockTemplate::from_value`] refuses them).
#[derive(Clone, Debug, Deserialize)]
pub struct BlockTemplate {
    pub version: u32,
    /// Display (reversed) hex.
    pub previousblockhash: String,
    #[serde(default)]
    pub transactions: Vec<TemplateTransaction>,
    pub coinbasevalue: u64,
    /// Compact target, hex (`"207fffff"`).
    pub bits: String,
    #[serde(default)]
    pub target: Option<String>,
    pub curtime: u32,
    #[serde(default)]
    pub mintime: Option<u32>,
    pub height: u64,
    #[serde(default)]
    pub default_witness_commitment: Option<String>,
    #[serde(default)]
    pub longpollid: Option<String>,
    #[serde(default)]
    pub rules: Vec<String>,
    /// Litecoin's MWEB extension block, hex: the block ends with `0x01 || mweb` (see the module
    /// documentation). Only chains with [`ChainParams::mweb`] build jobs from such templates.
    #[serde(default)]
    pub mweb: Option<String>,
}

/// A template transaction.
#[derive(Clone, Debug, Deserialize)]
pub struct TemplateTransaction {
    /// Raw transaction hex (with witness when it has one).
    pub data: String,
    /// Display hex.
    pub txid: String,
    /// The wtxid, display hex (segwit nodes).
    #[serde(default)]
    pub hash: Option<String>,
}

/// Rules this pool understands (`!` marks rules a template requires). `mweb` only on chains with
/// MWEB: [`Job::build`] refuses a template carrying an extension block on the others.
const KNOWN_RULES: [&str; 5] = ["segwit", "csv", "taproot", "signet", "mweb"];

impl BlockTemplate {
    /// Parses and checks a `getblocktemplate` result: refuses fields and required rules this
    /// pool cannot build valid blocks for.
    pub fn from_value(value: Value) -> Result<BlockTemplate, JobError> {
        let template: BlockTemplate =
            serde_json::from_value(value).map_err(|e| JobError::Json(e.to_string()))?;
        template.check_supported()?;
        Ok(template)
    }

    pub fn from_json(s: &str) -> Result<BlockTemplate, JobError> {
        let value: Value = serde_json::from_str(s).map_err(|e| JobError::Json(e.to_string()))?;
        BlockTemplate::from_value(value)
    }

    fn check_supported(&self) -> Result<(), JobError> {
        for rule in &self.rules {
            if let Some(required) = rule.strip_prefix('!') {
                if !KNOWN_RULES.contains(&required) {
                    return Err(JobError::UnsupportedRule(rule.clone()));
                }
            }
        }
        Ok(())
    }
}

/// What an extra coinbase output (fee, donation) receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputValue {
    Fixed(Sats),
    /// Basis points (1/100 %) of the coinbase value, rounded down.
    BasisPoints(u16),
}

/// An extra coinbase output beside the pool's payout output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraOutput {
    pub value: OutputValue,
    pub script_pubkey: Vec<u8>,
}

/// The pool-wide settings a job is built with.
#[derive(Clone, Debug)]
pub struct JobConfig {
    pub chain: &'static ChainParams,
    /// Raw bytes placed in the coinbase scriptSig after the height (e.g. `b"/obtc-pool/"`).
    pub pool_tag: Vec<u8>,
    /// The pool's payout output script (from the configured address).
    pub payout_script: Vec<u8>,
    pub extra_outputs: Vec<ExtraOutput>,
    /// Per-connection extranonce1 size (default 4).
    pub extranonce1_size: usize,
    /// Miner-rolled extranonce2 size (default 4).
    pub extranonce2_size: usize,
    /// Regtest only: a harder target than the network's for calling a share a block.
    pub pool_block_target: Option<Target>,
}

impl JobConfig {
    /// A config with 4-byte extranonces, no extra outputs and no pool block target.
    pub fn new(chain: &'static ChainParams, pool_tag: &[u8], payout_script: Vec<u8>) -> JobConfig {
        JobConfig {
            chain,
            pool_tag: pool_tag.to_vec(),
            payout_script,
            extra_outputs: Vec::new(),
            extranonce1_size: 4,
            extranonce2_size: 4,
            pool_block_target: None,
        }
    }

    /// Checks the settings that do not depend on a template.
    pub fn validate(&self) -> Result<(), JobError> {
        if !(1..=8).contains(&self.extranonce1_size)
            || !(1..=MAX_EXTRANONCE2_SIZE).contains(&self.extranonce2_size)
        {
            return Err(JobError::BadExtranonceSize);
        }
        // Worst case height push: 1 length byte + 8 bytes.
        let len = 9 + self.pool_tag.len() + self.extranonce1_size + self.extranonce2_size;
        if len > MAX_COINBASE_SCRIPT_SIG {
            return Err(JobError::ScriptSigTooLong { len });
        }
        if self.pool_block_target.is_some() && !self.chain.allows_harder_block_threshold {
            return Err(JobError::BlockTargetNotAllowed(self.chain.name));
        }
        Ok(())
    }
}

/// One unit of work sent to miners.
#[derive(Clone, Debug)]
pub struct Job {
    /// Job id; on the wire as lower-case hex (`"1f"`).
    pub id: u64,
    pub height: u64,
    /// Block version before any BIP310 rolling.
    pub version: u32,
    /// Previous block hash, header (internal) byte order.
    pub prev_hash: [u8; 32],
    pub nbits: u32,
    /// The template's `curtime`: the job's ntime.
    pub ntime: u32,
    /// Earliest ntime a share may carry (the template's `mintime`, else `ntime`).
    pub min_ntime: u32,
    pub network_target: Target,
    /// The block threshold: the network target, or the harder pool block target (regtest).
    pub block_target: Target,
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub extranonce1_size: usize,
    pub extranonce2_size: usize,
    /// Branch hashes, header byte order.
    pub merkle_branch: Vec<[u8; 32]>,
    /// The coinbase needs the witness reserved value in the block (template had a commitment).
    pub segwit: bool,
    pub coinbase_value: Sats,
    /// What the pool's payout output receives: the block's reward to the pool.
    pub pool_reward: Sats,
    /// The template's transactions, raw and concatenated, in block order.
    transactions: Vec<u8>,
    transaction_count: usize,
    /// What follows the transactions: empty, or on MWEB blocks `0x01 || mweb` (the extension
    /// block as Litecoin's `OptionalPtr` writes it).
    extension: Vec<u8>,
    /// Proof-of-work handle for this job's previous hash.
    pub pow: PowHasher,
    /// The chain's block id hash.
    pub block_id_algorithm: pool_core::pow::PowAlgorithm,
    pub clean_jobs: bool,
    pub notify: NotifyParams,
    notify_line: String,
    pub longpollid: Option<String>,
    /// The ledger head the coinbase's anchor output commits to (`None`: no anchor output).
    pub anchor: Option<LedgerAnchor>,
}

impl Job {
    /// Builds a job. `clean_jobs` says whether miners must drop earlier jobs (new previous block).
    /// `anchor` is the ledger head to commit to in the coinbase (`None` while the ledger is
    /// empty: no anchor output).
    pub fn build(
        template: &BlockTemplate,
        config: &JobConfig,
        id: u64,
        clean_jobs: bool,
        anchor: Option<LedgerAnchor>,
        matrices: &MatrixCache,
    ) -> Result<Job, JobError> {
        config.validate()?;
        template.check_supported()?;
        let prev_hash = display_hash("previousblockhash", &template.previousblockhash)?;
        let nbits = u32::from_str_radix(&template.bits, 16).map_err(|e| JobError::BadField {
            field: "bits",
            reason: e.to_string(),
        })?;
        let network_target = Target::from_compact(nbits).map_err(|e| JobError::BadField {
            field: "bits",
            reason: e.to_string(),
        })?;
        let block_target = match config.pool_block_target {
            Some(t) => t.harder(network_target),
            None => network_target,
        };

        let mut txids = Vec::with_capacity(template.transactions.len());
        let mut wtxids = Vec::with_capacity(template.transactions.len());
        let mut transactions = Vec::new();
        let mut last_start = 0;
        for tx in &template.transactions {
            let txid = display_hash("transactions[].txid", &tx.txid)?;
            txids.push(txid);
            wtxids.push(match &tx.hash {
                Some(h) => display_hash("transactions[].hash", h)?,
                None => txid,
            });
            let start = transactions.len();
            last_start = start;
            transactions.resize(start + tx.data.len() / 2, 0);
            hex::decode_to_slice(&tx.data, &mut transactions[start..]).map_err(|e| {
                JobError::BadField {
                    field: "transactions[].data",
                    reason: e.to_string(),
                }
            })?;
        }

        let last_is_hogex =
            !template.transactions.is_empty() && is_hogex(&transactions[last_start..]);
        let extension = mweb_extension(template, last_is_hogex, config.chain)?;

        let commitment = match &template.default_witness_commitment {
            Some(given) => {
                let script = hex::decode(given).map_err(|e| JobError::BadField {
                    field: "default_witness_commitment",
                    reason: e.to_string(),
                })?;
                let computed = witness_commitment_script(&wtxids);
                if script != computed {
                    return Err(JobError::WitnessCommitmentMismatch {
                        given: given.clone(),
                        computed: hex::encode(computed),
                    });
                }
                Some(script)
            }
            None => None,
        };

        let (coinb1, coinb2, pool_reward) = build_coinbase(
            template.height,
            template.coinbasevalue,
            config,
            anchor.as_ref(),
            commitment.as_deref(),
        )?;
        let merkle_branch = coinbase_branch(&txids);
        let pow = PowHasher::new(config.chain.pow, &prev_hash, matrices);
        let notify = NotifyParams {
            job_id: format!("{id:x}"),
            prev_hash: stratum_prev_hash(&prev_hash),
            coinb1: hex::encode(&coinb1),
            coinb2: hex::encode(&coinb2),
            merkle_branch: merkle_branch.iter().map(hex::encode).collect(),
            version: format!("{:08x}", template.version),
            nbits: format!("{nbits:08x}"),
            ntime: format!("{:08x}", template.curtime),
            clean_jobs,
        };
        let notify_line = notify_line(&notify);
        Ok(Job {
            id,
            height: template.height,
            version: template.version,
            prev_hash,
            nbits,
            ntime: template.curtime,
            min_ntime: template.mintime.unwrap_or(template.curtime),
            network_target,
            block_target,
            coinb1,
            coinb2,
            extranonce1_size: config.extranonce1_size,
            extranonce2_size: config.extranonce2_size,
            merkle_branch,
            segwit: commitment.is_some(),
            coinbase_value: Sats(template.coinbasevalue),
            pool_reward,
            transactions,
            transaction_count: template.transactions.len(),
            extension,
            pow,
            block_id_algorithm: config.chain.block_id,
            clean_jobs,
            notify,
            notify_line,
            longpollid: template.longpollid.clone(),
            anchor,
        })
    }

    /// The ledger's record of this job (`Event::JobCreated`): what an auditor needs to rebuild
    /// the header of every share on it.
    pub fn job_created(&self) -> JobCreated {
        JobCreated {
            job_id: self.id,
            height: self.height,
            prev_hash: pool_core::BlockId(self.prev_hash),
            coinbase1: self.coinb1.clone(),
            coinbase2: self.coinb2.clone(),
            merkle_branch: self.merkle_branch.clone(),
            version: self.version,
            bits: self.nbits,
            ntime: self.ntime,
            anchor: self.anchor,
        }
    }

    /// The `mining.notify` line for this job (ends with `\n`).
    pub fn notify_line(&self) -> &str {
        &self.notify_line
    }

    /// The full block in its consensus serialization (`submitblock` takes it as hex): header,
    /// transaction count, the coinbase (witness serialization with the 32-byte zero reserved
    /// value when segwit), the template's transactions, then on MWEB blocks `0x01 || mweb`.
    pub fn block_bytes(
        &self,
        header: &[u8; 80],
        extranonce1: &[u8],
        extranonce2: &[u8],
    ) -> Vec<u8> {
        let mut block = Vec::with_capacity(
            80 + 9
                + self.coinb1.len()
                + extranonce1.len()
                + extranonce2.len()
                + self.coinb2.len()
                + 40
                + self.transactions.len()
                + self.extension.len(),
        );
        block.extend_from_slice(header);
        write_varint(&mut block, self.transaction_count as u64 + 1);
        // coinb1 starts with the 4-byte tx version; coinb2 ends with the 4-byte locktime.
        let (version, inputs) = self.coinb1.split_at(4.min(self.coinb1.len()));
        let split = self.coinb2.len().saturating_sub(4);
        let (outputs, locktime) = self.coinb2.split_at(split);
        block.extend_from_slice(version);
        if self.segwit {
            block.extend_from_slice(&[0x00, 0x01]); // segwit marker and flag
        }
        block.extend_from_slice(inputs);
        block.extend_from_slice(extranonce1);
        block.extend_from_slice(extranonce2);
        block.extend_from_slice(outputs);
        if self.segwit {
            // One witness stack item for the single input: the 32-byte reserved value, zero.
            block.extend_from_slice(&[0x01, 0x20]);
            block.extend_from_slice(&[0u8; 32]);
        }
        block.extend_from_slice(locktime);
        block.extend_from_slice(&self.transactions);
        block.extend_from_slice(&self.extension);
        block
    }

    /// Number of transactions in the block, coinbase included.
    pub fn transaction_count(&self) -> usize {
        self.transaction_count + 1
    }

    /// The block carries an MWEB extension block.
    pub fn has_mweb(&self) -> bool {
        !self.extension.is_empty()
    }
}

/// The MWEB flag in a transaction's serialization (after the `0x00` segwit marker).
const MWEB_FLAG: u8 = 0x08;

/// A raw transaction is a HogEx: `version:4 | 0x00 | flags with 0x08` (the template's other
/// transactions come without MWEB data; only the HogEx has the flag, with a null MWEB part).
fn is_hogex(raw_tx: &[u8]) -> bool {
    raw_tx.len() > 6 && raw_tx[4] == 0x00 && raw_tx[5] & MWEB_FLAG != 0
}

/// What the block must end with after its transactions: nothing, or `0x01 || mweb`. Refuses an
/// `mweb` on a chain without MWEB, and a template whose HogEx and `mweb` do not come together.
fn mweb_extension(
    template: &BlockTemplate,
    last_is_hogex: bool,
    chain: &ChainParams,
) -> Result<Vec<u8>, JobError> {
    match &template.mweb {
        None if last_is_hogex => Err(JobError::HogExWithoutMweb),
        None => Ok(Vec::new()),
        Some(_) if !chain.mweb => Err(JobError::MwebOnChainWithoutMweb(chain.name)),
        Some(_) if !last_is_hogex => Err(JobError::MwebWithoutHogEx),
        Some(mweb) => {
            let mut extension = vec![0u8; 1 + mweb.len() / 2];
            extension[0] = 0x01; // OptionalPtr: present
            hex::decode_to_slice(mweb, &mut extension[1..]).map_err(|e| JobError::BadField {
                field: "mweb",
                reason: e.to_string(),
            })?;
            Ok(extension)
        }
    }
}

/// Builds `coinb1` and `coinb2` and returns them with the pool's payout value.
fn build_coinbase(
    height: u64,
    coinbase_value: u64,
    config: &JobConfig,
    anchor: Option<&LedgerAnchor>,
    commitment: Option<&[u8]>,
) -> Result<(Vec<u8>, Vec<u8>, Sats), JobError> {
    let height_push = bip34_height(height);
    let script_sig_len = height_push.len()
        + config.pool_tag.len()
        + config.extranonce1_size
        + config.extranonce2_size;
    if script_sig_len > MAX_COINBASE_SCRIPT_SIG {
        return Err(JobError::ScriptSigTooLong {
            len: script_sig_len,
        });
    }

    let mut coinb1 = Vec::with_capacity(64 + config.pool_tag.len());
    coinb1.extend_from_slice(&1u32.to_le_bytes()); // tx version
    coinb1.push(1); // one input
    coinb1.extend_from_slice(&[0u8; 32]); // null outpoint txid
    coinb1.extend_from_slice(&0xffff_ffffu32.to_le_bytes()); // null outpoint index
    write_varint(&mut coinb1, script_sig_len as u64);
    coinb1.extend_from_slice(&height_push);
    coinb1.extend_from_slice(&config.pool_tag);

    let mut extras = Vec::with_capacity(config.extra_outputs.len());
    let mut extra_total: u64 = 0;
    for out in &config.extra_outputs {
        let value = match out.value {
            OutputValue::Fixed(s) => s.0,
            // u128 so that a large coinbase value times 10,000 cannot overflow.
            OutputValue::BasisPoints(bps) => (coinbase_value as u128 * bps as u128 / 10_000) as u64,
        };
        extra_total = extra_total.saturating_add(value);
        extras.push((value, &out.script_pubkey));
    }
    let Some(pool_value) = coinbase_value.checked_sub(extra_total) else {
        return Err(JobError::OutputsExceedValue {
            outputs: extra_total,
            value: coinbase_value,
        });
    };

    let mut coinb2 = Vec::with_capacity(128);
    coinb2.extend_from_slice(&0xffff_ffffu32.to_le_bytes()); // sequence
    let output_count =
        1 + extras.len() + usize::from(anchor.is_some()) + usize::from(commitment.is_some());
    write_varint(&mut coinb2, output_count as u64);
    write_output(&mut coinb2, pool_value, &config.payout_script);
    for (value, script) in extras {
        write_output(&mut coinb2, value, script);
    }
    if let Some(anchor) = anchor {
        write_output(&mut coinb2, 0, &anchor_script(anchor));
    }
    if let Some(script) = commitment {
        write_output(&mut coinb2, 0, script);
    }
    coinb2.extend_from_slice(&0u32.to_le_bytes()); // locktime
    Ok((coinb1, coinb2, Sats(pool_value)))
}

fn write_output(buf: &mut Vec<u8>, value: u64, script: &[u8]) {
    buf.extend_from_slice(&value.to_le_bytes());
    write_varint(buf, script.len() as u64);
    buf.extend_from_slice(script);
}

/// Bitcoin's CompactSize.
pub fn write_varint(buf: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => buf.push(n as u8),
        0xfd..=0xffff => {
            buf.push(0xfd);
            buf.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            buf.push(0xfe);
            buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            buf.push(0xff);
            buf.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// The BIP34 height as Bitcoin Core's `CScript() << height` writes it: `OP_0`, `OP_1`..`OP_16`,
/// or a push of the minimal little-endian script number (a sign byte added when the top bit is
/// set).
pub fn bip34_height(height: u64) -> Vec<u8> {
    match height {
        0 => vec![0x00],
        1..=16 => vec![0x50 + height as u8],
        _ => {
            let mut num = Vec::with_capacity(9);
            let mut h = height;
            while h > 0 {
                num.push((h & 0xff) as u8);
                h >>= 8;
            }
            if num.last().is_some_and(|b| b & 0x80 != 0) {
                num.push(0);
            }
            let mut push = Vec::with_capacity(num.len() + 1);
            push.push(num.len() as u8);
            push.extend_from_slice(&num);
            push
        }
    }
}

/// Parses display (reversed) hex into internal byte order.
fn display_hash(field: &'static str, s: &str) -> Result<[u8; 32], JobError> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s, &mut b).map_err(|e| JobError::BadField {
        field,
        reason: e.to_string(),
    })?;
    b.reverse();
    Ok(b)
}

/// Stratum's prevhash: the header's previous hash with every 4-byte word byte-swapped, as hex.
pub fn stratum_prev_hash(prev_hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for word in prev_hash.chunks_exact(4) {
        for b in word.iter().rev() {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

/// Why a submitted job id was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobLookupError {
    /// The id was never issued (or is malformed).
    Unknown,
    /// The job was replaced by a newer block's jobs (or aged out of the book).
    Stale,
}

/// The recent jobs, by id. The newest job is the one to mine; after a job with `clean_jobs`
/// (a new previous block), all earlier jobs are stale. Cheap to clone (jobs are `Arc`s), so a
/// server can publish snapshots to its connections.
#[derive(Clone, Debug)]
pub struct JobBook {
    /// Oldest first.
    jobs: VecDeque<Arc<Job>>,
    capacity: usize,
    next_id: u64,
}

impl JobBook {
    pub fn new(capacity: usize) -> JobBook {
        JobBook::with_first_id(capacity, 1)
    }

    /// A book whose first job gets id `first` (at least 1): an edge's ids start at
    /// `edge_id << 48 | 1`, so two edges' jobs never share an id in one ledger.
    pub fn with_first_id(capacity: usize, first: u64) -> JobBook {
        JobBook {
            jobs: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: first.max(1),
        }
    }

    /// Builds the next job from `template` and makes it current. `clean_jobs` is set when the
    /// previous block changed; then older jobs become stale. `anchor`: see [`Job::build`].
    pub fn add_template(
        &mut self,
        template: &BlockTemplate,
        config: &JobConfig,
        anchor: Option<LedgerAnchor>,
        matrices: &MatrixCache,
    ) -> Result<Arc<Job>, JobError> {
        let prev_hash = display_hash("previousblockhash", &template.previousblockhash)?;
        let clean = self.current().map_or(true, |j| j.prev_hash != prev_hash);
        let job = Arc::new(Job::build(
            template,
            config,
            self.next_id,
            clean,
            anchor,
            matrices,
        )?);
        self.next_id += 1;
        if clean {
            self.jobs.clear();
        }
        if self.jobs.len() == self.capacity {
            self.jobs.pop_front();
        }
        self.jobs.push_back(Arc::clone(&job));
        Ok(job)
    }

    /// Withdraws every job (shares on them are then stale) but keeps the id counter: a job id
    /// is never issued twice in one run, so a share is never taken for one on a later job with
    /// its id.
    pub fn withdraw_all(&mut self) {
        self.jobs.clear();
    }

    /// The job to mine now.
    pub fn current(&self) -> Option<&Arc<Job>> {
        self.jobs.back()
    }

    /// The job with wire id `id` (lower- or upper-case hex).
    pub fn get(&self, id: &str) -> Result<&Arc<Job>, JobLookupError> {
        if id.is_empty() || id.len() > 16 {
            return Err(JobLookupError::Unknown);
        }
        let n = u64::from_str_radix(id, 16).map_err(|_| JobLookupError::Unknown)?;
        self.get_by_number(n)
    }

    pub fn get_by_number(&self, n: u64) -> Result<&Arc<Job>, JobLookupError> {
        if n >= self.next_id || n == 0 {
            return Err(JobLookupError::Unknown);
        }
        self.jobs
            .iter()
            .rev()
            .find(|j| j.id == n)
            .ok_or(JobLookupError::Stale)
    }

    /// Ids of the jobs still valid, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.jobs.iter().map(|j| j.id)
    }

    /// The oldest job id still valid.
    pub fn oldest_id(&self) -> Option<u64> {
        self.jobs.front().map(|j| j.id)
    }
}

impl Default for JobBook {
    fn default() -> Self {
        JobBook::new(DEFAULT_JOB_BOOK_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::chain::Chain;
    use serde_json::json;

    fn template(prev: &str, txs: Value) -> Value {
        json!({
            "version": 536870912,
            "previousblockhash": prev,
            "transactions": txs,
            "coinbasevalue": 5000000000u64,
            "bits": "207fffff",
            "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
            "curtime": 1795572416,
            "mintime": 1795570000,
            "height": 300,
            "default_witness_commitment": "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9",
            "longpollid": "abc",
            "capabilities": ["proposal"],
            "rules": ["csv", "!segwit", "taproot"],
        })
    }

    fn config() -> JobConfig {
        JobConfig::new(
            Chain::ObtcRegtest.params(),
            b"/pool/",
            hex::decode("0014c50d15bd6587b60d226697addd6933c0549ea43b").unwrap(),
        )
    }

    const PREV: &str = "4959de15b2b4b628887fd3b3d909eb3228f20f0c58080ea61ab84b7c3810cd41";

    #[test]
    fn bip34_heights_match_core_script_numbers() {
        assert_eq!(bip34_height(0), vec![0x00]);
        assert_eq!(bip34_height(1), vec![0x51]);
        assert_eq!(bip34_height(16), vec![0x60]);
        assert_eq!(bip34_height(17), vec![0x01, 0x11]);
        assert_eq!(bip34_height(105), vec![0x01, 0x69]);
        assert_eq!(bip34_height(128), vec![0x02, 0x80, 0x00]);
        assert_eq!(bip34_height(840_000), vec![0x03, 0x40, 0xd1, 0x0c]);
    }

    #[test]
    fn refuses_mweb_on_chains_without_it_and_unknown_required_rules() {
        let mut t = template(PREV, json!([]));
        t["mweb"] = json!("01");
        let t = BlockTemplate::from_value(t).unwrap();
        assert_eq!(
            Job::build(&t, &config(), 1, true, None, &MatrixCache::new(1)).unwrap_err(),
            JobError::MwebOnChainWithoutMweb("obtc-regtest")
        );
        let mut t = template(PREV, json!([]));
        t["rules"] = json!(["!mweb-x"]);
        assert!(matches!(
            BlockTemplate::from_value(t),
            Err(JobError::UnsupportedRule(_))
        ));
    }

    #[test]
    fn coinbase_has_height_tag_payout_and_commitment() {
        let t = BlockTemplate::from_value(template(PREV, json!([]))).unwrap();
        let mut cfg = config();
        cfg.extra_outputs.push(ExtraOutput {
            value: OutputValue::BasisPoints(100),
            script_pubkey: vec![0x51],
        });
        let job = Job::build(&t, &cfg, 7, true, None, &MatrixCache::new(2)).unwrap();
        // scriptSig: length, BIP34 height 300 = push 2 bytes 2c01, tag, then the extranonces.
        assert!(hex::encode(&job.coinb1).ends_with("ffffffff11022c012f706f6f6c2f"));
        let coinb2 = hex::encode(&job.coinb2);
        assert!(coinb2.starts_with("ffffffff03"));
        // Payout: 99% of 50 BTC to the configured script.
        let payout = format!(
            "{}160014c50d15bd6587b60d226697addd6933c0549ea43b",
            hex::encode(4_950_000_000u64.to_le_bytes())
        );
        assert!(coinb2.contains(&payout));
        assert_eq!(job.pool_reward, Sats(4_950_000_000));
        let donation = format!("{}0151", hex::encode(50_000_000u64.to_le_bytes()));
        assert!(coinb2.contains(&donation));
        assert!(coinb2.ends_with(
            "266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf900000000"
        ));
        assert!(job.segwit);
        assert_eq!(job.min_ntime, 1795570000);
        assert_eq!(job.notify.job_id, "7");
    }

    #[test]
    fn the_anchor_output_follows_the_extra_outputs_and_precedes_the_commitment() {
        let t = BlockTemplate::from_value(template(PREV, json!([]))).unwrap();
        let mut cfg = config();
        cfg.extra_outputs.push(ExtraOutput {
            value: OutputValue::Fixed(Sats(1_000)),
            script_pubkey: vec![0x51],
        });
        let anchor = LedgerAnchor {
            seq: 41,
            hash: [0x5a; 32],
        };
        let cache = MatrixCache::new(1);
        let plain = Job::build(&t, &cfg, 3, true, None, &cache).unwrap();
        let job = Job::build(&t, &cfg, 3, true, Some(anchor), &cache).unwrap();
        let coinb2 = hex::encode(&job.coinb2);
        // Four outputs now: payout, the extra one, the anchor (value 0), the commitment.
        assert!(coinb2.starts_with("ffffffff04"));
        let extra = format!("{}0151", hex::encode(1_000u64.to_le_bytes()));
        let zero = hex::encode(0u64.to_le_bytes());
        let anchored = format!(
            "{extra}{zero}2e{}{zero}266a24aa21a9ed",
            hex::encode(anchor_script(&anchor))
        );
        assert!(coinb2.contains(&anchored), "{coinb2}");
        // Nothing else changes: same coinb1, same reward, the output 8 + 1 + 46 bytes longer.
        assert_eq!(job.coinb1, plain.coinb1);
        assert_eq!(job.pool_reward, plain.pool_reward);
        assert_eq!(job.coinb2.len(), plain.coinb2.len() + 55);
        assert!(hex::encode(&plain.coinb2).starts_with("ffffffff03"));

        let created = job.job_created();
        assert_eq!(created.job_id, 3);
        assert_eq!(created.height, 300);
        assert_eq!(created.prev_hash.to_display_hex(), PREV);
        assert_eq!(
            (created.coinbase1, created.coinbase2),
            (job.coinb1.clone(), job.coinb2.clone())
        );
        assert_eq!(created.merkle_branch, job.merkle_branch);
        assert_eq!(
            (created.version, created.bits, created.ntime),
            (536870912, 0x207fffff, 1795572416)
        );
        assert_eq!(created.anchor, Some(anchor));
        assert_eq!(plain.job_created().anchor, None);
    }

    #[test]
    fn config_errors_are_refused_clearly() {
        let mut cfg = config();
        cfg.pool_tag = vec![b'x'; 90];
        assert!(matches!(
            cfg.validate(),
            Err(JobError::ScriptSigTooLong { len: 107 })
        ));
        let mut cfg = config();
        cfg.extranonce2_size = 0;
        assert_eq!(cfg.validate(), Err(JobError::BadExtranonceSize));
        let mut cfg = config();
        cfg.pool_block_target = Some(Target::DIFF1);
        assert_eq!(cfg.validate(), Ok(()), "regtest allows a pool block target");
        cfg.chain = Chain::ObtcMain.params();
        assert!(matches!(
            cfg.validate(),
            Err(JobError::BlockTargetNotAllowed(_))
        ));
        let mut cfg = config();
        cfg.extra_outputs.push(ExtraOutput {
            value: OutputValue::Fixed(Sats(6_000_000_000)),
            script_pubkey: vec![0x51],
        });
        let t = BlockTemplate::from_value(template(PREV, json!([]))).unwrap();
        assert!(matches!(
            Job::build(&t, &cfg, 1, true, None, &MatrixCache::new(1)),
            Err(JobError::OutputsExceedValue { .. })
        ));
    }

    #[test]
    fn pool_block_target_is_the_harder_of_the_two() {
        let t = BlockTemplate::from_value(template(PREV, json!([]))).unwrap();
        let mut cfg = config();
        cfg.pool_block_target = Some(Target::DIFF1);
        let job = Job::build(&t, &cfg, 1, true, None, &MatrixCache::new(1)).unwrap();
        assert_eq!(job.block_target, Target::DIFF1);
        assert_eq!(
            job.network_target,
            Target::from_compact(0x207fffff).unwrap()
        );
        cfg.pool_block_target = Some(Target::MAX);
        let job = Job::build(&t, &cfg, 1, true, None, &MatrixCache::new(1)).unwrap();
        assert_eq!(job.block_target, job.network_target);
    }

    #[test]
    fn commitment_that_does_not_match_the_transactions_is_refused() {
        let txs = json!([{ "data": "00", "txid": PREV, "hash": PREV }]);
        let t = BlockTemplate::from_value(template(PREV, txs)).unwrap();
        assert!(matches!(
            Job::build(&t, &config(), 1, true, None, &MatrixCache::new(2)),
            Err(JobError::WitnessCommitmentMismatch { .. })
        ));
    }

    #[test]
    fn job_book_marks_clean_jobs_and_stale_ids() {
        let cache = MatrixCache::new(2);
        let mut book = JobBook::new(4);
        let t1 = BlockTemplate::from_value(template(PREV, json!([]))).unwrap();
        let a = book.add_template(&t1, &config(), None, &cache).unwrap();
        assert!(a.clean_jobs);
        let b = book.add_template(&t1, &config(), None, &cache).unwrap();
        assert!(!b.clean_jobs);
        assert_eq!(book.get("1").unwrap().id, 1);
        let other = "7e34cdd8a9079a8623da53b55ebceebf3c1c0d81a615da1e1431b9dec22f3952";
        let t2 = BlockTemplate::from_value(template(other, json!([]))).unwrap();
        let c = book.add_template(&t2, &config(), None, &cache).unwrap();
        assert!(c.clean_jobs);
        assert_eq!(book.get("1").unwrap_err(), JobLookupError::Stale);
        assert_eq!(book.get("2").unwrap_err(), JobLookupError::Stale);
        assert_eq!(book.get("3").unwrap().id, 3);
        assert_eq!(book.get("4").unwrap_err(), JobLookupError::Unknown);
        assert_eq!(book.get("zz").unwrap_err(), JobLookupError::Unknown);
        for _ in 0..5 {
            book.add_template(&t2, &config(), None, &cache).unwrap();
        }
        assert_eq!(book.get("3").unwrap_err(), JobLookupError::Stale);
        assert_eq!(book.ids().count(), 4);
        book.withdraw_all();
        assert!(book.current().is_none());
        assert_eq!(book.get("8").unwrap_err(), JobLookupError::Stale);
        let next = book.add_template(&t2, &config(), None, &cache).unwrap();
        assert_eq!((next.id, next.clean_jobs), (9, true));
    }
}

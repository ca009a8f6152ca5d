//! Money and history against the chain (`audit --node URL`): each job's previous block is a
//! block the node knows (`getblockheader`; shares on a tip later reorged out are honest); each
//! `BlockFound` reward equals the block's coinbase outputs to the pool; each confirmed
//! payment's transaction, found in the block at its recorded height, pays every ledger output
//! its amount net of deductions (the network fee split when miners pay it). The first mismatch
//! is named.
//!
//! Blocks are read raw (`getblock HASH 0`) and parsed here (header, transaction count, the
//! transactions in consensus serialization), so the check reads Bitcoin SV's, Litecoin's and
//! Bitcoin's blocks alike and trusts no node-side decoding; Litecoin's MWEB blocks (the HogEx,
//! the extension block after the transactions) as [`mweb`] describes.
//!
//! The deductions are booked as `projections` books them: the payer is the network-fee payer
//! of the payout rule in force when the payment was prepared; with
//! [`NetworkFeePayer::Miners`] each output is its prepared amount minus its share of the
//! `PaymentSent` fee by [`projections::split::split_network_fee`] (the function the payout
//! process builds the outputs with); a payment confirmed without a `PaymentSent` (ledgers from
//! before sending was recorded) deducts nothing.

use super::{Finding, PoolIdentity};
use anyhow::Context as _;
use bitcoin::consensus::Decodable;
use bitcoin::Transaction;
use node_rpc::NodeClient;
use pool_core::event::{NetworkFeePayer, PaymentConfirmed, PaymentOutput, Txid};
use pool_core::{BlockId, Event, Sats};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A `BlockFound` as the check needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundBlock {
    pub seq: u64,
    pub height: u64,
    pub block_id: BlockId,
    pub reward: Sats,
}

/// A confirmed payment with what each of its outputs must receive on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmedPayment {
    /// The `PaymentConfirmed` record.
    pub seq: u64,
    pub payment_id: u64,
    pub txid: Txid,
    pub height: u64,
    /// The ledger's outputs, each with its amount net of its deduction.
    pub outputs: Vec<PaymentOutput>,
}

/// A payment on its way, as prepared (and sent).
#[derive(Clone, Debug)]
struct OpenPayment {
    outputs: Vec<PaymentOutput>,
    payer: NetworkFeePayer,
    network_fee: Option<Sats>,
}

/// What the money check needs from the ledger, collected in one pass ([`MoneyFacts::apply`]).
#[derive(Clone, Debug, Default)]
pub struct MoneyFacts {
    /// Every `BlockFound`, in ledger order.
    pub blocks: Vec<FoundBlock>,
    /// Every `PaymentConfirmed` of a payment the ledger prepared, in ledger order.
    pub payments: Vec<ConfirmedPayment>,
    /// Blocks whose last lifecycle event is `BlockOrphaned`: the node may never have seen them.
    orphaned: HashMap<BlockId, bool>,
    payer: Option<NetworkFeePayer>,
    open: BTreeMap<u64, OpenPayment>,
}

impl MoneyFacts {
    /// Collects from one record (call in sequence order).
    pub fn apply(&mut self, seq: u64, event: &Event) {
        match event {
            Event::BlockFound(b) => self.blocks.push(FoundBlock {
                seq,
                height: b.height,
                block_id: b.block_id,
                reward: b.reward,
            }),
            Event::BlockOrphaned(b) => {
                self.orphaned.insert(b.block_id, true);
            }
            Event::BlockReinstated(b) => {
                self.orphaned.insert(b.block_id, false);
            }
            Event::PayoutRuleSet(rule) => self.payer = Some(rule.network_fee_payer),
            Event::PaymentPrepared(p) => {
                // The payer of the rule in force now decides (projections' default: the pool).
                let payer = self.payer.unwrap_or(NetworkFeePayer::Pool);
                self.open.entry(p.payment_id).or_insert(OpenPayment {
                    outputs: p.outputs.clone(),
                    payer,
                    network_fee: None,
                });
            }
            Event::PaymentSent(s) => {
                if let Some(p) = self.open.get_mut(&s.payment_id) {
                    p.network_fee = Some(s.network_fee);
                }
            }
            Event::PaymentFailed(f) => {
                self.open.remove(&f.payment_id);
            }
            Event::PaymentConfirmed(c) => self.on_confirmed(seq, c),
            _ => {}
        }
    }

    fn on_confirmed(&mut self, seq: u64, c: &PaymentConfirmed) {
        let Some(p) = self.open.remove(&c.payment_id) else {
            return; // the replay reports a payment confirmed without being prepared
        };
        let amounts: Vec<Sats> = p.outputs.iter().map(|o| o.amount).collect();
        let deductions = match (p.payer, p.network_fee) {
            (NetworkFeePayer::Miners, Some(fee)) => {
                projections::split::split_network_fee(&amounts, fee).0
            }
            _ => vec![Sats::ZERO; amounts.len()],
        };
        let outputs = p
            .outputs
            .iter()
            .zip(deductions)
            .map(|(o, d)| PaymentOutput {
                address: o.address.clone(),
                amount: o.amount.saturating_sub(d),
            })
            .collect();
        self.payments.push(ConfirmedPayment {
            seq,
            payment_id: c.payment_id,
            txid: c.txid,
            height: c.height,
            outputs,
        });
    }

    /// True when the ledger's last word on `block` is that it left the best chain.
    pub fn is_orphaned(&self, block: &BlockId) -> bool {
        self.orphaned.get(block).copied().unwrap_or(false)
    }
}

/// What the money check saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MoneyReport {
    pub prev_hashes_checked: u64,
    pub blocks_checked: u64,
    /// Orphaned blocks (the ledger's last word) the node does not know: nothing to compare,
    /// and their credits are reversed anyway.
    pub orphaned_blocks_unknown: u64,
    pub payments_checked: u64,
    pub findings: Vec<Finding>,
}

fn finding(seq: u64, block: Option<&BlockId>, message: String) -> Finding {
    Finding {
        check: "money",
        seq: Some(seq),
        block: block.map(BlockId::to_display_hex),
        message,
    }
}

/// Runs the node checks. `prev_hashes` is [`super::work::WorkReport::prev_hashes`].
pub async fn check(
    node: &NodeClient,
    pool: &PoolIdentity,
    facts: &MoneyFacts,
    prev_hashes: &[(BlockId, u64)],
) -> anyhow::Result<MoneyReport> {
    let mut report = MoneyReport::default();
    // A few lookups in flight at once (one job per block: a long ledger has many), judged in
    // ledger order.
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = prev_hashes.iter();
    loop {
        while in_flight.len() < LOOKUP_WINDOW {
            let Some((prev, seq)) = next.next() else {
                break;
            };
            let node = node.clone();
            let hash = prev.to_display_hex();
            let lookup = tokio::spawn(async move { node.get_block_header(&hash).await });
            in_flight.push_back((*prev, *seq, lookup));
        }
        let Some((prev, seq, lookup)) = in_flight.pop_front() else {
            break;
        };
        report.prev_hashes_checked += 1;
        let known = lookup
            .await
            .context("getblockheader task")?
            .context("getblockheader")?;
        if known.is_none() {
            report.findings.push(finding(
                seq,
                Some(&prev),
                "the job's previous block is a block the node does not know".into(),
            ));
        }
    }
    for b in &facts.blocks {
        report.blocks_checked += 1;
        match block_reward_finding(node, pool, facts, b).await? {
            Check::Ok => {}
            Check::Skipped => report.orphaned_blocks_unknown += 1,
            Check::Failed(f) => report.findings.push(f),
        }
    }
    for p in &facts.payments {
        report.payments_checked += 1;
        if let Some(f) = payment_finding(node, pool, p).await? {
            report.findings.push(f);
        }
    }
    Ok(report)
}

/// Previous-block lookups in flight at once.
const LOOKUP_WINDOW: usize = 4;

enum Check {
    Ok,
    Skipped,
    Failed(Finding),
}

async fn block_reward_finding(
    node: &NodeClient,
    pool: &PoolIdentity,
    facts: &MoneyFacts,
    b: &FoundBlock,
) -> anyhow::Result<Check> {
    let hash = b.block_id.to_display_hex();
    let fail = |message: String| Ok(Check::Failed(finding(b.seq, Some(&b.block_id), message)));
    let Some(header) = node
        .get_block_header(&hash)
        .await
        .context("getblockheader")?
    else {
        if facts.is_orphaned(&b.block_id) {
            return Ok(Check::Skipped);
        }
        return fail("the node does not know the found block".into());
    };
    if header.height != b.height {
        return fail(format!(
            "the ledger puts the block at height {}, the node at {}",
            b.height, header.height
        ));
    }
    let raw = raw_block(node, &hash).await?;
    match reward_mismatch(&raw, pool, b.reward) {
        Some(problem) => fail(problem),
        None => Ok(Check::Ok),
    }
}

async fn payment_finding(
    node: &NodeClient,
    pool: &PoolIdentity,
    p: &ConfirmedPayment,
) -> anyhow::Result<Option<Finding>> {
    let fail = |message: String| {
        Ok(Some(finding(
            p.seq,
            None,
            format!("payment {} (tx {}): {message}", p.payment_id, p.txid),
        )))
    };
    let hash = match node.get_block_hash(p.height).await {
        Ok(hash) => hash,
        Err(node_rpc::NodeError::Rpc { .. }) => {
            return fail(format!("the chain has no block at height {}", p.height))
        }
        Err(e) => return Err(e).context("getblockhash"),
    };
    let raw = raw_block(node, &hash).await?;
    match payment_mismatch(&raw, pool, p) {
        Some(problem) => fail(format!(
            "in the block at height {} ({hash}): {problem}",
            p.height
        )),
        None => Ok(None),
    }
}

/// What is wrong with `p` against the raw block at its height, if anything: the block does
/// not hold its transaction, or some ledger output (amount net of its deduction) has no
/// output of its own paying that amount to that address's script.
pub fn payment_mismatch(raw: &[u8], pool: &PoolIdentity, p: &ConfirmedPayment) -> Option<String> {
    let tx = match find_tx(raw, &p.txid) {
        Ok(Some(tx)) => tx,
        Ok(None) => return Some("the block does not hold the transaction".into()),
        Err(e) => return Some(format!("cannot read the block: {e}")),
    };
    let mut unused: Vec<bool> = vec![true; tx.output.len()];
    for (i, o) in p.outputs.iter().enumerate() {
        let script = match pool_core::parse_payout_address(&o.address.0, pool.chain) {
            Ok(parsed) => parsed.script_pubkey,
            Err(e) => {
                return Some(format!(
                    "output {i}: address {} does not parse: {e}",
                    o.address
                ))
            }
        };
        let hit = tx.output.iter().enumerate().position(|(j, out)| {
            unused[j]
                && out.script_pubkey.as_bytes() == script.as_slice()
                && out.value.to_sat() == o.amount.0
        });
        match hit {
            Some(j) => unused[j] = false,
            None => {
                let to_address: Vec<String> = tx
                    .output
                    .iter()
                    .filter(|out| out.script_pubkey.as_bytes() == script.as_slice())
                    .map(|out| out.value.to_sat().to_string())
                    .collect();
                let chain = if to_address.is_empty() {
                    "nothing".to_string()
                } else {
                    format!("{} sats", to_address.join(" + "))
                };
                return Some(format!(
                    "output {i}: the ledger pays {} {} sats net of deductions, the transaction pays it {chain}",
                    o.address, o.amount.0
                ));
            }
        }
    }
    None
}

/// What is wrong with a `BlockFound` reward against its raw block, if anything.
pub fn reward_mismatch(raw: &[u8], pool: &PoolIdentity, reward: Sats) -> Option<String> {
    let coinbase = match RawBlock::parse(raw).and_then(|mut blk| blk.next_tx()) {
        Ok(Some(tx)) => tx,
        Ok(None) => return Some("the block has no transaction".into()),
        Err(e) => return Some(format!("cannot read the block's coinbase: {e}")),
    };
    let paid = paid_to(&coinbase, &pool.payout_script);
    (paid != reward.0).then(|| {
        format!(
            "BlockFound reward {} sats, but the block's coinbase pays the pool {paid} sats",
            reward.0
        )
    })
}

/// The sum of `tx`'s outputs to `script`.
pub fn paid_to(tx: &Transaction, script: &[u8]) -> u64 {
    tx.output
        .iter()
        .filter(|o| o.script_pubkey.as_bytes() == script)
        .map(|o| o.value.to_sat())
        .sum()
}

/// `getblock HASH 0`: the block's consensus bytes.
pub async fn raw_block(node: &NodeClient, hash: &str) -> anyhow::Result<Vec<u8>> {
    let reply = node.get_block(hash, 0).await.context("getblock")?;
    let Value::String(hex_block) = reply else {
        anyhow::bail!("getblock {hash} 0 did not answer a hex string");
    };
    hex::decode(hex_block).with_context(|| format!("getblock {hash} 0: not hex"))
}

/// The transaction with `txid` in a raw block, read up to it.
pub fn find_tx(raw: &[u8], txid: &Txid) -> Result<Option<Transaction>, String> {
    let mut block = RawBlock::parse(raw)?;
    while let Some(tx) = block.next_tx()? {
        if tx.compute_txid().to_byte_array() == txid.0 {
            return Ok(Some(tx));
        }
    }
    Ok(None)
}

use bitcoin::hashes::Hash as _;

/// A raw block read one transaction at a time: `header:80 | tx count | transactions`, and on
/// Litecoin MWEB blocks `0x01 || mweb block` after them ([`RawBlock::mweb_block`]). The HogEx
/// reads as the plain transaction it is without its MWEB flag (same txid, same outputs).
pub struct RawBlock<'a> {
    pub header: [u8; 80],
    pub tx_count: u64,
    read: u64,
    rest: &'a [u8],
    last_was_hogex: bool,
}

impl<'a> RawBlock<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<RawBlock<'a>, String> {
        let header: [u8; 80] = raw
            .get(..80)
            .and_then(|h| h.try_into().ok())
            .ok_or("shorter than a header")?;
        let (tx_count, len) = super::work::read_compact_size(&raw[80..])
            .ok_or("ends before the transaction count")?;
        Ok(RawBlock {
            header,
            tx_count,
            read: 0,
            rest: &raw[80 + len..],
            last_was_hogex: false,
        })
    }

    /// The next transaction, `None` after the last.
    pub fn next_tx(&mut self) -> Result<Option<Transaction>, String> {
        if self.read == self.tx_count {
            return Ok(None);
        }
        let at = |e: &dyn std::fmt::Display| format!("transaction {}: {e}", self.read);
        let hogex = mweb::is_mweb_flagged(self.rest);
        let tx = if hogex {
            let (plain, len) = mweb::hogex_without_mweb_flag(self.rest).map_err(|e| at(&e))?;
            let tx = bitcoin::consensus::deserialize::<Transaction>(&plain).map_err(|e| at(&e))?;
            self.rest = &self.rest[len..];
            tx
        } else {
            let mut cursor = self.rest;
            let tx = Transaction::consensus_decode(&mut cursor).map_err(|e| at(&e))?;
            self.rest = cursor;
            tx
        };
        self.last_was_hogex = hogex;
        self.read += 1;
        Ok(Some(tx))
    }

    /// The MWEB extension block's bytes (what `getblocktemplate` gave as `mweb`), read after the
    /// remaining transactions: `Some` when the last transaction is a HogEx, `None` otherwise.
    pub fn mweb_block(mut self) -> Result<Option<&'a [u8]>, String> {
        while self.next_tx()?.is_some() {}
        if !self.last_was_hogex {
            return Ok(None);
        }
        match self.rest.split_first() {
            Some((0x01, mweb)) if !mweb.is_empty() => Ok(Some(mweb)),
            _ => Err("the last transaction is a HogEx, but no MWEB extension block follows".into()),
        }
    }

    /// The block id under the chain's block-id hash.
    pub fn block_id(&self, pool: &PoolIdentity) -> BlockId {
        pool_core::pow::block_id(pool.chain.block_id, &self.header)
    }
}

pub mod mweb;
#[cfg(test)]
mod tests;

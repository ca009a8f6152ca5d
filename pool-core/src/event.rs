//! The ledger's events: what happened, in the past tense. Every number the pool reports is a
//! projection of these; nothing else is stored as truth.
//!
//! Compatibility rule: the ledger stores events with bincode, which encodes an enum variant by
//! its position and a struct by its field order. So new variants are only ever appended at the
//! end of [`Event`], and a struct that must change gets a new variant (or a new schema version
//! with a decoder for the old one in the ledger). `EVENT_SCHEMA_VERSION` is written into every
//! record; a build decodes every version it has ever written.

use crate::{BlockId, Sats, Target, Work};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Schema version of [`Event`] as this build writes it.
pub const EVENT_SCHEMA_VERSION: u16 = 1;

/// A payout address as the miner gave it, already validated for the pool's network.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PayoutAddress(pub String);

impl fmt::Display for PayoutAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PayoutAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayoutAddress({})", self.0)
    }
}

/// The worker part of a Stratum username (`address.worker`); empty when none was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerName(pub String);

impl fmt::Display for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Transaction ids, internal byte order (display reversed, like [`BlockId`]).
pub type Txid = BlockId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    ShareAccepted(ShareAccepted),
    BlockFound(BlockFound),
    BlockRejected(BlockRejected),
    BlockOrphaned(BlockOrphaned),
    BlockReinstated(BlockReinstated),
    BlockMatured(BlockMatured),
    PayoutRuleSet(PayoutRule),
    PaymentPrepared(PaymentPrepared),
    PaymentSent(PaymentSent),
    PaymentConfirmed(PaymentConfirmed),
    PaymentFailed(PaymentFailed),
    BlockCandidate(BlockCandidate),
    PaymentSigned(PaymentSigned),
    JobCreated(JobCreated),
    ShareWithWork(ShareWithWork),
    StreamBatch(StreamBatch),
}

impl Event {
    /// A short name of the variant, for logs and dumps.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ShareAccepted(_) => "ShareAccepted",
            Event::BlockFound(_) => "BlockFound",
            Event::BlockRejected(_) => "BlockRejected",
            Event::BlockOrphaned(_) => "BlockOrphaned",
            Event::BlockReinstated(_) => "BlockReinstated",
            Event::BlockMatured(_) => "BlockMatured",
            Event::PayoutRuleSet(_) => "PayoutRuleSet",
            Event::PaymentPrepared(_) => "PaymentPrepared",
            Event::PaymentSent(_) => "PaymentSent",
            Event::PaymentConfirmed(_) => "PaymentConfirmed",
            Event::PaymentFailed(_) => "PaymentFailed",
            Event::BlockCandidate(_) => "BlockCandidate",
            Event::PaymentSigned(_) => "PaymentSigned",
            Event::JobCreated(_) => "JobCreated",
            Event::ShareWithWork(_) => "ShareWithWork",
            Event::StreamBatch(_) => "StreamBatch",
        }
    }

    /// The accepted share of a [`Event::ShareAccepted`] or [`Event::ShareWithWork`] record:
    /// both count the same in every projection (the work fields are for auditors).
    pub fn share(&self) -> Option<&ShareAccepted> {
        match self {
            Event::ShareAccepted(s) => Some(s),
            Event::ShareWithWork(s) => Some(&s.share),
            _ => None,
        }
    }
}

/// A share that met its share target; acknowledged to the miner only once durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccepted {
    pub address: PayoutAddress,
    pub worker: WorkerName,
    /// The target the share was checked against (the connection's difficulty at the time).
    pub share_target: Target,
    /// `share_target.work()`: what the share counts for in payouts.
    pub weight: Work,
    pub job_id: u64,
    /// Height of the block the job would have made.
    pub height: u64,
    /// The job's network target (from the template's `bits`): the threshold a block had to
    /// meet. On regtest with the pool's harder block threshold (`pool_block_difficulty`), that
    /// threshold, so payout windows behave there as on a real network.
    pub network_target: Target,
    /// Unix time in milliseconds when the pool accepted the share.
    pub time_ms: u64,
}

/// A share met the block threshold. Recorded (durably, right after its finding share) before
/// the block is submitted, so a busy node, a node that is down or a crash cannot lose it: the
/// verdict follows later as a [`BlockFound`] or [`BlockRejected`] with the same `block_id`, and
/// the block is credited as of the candidate's position in the ledger (see `projections`).
/// A candidate with no verdict yet is *open*; the pool resolves open candidates at start.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCandidate {
    pub height: u64,
    pub block_id: BlockId,
    /// The coinbase value paid to the pool (outputs to the pool's address), in satoshis.
    pub reward: Sats,
    /// As in [`BlockFound::network_target`].
    pub network_target: Target,
    pub finder: PayoutAddress,
    pub worker: WorkerName,
    pub time_ms: u64,
    /// The whole block in its consensus serialization (what `submitblock` takes, as hex), so it
    /// can be resubmitted after a restart. Raw bytes in the ledger (bincode: a `u64` length,
    /// then the bytes); a hex string in JSON dumps.
    #[serde(with = "hex_in_json")]
    pub block: Vec<u8>,
}

impl BlockCandidate {
    /// The verdict that the node accepted this candidate, at `time_ms`.
    pub fn found(&self, time_ms: u64) -> BlockFound {
        BlockFound {
            height: self.height,
            block_id: self.block_id,
            reward: self.reward,
            network_target: self.network_target,
            finder: self.finder.clone(),
            worker: self.worker.clone(),
            time_ms,
        }
    }

    /// The verdict that the node refused this candidate (or never judged it), at `time_ms`.
    pub fn rejected(&self, reason: String, time_ms: u64) -> BlockRejected {
        BlockRejected {
            height: self.height,
            block_id: self.block_id,
            reason,
            finder: self.finder.clone(),
            worker: self.worker.clone(),
            time_ms,
        }
    }
}

/// The block shown by its size and first bytes: a dump line stays a line.
impl fmt::Debug for BlockCandidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = &self.block[..self.block.len().min(16)];
        f.debug_struct("BlockCandidate")
            .field("height", &self.height)
            .field("block_id", &self.block_id)
            .field("reward", &self.reward)
            .field("network_target", &self.network_target)
            .field("finder", &self.finder)
            .field("worker", &self.worker)
            .field("time_ms", &self.time_ms)
            .field(
                "block",
                &format_args!("{} bytes, {}...", self.block.len(), hex::encode(head)),
            )
            .finish()
    }
}

/// `Vec<u8>` as its plain serde form for binary formats and as a hex string for human-readable
/// ones (JSON), so a dump shows a block as `submitblock` takes it.
mod hex_in_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            bytes.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            hex::decode(text).map_err(serde::de::Error::custom)
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}

/// A block the node accepted: `submitblock` answered `null`, `inconclusive` (valid, on a side
/// branch) or `duplicate` (the node has it), or the node knew the block when asked. Whether it
/// is (still) in the best chain is the chain watcher's business (`BlockOrphaned`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFound {
    pub height: u64,
    /// The chain's block id (what `getblockhash` returns at `height`).
    pub block_id: BlockId,
    /// The coinbase value paid to the pool (outputs to the pool's address), in satoshis.
    pub reward: Sats,
    /// The threshold the block met: the network target (or the regtest pool threshold, as in
    /// [`ShareAccepted::network_target`]). PPLNS windows are a multiple of its work.
    pub network_target: Target,
    pub finder: PayoutAddress,
    pub worker: WorkerName,
    pub time_ms: u64,
}

/// A block candidate the node refused, with the node's reason (a BIP 22 string such as
/// `high-hash` or `duplicate-invalid`). A candidate the node never judged (unreachable or busy
/// until the block's height was buried) is closed with a reason starting `never judged:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRejected {
    pub height: u64,
    pub block_id: BlockId,
    pub reason: String,
    pub finder: PayoutAddress,
    pub worker: WorkerName,
    pub time_ms: u64,
}

/// A found block left the best chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOrphaned {
    pub block_id: BlockId,
    pub height: u64,
}

/// An orphaned block came back to the best chain (reorg back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockReinstated {
    pub block_id: BlockId,
    pub height: u64,
}

/// A found block reached coinbase maturity: its credits become payable and final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMatured {
    pub block_id: BlockId,
    pub height: u64,
}

/// How block rewards are split. Recorded whenever the configured rule changes, so a later config
/// change never rewrites the past.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRule {
    pub scheme: PayoutScheme,
    /// Pool fee in basis points (1/100 of a percent) of each block's reward.
    pub fee_bps: u16,
    pub fee_address: PayoutAddress,
    pub network_fee_payer: NetworkFeePayer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutScheme {
    /// Split over the last N of share weight before the block, where
    /// N = window_numerator / window_denominator × the work of the block's network target.
    Pplns {
        window_numerator: u32,
        window_denominator: u32,
    },
    /// The seed system's rule: shares since the previous non-orphaned block. An orphaned
    /// block's round rolls forward into the next round whose block has not matured (see the
    /// `projections` crate for reinstatement).
    Prop,
    /// The finder takes the reward (after the pool fee).
    Solo,
}

/// Who bears the network fee of a payment transaction. The rule in force when a payment is
/// prepared decides for that payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkFeePayer {
    /// Booked against the pool's fee balance (the rule's fee address).
    Pool,
    /// Deducted from the paid miners' amounts, in proportion to the output amounts
    /// (`projections::split::split_network_fee` gives the exact satoshis per output).
    Miners,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOutput {
    pub address: PayoutAddress,
    pub amount: Sats,
}

/// A payment was decided: these amounts leave the payable balances and are in flight. An amount
/// above an address's payable balance leaves that address a debt, repaid by later credits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPrepared {
    pub payment_id: u64,
    pub outputs: Vec<PaymentOutput>,
}

/// The wallet built, funded and signed the payment's transaction. Durable before the first
/// broadcast, so after a crash the same bytes are broadcast again and no second transaction is
/// ever made for the same balance. `raw_tx` is the transaction in its consensus serialization
/// (raw bytes in the ledger, hex in JSON dumps); `txid` is its id; `network_fee` is what its
/// inputs pay beyond its outputs. Booked only when the payment is sent ([`PaymentSent`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSigned {
    pub payment_id: u64,
    pub txid: Txid,
    #[serde(with = "hex_in_json")]
    pub raw_tx: Vec<u8>,
    pub network_fee: Sats,
}

/// The transaction shown by its size: a dump line stays a line.
impl fmt::Debug for PaymentSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentSigned")
            .field("payment_id", &self.payment_id)
            .field("txid", &self.txid)
            .field("raw_tx", &format_args!("{} bytes", self.raw_tx.len()))
            .field("network_fee", &self.network_fee)
            .finish()
    }
}

/// The payment's transaction was broadcast. `network_fee` is booked now, by the payer of the rule
/// in force when the payment was prepared; with [`NetworkFeePayer::Miners`] each output's
/// transaction amount is its prepared amount minus its share of the fee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSent {
    pub payment_id: u64,
    pub txid: Txid,
    pub network_fee: Sats,
}

/// The payment's transaction is confirmed: the amounts (net of any network fee deducted) are
/// paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentConfirmed {
    pub payment_id: u64,
    pub txid: Txid,
    pub height: u64,
}

/// The payment will not happen (never sent, or its transaction was dropped): the amounts return
/// to the payable balances and any booked network fee is undone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub payment_id: u64,
    pub reason: String,
}

/// A job the pool handed out to miners, recorded once, before any share on it (the job source
/// hands the record to the ledger before it publishes the job, so every share and block on the
/// job follows it in sequence). With the shares' [`ShareWork`] it lets an auditor rebuild every
/// share's header: coinbase = `coinbase1 | extranonce1 | extranonce2 | coinbase2`
/// (non-witness serialization), its txid SHA-256d, the merkle root from `merkle_branch`, the
/// header `version | prev_hash | merkle root | ntime | bits | nonce` (docs/ledger.md).
///
/// `job_id` is the Stratum job id (`ShareAccepted::job_id`); ids restart at 1 when the pool
/// restarts, so a share belongs to the latest `JobCreated` with its `job_id` before it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCreated {
    pub job_id: u64,
    /// Height of the block the job would make.
    pub height: u64,
    /// Previous block id, internal byte order (as in the header; display reversed).
    pub prev_hash: BlockId,
    /// The coinbase before the extranonces (starts with the tx version; no segwit marker).
    #[serde(with = "hex_in_json")]
    pub coinbase1: Vec<u8>,
    /// The coinbase after the extranonces (ends with the locktime): its outputs pay the pool
    /// and carry the ledger anchor ([`crate::anchor`]).
    #[serde(with = "hex_in_json")]
    pub coinbase2: Vec<u8>,
    /// Branch hashes for the coinbase, bottom up, internal byte order (hex in that order in
    /// JSON, as `mining.notify` sends them).
    #[serde(with = "hex_list_in_json")]
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version before any BIP310 rolling.
    pub version: u32,
    /// Compact network target (`nbits`) of the header.
    pub bits: u32,
    /// The template's time: the job's ntime.
    pub ntime: u32,
    /// The ledger head the coinbase's anchor output commits to (`None`: the ledger was empty,
    /// the coinbase has no anchor).
    pub anchor: Option<LedgerAnchor>,
}

/// Hex lengths, not whole coinbases: a dump line stays a line.
impl fmt::Debug for JobCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobCreated")
            .field("job_id", &self.job_id)
            .field("height", &self.height)
            .field("prev_hash", &self.prev_hash)
            .field("coinbase1", &format_args!("{} bytes", self.coinbase1.len()))
            .field("coinbase2", &format_args!("{} bytes", self.coinbase2.len()))
            .field("merkle_branch", &self.merkle_branch.len())
            .field("version", &format_args!("{:08x}", self.version))
            .field("bits", &format_args!("{:08x}", self.bits))
            .field("ntime", &self.ntime)
            .field("anchor", &self.anchor)
            .finish()
    }
}

/// A ledger head (the last durable record's sequence number and chain hash) as a coinbase
/// commits to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LedgerAnchor {
    pub seq: u64,
    #[serde(with = "hex32_in_json")]
    pub hash: [u8; 32],
}

/// An accepted share with its work: [`ShareAccepted`] (it counts exactly as one) and what the
/// miner submitted, so the header can be rebuilt from the share's [`JobCreated`]. Written in
/// place of `ShareAccepted` from schema 1's variant 14 on; `ShareAccepted` records keep
/// decoding and counting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareWithWork {
    pub share: ShareAccepted,
    pub work: ShareWork,
}

/// What a miner submitted for a share (`mining.submit`), in header terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShareWork {
    /// The connection's extranonce1 (the pool's), raw bytes.
    #[serde(with = "hex_in_json")]
    pub extranonce1: Vec<u8>,
    /// The miner's extranonce2, raw bytes.
    #[serde(with = "hex_in_json")]
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// The header version, after BIP310 rolling (the job's version when none).
    pub version: u32,
}

/// A batch of events an edge (`obtc-pool edge`) published to the share stream, as the core
/// (`obtc-pool core`) applied it: recorded in the same ledger append as the batch's events,
/// immediately before them, so the `events` records after this one are the batch, in the
/// order the edge sealed them. The batch id (`edge_id`, `boot_id`, `counter`) is what the
/// edge sent as `Nats-Msg-Id`; the core applies each id at most once, and an auditor can see
/// every edge boot's counters and any gap among them (a batch the edge abandoned: its shares
/// were never acknowledged to miners). `stream_seq` is the JetStream sequence of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamBatch {
    /// The edge's configured id (`[edge] id`, 1-255; the first byte of its extranonce1s).
    pub edge_id: u16,
    /// Random per edge process start: a restarted edge's counter starts again at 1.
    pub boot_id: u64,
    /// 1, 2, 3, ... per edge boot, in the order the edge sealed its batches.
    pub counter: u64,
    /// The stream sequence number of the message that carried the batch.
    pub stream_seq: u64,
    /// How many records follow this one in the same append (the batch's events).
    pub events: u32,
    /// Unix time in milliseconds when the edge sealed the batch (the core's record time minus
    /// this is the share-to-ledger lag, give or take the clocks' difference).
    pub sealed_ms: u64,
}

/// `Vec<[u8; 32]>` as its plain serde form in binary formats and as a list of hex strings in
/// JSON.
mod hex_list_in_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(list: &Vec<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(list.iter().map(hex::encode))
        } else {
            list.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        if d.is_human_readable() {
            Vec::<String>::deserialize(d)?
                .into_iter()
                .map(|text| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(text, &mut out).map(|()| out)
                })
                .collect::<Result<_, _>>()
                .map_err(serde::de::Error::custom)
        } else {
            Vec::<[u8; 32]>::deserialize(d)
        }
    }
}

/// `[u8; 32]` as its plain serde form in binary formats and as hex in JSON.
mod hex32_in_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            bytes.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
            Ok(out)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_event_round_trips_through_bincode() {
        let t = Target::from_difficulty(0.5).unwrap();
        let e = Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress("mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef".into()),
            worker: WorkerName("rig1".into()),
            share_target: t,
            weight: t.work(),
            job_id: 7,
            height: 101,
            network_target: Target::from_compact(0x207fffff).unwrap(),
            time_ms: 1_700_000_000_000,
        });
        let bytes = bincode::serialize(&e).unwrap();
        assert_eq!(bincode::deserialize::<Event>(&bytes).unwrap(), e);
        assert_eq!(e.kind(), "ShareAccepted");
    }

    #[test]
    fn a_candidates_block_is_raw_bytes_in_bincode_and_hex_in_json() {
        let c = BlockCandidate {
            height: 7,
            block_id: BlockId([3; 32]),
            reward: Sats(50),
            network_target: Target::MAX,
            finder: PayoutAddress("a".into()),
            worker: WorkerName("w".into()),
            time_ms: 1,
            block: vec![0xde, 0xad, 0xbe, 0xef],
        };
        let bytes = bincode::serialize(&Event::BlockCandidate(c.clone())).unwrap();
        // The variant index, then the fields; the block last: u64 length 4, then its bytes.
        assert_eq!(&bytes[..4], &11u32.to_le_bytes());
        assert_eq!(
            &bytes[bytes.len() - 12..],
            &[4, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(
            bincode::deserialize::<Event>(&bytes).unwrap(),
            Event::BlockCandidate(c.clone())
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["block"], "deadbeef");
        assert_eq!(serde_json::from_value::<BlockCandidate>(json).unwrap(), c);
    }
}

//! The operator's methods of the pool's JSON-RPC: reads of the running pool (no token), the
//! heavy `ledger_verify` (one at a time, rate-limited without the token), the admin calls
//! (token), and the WebSocket subscriptions. `docs/rpc.md` documents each with an example.
//!
//! Every reply carries the ledger position it reflects (`ledger`). Amounts are satoshis
//! (integers); hashrates are display figures (hashes per second, `f64`), never money.
//!
//! Paged lists take `limit` (1..=[`MAX_LIMIT`]) and an optional `before` cursor: the reply's
//! `next_before` is the cursor of the next (older) page, `None` on the last page.

use super::{LedgerHead, PayoutReport};
use pool_core::event::{PayoutAddress, PayoutRule, Txid};
use pool_core::{BlockId, Sats};
use projections::PaymentStatus;
use serde::{Deserialize, Serialize};

/// `pool_info` (no params): chain, proof of work, rule in force, addresses, versions.
pub const METHOD_POOL_INFO: &str = "pool_info";
/// `pool_stats` (no params): connections, workers, hashrate, shares/s, blocks, payout process.
pub const METHOD_POOL_STATS: &str = "pool_stats";
/// `miner_balance` (`[address]`): [`MinerBalance`].
pub const METHOD_MINER_BALANCE: &str = "miner_balance";
/// `miner_workers` (`[address]`): [`MinerWorkers`].
pub const METHOD_MINER_WORKERS: &str = "miner_workers";
/// `blocks_list` (`[status|null, limit, before|null]` or `{"status", "limit", "before"}`):
/// [`BlocksPage`], newest first.
pub const METHOD_BLOCKS_LIST: &str = "blocks_list";
/// `block_get` (`[block_id]`, display hex): [`BlockDetail`].
pub const METHOD_BLOCK_GET: &str = "block_get";
/// `payments_list` (`[address|null, limit, before|null]` or the object form): [`PaymentsPage`],
/// newest first.
pub const METHOD_PAYMENTS_LIST: &str = "payments_list";
/// `ledger_head` (no params): [`LedgerHeadReply`].
pub const METHOD_LEDGER_HEAD: &str = "ledger_head";
/// `ledger_verify` (no params): [`VerifyReply`]. Heavy: one verification at a time in the
/// background (a low-priority thread); concurrent callers share it. Without the token a new
/// verification starts at most once per `[rpc] verify_min_interval_secs` and callers within
/// that get the last result (`fresh: false`).
pub const METHOD_LEDGER_VERIFY: &str = "ledger_verify";
/// `ledger_export` (`[from, limit]` or `{"from", "limit"}`; no token): a page of the export
/// format (`pool_core::export`, docs/ledger.md) from record `from` (default: the live ledger's
/// first record), at most `limit` (1..=[`MAX_EXPORT_LIMIT`], default the maximum) records, read
/// in the background so shares never wait for it. Replies [`LedgerExportPage`]; a client pages
/// with `next` until it is `None` (`obtc-pool ledger export --rpc URL --out FILE` does).
pub const METHOD_LEDGER_EXPORT: &str = "ledger_export";

/// `payouts_pause` (`[{"reason": TEXT}]`, token): the pool refuses new `PaymentPrepared`
/// events and the payout process prepares none (open payments are carried to the end).
/// Kept across restarts. Replies [`PauseReply`].
pub const METHOD_PAYOUTS_PAUSE: &str = "payouts_pause";
/// `payouts_resume` (no params, token): lifts the pause. Replies [`PauseReply`].
pub const METHOD_PAYOUTS_RESUME: &str = "payouts_resume";
/// `ban_add` (`[BanRequest]`, token): bans a worker or an IP for `secs`, closing its
/// connections. Replies [`BanInfo`].
pub const METHOD_BAN_ADD: &str = "ban_add";
/// `ban_remove` (`[BanTargetSpec]`, token): lifts a ban. Replies [`BanRemoved`].
pub const METHOD_BAN_REMOVE: &str = "ban_remove";
/// `bans_list` (no params, token): the bans in force. Replies [`BansList`].
pub const METHOD_BANS_LIST: &str = "bans_list";

/// Subscription (WebSocket only): every new found block (its `BlockFound`), as [`BlockSummary`]
/// in a [`Notification`]. Unsubscribe with [`UNSUBSCRIBE_BLOCKS`].
pub const SUBSCRIBE_BLOCKS: &str = "subscribe_blocks";
pub const NOTIFY_BLOCKS: &str = "blocks";
pub const UNSUBSCRIBE_BLOCKS: &str = "unsubscribe_blocks";
/// Subscription: every block status change (found, orphaned, reinstated, matured, rejected),
/// as [`BlockStatusChange`].
pub const SUBSCRIBE_BLOCK_STATUS: &str = "subscribe_block_status";
pub const NOTIFY_BLOCK_STATUS: &str = "block_status";
pub const UNSUBSCRIBE_BLOCK_STATUS: &str = "unsubscribe_block_status";
/// Subscription: every payment event (prepared, signed, sent, confirmed, failed), as
/// [`PaymentInfo`] after the event.
pub const SUBSCRIBE_PAYMENTS: &str = "subscribe_payments";
pub const NOTIFY_PAYMENTS: &str = "payments";
pub const UNSUBSCRIBE_PAYMENTS: &str = "unsubscribe_payments";

/// JSON-RPC error code: the address is not valid for the pool's chain.
pub const ERR_INVALID_ADDRESS: i32 = -32040;
/// JSON-RPC error code: a valid address, block id or payment the pool has no record of.
pub const ERR_UNKNOWN: i32 = -32041;
/// JSON-RPC error code: bad paging (`limit` 0 or above [`MAX_LIMIT`], unknown status) or a bad
/// admin argument (ban length, target).
pub const ERR_BAD_REQUEST: i32 = -32042;
/// JSON-RPC error code: a heavy call refused for now (rate limit); the message says when.
pub const ERR_BUSY: i32 = -32050;

/// The most items one page holds.
pub const MAX_LIMIT: u32 = 1000;
/// Most records one `ledger_export` page holds.
pub const MAX_EXPORT_LIMIT: u32 = 10_000;

/// Reply of `ledger_export`: one page of the export format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerExportPage {
    /// The page as an export of its own: `first_seq` = the first record's (the asked `from`),
    /// `prev_hash` = the chain hash before it, `records` and `last` this page's. Pages
    /// concatenated (the first page's header, then every page's records) are one export.
    pub header: pool_core::export::ExportHeader,
    pub records: Vec<pool_core::export::ExportRecord>,
    /// The `from` of the next page; `None` once the page reached the durable head at the time
    /// of the call.
    pub next: Option<u64>,
    /// The durable head at the time of the call.
    pub ledger: Option<LedgerHead>,
}

/// Reply of `pool_info`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub ledger: Option<LedgerHead>,
    /// The `[chain] preset` (e.g. `obtc-main`, `bsv-regtest`).
    pub chain: String,
    /// The node's network name for it (`main`, `test`, `regtest`).
    pub network: String,
    /// `sha256d`, `heavyhash` or `scrypt`.
    pub pow: String,
    /// What difficulty 1 means in every difficulty the pool shows or takes (`mining.set_difficulty`,
    /// the vardiff settings, `pool_block_difficulty`, `miner_workers`): `bitcoin` (Bitcoin's
    /// difficulty-1 target) or `scrypt` (65,536 times easier).
    #[serde(default)]
    pub difficulty_unit: pool_core::DifficultyUnit,
    pub coinbase_maturity: u32,
    /// The payout rule in force (scheme, fee, fee address, network fee payer).
    pub rule: PayoutRule,
    /// The seq of the `PayoutRuleSet` that set it (`None`: the default rule).
    pub rule_seq: Option<u64>,
    /// The pool's coinbase address (`[pool] payout_address`).
    pub payout_address: String,
    /// `[[pool.extra_outputs]]`.
    pub extra_outputs: Vec<ExtraOutputInfo>,
    /// The Stratum listen address.
    pub stratum: String,
    /// The first record the live ledger holds (after archives dropped older ones).
    pub ledger_base: u64,
    pub versions: Versions,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraOutputInfo {
    pub address: String,
    /// A fixed amount, or...
    pub sats: Option<u64>,
    /// ...basis points of the coinbase value.
    pub bps: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// `obtc-pool`'s version (Cargo).
    pub pool: String,
    /// The ledger's event schema version of new records.
    pub event_schema: u16,
    /// The live projection's snapshot format.
    pub snapshot: u32,
}

/// Hashes per second over 1 minute, 1 hour and 24 hours (from accepted shares' work).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hashrates {
    pub h1m: f64,
    pub h1h: f64,
    pub h24h: f64,
}

/// Reply of `pool_stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolStats {
    pub ledger: Option<LedgerHead>,
    /// Open Stratum connections now.
    pub connections: u64,
    /// Distinct authorized workers (`address.worker`) connected now.
    pub workers_connected: u64,
    /// Distinct addresses connected now.
    pub addresses_connected: u64,
    pub hashrate: Hashrates,
    /// Accepted shares per second over the last minute.
    pub shares_per_sec: f64,
    /// Shares accepted and rejected since this process started.
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    /// Shares in the ledger, all time.
    pub shares_total: u64,
    pub blocks: BlockCounts,
    /// The latest found block.
    pub last_block: Option<BlockSummary>,
    pub payout: PayoutProcessStatus,
    pub uptime_secs: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCounts {
    /// Found blocks (immature + matured + orphaned).
    pub found: u64,
    pub immature: u64,
    pub matured: u64,
    pub orphaned: u64,
    /// Candidates the node refused.
    pub rejected: u64,
    /// Candidates awaiting the node's verdict.
    pub pending: u64,
}

/// The payout process as the pool sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutProcessStatus {
    /// Its last report (`None`: none since the pool started).
    pub last_report: Option<PayoutReport>,
    /// Its last report of state `error`, kept after later successes.
    pub last_error: Option<PayoutReport>,
    /// The operator's pause, if payouts are paused.
    pub paused: Option<PauseInfo>,
    pub open_payments: u64,
}

/// An operator's pause of payouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseInfo {
    pub reason: String,
    /// Unix ms.
    pub since_ms: u64,
}

/// Reply of `payouts_pause` and `payouts_resume`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseReply {
    pub ledger: Option<LedgerHead>,
    /// The pause in force after the call (`None`: payouts run).
    pub paused: Option<PauseInfo>,
    /// Whether the call changed anything.
    pub changed: bool,
}

/// Params of `payouts_pause`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRequest {
    #[serde(default)]
    pub reason: String,
}

/// Reply of `miner_balance`: where every satoshi credited to the address is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerBalance {
    pub ledger: Option<LedgerHead>,
    pub address: PayoutAddress,
    /// Credits of blocks not matured yet.
    pub immature: Sats,
    /// Matured credits not in a payment yet.
    pub payable: Sats,
    /// In payments prepared, signed or sent, not confirmed yet.
    pub in_flight: Sats,
    /// Received in confirmed payments.
    pub paid: Sats,
    /// Paid ahead of credits (repaid by later credits first).
    pub debt: Sats,
    /// Network fees this address bore.
    pub network_fees: Sats,
}

/// One worker of an address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker name (`""` when the miner gave none).
    pub worker: String,
    pub hashrate: Hashrates,
    /// Accepted shares, all time (that the live projection counted).
    pub shares: u64,
    pub shares_1m: u64,
    pub shares_1h: u64,
    pub shares_24h: u64,
    /// Unix ms of its last accepted share (0: none).
    pub last_share_ms: u64,
    /// Its open connections now.
    pub connections: u64,
    /// The difficulty its connection mines at now (the highest of its connections'), in the
    /// chain's difficulty unit (`pool_info`'s `difficulty_unit`); `None` when not connected.
    pub difficulty: Option<f64>,
}

/// Reply of `miner_workers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinerWorkers {
    pub ledger: Option<LedgerHead>,
    pub address: PayoutAddress,
    /// By worker name.
    pub workers: Vec<WorkerInfo>,
}

/// A block's place in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockState {
    /// A candidate awaiting the node's verdict.
    Pending,
    Immature,
    Matured,
    Orphaned,
    /// The node refused it.
    Rejected,
}

impl BlockState {
    pub fn parse(s: &str) -> Option<BlockState> {
        Some(match s {
            "pending" => BlockState::Pending,
            "immature" => BlockState::Immature,
            "matured" => BlockState::Matured,
            "orphaned" => BlockState::Orphaned,
            "rejected" => BlockState::Rejected,
            _ => return None,
        })
    }
}

/// A block in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSummary {
    /// Display hex.
    pub block_id: BlockId,
    pub height: u64,
    pub status: BlockState,
    /// The coinbase reward (0 while pending or rejected).
    pub reward: Sats,
    pub finder: PayoutAddress,
    pub worker: String,
    pub time_ms: u64,
    /// Its place in the ledger: the candidate's seq (or the `BlockFound`'s, for blocks recorded
    /// before candidates). The paging cursor.
    pub seq: u64,
    /// The verdict's seq (`BlockFound` or `BlockRejected`), once judged.
    pub verdict_seq: Option<u64>,
}

/// Params of `blocks_list` (object form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksQuery {
    #[serde(default)]
    pub status: Option<String>,
    pub limit: u32,
    /// Only blocks whose `seq` is below this.
    #[serde(default)]
    pub before: Option<u64>,
}

/// Reply of `blocks_list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksPage {
    pub ledger: Option<LedgerHead>,
    pub blocks: Vec<BlockSummary>,
    pub next_before: Option<u64>,
}

/// A credit of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub address: PayoutAddress,
    pub amount: Sats,
}

/// Reply of `block_get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDetail {
    pub ledger: Option<LedgerHead>,
    pub block: BlockSummary,
    /// The rule that made its credits (in force at its candidate); `None` for a pending or
    /// rejected block.
    pub rule: Option<PayoutRule>,
    /// The seq of that rule's `PayoutRuleSet` (`None`: the default rule).
    pub rule_seq: Option<u64>,
    /// The pool fee, credited to the rule's fee address.
    pub fee: Sats,
    pub fee_address: Option<PayoutAddress>,
    /// Per-address credits (the miners'; with `fee` they sum to the reward), address order.
    /// For an orphaned block: what it had when it left the chain (counted in no balance).
    pub credits: Vec<Credit>,
    /// The node's reason, for a rejected block.
    pub reject_reason: Option<String>,
}

/// One output of a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOutputInfo {
    pub address: PayoutAddress,
    /// As prepared.
    pub amount: Sats,
    /// The network fee deducted from it (miners pay), once sent.
    pub deducted: Sats,
}

/// A payment and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInfo {
    pub payment_id: u64,
    pub status: PaymentStatus,
    pub txid: Option<Txid>,
    pub outputs: Vec<PaymentOutputInfo>,
    /// Sum of the outputs as prepared.
    pub total: Sats,
    pub network_fee: Sats,
    /// Unix ms of its `PaymentPrepared` record.
    pub prepared_ms: Option<u64>,
    /// The seq of its latest event.
    pub last_seq: u64,
    pub confirmed_height: Option<u64>,
    pub failure_reason: Option<String>,
}

/// Params of `payments_list` (object form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentsQuery {
    #[serde(default)]
    pub address: Option<String>,
    pub limit: u32,
    /// Only payments whose id is below this.
    #[serde(default)]
    pub before: Option<u64>,
}

/// Reply of `payments_list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentsPage {
    pub ledger: Option<LedgerHead>,
    pub payments: Vec<PaymentInfo>,
    pub next_before: Option<u64>,
}

/// Reply of `ledger_head`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHeadReply {
    /// The last durable record (`None`: empty ledger).
    pub ledger: Option<LedgerHead>,
    /// The first record the live ledger holds.
    pub base: u64,
    /// The last record the live projection applied (at most `ledger.seq`).
    pub applied_seq: Option<u64>,
}

/// A verification of the whole live ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// True when the whole chain verified.
    pub ok: bool,
    /// The first record checked (the ledger's base).
    pub first: u64,
    pub records: u64,
    /// The last record verified.
    pub head: Option<LedgerHead>,
    /// What is wrong, and where (`ok: false`).
    pub problem: Option<String>,
    /// Unix ms when it started, and how long it took.
    pub started_ms: u64,
    pub ms: u64,
}

/// Reply of `ledger_verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReply {
    pub ledger: Option<LedgerHead>,
    pub verification: Verification,
    /// False: the last result, returned under the rate limit.
    pub fresh: bool,
}

/// What a ban names: a worker (`address.worker`, optionally only from one IP) or an IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanTargetSpec {
    /// An IP (v4 or v6).
    #[serde(default)]
    pub ip: Option<String>,
    /// A Stratum username.
    #[serde(default)]
    pub worker: Option<String>,
    /// With `worker`: only from this IP.
    #[serde(default)]
    pub from: Option<String>,
}

/// Params of `ban_add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRequest {
    #[serde(flatten)]
    pub target: BanTargetSpec,
    /// How long (1 s to 1 year).
    pub secs: u64,
}

/// A ban in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    pub target: BanTargetSpec,
    pub since_ms: u64,
    pub until_ms: u64,
    /// `operator` or `floods (N cuts)`.
    pub cause: String,
    /// Connections closed by this ban (`ban_add` only; 0 in lists).
    #[serde(default)]
    pub closed_connections: u64,
}

/// Reply of `bans_list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BansList {
    pub bans: Vec<BanInfo>,
}

/// Reply of `ban_remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRemoved {
    /// False: it was not banned.
    pub removed: bool,
}

/// A block status change (subscription `block_status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStatusChange {
    pub block_id: BlockId,
    pub height: u64,
    /// The status after the event.
    pub status: BlockState,
    /// The event: `found`, `orphaned`, `reinstated`, `matured` or `rejected`.
    pub event: String,
}

/// Every subscription notification: the ledger record it comes from, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification<T> {
    /// The record of the event (its seq and chain hash).
    pub ledger: LedgerHead,
    pub item: T,
}

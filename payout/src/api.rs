//! The pool's JSON-RPC methods that the payout process (and operators) use, with their request
//! and reply types: one definition for the server in the pool process and the client in the
//! payout process. The method names are the API.
//!
//! Every read reply carries the ledger position it reflects ([`LedgerHead`]), so a caller can
//! compare it with an audit at that sequence. Calls that append events need the bearer token
//! (`Authorization: Bearer TOKEN`, the contents of `[rpc] token_file`).

pub mod operator;

use pool_core::event::{NetworkFeePayer, PaymentOutput, PayoutAddress, PayoutRule, Txid};
use pool_core::{BlockId, Sats};
use projections::PaymentStatus;
use serde::{Deserialize, Serialize};

/// `pool_status` (no params, no token): ledger head, chain watcher, payout process, anomalies.
pub const METHOD_POOL_STATUS: &str = "pool_status";
/// `payout_state` (no params, no token): what the payout process needs to decide a run.
pub const METHOD_PAYOUT_STATE: &str = "payout_state";
/// `payment_append` (params `[event]`, token): one payment event through the pool's
/// serialized lane. Replies [`AppendReply`].
pub const METHOD_PAYMENT_APPEND: &str = "payment_append";
/// `payout_report` (params `[report]`, token): the payout process's status, shown by
/// `pool_status`. Replies `true`.
pub const METHOD_PAYOUT_REPORT: &str = "payout_report";

/// `ledger_archive` (params `[request]`, token): seal the ledger's records below the safe cut
/// of [`ArchiveRequest::before`] into a new archive file, and with [`ArchiveRequest::drop`] drop
/// them from the ledger once the archive is verified. Replies [`ArchiveReply`].
pub const METHOD_LEDGER_ARCHIVE: &str = "ledger_archive";

/// JSON-RPC error code: the call needs the token and had none or a wrong one.
pub const ERR_UNAUTHORIZED: i32 = -32001;
/// JSON-RPC error code: the lane refused the payment event (the message says why).
pub const ERR_REFUSED: i32 = -32010;
/// JSON-RPC error code: the pool cannot append now (ledger closed or failing); retry later.
pub const ERR_UNAVAILABLE: i32 = -32020;
/// JSON-RPC error code: the archive was not made (or its prefix not dropped); the message says
/// why (nothing below the safe cut, the file exists, ...).
pub const ERR_ARCHIVE: i32 = -32030;

/// The ledger position a reply reflects: its last record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHead {
    pub seq: u64,
    /// The record's chain hash, hex.
    pub hash: String,
}

/// Reply of `pool_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// `None` while the ledger is empty.
    pub ledger: Option<LedgerHead>,
    pub chain: ChainStatus,
    /// The payout process's last report (`None`: it never reported since the pool started).
    pub payout: Option<PayoutReport>,
    /// Matured blocks that later left the best chain (a reorg deeper than coinbase maturity):
    /// their credits stay final and no payment is rewritten, but the operator must look.
    pub deep_reorgs: Vec<BlockId>,
    /// Every anomaly of the projection, one line each (event sequence and what did not fit).
    pub anomalies: Vec<String>,
}

/// The chain watcher's view, as of its last check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStatus {
    pub tip_height: Option<u64>,
    /// Display hex.
    pub tip_hash: Option<String>,
    /// Unix time (ms) of the last completed check.
    pub last_check_ms: Option<u64>,
    /// The last check's error, if it failed (cleared by the next success).
    pub last_error: Option<String>,
    /// Found blocks not yet final (immature or orphaned) that the watcher compares each time.
    pub blocks_watched: u64,
}

/// Reply of `payout_state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutState {
    pub ledger: Option<LedgerHead>,
    /// The rule in force now (its network fee payer applies to a payment prepared now).
    pub rule: PayoutRule,
    /// Every address with a payable balance above zero (no debt), in address order.
    pub payable: Vec<PayableBalance>,
    /// Payments not final yet (prepared, signed or sent), by id.
    pub open_payments: Vec<OpenPayment>,
    /// The smallest payment id never used.
    pub next_payment_id: u64,
    /// Sum of the outputs of payments prepared in the last 24 hours (by record time), failed
    /// ones excluded: for the payout process's daily cap.
    pub prepared_last_24h: Sats,
    /// The operator's pause (`payouts_pause`): while set, prepare no new payment (the pool
    /// refuses it) and carry the open ones to the end.
    #[serde(default)]
    pub paused: Option<operator::PauseInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayableBalance {
    pub address: PayoutAddress,
    pub payable: Sats,
}

/// A payment that is not final, with what the payout process needs to resume it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPayment {
    pub payment_id: u64,
    pub status: PaymentStatus,
    pub outputs: Vec<PaymentOutput>,
    /// The network fee payer of the rule in force when it was prepared.
    pub network_fee_payer: NetworkFeePayer,
    /// Set once signed.
    pub txid: Option<Txid>,
    /// The signed transaction, hex; set once signed. After a crash exactly these bytes are
    /// broadcast again.
    pub raw_tx: Option<String>,
    /// Set once signed.
    pub network_fee: Sats,
}

/// Reply of `payment_append`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    /// The record holding the event (for a repeat: the existing one).
    pub seq: u64,
    pub hash: String,
    /// The request repeated the payment's latest event exactly; nothing was appended.
    pub repeated: bool,
}

/// The payout process's state as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutProcessState {
    /// Paying normally.
    Running,
    /// Stopped paying on purpose (the spending guard, an operator's pause).
    Paused,
    /// The last attempt failed (wallet locked, too little money, node down); retrying.
    Error,
}

/// Params of `payout_report`, and what `pool_status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutReport {
    pub state: PayoutProcessState,
    /// One line: what it did last, or why it paused or failed.
    pub message: String,
    /// Unix time (ms) of the report.
    pub time_ms: u64,
}

/// Params of `ledger_archive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRequest {
    /// Archive the records below this seq (lowered to the safe cut: the projection's horizon,
    /// rounded down to a stored value boundary).
    pub before: u64,
    /// The archive file the pool writes (a new file; a relative path is the pool's working
    /// directory's).
    pub out: String,
    /// Drop the archived records from the ledger once the archive is verified.
    #[serde(default)]
    pub drop: bool,
}

/// Reply of `ledger_archive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveReply {
    pub out: String,
    /// The first archived record (the ledger's base before).
    pub first_seq: u64,
    /// One past the last archived record.
    pub cut: u64,
    pub requested: u64,
    /// The projection's horizon when the cut was chosen.
    pub horizon: u64,
    pub records: u64,
    /// Stored values (sled entries) archived.
    pub values: u64,
    pub file_bytes: u64,
    /// Record `cut - 1`'s chain hash, hex.
    pub last_hash: String,
    pub dropped: bool,
    /// The ledger's base after the drop.
    pub base: Option<u64>,
    /// How long it took.
    pub ms: u64,
}

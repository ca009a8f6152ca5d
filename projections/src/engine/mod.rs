//! The projection engine: folds `(seq, &Event)` in sequence order into blocks, credits, balances,
//! payments and share statistics.
//!
//! Everything in [`State`] is a function of the event sequence alone: ids are given in order of
//! first appearance, collections whose order reaches the bytes are `Vec`s or `BTreeMap`s, and what
//! is derived for speed (the hash maps used for lookups, the open payments by address, the blocks
//! whose PROP round can still change) is rebuilt on load and never serialized. So incremental
//! application, a full replay and a snapshot plus its tail all give byte-identical state.
//!
//! Events that make no sense against the state (a maturity of an unknown block, a second
//! confirmation of a payment, ...) change nothing but are recorded as [`Anomaly`]s, so a replay
//! never stops on them and the operator can see them.

mod block_list;
mod blocks;
mod credits;
mod forget;
mod horizon;
mod payment_check;
mod payment_list;
mod payment_views;
mod payments;
mod rounds;

pub use block_list::{BlockDetailView, BlockEntry, BlockLife};
pub use forget::DEFAULT_MAX_SHARES;
pub use payment_check::{PaymentCheck, PaymentRefusal, CONFLICT_REASON_PREFIX};
pub use payment_list::PaymentDetailView;
pub use payment_views::{OpenPaymentView, PaymentView};

use crate::balance::Balance;
use crate::intern::{Addresses, Workers};
use crate::stats::{ShareCounters, ShareStats};
use crate::ProjectionError;
use pool_core::event::{
    BlockFound, NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, Txid,
    WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Version of the snapshot encoding written by [`Projection::snapshot`].
pub const SNAPSHOT_VERSION: u32 = 4;

/// Settings of the projection that do not come from events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionConfig {
    /// Blocks a coinbase needs on top of it before it is spendable (100 on Bitcoin-family
    /// chains). Used by [`Projection::blocks_due_for_maturity`]; maturity itself is an event.
    pub coinbase_maturity: u64,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            coinbase_maturity: 100,
        }
    }
}

/// The PPLNS window multiple used when no `PayoutRuleSet` was ever recorded: 2 × the work of the
/// block's network target.
pub const DEFAULT_PPLNS_WINDOW: (u32, u32) = (2, 1);

/// The rule in force before any `PayoutRuleSet` event: PPLNS with [`DEFAULT_PPLNS_WINDOW`], no
/// pool fee (so the empty fee address never receives anything), network fees paid by the pool.
pub fn default_rule() -> PayoutRule {
    PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: DEFAULT_PPLNS_WINDOW.0,
            window_denominator: DEFAULT_PPLNS_WINDOW.1,
        },
        fee_bps: 0,
        fee_address: PayoutAddress(String::new()),
        network_fee_payer: NetworkFeePayer::Pool,
    }
}

/// Where a found block is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockStatus {
    /// On the best chain, coinbase not yet spendable: credits are immature.
    Immature,
    /// Coinbase matured: credits are payable and final.
    Matured,
    /// Left the best chain: credits withdrawn (it may come back).
    Orphaned,
}

/// Something in the event sequence that did not fit the state; the event changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub seq: u64,
    pub kind: AnomalyKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnomalyKind {
    DuplicateBlock(BlockId),
    UnknownBlock(BlockId),
    /// Orphaning of a matured block: its credits are final, so it is ignored.
    OrphanedAfterMaturity(BlockId),
    AlreadyOrphaned(BlockId),
    /// A reinstatement of a block that is not orphaned.
    NotOrphaned(BlockId),
    /// A maturity of an orphaned block (it must be reinstated first).
    MaturedWhileOrphaned(BlockId),
    AlreadyMatured(BlockId),
    DuplicatePayment(u64),
    UnknownPayment(u64),
    /// A payment event that does not follow from the payment's state (e.g. sent twice).
    PaymentOutOfOrder(u64),
    /// A second `BlockCandidate` for a block id already known.
    DuplicateCandidate(BlockId),
    /// A verdict (`BlockFound` or `BlockRejected`) for a candidate that already had one.
    VerdictAfterVerdict(BlockId),
    /// A lifecycle event (orphaned, reinstated, matured) for a candidate without a found verdict.
    NotFound(BlockId),
    /// A `PaymentSent` whose txid or network fee differs from the payment's `PaymentSigned`.
    SentNotAsSigned(u64),
}

/// What the node said of a block record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Verdict {
    /// A `BlockCandidate` awaiting its verdict: it holds its PROP round but credits nothing.
    Pending,
    /// Found (`BlockFound`): credited by its rule.
    Found,
    /// Refused (`BlockRejected` after its candidate): its round rolls forward like an orphan's.
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Segment {
    /// Share weight per address id, sorted by id.
    weights: Vec<(u32, Work)>,
    /// The block whose round holds this segment (`None`: the open round).
    owner: Option<u32>,
    /// Owned by a matured block: never moves again.
    frozen: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BlockRecord {
    found: BlockFound,
    /// Sequence of its verdict (`BlockFound`, or `BlockRejected` for a refused candidate; a
    /// candidate's own while it waits).
    found_seq: u64,
    /// Sequence of the block's `BlockCandidate`, when it had one: the position it is credited
    /// at (its rule, PPLNS window and PROP round were fixed there).
    candidate_seq: Option<u64>,
    verdict: Verdict,
    status: BlockStatus,
    rule: PayoutRule,
    finder: u32,
    fee_address: u32,
    fee: Sats,
    /// Miners' credits (sorted by address id); with `fee` they sum to the reward.
    credits: Vec<(u32, Sats)>,
    /// Whether `credits` and `fee` are currently counted in immature balances.
    in_immature: bool,
    /// Shares accepted before the block (its PPLNS window ends here).
    share_end: u64,
    /// Its PPLNS credits were computed (at its verdict, or where it was found without a
    /// candidate). They depend only on what never changes (its rule, reward, network target and
    /// the shares before it), so a reinstatement counts them again instead of reading the window
    /// once more: an orphan pins no shares.
    pplns_credited: bool,
    /// The segment of shares between the previous found block and this one.
    native_segment: u32,
    /// Segments of the open round taken on reinstatement (PROP; see the crate docs).
    adopted_segments: Vec<u32>,
    /// The segments of its PROP round.
    round: Vec<u32>,
}

/// Where a payment is in its life (the crate docs give the table of what follows what).
/// Serialized by position: new variants are appended at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    /// Amounts left payable; no transaction yet.
    Prepared,
    /// Broadcast accepted; the network fee is booked.
    Sent,
    /// Final: the amounts (net of deductions) are paid.
    Confirmed,
    /// Final: the amounts returned to payable.
    Failed,
    /// The wallet signed its transaction (recorded before the first broadcast).
    Signed,
}

impl PaymentStatus {
    /// Prepared, signed or sent: money is in flight and the payment may still move.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            PaymentStatus::Prepared | PaymentStatus::Signed | PaymentStatus::Sent
        )
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaymentStatus::Prepared => "prepared",
            PaymentStatus::Signed => "signed",
            PaymentStatus::Sent => "sent",
            PaymentStatus::Confirmed => "confirmed",
            PaymentStatus::Failed => "failed",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PaymentRecord {
    outputs: Vec<(u32, Sats)>,
    payer: NetworkFeePayer,
    fee_address: u32,
    status: PaymentStatus,
    /// Sequence of the payment's latest event that the fold took (what a repeat answers with).
    last_seq: u64,
    /// The transaction's id: from `PaymentSigned`, or for ledgers written before signing was
    /// recorded, from `PaymentSent`; a confirmation's txid replaces it.
    txid: Option<Txid>,
    /// The signed transaction, while the payment is open (the ledger keeps it for good; the
    /// projection drops it once the payment is final, so snapshots do not grow with history).
    raw_tx: Option<Vec<u8>>,
    /// The transaction's network fee: known once signed (or sent, on old ledgers), booked only
    /// at `PaymentSent`.
    network_fee: Sats,
    /// Per output: the network fee deducted from it (miners pay).
    deductions: Vec<Sats>,
    /// The network fee booked against the fee address (pool pays, or the excess over the
    /// payment).
    pool_network_fee: Sats,
    /// The `PaymentConfirmed` height, once confirmed.
    confirmed_height: Option<u64>,
    /// The `PaymentFailed` reason, once failed.
    failure_reason: Option<String>,
}

/// Lookups over the open payments (prepared, signed or sent), derived from `payments`: rebuilt
/// on load and never serialized.
#[derive(Clone, Debug, Default)]
struct OpenPayments {
    ids: BTreeSet<u64>,
    /// (address id, payment id) for every output of an open payment.
    by_address: BTreeSet<(u32, u64)>,
}

/// Everything the projection knows, in its canonical (serialized) form.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    config: ProjectionConfig,
    /// Latest event time seen (shares and blocks): "now" for the sliding windows.
    now_ms: u64,
    rules: Vec<(u64, PayoutRule)>,
    addresses: Addresses,
    workers: Workers,
    /// Per retained share (from share number `share_base` on), in acceptance order: its address
    /// id. A forgetting projection drops the old prefix (engine/forget.rs).
    share_address: Vec<u32>,
    /// Per retained share: the total weight of all shares up to and including it (PPLNS prefix
    /// sums, from the first share ever).
    share_cumulative: Vec<Work>,
    /// Number (from 0) of the first retained share: shares before it were forgotten.
    share_base: u64,
    /// Total weight of the shares before `share_base` (the prefix sum just before it).
    share_cumulative_base: Work,
    /// Every `mark_every`-th share (numbers 0, k, 2k, ...): its ledger seq and the total weight
    /// of the shares before it. Never dropped (40 bytes per k shares): where a refill reads the
    /// ledger, and where [`Projection::horizon`] puts a window's first share.
    share_marks: Vec<ShareMark>,
    /// The latest share's network target (a future block's PPLNS window is estimated from it).
    latest_network_target: Option<Target>,
    /// How the projection forgets shares (`None`: it keeps every share, as before).
    forget: Option<Forget>,
    /// Weight per address id accepted since the last segment boundary.
    open_round: Vec<Work>,
    /// Address ids with weight in `open_round`, in first-touch order.
    open_round_touched: Vec<u32>,
    segments: Vec<Segment>,
    blocks: Vec<BlockRecord>,
    block_index: BTreeMap<BlockId, u32>,
    /// The blocks whose PROP round an event on another block can still change or feed: the
    /// immature ones (open candidates too) and the orphaned or refused ones with a segment not
    /// yet frozen (engine/rounds.rs). Derived from `blocks` and `segments`: rebuilt on load,
    /// never serialized.
    #[serde(skip)]
    unsettled: BTreeSet<u32>,
    rejected: Vec<pool_core::event::BlockRejected>,
    balances: Vec<Balance>,
    payments: BTreeMap<u64, PaymentRecord>,
    #[serde(skip)]
    open_payments: OpenPayments,
    /// Walk every block on every block event, as the fold did before its walk became local: the
    /// oracle the local walk is tested against ([`Projection::with_full_round_walk`]). Not part
    /// of the state: never serialized, and a loaded snapshot walks locally.
    #[serde(skip)]
    full_round_walk: bool,
    share_counters: ShareCounters,
    anomalies: Vec<Anomaly>,
}

/// A share mark: see `State::share_marks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ShareMark {
    seq: u64,
    cumulative_before: Work,
}

/// A forgetting projection's settings (engine/forget.rs), part of its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Forget {
    /// Shares between marks; shares are forgotten a whole mark interval at a time.
    mark_every: u64,
    /// Most shares kept in memory (rounded up to whole mark intervals) whatever the windows;
    /// `None`: none are dropped (only the marks differ from [`Projection::new`]'s; for tests).
    max_shares: Option<u64>,
}

/// Shares between marks of a projection that keeps every share.
const MARK_EVERY: u64 = 65_536;

/// The projection: state plus the sequence number of the next event it expects.
#[derive(Clone, Debug)]
pub struct Projection {
    next_seq: u64,
    state: State,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    version: u32,
    next_seq: u64,
    state: State,
}

/// A found block as the query API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub block_id: BlockId,
    pub height: u64,
    pub reward: Sats,
    pub finder: PayoutAddress,
    pub worker: WorkerName,
    pub time_ms: u64,
    pub found_seq: u64,
    /// Sequence of its `BlockCandidate` (`None` for blocks recorded before candidates existed):
    /// the position in the ledger its credits were computed at.
    pub candidate_seq: Option<u64>,
    pub status: BlockStatus,
    pub scheme: PayoutScheme,
    pub fee: Sats,
    pub fee_address: PayoutAddress,
    /// Miners' credits; with `fee` they sum to `reward`. For an orphaned block: the credits it had
    /// when it left the chain (not counted in any balance).
    pub credits: BTreeMap<PayoutAddress, Sats>,
}

/// Pool-wide totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTotals {
    pub shares: ShareStats,
    pub addresses: u64,
    pub workers: u64,
    pub blocks_immature: u64,
    pub blocks_matured: u64,
    pub blocks_orphaned: u64,
    pub blocks_rejected: u64,
    /// Rewards of blocks that are not orphaned.
    pub rewards: Sats,
    /// Pool fees of blocks that are not orphaned.
    pub pool_fees: Sats,
    /// Sum of all address balances.
    pub balances: Balance,
}

impl Projection {
    pub fn new(config: ProjectionConfig) -> Projection {
        Projection {
            next_seq: 0,
            state: State {
                config,
                ..State::default()
            },
        }
    }

    /// A projection that recomputes every block's PROP round on every block event, as the fold
    /// did before it walked only the blocks an event can change: quadratic in the number of
    /// blocks, kept as the oracle the tests compare the fold with (same state bytes after every
    /// event). Not for use; a snapshot of it loads as a plain projection.
    #[doc(hidden)]
    pub fn with_full_round_walk(config: ProjectionConfig) -> Projection {
        let mut p = Projection::new(config);
        p.state.full_round_walk = true;
        p
    }

    /// A projection that forgets what no block can credit any more: the live pool's
    /// (engine/forget.rs). Its views, balances and credits are those of [`Projection::new`];
    /// [`Projection::apply`] may refuse a block event with [`ProjectionError::SharesForgotten`]
    /// until the shares [`Projection::refill_range`] names are given back with
    /// [`Projection::refill`].
    pub fn forgetting(config: ProjectionConfig) -> Projection {
        Projection::forgetting_with(config, MARK_EVERY, forget::DEFAULT_MAX_SHARES)
    }

    /// [`Projection::forgetting`] with its intervals spelled out (tests use tiny ones).
    #[doc(hidden)]
    pub fn forgetting_with(
        config: ProjectionConfig,
        mark_every: u64,
        max_shares: u64,
    ) -> Projection {
        let mut p = Projection::new(config);
        p.state.forget = Some(Forget {
            mark_every: mark_every.max(1),
            max_shares: Some(max_shares),
        });
        p
    }

    /// A projection that keeps every share, with share marks every `mark_every` shares (so its
    /// [`Projection::horizon`] has the resolution of a [`Projection::forgetting_with`] one's).
    #[doc(hidden)]
    pub fn keeping_with_marks(config: ProjectionConfig, mark_every: u64) -> Projection {
        let mut p = Projection::new(config);
        p.state.forget = Some(Forget {
            mark_every: mark_every.max(1),
            max_shares: None,
        });
        p
    }

    /// Whether this projection forgets old shares ([`Projection::forgetting`]).
    pub fn is_forgetting(&self) -> bool {
        self.state.forget.is_some_and(|f| f.max_shares.is_some())
    }

    /// The sequence number the next event must have at least (one past the last applied).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Applies one event. Sequence numbers must increase (the ledger guarantees they are
    /// contiguous); an event at or below one already applied is refused and changes nothing.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Result<(), ProjectionError> {
        if seq < self.next_seq {
            return Err(ProjectionError::OutOfOrder {
                expected: self.next_seq,
                got: seq,
            });
        }
        if self.state.needs_refill(event) {
            return Err(ProjectionError::SharesForgotten { seq });
        }
        self.next_seq = seq + 1;
        let s = &mut self.state;
        match event {
            Event::ShareAccepted(share) => s.on_share(seq, share),
            Event::ShareWithWork(w) => s.on_share(seq, &w.share),
            // Jobs are for auditors (share headers, the anchor); they credit nothing.
            Event::JobCreated(_) => {}
            // Batch markers of the share stream (scale-out): bookkeeping, no credit.
            Event::StreamBatch(_) => {}
            Event::BlockFound(b) => s.on_block_found(seq, b),
            Event::BlockRejected(r) => s.on_block_rejected(seq, r),
            Event::BlockCandidate(c) => s.on_block_candidate(seq, c),
            Event::BlockOrphaned(b) => s.on_orphaned(seq, &b.block_id),
            Event::BlockReinstated(b) => s.on_reinstated(seq, &b.block_id),
            Event::BlockMatured(b) => s.on_matured(seq, &b.block_id),
            Event::PayoutRuleSet(rule) => s.rules.push((seq, rule.clone())),
            Event::PaymentPrepared(p) => s.on_payment_prepared(seq, p),
            Event::PaymentSent(p) => s.on_payment_sent(seq, p),
            Event::PaymentConfirmed(p) => s.on_payment_confirmed(seq, p),
            Event::PaymentFailed(p) => s.on_payment_failed(seq, p),
            Event::PaymentSigned(p) => s.on_payment_signed(seq, p),
        }
        Ok(())
    }

    /// The state with the sequence it reflects, for a fast restart ([`Projection::from_snapshot`]).
    pub fn snapshot(&self) -> Result<Vec<u8>, ProjectionError> {
        let file = SnapshotFileRef {
            version: SNAPSHOT_VERSION,
            next_seq: self.next_seq,
            state: &self.state,
        };
        bincode::serialize(&file).map_err(|e| ProjectionError::Snapshot(e.to_string()))
    }

    /// Loads a snapshot written by [`Projection::snapshot`]; apply events from
    /// [`Projection::next_seq`] on to catch up.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Projection, ProjectionError> {
        let file: SnapshotFile =
            bincode::deserialize(bytes).map_err(|e| ProjectionError::Snapshot(e.to_string()))?;
        if file.version != SNAPSHOT_VERSION {
            return Err(ProjectionError::SnapshotVersion(file.version));
        }
        let mut state = file.state;
        state.addresses.rebuild_index();
        state.workers.rebuild_index();
        state.check_consistency()?;
        state.rebuild_open_payments();
        state.rebuild_unsettled();
        Ok(Projection {
            next_seq: file.next_seq,
            state,
        })
    }

    /// The canonical encoding of the state without the sequence number: two projections with the
    /// same bytes here report the same everything.
    pub fn state_bytes(&self) -> Result<Vec<u8>, ProjectionError> {
        bincode::serialize(&self.state).map_err(|e| ProjectionError::Snapshot(e.to_string()))
    }

    pub fn config(&self) -> &ProjectionConfig {
        &self.state.config
    }

    /// The payout rule in force now (the default one if none was recorded).
    pub fn rule_in_force(&self) -> PayoutRule {
        self.state.current_rule()
    }

    /// Every rule recorded, with the sequence of its `PayoutRuleSet` event.
    pub fn rule_history(&self) -> &[(u64, PayoutRule)] {
        &self.state.rules
    }

    pub fn balance(&self, address: &PayoutAddress) -> Option<Balance> {
        let id = self.state.addresses.get(&address.0)?;
        Some(self.state.balances[id as usize])
    }

    pub fn balances(&self) -> BTreeMap<PayoutAddress, Balance> {
        self.state
            .addresses
            .names
            .iter()
            .zip(&self.state.balances)
            // The default rule's empty fee address is listed only once it holds something.
            .filter(|(a, b)| !a.0.is_empty() || **b != Balance::default())
            .map(|(a, b)| (a.clone(), *b))
            .collect()
    }

    /// Found blocks in ledger order (of their candidates, where they had one).
    pub fn blocks(&self) -> Vec<BlockView> {
        self.state
            .blocks
            .iter()
            .filter(|b| b.verdict == Verdict::Found)
            .map(|b| self.state.block_view(b))
            .collect()
    }

    /// A found block by id (`None` for unknown ids and for candidates not found).
    pub fn block(&self, id: &BlockId) -> Option<BlockView> {
        let i = *self.state.block_index.get(id)?;
        let b = &self.state.blocks[i as usize];
        (b.verdict == Verdict::Found).then(|| self.state.block_view(b))
    }

    /// Candidates without a verdict yet, as `(block id, height, candidate seq)` in ledger order.
    pub fn open_candidates(&self) -> Vec<(BlockId, u64, u64)> {
        self.state
            .blocks
            .iter()
            .filter(|b| b.verdict == Verdict::Pending)
            .map(|b| {
                let seq = b.candidate_seq.unwrap_or(b.found_seq);
                (b.found.block_id, b.found.height, seq)
            })
            .collect()
    }

    /// Blocks the node refused.
    pub fn rejected_blocks(&self) -> &[pool_core::event::BlockRejected] {
        &self.state.rejected
    }

    /// Found blocks in ledger order as `(block id, height, status)`: their lifecycle without
    /// the credits [`Projection::blocks`] copies (the chain watcher reads this on every check).
    pub fn block_statuses(&self) -> impl Iterator<Item = (BlockId, u64, BlockStatus)> + '_ {
        self.state
            .blocks
            .iter()
            .filter(|b| b.verdict == Verdict::Found)
            .map(|b| (b.found.block_id, b.found.height, b.status))
    }

    /// Immature blocks whose coinbase is spendable by the wallet's rule at `tip_height`
    /// (`tip_height >= height + coinbase_maturity`), for the chain watcher.
    pub fn blocks_due_for_maturity(&self, tip_height: u64) -> Vec<BlockId> {
        let maturity = self.state.config.coinbase_maturity;
        self.state
            .blocks
            .iter()
            .filter(|b| b.verdict == Verdict::Found && b.status == BlockStatus::Immature)
            .filter(|b| tip_height >= b.found.height.saturating_add(maturity))
            .map(|b| b.found.block_id)
            .collect()
    }

    /// Matured blocks that a later `BlockOrphaned` hit (a reorg deeper than coinbase maturity,
    /// [`AnomalyKind::OrphanedAfterMaturity`]), each once, in ledger order of the first hit.
    /// Their credits stay final; the operator must look.
    pub fn deep_reorgs(&self) -> Vec<BlockId> {
        let mut out: Vec<BlockId> = Vec::new();
        for a in &self.state.anomalies {
            if let AnomalyKind::OrphanedAfterMaturity(id) = a.kind {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    /// Share statistics per worker, as of the latest event time.
    pub fn worker_stats(&self) -> BTreeMap<(PayoutAddress, WorkerName), ShareStats> {
        let s = &self.state;
        s.workers
            .names
            .iter()
            .zip(s.share_counters.reports(s.now_ms))
            .map(|((a, w), report)| ((s.addresses.name(*a).clone(), w.clone()), report))
            .collect()
    }

    /// Share statistics per payout address (the sum of its workers').
    pub fn address_stats(&self) -> BTreeMap<PayoutAddress, ShareStats> {
        let s = &self.state;
        let mut out: BTreeMap<PayoutAddress, ShareStats> = BTreeMap::new();
        for ((a, _), report) in s
            .workers
            .names
            .iter()
            .zip(s.share_counters.reports(s.now_ms))
        {
            out.entry(s.addresses.name(*a).clone())
                .or_insert_with(ShareStats::empty)
                .merge(&report);
        }
        out
    }

    pub fn pool_totals(&self) -> PoolTotals {
        let s = &self.state;
        let mut t = PoolTotals {
            // The pool's windows are the sum of its workers' (cheaper to fold than to keep).
            shares: s.share_counters.reports(s.now_ms).iter().fold(
                ShareStats::empty(),
                |mut acc, report| {
                    acc.merge(report);
                    acc
                },
            ),
            addresses: s.addresses.len() as u64,
            workers: s.workers.names.len() as u64,
            blocks_immature: 0,
            blocks_matured: 0,
            blocks_orphaned: 0,
            blocks_rejected: s.rejected.len() as u64,
            rewards: Sats::ZERO,
            pool_fees: Sats::ZERO,
            balances: Balance::default(),
        };
        for b in s.blocks.iter().filter(|b| b.verdict == Verdict::Found) {
            match b.status {
                BlockStatus::Immature => t.blocks_immature += 1,
                BlockStatus::Matured => t.blocks_matured += 1,
                BlockStatus::Orphaned => t.blocks_orphaned += 1,
            }
            if b.status != BlockStatus::Orphaned {
                t.rewards.0 = t.rewards.0.saturating_add(b.found.reward.0);
                t.pool_fees.0 = t.pool_fees.0.saturating_add(b.fee.0);
            }
        }
        for b in &s.balances {
            t.balances.immature.0 = t.balances.immature.0.saturating_add(b.immature.0);
            t.balances.payable.0 = t.balances.payable.0.saturating_add(b.payable.0);
            t.balances.debt.0 = t.balances.debt.0.saturating_add(b.debt.0);
            t.balances.in_flight.0 = t.balances.in_flight.0.saturating_add(b.in_flight.0);
            t.balances.paid.0 = t.balances.paid.0.saturating_add(b.paid.0);
            t.balances.network_fees.0 = t.balances.network_fees.0.saturating_add(b.network_fees.0);
        }
        t
    }

    /// Events that did not fit the state (and changed nothing).
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.state.anomalies
    }

    /// Number of shares folded so far (forgotten ones too).
    pub fn share_count(&self) -> u64 {
        self.state.share_total()
    }

    /// Number of shares held in memory (those a forgetting projection has not dropped).
    pub fn retained_shares(&self) -> u64 {
        self.state.share_address.len() as u64
    }
}

#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    version: u32,
    next_seq: u64,
    state: &'a State,
}

impl State {
    fn current_rule(&self) -> PayoutRule {
        self.rules
            .last()
            .map(|(_, r)| r.clone())
            .unwrap_or_else(default_rule)
    }

    fn anomaly(&mut self, seq: u64, kind: AnomalyKind) {
        self.anomalies.push(Anomaly { seq, kind });
    }

    fn intern_address(&mut self, address: &PayoutAddress) -> u32 {
        let (id, new) = self.addresses.intern(address);
        if new {
            self.balances.push(Balance::default());
            self.open_round.push(Work::ZERO);
        }
        id
    }

    /// Shares folded so far, forgotten ones too.
    fn share_total(&self) -> u64 {
        self.share_base + self.share_address.len() as u64
    }

    fn mark_every(&self) -> u64 {
        self.forget.map_or(MARK_EVERY, |f| f.mark_every)
    }

    #[inline]
    fn on_share(&mut self, seq: u64, share: &ShareAccepted) {
        let a = self.intern_address(&share.address);
        let (w, new) = self.workers.intern(a, &share.worker);
        if new {
            self.share_counters.add_worker();
        }
        let weight = share.weight;
        let before = self
            .share_cumulative
            .last()
            .copied()
            .unwrap_or(self.share_cumulative_base);
        let number = self.share_total();
        if number % self.mark_every() == 0 {
            self.share_marks.push(ShareMark {
                seq,
                cumulative_before: before,
            });
            self.forget_shares();
        }
        self.share_cumulative.push(before + weight);
        self.share_address.push(a);
        if self.latest_network_target != Some(share.network_target) {
            self.latest_network_target = Some(share.network_target);
        }
        if !weight.is_zero() {
            let slot = &mut self.open_round[a as usize];
            if slot.is_zero() {
                self.open_round_touched.push(a);
            }
            *slot += weight;
        }
        self.share_counters.add(w, share.time_ms, weight);
        self.now_ms = self.now_ms.max(share.time_ms);
    }

    /// Ends the open round's current segment and returns the new segment's index.
    fn close_open_segment(&mut self, owner: Option<u32>) -> u32 {
        let mut touched = std::mem::take(&mut self.open_round_touched);
        touched.sort_unstable();
        let weights = touched
            .iter()
            .map(|a| {
                let w = std::mem::take(&mut self.open_round[*a as usize]);
                (*a, w)
            })
            .collect();
        self.segments.push(Segment {
            weights,
            owner,
            frozen: false,
        });
        (self.segments.len() - 1) as u32
    }

    /// Checks the indices a loaded snapshot relies on, so a damaged file is an error, not a panic.
    fn check_consistency(&self) -> Result<(), ProjectionError> {
        let n_addr = self.addresses.len();
        let n_seg = self.segments.len() as u32;
        let n_blocks = self.blocks.len() as u32;
        let bad = |what: &str| Err(ProjectionError::SnapshotCorrupt(what.to_string()));
        if self.balances.len() != n_addr || self.open_round.len() != n_addr {
            return bad("address tables differ in length");
        }
        if self.share_counters.workers() != self.workers.names.len()
            || self
                .workers
                .names
                .iter()
                .any(|(a, _)| *a as usize >= n_addr)
        {
            return bad("worker table");
        }
        let marks_ok = self.share_marks.len() as u64
            == self.share_total().div_ceil(self.mark_every())
            && self.share_base % self.mark_every() == 0;
        if !marks_ok {
            return bad("share marks");
        }
        if self.share_address.len() != self.share_cumulative.len()
            || self.share_address.iter().any(|a| *a as usize >= n_addr)
            || self
                .open_round_touched
                .iter()
                .any(|a| *a as usize >= n_addr)
        {
            return bad("share log");
        }
        let seg_ok = self.segments.iter().all(|s| {
            s.weights.iter().all(|(a, _)| (*a as usize) < n_addr)
                && s.owner.map_or(true, |o| o < n_blocks)
        });
        if !seg_ok {
            return bad("segments");
        }
        let blocks_ok = self.blocks.iter().all(|b| {
            (b.finder as usize) < n_addr
                && (b.fee_address as usize) < n_addr
                && b.credits.iter().all(|(a, _)| (*a as usize) < n_addr)
                && b.native_segment < n_seg
                && b.adopted_segments.iter().all(|s| *s < n_seg)
                && b.round.iter().all(|s| *s < n_seg)
                && b.share_end <= self.share_total()
        });
        if !blocks_ok || self.block_index.values().any(|i| *i >= n_blocks) {
            return bad("blocks");
        }
        let payments_ok = self.payments.values().all(|p| {
            (p.fee_address as usize) < n_addr
                && p.outputs.iter().all(|(a, _)| (*a as usize) < n_addr)
                && p.deductions.len() == p.outputs.len()
        });
        if !payments_ok {
            return bad("payments");
        }
        Ok(())
    }
}

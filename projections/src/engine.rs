//! The projection engine: folds `(seq, &Event)` in sequence order into blocks, credits, balances,
//! payments and share statistics.
//!
//! Everything in [`State`] is a function of the event sequence alone: ids are given in order of
//! first appearance, collections whose order reaches the bytes are `Vec`s or `BTreeMap`s, and the
//! hash maps used for lookups are rebuilt on load and never serialized. So incremental
//! application, a full replay and a snapshot plus its tail all give byte-identical state.
//!
//! Events that make no sense against the state (a maturity of an unknown block, a second
//! confirmation of a payment, ...) change nothing but are recorded as [`Anomaly`]s, so a replay
//! never stops on them and the operator can see them.

use crate::balance::Balance;
use crate::intern::{Addresses, Workers};
use crate::split::{pool_fee, split_by_weight, split_network_fee};
use crate::stats::{ShareCounters, ShareStats};
use crate::ProjectionError;
use pool_core::event::{
    BlockFound, NetworkFeePayer, PaymentConfirmed, PaymentFailed, PaymentPrepared, PaymentSent,
    PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, Txid, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Work};
use ruint::aliases::{U256, U512};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the snapshot encoding written by [`Projection::snapshot`].
pub const SNAPSHOT_VERSION: u32 = 2;

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
    /// The segment of shares between the previous found block and this one.
    native_segment: u32,
    /// Segments of the open round taken on reinstatement (PROP; see the crate docs).
    adopted_segments: Vec<u32>,
    /// The segments of its PROP round.
    round: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    Prepared,
    Sent,
    Confirmed,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PaymentRecord {
    outputs: Vec<(u32, Sats)>,
    payer: NetworkFeePayer,
    fee_address: u32,
    status: PaymentStatus,
    txid: Option<Txid>,
    network_fee: Sats,
    /// Per output: the network fee deducted from it (miners pay).
    deductions: Vec<Sats>,
    /// The network fee booked against the fee address (pool pays, or the excess over the
    /// payment).
    pool_network_fee: Sats,
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
    /// Per share, in acceptance order: its address id.
    share_address: Vec<u32>,
    /// Per share: the total weight of all shares up to and including it (PPLNS prefix sums).
    share_cumulative: Vec<Work>,
    /// Weight per address id accepted since the last segment boundary.
    open_round: Vec<Work>,
    /// Address ids with weight in `open_round`, in first-touch order.
    open_round_touched: Vec<u32>,
    segments: Vec<Segment>,
    blocks: Vec<BlockRecord>,
    block_index: BTreeMap<BlockId, u32>,
    rejected: Vec<pool_core::event::BlockRejected>,
    balances: Vec<Balance>,
    payments: BTreeMap<u64, PaymentRecord>,
    share_counters: ShareCounters,
    anomalies: Vec<Anomaly>,
}

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

/// A payment as the query API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub payment_id: u64,
    pub status: PaymentStatus,
    pub txid: Option<Txid>,
    pub outputs: Vec<(PayoutAddress, Sats)>,
    pub network_fee: Sats,
    pub network_fee_payer: NetworkFeePayer,
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
        self.next_seq = seq + 1;
        let s = &mut self.state;
        match event {
            Event::ShareAccepted(share) => s.on_share(share),
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

    /// Payments by id.
    pub fn payments(&self) -> Vec<PaymentView> {
        let s = &self.state;
        s.payments
            .iter()
            .map(|(id, p)| PaymentView {
                payment_id: *id,
                status: p.status,
                txid: p.txid,
                outputs: p
                    .outputs
                    .iter()
                    .map(|(a, amount)| (s.addresses.name(*a).clone(), *amount))
                    .collect(),
                network_fee: p.network_fee,
                network_fee_payer: p.payer,
            })
            .collect()
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

    /// Number of shares folded so far.
    pub fn share_count(&self) -> u64 {
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

    #[inline]
    fn on_share(&mut self, share: &ShareAccepted) {
        let a = self.intern_address(&share.address);
        let (w, new) = self.workers.intern(a, &share.worker);
        if new {
            self.share_counters.add_worker();
        }
        let weight = share.weight;
        let before = self.share_cumulative.last().copied().unwrap_or(Work::ZERO);
        self.share_cumulative.push(before + weight);
        self.share_address.push(a);
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

    fn on_block_found(&mut self, seq: u64, found: &BlockFound) {
        self.now_ms = self.now_ms.max(found.time_ms);
        if let Some(&i) = self.block_index.get(&found.block_id) {
            let b = &self.blocks[i as usize];
            match (b.candidate_seq, b.verdict) {
                // The verdict on a candidate: credited where the candidate stands.
                (Some(_), Verdict::Pending) => {
                    let finder = self.intern_address(&found.finder);
                    let b = &mut self.blocks[i as usize];
                    b.verdict = Verdict::Found;
                    b.found_seq = seq;
                    b.fee = pool_fee(found.reward, b.rule.fee_bps);
                    b.finder = finder;
                    b.found = found.clone();
                    self.reassign_rounds(Some(i));
                }
                (Some(_), _) => self.anomaly(seq, AnomalyKind::VerdictAfterVerdict(found.block_id)),
                (None, _) => self.anomaly(seq, AnomalyKind::DuplicateBlock(found.block_id)),
            }
            return;
        }
        // No candidate before it (ledgers written before candidates existed): credited here.
        self.push_block(seq, found.clone(), None);
    }

    fn on_block_candidate(&mut self, seq: u64, c: &pool_core::event::BlockCandidate) {
        self.now_ms = self.now_ms.max(c.time_ms);
        if self.block_index.contains_key(&c.block_id) {
            self.anomaly(seq, AnomalyKind::DuplicateCandidate(c.block_id));
            return;
        }
        let found = BlockFound {
            height: c.height,
            block_id: c.block_id,
            reward: c.reward,
            network_target: c.network_target,
            finder: c.finder.clone(),
            worker: c.worker.clone(),
            time_ms: c.time_ms,
        };
        self.push_block(seq, found, Some(seq));
    }

    fn on_block_rejected(&mut self, seq: u64, r: &pool_core::event::BlockRejected) {
        self.now_ms = self.now_ms.max(r.time_ms);
        if let Some(&i) = self.block_index.get(&r.block_id) {
            let b = &mut self.blocks[i as usize];
            match (b.candidate_seq, b.verdict) {
                (Some(_), Verdict::Pending) => {
                    // Never credited; its round rolls forward as an orphan's does.
                    b.verdict = Verdict::Refused;
                    b.status = BlockStatus::Orphaned;
                    self.rejected.push(r.clone());
                    self.reassign_rounds(None);
                }
                (Some(_), _) => self.anomaly(seq, AnomalyKind::VerdictAfterVerdict(r.block_id)),
                (None, _) => self.rejected.push(r.clone()),
            }
            return;
        }
        self.rejected.push(r.clone());
    }

    /// Adds a block record at this point of the ledger: the rule in force, the shares so far
    /// (PPLNS) and the open round's segment (PROP) are its. A candidate (`candidate_seq`) waits
    /// for its verdict; a found block is credited at once.
    fn push_block(&mut self, seq: u64, found: BlockFound, candidate_seq: Option<u64>) {
        let index = self.blocks.len() as u32;
        let rule = self.current_rule();
        let finder = self.intern_address(&found.finder);
        let fee_address = self.intern_address(&rule.fee_address);
        let native_segment = self.close_open_segment(None);
        let block_id = found.block_id;
        let verdict = match candidate_seq {
            Some(_) => Verdict::Pending,
            None => Verdict::Found,
        };
        self.blocks.push(BlockRecord {
            candidate_seq,
            verdict,
            found_seq: seq,
            status: BlockStatus::Immature,
            fee: pool_fee(found.reward, rule.fee_bps),
            rule,
            finder,
            fee_address,
            found,
            credits: Vec::new(),
            in_immature: false,
            share_end: self.share_address.len() as u64,
            native_segment,
            adopted_segments: Vec::new(),
            round: Vec::new(),
        });
        self.block_index.insert(block_id, index);
        self.reassign_rounds((verdict == Verdict::Found).then_some(index));
    }

    /// A found block's index; an unknown id, or a candidate that was not found, is an anomaly.
    fn find_block(&mut self, seq: u64, id: &BlockId) -> Option<u32> {
        match self.block_index.get(id).copied() {
            None => {
                self.anomaly(seq, AnomalyKind::UnknownBlock(*id));
                None
            }
            Some(i) if self.blocks[i as usize].verdict != Verdict::Found => {
                self.anomaly(seq, AnomalyKind::NotFound(*id));
                None
            }
            found => found,
        }
    }

    fn on_orphaned(&mut self, seq: u64, id: &BlockId) {
        let Some(i) = self.find_block(seq, id) else {
            return;
        };
        match self.blocks[i as usize].status {
            BlockStatus::Matured => self.anomaly(seq, AnomalyKind::OrphanedAfterMaturity(*id)),
            BlockStatus::Orphaned => self.anomaly(seq, AnomalyKind::AlreadyOrphaned(*id)),
            BlockStatus::Immature => {
                self.uncount(i);
                self.blocks[i as usize].status = BlockStatus::Orphaned;
                self.reassign_rounds(None);
            }
        }
    }

    fn on_reinstated(&mut self, seq: u64, id: &BlockId) {
        let Some(i) = self.find_block(seq, id) else {
            return;
        };
        if self.blocks[i as usize].status != BlockStatus::Orphaned {
            self.anomaly(seq, AnomalyKind::NotOrphaned(*id));
            return;
        }
        self.blocks[i as usize].status = BlockStatus::Immature;
        self.reassign_rounds(Some(i));
        // Its round went into a block that matured meanwhile (and stays credited there): the
        // block's reward goes to the open round instead, which it takes as its round.
        let b = &self.blocks[i as usize];
        let native_taken = self.segments[b.native_segment as usize].owner != Some(i);
        if b.rule.scheme == PayoutScheme::Prop
            && b.round.is_empty()
            && native_taken
            && !self.open_round_touched.is_empty()
        {
            let seg = self.close_open_segment(None);
            self.blocks[i as usize].adopted_segments.push(seg);
            self.reassign_rounds(Some(i));
        }
    }

    fn on_matured(&mut self, seq: u64, id: &BlockId) {
        let Some(i) = self.find_block(seq, id) else {
            return;
        };
        match self.blocks[i as usize].status {
            BlockStatus::Matured => self.anomaly(seq, AnomalyKind::AlreadyMatured(*id)),
            BlockStatus::Orphaned => self.anomaly(seq, AnomalyKind::MaturedWhileOrphaned(*id)),
            BlockStatus::Immature => {
                let b = &mut self.blocks[i as usize];
                b.status = BlockStatus::Matured;
                b.in_immature = false;
                let fee = (b.fee_address, b.fee);
                let moves: Vec<(u32, Sats)> = b
                    .credits
                    .iter()
                    .copied()
                    .chain(std::iter::once(fee))
                    .collect();
                let round = b.round.clone();
                for (a, amount) in moves {
                    let bal = &mut self.balances[a as usize];
                    bal.sub_immature(amount);
                    bal.credit_payable(amount);
                }
                for s in round {
                    self.segments[s as usize].frozen = true;
                }
            }
        }
    }

    /// Removes a block's credits from the immature balances (if they are there).
    fn uncount(&mut self, i: u32) {
        let b = &mut self.blocks[i as usize];
        if !b.in_immature {
            return;
        }
        b.in_immature = false;
        for (a, amount) in b
            .credits
            .iter()
            .chain(std::iter::once(&(b.fee_address, b.fee)))
        {
            self.balances[*a as usize].sub_immature(*amount);
        }
    }

    /// Adds a block's credits to the immature balances (if they are not there yet).
    fn count(&mut self, i: u32) {
        let b = &mut self.blocks[i as usize];
        if b.in_immature {
            return;
        }
        b.in_immature = true;
        for (a, amount) in b
            .credits
            .iter()
            .chain(std::iter::once(&(b.fee_address, b.fee)))
        {
            self.balances[*a as usize].add_immature(*amount);
        }
    }

    /// Recomputes which segments form each block's PROP round, from the blocks' statuses, and
    /// recredits the immature PROP blocks whose round changed (and `force`, always).
    ///
    /// Walking the blocks in the order they were found: each block's own segments join a pending
    /// list unless frozen; an immature block takes the pending list as its round; an orphaned
    /// block passes it on (its round rolls forward); a matured block keeps the round it had when
    /// it matured (frozen) and passes the pending list on. What is left at the end is the open
    /// round.
    fn reassign_rounds(&mut self, force: Option<u32>) {
        let mut pending: Vec<u32> = Vec::new();
        let mut new_rounds: Vec<Option<Vec<u32>>> = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            for s in std::iter::once(b.native_segment).chain(b.adopted_segments.iter().copied()) {
                if !self.segments[s as usize].frozen {
                    pending.push(s);
                }
            }
            new_rounds.push(match b.status {
                BlockStatus::Immature => Some(std::mem::take(&mut pending)),
                BlockStatus::Orphaned => Some(Vec::new()),
                BlockStatus::Matured => None,
            });
        }
        for s in pending {
            self.segments[s as usize].owner = None;
        }
        for (i, round) in new_rounds.into_iter().enumerate() {
            let Some(round) = round else { continue };
            for s in &round {
                self.segments[*s as usize].owner = Some(i as u32);
            }
            let b = &mut self.blocks[i];
            let changed = b.round != round;
            b.round = round;
            let forced = force == Some(i as u32);
            let prop = b.rule.scheme == PayoutScheme::Prop;
            let credited = b.status == BlockStatus::Immature && b.verdict == Verdict::Found;
            if credited && (forced || (prop && changed)) {
                self.recredit(i as u32);
            }
        }
    }

    /// Recomputes an immature block's credits by its rule and counts them in immature balances.
    fn recredit(&mut self, i: u32) {
        self.uncount(i);
        let b = &self.blocks[i as usize];
        let weights: Vec<(u32, U256)> = match b.rule.scheme {
            PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            } => self.pplns_weights(b, window_numerator, window_denominator),
            PayoutScheme::Prop => self.round_weights(&b.round),
            PayoutScheme::Solo => Vec::new(),
        };
        let distributable = Sats(b.found.reward.0 - b.fee.0);
        let credits = self.credit_split(distributable, &weights, b.finder);
        self.blocks[i as usize].credits = credits;
        self.count(i);
    }

    /// Splits by weight, ties by address string; with no weight at all the finder takes it.
    fn credit_split(&self, amount: Sats, weights: &[(u32, U256)], finder: u32) -> Vec<(u32, Sats)> {
        if amount.0 == 0 {
            return Vec::new();
        }
        let keyed: Vec<((&str, u32), U256)> = weights
            .iter()
            .map(|(a, w)| ((self.addresses.name(*a).0.as_str(), *a), *w))
            .collect();
        let mut credits: Vec<(u32, Sats)> = split_by_weight(amount, &keyed)
            .into_iter()
            .map(|((_, a), s)| (a, s))
            .collect();
        if credits.is_empty() {
            credits.push((finder, amount));
        }
        credits.sort_unstable_by_key(|(a, _)| *a);
        credits
    }

    /// Weight per address over the segments of a PROP round.
    fn round_weights(&self, round: &[u32]) -> Vec<(u32, U256)> {
        let mut by_address: BTreeMap<u32, U256> = BTreeMap::new();
        for s in round {
            for (a, w) in &self.segments[*s as usize].weights {
                let e = by_address.entry(*a).or_insert(U256::ZERO);
                *e = e.saturating_add(w.as_u256());
            }
        }
        by_address.into_iter().collect()
    }

    /// Weight per address over the PPLNS window before a block: the last
    /// `numerator / denominator × work(network target)` of share weight, the earliest share
    /// counting only for the part inside the window.
    fn pplns_weights(&self, b: &BlockRecord, numerator: u32, denominator: u32) -> Vec<(u32, U256)> {
        let end = b.share_end as usize;
        if end == 0 {
            return Vec::new();
        }
        let block_work = U512::from(b.found.network_target.work().as_u256());
        let window = block_work * U512::from(numerator) / U512::from(denominator.max(1));
        let window = if window > U512::from(U256::MAX) {
            U256::MAX
        } else {
            U256::from(window)
        };
        let cumulative = &self.share_cumulative[..end];
        let total = cumulative[end - 1].as_u256();
        let edge = total.saturating_sub(window);
        // The first share whose end lies beyond the window's edge.
        let first = cumulative.partition_point(|c| c.as_u256() <= edge);
        let mut acc: Vec<U256> = vec![U256::ZERO; self.addresses.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut start = if first == 0 {
            U256::ZERO
        } else {
            cumulative[first - 1].as_u256()
        };
        start = start.max(edge);
        for (c, a) in cumulative[first..]
            .iter()
            .zip(&self.share_address[first..end])
        {
            let c = c.as_u256();
            let w = c - start;
            start = c;
            let slot = &mut acc[*a as usize];
            if slot.is_zero() {
                touched.push(*a);
            }
            *slot += w;
        }
        touched.sort_unstable();
        touched
            .into_iter()
            .map(|a| (a, acc[a as usize]))
            .filter(|(_, w)| !w.is_zero())
            .collect()
    }

    fn block_view(&self, b: &BlockRecord) -> BlockView {
        BlockView {
            block_id: b.found.block_id,
            height: b.found.height,
            reward: b.found.reward,
            finder: b.found.finder.clone(),
            worker: b.found.worker.clone(),
            time_ms: b.found.time_ms,
            found_seq: b.found_seq,
            candidate_seq: b.candidate_seq,
            status: b.status,
            scheme: b.rule.scheme.clone(),
            fee: b.fee,
            fee_address: self.addresses.name(b.fee_address).clone(),
            credits: b
                .credits
                .iter()
                .map(|(a, s)| (self.addresses.name(*a).clone(), *s))
                .collect(),
        }
    }

    fn on_payment_prepared(&mut self, seq: u64, p: &PaymentPrepared) {
        if self.payments.contains_key(&p.payment_id) {
            self.anomaly(seq, AnomalyKind::DuplicatePayment(p.payment_id));
            return;
        }
        let rule = self.current_rule();
        let fee_address = self.intern_address(&rule.fee_address);
        let mut outputs = Vec::with_capacity(p.outputs.len());
        for o in &p.outputs {
            let a = self.intern_address(&o.address);
            let bal = &mut self.balances[a as usize];
            bal.debit_payable(o.amount);
            bal.in_flight.0 = bal.in_flight.0.saturating_add(o.amount.0);
            outputs.push((a, o.amount));
        }
        let n = outputs.len();
        self.payments.insert(
            p.payment_id,
            PaymentRecord {
                outputs,
                payer: rule.network_fee_payer,
                fee_address,
                status: PaymentStatus::Prepared,
                txid: None,
                network_fee: Sats::ZERO,
                deductions: vec![Sats::ZERO; n],
                pool_network_fee: Sats::ZERO,
            },
        );
    }

    fn open_payment(&mut self, seq: u64, id: u64, allowed: &[PaymentStatus]) -> bool {
        match self.payments.get(&id) {
            None => {
                self.anomaly(seq, AnomalyKind::UnknownPayment(id));
                false
            }
            Some(p) if !allowed.contains(&p.status) => {
                self.anomaly(seq, AnomalyKind::PaymentOutOfOrder(id));
                false
            }
            Some(_) => true,
        }
    }

    fn on_payment_sent(&mut self, seq: u64, sent: &PaymentSent) {
        if !self.open_payment(seq, sent.payment_id, &[PaymentStatus::Prepared]) {
            return;
        }
        let Some(p) = self.payments.get_mut(&sent.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Sent;
        p.txid = Some(sent.txid);
        p.network_fee = sent.network_fee;
        match p.payer {
            NetworkFeePayer::Pool => p.pool_network_fee = sent.network_fee,
            NetworkFeePayer::Miners => {
                let amounts: Vec<Sats> = p.outputs.iter().map(|(_, s)| *s).collect();
                let (deductions, excess) = split_network_fee(&amounts, sent.network_fee);
                p.deductions = deductions;
                p.pool_network_fee = excess;
            }
        }
        for ((a, _), d) in p.outputs.iter().zip(&p.deductions) {
            let bal = &mut self.balances[*a as usize];
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(d.0);
            bal.network_fees.0 = bal.network_fees.0.saturating_add(d.0);
        }
        let pool = &mut self.balances[p.fee_address as usize];
        pool.debit_payable(p.pool_network_fee);
        pool.network_fees.0 = pool.network_fees.0.saturating_add(p.pool_network_fee.0);
    }

    fn on_payment_confirmed(&mut self, seq: u64, c: &PaymentConfirmed) {
        let allowed = [PaymentStatus::Prepared, PaymentStatus::Sent];
        if !self.open_payment(seq, c.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&c.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Confirmed;
        p.txid = Some(c.txid);
        for ((a, amount), d) in p.outputs.iter().zip(&p.deductions) {
            let received = amount.0.saturating_sub(d.0);
            let bal = &mut self.balances[*a as usize];
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(received);
            bal.paid.0 = bal.paid.0.saturating_add(received);
        }
    }

    fn on_payment_failed(&mut self, seq: u64, f: &PaymentFailed) {
        let allowed = [PaymentStatus::Prepared, PaymentStatus::Sent];
        if !self.open_payment(seq, f.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&f.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Failed;
        // Undo the network fee bookings: a transaction that never confirmed spent nothing.
        let pool = &mut self.balances[p.fee_address as usize];
        pool.network_fees.0 = pool.network_fees.0.saturating_sub(p.pool_network_fee.0);
        pool.credit_payable(p.pool_network_fee);
        for ((a, amount), d) in p.outputs.iter().zip(&p.deductions) {
            let bal = &mut self.balances[*a as usize];
            bal.network_fees.0 = bal.network_fees.0.saturating_sub(d.0);
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(amount.0.saturating_sub(d.0));
            bal.credit_payable(*amount);
        }
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
                && b.share_end as usize <= self.share_address.len()
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

//! Pure folds over ledger events: block lifecycle, per-block credits, balances, payments and
//! worker statistics. No I/O, no clocks, no randomness: the input is `(seq, &Event)` in sequence
//! order and the state is a deterministic function of it, so incremental application, a full
//! replay and a snapshot plus its tail give byte-identical state ([`Projection::state_bytes`]).
//!
//! # Blocks
//! `BlockFound` makes a block *immature* and credits it at once by the payout rule in force (the
//! latest `PayoutRuleSet`; before any, [`default_rule`]: PPLNS over 2 × the block's work, no fee).
//! `BlockMatured` makes it *matured*: its credits become payable and final; nothing later changes
//! them (an orphaning of a matured block is an [`Anomaly`]). `BlockOrphaned` withdraws an immature
//! block's credits; `BlockReinstated` brings an orphaned block back to immature.
//!
//! ## Candidates and verdicts
//! Since block candidates exist, a share that meets the block threshold is followed at once (in
//! the same append) by a `BlockCandidate`, and the node's verdict comes later as a `BlockFound`
//! or `BlockRejected` with the same block id. A found block is credited **as of its candidate's
//! position**: the payout rule in force at the candidate, the PPLNS window of the shares before
//! the candidate (the finding share is the last of them), and the PROP round that closes at the
//! candidate. Shares accepted between the candidate and its verdict belong to the next round and
//! the next windows, so however late the verdict, it never changes whose shares pay for a block.
//! Exactly:
//! - `BlockCandidate` adds a block record in ledger order, closing the open round's segment
//!   there. While it waits (*open*), it holds its PROP round like an immature block but credits
//!   nothing and is not listed among the blocks ([`Projection::open_candidates`] lists it).
//! - `BlockFound` for an open candidate makes it an immature found block and credits it from the
//!   candidate's position, with the reward the verdict states; the found block's `found_seq` is
//!   the verdict's, `candidate_seq` the candidate's.
//! - `BlockRejected` for an open candidate closes it as refused: it never credited anything, and
//!   its PROP round rolls forward as an orphaned block's does (to the next immature or open
//!   candidate block, or to the open round). It is listed with the rejected blocks.
//! - A second candidate for a known block id, and a second verdict for a candidate, change
//!   nothing and are anomalies. `BlockOrphaned`, `BlockReinstated` and `BlockMatured` apply to
//!   found blocks only (for an open or refused candidate they are an anomaly).
//! - A `BlockFound` with no candidate before it (every ledger written before candidates existed)
//!   keeps its original meaning: it is credited where it stands.
//!
//! # Schemes
//! - **PPLNS**: the block's reward is split over the last `N` of share weight accepted before it,
//!   `N = numerator / denominator × work(block's network target)` (rounded down). The share cut by
//!   the window's edge counts for the part of its weight inside the window. If all shares ever
//!   weigh less than `N`, all of them count.
//! - **PROP**: a block's round is the shares accepted after the previous block that is not
//!   orphaned. Shares are kept in segments between found blocks; an orphaned block's round rolls
//!   forward to the next block (in found order) that is immature, or to the open round. Once a
//!   block matures its round is frozen. A reinstated block takes back every segment of its round
//!   that is not frozen; if all of it went into a block that matured meanwhile (which keeps it),
//!   the reinstated block's reward goes to the open round: it takes the shares accepted since the
//!   last found block as its round (and the next block's round starts after them).
//! - **SOLO**: the finder's payout address takes the reward after the fee.
//!
//! Every block boundary ends a PROP round whatever the block's scheme; a scheme change between
//! blocks therefore never pays a share twice under PROP.
//!
//! A block event recomputes the rounds only where it can change them: from the last immature
//! block before the block it is about to the first immature block after it, skipping blocks that
//! are settled (matured, or orphaned with its shares frozen in a matured block's round). So
//! folding a ledger of years of blocks costs time linear in its events, and the result is the
//! same as recomputing every round on every block event.
//!
//! # Money
//! Pool fee: `floor(reward × fee_bps / 10 000)`, credited to the rule's fee address like any other
//! credit. The rest is split by weight with [`split::split_by_weight`]: floors first, leftover
//! satoshis to the largest fractional remainders, ties by address string. A block whose scheme has
//! no share weight to split over (no shares in the window or round) pays its finder. So each
//! block's credits sum to `reward - fee` exactly.
//!
//! # Payments
//! `PaymentPrepared` moves each output from payable to in flight (a shortfall becomes debt,
//! repaid first by later credits). `PaymentSigned` records the wallet's signed transaction (its
//! txid, raw bytes and network fee) and moves no money. `PaymentSent` books the network fee by
//! the payer of the rule in force when the payment was prepared: `Pool` debits the fee address's
//! payable balance (debt if short); `Miners` deducts it from the outputs with
//! [`split::split_network_fee`] (any excess over the payment goes to the fee address). Booked
//! fees sit in `Balance::network_fees`. `PaymentConfirmed` moves in flight to paid (net of
//! deductions); `PaymentFailed` undoes the fee booking and returns the outputs to payable.
//! Conservation: over all addresses, `immature + payable + in_flight + paid + network_fees -
//! debt` equals the rewards of non-orphaned blocks.
//!
//! ## The payment state table: the fold and the lane
//! The fold ([`Projection::apply`]) must read every ledger ever written, so it is lenient where
//! ledgers written before `PaymentSigned` existed went another way; the payment lane's check
//! ([`Projection::check_payment`]), which decides what may be appended now, is strict. An event
//! the check finds valid always folds without an anomaly.
//!
//! | from | event | fold | lane (`check_payment`) |
//! |---|---|---|---|
//! | — | `PaymentPrepared` | amounts leave payable (a shortfall is debt); a known id is an anomaly | valid if it has outputs, none of zero amount, no address twice, each within its address's payable balance, no address in debt or in another open payment, and the id is new |
//! | Prepared | `PaymentSigned` | txid, raw tx and fee recorded; no money moves | valid with a non-empty transaction |
//! | Prepared | `PaymentSent` | fee booked (old ledgers) | refused: sign first |
//! | Signed | `PaymentSent` | fee booked if txid and fee equal the signed ones, else an anomaly (`SentNotAsSigned`) and no change | valid only with the signed txid and fee |
//! | Prepared | `PaymentConfirmed` | paid (old ledgers) | refused |
//! | Sent | `PaymentConfirmed` | paid, net of deductions | valid only with the sent txid |
//! | Prepared | `PaymentFailed` | amounts return | valid, any reason (nothing signed can be on the network) |
//! | Signed or Sent | `PaymentFailed` | fee booking undone, amounts return | valid only with a reason starting [`CONFLICT_REASON_PREFIX`]: a conflicting spend of an input is final |
//! | anything else | any payment event | an anomaly, no change | refused |
//!
//! A request equal to its payment's latest event exactly is
//! [`PaymentCheck::Repeat`] with that event's sequence (an idempotent retry after a crash):
//! nothing is appended. Every refusal is a [`PaymentRefusal`] whose message says why, naming the
//! payment, the address and the amounts. The check costs `O(k log n)` for a prepare of `k`
//! outputs and one lookup otherwise; it never walks all addresses or payments.
//!
//! The views for the payout process: [`Projection::payable_balances`],
//! [`Projection::open_payments`] (with the signed bytes to broadcast again after a crash),
//! [`Projection::next_payment_id`], [`Projection::expected_receipts`] (what each output must
//! receive for a given network fee, exactly as the fold will book it) and
//! [`Projection::deep_reorgs`]. The projection keeps a signed transaction's bytes only while its
//! payment is open (the ledger keeps them for good), so snapshots do not grow with the history
//! of payments.
//!
//! # Snapshots and odd events
//! [`Projection::snapshot`] writes the state with bincode together with the sequence it reflects;
//! [`Projection::from_snapshot`] loads it (checking its internal indices), and applying the
//! ledger's tail from [`Projection::next_seq`] gives byte-identical state to a full replay.
//! Events that do not fit the state (a maturity of an unknown block, an orphaning of a matured
//! block, a confirmation of an unknown payment, ...) change nothing and are listed as
//! [`Anomaly`]s, so a replay never stops on them. A snapshot of another version
//! ([`SNAPSHOT_VERSION`], 4 since the projection can forget shares) is refused: rebuild it by a
//! replay.
//!
//! # Bounded memory
//! [`Projection::forgetting`] (the pool's live projection) forgets what no block can credit any
//! more: shares outside the windows it expects to read (the open candidates' PPLNS windows and
//! the next block's, keeping at most ~1 M shares), read back from the ledger through
//! [`Projection::refill_range`] and [`Projection::refill`] when a block's window reaches them, so
//! its views, balances and credits are exactly those of [`Projection::new`], which keeps every
//! share. Both forget the share weights of PROP rounds of matured blocks (no round reads them
//! again) and statistics older than their windows (the 24-hour log holds 60 buckets).
//! [`Projection::horizon`] is the lowest ledger seq the projection may still need: everything
//! below it is final.
//!
//! # Statistics
//! Shares, work and hashrate per worker, per address and for the pool over 1 minute, 1 hour and
//! 24 hours, from the events' `time_ms` ([`stats`]).

pub mod balance;
mod engine;
mod intern;
pub mod split;
pub mod stats;

pub use balance::Balance;
pub use engine::{
    default_rule, Anomaly, AnomalyKind, BlockDetailView, BlockEntry, BlockLife, BlockStatus,
    BlockView, OpenPaymentView, PaymentCheck, PaymentDetailView, PaymentRefusal, PaymentStatus,
    PaymentView, PoolTotals, Projection, ProjectionConfig, CONFLICT_REASON_PREFIX,
    DEFAULT_MAX_SHARES, DEFAULT_PPLNS_WINDOW, SNAPSHOT_VERSION,
};
pub use stats::{ShareStats, WindowStats};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProjectionError {
    #[error("event sequence {got} is out of order: expected at least {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("snapshot encoding failed: {0}")]
    Snapshot(String),
    #[error("snapshot version {0} is not supported")]
    SnapshotVersion(u32),
    #[error("snapshot is inconsistent: {0}")]
    SnapshotCorrupt(String),
    /// A forgetting projection cannot fold the block event at `seq` before the forgotten shares
    /// of its PPLNS window are given back: [`Projection::refill_range`], [`Projection::refill`].
    #[error("the block event at seq {seq} reads shares this projection forgot: refill them first")]
    SharesForgotten { seq: u64 },
    #[error("refill refused: {0}")]
    Refill(String),
}

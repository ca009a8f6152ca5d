//! [`Projection::horizon`]: the oldest ledger record the projection may still need.

use super::{BlockStatus, Projection};

/// The factor a future block's PPLNS window is taken at for the horizon: the window of the rule
/// in force at the latest share's network target, twice (the next block's network difficulty
/// may be up to twice the latest share's before records below the horizon are needed).
pub const HORIZON_WINDOW_FACTOR: u64 = 2;

impl Projection {
    /// The lowest ledger seq whose record the projection may still need; every record below it
    /// is final: the projection folded it and will never read it again, so a prefix of the
    /// ledger below it may be sealed away (archives) without changing anything the pool
    /// reports or credits. It is the lowest of:
    ///
    /// - [`Projection::next_seq`] (nothing applied yet beyond it);
    /// - the first share of the next block's PPLNS window, estimated as
    ///   [`HORIZON_WINDOW_FACTOR`] × the window of the rule in force (the default rule's
    ///   multiple under PROP or SOLO, which a rule change may bring back) at the latest share's
    ///   network target: a forgetting projection refills forgotten shares from these records;
    /// - the first share of every open candidate's PPLNS window (its credits are computed at its
    ///   verdict from those shares);
    /// - the record of every block that is not final: an open candidate (the pool reads its
    ///   block bytes back to submit it again) and an immature block;
    /// - the latest record of every open payment (prepared, signed or sent: the payment lane
    ///   answers a repeated request with it).
    ///
    /// A share's position is resolved to the share mark at or before it (marks every 65,536
    /// shares; their ledger seq is kept), so the horizon may lie a little lower than the exact
    /// first record needed, never higher. What the horizon does not cover: orphaned blocks (a
    /// reinstatement needs no record: PPLNS credits are kept, PROP rounds are in memory),
    /// matured blocks and final payments. A block whose PPLNS window reaches further back than
    /// the estimate (a difficulty rise of more than [`HORIZON_WINDOW_FACTOR`] ×, or a rule
    /// change to a longer window, before it) reads records below a horizon taken earlier.
    ///
    /// The same for a forgetting projection and one that keeps every share. Cost: the open
    /// candidates, the unsettled blocks and the open payments, plus two binary searches.
    pub fn horizon(&self) -> u64 {
        let s = &self.state;
        let mut horizon = self.next_seq;
        let share_seq = |first: u64| -> u64 {
            s.share_marks
                .get((first / s.mark_every()) as usize)
                .map_or(self.next_seq, |m| m.seq)
        };
        if let Some(first) = s.future_window_first_share(HORIZON_WINDOW_FACTOR, false) {
            horizon = horizon.min(share_seq(first));
        }
        for first in s.open_windows_first_shares() {
            horizon = horizon.min(share_seq(first));
        }
        // Immature blocks and open candidates are all in the unsettled set.
        for &i in &s.unsettled {
            let b = &s.blocks[i as usize];
            if b.status == BlockStatus::Immature {
                horizon = horizon.min(b.candidate_seq.unwrap_or(b.found_seq));
            }
        }
        for id in &s.open_payments.ids {
            if let Some(p) = s.payments.get(id) {
                horizon = horizon.min(p.last_seq);
            }
        }
        horizon
    }
}

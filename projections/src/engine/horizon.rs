//! The ledger horizon: below it, no record is needed any more.
//!
//! STAND-IN (branch `archive`): a conservative placeholder so the sealed archives' safe cut can
//! be built and tested; helper B's `Projection::horizon` (branch `memory`) replaces this file at
//! the merge. It keeps every record from the earliest of these on:
//! - each block candidate without a verdict, and each found block that is not final (immature,
//!   or orphaned: it may come back), by its candidate's (or its `BlockFound`'s) seq;
//! - the latest found block's seq, whatever its status (the current round and the PPLNS
//!   windows a future block may use start around it or later: the shares themselves live in
//!   the projection's state, so this is a margin, not a requirement);
//! - each open payment's latest event, and the latest event of the newest payment (a repeat of
//!   it is answered with that record);
//! - and never past what the projection has applied (`next_seq`).

use super::{BlockStatus, Projection, Verdict};

impl Projection {
    /// The lowest ledger seq whose record the projection, a future block's credit, an open
    /// payment, or an immature or orphaned (reinstatable) block may still need: every record
    /// below it is final and may be archived away. At most [`Projection::next_seq`].
    pub fn horizon(&self) -> u64 {
        let s = &self.state;
        let mut horizon = self.next_seq;
        for b in &s.blocks {
            let open = match b.verdict {
                Verdict::Pending => true,
                Verdict::Found => b.status != BlockStatus::Matured,
                Verdict::Refused => false,
            };
            if open {
                horizon = horizon.min(b.candidate_seq.unwrap_or(b.found_seq));
            }
        }
        if let Some(b) = s.blocks.iter().rev().find(|b| b.verdict == Verdict::Found) {
            horizon = horizon.min(b.candidate_seq.unwrap_or(b.found_seq));
        }
        for id in &s.open_payments.ids {
            if let Some(p) = s.payments.get(id) {
                horizon = horizon.min(p.last_seq);
            }
        }
        if let Some((_, p)) = s.payments.last_key_value() {
            horizon = horizon.min(p.last_seq);
        }
        horizon
    }
}

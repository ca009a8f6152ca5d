//! PROP rounds: which segments of shares each block's round holds, from the blocks' statuses
//! (the crate docs give the rules), and the recredits when a round changes.

use super::{BlockStatus, State, Verdict};
use pool_core::event::PayoutScheme;

impl State {
    /// Recomputes the PROP rounds after an event on block `touched` (a new block, a verdict, an
    /// orphaning, a reinstatement or a segment it adopted), and recredits the immature PROP
    /// blocks whose round changed, and `touched` itself if `force`.
    pub(super) fn reassign_rounds(&mut self, touched: u32, force: bool) {
        self.reassign_rounds_everywhere(force.then_some(touched));
    }

    /// The whole-ledger walk: recomputes which segments form each block's PROP round, from the
    /// blocks' statuses, and recredits the immature PROP blocks whose round changed (and
    /// `force`, always).
    ///
    /// Walking the blocks in the order they were found: each block's own segments join a pending
    /// list unless frozen; an immature block takes the pending list as its round; an orphaned
    /// block passes it on (its round rolls forward); a matured block keeps the round it had when
    /// it matured (frozen) and passes the pending list on. What is left at the end is the open
    /// round.
    fn reassign_rounds_everywhere(&mut self, force: Option<u32>) {
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
}

//! PROP rounds: which segments of shares each block's round holds, from the blocks' statuses
//! (the crate docs give the rules), and the recredits when a round changes.
//!
//! The rounds are those of one walk over all blocks in the order they were found
//! ([`State::reassign_rounds_everywhere`]), but an event on one block can change only a short
//! stretch of that walk, so the fold walks only the stretch: folding a ledger costs about the
//! same for its ten-thousandth block as for its first. Two facts make the stretch:
//!
//! - After an immature block the walk's pending list is empty (the block takes it), so what the
//!   walk gives from there on does not depend on any block before it.
//! - A *settled* block (matured, or orphaned or refused, and in both cases with every segment of
//!   its own frozen in a matured block's round) adds nothing to the pending list and takes
//!   nothing from it, and the walk gives it what it already holds (a matured block keeps its
//!   round; an orphaned one has the empty round it was given when it left the chain). Walking it
//!   changes nothing, so the walk skips it. Only an event on the block itself (a reinstatement of
//!   an orphan) can unsettle it again.
//!
//! So for an event on block `i`, the walk starts just after the last immature block before `i`,
//! ends at the first immature block after `i` (or at the open round), and visits only the
//! unsettled blocks in between: `i`, the orphans whose segments are still on their way to an
//! immature block, and the immature block at the end. Every other block would be given what it
//! holds (the rounds held are the whole walk's before the event, by induction; a maturity needs
//! no walk, since the matured block's segments were its round). The cost is a lookup in the
//! unsettled set plus the blocks visited, however long the ledger. A cursor of the first
//! unsettled block would not do: one block that never matures (a candidate whose verdict never
//! came, a pool whose watcher has not run) would hold it back for good.
//!
//! The property `local_round_walk_equals_the_full_walk` (tests/properties.rs) compares the state
//! bytes of both walks after every event of random histories.

use super::{BlockStatus, State, Verdict};
use pool_core::event::PayoutScheme;

impl State {
    /// Recomputes the PROP rounds after an event on block `touched` (a new block, a verdict, an
    /// orphaning, a reinstatement or a segment it adopted), and recredits the immature PROP
    /// blocks whose round changed, and `touched` itself if `force`: exactly what
    /// [`State::reassign_rounds_everywhere`] does, walking only the blocks it could change (see
    /// the module docs).
    pub(super) fn reassign_rounds(&mut self, touched: u32, force: bool) {
        if self.full_round_walk {
            self.reassign_rounds_everywhere(force.then_some(touched));
            // The set is kept as the fold keeps it, so the flag changes the walk only.
            self.settle(touched);
            return;
        }
        // The event changed `touched` only: the stretch is bounded by the other blocks as they
        // are.
        self.unsettled.insert(touched);
        let immature = |i: &&u32| self.blocks[**i as usize].status == BlockStatus::Immature;
        let start = self
            .unsettled
            .range(..touched)
            .rev()
            .find(immature)
            .map_or(0, |i| i + 1);
        let walk: Vec<u32> = match self.unsettled.range(touched + 1..).find(immature) {
            Some(&end) => self.unsettled.range(start..=end).copied().collect(),
            None => self.unsettled.range(start..).copied().collect(),
        };
        let mut pending: Vec<u32> = Vec::new();
        let mut new_rounds: Vec<(u32, Vec<u32>)> = Vec::with_capacity(walk.len());
        for &i in &walk {
            let b = &self.blocks[i as usize];
            for s in std::iter::once(b.native_segment).chain(b.adopted_segments.iter().copied()) {
                if !self.segments[s as usize].frozen {
                    pending.push(s);
                }
            }
            match b.status {
                BlockStatus::Immature => new_rounds.push((i, std::mem::take(&mut pending))),
                BlockStatus::Orphaned => new_rounds.push((i, Vec::new())),
                BlockStatus::Matured => {}
            }
        }
        // Empty unless the walk ran to the open round.
        for s in pending {
            self.segments[s as usize].owner = None;
        }
        for (i, round) in new_rounds {
            self.take_round(i, round, force && i == touched);
        }
        self.settle(touched);
    }

    /// Gives block `i` its new PROP round; recredits it if it is credited and `forced`, or if it
    /// is a PROP block whose round changed.
    fn take_round(&mut self, i: u32, round: Vec<u32>, forced: bool) {
        for s in &round {
            self.segments[*s as usize].owner = Some(i);
        }
        let b = &mut self.blocks[i as usize];
        let changed = b.round != round;
        b.round = round;
        let prop = b.rule.scheme == PayoutScheme::Prop;
        let credited = b.status == BlockStatus::Immature && b.verdict == Verdict::Found;
        if credited && (forced || (prop && changed)) {
            self.recredit(i);
        }
    }

    /// Block `i` matured and froze its round: it is settled, and so are the orphans before it
    /// whose segments rolled forward into that round (they follow the last immature block
    /// before it).
    pub(super) fn settle_matured(&mut self, i: u32) {
        let rolled_in: Vec<u32> = self
            .unsettled
            .range(..i)
            .rev()
            .take_while(|j| self.blocks[**j as usize].status != BlockStatus::Immature)
            .copied()
            .collect();
        for j in rolled_in.into_iter().chain(std::iter::once(i)) {
            self.settle(j);
        }
    }

    /// Puts block `i` in the unsettled set or takes it out, by its state now.
    fn settle(&mut self, i: u32) {
        if self.is_settled(i) {
            self.unsettled.remove(&i);
        } else {
            self.unsettled.insert(i);
        }
    }

    /// Not immature (nor an open candidate), and every segment of its own frozen.
    fn is_settled(&self, i: u32) -> bool {
        let b = &self.blocks[i as usize];
        b.status != BlockStatus::Immature
            && std::iter::once(&b.native_segment)
                .chain(&b.adopted_segments)
                .all(|s| self.segments[*s as usize].frozen)
    }

    /// The unsettled blocks of a loaded state (the set is derived, never serialized).
    pub(super) fn rebuild_unsettled(&mut self) {
        self.unsettled = (0..self.blocks.len() as u32)
            .filter(|i| !self.is_settled(*i))
            .collect();
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
    pub(super) fn reassign_rounds_everywhere(&mut self, force: Option<u32>) {
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

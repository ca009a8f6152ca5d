//! Block lifecycle: candidates, verdicts, orphaning, reinstatement, maturity, and the PROP
//! rounds that follow the blocks' statuses.

use super::{AnomalyKind, BlockRecord, BlockStatus, BlockView, State, Verdict};
use crate::split::pool_fee;
use pool_core::event::{BlockCandidate, BlockFound, BlockRejected, PayoutScheme};
use pool_core::{BlockId, Sats};

impl State {
    pub(super) fn on_block_found(&mut self, seq: u64, found: &BlockFound) {
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
                    self.reassign_rounds(i, true);
                }
                (Some(_), _) => self.anomaly(seq, AnomalyKind::VerdictAfterVerdict(found.block_id)),
                (None, _) => self.anomaly(seq, AnomalyKind::DuplicateBlock(found.block_id)),
            }
            return;
        }
        // No candidate before it (ledgers written before candidates existed): credited here.
        self.push_block(seq, found.clone(), None);
    }

    pub(super) fn on_block_candidate(&mut self, seq: u64, c: &BlockCandidate) {
        self.now_ms = self.now_ms.max(c.time_ms);
        if self.block_index.contains_key(&c.block_id) {
            self.anomaly(seq, AnomalyKind::DuplicateCandidate(c.block_id));
            return;
        }
        self.push_block(seq, c.found(c.time_ms), Some(seq));
    }

    pub(super) fn on_block_rejected(&mut self, seq: u64, r: &BlockRejected) {
        self.now_ms = self.now_ms.max(r.time_ms);
        if let Some(&i) = self.block_index.get(&r.block_id) {
            let b = &mut self.blocks[i as usize];
            match (b.candidate_seq, b.verdict) {
                (Some(_), Verdict::Pending) => {
                    // Never credited; its round rolls forward as an orphan's does. Its verdict's
                    // seq is kept where a found block keeps its own.
                    b.verdict = Verdict::Refused;
                    b.found_seq = seq;
                    b.status = BlockStatus::Orphaned;
                    self.rejected.push(r.clone());
                    self.reassign_rounds(i, false);
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
    pub(super) fn push_block(&mut self, seq: u64, found: BlockFound, candidate_seq: Option<u64>) {
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
            share_end: self.share_total(),
            pplns_credited: false,
            native_segment,
            adopted_segments: Vec::new(),
            round: Vec::new(),
        });
        self.block_index.insert(block_id, index);
        self.reassign_rounds(index, verdict == Verdict::Found);
    }

    /// A found block's index; an unknown id, or a candidate that was not found, is an anomaly.
    pub(super) fn find_block(&mut self, seq: u64, id: &BlockId) -> Option<u32> {
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

    pub(super) fn on_orphaned(&mut self, seq: u64, id: &BlockId) {
        let Some(i) = self.find_block(seq, id) else {
            return;
        };
        match self.blocks[i as usize].status {
            BlockStatus::Matured => self.anomaly(seq, AnomalyKind::OrphanedAfterMaturity(*id)),
            BlockStatus::Orphaned => self.anomaly(seq, AnomalyKind::AlreadyOrphaned(*id)),
            BlockStatus::Immature => {
                self.uncount(i);
                self.blocks[i as usize].status = BlockStatus::Orphaned;
                self.reassign_rounds(i, false);
            }
        }
    }

    pub(super) fn on_reinstated(&mut self, seq: u64, id: &BlockId) {
        let Some(i) = self.find_block(seq, id) else {
            return;
        };
        if self.blocks[i as usize].status != BlockStatus::Orphaned {
            self.anomaly(seq, AnomalyKind::NotOrphaned(*id));
            return;
        }
        self.blocks[i as usize].status = BlockStatus::Immature;
        self.reassign_rounds(i, true);
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
            self.reassign_rounds(i, true);
        }
    }

    pub(super) fn on_matured(&mut self, seq: u64, id: &BlockId) {
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
                // Frozen for good: no round reads these weights again (a round holds only
                // segments not frozen), so they are forgotten.
                for s in round {
                    let seg = &mut self.segments[s as usize];
                    seg.frozen = true;
                    seg.weights = Vec::new();
                }
                self.settle_matured(i);
            }
        }
    }

    /// Removes a block's credits from the immature balances (if they are there).
    pub(super) fn uncount(&mut self, i: u32) {
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
    pub(super) fn count(&mut self, i: u32) {
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

    pub(super) fn block_view(&self, b: &BlockRecord) -> BlockView {
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
}

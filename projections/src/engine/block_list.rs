//! Every block record as the operator's API lists it: found blocks, candidates awaiting the
//! node's verdict and candidates the node refused, each with its place in the ledger (the seq of
//! its candidate, the paging cursor) and its verdict's seq; and one block in detail, with its
//! credits and the rule that made them.
//!
//! A `BlockRejected` with no candidate before it (ledgers written before candidates existed) has
//! no block record and no seq: it is counted among the rejected blocks
//! ([`Projection::rejected_blocks`]) but not listed here.

use super::{BlockRecord, BlockStatus, Projection, State, Verdict};
use pool_core::event::{PayoutAddress, PayoutRule, WorkerName};
use pool_core::{BlockId, Sats};
use serde::{Deserialize, Serialize};

/// A block record's place in its life, candidates included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockLife {
    /// A candidate awaiting the node's verdict.
    Pending,
    Immature,
    Matured,
    Orphaned,
    /// The node refused the candidate.
    Rejected,
}

/// A block record in a list (no credits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    pub block_id: BlockId,
    pub height: u64,
    pub life: BlockLife,
    /// The coinbase reward (0 while pending or rejected).
    pub reward: Sats,
    pub finder: PayoutAddress,
    pub worker: WorkerName,
    pub time_ms: u64,
    /// The candidate's seq, or the `BlockFound`'s for a block recorded without a candidate.
    pub seq: u64,
    /// The verdict's seq (`BlockFound` or `BlockRejected`): `None` while pending, and for a
    /// refusal folded by a build that did not keep it (a projection loaded from an older
    /// snapshot).
    pub verdict_seq: Option<u64>,
}

/// A block record in detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDetailView {
    pub entry: BlockEntry,
    /// The rule in force at the block's candidate (its credits' rule).
    pub rule: PayoutRule,
    /// The seq of that rule's `PayoutRuleSet` (`None`: the default rule).
    pub rule_seq: Option<u64>,
    pub fee: Sats,
    pub fee_address: PayoutAddress,
    /// Miners' credits in address order; with `fee` they sum to the reward (empty while pending
    /// or rejected). For an orphaned block: what it had when it left the chain.
    pub credits: Vec<(PayoutAddress, Sats)>,
    /// The node's reason, for a rejected block.
    pub reject_reason: Option<String>,
}

impl Projection {
    /// Block records newest first (by seq), only those of `life` if given, only those with a seq
    /// below `before` if given, at most `limit`.
    pub fn block_entries(
        &self,
        life: Option<BlockLife>,
        before: Option<u64>,
        limit: usize,
    ) -> Vec<BlockEntry> {
        let s = &self.state;
        // Records are pushed at their seq, so the vector is in seq order.
        let end = match before {
            Some(before) => s.blocks.partition_point(|b| record_seq(b) < before),
            None => s.blocks.len(),
        };
        s.blocks[..end]
            .iter()
            .rev()
            .filter(|b| life.map_or(true, |l| block_life(b) == l))
            .take(limit)
            .map(block_entry)
            .collect()
    }

    /// One block record by id, without its credits (`None`: no record of it).
    pub fn block_entry(&self, id: &BlockId) -> Option<BlockEntry> {
        let s = &self.state;
        Some(block_entry(&s.blocks[*s.block_index.get(id)? as usize]))
    }

    /// One block record by id, with its credits and rule (`None`: no record of it).
    pub fn block_detail(&self, id: &BlockId) -> Option<BlockDetailView> {
        let s = &self.state;
        let b = &s.blocks[*s.block_index.get(id)? as usize];
        let entry = block_entry(b);
        let credited = b.verdict == Verdict::Found;
        let reject_reason = (b.verdict == Verdict::Refused)
            .then(|| {
                s.rejected
                    .iter()
                    .rev()
                    .find(|r| r.block_id == *id)
                    .map(|r| r.reason.clone())
            })
            .flatten();
        Some(BlockDetailView {
            rule_seq: s.rule_seq_at(entry.seq),
            rule: b.rule.clone(),
            fee: if credited { b.fee } else { Sats::ZERO },
            fee_address: s.addresses.name(b.fee_address).clone(),
            credits: b
                .credits
                .iter()
                .map(|(a, amount)| (s.addresses.name(*a).clone(), *amount))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            reject_reason,
            entry,
        })
    }

    /// The rule in force now with the seq of its `PayoutRuleSet` (`None`: the default rule).
    pub fn rule_in_force_with_seq(&self) -> (PayoutRule, Option<u64>) {
        (
            self.state.current_rule(),
            self.state.rules.last().map(|(seq, _)| *seq),
        )
    }
}

impl State {
    /// The seq of the `PayoutRuleSet` in force at `seq` (the last one before it).
    fn rule_seq_at(&self, seq: u64) -> Option<u64> {
        let i = self.rules.partition_point(|(s, _)| *s < seq);
        i.checked_sub(1).map(|i| self.rules[i].0)
    }
}

fn record_seq(b: &BlockRecord) -> u64 {
    b.candidate_seq.unwrap_or(b.found_seq)
}

fn block_life(b: &BlockRecord) -> BlockLife {
    match (b.verdict, b.status) {
        (Verdict::Pending, _) => BlockLife::Pending,
        (Verdict::Refused, _) => BlockLife::Rejected,
        (Verdict::Found, BlockStatus::Immature) => BlockLife::Immature,
        (Verdict::Found, BlockStatus::Matured) => BlockLife::Matured,
        (Verdict::Found, BlockStatus::Orphaned) => BlockLife::Orphaned,
    }
}

fn block_entry(b: &BlockRecord) -> BlockEntry {
    let life = block_life(b);
    let seq = record_seq(b);
    let verdict_seq = match b.verdict {
        Verdict::Pending => None,
        Verdict::Found => Some(b.found_seq),
        // The fold keeps a refusal's seq in `found_seq`; a projection of an older build left the
        // candidate's there (a refusal never shares its candidate's seq).
        Verdict::Refused => (b.found_seq != seq).then_some(b.found_seq),
    };
    BlockEntry {
        block_id: b.found.block_id,
        height: b.found.height,
        life,
        reward: match life {
            BlockLife::Pending | BlockLife::Rejected => Sats::ZERO,
            _ => b.found.reward,
        },
        finder: b.found.finder.clone(),
        worker: b.found.worker.clone(),
        time_ms: b.found.time_ms,
        seq,
        verdict_seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_rule, ProjectionConfig};
    use pool_core::event::{
        BlockCandidate, BlockFound, BlockMatured, BlockRejected, NetworkFeePayer, PayoutScheme,
        ShareAccepted,
    };
    use pool_core::{Event, Target};

    fn addr(s: &str) -> PayoutAddress {
        PayoutAddress(s.into())
    }

    fn share(a: &str) -> Event {
        Event::ShareAccepted(ShareAccepted {
            address: addr(a),
            worker: WorkerName("w".into()),
            share_target: Target::MAX,
            weight: Target::MAX.work(),
            job_id: 1,
            height: 100,
            network_target: Target::MAX,
            time_ms: 1_000,
        })
    }

    fn candidate(id: u8, height: u64) -> Event {
        Event::BlockCandidate(BlockCandidate {
            height,
            block_id: BlockId([id; 32]),
            reward: Sats(1_000),
            block: vec![],
            network_target: Target::MAX,
            finder: addr("a"),
            worker: WorkerName("w".into()),
            time_ms: 2_000,
        })
    }

    fn found(id: u8, height: u64) -> Event {
        Event::BlockFound(BlockFound {
            height,
            block_id: BlockId([id; 32]),
            reward: Sats(1_000),
            network_target: Target::MAX,
            finder: addr("a"),
            worker: WorkerName("w".into()),
            time_ms: 3_000,
        })
    }

    fn rule(fee_bps: u16) -> Event {
        Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Prop,
            fee_bps,
            fee_address: addr("fee"),
            network_fee_payer: NetworkFeePayer::Pool,
        })
    }

    /// seq 0 share a, 1 share b, 2 candidate 1, 3 found 1, 4 rule 10 %, 5 share a,
    /// 6 candidate 2, 7 rejected 2, 8 candidate 3 (pending), 9 matured 1, 10 found 4 (no
    /// candidate), 11 rule 20 %.
    fn projection() -> Projection {
        let events = vec![
            share("a"),
            share("b"),
            candidate(1, 101),
            found(1, 101),
            rule(1_000),
            share("a"),
            candidate(2, 102),
            Event::BlockRejected(BlockRejected {
                height: 102,
                block_id: BlockId([2; 32]),
                reason: "bad-txns".into(),
                finder: addr("a"),
                worker: WorkerName("w".into()),
                time_ms: 2_500,
            }),
            candidate(3, 103),
            Event::BlockMatured(BlockMatured {
                block_id: BlockId([1; 32]),
                height: 101,
            }),
            found(4, 104),
            rule(2_000),
        ];
        let mut p = Projection::new(ProjectionConfig::default());
        for (seq, e) in events.iter().enumerate() {
            p.apply(seq as u64, e).unwrap();
        }
        p
    }

    #[test]
    fn lists_every_record_newest_first_with_its_seqs() {
        let p = projection();
        let all = p.block_entries(None, None, 100);
        let got: Vec<(u8, BlockLife, u64, Option<u64>)> = all
            .iter()
            .map(|b| (b.block_id.0[0], b.life, b.seq, b.verdict_seq))
            .collect();
        assert_eq!(
            got,
            vec![
                (4, BlockLife::Immature, 10, Some(10)),
                (3, BlockLife::Pending, 8, None),
                (2, BlockLife::Rejected, 6, Some(7)),
                (1, BlockLife::Matured, 2, Some(3)),
            ]
        );
        assert_eq!(all[2].reward, Sats::ZERO);
        assert_eq!(all[3].reward, Sats(1_000));
        // Paging: two at a time, then below the last seq.
        let first = p.block_entries(None, None, 2);
        assert_eq!(first.len(), 2);
        let next = p.block_entries(None, Some(first[1].seq), 2);
        assert_eq!(next, all[2..].to_vec());
        assert!(p.block_entries(None, Some(2), 2).is_empty());
        // By status.
        let rejected = p.block_entries(Some(BlockLife::Rejected), None, 10);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].block_id, BlockId([2; 32]));
        assert!(p
            .block_entries(Some(BlockLife::Orphaned), None, 10)
            .is_empty());
    }

    #[test]
    fn a_block_in_detail_has_its_rule_and_credits() {
        let p = projection();
        // Block 1: the default rule (no fee), credited over shares a and b (PPLNS).
        let one = p.block_detail(&BlockId([1; 32])).unwrap();
        assert_eq!(one.rule, default_rule());
        assert_eq!(one.rule_seq, None);
        assert_eq!(one.fee, Sats::ZERO);
        let sum: u64 = one.credits.iter().map(|(_, s)| s.0).sum();
        assert_eq!(sum + one.fee.0, 1_000);
        assert_eq!(
            one.credits,
            vec![(addr("a"), Sats(500)), (addr("b"), Sats(500))]
        );
        // Block 4: the rule of seq 4 (10 %), not the later one of seq 11.
        let four = p.block_detail(&BlockId([4; 32])).unwrap();
        assert_eq!(four.rule_seq, Some(4));
        assert_eq!(four.rule.fee_bps, 1_000);
        assert_eq!(four.fee, Sats(100));
        assert_eq!(four.fee_address, addr("fee"));
        let sum: u64 = four.credits.iter().map(|(_, s)| s.0).sum();
        assert_eq!(sum + four.fee.0, 1_000);
        // The rejected candidate: its reason, no credits.
        let two = p.block_detail(&BlockId([2; 32])).unwrap();
        assert_eq!(two.reject_reason.as_deref(), Some("bad-txns"));
        assert!(two.credits.is_empty());
        assert_eq!(two.fee, Sats::ZERO);
        let three = p.block_detail(&BlockId([3; 32])).unwrap();
        assert_eq!(three.entry.life, BlockLife::Pending);
        assert!(p.block_detail(&BlockId([9; 32])).is_none());
        let (now, seq) = p.rule_in_force_with_seq();
        assert_eq!((now.fee_bps, seq), (2_000, Some(11)));
    }
}

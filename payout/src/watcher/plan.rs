//! The chain watcher's pure half: from the found blocks the ledger watches and the node's best
//! chain, the lifecycle events to append. No I/O and no clock, so every rule is unit-tested
//! against an in-memory chain and a real projection.
//!
//! Per watched block (a block is *in the chain* when its height is at most the tip's and the best
//! chain's block at that height is it):
//! - **Immature**: not in the chain -> `BlockOrphaned` (a height above the tip, after a reorg to a
//!   shorter chain, is not in the chain); in the chain and `tip >= height + coinbase_maturity`
//!   (the rule of `Projection::blocks_due_for_maturity`) -> `BlockMatured`.
//! - **Orphaned**: in the chain -> `BlockReinstated`, and `BlockMatured` as well if it is due.
//! - **Matured**, within [`DEEP_REORG_WATCH_MATURITIES`] maturities of the tip: not in the chain
//!   and no deep reorg recorded for it yet -> one `BlockOrphaned`. The projection keeps its
//!   credits (they are final) and lists the anomaly; the driver logs it loudly.
//!
//! `inconclusive` and `duplicate` submissions are recorded as found blocks like any other, so a
//! sibling that never became best is orphaned here, and one that wins later is reinstated and
//! matured once.
//!
//! Order of the events in one plan: every orphaning, then every reinstatement, then every
//! maturity, each group in ledger order. A reorg happened before the tip passed the blocks'
//! maturity heights, so this is the order a watcher that never stopped would have recorded them
//! in: an orphaned block's PROP round rolls forward into a block that is still immature, and a
//! reinstated block takes back its round before a later block matures and freezes it.
//!
//! Applying a plan's events and planning again against the same chain gives nothing.

use pool_core::event::{BlockMatured, BlockOrphaned, BlockReinstated};
use pool_core::{BlockId, Event};
use projections::BlockStatus;
use std::collections::BTreeMap;

/// Matured blocks stay watched while the tip is at most this many coinbase maturities above
/// them, so a reorg deeper than maturity is noticed and reported.
pub const DEEP_REORG_WATCH_MATURITIES: u64 = 2;

/// A found block the watcher compares with the node's best chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedBlock {
    pub block_id: BlockId,
    pub height: u64,
    pub status: BlockStatus,
    /// A `BlockOrphaned` was already recorded for it after it matured (the projection's anomaly
    /// `OrphanedAfterMaturity`): the deep reorg is known, it is not recorded again.
    pub deep_reorg_recorded: bool,
}

/// The node's best chain, as far as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BestChain {
    pub tip_height: u64,
    /// The best chain's block at each height asked for ([`heights_to_fetch`]). A watched
    /// block at a height up to the tip that is missing here is left undecided.
    pub ids: BTreeMap<u64, BlockId>,
}

impl BestChain {
    /// `Some(true)` in the chain, `Some(false)` not, `None` unknown (its height was not fetched).
    fn holds(&self, block: &WatchedBlock) -> Option<bool> {
        if block.height > self.tip_height {
            return Some(false);
        }
        self.ids.get(&block.height).map(|id| *id == block.block_id)
    }
}

/// What one check should record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In append order (see the module docs).
    pub events: Vec<Event>,
    /// Matured blocks that left the best chain, first noticed now (their `BlockOrphaned` is in
    /// `events`): a reorg deeper than coinbase maturity, for the operator.
    pub deep_reorgs: Vec<BlockOrphaned>,
}

/// The lowest height of a matured block still watched at `tip_height`.
pub fn matured_watch_floor(tip_height: u64, coinbase_maturity: u64) -> u64 {
    tip_height.saturating_sub(coinbase_maturity.saturating_mul(DEEP_REORG_WATCH_MATURITIES))
}

/// Whether the planner looks at `block` at `tip_height`: every immature and orphaned block, and
/// matured ones down to [`matured_watch_floor`] whose deep reorg is not recorded yet.
pub fn is_watched(block: &WatchedBlock, tip_height: u64, coinbase_maturity: u64) -> bool {
    match block.status {
        BlockStatus::Immature | BlockStatus::Orphaned => true,
        BlockStatus::Matured => {
            !block.deep_reorg_recorded
                && block.height >= matured_watch_floor(tip_height, coinbase_maturity)
        }
    }
}

/// The heights whose best-chain block the planner needs, ascending, without repeats.
pub fn heights_to_fetch(
    blocks: &[WatchedBlock],
    tip_height: u64,
    coinbase_maturity: u64,
) -> Vec<u64> {
    let mut heights: Vec<u64> = blocks
        .iter()
        .filter(|b| b.height <= tip_height && is_watched(b, tip_height, coinbase_maturity))
        .map(|b| b.height)
        .collect();
    heights.sort_unstable();
    heights.dedup();
    heights
}

/// The events that bring the ledger's view of `blocks` (in ledger order) in line with `chain`.
pub fn plan(blocks: &[WatchedBlock], chain: &BestChain, coinbase_maturity: u64) -> Plan {
    let tip = chain.tip_height;
    let due = |b: &WatchedBlock| tip >= b.height.saturating_add(coinbase_maturity);
    let mut orphanings = Vec::new();
    let mut reinstatements = Vec::new();
    let mut maturities = Vec::new();
    let mut deep_reorgs = Vec::new();
    for b in blocks
        .iter()
        .filter(|b| is_watched(b, tip, coinbase_maturity))
    {
        let Some(in_chain) = chain.holds(b) else {
            continue;
        };
        let orphaned = || BlockOrphaned {
            block_id: b.block_id,
            height: b.height,
        };
        let matured = || {
            Event::BlockMatured(BlockMatured {
                block_id: b.block_id,
                height: b.height,
            })
        };
        match (b.status, in_chain) {
            (BlockStatus::Immature, false) => orphanings.push(Event::BlockOrphaned(orphaned())),
            (BlockStatus::Immature, true) if due(b) => maturities.push(matured()),
            (BlockStatus::Orphaned, true) => {
                reinstatements.push(Event::BlockReinstated(BlockReinstated {
                    block_id: b.block_id,
                    height: b.height,
                }));
                if due(b) {
                    maturities.push(matured());
                }
            }
            (BlockStatus::Matured, false) => {
                orphanings.push(Event::BlockOrphaned(orphaned()));
                deep_reorgs.push(orphaned());
            }
            _ => {}
        }
    }
    let mut events = orphanings;
    events.append(&mut reinstatements);
    events.append(&mut maturities);
    Plan {
        events,
        deep_reorgs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::watched_blocks;
    use pool_core::event::{
        BlockFound, PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
    };
    use pool_core::{Sats, Target};
    use projections::{AnomalyKind, Projection, ProjectionConfig};

    const MATURITY: u64 = 100;
    const REWARD: u64 = 50_000;

    fn addr(name: &str) -> PayoutAddress {
        PayoutAddress(name.to_owned())
    }

    /// A block id no other test block has: `n` in the first bytes, the branch in the last.
    fn id(n: u64, branch: u8) -> BlockId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        b[31] = branch;
        BlockId(b)
    }

    /// A ledger and its projection, with the events applied as they are appended.
    struct Pool {
        projection: Projection,
        next_seq: u64,
    }

    impl Pool {
        fn new() -> Pool {
            Pool {
                projection: Projection::new(ProjectionConfig {
                    coinbase_maturity: MATURITY,
                }),
                next_seq: 0,
            }
        }

        fn append(&mut self, event: Event) {
            self.projection.apply(self.next_seq, &event).unwrap();
            self.next_seq += 1;
        }

        fn share(&mut self, miner: &str) {
            self.append(Event::ShareAccepted(ShareAccepted {
                address: addr(miner),
                worker: WorkerName("rig".into()),
                share_target: Target::MAX,
                weight: Target::MAX.work(),
                job_id: 1,
                height: 1,
                network_target: Target::MAX,
                time_ms: self.next_seq,
            }));
        }

        fn found(&mut self, block_id: BlockId, height: u64, finder: &str) {
            self.append(Event::BlockFound(BlockFound {
                height,
                block_id,
                reward: Sats(REWARD),
                network_target: Target::MAX,
                finder: addr(finder),
                worker: WorkerName("rig".into()),
                time_ms: self.next_seq,
            }));
        }

        fn watched(&self, tip: u64) -> Vec<WatchedBlock> {
            watched_blocks(&self.projection, matured_watch_floor(tip, MATURITY))
        }

        /// Plans against `chain`, applies the plan, and checks that planning again gives nothing.
        fn check(&mut self, chain: &Chain) -> Plan {
            let planned = self.plan(chain);
            for e in planned.events.clone() {
                self.append(e);
            }
            assert_eq!(
                self.plan(chain),
                Plan::default(),
                "replanning gives nothing"
            );
            planned
        }

        fn plan(&self, chain: &Chain) -> Plan {
            let blocks = self.watched(chain.tip());
            plan(&blocks, &chain.best(&blocks), MATURITY)
        }

        fn status(&self, block_id: BlockId) -> BlockStatus {
            self.projection.block(&block_id).unwrap().status
        }

        fn immature(&self, miner: &str) -> u64 {
            self.projection.balance(&addr(miner)).unwrap().immature.0
        }

        fn payable(&self, miner: &str) -> u64 {
            self.projection.balance(&addr(miner)).unwrap().payable.0
        }

        fn anomalies(&self) -> Vec<AnomalyKind> {
            self.projection
                .anomalies()
                .iter()
                .map(|a| a.kind.clone())
                .collect()
        }
    }

    /// The node's best chain: the block id at each height from 0 (genesis) to the tip.
    #[derive(Clone)]
    struct Chain(Vec<BlockId>);

    impl Chain {
        /// Genesis plus `len` blocks of branch 0.
        fn new(len: u64) -> Chain {
            Chain((0..=len).map(|h| id(h, 0)).collect())
        }

        fn tip(&self) -> u64 {
            self.0.len() as u64 - 1
        }

        fn extend(&mut self, blocks: u64, branch: u8) {
            for _ in 0..blocks {
                let h = self.0.len() as u64;
                self.0.push(id(h, branch));
            }
        }

        /// Replaces everything above `height` with `blocks` blocks of `branch`.
        fn reorg(&mut self, height: u64, blocks: u64, branch: u8) {
            self.0.truncate(height as usize + 1);
            self.extend(blocks, branch);
        }

        /// What the driver fetches for `blocks`.
        fn best(&self, blocks: &[WatchedBlock]) -> BestChain {
            let tip = self.tip();
            BestChain {
                tip_height: tip,
                ids: heights_to_fetch(blocks, tip, MATURITY)
                    .into_iter()
                    .map(|h| (h, self.0[h as usize]))
                    .collect(),
            }
        }
    }

    fn kinds(plan: &Plan) -> Vec<(&'static str, BlockId)> {
        plan.events
            .iter()
            .map(|e| match e {
                Event::BlockOrphaned(b) => ("orphaned", b.block_id),
                Event::BlockReinstated(b) => ("reinstated", b.block_id),
                Event::BlockMatured(b) => ("matured", b.block_id),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// A pool that found the chain's block at height 10 (the miner "a" credited for it).
    fn pool_with_block(chain: &Chain) -> (Pool, BlockId) {
        let mut pool = Pool::new();
        pool.share("a");
        let block = chain.0[10];
        pool.found(block, 10, "a");
        (pool, block)
    }

    #[test]
    fn a_block_in_the_chain_matures_exactly_at_the_maturity_height() {
        let mut chain = Chain::new(10);
        let (mut pool, block) = pool_with_block(&chain);
        assert_eq!(pool.check(&chain), Plan::default());
        chain.extend(MATURITY - 1, 0);
        assert_eq!(pool.check(&chain), Plan::default(), "one block short");
        assert_eq!(pool.immature("a"), REWARD);
        chain.extend(1, 0);
        assert_eq!(kinds(&pool.check(&chain)), [("matured", block)]);
        assert_eq!(pool.status(block), BlockStatus::Matured);
        assert_eq!(pool.payable("a"), REWARD);
        // The same rule as the projection's own list.
        assert!(pool
            .projection
            .blocks_due_for_maturity(chain.tip())
            .is_empty());
        assert!(pool.anomalies().is_empty());
    }

    #[test]
    fn a_block_replaced_at_its_height_is_orphaned_and_its_credits_withdrawn() {
        let mut chain = Chain::new(12);
        let (mut pool, block) = pool_with_block(&chain);
        chain.reorg(9, 5, 1);
        assert_eq!(kinds(&pool.check(&chain)), [("orphaned", block)]);
        assert_eq!(pool.status(block), BlockStatus::Orphaned);
        assert_eq!(pool.immature("a"), 0);
        // Past maturity on the other branch: it never matures.
        chain.extend(MATURITY + 10, 1);
        assert_eq!(pool.check(&chain), Plan::default());
        assert_eq!(pool.payable("a"), 0);
        assert!(pool.anomalies().is_empty());
    }

    #[test]
    fn a_block_above_a_shorter_tip_is_orphaned() {
        let mut chain = Chain::new(10);
        let (mut pool, block) = pool_with_block(&chain);
        // A reorg to a chain that is shorter (more work, fewer blocks): height 10 is gone.
        chain.reorg(8, 1, 1);
        assert_eq!(chain.tip(), 9);
        assert_eq!(kinds(&pool.check(&chain)), [("orphaned", block)]);
        assert_eq!(pool.immature("a"), 0);
    }

    #[test]
    fn an_orphaned_block_back_in_the_chain_is_reinstated_with_its_credits() {
        let original = Chain::new(11);
        let mut chain = original.clone();
        let (mut pool, block) = pool_with_block(&chain);
        chain.reorg(9, 3, 1);
        assert_eq!(kinds(&pool.check(&chain)), [("orphaned", block)]);
        // invalidateblock, then reconsiderblock: the original branch is back.
        chain = original;
        assert_eq!(kinds(&pool.check(&chain)), [("reinstated", block)]);
        assert_eq!(pool.status(block), BlockStatus::Immature);
        assert_eq!(pool.immature("a"), REWARD);
        chain.extend(MATURITY, 0);
        assert_eq!(kinds(&pool.check(&chain)), [("matured", block)]);
        assert_eq!(pool.payable("a"), REWARD);
        assert!(pool.anomalies().is_empty());
    }

    #[test]
    fn a_block_back_after_its_maturity_height_is_reinstated_then_matured_in_one_plan() {
        let original = Chain::new(10);
        let mut chain = original.clone();
        let (mut pool, block) = pool_with_block(&chain);
        chain.reorg(9, 2, 1);
        pool.check(&chain);
        // While the pool was down the original branch won and grew past maturity.
        chain = original;
        chain.extend(MATURITY + 5, 0);
        assert_eq!(
            kinds(&pool.check(&chain)),
            [("reinstated", block), ("matured", block)]
        );
        assert_eq!(pool.payable("a"), REWARD);
        assert!(pool.anomalies().is_empty());
    }

    #[test]
    fn a_matured_block_that_leaves_the_chain_is_recorded_once_and_keeps_its_credits() {
        let mut chain = Chain::new(10);
        let (mut pool, block) = pool_with_block(&chain);
        chain.extend(MATURITY, 0);
        pool.check(&chain);
        assert_eq!(pool.payable("a"), REWARD);
        // A reorg deeper than maturity.
        chain.reorg(9, MATURITY + 5, 1);
        let planned = pool.check(&chain);
        assert_eq!(kinds(&planned), [("orphaned", block)]);
        assert_eq!(
            planned.deep_reorgs,
            [BlockOrphaned {
                block_id: block,
                height: 10
            }]
        );
        assert_eq!(
            pool.anomalies(),
            [AnomalyKind::OrphanedAfterMaturity(block)]
        );
        assert_eq!(pool.status(block), BlockStatus::Matured);
        assert_eq!(
            pool.payable("a"),
            REWARD,
            "final credits are never rewritten"
        );
        let watched = pool.watched(chain.tip());
        assert!(watched.iter().all(|b| b.deep_reorg_recorded));
        // Back and gone again: still recorded once.
        chain.reorg(9, MATURITY + 10, 0);
        assert_eq!(pool.check(&chain), Plan::default());
        chain.reorg(9, MATURITY + 20, 2);
        assert_eq!(pool.check(&chain), Plan::default());
        assert_eq!(pool.anomalies().len(), 1);
    }

    #[test]
    fn matured_blocks_are_watched_for_two_maturities_only() {
        let mut chain = Chain::new(10);
        let (mut pool, block) = pool_with_block(&chain);
        chain.extend(2 * MATURITY, 0);
        pool.check(&chain);
        assert_eq!(
            pool.watched(chain.tip()).len(),
            1,
            "still watched at 2 x maturity"
        );
        chain.extend(1, 0);
        assert!(pool.watched(chain.tip()).is_empty());
        // A reorg that deep is not looked at any more.
        chain.reorg(9, 2 * MATURITY + 5, 1);
        assert_eq!(pool.check(&chain), Plan::default());
        assert_eq!(pool.status(block), BlockStatus::Matured);
    }

    #[test]
    fn an_inconclusive_sibling_that_never_wins_is_orphaned_and_never_credited() {
        let mut chain = Chain::new(10);
        let mut pool = Pool::new();
        pool.share("a");
        pool.share("b");
        let winner = chain.0[10];
        let sibling = id(10, 7);
        pool.found(winner, 10, "a");
        // `inconclusive`: valid, on a side branch at the same height.
        pool.found(sibling, 10, "b");
        assert_eq!(kinds(&pool.check(&chain)), [("orphaned", sibling)]);
        chain.extend(MATURITY, 0);
        assert_eq!(kinds(&pool.check(&chain)), [("matured", winner)]);
        assert_eq!(pool.status(sibling), BlockStatus::Orphaned);
        let totals = pool.projection.pool_totals();
        assert_eq!(totals.rewards, Sats(REWARD), "one reward counted");
        assert_eq!(totals.balances.payable, Sats(REWARD));
        assert!(pool.anomalies().is_empty());
    }

    #[test]
    fn an_inconclusive_sibling_that_wins_later_is_reinstated_and_matured_once() {
        let mut chain = Chain::new(10);
        let mut pool = Pool::new();
        pool.share("a");
        let first = chain.0[10];
        let sibling = id(10, 7);
        pool.found(first, 10, "a");
        pool.found(sibling, 10, "a");
        assert_eq!(kinds(&pool.check(&chain)), [("orphaned", sibling)]);
        // The sibling's branch gets the next block: it wins.
        chain.0[10] = sibling;
        chain.extend(1, 7);
        assert_eq!(
            kinds(&pool.check(&chain)),
            [("orphaned", first), ("reinstated", sibling)]
        );
        chain.extend(MATURITY, 7);
        assert_eq!(kinds(&pool.check(&chain)), [("matured", sibling)]);
        chain.extend(MATURITY, 7);
        assert_eq!(pool.check(&chain), Plan::default());
        assert_eq!(pool.payable("a"), REWARD, "credited once");
        assert!(pool.anomalies().is_empty());
    }

    #[test]
    fn a_height_the_driver_did_not_fetch_leaves_its_block_undecided() {
        let chain = Chain::new(200);
        let (pool, _) = pool_with_block(&chain);
        let blocks = pool.watched(chain.tip());
        let unknown = BestChain {
            tip_height: chain.tip(),
            ids: BTreeMap::new(),
        };
        assert_eq!(plan(&blocks, &unknown, MATURITY), Plan::default());
    }

    #[test]
    fn orphanings_come_before_maturities_so_a_prop_round_rolls_into_a_block_still_immature() {
        let mut chain = Chain::new(30);
        let mut pool = Pool::new();
        pool.append(Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Prop,
            fee_bps: 0,
            fee_address: addr("fee"),
            network_fee_payer: pool_core::event::NetworkFeePayer::Pool,
        }));
        pool.share("a");
        pool.found(chain.0[10], 10, "a");
        pool.share("b");
        pool.found(chain.0[20], 20, "b");
        pool.check(&chain);
        // While the pool was down: block 10 was reorged out, then block 20 (on the new branch
        // too) passed maturity. Block 10's round (a's share) rolls into block 20.
        chain.0[10] = id(10, 1);
        chain.extend(MATURITY, 0);
        assert_eq!(
            kinds(&pool.check(&chain)),
            [("orphaned", id(10, 0)), ("matured", chain.0[20])]
        );
        assert_eq!(pool.payable("a"), REWARD / 2);
        assert_eq!(pool.payable("b"), REWARD / 2);
        assert!(pool.anomalies().is_empty());
    }

    /// One step of a chain's life, as the property test draws them.
    #[derive(Clone, Debug)]
    enum Step {
        /// The pool finds the next block on the best chain.
        Find,
        /// The pool finds a block at the tip's height on a side branch (`inconclusive`).
        FindSibling,
        /// The chain grows by `n` blocks.
        Extend(u64),
        /// The top `depth` blocks are replaced by `len` blocks of a new branch.
        Reorg { depth: u64, len: u64 },
        /// A chain seen before wins again (`reconsiderblock`).
        Restore(usize),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            3 => Just(Step::Find),
            1 => Just(Step::FindSibling),
            3 => (1u64..60).prop_map(Step::Extend),
            2 => (1u64..40, 1u64..45).prop_map(|(depth, len)| Step::Reorg { depth, len }),
            1 => (0usize..8).prop_map(Step::Restore),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the chain does, after each check: replanning gives nothing, every immature
        /// block is in the chain and every orphaned one is not, nothing matures twice or while
        /// orphaned, and the balances hold exactly the rewards of the blocks not orphaned.
        #[test]
        fn the_ledger_follows_any_chain_history(steps in proptest::collection::vec(step(), 1..40)) {
            let mut chain = Chain::new(5);
            let mut seen = vec![chain.clone()];
            let mut branch = 1u8;
            let mut pool = Pool::new();
            let mut found = Vec::new();
            for s in steps {
                pool.share("a");
                pool.share("b");
                match s {
                    Step::Find => {
                        chain.extend(1, branch);
                        let (h, b) = (chain.tip(), chain.0[chain.tip() as usize]);
                        pool.found(b, h, "a");
                        found.push(b);
                    }
                    Step::FindSibling => {
                        branch = branch.wrapping_add(1);
                        let h = chain.tip();
                        pool.found(id(h, branch), h, "b");
                        found.push(id(h, branch));
                    }
                    Step::Extend(n) => chain.extend(n, branch),
                    Step::Reorg { depth, len } => {
                        branch = branch.wrapping_add(1);
                        let fork = chain.tip().saturating_sub(depth).max(1);
                        chain.reorg(fork, len, branch);
                    }
                    Step::Restore(i) => {
                        chain = seen[i % seen.len()].clone();
                        // Blocks mined on it from now on are new blocks.
                        branch = branch.wrapping_add(1);
                    }
                }
                seen.push(chain.clone());
                pool.check(&chain);
                let tip = chain.tip();
                for b in &found {
                    let view = pool.projection.block(b).unwrap();
                    let in_chain = view.height <= tip && chain.0[view.height as usize] == *b;
                    match view.status {
                        BlockStatus::Immature => {
                            proptest::prop_assert!(in_chain);
                            proptest::prop_assert!(tip < view.height + MATURITY);
                        }
                        BlockStatus::Orphaned => proptest::prop_assert!(!in_chain),
                        BlockStatus::Matured => {}
                    }
                }
                for kind in pool.anomalies() {
                    proptest::prop_assert!(
                        matches!(kind, AnomalyKind::OrphanedAfterMaturity(_)),
                        "{:?}", kind
                    );
                }
                let totals = pool.projection.pool_totals();
                let held = totals.balances.immature.0 + totals.balances.payable.0;
                proptest::prop_assert_eq!(held, totals.rewards.0);
            }
        }
    }
}

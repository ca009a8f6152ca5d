//! SHA-256d end to end against the real regtest node pair: the independent `obtc-miner` mines
//! through the real pool (a harder regtest block threshold, so several shares per block); its
//! blocks are the node's chain and its shares are in the ledger under its address and worker.

mod common;

use common::miner::{MinerOptions, MinerProcess};
use common::nodes::nodes;
use common::pool::{PoolOptions, PoolProcess};
use pool_core::{Event, Target};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn obtc_miner_finds_real_blocks_through_the_pool() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let payout = node.new_address();
    let miner_address = node.new_address();
    // Shares at ~4,300 hashes, blocks at ~43,000: about one share in ten is a block, so 120
    // shares bring some 12 blocks (none at all: e^-12, about 6 in a million).
    const SHARE_DIFFICULTY: f64 = 1e-6;
    const BLOCK_DIFFICULTY: f64 = 1e-5;
    const SHARES: u64 = 120;
    let mut options = PoolOptions::new(&payout);
    options.pool_block_difficulty = Some(BLOCK_DIFFICULTY);
    options.start_difficulty = SHARE_DIFFICULTY;
    options.min_difficulty = SHARE_DIFFICULTY;
    options.max_difficulty = SHARE_DIFFICULTY;
    let mut pool = PoolProcess::start(&options);
    let start_height = node.block_count();

    let mut miner_options = MinerOptions::new(&format!("{miner_address}.cpu0"), "sha256d");
    miner_options.max_shares = SHARES;
    miner_options.duration_secs = 120;
    let run = MinerProcess::spawn(pool.stratum, &miner_options).wait(Duration::from_secs(150));
    let counts = run.expect_accepted(SHARES, &pool.log());
    eprintln!("sha256d miner: {counts:?}");
    // Only shares on a job a block just replaced may be refused (stale: 21).
    let codes = run.rejection_codes();
    assert_eq!(codes.len() as u64, counts.rejected, "{run:?}");
    assert!(codes.iter().all(|&code| code == 21), "{codes:?}");

    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());
    let events = pool.ledger_events();
    let found: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::BlockFound(b) => Some(b),
            _ => None,
        })
        .collect();
    assert!(!found.is_empty(), "no block in {} shares", counts.accepted);
    eprintln!("blocks found: {}", found.len());
    let block_target = Target::from_difficulty(BLOCK_DIFFICULTY).unwrap();
    // Per height: the block of the node's best chain. A second block on the same job, found
    // before the new job reached the miner, loses to the first at its height: the node answers
    // "inconclusive" (valid, not best), which is recorded found, off the best chain (the chain
    // watcher of the payout issue orphans it).
    let mut found_at = BTreeMap::new();
    let mut side_branch = 0;
    for block in &found {
        assert!(block.height > start_height);
        assert_eq!(block.finder.0, miner_address);
        assert_eq!(block.worker.0, "cpu0");
        assert_eq!(block.network_target, block_target);
        let at_height = node.cli(&["getblockhash", &block.height.to_string()]);
        if at_height.as_str().unwrap() == block.block_id.to_string() {
            assert!(found_at.insert(block.height, block.block_id).is_none());
        } else {
            side_branch += 1;
        }
    }
    eprintln!("of which off the best chain: {side_branch}");
    // Nothing else mines on this node pair: every block above the start is one the pool found.
    let heights: Vec<u64> = found_at.keys().copied().collect();
    let expected: Vec<u64> = (start_height + 1..=node.block_count()).collect();
    assert_eq!(heights, expected, "every block the miner made is recorded");
    // Every candidate got exactly one verdict, and no block was refused (the miner makes only
    // valid blocks; losing a race is not a refusal).
    let candidates = events
        .iter()
        .filter(|e| matches!(e, Event::BlockCandidate(_)))
        .count();
    assert_eq!(candidates, found.len());
    for e in &events {
        if let Event::BlockRejected(r) = e {
            panic!("a refused block: {r:?}");
        }
    }

    let shares: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ShareWithWork(w) => Some(&w.share),
            _ => None,
        })
        .collect();
    assert_eq!(shares.len() as u64, counts.accepted);
    let share_target = Target::from_difficulty(SHARE_DIFFICULTY).unwrap();
    for share in &shares {
        assert_eq!(share.address.0, miner_address);
        assert_eq!(share.worker.0, "cpu0");
        assert_eq!(share.share_target, share_target);
        assert_eq!(share.weight, share_target.work());
    }
}

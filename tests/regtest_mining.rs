//! The pool against the real regtest node pair: real blocks mined through the pool by a CPU
//! Stratum client, checked against the node's chain and the ledger.

mod common;

use bitcoin::consensus::deserialize;
use common::nodes::nodes;
use common::pool::{PoolOptions, PoolProcess};
use common::stratum_client::StratumClient;
use pool_core::Event;
use std::time::Duration;

/// Output script of `address` as the node computes it.
fn script_of(address: &str) -> Vec<u8> {
    let v = nodes().node1.cli(&["validateaddress", address]);
    hex::decode(v["scriptPubKey"].as_str().expect("scriptPubKey")).unwrap()
}

fn coinbase_of(block_hash: &str) -> bitcoin::Transaction {
    let hex_block = nodes().node1.cli(&["getblock", block_hash, "0"]);
    let raw = hex::decode(hex_block.as_str().expect("block hex")).unwrap();
    let block: bitcoin::Block = deserialize(&raw).expect("block decodes");
    block.txdata[0].clone()
}

#[test]
fn mines_real_blocks_that_pay_the_pool_address() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let payout = node.new_address();
    let miner_address = node.new_address();
    let mut pool = PoolProcess::start(&PoolOptions::new(&payout));
    let start_height = node.block_count();

    let mut client = StratumClient::connect(pool.stratum);
    client.subscribe();
    assert_eq!(
        client.authorize(&format!("{miner_address}.rig1")),
        Ok(serde_json::json!(true))
    );
    const BLOCKS: u64 = 4;
    let mut job = client.wait_for_job();
    for _ in 0..BLOCKS {
        let solution = client.grind(&job, None, None, 1_000_000);
        let reply = client.submit(&format!("{miner_address}.rig1"), &solution);
        assert_eq!(
            reply,
            Ok(serde_json::json!(true)),
            "pool log:\n{}",
            pool.log()
        );
        job = client
            .wait_for_new_block(&job.prev_hash, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no new job after a block; pool log:\n{}", pool.log()));
        assert!(job.clean_jobs, "a new block must clean the old jobs");
    }
    assert!(
        node.wait_until(Duration::from_secs(30), |n| n.block_count()
            >= start_height + BLOCKS),
        "the chain did not grow by {BLOCKS}"
    );
    drop(client);
    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());

    let events = pool.ledger_events();
    let found: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::BlockFound(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let shares = events
        .iter()
        .filter(|e| matches!(e, Event::ShareAccepted(_)))
        .count();
    assert_eq!(found.len() as u64, BLOCKS, "events: {events:?}");
    assert_eq!(shares as u64, BLOCKS);
    let payout_script = script_of(&payout);
    for block in &found {
        let at_height = node.cli(&["getblockhash", &block.height.to_string()]);
        assert_eq!(at_height.as_str().unwrap(), block.block_id.to_string());
        assert_eq!(block.finder.0, miner_address);
        assert_eq!(block.worker.0, "rig1");
        let coinbase = coinbase_of(&block.block_id.to_string());
        let paid: u64 = coinbase
            .output
            .iter()
            .filter(|o| o.script_pubkey.as_bytes() == payout_script.as_slice())
            .map(|o| o.value.to_sat())
            .sum();
        assert_eq!(
            paid, block.reward.0,
            "coinbase pays the pool address its reward"
        );
        assert_eq!(paid, 5_000_000_000, "regtest subsidy, no fees");
    }
}

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
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
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
    check_work_and_anchors(&pool.ledger_dir(), &found);
}

/// The work in the ledger against the chain: every share follows a `JobCreated` with its job
/// id; each found block's coinbase is exactly `coinbase1 | extranonce1 | extranonce2 |
/// coinbase2` of its share's job, and carries one anchor output, equal to the job's
/// `JobCreated.anchor`, which names a record of this ledger (its seq and chain hash) from
/// before the job.
fn check_work_and_anchors(dir: &std::path::Path, found: &[pool_core::event::BlockFound]) {
    use pool_core::anchor::parse_anchor_script;
    use pool_core::event::{JobCreated, ShareWithWork};
    use std::collections::HashMap;

    let ledger = ledger::Ledger::open_read_only(dir).expect("open ledger");
    let records: Vec<ledger::Record> = ledger.read_from(0).map(|r| r.unwrap()).collect();
    let hashes: HashMap<u64, [u8; 32]> = records.iter().map(|r| (r.seq, r.hash)).collect();
    // Latest JobCreated per job id, as the ledger is read in order.
    let mut jobs: HashMap<u64, (u64, JobCreated)> = HashMap::new();
    // The finding share of each candidate's block id.
    let mut finders: HashMap<pool_core::BlockId, (ShareWithWork, JobCreated)> = HashMap::new();
    let mut last_share: Option<ShareWithWork> = None;
    for r in &records {
        match &r.event {
            Event::JobCreated(job) => {
                if let Some(anchor) = job.anchor {
                    assert!(anchor.seq < r.seq, "a job anchors an earlier record");
                    assert_eq!(hashes.get(&anchor.seq), Some(&anchor.hash), "seq {}", r.seq);
                }
                jobs.insert(job.job_id, (r.seq, job.clone()));
            }
            Event::ShareWithWork(share) => {
                assert!(
                    jobs.contains_key(&share.share.job_id),
                    "share at seq {} before its job's JobCreated",
                    r.seq
                );
                last_share = Some(share.clone());
            }
            Event::ShareAccepted(_) => panic!("the pool records ShareWithWork, not ShareAccepted"),
            Event::BlockCandidate(c) => {
                let share = last_share.clone().expect("a candidate follows its share");
                let (_, job) = jobs[&share.share.job_id].clone();
                finders.insert(c.block_id, (share, job));
            }
            _ => {}
        }
    }
    assert!(!jobs.is_empty());
    for block in found {
        let (share, job) = finders
            .get(&block.block_id)
            .unwrap_or_else(|| panic!("no candidate for {}", block.block_id));
        // The ledger holds the payout rule before any job: every job has an anchor.
        let anchor = job
            .anchor
            .expect("a job built on a non-empty ledger is anchored");
        let coinbase = coinbase_of(&block.block_id.to_string());
        let mut rebuilt = job.coinbase1.clone();
        rebuilt.extend_from_slice(&share.work.extranonce1);
        rebuilt.extend_from_slice(&share.work.extranonce2);
        rebuilt.extend_from_slice(&job.coinbase2);
        assert_eq!(
            bitcoin::consensus::serialize(&coinbase),
            rebuilt,
            "the block's coinbase is its job's halves around the share's extranonces"
        );
        let anchors: Vec<_> = coinbase
            .output
            .iter()
            .filter_map(|o| parse_anchor_script(o.script_pubkey.as_bytes()).map(|a| (a, o)))
            .collect();
        assert_eq!(anchors.len(), 1, "one anchor output");
        assert_eq!(anchors[0].0, anchor);
        assert_eq!(anchors[0].1.value.to_sat(), 0);
        // The header too: the block's hash is the rebuilt header's.
        let header = pool_core::share::build_header(
            share.work.version,
            &job.prev_hash.0,
            &pool_core::merkle::root_from_branch(
                &pool_core::share::coinbase_txid(
                    &job.coinbase1,
                    &share.work.extranonce1,
                    &share.work.extranonce2,
                    &job.coinbase2,
                ),
                &job.merkle_branch,
            ),
            share.work.ntime,
            job.bits,
            share.work.nonce,
        );
        let hash = pool_core::pow::sha256d_header(&header);
        assert_eq!(pool_core::BlockId(hash), block.block_id);
    }
}

fn block_events(events: &[Event]) -> Vec<pool_core::event::BlockFound> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BlockFound(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn pool_block_difficulty_gives_many_shares_per_block() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let payout = node.new_address();
    let mut options = PoolOptions::new(&payout);
    // Shares at ~43 hashes, blocks at ~4300: about a hundred shares per block.
    options.pool_block_difficulty = Some(1e-6);
    options.start_difficulty = 1e-8;
    options.min_difficulty = 1e-8;
    options.max_difficulty = 1e-8;
    let mut pool = PoolProcess::start(&options);
    let user = format!("{}.many", node.new_address());
    let (mut client, _) = StratumClient::authorized(pool.stratum, &user);
    let start_height = node.block_count();
    let mut shares = 0u64;
    let mut prev = client.latest_job().unwrap().prev_hash;
    let mut blocks_seen = 0u64;
    // At least two blocks and twenty shares: which shares are blocks is chance, so the count of
    // shares per block is not asserted; that exactly the shares meeting the block threshold became
    // blocks (and all others only shares) is.
    let block_target = pool_core::Target::from_difficulty(1e-6).unwrap();
    while (blocks_seen < 2 || shares < 20) && shares < 5_000 {
        let job = client.latest_job().unwrap();
        let s = client.grind(&job, None, None, 1_000_000);
        match client.submit(&user, &s) {
            Ok(v) => {
                assert_eq!(v, serde_json::json!(true));
                shares += 1;
            }
            // A block just made this job stale; take the next one.
            Err(e) => {
                assert_eq!(e.code, 21, "{e:?}");
                continue;
            }
        }
        // A share that was a block: wait for the job on top of it.
        if block_target.is_met_by(&s.hash) {
            let next = client
                .wait_for_new_block(&prev, Duration::from_secs(30))
                .expect("new job after our block");
            prev = next.prev_hash;
            blocks_seen += 1;
        }
    }
    assert!(
        blocks_seen >= 2,
        "{blocks_seen} blocks after {shares} shares"
    );
    assert!(
        shares >= blocks_seen + 18,
        "{shares} shares, {blocks_seen} blocks"
    );
    drop(client);
    assert!(pool.terminate().success());
    let events = pool.ledger_events();
    let found = block_events(&events);
    assert_eq!(found.len() as u64, blocks_seen, "{found:?}");
    let accepted = events
        .iter()
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
        .count();
    assert_eq!(accepted as u64, shares);
    for b in &found {
        assert!(b.height > start_height);
        let at = node.cli(&["getblockhash", &b.height.to_string()]);
        assert_eq!(at.as_str().unwrap(), b.block_id.to_string());
    }
}

#[test]
fn version_rolling_blocks_are_accepted_by_the_node() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let mut pool = PoolProcess::start(&PoolOptions::new(&node.new_address()));
    let user = node.new_address();
    let mut client = StratumClient::connect(pool.stratum);
    let mask = client
        .configure_version_rolling(0xffff_ffff)
        .expect("version rolling granted");
    assert_eq!(mask, 0x1fff_e000, "the pool's mask limits the miner's");
    client.subscribe();
    client.authorize(&user).unwrap();
    let job = client.wait_for_job();
    let height = node.block_count();

    // Bits outside the granted mask are refused.
    let mut bad = client.grind(&job, None, Some(0x0000_2000), 1_000_000);
    bad.version_bits = Some("e0000000".into());
    assert!(client.submit(&user, &bad).is_err());

    // A rolled version inside the mask makes a block the node accepts.
    let s = client.grind(&job, None, Some(0x1234_6000), 1_000_000);
    assert_eq!(
        client.submit(&user, &s),
        Ok(serde_json::json!(true)),
        "{}",
        pool.log()
    );
    assert!(node.wait_until(Duration::from_secs(30), |n| n.block_count() > height));
    let best = node.cli(&["getblockhash", &(height + 1).to_string()]);
    let header = node.cli(&["getblockheader", best.as_str().unwrap()]);
    let version = header["version"].as_u64().unwrap() as u32;
    assert_eq!(version & mask, 0x1234_6000 & mask);
    drop(client);
    assert!(pool.terminate().success());
    let found = block_events(&pool.ledger_events());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].block_id.to_string(), best.as_str().unwrap());
}

#[test]
fn notify_command_brings_new_work_without_long_polling() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let mut options = PoolOptions::new(&node.new_address());
    options.longpoll = false;
    options.refresh_secs = 600;
    let pool = PoolProcess::start(&options);
    let (mut client, job) = StratumClient::authorized(pool.stratum, &node.new_address());
    let best = node.cli(&["getbestblockhash"]);
    nodes().node2.cli(&["generate", "1"]);
    // node1 must know the block before the trigger, or the refetch finds nothing new.
    assert!(node.wait_until(Duration::from_secs(30), |n| {
        n.cli(&["getbestblockhash"]) != best
    }));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .arg("notify")
        .arg("--config")
        .arg(&pool.config_path)
        .status()
        .unwrap();
    assert!(status.success());
    let next = client
        .wait_for_new_block(&job.prev_hash, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no new job after notify:\n{}", pool.log()));
    assert!(next.clean_jobs);
}

#[test]
fn extra_outputs_are_paid_in_the_coinbase() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let payout = node.new_address();
    let fee_address = node.new_address();
    let donation_address = node.new_address();
    let mut options = PoolOptions::new(&payout);
    options.extra = format!(
        "\n[[pool.extra_outputs]]\naddress = \"{fee_address}\"\nbps = 150\n\n\
         [[pool.extra_outputs]]\naddress = \"{donation_address}\"\nsats = 12345\n"
    );
    // Appended after [notify]: TOML allows `[[pool.extra_outputs]]` anywhere after [pool].
    let mut pool = PoolProcess::start(&options);
    let user = node.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    let s = client.grind(&job, None, None, 1_000_000);
    assert_eq!(
        client.submit(&user, &s),
        Ok(serde_json::json!(true)),
        "{}",
        pool.log()
    );
    drop(client);
    assert!(pool.terminate().success());
    let found = block_events(&pool.ledger_events());
    assert_eq!(found.len(), 1);
    let coinbase = coinbase_of(&found[0].block_id.to_string());
    let paid_to = |address: &str| -> u64 {
        let script = script_of(address);
        coinbase
            .output
            .iter()
            .filter(|o| o.script_pubkey.as_bytes() == script.as_slice())
            .map(|o| o.value.to_sat())
            .sum()
    };
    let total: u64 = coinbase.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(total, 5_000_000_000);
    assert_eq!(paid_to(&fee_address), 5_000_000_000 * 150 / 10_000);
    assert_eq!(paid_to(&donation_address), 12_345);
    assert_eq!(paid_to(&payout), found[0].reward.0);
    assert_eq!(found[0].reward.0, 5_000_000_000 - 75_000_000 - 12_345);
}

#[test]
fn a_block_on_an_outdated_tip_is_recorded_found_off_the_best_chain() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let mut options = PoolOptions::new(&node.new_address());
    // No long poll, no refresh, no notify: the pool keeps mining on the old tip.
    options.longpoll = false;
    options.refresh_secs = 600;
    let mut pool = PoolProcess::start(&options);
    let user = node.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    let best = node.cli(&["getbestblockhash"]);
    nodes().node2.cli(&["generate", "1"]);
    assert!(
        node.wait_until(Duration::from_secs(30), |n| n.cli(&["getbestblockhash"])
            != best)
    );

    let s = client.grind(&job, None, None, 1_000_000);
    // The share itself is fine for the pool; only the block loses.
    assert_eq!(client.submit(&user, &s), Ok(serde_json::json!(true)));
    drop(client);
    // The verdict is recorded after the candidate; wait for it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !pool.log().contains("block found")
        && !pool.log().contains("rejected by the node")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pool.terminate().success());
    let events = pool.ledger_events();
    let found = block_events(&events);
    let rejected = events
        .iter()
        .filter(|e| matches!(e, Event::BlockRejected(_)))
        .count();
    let candidates: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::BlockCandidate(_)))
        .map(|(i, _)| i)
        .collect();
    // The candidate is recorded first, right after its finding share.
    assert_eq!(candidates.len(), 1, "{}", pool.log());
    assert!(matches!(events[candidates[0] - 1], Event::ShareWithWork(_)));
    // Bitcoin SV validates blocks in parallel: `submitblock` answers "inconclusive" for the
    // losing sibling (valid, not best), or accepts it (null) before deciding which tip wins.
    // Either is the node's word that the block is valid: recorded found, once, and not on the
    // best chain (the payout issue's chain watcher turns it into BlockOrphaned).
    assert_eq!((found.len(), rejected), (1, 0), "{}", pool.log());
    let b = &found[0];
    assert_eq!(b.finder.0, user);
    let at_height = node.cli(&["getblockhash", &b.height.to_string()]);
    assert_ne!(at_height.as_str().unwrap(), b.block_id.to_string());
    assert!(
        !pool.log().contains("rejected by the node"),
        "{}",
        pool.log()
    );
}

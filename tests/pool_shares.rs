//! Share handling through the real pool binary against the regtest nodes: rejects arrive as the
//! right Stratum errors, vardiff moves the difficulty, and a SIGKILL never loses an acknowledged
//! share.

mod common;

use common::nodes::nodes;
use common::pool::{read_events, PoolOptions, PoolProcess};
use common::stratum_client::{sha256d, StratumClient};
use pool_core::event::ShareWithWork;
use pool_core::{Event, Target};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options where shares are cheap and no share is ever a block (the block threshold is far
/// beyond what the test grinds).
fn no_block_options(payout: &str) -> PoolOptions {
    let mut o = PoolOptions::new(payout);
    o.pool_block_difficulty = Some(1e3);
    o
}

#[test]
fn rejects_arrive_as_the_right_errors() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let payout = node.new_address();
    let mut options = no_block_options(&payout);
    options.start_difficulty = 1e-7;
    options.min_difficulty = 1e-7;
    options.max_difficulty = 1e-7;
    let pool = PoolProcess::start(&options);
    let user = format!("{}.rejects", node.new_address());

    let mut client = StratumClient::connect(pool.stratum);
    // Submitting before subscribing/authorizing is refused.
    let early = client.request(
        "mining.submit",
        json!([user, "1", "00000000", "00000000", "00000000"]),
    );
    assert!(early.is_err(), "{early:?}");
    client.subscribe();
    assert_eq!(client.authorize(&user), Ok(json!(true)));
    let job = client.wait_for_job();

    // A valid share, then the same share again: duplicate (22).
    let share = client.grind(&job, None, None, 2_000_000);
    assert_eq!(
        client.submit(&user, &share),
        Ok(json!(true)),
        "{}",
        pool.log()
    );
    let dup = client.submit(&user, &share).unwrap_err();
    assert_eq!(dup.code, 22, "{dup:?}");

    // A header whose hash misses the share target: low difficulty (23).
    let target = Target::from_difficulty(client.difficulty).unwrap();
    let mut low = client.grind(&job, None, None, 2_000_000);
    let en2 = hex::decode(&low.extranonce2).unwrap();
    let nonce = (0u32..)
        .find(|n| {
            let h = sha256d(&client.header(&job, &en2, job.ntime, *n, job.version));
            !target.is_met_by(&h)
        })
        .unwrap();
    low.nonce = format!("{nonce:08x}");
    let err = client.submit(&user, &low).unwrap_err();
    assert_eq!(err.code, 23, "{err:?}");

    // Unknown job id: 21.
    let mut unknown = client.grind(&job, None, None, 2_000_000);
    unknown.job_id = "ffffff".into();
    assert_eq!(client.submit(&user, &unknown).unwrap_err().code, 21);

    // Unauthorized worker name: 24.
    let other = client.grind(&job, None, None, 2_000_000);
    let err = client
        .submit(&format!("{}.someone", node.new_address()), &other)
        .unwrap_err();
    assert_eq!(err.code, 24, "{err:?}");

    // A new block on the network makes the old job stale: 21.
    let stale = client.grind(&job, None, None, 2_000_000);
    nodes().node2.cli(&["generate", "1"]);
    let fresh = client
        .wait_for_new_block(&job.prev_hash, Duration::from_secs(30))
        .expect("new job after the network's block");
    assert!(fresh.clean_jobs);
    let err = client.submit(&user, &stale).unwrap_err();
    assert_eq!(err.code, 21, "{err:?}");

    // And the fresh job is still accepted.
    let ok = client.grind(&fresh, None, None, 2_000_000);
    assert_eq!(client.submit(&user, &ok), Ok(json!(true)));
}

#[test]
fn vardiff_raises_the_difficulty_of_a_fast_miner() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let mut options = no_block_options(&node.new_address());
    options.start_difficulty = 1e-9;
    options.min_difficulty = 1e-9;
    options.target_share_secs = 5.0;
    let pool = PoolProcess::start(&options);
    let user = node.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    let start = client.difficulty;
    // Shares far faster than one per 5 s: vardiff must raise the difficulty.
    for _ in 0..60 {
        let job = client.latest_job().unwrap_or_else(|| job.clone());
        let s = client.grind(&job, None, None, 5_000_000);
        client.submit(&user, &s).expect("share accepted");
        if client.difficulty > start * 2.0 {
            break;
        }
    }
    assert!(
        client.difficulty > start * 2.0,
        "difficulty stayed at {} (start {start})\n{}",
        client.difficulty,
        pool.log()
    );
    // Work at the new difficulty is accepted.
    let job = client.latest_job().unwrap();
    let s = client.grind(&job, None, None, 50_000_000);
    assert_eq!(client.submit(&user, &s), Ok(json!(true)));
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_share() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let mut options = no_block_options(&node.new_address());
    // Pinned, trivial difficulty: every thread acks shares as fast as the ledger commits.
    options.start_difficulty = 1e-9;
    options.min_difficulty = 1e-9;
    options.max_difficulty = 1e-9;
    let mut pool = PoolProcess::start(&options);
    const MINERS: usize = 4;
    let addr = pool.stratum;
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let workers: Vec<String> = (0..MINERS).map(|i| format!("w{i}")).collect();
    let address = node.new_address();
    let threads: Vec<_> = workers
        .iter()
        .map(|w| {
            let user = format!("{address}.{w}");
            let stop = Arc::clone(&stop);
            let total = Arc::clone(&total);
            std::thread::spawn(move || {
                let mut acked = 0u64;
                let mut client = StratumClient::connect(addr);
                client.subscribe();
                client.authorize(&user).unwrap();
                client.wait_for_job();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let job = client.latest_job().unwrap();
                    let s = client.grind(&job, None, None, 1_000_000);
                    // After the kill the connection drops: no reply means no ack.
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        client.submit(&user, &s)
                    })) {
                        Ok(Ok(serde_json::Value::Bool(true))) => {
                            acked += 1;
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while total.load(Ordering::Relaxed) < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        total.load(Ordering::Relaxed) >= 200,
        "load did not build up:\n{}",
        pool.log()
    );
    pool.kill(); // SIGKILL mid-load
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let mut in_ledger: BTreeMap<String, u64> = BTreeMap::new();
    for e in read_events(&pool.ledger_dir()) {
        if let Event::ShareWithWork(ShareWithWork { share: s, .. }) = e {
            *in_ledger.entry(s.worker.0).or_default() += 1;
        }
    }
    for (w, n) in workers.iter().zip(&acked) {
        let stored = in_ledger.get(w).copied().unwrap_or(0);
        assert!(
            stored >= *n,
            "worker {w}: {n} shares acknowledged, {stored} in the ledger"
        );
    }

    // The pool restarts on the same ledger and keeps appending to it.
    let before: u64 = in_ledger.values().sum();
    pool.spawn();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &format!("{address}.after"));
    for _ in 0..5 {
        let s = client.grind(&job, None, None, 1_000_000);
        assert_eq!(
            client.submit(&format!("{address}.after"), &s),
            Ok(json!(true))
        );
    }
    drop(client);
    assert!(pool.terminate().success(), "{}", pool.log());
    let after = read_events(&pool.ledger_dir())
        .iter()
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
        .count() as u64;
    assert_eq!(after, before + 5);
}

#[test]
fn pipelined_submits_are_answered_in_order_and_all_stored() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let mut options = no_block_options(&node.new_address());
    options.start_difficulty = 1e-9;
    options.min_difficulty = 1e-9;
    options.max_difficulty = 1e-9;
    let mut pool = PoolProcess::start(&options);
    let user = node.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    const N: u64 = 100;
    let mut batch = String::new();
    for i in 0..N {
        let s = client.grind(&job, None, None, 1_000_000);
        batch.push_str(
            &json!({"id": 1000 + i, "method": "mining.submit",
                    "params": [user, s.job_id, s.extranonce2, s.ntime, s.nonce]})
            .to_string(),
        );
        batch.push('\n');
    }
    // Every submit in one write: the pool handles them while earlier appends are in flight.
    client.send_raw(batch.trim_end()).unwrap();
    let mut next = 1000;
    while next < 1000 + N {
        let msg = client.read_line().expect("reply");
        if msg["id"].is_null() {
            continue; // a notification
        }
        assert_eq!(msg["id"], json!(next), "replies out of order");
        assert_eq!(msg["result"], json!(true), "{msg}");
        next += 1;
    }
    drop(client);
    assert!(pool.terminate().success());
    let stored = pool
        .ledger_events()
        .iter()
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
        .count() as u64;
    assert_eq!(stored, N);
}

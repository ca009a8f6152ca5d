//! The chain watcher against real BSV regtest nodes: blocks the pool found through its Stratum
//! server leave the best chain, come back, lose or win as siblings, and mature, and the ledger
//! follows with exactly one event per change, including across a restart of the pool.
//!
//! Every test starts a node pair of its own (they reorg it), so they run one at a time.
//! Outcomes are read from the ledger once the pool has stopped.

mod common;

use common::nodes::{start_pair_with, Node, NodePair};
use common::pool::{config_text, read_events, PoolOptions, PoolProcess};
use common::stratum_client::{Job, StratumClient};
use pool_core::event::BlockFound;
use pool_core::{BlockId, Event};
use projections::{BlockStatus, Projection, ProjectionConfig};
use std::time::{Duration, Instant};

fn pair() -> NodePair {
    start_pair_with(&[]).unwrap_or_else(|e| panic!("cannot start regtest nodes: {e}"))
}

/// A pool on `pair.node1` whose coinbase pays a node1 address (the pool's wallet), checking the
/// chain every second, with `extra` TOML appended.
fn pool_on(pair: &NodePair, longpoll: bool, extra: &str) -> PoolProcess {
    let mut o = PoolOptions::new(&pair.node1.new_address());
    o.node_url = Some(pair.node1.rpc_url());
    o.longpoll = longpoll;
    if !longpoll {
        // No new template unless the pool asks: it keeps mining on the tip it had.
        o.refresh_secs = 600;
    }
    o.extra = extra.to_owned();
    PoolProcess::start_with_config(|stratum, notify| {
        config_text(&o, stratum, notify).replace(
            "max_retry_backoff_secs = 2",
            "max_retry_backoff_secs = 2\nwatch_interval_secs = 1",
        )
    })
}

fn wait_for(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    pred()
}

/// Waits (bounded) until the pool's log holds `needle` at least `at_least` times.
fn wait_for_log(pool: &PoolProcess, needle: &str, at_least: usize, secs: u64) {
    assert!(
        wait_for(Duration::from_secs(secs), || pool
            .log()
            .matches(needle)
            .count()
            >= at_least),
        "waited for {needle:?} x {at_least}:\n{}",
        pool.log()
    );
}

/// Mines one share on `job` and submits it: on regtest's network target every share is a
/// block. Waits until the pool has recorded it found (`found_before` blocks were found before).
fn mine_block(
    pool: &PoolProcess,
    client: &mut StratumClient,
    user: &str,
    job: &Job,
    found_before: usize,
) {
    let s = client.grind(job, None, None, 10_000_000);
    assert_eq!(client.submit(user, &s), Ok(serde_json::json!(true)));
    wait_for_log(pool, "block found:", found_before + 1, 30);
}

/// The client's job on top of the block `display_hash` (waiting, bounded, for it to arrive).
fn job_on(client: &mut StratumClient, display_hash: &str) -> Job {
    let id = BlockId::from_display_hex(display_hash).expect("block hash");
    let want = stratum::job::stratum_prev_hash(&id.0);
    for _ in 0..5 {
        let job = client.latest_job().unwrap_or_else(|| client.wait_for_job());
        if job.prev_hash == want {
            return job;
        }
        client.wait_for_new_block(&job.prev_hash, Duration::from_secs(30));
    }
    panic!("no job on {display_hash}");
}

fn best(node: &Node) -> String {
    node.cli(&["getbestblockhash"])
        .as_str()
        .expect("best block hash")
        .to_owned()
}

fn wait_for_best(node: &Node, hash: &str) {
    assert!(
        node.wait_until(Duration::from_secs(60), |n| best(n) == hash),
        "node did not reach {hash}"
    );
}

/// Mines `n` blocks on `node` to an address of node2's wallet (never the pool's).
fn generate(pair: &NodePair, node: &Node, n: u32) {
    let to = pair.node2.new_address();
    node.cli(&["generatetoaddress", &n.to_string(), &to]);
}

/// The pool's found blocks, in ledger order.
fn found_blocks(events: &[Event]) -> Vec<BlockFound> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BlockFound(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// The lifecycle events of `block`, in ledger order.
fn lifecycle(events: &[Event], block: BlockId) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BlockOrphaned(b) if b.block_id == block => Some("orphaned"),
            Event::BlockReinstated(b) if b.block_id == block => Some("reinstated"),
            Event::BlockMatured(b) if b.block_id == block => Some("matured"),
            _ => None,
        })
        .collect()
}

fn fold(events: &[Event]) -> Projection {
    let mut p = Projection::new(ProjectionConfig::default());
    for (seq, e) in events.iter().enumerate() {
        p.apply(seq as u64, e).unwrap();
    }
    p
}

fn is_best_at(node: &Node, block: &BlockFound) -> bool {
    node.try_cli(&["getblockhash", &block.height.to_string()])
        .is_ok_and(|h| h.as_str() == Some(block.block_id.to_string().as_str()))
}

/// (a) A real competing branch: node2 leaves the network, mines a longer branch, and comes
/// back. The pool's block on the losing branch is orphaned once, credits nothing, and under PROP
/// its round (miner a's share) rolls forward into the pool's next block.
#[test]
fn a_block_on_a_losing_branch_is_orphaned_and_its_prop_round_rolls_forward() {
    let _serial = common::serial();
    let pair = pair();
    let mut pool = pool_on(&pair, true, "\n[payout]\nscheme = \"prop\"\n");
    let (a, b) = (pair.node2.new_address(), pair.node2.new_address());
    let (mut miner_a, job) = StratumClient::authorized(pool.stratum, &a);
    pair.node2.cli(&["setnetworkactive", "false"]);
    assert!(pair.node1.wait_until(Duration::from_secs(30), |n| n
        .cli(&["getconnectioncount"])
        .as_u64()
        == Some(0)));
    mine_block(&pool, &mut miner_a, &a, &job, 0);
    let lost = best(&pair.node1);

    // node2's branch: two blocks on the common parent, more work than the pool's one.
    generate(&pair, &pair.node2, 2);
    let winner = best(&pair.node2);
    pair.node2.cli(&["setnetworkactive", "true"]);
    let peer = format!("127.0.0.1:{}", pair.node1.p2p_port);
    let _ = pair.node2.try_cli(&["addnode", &peer, "onetry"]);
    wait_for_best(&pair.node1, &winner);
    wait_for_log(&pool, "block orphaned", 1, 30);

    // Miner b finds the next block, on the winning branch.
    let (mut miner_b, _) = StratumClient::authorized(pool.stratum, &b);
    let job_b = job_on(&mut miner_b, &winner);
    mine_block(&pool, &mut miner_b, &b, &job_b, 1);
    drop((miner_a, miner_b));
    assert!(pool.terminate().success());

    let events = read_events(&pool.ledger_dir());
    let found = found_blocks(&events);
    assert_eq!(found.len(), 2, "{}", pool.log());
    let (x, y) = (&found[0], &found[1]);
    assert_eq!(x.block_id.to_string(), lost);
    assert!(!is_best_at(&pair.node1, x));
    assert!(is_best_at(&pair.node1, y));
    assert_eq!(lifecycle(&events, x.block_id), ["orphaned"]);
    assert!(lifecycle(&events, y.block_id).is_empty());
    let p = fold(&events);
    assert_eq!(p.block(&x.block_id).unwrap().status, BlockStatus::Orphaned);
    let y_view = p.block(&y.block_id).unwrap();
    assert_eq!(y_view.status, BlockStatus::Immature);
    // PROP: y's round holds a's share (x's round, rolled forward) and b's.
    let credit = |addr: &str| {
        y_view
            .credits
            .get(&pool_core::event::PayoutAddress(addr.to_owned()))
            .map_or(0, |s| s.0)
    };
    assert!(credit(&a) > 0 && credit(&b) > 0, "{:?}", y_view.credits);
    assert_eq!(credit(&a) + credit(&b) + y_view.fee.0, y.reward.0);
    // Nothing is credited for the lost block: the balances hold y's reward only.
    let totals = p.pool_totals();
    assert_eq!(totals.rewards, y.reward);
    assert_eq!(totals.balances.immature, y.reward);
    assert!(p.anomalies().is_empty(), "{:?}", p.anomalies());
}

/// (b) `invalidateblock` then `reconsiderblock` on both nodes: the pool's block is orphaned
/// (credits withdrawn), then reinstated (credits restored), once each.
#[test]
fn an_invalidated_then_reconsidered_block_is_orphaned_then_reinstated() {
    let _serial = common::serial();
    let pair = pair();
    let mut pool = pool_on(&pair, true, "");
    let a = pair.node2.new_address();
    let (mut miner, job) = StratumClient::authorized(pool.stratum, &a);
    mine_block(&pool, &mut miner, &a, &job, 0);
    let block = best(&pair.node1);
    wait_for_best(&pair.node2, &block);
    for node in [&pair.node1, &pair.node2] {
        node.cli(&["invalidateblock", &block]);
    }
    wait_for_log(&pool, "block orphaned", 1, 30);
    for node in [&pair.node1, &pair.node2] {
        node.cli(&["reconsiderblock", &block]);
    }
    wait_for_best(&pair.node1, &block);
    wait_for_log(&pool, "block reinstated", 1, 30);
    drop(miner);
    assert!(pool.terminate().success());

    let events = read_events(&pool.ledger_dir());
    let found = found_blocks(&events);
    assert_eq!(found.len(), 1);
    let x = &found[0];
    assert_eq!(x.block_id.to_string(), block);
    assert_eq!(lifecycle(&events, x.block_id), ["orphaned", "reinstated"]);
    let orphaned_at = events
        .iter()
        .position(|e| matches!(e, Event::BlockOrphaned(_)))
        .unwrap();
    let miner_a = pool_core::event::PayoutAddress(a.clone());
    let while_orphaned = fold(&events[..=orphaned_at]);
    assert_eq!(while_orphaned.balance(&miner_a).unwrap().immature.0, 0);
    let now = fold(&events);
    assert_eq!(
        now.block(&x.block_id).unwrap().status,
        BlockStatus::Immature
    );
    assert_eq!(now.balance(&miner_a).unwrap().immature, x.reward);
    assert!(now.anomalies().is_empty(), "{:?}", now.anomalies());
}

/// (c) Siblings the node answered `inconclusive` (valid, not best): the pool mines on a tip it
/// does not refresh while node2 mines the same height first. The first sibling loses for good
/// and is orphaned; the second wins later (its rival is invalidated and node1 builds on it): it is
/// orphaned, reinstated and matured once, and credited once.
#[test]
fn an_inconclusive_sibling_that_loses_is_orphaned_and_one_that_wins_matures_once() {
    let _serial = common::serial();
    let pair = pair();
    let mut pool = pool_on(&pair, false, "");
    let a = pair.node2.new_address();
    let (mut miner, job) = StratumClient::authorized(pool.stratum, &a);

    // Sibling 1: node2's block at the height comes first.
    let before = best(&pair.node1);
    generate(&pair, &pair.node2, 1);
    assert!(pair
        .node1
        .wait_until(Duration::from_secs(30), |n| best(n) != before));
    mine_block(&pool, &mut miner, &a, &job, 0);
    wait_for_log(&pool, "block orphaned", 1, 30);

    // Sibling 2, on the next height (the pool refetched its template after its block).
    let before = best(&pair.node1);
    let job2 = job_on(&mut miner, &before);
    generate(&pair, &pair.node2, 1);
    assert!(pair
        .node1
        .wait_until(Duration::from_secs(30), |n| best(n) != before));
    let rival = best(&pair.node1);
    mine_block(&pool, &mut miner, &a, &job2, 1);
    wait_for_log(&pool, "block orphaned", 2, 30);

    // The rival is invalidated: node1's best is now the pool's sibling, and node1 builds on it.
    for node in [&pair.node1, &pair.node2] {
        node.cli(&["invalidateblock", &rival]);
    }
    assert!(pair
        .node1
        .wait_until(Duration::from_secs(30), |n| best(n) != rival));
    generate(&pair, &pair.node1, 2);
    wait_for_log(&pool, "block reinstated", 1, 30);
    generate(&pair, &pair.node1, 100);
    wait_for_log(&pool, "block matured", 1, 30);
    drop(miner);
    assert!(pool.terminate().success());

    let events = read_events(&pool.ledger_dir());
    let found = found_blocks(&events);
    assert_eq!(found.len(), 2, "{}", pool.log());
    let (lost, won) = (&found[0], &found[1]);
    assert!(!is_best_at(&pair.node1, lost));
    assert!(is_best_at(&pair.node1, won));
    assert_eq!(lifecycle(&events, lost.block_id), ["orphaned"]);
    assert_eq!(
        lifecycle(&events, won.block_id),
        ["orphaned", "reinstated", "matured"]
    );
    let p = fold(&events);
    assert_eq!(
        p.block(&lost.block_id).unwrap().status,
        BlockStatus::Orphaned
    );
    assert_eq!(p.block(&won.block_id).unwrap().status, BlockStatus::Matured);
    let balance = p
        .balance(&pool_core::event::PayoutAddress(a.clone()))
        .unwrap();
    assert_eq!(balance.payable, won.reward, "credited once, for the winner");
    assert_eq!(balance.immature.0, 0);
    assert_eq!(p.pool_totals().rewards, won.reward);
    assert!(p.anomalies().is_empty(), "{:?}", p.anomalies());
}

/// (d) The pool is stopped; meanwhile its second block is reorged out and its first passes
/// maturity. Started again, it catches up (orphaned and matured, once each), and a further
/// restart records nothing more.
#[test]
fn a_restarted_pool_catches_up_with_what_happened_while_it_was_down() {
    let _serial = common::serial();
    let pair = pair();
    let mut pool = pool_on(&pair, true, "");
    let a = pair.node2.new_address();
    let (mut miner, job) = StratumClient::authorized(pool.stratum, &a);
    mine_block(&pool, &mut miner, &a, &job, 0);
    let job2 = job_on(&mut miner, &best(&pair.node1));
    mine_block(&pool, &mut miner, &a, &job2, 1);
    let second = best(&pair.node1);
    wait_for_best(&pair.node2, &second);
    wait_for_log(&pool, "chain watcher caught up", 1, 30);
    drop(miner);
    assert!(pool.terminate().success());
    let before_restart = read_events(&pool.ledger_dir());

    // While the pool is down: the second block leaves, the first passes maturity.
    for node in [&pair.node1, &pair.node2] {
        node.cli(&["invalidateblock", &second]);
    }
    generate(&pair, &pair.node2, 101);
    wait_for_best(&pair.node1, &best(&pair.node2));

    pool.spawn();
    wait_for_log(&pool, "chain watcher caught up", 2, 30);
    assert!(pool.terminate().success());
    let events = read_events(&pool.ledger_dir());
    let found = found_blocks(&events);
    assert_eq!(found.len(), 2);
    let (first, second_block) = (&found[0], &found[1]);
    assert_eq!(second_block.block_id.to_string(), second);
    assert_eq!(lifecycle(&events, first.block_id), ["matured"]);
    assert_eq!(lifecycle(&events, second_block.block_id), ["orphaned"]);
    // The catch-up is the only thing the restart recorded besides its jobs (and the rule,
    // unchanged, is not).
    let tail: Vec<&str> = events[before_restart.len()..]
        .iter()
        .map(|e| e.kind())
        .filter(|kind| *kind != "JobCreated")
        .collect();
    assert_eq!(tail, ["BlockOrphaned", "BlockMatured"]);
    let p = fold(&events);
    let balance = p
        .balance(&pool_core::event::PayoutAddress(a.clone()))
        .unwrap();
    assert_eq!(balance.payable, first.reward);
    assert_eq!(balance.immature.0, 0);
    assert!(p.anomalies().is_empty(), "{:?}", p.anomalies());

    // Nothing recorded twice: one more start records its jobs and nothing else.
    pool.spawn();
    wait_for_log(&pool, "chain watcher caught up", 3, 30);
    assert!(pool.terminate().success());
    let again = read_events(&pool.ledger_dir());
    assert_eq!(again[..events.len()], events[..]);
    assert!(
        again[events.len()..]
            .iter()
            .all(|e| matches!(e, Event::JobCreated(_))),
        "{:?}",
        &again[events.len()..]
    );
}

//! A found block is never lost or built for the wrong chain, against real BSV regtest nodes.
//! Every test starts nodes of its own (a busy node, a node that goes down, a pool that is
//! killed, a node of another chain), so they run one at a time.

mod common;

use common::nodes::{
    free_port, start_pair_with, start_single_on, NodePair, RPC_PASSWORD, RPC_USER,
};
use common::pool::{config_text, read_events, PoolOptions, PoolProcess};
use common::stratum_client::{Job, StratumClient};
use pool_core::event::BlockCandidate;
use pool_core::{BlockId, Event};
use projections::{Projection, ProjectionConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn pair(node1_args: &[&str]) -> NodePair {
    start_pair_with(node1_args).unwrap_or_else(|e| panic!("cannot start regtest nodes: {e}"))
}

fn options(pair: &NodePair, payout: &str) -> PoolOptions {
    let mut o = PoolOptions::new(payout);
    o.node_url = Some(pair.node1.rpc_url());
    o
}

/// A pool on `pair.node1` (payout to a node2 address) with `node_keys` (TOML lines) added to its
/// `[node]` section, and `env` for its first run.
fn pool_on(pair: &NodePair, node_keys: &str, env: &[(&str, &str)]) -> PoolProcess {
    let o = options(pair, &pair.node2.new_address());
    PoolProcess::start_with_env(
        |stratum, notify| {
            config_text(&o, stratum, notify).replace(
                "max_retry_backoff_secs = 2",
                &format!("max_retry_backoff_secs = 2\n{node_keys}"),
            )
        },
        env,
    )
}

/// Mines one share on `job` and submits it: on regtest's network target every share is a
/// block, acknowledged once the share and its candidate are durable.
fn submit_block_share(client: &mut StratumClient, user: &str, job: &Job) {
    let s = client.grind(job, None, None, 10_000_000);
    assert_eq!(client.submit(user, &s), Ok(serde_json::json!(true)));
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

fn candidates(events: &[Event]) -> Vec<(usize, BlockCandidate)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::BlockCandidate(c) => Some((i, c.clone())),
            _ => None,
        })
        .collect()
}

/// Per block id: how many `BlockFound` and `BlockRejected` (with their reasons) follow.
fn verdicts(events: &[Event]) -> BTreeMap<BlockId, (usize, Vec<String>)> {
    let mut out: BTreeMap<BlockId, (usize, Vec<String>)> = BTreeMap::new();
    for e in events {
        match e {
            Event::BlockFound(f) => out.entry(f.block_id).or_default().0 += 1,
            Event::BlockRejected(r) => out.entry(r.block_id).or_default().1.push(r.reason.clone()),
            _ => {}
        }
    }
    out
}

fn log_count(pool: &PoolProcess, needle: &str) -> usize {
    pool.log().matches(needle).count()
}

/// Waits (bounded) until the pool's log holds `needles` at least `at_least` times in all.
fn wait_for_log(pool: &PoolProcess, needles: &[&str], at_least: usize, secs: u64) {
    let count = || needles.iter().map(|n| log_count(pool, n)).sum::<usize>();
    assert!(
        wait_for(Duration::from_secs(secs), || count() >= at_least),
        "waited for {needles:?} x {at_least}:\n{}",
        pool.log()
    );
}

/// The one candidate in `events`, which must have exactly one verdict: found.
fn the_one_found_candidate(events: &[Event]) -> BlockCandidate {
    let cands = candidates(events);
    assert_eq!(cands.len(), 1);
    let candidate = cands[0].1.clone();
    assert_eq!(
        verdicts(events).get(&candidate.block_id),
        Some(&(1, vec![]))
    );
    candidate
}

/// (a) A node with a one-slot RPC work queue and a burst of same-height candidates: it answers
/// many calls "Work queue depth exceeded", and still every candidate gets the node's own verdict.
#[test]
fn a_busy_node_judges_every_candidate_of_a_burst() {
    let _serial = common::serial();
    let pair = pair(&["-rpcworkqueue=1", "-rpcthreads=2"]);
    let payout = pair.node2.new_address();
    let mut o = options(&pair, &payout);
    // No thread held in a long poll; every share meets regtest's network target.
    o.longpoll = false;
    let mut pool = PoolProcess::start(&o);
    let user = pair.node2.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    // Ground first, then sent back to back: the candidates reach the node together.
    let solutions: Vec<_> = (0..24)
        .map(|_| client.grind(&job, None, None, 10_000_000))
        .collect();
    for (i, s) in solutions.iter().enumerate() {
        let line = serde_json::json!({
            "id": 100 + i,
            "method": "mining.submit",
            "params": [user, s.job_id, s.extranonce2, s.ntime, s.nonce],
        });
        client.send_raw(&line.to_string()).unwrap();
    }
    let recorded = |pool: &PoolProcess| log_count(pool, "block candidate recorded");
    assert!(
        wait_for(Duration::from_secs(20), || recorded(&pool) >= 2),
        "{}",
        pool.log()
    );
    // Every candidate resolved (bounded): as many verdict lines as candidates.
    let resolved = |pool: &PoolProcess| {
        log_count(pool, "block found:")
            + log_count(pool, "rejected by the node")
            + log_count(pool, "closed unjudged")
    };
    assert!(
        wait_for(Duration::from_secs(90), || resolved(&pool)
            >= recorded(&pool)),
        "not every candidate got a verdict:\n{}",
        pool.log()
    );
    let busy = log_count(&pool, "busy (HTTP");
    drop(client);
    assert!(pool.terminate().success());
    let events = read_events(&pool.ledger_dir());
    let cands = candidates(&events);
    let verdicts = verdicts(&events);
    eprintln!("{} candidates, {} busy answers retried", cands.len(), busy);
    assert!(cands.len() >= 2);
    // The point of the tiny queue: the node did answer busy, and that was retried.
    assert!(busy >= 1, "{}", pool.log());
    for (_, c) in &cands {
        let (found, rejected) = verdicts.get(&c.block_id).cloned().unwrap_or_default();
        assert_eq!(found + rejected.len(), 1, "one verdict for {}", c.block_id);
        for reason in rejected {
            // The node's own BIP 22 reasons only: never our transport trouble.
            assert!(
                !reason.contains("busy")
                    && !reason.contains("never judged")
                    && !reason.contains("HTTP"),
                "{reason}"
            );
        }
    }
    // The first block is on the chain; the others lost the race or wait for the chain watcher.
    let on_chain = cands.iter().any(|(_, c)| {
        pair.node1
            .try_cli(&["getblockhash", &c.height.to_string()])
            .is_ok_and(|h| h.as_str() == Some(c.block_id.to_string().as_str()))
    });
    assert!(on_chain, "one of the candidates is in the best chain");
}

/// (b) The node is down when the block is found and comes back within the retry window: the
/// block lands on it and is recorded found.
#[test]
fn a_block_found_while_the_node_is_down_lands_when_it_is_back() {
    let _serial = common::serial();
    let pair = pair(&[]);
    let mut pool = pool_on(&pair, "submit_retry_max_secs = 1", &[]);
    let user = pair.node2.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    let height_before = pair.node1.block_count();
    pair.node1.stop();
    // The share is durable with its candidate: acknowledged although the node is down.
    submit_block_share(&mut client, &user, &job);
    wait_for_log(
        &pool,
        &["submitblock not answered", "not submitting the block yet"],
        2,
        20,
    );
    pair.node1.start();
    assert!(pair.node1.wait_ready(Duration::from_secs(60)));
    wait_for_log(&pool, &["block found:"], 1, 60);
    drop(client);
    assert!(pool.terminate().success());
    let id = the_one_found_candidate(&read_events(&pool.ledger_dir())).block_id;
    assert_eq!(pair.node1.block_count(), height_before + 1);
    let tip = pair.node1.cli(&["getbestblockhash"]);
    assert_eq!(tip.as_str(), Some(id.to_string().as_str()));
}

/// A candidate the node never judged nor learned of (it was down until the pool was killed,
/// and the chain moved on past the never-judged depth) is closed at the next start as
/// "never judged", distinct from any verdict of the node's; nothing stays open.
#[test]
fn a_candidate_never_judged_before_its_height_is_buried_is_closed_as_such() {
    let _serial = common::serial();
    let pair = pair(&[]);
    let node_keys = "submit_retry_max_secs = 1\nnever_judged_depth = 3";
    let mut pool = pool_on(&pair, node_keys, &[]);
    let user = pair.node2.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    pair.node1.stop();
    submit_block_share(&mut client, &user, &job);
    wait_for_log(
        &pool,
        &["not submitting the block yet", "submitblock not answered"],
        1,
        20,
    );
    drop(client);
    pool.kill();
    // Meanwhile the chain moves on without the block.
    pair.node1.start();
    assert!(pair.node1.wait_ready(Duration::from_secs(60)));
    let node_cli_retry = |args: &[&str]| {
        let mut out = None;
        pair.node1.wait_until(Duration::from_secs(30), |n| {
            out = n.try_cli(args).ok();
            out.is_some()
        });
        out.expect("node answers")
    };
    node_cli_retry(&["generate", "4"]);

    pool.spawn();
    wait_for_log(&pool, &["closed unjudged"], 1, 30);
    assert!(pool.terminate().success());
    let events = read_events(&pool.ledger_dir());
    let cands = candidates(&events);
    assert_eq!(cands.len(), 1);
    let (found, rejected) = verdicts(&events)
        .get(&cands[0].1.block_id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(found, 0);
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].starts_with("never judged:"), "{}", rejected[0]);
    let header = pair
        .node1
        .try_cli(&["getblockheader", &cands[0].1.block_id.to_string()]);
    assert!(header.is_err(), "the node never learned of the block");
}

/// `submit_also`: with the primary node down, a secondary node takes the block, and a block any
/// node accepted is found.
#[test]
fn a_secondary_node_takes_the_block_while_the_primary_is_down() {
    let _serial = common::serial();
    let pair = pair(&[]);
    let also = format!(
        "submit_retry_max_secs = 1\nsubmit_also = [{{ url = \"{}\", user = \"{RPC_USER}\", password = \"{RPC_PASSWORD}\" }}]",
        pair.node2.rpc_url()
    );
    let mut pool = pool_on(&pair, &also, &[]);
    let user = pair.node2.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    let height_before = pair.node2.block_count();
    pair.node1.stop();
    submit_block_share(&mut client, &user, &job);
    wait_for_log(&pool, &["block found:"], 1, 30);
    assert!(
        pool.log()
            .contains(&format!("(by {})", pair.node2.rpc_url())),
        "{}",
        pool.log()
    );
    drop(client);
    assert!(pool.terminate().success());
    let id = the_one_found_candidate(&read_events(&pool.ledger_dir())).block_id;
    assert_eq!(pair.node2.block_count(), height_before + 1);
    let tip = pair.node2.cli(&["getbestblockhash"]);
    assert_eq!(tip.as_str(), Some(id.to_string().as_str()));
}

/// (c) SIGKILL after the node accepted the block and before the verdict's append: the next
/// start finds the open candidate, looks it up on the node, and records it found once, credited
/// at the candidate's position.
#[test]
fn a_pool_killed_before_recording_the_verdict_records_it_at_the_next_start() {
    let _serial = common::serial();
    let pair = pair(&[]);
    let mut pool = pool_on(&pair, "", &[("OBTC_TEST_VERDICT_DELAY_MS", "30000")]);
    let user = pair.node2.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    let height_before = pair.node1.block_count();
    submit_block_share(&mut client, &user, &job);
    // The node has the block; the pool is inside its (widened) gap before the append.
    assert!(pair
        .node1
        .wait_until(Duration::from_secs(20), |n| n.block_count() > height_before));
    drop(client);
    pool.kill();
    let events = read_events(&pool.ledger_dir());
    let cands = candidates(&events);
    assert_eq!(
        cands.len(),
        1,
        "the candidate was durable before the submission"
    );
    assert!(
        verdicts(&events).is_empty(),
        "killed before the verdict's append"
    );
    let (position, candidate) = cands[0].clone();
    assert!(matches!(events[position - 1], Event::ShareWithWork(_)));
    // The operator sees it open.
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["ledger", "balances", "--data"])
        .arg(pool.ledger_dir())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(report.contains("open block candidates"), "{report}");
    assert!(report.contains(&candidate.block_id.to_string()), "{report}");

    pool.env.clear();
    pool.spawn();
    wait_for_log(&pool, &["block found:"], 1, 30);
    assert!(pool.log().contains("left open"), "{}", pool.log());
    assert!(pool.terminate().success());
    let events = read_events(&pool.ledger_dir());
    assert_eq!(the_one_found_candidate(&events), candidate);
    let mut projection = Projection::new(ProjectionConfig::default());
    for (seq, e) in events.iter().enumerate() {
        projection.apply(seq as u64, e).unwrap();
    }
    let block = projection.block(&candidate.block_id).expect("found block");
    assert_eq!(block.candidate_seq, Some(position as u64));
    assert!(block.found_seq > position as u64);
    let credited: u64 = block.credits.values().map(|s| s.0).sum();
    assert_eq!(credited + block.fee.0, block.reward.0);
    assert_eq!(
        block
            .credits
            .keys()
            .map(|a| a.0.clone())
            .collect::<Vec<_>>(),
        vec![user.clone()]
    );
    assert!(projection.open_candidates().is_empty());
}

/// Started while its node is down, the pool hands out no work; when a node of another chain
/// answers there (an oBTC preset against a BSV node), it is refused and still no work reaches
/// a miner, and nothing is submitted.
#[test]
fn no_work_before_the_chain_check_and_none_from_a_node_of_another_chain() {
    let _serial = common::serial();
    let rpc_port = free_port();
    let mut pool = PoolProcess::start_with_config(|stratum, notify| {
        format!(
            r#"[chain]
preset = "obtc-regtest"

[node]
url = "http://127.0.0.1:{rpc_port}"
user = "{RPC_USER}"
password = "{RPC_PASSWORD}"
rpc_timeout_secs = 5
refresh_secs = 1
max_retry_backoff_secs = 1

[stratum]
listen = "{stratum}"

[pool]
payout_address = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"

[ledger]
data_dir = "ledger"

[notify]
listen = "{notify}"
"#
        )
    });
    let mut client = StratumClient::connect(pool.stratum);
    client.subscribe();
    assert!(client
        .authorize("mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX")
        .is_ok());
    let no_job = |client: &mut StratumClient| {
        client.read_line_within(Duration::from_secs(2));
        client.latest_job().is_none()
    };
    assert!(no_job(&mut client), "no work while the node is down");

    let node = start_single_on(rpc_port, &[]).expect("start a BSV node");
    assert!(
        wait_for(Duration::from_secs(30), || pool
            .log()
            .contains("refusing the node")),
        "{}",
        pool.log()
    );
    assert!(no_job(&mut client), "no work from a node of another chain");
    assert!(no_job(&mut client));
    drop(client);
    assert!(pool.terminate().success());
    let log = pool.log();
    assert!(log.contains("genesis block is"), "{log}");
    assert!(!log.contains("new block to mine on"), "{log}");
    assert_eq!(
        log.matches("refusing the node").count(),
        1,
        "logged once: {log}"
    );
    node.stop();
}

/// A node that served the right chain and is then replaced by a node of another chain (a BSV
/// testnet node on the same RPC port) is refused after the first failed call: the jobs are
/// withdrawn, shares for them are refused, and no work from it reaches the miner; the right node
/// back brings work again.
#[test]
fn a_node_replaced_by_one_of_another_chain_gets_its_jobs_withdrawn() {
    let _serial = common::serial();
    let pair = pair(&[]);
    let payout = pair.node2.new_address();
    let mut o = options(&pair, &payout);
    o.refresh_secs = 1;
    let mut pool = PoolProcess::start(&o);
    let user = pair.node2.new_address();
    let (mut client, job) = StratumClient::authorized(pool.stratum, &user);
    pair.node1.stop();
    let other = start_single_on(pair.node1.rpc_port, &["-testnet", "-connect=0"])
        .expect("start a BSV testnet node");
    assert!(
        wait_for(Duration::from_secs(30), || pool
            .log()
            .contains("refusing the node")
            && pool.log().contains("withdrawing every job")),
        "{}",
        pool.log()
    );
    assert!(pool.log().contains("chain \"test\""), "{}", pool.log());
    let notified = client.notifications.len();
    let s = client.grind(&job, None, None, 10_000_000);
    assert!(
        client.submit(&user, &s).is_err(),
        "no share on a withdrawn job"
    );
    client.read_line_within(Duration::from_secs(2));
    assert!(
        !client.notifications[notified..]
            .iter()
            .any(|(m, _)| m == "mining.notify"),
        "no work from a node of another chain"
    );

    other.stop();
    pair.node1.start();
    assert!(pair.node1.wait_ready(Duration::from_secs(60)));
    let peer = format!("127.0.0.1:{}", pair.node1.p2p_port);
    let _ = pair.node2.try_cli(&["addnode", &peer, "onetry"]);
    let mut back = false;
    for _ in 0..30 {
        client.read_line_within(Duration::from_secs(1));
        if client.notifications[notified..]
            .iter()
            .any(|(m, _)| m == "mining.notify")
        {
            back = true;
            break;
        }
    }
    assert!(back, "work again from the right node:\n{}", pool.log());
    let job = client.latest_job().unwrap();
    let s = client.grind(&job, None, None, 10_000_000);
    assert_eq!(client.submit(&user, &s), Ok(serde_json::json!(true)));
    drop(client);
    assert!(pool.terminate().success());
    let events = read_events(&pool.ledger_dir());
    let shares = events
        .iter()
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
        .count();
    assert_eq!(shares, 1, "only the share on the right chain's job");
}

/// Wrong RPC credentials at start are a typo, not an outage: a clear error and exit 1.
#[test]
fn wrong_rpc_credentials_at_start_exit_with_a_clear_error() {
    let _serial = common::serial();
    let rpc_port = free_port();
    let node = start_single_on(rpc_port, &[]).expect("start a BSV node");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pool.toml");
    std::fs::write(
        &config,
        format!(
            r#"[chain]
preset = "bsv-regtest"

[node]
url = "http://127.0.0.1:{rpc_port}"
user = "{RPC_USER}"
password = "not-the-password"

[stratum]
listen = "127.0.0.1:{stratum}"

[pool]
payout_address = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"

[ledger]
data_dir = "ledger"
"#,
            stratum = free_port()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused the RPC credentials"), "{stderr}");
    assert!(stderr.contains("user/password"), "{stderr}");
    node.stop();
}

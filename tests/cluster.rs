//! The scale-out pool end to end and under faults: a real 3-server NATS JetStream cluster, one
//! `obtc-pool core` and two `obtc-pool edge`s against the real BSV regtest pair
//! (`common::cluster`), loaded by `loadgen` (open loop, every submit a valid share, every outcome
//! recorded).
//!
//! What every test checks against loadgen's acknowledgements (`common::cluster::
//! check_acknowledged`): every share loadgen was told `true` for is in the core's ledger exactly
//! once, per worker as many as loadgen counted; no share is in the ledger twice; nothing is there
//! that loadgen never sent; a share answered with an error or never answered may or may not be
//! there. The ledger passes `obtc-pool ledger verify` and `obtc-pool audit`, and each batch id
//! (edge, boot, counter) and stream sequence is applied once.
//!
//! One cluster and one node pair for the binary; the tests run one at a time (the cluster's
//! guard), each first restarting whatever a failed test left stopped. Every wait is bounded.

mod common;

use common::cluster::{
    check_acknowledged, cluster, Cluster, LedgerSnapshot, LoadResult, LoadShape, Loadgen, STREAM,
    TIMEOUT,
};
use common::nodes::nodes;
use common::payout::PayoutProcess;
use common::rpc;
use payout::api::operator::{PaymentsPage, MAX_LIMIT, METHOD_PAYMENTS_LIST};
use payout::api::{PayoutState, METHOD_PAYOUT_STATE};
use pool_core::Event;
use projections::PaymentStatus;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A loadgen's result must show every connection made and none lost for good.
fn assert_clean_run(r: &LoadResult, c: &Cluster) {
    let j = &r.json;
    eprintln!(
        "loadgen {}: sent {} accepted {} rejected {} {} unanswered {} reconnects {} p50 {} us p99 {} us max {} us",
        r.label, j["sent"], j["accepted"], j["rejected"], j["rejected_by_code"], j["unanswered"],
        j["reconnects"], j["p50_us"], j["p99_us"], j["max_us"]
    );
    assert_eq!(
        j["connect_failures"], 0,
        "loadgen {}: {j}\n{}",
        r.label, r.stderr
    );
    assert_eq!(
        j["dropped_connections"],
        0,
        "loadgen {}: {j}\n{}\n{}",
        r.label,
        r.stderr,
        c.logs()
    );
    assert_eq!(j["other_errors"], 0, "loadgen {}: {j}", r.label);
    assert!(
        r.accepted() > 0,
        "loadgen {}: nothing accepted: {j}\n{}",
        r.label,
        c.logs()
    );
}

/// Each batch id (edge, boot, counter) once, stream sequences strictly increasing.
fn check_batches(snapshot: &LedgerSnapshot) {
    let mut ids = BTreeSet::new();
    let mut last_seq = 0;
    for f in &snapshot.events {
        if let Event::StreamBatch(b) = &f.event {
            assert!(
                ids.insert((b.edge_id, b.boot_id, b.counter)),
                "batch {b:?} applied twice (seq {})",
                f.seq
            );
            assert!(
                b.stream_seq > last_seq,
                "stream sequence {} after {last_seq}",
                b.stream_seq
            );
            last_seq = b.stream_seq;
        }
    }
    assert!(!ids.is_empty(), "no StreamBatch in the core's ledger");
}

/// A new miner address (node 2's wallet: outside the pool's).
fn miner() -> String {
    nodes().node2.new_address()
}

fn shape(rate: u32, duration_secs: f64) -> LoadShape {
    LoadShape {
        connections: 6,
        workers: 3,
        rate,
        duration_secs,
        drain_ms: 20_000,
    }
}

/// Load on both edges (each loadgen starts on its own edge and fails over to the other), then
/// `during` at `at` into the window, then the results.
fn load_both(
    c: &mut Cluster,
    label: &str,
    load: &LoadShape,
    at: Duration,
    during: impl FnOnce(&mut Cluster),
) -> (LoadResult, LoadResult) {
    let (a, b) = (miner(), miner());
    let marks = c.edge_log_marks();
    let one = Loadgen::spawn(&c.dir, &format!("{label}-1"), &c.targets(1), &a, load);
    let two = Loadgen::spawn(&c.dir, &format!("{label}-2"), &c.targets(2), &b, load);
    std::thread::sleep(at);
    during(c);
    let limit = Duration::from_secs_f64(load.duration_secs)
        + Duration::from_millis(load.drain_ms)
        + TIMEOUT;
    let results = (one.wait(limit), two.wait(limit));
    for line in c.stall_lines(&marks) {
        eprintln!("{label}: {line}");
    }
    results
}

/// `method(params)` on the core's RPC, with its bearer token (the payout process's methods
/// need it), decoded.
fn call_as<T: serde::de::DeserializeOwned>(c: &Cluster, method: &str, params: Value) -> T {
    let token = std::fs::read_to_string(c.core.ledger_dir().join("rpc.token")).ok();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let reply = rpc::post(c.rpc(), &body.to_string(), token.as_deref().map(str::trim));
    rpc::result_of::<T>(method, &params, &reply).unwrap_or_else(|e| panic!("{e}\n{}", c.logs()))
}

fn call(c: &Cluster, method: &str, params: Value) -> Value {
    call_as(c, method, params)
}

fn payout_state(c: &Cluster) -> PayoutState {
    call_as(c, METHOD_PAYOUT_STATE, json!([]))
}

fn sats(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("satoshis: {v}"))
}

/// The core's RPC balances equal the audit's replay of the ledger, address by address.
fn rpc_balances_equal_audit(c: &Cluster, audit: &Value) {
    let balances = audit["balances"].as_object().expect("audit balances");
    assert!(!balances.is_empty());
    for (address, r) in balances.iter().filter(|(a, _)| !a.is_empty()) {
        let b = call(c, "miner_balance", json!([address]));
        for field in [
            "immature",
            "payable",
            "in_flight",
            "paid",
            "debt",
            "network_fees",
        ] {
            assert_eq!(
                sats(&b[field]),
                sats(&r[field]),
                "{address} {field}: rpc {b} audit {r}"
            );
        }
    }
}

#[test]
fn end_to_end_two_edges_blocks_exact_shares_credits_and_a_payout() {
    let waited = Instant::now();
    let mut c = cluster();
    eprintln!("cluster ready after {:?}", waited.elapsed());
    let started = Instant::now();
    let load = shape(300, 6.0);
    let mut runs = Vec::new();
    let mut snapshot;
    // Blocks are chance (one share in ~430): load again until both edges found one.
    loop {
        let (one, two) = load_both(
            &mut c,
            &format!("e2e{}", runs.len() / 2),
            &load,
            Duration::ZERO,
            |_| {},
        );
        assert_clean_run(&one, &c);
        assert_clean_run(&two, &c);
        runs.push(one);
        runs.push(two);
        snapshot = c.ledger_snapshot();
        let found = snapshot.blocks_found_by_edge();
        eprintln!("blocks found by edge: {found:?}");
        if found.get(&1).is_some_and(|&n| n > 0) && found.get(&2).is_some_and(|&n| n > 0) {
            break;
        }
        assert!(
            runs.len() < 8,
            "after {} loads, blocks by edge {found:?}\n{}",
            runs.len() / 2,
            c.logs()
        );
    }
    let all: Vec<&LoadResult> = runs.iter().collect();
    let check = check_acknowledged(&snapshot, &all);
    eprintln!("{check:?}");
    assert!(
        check.acknowledged_by_edge.get(&1).is_some_and(|&n| n > 0)
            && check.acknowledged_by_edge.get(&2).is_some_and(|&n| n > 0),
        "{check:?}"
    );
    // Without faults every submit got an answer.
    for r in &runs {
        assert_eq!(r.json["unanswered"], 0, "loadgen {}: {}", r.label, r.json);
    }
    check_batches(&snapshot);
    rpc_balances_equal_audit(&c, &snapshot.audit);

    // A payout as in the all-in-one pool: 100 blocks mature the pool's blocks, `obtc-pool
    // payout` pays through node 1's wallet, two more blocks confirm it.
    let pair = nodes();
    let outside = pair.node2.new_address();
    pair.mine_outside(&outside, 100, TIMEOUT);
    let miners: Vec<String> = runs
        .iter()
        .map(|r| r.submitted[0].worker.split('.').next().unwrap().to_owned())
        .collect();
    let payable = |c: &Cluster| -> BTreeSet<String> {
        payout_state(c)
            .payable
            .iter()
            .map(|b| b.address.0.clone())
            .collect()
    };
    wait(&c, "the miners' credits to mature", || {
        let p = payable(&c);
        miners.iter().all(|m| p.contains(m))
    });
    let mut payout = PayoutProcess::spawn(&c.core.config_path, &[]);
    let c_logs = |c: &Cluster| format!("{}\n---- payout log ----\n{}", c.logs(), payout.log());
    wait_logs(&c, "sent payments", &c_logs, || {
        let open = payout_state(&c).open_payments;
        !open.is_empty() && open.iter().all(|p| p.status == PaymentStatus::Sent)
    });
    pair.confirm_payments(&outside, 2, TIMEOUT);
    wait_logs(&c, "confirmed payments", &c_logs, || {
        payout_state(&c).open_payments.is_empty()
    });
    assert!(payout.terminate().success(), "{}", payout.log());
    // The paid ledger, against the chain: money and every coinbase anchor.
    let paid = c.ledger_snapshot_against_node();
    check_acknowledged(&paid, &all);
    check_batches(&paid);
    for m in &miners {
        let b = call(&c, "miner_balance", json!([m]));
        let paid = sats(&b["paid"]);
        assert!(paid > 0, "{m} was paid: {b}\n{}", payout.log());
        let received = pair.node2.cli(&["getreceivedbyaddress", m, "1"]);
        let received = (received.as_f64().unwrap() * 1e8).round() as u64;
        assert_eq!(received, paid, "{m} received on chain what the ledger paid");
    }
    let page: PaymentsPage = call_as(&c, METHOD_PAYMENTS_LIST, json!({"limit": MAX_LIMIT}));
    assert!(!page.payments.is_empty());
    assert!(
        page.payments
            .iter()
            .all(|p| p.status == PaymentStatus::Confirmed),
        "{:?}",
        page.payments
    );
    eprintln!("end to end took {:?}", started.elapsed());
}

/// Waits (bounded) for `done`, showing the cluster's logs on a timeout.
fn wait(c: &Cluster, what: &str, done: impl FnMut() -> bool) {
    wait_logs(c, what, &Cluster::logs, done);
}

/// Like [`wait`], with the logs `logs` gives.
fn wait_logs(
    c: &Cluster,
    what: &str,
    logs: &dyn Fn(&Cluster) -> String,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs(c)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGKILL of NATS server `pick(leader)` under load: the edges go on acknowledging through the
/// remaining quorum (a second load while it is down gets answers), nothing acknowledged is lost;
/// the server then restarts and catches up.
fn kill_a_nats_server(label: &str, pick: impl Fn(usize) -> usize) {
    let mut c = cluster();
    let started = Instant::now();
    let leader = c.nats.wait_stream_leader(STREAM, TIMEOUT);
    let victim = pick(leader);
    let (one, two) = load_both(
        &mut c,
        label,
        &shape(200, 8.0),
        Duration::from_secs(3),
        |c| {
            c.nats.kill(victim);
        },
    );
    let new_leader = c.nats.wait_stream_leader(STREAM, TIMEOUT);
    assert_ne!(new_leader, victim);
    // Still two of three: a load now is acknowledged through the quorum.
    let (three, four) = load_both(
        &mut c,
        &format!("{label}-down"),
        &shape(200, 3.0),
        Duration::ZERO,
        |_| {},
    );
    let down = Instant::now();
    c.nats.restart(victim);
    let healthy = down.elapsed();
    c.nats.wait_replicas_current(STREAM, TIMEOUT);
    eprintln!(
        "{label}: n{} restarted: healthy after {healthy:?}, its replica current after {:?}",
        victim + 1,
        down.elapsed()
    );
    for r in [&one, &two, &three, &four] {
        assert_clean_run(r, &c);
    }
    let snapshotting = Instant::now();
    let snapshot = c.ledger_snapshot();
    eprintln!("{label}: ledger snapshot in {:?}", snapshotting.elapsed());
    let check = check_acknowledged(&snapshot, &[&one, &two, &three, &four]);
    check_batches(&snapshot);
    eprintln!(
        "{label}: killed n{} (leader was n{}, then n{}); {check:?}; {:?}",
        victim + 1,
        leader + 1,
        new_leader + 1,
        started.elapsed()
    );
}

#[test]
fn sigkill_of_the_stream_leader_loses_no_acknowledged_share() {
    kill_a_nats_server("nats-leader", |leader| leader);
}

#[test]
fn sigkill_of_a_nats_follower_loses_no_acknowledged_share() {
    kill_a_nats_server("nats-follower", |leader| (leader + 1) % 3);
}

#[test]
fn sigkill_of_the_core_and_a_restart_lose_and_double_nothing() {
    let mut c = cluster();
    let started = Instant::now();
    let (one, two) = load_both(
        &mut c,
        "core-kill",
        &shape(300, 8.0),
        Duration::from_secs(2),
        |c| {
            c.core.kill();
            // The edges acknowledge meanwhile: the stream holds the batches.
            std::thread::sleep(Duration::from_secs(2));
            c.core.spawn();
        },
    );
    assert_clean_run(&one, &c);
    assert_clean_run(&two, &c);
    for r in [&one, &two] {
        assert_eq!(
            r.json["unanswered"], 0,
            "a dead core does not stall the edges: {}",
            r.json
        );
    }
    let snapshot = c.ledger_snapshot();
    let check = check_acknowledged(&snapshot, &[&one, &two]);
    check_batches(&snapshot);
    eprintln!("core kill: {check:?}; {:?}", started.elapsed());
}

#[test]
fn sigkill_of_an_edge_fails_its_miners_over_to_the_other() {
    let mut c = cluster();
    let started = Instant::now();
    let load = shape(300, 8.0);
    let (one, two) = load_both(&mut c, "edge-kill", &load, Duration::from_secs(3), |c| {
        c.edge_mut(1).kill();
    });
    // Every connection of the loadgen that started on edge 1 moved to edge 2 and went on.
    assert_eq!(one.json["reconnects"], load.connections, "{}", one.json);
    assert_eq!(two.json["reconnects"], 0, "{}", two.json);
    assert_clean_run(&one, &c);
    assert_clean_run(&two, &c);
    c.edge_mut(1).spawn();
    let snapshot = c.ledger_snapshot();
    let check = check_acknowledged(&snapshot, &[&one, &two]);
    check_batches(&snapshot);
    let moved = check_acknowledged(&snapshot, &[&one]);
    assert!(
        moved.acknowledged_by_edge.get(&1).is_some_and(|&n| n > 0)
            && moved.acknowledged_by_edge.get(&2).is_some_and(|&n| n > 0),
        "the first loadgen's shares went through edge 1, then edge 2: {moved:?}"
    );
    eprintln!("edge kill: {check:?}; {:?}", started.elapsed());
}

//! The payout process on Litecoin Core's wallet (0.21: no default wallet, bech32, the modern
//! wallet RPCs) against a real Litecoin regtest pair and the pool, mining scrypt through its
//! Stratum server: the payout end-to-end and crash scenarios of `tests/payouts.rs` (the same
//! code, `common::payout_scenarios`), and reorgs of a paid block and of a payment. The same rules
//! as on BSV: node 1's wallet `pool` is the pool's and holds nothing but pool rewards; the miners
//! mine to a bech32 and a legacy address of node 2's wallet, which receive exactly the credited
//! satoshis, checked on the node; `obtc-pool audit --node` passes on every ledger.
//!
//! Each test has a pair of its own (the chain stays below height 431, where MWEB, which these
//! nodes are started to activate, would begin) and they run one at a time. Every wait is
//! bounded; a timeout shows the last state and the logs.

mod common;

use common::nodes::{Node, NodeChain};
use common::payout::PayoutProcess;
use common::payout_scenarios as scenarios;
use common::payout_setup::*;
use common::rpc;
use common::stratum_client::StratumClient;
use payout::api::operator::{BlockState, BlocksPage, MAX_LIMIT, METHOD_BLOCKS_LIST};
use projections::{BlockStatus, PaymentStatus};
use serde_json::json;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `obtc-pool audit --data LEDGER --config CONFIG --node NODE1 --check-anchors` on the stopped
/// pool's ledger: the money checks against the node and the anchors pass.
fn audit_passes_against_the_node(s: &Setup) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .arg("audit")
        .arg("--data")
        .arg(s.pool.ledger_dir())
        .arg("--config")
        .arg(s.config())
        .args(["--node", &s.pair.node1.rpc_url(), "--check-anchors"])
        .output()
        .expect("run obtc-pool audit");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "audit failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("audit: PASS") && verdict.contains("money, anchors"),
        "{stdout}"
    );
}

/// The miners are a bech32 and a legacy address, and each received something on chain.
fn both_address_kinds_were_paid(s: &Setup) {
    assert!(s.miners[0].starts_with("rltc1q"), "{}", s.miners[0]);
    assert!(
        s.miners[1].starts_with('m') || s.miners[1].starts_with('n'),
        "{}",
        s.miners[1]
    );
    for m in &s.miners {
        let received = sats(&s.pair.node2.cli(&["getreceivedbyaddress", m, "1"]));
        assert!(received > 0, "{m} received nothing");
    }
}

#[test]
fn litecoin_pays_bech32_and_legacy_miners_exactly_after_the_guard_let_it() {
    let _one = common::serial();
    let started = Instant::now();
    let s = scenarios::pays_every_miner_exactly_after_the_guard_let_it(NodeChain::Litecoin);
    both_address_kinds_were_paid(&s);
    audit_passes_against_the_node(&s);
    eprintln!(
        "end-to-end on Litecoin: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn litecoin_crash_at_each_point_ends_in_one_transaction_per_balance() {
    let _one = common::serial();
    let started = Instant::now();
    let s =
        scenarios::a_crash_at_each_point_ends_in_one_transaction_per_balance(NodeChain::Litecoin);
    both_address_kinds_were_paid(&s);
    audit_passes_against_the_node(&s);
    eprintln!(
        "crash rounds on Litecoin: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The pool's blocks as its RPC lists them.
fn status_of(s: &Setup, block: &str) -> Option<BlockState> {
    let params = json!([null, MAX_LIMIT]);
    let (_, reply) = rpc::request(s.rpc_addr, METHOD_BLOCKS_LIST, &params);
    let page: BlocksPage = rpc::result_of(METHOD_BLOCKS_LIST, &params, &reply)
        .unwrap_or_else(|e| panic!("{e}\n{}", s.pool.log()));
    page.blocks
        .into_iter()
        .find(|b| b.block_id.to_display_hex() == block)
        .map(|b| b.status)
}

fn wait_for(s: &Setup, what: &str, payout: Option<&PayoutProcess>, done: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            s.logs(payout)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn best(node: &Node) -> String {
    node.cli(&["getbestblockhash"])
        .as_str()
        .expect("a block hash")
        .to_owned()
}

/// `user` mines one block through the pool; its hash once the pool holds it immature and node
/// 2 has it.
fn mine_one(s: &Setup, user: &str) -> String {
    let before = best(&s.pair.node1);
    // After an invalidateblock the pool needs a moment for the new template: a block on the
    // old tip would be refused (bad-prevblk).
    let mut tip = hex::decode(&before).unwrap();
    tip.reverse();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (client, job) = StratumClient::authorized(s.pool.stratum, user);
        if client.header(&job, &[0; 4], 0, 0, 0)[4..36] == tip[..] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool's job is not on node 1's tip {before}\n{}",
            s.logs(None)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s.mine_shares(user, 1);
    assert!(
        s.pair.node1.wait_until(TIMEOUT, |n| best(n) != before),
        "node 1 never got the pool's block\n{}",
        s.logs(None)
    );
    let block = best(&s.pair.node1);
    wait_for(s, "the block immature", None, || {
        status_of(s, &block) == Some(BlockState::Immature)
    });
    assert!(
        s.pair.node2.wait_until(TIMEOUT, |n| best(n) == block),
        "node 2 did not get {block}"
    );
    block
}

fn on_both(s: &Setup, args: &[&str]) {
    for node in [&s.pair.node1, &s.pair.node2] {
        node.cli(args);
    }
}

#[test]
fn litecoin_reorgs_of_a_paid_block_and_of_the_payment_end_in_one_exact_payment() {
    let _one = common::serial();
    let started = Instant::now();
    let mut s = Setup::start_with(
        NodeChain::Litecoin,
        &format!("{PAYOUT_KEYS}fee_bps = 100\nnetwork_fee_payer = \"miners\"\n"),
        "watch_interval_secs = 1\n",
    );
    let (bech32, legacy) = (s.miners[0].clone(), s.miners[1].clone());
    // Block x (the bech32 miner's): orphaned, then reinstated.
    let x = mine_one(&s, &bech32);
    on_both(&s, &["invalidateblock", &x]);
    wait_for(&s, "x orphaned", None, || {
        status_of(&s, &x) == Some(BlockState::Orphaned)
    });
    on_both(&s, &["reconsiderblock", &x]);
    wait_for(&s, "x reinstated", None, || {
        status_of(&s, &x) == Some(BlockState::Immature)
    });
    // Block y on x (the legacy miner's): orphaned for good; z, on x again, stays.
    let y = mine_one(&s, &legacy);
    on_both(&s, &["invalidateblock", &y]);
    wait_for(&s, "y orphaned", None, || {
        status_of(&s, &y) == Some(BlockState::Orphaned)
    });
    let z = mine_one(&s, &legacy);
    s.mine_outside(100);
    wait_for(&s, "x and z matured", None, || {
        status_of(&s, &x) == Some(BlockState::Matured)
            && status_of(&s, &z) == Some(BlockState::Matured)
    });

    let mut payout = PayoutProcess::spawn(s.config(), &[]);
    let sent = s.wait_state("a sent payment", Some(&payout), |st| {
        !st.open_payments.is_empty()
            && st
                .open_payments
                .iter()
                .all(|p| p.status == PaymentStatus::Sent)
    });
    let txid = sent.open_payments[0]
        .txid
        .expect("a sent payment has a txid")
        .to_display_hex();
    // The node forgets the wallet (as after a restart without it): the payout process's next
    // call finds it not loaded and loads it again.
    s.pair.node1.cli(&["unloadwallet"]);
    let listed = |n: &Node| n.cli(&["listwallets"]) == json!([LITECOIN_POOL_WALLET]);
    assert!(
        s.pair.node1.wait_until(TIMEOUT, listed),
        "the payout process did not load the wallet again\n{}",
        s.logs(Some(&payout))
    );
    // The payment's first confirmation is reorganized away: it returns to the mempool, and
    // confirms again on the new branch.
    s.confirm_payments(1);
    let confirming = best(&s.pair.node1);
    let tx = s.pair.node1.cli(&["gettransaction", &txid]);
    assert_eq!(tx["blockhash"], json!(confirming), "{tx}");
    on_both(&s, &["invalidateblock", &confirming]);
    assert!(
        s.pair
            .node1
            .wait_until(TIMEOUT, |n| n.mempool().contains(&txid)),
        "the payment did not return to node 1's mempool"
    );
    // Another coinbase address than the invalidated block's: the same address, parent,
    // transactions and time would make the very same (invalid) block again.
    let elsewhere = s.pair.node2.new_address();
    s.pair.confirm_payments(&elsewhere, 2, TIMEOUT);
    s.wait_state("every payment confirmed", Some(&payout), |st| {
        st.open_payments.is_empty()
    });
    assert!(payout.terminate().success(), "{}", payout.log());
    assert_eq!(
        sends(&s.pair.node1),
        [txid.clone()].into(),
        "one transaction, the first one"
    );

    let projection = s.stop_and_fold();
    assert_eq!(projection.payments().len(), 1, "one payment");
    let statuses: Vec<BlockStatus> = projection.blocks().iter().map(|b| b.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|st| **st == BlockStatus::Orphaned)
            .count(),
        1,
        "y stays orphaned: {statuses:?}"
    );
    assert_wallet_agrees_with_ledger(&s, &projection, 0);
    both_address_kinds_were_paid(&s);
    audit_passes_against_the_node(&s);

    // The wallet name: one the node lacks stops the payout process at start, unless
    // `[wallet] create = true`, which creates it.
    let config = std::fs::read_to_string(s.config()).unwrap();
    let pool_wallet = format!("wallet = \"{LITECOIN_POOL_WALLET}\"\n");
    assert!(config.contains(&pool_wallet), "{config}");
    let missing = s.config().with_file_name("missing-wallet.toml");
    std::fs::write(
        &missing,
        config.replace(&pool_wallet, "wallet = \"nosuch\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["payout", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no wallet \"nosuch\"") && stderr.contains("create = true"),
        "{stderr}"
    );
    let created = s.config().with_file_name("created-wallet.toml");
    std::fs::write(
        &created,
        config.replace(&pool_wallet, "wallet = \"fresh\"\ncreate = true\n"),
    )
    .unwrap();
    let mut payout = PayoutProcess::spawn(&created, &[]);
    let deadline = Instant::now() + TIMEOUT;
    while !payout.log().contains("created the wallet") {
        assert!(Instant::now() < deadline, "{}", payout.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(payout.terminate().success(), "{}", payout.log());
    let wallets = s.pair.node1.cli(&["listwallets"]);
    assert!(
        wallets.as_array().unwrap().contains(&json!("fresh")),
        "{wallets}"
    );
    eprintln!(
        "reorgs on Litecoin: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

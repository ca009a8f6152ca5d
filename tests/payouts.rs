//! The payout process end to end against the real BSV regtest pair and the pool: miners mine
//! through the pool's Stratum server, 100 blocks from node 2 mature the pool's blocks, and
//! `obtc-pool payout` pays through node 1's wallet (the pool's: it holds nothing but pool
//! rewards; miner addresses, test coins and every set-up block come from node 2's wallet).
//!
//! Each test has a node pair of its own and they run one at a time. The set-up and the scenarios
//! shared with the Litecoin suite are in `common::payout_setup` and `common::payout_scenarios`. Every wait is bounded; a
//! timeout shows the last payout state, the pool's log and the payout process's log.

mod common;

use common::nodes::{free_port, NodeChain};
use common::payout::PayoutProcess;
use common::payout_scenarios as scenarios;
use common::payout_setup::*;
use payout::api::PayoutProcessState;
use pool_core::event::PayoutAddress;
use projections::PaymentStatus;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Payout tests run one at a time: each starts a node pair, a pool and miners.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn pays_every_miner_exactly_after_the_guard_let_it() {
    let _one = one_at_a_time();
    scenarios::pays_every_miner_exactly_after_the_guard_let_it(NodeChain::Bsv);
}

#[test]
fn a_crash_at_each_point_ends_in_one_transaction_per_balance() {
    let _one = one_at_a_time();
    scenarios::a_crash_at_each_point_ends_in_one_transaction_per_balance(NodeChain::Bsv);
}

#[test]
fn a_locked_wallet_stops_payments_not_shares_and_unlocking_resumes_them() {
    let _one = one_at_a_time();
    // The defaults: the pool pays the network fees and keeps no fee, so the operator must
    // fund them (the wallet holds exactly the rewards it owes).
    let mut s = Setup::start(NodeChain::Bsv, PAYOUT_KEYS);
    s.mine_and_mature(1);
    // BSV 1.0.13 stops after encryptwallet; it comes back locked, and node 2 must link again.
    let _ = s.pair.node1.try_cli(&["encryptwallet", "secret"]);
    s.pair.node1.stop();
    s.pair.node1.start();
    assert!(s.pair.node1.wait_ready(TIMEOUT));
    assert!(
        s.pair.relink(TIMEOUT),
        "node 2 did not link to node 1 again"
    );
    s.wait_state("payable balances", None, |st| {
        s.miners
            .iter()
            .all(|m| st.payable.iter().any(|b| b.address.0 == *m))
    });
    let mut payout = PayoutProcess::spawn(s.config(), &[]);
    // Funding comes first: the wallet cannot pay the fee on top of the rewards it owes...
    s.wait_report(&payout, PayoutProcessState::Error, "plus the fee: fund it");
    assert!(
        payout
            .log()
            .contains("the operator pays every payment's network fee"),
        "{}",
        payout.log()
    );
    // Nothing was signed into the ledger.
    assert!(s.state().open_payments.iter().all(|p| p.raw_tx.is_none()));
    // The pool keeps accepting shares meanwhile.
    s.mine_shares(&s.miners[0], 1);
    // ...until the operator funds it (from node 2, confirmed in a block of node 2's); then the
    // locked wallet cannot sign.
    let topup: u64 = 100_000_000;
    let to = s.pair.node1.new_address();
    s.pair.node2.cli(&["sendtoaddress", &to, "1"]);
    s.confirm_payments(1);
    s.wait_report(&payout, PayoutProcessState::Error, "the wallet is locked");
    assert!(s.state().open_payments.iter().all(|p| p.raw_tx.is_none()));
    assert_eq!(
        s.state().next_payment_id,
        1,
        "one payment waits, no second one"
    );

    // Unlocked, it pays.
    s.pair.node1.cli(&["walletpassphrase", "secret", "600"]);
    s.wait_state("a sent payment", Some(&payout), |st| {
        !st.open_payments.is_empty()
            && st
                .open_payments
                .iter()
                .all(|p| p.status == PaymentStatus::Sent)
    });
    s.confirm_payments(2);
    s.wait_state("every payment confirmed", Some(&payout), |st| {
        st.open_payments.is_empty()
    });
    assert!(payout.terminate().success());
    assert_eq!(sends(&s.pair.node1).len(), 1);
    let projection = s.stop_and_fold();
    assert_eq!(
        projection.payments().len(),
        1,
        "the payment prepared while locked"
    );
    assert_wallet_agrees_with_ledger(&s, &projection, topup);
    // The operator's fee shows as the fee address's debt.
    let fee = projection.payments()[0].network_fee;
    assert_eq!(
        projection.balances()[&PayoutAddress(s.pool_address.clone())].debt,
        fee
    );
}

#[test]
fn payout_refuses_to_start_without_a_wallet_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pool.toml");
    let text = obtc_pool::cli::init::example_config(pool_core::chain::Chain::BsvRegtest.params());
    let start = text.find("[wallet]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    std::fs::write(&config, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["payout", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no [wallet] section"), "{stderr}");
}

#[test]
fn payout_without_a_pool_reports_the_error_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pool.toml");
    let (pool_port, node_port) = (free_port(), free_port());
    let text = obtc_pool::cli::init::example_config(pool_core::chain::Chain::BsvRegtest.params())
        .replace("127.0.0.1:8339", &format!("127.0.0.1:{pool_port}"))
        .replace("127.0.0.1:18332", &format!("127.0.0.1:{node_port}"))
        .replace("interval_secs = 600", "interval_secs = 1");
    std::fs::write(&config, text).unwrap();
    let mut payout = PayoutProcess::spawn(&config, &[]);
    let deadline = Instant::now() + TIMEOUT;
    while !payout.log().contains("payout run failed") {
        assert!(Instant::now() < deadline, "{}", payout.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = payout.log();
    assert!(log.contains("wallet not answering yet"), "{log}");
    assert!(
        log.contains("rpc.token"),
        "the missing token file is named: {log}"
    );
    assert!(payout.terminate().success(), "{}", payout.log());
}

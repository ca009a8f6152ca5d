//! The payout tests run on both chains (`tests/payouts.rs` on BSV, `tests/litecoin_payouts.rs`
//! on Litecoin): each scenario starts its own pair and pool ([`Setup::start`]) and checks the
//! chain against the ledger to the satoshi. Callers run them one at a time.

use super::nodes::NodeChain;
use super::payout::PayoutProcess;
use super::payout_setup::*;
use payout::api::PayoutProcessState;
use projections::PaymentStatus;

/// The max_per_run guard pauses a payment one satoshi above it and lets through one at it;
/// the one payment pays every miner exactly its credit less its fee share, never the fee
/// address. On Litecoin the pool's wallet is unloaded before the payout process first starts:
/// it loads it itself. Returns the set-up, its pool stopped.
pub fn pays_every_miner_exactly_after_the_guard_let_it(chain: NodeChain) -> Setup {
    // The miners bear the network fee; the pool keeps 1 % on its own address (node 1's).
    let mut s = Setup::start(
        chain,
        &format!("{PAYOUT_KEYS}fee_bps = 100\nnetwork_fee_payer = \"miners\"\n"),
    );
    s.mine_and_mature(2);
    let due = s.wait_state("payable balances", None, |st| {
        s.miners
            .iter()
            .all(|m| st.payable.iter().any(|b| b.address.0 == *m))
    });
    let total: u64 = due
        .payable
        .iter()
        .filter(|b| s.miners.contains(&b.address.0))
        .map(|b| b.payable.0)
        .sum();
    // A cap one satoshi below what is due: the guard pauses and nothing is prepared.
    s.set_max_per_run(total - 1);
    if chain == NodeChain::Litecoin {
        // Litecoin Core has no default wallet: the payout process loads the configured one.
        // (`unloadwallet` with no name unloads the wallet of the endpoint, node 1's `pool`.)
        s.pair.node1.cli(&["unloadwallet"]);
        assert_eq!(s.pair.node1.cli(&["listwallets"]), serde_json::json!([]));
    }
    let mut payout = PayoutProcess::spawn(s.config(), &[]);
    s.wait_report(
        &payout,
        PayoutProcessState::Paused,
        &format!("above [payout] max_per_run = {} sats", total - 1),
    );
    assert!(s.state().open_payments.is_empty());
    assert_eq!(s.state().next_payment_id, 0, "nothing was ever prepared");
    if chain == NodeChain::Litecoin {
        assert!(
            payout.log().contains("loaded the wallet"),
            "{}",
            payout.log()
        );
    }
    assert!(payout.terminate().success());

    // A cap of exactly what is due allows it: one payment, confirmed at depth 2.
    s.set_max_per_run(total);
    let mut payout = PayoutProcess::spawn(s.config(), &[]);
    s.wait_state("a sent payment", Some(&payout), |st| {
        !st.open_payments.is_empty()
            && st
                .open_payments
                .iter()
                .all(|p| p.status == PaymentStatus::Sent)
    });
    s.confirm_payments(2);
    s.wait_state("every payment confirmed", Some(&payout), |st| {
        st.open_payments.is_empty() && !st.payable.iter().any(|b| s.miners.contains(&b.address.0))
    });
    assert!(payout.terminate().success(), "{}", payout.log());
    assert!(
        payout.log().contains("not paying the fee address"),
        "{}",
        payout.log()
    );
    assert_eq!(sends(&s.pair.node1).len(), 1, "one transaction");
    let projection = s.stop_and_fold();
    assert_eq!(projection.payments().len(), 1, "one payment");
    assert_wallet_agrees_with_ledger(&s, &projection, 0);
    s
}

/// The payout process SIGKILLed after preparing, after signing, after broadcasting and before
/// recording the confirmation, one round each: a restart ends each in exactly one transaction.
/// Returns the set-up, its pool stopped.
pub fn a_crash_at_each_point_ends_in_one_transaction_per_balance(chain: NodeChain) -> Setup {
    // The miners bear the network fee and the pool keeps nothing: each round's payment spends
    // every satoshi the wallet holds.
    let mut s = Setup::start(
        chain,
        &format!("{PAYOUT_KEYS}network_fee_payer = \"miners\"\n"),
    );
    for (round, hook) in [
        "after-prepare",
        "after-sign",
        "after-broadcast",
        "before-confirm",
    ]
    .into_iter()
    .enumerate()
    {
        s.mine_and_mature(1);
        s.wait_state("payable balances", None, |st| {
            st.open_payments.is_empty()
                && s.miners
                    .iter()
                    .all(|m| st.payable.iter().any(|b| b.address.0 == *m))
        });
        let mut crashing = PayoutProcess::spawn(s.config(), &[("OBTC_TEST_PAYOUT_CRASH", hook)]);
        if hook == "before-confirm" {
            s.wait_state("a sent payment", Some(&crashing), |st| {
                st.open_payments
                    .iter()
                    .any(|p| p.status == PaymentStatus::Sent)
            });
            s.confirm_payments(2);
        }
        let status = crashing.wait_exit(TIMEOUT);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{hook}: {}",
            crashing.log()
        );
        assert!(
            crashing.log().contains("test hook: SIGKILL at"),
            "{hook}: {}",
            crashing.log()
        );
        let mut again = PayoutProcess::spawn(s.config(), &[]);
        if hook != "before-confirm" {
            s.wait_state("a sent payment", Some(&again), |st| {
                !st.open_payments.is_empty()
                    && st
                        .open_payments
                        .iter()
                        .all(|p| p.status == PaymentStatus::Sent)
            });
            s.confirm_payments(2);
        }
        let state = s.wait_state("every payment confirmed", Some(&again), |st| {
            st.open_payments.is_empty()
        });
        assert!(again.terminate().success());
        assert_eq!(
            state.next_payment_id,
            round as u64 + 1,
            "{hook}: one payment per round, none failed and made again"
        );
        assert!(
            s.pair.node1.mempool().is_empty(),
            "{hook}: nothing left over"
        );
        assert_eq!(
            sends(&s.pair.node1).len(),
            round + 1,
            "{hook}: exactly one transaction per round"
        );
    }
    let projection = s.stop_and_fold();
    assert_wallet_agrees_with_ledger(&s, &projection, 0);
    assert_eq!(
        sats(&s.pair.node1.cli(&["getbalance"])),
        0,
        "every satoshi paid"
    );
    s
}

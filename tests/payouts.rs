//! The payout process end to end against the real BSV regtest pair and the pool: miners mine
//! through the pool's Stratum server, 100 blocks from node 2 mature the pool's blocks, and
//! `obtc-pool payout` pays through node 1's wallet (the pool's: it holds nothing but pool
//! rewards; miner addresses, test coins and every set-up block come from node 2's wallet).
//!
//! Each test has a node pair of its own and they run one at a time. Every wait is bounded; a
//! timeout shows the last payout state, the pool's log and the payout process's log.

mod common;

use common::miner::{MinerOptions, MinerProcess};
use common::nodes::{free_port, start_payout_pair, Node, NodePair, RPC_PASSWORD, RPC_USER};
use common::payout::PayoutProcess;
use common::pool::{PoolOptions, PoolProcess};
use payout::api::{PayoutProcessState, PayoutState};
use payout::payer::client::{PoolApi, PoolRpcClient};
use pool_core::event::{NetworkFeePayer, PayoutAddress};
use pool_core::Sats;
use projections::split::split_network_fee;
use projections::{BlockStatus, PaymentStatus, Projection, ProjectionConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Payout tests run one at a time: each starts a node pair, a pool and miners.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

const TIMEOUT: Duration = Duration::from_secs(60);

/// A pool on a pair of its own, with `[rpc]` and `[wallet]` (node 1's).
struct Setup {
    pair: NodePair,
    pool: PoolProcess,
    rpc: PoolRpcClient,
    runtime: tokio::runtime::Runtime,
    /// The pool's coinbase address (node 1's wallet), also its fee address.
    pool_address: String,
    miners: Vec<String>,
    /// Node 2's address for set-up blocks.
    outside: String,
}

fn wallet_and_rpc(node1: &Node, rpc_port: u16, payout_keys: &str) -> String {
    format!(
        "\n[rpc]\nlisten = \"127.0.0.1:{rpc_port}\"\n\n[wallet]\nurl = \"{}\"\nuser = \"{RPC_USER}\"\npassword = \"{RPC_PASSWORD}\"\nrpc_timeout_secs = 30\n\n[payout]\n{payout_keys}",
        node1.rpc_url()
    )
}

/// Lean settings: a run a second, final at depth 2. Network fees are paid by the pool and there
/// is no pool fee unless a test adds keys (the defaults).
const PAYOUT_KEYS: &str = "scheme = \"prop\"\nmin_payment = 10000\nmax_outputs = 10\ninterval_secs = 1\nconfirmations = 2\n";

impl Setup {
    fn start(payout_keys: &str) -> Setup {
        let pair = start_payout_pair().expect("node pair");
        let pool_address = pair.node1.new_address();
        let miners = vec![pair.node2.new_address(), pair.node2.new_address()];
        let outside = pair.node2.new_address();
        let rpc_port = free_port();
        let mut options = PoolOptions::new(&pool_address);
        options.node_url = Some(pair.node1.rpc_url());
        options.extra = wallet_and_rpc(&pair.node1, rpc_port, payout_keys);
        let pool = PoolProcess::start(&options);
        let rpc = PoolRpcClient::new(
            format!("http://127.0.0.1:{rpc_port}"),
            pool.ledger_dir().join("rpc.token"),
            Duration::from_secs(10),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Setup {
            pair,
            pool,
            rpc,
            runtime,
            pool_address,
            miners,
            outside,
        }
    }

    fn config(&self) -> &Path {
        &self.pool.config_path
    }

    fn state(&self) -> PayoutState {
        self.runtime
            .block_on(self.rpc.payout_state())
            .unwrap_or_else(|e| panic!("payout_state: {e}\n{}", self.pool.log()))
    }

    /// Waits (bounded) until `pred` holds for the pool's payout state; on a timeout the panic
    /// shows the last state, the pool's log and the payout process's (when one runs).
    fn wait_state(
        &self,
        what: &str,
        payout: Option<&PayoutProcess>,
        pred: impl Fn(&PayoutState) -> bool,
    ) -> PayoutState {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let last = self.runtime.block_on(self.rpc.payout_state());
            if let Ok(s) = &last {
                if pred(s) {
                    return s.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}\nlast payout state: {last:?}\n{}",
                    self.logs(payout)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (bounded) until the payout process reported `state` to the pool (`pool_status`)
    /// and its log holds `line`.
    fn wait_report(&self, payout: &PayoutProcess, state: PayoutProcessState, line: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let report = self.runtime.block_on(self.rpc.pool_status()).ok();
            let reported = report.as_ref().and_then(|r| r.payout.as_ref());
            if reported.is_some_and(|r| r.state == state) && payout.log().contains(line) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for a {state:?} report and {line:?} in the payout log\n\
                     last report: {reported:?}\n{}",
                    self.logs(Some(payout))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pool's log and the payout process's, for failure messages.
    fn logs(&self, payout: Option<&PayoutProcess>) -> String {
        let payout = payout.map_or_else(|| "(not running)".to_owned(), PayoutProcess::log);
        format!(
            "---- pool log ----\n{}\n---- payout log ----\n{payout}",
            self.pool.log()
        )
    }

    /// Every miner mines `shares` shares through the pool (on regtest nearly each is a block),
    /// then node 2 mines 100 blocks to an address outside the pool's wallet, so they mature.
    fn mine_and_mature(&self, shares: u64) {
        for m in &self.miners {
            let mut o = MinerOptions::new(m, "sha256d");
            o.max_shares = shares;
            MinerProcess::spawn(self.pool.stratum, &o)
                .wait(TIMEOUT)
                .expect_accepted(shares, &self.pool.log());
        }
        self.mine_outside(100);
    }

    /// Node 2 mines `blocks` outside the pool's wallet, on top of node 1's best block.
    fn mine_outside(&self, blocks: u64) {
        self.pair.mine_outside(&self.outside, blocks, TIMEOUT);
    }

    /// Mines `blocks` on node 2 once it has every transaction of node 1's mempool.
    fn confirm_payments(&self, blocks: u64) {
        self.pair.confirm_payments(&self.outside, blocks, TIMEOUT);
    }

    /// Sets `[payout] max_per_run` (the last section of the config) for the next payout start.
    fn set_max_per_run(&self, cap: u64) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("max_per_run"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(self.config(), format!("{kept}max_per_run = {cap}\n")).unwrap();
    }

    /// Stops the pool and folds its ledger.
    fn stop_and_fold(&mut self) -> Projection {
        assert!(self.pool.terminate().success());
        let mut p = Projection::new(ProjectionConfig::default());
        for (seq, e) in self.pool.ledger_events().iter().enumerate() {
            p.apply(seq as u64, e).unwrap();
        }
        p
    }
}

/// Signed satoshis of a `bitcoin-cli` amount (8 decimals at most: exact through f64 at these
/// sizes).
fn signed_sats(v: &serde_json::Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("an amount: {v}")) * 1e8).round() as i64
}

fn sats(v: &serde_json::Value) -> u64 {
    u64::try_from(signed_sats(v)).unwrap_or_else(|_| panic!("a positive amount: {v}"))
}

/// The transactions node 1's wallet sent.
fn sends(node1: &Node) -> BTreeSet<String> {
    node1
        .cli(&["listtransactions", "*", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "send")
        .map(|e| e["txid"].as_str().unwrap().to_owned())
        .collect()
}

/// What a transaction of node 1's wallet pays each address, and its fee.
fn on_chain(node1: &Node, txid: &str) -> (BTreeMap<String, u64>, u64) {
    let tx = node1.cli(&["gettransaction", txid]);
    let fee = u64::try_from(-signed_sats(&tx["fee"])).expect("a send's fee is negative");
    let hex = tx["hex"].as_str().unwrap();
    let decoded = node1.cli(&["decoderawtransaction", hex]);
    let mut paid = BTreeMap::new();
    for out in decoded["vout"].as_array().unwrap() {
        let addresses = out["scriptPubKey"]["addresses"].as_array().unwrap();
        assert_eq!(addresses.len(), 1, "{out}");
        *paid
            .entry(addresses[0].as_str().unwrap().to_owned())
            .or_default() += sats(&out["value"]);
    }
    (paid, fee)
}

/// The chain against the ledger, to the satoshi:
/// - every payment is confirmed, its transaction's fee on chain is the one the ledger booked,
///   and it pays each address its prepared amount (minus its share of that fee, by the
///   projection's split, where the miners pay it); the fee address is never paid (it is the
///   pool's own);
/// - the matured rewards of the pool's blocks are all credited; each miner has nothing payable
///   or in flight and received on chain exactly what the ledger says it was paid, which is all
///   its matured credit minus its share of the network fees;
/// - node 1's wallet holds exactly the matured pool rewards (plus what the operator put in)
///   minus the payments and their fees.
fn assert_wallet_agrees_with_ledger(s: &Setup, projection: &Projection, operator_funds: u64) {
    let payments = projection.payments();
    assert!(!payments.is_empty(), "something was paid");
    for p in &payments {
        assert_eq!(p.status, PaymentStatus::Confirmed, "{p:?}");
        let txid = p
            .txid
            .expect("a confirmed payment has a txid")
            .to_display_hex();
        let (paid, fee) = on_chain(&s.pair.node1, &txid);
        assert_eq!(fee, p.network_fee.0, "payment {}'s fee", p.payment_id);
        let amounts: Vec<Sats> = p.outputs.iter().map(|(_, a)| *a).collect();
        let deductions = match p.network_fee_payer {
            NetworkFeePayer::Pool => vec![Sats(0); amounts.len()],
            NetworkFeePayer::Miners => split_network_fee(&amounts, p.network_fee).0,
        };
        for ((address, amount), d) in p.outputs.iter().zip(&deductions) {
            assert_eq!(
                paid.get(&address.0).copied(),
                Some(amount.0 - d.0),
                "payment {} to {address}",
                p.payment_id
            );
        }
        assert!(
            !paid.contains_key(&s.pool_address),
            "the fee address is never paid"
        );
    }
    let matured: u64 = projection
        .blocks()
        .iter()
        .filter(|b| b.status == BlockStatus::Matured)
        .map(|b| b.reward.0)
        .sum();
    let balances = projection.balances();
    for m in &s.miners {
        let b = &balances[&PayoutAddress(m.clone())];
        assert_eq!(
            (b.payable, b.in_flight, b.debt),
            (Sats(0), Sats(0), Sats(0)),
            "{m}: {b:?}"
        );
        let received = sats(&s.pair.node2.cli(&["getreceivedbyaddress", m, "1"]));
        assert_eq!(received, b.paid.0, "{m} received what the ledger paid");
        assert!(received > 0, "{m} was paid");
        assert_eq!(
            i128::from(b.paid.0 + b.network_fees.0),
            b.total_credited() - i128::from(b.immature.0),
            "{m}: every matured credit paid, less its fee shares"
        );
    }
    let credited: i128 = balances
        .values()
        .map(|b| b.total_credited() - i128::from(b.immature.0))
        .sum();
    assert_eq!(
        credited,
        i128::from(matured),
        "matured rewards are all credited"
    );
    let paid: u64 = balances.values().map(|b| b.paid.0).sum();
    let fees: u64 = payments.iter().map(|p| p.network_fee.0).sum();
    let wallet = sats(&s.pair.node1.cli(&["getbalance"]));
    assert_eq!(
        wallet,
        matured + operator_funds - paid - fees,
        "wallet = matured rewards + operator funds - paid - network fees"
    );
}

#[test]
fn pays_every_miner_exactly_after_the_guard_let_it() {
    let _one = one_at_a_time();
    // The miners bear the network fee; the pool keeps 1 % on its own address (node 1's).
    let mut s = Setup::start(&format!(
        "{PAYOUT_KEYS}fee_bps = 100\nnetwork_fee_payer = \"miners\"\n"
    ));
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
    let mut payout = PayoutProcess::spawn(s.config(), &[]);
    s.wait_report(
        &payout,
        PayoutProcessState::Paused,
        &format!("above [payout] max_per_run = {} sats", total - 1),
    );
    assert!(s.state().open_payments.is_empty());
    assert_eq!(s.state().next_payment_id, 0, "nothing was ever prepared");
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
}

#[test]
fn a_crash_at_each_point_ends_in_one_transaction_per_balance() {
    let _one = one_at_a_time();
    // The miners bear the network fee and the pool keeps nothing: each round's payment spends
    // every satoshi the wallet holds.
    let mut s = Setup::start(&format!("{PAYOUT_KEYS}network_fee_payer = \"miners\"\n"));
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
}

#[test]
fn a_locked_wallet_stops_payments_not_shares_and_unlocking_resumes_them() {
    let _one = one_at_a_time();
    // The defaults: the pool pays the network fees and keeps no fee, so the operator must
    // fund them (the wallet holds exactly the rewards it owes).
    let mut s = Setup::start(PAYOUT_KEYS);
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
    let mut o = MinerOptions::new(&s.miners[0], "sha256d");
    o.max_shares = 1;
    MinerProcess::spawn(s.pool.stratum, &o)
        .wait(TIMEOUT)
        .expect_accepted(1, &s.pool.log());
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

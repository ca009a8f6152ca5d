//! The payout tests' set-up, shared by the BSV suite (`tests/payouts.rs`) and the Litecoin one
//! (`tests/litecoin_payouts.rs`): a pool on a node pair of its own with `[rpc]` and `[wallet]`
//! (node 1's, the pool's: it holds nothing but pool rewards; miner addresses, test coins and
//! every set-up block come from node 2's wallet), miners mining through the pool's Stratum
//! server, and the chain checked against the ledger to the satoshi. What differs by chain is
//! here and nowhere else: the preset, the wallet name (Litecoin Core has no default wallet), the
//! miner's proof of work and the kinds of miner addresses (Litecoin: bech32 and legacy).

use super::miner::{MinerOptions, MinerProcess};
use super::nodes::{
    free_port, start_litecoin_payout_pair, start_payout_pair, Node, NodeChain, NodePair,
    RPC_PASSWORD, RPC_USER,
};
use super::payout::PayoutProcess;
use super::pool::{config_text, PoolOptions, PoolProcess};
use super::scrypt_shares::mine_scrypt_blocks;
use payout::api::{PayoutProcessState, PayoutState};
use payout::payer::client::{PoolApi, PoolRpcClient};
use pool_core::event::{NetworkFeePayer, PayoutAddress};
use pool_core::Sats;
use projections::split::split_network_fee;
use projections::{BlockStatus, PaymentStatus, Projection, ProjectionConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The Litecoin pair's wallet of node 1 (the pool's).
pub const LITECOIN_POOL_WALLET: &str = "pool";

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A pool on a pair of its own, with `[rpc]` and `[wallet]` (node 1's).
pub struct Setup {
    pub pair: NodePair,
    pub pool: PoolProcess,
    pub rpc: PoolRpcClient,
    /// The pool's RPC address.
    pub rpc_addr: std::net::SocketAddr,
    pub runtime: tokio::runtime::Runtime,
    /// The pool's coinbase address (node 1's wallet), also its fee address.
    pub pool_address: String,
    /// Node 2's addresses the miners mine to (Litecoin: a bech32 one and a legacy one).
    pub miners: Vec<String>,
    /// Node 2's address for set-up blocks.
    pub outside: String,
}

/// `[rpc]`, `[wallet]` (named on Litecoin) and `[payout]` of the pool's config.
fn wallet_and_rpc(node1: &Node, rpc_port: u16, payout_keys: &str) -> String {
    let wallet = match node1.chain {
        NodeChain::Bsv => String::new(),
        NodeChain::Litecoin => format!("wallet = \"{LITECOIN_POOL_WALLET}\"\n"),
    };
    format!(
        "\n[rpc]\nlisten = \"127.0.0.1:{rpc_port}\"\n\n[wallet]\nurl = \"{}\"\nuser = \"{RPC_USER}\"\npassword = \"{RPC_PASSWORD}\"\n{wallet}rpc_timeout_secs = 30\n\n[payout]\n{payout_keys}",
        node1.rpc_url()
    )
}

/// Lean settings: a run a second, final at depth 2. Network fees are paid by the pool and there
/// is no pool fee unless a test adds keys (the defaults).
pub const PAYOUT_KEYS: &str = "scheme = \"prop\"\nmin_payment = 10000\nmax_outputs = 10\ninterval_secs = 1\nconfirmations = 2\n";

impl Setup {
    /// A pool on a fresh pair of `chain` with `payout_keys` as its `[payout]`.
    pub fn start(chain: NodeChain, payout_keys: &str) -> Setup {
        Setup::start_with(chain, payout_keys, "")
    }

    /// Like [`Setup::start`], with `node_keys` added to `[node]` (e.g. `watch_interval_secs`).
    pub fn start_with(chain: NodeChain, payout_keys: &str, node_keys: &str) -> Setup {
        let pair = match chain {
            NodeChain::Bsv => start_payout_pair(),
            NodeChain::Litecoin => start_litecoin_payout_pair(),
        }
        .expect("node pair");
        let pool_address = pair.node1.new_address();
        let miners = match chain {
            NodeChain::Bsv => vec![pair.node2.new_address(), pair.node2.new_address()],
            NodeChain::Litecoin => vec![
                pair.node2.new_address_of("bech32"),
                pair.node2.new_address_of("legacy"),
            ],
        };
        let outside = pair.node2.new_address();
        let rpc_port = free_port();
        let mut options = PoolOptions::new(&pool_address);
        options.node_url = Some(pair.node1.rpc_url());
        options.extra = wallet_and_rpc(&pair.node1, rpc_port, payout_keys);
        if chain == NodeChain::Litecoin {
            // Share targets at the block target or easier in either difficulty convention: the
            // scrypt miner grinds each share to the block target (see `scrypt_shares`).
            options.start_difficulty = 1e-9;
            options.min_difficulty = 1e-9;
        }
        let preset = format!("preset = \"{}\"", chain.preset());
        let node_keys = format!("max_retry_backoff_secs = 2\n{node_keys}");
        let pool = PoolProcess::start_with_config(|stratum, notify| {
            config_text(&options, stratum, notify)
                .replace("preset = \"bsv-regtest\"", &preset)
                .replace("max_retry_backoff_secs = 2\n", &node_keys)
        });
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
            rpc_addr: format!("127.0.0.1:{rpc_port}").parse().unwrap(),
            runtime,
            pool_address,
            miners,
            outside,
        }
    }

    pub fn config(&self) -> &Path {
        &self.pool.config_path
    }

    pub fn state(&self) -> PayoutState {
        self.runtime
            .block_on(self.rpc.payout_state())
            .unwrap_or_else(|e| panic!("payout_state: {e}\n{}", self.pool.log()))
    }

    /// Waits (bounded) until `pred` holds for the pool's payout state; on a timeout the panic
    /// shows the last state, the pool's log and the payout process's (when one runs).
    pub fn wait_state(
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
    pub fn wait_report(&self, payout: &PayoutProcess, state: PayoutProcessState, line: &str) {
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
    pub fn logs(&self, payout: Option<&PayoutProcess>) -> String {
        let payout = payout.map_or_else(|| "(not running)".to_owned(), PayoutProcess::log);
        format!(
            "---- pool log ----\n{}\n---- payout log ----\n{payout}",
            self.pool.log()
        )
    }

    /// Every miner mines `shares` shares through the pool (on regtest nearly each is a block),
    /// then node 2 mines 100 blocks to an address outside the pool's wallet, so they mature.
    pub fn mine_and_mature(&self, shares: u64) {
        for m in &self.miners {
            self.mine_shares(m, shares);
        }
        self.mine_outside(100);
    }

    /// `user` mines `shares` shares through the pool: `obtc-miner` with SHA-256d on BSV, the
    /// in-process scrypt miner on Litecoin (each share a block).
    pub fn mine_shares(&self, user: &str, shares: u64) {
        match self.pair.node1.chain {
            NodeChain::Bsv => {
                let mut o = MinerOptions::new(user, "sha256d");
                o.max_shares = shares;
                MinerProcess::spawn(self.pool.stratum, &o)
                    .wait(TIMEOUT)
                    .expect_accepted(shares, &self.pool.log());
            }
            NodeChain::Litecoin => {
                // Every share is a block: node 1 has them all before the caller goes on (the
                // pool answers a share before its block reaches the node).
                let height = self.pair.node1.block_count();
                mine_scrypt_blocks(self.pool.stratum, user, shares, TIMEOUT, || self.pool.log());
                assert!(
                    self.pair
                        .node1
                        .wait_until(TIMEOUT, |n| n.block_count() >= height + shares),
                    "node 1 did not get the pool's {shares} blocks\n{}",
                    self.pool.log()
                );
            }
        }
    }

    /// Node 2 mines `blocks` outside the pool's wallet, on top of node 1's best block.
    pub fn mine_outside(&self, blocks: u64) {
        self.pair.mine_outside(&self.outside, blocks, TIMEOUT);
    }

    /// Mines `blocks` on node 2 once it has every transaction of node 1's mempool.
    pub fn confirm_payments(&self, blocks: u64) {
        self.pair.confirm_payments(&self.outside, blocks, TIMEOUT);
    }

    /// Sets `[payout] max_per_run` (the last section of the config) for the next payout start.
    pub fn set_max_per_run(&self, cap: u64) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("max_per_run"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(self.config(), format!("{kept}max_per_run = {cap}\n")).unwrap();
    }

    /// Stops the pool and folds its ledger.
    pub fn stop_and_fold(&mut self) -> Projection {
        assert!(self.pool.terminate().success());
        let mut p = Projection::new(ProjectionConfig::default());
        for (seq, e) in self.pool.ledger_events().iter().enumerate() {
            p.apply(seq as u64, e).unwrap();
        }
        p
    }
}

/// Signed satoshis of a node CLI amount (8 decimals at most: exact through f64 at these
/// sizes).
pub fn signed_sats(v: &serde_json::Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("an amount: {v}")) * 1e8).round() as i64
}

pub fn sats(v: &serde_json::Value) -> u64 {
    u64::try_from(signed_sats(v)).unwrap_or_else(|_| panic!("a positive amount: {v}"))
}

/// The transactions node 1's wallet sent.
pub fn sends(node1: &Node) -> BTreeSet<String> {
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
pub fn on_chain(node1: &Node, txid: &str) -> (BTreeMap<String, u64>, u64) {
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
pub fn assert_wallet_agrees_with_ledger(s: &Setup, projection: &Projection, operator_funds: u64) {
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

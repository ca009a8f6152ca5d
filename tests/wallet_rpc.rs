//! The wallet calls of the payout process against the real Bitcoin SV regtest pair: node 1's
//! wallet pays, node 2's addresses receive. Building, funding, signing and broadcasting a payment
//! transaction the way the payout process does, with the network fee paid by the pool and by the
//! miners, and the node's answers to a repeated broadcast.

mod common;

use common::nodes::{nodes, Node, RPC_PASSWORD, RPC_USER};
use node_rpc::{Broadcast, NodeAuth, NodeEndpoint, NodeError, SignMethod, WalletClient};
use payout::api::{AppendReply, PayoutReport, PayoutState};
use payout::payer::client::{PoolApi, PoolApiError};
use payout::payer::crash::CrashHooks;
use payout::payer::plan::PlanLimits;
use payout::payer::{tx, Payer, PayerSettings};
use pool_core::event::{NetworkFeePayer, PaymentOutput, PayoutAddress};
use pool_core::{Event, Sats};
use std::sync::OnceLock;
use std::time::Duration;

fn wallet(wallet_name: Option<&str>) -> WalletClient {
    WalletClient::new(
        NodeEndpoint {
            url: nodes().node1.rpc_url(),
            auth: NodeAuth::UserPassword {
                user: RPC_USER.into(),
                password: RPC_PASSWORD.into(),
            },
            timeout: Duration::from_secs(30),
            longpoll_timeout: Duration::from_secs(30),
        },
        wallet_name,
    )
}

/// Node 1's wallet has matured coins (mined once per test binary).
fn funded() -> &'static Node {
    static FUNDED: OnceLock<()> = OnceLock::new();
    let node1 = &nodes().node1;
    FUNDED.get_or_init(|| {
        node1.cli(&["generate", "101"]);
        let target = node1.block_count();
        assert!(nodes()
            .node2
            .wait_until(Duration::from_secs(30), |n| n.block_count() >= target));
    });
    node1
}

/// Satoshis of a `bitcoin-cli` amount (8 decimals at most: exact through f64 at these sizes).
fn sats(v: &serde_json::Value) -> u64 {
    (v.as_f64().expect("amount") * 1e8).round() as u64
}

/// The payer's wallet steps need no pool; a payer whose pool refuses everything.
struct NoPool;

impl PoolApi for NoPool {
    async fn payout_state(&self) -> Result<PayoutState, PoolApiError> {
        Err(PoolApiError::Other("no pool in this test".into()))
    }
    async fn append(&self, _event: Event) -> Result<AppendReply, PoolApiError> {
        Err(PoolApiError::Other("no pool in this test".into()))
    }
    async fn report(&self, _report: PayoutReport) -> Result<(), PoolApiError> {
        Ok(())
    }
}

fn payer() -> Payer<NoPool, WalletClient> {
    Payer::new(
        NoPool,
        wallet(None),
        PayerSettings {
            limits: PlanLimits {
                min_payment: Sats(546),
                dust_limit: pool_core::Chain::BsvRegtest.params().dust_limit,
                max_outputs: 10,
                max_per_run: Sats(u64::MAX),
                max_per_day: Sats(u64::MAX),
            },
            interval: Duration::from_secs(1),
            confirmations: 1,
        },
        CrashHooks::none(),
    )
}

fn outputs(amounts: &[u64]) -> Vec<PaymentOutput> {
    let mut outs: Vec<PaymentOutput> = amounts
        .iter()
        .map(|a| PaymentOutput {
            address: PayoutAddress(nodes().node2.new_address()),
            amount: Sats(*a),
        })
        .collect();
    outs.sort_by(|a, b| a.address.cmp(&b.address));
    outs
}

// Each #[tokio::test] has its own runtime: the std lock serializes tests, not tasks.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn wallet_reads_and_address_checks_on_bsv() {
    let _serial = common::serial();
    let node1 = funded();
    let w = wallet(None);
    let balance = w.get_balance().await.unwrap();
    assert_eq!(balance.0, sats(&node1.cli(&["getbalance"])));
    assert!(balance.0 >= 5_000_000_000, "{balance:?}");
    let coins = w.list_unspent(1).await.unwrap();
    assert_eq!(
        coins.iter().map(|c| c.amount.0).sum::<u64>(),
        balance.0,
        "confirmed coins add up to the balance"
    );

    // BSV serves its one wallet on the plain URL and as /wallet/wallet.dat; other names are
    // "not loaded".
    assert_eq!(
        wallet(Some("wallet.dat")).get_balance().await.unwrap(),
        balance
    );
    match wallet(Some("pool")).get_balance().await {
        Err(NodeError::Rpc { code: -18, .. }) => {}
        other => panic!("a wallet BSV does not have: {other:?}"),
    }

    let mine = w.check_address(&node1.new_address()).await.unwrap();
    assert!(mine.valid && mine.is_mine, "{mine:?}");
    assert!(mine.script_pubkey.as_deref().unwrap().starts_with("76a914"));
    let theirs = w.check_address(&nodes().node2.new_address()).await.unwrap();
    assert!(theirs.valid && !theirs.is_mine, "{theirs:?}");
    let bad = w.check_address("nonsense").await.unwrap();
    assert!(!bad.valid && bad.script_pubkey.is_none());
    // A mainnet address is not valid on regtest.
    assert!(
        !w.check_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2")
            .await
            .unwrap()
            .valid
    );

    assert_eq!(
        w.get_transaction(&"ab".repeat(32)).await.unwrap(),
        None,
        "an unknown txid is None"
    );
    assert!(w.list_transactions(10, 0).await.unwrap().len() <= 10);
    assert!(w
        .get_raw_change_address()
        .await
        .unwrap()
        .starts_with(['m', 'n']));
}

#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn payment_transaction_with_the_miners_paying_the_fee() {
    let _serial = common::serial();
    let node1 = funded();
    let payer = payer();
    let outs = outputs(&[1_000_000, 2_500_000, 30_000_001]);
    let signed = payer
        .fund_and_sign(&outs, NetworkFeePayer::Miners)
        .await
        .unwrap();
    assert!(signed.network_fee.0 > 0);
    let w = wallet(None);
    let decoded = tx::decode_bytes(&signed.raw_tx).unwrap();
    assert_eq!(tx::txid(&decoded), signed.txid);
    // Each output is its amount minus its share of the fee, by the projection's split.
    let amounts: Vec<Sats> = outs.iter().map(|o| o.amount).collect();
    let (deductions, excess) = projections::split::split_network_fee(&amounts, signed.network_fee);
    assert_eq!(excess, Sats(0));
    let want: Vec<u64> = outs
        .iter()
        .zip(&deductions)
        .map(|(o, d)| o.amount.0 - d.0)
        .collect();

    // The first broadcast is accepted, a second one is "already known"; mined, still known.
    let hex = hex::encode(&signed.raw_tx);
    let txid = signed.txid.to_display_hex();
    assert_eq!(
        w.send_raw_transaction(&hex).await.unwrap(),
        Broadcast::Accepted(txid.clone())
    );
    // Signing again (the inputs are signed already) finds the method BSV has.
    assert_eq!(w.sign_method(), None);
    assert!(w.sign_raw_transaction(&hex).await.unwrap().complete);
    assert_eq!(
        w.sign_method(),
        Some(SignMethod::Legacy),
        "BSV has only signrawtransaction"
    );
    assert_eq!(
        w.send_raw_transaction(&hex).await.unwrap(),
        Broadcast::AlreadyKnown
    );
    assert!(w.get_raw_mempool().await.unwrap().contains(&txid));
    let in_wallet = w.get_transaction(&txid).await.unwrap().unwrap();
    assert_eq!(in_wallet.confirmations, 0);
    assert_eq!(in_wallet.fee, Some(-(signed.network_fee.0 as i64)));
    let block = node1.cli(&["generate", "1"]);
    let block = block[0].as_str().unwrap().to_owned();
    assert_eq!(
        w.send_raw_transaction(&hex).await.unwrap(),
        Broadcast::AlreadyKnown
    );
    let mined = w.get_transaction(&txid).await.unwrap().unwrap();
    assert_eq!(mined.confirmations, 1);
    assert_eq!(mined.blockhash.as_deref(), Some(block.as_str()));
    let target = node1.block_count();
    assert!(nodes()
        .node2
        .wait_until(Duration::from_secs(30), |n| n.block_count() >= target));
    for (o, want) in outs.iter().zip(want) {
        let got = sats(
            &nodes()
                .node2
                .cli(&["getreceivedbyaddress", &o.address.0, "1"]),
        );
        assert_eq!(got, want, "{}", o.address);
    }
    let entries = w.list_transactions(20, 0).await.unwrap();
    assert!(entries.iter().any(|e| e.txid == txid
        && e.category == "send"
        && e.fee == Some(-(signed.network_fee.0 as i64))));
}

#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn payment_transaction_with_the_pool_paying_the_fee() {
    let _serial = common::serial();
    let node1 = funded();
    let payer = payer();
    let w = wallet(None);
    let before = w.get_balance().await.unwrap();
    let outs = outputs(&[700_000, 546, 12_345_678]);
    let signed = payer
        .fund_and_sign(&outs, NetworkFeePayer::Pool)
        .await
        .unwrap();
    let hex = hex::encode(&signed.raw_tx);
    assert!(matches!(
        w.send_raw_transaction(&hex).await.unwrap(),
        Broadcast::Accepted(_)
    ));
    node1.cli(&["generate", "1"]);
    let target = node1.block_count();
    assert!(nodes()
        .node2
        .wait_until(Duration::from_secs(30), |n| n.block_count() >= target));
    for o in &outs {
        let got = sats(
            &nodes()
                .node2
                .cli(&["getreceivedbyaddress", &o.address.0, "1"]),
        );
        assert_eq!(got, o.amount.0, "{}", o.address);
    }
    // The wallet paid the outputs and the fee, plus whatever the new block matured.
    let after = w.get_balance().await.unwrap();
    let matured = 5_000_000_000u64;
    let total: u64 = outs.iter().map(|o| o.amount.0).sum();
    assert_eq!(
        before.0 + matured - total - signed.network_fee.0,
        after.0,
        "balance moved by outputs + fee exactly"
    );
}

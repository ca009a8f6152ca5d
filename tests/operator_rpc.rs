//! The operator's read methods and WebSocket subscriptions against a running `obtc-pool run` on
//! the real BSV regtest pair (one pair for this binary): miners mine blocks through the pool,
//! 100 blocks from node 2 mature them, `obtc-pool payout` pays through node 1's wallet (the
//! pool's), and every step is seen by the subscriptions and the read methods. Refused and
//! malformed requests get the contract's errors. Finally the numbers the RPC serves (every
//! address's balance, every block's credits, every payment) are those `obtc-pool ledger
//! balances` reports on a copy of the ledger taken while the pool runs, at the same sequence.
//!
//! Every wait is bounded; a timeout shows the pool's and the payout process's logs.

mod common;

use common::miner::{MinerOptions, MinerProcess};
use common::nodes::{free_port, start_payout_pair, NodePair};
use common::payout::PayoutProcess;
use common::pool::{PoolOptions, PoolProcess};
use common::rpc::{self, example};
use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use payout::api::operator::*;
use payout::api::LedgerHead;
use projections::PaymentStatus;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The pool on the pair, with `[rpc]`, `[wallet]` (node 1's) and a payout rule with a 1 % fee.
struct Setup {
    pair: NodePair,
    pool: PoolProcess,
    rpc: SocketAddr,
    runtime: tokio::runtime::Runtime,
    pool_address: String,
    miners: Vec<String>,
    /// Node 2's address for set-up blocks.
    outside: String,
}

impl Setup {
    fn start() -> Setup {
        let pair = start_payout_pair().expect("node pair");
        let pool_address = pair.node1.new_address();
        let miners = vec![pair.node2.new_address(), pair.node2.new_address()];
        let outside = pair.node2.new_address();
        let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let options = PoolOptions::with_rpc_and_prop_payouts(&pool_address, &pair.node1, rpc);
        let pool = PoolProcess::start(&options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
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

    /// The raw JSON-RPC reply of `method(params)` over HTTP.
    fn raw(&self, method: &str, params: Value) -> Value {
        let (request, reply) = rpc::request(self.rpc, method, &params);
        example(&json!({"request": request, "reply": reply}));
        reply
    }

    /// `method(params)`'s result, decoded.
    fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> T {
        let reply = self.raw(method, params.clone());
        rpc::result_of(method, &params, &reply)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.pool.log()))
    }

    /// `method(params)`'s error: (code, message).
    fn error(&self, method: &str, params: Value) -> (i64, String) {
        let reply = self.raw(method, params.clone());
        let e = reply
            .get("error")
            .unwrap_or_else(|| panic!("{method}({params}) should fail: {reply}"));
        (
            e["code"].as_i64().unwrap(),
            e["message"].as_str().unwrap().to_owned(),
        )
    }

    fn head(&self) -> LedgerHeadReply {
        self.call(METHOD_LEDGER_HEAD, json!([]))
    }

    fn blocks(&self, status: Option<&str>) -> Vec<BlockSummary> {
        let page: BlocksPage = self.call(METHOD_BLOCKS_LIST, json!([status, MAX_LIMIT]));
        assert_eq!(page.next_before, None);
        page.blocks
    }

    fn payments(&self) -> Vec<PaymentInfo> {
        let page: PaymentsPage = self.call(METHOD_PAYMENTS_LIST, json!({"limit": MAX_LIMIT}));
        page.payments
    }

    fn logs(&self, payout: Option<&PayoutProcess>) -> String {
        format!(
            "---- pool log ----\n{}\n---- payout log ----\n{}",
            self.pool.log(),
            payout.map_or_else(|| "(not running)".into(), PayoutProcess::log)
        )
    }

    /// Waits (bounded) for `what`.
    fn wait(&self, what: &str, payout: Option<&PayoutProcess>, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs(payout)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The next notification of `sub` (bounded).
    fn next<T: DeserializeOwned + serde::Serialize + Send + 'static>(
        &self,
        sub: &mut Subscription<Notification<T>>,
        what: &str,
        payout: Option<&PayoutProcess>,
    ) -> Notification<T> {
        let got = self
            .runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, sub.next()).await });
        match got {
            Ok(Some(Ok(n))) => {
                example(&json!({"notification": what, "item": serde_json::to_value(&n).unwrap()}));
                n
            }
            other => panic!(
                "no {what} notification: {:?}\n{}",
                other.map(|o| o.map(|r| r.map(|_| ()))),
                self.logs(payout)
            ),
        }
    }

    /// Node 2 mines `blocks` outside the pool's wallet, on top of node 1's best block.
    fn mine_outside(&self, blocks: u64) {
        self.pair.mine_outside(&self.outside, blocks, TIMEOUT);
    }

    /// Mines `blocks` on node 2 once it has every transaction of node 1's mempool.
    fn confirm_payments(&self, blocks: u64) {
        self.pair.confirm_payments(&self.outside, blocks, TIMEOUT);
    }
}

/// `obtc-pool ledger balances --json` of a ledger directory.
fn ledger_balances(dir: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["ledger", "balances", "--json", "--data"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run obtc-pool ledger balances");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ledger balances failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn sats(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("satoshis: {v}"))
}

/// Every refused or malformed request gets its error code and says what was wrong.
fn refused_requests(s: &Setup, unknown: &str) {
    let cases: Vec<(&str, Value, i32, &str)> = vec![
        (
            METHOD_MINER_BALANCE,
            json!(["not-an-address"]),
            ERR_INVALID_ADDRESS,
            "not a payout address of bsv-regtest",
        ),
        // A mainnet address: valid, but for another network.
        (
            METHOD_MINER_BALANCE,
            json!(["1BoatSLRHtKNngkdXEeobR76b53LETtpyT"]),
            ERR_INVALID_ADDRESS,
            "another network",
        ),
        (
            METHOD_MINER_BALANCE,
            json!([unknown]),
            ERR_UNKNOWN,
            "no record of address",
        ),
        (
            METHOD_MINER_BALANCE,
            json!({"address": unknown}),
            ERR_UNKNOWN,
            "no record of address",
        ),
        (
            METHOD_MINER_BALANCE,
            json!([]),
            -32602,
            "expected [address]",
        ),
        (
            METHOD_MINER_BALANCE,
            json!([5]),
            -32602,
            "address must be a string",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([null, 0]),
            ERR_BAD_REQUEST,
            "1 to 1000",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([null, 1001]),
            ERR_BAD_REQUEST,
            "1 to 1000",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!({"limit": -3}),
            ERR_BAD_REQUEST,
            "out of range",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([null]),
            ERR_BAD_REQUEST,
            "limit is required",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!(["mined", 10]),
            ERR_BAD_REQUEST,
            "unknown status \"mined\"",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([null, "ten"]),
            -32602,
            "limit must be an integer",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([null, 10, "x"]),
            -32602,
            "before must be an integer",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([{"limt": 10}]),
            -32602,
            "unknown param \"limt\"",
        ),
        (
            METHOD_BLOCKS_LIST,
            json!([null, 10, null, 4]),
            -32602,
            "at most 3",
        ),
        (
            METHOD_BLOCK_GET,
            json!(["xyz"]),
            ERR_BAD_REQUEST,
            "64 hex digits",
        ),
        (
            METHOD_BLOCK_GET,
            json!(["00".repeat(32)]),
            ERR_UNKNOWN,
            "no record of block",
        ),
        (
            METHOD_BLOCK_GET,
            json!([17]),
            -32602,
            "block_id must be a string",
        ),
        (
            METHOD_PAYMENTS_LIST,
            json!([unknown, 10]),
            ERR_UNKNOWN,
            "no record of address",
        ),
        (
            METHOD_PAYMENTS_LIST,
            json!(["nope", 10]),
            ERR_INVALID_ADDRESS,
            "not a payout address",
        ),
        (
            METHOD_PAYMENTS_LIST,
            json!({"limit": 0}),
            ERR_BAD_REQUEST,
            "1 to 1000",
        ),
        (
            METHOD_PAYMENTS_LIST,
            json!({"address": null, "limit": 5, "status": "x"}),
            -32602,
            "unknown param",
        ),
    ];
    for (method, params, code, says) in cases {
        let (got, message) = s.error(method, params.clone());
        assert_eq!(got, i64::from(code), "{method}({params}): {message}");
        assert!(
            message.contains(says) && message.starts_with(method),
            "{method}({params}): {message:?} should say {says:?}"
        );
    }
    // Subscriptions are WebSocket only; a broken body and an unknown method are JSON-RPC's.
    let reply = s.raw(SUBSCRIBE_BLOCKS, json!([]));
    assert!(reply.get("error").is_some(), "{reply}");
    let broken = common::rpc::post(s.rpc, r#"{"jsonrpc": "2.0", "id": 1, "method": "#, None);
    assert_eq!(broken["error"]["code"], -32700, "{broken}");
    assert_eq!(s.raw("pool_nonsense", json!([]))["error"]["code"], -32601);
}

#[test]
fn the_operator_rpc_serves_what_the_ledger_says() {
    let started = Instant::now();
    let s = Setup::start();
    let ws: WsClient = s
        .runtime
        .block_on(
            WsClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .build(format!("ws://{}", s.rpc)),
        )
        .expect("a WebSocket connection to the pool's RPC");
    let (mut blocks, mut statuses, mut payments) = s.runtime.block_on(async {
        let blocks: Subscription<Notification<BlockSummary>> = ws
            .subscribe(SUBSCRIBE_BLOCKS, ArrayParams::new(), UNSUBSCRIBE_BLOCKS)
            .await
            .unwrap();
        let statuses: Subscription<Notification<BlockStatusChange>> = ws
            .subscribe(
                SUBSCRIBE_BLOCK_STATUS,
                ArrayParams::new(),
                UNSUBSCRIBE_BLOCK_STATUS,
            )
            .await
            .unwrap();
        let payments: Subscription<Notification<PaymentInfo>> = ws
            .subscribe(SUBSCRIBE_PAYMENTS, ArrayParams::new(), UNSUBSCRIBE_PAYMENTS)
            .await
            .unwrap();
        (blocks, statuses, payments)
    });

    // The pool as started: its settings, the rule it recorded, an empty block list.
    let info: PoolInfo = s.call(METHOD_POOL_INFO, json!([]));
    assert_eq!(
        (
            info.chain.as_str(),
            info.network.as_str(),
            info.pow.as_str()
        ),
        ("bsv-regtest", "regtest", "sha256d")
    );
    assert_eq!(info.coinbase_maturity, 100);
    assert_eq!(info.payout_address, s.pool_address);
    assert_eq!(info.stratum, s.pool.stratum.to_string());
    assert_eq!(info.rule.fee_bps, 100);
    assert_eq!(info.rule.fee_address.0, s.pool_address);
    let rule_seq = info.rule_seq.expect("the configured rule is recorded");
    assert_eq!(info.ledger_base, 0);
    assert_eq!(info.versions.pool, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.versions.snapshot, projections::SNAPSHOT_VERSION);
    let head = s.head();
    assert!(head.applied_seq <= head.ledger.as_ref().map(|h| h.seq));
    assert!(s.blocks(None).is_empty());
    refused_requests(&s, &s.pair.node2.new_address());

    // Each miner mines one share through the pool: on regtest each is a block.
    for (i, m) in s.miners.iter().enumerate() {
        let mut o = MinerOptions::new(&format!("{m}.rig{i}"), "sha256d");
        o.max_shares = 1;
        MinerProcess::spawn(s.pool.stratum, &o)
            .wait(TIMEOUT)
            .expect_accepted(1, &s.pool.log());
    }
    s.wait("the blocks' verdicts", None, || {
        let all = s.blocks(None);
        !all.is_empty() && all.iter().all(|b| b.status != BlockState::Pending)
    });
    let found = s.blocks(Some("immature"));
    assert!(!found.is_empty(), "{:?}", s.blocks(None));
    // One `blocks` notification per found block, and a `found` status change, each at the
    // verdict's record (a candidate the node refused, should one be, is told as `rejected`).
    let rejected: BTreeSet<_> = s
        .blocks(Some("rejected"))
        .iter()
        .map(|b| b.block_id)
        .collect();
    let mut notified = BTreeSet::new();
    for _ in &found {
        let n = s.next(&mut blocks, "blocks", None);
        assert_eq!(Some(n.ledger.seq), n.item.verdict_seq);
        assert_eq!(n.item.status, BlockState::Immature);
        notified.insert(n.item.block_id);
        let st = loop {
            let st = s.next(&mut statuses, "block_status", None);
            if st.item.event == "rejected" && rejected.contains(&st.item.block_id) {
                continue;
            }
            break st;
        };
        assert_eq!(
            (st.item.event.as_str(), st.item.block_id),
            ("found", n.item.block_id)
        );
        assert_eq!(st.ledger, n.ledger);
    }
    let listed: BTreeSet<_> = found.iter().map(|b| b.block_id).collect();
    assert_eq!(notified, listed);

    // Paging walks the same list, positional or named.
    let mut walked = Vec::new();
    let mut before: Option<u64> = None;
    for _ in 0..100 {
        let page: BlocksPage = if walked.len() % 2 == 0 {
            s.call(METHOD_BLOCKS_LIST, json!([null, 1, before]))
        } else {
            s.call(METHOD_BLOCKS_LIST, json!([{"limit": 1, "before": before}]))
        };
        walked.extend(page.blocks);
        before = page.next_before;
        if before.is_none() {
            break;
        }
    }
    assert_eq!(walked, s.blocks(None));
    assert!(
        walked.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );

    // 100 blocks outside the pool mature them: a `matured` change for each; a read right after
    // the notification already shows it.
    s.mine_outside(100);
    for _ in &found {
        let n = s.next(&mut statuses, "block_status", None);
        assert_eq!(
            (n.item.event.as_str(), n.item.status),
            ("matured", BlockState::Matured)
        );
        let d: BlockDetail = s.call(METHOD_BLOCK_GET, json!([n.item.block_id.to_display_hex()]));
        assert_eq!(d.block.status, BlockState::Matured);
        assert!(d.ledger.as_ref().unwrap().seq >= n.ledger.seq);
    }

    // The payout process pays the miners: prepared, signed, sent, then confirmed at depth 2.
    let mut payout = PayoutProcess::spawn(&s.pool.config_path, &[]);
    let mut seen = Vec::new();
    for status in [
        PaymentStatus::Prepared,
        PaymentStatus::Signed,
        PaymentStatus::Sent,
    ] {
        let n = s.next(&mut payments, "payments", Some(&payout));
        assert_eq!(n.item.status, status, "{n:?}");
        assert_eq!(n.item.last_seq, n.ledger.seq);
        let listed = s.payments();
        let now = listed.iter().find(|p| p.payment_id == n.item.payment_id);
        assert!(
            now.is_some_and(|p| p.last_seq >= n.ledger.seq),
            "{listed:?}"
        );
        seen.push(n);
    }
    let sent = &seen[2].item;
    assert!(sent.txid.is_some() && sent.network_fee.0 > 0, "{sent:?}");
    assert!(sent.outputs.iter().map(|o| o.deducted.0).sum::<u64>() == sent.network_fee.0);
    s.confirm_payments(2);
    let confirmed = s.next(&mut payments, "payments", Some(&payout));
    assert_eq!(confirmed.item.status, PaymentStatus::Confirmed);
    assert_eq!(confirmed.item.txid, sent.txid);
    let txid = sent.txid.unwrap().to_display_hex();
    let tx = s.pair.node1.cli(&["gettransaction", &txid]);
    let block_hash = tx["blockhash"].as_str().expect("mined").to_owned();
    let height = s.pair.node1.cli(&["getblock", &block_hash])["height"].as_u64();
    assert_eq!(confirmed.item.confirmed_height, height);
    assert!(confirmed.item.prepared_ms.is_some());
    assert!(payout.terminate().success(), "{}", payout.log());
    // Unsubscribing ends each subscription (the pool answers the unsubscribe call).
    s.runtime.block_on(async {
        blocks.unsubscribe().await.unwrap();
        statuses.unsubscribe().await.unwrap();
        payments.unsubscribe().await.unwrap();
    });

    // The head stops moving: nothing mines or pays any more.
    let mut last = s.head();
    let mut still_since = Instant::now();
    s.wait("the ledger head to settle", None, || {
        let now = s.head();
        if now != last || now.applied_seq != now.ledger.as_ref().map(|h| h.seq) {
            last = now;
            still_since = Instant::now();
        }
        still_since.elapsed() >= Duration::from_millis(1500)
    });
    let head: LedgerHead = last.ledger.clone().expect("a ledger");

    // What the RPC serves now, every reply at that head...
    let miners: Vec<String> = s.miners.clone();
    let addresses: Vec<String> = miners
        .iter()
        .cloned()
        .chain(std::iter::once(s.pool_address.clone()))
        .collect();
    let balances: BTreeMap<String, MinerBalance> = addresses
        .iter()
        .map(|a| (a.clone(), s.call(METHOD_MINER_BALANCE, json!([a]))))
        .collect();
    let all_blocks = s.blocks(None);
    let details: Vec<BlockDetail> = all_blocks
        .iter()
        .map(|b| s.call(METHOD_BLOCK_GET, json!([b.block_id.to_display_hex()])))
        .collect();
    let pays = s.payments();
    for b in balances.values() {
        assert_eq!(b.ledger.as_ref(), Some(&head));
    }
    for d in &details {
        assert_eq!(d.ledger.as_ref(), Some(&head));
        assert_eq!(d.rule_seq, Some(rule_seq));
    }
    // The payout issue's reads agree with them.
    let status: payout::api::PoolStatus = s.call(payout::api::METHOD_POOL_STATUS, json!([]));
    let state: payout::api::PayoutState = s.call(payout::api::METHOD_PAYOUT_STATE, json!([]));
    assert_eq!(status.ledger.as_ref(), Some(&head));
    assert_eq!(state.ledger.as_ref(), Some(&head));
    assert!(state.open_payments.is_empty());
    assert_eq!(state.next_payment_id, pays.len() as u64);
    assert_eq!(s.head().ledger.as_ref(), Some(&head), "the head moved");

    // ...equals `ledger balances` on a copy of the ledger at the same sequence.
    let copy = tempfile::tempdir().unwrap();
    common::copy_live_dir(&s.pool.ledger_dir(), copy.path());
    let report = ledger_balances(copy.path());
    assert_eq!(report["head"]["seq"], head.seq, "{}", report["head"]);
    assert_eq!(report["head"]["hash"], head.hash);
    let reported = report["balances"].as_object().unwrap();
    for address in &addresses {
        assert!(
            reported.contains_key(address),
            "{address} not in the report"
        );
    }
    // Every address the ledger knows is served with the same figures (the fee address too).
    for (address, r) in reported.iter().filter(|(a, _)| !a.is_empty()) {
        let b = match balances.get(address) {
            Some(b) => b.clone(),
            None => s.call(METHOD_MINER_BALANCE, json!([address])),
        };
        assert_eq!(b.ledger.as_ref(), Some(&head));
        for (field, served) in [
            ("immature", b.immature),
            ("payable", b.payable),
            ("in_flight", b.in_flight),
            ("paid", b.paid),
            ("debt", b.debt),
            ("network_fees", b.network_fees),
        ] {
            assert_eq!(served.0, sats(&r[field]), "{address} {field}: {r}");
        }
    }
    for m in &miners {
        assert!(balances[m].paid.0 > 0, "{m} was paid: {:?}", balances[m]);
    }
    let report_blocks = report["blocks"].as_array().unwrap();
    assert_eq!(report_blocks.len(), details.len());
    assert!(report["open_candidates"].as_array().unwrap().is_empty());
    for d in &details {
        let r = report_blocks
            .iter()
            .find(|r| r["block_id"] == d.block.block_id.to_display_hex())
            .unwrap_or_else(|| panic!("block {} not in the report", d.block.block_id));
        assert_eq!(d.block.reward.0, sats(&r["reward"]));
        assert_eq!(d.block.height, r["height"].as_u64().unwrap());
        assert_eq!(
            format!("{:?}", d.block.status).to_lowercase(),
            r["status"].as_str().unwrap().to_lowercase()
        );
        assert_eq!(d.fee.0, sats(&r["fee"]));
        assert_eq!(
            d.fee_address.as_ref().map(|a| a.0.as_str()),
            r["fee_address"].as_str()
        );
        let credits: BTreeMap<String, u64> = r["credits"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(a, v)| (a.clone(), sats(v)))
            .collect();
        let served: BTreeMap<String, u64> = d
            .credits
            .iter()
            .map(|c| (c.address.0.clone(), c.amount.0))
            .collect();
        assert_eq!(served, credits, "block {} credits", d.block.block_id);
        assert_eq!(served.values().sum::<u64>() + d.fee.0, d.block.reward.0);
    }
    let report_payments = report["payments"].as_array().unwrap();
    assert_eq!(report_payments.len(), pays.len());
    for p in &pays {
        let r = report_payments
            .iter()
            .find(|r| r["payment_id"] == p.payment_id)
            .unwrap();
        assert_eq!(p.network_fee.0, sats(&r["network_fee"]));
        assert_eq!(
            p.txid.map(|t| t.to_display_hex()).as_deref(),
            r["txid"].as_str()
        );
        let outputs: Vec<(String, u64)> = r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_str().unwrap().to_owned(), sats(&o[1])))
            .collect();
        let served: Vec<(String, u64)> = p
            .outputs
            .iter()
            .map(|o| (o.address.0.clone(), o.amount.0))
            .collect();
        assert_eq!(served, outputs);
        assert_eq!(format!("{:?}", p.status), r["status"].as_str().unwrap());
    }
    // By address: each miner's payments.
    for m in &miners {
        let page: PaymentsPage = s.call(METHOD_PAYMENTS_LIST, json!([m, 10]));
        assert!(!page.payments.is_empty());
        assert!(page
            .payments
            .iter()
            .all(|p| p.outputs.iter().any(|o| o.address.0 == *m)));
    }
    eprintln!(
        "operator RPC test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

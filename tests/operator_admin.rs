//! The operator's admin calls, `pool_stats`, `miner_workers` and `ledger_verify`, against the
//! real `obtc-pool run` binary. The synthetic job source needs no node and its job can never
//! turn into a block, so the Stratum test client mines real shares (SHA-256d at a low share
//! difficulty) that the pool checks, appends and counts like any other: everything these
//! methods show comes from the pool's own Stratum server, ledger and live projection.
//!
//! Covered: admin calls without the token or with a wrong one refused (-32001), malformed
//! params; a pause shown in `payout_state` and `pool_stats`, a `PaymentPrepared` refused while
//! paused, the pause across a restart, resume; worker and IP bans closing the live connection,
//! refusing the reconnect or authorize, listed, lifted; a connected miner in `pool_stats` and
//! `miner_workers` (connections, difficulty, shares, rejections); `ledger_verify` fresh, under
//! the rate limit, with the token, concurrent. One test runs the pool on the real regtest node
//! pair, so its shares are real blocks: `pool_stats`' block counts and last block.

mod common;

use common::nodes::{free_port, nodes};
use common::pool::{PoolOptions, PoolProcess};
use common::rpc::post;
use common::stratum_client::StratumClient;
use payout::api::operator::{ERR_BAD_REQUEST, ERR_INVALID_ADDRESS, ERR_UNKNOWN};
use payout::api::{ERR_REFUSED, ERR_UNAUTHORIZED};
use pool_core::event::{
    BlockFound, BlockMatured, NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme,
    ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Target};
use serde_json::{json, Value};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const BOB: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
const POOL: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
const INVALID_PARAMS: i64 = -32602;
/// The share difficulty (fixed: vardiff's bounds are this too): ~4,300 hashes a share.
const DIFFICULTY: f64 = 1e-6;

fn config(stratum: SocketAddr, rpc: SocketAddr) -> String {
    format!(
        r#"[chain]
preset = "bsv-regtest"
[node]
kind = "synthetic"
[stratum]
listen = "{stratum}"
[stratum.vardiff]
start_difficulty = {DIFFICULTY:e}
min_difficulty = {DIFFICULTY:e}
max_difficulty = {DIFFICULTY:e}
[pool]
payout_address = "{POOL}"
[payout]
scheme = "solo"
[ledger]
data_dir = "ledger"
[rpc]
listen = "{rpc}"
verify_min_interval_secs = 3600
"#
    )
}

struct Pool {
    process: PoolProcess,
    rpc: SocketAddr,
}

/// A pool whose ledger holds `events` before it starts.
fn pool_with(events: Vec<Event>) -> Pool {
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let process = PoolProcess::start_on_ledger(|stratum, _| config(stratum, rpc), events);
    Pool { process, rpc }
}

fn solo_rule() -> Event {
    Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Solo,
        fee_bps: 0,
        fee_address: PayoutAddress(POOL.into()),
        network_fee_payer: NetworkFeePayer::Pool,
    })
}

/// ALICE's share and her matured SOLO block: a payable balance of 50,000,000 sats.
fn alice_paid_ledger() -> Vec<Event> {
    let target = Target::from_compact(0x1d00ffff).unwrap();
    vec![
        solo_rule(),
        Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress(ALICE.into()),
            worker: WorkerName("rig".into()),
            share_target: target,
            weight: target.work(),
            job_id: 1,
            height: 101,
            network_target: Target::from_compact(0x207fffff).unwrap(),
            time_ms: 1_700_000_000_000,
        }),
        Event::BlockFound(BlockFound {
            height: 101,
            block_id: BlockId([1; 32]),
            reward: pool_core::Sats(50_000_000),
            network_target: Target::from_compact(0x207fffff).unwrap(),
            finder: PayoutAddress(ALICE.into()),
            worker: WorkerName("rig".into()),
            time_ms: 1_700_000_000_001,
        }),
        Event::BlockMatured(BlockMatured {
            block_id: BlockId([1; 32]),
            height: 101,
        }),
    ]
}

impl Pool {
    fn token(&self) -> String {
        std::fs::read_to_string(self.process.ledger_dir().join("rpc.token"))
            .expect("token file")
            .trim()
            .to_owned()
    }

    fn call_as(&self, token: Option<&str>, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        post(self.rpc, &body.to_string(), token)
    }

    /// With the token; the result (panics on an error).
    fn admin(&self, method: &str, params: Value) -> Value {
        result(&self.call_as(Some(&self.token()), method, params))
    }

    /// Without the token; the result.
    fn read(&self, method: &str, params: Value) -> Value {
        result(&self.call_as(None, method, params))
    }

    /// Polls `pool_stats` until `pred` holds (bounded).
    fn stats_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.read("pool_stats", json!([]));
            if pred(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what}: pool_stats {stats:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn result(reply: &Value) -> Value {
    assert!(reply["error"].is_null(), "an error reply: {reply}");
    reply["result"].clone()
}

/// The error code and message of a reply that must be an error.
fn error(reply: &Value) -> (i64, String) {
    assert!(reply["result"].is_null(), "not an error: {reply}");
    (
        reply["error"]["code"].as_i64().expect("error code"),
        reply["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

/// True once the pool has closed `client`'s connection (bounded: 10 s).
fn closed(client: &mut StratumClient) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if client
            .send_raw("{\"id\":99,\"method\":\"mining.extranonce.subscribe\",\"params\":[]}")
            .is_err()
        {
            return true;
        }
        if client.read_line().is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// True when a fresh connection to `addr` is closed by the pool at once.
fn refused_at_connect(addr: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn admin_calls_need_the_token_and_refuse_bad_arguments() {
    let pool = pool_with(vec![]);
    let calls = [
        ("payouts_pause", json!([{"reason": "x"}])),
        ("payouts_resume", json!([])),
        ("ban_add", json!([{"ip": "192.0.2.1", "secs": 60}])),
        ("ban_remove", json!([{"ip": "192.0.2.1"}])),
        ("bans_list", json!([])),
    ];
    for (method, params) in &calls {
        let (code, message) = error(&pool.call_as(None, method, params.clone()));
        assert_eq!(code, i64::from(ERR_UNAUTHORIZED), "{method}: {message}");
        assert!(message.contains("needs the RPC token"), "{message}");
        let (code, message) = error(&pool.call_as(Some("wrong"), method, params.clone()));
        assert_eq!(code, i64::from(ERR_UNAUTHORIZED), "{method}: {message}");
        assert!(message.contains("wrong RPC token"), "{message}");
    }
    // Nothing happened.
    assert!(pool.read("payout_state", json!([]))["paused"].is_null());
    assert_eq!(pool.admin("bans_list", json!([]))["bans"], json!([]));

    let token = pool.token();
    let bad = |method: &str, params: Value| error(&pool.call_as(Some(&token), method, params));
    for (params, says) in [
        (json!([{"ip": "192.0.2.1", "secs": 0}]), "secs 0"),
        (json!([{"ip": "192.0.2.1", "secs": 31_536_001}]), "one year"),
        (
            json!([{"ip": "999.1.1.1", "secs": 60}]),
            "not an IP address",
        ),
        (
            json!([{"ip": "192.0.2.1", "worker": ALICE, "secs": 60}]),
            "not both",
        ),
        (json!([{"secs": 60}]), "needs a target"),
        (
            json!([{"worker": "nonsense.rig", "secs": 60}]),
            "payout address",
        ),
        (
            json!([{"worker": ALICE, "from": "here", "secs": 60}]),
            "from \"here\"",
        ),
        (
            json!([{"ip": "192.0.2.1", "from": "192.0.2.2", "secs": 60}]),
            "worker only",
        ),
    ] {
        let (code, message) = bad("ban_add", params.clone());
        assert_eq!(code, i64::from(ERR_BAD_REQUEST), "{params}: {message}");
        assert!(message.contains(says), "{params}: {message}");
    }
    let (code, _) = bad("ban_add", json!([]));
    assert_eq!(code, INVALID_PARAMS);
    let (code, _) = bad("ban_add", json!([{"ip": "192.0.2.1", "secs": "long"}]));
    assert_eq!(code, INVALID_PARAMS);
    let (code, message) = bad("ban_remove", json!([{"ip": "nope"}]));
    assert_eq!(code, i64::from(ERR_BAD_REQUEST), "{message}");
    let (code, message) = bad("payouts_pause", json!([{"reason": "x".repeat(501)}]));
    assert_eq!(code, i64::from(ERR_BAD_REQUEST), "{message}");
    let (code, _) = bad("payouts_pause", json!([{"reason": 5}]));
    assert_eq!(code, INVALID_PARAMS);
    assert!(pool.read("payout_state", json!([]))["paused"].is_null());
    // Lifting a ban that does not exist says so.
    assert_eq!(
        pool.admin("ban_remove", json!([{"ip": "192.0.2.1"}]))["removed"],
        json!(false)
    );

    // miner_workers' address errors.
    let (code, message) = error(&pool.call_as(None, "miner_workers", json!(["nonsense"])));
    assert_eq!(code, i64::from(ERR_INVALID_ADDRESS), "{message}");
    assert!(message.contains("bsv-regtest"), "{message}");
    let (code, message) = error(&pool.call_as(None, "miner_workers", json!([BOB])));
    assert_eq!(code, i64::from(ERR_UNKNOWN), "{message}");
    let (code, _) = error(&pool.call_as(None, "miner_workers", json!([])));
    assert_eq!(code, INVALID_PARAMS);
}

#[test]
fn a_pause_refuses_new_payments_survives_a_restart_and_is_lifted() {
    let mut pool = pool_with(alice_paid_ledger());
    let state = pool.read("payout_state", json!([]));
    assert!(state["paused"].is_null());
    let next_id = state["next_payment_id"].clone();
    let prepared = json!({"PaymentPrepared": {"payment_id": next_id, "outputs": [
        {"address": ALICE, "amount": 50_000_000}
    ]}});

    let reply = pool.admin("payouts_pause", json!([{"reason": "wallet audit"}]));
    assert_eq!(reply["changed"], json!(true));
    assert_eq!(reply["paused"]["reason"], json!("wallet audit"));
    let since = reply["paused"]["since_ms"].clone();
    assert!(reply["ledger"]["seq"].is_u64(), "{reply}");
    // Again: nothing changes, the first pause stays.
    let again = pool.admin("payouts_pause", json!([{"reason": "other"}]));
    assert_eq!(again["changed"], json!(false));
    assert_eq!(again["paused"]["reason"], json!("wallet audit"));

    let state = pool.read("payout_state", json!([]));
    assert_eq!(state["paused"]["reason"], json!("wallet audit"));
    assert_eq!(state["paused"]["since_ms"], since);
    let stats = pool.read("pool_stats", json!([]));
    assert_eq!(stats["payout"]["paused"]["reason"], json!("wallet audit"));

    let (code, message) = error(&pool.call_as(
        Some(&pool.token()),
        "payment_append",
        json!([prepared.clone()]),
    ));
    assert_eq!(code, i64::from(ERR_REFUSED), "{message}");
    assert!(
        message.contains("paused by the operator") && message.contains("wallet audit"),
        "{message}"
    );

    // The payout process's reports: the last error is kept after a later success.
    let report = |state: &str, message: &str| {
        pool.admin(
            "payout_report",
            json!([{"state": state, "message": message, "time_ms": 1}]),
        )
    };
    report("error", "the wallet is locked");
    report("paused", "payouts paused by the operator: wallet audit");
    let payout = &pool.read("pool_stats", json!([]))["payout"];
    assert_eq!(payout["last_report"]["state"], json!("paused"));
    assert_eq!(
        payout["last_error"]["message"],
        json!("the wallet is locked")
    );
    assert_eq!(payout["open_payments"], json!(0));

    // Across a restart.
    assert!(pool.process.terminate().success());
    pool.process.spawn();
    let state = pool.read("payout_state", json!([]));
    assert_eq!(state["paused"]["reason"], json!("wallet audit"));
    assert_eq!(state["paused"]["since_ms"], since);
    let (code, _) = error(&pool.call_as(
        Some(&pool.token()),
        "payment_append",
        json!([prepared.clone()]),
    ));
    assert_eq!(code, i64::from(ERR_REFUSED));
    assert!(pool
        .process
        .log()
        .contains("payouts are paused by the operator"));

    let resumed = pool.admin("payouts_resume", json!([]));
    assert_eq!(resumed["changed"], json!(true));
    assert!(resumed["paused"].is_null());
    assert_eq!(
        pool.admin("payouts_resume", json!([]))["changed"],
        json!(false)
    );
    assert!(pool.read("payout_state", json!([]))["paused"].is_null());
    let appended = pool.admin("payment_append", json!([prepared.clone()]));
    assert_eq!(appended["repeated"], json!(false), "{appended}");
    let stats = pool.read("pool_stats", json!([]));
    assert!(stats["payout"]["paused"].is_null());
    assert_eq!(stats["payout"]["open_payments"], json!(1));

    // Paused again (the reason as a plain string): the exact repeat of a prepare made before
    // is still answered with its record, and appends nothing.
    let reply = pool.admin("payouts_pause", json!(["second look"]));
    assert_eq!(reply["paused"]["reason"], json!("second look"));
    let repeat = pool.admin("payment_append", json!([prepared]));
    assert_eq!(repeat["repeated"], json!(true), "{repeat}");
    assert_eq!(repeat["seq"], appended["seq"]);
}

/// Mines `n` shares on `client` as `username`, each acknowledged `true`.
fn mine(client: &mut StratumClient, username: &str, n: usize) {
    for _ in 0..n {
        let job = client.latest_job().expect("a job");
        let solution = client.grind(&job, None, None, 50_000_000);
        assert_eq!(client.submit(username, &solution), Ok(json!(true)));
    }
}

#[test]
fn a_connected_miner_shows_in_pool_stats_and_miner_workers() {
    let pool = pool_with(vec![solo_rule()]);
    let stats = pool.read("pool_stats", json!([]));
    assert_eq!(stats["connections"], json!(0));
    assert_eq!(stats["shares_total"], json!(0));
    assert_eq!(stats["blocks"]["found"], json!(0));
    assert!(stats["last_block"].is_null());

    let rig1 = format!("{ALICE}.rig1");
    let (mut client, _job) = StratumClient::authorized(pool.process.stratum, &rig1);
    assert_eq!(client.difficulty, DIFFICULTY);
    // A second connection, authorized as another worker of ALICE's and as ALICE bare.
    let rig2 = format!("{ALICE}.rig2");
    let (mut other, _) = StratumClient::authorized(pool.process.stratum, &rig2);
    other.authorize(ALICE).unwrap();
    let stats = pool.stats_until("two connections", |s| s["connections"] == json!(2));
    assert_eq!(stats["workers_connected"], json!(3));
    assert_eq!(stats["addresses_connected"], json!(1));

    mine(&mut client, &rig1, 3);
    mine(&mut other, &rig2, 1);
    // One rejected share: a duplicate.
    let job = client.latest_job().unwrap();
    let dup = client.grind(&job, None, None, 50_000_000);
    assert_eq!(client.submit(&rig1, &dup), Ok(json!(true)));
    assert!(client.submit(&rig1, &dup).is_err());

    let stats = pool.stats_until("the shares applied", |s| s["shares_total"] == json!(5));
    assert_eq!(stats["shares_accepted"], json!(5));
    assert_eq!(stats["shares_rejected"], json!(1));
    assert!(stats["hashrate"]["h1m"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(stats["hashrate"]["h24h"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(stats["shares_per_sec"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(stats["ledger"]["seq"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["uptime_secs"].is_u64());

    let reply = pool.read("miner_workers", json!([ALICE]));
    assert_eq!(reply["address"], json!(ALICE));
    let workers = reply["workers"].as_array().unwrap();
    let names: Vec<&str> = workers
        .iter()
        .map(|w| w["worker"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["", "rig1", "rig2"], "{reply:#}");
    let (bare, w1, w2) = (&workers[0], &workers[1], &workers[2]);
    assert_eq!(w1["shares"], json!(4));
    assert_eq!(w1["shares_1m"], json!(4));
    assert_eq!(w1["shares_24h"], json!(4));
    assert_eq!(w1["connections"], json!(1));
    assert_eq!(w1["difficulty"], json!(DIFFICULTY));
    assert!(w1["last_share_ms"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(w1["hashrate"]["h1m"].as_f64().unwrap() > 0.0);
    assert_eq!(w2["shares"], json!(1));
    assert_eq!(
        (&bare["shares"], &bare["connections"]),
        (&json!(0), &json!(1))
    );
    // The object form too.
    let again = pool.read("miner_workers", json!({"address": ALICE}));
    assert_eq!(again["workers"].as_array().unwrap().len(), 3);

    // ledger_verify while shares are appended.
    let verify = pool.read("ledger_verify", json!([]));
    assert_eq!(verify["verification"]["ok"], json!(true), "{verify}");
    mine(&mut client, &rig1, 1);

    // Disconnected: no connections, the shares stay.
    drop(client);
    drop(other);
    let stats = pool.stats_until("disconnected", |s| s["connections"] == json!(0));
    assert_eq!(stats["workers_connected"], json!(0));
    // The bare username mined nothing and is gone; rig1 and rig2 keep their shares.
    let reply = pool.read("miner_workers", json!([ALICE]));
    let workers = reply["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{reply:#}");
    let w1 = &workers[0];
    assert_eq!(w1["worker"], json!("rig1"));
    assert_eq!((&w1["shares"], &w1["connections"]), (&json!(5), &json!(0)));
    assert!(w1["difficulty"].is_null());
}

#[test]
fn bans_close_live_connections_refuse_them_and_are_lifted() {
    let pool = pool_with(vec![solo_rule()]);
    let stratum = pool.process.stratum;
    let rig = format!("{ALICE}.rig");
    let (mut banned, _) = StratumClient::authorized(stratum, &rig);
    let (mut bystander, _) = StratumClient::authorized(stratum, &format!("{ALICE}.other"));
    pool.stats_until("connected", |s| s["connections"] == json!(2));

    // A worker, everywhere.
    let ban = pool.admin("ban_add", json!([{"worker": rig, "secs": 600}]));
    assert_eq!(ban["closed_connections"], json!(1), "{ban}");
    assert_eq!(ban["cause"], json!("operator"));
    assert_eq!(ban["target"]["worker"], json!(rig));
    let until = ban["until_ms"].as_u64().unwrap();
    let since = ban["since_ms"].as_u64().unwrap();
    assert_eq!(until - since, 600_000);
    assert!(
        closed(&mut banned),
        "the banned worker's connection stays open"
    );
    let stats = pool.stats_until("one left", |s| s["connections"] == json!(1));
    assert_eq!(stats["workers_connected"], json!(1));
    mine(&mut bystander, &format!("{ALICE}.other"), 1);
    let mut again = StratumClient::connect(stratum);
    again.subscribe();
    let refusal = again.authorize(&rig).unwrap_err();
    assert!(
        refusal.message.contains("worker banned until"),
        "{refusal:?}"
    );
    let list = pool.admin("bans_list", json!([]));
    assert_eq!(list["bans"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["bans"][0]["target"]["worker"], json!(rig));
    assert!(pool.process.log().contains("banned by the operator until"));
    let lifted = pool.admin("ban_remove", json!([{"worker": rig}]));
    assert_eq!(lifted["removed"], json!(true));
    assert_eq!(again.authorize(&rig), Ok(json!(true)));
    drop(again);
    pool.stats_until("the reconnect gone", |s| s["connections"] == json!(1));

    // An IP (the test's own): every connection from it closed, new ones refused.
    let ban = pool.admin("ban_add", json!({"ip": "127.0.0.1", "secs": 60}));
    assert_eq!(ban["closed_connections"], json!(1), "{ban}");
    assert!(closed(&mut bystander));
    assert!(
        refused_at_connect(stratum),
        "a banned IP's connection was served"
    );
    let list = pool.admin("bans_list", json!([]));
    assert_eq!(
        list["bans"][0]["target"]["ip"],
        json!("127.0.0.1"),
        "{list}"
    );
    pool.stats_until("none left", |s| s["connections"] == json!(0));
    let lifted = pool.admin("ban_remove", json!({"ip": "127.0.0.1"}));
    assert_eq!(lifted["removed"], json!(true));
    assert_eq!(pool.admin("bans_list", json!([]))["bans"], json!([]));
    let (mut back, _) = StratumClient::authorized(stratum, &rig);
    mine(&mut back, &rig, 1);
}

#[test]
fn ledger_verify_is_shared_rate_limited_and_fresh_with_the_token() {
    // A ledger of some size, so a verification takes a moment.
    let target = Target::from_compact(0x1d00ffff).unwrap();
    let mut events = vec![solo_rule()];
    events.extend((0..20_000u64).map(|n| {
        Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress(if n % 2 == 0 { ALICE } else { BOB }.into()),
            worker: WorkerName("rig".into()),
            share_target: target,
            weight: target.work(),
            job_id: n,
            height: 101,
            network_target: Target::from_compact(0x207fffff).unwrap(),
            time_ms: 1_700_000_000_000 + n,
        })
    }));
    let pool = pool_with(events);

    let first = pool.read("ledger_verify", json!([]));
    assert_eq!(first["fresh"], json!(true), "{first}");
    let v = &first["verification"];
    assert_eq!(v["ok"], json!(true), "{first}");
    assert_eq!(v["first"], json!(0));
    assert!(v["records"].as_u64().unwrap() >= 20_001, "{first}");
    assert!(v["head"]["seq"].as_u64().unwrap() >= 20_000, "{first}");
    assert!(v["problem"].is_null());
    assert!(first["ledger"]["hash"].is_string());

    // Without the token within the interval: the last result.
    let second = pool.read("ledger_verify", json!([]));
    assert_eq!(second["fresh"], json!(false), "{second}");
    assert_eq!(second["verification"], first["verification"]);

    // With the token: a new one.
    let fresh = pool.admin("ledger_verify", json!([]));
    assert_eq!(fresh["fresh"], json!(true), "{fresh}");
    assert_eq!(fresh["verification"]["ok"], json!(true));
    assert!(
        fresh["verification"]["started_ms"].as_u64() >= v["started_ms"].as_u64(),
        "{fresh}"
    );

    // Concurrent callers, with and without the token: every one gets a good verification,
    // the ones without the token after the interval only the last (or a running) one.
    let token = pool.token();
    let rpc = pool.rpc;
    let callers: Vec<_> = (0..6)
        .map(|i| {
            let token = token.clone();
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "ledger_verify"});
                let auth = (i % 2 == 0).then_some(token.as_str());
                post(rpc, &body.to_string(), auth)
            })
        })
        .collect();
    let started: std::collections::BTreeSet<u64> = callers
        .into_iter()
        .map(|c| {
            let reply = c.join().unwrap();
            let r = result(&reply);
            assert_eq!(r["verification"]["ok"], json!(true), "{reply}");
            r["verification"]["started_ms"].as_u64().unwrap()
        })
        .collect();
    assert!(
        started.len() <= 4,
        "at most one per token caller and the last: {started:?}"
    );
    assert!(pool
        .process
        .log()
        .contains("ledger verified (ledger_verify)"));
}

#[test]
fn on_the_regtest_nodes_found_blocks_show_in_pool_stats() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let payout = node.new_address();
    let miner = node.new_address();
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut options = PoolOptions::new(&payout);
    options.extra = format!("[rpc]\nlisten = \"{rpc}\"\n");
    let pool = Pool {
        process: PoolProcess::start(&options),
        rpc,
    };
    let start_height = node.block_count();
    let rig = format!("{miner}.rig1");
    let (mut client, mut job) = StratumClient::authorized(pool.process.stratum, &rig);
    // On regtest every share at the test difficulty meets the network target: each is a block.
    const BLOCKS: u64 = 2;
    for _ in 0..BLOCKS {
        let solution = client.grind(&job, None, None, 50_000_000);
        assert_eq!(client.submit(&rig, &solution), Ok(json!(true)));
        job = client
            .wait_for_new_block(&job.prev_hash, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no new job after a block:\n{}", pool.process.log()));
    }
    let stats = pool.stats_until("the blocks found", |s| {
        s["blocks"]["found"] == json!(BLOCKS) && s["blocks"]["pending"] == json!(0)
    });
    assert_eq!(stats["blocks"]["immature"], json!(BLOCKS), "{stats:#}");
    assert_eq!(stats["blocks"]["rejected"], json!(0));
    let last = &stats["last_block"];
    assert_eq!(last["height"], json!(start_height + BLOCKS), "{stats:#}");
    assert_eq!(last["finder"], json!(miner));
    assert_eq!(last["worker"], json!("rig1"));
    assert_eq!(last["status"], json!("immature"));
    assert!(last["reward"].as_u64().unwrap() > 0);
    assert_eq!(
        node.cli(&["getblockhash", &(start_height + BLOCKS).to_string()]),
        last["block_id"]
    );
    assert_eq!(stats["shares_accepted"], json!(BLOCKS));
    assert_eq!(stats["connections"], json!(1));
    let workers = pool.read("miner_workers", json!([miner]));
    let w = &workers["workers"][0];
    assert_eq!(w["worker"], json!("rig1"), "{workers:#}");
    assert_eq!(w["shares"], json!(BLOCKS));
    assert_eq!(w["connections"], json!(1));
    assert_eq!(w["difficulty"], json!(client.difficulty));
    let verify = pool.read("ledger_verify", json!([]));
    assert_eq!(verify["verification"]["ok"], json!(true), "{verify}");
}

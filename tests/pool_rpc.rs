//! The pool's JSON-RPC server, against the real `obtc-pool run` binary (synthetic job source: no
//! node needed) on a ledger prepared with two matured SOLO blocks, so ALICE and BOB have
//! payable balances: the bearer token (HTTP and WebSocket), JSON-RPC errors for malformed
//! requests, every refusal of the payment lane and its state table, idempotent repeats, two
//! concurrent prepares for one balance, and a restart from the projection snapshot.

mod common;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use common::nodes::free_port;
use common::pool::PoolProcess;
use common::rpc::post;
use payout::api::{ERR_REFUSED, ERR_UNAUTHORIZED};
use pool_core::chain::Chain;
use pool_core::event::{
    BlockFound, BlockMatured, NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme,
    ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Target};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const BOB: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
/// The pool's own address (coinbase and pool fee).
const POOL: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
const ALICE_REWARD: u64 = 50_000_000;
const BOB_REWARD: u64 = 30_000_000;

const PARSE_ERROR: i64 = -32700;
const INVALID_PARAMS: i64 = -32602;
const METHOD_NOT_FOUND: i64 = -32601;

// ---- the pool ----

/// The rule the config below names (so the pool records nothing at start).
fn solo_rule() -> PayoutRule {
    PayoutRule {
        scheme: PayoutScheme::Solo,
        fee_bps: 0,
        fee_address: PayoutAddress(POOL.into()),
        network_fee_payer: NetworkFeePayer::Pool,
    }
}

fn config(stratum: SocketAddr, rpc_listen: &str) -> String {
    format!(
        r#"[chain]
preset = "bsv-regtest"
[node]
kind = "synthetic"
[stratum]
listen = "{stratum}"
[pool]
payout_address = "{POOL}"
[payout]
scheme = "solo"
[ledger]
data_dir = "ledger"
[rpc]
listen = "{rpc_listen}"
"#
    )
}

fn block_found(id: u8, finder: &str, reward: u64) -> Event {
    Event::BlockFound(BlockFound {
        height: 100 + u64::from(id),
        block_id: BlockId([id; 32]),
        reward: pool_core::Sats(reward),
        network_target: Target::from_compact(0x207fffff).unwrap(),
        finder: PayoutAddress(finder.into()),
        worker: WorkerName("rig".into()),
        time_ms: 1_700_000_000_000 + u64::from(id),
    })
}

fn share(address: &str, n: u64) -> Event {
    let target = Target::from_compact(0x1d00ffff).unwrap();
    Event::ShareAccepted(ShareAccepted {
        address: PayoutAddress(address.into()),
        worker: WorkerName("rig".into()),
        share_target: target,
        weight: target.work(),
        job_id: n,
        height: 101,
        network_target: Target::from_compact(0x207fffff).unwrap(),
        time_ms: 1_700_000_000_000 + n,
    })
}

struct Pool {
    process: PoolProcess,
    rpc: SocketAddr,
}

/// A pool whose ledger holds a matured SOLO block of ALICE's and one of BOB's.
fn pool() -> Pool {
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let matured = |id: u8| {
        Event::BlockMatured(BlockMatured {
            block_id: BlockId([id; 32]),
            height: 100 + u64::from(id),
        })
    };
    let events = vec![
        Event::PayoutRuleSet(solo_rule()),
        share(ALICE, 0),
        block_found(1, ALICE, ALICE_REWARD),
        share(BOB, 1),
        block_found(2, BOB, BOB_REWARD),
        matured(1),
        matured(2),
    ];
    let process =
        PoolProcess::start_on_ledger(|stratum, _| config(stratum, &rpc.to_string()), events);
    let pool = Pool { process, rpc };
    // The synthetic job source records its job (JobCreated, seq 7) after the seven seeded
    // records: wait for it, so every seq below is fixed.
    pool.wait_head(HEAD);
    pool
}

/// The ledger head once the pool runs: seven seeded records, then the job's JobCreated.
const HEAD: u64 = 7;

impl Pool {
    /// Waits (30 s at most) until the ledger head is `seq`: each start records its job.
    fn wait_head(&self, seq: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while result(&self.call_as(None, "pool_status", json!([])))["ledger"]["seq"] != seq {
            assert!(
                std::time::Instant::now() < deadline,
                "the ledger head did not reach {seq} (JobCreated) within 30 s:\n{}",
                self.process.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.process.ledger_dir().join("rpc.token"))
            .expect("token file")
            .trim()
            .to_owned()
    }

    /// A call with the pool's token; the whole JSON-RPC response.
    fn call(&self, method: &str, params: Value) -> Value {
        self.call_as(Some(&self.token()), method, params)
    }

    fn call_as(&self, token: Option<&str>, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        post(self.rpc, &body.to_string(), token)
    }

    fn append(&self, event: Value) -> Value {
        self.call("payment_append", json!([event]))
    }

    fn payout_state(&self) -> Value {
        result(&self.call("payout_state", json!([])))
    }
}

// ---- a small JSON-RPC client: HTTP/1.1 and WebSocket over std ----

/// A WebSocket connection (client frames masked, as RFC 6455 requires).
struct Ws(TcpStream);

impl Ws {
    fn connect(addr: SocketAddr, token: Option<&str>) -> Ws {
        let mut stream = TcpStream::connect(addr).expect("connect to the RPC");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("upgrade reply");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
        Ws(stream)
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let text = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let payload = text.to_string().into_bytes();
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
        let mut head = [0u8; 2];
        self.0.read_exact(&mut head).expect("frame header");
        assert_eq!(head[0], 0x81, "a text frame");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.0.read_exact(&mut b).unwrap();
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.0.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut body = vec![0u8; len as usize];
        self.0.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).expect("a JSON frame")
    }
}

fn result(reply: &Value) -> Value {
    match reply.get("result") {
        Some(r) => r.clone(),
        None => panic!("expected a result, got {reply}"),
    }
}

/// The error's code and message.
fn error(reply: &Value) -> (i64, String) {
    let e = reply
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {reply}"));
    (
        e["code"].as_i64().expect("error code"),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn refused(reply: &Value, says: &str) {
    let (code, message) = error(reply);
    assert_eq!(code, i64::from(ERR_REFUSED), "{reply}");
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

// ---- events as the payout process sends them (serde's JSON form) ----

fn prepared(id: u64, outputs: &[(&str, u64)]) -> Value {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|(a, v)| json!({"address": a, "amount": v}))
        .collect();
    json!({"PaymentPrepared": {"payment_id": id, "outputs": outputs}})
}

/// A transaction paying `outputs` (the address's script), from a made-up input.
fn transaction(outputs: &[(&str, u64)]) -> Transaction {
    let chain = Chain::BsvRegtest.params();
    Transaction {
        version: Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: bitcoin::Txid::from_byte_array([9; 32]),
                vout: 0,
            },
            script_sig: ScriptBuf::from_bytes(vec![0x51]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: outputs
            .iter()
            .map(|(a, v)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: ScriptBuf::from_bytes(
                    pool_core::address::parse_payout_address(a, chain)
                        .unwrap()
                        .script_pubkey,
                ),
            })
            .collect(),
    }
}

fn txid_hex(tx: &Transaction) -> String {
    // Display order, as BlockId's JSON form.
    tx.compute_txid().to_string()
}

fn signed(id: u64, tx: &Transaction, txid: &str, fee: u64) -> Value {
    json!({"PaymentSigned": {
        "payment_id": id,
        "txid": txid,
        "raw_tx": hex::encode(bitcoin::consensus::serialize(tx)),
        "network_fee": fee,
    }})
}

fn payable(state: &Value, address: &str) -> Option<u64> {
    state["payable"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == address)
        .map(|p| p["payable"].as_u64().unwrap())
}

// ---- the tests ----

#[test]
fn appends_need_the_token_over_http_and_websocket_and_the_token_file_is_private() {
    let pool = pool();
    let path = pool.process.ledger_dir().join("rpc.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {:o}", mode & 0o777);
    let token = pool.token();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");

    // Reads need no token.
    let status = result(&pool.call_as(None, "pool_status", json!([])));
    assert_eq!(status["ledger"]["seq"], HEAD);
    let state = result(&pool.call_as(None, "payout_state", json!(null)));
    assert_eq!(payable(&state, ALICE), Some(ALICE_REWARD));
    assert_eq!(payable(&state, BOB), Some(BOB_REWARD));

    let event = prepared(0, &[(ALICE, 1_000)]);
    // The same token with its last digit changed (one that differs from it: a random token may
    // end in `0`).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..63]);
    for (who, reply) in [
        (
            "no token",
            pool.call_as(None, "payment_append", json!([event])),
        ),
        (
            "wrong token",
            pool.call_as(Some(&wrong), "payment_append", json!([event])),
        ),
        (
            "a longer token",
            pool.call_as(Some(&format!("{token}0")), "payment_append", json!([event])),
        ),
    ] {
        let (code, _) = error(&reply);
        assert_eq!(code, i64::from(ERR_UNAUTHORIZED), "{who}: {reply}");
    }
    let report = json!({"state": "running", "message": "paid 0", "time_ms": 1});
    let (code, _) = error(&pool.call_as(None, "payout_report", json!([report])));
    assert_eq!(code, i64::from(ERR_UNAUTHORIZED));
    // Nothing reached the ledger.
    let after = pool.payout_state();
    assert_eq!(after, state);
    assert_eq!(
        result(&pool.call("pool_status", json!([])))["payout"],
        Value::Null
    );

    // The token on the WebSocket upgrade authorizes the connection's calls; none does not.
    let mut anonymous = Ws::connect(pool.rpc, None);
    assert_eq!(
        result(&anonymous.call("pool_status", json!([])))["ledger"]["seq"],
        HEAD
    );
    let (code, _) = error(&anonymous.call("payment_append", json!([event])));
    assert_eq!(code, i64::from(ERR_UNAUTHORIZED));
    let mut wrong_ws = Ws::connect(pool.rpc, Some(&wrong));
    let (code, _) = error(&wrong_ws.call("payment_append", json!([event])));
    assert_eq!(code, i64::from(ERR_UNAUTHORIZED));
    let mut authorized = Ws::connect(pool.rpc, Some(&token));
    let appended = result(&authorized.call("payment_append", json!([event])));
    assert_eq!(appended["seq"], HEAD + 1);
    assert_eq!(appended["repeated"], false);
    assert_eq!(
        result(&authorized.call("payout_report", json!([report]))),
        true
    );

    // And with the token over HTTP.
    let status = result(&pool.call("pool_status", json!([])));
    assert_eq!(status["payout"], report);
    assert_eq!(status["ledger"]["seq"], HEAD + 1);
    assert_eq!(status["ledger"]["hash"], appended["hash"]);
}

#[test]
fn malformed_requests_get_json_rpc_errors() {
    let pool = pool();
    let token = pool.token();
    let raw = |body: &str| post(pool.rpc, body, Some(&token));
    assert_eq!(
        error(&raw("{\"jsonrpc\": \"2.0\", \"id\": 1, \"meth")).0,
        PARSE_ERROR
    );
    assert_eq!(error(&raw("not json at all")).0, PARSE_ERROR);
    let unknown = pool.call("pool_balances", json!([]));
    assert_eq!(error(&unknown).0, METHOD_NOT_FOUND);
    for params in [
        json!(["x"]),
        json!([{"PaymentPrepared": {"payment_id": "zero", "outputs": []}}]),
        json!([{"PaymentPrepared": {"payment_id": 0, "outputs": [{"address": ALICE, "amount": -5}]}}]),
        json!([{"NoSuchEvent": {}}]),
        json!([]),
        json!(null),
    ] {
        let reply = pool.call("payment_append", params.clone());
        assert_eq!(error(&reply).0, INVALID_PARAMS, "params {params}: {reply}");
    }
    let reply = pool.call("payout_report", json!([{"state": "sleeping"}]));
    assert_eq!(error(&reply).0, INVALID_PARAMS, "{reply}");
    // A well-formed event that is no payment event is the lane's refusal.
    let matured =
        json!({"BlockMatured": {"block_id": BlockId([1; 32]).to_string(), "height": 101}});
    refused(&pool.append(matured), "payment event");
    // The pool still answers, and nothing was appended.
    assert_eq!(pool.payout_state()["ledger"]["seq"], HEAD);
}

#[test]
fn the_lane_refuses_what_breaks_the_state_table_and_answers_repeats_with_the_record() {
    let pool = pool();
    refused(
        &pool.append(prepared(0, &[(ALICE, ALICE_REWARD + 1)])),
        "payable balance",
    );
    let tx = transaction(&[(ALICE, 20_000_000), (POOL, 5_000)]);
    let txid = txid_hex(&tx);
    refused(
        &pool.append(json!({"PaymentSent": {"payment_id": 0, "txid": txid, "network_fee": 500}})),
        "never prepared",
    );

    let first = result(&pool.append(prepared(0, &[(ALICE, 20_000_000)])));
    assert_eq!(first["repeated"], false);
    let repeat = result(&pool.append(prepared(0, &[(ALICE, 20_000_000)])));
    assert_eq!(repeat["repeated"], true);
    assert_eq!(
        (&repeat["seq"], &repeat["hash"]),
        (&first["seq"], &first["hash"])
    );

    refused(&pool.append(prepared(0, &[(BOB, 1_000)])), "already used");
    refused(&pool.append(prepared(1, &[(ALICE, 1_000)])), "already pays");
    refused(
        &pool.append(json!({"PaymentSent": {"payment_id": 0, "txid": txid, "network_fee": 500}})),
        "only a signed payment is sent",
    );
    refused(
        &pool.append(json!({"PaymentConfirmed": {"payment_id": 0, "txid": txid, "height": 300}})),
        "only a sent payment is confirmed",
    );

    // The signed transaction must be the one named and pay what the payment owes.
    let short = transaction(&[(ALICE, 19_999_999), (POOL, 5_001)]);
    refused(
        &pool.append(signed(0, &short, &txid_hex(&short), 500)),
        "the payment owes it 20000000",
    );
    let other = transaction(&[(ALICE, 20_000_000), (POOL, 4_000)]);
    refused(&pool.append(signed(0, &tx, &txid_hex(&other), 500)), "txid");
    let sign = signed(0, &tx, &txid, 500);
    let signed_at = result(&pool.append(sign.clone()));
    assert_eq!(signed_at["repeated"], false);
    let again = result(&pool.append(sign));
    assert_eq!(
        (again["repeated"].clone(), &again["seq"]),
        (json!(true), &signed_at["seq"])
    );
    let state = pool.payout_state();
    let open = &state["open_payments"][0];
    assert_eq!(open["status"], "Signed");
    assert_eq!(open["txid"], txid);
    assert_eq!(
        open["raw_tx"],
        hex::encode(bitcoin::consensus::serialize(&tx))
    );

    refused(
        &pool.append(json!({"PaymentFailed": {"payment_id": 0, "reason": "broadcast refused"}})),
        "conflicting spend",
    );
    refused(
        &pool.append(json!({"PaymentSent": {"payment_id": 0, "txid": txid, "network_fee": 501}})),
        "network fee",
    );
    let sent = json!({"PaymentSent": {"payment_id": 0, "txid": txid, "network_fee": 500}});
    assert_eq!(result(&pool.append(sent))["repeated"], false);
    let confirmed = json!({"PaymentConfirmed": {"payment_id": 0, "txid": txid, "height": 300}});
    let last = result(&pool.append(confirmed.clone()));
    assert_eq!(result(&pool.append(confirmed))["seq"], last["seq"]);

    let state = pool.payout_state();
    assert_eq!(state["open_payments"], json!([]));
    assert_eq!(state["next_payment_id"], 1);
    assert_eq!(payable(&state, ALICE), Some(ALICE_REWARD - 20_000_000));
    assert_eq!(payable(&state, BOB), Some(BOB_REWARD));
    assert_eq!(state["prepared_last_24h"], 20_000_000);
    assert_eq!(state["ledger"]["seq"], last["seq"]);
    assert_eq!(state["ledger"]["hash"], last["hash"]);
}

#[test]
fn of_two_concurrent_prepares_for_one_balance_exactly_one_is_accepted() {
    let pool = pool();
    let token = pool.token();
    let barrier = std::sync::Barrier::new(2);
    let replies: Vec<Value> = std::thread::scope(|s| {
        let calls: Vec<_> = [0u64, 1]
            .into_iter()
            .map(|id| {
                let (barrier, token, rpc) = (&barrier, &token, pool.rpc);
                s.spawn(move || {
                    let body = json!({"jsonrpc": "2.0", "id": id, "method": "payment_append",
                        "params": [prepared(id, &[(BOB, BOB_REWARD)])]});
                    barrier.wait();
                    post(rpc, &body.to_string(), Some(token))
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let accepted: Vec<&Value> = replies
        .iter()
        .filter(|r| r.get("result").is_some())
        .collect();
    assert_eq!(accepted.len(), 1, "{replies:?}");
    let loser = replies.iter().find(|r| r.get("error").is_some()).unwrap();
    assert_eq!(error(loser).0, i64::from(ERR_REFUSED), "{loser}");
    let state = pool.payout_state();
    assert_eq!(state["open_payments"].as_array().unwrap().len(), 1);
    assert_eq!(payable(&state, BOB), None);
}

#[test]
fn a_restart_starts_from_the_snapshot_with_the_same_state() {
    let mut pool = pool();
    result(&pool.append(prepared(0, &[(ALICE, 1_234)])));
    let before = pool.payout_state();
    let status = result(&pool.call("pool_status", json!([])));
    assert!(pool.process.terminate().success());
    let log = pool.process.log();
    assert!(
        log.contains("live projection ready by a full replay"),
        "{log}"
    );
    assert!(log.contains("live projection snapshot written"), "{log}");
    let snapshot = pool.process.ledger_dir().join("live-projection.bin");
    assert!(snapshot.is_file());

    pool.process.spawn();
    let log = pool.process.log();
    assert!(
        log.contains("live projection ready from the snapshot"),
        "{log}"
    );
    // Each start records its job: the head is one past the last one, the state the same.
    let seq = status["ledger"]["seq"].as_u64().unwrap();
    pool.wait_head(seq + 1);
    assert_eq!(without_head(pool.payout_state()), without_head(before));
    let again = result(&pool.call("pool_status", json!([])));
    assert_eq!(without_head(again), without_head(status));

    // Killed (no snapshot at the stop): the next start takes the older snapshot and the tail.
    result(&pool.append(prepared(1, &[(BOB, 4_321)])));
    let before = pool.payout_state();
    assert_eq!(before["open_payments"].as_array().unwrap().len(), 2);
    pool.process.kill();
    pool.process.spawn();
    let log = pool.process.log();
    assert_eq!(
        log.matches("live projection ready from the snapshot")
            .count(),
        2
    );
    // The tail: the second start's JobCreated and the payment.
    assert!(log.contains("tail=2 "), "{log}");
    let seq = before["ledger"]["seq"].as_u64().unwrap();
    pool.wait_head(seq + 1);
    assert_eq!(
        without_head(pool.payout_state()),
        without_head(before.clone())
    );

    // A damaged snapshot is refused (and said so), the ledger replayed, the state the same.
    assert!(pool.process.terminate().success());
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&snapshot, bytes).unwrap();
    pool.process.spawn();
    let log = pool.process.log();
    assert!(
        log.contains("damaged snapshot file: checksum mismatch"),
        "{log}"
    );
    assert_eq!(
        log.matches("live projection ready by a full replay")
            .count(),
        2
    );
    pool.wait_head(seq + 2);
    assert_eq!(without_head(pool.payout_state()), without_head(before));
}

/// A reply without its `ledger` head (which each start's JobCreated moves).
fn without_head(mut reply: Value) -> Value {
    if let Some(o) = reply.as_object_mut() {
        o.remove("ledger");
    }
    reply
}

#[test]
fn a_non_loopback_rpc_listen_is_refused_at_config_load() {
    let dir = tempfile::tempdir().unwrap();
    let stratum: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = dir.path().join("pool.toml");
    std::fs::write(&path, config(stratum, "0.0.0.0:8339")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rpc.listen") && stderr.contains("not a loopback address"),
        "{stderr}"
    );
    assert!(!dir.path().join("ledger").exists(), "nothing was started");
}

//! The shared Stratum vectors (blocks real regtest nodes accepted): the job builder reproduces
//! every notify field and the whole coinbase from the template, the share checker rebuilds the
//! header, proof-of-work hash and block id from the notify and submit params, and the session
//! turns the submit into a block candidate. Chains: oBTC (HeavyHash), BSV (SHA-256d) and Litecoin
//! (scrypt proof of work, SHA-256d block ids).

use bitcoin::hashes::Hash;
use pool_core::chain::{Chain, ChainParams};
use pool_core::merkle::witness_commitment_script;
use pool_core::pow::{MatrixCache, PowHasher};
use pool_core::share::{check_share, rolled_version, ShareInput};
use pool_core::Target;
use serde_json::{json, Value};
use std::sync::Arc;
use stratum::job::{BlockTemplate, Job, JobBook, JobConfig};
use stratum::session::{Session, SessionConfig, SessionOutput};

fn vectors() -> Vec<Value> {
    let all: Value = serde_json::from_str(include_str!("../testdata/stratum.json")).unwrap();
    let v: Vec<Value> = all["vectors"].as_array().unwrap().clone();
    assert_eq!(
        v.len(),
        6,
        "four oBTC vectors, one BSV vector and one Litecoin vector"
    );
    v
}

fn chain_of(v: &Value) -> &'static ChainParams {
    match v["pow"].as_str().unwrap() {
        "heavyhash" => Chain::ObtcRegtest.params(),
        "sha256d" => Chain::BsvRegtest.params(),
        "scrypt" => Chain::LitecoinRegtest.params(),
        other => panic!("unexpected pow {other}"),
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} missing"))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn display_to_internal(s: &str) -> [u8; 32] {
    let mut b: [u8; 32] = unhex(s).try_into().unwrap();
    b.reverse();
    b
}

/// The parts of the vector's coinbase a pool config holds: height, tag, payout script.
struct CoinbaseParts {
    height: u64,
    tag: Vec<u8>,
    payout_script: Vec<u8>,
}

fn coinbase_parts(v: &Value) -> CoinbaseParts {
    let cb = unhex(s(v, "coinbase_nonwitness_hex"));
    // version 4 | input count 1 | outpoint 36 | scriptSig length at 41.
    let script_len = cb[41] as usize;
    let script = &cb[42..42 + script_len];
    let push = script[0] as usize;
    let mut h = [0u8; 8];
    h[..push].copy_from_slice(&script[1..1 + push]);
    let height = u64::from_le_bytes(h);
    // The vectors declare the last 8 bytes of the scriptSig the extranonces.
    let tag = script[1 + push..script_len - 8].to_vec();
    // sequence 4 | output count 1 | value 8 | script length | script.
    let out = 42 + script_len + 4 + 1;
    let len = cb[out + 8] as usize;
    let payout_script = cb[out + 9..out + 9 + len].to_vec();
    CoinbaseParts {
        height,
        tag,
        payout_script,
    }
}

fn template_json(v: &Value, height: u64) -> Value {
    let txids = v["template_txids"].as_array().unwrap();
    let wtxids = v["template_wtxids"].as_array().unwrap();
    let txs: Vec<Value> = txids
        .iter()
        .zip(wtxids)
        .map(|(t, w)| json!({ "data": "", "txid": t, "hash": w, "fee": 1 }))
        .collect();
    let mut t = json!({
        "version": v["template_version"],
        "previousblockhash": v["template_previousblockhash"],
        "transactions": txs,
        "coinbasevalue": v["template_coinbasevalue"],
        "bits": v["template_bits"],
        "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
        "curtime": v["template_curtime"],
        "mintime": v["template_curtime"].as_u64().unwrap() - 600,
        "height": height,
        "longpollid": "x",
        "capabilities": ["proposal"],
        "rules": ["csv", "!segwit", "taproot"],
        "coinbaseaux": {},
        "sigoplimit": 80000,
    });
    if !v["template_default_witness_commitment"].is_null() {
        t["default_witness_commitment"] = v["template_default_witness_commitment"].clone();
    }
    t
}

fn job_config(v: &Value) -> JobConfig {
    let parts = coinbase_parts(v);
    JobConfig::new(chain_of(v), &parts.tag, parts.payout_script)
}

fn build_job(v: &Value) -> Job {
    let parts = coinbase_parts(v);
    let template = BlockTemplate::from_value(template_json(v, parts.height)).unwrap();
    Job::build(
        &template,
        &job_config(v),
        1,
        true,
        None,
        &MatrixCache::new(2),
    )
    .unwrap()
}

#[test]
fn job_builder_reproduces_notify_fields_and_coinbase() {
    for v in vectors() {
        let name = s(&v, "name");
        let job = build_job(&v);
        let n = &v["notify_params"];
        assert_eq!(job.notify.prev_hash, n[1], "{name}: prevhash");
        assert_eq!(job.notify.coinb1, n[2], "{name}: coinb1");
        assert_eq!(job.notify.coinb2, n[3], "{name}: coinb2");
        let branch: Vec<String> = n[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(job.notify.merkle_branch, branch, "{name}: branch");
        assert_eq!(job.notify.version, n[5], "{name}: version");
        assert_eq!(job.notify.nbits, n[6], "{name}: nbits");
        assert_eq!(job.notify.ntime, n[7], "{name}: ntime");
        assert!(job.notify.clean_jobs);
        assert_eq!(job.segwit, v["segwit_block"] == true, "{name}");
        assert_eq!(
            job.pool_reward.0,
            v["template_coinbasevalue"].as_u64().unwrap()
        );
        // The notify line carries the same fields, in order.
        let line: Value = serde_json::from_str(job.notify_line()).unwrap();
        assert_eq!(line["method"], "mining.notify");
        assert_eq!(
            line["params"].as_array().unwrap()[1..8],
            n.as_array().unwrap()[1..8],
            "{name}"
        );
    }
}

#[test]
fn witness_commitment_recomputed_from_wtxids() {
    for v in vectors() {
        let Some(expected) = v["template_default_witness_commitment"].as_str() else {
            continue;
        };
        let wtxids: Vec<[u8; 32]> = v["template_wtxids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| display_to_internal(w.as_str().unwrap()))
            .collect();
        assert_eq!(
            hex::encode(witness_commitment_script(&wtxids)),
            expected,
            "{}",
            s(&v, "name")
        );
    }
}

/// Undoes Stratum's prevhash word swap.
fn header_prev_hash(notify_prev: &str) -> [u8; 32] {
    let b = unhex(notify_prev);
    let mut out = [0u8; 32];
    for (i, w) in b.chunks_exact(4).enumerate() {
        for j in 0..4 {
            out[i * 4 + j] = w[3 - j];
        }
    }
    out
}

fn be_u32(s: &Value) -> u32 {
    u32::from_str_radix(s.as_str().unwrap(), 16).unwrap()
}

#[test]
fn share_checker_rebuilds_header_pow_and_block_id() {
    let cache = MatrixCache::new(4);
    for v in vectors() {
        let name = s(&v, "name");
        let chain = chain_of(&v);
        let n = &v["notify_params"];
        let sp = &v["submit_params"];
        let prev = header_prev_hash(n[1].as_str().unwrap());
        let branch: Vec<[u8; 32]> = n[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| unhex(h.as_str().unwrap()).try_into().unwrap())
            .collect();
        let mut version = be_u32(&n[5]);
        if let Some(bits) = sp.get(5) {
            let mask = u32::from_str_radix(s(&v["version_rolling"], "mask"), 16).unwrap();
            version = rolled_version(version, be_u32(bits), mask);
        }
        let coinb1 = unhex(n[2].as_str().unwrap());
        let coinb2 = unhex(n[3].as_str().unwrap());
        let en1 = unhex(s(&v, "extranonce1_hex"));
        let en2 = unhex(sp[2].as_str().unwrap());
        let input = ShareInput {
            coinb1: &coinb1,
            extranonce1: &en1,
            extranonce2: &en2,
            coinb2: &coinb2,
            merkle_branch: &branch,
            version,
            prev_hash: &prev,
            nbits: be_u32(&n[6]),
            ntime: be_u32(&sp[3]),
            nonce: be_u32(&sp[4]),
        };
        let hasher = PowHasher::new(chain.pow, &prev, &cache);
        let network = Target::from_compact(be_u32(&n[6])).unwrap();
        let check = check_share(&input, |h| hasher.hash(h), &Target::DIFF1, &network);
        assert_eq!(hex::encode(check.header), s(&v, "header_hex"), "{name}");
        assert_eq!(
            hex::encode(check.merkle_root),
            s(&v, "merkle_root_hex"),
            "{name}"
        );
        assert_eq!(hex::encode(check.pow_hash), s(&v, "pow_hex"), "{name}");
        assert!(check.meets_block, "{name}");
        let id = hasher.block_id(chain.block_id, &check.header, &check.pow_hash);
        assert_eq!(id.to_string(), s(&v, "block_hash_display"), "{name}");
    }
}

fn payout_address(v: &Value) -> String {
    let script = bitcoin::ScriptBuf::from_bytes(coinbase_parts(v).payout_script);
    if let (Some(version), Some(hrp)) = (script.witness_version(), chain_of(v).bech32_hrp) {
        // The witness program under the chain's own hrp (Litecoin regtest: rltc).
        let hrp = bitcoin::bech32::Hrp::parse(hrp).unwrap();
        return bitcoin::bech32::segwit::encode(hrp, version.into(), &script.as_bytes()[2..])
            .unwrap();
    }
    bitcoin::Address::from_script(&script, bitcoin::Network::Regtest)
        .unwrap()
        .to_string()
}

fn send(session: &mut Session, line: &str, book: &JobBook) -> Vec<String> {
    match session.handle_line(line, 1_000, book) {
        SessionOutput::Send(lines) => lines,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn session_turns_the_vector_submit_into_a_block_candidate() {
    for v in vectors() {
        let name = s(&v, "name");
        let parts = coinbase_parts(&v);
        let template = BlockTemplate::from_value(template_json(&v, parts.height)).unwrap();
        let cfg = job_config(&v);
        let mut book = JobBook::default();
        let job = book
            .add_template(&template, &cfg, None, &MatrixCache::new(2))
            .unwrap();
        let session_config = Arc::new(SessionConfig::new(cfg.chain, 4));
        let en1 = unhex(s(&v, "extranonce1_hex"));
        let mut session = Session::new(session_config, en1, 0);
        let sp = &v["submit_params"];
        if sp.get(5).is_some() {
            let reply = send(
                &mut session,
                r#"{"id":0,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}"#,
                &book,
            );
            let r: Value = serde_json::from_str(&reply[0]).unwrap();
            assert_eq!(r["result"]["version-rolling.mask"], "1fffe000");
        }
        send(
            &mut session,
            r#"{"id":1,"method":"mining.subscribe","params":["test/1"]}"#,
            &book,
        );
        let user = format!("{}.rig", payout_address(&v));
        if s(&v, "pow") == "scrypt" {
            assert!(user.starts_with("rltc1q"), "{name}: {user}");
        }
        let auth = json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]});
        let lines = send(&mut session, &auth.to_string(), &book);
        assert_eq!(
            lines.len(),
            3,
            "{name}: reply, set_difficulty, notify: {lines:?}"
        );
        assert_eq!(lines[2], job.notify_line());

        let mut params: Vec<Value> = sp.as_array().unwrap().clone();
        params[0] = json!(user);
        params[1] = json!(job.notify.job_id);
        let submit = json!({"id": 3, "method": "mining.submit", "params": params});
        let out = session.handle_line(&submit.to_string(), 2_000, &book);
        let SessionOutput::ShareAccepted(share) = out else {
            panic!("{name}: {out:?}")
        };
        assert_eq!(share.reply, "{\"id\":3,\"result\":true,\"error\":null}\n");
        assert_eq!(share.event.address.0, payout_address(&v));
        assert_eq!(share.event.worker.0, "rig");
        assert_eq!(share.event.height, parts.height);
        assert_eq!(share.event.time_ms, 2_000);
        let block = share.block.expect("the vector's share is a block");
        assert_eq!(
            block.block_id.to_string(),
            s(&v, "block_hash_display"),
            "{name}"
        );
        assert_eq!(hex::encode(block.header), s(&v, "header_hex"));
        assert_eq!(block.height, parts.height);
        assert_eq!(
            block.reward.0,
            v["template_coinbasevalue"].as_u64().unwrap()
        );
        assert!(hex::encode(&block.block).starts_with(s(&v, "header_hex")));

        // Where the block is the coinbase alone, it is complete: check it with rust-bitcoin.
        if v["tx_count"] == 1 {
            let parsed: bitcoin::Block = bitcoin::consensus::deserialize(&block.block).unwrap();
            assert!(parsed.check_merkle_root(), "{name}");
            assert!(parsed.check_witness_commitment(), "{name}");
            let cb = &parsed.txdata[0];
            assert_eq!(
                cb.compute_txid().to_byte_array(),
                pool_core::merkle::sha256d(&unhex(s(&v, "coinbase_nonwitness_hex")))
            );
            assert_eq!(cb.input[0].witness.len(), 1);
            assert_eq!(cb.input[0].witness.nth(0), Some(&[0u8; 32][..]));
        }

        // The same submit again is a duplicate.
        match session.handle_line(&submit.to_string(), 3_000, &book) {
            SessionOutput::ShareRejected { reply, .. } => {
                assert!(reply.contains("[22,"), "{reply}")
            }
            other => panic!("{other:?}"),
        }
    }
}

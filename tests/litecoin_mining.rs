//! The pool on `litecoin-regtest` against the Litecoin Core pair (MWEB not activated): wallet
//! transactions spending segwit outputs wait in the mempool, a Stratum client grinding scrypt
//! mines through the pool, and the node accepts blocks that carry those transactions and a
//! witness commitment over them, with the pool's coinbase paying the configured bech32 or legacy
//! address. Miners authorizing with an MWEB address or another chain's address are refused.

mod common;

use common::nodes::{litecoin_nodes, NodePair};
use common::pool::{PoolOptions, PoolProcess};
use common::stratum_client::{sha256d, StratumClient};
use pool_core::chain::Chain;
use pool_core::Target;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Node 2's wallet has spendable coins (mined outside the pool, to node 2).
fn fund_node2(pair: &NodePair) {
    let balance = pair.node2.cli(&["getbalance"]).as_f64().unwrap_or(0.0);
    if balance < 10.0 {
        let address = pair.node2.new_address_of("bech32");
        pair.mine_outside(&address, 101, WAIT);
    }
    let balance = pair.node2.cli(&["getbalance"]).as_f64().unwrap_or(0.0);
    assert!(balance >= 10.0, "node 2 has {balance} LTC after mining");
}

/// Puts wallet transactions in node 1's mempool that spend segwit (P2WPKH) outputs: a confirmed
/// output of a bech32 address of node 2 spent by a raw transaction signed with the wallet, and a
/// plain `sendtoaddress` to a legacy address. Returns their txids.
fn segwit_spends(pair: &NodePair) -> BTreeSet<String> {
    fund_node2(pair);
    let node2 = &pair.node2;
    let funded = node2.new_address_of("bech32");
    let funding = node2.cli(&["sendtoaddress", &funded, "1.0"]);
    let funding = funding.as_str().expect("txid").to_owned();
    let miner = node2.new_address_of("bech32");
    pair.mine_outside(&miner, 1, WAIT);
    let unspent = node2.cli(&["listunspent", "1", "9999999", &json!([funded]).to_string()]);
    let utxo = unspent
        .as_array()
        .and_then(|u| u.iter().find(|o| o["txid"] == json!(funding)))
        .unwrap_or_else(|| panic!("the confirmed output to {funded}: {unspent}"))
        .clone();
    let inputs = json!([{"txid": utxo["txid"], "vout": utxo["vout"]}]).to_string();
    let outputs = json!({ node2.new_address_of("bech32"): 0.999 }).to_string();
    let raw = node2.cli(&["createrawtransaction", &inputs, &outputs]);
    let signed = node2.cli(&["signrawtransactionwithwallet", raw.as_str().unwrap()]);
    assert_eq!(signed["complete"], json!(true), "{signed}");
    let hex = signed["hex"].as_str().unwrap();
    let decoded = node2.cli(&["decoderawtransaction", hex]);
    assert!(
        decoded["vin"][0]["txinwitness"].is_array(),
        "a P2WPKH spend has a witness: {decoded}"
    );
    let spend = node2.cli(&["sendrawtransaction", hex]);
    let legacy = node2.new_address_of("legacy");
    let plain = node2.cli(&["sendtoaddress", &legacy, "0.5"]);
    let txids: BTreeSet<String> = [spend, plain]
        .iter()
        .map(|t| t.as_str().expect("txid").to_owned())
        .collect();
    assert!(
        pair.node1
            .wait_until(WAIT, |n| txids.is_subset(&n.mempool())),
        "node 1 never got the spends {txids:?}"
    );
    // Bitcoin Core keeps serving its last template for 5 s after the mempool changes (a pool of
    // the previous test asked for one just now): wait until node 1's template holds the spends,
    // so the pool's first job does too.
    let rules = json!({"rules": ["mweb", "segwit"]}).to_string();
    assert!(
        pair.node1.wait_until(WAIT, |n| {
            let template = n.cli(&["getblocktemplate", &rules]);
            let in_template: BTreeSet<String> = template["transactions"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x["txid"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            txids.is_subset(&in_template)
        }),
        "node 1's template never held the spends {txids:?}"
    );
    txids
}

/// Litecoin Core 0.21 lists `addresses`; later versions `address`.
fn addresses_of(script_pub_key: &Value) -> Vec<String> {
    let mut out: Vec<String> = script_pub_key["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = script_pub_key["address"].as_str() {
        out.push(a.to_owned());
    }
    out
}

/// Internal-byte-order hash from its display hex.
fn internal(display_hex: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(display_hex).unwrap().try_into().unwrap();
    b.reverse();
    b
}

fn merkle_root(mut level: Vec<[u8; 32]>) -> [u8; 32] {
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().unwrap());
        }
        level = level
            .chunks(2)
            .map(|p| sha256d(&[p[0], p[1]].concat()))
            .collect();
    }
    level[0]
}

/// Mines one block through a pool paying `payout` (node 1's wallet), with `spends` waiting in
/// the mempool, and checks it on both nodes.
fn mine_a_segwit_block_paying(payout: &str) {
    let pair = litecoin_nodes();
    let spends = segwit_spends(pair);
    let mut options = PoolOptions::litecoin(payout);
    // Every hash is a share (the easiest target in either difficulty unit): the client grinds
    // for the block target itself.
    options.start_difficulty = 1e-12;
    options.min_difficulty = 1e-12;
    options.max_difficulty = 1e-11;
    let mut pool = PoolProcess::start(&options);
    let params = Chain::LitecoinRegtest.params();
    let height = pair.node1.block_count();

    let miner = pair.node2.new_address_of("bech32");
    let user = format!("{miner}.ltc1");
    let mut client = StratumClient::connect(pool.stratum);
    client.use_chain(params);
    client.subscribe();
    assert_eq!(client.authorize(&user), Ok(json!(true)), "{}", pool.log());
    let job = client.wait_for_job();
    assert!(
        !job.merkle_branch.is_empty(),
        "the job carries the mempool's transactions; pool log:\n{}",
        pool.log()
    );
    let block_target = Target::from_compact(job.nbits).unwrap();
    // A hair harder than the block target, so that the f64 round trip cannot make it easier.
    let block_difficulty = client.difficulty_unit.difficulty(&block_target) * 1.000_001;
    let solution = client.grind(&job, Some(block_difficulty), None, 2_000);
    assert!(block_target.is_met_by(&solution.hash));
    assert_eq!(
        client.submit(&user, &solution),
        Ok(json!(true)),
        "pool log:\n{}",
        pool.log()
    );
    assert!(
        pair.node1.wait_until(WAIT, |n| n.block_count() > height),
        "node 1 did not take the block; pool log:\n{}",
        pool.log()
    );
    let hash = pair.node1.cli(&["getblockhash", &(height + 1).to_string()]);
    let hash = hash.as_str().unwrap().to_owned();
    assert!(
        pair.node2
            .wait_until(WAIT, |n| n.try_cli(&["getblockheader", &hash]).is_ok()),
        "node 2 never got block {hash}"
    );
    drop(client);
    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());

    for node in [&pair.node1, &pair.node2] {
        let block = node.cli(&["getblock", &hash, "2"]);
        assert_eq!(
            block["confirmations"],
            json!(1),
            "on the best chain: {block}"
        );
        let txs = block["tx"].as_array().unwrap();
        assert!(txs.len() > 1, "template transactions in the block: {block}");
        let in_block: BTreeSet<String> = txs
            .iter()
            .map(|t| t["txid"].as_str().unwrap().to_owned())
            .collect();
        assert!(spends.is_subset(&in_block), "{spends:?} in {in_block:?}");
        assert!(
            txs[1..]
                .iter()
                .any(|t| t["vin"][0]["txinwitness"].is_array()),
            "a segwit spend with its witness: {block}"
        );

        let coinbase = &txs[0];
        let reserved = coinbase["vin"][0]["txinwitness"]
            .as_array()
            .unwrap_or_else(|| panic!("the coinbase's witness reserved value: {coinbase}"));
        assert_eq!(reserved, &vec![json!("00".repeat(32))]);
        let commitments: Vec<&str> = coinbase["vout"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["scriptPubKey"]["hex"].as_str())
            .filter(|h| h.starts_with("6a24aa21a9ed"))
            .collect();
        assert_eq!(commitments.len(), 1, "one witness commitment: {coinbase}");
        let commitment = hex::decode(&commitments[0][12..]).unwrap();
        // The commitment over the block's wtxids (the coinbase's counts as zero) and the
        // reserved value: not the one of a block without transactions.
        let mut wtxids = vec![[0u8; 32]];
        wtxids.extend(
            txs[1..]
                .iter()
                .map(|t| internal(t["hash"].as_str().unwrap())),
        );
        let root = merkle_root(wtxids);
        let expected = sha256d(&[root, [0u8; 32]].concat());
        assert_eq!(commitment, expected.to_vec(), "the witness commitment");
        assert_ne!(commitment, sha256d(&[0u8; 64]).to_vec(), "non-trivial");
        assert!(
            txs[1..].iter().any(|t| t["hash"] != t["txid"]),
            "a transaction whose wtxid is not its txid"
        );

        let paid: f64 = coinbase["vout"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| addresses_of(&o["scriptPubKey"]).iter().any(|a| a == payout))
            .map(|o| o["value"].as_f64().unwrap())
            .sum();
        assert!(
            paid >= 50.0,
            "the coinbase pays {payout} the subsidy (and the fees): {coinbase}"
        );
    }
}

#[test]
fn segwit_blocks_mined_through_the_pool_pay_a_bech32_address() {
    let _serial = common::serial();
    let payout = litecoin_nodes().node1.new_address_of("bech32");
    assert!(payout.starts_with("rltc1q"), "{payout}");
    mine_a_segwit_block_paying(&payout);
}

#[test]
fn segwit_blocks_mined_through_the_pool_pay_a_legacy_address() {
    let _serial = common::serial();
    let payout = litecoin_nodes().node1.new_address_of("legacy");
    assert!(
        payout.starts_with('m') || payout.starts_with('n'),
        "{payout}"
    );
    mine_a_segwit_block_paying(&payout);
}

#[test]
fn authorize_refuses_mweb_and_other_chains_addresses() {
    let _serial = common::serial();
    let pair = litecoin_nodes();
    let mut pool = PoolProcess::start(&PoolOptions::litecoin(&pair.node1.new_address_of("bech32")));
    let mut client = StratumClient::connect(pool.stratum);
    client.subscribe();

    let mweb = pair.node2.new_address_of("mweb");
    assert!(mweb.starts_with("tmweb1"), "{mweb}");
    let bitcoin_regtest = bitcoin::Address::p2wsh(
        &bitcoin::ScriptBuf::from(vec![0x51]),
        bitcoin::Network::Regtest,
    )
    .to_string();
    assert!(bitcoin_regtest.starts_with("bcrt1q"), "{bitcoin_regtest}");
    // A Litecoin main-network P2PKH address (version byte 48).
    let mut payload = vec![48u8];
    payload.extend_from_slice(&[7u8; 20]);
    let litecoin_main = bitcoin::base58::encode_check(&payload);
    assert!(litecoin_main.starts_with('L'), "{litecoin_main}");

    for (address, word) in [
        (mweb.as_str(), "mweb"),
        (bitcoin_regtest.as_str(), "network"),
        (litecoin_main.as_str(), "network"),
    ] {
        let refusal = client
            .authorize(&format!("{address}.rig"))
            .expect_err(&format!("{address} must be refused"));
        assert!(
            refusal.message.to_lowercase().contains(word),
            "{address}: the refusal says {word:?}: {refusal:?}"
        );
        assert!(
            refusal.message.contains(address),
            "{address}: the refusal names the address: {refusal:?}"
        );
    }
    // The chain's own kinds are taken on the same connection.
    for kind in ["bech32", "legacy", "p2sh-segwit"] {
        let address = pair.node2.new_address_of(kind);
        assert_eq!(
            client.authorize(&format!("{address}.rig")),
            Ok(json!(true)),
            "{kind} {address}"
        );
    }
    drop(client);
    assert!(pool.terminate().success(), "{}", pool.log());
}

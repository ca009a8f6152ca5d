//! MWEB blocks mined through the pool on the Litecoin Core regtest pair (MWEB active from height
//! 432 with `-vbparams=mweb:0:999999999999`): the chain is brought to the eve of MWEB with a
//! peg-in waiting, and a Stratum client grinding scrypt mines, through `obtc-pool run` on
//! `litecoin-regtest`, the first MWEB block (432: the peg-in, the HogEx, the extension block) and
//! the next (433: a wallet transaction, then the HogEx). The node accepts both; `getblock` shows
//! the HogEx last and the MWEB block; the raw blocks end with `0x01 || mweb`; `obtc-pool audit
//! --node --check-anchors` passes on the pool's ledger. A miner authorizing with an MWEB address is
//! told why it is refused.
//!
//! Every wait is bounded; a failure shows the pool's log.

mod common;

use common::nodes::{litecoin_nodes, Node, LITECOIN_MWEB_HEIGHT, RPC_PASSWORD, RPC_USER};
use common::pool::PoolProcess;
use common::stratum_client::{Job, Solution, StratumClient};
use obtc_pool::audit::money::RawBlock;
use pool_core::{Event, Target};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

fn config(node: &Node, payout: &str, stratum: SocketAddr, notify: SocketAddr) -> String {
    format!(
        r#"[chain]
preset = "litecoin-regtest"

[node]
url = "{url}"
user = "{RPC_USER}"
password = "{RPC_PASSWORD}"
rpc_timeout_secs = 30
longpoll = true
longpoll_timeout_secs = 60
refresh_secs = 1
max_retry_backoff_secs = 2

[stratum]
listen = "{stratum}"
extranonce2_size = 4
pool_tag = "/obtc-pool-mweb/"

[pool]
payout_address = "{payout}"

[ledger]
data_dir = "ledger"

[notify]
listen = "{notify}"
"#,
        url = node.rpc_url(),
    )
}

/// Grinds scrypt for a header meeting the job's network target (regtest: every other hash), so
/// the share is a block whatever difficulty the pool asked for.
fn grind_block(client: &StratumClient, job: &Job, extranonce2: u32) -> Solution {
    let target = Target::from_compact(job.nbits).unwrap();
    let mut en2 = extranonce2.to_le_bytes().to_vec();
    en2.resize(client.extranonce2_size, 0);
    for nonce in 0..200u32 {
        let header = client.header(job, &en2, job.ntime, nonce, job.version);
        let hash = pool_core::pow::scrypt_header(&header);
        if target.is_met_by(&hash) {
            return Solution {
                job_id: job.job_id.clone(),
                extranonce2: hex::encode(&en2),
                ntime: format!("{:08x}", job.ntime),
                nonce: format!("{nonce:08x}"),
                version_bits: None,
                hash,
            };
        }
    }
    panic!("no regtest block in 200 scrypt hashes");
}

/// The newest job for the next block whose merkle branch has at least `branch` hashes (the
/// template's transactions, the HogEx included), waiting for template refreshes.
fn wait_for_job(client: &mut StratumClient, prev: Option<&str>, branch: usize) -> Option<Job> {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(job) = client.latest_job() {
            if prev != Some(job.prev_hash.as_str()) && job.merkle_branch.len() >= branch {
                return Some(job);
            }
        }
        client.read_line_within(Duration::from_millis(500));
    }
    None
}

/// Gives node 1 a transaction of node 2's wallet (relay before a block is not to be waited for).
fn hand_over(pair: &common::nodes::NodePair, txid: &str) {
    let raw = pair.node2.cli(&["getrawtransaction", txid]);
    let _ = pair
        .node1
        .try_cli(&["sendrawtransaction", raw.as_str().expect("raw tx")]);
    assert!(
        pair.node1
            .wait_until(TIMEOUT, |n| n.mempool().contains(txid)),
        "node 1 never got {txid}"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn the_pool_mines_the_first_mweb_block_and_the_next_and_the_audit_passes() {
    let _serial = common::serial();
    let pair = litecoin_nodes();
    pair.activate_mweb(TIMEOUT);
    let node = &pair.node1;
    assert_eq!(node.block_count(), LITECOIN_MWEB_HEIGHT - 1);
    let pegin = node.mempool();
    assert!(!pegin.is_empty(), "the peg-in waits in node 1's mempool");

    let payout = node.new_address_of("bech32");
    let mut pool = PoolProcess::start_with_config(|s, n| config(node, &payout, s, n));

    // An MWEB address is refused with its reason; a bech32 one of the miner's wallet is taken.
    let mut client = StratumClient::connect(pool.stratum);
    client.subscribe();
    let mweb_address = pair.node2.new_address_of("mweb");
    let refusal = client
        .authorize(&format!("{mweb_address}.rig"))
        .unwrap_err();
    assert_eq!(refusal.code, 24, "{refusal:?}");
    assert!(
        refusal.message.contains("MWEB") && refusal.message.contains("neither a coinbase"),
        "{refusal:?}"
    );
    let miner = pair.node2.new_address_of("bech32");
    let worker = format!("{miner}.rig");
    assert_eq!(client.authorize(&worker), Ok(json!(true)));

    // Block 432: the peg-in and the HogEx.
    let job = wait_for_job(&mut client, None, 2)
        .unwrap_or_else(|| panic!("no job with the peg-in; pool log:\n{}", pool.log()));
    let solution = grind_block(&client, &job, 1);
    assert_eq!(
        client.submit(&worker, &solution),
        Ok(json!(true)),
        "pool log:\n{}",
        pool.log()
    );
    assert!(
        node.wait_until(TIMEOUT, |n| n.block_count() == LITECOIN_MWEB_HEIGHT),
        "block 432 not accepted; pool log:\n{}",
        pool.log()
    );

    // Block 433: a plain wallet transaction, then the HogEx.
    let address = pair.node2.new_address();
    let sent = pair.node2.cli(&["sendtoaddress", &address, "0.5"]);
    let sent = sent.as_str().expect("a txid").to_owned();
    hand_over(pair, &sent);
    let next = wait_for_job(&mut client, Some(&job.prev_hash), 2).unwrap_or_else(|| {
        panic!(
            "no job for 433 with the transaction; pool log:\n{}",
            pool.log()
        )
    });
    let solution = grind_block(&client, &next, 2);
    assert_eq!(
        client.submit(&worker, &solution),
        Ok(json!(true)),
        "pool log:\n{}",
        pool.log()
    );
    assert!(
        node.wait_until(TIMEOUT, |n| n.block_count() == LITECOIN_MWEB_HEIGHT + 1),
        "block 433 not accepted; pool log:\n{}",
        pool.log()
    );
    drop(client);
    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());

    // The node's view: both blocks are the pool's, end with the HogEx and carry the MWEB block.
    let payout_script = node.cli(&["getaddressinfo", &payout])["scriptPubKey"]
        .as_str()
        .unwrap()
        .to_owned();
    for (height, holds) in [
        (LITECOIN_MWEB_HEIGHT, pegin.iter().next().unwrap().clone()),
        (LITECOIN_MWEB_HEIGHT + 1, sent.clone()),
    ] {
        let hash = node.cli(&["getblockhash", &height.to_string()]);
        let hash = hash.as_str().unwrap();
        let block = node.cli(&["getblock", hash, "2"]);
        let txs = block["tx"].as_array().unwrap();
        assert_eq!(
            txs[0]["vout"][0]["scriptPubKey"]["hex"], payout_script,
            "{height}: the coinbase pays the pool"
        );
        assert!(
            txs.iter().any(|t| t["txid"] == holds.as_str()),
            "{height} holds {holds}"
        );
        let hogex = txs.last().unwrap();
        let hogaddr = hogex["vout"][0]["scriptPubKey"]["hex"].as_str().unwrap();
        assert!(hogaddr.starts_with("5820"), "{height}: HogEx last: {hogex}");
        assert!(
            block["mweb"]["hash"].is_string(),
            "{height}: the MWEB block: {}",
            block["mweb"]
        );
        let raw = node.cli(&["getblock", hash, "0"]);
        let raw = hex::decode(raw.as_str().unwrap()).unwrap();
        let mweb = RawBlock::parse(&raw).unwrap().mweb_block().unwrap();
        assert!(mweb.is_some_and(|m| m.len() > 32), "{height}");
    }

    // The ledger: two found blocks, and the audit against the node passes.
    let events = pool.ledger_events();
    let found: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::BlockFound(b) => Some(b.height),
            _ => None,
        })
        .collect();
    assert_eq!(
        found,
        vec![LITECOIN_MWEB_HEIGHT, LITECOIN_MWEB_HEIGHT + 1],
        "{events:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args([
            "audit",
            "--json",
            "--data",
            path(&pool.ledger_dir()),
            "--config",
            path(&pool.config_path),
            "--node",
            &node.rpc_url(),
            "--check-anchors",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run obtc-pool audit");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "audit failed: {stdout}\n{}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["pass"], true, "{stdout}");
    // Both blocks' rewards were read from their raw MWEB blocks, both shares' scrypt work
    // rebuilt, and both blocks found on the chain as the pool's.
    assert_eq!(report["money"]["blocks_checked"], 2, "{stdout}");
    assert_eq!(report["work"]["shares_checked"], 2, "{stdout}");
    assert_eq!(report["anchors"]["pool_blocks"], 2, "{stdout}");
}

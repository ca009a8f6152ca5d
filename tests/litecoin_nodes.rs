//! The Litecoin Core regtest pair of the test harness and the pool's node client against it:
//! the chain is the `litecoin-regtest` preset's, the wallets exist and come back after a
//! restart, addresses of every kind the pool pays or refuses are at hand, and MWEB can be brought
//! to its eve (after which every template carries the MWEB extension block).

mod common;

use common::nodes::{litecoin_nodes, LITECOIN_MWEB_HEIGHT, RPC_PASSWORD, RPC_USER};
use node_rpc::{NodeAuth, NodeClient, NodeEndpoint};
use pool_core::chain::Chain;
use std::time::Duration;

fn client() -> NodeClient {
    NodeClient::new(NodeEndpoint {
        url: litecoin_nodes().node1.rpc_url(),
        auth: NodeAuth::UserPassword {
            user: RPC_USER.into(),
            password: RPC_PASSWORD.into(),
        },
        timeout: Duration::from_secs(30),
        longpoll_timeout: Duration::from_secs(60),
    })
}

#[tokio::test]
async fn litecoin_pair_serves_the_preset_and_mweb_templates_after_activation() {
    let pair = litecoin_nodes();
    let node = client();
    let info = node.get_blockchain_info().await.unwrap();
    assert_eq!(info.chain, "regtest");
    let genesis = node.get_block_hash(0).await.unwrap();
    assert_eq!(
        genesis,
        Chain::LitecoinRegtest.params().genesis.to_string(),
        "the litecoin-regtest preset's genesis"
    );
    for (kind, prefix) in [("bech32", "rltc1q"), ("mweb", "tmweb1")] {
        let a = pair.node2.new_address_of(kind);
        assert!(a.starts_with(prefix), "{kind}: {a}");
    }
    let legacy = pair.node1.new_address_of("legacy");
    assert!(
        legacy.starts_with('m') || legacy.starts_with('n'),
        "{legacy}"
    );
    let p2sh = pair.node1.new_address_of("p2sh-segwit");
    assert!(p2sh.starts_with('Q'), "{p2sh}");
    // The pool's wallet holds nothing: node 2 mined the set-up block.
    assert_eq!(pair.node1.cli(&["getbalance"]).as_f64(), Some(0.0));

    // A restarted node has its wallet again.
    pair.node2.stop();
    pair.node2.start();
    assert!(pair.node2.wait_ready(Duration::from_secs(60)));
    assert!(pair.relink(Duration::from_secs(30)));
    assert_eq!(
        pair.node2.cli(&["listwallets"]),
        serde_json::json!(["miner"])
    );

    let template = node.get_block_template(None).await.unwrap();
    assert!(template.get("mweb").is_none(), "MWEB is not active yet");
    assert!(template["default_witness_commitment"].is_string());

    pair.activate_mweb(Duration::from_secs(60));
    assert_eq!(pair.node1.block_count(), LITECOIN_MWEB_HEIGHT - 1);
    let template = node.get_block_template(None).await.unwrap();
    assert_eq!(template["height"].as_u64(), Some(LITECOIN_MWEB_HEIGHT));
    assert!(
        template["mweb"].is_string(),
        "the first MWEB block's template"
    );
    let txs = template["transactions"].as_array().unwrap();
    assert!(txs.len() >= 2, "the peg-in and the HogEx: {txs:?}");
}

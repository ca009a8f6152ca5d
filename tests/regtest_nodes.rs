//! The node harness and the pool's node client against the real regtest node pair.

mod common;

use common::nodes::{nodes, RPC_PASSWORD, RPC_USER};
use node_rpc::{NodeAuth, NodeClient, NodeEndpoint, NodeError, SubmitOutcome};
use std::time::Duration;

fn client() -> NodeClient {
    NodeClient::new(NodeEndpoint {
        url: nodes().node1.rpc_url(),
        auth: NodeAuth::UserPassword {
            user: RPC_USER.into(),
            password: RPC_PASSWORD.into(),
        },
        timeout: Duration::from_secs(30),
        longpoll_timeout: Duration::from_secs(60),
    })
}

// Each #[tokio::test] has its own runtime: the std lock serializes tests, not tasks.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn node_client_speaks_to_the_real_node() {
    let _serial = common::serial();
    let node = client();
    let info = node.get_blockchain_info().await.unwrap();
    assert_eq!(info.chain, "regtest");
    let hash = node.get_block_hash(info.blocks).await.unwrap();
    assert_eq!(hash, info.bestblockhash);
    let block = node.get_block(&hash, 1).await.unwrap();
    assert_eq!(block["hash"], serde_json::Value::String(hash.clone()));

    let template = node.get_block_template(None).await.unwrap();
    assert_eq!(template["previousblockhash"].as_str(), Some(hash.as_str()));
    assert_eq!(template["height"].as_u64(), Some(info.blocks + 1));
    assert_eq!(template["bits"].as_str(), Some("207fffff"));

    let address = nodes().node1.new_address();
    let valid = node.validate_address(&address).await.unwrap();
    assert!(valid.isvalid);
    assert!(valid.script_pubkey.is_some());
    assert!(!node.validate_address("nonsense").await.unwrap().isvalid);
}

#[tokio::test]
async fn rpc_errors_and_refusals_are_typed() {
    let node = client();
    let err = node.get_block_hash(1_000_000).await.unwrap_err();
    assert!(matches!(err, NodeError::Rpc { code: -8, .. }), "{err:?}");

    // Garbage is refused by the node with a reason or an RPC error, never taken for acceptance.
    match node.submit_block("00".into()).await {
        Ok(SubmitOutcome::Rejected(_)) | Err(NodeError::Rpc { .. }) => {}
        other => panic!("unexpected submitblock outcome {other:?}"),
    }

    let bad = NodeClient::new(NodeEndpoint {
        auth: NodeAuth::UserPassword {
            user: RPC_USER.into(),
            password: "wrong".into(),
        },
        ..client().endpoint().clone()
    });
    let err = bad.get_blockchain_info().await.unwrap_err();
    assert!(matches!(err, NodeError::Unauthorized { .. }), "{err:?}");
}

// Each #[tokio::test] has its own runtime: the std lock serializes tests, not tasks.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn long_poll_returns_when_a_block_arrives() {
    let _serial = common::serial();
    let node = client();
    let template = node.get_block_template(None).await.unwrap();
    let longpollid = template["longpollid"].as_str().unwrap().to_owned();
    let height = template["height"].as_u64().unwrap();
    let poll = {
        let node = node.clone();
        tokio::spawn(async move { node.get_block_template(Some(&longpollid)).await })
    };
    // Mine on the peer: node1 learns the block over p2p, which ends the long poll.
    tokio::task::spawn_blocking(|| nodes().node2.cli(&["generate", "1"]))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(60), poll)
        .await
        .expect("long poll did not return")
        .unwrap()
        .unwrap();
    assert!(next["height"].as_u64().unwrap() > height);
}

#[tokio::test]
async fn cookie_file_auth_is_read_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join(".cookie");
    // A cookie holds `user:password`, exactly what HTTP basic auth encodes.
    std::fs::write(&cookie, format!("{RPC_USER}:wrong\n")).unwrap();
    let node = NodeClient::new(NodeEndpoint {
        auth: NodeAuth::CookieFile(cookie.clone()),
        ..client().endpoint().clone()
    });
    let err = node.get_blockchain_info().await.unwrap_err();
    assert!(matches!(err, NodeError::Unauthorized { .. }), "{err:?}");
    // The node restarted with a new cookie: the next call reads it.
    std::fs::write(&cookie, format!("{RPC_USER}:{RPC_PASSWORD}")).unwrap();
    assert_eq!(node.get_blockchain_info().await.unwrap().chain, "regtest");
}

//! A solved share becomes a complete block that rust-bitcoin accepts: the right transaction
//! count, the merkle root over the txids, the witness commitment over the wtxids with the coinbase
//! witness reserved value, and the block id. Built with real segwit and legacy transactions.

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{
    absolute, transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Txid, Witness,
};
use pool_core::chain::Chain;
use pool_core::merkle::witness_commitment_script;
use pool_core::pow::MatrixCache;
use serde_json::json;
use std::sync::Arc;
use stratum::job::{BlockTemplate, ExtraOutput, JobBook, JobConfig, OutputValue};
use stratum::session::{Session, SessionConfig, SessionOutput};

fn tx(seed: u8, witness: bool) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([seed; 32]),
                vout: u32::from(seed),
            },
            script_sig: if witness {
                ScriptBuf::new()
            } else {
                ScriptBuf::from_bytes(vec![0x51])
            },
            sequence: Sequence::MAX,
            witness: if witness {
                Witness::from_slice(&[vec![seed; 71], vec![2; 33]])
            } else {
                Witness::new()
            },
        }],
        output: vec![TxOut {
            value: Amount::from_sat(10_000 + u64::from(seed)),
            script_pubkey: ScriptBuf::from_bytes(vec![
                0x00, 0x14, seed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
            ]),
        }],
    }
}

#[test]
fn solved_share_assembles_a_valid_segwit_block_with_transactions() {
    let txs = [tx(1, true), tx(2, false), tx(3, true), tx(4, true)];
    let wtxids: Vec<[u8; 32]> = txs
        .iter()
        .map(|t| t.compute_wtxid().to_byte_array())
        .collect();
    let template = json!({
        "version": 0x2000_0000u32,
        "previousblockhash": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        "transactions": txs.iter().map(|t| json!({
            "data": hex::encode(serialize(t)),
            "txid": t.compute_txid().to_string(),
            "hash": t.compute_wtxid().to_string(),
        })).collect::<Vec<_>>(),
        "coinbasevalue": 5_000_040_000u64,
        "bits": "207fffff",
        "curtime": 1_795_572_408u32,
        "height": 1234,
        "default_witness_commitment": hex::encode(witness_commitment_script(&wtxids)),
    });
    let template = BlockTemplate::from_value(template).unwrap();
    let chain = Chain::BitcoinRegtest.params();
    let payout = hex::decode("0014582115d39778f38690d442b19bbcf48dc732b470").unwrap();
    let mut config = JobConfig::new(chain, b"/obtc-pool/", payout.clone());
    config.extra_outputs.push(ExtraOutput {
        value: OutputValue::Fixed(pool_core::Sats(40_000)),
        script_pubkey: vec![0x51],
    });
    let mut book = JobBook::default();
    let job = book
        .add_template(&template, &config, None, &MatrixCache::new(1))
        .unwrap();
    assert_eq!(job.transaction_count(), 5);

    let mut session = Session::new(Arc::new(SessionConfig::new(chain, 4)), vec![9, 8, 7, 6], 0);
    let _ = session.handle_line(
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        0,
        &book,
    );
    let address = bitcoin::Address::from_script(
        &ScriptBuf::from_bytes(payout.clone()),
        bitcoin::Network::Regtest,
    )
    .unwrap()
    .to_string();
    let auth = json!({"id":2,"method":"mining.authorize","params":[address]}).to_string();
    let SessionOutput::Send(lines) = session.handle_line(&auth, 0, &book) else {
        panic!()
    };
    assert!(lines[0].contains("true"), "{lines:?}");

    let block = (0u32..64)
        .find_map(|nonce| {
            let submit = json!({"id":3,"method":"mining.submit",
                "params":[address, job.notify.job_id, "0000abcd", "6b0642b8", format!("{nonce:08x}")]});
            match session.handle_line(&submit.to_string(), 1, &book) {
                SessionOutput::ShareAccepted(a) => a.block,
                _ => None,
            }
        })
        .expect("half of all regtest hashes are blocks");

    let parsed: Block = deserialize(&block.block).unwrap();
    assert_eq!(parsed.txdata.len(), 5);
    assert!(parsed.check_merkle_root());
    assert!(parsed.check_witness_commitment());
    assert_eq!(parsed.header.block_hash().to_byte_array(), block.block_id.0);
    assert_eq!(parsed.bip34_block_height().unwrap(), 1234);
    for (i, t) in txs.iter().enumerate() {
        assert_eq!(&parsed.txdata[i + 1], t);
    }
    let coinbase = &parsed.txdata[0];
    assert_eq!(coinbase.output[0].script_pubkey.as_bytes(), &payout[..]);
    assert_eq!(coinbase.output[0].value.to_sat(), 5_000_000_000);
    assert_eq!(block.reward.0, 5_000_000_000);
    assert_eq!(coinbase.output[1].value.to_sat(), 40_000);
    assert_eq!(coinbase.output.len(), 3);
}

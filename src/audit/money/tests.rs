//! The money facts as `projections` books them, and the comparisons against raw blocks.

use super::*;
use crate::audit::work::tests::fixture::{pool, MINER, POOL_ADDRESS};
use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};
use pool_core::event::{
    BlockFound, PaymentFailed, PaymentPrepared, PaymentSent, PayoutAddress, PayoutRule,
    PayoutScheme, WorkerName,
};
use pool_core::Target;

const THIRD: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";

fn script(address: &str) -> ScriptBuf {
    let pool = pool();
    ScriptBuf::from_bytes(
        pool_core::parse_payout_address(address, pool.chain)
            .unwrap()
            .script_pubkey,
    )
}

fn tx(prev: u8, outputs: &[(&str, u64)]) -> Transaction {
    Transaction {
        version: Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: if prev == 0 {
                OutPoint::null()
            } else {
                OutPoint::new(bitcoin::Txid::from_byte_array([prev; 32]), 0)
            },
            script_sig: ScriptBuf::from_bytes(vec![0x51, prev]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: outputs
            .iter()
            .map(|(a, v)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: script(a),
            })
            .collect(),
    }
}

fn raw_block(txs: &[Transaction]) -> Vec<u8> {
    let mut raw = vec![7u8; 80];
    raw.push(txs.len() as u8);
    for t in txs {
        raw.extend_from_slice(&bitcoin::consensus::serialize(t));
    }
    raw
}

fn txid(t: &Transaction) -> Txid {
    BlockId(t.compute_txid().to_byte_array())
}

fn out(address: &str, amount: u64) -> PaymentOutput {
    PaymentOutput {
        address: PayoutAddress(address.into()),
        amount: Sats(amount),
    }
}

fn rule(payer: NetworkFeePayer) -> Event {
    Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Solo,
        fee_bps: 0,
        fee_address: PayoutAddress(POOL_ADDRESS.into()),
        network_fee_payer: payer,
    })
}

fn prepared(id: u64, outputs: Vec<PaymentOutput>) -> Event {
    Event::PaymentPrepared(PaymentPrepared {
        payment_id: id,
        outputs,
    })
}

fn sent(id: u64, fee: u64) -> Event {
    Event::PaymentSent(PaymentSent {
        payment_id: id,
        txid: BlockId([id as u8; 32]),
        network_fee: Sats(fee),
    })
}

fn confirmed(id: u64, height: u64) -> Event {
    Event::PaymentConfirmed(PaymentConfirmed {
        payment_id: id,
        txid: BlockId([id as u8; 32]),
        height,
    })
}

fn facts(events: &[Event]) -> MoneyFacts {
    let mut f = MoneyFacts::default();
    for (seq, e) in events.iter().enumerate() {
        f.apply(seq as u64, e);
    }
    f
}

#[test]
fn confirmed_outputs_are_net_of_the_miners_fee_split_under_the_rule_at_preparation() {
    let two = || vec![out(MINER, 10_000), out(THIRD, 30_001)];
    let f = facts(&[
        rule(NetworkFeePayer::Miners),
        prepared(1, two()),
        sent(1, 1_001),
        confirmed(1, 120),
        // Prepared under the pool-pays rule; the rule changes before it is sent.
        rule(NetworkFeePayer::Pool),
        prepared(2, two()),
        rule(NetworkFeePayer::Miners),
        sent(2, 500),
        confirmed(2, 121),
        // Failed: never checked. Confirmed without a PaymentSent: nothing deducted.
        prepared(3, two()),
        Event::PaymentFailed(PaymentFailed {
            payment_id: 3,
            reason: "dropped".into(),
        }),
        prepared(4, two()),
        confirmed(4, 122),
        // Confirmed without being prepared: the replay's business, not ours.
        confirmed(9, 123),
    ]);
    let (d, _) = projections::split::split_network_fee(&[Sats(10_000), Sats(30_001)], Sats(1_001));
    let got: Vec<(u64, u64, Vec<u64>)> = f
        .payments
        .iter()
        .map(|p| {
            (
                p.seq,
                p.payment_id,
                p.outputs.iter().map(|o| o.amount.0).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (3, 1, vec![10_000 - d[0].0, 30_001 - d[1].0]),
            (8, 2, vec![10_000, 30_001]),
            (12, 4, vec![10_000, 30_001]),
        ]
    );
    assert_eq!(d[0].0 + d[1].0, 1_001);
    assert_eq!(f.payments[0].height, 120);
}

#[test]
fn a_block_reward_is_the_coinbase_outputs_to_the_pool() {
    let pool = pool();
    let coinbase = tx(
        0,
        &[(POOL_ADDRESS, 4_000), (MINER, 100), (POOL_ADDRESS, 1_000)],
    );
    let raw = raw_block(&[coinbase, tx(3, &[(MINER, 5)])]);
    assert_eq!(reward_mismatch(&raw, &pool, Sats(5_000)), None);
    let problem = reward_mismatch(&raw, &pool, Sats(5_001)).unwrap();
    assert!(problem.contains("reward 5001 sats") && problem.contains("pays the pool 5000"));
    assert!(reward_mismatch(&raw[..100], &pool, Sats(5_000))
        .unwrap()
        .contains("cannot read"));
}

#[test]
fn a_payment_must_find_each_net_output_in_its_transaction() {
    let pool = pool();
    let pay = tx(
        5,
        &[(MINER, 9_750), (POOL_ADDRESS, 123_456), (THIRD, 29_250)],
    );
    let raw = raw_block(&[
        tx(0, &[(POOL_ADDRESS, 50)]),
        tx(6, &[(MINER, 1)]),
        pay.clone(),
    ]);
    let mut p = ConfirmedPayment {
        seq: 40,
        payment_id: 7,
        txid: txid(&pay),
        height: 130,
        outputs: vec![out(MINER, 9_750), out(THIRD, 29_250)],
    };
    assert_eq!(payment_mismatch(&raw, &pool, &p), None);
    p.outputs[1].amount = Sats(29_251);
    let problem = payment_mismatch(&raw, &pool, &p).unwrap();
    assert!(
        problem.contains("output 1") && problem.contains("29251") && problem.contains("29250 sats"),
        "{problem}"
    );
    // Two ledger outputs cannot both be paid by one chain output.
    p.outputs = vec![out(MINER, 9_750), out(MINER, 9_750)];
    assert!(payment_mismatch(&raw, &pool, &p)
        .unwrap()
        .contains("output 1"));
    p.txid = BlockId([1; 32]);
    assert!(payment_mismatch(&raw, &pool, &p)
        .unwrap()
        .contains("does not hold the transaction"));
}

#[test]
fn orphaned_blocks_are_known_by_their_last_lifecycle_event() {
    let found = |n: u8| {
        Event::BlockFound(BlockFound {
            height: 100 + u64::from(n),
            block_id: BlockId([n; 32]),
            reward: Sats(50),
            network_target: Target::MAX,
            finder: PayoutAddress(MINER.into()),
            worker: WorkerName::default(),
            time_ms: 0,
        })
    };
    let f = facts(&[
        found(1),
        found(2),
        Event::BlockOrphaned(pool_core::event::BlockOrphaned {
            block_id: BlockId([1; 32]),
            height: 101,
        }),
        Event::BlockOrphaned(pool_core::event::BlockOrphaned {
            block_id: BlockId([2; 32]),
            height: 102,
        }),
        Event::BlockReinstated(pool_core::event::BlockReinstated {
            block_id: BlockId([2; 32]),
            height: 102,
        }),
    ]);
    assert_eq!(f.blocks.len(), 2);
    assert_eq!((f.blocks[1].seq, f.blocks[1].height), (1, 102));
    assert!(f.is_orphaned(&BlockId([1; 32])));
    assert!(!f.is_orphaned(&BlockId([2; 32])));
}

#[test]
fn a_raw_block_reads_transaction_by_transaction() {
    let txs = [tx(0, &[(POOL_ADDRESS, 1)]), tx(4, &[(MINER, 2)])];
    let mut raw = raw_block(&txs);
    raw.extend_from_slice(b"trailing extension data");
    let mut block = RawBlock::parse(&raw).unwrap();
    assert_eq!(block.tx_count, 2);
    assert_eq!(block.next_tx().unwrap().as_ref(), Some(&txs[0]));
    assert_eq!(block.next_tx().unwrap().as_ref(), Some(&txs[1]));
    assert_eq!(block.next_tx().unwrap(), None);
    assert_eq!(find_tx(&raw, &txid(&txs[1])).unwrap(), Some(txs[1].clone()));
    assert!(RawBlock::parse(&raw[..79]).is_err());
}

/// Litecoin Core regtest's blocks 432 (the first MWEB block, with a peg-in) and 433, with the
/// templates they were mined from (`testdata/litecoin-mweb.json`).
fn litecoin_mweb_cases() -> Vec<(Value, Vec<u8>)> {
    let all: Value =
        serde_json::from_str(include_str!("../../../testdata/litecoin-mweb.json")).unwrap();
    all["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let block = hex::decode(c["block"].as_str().unwrap()).unwrap();
            (c["template"].clone(), block)
        })
        .collect()
}

fn litecoin_pool() -> PoolIdentity {
    PoolIdentity {
        chain: pool_core::Chain::LitecoinRegtest.params(),
        address: String::new(),
        // The blocks' coinbases pay OP_TRUE.
        payout_script: vec![0x51],
        tag: b"/mweb-pr".to_vec(),
    }
}

#[test]
fn real_mweb_blocks_read_through_the_hogex_to_the_extension_block() {
    let pool = litecoin_pool();
    for (template, raw) in litecoin_mweb_cases() {
        let height = template["height"].as_u64().unwrap();
        let txs = template["transactions"].as_array().unwrap();
        let mut block = RawBlock::parse(&raw).unwrap();
        assert_eq!(block.tx_count, txs.len() as u64 + 1);
        block.next_tx().unwrap().unwrap(); // the coinbase
        let mut last = None;
        for t in txs {
            let tx = block.next_tx().unwrap().unwrap();
            assert_eq!(tx.compute_txid().to_string(), t["txid"].as_str().unwrap());
            last = Some(tx);
        }
        assert_eq!(block.next_tx().unwrap(), None);
        // The HogEx pays the MWEB balance to its HogAddr (OP_8 <32-byte MWEB block hash>).
        let hogex = last.unwrap();
        assert_eq!(
            &hogex.output[0].script_pubkey.as_bytes()[..2],
            &[0x58, 0x20]
        );
        let mweb = hex::decode(template["mweb"].as_str().unwrap()).unwrap();
        let block = RawBlock::parse(&raw).unwrap();
        assert_eq!(block.mweb_block().unwrap(), Some(&mweb[..]), "{height}");

        let reward = Sats(template["coinbasevalue"].as_u64().unwrap());
        assert_eq!(reward_mismatch(&raw, &pool, reward), None, "{height}");
        let txid = BlockId::from_display_hex(txs[0]["txid"].as_str().unwrap()).unwrap();
        assert!(find_tx(&raw, &txid).unwrap().is_some());
        // A transaction the block does not hold is looked for past the HogEx: not there.
        let p = ConfirmedPayment {
            seq: 9,
            payment_id: 1,
            txid: BlockId([1; 32]),
            height,
            outputs: vec![],
        };
        assert_eq!(
            payment_mismatch(&raw, &pool, &p).as_deref(),
            Some("the block does not hold the transaction")
        );
        // Without its extension block, a HogEx block is incomplete.
        let cut = &raw[..raw.len() - mweb.len() - 1];
        assert!(RawBlock::parse(cut).unwrap().mweb_block().is_err());
    }
    // A block without a HogEx has no extension block.
    let plain = raw_block(&[tx(0, &[(POOL_ADDRESS, 1)])]);
    assert_eq!(RawBlock::parse(&plain).unwrap().mweb_block().unwrap(), None);
}

#[test]
fn a_transaction_with_an_mweb_part_before_a_payment_is_a_finding() {
    // The peg-in as its wallet holds it: flags 0x09, with its MWEB part. No block's transaction
    // list holds one; the reader names it rather than misreading what follows.
    let all: Value =
        serde_json::from_str(include_str!("../../../testdata/litecoin-mweb.json")).unwrap();
    let pegin = hex::decode(all["pegin_wallet_tx"]["hex"].as_str().unwrap()).unwrap();
    assert!(mweb::is_mweb_flagged(&pegin));
    let pay = tx(5, &[(MINER, 9_750)]);
    let mut raw = raw_block(&[tx(0, &[(POOL_ADDRESS, 50)])]);
    raw[80] = 3;
    raw.extend_from_slice(&pegin);
    raw.extend_from_slice(&bitcoin::consensus::serialize(&pay));
    let p = ConfirmedPayment {
        seq: 40,
        payment_id: 7,
        txid: txid(&pay),
        height: 130,
        outputs: vec![out(MINER, 9_750)],
    };
    let problem = payment_mismatch(&raw, &litecoin_pool(), &p).unwrap();
    assert!(
        problem.contains("cannot read the block") && problem.contains("MWEB transaction"),
        "{problem}"
    );
}

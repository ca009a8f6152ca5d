//! The ledger facts and the verdict on synthetic blocks.

use super::*;
use crate::audit::work::tests::fixture::{self, pool, MINER, TAG};
use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use pool_core::event::{BlockCandidate, PayoutAddress, WorkerName};
use pool_core::{Sats, Target};

fn h(n: u64) -> [u8; 32] {
    pool_core::merkle::sha256d(&n.to_le_bytes())
}

fn anchor(seq: u64) -> LedgerAnchor {
    LedgerAnchor { seq, hash: h(seq) }
}

fn job(job_id: u64, height: u64, a: Option<LedgerAnchor>) -> Event {
    Event::JobCreated(fixture::job(&pool(), job_id, height, fixture::prev(1), a))
}

fn candidate(block: u8, height: u64) -> Event {
    Event::BlockCandidate(BlockCandidate {
        height,
        block_id: BlockId([block; 32]),
        reward: Sats(50),
        network_target: Target::MAX,
        finder: PayoutAddress(MINER.into()),
        worker: WorkerName::default(),
        time_ms: 0,
        block: vec![],
    })
}

/// Records `from..from + events.len()`, record `seq` hashing to `h(seq)`.
fn facts_from(from: u64, events: &[Event]) -> AnchorFacts {
    let mut f = AnchorFacts::default();
    for (i, e) in events.iter().enumerate() {
        let seq = from + i as u64;
        f.apply(seq, &h(seq), e);
    }
    f
}

fn coinbase(script_sig: &[u8], outputs: Vec<(u64, Vec<u8>)>) -> Transaction {
    Transaction {
        version: Version::ONE,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(script_sig.to_vec()),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: outputs
            .into_iter()
            .map(|(v, s)| TxOut {
                value: Amount::from_sat(v),
                script_pubkey: ScriptBuf::from_bytes(s),
            })
            .collect(),
    }
}

fn block(coinbase: &Transaction) -> Vec<u8> {
    let mut raw = vec![0u8; 80];
    raw.push(1);
    raw.extend_from_slice(&bitcoin::consensus::serialize(coinbase));
    raw
}

fn pool_block(a: Option<LedgerAnchor>) -> Vec<u8> {
    let mut sig = fixture::bip34(120);
    sig.extend_from_slice(TAG);
    sig.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let outs = fixture::outputs(5_000, &pool().payout_script, a);
    block(&coinbase(&sig, outs))
}

#[test]
fn the_facts_keep_every_hash_the_blocks_and_the_lowest_height() {
    let share = fixture::share(&fixture::job(&pool(), 1, 104, fixture::prev(1), None), 1, 1);
    let f = facts_from(
        10,
        &[
            Event::ShareWithWork(share),
            job(1, 105, Some(anchor(10))),
            candidate(1, 103),
        ],
    );
    assert_eq!(f.first_height(), Some(103));
    assert!(matches!(f.hash_at(11), HashAt::Is(x) if x == h(11)));
    assert!(matches!(f.hash_at(9), HashAt::Before(10)));
    assert!(matches!(f.hash_at(13), HashAt::After(Some(12))));
    assert!(f.blocks.contains(&BlockId([1; 32])));
    assert!(f.job_findings.is_empty());
    // A gap: the skipped records are missing, not zero.
    let mut g = facts_from(0, &[candidate(2, 5)]);
    g.apply(3, &h(3), &candidate(3, 6));
    assert!(matches!(g.hash_at(1), HashAt::Missing));
    assert!(matches!(g.hash_at(3), HashAt::Is(x) if x == h(3)));
}

#[test]
fn a_job_anchor_must_be_an_earlier_head_of_this_ledger() {
    let wrong = LedgerAnchor {
        seq: 1,
        hash: [9; 32],
    };
    let f = facts_from(
        0,
        &[
            candidate(1, 5),
            candidate(2, 5),
            job(1, 6, Some(anchor(1))),
            job(2, 6, Some(wrong)),
            job(3, 6, Some(anchor(4))),
            job(4, 6, Some(anchor(9))),
        ],
    );
    let got: Vec<(Option<u64>, &str)> = f
        .job_findings
        .iter()
        .map(|x| (x.seq, x.message.as_str()))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].0, Some(3));
    assert!(got[0].1.contains("but the ledger's record has hash"));
    assert_eq!(got[1].0, Some(4));
    assert!(got[1].1.contains("not before it"));
    assert_eq!(got[2].0, Some(5));
    // A prefix the auditor was not given proves nothing and contradicts nothing.
    let f = facts_from(7, &[job(1, 6, Some(anchor(3)))]);
    assert!(f.job_findings.is_empty());
}

#[test]
fn pool_blocks_are_judged_by_script_tag_and_anchor() {
    let pool = pool();
    let f = facts_from(0, &[candidate(1, 5), candidate(2, 5), job(1, 6, None)]);
    let id = BlockId([1; 32]);
    let other = BlockId([7; 32]);
    assert_eq!(
        judge_block(&pool_block(Some(anchor(1))), &id, &pool, &f),
        Ok(BlockVerdict::Anchored {
            anchor: anchor(1),
            in_ledger: true,
            problem: None
        })
    );
    let tampered = LedgerAnchor {
        seq: 1,
        hash: [3; 32],
    };
    let BlockVerdict::Anchored { problem, .. } =
        judge_block(&pool_block(Some(tampered)), &id, &pool, &f).unwrap()
    else {
        panic!("a pool block")
    };
    assert!(problem.unwrap().contains(&hex::encode(h(1))));
    let BlockVerdict::Anchored { problem, .. } =
        judge_block(&pool_block(Some(anchor(30))), &id, &pool, &f).unwrap()
    else {
        panic!("a pool block")
    };
    assert_eq!(problem.as_deref(), Some("but the ledger ends at record 2"));
    assert_eq!(
        judge_block(&pool_block(None), &other, &pool, &f),
        Ok(BlockVerdict::NoAnchor { in_ledger: false })
    );
    // Paying the pool without the tag, or tagged without paying it: not the pool's.
    let miner = pool_core::parse_payout_address(MINER, pool.chain)
        .unwrap()
        .script_pubkey;
    let untagged = coinbase(&[1, 2, 3], fixture::outputs(5, &pool.payout_script, None));
    let unpaid = coinbase(TAG, fixture::outputs(5, &miner, None));
    for cb in [untagged, unpaid] {
        assert_eq!(
            judge_block(&block(&cb), &other, &pool, &f),
            Ok(BlockVerdict::NotPool)
        );
    }
    assert!(judge_block(&[0; 81], &other, &pool, &f).is_err());
}

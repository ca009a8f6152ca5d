//! Synthetic ledgers for the work check (and, through [`fixture`], the money and anchor
//! checks): jobs laid out as the pool lays them out, shares ground on `bsv-regtest` SHA-256d at
//! a target one hash in 256 meets.

use super::*;
use pool_core::event::PayoutAddress;
use pool_core::Target;

pub(crate) mod fixture {
    use crate::audit::PoolIdentity;
    use pool_core::anchor::anchor_script;
    use pool_core::chain::ChainParams;
    use pool_core::event::{
        JobCreated, LedgerAnchor, PayoutAddress, ShareAccepted, ShareWithWork, ShareWork,
        WorkerName,
    };
    use pool_core::merkle::root_from_branch;
    use pool_core::share::{build_header, coinbase_txid};
    use pool_core::{BlockId, Target};

    pub const POOL_ADDRESS: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
    pub const MINER: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
    pub const TAG: &[u8] = b"/obtc-pool/";
    pub const EXTRANONCE: usize = 8;

    pub fn pool_on(chain: &str) -> PoolIdentity {
        let chain = ChainParams::by_name(chain).unwrap();
        let parsed = pool_core::parse_payout_address(POOL_ADDRESS, chain).unwrap();
        PoolIdentity {
            chain,
            address: POOL_ADDRESS.into(),
            payout_script: parsed.script_pubkey,
            tag: TAG.to_vec(),
        }
    }

    pub fn pool() -> PoolIdentity {
        pool_on("bsv-regtest")
    }

    /// One hash in 256 meets it: cheap to grind, and a changed nonce almost never still meets.
    pub fn easy_target() -> Target {
        let mut b = [0xffu8; 32];
        b[0] = 0;
        Target::from_be_bytes(b)
    }

    pub fn bip34(height: u64) -> Vec<u8> {
        let mut num = Vec::new();
        let mut h = height;
        while h > 0 {
            num.push((h & 0xff) as u8);
            h >>= 8;
        }
        if num.last().is_some_and(|b| b & 0x80 != 0) {
            num.push(0);
        }
        let mut push = vec![num.len() as u8];
        push.extend_from_slice(&num);
        push
    }

    /// The coinbase halves the pool builds (`stratum::job`): height push and tag before the
    /// extranonces, then `outputs`, locktime 0.
    pub fn coinbase_halves(
        height: u64,
        tag: &[u8],
        outputs: &[(u64, Vec<u8>)],
    ) -> (Vec<u8>, Vec<u8>) {
        let push = bip34(height);
        let mut c1 = vec![1, 0, 0, 0, 1];
        c1.extend_from_slice(&[0u8; 32]);
        c1.extend_from_slice(&[0xff; 4]);
        c1.push((push.len() + tag.len() + EXTRANONCE) as u8);
        c1.extend_from_slice(&push);
        c1.extend_from_slice(tag);
        let mut c2 = vec![0xff; 4];
        c2.push(outputs.len() as u8);
        for (value, script) in outputs {
            c2.extend_from_slice(&value.to_le_bytes());
            c2.push(script.len() as u8);
            c2.extend_from_slice(script);
        }
        c2.extend_from_slice(&[0u8; 4]);
        (c1, c2)
    }

    /// The pool's outputs: `reward` to `script`, then the anchor output if any.
    pub fn outputs(
        reward: u64,
        script: &[u8],
        anchor: Option<LedgerAnchor>,
    ) -> Vec<(u64, Vec<u8>)> {
        let mut outs = vec![(reward, script.to_vec())];
        if let Some(a) = anchor {
            outs.push((0, anchor_script(&a).to_vec()));
        }
        outs
    }

    pub fn job_paying(
        job_id: u64,
        height: u64,
        prev: BlockId,
        outs: &[(u64, Vec<u8>)],
        anchor: Option<LedgerAnchor>,
    ) -> JobCreated {
        let (coinbase1, coinbase2) = coinbase_halves(height, TAG, outs);
        JobCreated {
            job_id,
            height,
            prev_hash: prev,
            coinbase1,
            coinbase2,
            merkle_branch: vec![[0x11; 32], [0x22; 32]],
            version: 0x2000_0000,
            bits: 0x207f_ffff,
            ntime: 1_700_000_000,
            anchor,
        }
    }

    /// A job paying the pool, with `anchor` in its coinbase and its record.
    pub fn job(
        pool: &PoolIdentity,
        job_id: u64,
        height: u64,
        prev: BlockId,
        anchor: Option<LedgerAnchor>,
    ) -> JobCreated {
        job_paying(
            job_id,
            height,
            prev,
            &outputs(5_000_000_000, &pool.payout_script, anchor),
            anchor,
        )
    }

    pub fn header(job: &JobCreated, work: &ShareWork) -> [u8; 80] {
        let txid = coinbase_txid(
            &job.coinbase1,
            &work.extranonce1,
            &work.extranonce2,
            &job.coinbase2,
        );
        let root = root_from_branch(&txid, &job.merkle_branch);
        build_header(
            work.version,
            &job.prev_hash.0,
            &root,
            work.ntime,
            job.bits,
            work.nonce,
        )
    }

    pub fn meets(job: &JobCreated, work: &ShareWork, target: &Target) -> bool {
        target.is_met_by(&pool_core::pow::sha256d_header(&header(job, work)))
    }

    /// A share on `job` from extranonce1 `en1`, extranonce2 `en2`, with a nonce ground to meet
    /// [`easy_target`] (SHA-256d).
    pub fn share(job: &JobCreated, en1: u32, en2: u32) -> ShareWithWork {
        let target = easy_target();
        let mut work = ShareWork {
            extranonce1: en1.to_be_bytes().to_vec(),
            extranonce2: en2.to_be_bytes().to_vec(),
            ntime: job.ntime + 1,
            nonce: 0,
            version: job.version,
        };
        while !meets(job, &work, &target) {
            work.nonce += 1;
        }
        ShareWithWork {
            share: ShareAccepted {
                address: PayoutAddress(MINER.into()),
                worker: WorkerName("rig".into()),
                share_target: target,
                weight: target.work(),
                job_id: job.job_id,
                height: job.height,
                network_target: Target::from_compact(job.bits).unwrap(),
                time_ms: 1_700_000_000_000 + u64::from(work.nonce),
            },
            work,
        }
    }

    pub fn prev(n: u8) -> BlockId {
        BlockId([n; 32])
    }
}

use fixture::*;

fn run(events: &[Event]) -> WorkReport {
    let pool = pool();
    let mut check = WorkCheck::new(&pool);
    for (seq, e) in events.iter().enumerate() {
        check.apply(seq as u64, e);
    }
    check.finish()
}

fn honest_ledger() -> Vec<Event> {
    let pool = pool();
    let j1 = job(&pool, 1, 101, prev(1), None);
    let a = LedgerAnchor {
        seq: 3,
        hash: [0xab; 32],
    };
    let j2 = job(&pool, 2, 102, prev(2), Some(a));
    let mut events = vec![Event::JobCreated(j1.clone())];
    for en2 in 0..3 {
        events.push(Event::ShareWithWork(share(&j1, 7, en2)));
    }
    events.push(Event::JobCreated(j2.clone()));
    for en2 in 0..3 {
        events.push(Event::ShareWithWork(share(&j2, 8, en2)));
    }
    events
}

fn messages(report: &WorkReport) -> Vec<String> {
    report.findings.iter().map(|f| f.to_string()).collect()
}

#[test]
fn an_honest_ledger_passes_and_lists_each_prev_hash_once() {
    let pool = pool();
    let mut events = honest_ledger();
    // A third job on the first job's previous block, and an old-style share.
    events.push(Event::JobCreated(job(&pool, 3, 101, prev(1), None)));
    let old = share(&job(&pool, 3, 101, prev(1), None), 9, 0).share;
    events.push(Event::ShareAccepted(old));
    let report = run(&events);
    assert_eq!(messages(&report), Vec::<String>::new());
    assert_eq!(report.jobs, 3);
    assert_eq!(report.shares_checked, 6);
    assert_eq!(report.shares_without_work, 1);
    assert_eq!(report.prev_hashes, vec![(prev(1), 0), (prev(2), 4)]);
}

#[test]
fn a_changed_nonce_fails_and_names_the_share() {
    let mut events = honest_ledger();
    let Event::ShareWithWork(s) = &mut events[5] else {
        panic!("record 5 is a share")
    };
    let Event::JobCreated(job) = &honest_ledger()[4] else {
        panic!("record 4 is a job")
    };
    let job = job.clone();
    while meets(&job, &s.work, &s.share.share_target) {
        s.work.nonce += 1;
    }
    let report = run(&events);
    assert_eq!(report.findings.len(), 1, "{:?}", messages(&report));
    let f = &report.findings[0];
    assert_eq!((f.check, f.seq), ("work", Some(5)));
    assert!(f.message.contains("above its share target"), "{f}");
}

#[test]
fn a_share_counted_twice_fails_at_the_second_record() {
    let mut events = honest_ledger();
    events.push(events[2].clone());
    let report = run(&events);
    assert_eq!(messages(&report).len(), 1, "{:?}", messages(&report));
    assert_eq!(report.findings[0].seq, Some(8));
    assert!(report.findings[0].message.contains("counted twice"));
    // The same work credited to someone else is the same header: still twice.
    let mut events = honest_ledger();
    let Event::ShareWithWork(mut copy) = events[6].clone() else {
        panic!("a share")
    };
    copy.share.address = PayoutAddress("someone-else".into());
    events.push(Event::ShareWithWork(copy));
    let report = run(&events);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].seq, Some(8));
}

#[test]
fn a_job_whose_coinbase_does_not_pay_the_pool_fails_at_the_job() {
    let pool = pool();
    let other = pool_core::parse_payout_address(MINER, pool.chain)
        .unwrap()
        .script_pubkey;
    let j = job_paying(4, 101, prev(1), &outputs(5_000_000_000, &other, None), None);
    let events = vec![
        Event::JobCreated(j.clone()),
        Event::ShareWithWork(share(&j, 1, 1)),
    ];
    let report = run(&events);
    assert_eq!(report.findings.len(), 1, "{:?}", messages(&report));
    let f = &report.findings[0];
    assert_eq!(f.seq, Some(0));
    assert!(
        f.message
            .contains("job 4: the coinbase pays nothing to the pool"),
        "{f}"
    );
}

#[test]
fn an_anchor_output_must_equal_the_recorded_anchor() {
    let pool = pool();
    let a = LedgerAnchor {
        seq: 9,
        hash: [1; 32],
    };
    let b = LedgerAnchor {
        seq: 9,
        hash: [2; 32],
    };
    let outs = |anchor| outputs(50, &pool.payout_script, anchor);
    let cases = [
        (job_paying(1, 5, prev(1), &outs(Some(a)), Some(b)), true),
        (job_paying(1, 5, prev(1), &outs(None), Some(a)), true),
        (job_paying(1, 5, prev(1), &outs(Some(a)), None), true),
        (job_paying(1, 5, prev(1), &outs(Some(a)), Some(a)), false),
        (job_paying(1, 5, prev(1), &outs(None), None), false),
    ];
    for (i, (j, fails)) in cases.into_iter().enumerate() {
        let report = run(&[Event::JobCreated(j)]);
        assert_eq!(
            !report.findings.is_empty(),
            fails,
            "case {i}: {:?}",
            messages(&report)
        );
        if fails {
            assert!(report.findings[0].message.contains("anchor"), "case {i}");
        }
    }
}

#[test]
fn a_share_belongs_to_the_latest_job_with_its_id() {
    let pool = pool();
    let first = job(&pool, 1, 101, prev(1), None);
    // The pool restarted: job ids begin again at 1, on another block.
    let again = job(&pool, 1, 102, prev(2), None);
    let events = vec![
        Event::JobCreated(first.clone()),
        Event::ShareWithWork(share(&first, 1, 1)),
        Event::JobCreated(again.clone()),
        Event::ShareWithWork(share(&again, 1, 1)),
        Event::ShareWithWork(share(&first, 1, 2)),
        Event::ShareWithWork(share(&job(&pool, 7, 102, prev(2), None), 1, 1)),
    ];
    let report = run(&events);
    let seqs: Vec<Option<u64>> = report.findings.iter().map(|f| f.seq).collect();
    // Record 4 (the old job's work after the restart) fails on height and, almost surely,
    // on its hash; record 5's job 7 was never recorded.
    assert!(
        seqs.iter().all(|s| *s == Some(4) || *s == Some(5)),
        "{seqs:?}"
    );
    assert!(seqs.contains(&Some(4)) && seqs.contains(&Some(5)));
    let last = report.findings.last().unwrap();
    assert!(last.message.contains("no JobCreated before it"), "{last}");
}

#[test]
fn a_weight_above_the_target_work_or_a_wrong_extranonce_size_fails() {
    let mut events = honest_ledger();
    if let Event::ShareWithWork(s) = &mut events[1] {
        s.share.weight = Target::DIFF1.work();
    }
    let job = match &events[0] {
        Event::JobCreated(j) => j.clone(),
        _ => unreachable!(),
    };
    let mut short = share(&job, 3, 3);
    short.work.extranonce2.pop();
    while !meets(&job, &short.work, &short.share.share_target) {
        short.work.nonce += 1;
    }
    events.insert(2, Event::ShareWithWork(short));
    let report = run(&events);
    let found: Vec<(Option<u64>, bool)> = report
        .findings
        .iter()
        .map(|f| (f.seq, f.message.contains("weight")))
        .collect();
    assert_eq!(
        found,
        vec![(Some(1), true), (Some(2), false)],
        "{:?}",
        messages(&report)
    );
    assert!(report.findings[1].message.contains("room for 8"));
}

#[test]
fn a_coinbase_that_is_no_transaction_is_named() {
    let pool = pool();
    let mut j = job(&pool, 1, 101, prev(1), None);
    j.coinbase2.truncate(10);
    let report = run(&[Event::JobCreated(j.clone())]);
    assert_eq!(report.findings.len(), 1);
    assert!(report.findings[0].message.contains("not a transaction"));
    let mut j = job(&pool, 1, 101, prev(1), None);
    j.coinbase1[4] = 0;
    let report = run(&[Event::JobCreated(j)]);
    assert!(report.findings[0].message.contains("input count 0"));
}

#[test]
fn heavyhash_chains_hash_with_heavyhash() {
    let pool = pool_on("obtc-regtest");
    let j = job(&pool, 1, 101, prev(3), None);
    let mut s = share(&j, 1, 1);
    s.share.share_target = Target::MAX;
    s.share.weight = Target::MAX.work();
    let mut check = WorkCheck::new(&pool);
    check.apply(0, &Event::JobCreated(j.clone()));
    check.apply(1, &Event::ShareWithWork(s.clone()));
    // A target only SHA-256d met (by construction) is met by the HeavyHash only by chance.
    let mut tight = s.clone();
    tight.work.extranonce2 = vec![9; 4];
    let want = pool_core::pow::heavyhash(&header(&j, &tight.work));
    let mut be = want;
    be.reverse();
    tight.share.share_target = Target::from_be_bytes(be);
    tight.share.weight = tight.share.share_target.work();
    check.apply(2, &Event::ShareWithWork(tight));
    let report = check.finish();
    assert_eq!(messages(&report), Vec::<String>::new());
    assert_eq!(report.shares_checked, 2);
}

#[test]
fn findings_past_the_cap_are_counted() {
    let pool = pool();
    let mut check = WorkCheck::new(&pool);
    let s = share(&job(&pool, 1, 1, prev(1), None), 0, 0);
    for seq in 0..(MAX_FINDINGS as u64 + 5) {
        check.apply(seq, &Event::ShareWithWork(s.clone()));
    }
    let report = check.finish();
    assert_eq!(report.findings.len(), MAX_FINDINGS);
    assert_eq!(report.findings_omitted, 5);
}

/// A share on `job` (extranonce1 `en1`) with a nonce ground until the scrypt hash meets
/// [`easy_target`] (`scrypt_meets`) or until SHA-256d meets it and scrypt does not.
fn scrypt_share(job: &JobCreated, en1: u32, scrypt_meets: bool) -> ShareWithWork {
    let target = easy_target();
    let mut s = share(job, en1, 0);
    loop {
        let h = header(job, &s.work);
        let scrypt = target.is_met_by(&pool_core::pow::scrypt_header(&h));
        let sha = target.is_met_by(&pool_core::pow::sha256d_header(&h));
        if scrypt == scrypt_meets && (scrypt_meets || sha) {
            return s;
        }
        s.work.nonce += 1;
    }
}

#[test]
fn scrypt_chains_hash_with_scrypt_and_count_headers_by_sha256d_id() {
    // litecoin-regtest: scrypt proof of work, SHA-256d block ids.
    let pool = pool_on("litecoin-regtest");
    assert_eq!(pool.chain.pow, PowAlgorithm::Scrypt);
    let j = job(&pool, 1, 101, prev(4), None);
    let right = scrypt_share(&j, 1, true);
    // Meets the target by SHA-256d only: wrong on a scrypt chain.
    let wrong = scrypt_share(&j, 2, false);
    let mut check = WorkCheck::new(&pool);
    check.apply(0, &Event::JobCreated(j.clone()));
    check.apply(1, &Event::ShareWithWork(right.clone()));
    check.apply(2, &Event::ShareWithWork(wrong));
    check.apply(3, &Event::ShareWithWork(right));
    let report = check.finish();
    let found = messages(&report);
    assert_eq!(report.shares_checked, 3);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(report.findings[0].seq, Some(2));
    assert!(
        report.findings[0]
            .message
            .contains("above its share target"),
        "{found:?}"
    );
    assert_eq!(report.findings[1].seq, Some(3));
    assert!(
        report.findings[1].message.contains("counted twice"),
        "{found:?}"
    );
}

//! Property tests over random event histories with shares, blocks, orphanings, reorgs back,
//! maturities, rule changes and payments.

mod support;

use pool_core::event::{NetworkFeePayer, PayoutScheme};
use pool_core::{Event, Target};
use projections::{BlockStatus, Projection};
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::*;

const MINERS: [&str; 4] = ["m0", "m1", "m2", "m3"];

#[derive(Clone, Debug)]
enum Op {
    Share {
        miner: usize,
        worker: u8,
        weight: u64,
    },
    Found {
        reward: u64,
        finder: usize,
        work_log2: u32,
    },
    /// A block candidate; its verdict is a later `Verdict`.
    Candidate {
        reward: u64,
        finder: usize,
        work_log2: u32,
    },
    Verdict {
        block: usize,
        found: bool,
    },
    Orphan(usize),
    Reinstate(usize),
    Mature(usize),
    Rule {
        scheme: u8,
        fee_bps: u16,
        miners_pay: bool,
    },
    Prepare {
        miner: usize,
        amount: u64,
    },
    Sent {
        payment: usize,
        fee: u64,
    },
    Confirm(usize),
    Fail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..MINERS.len(), 0..2u8, 1..=8u64)
            .prop_map(|(miner, worker, weight)| Op::Share { miner, worker, weight: 2 * weight }),
        3 => (1..5_000_000u64, 0..MINERS.len(), 0..5u32)
            .prop_map(|(reward, finder, work_log2)| Op::Found { reward, finder, work_log2 }),
        2 => (1..5_000_000u64, 0..MINERS.len(), 0..5u32)
            .prop_map(|(reward, finder, work_log2)| Op::Candidate { reward, finder, work_log2 }),
        2 => (0..8usize, any::<bool>()).prop_map(|(block, found)| Op::Verdict { block, found }),
        2 => (0..8usize).prop_map(Op::Orphan),
        2 => (0..8usize).prop_map(Op::Reinstate),
        2 => (0..8usize).prop_map(Op::Mature),
        1 => (0..3u8, 0..1_000u16, any::<bool>())
            .prop_map(|(scheme, fee_bps, miners_pay)| Op::Rule { scheme, fee_bps, miners_pay }),
        1 => (0..MINERS.len(), 1..3_000_000u64).prop_map(|(miner, amount)| Op::Prepare { miner, amount }),
        1 => (0..4usize, 0..5_000u64).prop_map(|(payment, fee)| Op::Sent { payment, fee }),
        1 => (0..4usize).prop_map(Op::Confirm),
        1 => (0..4usize).prop_map(Op::Fail),
    ]
}

/// How many block numbers `events(ops)` uses.
fn ops_blocks(ops: &[Op]) -> u64 {
    ops.iter()
        .filter(|o| matches!(o, Op::Found { .. } | Op::Candidate { .. }))
        .count() as u64
}

fn scheme(n: u8) -> PayoutScheme {
    match n {
        0 => pplns(3, 2),
        1 => PayoutScheme::Prop,
        _ => PayoutScheme::Solo,
    }
}

/// Turns ops into events; block and payment references pick among those that exist (the
/// events may still not fit the state, e.g. a maturity of an orphaned block).
fn events(ops: &[Op]) -> Vec<Event> {
    let mut out = Vec::new();
    let (mut blocks, mut payments, mut time) = (0u64, 0u64, 0u64);
    // Per block: reward, finder and network target, so a verdict repeats its candidate's.
    let mut params: Vec<(u64, usize, u32)> = Vec::new();
    let pick = |i: usize, n: u64| (i as u64 % n) + 1;
    for op in ops {
        time += 7_000;
        let e = match op {
            Op::Share {
                miner,
                worker,
                weight,
            } => share(MINERS[*miner], &format!("w{worker}"), *weight, time),
            Op::Found {
                reward,
                finder,
                work_log2,
            } => {
                blocks += 1;
                params.push((*reward, *finder, *work_log2));
                found(
                    blocks,
                    *reward,
                    MINERS[*finder],
                    target_with_work_pow2(*work_log2),
                )
            }
            Op::Candidate {
                reward,
                finder,
                work_log2,
            } => {
                blocks += 1;
                params.push((*reward, *finder, *work_log2));
                candidate(
                    blocks,
                    *reward,
                    MINERS[*finder],
                    target_with_work_pow2(*work_log2),
                )
            }
            Op::Verdict { block, found: true } if blocks > 0 => {
                let n = pick(*block, blocks);
                let (reward, finder, work_log2) = params[n as usize - 1];
                found(n, reward, MINERS[finder], target_with_work_pow2(work_log2))
            }
            Op::Verdict {
                block,
                found: false,
            } if blocks > 0 => {
                let n = pick(*block, blocks);
                rejected(n, "high-hash", MINERS[params[n as usize - 1].1])
            }
            Op::Orphan(i) if blocks > 0 => orphaned(pick(*i, blocks)),
            Op::Reinstate(i) if blocks > 0 => reinstated(pick(*i, blocks)),
            Op::Mature(i) if blocks > 0 => matured(pick(*i, blocks)),
            Op::Rule {
                scheme: s,
                fee_bps,
                miners_pay,
            } => {
                let payer = if *miners_pay {
                    NetworkFeePayer::Miners
                } else {
                    NetworkFeePayer::Pool
                };
                rule(scheme(*s), *fee_bps, payer)
            }
            Op::Prepare { miner, amount } => {
                payments += 1;
                prepared(
                    payments,
                    &[(MINERS[*miner], *amount), ("pool-fee", amount / 10)],
                )
            }
            Op::Sent { payment, fee } if payments > 0 => sent(pick(*payment, payments), *fee),
            Op::Confirm(i) if payments > 0 => confirmed(pick(*i, payments)),
            Op::Fail(i) if payments > 0 => failed(pick(*i, payments)),
            _ => continue,
        };
        out.push(e);
    }
    out
}

fn all_credits(p: &Projection) -> Vec<BTreeMap<pool_core::event::PayoutAddress, pool_core::Sats>> {
    p.blocks().into_iter().map(|b| b.credits).collect()
}

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides the default for longer runs.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Applying event by event, with a snapshot and restore at any point, gives the same bytes
    /// as one full replay; and money is conserved after every event.
    #[test]
    fn replay_equals_incremental_and_money_is_conserved(
        ops in prop::collection::vec(op(), 0..120),
        cut in any::<prop::sample::Index>(),
    ) {
        let events = events(&ops);
        let full = replay(&events);
        let cut = cut.index(events.len() + 1);
        let mut p = Projection::new(Default::default());
        for (seq, e) in events.iter().enumerate() {
            if seq == cut {
                p = Projection::from_snapshot(&p.snapshot().unwrap()).unwrap();
            }
            p.apply(seq as u64, e).unwrap();
            assert_conserved(&p);
        }
        prop_assert_eq!(p.snapshot().unwrap(), full.snapshot().unwrap());
    }

    /// Orphaning an immature block and bringing it back, with no maturity in between (other
    /// shares, blocks, rule changes and payments may happen), gives the same state as if it had
    /// never left the chain.
    #[test]
    fn orphan_then_reinstate_is_the_identity(
        before in prop::collection::vec(op(), 1..80),
        between in prop::collection::vec(op(), 0..30),
        which in any::<prop::sample::Index>(),
    ) {
        let head = events(&before);
        let base = replay(&head);
        // Block numbers as `events` gives them (candidates count too).
        let number = |id| (1..=ops_blocks(&before)).find(|n| block_id(*n) == id);
        let immature: Vec<u64> = base
            .blocks()
            .iter()
            .filter(|b| b.status == BlockStatus::Immature)
            .filter_map(|b| number(b.block_id))
            .collect();
        prop_assume!(!immature.is_empty());
        let n = immature[which.index(immature.len())];
        // Events between may not touch block lifecycles (no maturity, no orphaning).
        let blocks_before = ops_blocks(&before);
        let mut between_events = Vec::new();
        let mut next_block = blocks_before;
        let mut next_payment = base.payments().len() as u64;
        for e in events(&between) {
            match e {
                Event::ShareAccepted(_) | Event::PayoutRuleSet(_) => between_events.push(e),
                Event::BlockFound(mut f) => {
                    next_block += 1;
                    f.block_id = block_id(next_block);
                    between_events.push(Event::BlockFound(f));
                }
                Event::PaymentPrepared(mut pp) => {
                    next_payment += 1;
                    pp.payment_id = next_payment;
                    between_events.push(Event::PaymentPrepared(pp));
                }
                _ => {}
            }
        }
        // Both histories give every common event the same sequence number (the projection
        // records some, e.g. when a block was found); the one without the reorg has gaps.
        let mut with_reorg = head.clone();
        with_reorg.push(orphaned(n));
        with_reorg.extend(between_events.iter().cloned());
        with_reorg.push(reinstated(n));
        let a = replay(&with_reorg);
        let mut b = replay(&head);
        for (seq, e) in (head.len() as u64 + 1..).zip(&between_events) {
            b.apply(seq, e).unwrap();
        }
        assert_conserved(&a);
        prop_assert_eq!(a.anomalies(), b.anomalies());
        prop_assert_eq!(a.blocks(), b.blocks());
        prop_assert_eq!(a.balances(), b.balances());
        prop_assert!(a.state_bytes().unwrap() == b.state_bytes().unwrap());
    }

    /// Splitting every share of weight 2w into two shares of w changes no credit under PPLNS
    /// and PROP (nor under SOLO).
    #[test]
    fn splitting_shares_changes_no_credit(
        ops in prop::collection::vec(op(), 0..120),
        prop_scheme in any::<bool>(),
    ) {
        let mut head = vec![rule(scheme(if prop_scheme { 1 } else { 0 }), 150, NetworkFeePayer::Pool)];
        let ops: Vec<Op> = ops.into_iter().filter(|o| !matches!(o, Op::Rule { .. })).collect();
        head.extend(events(&ops));
        let mut split = Vec::new();
        for e in &head {
            match e {
                Event::ShareAccepted(s) => {
                    let mut half = s.clone();
                    half.weight = pool_core::Work::from_u256(s.weight.as_u256() >> 1);
                    split.push(Event::ShareAccepted(half.clone()));
                    split.push(Event::ShareAccepted(half));
                }
                other => split.push(other.clone()),
            }
        }
        let a = replay(&head);
        let b = replay(&split);
        prop_assert_eq!(all_credits(&a), all_credits(&b));
        prop_assert_eq!(a.balances(), b.balances());
    }

    /// Under PROP, the order of shares inside a round does not change any credit.
    #[test]
    fn share_order_inside_a_round_does_not_change_prop_credits(
        ops in prop::collection::vec(op(), 0..120),
        rotate in 0..7usize,
    ) {
        let ops: Vec<Op> = ops.into_iter().filter(|o| !matches!(o, Op::Rule { .. })).collect();
        let mut head = vec![rule(PayoutScheme::Prop, 250, NetworkFeePayer::Miners)];
        head.extend(events(&ops));
        // Reorder each run of consecutive shares (a run never crosses a block boundary).
        let mut reordered = Vec::new();
        let mut run: Vec<Event> = Vec::new();
        for e in head.iter().cloned().chain(std::iter::once(matured(0))) {
            if matches!(e, Event::ShareAccepted(_)) {
                run.push(e);
                continue;
            }
            run.reverse();
            if !run.is_empty() {
                let k = rotate % run.len();
                run.rotate_left(k);
            }
            reordered.append(&mut run);
            reordered.push(e);
        }
        reordered.pop();
        let a = replay(&head);
        let b = replay(&reordered);
        prop_assert_eq!(all_credits(&a), all_credits(&b));
        prop_assert_eq!(a.balances(), b.balances());
    }
}

#[test]
fn the_target_helper_gives_exact_work() {
    for k in 0..6 {
        assert_eq!(
            target_with_work_pow2(k).work().as_u256(),
            ruint::aliases::U256::from(1u64 << k)
        );
    }
    assert_eq!(target_with_work_pow2(0), Target::MAX);
}

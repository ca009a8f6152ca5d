//! Property tests over random event histories with shares, blocks, orphanings, reorgs back,
//! maturities, rule changes and payments.

mod support;

use pool_core::event::{NetworkFeePayer, PayoutScheme};
use pool_core::{Event, Sats, Target};
use projections::{BlockStatus, PaymentCheck, PaymentRefusal, Projection};
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::*;

const MINERS: [&str; 4] = ["m0", "m1", "m2", "m3"];
const CONFLICT: &str = "conflicting spend confirmed: a conflicting spend of input 0";

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
    /// A lifecycle event of the block `back` places before the newest (a chain watcher orphans,
    /// reinstates and matures recent blocks).
    Recent {
        what: Lifecycle,
        back: usize,
    },
    Rule {
        scheme: u8,
        fee_bps: u16,
        miners_pay: bool,
    },
    Prepare {
        miner: usize,
        amount: u64,
    },
    Signed {
        payment: usize,
        fee: u64,
    },
    /// `as_signed`: with the txid and fee of the payment's signing, when it has one.
    Sent {
        payment: usize,
        fee: u64,
        as_signed: bool,
    },
    Confirm(usize),
    /// `conflict`: with a reason that names a conflicting spend (the lane's rule for signed
    /// and sent payments).
    Fail {
        payment: usize,
        conflict: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum Lifecycle {
    Orphan,
    Reinstate,
    Mature,
    Found,
    Rejected,
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
        1 => (0..4usize, 0..5_000u64).prop_map(|(payment, fee)| Op::Signed { payment, fee }),
        1 => (0..4usize, 0..5_000u64, any::<bool>())
            .prop_map(|(payment, fee, as_signed)| Op::Sent { payment, fee, as_signed }),
        1 => (0..4usize).prop_map(Op::Confirm),
        1 => (0..4usize, any::<bool>()).prop_map(|(payment, conflict)| Op::Fail { payment, conflict }),
    ]
}

/// Ops for the lane test: more maturities and payment steps, so payments get far.
fn lane_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..MINERS.len(), 0..2u8, 1..=8u64)
            .prop_map(|(miner, worker, weight)| Op::Share { miner, worker, weight: 2 * weight }),
        3 => (1..5_000_000u64, 0..MINERS.len(), 0..5u32)
            .prop_map(|(reward, finder, work_log2)| Op::Found { reward, finder, work_log2 }),
        1 => (1..5_000_000u64, 0..MINERS.len(), 0..5u32)
            .prop_map(|(reward, finder, work_log2)| Op::Candidate { reward, finder, work_log2 }),
        1 => (0..8usize, any::<bool>()).prop_map(|(block, found)| Op::Verdict { block, found }),
        1 => (0..8usize).prop_map(Op::Orphan),
        1 => (0..8usize).prop_map(Op::Reinstate),
        4 => (0..8usize).prop_map(Op::Mature),
        1 => (0..3u8, 0..1_000u16, any::<bool>())
            .prop_map(|(scheme, fee_bps, miners_pay)| Op::Rule { scheme, fee_bps, miners_pay }),
        3 => (0..MINERS.len(), 1..3_000_000u64).prop_map(|(miner, amount)| Op::Prepare { miner, amount }),
        3 => (0..4usize, 0..5_000u64).prop_map(|(payment, fee)| Op::Signed { payment, fee }),
        3 => (0..4usize, 0..5_000u64, prop::bool::weighted(0.8))
            .prop_map(|(payment, fee, as_signed)| Op::Sent { payment, fee, as_signed }),
        2 => (0..4usize).prop_map(Op::Confirm),
        2 => (0..4usize, prop::bool::weighted(0.8))
            .prop_map(|(payment, conflict)| Op::Fail { payment, conflict }),
    ]
}

/// Ops for long histories of many blocks: lifecycle events mostly for recent blocks, as a chain
/// watcher sends them, and some for any block however old (a reinstatement of an old orphan, a
/// late verdict of an old candidate, a maturity out of order).
fn many_blocks_op() -> impl Strategy<Value = Op> {
    let lifecycle = prop_oneof![
        3 => Just(Lifecycle::Orphan),
        3 => Just(Lifecycle::Reinstate),
        3 => Just(Lifecycle::Mature),
        1 => Just(Lifecycle::Found),
        1 => Just(Lifecycle::Rejected),
    ];
    prop_oneof![
        8 => (0..MINERS.len(), 0..2u8, 1..=8u64)
            .prop_map(|(miner, worker, weight)| Op::Share { miner, worker, weight: 2 * weight }),
        3 => (1..5_000_000u64, 0..MINERS.len(), 0..5u32)
            .prop_map(|(reward, finder, work_log2)| Op::Found { reward, finder, work_log2 }),
        2 => (1..5_000_000u64, 0..MINERS.len(), 0..5u32)
            .prop_map(|(reward, finder, work_log2)| Op::Candidate { reward, finder, work_log2 }),
        10 => (lifecycle, 0..6usize).prop_map(|(what, back)| Op::Recent { what, back }),
        1 => (0..10_000usize, any::<bool>()).prop_map(|(block, found)| Op::Verdict { block, found }),
        1 => (0..10_000usize).prop_map(Op::Orphan),
        1 => (0..10_000usize).prop_map(Op::Reinstate),
        1 => (0..10_000usize).prop_map(Op::Mature),
        1 => (0..3u8, 0..1_000u16, any::<bool>())
            .prop_map(|(scheme, fee_bps, miners_pay)| Op::Rule { scheme, fee_bps, miners_pay }),
        1 => (0..MINERS.len(), 1..3_000_000u64).prop_map(|(miner, amount)| Op::Prepare { miner, amount }),
        1 => (0..4usize, 0..5_000u64, any::<bool>())
            .prop_map(|(payment, fee, as_signed)| Op::Sent { payment, fee, as_signed }),
        1 => (0..4usize).prop_map(Op::Confirm),
        1 => (0..4usize, any::<bool>()).prop_map(|(payment, conflict)| Op::Fail { payment, conflict }),
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

/// Turns ops into events, one by one; block and payment references pick among those that
/// exist (the events may still not fit the state, e.g. a maturity of an orphaned block).
#[derive(Default)]
struct EventMaker {
    blocks: u64,
    payments: u64,
    time: u64,
    /// Per block: reward, finder and network target, so a verdict repeats its candidate's.
    params: Vec<(u64, usize, u32)>,
    /// Per payment id: the network fee of its latest signing.
    signed_fees: BTreeMap<u64, u64>,
}

impl EventMaker {
    fn event(&mut self, op: &Op) -> Option<Event> {
        let pick = |i: usize, n: u64| (i as u64 % n) + 1;
        self.time += 7_000;
        let e = match op {
            Op::Share {
                miner,
                worker,
                weight,
            } => share(MINERS[*miner], &format!("w{worker}"), *weight, self.time),
            Op::Found {
                reward,
                finder,
                work_log2,
            } => {
                self.blocks += 1;
                self.params.push((*reward, *finder, *work_log2));
                found(
                    self.blocks,
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
                self.blocks += 1;
                self.params.push((*reward, *finder, *work_log2));
                candidate(
                    self.blocks,
                    *reward,
                    MINERS[*finder],
                    target_with_work_pow2(*work_log2),
                )
            }
            Op::Verdict { block, found } if self.blocks > 0 => {
                self.verdict(pick(*block, self.blocks), *found)
            }
            Op::Orphan(i) if self.blocks > 0 => orphaned(pick(*i, self.blocks)),
            Op::Reinstate(i) if self.blocks > 0 => reinstated(pick(*i, self.blocks)),
            Op::Mature(i) if self.blocks > 0 => matured(pick(*i, self.blocks)),
            Op::Recent { what, back } if self.blocks > 0 => {
                let n = self.blocks - *back as u64 % self.blocks;
                match what {
                    Lifecycle::Orphan => orphaned(n),
                    Lifecycle::Reinstate => reinstated(n),
                    Lifecycle::Mature => matured(n),
                    Lifecycle::Found => self.verdict(n, true),
                    Lifecycle::Rejected => self.verdict(n, false),
                }
            }
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
                self.payments += 1;
                prepared(
                    self.payments,
                    &[(MINERS[*miner], *amount), ("pool-fee", amount / 10)],
                )
            }
            Op::Signed { payment, fee } if self.payments > 0 => {
                let id = pick(*payment, self.payments);
                self.signed_fees.insert(id, *fee);
                signed(id, *fee)
            }
            Op::Sent {
                payment,
                fee,
                as_signed,
            } if self.payments > 0 => {
                let id = pick(*payment, self.payments);
                match self.signed_fees.get(&id) {
                    Some(signed_fee) if *as_signed => sent(id, *signed_fee),
                    _ => sent(id, *fee),
                }
            }
            Op::Confirm(i) if self.payments > 0 => confirmed(pick(*i, self.payments)),
            Op::Fail { payment, conflict } if self.payments > 0 => {
                let id = pick(*payment, self.payments);
                if *conflict {
                    failed_because(id, CONFLICT)
                } else {
                    failed(id)
                }
            }
            _ => return None,
        };
        Some(e)
    }
}

impl EventMaker {
    /// The node's verdict on block `n`: found with its candidate's reward, finder and target, or
    /// refused.
    fn verdict(&self, n: u64, found_it: bool) -> Event {
        let (reward, finder, work_log2) = self.params[n as usize - 1];
        if found_it {
            found(n, reward, MINERS[finder], target_with_work_pow2(work_log2))
        } else {
            rejected(n, "high-hash", MINERS[finder])
        }
    }
}

fn events(ops: &[Op]) -> Vec<Event> {
    let mut maker = EventMaker::default();
    ops.iter().filter_map(|op| maker.event(op)).collect()
}

/// The payment an event is about (`None`: not a payment event).
fn payment_of(e: &Event) -> Option<u64> {
    match e {
        Event::PaymentPrepared(p) => Some(p.payment_id),
        Event::PaymentSigned(p) => Some(p.payment_id),
        Event::PaymentSent(p) => Some(p.payment_id),
        Event::PaymentConfirmed(p) => Some(p.payment_id),
        Event::PaymentFailed(p) => Some(p.payment_id),
        _ => None,
    }
}

/// A payment request as the payout process would make it from the projection's state, so most
/// follow the state table and some do not: prepares to addresses with a payable balance, within
/// it four times in five, with a reused id one time in seven; the other
/// events for an open payment (or, one time in four, the latest payment), sent with the signed
/// fee when `as_signed`. `None` for ops that are not payments.
fn lane_request(p: &Projection, op: &Op) -> Option<Event> {
    let target = |i: usize| {
        let open = p.open_payments();
        if !open.is_empty() && i % 4 != 3 {
            return Some(open[i % open.len()].payment_id);
        }
        p.payments().last().map(|v| v.payment_id)
    };
    let e = match op {
        Op::Prepare { miner, amount } => {
            let id = match amount % 7 {
                0 => p.next_payment_id().saturating_sub(1),
                _ => p.next_payment_id(),
            };
            // Up to three of the addresses with something payable, from the miner's position.
            let payable = p.payable_balances();
            let outputs: Vec<(String, u64)> = if payable.is_empty() {
                vec![(MINERS[*miner].to_string(), *amount)]
            } else {
                let k = 1 + *amount as usize % payable.len().min(3);
                (0..k)
                    .map(|j| &payable[(miner + j) % payable.len()])
                    .map(|(a, have)| {
                        let fits = 1 + amount % have.0;
                        (a.0.clone(), if amount % 5 == 0 { *amount } else { fits })
                    })
                    .collect()
            };
            let outputs: Vec<(&str, u64)> = outputs.iter().map(|(a, s)| (a.as_str(), *s)).collect();
            prepared(id, &outputs)
        }
        Op::Signed { payment, fee } => signed(target(*payment)?, *fee),
        Op::Sent {
            payment,
            fee,
            as_signed,
        } => {
            let id = target(*payment)?;
            let signed_fee = p
                .open_payments()
                .into_iter()
                .find(|o| o.payment_id == id && o.raw_tx.is_some())
                .map(|o| o.network_fee.0);
            match signed_fee {
                Some(f) if *as_signed => sent(id, f),
                _ => sent(id, *fee),
            }
        }
        Op::Confirm(i) => confirmed(target(*i)?),
        Op::Fail { payment, conflict } => {
            let id = target(*payment)?;
            if *conflict {
                failed_because(id, CONFLICT)
            } else {
                failed(id)
            }
        }
        _ => return None,
    };
    Some(e)
}

fn is_payment_op(op: &Op) -> bool {
    matches!(
        op,
        Op::Prepare { .. } | Op::Signed { .. } | Op::Sent { .. } | Op::Confirm(_) | Op::Fail { .. }
    )
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
        // The reorg property rejects histories with no immature block (or whose blocks were
        // reinstated before): allow enough rejects for long runs too.
        max_global_rejects: cases.saturating_mul(20).max(1024),
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

    /// The fold walks only the blocks whose PROP round an event can change; the whole-ledger walk
    /// it replaced (`Projection::with_full_round_walk`) gives the same state bytes after every
    /// event of long histories of many blocks under PROP (and the other schemes, after a rule
    /// change), with lifecycle events for recent and old blocks. The fold is restored from its
    /// snapshot at a random point, so its derived indices are also rebuilt from loaded state.
    #[test]
    fn local_round_walk_equals_the_full_walk(
        ops in prop::collection::vec(many_blocks_op(), 0..400),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut history = vec![rule(PayoutScheme::Prop, 150, NetworkFeePayer::Pool)];
        history.extend(events(&ops));
        let cut = cut.index(history.len() + 1);
        let mut fold = Projection::new(Default::default());
        let mut oracle = Projection::with_full_round_walk(Default::default());
        for (seq, e) in history.iter().enumerate() {
            if seq == cut {
                fold = Projection::from_snapshot(&fold.snapshot().unwrap()).unwrap();
            }
            fold.apply(seq as u64, e).unwrap();
            oracle.apply(seq as u64, e).unwrap();
            prop_assert_eq!(fold.blocks(), oracle.blocks(), "after {} {:?}", seq, e);
            let same = fold.state_bytes().unwrap() == oracle.state_bytes().unwrap();
            prop_assert!(same, "state bytes differ after {} {:?}", seq, e);
        }
    }

    /// Orphaning an immature block and bringing it back, with no maturity in between (other
    /// shares, blocks, rule changes and payments may happen), gives the same state as if it had
    /// never left the chain.
    ///
    /// The block is one that was never reinstated before. A block reinstated after its whole
    /// PROP round went into a block that matured takes the open round of that moment as its
    /// round (the crate docs); if that was empty, its round is empty, and a second reinstatement
    /// takes the open round of its own moment, which then holds the shares accepted since: by
    /// the rule, not the identity (seed 6c31bb14... found it).
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
        let reinstated_before = head
            .iter()
            .any(|e| matches!(e, Event::BlockReinstated(r) if r.block_id == block_id(n)));
        prop_assume!(!reinstated_before);
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

    /// The payment lane: payment requests made from the state (`lane_request`) are applied only
    /// when `check_payment` finds them valid, every other event as it comes. A valid event folds without an anomaly and is then a
    /// repeat of itself at its sequence; a repeat names the payment's latest event; money is
    /// conserved; no miner ever owes anything (only the fee address can, when the pool pays
    /// network fees); no address is in two open payments.
    #[test]
    fn lane_checked_payments_fold_without_anomalies(ops in prop::collection::vec(lane_op(), 0..160)) {
        let mut p = Projection::new(Default::default());
        let mut maker = EventMaker::default();
        let mut latest: BTreeMap<u64, (u64, Event)> = BTreeMap::new();
        for op in &ops {
            let made = if is_payment_op(op) {
                lane_request(&p, op)
            } else {
                maker.event(op)
            };
            let Some(e) = made else { continue };
            let seq = p.next_seq();
            let Some(id) = payment_of(&e) else {
                let refused = matches!(
                    p.check_payment(&e),
                    Err(PaymentRefusal::NotAPaymentEvent { .. })
                );
                prop_assert!(refused);
                p.apply(seq, &e).unwrap();
                continue;
            };
            match p.check_payment(&e) {
                Ok(PaymentCheck::Valid) => {
                    let anomalies = p.anomalies().len();
                    p.apply(seq, &e).unwrap();
                    prop_assert_eq!(p.anomalies().len(), anomalies, "{:?}", e);
                    prop_assert_eq!(p.check_payment(&e), Ok(PaymentCheck::Repeat { seq }));
                    latest.insert(id, (seq, e));
                }
                Ok(PaymentCheck::Repeat { seq: at }) => {
                    prop_assert_eq!(latest.get(&id), Some(&(at, e)));
                }
                Err(_) => {}
            }
            assert_conserved(&p);
            for (a, b) in p.balances() {
                if MINERS.contains(&a.0.as_str()) {
                    prop_assert_eq!(b.debt, Sats::ZERO, "{}", a);
                }
            }
            let mut paid: Vec<_> = p
                .open_payments()
                .into_iter()
                .flat_map(|o| o.outputs.into_iter().map(|o| o.address))
                .collect();
            let n = paid.len();
            paid.sort();
            paid.dedup();
            prop_assert_eq!(paid.len(), n);
        }
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

    /// A forgetting projection (the live pool's) reports exactly what one that keeps every share
    /// reports, after every event of random histories: blocks and their credits, balances,
    /// totals, statistics, candidates, payments, anomalies, share count and horizon. Tiny mark
    /// intervals and caps make it forget nearly everything, so most PPLNS blocks refill their
    /// windows from the "ledger" (the history); shares carry varied network targets, so the
    /// kept windows vary too. A snapshot and restore at a random point reaches the same bytes
    /// as the fold without one.
    #[test]
    fn forgetting_equals_keeping_everything(
        ops in prop::collection::vec(op(), 0..200),
        blocks_ops in prop::collection::vec(many_blocks_op(), 0..120),
        targets in prop::collection::vec(0..6u32, 1..4),
        mark_every in 1..6u64,
        max_shares in 0..12u64,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut history = events(&ops);
        history.extend(events(&blocks_ops));
        let mut n = 0;
        for e in &mut history {
            if let Event::ShareAccepted(s) = e {
                s.network_target = target_with_work_pow2(targets[n % targets.len()]);
                n += 1;
            }
        }
        let cut = cut.index(history.len() + 1);
        let mut keeper = Projection::keeping_with_marks(Default::default(), mark_every);
        let mut forgetter = Projection::forgetting_with(Default::default(), mark_every, max_shares);
        let mut straight = Projection::forgetting_with(Default::default(), mark_every, max_shares);
        for (seq, e) in history.iter().enumerate() {
            if seq == cut {
                forgetter = Projection::from_snapshot(&forgetter.snapshot().unwrap()).unwrap();
                prop_assert!(forgetter.is_forgetting());
            }
            keeper.apply(seq as u64, e).unwrap();
            apply_refilling(&mut forgetter, &history, seq);
            apply_refilling(&mut straight, &history, seq);
            prop_assert_eq!(forgetter.blocks(), keeper.blocks(), "after {} {:?}", seq, e);
            prop_assert_eq!(forgetter.balances(), keeper.balances());
            prop_assert_eq!(forgetter.pool_totals(), keeper.pool_totals());
            prop_assert_eq!(forgetter.worker_stats(), keeper.worker_stats());
            prop_assert_eq!(forgetter.open_candidates(), keeper.open_candidates());
            prop_assert_eq!(forgetter.payments(), keeper.payments());
            prop_assert_eq!(forgetter.open_payments(), keeper.open_payments());
            prop_assert_eq!(forgetter.anomalies(), keeper.anomalies());
            prop_assert_eq!(forgetter.share_count(), keeper.share_count());
            prop_assert_eq!(forgetter.horizon(), keeper.horizon());
            prop_assert!(forgetter.horizon() <= forgetter.next_seq());
        }
        prop_assert_eq!(forgetter.address_stats(), keeper.address_stats());
        prop_assert_eq!(forgetter.snapshot().unwrap(), straight.snapshot().unwrap());
    }
}

/// Applies `history[seq]`, giving back forgotten shares from the history as often as asked.
fn apply_refilling(p: &mut Projection, history: &[Event], seq: usize) {
    loop {
        match p.apply(seq as u64, &history[seq]) {
            Ok(()) => return,
            Err(projections::ProjectionError::SharesForgotten { .. }) => {
                let (from, to) = p.refill_range(&history[seq]).expect("a range to refill");
                let shares = history[from as usize..to as usize]
                    .iter()
                    .filter_map(|e| match e {
                        Event::ShareAccepted(s) => Some(s),
                        _ => None,
                    });
                p.refill(shares).expect("refill");
            }
            Err(e) => panic!("apply {seq}: {e}"),
        }
    }
}

#[test]
fn a_forgetting_projection_keeps_a_bounded_window() {
    let mut p = Projection::forgetting_with(Default::default(), 16, 64);
    let mut keeper = Projection::keeping_with_marks(Default::default(), 16);
    for seq in 0..10_000u64 {
        let e = share(MINERS[(seq % 4) as usize], "w", 2, seq * 10);
        p.apply(seq, &e).unwrap();
        keeper.apply(seq, &e).unwrap();
        assert!(
            p.retained_shares() <= 64 + 16,
            "{} at {seq}",
            p.retained_shares()
        );
    }
    assert_eq!(keeper.retained_shares(), 10_000);
    assert_eq!(p.share_count(), 10_000);
    // The default rule's window at the shares' network target (work 1) is 2: the horizon is
    // the mark at or before the share two before the end.
    assert_eq!(p.horizon(), 9_984);
    assert_eq!(p.horizon(), keeper.horizon());
    // A block whose window (2 x 2^8 = 512 of weight: 256 shares) reaches forgotten shares is
    // refused until they are refilled, then credits what the keeper credits.
    let history: Vec<Event> = (0..10_000u64)
        .map(|seq| share(MINERS[(seq % 4) as usize], "w", 2, seq * 10))
        .chain(std::iter::once(found(
            1,
            1_000_000,
            MINERS[0],
            target_with_work_pow2(8),
        )))
        .collect();
    let block = &history[10_000];
    assert!(matches!(
        p.apply(10_000, block),
        Err(projections::ProjectionError::SharesForgotten { seq: 10_000 })
    ));
    assert!(
        p.refill([].iter()).is_err(),
        "a wrong refill changes nothing"
    );
    apply_refilling(&mut p, &history, 10_000);
    keeper.apply(10_000, block).unwrap();
    assert_eq!(p.blocks(), keeper.blocks());
    assert_eq!(p.balances(), keeper.balances());
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

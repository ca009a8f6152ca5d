//! Worked examples: the seed system's PROP case, a PPLNS window spanning several blocks, SOLO,
//! payments with debts and network fees, statistics, and snapshot + tail == full replay.

mod support;

use pool_core::event::{NetworkFeePayer, PayoutScheme};
use pool_core::{Sats, Target};
use projections::{AnomalyKind, BlockStatus, Projection, ProjectionError};
use support::*;

#[test]
fn pplns_window_spans_several_blocks_and_cuts_the_edge_share() {
    // Block work 1 (Target::MAX), window 10/1: N = 10 units of share weight.
    let t = Target::MAX;
    let events = vec![
        rule(pplns(10, 1), 100, NetworkFeePayer::Pool),
        share("A", "r", 4, 1),
        share("B", "r", 4, 2),
        found(1, 1_000, "B", t),
        share("C", "r", 3, 3),
        share("A", "r", 2, 4),
        found(2, 1_000, "C", t),
        share("D", "r", 10, 5),
        found(3, 1_001, "D", t),
    ];
    let p = replay(&events);
    // Block 1: only 8 of weight exist, all count. Fee 1% = 10; 990 split 4:4.
    assert_eq!(credits(&p, 1), map(&[("A", 495), ("B", 495)]));
    // Block 2: total 13, window edge at 3: A's first share (ends at 4) counts for 1.
    // Weights A 1+2 = 3, B 4, C 3 -> 990 * (3, 4, 3) / 10.
    assert_eq!(credits(&p, 2), map(&[("A", 297), ("B", 396), ("C", 297)]));
    // Block 3: D's share alone fills the window. Fee floor(1001 / 100) = 10.
    assert_eq!(credits(&p, 3), map(&[("D", 991)]));
    assert_eq!(p.block(&block_id(3)).unwrap().fee, Sats(10));
    assert_eq!(p.balance(&addr("pool-fee")).unwrap().immature, Sats(30));
    assert_conserved(&p);
}

#[test]
fn pplns_window_scales_with_the_network_target() {
    // Block work 2^3 = 8, window 1/2: N = 4; shares 3 (X), 3 (Y): X counts 1, Y 3.
    let events = vec![
        rule(pplns(1, 2), 0, NetworkFeePayer::Pool),
        share("X", "r", 3, 1),
        share("Y", "r", 3, 2),
        found(1, 400, "Y", target_with_work_pow2(3)),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("X", 100), ("Y", 300)]));
}

#[test]
fn remainder_satoshis_go_to_the_largest_fractions_then_address_order() {
    let events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("b", "r", 1, 1),
        share("a", "r", 1, 2),
        share("c", "r", 1, 3),
        found(1, 100, "a", Target::MAX),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("a", 34), ("b", 33), ("c", 33)]));
}

/// The seed system's own case: a block's round is the shares since the previous block that was
/// not orphaned; a block that disappears from the chain has its shares roll forward into the
/// next round; and if it comes back after that round matured, it takes the open round.
#[test]
fn seed_system_prop_case_with_a_disappeared_block() {
    let t = Target::MAX;
    let mut events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("X", "r", 2, 1),
        share("Y", "r", 1, 2),
        found(1, 300, "X", t),
        matured(1),
        // Block 1 was paid: the next round starts after it.
        prepared(1, &[("X", 200), ("Y", 100)]),
        sent(1, 0),
        confirmed(1),
        share("X", "r", 1, 3),
        share("Z", "r", 1, 4),
        found(2, 400, "Z", t),
        share("Y", "r", 2, 5),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("X", 200), ("Y", 100)]));
    assert_eq!(credits(&p, 2), map(&[("X", 200), ("Z", 200)]));
    assert_eq!(p.balance(&addr("X")).unwrap().paid, Sats(200));

    // Block 2 disappears: its shares roll into the open round and then into block 3's round.
    events.push(orphaned(2));
    events.push(found(3, 800, "Y", t));
    let p = replay(&events);
    assert_eq!(p.block(&block_id(2)).unwrap().status, BlockStatus::Orphaned);
    assert_eq!(
        credits(&p, 3),
        map(&[("X", 200), ("Y", 400), ("Z", 200)]),
        "round of 3 = X1 Z1 (block 2's) + Y2"
    );
    assert_eq!(p.balance(&addr("Z")).unwrap().immature, Sats(200));
    assert_conserved(&p);

    // Block 3 matures with that round; then block 2 comes back. What block 3 credited stays;
    // block 2 takes the open round (shares since block 3).
    events.push(matured(3));
    events.push(share("W", "r", 5, 6));
    events.push(reinstated(2));
    let p = replay(&events);
    assert_eq!(credits(&p, 3), map(&[("X", 200), ("Y", 400), ("Z", 200)]));
    assert_eq!(credits(&p, 2), map(&[("W", 400)]));
    assert_eq!(p.balance(&addr("W")).unwrap().immature, Sats(400));
    assert_conserved(&p);

    // The next block's round starts after the shares block 2 took.
    events.push(share("V", "r", 1, 7));
    events.push(found(4, 100, "V", t));
    let p = replay(&events);
    assert_eq!(credits(&p, 4), map(&[("V", 100)]));
    assert_conserved(&p);
}

#[test]
fn prop_reinstated_block_takes_its_round_back_from_an_immature_block() {
    let t = Target::MAX;
    let base = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("X", "r", 1, 1),
        found(1, 100, "X", t),
        share("Y", "r", 1, 2),
        found(2, 100, "Y", t),
    ];
    let mut events = base.clone();
    events.push(orphaned(1));
    let p = replay(&events);
    assert_eq!(credits(&p, 2), map(&[("X", 50), ("Y", 50)]));
    events.push(reinstated(1));
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("X", 100)]));
    assert_eq!(credits(&p, 2), map(&[("Y", 100)]));
    assert_eq!(
        p.state_bytes().unwrap(),
        replay(&base).state_bytes().unwrap()
    );
}

#[test]
fn prop_block_that_took_the_open_round_passes_it_on_when_orphaned_again() {
    let t = Target::MAX;
    let mut events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("X", "r", 1, 1),
        found(1, 100, "X", t),
        share("Y", "r", 1, 2),
        found(2, 100, "Y", t),
        // Block 1's round rolls into block 2's, which matures with it.
        orphaned(1),
        matured(2),
        // Block 1 comes back with nothing of its round left: it takes the open round (W).
        share("W", "r", 4, 3),
        reinstated(1),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("W", 100)]));
    assert_eq!(credits(&p, 2), map(&[("X", 50), ("Y", 50)]));
    // It leaves again: the shares it took (W) roll forward past the matured block 2, into the
    // next block's round with those accepted since (V).
    events.extend([share("V", "r", 2, 4), orphaned(1), found(3, 600, "V", t)]);
    let p = replay(&events);
    assert_eq!(credits(&p, 3), map(&[("V", 200), ("W", 400)]));
    assert_conserved(&p);
    assert_same_as_full_round_walk(&events);
}

#[test]
fn solo_pays_the_finder_and_empty_rounds_pay_the_finder() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Solo, 200, NetworkFeePayer::Pool),
        share("X", "r", 5, 1),
        found(1, 1_000, "Y", t),
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        found(2, 500, "Z", t),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("Y", 980)]));
    assert_eq!(p.block(&block_id(1)).unwrap().fee, Sats(20));
    assert_eq!(credits(&p, 2), map(&[("Z", 500)]));
    assert_conserved(&p);
}

#[test]
fn the_default_rule_is_pplns_without_fee() {
    let events = vec![
        share("X", "r", 1, 1),
        share("Y", "r", 1, 2),
        share("Z", "r", 1, 3),
        // Block work 1: default window 2 -> the last two shares.
        found(1, 10, "Z", Target::MAX),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("Y", 5), ("Z", 5)]));
    assert!(!p.balances().contains_key(&addr("")));
    assert_eq!(p.rule_in_force(), projections::default_rule());
}

#[test]
fn matured_credits_are_final_and_become_payable() {
    let t = Target::MAX;
    let events = vec![
        share("X", "r", 1, 1),
        found(1, 100, "X", t),
        matured(1),
        orphaned(1),
        matured(1),
        orphaned(9),
    ];
    let p = replay(&events);
    let b = p.balance(&addr("X")).unwrap();
    assert_eq!((b.immature, b.payable), (Sats(0), Sats(100)));
    let kinds: Vec<AnomalyKind> = p.anomalies().iter().map(|a| a.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            AnomalyKind::OrphanedAfterMaturity(block_id(1)),
            AnomalyKind::AlreadyMatured(block_id(1)),
            AnomalyKind::UnknownBlock(block_id(9)),
        ]
    );
    assert_eq!(p.blocks_due_for_maturity(10_000), vec![]);
    assert_conserved(&p);
}

#[test]
fn blocks_due_for_maturity_follow_the_configured_depth() {
    let p = replay(&[found(1, 100, "X", Target::MAX)]);
    // Height 101, maturity 100.
    assert_eq!(p.blocks_due_for_maturity(200), vec![]);
    assert_eq!(p.blocks_due_for_maturity(201), vec![block_id(1)]);
}

#[test]
fn payment_beyond_payable_leaves_a_debt_that_later_credits_repay() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Solo, 0, NetworkFeePayer::Pool),
        found(1, 100, "X", t),
        matured(1),
        found(2, 100, "X", t),
        // Paid 150 although only 100 is payable (50 advanced on block 2's immature credit).
        prepared(1, &[("X", 150)]),
        sent(1, 0),
        confirmed(1),
        orphaned(2),
    ];
    let p = replay(&events);
    let b = p.balance(&addr("X")).unwrap();
    assert_eq!(
        (b.payable, b.debt, b.paid, b.immature),
        (Sats(0), Sats(50), Sats(150), Sats(0))
    );
    assert_conserved(&p);
    let mut more = events.clone();
    more.push(found(3, 80, "X", t));
    more.push(matured(3));
    let p = replay(&more);
    let b = p.balance(&addr("X")).unwrap();
    assert_eq!((b.payable, b.debt), (Sats(30), Sats(0)));
    assert_conserved(&p);
}

#[test]
fn network_fees_are_booked_to_the_pool_or_the_miners() {
    let t = Target::MAX;
    let mut events = vec![
        rule(PayoutScheme::Prop, 1_000, NetworkFeePayer::Miners),
        share("X", "r", 1, 1),
        share("Y", "r", 3, 2),
        found(1, 1_000, "X", t),
        matured(1),
        // 900 after a 10% fee: X 225, Y 675.
        prepared(1, &[("X", 225), ("Y", 675)]),
        sent(1, 90),
        confirmed(1),
    ];
    let p = replay(&events);
    let x = p.balance(&addr("X")).unwrap();
    let y = p.balance(&addr("Y")).unwrap();
    // 90 over 225:675 is 22.5 / 67.5: the leftover satoshi goes to the first output (tie).
    assert_eq!((x.paid, x.network_fees), (Sats(202), Sats(23)));
    assert_eq!((y.paid, y.network_fees), (Sats(608), Sats(67)));
    assert_conserved(&p);

    events.push(rule(PayoutScheme::Prop, 1_000, NetworkFeePayer::Pool));
    events.push(prepared(2, &[("pool-fee", 60)]));
    events.push(sent(2, 70));
    let p = replay(&events);
    let fee = p.balance(&addr("pool-fee")).unwrap();
    assert_eq!(
        (fee.payable, fee.in_flight, fee.network_fees, fee.debt),
        (Sats(0), Sats(60), Sats(70), Sats(30))
    );
    assert_conserved(&p);

    // The transaction is dropped: fee booking undone, amounts payable again.
    events.push(failed(2));
    let p = replay(&events);
    let fee = p.balance(&addr("pool-fee")).unwrap();
    assert_eq!(
        (fee.payable, fee.in_flight, fee.network_fees, fee.debt),
        (Sats(100), Sats(0), Sats(0), Sats(0))
    );
    events.push(confirmed(2));
    let p = replay(&events);
    assert_eq!(
        p.anomalies().last().unwrap().kind,
        AnomalyKind::PaymentOutOfOrder(2)
    );
    assert_conserved(&p);
}

#[test]
fn worker_and_pool_statistics_use_event_time() {
    let events = vec![
        share("X", "a", 60, 0),
        share("X", "b", 60, 1_000),
        share("Y", "a", 120, 100_000),
    ];
    let p = replay(&events);
    let workers = p.worker_stats();
    assert_eq!(workers.len(), 3);
    let xa = &workers[&(addr("X"), pool_core::event::WorkerName("a".into()))];
    assert_eq!(xa.total_shares, 1);
    assert_eq!(xa.windows[0].shares, 0, "older than a minute at t=100s");
    assert_eq!(xa.windows[1].shares, 1);
    let by_address = p.address_stats();
    assert_eq!(by_address[&addr("X")].total_shares, 2);
    let totals = p.pool_totals();
    assert_eq!(totals.shares.total_shares, 3);
    assert_eq!(totals.shares.windows[0].shares, 1);
    // 120 work units in the minute window: 2 hashes per second.
    assert_eq!(
        totals.shares.windows[0].hashrate(),
        ruint::aliases::U256::from(2u8)
    );
    assert_eq!((totals.addresses, totals.workers), (2, 3));
}

#[test]
fn snapshot_plus_tail_equals_full_replay() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Prop, 100, NetworkFeePayer::Miners),
        share("X", "r", 3, 1),
        share("Y", "s", 1, 2),
        found(1, 1_000, "X", t),
        share("Z", "r", 2, 3),
        orphaned(1),
        found(2, 500, "Z", t),
        matured(2),
        prepared(1, &[("Z", 100)]),
        sent(1, 10),
        reinstated(1),
        share("X", "r", 1, 4),
        confirmed(1),
    ];
    let full = replay(&events);
    for cut in 0..=events.len() {
        let head = replay(&events[..cut]);
        let bytes = head.snapshot().unwrap();
        let mut restored = Projection::from_snapshot(&bytes).unwrap();
        assert_eq!(restored.next_seq(), cut as u64);
        for (seq, e) in events.iter().enumerate().skip(cut) {
            restored.apply(seq as u64, e).unwrap();
        }
        assert_eq!(
            restored.snapshot().unwrap(),
            full.snapshot().unwrap(),
            "cut {cut}"
        );
    }
}

#[test]
fn events_must_come_in_sequence_order() {
    let mut p = replay(&[share("X", "r", 1, 1), share("X", "r", 1, 2)]);
    assert_eq!(
        p.apply(1, &share("X", "r", 1, 3)),
        Err(ProjectionError::OutOfOrder {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(p.share_count(), 2);
}

#[test]
fn damaged_snapshots_are_errors() {
    let p = replay(&[share("X", "r", 1, 1), found(1, 10, "X", Target::MAX)]);
    let bytes = p.snapshot().unwrap();
    assert!(Projection::from_snapshot(&bytes[..bytes.len() / 2]).is_err());
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 99;
    assert_eq!(
        Projection::from_snapshot(&wrong_version).unwrap_err(),
        ProjectionError::SnapshotVersion(99)
    );
}

#[test]
fn a_rule_change_never_rewrites_blocks_found_before_it() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("X", "r", 1, 1),
        found(1, 1_000, "X", t),
        share("Y", "r", 1, 2),
        found(2, 1_000, "Y", t),
        rule(PayoutScheme::Solo, 1_000, NetworkFeePayer::Miners),
        // Block 1 leaves and comes back: it is recredited, by its own (old) rule.
        orphaned(1),
        reinstated(1),
        share("Z", "r", 1, 3),
        found(3, 1_000, "Z", t),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("X", 1_000)]));
    assert_eq!(p.block(&block_id(1)).unwrap().fee, Sats(0));
    assert_eq!(p.block(&block_id(1)).unwrap().scheme, PayoutScheme::Prop);
    assert_eq!(credits(&p, 3), map(&[("Z", 900)]));
    assert_eq!(p.block(&block_id(3)).unwrap().fee, Sats(100));
    assert_eq!(p.rule_history().len(), 2);
    assert_conserved(&p);
}

/// `Projection::horizon` moves with what the projection may still read: the next block's
/// window, an open candidate's window and record, an immature block's record, an open payment.
#[test]
fn the_horizon_follows_windows_blocks_and_payments() {
    // Tiny marks and at most 8 shares kept: the block's window is read back (refilled) from
    // the history, as the pool reads it from the ledger.
    let mut p = Projection::forgetting_with(Default::default(), 4, 8);
    let mut keeper = Projection::keeping_with_marks(Default::default(), 4);
    let mut history: Vec<pool_core::Event> = Vec::new();
    let mut apply = |p: &mut Projection, keeper: &mut Projection, e: pool_core::Event| {
        let seq = history.len() as u64;
        history.push(e.clone());
        loop {
            match p.apply(seq, &e) {
                Ok(()) => break,
                Err(ProjectionError::SharesForgotten { .. }) => {
                    let (from, to) = p.refill_range(&e).unwrap();
                    let shares =
                        history[from as usize..to as usize]
                            .iter()
                            .filter_map(|e| match e {
                                pool_core::Event::ShareAccepted(s) => Some(s),
                                _ => None,
                            });
                    p.refill(shares).unwrap();
                }
                Err(other) => panic!("{other}"),
            }
        }
        keeper.apply(seq, &e).unwrap();
        assert_eq!(p.horizon(), keeper.horizon());
        p.horizon()
    };
    let mut h = 0;
    for n in 0..100 {
        h = apply(&mut p, &mut keeper, share("m0", "w", 2, n));
    }
    // The default rule (PPLNS, 2 x the work of the shares' network target, 1) twice: 4 of
    // weight, the last 2 shares; the mark before share 98 is share 96's (seq 96).
    assert_eq!(h, 96);
    // An open candidate of work 2^4: its window (32 of weight, 16 shares) starts at share 84,
    // a mark.
    let c = apply(
        &mut p,
        &mut keeper,
        candidate(1, 1_000, "m0", target_with_work_pow2(4)),
    );
    assert_eq!(c, 84);
    // Found: immature, its record (the candidate's, seq 100) no longer below the next window.
    assert_eq!(
        apply(
            &mut p,
            &mut keeper,
            found(1, 1_000, "m0", target_with_work_pow2(4))
        ),
        96
    );
    assert_eq!(apply(&mut p, &mut keeper, matured(1)), 96);
    // An open payment (seq 103) holds the horizon while 100 more shares move the window on.
    apply(&mut p, &mut keeper, prepared(1, &[("m0", 10)]));
    for n in 100..200 {
        h = apply(&mut p, &mut keeper, share("m0", "w", 2, n));
    }
    assert_eq!(h, 103);
    // Failed: final. The next window's first share is share 198, its mark share 196 (seq 200).
    assert_eq!(apply(&mut p, &mut keeper, failed(1)), 200);
    assert!(p.retained_shares() <= 12, "{}", p.retained_shares());
    assert_eq!(p.balances(), keeper.balances());
    assert_eq!(p.blocks(), keeper.blocks());
}

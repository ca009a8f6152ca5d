//! Block candidates: a found block is credited as of its candidate's position, however late its
//! verdict, and a refused candidate's round rolls forward.

mod support;

use pool_core::event::{NetworkFeePayer, PayoutScheme};
use pool_core::{Event, Target};
use projections::{AnomalyKind, BlockStatus, Projection};
use support::*;

#[test]
fn pplns_credits_the_window_before_the_candidate_not_before_the_verdict() {
    let t = Target::MAX; // block work 1; window 4/1 = 4 units
    let late = vec![
        rule(pplns(4, 1), 0, NetworkFeePayer::Pool),
        share("A", "r", 4, 1),
        candidate(1, 1_000, "A", t),
        // Shares that arrive while the node is busy judging block 1.
        share("B", "r", 4, 2),
        share("B", "r", 4, 3),
        found(1, 1_000, "A", t),
    ];
    let p = replay(&late);
    assert_eq!(credits(&p, 1), map(&[("A", 1_000)]));
    let view = p.block(&block_id(1)).unwrap();
    assert_eq!(view.candidate_seq, Some(2));
    assert_eq!(view.found_seq, 5);

    // The same history without a candidate credits at the verdict (the old meaning).
    let legacy: Vec<Event> = late
        .iter()
        .filter(|e| !matches!(e, Event::BlockCandidate(_)))
        .cloned()
        .collect();
    let q = replay(&legacy);
    assert_eq!(credits(&q, 1), map(&[("B", 1_000)]));
    assert_eq!(q.block(&block_id(1)).unwrap().candidate_seq, None);
    assert_conserved(&p);
    assert_conserved(&q);
}

#[test]
fn prop_round_closes_at_the_candidate_and_the_next_round_starts_there() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("A", "r", 2, 1),
        candidate(1, 600, "A", t),
        share("B", "r", 2, 2),
        found(1, 600, "A", t),
        share("C", "r", 2, 3),
        candidate(2, 600, "C", t),
        found(2, 600, "C", t),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("A", 600)]));
    assert_eq!(credits(&p, 2), map(&[("B", 300), ("C", 300)]));
    assert_conserved(&p);
}

#[test]
fn verdicts_out_of_order_keep_each_blocks_own_round() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("A", "r", 2, 1),
        candidate(1, 100, "A", t),
        share("B", "r", 2, 2),
        candidate(2, 100, "B", t),
        // Block 2's verdict comes first.
        found(2, 100, "B", t),
        found(1, 100, "A", t),
    ];
    let p = replay(&events);
    assert_eq!(credits(&p, 1), map(&[("A", 100)]));
    assert_eq!(credits(&p, 2), map(&[("B", 100)]));
    let order: Vec<_> = p.blocks().iter().map(|b| b.block_id).collect();
    assert_eq!(
        order,
        vec![block_id(1), block_id(2)],
        "ledger order of candidates"
    );
    assert_conserved(&p);
}

#[test]
fn a_refused_candidates_round_rolls_forward_and_credits_nothing() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Prop, 0, NetworkFeePayer::Pool),
        share("A", "r", 2, 1),
        candidate(1, 900, "A", t),
        share("B", "r", 2, 2),
        rejected(1, "high-hash", "A"),
        share("C", "r", 2, 3),
        candidate(2, 900, "C", t),
        found(2, 900, "C", t),
    ];
    let p = replay(&events);
    assert!(
        p.block(&block_id(1)).is_none(),
        "a refused candidate is no block"
    );
    assert_eq!(p.rejected_blocks().len(), 1);
    assert_eq!(p.rejected_blocks()[0].reason, "high-hash");
    assert_eq!(credits(&p, 2), map(&[("A", 300), ("B", 300), ("C", 300)]));
    assert_eq!(p.blocks().len(), 1);
    assert_eq!(p.pool_totals().blocks_rejected, 1);
    assert_conserved(&p);
}

#[test]
fn an_open_candidate_credits_nothing_and_is_listed_open() {
    let t = Target::MAX;
    let events = vec![
        share("A", "r", 2, 1),
        candidate(1, 500, "A", t),
        share("B", "r", 2, 2),
    ];
    let mut p = replay(&events);
    assert!(p.blocks().is_empty());
    assert_eq!(p.open_candidates(), vec![(block_id(1), 101, 1)]);
    assert_eq!(p.pool_totals().rewards.0, 0);
    assert_eq!(p.balance(&addr("A")).unwrap().immature.0, 0);
    assert!(p.blocks_due_for_maturity(10_000).is_empty());

    // Lifecycle events need a found verdict first.
    p.apply(3, &matured(1)).unwrap();
    p.apply(4, &orphaned(1)).unwrap();
    let kinds: Vec<_> = p.anomalies().iter().map(|a| a.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            AnomalyKind::NotFound(block_id(1)),
            AnomalyKind::NotFound(block_id(1))
        ]
    );
    p.apply(5, &found(1, 500, "A", t)).unwrap();
    assert!(p.open_candidates().is_empty());
    assert_eq!(credits(&p, 1), map(&[("A", 500)]));
    assert_eq!(p.blocks_due_for_maturity(201), vec![block_id(1)]);
    p.apply(6, &matured(1)).unwrap();
    assert_eq!(p.block(&block_id(1)).unwrap().status, BlockStatus::Matured);
    assert_eq!(p.balance(&addr("A")).unwrap().payable.0, 500);
    assert_conserved(&p);
}

#[test]
fn a_block_is_found_once_however_often_its_verdict_is_recorded() {
    let t = Target::MAX;
    let events = vec![
        share("A", "r", 2, 1),
        candidate(1, 500, "A", t),
        candidate(1, 500, "A", t),
        found(1, 500, "A", t),
        found(1, 500, "A", t),
        rejected(1, "duplicate-invalid", "A"),
    ];
    let p = replay(&events);
    assert_eq!(p.blocks().len(), 1);
    assert!(p.rejected_blocks().is_empty());
    assert_eq!(p.balance(&addr("A")).unwrap().immature.0, 500);
    let kinds: Vec<_> = p.anomalies().iter().map(|a| a.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            AnomalyKind::DuplicateCandidate(block_id(1)),
            AnomalyKind::VerdictAfterVerdict(block_id(1)),
            AnomalyKind::VerdictAfterVerdict(block_id(1)),
        ]
    );
    assert_conserved(&p);
}

#[test]
fn snapshot_with_an_open_candidate_plus_tail_equals_full_replay() {
    let t = Target::MAX;
    let events = vec![
        rule(PayoutScheme::Prop, 100, NetworkFeePayer::Pool),
        share("A", "r", 2, 1),
        candidate(1, 10_000, "A", t),
        share("B", "r", 2, 2),
        found(1, 10_000, "A", t),
        share("C", "r", 2, 3),
    ];
    let full = replay(&events);
    let head = replay(&events[..3]);
    let mut resumed = Projection::from_snapshot(&head.snapshot().unwrap()).unwrap();
    for (seq, e) in events.iter().enumerate().skip(3) {
        resumed.apply(seq as u64, e).unwrap();
    }
    assert_eq!(resumed.state_bytes().unwrap(), full.state_bytes().unwrap());
}

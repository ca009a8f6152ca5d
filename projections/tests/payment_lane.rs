//! The payment lane's check (`Projection::check_payment`): every refusal and every repeat of the
//! strict state table, and the fold of `PaymentSigned` (money conserved through it).

mod support;

use pool_core::event::{NetworkFeePayer, PaymentConfirmed, PaymentSent, PayoutScheme};
use pool_core::{Event, Sats, Target};
use projections::{
    AnomalyKind, PaymentCheck, PaymentRefusal, PaymentStatus, Projection, ProjectionConfig,
    CONFLICT_REASON_PREFIX,
};
use support::*;

const CONFLICT: &str = "conflicting spend confirmed: abcd:0 spent by ef01 at depth 6";

/// A projection with X payable 100, Y payable 300 and the fee address payable 44 (SOLO blocks,
/// 10% fee, miners pay network fees), and Z with an immature credit only.
fn funded() -> Projection {
    lane(&[
        rule(PayoutScheme::Solo, 1_000, NetworkFeePayer::Miners),
        found(1, 111, "X", Target::MAX),
        found(2, 333, "Y", Target::MAX),
        matured(1),
        matured(2),
        found(3, 50, "Z", Target::MAX),
    ])
}

/// Applies events one by one, each after the lane's check found it valid.
fn lane(events: &[Event]) -> Projection {
    let mut p = Projection::new(ProjectionConfig::default());
    for e in events {
        apply_checked(&mut p, e);
    }
    p
}

/// Checks `event` as the lane does, then applies it; the fold must take it without anomaly.
fn apply_checked(p: &mut Projection, event: &Event) {
    if is_payment(event) {
        assert_eq!(p.check_payment(event), Ok(PaymentCheck::Valid), "{event:?}");
    }
    let anomalies = p.anomalies().len();
    p.apply(p.next_seq(), event).unwrap();
    assert_eq!(p.anomalies().len(), anomalies, "{event:?}");
    assert_conserved(p);
}

fn is_payment(e: &Event) -> bool {
    matches!(
        e,
        Event::PaymentPrepared(_)
            | Event::PaymentSigned(_)
            | Event::PaymentSent(_)
            | Event::PaymentConfirmed(_)
            | Event::PaymentFailed(_)
    )
}

fn payable(p: &Projection, a: &str) -> u64 {
    p.balance(&addr(a)).unwrap().payable.0
}

fn refusal(p: &Projection, e: &Event) -> PaymentRefusal {
    match p.check_payment(e) {
        Err(r) => r,
        other => panic!("{e:?} was not refused: {other:?}"),
    }
}

#[test]
fn the_funded_projection_is_what_the_tests_assume() {
    let p = funded();
    assert_eq!(
        (payable(&p, "X"), payable(&p, "Y"), payable(&p, "pool-fee")),
        (100, 300, 11 + 33)
    );
    assert_eq!(payable(&p, "Z"), 0);
    assert_eq!(
        p.payable_balances(),
        vec![
            (addr("X"), Sats(100)),
            (addr("Y"), Sats(300)),
            (addr("pool-fee"), Sats(44))
        ]
    );
}

#[test]
fn non_payment_events_are_refused() {
    let p = funded();
    for e in [share("X", "r", 1, 1), matured(3), orphaned(3)] {
        let r = refusal(&p, &e);
        assert!(matches!(r, PaymentRefusal::NotAPaymentEvent { .. }), "{r}");
    }
    assert_eq!(
        refusal(&p, &matured(3)).to_string(),
        "BlockMatured is not a payment event"
    );
}

#[test]
fn a_prepare_is_refused_without_outputs_with_a_zero_amount_or_an_address_twice() {
    let p = funded();
    assert_eq!(
        refusal(&p, &prepared(0, &[])),
        PaymentRefusal::NoOutputs { payment_id: 0 }
    );
    let r = refusal(&p, &prepared(0, &[("X", 10), ("Y", 0)]));
    assert_eq!(
        r,
        PaymentRefusal::ZeroAmount {
            payment_id: 0,
            address: addr("Y")
        }
    );
    assert_eq!(r.to_string(), "payment 0 pays 0 sats to Y");
    let r = refusal(&p, &prepared(0, &[("X", 10), ("Y", 5), ("X", 10)]));
    assert_eq!(
        r,
        PaymentRefusal::DuplicateAddress {
            payment_id: 0,
            address: addr("X")
        }
    );
    assert_eq!(r.to_string(), "payment 0 names X more than once");
}

#[test]
fn a_prepare_is_refused_beyond_the_payable_balance() {
    let p = funded();
    assert_eq!(
        p.check_payment(&prepared(0, &[("X", 100), ("Y", 300)])),
        Ok(PaymentCheck::Valid)
    );
    let r = refusal(&p, &prepared(0, &[("X", 100), ("Y", 301)]));
    assert_eq!(
        r,
        PaymentRefusal::ExceedsPayable {
            payment_id: 0,
            address: addr("Y"),
            amount: Sats(301),
            payable: Sats(300)
        }
    );
    assert_eq!(
        r.to_string(),
        "payment 0 pays 301 sats to Y, whose payable balance is 300 sats"
    );
    // Immature credits are not payable; an address the ledger never saw has nothing.
    let r = refusal(&p, &prepared(0, &[("Z", 1)]));
    assert!(
        matches!(
            r,
            PaymentRefusal::ExceedsPayable {
                payable: Sats(0),
                ..
            }
        ),
        "{r}"
    );
    let r = refusal(&p, &prepared(0, &[("nobody", 1)]));
    assert!(
        matches!(
            r,
            PaymentRefusal::ExceedsPayable {
                payable: Sats(0),
                ..
            }
        ),
        "{r}"
    );
}

#[test]
fn a_prepare_is_refused_for_an_address_in_debt() {
    // The fold still takes an overpayment (old ledgers), leaving a debt; the lane then refuses
    // any payment to that address until credits repay it.
    let mut p = funded();
    p.apply(p.next_seq(), &prepared(0, &[("X", 150)])).unwrap();
    p.apply(p.next_seq(), &sent(0, 0)).unwrap();
    p.apply(p.next_seq(), &confirmed(0)).unwrap();
    assert_eq!(p.balance(&addr("X")).unwrap().debt, Sats(50));
    let r = refusal(&p, &prepared(1, &[("X", 1)]));
    assert_eq!(
        r,
        PaymentRefusal::AddressInDebt {
            payment_id: 1,
            address: addr("X"),
            debt: Sats(50)
        }
    );
    assert_eq!(r.to_string(), "payment 1 pays X, which owes 50 sats");
}

#[test]
fn a_prepare_reusing_a_payment_id_is_refused() {
    let mut p = funded();
    apply_checked(&mut p, &prepared(7, &[("X", 10)]));
    // Same id, other outputs (while prepared: not a repeat).
    let r = refusal(&p, &prepared(7, &[("X", 11)]));
    assert_eq!(
        r,
        PaymentRefusal::PaymentIdUsed {
            payment_id: 7,
            status: PaymentStatus::Prepared
        }
    );
    apply_checked(&mut p, &failed(7));
    // Even the same outputs: the payment's latest event is now its failure.
    let r = refusal(&p, &prepared(7, &[("X", 10)]));
    assert_eq!(
        r.to_string(),
        "payment id 7 is already used (that payment is failed)"
    );
    assert_eq!(p.next_payment_id(), 8);
}

#[test]
fn a_prepare_is_refused_while_the_address_has_a_payment_in_flight() {
    let mut p = funded();
    apply_checked(&mut p, &prepared(0, &[("X", 40)]));
    let second = prepared(1, &[("Y", 10), ("X", 10)]);
    let expected = PaymentRefusal::AddressInFlight {
        payment_id: 1,
        address: addr("X"),
        in_flight: 0,
    };
    assert_eq!(refusal(&p, &second), expected);
    assert_eq!(
        expected.to_string(),
        "payment 1 pays X, which payment 0 already pays (not final yet)"
    );
    apply_checked(&mut p, &signed(0, 4));
    assert_eq!(refusal(&p, &second), expected);
    apply_checked(&mut p, &sent(0, 4));
    assert_eq!(refusal(&p, &second), expected);
    // Other addresses are free meanwhile.
    assert_eq!(
        p.check_payment(&prepared(1, &[("Y", 10)])),
        Ok(PaymentCheck::Valid)
    );
    apply_checked(&mut p, &confirmed(0));
    assert_eq!(p.check_payment(&second), Ok(PaymentCheck::Valid));
}

#[test]
fn two_prepares_for_one_balance_the_second_is_refused_once_the_first_is_applied() {
    let mut p = funded();
    let first = prepared(0, &[("Y", 200)]);
    let second = prepared(1, &[("Y", 200)]);
    // Both pass against the same state: the lane's serialization is what keeps them apart.
    assert_eq!(p.check_payment(&first), Ok(PaymentCheck::Valid));
    assert_eq!(p.check_payment(&second), Ok(PaymentCheck::Valid));
    apply_checked(&mut p, &first);
    assert!(matches!(
        refusal(&p, &second),
        PaymentRefusal::AddressInFlight { in_flight: 0, .. }
    ));
    // Once the first is final, the second is weighed against what is left.
    apply_checked(&mut p, &signed(0, 10));
    apply_checked(&mut p, &sent(0, 10));
    apply_checked(&mut p, &confirmed(0));
    assert_eq!(
        refusal(&p, &second),
        PaymentRefusal::ExceedsPayable {
            payment_id: 1,
            address: addr("Y"),
            amount: Sats(200),
            payable: Sats(100)
        }
    );
    assert_eq!(
        p.check_payment(&prepared(1, &[("Y", 100)])),
        Ok(PaymentCheck::Valid)
    );
}

#[test]
fn signing_is_valid_only_from_prepared_with_a_transaction() {
    let mut p = funded();
    assert_eq!(
        refusal(&p, &signed(0, 1)),
        PaymentRefusal::UnknownPayment {
            payment_id: 0,
            event: "PaymentSigned"
        }
    );
    apply_checked(&mut p, &prepared(0, &[("X", 50)]));
    let Event::PaymentSigned(mut empty) = signed(0, 1) else {
        unreachable!()
    };
    empty.raw_tx.clear();
    let r = refusal(&p, &Event::PaymentSigned(empty));
    assert_eq!(r, PaymentRefusal::EmptyTransaction { payment_id: 0 });
    apply_checked(&mut p, &signed(0, 1));
    // Signed again with another fee (another transaction): never a second one.
    let r = refusal(&p, &signed(0, 2));
    assert_eq!(
        r,
        PaymentRefusal::OutOfOrder {
            payment_id: 0,
            event: "PaymentSigned",
            status: PaymentStatus::Signed
        }
    );
    assert_eq!(
        r.to_string(),
        "PaymentSigned does not follow payment 0, which is signed: only a prepared payment is signed"
    );
    apply_checked(&mut p, &sent(0, 1));
    // The signing repeated after the payment moved on is not its latest event.
    assert!(matches!(
        refusal(&p, &signed(0, 1)),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Sent,
            ..
        }
    ));
    apply_checked(&mut p, &confirmed(0));
    assert!(matches!(
        refusal(&p, &signed(0, 1)),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Confirmed,
            ..
        }
    ));
    apply_checked(&mut p, &prepared(1, &[("Y", 50)]));
    apply_checked(&mut p, &failed(1));
    assert!(matches!(
        refusal(&p, &signed(1, 1)),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Failed,
            ..
        }
    ));
}

#[test]
fn sending_is_valid_only_from_signed_with_the_signed_txid_and_fee() {
    let mut p = funded();
    assert!(matches!(
        refusal(&p, &sent(0, 1)),
        PaymentRefusal::UnknownPayment { .. }
    ));
    apply_checked(&mut p, &prepared(0, &[("X", 50)]));
    // Not before signing (the fold takes it for old ledgers; the lane does not).
    let r = refusal(&p, &sent(0, 1));
    assert_eq!(
        r.to_string(),
        "PaymentSent does not follow payment 0, which is prepared: only a signed payment is sent"
    );
    apply_checked(&mut p, &signed(0, 3));
    let other_tx = Event::PaymentSent(PaymentSent {
        payment_id: 0,
        txid: txid(99),
        network_fee: Sats(3),
    });
    let r = refusal(&p, &other_tx);
    assert_eq!(
        r,
        PaymentRefusal::TxidMismatch {
            payment_id: 0,
            event: "PaymentSent",
            expected: txid(0),
            got: txid(99)
        }
    );
    assert!(r
        .to_string()
        .starts_with("PaymentSent for payment 0 names txid "));
    let r = refusal(&p, &sent(0, 4));
    assert_eq!(
        r,
        PaymentRefusal::FeeMismatch {
            payment_id: 0,
            expected: Sats(3),
            got: Sats(4)
        }
    );
    assert_eq!(
        r.to_string(),
        "PaymentSent for payment 0 states a network fee of 4 sats, but its signed transaction pays 3 sats"
    );
    apply_checked(&mut p, &sent(0, 3));
    apply_checked(&mut p, &confirmed(0));
    assert!(matches!(
        refusal(&p, &sent(0, 5)),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Confirmed,
            ..
        }
    ));
}

#[test]
fn confirming_is_valid_only_from_sent_with_the_same_txid() {
    let mut p = funded();
    assert!(matches!(
        refusal(&p, &confirmed(0)),
        PaymentRefusal::UnknownPayment { .. }
    ));
    apply_checked(&mut p, &prepared(0, &[("X", 50)]));
    assert!(matches!(
        refusal(&p, &confirmed(0)),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Prepared,
            ..
        }
    ));
    apply_checked(&mut p, &signed(0, 3));
    let r = refusal(&p, &confirmed(0));
    assert_eq!(
        r.to_string(),
        "PaymentConfirmed does not follow payment 0, which is signed: only a sent payment is confirmed"
    );
    apply_checked(&mut p, &sent(0, 3));
    let other_tx = Event::PaymentConfirmed(PaymentConfirmed {
        payment_id: 0,
        txid: txid(99),
        height: 500,
    });
    assert_eq!(
        refusal(&p, &other_tx),
        PaymentRefusal::TxidMismatch {
            payment_id: 0,
            event: "PaymentConfirmed",
            expected: txid(0),
            got: txid(99)
        }
    );
    apply_checked(&mut p, &prepared(1, &[("Y", 50)]));
    apply_checked(&mut p, &failed(1));
    assert!(matches!(
        refusal(&p, &confirmed(1)),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Failed,
            ..
        }
    ));
}

#[test]
fn failing_a_signed_or_sent_payment_needs_a_conflicting_spend() {
    assert!(CONFLICT.starts_with(CONFLICT_REASON_PREFIX));
    let mut p = funded();
    assert!(matches!(
        refusal(&p, &failed(0)),
        PaymentRefusal::UnknownPayment { .. }
    ));
    // Prepared: nothing was signed, so any reason.
    apply_checked(&mut p, &prepared(0, &[("X", 50)]));
    assert_eq!(p.check_payment(&failed(0)), Ok(PaymentCheck::Valid));
    for status in [PaymentStatus::Signed, PaymentStatus::Sent] {
        if status == PaymentStatus::Signed {
            apply_checked(&mut p, &signed(0, 3));
        } else {
            apply_checked(&mut p, &sent(0, 3));
        }
        let r = refusal(
            &p,
            &failed_because(0, "broadcast refused: min relay fee not met"),
        );
        assert_eq!(
            r,
            PaymentRefusal::NoConflictingSpend {
                payment_id: 0,
                status,
                reason: "broadcast refused: min relay fee not met".into()
            }
        );
        assert!(r
            .to_string()
            .contains("fails only once a conflicting spend of one of its inputs is final"));
        assert_eq!(
            p.check_payment(&failed_because(0, CONFLICT)),
            Ok(PaymentCheck::Valid)
        );
    }
    apply_checked(&mut p, &failed_because(0, CONFLICT));
    assert_eq!(p.balance(&addr("X")).unwrap().payable, Sats(100));
    assert!(matches!(
        refusal(&p, &failed_because(0, "another reason")),
        PaymentRefusal::OutOfOrder {
            status: PaymentStatus::Failed,
            ..
        }
    ));
    apply_checked(&mut p, &prepared(1, &[("X", 50)]));
    apply_checked(&mut p, &signed(1, 3));
    apply_checked(&mut p, &sent(1, 3));
    apply_checked(&mut p, &confirmed(1));
    assert_eq!(
        refusal(&p, &failed_because(1, CONFLICT)).to_string(),
        "PaymentFailed does not follow payment 1, which is confirmed: only a prepared, signed or sent payment fails"
    );
}

#[test]
fn each_latest_event_repeated_exactly_is_a_repeat_with_its_seq() {
    let mut p = funded();
    let mut history: Vec<(Event, u64)> = Vec::new();
    let steps = [
        prepared(0, &[("X", 50), ("Y", 70)]),
        signed(0, 12),
        sent(0, 12),
        confirmed(0),
    ];
    for e in &steps {
        let seq = p.next_seq();
        apply_checked(&mut p, e);
        // Other events between: the repeat answers with the payment's own record.
        apply_checked(&mut p, &share("Z", "r", 1, 5));
        assert_eq!(
            p.check_payment(e),
            Ok(PaymentCheck::Repeat { seq }),
            "{e:?}"
        );
        history.push((e.clone(), seq));
    }
    // Only the latest: earlier events of the payment are refused, not repeats.
    for (e, _) in &history[..3] {
        assert!(p.check_payment(e).is_err(), "{e:?}");
    }
    let seq = p.next_seq();
    apply_checked(&mut p, &prepared(1, &[("Y", 30)]));
    apply_checked(&mut p, &failed_because(1, "wallet locked"));
    assert_eq!(
        p.check_payment(&failed_because(1, "wallet locked")),
        Ok(PaymentCheck::Repeat { seq: seq + 1 })
    );
    // A repeat must be exact: the same id with another height, reason or outputs is not one.
    let other_height = Event::PaymentConfirmed(PaymentConfirmed {
        payment_id: 0,
        txid: txid(0),
        height: 501,
    });
    assert!(p.check_payment(&other_height).is_err());
    assert!(p.check_payment(&failed_because(1, "wallet gone")).is_err());
    let seq = p.next_seq();
    apply_checked(&mut p, &prepared(2, &[("Y", 10), ("X", 10)]));
    assert!(p
        .check_payment(&prepared(2, &[("X", 10), ("Y", 10)]))
        .is_err());
    assert_eq!(
        p.check_payment(&prepared(2, &[("Y", 10), ("X", 10)])),
        Ok(PaymentCheck::Repeat { seq })
    );
}

#[test]
fn money_is_conserved_through_signing_and_the_fee_is_booked_when_sent() {
    let mut p = funded();
    apply_checked(&mut p, &prepared(0, &[("X", 60), ("Y", 180)]));
    let before = p.balances();
    apply_checked(&mut p, &signed(0, 24));
    // Signing moves no money: the fee is booked only once the transaction is sent.
    assert_eq!(p.balances(), before);
    let x = p.balance(&addr("X")).unwrap();
    assert_eq!(
        (x.payable, x.in_flight, x.network_fees),
        (Sats(40), Sats(60), Sats(0))
    );
    let open = p.open_payments();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].status, PaymentStatus::Signed);
    assert_eq!(open[0].txid, Some(txid(0)));
    assert_eq!(open[0].network_fee, Sats(24));
    assert_eq!(open[0].raw_tx.as_deref(), Some(&[2u8, 0, 0, 0, 0][..]));
    assert_eq!(open[0].deductions, vec![Sats(0), Sats(0)]);
    // What the transaction must pay: 24 over 60:180 is 6 and 18.
    assert_eq!(
        p.expected_receipts(0, Sats(24)),
        Some(vec![(addr("X"), Sats(54)), (addr("Y"), Sats(162))])
    );
    apply_checked(&mut p, &sent(0, 24));
    let x = p.balance(&addr("X")).unwrap();
    assert_eq!(
        (x.payable, x.in_flight, x.network_fees),
        (Sats(40), Sats(54), Sats(6))
    );
    assert_eq!(p.open_payments()[0].deductions, vec![Sats(6), Sats(18)]);
    apply_checked(&mut p, &confirmed(0));
    let y = p.balance(&addr("Y")).unwrap();
    assert_eq!(
        (y.payable, y.in_flight, y.paid, y.network_fees),
        (Sats(120), Sats(0), Sats(162), Sats(18))
    );
    assert!(p.open_payments().is_empty());
    let view = &p.payments()[0];
    assert_eq!(
        (view.status, view.txid, view.network_fee),
        (PaymentStatus::Confirmed, Some(txid(0)), Sats(24))
    );
}

#[test]
fn a_signed_payment_that_fails_returns_everything() {
    let mut p = funded();
    let start = p.balances();
    apply_checked(&mut p, &prepared(0, &[("X", 60), ("pool-fee", 44)]));
    apply_checked(&mut p, &signed(0, 30));
    apply_checked(&mut p, &failed_because(0, CONFLICT));
    assert_eq!(p.balances(), start);
    assert!(p.open_payments().is_empty());
    assert_eq!(p.payments()[0].status, PaymentStatus::Failed);
}

#[test]
fn a_sent_that_differs_from_its_signing_is_an_anomaly_and_changes_nothing() {
    let mut p = funded();
    apply_checked(&mut p, &prepared(0, &[("X", 60)]));
    apply_checked(&mut p, &signed(0, 5));
    let balances = p.balances();
    let payments = p.payments();
    for (i, e) in [
        sent(0, 6),
        Event::PaymentSent(PaymentSent {
            payment_id: 0,
            txid: txid(9),
            network_fee: Sats(5),
        }),
    ]
    .iter()
    .enumerate()
    {
        let seq = p.next_seq();
        p.apply(seq, e).unwrap();
        assert_eq!(p.anomalies().len(), i + 1);
        assert_eq!(p.anomalies()[i].seq, seq);
        assert_eq!(p.anomalies()[i].kind, AnomalyKind::SentNotAsSigned(0));
    }
    assert_eq!(p.balances(), balances);
    assert_eq!(p.payments(), payments);
    // A signed payment confirmed without being sent (its fee never booked) does not fold.
    p.apply(p.next_seq(), &confirmed(0)).unwrap();
    assert_eq!(
        p.anomalies().last().unwrap().kind,
        AnomalyKind::PaymentOutOfOrder(0)
    );
    assert_eq!(p.balances(), balances);
}

#[test]
fn ledgers_before_signing_still_fold_prepared_to_sent_and_confirmed() {
    let mut events = vec![
        rule(PayoutScheme::Solo, 0, NetworkFeePayer::Pool),
        found(1, 100, "X", Target::MAX),
        matured(1),
        prepared(0, &[("X", 40)]),
        sent(0, 2),
        confirmed(0),
        prepared(1, &[("X", 30)]),
        confirmed(1),
    ];
    let p = replay(&events);
    assert!(p.anomalies().is_empty());
    let x = p.balance(&addr("X")).unwrap();
    assert_eq!((x.payable, x.paid), (Sats(30), Sats(70)));
    assert_conserved(&p);
    events.push(prepared(2, &[("X", 30)]));
    events.push(sent(2, 1));
    events.push(failed(2));
    let p = replay(&events);
    assert!(p.anomalies().is_empty());
    assert_eq!(p.balance(&addr("X")).unwrap().payable, Sats(30));
}

#[test]
fn the_lane_state_survives_a_snapshot() {
    let mut p = funded();
    apply_checked(&mut p, &prepared(0, &[("X", 60)]));
    apply_checked(&mut p, &signed(0, 5));
    apply_checked(&mut p, &prepared(1, &[("Y", 60)]));
    apply_checked(&mut p, &failed(1));
    let q = Projection::from_snapshot(&p.snapshot().unwrap()).unwrap();
    assert_eq!(q.open_payments(), p.open_payments());
    assert!(matches!(
        q.check_payment(&prepared(2, &[("X", 1)])),
        Err(PaymentRefusal::AddressInFlight { in_flight: 0, .. })
    ));
    assert_eq!(
        q.check_payment(&signed(0, 5)),
        p.check_payment(&signed(0, 5))
    );
    assert_eq!(q.next_payment_id(), 2);
    assert_eq!(q.state_bytes().unwrap(), p.state_bytes().unwrap());
}

#[test]
fn views_list_payable_balances_open_payments_and_next_ids() {
    let mut p = Projection::new(ProjectionConfig::default());
    assert_eq!(p.next_payment_id(), 0);
    assert!(p.payable_balances().is_empty());
    assert!(p.open_payments().is_empty());
    assert_eq!(p.expected_receipts(0, Sats(1)), None);
    p = funded();
    apply_checked(&mut p, &prepared(5, &[("Y", 300)]));
    // Y's payable is all in flight now: not listed.
    assert_eq!(
        p.payable_balances(),
        vec![(addr("X"), Sats(100)), (addr("pool-fee"), Sats(44))]
    );
    assert_eq!(p.next_payment_id(), 6);
    let open = p.open_payments();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].payment_id, open[0].status, open[0].payer),
        (5, PaymentStatus::Prepared, NetworkFeePayer::Miners)
    );
    assert_eq!((open[0].txid, open[0].raw_tx.clone()), (None, None));
    assert_eq!(open[0].outputs[0].address, addr("Y"));
    assert_eq!(open[0].outputs[0].amount, Sats(300));
    // The pool pays: outputs receive their prepared amounts whatever the fee.
    let mut q = lane(&[
        rule(PayoutScheme::Solo, 0, NetworkFeePayer::Pool),
        found(1, 100, "X", Target::MAX),
        matured(1),
        prepared(0, &[("X", 100)]),
    ]);
    assert_eq!(
        q.expected_receipts(0, Sats(37)),
        Some(vec![(addr("X"), Sats(100))])
    );
    // A fee above the whole payment (miners pay): each output gives at most all of itself.
    assert_eq!(
        p.expected_receipts(5, Sats(1_000)),
        Some(vec![(addr("Y"), Sats(0))])
    );
    apply_checked(&mut q, &signed(0, 1));
    assert_eq!(q.open_payments()[0].status, PaymentStatus::Signed);
}

#[test]
fn deep_reorgs_list_matured_blocks_orphaned_later_once_each() {
    let events = vec![
        found(1, 100, "X", Target::MAX),
        found(2, 100, "X", Target::MAX),
        found(3, 100, "X", Target::MAX),
        matured(2),
        matured(1),
        orphaned(3),
        orphaned(2),
        orphaned(1),
        orphaned(2),
    ];
    let p = replay(&events);
    assert_eq!(p.deep_reorgs(), vec![block_id(2), block_id(1)]);
}

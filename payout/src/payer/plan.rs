//! Which balances a run pays and how: the addresses due, the spending guard, and the batches
//! (one transaction each). Pure: the wallet's address checks come in as a function's answers.

use crate::api::PayoutState;
use pool_core::event::{PaymentOutput, PayoutAddress};
use pool_core::Sats;
use std::collections::BTreeSet;

/// What the planner needs from `[payout]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    pub min_payment: Sats,
    /// The chain's dust limit (`ChainParams::dust_limit`): no output below it.
    pub dust_limit: Sats,
    pub max_outputs: usize,
    pub max_per_run: Sats,
    pub max_per_day: Sats,
}

/// Every address whose payable balance reaches `min_payment` and that no open payment pays,
/// in address order, each for its whole payable balance.
pub fn due(state: &PayoutState, min_payment: Sats) -> Vec<PaymentOutput> {
    let in_flight: BTreeSet<&PayoutAddress> = state
        .open_payments
        .iter()
        .flat_map(|p| p.outputs.iter().map(|o| &o.address))
        .collect();
    let mut due: Vec<PaymentOutput> = state
        .payable
        .iter()
        .filter(|b| b.payable >= min_payment && !in_flight.contains(&b.address))
        .map(|b| PaymentOutput {
            address: b.address.clone(),
            amount: b.payable,
        })
        .collect();
    due.sort_by(|a, b| a.address.cmp(&b.address));
    due
}

/// What the spending guard says about a run that would prepare `run_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    Allowed,
    /// Prepare nothing: the sentence says which cap and by how much.
    Paused(String),
}

/// The spending guard: a run pays at most `max_per_run`, and everything prepared in the last
/// 24 hours (this run included) at most `max_per_day`. Above either the process prepares
/// nothing, so a projection bug can never empty the wallet; it pays again once the cap allows.
pub fn guard(run_total: Sats, prepared_last_24h: Sats, limits: &PlanLimits) -> Guard {
    if run_total > limits.max_per_run {
        return Guard::Paused(format!(
            "payouts paused by the spending guard: this run would pay {} sats, above [payout] max_per_run = {} sats; check the balances, then raise the cap if they are right",
            run_total.0, limits.max_per_run.0
        ));
    }
    let day = prepared_last_24h.0.saturating_add(run_total.0);
    if day > limits.max_per_day.0 {
        return Guard::Paused(format!(
            "payouts paused by the spending guard: {} sats prepared in the last 24 hours plus {} sats now would exceed [payout] max_per_day = {} sats; resuming when the daily cap allows it",
            prepared_last_24h.0, run_total.0, limits.max_per_day.0
        ));
    }
    Guard::Allowed
}

/// Splits the outputs into transactions of at most `max_outputs` outputs, in order.
pub fn batches(outputs: Vec<PaymentOutput>, max_outputs: usize) -> Vec<Vec<PaymentOutput>> {
    let size = max_outputs.max(1);
    let mut out = Vec::new();
    let mut rest = outputs;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(size));
        out.push(rest);
        rest = tail;
    }
    out
}

/// Sum of the outputs' amounts.
pub fn total(outputs: &[PaymentOutput]) -> Sats {
    Sats(outputs.iter().map(|o| o.amount.0).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{OpenPayment, PayableBalance};
    use pool_core::event::{NetworkFeePayer, PayoutRule};
    use projections::PaymentStatus;

    fn addr(s: &str) -> PayoutAddress {
        PayoutAddress(s.into())
    }

    fn state(payable: &[(&str, u64)], open: &[&str]) -> PayoutState {
        PayoutState {
            ledger: None,
            rule: PayoutRule {
                scheme: pool_core::event::PayoutScheme::Solo,
                fee_bps: 0,
                fee_address: addr("fee"),
                network_fee_payer: NetworkFeePayer::Pool,
            },
            payable: payable
                .iter()
                .map(|(a, p)| PayableBalance {
                    address: addr(a),
                    payable: Sats(*p),
                })
                .collect(),
            open_payments: vec![OpenPayment {
                payment_id: 3,
                status: PaymentStatus::Prepared,
                outputs: open
                    .iter()
                    .map(|a| PaymentOutput {
                        address: addr(a),
                        amount: Sats(1),
                    })
                    .collect(),
                network_fee_payer: NetworkFeePayer::Pool,
                txid: None,
                raw_tx: None,
                network_fee: Sats(0),
            }],
            next_payment_id: 4,
            prepared_last_24h: Sats(0),
            paused: None,
        }
    }

    fn limits() -> PlanLimits {
        PlanLimits {
            min_payment: Sats(1_000),
            dust_limit: Sats(546),
            max_outputs: 2,
            max_per_run: Sats(10_000),
            max_per_day: Sats(15_000),
        }
    }

    #[test]
    fn due_takes_whole_balances_at_the_threshold_and_skips_in_flight_addresses() {
        let s = state(
            &[("c", 1_000), ("a", 999), ("b", 5_000), ("d", 7_000)],
            &["d"],
        );
        let due = due(&s, Sats(1_000));
        let got: Vec<(&str, u64)> = due
            .iter()
            .map(|o| (o.address.0.as_str(), o.amount.0))
            .collect();
        assert_eq!(got, vec![("b", 5_000), ("c", 1_000)]);
    }

    #[test]
    fn guard_pauses_above_either_cap_and_allows_at_it() {
        let l = limits();
        assert_eq!(guard(Sats(10_000), Sats(5_000), &l), Guard::Allowed);
        match guard(Sats(10_001), Sats(0), &l) {
            Guard::Paused(why) => assert!(why.contains("max_per_run"), "{why}"),
            g => panic!("{g:?}"),
        }
        match guard(Sats(6_000), Sats(9_001), &l) {
            Guard::Paused(why) => assert!(why.contains("max_per_day"), "{why}"),
            g => panic!("{g:?}"),
        }
        // Once the day's earlier payments age out, the same run is allowed.
        assert_eq!(guard(Sats(6_000), Sats(0), &l), Guard::Allowed);
    }

    #[test]
    fn batches_hold_at_most_max_outputs() {
        let outs: Vec<PaymentOutput> = (0..5)
            .map(|i| PaymentOutput {
                address: addr(&format!("a{i}")),
                amount: Sats(1_000),
            })
            .collect();
        let b = batches(outs.clone(), 2);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert_eq!(b.concat(), outs);
        assert!(batches(vec![], 2).is_empty());
        assert_eq!(total(&outs), Sats(5_000));
    }
}

//! The RPC's read replies, built from the live projection under one read lock so every figure
//! and the ledger head beside them belong together.

use super::{Applied, Live};
use ledger::Head;
use payout::api::{LedgerHead, OpenPayment, PayableBalance, PayoutState, PoolStatus};
use pool_core::Sats;
use projections::PaymentStatus;
use std::time::{SystemTime, UNIX_EPOCH};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub fn ledger_head(head: Option<Head>) -> Option<LedgerHead> {
    head.map(|h| LedgerHead {
        seq: h.seq,
        hash: hex::encode(h.hash),
    })
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Live {
    pub fn pool_status(&self) -> PoolStatus {
        let state = self.read();
        let projection = &state.projection;
        PoolStatus {
            ledger: ledger_head(state.head),
            chain: self.chain_status(),
            payout: self.payout_report(),
            deep_reorgs: projection.deep_reorgs(),
            anomalies: projection
                .anomalies()
                .iter()
                .map(|a| format!("seq {}: {:?}", a.seq, a.kind))
                .collect(),
        }
    }

    pub fn payout_state(&self) -> PayoutState {
        let mut state = payout_state(&self.read(), now_ms());
        state.paused = self.pause().get();
        state
    }
}

/// The payout state as of `now_ms` (for the 24-hour sum).
pub fn payout_state(state: &Applied, now_ms: u64) -> PayoutState {
    let projection = &state.projection;
    PayoutState {
        ledger: ledger_head(state.head),
        rule: projection.rule_in_force(),
        payable: projection
            .payable_balances()
            .into_iter()
            .map(|(address, payable)| PayableBalance { address, payable })
            .collect(),
        open_payments: projection
            .open_payments()
            .into_iter()
            .map(|p| OpenPayment {
                payment_id: p.payment_id,
                status: p.status,
                outputs: p.outputs,
                network_fee_payer: p.payer,
                txid: p.txid,
                raw_tx: p.raw_tx.map(hex::encode),
                network_fee: p.network_fee,
            })
            .collect(),
        next_payment_id: projection.next_payment_id(),
        prepared_last_24h: prepared_since(state, now_ms.saturating_sub(DAY_MS)),
        paused: None,
    }
}

/// The outputs of payments prepared at or after `since_ms` (record time), failed ones excluded.
fn prepared_since(state: &Applied, since_ms: u64) -> Sats {
    let recent: std::collections::BTreeSet<u64> = state
        .prepared_times
        .iter()
        .filter(|(_, t)| **t >= since_ms)
        .map(|(id, _)| *id)
        .collect();
    if recent.is_empty() {
        return Sats::ZERO;
    }
    let total = state
        .projection
        .payments()
        .iter()
        .filter(|p| recent.contains(&p.payment_id) && p.status != PaymentStatus::Failed)
        .flat_map(|p| p.outputs.iter())
        .fold(0u64, |sum, (_, amount)| sum.saturating_add(amount.0));
    Sats(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::Record;
    use pool_core::event::{PaymentFailed, PaymentOutput, PaymentPrepared, PayoutAddress};
    use pool_core::Event;
    use projections::{Projection, ProjectionConfig};

    fn record(seq: u64, time_ms: u64, event: Event) -> Record {
        Record {
            seq,
            version: 1,
            time_ms,
            event,
            hash: [seq as u8; 32],
        }
    }

    fn prepared(id: u64, amount: u64) -> Event {
        Event::PaymentPrepared(PaymentPrepared {
            payment_id: id,
            outputs: vec![PaymentOutput {
                address: PayoutAddress(format!("addr{id}")),
                amount: Sats(amount),
            }],
        })
    }

    #[test]
    fn the_daily_sum_counts_recent_payments_that_did_not_fail() {
        let mut state = Applied {
            projection: Projection::new(ProjectionConfig::default()),
            head: None,
            prepared_times: Default::default(),
        };
        let now = 10 * DAY_MS;
        let events = [
            record(0, now - DAY_MS - 1, prepared(0, 1_000)), // too old
            record(1, now - DAY_MS, prepared(1, 2_000)),     // just inside
            record(2, now - 5, prepared(2, 4_000)),
            record(3, now - 4, prepared(3, 8_000)),
            record(
                4,
                now - 3,
                Event::PaymentFailed(PaymentFailed {
                    payment_id: 3,
                    reason: "nothing signed".into(),
                }),
            ),
        ];
        for r in &events {
            state.apply(None, r).unwrap();
        }
        let view = payout_state(&state, now);
        assert_eq!(view.prepared_last_24h, Sats(6_000));
        assert_eq!(view.ledger.unwrap().seq, 4);
    }
}

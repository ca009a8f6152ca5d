//! Payments as the operator's API lists them: newest first, optionally only those paying one
//! address, with every output's deduction, the latest event's seq, the confirmed height and the
//! failure reason.

use super::{PaymentRecord, PaymentStatus, Projection, State};
use pool_core::event::{NetworkFeePayer, PayoutAddress, Txid};
use pool_core::Sats;
use serde::{Deserialize, Serialize};

/// A payment in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDetailView {
    pub payment_id: u64,
    pub status: PaymentStatus,
    pub txid: Option<Txid>,
    /// `(address, amount as prepared, network fee deducted from it)`, in the prepared order.
    pub outputs: Vec<(PayoutAddress, Sats, Sats)>,
    pub network_fee: Sats,
    pub network_fee_payer: NetworkFeePayer,
    /// The seq of its latest event.
    pub last_seq: u64,
    pub confirmed_height: Option<u64>,
    pub failure_reason: Option<String>,
}

impl Projection {
    /// Payments newest first (by id), only those with an output to `address` if given, only
    /// those with an id below `before` if given, at most `limit`. `None` when `address` was never
    /// seen.
    pub fn payment_details(
        &self,
        address: Option<&PayoutAddress>,
        before: Option<u64>,
        limit: usize,
    ) -> Option<Vec<PaymentDetailView>> {
        let s = &self.state;
        let only = match address {
            Some(a) => Some(s.addresses.get(&a.0)?),
            None => None,
        };
        let range = s.payments.range(..before.unwrap_or(u64::MAX));
        Some(
            range
                .rev()
                .filter(|(_, p)| only.map_or(true, |a| p.outputs.iter().any(|(o, _)| *o == a)))
                .take(limit)
                .map(|(id, p)| s.payment_detail(*id, p))
                .collect(),
        )
    }

    /// One payment in full (`None`: unknown id).
    pub fn payment_detail(&self, payment_id: u64) -> Option<PaymentDetailView> {
        let p = self.state.payments.get(&payment_id)?;
        Some(self.state.payment_detail(payment_id, p))
    }
}

impl State {
    fn payment_detail(&self, payment_id: u64, p: &PaymentRecord) -> PaymentDetailView {
        PaymentDetailView {
            payment_id,
            status: p.status,
            txid: p.txid,
            outputs: p
                .outputs
                .iter()
                .zip(&p.deductions)
                .map(|((a, amount), d)| (self.addresses.name(*a).clone(), *amount, *d))
                .collect(),
            network_fee: p.network_fee,
            network_fee_payer: p.payer,
            last_seq: p.last_seq,
            confirmed_height: p.confirmed_height,
            failure_reason: p.failure_reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProjectionConfig;
    use pool_core::event::{
        PaymentConfirmed, PaymentFailed, PaymentOutput, PaymentPrepared, PaymentSent, PayoutRule,
        PayoutScheme,
    };
    use pool_core::Event;

    fn addr(s: &str) -> PayoutAddress {
        PayoutAddress(s.into())
    }

    fn prepared(id: u64, outputs: &[(&str, u64)]) -> Event {
        Event::PaymentPrepared(PaymentPrepared {
            payment_id: id,
            outputs: outputs
                .iter()
                .map(|(a, s)| PaymentOutput {
                    address: addr(a),
                    amount: Sats(*s),
                })
                .collect(),
        })
    }

    #[test]
    fn payments_newest_first_by_address_with_their_outcome() {
        let txid: Txid = pool_core::BlockId([7; 32]);
        let events = [
            Event::PayoutRuleSet(PayoutRule {
                scheme: PayoutScheme::Prop,
                fee_bps: 0,
                fee_address: addr("fee"),
                network_fee_payer: NetworkFeePayer::Miners,
            }),
            prepared(0, &[("a", 1_000), ("b", 3_000)]),
            Event::PaymentSent(PaymentSent {
                payment_id: 0,
                txid,
                network_fee: Sats(100),
            }),
            Event::PaymentConfirmed(PaymentConfirmed {
                payment_id: 0,
                txid,
                height: 150,
            }),
            prepared(1, &[("b", 500)]),
            Event::PaymentFailed(PaymentFailed {
                payment_id: 1,
                reason: "wallet locked".into(),
            }),
            prepared(2, &[("a", 200)]),
        ];
        let mut p = Projection::new(ProjectionConfig::default());
        for (seq, e) in events.iter().enumerate() {
            p.apply(seq as u64, e).unwrap();
        }
        let all = p.payment_details(None, None, 10).unwrap();
        let ids: Vec<u64> = all.iter().map(|d| d.payment_id).collect();
        assert_eq!(ids, vec![2, 1, 0]);
        let zero = &all[2];
        assert_eq!(zero.status, PaymentStatus::Confirmed);
        assert_eq!(zero.confirmed_height, Some(150));
        assert_eq!(zero.last_seq, 3);
        assert_eq!(
            zero.outputs,
            vec![
                (addr("a"), Sats(1_000), Sats(25)),
                (addr("b"), Sats(3_000), Sats(75))
            ]
        );
        assert_eq!(all[1].failure_reason.as_deref(), Some("wallet locked"));
        assert_eq!(all[0].status, PaymentStatus::Prepared);
        // By address, paged.
        let a = p.payment_details(Some(&addr("a")), None, 1).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].payment_id, 2);
        let a = p.payment_details(Some(&addr("a")), Some(2), 10).unwrap();
        assert_eq!(a.iter().map(|d| d.payment_id).collect::<Vec<_>>(), vec![0]);
        let b = p.payment_details(Some(&addr("b")), None, 10).unwrap();
        assert_eq!(
            b.iter().map(|d| d.payment_id).collect::<Vec<_>>(),
            vec![1, 0]
        );
        assert!(p.payment_details(Some(&addr("nobody")), None, 10).is_none());
        assert_eq!(p.payment_detail(1).unwrap().status, PaymentStatus::Failed);
        assert!(p.payment_detail(9).is_none());
    }
}

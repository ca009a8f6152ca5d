//! What the projection reports about payments: every payment, the open ones with what the payout
//! process needs to resume them, the payable balances a new payment may draw on, and the amounts
//! a signed transaction must pay.

use super::{PaymentRecord, PaymentStatus, Projection, State};
use crate::split::split_network_fee;
use pool_core::event::{NetworkFeePayer, PaymentOutput, PayoutAddress, Txid};
use pool_core::Sats;
use serde::{Deserialize, Serialize};

/// A payment as the query API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub payment_id: u64,
    pub status: PaymentStatus,
    pub txid: Option<Txid>,
    pub outputs: Vec<(PayoutAddress, Sats)>,
    /// The transaction's network fee: known once signed, booked once sent.
    pub network_fee: Sats,
    pub network_fee_payer: NetworkFeePayer,
}

/// A payment that is not final (prepared, signed or sent), with what the payout process needs
/// to resume it after a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPaymentView {
    pub payment_id: u64,
    pub status: PaymentStatus,
    /// As prepared (the amounts that left payable), in the order of the `PaymentPrepared`.
    pub outputs: Vec<PaymentOutput>,
    /// The network fee payer of the rule in force when it was prepared.
    pub payer: NetworkFeePayer,
    /// Set once signed (or sent, on ledgers written before signing was recorded).
    pub txid: Option<Txid>,
    /// The signed transaction: after a crash exactly these bytes are broadcast again. Set once
    /// signed.
    pub raw_tx: Option<Vec<u8>>,
    /// The signed transaction's network fee (zero before signing).
    pub network_fee: Sats,
    /// Per output, the network fee deducted from it (miners pay); all zero until sent.
    pub deductions: Vec<Sats>,
}

impl Projection {
    /// Payments by id.
    pub fn payments(&self) -> Vec<PaymentView> {
        let s = &self.state;
        s.payments
            .iter()
            .map(|(id, p)| PaymentView {
                payment_id: *id,
                status: p.status,
                txid: p.txid,
                outputs: p
                    .outputs
                    .iter()
                    .map(|(a, amount)| (s.addresses.name(*a).clone(), *amount))
                    .collect(),
                network_fee: p.network_fee,
                network_fee_payer: p.payer,
            })
            .collect()
    }

    /// Payments in Prepared, Signed or Sent, by id.
    pub fn open_payments(&self) -> Vec<OpenPaymentView> {
        let s = &self.state;
        s.open_payments
            .ids
            .iter()
            .filter_map(|id| Some((*id, s.payments.get(id)?)))
            .map(|(id, p)| s.open_payment_view(id, p))
            .collect()
    }

    /// Addresses with a payable balance above zero (so no debt), in address order. An address
    /// listed here may still have a payment in flight ([`Projection::open_payments`]); the lane
    /// refuses a second one for it until the first is final.
    pub fn payable_balances(&self) -> Vec<(PayoutAddress, Sats)> {
        let s = &self.state;
        let mut out: Vec<(PayoutAddress, Sats)> = s
            .addresses
            .names
            .iter()
            .zip(&s.balances)
            .filter(|(_, b)| b.payable > Sats::ZERO)
            .map(|(a, b)| (a.clone(), b.payable))
            .collect();
        out.sort_unstable_by(|x, y| x.0.cmp(&y.0));
        out
    }

    /// The smallest payment id above every id ever used (0 when there was none).
    pub fn next_payment_id(&self) -> u64 {
        self.state
            .payments
            .last_key_value()
            .map_or(0, |(id, _)| id.saturating_add(1))
    }

    /// What each output's address must receive on chain if payment `payment_id` is signed with
    /// `network_fee`, in the payment's output order: the prepared amount minus its share of the
    /// fee ([`split_network_fee`], exactly as the fold books it at `PaymentSent`) when the miners
    /// pay; the prepared amount when the pool pays. `None` for an unknown payment.
    pub fn expected_receipts(
        &self,
        payment_id: u64,
        network_fee: Sats,
    ) -> Option<Vec<(PayoutAddress, Sats)>> {
        let s = &self.state;
        let p = s.payments.get(&payment_id)?;
        let deductions = match p.payer {
            NetworkFeePayer::Pool => vec![Sats::ZERO; p.outputs.len()],
            NetworkFeePayer::Miners => {
                let amounts: Vec<Sats> = p.outputs.iter().map(|(_, a)| *a).collect();
                split_network_fee(&amounts, network_fee).0
            }
        };
        Some(
            p.outputs
                .iter()
                .zip(deductions)
                .map(|((a, amount), d)| {
                    (
                        s.addresses.name(*a).clone(),
                        Sats(amount.0.saturating_sub(d.0)),
                    )
                })
                .collect(),
        )
    }
}

impl State {
    fn open_payment_view(&self, payment_id: u64, p: &PaymentRecord) -> OpenPaymentView {
        OpenPaymentView {
            payment_id,
            status: p.status,
            outputs: p
                .outputs
                .iter()
                .map(|(a, amount)| PaymentOutput {
                    address: self.addresses.name(*a).clone(),
                    amount: *amount,
                })
                .collect(),
            payer: p.payer,
            txid: p.txid,
            raw_tx: p.raw_tx.clone(),
            network_fee: p.network_fee,
            deductions: p.deductions.clone(),
        }
    }
}

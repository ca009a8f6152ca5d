//! TEMPORARY STAND-IN (helper `rpc`, issue #15): the payment lane's views and check with the
//! signatures of the plan's projections contract, built only from the public views so the
//! binary's live projection and RPC compile and run before helper `proj`'s real implementation
//! lands. The lead deletes this file (and its `mod`/`pub use` lines in lib.rs) on merging `proj`.
//!
//! Deliberately partial: `PaymentPrepared` is checked for a reused id, an amount over the
//! payable balance and an address already in flight; every other event passes, and repeats are
//! never recognised (the real check knows each payment's latest event and its seq).

use crate::{PaymentStatus, Projection};
use pool_core::event::{NetworkFeePayer, PaymentOutput, PayoutAddress, Txid};
use pool_core::{BlockId, Event, Sats};

/// Stand-in of the contract's `PaymentCheck`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentCheck {
    Valid,
    Repeat { seq: u64 },
}

/// Stand-in of the contract's `PaymentRefusal`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRefusal {
    #[error("{0}")]
    Refused(String),
}

/// Stand-in of the contract's `OpenPaymentView`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenPaymentView {
    pub payment_id: u64,
    pub status: PaymentStatus,
    pub outputs: Vec<PaymentOutput>,
    pub payer: NetworkFeePayer,
    pub txid: Option<Txid>,
    pub raw_tx: Option<Vec<u8>>,
    pub network_fee: Sats,
    pub deductions: Vec<Sats>,
}

impl Projection {
    pub fn check_payment(&self, event: &Event) -> Result<PaymentCheck, PaymentRefusal> {
        let Event::PaymentPrepared(p) = event else {
            return Ok(PaymentCheck::Valid);
        };
        let refuse = |why: String| Err(PaymentRefusal::Refused(why));
        if self.payments().iter().any(|q| q.payment_id == p.payment_id) {
            return refuse(format!("payment id {} is already used", p.payment_id));
        }
        let open = self.open_payments();
        for o in &p.outputs {
            let payable = self.balance(&o.address).map_or(Sats::ZERO, |b| b.payable);
            if o.amount > payable {
                return refuse(format!("{} has only {} payable", o.address, payable.0));
            }
            if open
                .iter()
                .any(|q| q.outputs.iter().any(|x| x.address == o.address))
            {
                return refuse(format!("{} has a payment in flight", o.address));
            }
        }
        Ok(PaymentCheck::Valid)
    }

    pub fn payable_balances(&self) -> Vec<(PayoutAddress, Sats)> {
        self.balances()
            .into_iter()
            .filter(|(_, b)| b.payable > Sats::ZERO)
            .map(|(a, b)| (a, b.payable))
            .collect()
    }

    pub fn open_payments(&self) -> Vec<OpenPaymentView> {
        self.payments()
            .into_iter()
            .filter(|p| matches!(p.status, PaymentStatus::Prepared | PaymentStatus::Sent))
            .map(|p| OpenPaymentView {
                payment_id: p.payment_id,
                status: p.status,
                deductions: vec![Sats::ZERO; p.outputs.len()],
                outputs: p
                    .outputs
                    .into_iter()
                    .map(|(address, amount)| PaymentOutput { address, amount })
                    .collect(),
                payer: p.network_fee_payer,
                txid: p.txid,
                raw_tx: None,
                network_fee: p.network_fee,
            })
            .collect()
    }

    pub fn next_payment_id(&self) -> u64 {
        self.payments().last().map_or(0, |p| p.payment_id + 1)
    }

    pub fn expected_receipts(
        &self,
        payment_id: u64,
        network_fee: Sats,
    ) -> Option<Vec<(PayoutAddress, Sats)>> {
        let p = self
            .payments()
            .into_iter()
            .find(|p| p.payment_id == payment_id)?;
        let amounts: Vec<Sats> = p.outputs.iter().map(|(_, s)| *s).collect();
        let deductions = match p.network_fee_payer {
            NetworkFeePayer::Pool => vec![Sats::ZERO; amounts.len()],
            NetworkFeePayer::Miners => crate::split::split_network_fee(&amounts, network_fee).0,
        };
        Some(
            p.outputs
                .into_iter()
                .zip(deductions)
                .map(|((a, s), d)| (a, Sats(s.0.saturating_sub(d.0))))
                .collect(),
        )
    }

    pub fn deep_reorgs(&self) -> Vec<BlockId> {
        self.anomalies()
            .iter()
            .filter_map(|a| match a.kind {
                crate::AnomalyKind::OrphanedAfterMaturity(id) => Some(id),
                _ => None,
            })
            .collect()
    }
}

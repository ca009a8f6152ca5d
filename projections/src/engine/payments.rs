//! Payments: prepared, sent (network fee booked by its payer), confirmed, failed.

use super::{AnomalyKind, PaymentRecord, PaymentStatus, State};
use crate::split::split_network_fee;
use pool_core::event::{
    NetworkFeePayer, PaymentConfirmed, PaymentFailed, PaymentPrepared, PaymentSent,
};
use pool_core::Sats;

impl State {
    pub(super) fn on_payment_prepared(&mut self, seq: u64, p: &PaymentPrepared) {
        if self.payments.contains_key(&p.payment_id) {
            self.anomaly(seq, AnomalyKind::DuplicatePayment(p.payment_id));
            return;
        }
        let rule = self.current_rule();
        let fee_address = self.intern_address(&rule.fee_address);
        let mut outputs = Vec::with_capacity(p.outputs.len());
        for o in &p.outputs {
            let a = self.intern_address(&o.address);
            let bal = &mut self.balances[a as usize];
            bal.debit_payable(o.amount);
            bal.in_flight.0 = bal.in_flight.0.saturating_add(o.amount.0);
            outputs.push((a, o.amount));
        }
        let n = outputs.len();
        self.payments.insert(
            p.payment_id,
            PaymentRecord {
                outputs,
                payer: rule.network_fee_payer,
                fee_address,
                status: PaymentStatus::Prepared,
                txid: None,
                network_fee: Sats::ZERO,
                deductions: vec![Sats::ZERO; n],
                pool_network_fee: Sats::ZERO,
            },
        );
    }

    pub(super) fn open_payment(&mut self, seq: u64, id: u64, allowed: &[PaymentStatus]) -> bool {
        match self.payments.get(&id) {
            None => {
                self.anomaly(seq, AnomalyKind::UnknownPayment(id));
                false
            }
            Some(p) if !allowed.contains(&p.status) => {
                self.anomaly(seq, AnomalyKind::PaymentOutOfOrder(id));
                false
            }
            Some(_) => true,
        }
    }

    pub(super) fn on_payment_sent(&mut self, seq: u64, sent: &PaymentSent) {
        if !self.open_payment(seq, sent.payment_id, &[PaymentStatus::Prepared]) {
            return;
        }
        let Some(p) = self.payments.get_mut(&sent.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Sent;
        p.txid = Some(sent.txid);
        p.network_fee = sent.network_fee;
        match p.payer {
            NetworkFeePayer::Pool => p.pool_network_fee = sent.network_fee,
            NetworkFeePayer::Miners => {
                let amounts: Vec<Sats> = p.outputs.iter().map(|(_, s)| *s).collect();
                let (deductions, excess) = split_network_fee(&amounts, sent.network_fee);
                p.deductions = deductions;
                p.pool_network_fee = excess;
            }
        }
        for ((a, _), d) in p.outputs.iter().zip(&p.deductions) {
            let bal = &mut self.balances[*a as usize];
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(d.0);
            bal.network_fees.0 = bal.network_fees.0.saturating_add(d.0);
        }
        let pool = &mut self.balances[p.fee_address as usize];
        pool.debit_payable(p.pool_network_fee);
        pool.network_fees.0 = pool.network_fees.0.saturating_add(p.pool_network_fee.0);
    }

    pub(super) fn on_payment_confirmed(&mut self, seq: u64, c: &PaymentConfirmed) {
        let allowed = [PaymentStatus::Prepared, PaymentStatus::Sent];
        if !self.open_payment(seq, c.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&c.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Confirmed;
        p.txid = Some(c.txid);
        for ((a, amount), d) in p.outputs.iter().zip(&p.deductions) {
            let received = amount.0.saturating_sub(d.0);
            let bal = &mut self.balances[*a as usize];
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(received);
            bal.paid.0 = bal.paid.0.saturating_add(received);
        }
    }

    pub(super) fn on_payment_failed(&mut self, seq: u64, f: &PaymentFailed) {
        let allowed = [PaymentStatus::Prepared, PaymentStatus::Sent];
        if !self.open_payment(seq, f.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&f.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Failed;
        // Undo the network fee bookings: a transaction that never confirmed spent nothing.
        let pool = &mut self.balances[p.fee_address as usize];
        pool.network_fees.0 = pool.network_fees.0.saturating_sub(p.pool_network_fee.0);
        pool.credit_payable(p.pool_network_fee);
        for ((a, amount), d) in p.outputs.iter().zip(&p.deductions) {
            let bal = &mut self.balances[*a as usize];
            bal.network_fees.0 = bal.network_fees.0.saturating_sub(d.0);
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(amount.0.saturating_sub(d.0));
            bal.credit_payable(*amount);
        }
    }
}

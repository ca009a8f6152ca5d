//! The payments fold: prepared, signed, sent (network fee booked by its payer), confirmed,
//! failed. Lenient for ledgers written before `PaymentSigned` existed (prepared -> sent and
//! prepared -> confirmed fold); the lane's strict rules are in `payment_check`.

use super::{AnomalyKind, OpenPayments, PaymentRecord, PaymentStatus, State};
use crate::split::split_network_fee;
use pool_core::event::{
    NetworkFeePayer, PaymentConfirmed, PaymentFailed, PaymentPrepared, PaymentSent, PaymentSigned,
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
        let record = PaymentRecord {
            outputs,
            payer: rule.network_fee_payer,
            fee_address,
            status: PaymentStatus::Prepared,
            last_seq: seq,
            txid: None,
            raw_tx: None,
            network_fee: Sats::ZERO,
            deductions: vec![Sats::ZERO; n],
            pool_network_fee: Sats::ZERO,
            confirmed_height: None,
            failure_reason: None,
        };
        self.open_payments.insert(p.payment_id, &record);
        self.payments.insert(p.payment_id, record);
    }

    /// Whether payment `id` exists and is in one of the `allowed` states; if not, an anomaly.
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

    pub(super) fn on_payment_signed(&mut self, seq: u64, signed: &PaymentSigned) {
        if !self.open_payment(seq, signed.payment_id, &[PaymentStatus::Prepared]) {
            return;
        }
        let Some(p) = self.payments.get_mut(&signed.payment_id) else {
            return;
        };
        // Nothing is booked yet: a signed transaction that never reaches the network costs
        // nothing, and the fee is booked once it is sent.
        p.status = PaymentStatus::Signed;
        p.last_seq = seq;
        p.txid = Some(signed.txid);
        p.raw_tx = Some(signed.raw_tx.clone());
        p.network_fee = signed.network_fee;
    }

    pub(super) fn on_payment_sent(&mut self, seq: u64, sent: &PaymentSent) {
        let allowed = [PaymentStatus::Prepared, PaymentStatus::Signed];
        if !self.open_payment(seq, sent.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&sent.payment_id) else {
            return;
        };
        let as_signed = p.txid == Some(sent.txid) && p.network_fee == sent.network_fee;
        if p.status == PaymentStatus::Signed && !as_signed {
            self.anomaly(seq, AnomalyKind::SentNotAsSigned(sent.payment_id));
            return;
        }
        p.status = PaymentStatus::Sent;
        p.last_seq = seq;
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
        // Prepared -> confirmed: ledgers written before sending was recorded.
        let allowed = [PaymentStatus::Prepared, PaymentStatus::Sent];
        if !self.open_payment(seq, c.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&c.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Confirmed;
        p.last_seq = seq;
        p.txid = Some(c.txid);
        p.raw_tx = None;
        p.confirmed_height = Some(c.height);
        for ((a, amount), d) in p.outputs.iter().zip(&p.deductions) {
            let received = amount.0.saturating_sub(d.0);
            let bal = &mut self.balances[*a as usize];
            bal.in_flight.0 = bal.in_flight.0.saturating_sub(received);
            bal.paid.0 = bal.paid.0.saturating_add(received);
        }
        self.unindex_open_payment(c.payment_id);
    }

    pub(super) fn on_payment_failed(&mut self, seq: u64, f: &PaymentFailed) {
        let allowed = [
            PaymentStatus::Prepared,
            PaymentStatus::Signed,
            PaymentStatus::Sent,
        ];
        if !self.open_payment(seq, f.payment_id, &allowed) {
            return;
        }
        let Some(p) = self.payments.get_mut(&f.payment_id) else {
            return;
        };
        p.status = PaymentStatus::Failed;
        p.last_seq = seq;
        p.raw_tx = None;
        p.failure_reason = Some(f.reason.clone());
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
        self.unindex_open_payment(f.payment_id);
    }

    fn unindex_open_payment(&mut self, id: u64) {
        if let Some(p) = self.payments.get(&id) {
            self.open_payments.remove(id, p);
        }
    }

    /// Rebuilds the open payments' lookups from the payments (after loading a snapshot).
    pub(super) fn rebuild_open_payments(&mut self) {
        let mut open = OpenPayments::default();
        for (id, p) in self.payments.iter().filter(|(_, p)| p.status.is_open()) {
            open.insert(*id, p);
        }
        self.open_payments = open;
    }

    /// An open payment that pays address `a`, if any (the smallest id).
    pub(super) fn open_payment_paying(&self, a: u32) -> Option<u64> {
        self.open_payments
            .by_address
            .range((a, 0)..=(a, u64::MAX))
            .next()
            .map(|(_, id)| *id)
    }
}

impl OpenPayments {
    fn insert(&mut self, id: u64, p: &PaymentRecord) {
        self.ids.insert(id);
        for (a, _) in &p.outputs {
            self.by_address.insert((*a, id));
        }
    }

    fn remove(&mut self, id: u64, p: &PaymentRecord) {
        self.ids.remove(&id);
        for (a, _) in &p.outputs {
            self.by_address.remove(&(*a, id));
        }
    }
}

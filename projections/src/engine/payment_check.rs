//! The payment lane's check: whether a payment event may be appended, by the strict state table
//! (the crate docs). Pure: it reads the projection and changes nothing. The pool runs it in its
//! serialized lane, appending and applying a valid event before it checks the next, so two
//! requests can never both pass against the same balance.
//!
//! Cost: a `PaymentPrepared` of `k` outputs takes `O(k log k)` plus one hash lookup and one
//! ordered-set lookup per output (`O(k log n)`); every other event one lookup of its payment.
//! Nothing walks all addresses or all payments.

use super::{PaymentRecord, PaymentStatus, Projection};
use pool_core::event::{
    PaymentConfirmed, PaymentFailed, PaymentPrepared, PaymentSent, PaymentSigned, PayoutAddress,
    Txid,
};
use pool_core::{Event, Sats};
use thiserror::Error;

/// The start of a `PaymentFailed` reason for a payment that was signed or sent: the payout
/// process fails such a payment only once it has seen a conflicting spend of one of its inputs
/// at the final depth (never because a broadcast failed).
pub const CONFLICT_REASON_PREFIX: &str = "conflicting spend confirmed: ";

/// A payment event the lane accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentCheck {
    /// Follows the payment's state: append it.
    Valid,
    /// Exactly the payment's latest event, recorded at `seq`: append nothing and answer with
    /// that record (an idempotent retry after a crash).
    Repeat { seq: u64 },
}

/// Why the lane refuses a payment event. The message is a sentence for the JSON-RPC error.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PaymentRefusal {
    #[error("{kind} is not a payment event")]
    NotAPaymentEvent { kind: &'static str },
    #[error("payment {payment_id} has no outputs")]
    NoOutputs { payment_id: u64 },
    #[error("payment {payment_id} pays 0 sats to {address}")]
    ZeroAmount {
        payment_id: u64,
        address: PayoutAddress,
    },
    #[error("payment {payment_id} names {address} more than once")]
    DuplicateAddress {
        payment_id: u64,
        address: PayoutAddress,
    },
    #[error("payment id {payment_id} is already used (that payment is {status})")]
    PaymentIdUsed {
        payment_id: u64,
        status: PaymentStatus,
    },
    #[error(
        "payment {payment_id} pays {} sats to {address}, whose payable balance is {} sats",
        .amount.0, .payable.0
    )]
    ExceedsPayable {
        payment_id: u64,
        address: PayoutAddress,
        amount: Sats,
        payable: Sats,
    },
    #[error("payment {payment_id} pays {address}, which owes {} sats", .debt.0)]
    AddressInDebt {
        payment_id: u64,
        address: PayoutAddress,
        debt: Sats,
    },
    #[error(
        "payment {payment_id} pays {address}, which payment {in_flight} already pays (not final yet)"
    )]
    AddressInFlight {
        payment_id: u64,
        address: PayoutAddress,
        in_flight: u64,
    },
    #[error("{event} names payment {payment_id}, which was never prepared")]
    UnknownPayment {
        payment_id: u64,
        event: &'static str,
    },
    #[error(
        "{event} does not follow payment {payment_id}, which is {status}: {}",
        expected_state(.event)
    )]
    OutOfOrder {
        payment_id: u64,
        event: &'static str,
        status: PaymentStatus,
    },
    #[error("PaymentSigned for payment {payment_id} carries no transaction")]
    EmptyTransaction { payment_id: u64 },
    #[error(
        "{event} for payment {payment_id} names txid {got}, but its transaction is {expected}"
    )]
    TxidMismatch {
        payment_id: u64,
        event: &'static str,
        expected: Txid,
        got: Txid,
    },
    #[error(
        "PaymentSent for payment {payment_id} states a network fee of {} sats, but its signed transaction pays {} sats",
        .got.0, .expected.0
    )]
    FeeMismatch {
        payment_id: u64,
        expected: Sats,
        got: Sats,
    },
    #[error(
        "payment {payment_id} is {status}: it fails only once a conflicting spend of one of its inputs is final (a reason starting {CONFLICT_REASON_PREFIX:?}), not for {reason:?}"
    )]
    NoConflictingSpend {
        payment_id: u64,
        status: PaymentStatus,
        reason: String,
    },
}

/// What each payment event needs, for [`PaymentRefusal::OutOfOrder`]'s message.
fn expected_state(event: &str) -> &'static str {
    match event {
        "PaymentSigned" => "only a prepared payment is signed",
        "PaymentSent" => "only a signed payment is sent",
        "PaymentConfirmed" => "only a sent payment is confirmed",
        _ => "only a prepared, signed or sent payment fails",
    }
}

impl Projection {
    /// Whether the payment lane may append `event` now, by the strict state table (crate docs).
    /// A request equal to its payment's latest event is a [`PaymentCheck::Repeat`]; an event
    /// the check finds valid folds without an anomaly.
    pub fn check_payment(&self, event: &Event) -> Result<PaymentCheck, PaymentRefusal> {
        match event {
            Event::PaymentPrepared(p) => self.check_prepared(p),
            Event::PaymentSigned(s) => self.check_signed(s),
            Event::PaymentSent(s) => self.check_sent(s),
            Event::PaymentConfirmed(c) => self.check_confirmed(c),
            Event::PaymentFailed(f) => self.check_failed(f),
            other => Err(PaymentRefusal::NotAPaymentEvent { kind: other.kind() }),
        }
    }

    fn check_prepared(&self, p: &PaymentPrepared) -> Result<PaymentCheck, PaymentRefusal> {
        let s = &self.state;
        let payment_id = p.payment_id;
        if let Some(existing) = s.payments.get(&payment_id) {
            let same_outputs = existing.outputs.len() == p.outputs.len()
                && existing
                    .outputs
                    .iter()
                    .zip(&p.outputs)
                    .all(|((a, amount), o)| {
                        *amount == o.amount && *s.addresses.name(*a) == o.address
                    });
            if existing.status == PaymentStatus::Prepared && same_outputs {
                return Ok(PaymentCheck::Repeat {
                    seq: existing.last_seq,
                });
            }
            return Err(PaymentRefusal::PaymentIdUsed {
                payment_id,
                status: existing.status,
            });
        }
        if p.outputs.is_empty() {
            return Err(PaymentRefusal::NoOutputs { payment_id });
        }
        let mut ids = Vec::with_capacity(p.outputs.len());
        for o in &p.outputs {
            if o.amount == Sats::ZERO {
                return Err(PaymentRefusal::ZeroAmount {
                    payment_id,
                    address: o.address.clone(),
                });
            }
            let Some(a) = s.addresses.get(&o.address.0) else {
                return Err(PaymentRefusal::ExceedsPayable {
                    payment_id,
                    address: o.address.clone(),
                    amount: o.amount,
                    payable: Sats::ZERO,
                });
            };
            let balance = &s.balances[a as usize];
            if balance.debt > Sats::ZERO {
                return Err(PaymentRefusal::AddressInDebt {
                    payment_id,
                    address: o.address.clone(),
                    debt: balance.debt,
                });
            }
            if let Some(in_flight) = s.open_payment_paying(a) {
                return Err(PaymentRefusal::AddressInFlight {
                    payment_id,
                    address: o.address.clone(),
                    in_flight,
                });
            }
            if o.amount > balance.payable {
                return Err(PaymentRefusal::ExceedsPayable {
                    payment_id,
                    address: o.address.clone(),
                    amount: o.amount,
                    payable: balance.payable,
                });
            }
            ids.push(a);
        }
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PaymentRefusal::DuplicateAddress {
                payment_id,
                address: s.addresses.name(w[0]).clone(),
            });
        }
        Ok(PaymentCheck::Valid)
    }

    /// The payment an event names; an unknown id is refused.
    fn payment_for(
        &self,
        payment_id: u64,
        event: &'static str,
    ) -> Result<&PaymentRecord, PaymentRefusal> {
        self.state
            .payments
            .get(&payment_id)
            .ok_or(PaymentRefusal::UnknownPayment { payment_id, event })
    }

    fn check_signed(&self, signed: &PaymentSigned) -> Result<PaymentCheck, PaymentRefusal> {
        let payment_id = signed.payment_id;
        let p = self.payment_for(payment_id, "PaymentSigned")?;
        let repeat = p.status == PaymentStatus::Signed
            && p.txid == Some(signed.txid)
            && p.network_fee == signed.network_fee
            && p.raw_tx.as_deref() == Some(signed.raw_tx.as_slice());
        if repeat {
            return Ok(PaymentCheck::Repeat { seq: p.last_seq });
        }
        if p.status != PaymentStatus::Prepared {
            return Err(out_of_order(payment_id, "PaymentSigned", p.status));
        }
        if signed.raw_tx.is_empty() {
            return Err(PaymentRefusal::EmptyTransaction { payment_id });
        }
        Ok(PaymentCheck::Valid)
    }

    fn check_sent(&self, sent: &PaymentSent) -> Result<PaymentCheck, PaymentRefusal> {
        let payment_id = sent.payment_id;
        let p = self.payment_for(payment_id, "PaymentSent")?;
        let same = p.txid == Some(sent.txid) && p.network_fee == sent.network_fee;
        if p.status == PaymentStatus::Sent && same {
            return Ok(PaymentCheck::Repeat { seq: p.last_seq });
        }
        if p.status != PaymentStatus::Signed {
            return Err(out_of_order(payment_id, "PaymentSent", p.status));
        }
        if let Some(expected) = p.txid.filter(|t| *t != sent.txid) {
            return Err(PaymentRefusal::TxidMismatch {
                payment_id,
                event: "PaymentSent",
                expected,
                got: sent.txid,
            });
        }
        if p.network_fee != sent.network_fee {
            return Err(PaymentRefusal::FeeMismatch {
                payment_id,
                expected: p.network_fee,
                got: sent.network_fee,
            });
        }
        Ok(PaymentCheck::Valid)
    }

    fn check_confirmed(&self, c: &PaymentConfirmed) -> Result<PaymentCheck, PaymentRefusal> {
        let payment_id = c.payment_id;
        let p = self.payment_for(payment_id, "PaymentConfirmed")?;
        let repeat = p.status == PaymentStatus::Confirmed
            && p.txid == Some(c.txid)
            && p.confirmed_height == Some(c.height);
        if repeat {
            return Ok(PaymentCheck::Repeat { seq: p.last_seq });
        }
        if p.status != PaymentStatus::Sent {
            return Err(out_of_order(payment_id, "PaymentConfirmed", p.status));
        }
        if let Some(expected) = p.txid.filter(|t| *t != c.txid) {
            return Err(PaymentRefusal::TxidMismatch {
                payment_id,
                event: "PaymentConfirmed",
                expected,
                got: c.txid,
            });
        }
        Ok(PaymentCheck::Valid)
    }

    fn check_failed(&self, f: &PaymentFailed) -> Result<PaymentCheck, PaymentRefusal> {
        let payment_id = f.payment_id;
        let p = self.payment_for(payment_id, "PaymentFailed")?;
        if p.status == PaymentStatus::Failed && p.failure_reason.as_deref() == Some(&f.reason) {
            return Ok(PaymentCheck::Repeat { seq: p.last_seq });
        }
        match p.status {
            PaymentStatus::Prepared => Ok(PaymentCheck::Valid),
            PaymentStatus::Signed | PaymentStatus::Sent => {
                if f.reason.starts_with(CONFLICT_REASON_PREFIX) {
                    Ok(PaymentCheck::Valid)
                } else {
                    Err(PaymentRefusal::NoConflictingSpend {
                        payment_id,
                        status: p.status,
                        reason: f.reason.clone(),
                    })
                }
            }
            PaymentStatus::Confirmed | PaymentStatus::Failed => {
                Err(out_of_order(payment_id, "PaymentFailed", p.status))
            }
        }
    }
}

fn out_of_order(payment_id: u64, event: &'static str, status: PaymentStatus) -> PaymentRefusal {
    PaymentRefusal::OutOfOrder {
        payment_id,
        event,
        status,
    }
}

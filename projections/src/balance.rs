//! Per-address balances: where each satoshi credited to a payout address currently is.
//!
//! Amounts are unsigned satoshis. A balance that would go below zero carries a separate `debt`
//! instead: a payment larger than the payable balance (for example one made against immature
//! credits whose block was then orphaned) leaves a debt, and later credits repay the debt before
//! anything becomes payable again. At most one of `payable` and `debt` is non-zero.

use pool_core::Sats;
use serde::{Deserialize, Serialize};

/// One payout address's money, in satoshis.
///
/// Conservation: over all addresses, `immature + payable + in_flight + paid + network_fees - debt`
/// equals the rewards of the blocks that are not orphaned (the pool fee is credited to the fee
/// address like any other credit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Credits of blocks that have not matured yet.
    pub immature: Sats,
    /// Credits of matured blocks, not yet in a payment.
    pub payable: Sats,
    /// Paid out in advance of credits (never at the same time as a non-zero `payable`).
    pub debt: Sats,
    /// In a payment that was prepared or sent but is not confirmed yet.
    pub in_flight: Sats,
    /// Received in confirmed payments (after any network fee deducted from this address).
    pub paid: Sats,
    /// Network fees of payments this address bore (deducted from its outputs, or, for the fee
    /// address, paid by the pool).
    pub network_fees: Sats,
}

impl Balance {
    /// The balance net of debt: what the address is owed or, when negative, owes.
    pub fn net_payable(&self) -> i128 {
        i128::from(self.payable.0) - i128::from(self.debt.0)
    }

    /// All money this address has been credited with, net of debt (the conservation sum).
    pub fn total_credited(&self) -> i128 {
        i128::from(self.immature.0)
            + i128::from(self.payable.0)
            + i128::from(self.in_flight.0)
            + i128::from(self.paid.0)
            + i128::from(self.network_fees.0)
            - i128::from(self.debt.0)
    }

    /// Adds to the payable balance, repaying any debt first.
    pub(crate) fn credit_payable(&mut self, amount: Sats) {
        let repay = self.debt.0.min(amount.0);
        self.debt.0 -= repay;
        self.payable.0 = self.payable.0.saturating_add(amount.0 - repay);
    }

    /// Takes from the payable balance; a shortfall becomes debt (nothing is dropped).
    pub(crate) fn debit_payable(&mut self, amount: Sats) {
        let take = self.payable.0.min(amount.0);
        self.payable.0 -= take;
        self.debt.0 = self.debt.0.saturating_add(amount.0 - take);
    }

    pub(crate) fn add_immature(&mut self, amount: Sats) {
        self.immature.0 = self.immature.0.saturating_add(amount.0);
    }

    /// Removes immature credits. The engine only removes what it added, so this never clamps in a
    /// consistent state; a clamp would show up as a conservation failure in the tests.
    pub(crate) fn sub_immature(&mut self, amount: Sats) {
        self.immature.0 = self.immature.0.saturating_sub(amount.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_beyond_payable_becomes_debt_and_credit_repays_it() {
        let mut b = Balance {
            payable: Sats(5),
            ..Balance::default()
        };
        b.debit_payable(Sats(8));
        assert_eq!((b.payable, b.debt), (Sats(0), Sats(3)));
        assert_eq!(b.net_payable(), -3);
        b.credit_payable(Sats(2));
        assert_eq!((b.payable, b.debt), (Sats(0), Sats(1)));
        b.credit_payable(Sats(10));
        assert_eq!((b.payable, b.debt), (Sats(9), Sats(0)));
    }
}

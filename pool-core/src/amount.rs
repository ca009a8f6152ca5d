//! Money: satoshis as an unsigned integer newtype. No floats ever touch an amount.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in satoshis (the chain's smallest unit).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Sats(pub u64);

impl Sats {
    pub const ZERO: Sats = Sats(0);

    pub fn checked_add(self, other: Sats) -> Option<Sats> {
        self.0.checked_add(other.0).map(Sats)
    }

    pub fn checked_sub(self, other: Sats) -> Option<Sats> {
        self.0.checked_sub(other.0).map(Sats)
    }

    pub fn saturating_sub(self, other: Sats) -> Sats {
        Sats(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Sats {
    /// Shown as whole coins with eight decimals, computed with integers only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:08}", self.0 / 100_000_000, self.0 % 100_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_whole_coins_without_floats() {
        assert_eq!(Sats(5_000_000_000).to_string(), "50.00000000");
        assert_eq!(Sats(1).to_string(), "0.00000001");
        assert_eq!(Sats(u64::MAX).to_string(), "184467440737.09551615");
    }

    #[test]
    fn checked_arithmetic_refuses_overflow() {
        assert_eq!(Sats(u64::MAX).checked_add(Sats(1)), None);
        assert_eq!(Sats(1).checked_sub(Sats(2)), None);
        assert_eq!(Sats(3).checked_sub(Sats(2)), Some(Sats(1)));
    }
}

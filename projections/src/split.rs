//! Integer splitting of satoshi amounts: the pool fee, proportional credits, and the miners' share
//! of a payment's network fee. No floats; every split sums exactly to the amount split.
//!
//! The remainder rule (used everywhere money is split by weight): each party first gets
//! `floor(amount × weight / total_weight)`, computed with 512-bit intermediates so nothing
//! overflows. The satoshis left over (fewer than the number of parties) go one each to the parties
//! with the largest fractional remainders `(amount × weight) mod total_weight`; ties go to the
//! smaller key (for payout addresses: byte order of the address string).

use pool_core::Sats;
use ruint::aliases::{U256, U512};

/// Basis points in a whole: 10 000 bps = 100 %.
pub const BPS_SCALE: u64 = 10_000;

/// The pool fee of a block: `floor(reward × fee_bps / 10 000)`, rounded down so the miners never
/// get less than their exact share. `fee_bps` above 10 000 is treated as 10 000 (the whole reward).
pub fn pool_fee(reward: Sats, fee_bps: u16) -> Sats {
    let bps = u128::from(fee_bps).min(u128::from(BPS_SCALE));
    // reward < 2^64 and bps <= 10^4, so the product fits in u128 and the quotient in u64.
    Sats((u128::from(reward.0) * bps / u128::from(BPS_SCALE)) as u64)
}

/// Splits `amount` over `weights` in proportion, with the remainder rule of this module.
///
/// Parties of zero weight get nothing and are left out of the result. When the total weight is
/// zero the result is empty (the caller decides who takes an unsplittable amount). The result is
/// sorted by key; a key that appears twice is treated as two parties (callers pass unique keys).
pub fn split_by_weight<K: Ord + Clone>(amount: Sats, weights: &[(K, U256)]) -> Vec<(K, Sats)> {
    let total: U512 = weights
        .iter()
        .fold(U512::ZERO, |acc, (_, w)| acc + U512::from(*w));
    if total.is_zero() {
        return Vec::new();
    }
    let amount512 = U512::from(amount.0);
    // (key, floor share, fractional remainder)
    let mut parts: Vec<(K, u64, U512)> = Vec::with_capacity(weights.len());
    let mut given: u64 = 0;
    for (key, w) in weights {
        if w.is_zero() {
            continue;
        }
        let product = amount512 * U512::from(*w);
        let (quotient, remainder) = product.div_rem(total);
        // quotient <= amount because weight <= total, so it fits in u64.
        let share = quotient.to::<u64>();
        given += share;
        parts.push((key.clone(), share, remainder));
    }
    let mut leftover = amount.0 - given;
    if leftover > 0 {
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by(|&a, &b| {
            parts[b]
                .2
                .cmp(&parts[a].2)
                .then_with(|| parts[a].0.cmp(&parts[b].0))
        });
        for i in order {
            if leftover == 0 {
                break;
            }
            parts[i].1 += 1;
            leftover -= 1;
        }
    }
    let mut out: Vec<(K, Sats)> = parts
        .into_iter()
        .filter(|(_, share, _)| *share > 0)
        .map(|(k, share, _)| (k, Sats(share)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// How a payment's network fee is deducted from its outputs when the miners bear it: in proportion
/// to the output amounts, with this module's remainder rule (ties by output position). Each share
/// is at most its output's amount; a fee larger than the whole payment leaves the excess as the
/// second value (the projection books it to the pool's fee address).
///
/// The payout process uses this same function to build the transaction's outputs
/// (`amount - deduction`), so the ledger and the chain agree to the satoshi.
pub fn split_network_fee(output_amounts: &[Sats], network_fee: Sats) -> (Vec<Sats>, Sats) {
    let total: u64 = output_amounts.iter().map(|a| a.0).sum();
    let charged = Sats(network_fee.0.min(total));
    let excess = Sats(network_fee.0 - charged.0);
    let weights: Vec<(usize, U256)> = output_amounts
        .iter()
        .enumerate()
        .map(|(i, a)| (i, U256::from(a.0)))
        .collect();
    let mut deductions = vec![Sats::ZERO; output_amounts.len()];
    for (i, share) in split_by_weight(charged, &weights) {
        deductions[i] = share;
    }
    (deductions, excess)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64) -> U256 {
        U256::from(v)
    }

    #[test]
    fn fee_rounds_down() {
        assert_eq!(pool_fee(Sats(5_000_000_000), 100), Sats(50_000_000));
        assert_eq!(pool_fee(Sats(9_999), 1), Sats(0));
        assert_eq!(pool_fee(Sats(10_001), 1), Sats(1));
        assert_eq!(pool_fee(Sats(u64::MAX), 10_000), Sats(u64::MAX));
        assert_eq!(pool_fee(Sats(100), 20_000), Sats(100));
    }

    #[test]
    fn split_sums_exactly_and_gives_remainders_to_largest_fractions() {
        // 10 over weights 1:1:1 -> 3 each + 1 leftover; equal remainders, so the smallest key.
        let s = split_by_weight(Sats(10), &[("b", w(1)), ("a", w(1)), ("c", w(1))]);
        assert_eq!(s, vec![("a", Sats(4)), ("b", Sats(3)), ("c", Sats(3))]);
        // 10 over 1:2 -> 3.33 / 6.67: floors 3 + 6, the leftover to the 0.67 fraction.
        let s = split_by_weight(Sats(10), &[("x", w(1)), ("y", w(2))]);
        assert_eq!(s, vec![("x", Sats(3)), ("y", Sats(7))]);
    }

    #[test]
    fn split_skips_zero_weights_and_empty_totals() {
        assert!(split_by_weight(Sats(10), &[("a", w(0))]).is_empty());
        let s = split_by_weight(Sats(10), &[("a", w(0)), ("b", w(5))]);
        assert_eq!(s, vec![("b", Sats(10))]);
    }

    #[test]
    fn split_handles_full_width_weights() {
        let big = U256::MAX;
        let s = split_by_weight(Sats(u64::MAX), &[(1, big), (2, big), (3, w(1))]);
        let sum: u64 = s.iter().map(|(_, a)| a.0).sum();
        assert_eq!(sum, u64::MAX);
    }

    #[test]
    fn network_fee_split_caps_at_the_payment() {
        let (d, excess) = split_network_fee(&[Sats(100), Sats(300)], Sats(41));
        assert_eq!(d.iter().map(|s| s.0).sum::<u64>(), 41);
        assert_eq!(d, vec![Sats(10), Sats(31)]);
        assert_eq!(excess, Sats::ZERO);
        let (d, excess) = split_network_fee(&[Sats(5), Sats(5)], Sats(13));
        assert_eq!(d, vec![Sats(5), Sats(5)]);
        assert_eq!(excess, Sats(3));
    }
}

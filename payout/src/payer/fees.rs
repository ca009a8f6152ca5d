//! Dust and the network fee in a payment's outputs: what each output pays on chain.
//!
//! With the pool paying, an output pays its prepared amount and the wallet adds the fee. With
//! the miners paying, each output pays its prepared amount minus its share of the fee by
//! `projections::split::split_network_fee`, the function the projection books by, so the chain
//! and the ledger agree to the satoshi.
//!
//! No output below the chain's dust limit (`ChainParams::dust_limit`, carried by
//! [`crate::payer::plan::PlanLimits`]) is ever created: its nodes would not relay it.

use pool_core::event::{NetworkFeePayer, PaymentOutput, PayoutAddress};
use pool_core::Sats;
use projections::split::split_network_fee;

/// Why a payment's outputs cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    #[error("output to {address} would pay {amount} sats after its share of the network fee, below the chain's dust limit of {} sats", dust_limit.0)]
    Dust {
        address: PayoutAddress,
        amount: Sats,
        dust_limit: Sats,
    },
}

/// What each output pays on chain if the transaction's fee is `network_fee`, in output order;
/// refuses an output below `dust_limit`.
pub fn output_amounts(
    outputs: &[PaymentOutput],
    payer: NetworkFeePayer,
    network_fee: Sats,
    dust_limit: Sats,
) -> Result<Vec<Sats>, FeeError> {
    let amounts: Vec<Sats> = outputs.iter().map(|o| o.amount).collect();
    let paid: Vec<Sats> = match payer {
        NetworkFeePayer::Pool => amounts,
        NetworkFeePayer::Miners => {
            let (deductions, _excess) = split_network_fee(&amounts, network_fee);
            amounts
                .iter()
                .zip(&deductions)
                .map(|(a, d)| Sats(a.0 - d.0))
                .collect()
        }
    };
    for (o, amount) in outputs.iter().zip(&paid) {
        if *amount < dust_limit {
            return Err(FeeError::Dust {
                address: o.address.clone(),
                amount: *amount,
                dust_limit,
            });
        }
    }
    Ok(paid)
}

/// The outputs of a batch the miners pay for that stay at or above `dust_limit` once a fee of
/// about `estimated_fee` is split over them, and the ones dropped (they wait for a larger
/// balance). Dropping an output changes the shares, so this repeats until nothing more drops.
pub fn prune_dust(
    outputs: Vec<PaymentOutput>,
    estimated_fee: Sats,
    dust_limit: Sats,
) -> (Vec<PaymentOutput>, Vec<PaymentOutput>) {
    let mut kept = outputs;
    let mut dropped = Vec::new();
    loop {
        let amounts: Vec<Sats> = kept.iter().map(|o| o.amount).collect();
        let (deductions, _) = split_network_fee(&amounts, estimated_fee);
        let before = kept.len();
        let mut next = Vec::with_capacity(kept.len());
        for (o, d) in kept.into_iter().zip(deductions) {
            if o.amount.0 - d.0 < dust_limit.0 {
                dropped.push(o);
            } else {
                next.push(o);
            }
        }
        kept = next;
        if kept.len() == before || kept.is_empty() {
            return (kept, dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitcoin's (P2PKH at 3 sat/vB).
    const DUST: Sats = Sats(546);

    fn out(a: &str, amount: u64) -> PaymentOutput {
        PaymentOutput {
            address: PayoutAddress(a.into()),
            amount: Sats(amount),
        }
    }

    #[test]
    fn pool_pays_the_prepared_amounts() {
        let outs = [out("a", 10_000), out("b", 30_000)];
        assert_eq!(
            output_amounts(&outs, NetworkFeePayer::Pool, Sats(4_000), DUST),
            Ok(vec![Sats(10_000), Sats(30_000)])
        );
    }

    #[test]
    fn miners_share_the_fee_in_proportion_and_it_sums_to_the_fee() {
        let outs = [out("a", 10_000), out("b", 30_000), out("c", 20_001)];
        let paid = output_amounts(&outs, NetworkFeePayer::Miners, Sats(3_001), DUST).unwrap();
        let total_before: u64 = outs.iter().map(|o| o.amount.0).sum();
        let total_after: u64 = paid.iter().map(|s| s.0).sum();
        assert_eq!(total_before - total_after, 3_001);
        // Exactly the projection's split.
        let (d, _) = split_network_fee(&[Sats(10_000), Sats(30_000), Sats(20_001)], Sats(3_001));
        for ((o, p), d) in outs.iter().zip(&paid).zip(&d) {
            assert_eq!(o.amount.0 - d.0, p.0);
        }
    }

    #[test]
    fn a_deduction_below_dust_is_refused() {
        let outs = [out("a", 600), out("b", 100_000)];
        let err = output_amounts(&outs, NetworkFeePayer::Miners, Sats(10_000), DUST).unwrap_err();
        assert!(matches!(err, FeeError::Dust { ref address, .. } if address.0 == "a"));
        assert!(output_amounts(&[out("a", 545)], NetworkFeePayer::Pool, Sats(0), DUST).is_err());
        // Litecoin's limit is ten times Bitcoin's: what relays on Bitcoin is dust there.
        let litecoin = Sats(5_460);
        assert!(
            output_amounts(&[out("a", 5_459)], NetworkFeePayer::Pool, Sats(0), litecoin).is_err()
        );
        assert!(
            output_amounts(&[out("a", 5_460)], NetworkFeePayer::Pool, Sats(0), litecoin).is_ok()
        );
    }

    #[test]
    fn pruning_drops_outputs_until_the_rest_stay_above_dust() {
        let outs = vec![out("a", 560), out("b", 100_000), out("c", 570)];
        let (kept, dropped) = prune_dust(outs, Sats(20_000), DUST);
        assert_eq!(kept, vec![out("b", 100_000)]);
        assert_eq!(dropped.len(), 2);
        let (kept, dropped) = prune_dust(vec![out("a", 5_000)], Sats(0), DUST);
        assert_eq!((kept.len(), dropped.len()), (1, 0));
        let (kept, _) = prune_dust(vec![out("a", 1_000)], Sats(5_000), DUST);
        assert!(kept.is_empty());
    }
}

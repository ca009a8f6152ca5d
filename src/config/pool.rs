//! `[pool]`: who the coinbase pays (the pool address and `[[pool.extra_outputs]]`) and the
//! regtest-only block threshold.

use super::{invalid, positive_difficulty, ParseError};
use pool_core::address::{parse_payout_address, ParsedAddress};
use pool_core::chain::ChainParams;
use serde::Deserialize;

#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// The address block rewards are paid to (the pool's wallet).
    pub payout: ParsedAddress,
    /// Further coinbase outputs (fee, donation), in order.
    pub extra_outputs: Vec<ExtraOutput>,
    /// Regtest only: a harder target a share must meet to be submitted as a block, as a
    /// difficulty in the chain's unit (`ChainParams::difficulty_unit`).
    pub pool_block_difficulty: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct ExtraOutput {
    pub address: ParsedAddress,
    pub amount: ExtraAmount,
}

/// How much of the coinbase value an extra output takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraAmount {
    /// A fixed amount in satoshis.
    Sats(u64),
    /// Basis points (1/100 %) of the coinbase value.
    BasisPoints(u16),
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    payout_address: String,
    #[serde(default)]
    extra_outputs: Vec<RawExtraOutput>,
    pool_block_difficulty: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtraOutput {
    address: String,
    sats: Option<u64>,
    bps: Option<u16>,
}

pub(super) fn pool_settings(
    raw: RawPool,
    chain: &'static ChainParams,
) -> Result<PoolSettings, ParseError> {
    let payout = parse_payout_address(&raw.payout_address, chain)
        .map_err(|e| invalid("pool.payout_address", e.to_string()))?;
    let mut extra_outputs = Vec::with_capacity(raw.extra_outputs.len());
    let mut total_bps: u32 = 0;
    for out in raw.extra_outputs {
        let address = parse_payout_address(&out.address, chain)
            .map_err(|e| invalid("pool.extra_outputs.address", e.to_string()))?;
        let amount = match (out.sats, out.bps) {
            (Some(s), None) if s > 0 => ExtraAmount::Sats(s),
            (None, Some(b)) if b > 0 && b <= 10_000 => {
                total_bps += u32::from(b);
                ExtraAmount::BasisPoints(b)
            }
            _ => {
                return Err(invalid(
                    "pool.extra_outputs",
                    format!(
                        "output to {}: give exactly one of sats (> 0) or bps (1..=10000)",
                        out.address
                    ),
                ))
            }
        };
        extra_outputs.push(ExtraOutput { address, amount });
    }
    if total_bps >= 10_000 {
        return Err(invalid(
            "pool.extra_outputs",
            format!(
                "extra outputs take {total_bps} bps: nothing would be left for the pool address"
            ),
        ));
    }
    let pool_block_difficulty = match raw.pool_block_difficulty {
        None => None,
        Some(d) => {
            if !chain.allows_harder_block_threshold {
                return Err(invalid(
                    "pool.pool_block_difficulty",
                    format!(
                        "only allowed on regtest chains, not on {}: on a real network it would throw away blocks",
                        chain.name
                    ),
                ));
            }
            let d = positive_difficulty("pool.pool_block_difficulty", d)?;
            chain
                .difficulty_unit
                .target(d)
                .map_err(|e| invalid("pool.pool_block_difficulty", e.to_string()))?;
            Some(d)
        }
    };
    Ok(PoolSettings {
        payout,
        extra_outputs,
        pool_block_difficulty,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{minimal, problem, BSV_ADDR};

    #[test]
    fn block_threshold_is_refused_off_regtest() {
        let text = minimal("pool_block_difficulty = 100.0\n")
            .replace("bsv-regtest", "bitcoin-main")
            .replace(BSV_ADDR, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2");
        let (key, p) = problem(&text);
        assert_eq!(key, "pool.pool_block_difficulty");
        assert!(p.contains("regtest"), "{p}");
    }

    #[test]
    fn block_threshold_is_read_in_the_chains_difficulty_unit() {
        // 1e69 in Bitcoin's unit is a target below 1 (refused: no hash could meet it); in
        // scrypt's it is Bitcoin's 1e69 / 65,536, a target of about 1,800 (taken).
        let text = minimal("pool_block_difficulty = 1e69\n");
        let (key, p) = problem(&text);
        assert_eq!(key, "pool.pool_block_difficulty");
        assert!(p.contains("zero"), "{p}");
        let text = text.replace("bsv-regtest", "litecoin-regtest");
        let c = crate::config::Config::from_text(&text, std::path::Path::new(".")).unwrap();
        assert_eq!(c.pool.pool_block_difficulty, Some(1e69));
    }

    #[test]
    fn wrong_network_payout_address_is_refused() {
        let text = minimal("").replace(BSV_ADDR, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2");
        assert_eq!(problem(&text).0, "pool.payout_address");
    }
}

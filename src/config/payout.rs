//! `[payout]`: how block rewards are split among miners (scheme, PPLNS window, pool fee, network
//! fee payer), read exactly into a `PayoutRule`; and how the payout process pays (threshold,
//! outputs per transaction, schedule, final depth, spending guard).

use super::pool::PoolSettings;
use super::{invalid, secs, ParseError};
use pool_core::address::parse_payout_address;
use pool_core::chain::ChainParams;
use pool_core::event::{NetworkFeePayer, PayoutRule, PayoutScheme};
use pool_core::Sats;
use serde::Deserialize;
use std::time::Duration;

/// How block rewards are split (`[payout]`). The rule is recorded in the ledger as a
/// `PayoutRuleSet` event whenever it differs from the one recorded last, so a later config change
/// never rewrites the credits of blocks already found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutSettings {
    /// Scheme, its parameters, pool fee and fee address, network fee payer: exactly what goes
    /// into the event (integers only; the PPLNS window is a reduced fraction).
    pub rule: PayoutRule,
    /// Pay an address once its payable balance reaches this (never below the dust limit).
    pub min_payment: Sats,
    /// Outputs per payment transaction.
    pub max_outputs: usize,
    /// How often the payout process runs.
    pub interval: Duration,
    /// Confirmations that make a payment final (`PaymentConfirmed`), and a conflicting spend
    /// final (`PaymentFailed`).
    pub confirmations: u32,
    /// Spending guard: a run that would pay more than this pauses payouts.
    pub max_per_run: Sats,
    /// Spending guard: payments prepared in the last 24 hours (with the run's) stay within this.
    pub max_per_day: Sats,
}

/// Satoshis per coin, for the defaults below.
const COIN: u64 = 100_000_000;
/// Defaults of the payout process's keys.
pub const DEFAULT_MIN_PAYMENT: Sats = Sats(COIN / 100);
pub const DEFAULT_MAX_OUTPUTS: usize = 100;
pub const DEFAULT_INTERVAL_SECS: u64 = 600;
pub const DEFAULT_CONFIRMATIONS: u32 = 6;
pub const DEFAULT_MAX_PER_RUN: Sats = Sats(100 * COIN);
pub const DEFAULT_MAX_PER_DAY: Sats = Sats(1_000 * COIN);
/// A transaction with more outputs than this is near the standard size limit (100 kB).
const MAX_OUTPUTS_LIMIT: usize = 2_000;

// ---- the file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPayout {
    scheme: Option<String>,
    /// A string ("2", "3/2", "1.5") or an integer; a TOML float is refused (not exact).
    pplns_window: Option<toml::Value>,
    fee_bps: Option<i64>,
    fee_address: Option<String>,
    network_fee_payer: Option<String>,
    min_payment: Option<u64>,
    max_outputs: Option<usize>,
    interval_secs: Option<u64>,
    confirmations: Option<u32>,
    max_per_run: Option<u64>,
    max_per_day: Option<u64>,
}

/// The PPLNS window multiple when `payout.pplns_window` is not given (as the projections'
/// default rule).
const DEFAULT_PPLNS_WINDOW: (u32, u32) = projections::DEFAULT_PPLNS_WINDOW;

pub(super) fn payout_settings(
    raw: RawPayout,
    chain: &'static ChainParams,
    pool: &PoolSettings,
) -> Result<PayoutSettings, ParseError> {
    let scheme_name = raw.scheme.as_deref().unwrap_or("pplns");
    let scheme = match scheme_name {
        "pplns" => {
            let (window_numerator, window_denominator) = match raw.pplns_window {
                None => DEFAULT_PPLNS_WINDOW,
                Some(v) => parse_window(&v).map_err(|p| invalid("payout.pplns_window", p))?,
            };
            PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            }
        }
        "prop" | "solo" => {
            if raw.pplns_window.is_some() {
                return Err(invalid(
                    "payout.pplns_window",
                    format!("only applies to scheme = \"pplns\", not {scheme_name:?}; remove it"),
                ));
            }
            if scheme_name == "prop" {
                PayoutScheme::Prop
            } else {
                PayoutScheme::Solo
            }
        }
        other => {
            return Err(invalid(
                "payout.scheme",
                format!(
                    "{other:?} is not a payout scheme (expected \"pplns\", \"prop\" or \"solo\")"
                ),
            ))
        }
    };
    let fee_bps = match raw.fee_bps {
        None => 0,
        Some(b) => u16::try_from(b)
            .ok()
            .filter(|b| *b <= 10_000)
            .ok_or_else(|| {
                invalid(
                    "payout.fee_bps",
                    format!("{b} is not between 0 and 10000 basis points (1 bps = 0.01 %)"),
                )
            })?,
    };
    let fee_address = match raw.fee_address {
        None => pool.payout.address.clone(),
        Some(a) => {
            parse_payout_address(&a, chain)
                .map_err(|e| invalid("payout.fee_address", e.to_string()))?
                .address
        }
    };
    let network_fee_payer = match raw.network_fee_payer.as_deref().unwrap_or("pool") {
        "pool" => NetworkFeePayer::Pool,
        "miners" => NetworkFeePayer::Miners,
        other => {
            return Err(invalid(
                "payout.network_fee_payer",
                format!("{other:?} is not a payer (expected \"pool\" or \"miners\")"),
            ))
        }
    };
    let min_payment = Sats(raw.min_payment.unwrap_or(DEFAULT_MIN_PAYMENT.0));
    if min_payment < chain.dust_limit {
        return Err(invalid(
            "payout.min_payment",
            format!(
                "{} sats is below {}'s dust limit of {} sats: such an output would never relay",
                min_payment.0, chain.name, chain.dust_limit.0
            ),
        ));
    }
    let max_outputs = raw.max_outputs.unwrap_or(DEFAULT_MAX_OUTPUTS);
    if max_outputs == 0 || max_outputs > MAX_OUTPUTS_LIMIT {
        return Err(invalid(
            "payout.max_outputs",
            format!("{max_outputs} must be between 1 and {MAX_OUTPUTS_LIMIT}"),
        ));
    }
    let interval = secs(
        "payout.interval_secs",
        raw.interval_secs.unwrap_or(DEFAULT_INTERVAL_SECS),
    )?;
    let confirmations = raw.confirmations.unwrap_or(DEFAULT_CONFIRMATIONS);
    if confirmations == 0 {
        return Err(invalid(
            "payout.confirmations",
            "must be at least 1 (a payment is final only once mined)",
        ));
    }
    let max_per_run = Sats(raw.max_per_run.unwrap_or(DEFAULT_MAX_PER_RUN.0));
    let max_per_day = Sats(raw.max_per_day.unwrap_or(DEFAULT_MAX_PER_DAY.0));
    for (key, cap) in [
        ("payout.max_per_run", max_per_run),
        ("payout.max_per_day", max_per_day),
    ] {
        if cap < min_payment {
            return Err(invalid(
                key,
                format!(
                    "{} sats is below payout.min_payment ({} sats): no payment could ever be made",
                    cap.0, min_payment.0
                ),
            ));
        }
    }
    Ok(PayoutSettings {
        rule: PayoutRule {
            scheme,
            fee_bps,
            fee_address,
            network_fee_payer,
        },
        min_payment,
        max_outputs,
        interval,
        confirmations,
        max_per_run,
        max_per_day,
    })
}

/// Most decimal places a window may have: 10^9 still fits the u32 denominator.
const MAX_WINDOW_DECIMALS: usize = 9;

/// Parses a PPLNS window multiple exactly into a reduced `(numerator, denominator)`: an integer
/// (`2`, `"2"`), a fraction (`"3/2"`) or a decimal (`"1.5"`, taken as 15/10 and reduced).
fn parse_window(value: &toml::Value) -> Result<(u32, u32), String> {
    let text = match value {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Float(f) => {
            return Err(format!(
                "{f} is a TOML float; quote it (pplns_window = \"{f}\") so it converts exactly"
            ))
        }
        other => {
            return Err(format!(
                "{other} is not a window multiple (e.g. \"2\", \"3/2\" or \"1.5\")"
            ))
        }
    };
    let digits = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is not a window multiple (e.g. \"2\", \"3/2\" or \"1.5\")"
            ));
        }
        s.parse::<u64>()
            .map_err(|_| format!("{text:?} has numbers too large for a window multiple"))
    };
    let (numerator, denominator) = if let Some((n, d)) = text.split_once('/') {
        (digits(n.trim())?, digits(d.trim())?)
    } else if let Some((whole, frac)) = text.split_once('.') {
        if frac.len() > MAX_WINDOW_DECIMALS {
            return Err(format!(
                "{text:?} has more than {MAX_WINDOW_DECIMALS} decimal places"
            ));
        }
        let scale = 10u64.pow(frac.len() as u32);
        let whole = if whole.is_empty() { 0 } else { digits(whole)? };
        let frac = digits(frac)?;
        let n = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| format!("{text:?} is too large for a window multiple"))?;
        (n, scale)
    } else {
        (digits(&text)?, 1)
    };
    if denominator == 0 {
        return Err(format!("{text:?} divides by zero"));
    }
    if numerator == 0 {
        return Err(format!(
            "{text:?} must be positive (the window is this multiple of the block's work)"
        ));
    }
    let g = gcd(numerator, denominator);
    let (n, d) = (numerator / g, denominator / g);
    match (u32::try_from(n), u32::try_from(d)) {
        (Ok(n), Ok(d)) => Ok((n, d)),
        _ => Err(format!(
            "{text:?} is {n}/{d} reduced; numerator and denominator must each fit in 32 bits"
        )),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{minimal, problem, BSV_ADDR};
    use crate::config::Config;
    use pool_core::event::PayoutAddress;
    use std::path::Path;

    fn payout(section: &str) -> String {
        minimal("") + "[payout]\n" + section
    }

    fn rule(section: &str) -> PayoutRule {
        Config::parse(&payout(section), Path::new("."))
            .unwrap()
            .payout
            .rule
    }

    fn pplns(window_numerator: u32, window_denominator: u32) -> PayoutScheme {
        PayoutScheme::Pplns {
            window_numerator,
            window_denominator,
        }
    }

    #[test]
    fn payout_defaults_to_pplns_2_no_fee_to_the_pool_address() {
        let c = Config::parse(&minimal(""), Path::new(".")).unwrap();
        assert_eq!(
            c.payout.rule,
            PayoutRule {
                scheme: pplns(2, 1),
                fee_bps: 0,
                fee_address: PayoutAddress(BSV_ADDR.into()),
                network_fee_payer: NetworkFeePayer::Pool,
            }
        );
        assert_eq!(rule(""), c.payout.rule, "an empty [payout] is the default");
    }

    #[test]
    fn payout_section_is_read_exactly() {
        let fee_addr = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
        let r = rule(&format!(
            "scheme = \"pplns\"\npplns_window = \"3/2\"\nfee_bps = 150\nfee_address = \"{fee_addr}\"\nnetwork_fee_payer = \"miners\"\n"
        ));
        assert_eq!(
            r,
            PayoutRule {
                scheme: pplns(3, 2),
                fee_bps: 150,
                fee_address: PayoutAddress(fee_addr.into()),
                network_fee_payer: NetworkFeePayer::Miners,
            }
        );
        assert_eq!(rule("scheme = \"prop\"\n").scheme, PayoutScheme::Prop);
        assert_eq!(rule("scheme = \"solo\"\n").scheme, PayoutScheme::Solo);
        assert_eq!(rule("fee_bps = 10000\n").fee_bps, 10_000);
    }

    #[test]
    fn payment_keys_default_and_read_exactly() {
        let c = Config::parse(&minimal(""), Path::new(".")).unwrap().payout;
        assert_eq!(c.min_payment, DEFAULT_MIN_PAYMENT);
        assert_eq!(c.max_outputs, DEFAULT_MAX_OUTPUTS);
        assert_eq!(c.interval, Duration::from_secs(DEFAULT_INTERVAL_SECS));
        assert_eq!(c.confirmations, 6);
        assert_eq!(
            (c.max_per_run, c.max_per_day),
            (DEFAULT_MAX_PER_RUN, DEFAULT_MAX_PER_DAY)
        );
        let c = Config::parse(
            &payout(
                "min_payment = 546
max_outputs = 3
interval_secs = 2
confirmations = 1
max_per_run = 1000
max_per_day = 2000
",
            ),
            Path::new("."),
        )
        .unwrap()
        .payout;
        assert_eq!(
            (
                c.min_payment,
                c.max_outputs,
                c.interval,
                c.confirmations,
                c.max_per_run,
                c.max_per_day
            ),
            (
                Sats(546),
                3,
                Duration::from_secs(2),
                1,
                Sats(1000),
                Sats(2000)
            )
        );
    }

    #[test]
    fn pplns_window_converts_exactly_and_reduces() {
        for (text, expected) in [
            ("\"2\"", (2, 1)),
            ("5", (5, 1)),
            ("\"3/2\"", (3, 2)),
            ("\"1.5\"", (3, 2)),
            ("\"4/2\"", (2, 1)),
            ("\"2.50\"", (5, 2)),
            ("\"0.125\"", (1, 8)),
            ("\".1\"", (1, 10)),
            ("\" 7 / 3 \"", (7, 3)),
            ("\"1.000000001\"", (1_000_000_001, 1_000_000_000)),
        ] {
            let r = rule(&format!("pplns_window = {text}\n"));
            assert_eq!(r.scheme, pplns(expected.0, expected.1), "{text}");
        }
    }

    #[test]
    fn bad_payout_values_are_named() {
        for (section, key) in [
            ("scheme = \"pps\"\n", "payout.scheme"),
            ("pplns_window = 1.5\n", "payout.pplns_window"),
            ("pplns_window = \"0\"\n", "payout.pplns_window"),
            ("pplns_window = \"0.0\"\n", "payout.pplns_window"),
            ("pplns_window = \"3/0\"\n", "payout.pplns_window"),
            ("pplns_window = \"-2\"\n", "payout.pplns_window"),
            ("pplns_window = -2\n", "payout.pplns_window"),
            ("pplns_window = \"two\"\n", "payout.pplns_window"),
            ("pplns_window = \"1.\"\n", "payout.pplns_window"),
            ("pplns_window = \"1.0000000001\"\n", "payout.pplns_window"),
            ("pplns_window = \"4294967296\"\n", "payout.pplns_window"),
            ("pplns_window = true\n", "payout.pplns_window"),
            (
                "scheme = \"solo\"\npplns_window = \"2\"\n",
                "payout.pplns_window",
            ),
            ("fee_bps = 10001\n", "payout.fee_bps"),
            ("min_payment = 545\n", "payout.min_payment"),
            ("max_outputs = 0\n", "payout.max_outputs"),
            ("interval_secs = 0\n", "payout.interval_secs"),
            ("confirmations = 0\n", "payout.confirmations"),
            (
                "max_per_run = 999\nmin_payment = 1000\n",
                "payout.max_per_run",
            ),
            (
                "max_per_day = 999\nmin_payment = 1000\n",
                "payout.max_per_day",
            ),
            ("fee_bps = -1\n", "payout.fee_bps"),
            (
                "fee_address = \"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2\"\n",
                "payout.fee_address",
            ),
            (
                "network_fee_payer = \"nobody\"\n",
                "payout.network_fee_payer",
            ),
        ] {
            let (got, p) = problem(&payout(section));
            assert_eq!(got, key, "{section}: {p}");
        }
        // The dust limit is the chain's: Litecoin's is ten times Bitcoin's.
        let litecoin = |section: &str| {
            payout(section)
                .replace("bsv-regtest", "litecoin-regtest")
                .replace(BSV_ADDR, "rltc1qze8443af6unqha4qqwdyczy02967j93yc0mmk5")
        };
        let (got, p) = problem(&litecoin("min_payment = 5459\n"));
        assert_eq!(got, "payout.min_payment", "{p}");
        assert!(
            p.contains("litecoin-regtest's dust limit of 5460 sats"),
            "{p}"
        );
        let c = Config::parse(&litecoin("min_payment = 5460\n"), Path::new(".")).unwrap();
        assert_eq!(c.payout.min_payment, Sats(5_460));
        let (_, p) = problem(&payout("pplns_window = 1.5\n"));
        assert!(p.contains("quote it"), "{p}");
        let text = payout("fee = 1\n");
        assert!(matches!(
            Config::parse(&text, Path::new(".")),
            Err(ParseError::Toml(_))
        ));
    }
}

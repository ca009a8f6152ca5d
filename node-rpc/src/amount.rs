//! Coin amounts as the nodes write them: decimal coins with up to 8 places (`50.00000000`),
//! read and written exactly as integer satoshis, never through a float.
//!
//! The nodes print amounts as JSON numbers with a fixed 8 decimals (Bitcoin Core's and BSV's
//! `ValueFromAmount`); both accept an amount given as a JSON string (`AmountFromValue`), so we
//! send `"1.50000000"`. Reading keeps the number's text: a field deserialized through
//! `serde_json::value::RawValue` sees the literal, which `jsonrpc` hands over unparsed.

use pool_core::Sats;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Satoshis per coin.
pub const SATS_PER_COIN: u64 = 100_000_000;

/// The decimal text of `sats` in coins, 8 places (`150000000` -> `"1.50000000"`).
pub fn format_coins(sats: Sats) -> String {
    format!("{}.{:08}", sats.0 / SATS_PER_COIN, sats.0 % SATS_PER_COIN)
}

/// Parses a decimal coin amount (`-0.00003840`, `50`, `1.5`) into signed satoshis. Refuses
/// exponents, more than 8 decimal places and values beyond `i64`.
pub fn parse_signed_coins(text: &str) -> Result<i64, String> {
    let t = text.trim().trim_matches('"');
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(frac) || frac.len() > 8 {
        return Err(format!("{text:?} is not a coin amount"));
    }
    let whole: i64 = whole
        .parse()
        .map_err(|_| format!("{text:?} is too large for a coin amount"))?;
    let mut frac_sats: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_sats += i64::from(b - b'0') * 10i64.pow(7 - i as u32);
    }
    let sats = whole
        .checked_mul(SATS_PER_COIN as i64)
        .and_then(|w| w.checked_add(frac_sats))
        .ok_or_else(|| format!("{text:?} is too large for a coin amount"))?;
    Ok(if negative { -sats } else { sats })
}

/// Parses a non-negative decimal coin amount into satoshis.
pub fn parse_coins(text: &str) -> Result<Sats, String> {
    let sats = parse_signed_coins(text)?;
    u64::try_from(sats)
        .map(Sats)
        .map_err(|_| format!("{text:?} is negative where an amount must not be"))
}

/// serde `deserialize_with` for a non-negative amount field.
pub fn de_sats<'de, D: Deserializer<'de>>(d: D) -> Result<Sats, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    parse_coins(raw.get()).map_err(serde::de::Error::custom)
}

/// serde `deserialize_with` for a signed amount field (wallet entries: negative for sends).
pub fn de_signed_sats<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    parse_signed_coins(raw.get()).map_err(serde::de::Error::custom)
}

/// serde `deserialize_with` for an optional signed amount field.
pub fn de_opt_signed_sats<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw = Option::<Box<RawValue>>::deserialize(d)?;
    match raw {
        None => Ok(None),
        Some(r) if r.get() == "null" => Ok(None),
        Some(r) => parse_signed_coins(r.get())
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        for (text, sats) in [
            ("50.00000000", 5_000_000_000i64),
            ("0.00003840", 3_840),
            ("-0.00003840", -3_840),
            ("1.5", 150_000_000),
            ("21000000.12345678", 2_100_000_012_345_678),
            ("0", 0),
        ] {
            assert_eq!(parse_signed_coins(text), Ok(sats), "{text}");
        }
        assert_eq!(format_coins(Sats(150_000_000)), "1.50000000");
        assert_eq!(format_coins(Sats(1)), "0.00000001");
        assert_eq!(
            parse_coins(&format_coins(Sats(2_100_000_012_345_678))),
            Ok(Sats(2_100_000_012_345_678))
        );
    }

    #[test]
    fn malformed_amounts_are_refused() {
        for text in [
            "1e-5",
            "0.000000001",
            "",
            ".5",
            "abc",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert!(parse_signed_coins(text).is_err(), "{text}");
        }
        assert!(parse_coins("-1").is_err());
    }

    #[test]
    fn fields_keep_the_literal() {
        #[derive(Deserialize)]
        struct R {
            #[serde(deserialize_with = "de_sats")]
            a: Sats,
            #[serde(deserialize_with = "de_signed_sats")]
            b: i64,
            #[serde(default, deserialize_with = "de_opt_signed_sats")]
            c: Option<i64>,
        }
        let r: R = serde_json::from_str(r#"{"a": 0.29999999, "b": -0.1}"#).unwrap();
        assert_eq!((r.a, r.b, r.c), (Sats(29_999_999), -10_000_000, None));
    }
}

//! 256-bit targets, compact `bits`, difficulty, and work.
//!
//! A hash meets a target when the hash's 32 bytes, read as a little-endian 256-bit integer, are
//! `<=` the target. Difficulty is `DIFF1 / target` with Bitcoin's difficulty-1 target
//! `0x00000000FFFF0000…` (bits `0x1d00ffff`). Work is what Bitcoin counts as chain work:
//! `2^256 / (target + 1)`, an exact integer that adds up across targets of any difficulty,
//! including the fractional difficulties below 1 that test networks need.

use ruint::aliases::{U256, U512};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TargetError {
    #[error("compact bits {0:#010x} encode a negative target")]
    NegativeCompact(u32),
    #[error("compact bits {0:#010x} overflow 256 bits")]
    CompactOverflow(u32),
    #[error("difficulty {0} is not a positive finite number")]
    BadDifficulty(f64),
    #[error("target is zero: no hash can meet it")]
    Zero,
}

/// A proof-of-work target: the largest hash (as a little-endian integer) that meets it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target(U256);

/// The work a target stands for: the expected number of hashes to meet it, `2^256 / (target + 1)`.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Work(U256);

impl Target {
    /// Bitcoin's difficulty-1 target, `0x00000000FFFF << 208` (bits `0x1d00ffff`).
    pub const DIFF1: Target = Target(U256::from_limbs([0, 0, 0, 0x0000_0000_FFFF_0000]));
    /// The largest target (every hash meets it).
    pub const MAX: Target = Target(U256::MAX);

    pub fn from_u256(v: U256) -> Target {
        Target(v)
    }

    pub fn as_u256(&self) -> U256 {
        self.0
    }

    /// The target as 32 big-endian bytes (the order `getblocktemplate` prints `target` in).
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes::<32>()
    }

    pub fn from_be_bytes(b: [u8; 32]) -> Target {
        Target(U256::from_be_bytes(b))
    }

    /// Parses big-endian hex, as in `getblocktemplate`'s `target` field.
    pub fn from_be_hex(s: &str) -> Result<Target, hex::FromHexError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)?;
        Ok(Target::from_be_bytes(b))
    }

    /// Decodes compact `bits` the way Bitcoin Core's `arith_uint256::SetCompact` does, refusing
    /// negative and overflowing encodings (which consensus also refuses).
    pub fn from_compact(bits: u32) -> Result<Target, TargetError> {
        let exponent = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if mantissa != 0 && bits & 0x0080_0000 != 0 {
            return Err(TargetError::NegativeCompact(bits));
        }
        let value = if exponent <= 3 {
            U256::from(mantissa >> (8 * (3 - exponent)))
        } else {
            let shift = 8 * (exponent as usize - 3);
            let overflow = mantissa != 0
                && (exponent > 34
                    || (mantissa > 0xff && exponent > 33)
                    || (mantissa > 0xffff && exponent > 32));
            if overflow {
                return Err(TargetError::CompactOverflow(bits));
            }
            U256::from(mantissa) << shift
        };
        Ok(Target(value))
    }

    /// Encodes as compact `bits` (Bitcoin Core's `GetCompact`); lossy below the top 23 bits.
    pub fn to_compact(&self) -> u32 {
        let mut size = self.0.bit_len().div_ceil(8) as u32;
        let mut compact: u32 = if size <= 3 {
            (self.0.to::<u64>() << (8 * (3 - size))) as u32
        } else {
            (self.0 >> (8 * (size as usize - 3))).to::<u64>() as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }

    /// True when `hash` (raw bytes as the hash function wrote them, read little-endian) meets
    /// this target.
    #[inline]
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        U256::from_le_bytes(*hash) <= self.0
    }

    /// The target for a share difficulty: `DIFF1 / difficulty`, exact for the f64 given
    /// (the difficulty is split into its 53-bit mantissa and binary exponent, so a fractional
    /// difficulty such as 0.001 loses nothing to rounding). Clamped to [`Target::MAX`].
    pub fn from_difficulty(difficulty: f64) -> Result<Target, TargetError> {
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return Err(TargetError::BadDifficulty(difficulty));
        }
        let (mantissa, exponent) = decompose(difficulty);
        let diff1 = U512::from(Target::DIFF1.0);
        let m = U512::from(mantissa);
        let value = if exponent < 0 {
            let shift = (-exponent) as usize;
            if shift > 256 {
                return Ok(Target::MAX);
            }
            (diff1 << shift) / m
        } else {
            let shift = exponent as usize;
            if shift > 256 {
                U512::ZERO
            } else {
                diff1 / (m << shift)
            }
        };
        if value > U512::from(U256::MAX) {
            return Ok(Target::MAX);
        }
        let t = Target(U256::from(value));
        if t.0.is_zero() {
            return Err(TargetError::Zero);
        }
        Ok(t)
    }

    /// The difficulty of this target, `DIFF1 / target`, for display and for Stratum's
    /// `mining.set_difficulty`. Not used in anything that reaches money.
    pub fn difficulty(&self) -> f64 {
        if self.0.is_zero() {
            return f64::INFINITY;
        }
        u256_to_f64(Target::DIFF1.0) / u256_to_f64(self.0)
    }

    /// The work of this target, `2^256 / (target + 1)`, computed as Bitcoin Core's `GetBlockProof`
    /// does: `(~target / (target + 1)) + 1`, which never leaves 256 bits.
    pub fn work(&self) -> Work {
        if self.0 == U256::MAX {
            return Work(U256::from(1u8));
        }
        Work((!self.0 / (self.0 + U256::from(1u8))) + U256::from(1u8))
    }

    /// The easier (numerically larger) of two targets.
    pub fn easier(self, other: Target) -> Target {
        self.max(other)
    }

    /// The harder (numerically smaller) of two targets.
    pub fn harder(self, other: Target) -> Target {
        self.min(other)
    }
}

/// What "difficulty 1" means on a chain's Stratum port, in logs and in the RPC: the one place a
/// shown or configured difficulty becomes a target and back.
///
/// Bitcoin-family miners (SHA-256d, HeavyHash) read difficulty 1 as [`Target::DIFF1`]; scrypt
/// miners (Litecoin) read it as a target 65,536 times easier (`0x0000FFFF << 224`), so a scrypt
/// difficulty `d` is the Bitcoin-convention difficulty `d / 65536`. Share weight never depends on
/// this: it is the [`Work`] of the share's target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DifficultyUnit {
    /// Difficulty 1 = [`Target::DIFF1`] (bits `0x1d00ffff`).
    #[default]
    Bitcoin,
    /// Difficulty 1 = 65,536 × [`Target::DIFF1`] (scrypt pools and miners).
    Scrypt,
}

impl DifficultyUnit {
    /// How many Bitcoin-convention difficulty-1 targets fit in this unit's difficulty-1 target.
    pub const fn scale(self) -> f64 {
        match self {
            DifficultyUnit::Bitcoin => 1.0,
            DifficultyUnit::Scrypt => 65536.0,
        }
    }

    /// The target of a difficulty in this unit (exact: the scale is a power of two).
    pub fn target(self, difficulty: f64) -> Result<Target, TargetError> {
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return Err(TargetError::BadDifficulty(difficulty));
        }
        Target::from_difficulty(difficulty / self.scale())
    }

    /// The difficulty of `target` in this unit, for display, `mining.set_difficulty` and logs.
    pub fn difficulty(self, target: &Target) -> f64 {
        target.difficulty() * self.scale()
    }

    /// `work` in this unit's difficulty-1 shares, for display and hashrate estimates only.
    pub fn work_difficulty(self, work: &Work) -> f64 {
        work.as_difficulty() * self.scale()
    }
}

impl Work {
    pub const ZERO: Work = Work(U256::ZERO);

    pub fn from_u256(v: U256) -> Work {
        Work(v)
    }

    pub fn as_u256(&self) -> U256 {
        self.0
    }

    pub fn checked_add(self, other: Work) -> Option<Work> {
        self.0.checked_add(other.0).map(Work)
    }

    pub fn saturating_sub(self, other: Work) -> Work {
        Work(self.0.saturating_sub(other.0))
    }

    /// Work expressed in difficulty-1 units (`work / work(DIFF1)`), for display and hashrate
    /// estimates only.
    pub fn as_difficulty(&self) -> f64 {
        u256_to_f64(self.0) / u256_to_f64(Target::DIFF1.work().0)
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl Add for Work {
    type Output = Work;
    /// Saturating: 2^256 of work is beyond any real history.
    fn add(self, rhs: Work) -> Work {
        Work(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Work {
    fn add_assign(&mut self, rhs: Work) {
        *self = *self + rhs;
    }
}

impl Sum for Work {
    fn sum<I: Iterator<Item = Work>>(iter: I) -> Work {
        iter.fold(Work::ZERO, |a, b| a + b)
    }
}

/// Splits a positive finite f64 into an integer mantissa and a binary exponent:
/// `value == mantissa * 2^exponent` exactly.
fn decompose(value: f64) -> (u64, i32) {
    let bits = value.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    if raw_exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), raw_exp - 1075)
    }
}

fn u256_to_f64(v: U256) -> f64 {
    let bits = v.bit_len();
    if bits <= 64 {
        return v.to::<u64>() as f64;
    }
    let shift = bits - 64;
    let top = (v >> shift).to::<u64>() as f64;
    top * 2f64.powi(shift as i32)
}

fn be_hex(v: &U256) -> String {
    hex::encode(v.to_be_bytes::<32>())
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", be_hex(&self.0))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&be_hex(&self.0))
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({})", self.0)
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Serialized as 32 big-endian bytes in binary formats and as big-endian hex in human-readable
/// ones (JSON dumps), so ledger records stay compact and dumps stay readable.
fn serialize_u256<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&be_hex(v))
    } else {
        v.to_be_bytes::<32>().serialize(s)
    }
}

fn deserialize_u256<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
    if d.is_human_readable() {
        let s = String::deserialize(d)?;
        let mut b = [0u8; 32];
        hex::decode_to_slice(&s, &mut b).map_err(serde::de::Error::custom)?;
        Ok(U256::from_be_bytes(b))
    } else {
        let b = <[u8; 32]>::deserialize(d)?;
        Ok(U256::from_be_bytes(b))
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_u256(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_u256(d).map(Target)
    }
}

impl Serialize for Work {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_u256(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Work {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_u256(d).map(Work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_1d00ffff_is_difficulty_one() {
        let t = Target::from_compact(0x1d00ffff).unwrap();
        assert_eq!(t, Target::DIFF1);
        assert_eq!(t.difficulty(), 1.0);
        assert_eq!(t.to_compact(), 0x1d00ffff);
        assert_eq!(
            t.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn mainnet_block_100000() {
        // Block 100000: bits 0x1b04864c, difficulty 14484.1623612254.
        let t = Target::from_compact(0x1b04864c).unwrap();
        assert_eq!(
            t.to_string(),
            "000000000004864c000000000000000000000000000000000000000000000000"
        );
        assert!((t.difficulty() - 14484.162361225399).abs() < 1e-6);
        assert_eq!(t.to_compact(), 0x1b04864c);
    }

    #[test]
    fn regtest_bits() {
        let t = Target::from_compact(0x207fffff).unwrap();
        assert_eq!(
            t.to_string(),
            "7fffff0000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(t.to_compact(), 0x207fffff);
        assert!(t.difficulty() < 1e-9);
    }

    #[test]
    fn compact_edge_cases_match_bitcoin_core() {
        assert_eq!(Target::from_compact(0).unwrap().as_u256(), U256::ZERO);
        assert_eq!(
            Target::from_compact(0x01003456).unwrap().as_u256(),
            U256::ZERO
        );
        assert_eq!(
            Target::from_compact(0x01123456).unwrap().as_u256(),
            U256::from(0x12u8)
        );
        assert_eq!(
            Target::from_compact(0x04123456).unwrap().as_u256(),
            U256::from(0x12345600u64)
        );
        assert_eq!(
            Target::from_compact(0x04923456),
            Err(TargetError::NegativeCompact(0x04923456))
        );
        assert_eq!(
            Target::from_compact(0xff123456),
            Err(TargetError::CompactOverflow(0xff123456))
        );
        assert_eq!(
            Target::from_u256(U256::from(0x80u8)).to_compact(),
            0x02008000
        );
    }

    #[test]
    fn difficulty_round_trips_including_fractions() {
        assert_eq!(Target::from_difficulty(1.0).unwrap(), Target::DIFF1);
        let t = Target::from_difficulty(2.0).unwrap();
        assert_eq!(t.as_u256(), Target::DIFF1.as_u256() / U256::from(2u8));
        for d in [0.001, 0.5, 3.0, 1024.0, 14484.162361225399, 1e-8] {
            let t = Target::from_difficulty(d).unwrap();
            let back = t.difficulty();
            assert!((back - d).abs() / d < 1e-12, "{d} -> {back}");
        }
        assert_eq!(Target::from_difficulty(1e-80).unwrap(), Target::MAX);
        assert!(Target::from_difficulty(0.0).is_err());
        assert!(Target::from_difficulty(f64::NAN).is_err());
        assert!(Target::from_difficulty(-1.0).is_err());
    }

    #[test]
    fn work_matches_bitcoin_chain_work() {
        // Difficulty-1 block: 0x100010001 hashes (Bitcoin's chainwork per genesis-era block).
        assert_eq!(Target::DIFF1.work().as_u256(), U256::from(0x1_0001_0001u64));
        // Regtest bits 0x207fffff: each block adds 2 to chainwork.
        assert_eq!(
            Target::from_compact(0x207fffff).unwrap().work().as_u256(),
            U256::from(2u8)
        );
        assert_eq!(Target::MAX.work().as_u256(), U256::from(1u8));
    }

    #[test]
    fn work_adds_across_difficulties() {
        let half = Target::from_difficulty(0.5).unwrap().work();
        let two = Target::from_difficulty(2.0).unwrap().work();
        let one = Target::DIFF1.work();
        // Within rounding of the integer division, 0.5 + 2 ≈ 2.5 difficulty-1 units.
        let sum = half + two;
        let expected = one.as_u256() * U256::from(5u8) / U256::from(2u8);
        let diff = if sum.as_u256() > expected {
            sum.as_u256() - expected
        } else {
            expected - sum.as_u256()
        };
        assert!(diff <= U256::from(2u8));
    }

    #[test]
    fn meets_compares_little_endian() {
        let t = Target::from_compact(0x1d00ffff).unwrap();
        let mut hash = [0u8; 32];
        hash[28] = 0x01; // 0x00000001 00..: byte 31 is the most significant, so this is above.
        assert!(!t.is_met_by(&hash));
        hash[28] = 0;
        hash[27] = 0xff;
        hash[26] = 0xff; // exactly the target's top bytes: meets (<=).
        assert!(t.is_met_by(&hash));
        let mut ok = [0xffu8; 32];
        ok[28..].copy_from_slice(&[0, 0, 0, 0]);
        ok[26] = 0xff;
        ok[27] = 0x00; // 0x00000000 00ff ff..: below 0x00000000ffff0000...
        assert!(t.is_met_by(&ok));
    }

    #[test]
    fn serde_is_compact_binary_and_readable_json() {
        let t = Target::DIFF1;
        let bin = bincode::serialize(&t).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(bincode::deserialize::<Target>(&bin).unwrap(), t);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            "\"00000000ffff0000000000000000000000000000000000000000000000000000\""
        );
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t);
    }
}

//! Payout addresses: parsing for a chain's address prefixes, and the output script they pay to.
//!
//! Supported: base58check P2PKH and P2SH with the chain's version bytes, and segwit addresses
//! with the chain's bech32 hrp: version 0 (bech32, 20-byte key hash or 32-byte script hash) and
//! version 1 taproot (bech32m, 32 bytes). Other witness versions and lengths are well-formed but
//! refused: outputs to them are spendable by anyone until a soft fork gives them meaning, so a
//! pool must not pay miners' money there. Codecs are rust-bitcoin's (`bitcoin::base58`,
//! `bitcoin::bech32`).
//!
//! Litecoin: P2SH under its own version byte or the Bitcoin one it still accepts
//! ([`ChainParams::p2sh_prefix_alt`]; stored under the chain's own byte, as the node shows it), and
//! MWEB addresses (`ltcmweb1…`, `tmweb1…`), refused with [`AddressError::Mweb`]: they name a
//! MimbleWimble extension block stealth address, which no coinbase output or plain transaction
//! output can pay.

use crate::chain::{Chain, ChainParams};
use crate::event::PayoutAddress;
use bitcoin::base58;
use bitcoin::bech32::primitives::decode::SegwitHrpstringError;
use bitcoin::bech32::segwit;
use thiserror::Error;

/// The longest address accepted (BIP173's limit for a bech32 string; base58 addresses are
/// shorter).
pub const MAX_ADDRESS_LEN: usize = 90;

const OP_DUP: u8 = 0x76;
const OP_HASH160: u8 = 0xa9;
const OP_EQUALVERIFY: u8 = 0x88;
const OP_CHECKSIG: u8 = 0xac;
const OP_EQUAL: u8 = 0x87;
const OP_0: u8 = 0x00;
/// `OP_1` .. `OP_16` are `0x51` .. `0x60`.
const OP_1: u8 = 0x51;

/// What kind of output an address pays to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressKind {
    P2pkh,
    P2sh,
    /// Segwit v0 key hash (20-byte program).
    P2wpkh,
    /// Segwit v0 script hash (32-byte program).
    P2wsh,
    /// Segwit v1 taproot (32-byte program).
    P2tr,
}

/// A payout address that parsed for a chain, with the output script a coinbase pays it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAddress {
    /// The address in canonical form: base58 as given, bech32 in lower case (so `BCRT1Q…` and
    /// `bcrt1q…` credit the same miner).
    pub address: PayoutAddress,
    pub kind: AddressKind,
    pub script_pubkey: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("empty payout address")]
    Empty,
    #[error("payout address is {len} characters, longer than the {MAX_ADDRESS_LEN} allowed")]
    TooLong { len: usize },
    #[error("{address:?} is for another network: {found}, but {chain} expects {expected}")]
    WrongNetwork {
        address: String,
        found: String,
        expected: String,
        chain: &'static str,
    },
    #[error("{address:?} has a bad checksum (mistyped?)")]
    BadChecksum { address: String },
    #[error("{address:?} is not a supported payout address kind: {reason}")]
    Unsupported { address: String, reason: String },
    #[error("{address:?} is not a valid address: {reason}")]
    Malformed { address: String, reason: String },
    #[error("{address:?} is an MWEB (MimbleWimble extension block) address, which neither a coinbase nor a plain transaction can pay: use a {chain} legacy, P2SH or bech32 address")]
    Mweb {
        address: String,
        chain: &'static str,
    },
}

/// Parses `s` as a payout address of `chain` and returns the script it pays to.
pub fn parse_payout_address(s: &str, chain: &ChainParams) -> Result<ParsedAddress, AddressError> {
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    // Before the length check: MWEB addresses (two public keys) are longer than any payable one.
    if let Some(refusal) = mweb_refusal(s, chain) {
        return Err(refusal);
    }
    if s.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong { len: s.len() });
    }
    if looks_like_bech32(s) {
        match segwit::decode(s) {
            Ok((hrp, version, program)) => {
                return parse_segwit(s, &hrp.to_lowercase(), version.to_u8(), &program, chain)
            }
            // A base58 address can look like bech32 by accident (letters, then a '1'): if it is
            // valid base58check, it is that.
            Err(e) => match base58::decode_check(s) {
                Ok(payload) => return parse_base58(s, &payload, chain),
                Err(_) => return Err(bech32_error(s, e.0)),
            },
        }
    }
    match base58::decode_check(s) {
        Ok(payload) => parse_base58(s, &payload, chain),
        Err(e) => Err(base58_error(s, e)),
    }
}

/// The refusal of an MWEB address: this chain's ([`AddressError::Mweb`]) or another chain's
/// ([`AddressError::WrongNetwork`]). Recognised by its hrp and separator alone: whatever follows,
/// it is not an address a coinbase can pay.
fn mweb_refusal(s: &str, chain: &ChainParams) -> Option<AddressError> {
    let has_hrp = |hrp: &str| {
        s.len() > hrp.len()
            && s.as_bytes()[hrp.len()] == b'1'
            && s[..hrp.len()].eq_ignore_ascii_case(hrp)
    };
    if chain.mweb_hrp.is_some_and(has_hrp) {
        return Some(AddressError::Mweb {
            address: s.to_string(),
            chain: chain.name,
        });
    }
    let other = Chain::ALL
        .iter()
        .filter_map(|c| c.params().mweb_hrp)
        .find(|hrp| has_hrp(hrp))?;
    Some(AddressError::WrongNetwork {
        address: s.to_string(),
        found: format!("an MWEB address (prefix \"{other}\"), which no coinbase can pay anyway"),
        expected: match chain.bech32_hrp {
            Some(hrp) => format!(
                "version bytes {} (P2PKH) or {} (P2SH), or bech32 prefix \"{hrp}\"",
                chain.p2pkh_prefix, chain.p2sh_prefix
            ),
            None => format!(
                "version bytes {} (P2PKH) or {} (P2SH)",
                chain.p2pkh_prefix, chain.p2sh_prefix
            ),
        },
        chain: chain.name,
    })
}

/// An hrp of ASCII letters, the separator '1', and a single case throughout (BIP173 forbids
/// mixed case, while nearly every base58 address mixes cases or starts with a digit).
fn looks_like_bech32(s: &str) -> bool {
    let Some(sep) = s.rfind('1') else {
        return false;
    };
    let hrp = &s[..sep];
    let single_case =
        !s.chars().any(|c| c.is_ascii_lowercase()) || !s.chars().any(|c| c.is_ascii_uppercase());
    sep > 0 && hrp.chars().all(|c| c.is_ascii_alphabetic()) && single_case
}

fn parse_base58(
    s: &str,
    payload: &[u8],
    chain: &ChainParams,
) -> Result<ParsedAddress, AddressError> {
    let [version, hash @ ..] = payload else {
        return Err(malformed(s, "empty base58 payload"));
    };
    let hash: &[u8; 20] = hash.try_into().map_err(|_| {
        malformed(
            s,
            &format!("base58 payload is {} bytes, expected 21", payload.len()),
        )
    })?;
    let (kind, script_pubkey) = if *version == chain.p2pkh_prefix {
        let mut script = vec![OP_DUP, OP_HASH160, 20];
        script.extend_from_slice(hash);
        script.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
        (AddressKind::P2pkh, script)
    } else if *version == chain.p2sh_prefix || Some(*version) == chain.p2sh_prefix_alt {
        let mut script = vec![OP_HASH160, 20];
        script.extend_from_slice(hash);
        script.push(OP_EQUAL);
        (AddressKind::P2sh, script)
    } else {
        return Err(AddressError::WrongNetwork {
            address: s.to_string(),
            found: format!(
                "base58 version byte {version}{}",
                base58_network_hint(*version)
            ),
            expected: match chain.p2sh_prefix_alt {
                Some(alt) => format!(
                    "version bytes {} (P2PKH) or {} or {alt} (P2SH)",
                    chain.p2pkh_prefix, chain.p2sh_prefix
                ),
                None => format!(
                    "version bytes {} (P2PKH) or {} (P2SH)",
                    chain.p2pkh_prefix, chain.p2sh_prefix
                ),
            },
            chain: chain.name,
        });
    };
    // One miner, one address: a P2SH under the alternative byte is stored under the chain's own
    // (as the node's `validateaddress` shows it), so both spellings credit the same balance.
    let address = if kind == AddressKind::P2sh && *version != chain.p2sh_prefix {
        let mut canonical = Vec::with_capacity(21);
        canonical.push(chain.p2sh_prefix);
        canonical.extend_from_slice(hash);
        base58::encode_check(&canonical)
    } else {
        s.to_string()
    };
    Ok(ParsedAddress {
        address: PayoutAddress(address),
        kind,
        script_pubkey,
    })
}

fn base58_network_hint(version: u8) -> &'static str {
    match version {
        0 | 5 => " (a mainnet address)",
        111 | 196 => " (a testnet/regtest address)",
        48 | 50 => " (a Litecoin mainnet address)",
        58 => " (a Litecoin testnet/regtest address)",
        _ => "",
    }
}

fn parse_segwit(
    s: &str,
    hrp: &str,
    version: u8,
    program: &[u8],
    chain: &ChainParams,
) -> Result<ParsedAddress, AddressError> {
    let Some(expected_hrp) = chain.bech32_hrp else {
        return Err(AddressError::Unsupported {
            address: s.to_string(),
            reason: format!("{} has no segwit addresses", chain.name),
        });
    };
    if hrp != expected_hrp {
        return Err(AddressError::WrongNetwork {
            address: s.to_string(),
            found: format!("bech32 prefix \"{hrp}\""),
            expected: format!("bech32 prefix \"{expected_hrp}\""),
            chain: chain.name,
        });
    }
    let kind = match (version, program.len()) {
        (0, 20) => AddressKind::P2wpkh,
        (0, 32) => AddressKind::P2wsh,
        (1, 32) => AddressKind::P2tr,
        _ => {
            return Err(AddressError::Unsupported {
                address: s.to_string(),
                reason: format!(
                    "witness version {version} with a {}-byte program is not yet defined \
                     (anyone could spend the payout)",
                    program.len()
                ),
            })
        }
    };
    let version_opcode = if version == 0 {
        OP_0
    } else {
        OP_1 + version - 1
    };
    let mut script_pubkey = Vec::with_capacity(2 + program.len());
    script_pubkey.push(version_opcode);
    // Programs are 2..=40 bytes: a direct push.
    script_pubkey.push(program.len() as u8);
    script_pubkey.extend_from_slice(program);
    Ok(ParsedAddress {
        address: PayoutAddress(s.to_ascii_lowercase()),
        kind,
        script_pubkey,
    })
}

fn bech32_error(s: &str, e: SegwitHrpstringError) -> AddressError {
    match e {
        SegwitHrpstringError::Checksum(_) => AddressError::BadChecksum {
            address: s.to_string(),
        },
        SegwitHrpstringError::TooLong(len) => AddressError::TooLong { len },
        SegwitHrpstringError::InvalidWitnessVersion(v) => AddressError::Unsupported {
            address: s.to_string(),
            reason: format!("invalid witness version {}", v.to_u8()),
        },
        other => malformed(s, &error_chain(&other)),
    }
}

fn base58_error(s: &str, e: base58::Error) -> AddressError {
    match e {
        base58::Error::IncorrectChecksum(_) => AddressError::BadChecksum {
            address: s.to_string(),
        },
        other => malformed(s, &format!("base58: {}", error_chain(&other))),
    }
}

fn malformed(s: &str, reason: &str) -> AddressError {
    AddressError::Malformed {
        address: s.to_string(),
        reason: reason.to_string(),
    }
}

/// An error and its sources, joined: the codecs' top-level messages alone ("parsing unchecked
/// hrpstring failed") do not say what was wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

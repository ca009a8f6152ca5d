//! Chain parameters: which proof of work, which block id hash, address prefixes, maturity.
//!
//! A pool is configured with one [`Chain`] preset by name (`obtc-main`, `bitcoin-regtest`, …);
//! [`Chain::params`] gives its [`ChainParams`]. oBTC uses HeavyHash for both proof of work and
//! block id; the Bitcoin family uses SHA-256d for both; Litecoin proves work with scrypt and
//! names blocks by SHA-256d, and its difficulties are shown in the scrypt convention
//! ([`DifficultyUnit::Scrypt`]).

use crate::pow::PowAlgorithm;
use crate::target::DifficultyUnit;
use crate::BlockId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A chain preset, named in configuration files in kebab case (`obtc-regtest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Chain {
    ObtcMain,
    ObtcTest,
    ObtcRegtest,
    BitcoinMain,
    /// Bitcoin testnet3.
    BitcoinTest,
    BitcoinRegtest,
    /// Bitcoin SV regtest.
    BsvRegtest,
    LitecoinMain,
    /// Litecoin testnet4.
    LitecoinTest,
    LitecoinRegtest,
}

/// What the pool needs to know about a chain. All presets are `'static`; get one with
/// [`Chain::params`] or [`ChainParams::by_name`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainParams {
    pub chain: Chain,
    /// The preset name (`obtc-main`, …), as in configuration files.
    pub name: &'static str,
    /// The hash a header's proof of work is checked with.
    pub pow: PowAlgorithm,
    /// The hash that is the block id (what `getblockhash` reports and the next header links to).
    pub block_id: PowAlgorithm,
    /// Base58check version byte of P2PKH addresses.
    pub p2pkh_prefix: u8,
    /// Base58check version byte of P2SH addresses.
    pub p2sh_prefix: u8,
    /// A second P2SH version byte the chain's nodes also accept (Litecoin keeps Bitcoin's 5/196
    /// beside its own 50/58 for addresses written by older software).
    pub p2sh_prefix_alt: Option<u8>,
    /// Human-readable part of segwit addresses; `None` on chains without segwit.
    pub bech32_hrp: Option<&'static str>,
    /// Human-readable part of MWEB (MimbleWimble extension block) addresses, which neither a
    /// coinbase nor a plain transaction can pay: refused as payout addresses with a clear message.
    pub mweb_hrp: Option<&'static str>,
    /// Templates may carry an MWEB extension block (`mweb`) that the block must end with.
    pub mweb: bool,
    /// What difficulty 1 means in Stratum, logs, configuration and the RPC on this chain.
    pub difficulty_unit: DifficultyUnit,
    /// Confirmations before a coinbase output can be spent (the block reward "matures").
    pub coinbase_maturity: u32,
    /// No payment output below this: the chain's nodes refuse to relay it (their dust threshold
    /// at the default dust relay fee, for the costliest output type paid: P2PKH).
    pub dust_limit: crate::Sats,
    /// Templates carry segwit (a `default_witness_commitment` the coinbase must include).
    pub segwit: bool,
    /// The coinbase starts with the block height (BIP34). On every preset: the chains that do
    /// not enforce it (BSV regtest) accept it, and it keeps coinbases unique.
    pub bip34: bool,
    /// The pool's regtest-only "harder block threshold" setting (treat only hashes below a
    /// stricter target as blocks) may be used here. Only on regtest chains, where the real
    /// target is so easy that nearly every share would be a block.
    pub allows_harder_block_threshold: bool,
    /// The genesis block id, to check that a node really serves this chain.
    pub genesis: BlockId,
}

impl Chain {
    pub const ALL: [Chain; 10] = [
        Chain::ObtcMain,
        Chain::ObtcTest,
        Chain::ObtcRegtest,
        Chain::BitcoinMain,
        Chain::BitcoinTest,
        Chain::BitcoinRegtest,
        Chain::BsvRegtest,
        Chain::LitecoinMain,
        Chain::LitecoinTest,
        Chain::LitecoinRegtest,
    ];

    pub fn params(self) -> &'static ChainParams {
        match self {
            Chain::ObtcMain => &OBTC_MAIN,
            Chain::ObtcTest => &OBTC_TEST,
            Chain::ObtcRegtest => &OBTC_REGTEST,
            Chain::BitcoinMain => &BITCOIN_MAIN,
            Chain::BitcoinTest => &BITCOIN_TEST,
            Chain::BitcoinRegtest => &BITCOIN_REGTEST,
            Chain::BsvRegtest => &BSV_REGTEST,
            Chain::LitecoinMain => &LITECOIN_MAIN,
            Chain::LitecoinTest => &LITECOIN_TEST,
            Chain::LitecoinRegtest => &LITECOIN_REGTEST,
        }
    }

    pub fn name(self) -> &'static str {
        self.params().name
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown chain {0:?} (expected one of obtc-main, obtc-test, obtc-regtest, bitcoin-main, bitcoin-test, bitcoin-regtest, bsv-regtest, litecoin-main, litecoin-test, litecoin-regtest)")]
pub struct UnknownChain(pub String);

impl FromStr for Chain {
    type Err = UnknownChain;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Chain::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownChain(s.to_string()))
    }
}

impl ChainParams {
    /// The preset named `name` (`obtc-regtest`, …).
    pub fn by_name(name: &str) -> Result<&'static ChainParams, UnknownChain> {
        name.parse::<Chain>().map(Chain::params)
    }
}

/// Decodes a block id printed as display hex (reversed) at compile time; a malformed constant
/// fails the build.
const fn display_id(s: &str) -> BlockId {
    let b = s.as_bytes();
    assert!(b.len() == 64, "block id hex must be 64 characters");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        // Display byte i is internal byte 31 - i.
        out[31 - i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    BlockId(out)
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("block id hex must be lowercase hex"),
    }
}

const COINBASE_MATURITY: u32 = 100;

/// Bitcoin Core's dust threshold of a P2PKH output at its default dust relay fee (3 sat/vB): the
/// highest of the output types paid (P2WPKH: 294, P2SH: 540). Bitcoin SV's own is lower.
const BITCOIN_DUST_LIMIT: crate::Sats = crate::Sats(546);

/// Litecoin Core's: its dust relay fee is ten times Bitcoin's (30 lit/vB). Measured on Litecoin
/// Core 0.21.2.1 regtest: `sendtoaddress` refuses 5459 to P2PKH and 2939 to P2WPKH ("amount
/// too small"), takes 5460 and 2940.
const LITECOIN_DUST_LIMIT: crate::Sats = crate::Sats(5_460);

static OBTC_MAIN: ChainParams = ChainParams {
    chain: Chain::ObtcMain,
    name: "obtc-main",
    pow: PowAlgorithm::HeavyHash,
    block_id: PowAlgorithm::HeavyHash,
    p2pkh_prefix: 0,
    p2sh_prefix: 5,
    bech32_hrp: Some("bc"),
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: false,
    genesis: display_id("0000000074b699e30b0f1c373f00e86c64f010a40c48b248179ab73dea165584"),
};

static OBTC_TEST: ChainParams = ChainParams {
    chain: Chain::ObtcTest,
    name: "obtc-test",
    pow: PowAlgorithm::HeavyHash,
    block_id: PowAlgorithm::HeavyHash,
    p2pkh_prefix: 111,
    p2sh_prefix: 196,
    bech32_hrp: Some("tb"),
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: false,
    genesis: display_id("6dae6b9e2c3cd68226ab549594a34c0a20432d9589a06fa4ee7d73c30ef3af3c"),
};

static OBTC_REGTEST: ChainParams = ChainParams {
    chain: Chain::ObtcRegtest,
    name: "obtc-regtest",
    pow: PowAlgorithm::HeavyHash,
    block_id: PowAlgorithm::HeavyHash,
    p2pkh_prefix: 111,
    p2sh_prefix: 196,
    bech32_hrp: Some("bcrt"),
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: true,
    genesis: display_id("15ac4c9a85e696fd2f8f104632ed3123a5ea597aff33540fd189d09e1def23ee"),
};

static BITCOIN_MAIN: ChainParams = ChainParams {
    chain: Chain::BitcoinMain,
    name: "bitcoin-main",
    pow: PowAlgorithm::Sha256d,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 0,
    p2sh_prefix: 5,
    bech32_hrp: Some("bc"),
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: false,
    genesis: display_id("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
};

static BITCOIN_TEST: ChainParams = ChainParams {
    chain: Chain::BitcoinTest,
    name: "bitcoin-test",
    pow: PowAlgorithm::Sha256d,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 111,
    p2sh_prefix: 196,
    bech32_hrp: Some("tb"),
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: false,
    genesis: display_id("000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"),
};

static BITCOIN_REGTEST: ChainParams = ChainParams {
    chain: Chain::BitcoinRegtest,
    name: "bitcoin-regtest",
    pow: PowAlgorithm::Sha256d,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 111,
    p2sh_prefix: 196,
    bech32_hrp: Some("bcrt"),
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: true,
    genesis: display_id("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
};

static BSV_REGTEST: ChainParams = ChainParams {
    chain: Chain::BsvRegtest,
    name: "bsv-regtest",
    pow: PowAlgorithm::Sha256d,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 111,
    p2sh_prefix: 196,
    bech32_hrp: None,
    p2sh_prefix_alt: None,
    mweb_hrp: None,
    mweb: false,
    difficulty_unit: DifficultyUnit::Bitcoin,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: BITCOIN_DUST_LIMIT,
    segwit: false,
    bip34: true,
    allows_harder_block_threshold: true,
    // Bitcoin SV kept Bitcoin's regtest genesis block.
    genesis: display_id("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
};

static LITECOIN_MAIN: ChainParams = ChainParams {
    chain: Chain::LitecoinMain,
    name: "litecoin-main",
    pow: PowAlgorithm::Scrypt,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 48,
    p2sh_prefix: 50,
    bech32_hrp: Some("ltc"),
    p2sh_prefix_alt: Some(5),
    mweb_hrp: Some("ltcmweb"),
    mweb: true,
    difficulty_unit: DifficultyUnit::Scrypt,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: LITECOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: false,
    genesis: display_id("12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2"),
};

static LITECOIN_TEST: ChainParams = ChainParams {
    chain: Chain::LitecoinTest,
    name: "litecoin-test",
    pow: PowAlgorithm::Scrypt,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 111,
    p2sh_prefix: 58,
    bech32_hrp: Some("tltc"),
    p2sh_prefix_alt: Some(196),
    mweb_hrp: Some("tmweb"),
    mweb: true,
    difficulty_unit: DifficultyUnit::Scrypt,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: LITECOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: false,
    genesis: display_id("4966625a4b2851d9fdee139e56211a0d88575f59ed816ff5e6a63deb4e3e29a0"),
};

static LITECOIN_REGTEST: ChainParams = ChainParams {
    chain: Chain::LitecoinRegtest,
    name: "litecoin-regtest",
    pow: PowAlgorithm::Scrypt,
    block_id: PowAlgorithm::Sha256d,
    p2pkh_prefix: 111,
    p2sh_prefix: 58,
    bech32_hrp: Some("rltc"),
    p2sh_prefix_alt: Some(196),
    mweb_hrp: Some("tmweb"),
    mweb: true,
    difficulty_unit: DifficultyUnit::Scrypt,
    coinbase_maturity: COINBASE_MATURITY,
    dust_limit: LITECOIN_DUST_LIMIT,
    segwit: true,
    bip34: true,
    allows_harder_block_threshold: true,
    genesis: display_id("530827f38f93b43ed12af0b3ad25a288dc02ed74d6d7857862df51fc56c416f9"),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitcoin's genesis header with the given time, bits and nonce (all presets but oBTC's share
    /// Bitcoin's genesis merkle root and version 1).
    fn bitcoin_genesis_header(time: u32, bits: u32, nonce: u32) -> [u8; 80] {
        let mut h = [0u8; 80];
        h[0..4].copy_from_slice(&1u32.to_le_bytes());
        let mut merkle =
            hex::decode("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b")
                .unwrap();
        merkle.reverse();
        h[36..68].copy_from_slice(&merkle);
        h[68..72].copy_from_slice(&time.to_le_bytes());
        h[72..76].copy_from_slice(&bits.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// Litecoin's genesis header (its own merkle root, version 1).
    fn litecoin_genesis_header(time: u32, bits: u32, nonce: u32) -> [u8; 80] {
        let mut h = bitcoin_genesis_header(time, bits, nonce);
        let mut merkle =
            hex::decode("97ddfbbae6be97fd6cdf3e7ca13232a3afff2353e29badfab7f73011edd4ced9")
                .unwrap();
        merkle.reverse();
        h[36..68].copy_from_slice(&merkle);
        h
    }

    #[test]
    fn names_round_trip_through_str_display_and_serde() {
        for chain in Chain::ALL {
            assert_eq!(chain.to_string().parse::<Chain>(), Ok(chain));
            assert_eq!(chain.params().chain, chain);
            let json = serde_json::to_string(&chain).unwrap();
            assert_eq!(json, format!("\"{}\"", chain.name()));
            assert_eq!(serde_json::from_str::<Chain>(&json).unwrap(), chain);
        }
        assert_eq!(
            ChainParams::by_name("obtc-regtest").unwrap().pow,
            PowAlgorithm::HeavyHash
        );
        assert_eq!(
            "Litecoin-Regtest".parse::<Chain>(),
            Ok(Chain::LitecoinRegtest)
        );
        assert!("dogecoin-main".parse::<Chain>().is_err());
    }

    #[test]
    fn genesis_ids_are_the_block_id_hash_of_the_genesis_header() {
        let cases = [
            (
                Chain::BitcoinMain,
                bitcoin_genesis_header(1_231_006_505, 0x1d00ffff, 2_083_236_893),
            ),
            (
                Chain::BitcoinTest,
                bitcoin_genesis_header(1_296_688_602, 0x1d00ffff, 414_098_458),
            ),
            (
                Chain::BitcoinRegtest,
                bitcoin_genesis_header(1_296_688_602, 0x207fffff, 2),
            ),
            (
                Chain::BsvRegtest,
                bitcoin_genesis_header(1_296_688_602, 0x207fffff, 2),
            ),
            (
                Chain::LitecoinMain,
                litecoin_genesis_header(1_317_972_665, 0x1e0ffff0, 2_084_524_493),
            ),
            (
                Chain::LitecoinTest,
                litecoin_genesis_header(1_486_949_366, 0x1e0ffff0, 293_345),
            ),
            (
                Chain::LitecoinRegtest,
                litecoin_genesis_header(1_296_688_602, 0x207fffff, 0),
            ),
        ];
        for (chain, header) in cases {
            let p = chain.params();
            assert_eq!(
                crate::pow::block_id(p.block_id, &header),
                p.genesis,
                "{chain}"
            );
        }
        // oBTC's genesis headers are checked against the HeavyHash vectors in tests/.
        let obtc_regtest = hex::decode("000000200000000000000000000000000000000000000000000000000000000000000000f5febbad19864a6900b6ce84287511e6e746229ce6239ff3df7481654778a4c4fb162c5fffff7f2000000000").unwrap();
        let header: [u8; 80] = obtc_regtest.try_into().unwrap();
        let p = Chain::ObtcRegtest.params();
        assert_eq!(crate::pow::block_id(p.block_id, &header), p.genesis);
    }

    #[test]
    fn only_regtest_allows_the_harder_block_threshold() {
        for chain in Chain::ALL {
            let p = chain.params();
            assert_eq!(
                p.allows_harder_block_threshold,
                p.name.ends_with("-regtest"),
                "{chain}"
            );
            assert_eq!(p.segwit, p.bech32_hrp.is_some(), "{chain}");
            assert_eq!(p.coinbase_maturity, 100);
            let expected = if p.name.starts_with("obtc") {
                (PowAlgorithm::HeavyHash, PowAlgorithm::HeavyHash)
            } else if p.name.starts_with("litecoin") {
                (PowAlgorithm::Scrypt, PowAlgorithm::Sha256d)
            } else {
                (PowAlgorithm::Sha256d, PowAlgorithm::Sha256d)
            };
            assert_eq!((p.pow, p.block_id), expected, "{chain}");
            let scrypt = p.pow == PowAlgorithm::Scrypt;
            assert_eq!(
                p.difficulty_unit == DifficultyUnit::Scrypt,
                scrypt,
                "{chain}"
            );
            assert_eq!(p.mweb, scrypt, "{chain}");
            assert_eq!(p.mweb_hrp.is_some(), p.mweb, "{chain}");
        }
    }
}

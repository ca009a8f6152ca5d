//! Payout address parsing against real addresses (BIP173/BIP350 examples, well-known mainnet and
//! testnet addresses, regtest addresses built from known hashes), cross-checked with
//! rust-bitcoin's own `Address` as an independent oracle for the output script.

use bitcoin::bech32::{hrp, segwit, Hrp};
use bitcoin::hashes::Hash;
use pool_core::address::{parse_payout_address, AddressError, AddressKind, MAX_ADDRESS_LEN};
use pool_core::Chain;
use std::str::FromStr;

fn script_hex(s: &str, chain: Chain) -> String {
    hex::encode(
        parse_payout_address(s, chain.params())
            .unwrap()
            .script_pubkey,
    )
}

/// rust-bitcoin's script for the same address.
fn oracle_script_hex(s: &str) -> String {
    let a = bitcoin::Address::from_str(s).unwrap().assume_checked();
    hex::encode(a.script_pubkey().as_bytes())
}

#[test]
fn mainnet_addresses_of_every_kind() {
    let cases = [
        // Satoshi's genesis coinbase address.
        (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            AddressKind::P2pkh,
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac",
        ),
        // BIP173 P2WPKH example (upper case is valid bech32).
        (
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            AddressKind::P2wpkh,
            "0014751e76e8199196d454941c45d1b3a323f1433bd6",
        ),
        // BIP350 P2TR example (the generator point's x coordinate).
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            AddressKind::P2tr,
            "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        ),
    ];
    for chain in [Chain::BitcoinMain, Chain::ObtcMain] {
        for (address, kind, script) in cases {
            let parsed = parse_payout_address(address, chain.params()).unwrap();
            assert_eq!(parsed.kind, kind, "{address}");
            assert_eq!(hex::encode(&parsed.script_pubkey), script, "{address}");
            assert_eq!(script, oracle_script_hex(address));
        }
    }
    // P2SH: checked against rust-bitcoin.
    let p2sh = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy";
    let parsed = parse_payout_address(p2sh, Chain::BitcoinMain.params()).unwrap();
    assert_eq!(parsed.kind, AddressKind::P2sh);
    assert_eq!(hex::encode(&parsed.script_pubkey), oracle_script_hex(p2sh));
    assert!(hex::encode(&parsed.script_pubkey).starts_with("a914"));
}

#[test]
fn bech32_addresses_are_stored_in_lower_case() {
    let parsed = parse_payout_address(
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        Chain::BitcoinMain.params(),
    )
    .unwrap();
    assert_eq!(
        parsed.address.0,
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    );
}

#[test]
fn testnet_addresses_of_every_kind() {
    let p2wsh = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"; // BIP173
    assert_eq!(
        script_hex(p2wsh, Chain::BitcoinTest),
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"
    );
    let p2pkh = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";
    let p2sh = "2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc";
    for (address, kind) in [(p2pkh, AddressKind::P2pkh), (p2sh, AddressKind::P2sh)] {
        for chain in [
            Chain::BitcoinTest,
            Chain::ObtcTest,
            Chain::ObtcRegtest,
            Chain::BsvRegtest,
        ] {
            let parsed = parse_payout_address(address, chain.params()).unwrap();
            assert_eq!(parsed.kind, kind);
            assert_eq!(
                hex::encode(&parsed.script_pubkey),
                oracle_script_hex(address)
            );
            assert_eq!(parsed.address.0, address);
        }
    }
}

#[test]
fn regtest_segwit_addresses_built_from_known_hashes() {
    let bcrt = Hrp::parse("bcrt").unwrap();
    let key_hash = hex::decode("751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
    let script_hash =
        hex::decode("1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262").unwrap();
    let wpkh = segwit::encode_v0(bcrt, &key_hash).unwrap();
    assert_eq!(wpkh, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080");
    let wsh = segwit::encode_v0(bcrt, &script_hash).unwrap();
    let tr = segwit::encode_v1(bcrt, &script_hash).unwrap();
    for chain in [Chain::BitcoinRegtest, Chain::ObtcRegtest] {
        let p = parse_payout_address(&wpkh, chain.params()).unwrap();
        assert_eq!(
            (p.kind, hex::encode(&p.script_pubkey)),
            (
                AddressKind::P2wpkh,
                format!("0014{}", hex::encode(&key_hash))
            )
        );
        let p = parse_payout_address(&wsh, chain.params()).unwrap();
        assert_eq!(
            (p.kind, hex::encode(&p.script_pubkey)),
            (
                AddressKind::P2wsh,
                format!("0020{}", hex::encode(&script_hash))
            )
        );
        let p = parse_payout_address(&tr, chain.params()).unwrap();
        assert_eq!(
            (p.kind, hex::encode(&p.script_pubkey)),
            (
                AddressKind::P2tr,
                format!("5120{}", hex::encode(&script_hash))
            )
        );
    }
    for a in [&wpkh, &wsh, &tr] {
        assert_eq!(script_hex(a, Chain::BitcoinRegtest), oracle_script_hex(a));
    }

    // Regtest base58 from a known hash160 (the genesis coinbase key's).
    let hash160 = bitcoin::PubkeyHash::from_slice(
        &hex::decode("62e907b15cbf27d5425399ebf6f0fb50ebb88f18").unwrap(),
    )
    .unwrap();
    let regtest_p2pkh = bitcoin::Address::p2pkh(hash160, bitcoin::Network::Regtest).to_string();
    assert_eq!(regtest_p2pkh, "mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt");
    assert_eq!(
        script_hex(&regtest_p2pkh, Chain::BsvRegtest),
        "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"
    );
}

#[test]
fn wrong_network_is_refused_with_what_was_found() {
    let regtest = Chain::BitcoinRegtest.params();
    match parse_payout_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", regtest) {
        Err(AddressError::WrongNetwork { found, chain, .. }) => {
            assert!(found.contains("version byte 0"), "{found}");
            assert!(found.contains("mainnet"), "{found}");
            assert_eq!(chain, "bitcoin-regtest");
        }
        other => panic!("expected WrongNetwork, got {other:?}"),
    }
    let testnet_wsh = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7";
    match parse_payout_address(testnet_wsh, regtest) {
        Err(AddressError::WrongNetwork {
            found, expected, ..
        }) => {
            assert!(found.contains("\"tb\""), "{found}");
            assert!(expected.contains("\"bcrt\""), "{expected}");
        }
        other => panic!("expected WrongNetwork, got {other:?}"),
    }
    assert!(matches!(
        parse_payout_address(
            "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",
            Chain::ObtcMain.params()
        ),
        Err(AddressError::WrongNetwork { .. })
    ));
}

#[test]
fn bad_checksums_are_reported_as_such() {
    let cases = [
        // Last character changed.
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
        // BIP350: a v0 program with a bech32m checksum, and v1 with a bech32 checksum.
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    ];
    for a in cases {
        assert_eq!(
            parse_payout_address(a, Chain::BitcoinMain.params()),
            Err(AddressError::BadChecksum {
                address: a.to_string()
            }),
            "{a}"
        );
    }
}

#[test]
fn undefined_witness_versions_and_chains_without_segwit_are_unsupported() {
    // BIP350's valid v16 and v2 examples: well-formed, but anyone-can-spend today.
    for a in ["BC1SW50QGDZ25J", "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs"] {
        assert!(
            matches!(
                parse_payout_address(a, Chain::BitcoinMain.params()),
                Err(AddressError::Unsupported { .. })
            ),
            "{a}"
        );
    }
    let wpkh = segwit::encode_v0(hrp::BC, &[0x11; 20]).unwrap();
    assert!(parse_payout_address(&wpkh, Chain::BitcoinMain.params()).is_ok());
    let bcrt = segwit::encode_v0(Hrp::parse("bcrt").unwrap(), &[0x11; 20]).unwrap();
    match parse_payout_address(&bcrt, Chain::BsvRegtest.params()) {
        Err(AddressError::Unsupported { reason, .. }) => assert!(reason.contains("bsv-regtest")),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn empty_long_and_garbage_inputs() {
    let main = Chain::BitcoinMain.params();
    assert_eq!(parse_payout_address("", main), Err(AddressError::Empty));
    let long = "1".repeat(MAX_ADDRESS_LEN + 1);
    assert_eq!(
        parse_payout_address(&long, main),
        Err(AddressError::TooLong { len: 91 })
    );
    for garbage in [
        "0OIl",
        "hello",
        "bc1",
        " 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        "Bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    ] {
        assert!(
            matches!(
                parse_payout_address(garbage, main),
                Err(AddressError::Malformed { .. })
            ),
            "{garbage:?}: {:?}",
            parse_payout_address(garbage, main)
        );
    }
    // Valid base58check with a payload that is not 21 bytes.
    let short = bitcoin::base58::encode_check(&[0u8; 10]);
    assert!(matches!(
        parse_payout_address(&short, main),
        Err(AddressError::Malformed { .. })
    ));
}

/// Addresses Litecoin Core 0.21.2.1's regtest wallet gave (`getnewaddress "" legacy|p2sh-segwit|
/// bech32|mweb`) with the `scriptPubKey` its `getaddressinfo` reported.
const LTC_REGTEST_LEGACY: (&str, &str) = (
    "mmRzuuenutXrJdfBypoa3hayv3ZP5bXRVG",
    "76a91440e0dc45f343f8dc9b85b6e0a950fe5ad278952988ac",
);
const LTC_REGTEST_P2SH: (&str, &str) = (
    "QfPb64jooYsmBUoaohSdbnNCvapst3NVuK",
    "a914ce122e60a93c6908ced8ee9aed955f7ef91e06dd87",
);
const LTC_REGTEST_BECH32: (&str, &str) = (
    "rltc1qfnddy46tz2y77a5kffzqfyj3l9p6p66rserjxp",
    "00144cdad2574b1289ef76964a44049251f943a0eb43",
);
const LTC_REGTEST_MWEB: &str = "tmweb1qqwk5ew3fsr8ys8k0tdzlxq7ypjgzdzenw4mvmxva7glgdxtjahc8wqmsuhuesgzf0gg6fg6ar20yyn9sq98u73wpfkp40pvwzh70k9td9chrwxek";

#[test]
fn litecoin_regtest_addresses_of_every_payable_kind() {
    let regtest = Chain::LitecoinRegtest.params();
    for ((address, script), kind) in [
        (LTC_REGTEST_LEGACY, AddressKind::P2pkh),
        (LTC_REGTEST_P2SH, AddressKind::P2sh),
        (LTC_REGTEST_BECH32, AddressKind::P2wpkh),
    ] {
        let parsed = parse_payout_address(address, regtest).unwrap();
        assert_eq!(parsed.kind, kind, "{address}");
        assert_eq!(hex::encode(&parsed.script_pubkey), script, "{address}");
        assert_eq!(parsed.address.0, address);
    }
    // Bech32 in upper case is the same address.
    let upper = LTC_REGTEST_BECH32.0.to_ascii_uppercase();
    assert_eq!(
        parse_payout_address(&upper, regtest).unwrap().address.0,
        LTC_REGTEST_BECH32.0
    );
}

#[test]
fn litecoin_accepts_p2sh_under_the_bitcoin_version_byte_and_stores_its_own() {
    // The node's `validateaddress 2N2JD6wb56AfK4tfmM6PwdVmoYk2dCKf4Br` on regtest: valid, shown as
    // QVeyDxTK7GiQD5RoyCRxiCDEh8UT4iUJnt, scriptPubKey a9146349…2f87.
    let regtest = Chain::LitecoinRegtest.params();
    let alt = parse_payout_address("2N2JD6wb56AfK4tfmM6PwdVmoYk2dCKf4Br", regtest).unwrap();
    let own = parse_payout_address("QVeyDxTK7GiQD5RoyCRxiCDEh8UT4iUJnt", regtest).unwrap();
    assert_eq!(alt.kind, AddressKind::P2sh);
    assert_eq!(
        hex::encode(&alt.script_pubkey),
        "a9146349a418fc4578d10a372b54b45c280cc8c4382f87"
    );
    assert_eq!(alt, own);
    assert_eq!(alt.address.0, "QVeyDxTK7GiQD5RoyCRxiCDEh8UT4iUJnt");

    // Mainnet: 48 (L…) P2PKH, 50 (M…) P2SH, and Bitcoin's 5 (3…) for P2SH, stored as M….
    let main = Chain::LitecoinMain.params();
    let hash = [0x5a; 20];
    let b58 = |version: u8| {
        let mut payload = vec![version];
        payload.extend_from_slice(&hash);
        bitcoin::base58::encode_check(&payload)
    };
    let p2pkh = parse_payout_address(&b58(48), main).unwrap();
    assert!(p2pkh.address.0.starts_with('L'), "{}", p2pkh.address);
    assert_eq!(p2pkh.kind, AddressKind::P2pkh);
    let own = parse_payout_address(&b58(50), main).unwrap();
    let alt = parse_payout_address(&b58(5), main).unwrap();
    assert!(own.address.0.starts_with('M'), "{}", own.address);
    assert_eq!(alt, own);
    assert_eq!(
        hex::encode(&alt.script_pubkey),
        format!("a914{}87", hex::encode(hash))
    );
    // Bitcoin mainnet's P2PKH (0) is no Litecoin address, and Bitcoin does not take Litecoin's 50.
    assert!(matches!(
        parse_payout_address(&b58(0), main),
        Err(AddressError::WrongNetwork { .. })
    ));
    match parse_payout_address(&b58(50), Chain::BitcoinMain.params()) {
        Err(AddressError::WrongNetwork { found, .. }) => {
            assert!(found.contains("Litecoin mainnet"), "{found}")
        }
        other => panic!("expected WrongNetwork, got {other:?}"),
    }
}

#[test]
fn litecoin_bech32_prefixes_are_per_network() {
    let program = [0x22; 20];
    for (chain, hrp) in [
        (Chain::LitecoinMain, "ltc"),
        (Chain::LitecoinTest, "tltc"),
        (Chain::LitecoinRegtest, "rltc"),
    ] {
        let wpkh = segwit::encode_v0(Hrp::parse(hrp).unwrap(), &program).unwrap();
        let parsed = parse_payout_address(&wpkh, chain.params()).unwrap();
        assert_eq!(parsed.kind, AddressKind::P2wpkh);
        assert_eq!(
            hex::encode(&parsed.script_pubkey),
            format!("0014{}", hex::encode(program))
        );
        // The same program under Bitcoin regtest's prefix is another network's address.
        let bcrt = segwit::encode_v0(Hrp::parse("bcrt").unwrap(), &program).unwrap();
        match parse_payout_address(&bcrt, chain.params()) {
            Err(AddressError::WrongNetwork { expected, .. }) => {
                assert!(expected.contains(&format!("\"{hrp}\"")), "{expected}")
            }
            other => panic!("expected WrongNetwork, got {other:?}"),
        }
    }
}

#[test]
fn mweb_addresses_are_refused_with_their_own_reason() {
    assert!(LTC_REGTEST_MWEB.len() > MAX_ADDRESS_LEN);
    for chain in [Chain::LitecoinRegtest, Chain::LitecoinTest] {
        for address in [
            LTC_REGTEST_MWEB.to_string(),
            LTC_REGTEST_MWEB.to_ascii_uppercase(),
        ] {
            let e = parse_payout_address(&address, chain.params()).unwrap_err();
            assert_eq!(
                e,
                AddressError::Mweb {
                    address: address.clone(),
                    chain: chain.name(),
                }
            );
            let message = e.to_string();
            assert!(message.contains("MWEB"), "{message}");
            assert!(message.contains("neither a coinbase"), "{message}");
        }
    }
    // Any string under the MWEB prefix: whatever follows, a coinbase cannot pay it.
    let short = "ltcmweb1qqxyz";
    assert!(matches!(
        parse_payout_address(short, Chain::LitecoinMain.params()),
        Err(AddressError::Mweb { .. })
    ));
    // Another network's MWEB address, on Litecoin mainnet and on a chain without MWEB.
    for chain in [
        Chain::LitecoinMain,
        Chain::BitcoinRegtest,
        Chain::BsvRegtest,
    ] {
        match parse_payout_address(LTC_REGTEST_MWEB, chain.params()) {
            Err(AddressError::WrongNetwork { found, .. }) => {
                assert!(found.contains("MWEB"), "{chain}: {found}")
            }
            other => panic!("{chain}: expected WrongNetwork, got {other:?}"),
        }
    }
}

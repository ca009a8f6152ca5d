//! Every vector in `testdata/scrypt.json` (Litecoin's main-network genesis and headers of a
//! Litecoin Core 0.21.2.1 regtest node): the scrypt proof-of-work hash, the SHA-256d block id and
//! the bits target.

use pool_core::pow::{block_id, prev_hash_of, scrypt_header, MatrixCache, PowAlgorithm, PowHasher};
use pool_core::Target;
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    header_hex: String,
    sha256d_display: String,
    scrypt_hex: String,
    scrypt_display: String,
    bits: String,
    meets_bits_target: bool,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../testdata/scrypt.json");
    let file: VectorFile = serde_json::from_str(text).unwrap();
    assert_eq!(file.vectors.len(), 7, "vector file changed size");
    file.vectors
}

fn header(v: &Vector) -> [u8; 80] {
    let mut h = [0u8; 80];
    hex::decode_to_slice(&v.header_hex, &mut h).unwrap();
    h
}

fn reversed_hex(bytes: [u8; 32]) -> String {
    let mut b = bytes;
    b.reverse();
    hex::encode(b)
}

#[test]
fn scrypt_matches_every_vector() {
    for v in vectors() {
        let h = header(&v);
        let out = scrypt_header(&h);
        assert_eq!(hex::encode(out), v.scrypt_hex, "{}", v.name);
        assert_eq!(reversed_hex(out), v.scrypt_display, "{}", v.name);
        assert_eq!(PowAlgorithm::Scrypt.hash(&h), out, "{}", v.name);
        let hasher = PowHasher::new(
            PowAlgorithm::Scrypt,
            &prev_hash_of(&h),
            &MatrixCache::default(),
        );
        assert_eq!(hasher.hash(&h), out, "{}", v.name);
    }
}

#[test]
fn block_id_is_sha256d_for_every_vector() {
    for v in vectors() {
        let h = header(&v);
        assert_eq!(
            block_id(PowAlgorithm::Sha256d, &h).to_display_hex(),
            v.sha256d_display,
            "{}",
            v.name
        );
        // The scrypt hasher gives the SHA-256d id, not its own hash, on a Litecoin chain.
        let cache = MatrixCache::default();
        let hasher = PowHasher::new(PowAlgorithm::Scrypt, &prev_hash_of(&h), &cache);
        let pow = hasher.hash(&h);
        assert_eq!(
            hasher
                .block_id(PowAlgorithm::Sha256d, &h, &pow)
                .to_display_hex(),
            v.sha256d_display,
            "{}",
            v.name
        );
        assert!(cache.is_empty(), "scrypt must not build matrices");
    }
}

#[test]
fn bits_targets_are_met_as_recorded() {
    let mut checked = 0;
    for v in vectors() {
        let h = header(&v);
        let bits = u32::from_str_radix(&v.bits, 16).unwrap();
        assert_eq!(
            bits,
            u32::from_le_bytes([h[72], h[73], h[74], h[75]]),
            "{}: bits are the header's",
            v.name
        );
        let target = Target::from_compact(bits).unwrap();
        let mut raw = [0u8; 32];
        hex::decode_to_slice(&v.scrypt_hex, &mut raw).unwrap();
        assert_eq!(target.is_met_by(&raw), v.meets_bits_target, "{}", v.name);
        assert_eq!(
            target.is_met_by(&scrypt_header(&h)),
            v.meets_bits_target,
            "{}",
            v.name
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn a_changed_nonce_misses_the_main_network_target() {
    // The genesis meets 1e0ffff0 by its scrypt hash; the same header with another nonce (almost
    // surely) does not, so the check is not vacuous.
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "litecoin-main-genesis")
        .unwrap();
    let mut h = header(&v);
    h[76] ^= 1;
    let target = Target::from_compact(0x1e0ffff0).unwrap();
    assert!(!target.is_met_by(&scrypt_header(&h)));
}

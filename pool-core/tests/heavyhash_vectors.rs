//! Every vector in `testdata/heavyhash.json` (oBTC genesis headers, seeded random headers, and a
//! same-previous-hash triple), plus SHA-256d of real Bitcoin mainnet headers.

use pool_core::pow::{
    block_id, heavyhash, heavyhash_with_matrix, prev_hash_of, sha256d, Matrix, MatrixCache,
    PowAlgorithm, PowHasher,
};
use pool_core::{BlockId, Target};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    header_hex: String,
    sha256d_hex: String,
    sha256d_display: String,
    heavyhash_hex: String,
    heavyhash_display: String,
    matrix_generations: u32,
    bits: Option<String>,
    meets_bits_target: Option<bool>,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../testdata/heavyhash.json");
    let file: VectorFile = serde_json::from_str(text).unwrap();
    assert_eq!(file.vectors.len(), 27, "vector file changed size");
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
fn heavyhash_matches_every_vector() {
    for v in vectors() {
        let h = header(&v);
        let out = heavyhash(&h);
        assert_eq!(hex::encode(out), v.heavyhash_hex, "{}", v.name);
        assert_eq!(reversed_hex(out), v.heavyhash_display, "{}", v.name);
        assert_eq!(
            block_id(PowAlgorithm::HeavyHash, &h).to_display_hex(),
            v.heavyhash_display
        );
    }
}

#[test]
fn sha256d_matches_every_vector() {
    for v in vectors() {
        let out = sha256d(&header(&v));
        assert_eq!(hex::encode(out), v.sha256d_hex, "{}", v.name);
        assert_eq!(reversed_hex(out), v.sha256d_display, "{}", v.name);
    }
}

#[test]
fn matrix_generations_match_every_vector() {
    for v in vectors() {
        let m = Matrix::for_prev_hash(&prev_hash_of(&header(&v)));
        assert_eq!(m.generations(), v.matrix_generations, "{}", v.name);
    }
}

#[test]
fn bits_targets_are_met_as_recorded() {
    let mut checked = 0;
    for v in vectors() {
        let (Some(bits), Some(meets)) = (&v.bits, v.meets_bits_target) else {
            continue;
        };
        let bits = u32::from_str_radix(bits, 16).unwrap();
        let target = Target::from_compact(bits).unwrap();
        let mut raw = [0u8; 32];
        hex::decode_to_slice(&v.heavyhash_hex, &mut raw).unwrap();
        assert_eq!(
            target.is_met_by(&heavyhash(&header(&v))),
            meets,
            "{}",
            v.name
        );
        assert_eq!(target.is_met_by(&raw), meets, "{}", v.name);
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} vectors carry bits");
}

#[test]
fn same_previous_hash_triple_shares_one_matrix() {
    let triple: Vec<Vector> = vectors()
        .into_iter()
        .filter(|v| v.name.starts_with("same-prev"))
        .collect();
    assert_eq!(triple.len(), 3);
    let prev = prev_hash_of(&header(&triple[0]));
    let cache = MatrixCache::default();
    let hasher = PowHasher::new(PowAlgorithm::HeavyHash, &prev, &cache);
    let matrix = cache.get(&prev);
    let PowHasher::HeavyHash(ref held) = hasher else {
        panic!("not a HeavyHash hasher")
    };
    assert!(Arc::ptr_eq(held, &matrix));
    assert_eq!(cache.len(), 1);
    for v in &triple {
        let h = header(v);
        assert_eq!(prev_hash_of(&h), prev, "{}", v.name);
        assert_eq!(
            hex::encode(heavyhash_with_matrix(&matrix, &h)),
            v.heavyhash_hex,
            "{}",
            v.name
        );
        let pow = hasher.hash(&h);
        assert_eq!(hex::encode(pow), v.heavyhash_hex, "{}", v.name);
        assert_eq!(
            hasher
                .block_id(PowAlgorithm::HeavyHash, &h, &pow)
                .to_display_hex(),
            v.heavyhash_display
        );
    }
}

/// Bitcoin mainnet headers: genesis and block 100000.
const BITCOIN_GENESIS_HEADER: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
const BITCOIN_100000_HEADER: &str = "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710";

#[test]
fn sha256d_of_bitcoin_mainnet_headers() {
    for (hex_header, id) in [
        (
            BITCOIN_GENESIS_HEADER,
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        ),
        (
            BITCOIN_100000_HEADER,
            "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506",
        ),
    ] {
        let mut h = [0u8; 80];
        hex::decode_to_slice(hex_header, &mut h).unwrap();
        assert_eq!(BlockId(sha256d(&h)).to_display_hex(), id);
        let cache = MatrixCache::default();
        let hasher = PowHasher::new(PowAlgorithm::Sha256d, &prev_hash_of(&h), &cache);
        assert_eq!(
            block_id(PowAlgorithm::Sha256d, &h),
            BlockId(hasher.hash(&h))
        );
        assert!(cache.is_empty(), "SHA-256d must not build matrices");
        let bits = u32::from_le_bytes([h[72], h[73], h[74], h[75]]);
        assert!(Target::from_compact(bits).unwrap().is_met_by(&sha256d(&h)));
    }
}

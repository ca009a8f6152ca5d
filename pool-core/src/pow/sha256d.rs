//! SHA-256d: SHA-256 applied twice, Bitcoin's proof of work, block id, txid and merkle hash.
//!
//! The fixed-size cases of the hot path (an 80-byte header, a 64-byte merkle step) run straight on
//! SHA-256 compressions with precomputed padding, skipping the hasher's buffering.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// SHA-256 initial state (FIPS 180-4).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Padding block for a 64-byte message: 0x80, zeros, bit length 512.
const PAD_64: [u8; 64] = {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    b[62] = 0x02;
    b
};

/// Finishes the second SHA-256 of a double hash: hashes 32 bytes of the first digest's state.
#[inline]
fn second_round(first: &[u32; 8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    for (i, w) in first.iter().enumerate() {
        block[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    block[32] = 0x80;
    block[62] = 0x01; // bit length 256
    let mut state = SHA256_IV;
    sha2::compress256(&mut state, &[*GenericArray::from_slice(&block)]);
    state_bytes(&state)
}

#[inline]
fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// `SHA-256d(left || right)`: one merkle step. Three compressions on raw state, no buffering.
#[inline]
pub fn merkle_step(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    let mut state = SHA256_IV;
    sha2::compress256(
        &mut state,
        &[
            *GenericArray::from_slice(&block),
            *GenericArray::from_slice(&PAD_64),
        ],
    );
    second_round(&state)
}

/// Double SHA-256 of an 80-byte block header, on raw compressions (two for the header, one for
/// the second round).
#[inline]
pub fn sha256d_header(header: &[u8; 80]) -> [u8; 32] {
    let mut tail = [0u8; 64];
    tail[..16].copy_from_slice(&header[64..]);
    tail[16] = 0x80;
    tail[62] = 0x02;
    tail[63] = 0x80; // bit length 640
    let mut state = SHA256_IV;
    sha2::compress256(
        &mut state,
        &[
            *GenericArray::from_slice(&header[..64]),
            *GenericArray::from_slice(&tail),
        ],
    );
    second_round(&state)
}

/// `SHA256(SHA256(data))`, raw digest bytes in the order the hash writes them (a block id in
/// internal order; reverse for display). The `sha2` crate picks SHA-NI at runtime when present.
#[inline]
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_matches_known_digest() {
        // SHA256d("") = 5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456
        assert_eq!(
            hex::encode(sha256d(b"")),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn raw_compression_paths_match_the_digest_api() {
        let (a, b) = (sha256d(&[1]), sha256d(&[2]));
        let mut cat = [0u8; 64];
        cat[..32].copy_from_slice(&a);
        cat[32..].copy_from_slice(&b);
        assert_eq!(merkle_step(&a, &b), sha256d(&cat));
        let mut header = [0u8; 80];
        for (i, x) in header.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(7);
        }
        assert_eq!(sha256d_header(&header), sha256d(&header));
    }

    #[test]
    fn bitcoin_genesis_header_hash() {
        let header = hex::decode(concat!(
            "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd",
            "7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
        ))
        .unwrap();
        let header: [u8; 80] = header.try_into().unwrap();
        let mut id = sha256d_header(&header);
        id.reverse();
        assert_eq!(
            hex::encode(id),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
    }
}

//! Merkle roots and branches over txids, and the segwit witness commitment.
//!
//! All hashes here are in internal (serialized) byte order, the order the header stores the
//! merkle root in; node RPCs print txids reversed. A Stratum job sends the branch for the coinbase
//! (leaf 0): the sibling hash at each level, which the miner folds into the coinbase txid.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// SHA-256 initial state (FIPS 180-4).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Double SHA-256 of arbitrary bytes.
pub fn sha256d(bytes: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(bytes);
    Sha256::digest(first).into()
}

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

/// The merkle root from the coinbase txid and the job's branch.
#[inline]
pub fn root_from_branch(coinbase_txid: &[u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    let mut acc = *coinbase_txid;
    for sibling in branch {
        acc = merkle_step(&acc, sibling);
    }
    acc
}

/// The merkle root of a full list of leaves (Bitcoin's rule: an odd level repeats its last
/// hash). The root of an empty list is all zeros.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return [0u8; 32];
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn next_level(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => merkle_step(l, r),
            [l] => merkle_step(l, l),
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// The branch for leaf 0 (the coinbase) of a block whose other transactions have these txids, in
/// block order. The coinbase's own hash is not needed: at each level the sibling of the leftmost
/// node is built from the other leaves only.
pub fn coinbase_branch(other_txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    // `level` holds the level's nodes except the leftmost (which depends on the coinbase).
    let mut level: Vec<[u8; 32]> = other_txids.to_vec();
    while !level.is_empty() {
        branch.push(level[0]);
        // Next level without its leftmost node: pair up level[1..] (positions 2,3 / 4,5 ...).
        // The full level is [x, level...]; its pairs are (x, level[0]), (level[1], level[2]), ...
        let rest = &level[1..];
        level = if rest.is_empty() {
            Vec::new()
        } else {
            next_level(rest)
        };
    }
    branch
}

/// The witness merkle root over the coinbase's wtxid (32 zero bytes, by BIP141) followed by the
/// other transactions' wtxids, in block order.
pub fn witness_root(other_wtxids: &[[u8; 32]]) -> [u8; 32] {
    let mut leaves = Vec::with_capacity(other_wtxids.len() + 1);
    leaves.push([0u8; 32]);
    leaves.extend_from_slice(other_wtxids);
    merkle_root(&leaves)
}

/// The BIP141 witness commitment output script, `OP_RETURN OP_PUSH36 aa21a9ed ||
/// SHA-256d(witness root || witness reserved value)`, with the all-zero reserved value.
pub fn witness_commitment_script(other_wtxids: &[[u8; 32]]) -> Vec<u8> {
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(&witness_root(other_wtxids));
    let commitment = sha256d(&preimage);
    let mut script = Vec::with_capacity(38);
    script.extend_from_slice(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
    script.extend_from_slice(&commitment);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> [u8; 32] {
        sha256d(&[n])
    }

    #[test]
    fn raw_compression_paths_match_the_digest_api() {
        let (a, b) = (h(1), h(2));
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

    #[test]
    fn branch_folds_to_the_full_root_for_every_size() {
        for n in 0..40u8 {
            let coinbase = h(200);
            let others: Vec<[u8; 32]> = (0..n).map(h).collect();
            let mut all = vec![coinbase];
            all.extend_from_slice(&others);
            let branch = coinbase_branch(&others);
            assert_eq!(
                root_from_branch(&coinbase, &branch),
                merkle_root(&all),
                "n = {n}"
            );
        }
    }

    #[test]
    fn single_leaf_root_is_the_leaf() {
        assert_eq!(merkle_root(&[h(9)]), h(9));
        assert!(coinbase_branch(&[]).is_empty());
    }
}

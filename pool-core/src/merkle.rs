//! Merkle roots and branches over txids, and the segwit witness commitment.
//!
//! All hashes here are in internal (serialized) byte order, the order the header stores the
//! merkle root in; node RPCs print txids reversed. A Stratum job sends the branch for the coinbase
//! (leaf 0): the sibling hash at each level, which the miner folds into the coinbase txid.

pub use crate::pow::{merkle_step, sha256d};

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

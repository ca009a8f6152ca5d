//! Proof of work: SHA-256d (Bitcoin family), HeavyHash (oBTC) and scrypt (Litecoin).
//!
//! [`PowAlgorithm`] names a hash in configuration; [`PowHasher`] is the per-job handle the share
//! checker calls for every share (for HeavyHash it holds the block's matrix, so hashing does not
//! rebuild or allocate anything). All hashes return the 32 raw digest bytes in the order the
//! hash writes them; [`crate::Target::is_met_by`] reads them little-endian.

mod cache;
mod heavyhash;
mod scrypt;
mod sha256d;

pub use cache::MatrixCache;
pub use heavyhash::{heavyhash, heavyhash_with_matrix, prev_hash_of, Matrix, MATRIX_SIZE};
pub use scrypt::scrypt_header;
pub use sha256d::{merkle_step, sha256d, sha256d_header};

use crate::BlockId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use thiserror::Error;

/// A block-header hash function, used both for proof of work and for block ids (which one a chain
/// uses for each is a chain setting, see [`crate::chain::ChainParams`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowAlgorithm {
    /// Double SHA-256 (Bitcoin, Bitcoin SV).
    Sha256d,
    /// oBTC's HeavyHash.
    HeavyHash,
    /// Litecoin's scrypt (N=1024, r=1, p=1). Proof of work only: Litecoin's block id is SHA-256d.
    Scrypt,
}

impl PowAlgorithm {
    /// The configuration name: `sha256d` or `heavyhash`.
    pub fn name(self) -> &'static str {
        match self {
            PowAlgorithm::Sha256d => "sha256d",
            PowAlgorithm::HeavyHash => "heavyhash",
            PowAlgorithm::Scrypt => "scrypt",
        }
    }

    /// Hashes one header (slow path for HeavyHash: builds the matrix). For shares use a
    /// [`PowHasher`].
    pub fn hash(self, header: &[u8; 80]) -> [u8; 32] {
        match self {
            PowAlgorithm::Sha256d => sha256d_header(header),
            PowAlgorithm::HeavyHash => heavyhash(header),
            PowAlgorithm::Scrypt => scrypt_header(header),
        }
    }
}

impl fmt::Display for PowAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "unknown proof-of-work algorithm {0:?} (expected \"sha256d\", \"heavyhash\" or \"scrypt\")"
)]
pub struct UnknownPowAlgorithm(pub String);

impl FromStr for PowAlgorithm {
    type Err = UnknownPowAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sha256d" => Ok(PowAlgorithm::Sha256d),
            "heavyhash" => Ok(PowAlgorithm::HeavyHash),
            "scrypt" => Ok(PowAlgorithm::Scrypt),
            _ => Err(UnknownPowAlgorithm(s.to_string())),
        }
    }
}

/// The hot-path hash handle: built once per job (per previous block hash), then called for every
/// share of that job. Cloning is cheap (an `Arc`).
#[derive(Clone, Debug)]
pub enum PowHasher {
    Sha256d,
    /// HeavyHash with the matrix of the job's previous block hash.
    HeavyHash(Arc<Matrix>),
    /// scrypt: ~0.4 ms and 128 KiB a hash, so share checks on it run off the async workers.
    Scrypt,
}

impl PowHasher {
    /// The hasher for headers linking to `prev_hash` (serialized order, as in `header[4..36]`;
    /// that is the template's `previousblockhash` hex reversed). HeavyHash matrices come from
    /// `cache`, built on a miss.
    pub fn new(algorithm: PowAlgorithm, prev_hash: &[u8; 32], cache: &MatrixCache) -> PowHasher {
        match algorithm {
            PowAlgorithm::Sha256d => PowHasher::Sha256d,
            PowAlgorithm::HeavyHash => PowHasher::HeavyHash(cache.get(prev_hash)),
            PowAlgorithm::Scrypt => PowHasher::Scrypt,
        }
    }

    pub fn algorithm(&self) -> PowAlgorithm {
        match self {
            PowHasher::Sha256d => PowAlgorithm::Sha256d,
            PowHasher::HeavyHash(_) => PowAlgorithm::HeavyHash,
            PowHasher::Scrypt => PowAlgorithm::Scrypt,
        }
    }

    /// The proof-of-work hash of `header`, raw bytes. The header's previous hash must be the one
    /// this hasher was built for.
    #[inline]
    pub fn hash(&self, header: &[u8; 80]) -> [u8; 32] {
        match self {
            PowHasher::Sha256d => sha256d_header(header),
            PowHasher::HeavyHash(matrix) => heavyhash_with_matrix(matrix, header),
            PowHasher::Scrypt => scrypt_header(header),
        }
    }

    /// The block id of `header` under `id_algorithm` (the chain's block-id hash), reusing
    /// `pow_hash` (this hasher's output for the same header) when the two algorithms agree, as on
    /// oBTC (HeavyHash both) and Bitcoin (SHA-256d both).
    pub fn block_id(
        &self,
        id_algorithm: PowAlgorithm,
        header: &[u8; 80],
        pow_hash: &[u8; 32],
    ) -> BlockId {
        if id_algorithm == self.algorithm() {
            BlockId(*pow_hash)
        } else {
            // Litecoin (scrypt work, SHA-256d ids); cheap next to the scrypt hash itself.
            block_id(id_algorithm, header)
        }
    }
}

/// The block id of `header` under `algorithm` (slow path for HeavyHash: builds the matrix).
pub fn block_id(algorithm: PowAlgorithm, header: &[u8; 80]) -> BlockId {
    BlockId(algorithm.hash(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_through_str_and_serde() {
        for alg in [
            PowAlgorithm::Sha256d,
            PowAlgorithm::HeavyHash,
            PowAlgorithm::Scrypt,
        ] {
            assert_eq!(alg.to_string().parse::<PowAlgorithm>(), Ok(alg));
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.name()));
            assert_eq!(serde_json::from_str::<PowAlgorithm>(&json).unwrap(), alg);
        }
        assert_eq!(
            "HeavyHash".parse::<PowAlgorithm>(),
            Ok(PowAlgorithm::HeavyHash)
        );
        assert_eq!("SCRYPT".parse::<PowAlgorithm>(), Ok(PowAlgorithm::Scrypt));
        assert!("x11".parse::<PowAlgorithm>().is_err());
    }

    #[test]
    fn hasher_block_id_reuses_or_recomputes() {
        let header = [7u8; 80];
        let cache = MatrixCache::default();
        let h = PowHasher::new(PowAlgorithm::HeavyHash, &prev_hash_of(&header), &cache);
        let pow = h.hash(&header);
        assert_eq!(pow, heavyhash(&header));
        assert_eq!(
            h.block_id(PowAlgorithm::HeavyHash, &header, &pow),
            BlockId(pow)
        );
        assert_eq!(
            h.block_id(PowAlgorithm::Sha256d, &header, &pow),
            BlockId(sha256d(&header))
        );
        let s = PowHasher::new(PowAlgorithm::Sha256d, &prev_hash_of(&header), &cache);
        let spow = s.hash(&header);
        assert_eq!(
            s.block_id(PowAlgorithm::HeavyHash, &header, &spow),
            BlockId(pow)
        );
    }
}

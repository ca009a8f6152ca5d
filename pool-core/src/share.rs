//! Share validation: rebuild the coinbase, merkle root and header from a miner's submit and
//! check its proof of work against the share and network targets. A plain synchronous hot path.
//!
//! Nothing here allocates: the coinbase txid is hashed by streaming its four parts (`coinb1 ||
//! extranonce1 || extranonce2 || coinb2`) through SHA-256, the merkle steps and the header hash
//! run on raw SHA-256 compressions, and the header is a stack array. The proof-of-work function
//! is passed in (SHA-256d or HeavyHash with the block's cached matrix), so this module does not
//! care which chain it serves.

use crate::merkle::root_from_branch;
use crate::Target;
use sha2::{Digest, Sha256};

/// Everything a share's header is built from: the job's parts and the miner's submit, already
/// decoded from hex. Integers are the values the header stores (little-endian on the wire).
#[derive(Clone, Copy, Debug)]
pub struct ShareInput<'a> {
    /// Coinbase bytes before extranonce1 (non-witness serialization).
    pub coinb1: &'a [u8],
    /// The connection's extranonce1.
    pub extranonce1: &'a [u8],
    /// The miner's extranonce2, exactly the job's extranonce2 size.
    pub extranonce2: &'a [u8],
    /// Coinbase bytes after extranonce2.
    pub coinb2: &'a [u8],
    /// Merkle branch for the coinbase, in the header's byte order.
    pub merkle_branch: &'a [[u8; 32]],
    /// The block version after any BIP310 rolling.
    pub version: u32,
    /// The previous block hash in the header's byte order (internal order).
    pub prev_hash: &'a [u8; 32],
    pub nbits: u32,
    pub ntime: u32,
    pub nonce: u32,
}

/// What checking a share found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareCheck {
    pub header: [u8; 80],
    /// SHA-256d of the non-witness coinbase, internal byte order.
    pub coinbase_txid: [u8; 32],
    pub merkle_root: [u8; 32],
    /// The proof-of-work hash as the hash function wrote it (compare little-endian).
    pub pow_hash: [u8; 32],
    /// The hash meets the share target.
    pub meets_share: bool,
    /// The hash meets the block threshold: the share is a block candidate.
    pub meets_block: bool,
}

/// SHA-256d of `coinb1 || extranonce1 || extranonce2 || coinb2`, streamed (no buffer).
#[inline]
pub fn coinbase_txid(
    coinb1: &[u8],
    extranonce1: &[u8],
    extranonce2: &[u8],
    coinb2: &[u8],
) -> [u8; 32] {
    let mut first = Sha256::new();
    first.update(coinb1);
    first.update(extranonce1);
    first.update(extranonce2);
    first.update(coinb2);
    Sha256::digest(first.finalize()).into()
}

/// Serializes an 80-byte block header; integers little-endian, hashes in internal order.
#[inline]
pub fn build_header(
    version: u32,
    prev_hash: &[u8; 32],
    merkle_root: &[u8; 32],
    ntime: u32,
    nbits: u32,
    nonce: u32,
) -> [u8; 80] {
    let mut header = [0u8; 80];
    header[0..4].copy_from_slice(&version.to_le_bytes());
    header[4..36].copy_from_slice(prev_hash);
    header[36..68].copy_from_slice(merkle_root);
    header[68..72].copy_from_slice(&ntime.to_le_bytes());
    header[72..76].copy_from_slice(&nbits.to_le_bytes());
    header[76..80].copy_from_slice(&nonce.to_le_bytes());
    header
}

/// BIP310 version rolling: the job's version outside `mask`, the miner's bits inside it.
#[inline]
pub fn rolled_version(job_version: u32, miner_bits: u32, mask: u32) -> u32 {
    (job_version & !mask) | (miner_bits & mask)
}

/// Checks one share: coinbase txid, merkle root, header, proof of work, then the two targets.
/// `block_target` is the block threshold (the network target, or a harder one on regtest).
#[inline]
pub fn check_share<F>(
    input: &ShareInput<'_>,
    pow: F,
    share_target: &Target,
    block_target: &Target,
) -> ShareCheck
where
    F: FnOnce(&[u8; 80]) -> [u8; 32],
{
    let coinbase_txid = coinbase_txid(
        input.coinb1,
        input.extranonce1,
        input.extranonce2,
        input.coinb2,
    );
    let merkle_root = root_from_branch(&coinbase_txid, input.merkle_branch);
    let header = build_header(
        input.version,
        input.prev_hash,
        &merkle_root,
        input.ntime,
        input.nbits,
        input.nonce,
    );
    let pow_hash = pow(&header);
    ShareCheck {
        header,
        coinbase_txid,
        merkle_root,
        pow_hash,
        meets_share: share_target.is_met_by(&pow_hash),
        meets_block: block_target.is_met_by(&pow_hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::sha256d;

    // bsv-regtest-legacy-3tx from the shared Stratum vectors (SHA-256d, legacy coinbase).
    const COINB1: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1401662f6f6274632d706f6f6c";
    const COINB2: &str =
        "ffffffff018832062a010000001976a914435082ba48a5c4c123ceb6cdc2b6f3dcc218716488ac00000000";
    const BRANCH: [&str; 2] = [
        "8933279295b639816e2dcb4dc107136562f2fb88688e520f313acf1d48e8d82e",
        "d8489264bcb73cae5a1946ec7850663e0075769fec8b9fa48352f09bda0f5323",
    ];
    const HEADER: &str = "0000002006abf337d33d28d09827aba38f06ae503264f58d67cabd4ed208af85e45ccb62839ff80538feda6d1706da887b9d12e7b041d58e5cfcc40cc21c61e8974150d1b842066bffff7f2000000000";

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn rebuilds_a_real_bsv_regtest_block() {
        let coinb1 = hex::decode(COINB1).unwrap();
        let coinb2 = hex::decode(COINB2).unwrap();
        let branch: Vec<[u8; 32]> = BRANCH.iter().map(|s| h32(s)).collect();
        let header = hex::decode(HEADER).unwrap();
        let prev: [u8; 32] = header[4..36].try_into().unwrap();
        let input = ShareInput {
            coinb1: &coinb1,
            extranonce1: &hex::decode("2d766563").unwrap(),
            extranonce2: &hex::decode("746f722f").unwrap(),
            coinb2: &coinb2,
            merkle_branch: &branch,
            version: 0x2000_0000,
            prev_hash: &prev,
            nbits: 0x207f_ffff,
            ntime: 0x6b06_42b8,
            nonce: 0,
        };
        let network = Target::from_compact(0x207f_ffff).unwrap();
        let check = check_share(&input, crate::pow::sha256d_header, &Target::DIFF1, &network);
        assert_eq!(hex::encode(check.header), HEADER);
        assert_eq!(
            hex::encode(check.merkle_root),
            "839ff80538feda6d1706da887b9d12e7b041d58e5cfcc40cc21c61e8974150d1"
        );
        assert_eq!(
            hex::encode(check.pow_hash),
            "a027de16afc64803a0d7cb4654b647a7b16cd52d8327e0434cd44a6c17f9056a"
        );
        assert!(check.meets_block);
        assert!(
            !check.meets_share,
            "a regtest hash is far above difficulty 1"
        );
    }

    #[test]
    fn streamed_coinbase_txid_equals_the_concatenation() {
        let cat = [b"ab".as_slice(), b"cd", b"ef", b"gh"].concat();
        assert_eq!(coinbase_txid(b"ab", b"cd", b"ef", b"gh"), sha256d(&cat));
    }

    #[test]
    fn version_rolling_keeps_bits_outside_the_mask() {
        assert_eq!(
            rolled_version(0x2000_0000, 0x0ae4_e000, 0x1fff_e000),
            0x2ae4_e000
        );
        assert_eq!(
            rolled_version(0x2000_0000, 0xffff_ffff, 0x1fff_e000),
            0x3fff_e000
        );
    }
}

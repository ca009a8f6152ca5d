//! SHA-256d: SHA-256 applied twice, Bitcoin's proof of work and block id.

use sha2::{Digest, Sha256};

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
}

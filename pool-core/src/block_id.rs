//! Block ids: 32 bytes in the order the hash function writes them; displayed reversed, as nodes
//! print them (`getblockhash`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A block id in internal (serialized) byte order. Which hash it is (SHA-256d or HeavyHash) is a
/// chain setting; this type only carries the bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub [u8; 32]);

impl BlockId {
    /// The uint256 hex a node prints: the bytes reversed.
    pub fn to_display_hex(&self) -> String {
        let mut b = self.0;
        b.reverse();
        hex::encode(b)
    }

    /// Parses the display (reversed) hex that nodes print.
    pub fn from_display_hex(s: &str) -> Result<BlockId, hex::FromHexError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)?;
        b.reverse();
        Ok(BlockId(b))
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_display_hex())
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({})", self.to_display_hex())
    }
}

/// Binary formats (the ledger's bincode) store the 32 raw bytes; human-readable ones (JSON dumps)
/// show the display hex a node prints, so a dump can be checked against `getblockhash` directly.
impl Serialize for BlockId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_display_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for BlockId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            BlockId::from_display_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(BlockId)
        }
    }
}

impl FromStr for BlockId {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BlockId::from_display_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_reversed_bytes() {
        let genesis = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
        let id = BlockId::from_display_hex(genesis).unwrap();
        assert_eq!(id.0[31], 0x00);
        assert_eq!(id.0[0], 0x6f);
        assert_eq!(id.to_string(), genesis);
    }

    #[test]
    fn serde_is_raw_bytes_in_bincode_and_display_hex_in_json() {
        let id = BlockId([7u8; 32]);
        let bin = bincode::serialize(&id).unwrap();
        assert_eq!(bin, vec![7u8; 32]);
        assert_eq!(bincode::deserialize::<BlockId>(&bin).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "07".repeat(32)));
        assert_eq!(serde_json::from_str::<BlockId>(&json).unwrap(), id);
    }
}

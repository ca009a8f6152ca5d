//! The ledger anchor: a coinbase output that commits to the ledger head at the time the job was
//! made, so the chain itself witnesses how far the ledger reached before each pool block.
//!
//! ```text
//! output  := value:u64 LE = 0 | script_len = 46 | script
//! script  := OP_RETURN (0x6a) | push 44 (0x2c) | "OBTL" | seq:u64 BE | hash:[u8; 32]
//! ```
//!
//! `seq` and `hash` are the last durable record's sequence number and chain hash
//! ([`crate::event::LedgerAnchor`]). The coinbase scriptSig has no room for it (height, pool tag
//! and extranonces plus 40 bytes pass its 100-byte limit); a 46-byte `OP_RETURN` script is
//! standard on every Bitcoin-family chain (the data-carrier limit is 83 bytes). The output goes
//! after the pool's payout and extra outputs, before a segwit commitment.

use crate::event::LedgerAnchor;

/// The 4-byte tag after the push: "OBTL" (obtc-pool ledger).
pub const ANCHOR_TAG: [u8; 4] = *b"OBTL";
/// Length of the anchor's output script.
pub const ANCHOR_SCRIPT_LEN: usize = 2 + 4 + 8 + 32;

/// The anchor's output script.
pub fn anchor_script(anchor: &LedgerAnchor) -> [u8; ANCHOR_SCRIPT_LEN] {
    let mut s = [0u8; ANCHOR_SCRIPT_LEN];
    s[0] = 0x6a;
    s[1] = 0x2c;
    s[2..6].copy_from_slice(&ANCHOR_TAG);
    s[6..14].copy_from_slice(&anchor.seq.to_be_bytes());
    s[14..].copy_from_slice(&anchor.hash);
    s
}

/// The anchor an output script carries, if it is an anchor script.
pub fn parse_anchor_script(script: &[u8]) -> Option<LedgerAnchor> {
    if script.len() != ANCHOR_SCRIPT_LEN
        || script[..2] != [0x6a, 0x2c]
        || script[2..6] != ANCHOR_TAG
    {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&script[6..14]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&script[14..]);
    Some(LedgerAnchor {
        seq: u64::from_be_bytes(seq),
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_script_round_trips_and_nothing_else_parses() {
        let a = LedgerAnchor {
            seq: 0x0102_0304_0506_0708,
            hash: [0xab; 32],
        };
        let s = anchor_script(&a);
        assert_eq!(&s[..14], b"\x6a\x2cOBTL\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(parse_anchor_script(&s), Some(a));
        assert_eq!(parse_anchor_script(&s[..45]), None);
        let mut other = s;
        other[2] = b'X';
        assert_eq!(parse_anchor_script(&other), None);
    }
}

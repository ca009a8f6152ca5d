//! Litecoin's MWEB in raw blocks. A block whose last transaction is the HogEx (the MWEB
//! integrating transaction) ends, after its transactions, with the extension block behind an
//! `OptionalPtr` byte (`0x01 || mweb block`). A transaction serialized with the MWEB flag
//! (`version | 0x00 | flags with 0x08 | inputs | outputs | witnesses when flags & 1 |
//! OptionalPtr(MWEB part) | locktime`) is the HogEx when its MWEB part is null (`0x00`); a
//! block's transaction list carries no other (MWEB transactions live in the extension block).
//! Litecoin's txid hashes the transaction without witness and MWEB data, so the HogEx read
//! without its flag is a plain transaction with the node's txid.

use crate::audit::work::read_compact_size;

/// The MWEB bit of a transaction's flags byte (after the `0x00` segwit marker).
pub const MWEB_FLAG: u8 = 0x08;
const WITNESS_FLAG: u8 = 0x01;

/// The raw transaction at the start of `raw` is serialized with the MWEB flag.
pub fn is_mweb_flagged(raw: &[u8]) -> bool {
    raw.len() > 5 && raw[4] == 0x00 && raw[5] & MWEB_FLAG != 0
}

/// The MWEB-flagged transaction at the start of `raw` (a HogEx) in Bitcoin's serialization,
/// without the MWEB flag and its null MWEB part, and the bytes it took in `raw`. A transaction
/// with an MWEB part, or with flags other than witness and MWEB, is an error.
pub fn hogex_without_mweb_flag(raw: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut r = Reader { raw, pos: 0 };
    let version = r.take(4)?;
    r.take(1)?; // the 0x00 marker
    let flags = r.take(1)?[0];
    if flags & !(WITNESS_FLAG | MWEB_FLAG) != 0 {
        return Err(format!("unknown transaction flags {flags:#04x}"));
    }
    let body = r.pos;
    let inputs = r.compact_size()?;
    for _ in 0..inputs {
        r.take(36)?; // outpoint
        r.var_bytes()?; // scriptSig
        r.take(4)?; // sequence
    }
    for _ in 0..r.compact_size()? {
        r.take(8)?; // value
        r.var_bytes()?; // scriptPubKey
    }
    if flags & WITNESS_FLAG != 0 {
        for _ in 0..inputs {
            for _ in 0..r.compact_size()? {
                r.var_bytes()?;
            }
        }
    }
    let body_end = r.pos;
    match r.take(1)?[0] {
        0x00 => {}
        0x01 => {
            return Err(
                "carries an MWEB transaction, which a block's transaction list never holds \
                 (only the HogEx, with a null MWEB part)"
                    .into(),
            )
        }
        other => return Err(format!("MWEB part marker {other:#04x}, neither 0 nor 1")),
    }
    let locktime = r.take(4)?;
    let mut plain = Vec::with_capacity(r.pos);
    plain.extend_from_slice(version);
    if flags & WITNESS_FLAG != 0 {
        plain.extend_from_slice(&[0x00, WITNESS_FLAG]);
    }
    plain.extend_from_slice(&raw[body..body_end]);
    plain.extend_from_slice(locktime);
    Ok((plain, r.pos))
}

/// Reads a transaction's fields; every read is bounds-checked, so a count larger than the
/// bytes left ends in an error after at most one read per byte.
struct Reader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.raw.len())
            .ok_or("ends inside the transaction")?;
        let bytes = &self.raw[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn compact_size(&mut self) -> Result<u64, String> {
        let (n, len) = read_compact_size(&self.raw[self.pos..]).ok_or("ends inside a count")?;
        self.pos += len;
        Ok(n)
    }

    fn var_bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.compact_size()?;
        self.take(usize::try_from(len).map_err(|_| "a length past the address space")?)
    }
}

//! Checks that stored event bytes decode, without building the event: a walk over the v1
//! bincode layout of [`pool_core::Event`] that skips fixed-size fields, checks strings are
//! UTF-8 and tags are in range, and allocates nothing. `verify` runs this on every record;
//! building the `Event` (what `read_from` does, with [`crate::decode`]) costs more, mostly in
//! the strings' allocations.
//!
//! Layout facts relied on (bincode 1 with fixed-width little-endian integers): an enum is a
//! `u32` variant index then its fields in order; a `String` or `Vec` is a `u64` length then its
//! items; a `[u8; 32]` (targets, work, block ids, txids) is 32 raw bytes; an `Option` is a `u8`
//! tag (0 none, 1 some) then the value; newtypes are their inner value. Variants this walk does not know (appended to `Event` after it was written) are
//! decoded in full instead. `tests/ledger_props.rs` checks this walk accepts exactly what the
//! bincode decoder accepts.

use crate::error::Problem;

struct Cursor<'a> {
    rest: &'a [u8],
}

fn short() -> Problem {
    Problem::Decode("event bytes end early".into())
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Problem> {
        if n > self.rest.len() {
            return Err(short());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn skip(&mut self, n: usize) -> Result<(), Problem> {
        self.take(n).map(|_| ())
    }

    fn u32(&mut self) -> Result<u32, Problem> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn len(&mut self) -> Result<usize, Problem> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(a)).map_err(|_| short())
    }

    /// A `Vec` of `item`-byte items (`Vec<u8>`: 1), skipped.
    fn vec(&mut self, item: usize) -> Result<(), Problem> {
        let n = self.len()?;
        self.skip(n.checked_mul(item).ok_or_else(short)?)
    }

    fn string(&mut self) -> Result<(), Problem> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(|_| ())
            .map_err(|e| Problem::Decode(format!("string is not UTF-8: {e}")))
    }

    fn tag(&mut self, variants: u32, what: &str) -> Result<u32, Problem> {
        let tag = self.u32()?;
        if tag >= variants {
            return Err(Problem::Decode(format!(
                "invalid {what} variant index {tag}"
            )));
        }
        Ok(tag)
    }
}

const U64: usize = 8;
const U32: usize = 4;
const U16: usize = 2;
const BYTES32: usize = 32;

/// A `ShareAccepted`'s fields: address, worker, share_target, weight, job_id, height,
/// network_target, time_ms.
fn share(c: &mut Cursor<'_>) -> Result<(), Problem> {
    c.string()?;
    c.string()?;
    c.skip(BYTES32 + BYTES32 + U64 + U64 + BYTES32 + U64)
}

/// Whether `bytes` decode as a v1 [`pool_core::Event`] (with no trailing bytes).
pub fn validate_v1(bytes: &[u8]) -> Result<(), Problem> {
    let mut c = Cursor { rest: bytes };
    match c.u32()? {
        // ShareAccepted: address, worker, share_target, weight, job_id, height,
        // network_target, time_ms.
        0 => share(&mut c)?,
        // BlockFound: height, block_id, reward, network_target, finder, worker, time_ms.
        1 => {
            c.skip(U64 + BYTES32 + U64 + BYTES32)?;
            c.string()?;
            c.string()?;
            c.skip(U64)?;
        }
        // BlockRejected: height, block_id, reason, finder, worker, time_ms.
        2 => {
            c.skip(U64 + BYTES32)?;
            c.string()?;
            c.string()?;
            c.string()?;
            c.skip(U64)?;
        }
        // BlockOrphaned, BlockReinstated, BlockMatured: block_id, height.
        3..=5 => c.skip(BYTES32 + U64)?,
        // PayoutRuleSet: scheme (Pplns { u32, u32 } | Prop | Solo), fee_bps, fee_address,
        // network_fee_payer (Pool | Miners).
        6 => {
            if c.tag(3, "PayoutScheme")? == 0 {
                c.skip(U32 + U32)?;
            }
            c.skip(U16)?;
            c.string()?;
            c.tag(2, "NetworkFeePayer")?;
        }
        // PaymentPrepared: payment_id, outputs: [PaymentOutput { address, amount }].
        7 => {
            c.skip(U64)?;
            let outputs = c.len()?;
            for _ in 0..outputs {
                c.string()?;
                c.skip(U64)?;
            }
        }
        // PaymentSent: payment_id, txid, network_fee. PaymentConfirmed: payment_id, txid,
        // height.
        8 | 9 => c.skip(U64 + BYTES32 + U64)?,
        // PaymentFailed: payment_id, reason.
        10 => {
            c.skip(U64)?;
            c.string()?;
        }
        // JobCreated: job_id, height, prev_hash, coinbase1, coinbase2, merkle_branch
        // ([u8; 32] items), version, bits, ntime, anchor (Option<LedgerAnchor { seq, hash }>).
        13 => {
            c.skip(U64 + U64 + BYTES32)?;
            c.vec(1)?;
            c.vec(1)?;
            c.vec(BYTES32)?;
            c.skip(U32 + U32 + U32)?;
            match c.take(1)?[0] {
                0 => {}
                1 => c.skip(U64 + BYTES32)?,
                tag => {
                    return Err(Problem::Decode(format!(
                        "invalid Option tag {tag} for the anchor"
                    )))
                }
            }
        }
        // ShareWithWork: a ShareAccepted, then ShareWork: extranonce1, extranonce2 (bytes),
        // ntime, nonce, version.
        14 => {
            share(&mut c)?;
            c.vec(1)?;
            c.vec(1)?;
            c.skip(U32 + U32 + U32)?;
        }
        // BlockCandidate, PaymentSigned (rare), and variants added after this walk was
        // written: decode them in full.
        _ => return crate::record::decode_event(1, bytes).map(|_| ()),
    }
    if !c.rest.is_empty() {
        return Err(Problem::Decode(format!(
            "{} trailing bytes after the event",
            c.rest.len()
        )));
    }
    Ok(())
}

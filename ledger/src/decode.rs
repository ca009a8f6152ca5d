//! Builds [`pool_core::Event`]s straight from their v1 bincode bytes, without serde: the hot
//! read path (`read_from`, replays) decodes every record, and bincode spends most of its time
//! there on serde's byte-at-a-time visit of the 32-byte targets, works and block ids.
//!
//! The layout is the one [`crate::validate`] walks (bincode 1 with fixed-width little-endian
//! integers, no trailing bytes): a `u32` variant index, then the fields in declaration order;
//! a `String` is a `u64` length then UTF-8 bytes; a `[u8; 32]` (targets and works big-endian,
//! block ids and txids raw) is 32 bytes; newtypes are their inner value. Only the variants a
//! replay meets by the million, and the simple ones beside them, are decoded here; every other
//! variant, and any bytes this decoder does not accept, go to bincode, so a failure always
//! carries bincode's own error. `ledger/src/tests.rs` and `tests/ledger_props.rs` check that this
//! decoder and bincode agree on arbitrary events and on damaged bytes.

use pool_core::event::{
    BlockFound, BlockMatured, BlockOrphaned, BlockReinstated, BlockRejected, PaymentConfirmed,
    PaymentFailed, PaymentSent, PayoutAddress, ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};

/// A read position in event bytes; every read is bounded by what is left, so a length field
/// can never make it allocate more than the buffer holds.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Some(a)
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    #[inline]
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u64()?).ok()?;
        // Bounded by the buffer before anything is allocated.
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }

    #[inline]
    fn target(&mut self) -> Option<Target> {
        self.array().map(Target::from_be_bytes)
    }

    #[inline]
    fn work(&mut self) -> Option<Work> {
        // Work is stored as its 256-bit value, big-endian, like a target.
        self.target().map(|t| Work::from_u256(t.as_u256()))
    }

    #[inline]
    fn block_id(&mut self) -> Option<BlockId> {
        self.array().map(BlockId)
    }

    /// `value` if every byte was consumed (bincode rejects trailing bytes).
    #[inline]
    fn finish<T>(&self, value: T) -> Option<T> {
        self.rest.is_empty().then_some(value)
    }
}

/// The event encoded in `bytes` at schema version 1, if it is of a variant this decoder knows
/// and the bytes are valid; `None` means "ask bincode" (another variant, or bytes bincode will
/// refuse). Whenever this returns `Some(event)`, bincode decodes the same bytes to `event`.
pub fn decode_v1_fast(bytes: &[u8]) -> Option<Event> {
    let mut r = Reader { rest: bytes };
    let event = match r.u32()? {
        0 => Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress(r.string()?),
            worker: WorkerName(r.string()?),
            share_target: r.target()?,
            weight: r.work()?,
            job_id: r.u64()?,
            height: r.u64()?,
            network_target: r.target()?,
            time_ms: r.u64()?,
        }),
        1 => Event::BlockFound(BlockFound {
            height: r.u64()?,
            block_id: r.block_id()?,
            reward: Sats(r.u64()?),
            network_target: r.target()?,
            finder: PayoutAddress(r.string()?),
            worker: WorkerName(r.string()?),
            time_ms: r.u64()?,
        }),
        2 => Event::BlockRejected(BlockRejected {
            height: r.u64()?,
            block_id: r.block_id()?,
            reason: r.string()?,
            finder: PayoutAddress(r.string()?),
            worker: WorkerName(r.string()?),
            time_ms: r.u64()?,
        }),
        3 => Event::BlockOrphaned(BlockOrphaned {
            block_id: r.block_id()?,
            height: r.u64()?,
        }),
        4 => Event::BlockReinstated(BlockReinstated {
            block_id: r.block_id()?,
            height: r.u64()?,
        }),
        5 => Event::BlockMatured(BlockMatured {
            block_id: r.block_id()?,
            height: r.u64()?,
        }),
        8 => Event::PaymentSent(PaymentSent {
            payment_id: r.u64()?,
            txid: r.block_id()?,
            network_fee: Sats(r.u64()?),
        }),
        9 => Event::PaymentConfirmed(PaymentConfirmed {
            payment_id: r.u64()?,
            txid: r.block_id()?,
            height: r.u64()?,
        }),
        10 => Event::PaymentFailed(PaymentFailed {
            payment_id: r.u64()?,
            reason: r.string()?,
        }),
        // PayoutRuleSet, PaymentPrepared (rare), and variants added after this decoder.
        _ => return None,
    };
    r.finish(event)
}

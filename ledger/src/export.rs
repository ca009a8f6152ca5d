//! Export support: the canonical bytes of a stored record (what `pool_core::export`'s
//! `bytes` field holds). The line types are in [`pool_core::export`].

use crate::record::{RawRecord, RECORD_HEADER_LEN};

/// The canonical bytes of a stored record: what its chain hash covers after the previous hash.
pub fn canonical_bytes(r: &RawRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + r.event.len());
    out.extend_from_slice(&r.seq.to_be_bytes());
    out.extend_from_slice(&r.version.to_be_bytes());
    out.extend_from_slice(&r.time_ms.to_be_bytes());
    out.extend_from_slice(&(r.event.len() as u32).to_be_bytes());
    out.extend_from_slice(&r.event);
    out
}

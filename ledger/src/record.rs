//! The stored format of records and commit batches, and the chain hash.
//!
//! One sled entry holds one stored batch of consecutive records (a commit is one or more of
//! them): key = the batch's first sequence number (8 bytes, big-endian, so sled's key order is
//! sequence order), value =
//!
//! ```text
//! batch  := format:u8 (=1) | count:u32 BE | record * count
//! record := seq:u64 BE | version:u16 BE | time_ms:u64 BE | event_len:u32 BE | event | hash:[u8; 32]
//! hash    = SHA-256(previous record's hash | seq | version | time_ms | event_len | event)
//! ```
//!
//! The genesis record's previous hash is 32 zero bytes. `event` is the bincode encoding of
//! [`pool_core::Event`] at the record's schema `version`; [`decode_event`] has one branch per
//! version this build has ever written (v1: the fast decoder of [`crate::decode`] for the hot
//! variants, bincode for the rest).
//!
//! ## Format 2: chunks
//!
//! The writer stores format 1 only. The compactor ([`crate::CompactOptions`]) later re-stores
//! runs of consecutive format-1 batches as one **chunk**, a value of format 2 in the same tree,
//! under the key of the run's first record (so key order stays sequence order), replacing those
//! batches. A chunk holds the same records; the chain hash still covers each record's
//! *canonical bytes*, its format-1 form (`seq | version | time_ms | event_len | event`), which a
//! reader rebuilds exactly ([`expand_value`], the one entry point for every reader of stored
//! values: it turns a chunk into the format-1 batch the writer would have stored, so
//! [`BatchRecords`] and everything above it see format 1 only):
//!
//! ```text
//! chunk  := format:u8 (=2) | first_seq:u64 BE | count:u32 BE | prev_hash:[u8; 32]
//!           | last_hash:[u8; 32] | body_len:u32 BE | zstd(body)
//! body   := addresses | workers | targets | versions | times | kinds | refs | ints | weights | raw
//!           [ | work ]
//! addresses, workers := n:varint | (len:varint | bytes) * n     interned per chunk
//! targets := n:varint | [u8; 32] * n                              share and network targets
//! every column := len:varint | bytes, one entry per record (per share for refs, ints, weights;
//! per work share, kinds 3 and 4, for the work columns):
//!   versions: varint                 the record's schema version
//!   times:    zigzag varint          record time_ms minus the previous record's (first: minus 0)
//!   kinds:    u8                     0 raw event, 1 share (weight = share_target.work()),
//!                                    2 share with its weight stored in `weights`,
//!                                    3 and 4 the same for a `ShareWithWork` (its work below)
//!   refs:     varint * 4             address, worker, share target, network target (indexes)
//!   ints:     zigzag varint * 3      job_id and height minus the previous share's, the share's
//!                                    time_ms minus its record's time_ms
//!   weights:  [u8; 32]               kinds 2 and 4 only
//!   raw:      len:varint | bytes     the v1 event bytes of any other record (kind 0; a
//!                                    `JobCreated` too: one per job, zstd finds its repeats)
//! work   := extranonce1s | extranonce1 | extranonce2 | ntimes | nonces | hversions
//!                                    only in a chunk with work shares: a chunk without any
//!                                    ends after `raw`, byte for byte as before #18
//!   extranonce1s: n:varint | (len:varint | bytes) * n      interned per chunk
//!   extranonce1:  varint             0: the same as the previous work share's of the same
//!                                    (address, worker) refs; i + 1: extranonce1s[i]
//!   extranonce2:  len:varint | bytes
//!   ntimes:       zigzag varint      ntime minus the previous work share's (wrapping `i32`;
//!                                    first: minus 0)
//!   nonces:       u32 LE
//!   hversions:    varint             header version XOR the previous work share's (first: 0)
//! ```
//!
//! varint: LEB128 (7 bits a byte, low first); zigzag maps a wrapping `i64` difference to
//! `u64`. A share is kind 1 or 2 (3 or 4) only when its record is at version 1 and its event
//! bytes are exactly the v1 `ShareAccepted` (`ShareWithWork`) layout, so re-encoding the fields
//! gives the same bytes; any other bytes are stored raw. Sequence numbers follow from `first_seq`, `event_len` from the
//! rebuilt event, and each record's hash from its predecessor's (the chunk's `prev_hash` for
//! the first) and its canonical bytes: only the last hash is stored, and expanding a chunk
//! recomputes every hash and refuses the chunk ([`Problem::HashMismatch`], reported at its first
//! record) unless the last one equals `last_hash`. `prev_hash` makes a chunk expand on its own
//! (out of the tree, in an archive). A trained zstd dictionary was measured and not adopted
//! (BENCHMARKS.md, "Compact storage").
//!
//! The head tree holds the last committed head ([`HEAD_KEY`]) and, once a prefix was dropped,
//! the ledger's base ([`BASE_KEY`]).

use crate::error::Problem;
use bincode::Options;
use pool_core::Event;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Format byte at the start of every stored batch.
pub const BATCH_FORMAT: u8 = 1;
/// Bytes before a batch's first record.
pub const BATCH_HEADER_LEN: usize = 5;
/// Bytes of a record before its event bytes.
pub const RECORD_HEADER_LEN: usize = 8 + 2 + 8 + 4;
/// Previous hash of record 0.
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// A stored record, borrowed from its batch's bytes (no copy, event not yet decoded).
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub seq: u64,
    pub version: u16,
    pub time_ms: u64,
    /// The event's bytes, encoded at `version`.
    pub event: &'a [u8],
    /// The stored chain hash.
    pub hash: [u8; 32],
    /// The bytes the hash covers after the previous hash: header and event.
    pub hashed: &'a [u8],
}

impl RecordView<'_> {
    /// Whether the stored hash is the chain hash of `prev` and this record's bytes.
    pub fn hash_matches(&self, prev: &[u8; 32]) -> bool {
        chain_hash(prev, self.hashed) == self.hash
    }

    pub fn decode_event(&self) -> Result<Event, Problem> {
        decode_event(self.version, self.event)
    }

    /// Whether the event decodes, without building it.
    pub fn check_event(&self) -> Result<(), Problem> {
        check_event(self.version, self.event)
    }
}

/// SHA-256 over the previous record's hash and this record's header and event bytes.
pub fn chain_hash(prev: &[u8; 32], hashed: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(hashed);
    h.finalize().into()
}

fn bincode_options() -> impl Options {
    // The same encoding as `bincode::serialize` (fixed-width little-endian integers), but
    // strict on decode: no trailing bytes.
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// Encodes an event at [`pool_core::EVENT_SCHEMA_VERSION`].
pub fn encode_event(event: &Event) -> Result<Vec<u8>, bincode::Error> {
    bincode_options().serialize(event)
}

/// Decodes an event stored at schema `version`. A future version that changes [`Event`]'s
/// layout keeps its old decoder here (decode into the old shape, convert to the new).
pub fn decode_event(version: u16, bytes: &[u8]) -> Result<Event, Problem> {
    match version {
        1 => match crate::decode::decode_v1_fast(bytes) {
            Some(event) => Ok(event),
            // Other variants, and bytes the fast decoder refuses (bincode's error says why).
            None => decode_v1_bincode(bytes),
        },
        v => Err(Problem::UnknownVersion(v)),
    }
}

/// Decodes v1 event bytes with bincode alone: the reference the fast decoder is checked
/// against.
pub fn decode_v1_bincode(bytes: &[u8]) -> Result<Event, Problem> {
    bincode_options()
        .deserialize::<Event>(bytes)
        .map_err(|e| Problem::Decode(e.to_string()))
}

/// Whether event bytes stored at schema `version` decode, without building the event; the
/// same answer as [`decode_event`]`.is_ok()`, at a fraction of the cost.
pub fn check_event(version: u16, bytes: &[u8]) -> Result<(), Problem> {
    match version {
        1 => crate::validate::validate_v1(bytes),
        v => Err(Problem::UnknownVersion(v)),
    }
}

/// Appends one record to a batch being built and returns its hash.
pub fn push_record(
    out: &mut Vec<u8>,
    prev: &[u8; 32],
    seq: u64,
    version: u16,
    time_ms: u64,
    event: &[u8],
) -> Result<[u8; 32], Problem> {
    let len = u32::try_from(event.len())
        .map_err(|_| Problem::Malformed(format!("event of {} bytes is too long", event.len())))?;
    let start = out.len();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(event);
    let hash = chain_hash(prev, &out[start..]);
    out.extend_from_slice(&hash);
    Ok(hash)
}

/// Starts a batch buffer; [`finish_batch`] fills in the record count.
pub fn begin_batch(capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + capacity);
    out.push(BATCH_FORMAT);
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

pub fn finish_batch(out: &mut [u8], count: u32) {
    out[1..BATCH_HEADER_LEN].copy_from_slice(&count.to_be_bytes());
}

/// Iterates over the records of one stored batch without copying.
pub struct BatchRecords<'a> {
    bytes: &'a [u8],
    offset: usize,
    remaining: u32,
}

impl<'a> BatchRecords<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<BatchRecords<'a>, Problem> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(Problem::Malformed("batch shorter than its header".into()));
        }
        if bytes[0] != BATCH_FORMAT {
            return Err(Problem::Malformed(format!(
                "unknown batch format {}",
                bytes[0]
            )));
        }
        let remaining = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        Ok(BatchRecords {
            bytes,
            offset: BATCH_HEADER_LEN,
            remaining,
        })
    }

    /// Records not yet returned.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The next record, or `Ok(None)` at the end. Bytes after the last counted record are an
    /// error.
    pub fn next_record(&mut self) -> Result<Option<RecordView<'a>>, Problem> {
        let bytes = self.bytes;
        if self.remaining == 0 {
            if self.offset != bytes.len() {
                return Err(Problem::Malformed(format!(
                    "{} stray bytes after the last record",
                    bytes.len() - self.offset
                )));
            }
            return Ok(None);
        }
        let rest = &bytes[self.offset..];
        if rest.len() < RECORD_HEADER_LEN {
            return Err(Problem::Malformed("truncated record header".into()));
        }
        let seq = u64::from_be_bytes(fixed(&rest[0..8]));
        let version = u16::from_be_bytes(fixed(&rest[8..10]));
        let time_ms = u64::from_be_bytes(fixed(&rest[10..18]));
        let len = u32::from_be_bytes(fixed(&rest[18..22])) as usize;
        let end = RECORD_HEADER_LEN
            .checked_add(len)
            .filter(|&e| e.checked_add(32).is_some_and(|t| t <= rest.len()))
            .ok_or_else(|| Problem::Malformed(format!("record {seq} is truncated")))?;
        let hash = fixed(&rest[end..end + 32]);
        self.offset += end + 32;
        self.remaining -= 1;
        Ok(Some(RecordView {
            seq,
            version,
            time_ms,
            event: &rest[RECORD_HEADER_LEN..end],
            hash,
            hashed: &rest[..end],
        }))
    }
}

fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

/// The format-1 image of a stored value, the one entry point for every reader of stored
/// values: a format-1 batch as it is, a format-2 chunk expanded by [`crate::chunk::expand`]
/// (its records' canonical bytes rebuilt, every hash recomputed from the chunk's previous
/// hash; a chunk whose recomputed last hash differs from its stored one is
/// [`Problem::HashMismatch`]). Everything above it ([`BatchRecords`]) sees format 1 only.
pub fn expand_value(bytes: &[u8]) -> Result<Cow<'_, [u8]>, Problem> {
    match bytes.first() {
        Some(&crate::chunk::CHUNK_FORMAT) => crate::chunk::expand(bytes).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(bytes)),
    }
}

/// Whether a stored value is a format-2 chunk.
pub fn is_chunk(bytes: &[u8]) -> bool {
    bytes.first() == Some(&crate::chunk::CHUNK_FORMAT)
}

/// The first record's sequence number, the number of records (at least one) and the last
/// record's stored hash of a stored value, as stored (unchecked): from a batch's record
/// headers, or a chunk's header (nothing decompressed).
pub fn value_tail(bytes: &[u8]) -> Result<(u64, u64, [u8; 32]), Problem> {
    if is_chunk(bytes) {
        let h = crate::chunk::ChunkHeader::parse(bytes)?;
        return Ok((h.first_seq, u64::from(h.count), h.last_hash));
    }
    let mut records = BatchRecords::parse(bytes)?;
    let mut first = None;
    let mut count = 0u64;
    let mut hash = None;
    while let Some(r) = records.next_record()? {
        first.get_or_insert(r.seq);
        count += 1;
        hash = Some(r.hash);
    }
    match (first, hash) {
        (Some(first), Some(hash)) => Ok((first, count, hash)),
        _ => Err(Problem::Malformed("empty batch".into())),
    }
}

/// Sled key of the batch whose first record is `seq`.
pub fn batch_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The first sequence number of a batch key, if it is one.
pub fn key_seq(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

impl<'a> BatchRecords<'a> {
    /// Continues a batch at a position saved with [`BatchRecords::position`].
    pub fn resume(bytes: &'a [u8], position: (usize, u32)) -> BatchRecords<'a> {
        BatchRecords {
            bytes,
            offset: position.0,
            remaining: position.1,
        }
    }

    pub fn position(&self) -> (usize, u32) {
        (self.offset, self.remaining)
    }
}

/// An owned stored record, for tools and tests that rewrite stored batches (tampering tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub seq: u64,
    pub version: u16,
    pub time_ms: u64,
    pub event: Vec<u8>,
    pub hash: [u8; 32],
}

/// Splits a stored value (a format-1 batch, or a format-2 chunk, expanded) into its records,
/// as stored (a batch's hashes are not checked; a chunk's are recomputed and its last one
/// checked, see [`expand_value`]).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<RawRecord>, Problem> {
    let image = expand_value(bytes)?;
    let mut records = BatchRecords::parse(&image)?;
    let mut out = Vec::with_capacity(records.remaining() as usize);
    while let Some(r) = records.next_record()? {
        out.push(RawRecord {
            seq: r.seq,
            version: r.version,
            time_ms: r.time_ms,
            event: r.event.to_vec(),
            hash: r.hash,
        });
    }
    Ok(out)
}

/// Encodes records as a stored batch value, keeping their stored hashes as they are.
pub fn encode_batch(records: &[RawRecord]) -> Vec<u8> {
    let mut out = begin_batch(records.iter().map(|r| r.event.len() + 54).sum());
    for r in records {
        out.extend_from_slice(&r.seq.to_be_bytes());
        out.extend_from_slice(&r.version.to_be_bytes());
        out.extend_from_slice(&r.time_ms.to_be_bytes());
        out.extend_from_slice(&(r.event.len() as u32).to_be_bytes());
        out.extend_from_slice(&r.event);
        out.extend_from_slice(&r.hash);
    }
    finish_batch(&mut out, records.len() as u32);
    out
}

/// Key of the recorded head in the head tree; value = seq (u64 BE) | hash (32 bytes).
pub const HEAD_KEY: &[u8] = b"head";

/// Key of the ledger's base in the head tree, once a prefix was dropped
/// ([`crate::Ledger::drop_prefix`]); value = first live seq (u64 BE) | the previous record's
/// hash (32 bytes), the same layout as [`HEAD_KEY`]'s. Stored values below the base are
/// ignored (and removed by the drop, or by the next writable open after a crash mid-drop).
pub const BASE_KEY: &[u8] = b"base";

pub fn encode_head(head: &crate::Head) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&head.seq.to_be_bytes());
    out[8..].copy_from_slice(&head.hash);
    out
}

pub fn decode_head(bytes: &[u8]) -> Option<crate::Head> {
    let bytes: &[u8; 40] = bytes.try_into().ok()?;
    Some(crate::Head {
        seq: u64::from_be_bytes(fixed(&bytes[..8])),
        hash: fixed(&bytes[8..]),
    })
}

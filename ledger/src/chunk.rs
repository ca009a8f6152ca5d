//! Format 2: a chunk, the compact stored form of a run of consecutive records (see the module
//! docs of [`crate::record`] for the layout). [`encode`] builds one from records as stored in
//! format 1; [`expand`] rebuilds the exact format-1 image (the canonical record bytes the chain
//! hashes cover), recomputing every hash from the chunk's previous hash, and refuses a chunk
//! whose recomputed last hash is not the stored one. A chunk carries its previous record's
//! hash, so it expands on its own (copied out of the tree, e.g. into an archive).
//!
//! The work section (`ShareWithWork`, issue #18) was appended to the body without a new
//! format byte: a chunk without work shares is encoded exactly as before, and a chunk written
//! before it (its body ends after the `raw` column) expands as it always did;
//! `ledger/testdata/chunk-v2-shares.bin` is such a chunk, checked by `compact_tests`.

use crate::error::Problem;
use crate::record::{self, RawRecord, BATCH_HEADER_LEN, RECORD_HEADER_LEN};
use pool_core::Target;
use std::collections::HashMap;

/// Format byte at the start of a chunk.
pub const CHUNK_FORMAT: u8 = 2;
/// Bytes before a chunk's compressed body: format, first seq, count, previous hash, last hash.
pub const CHUNK_HEADER_LEN: usize = 1 + 8 + 4 + 32 + 32;
/// zstd level of chunk bodies (compaction runs in the background; decompression speed barely
/// depends on the level).
pub const ZSTD_LEVEL: i32 = 9;
/// Most records one chunk may claim to hold (a bound on what a damaged count makes us
/// allocate).
pub const MAX_CHUNK_RECORDS: u32 = 1 << 20;

/// Kinds of record in the `kinds` column.
const RAW: u8 = 0;
const SHARE: u8 = 1;
const SHARE_WEIGHT: u8 = 2;
/// A `ShareWithWork`: a share as kind 1 (or 2, its weight stored) with its work in the work
/// section's columns.
const SHARE_WORK: u8 = 3;
const SHARE_WORK_WEIGHT: u8 = 4;

/// Event variant indices of the two share layouts (v1).
const SHARE_ACCEPTED_TAG: u32 = 0;
const SHARE_WITH_WORK_TAG: u32 = 14;

/// A chunk's header, read without decompressing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub first_seq: u64,
    pub count: u32,
    /// The hash of the record before the first one (the genesis previous hash for record 0).
    pub prev_hash: [u8; 32],
    /// The last record's hash.
    pub last_hash: [u8; 32],
}

impl ChunkHeader {
    pub fn parse(bytes: &[u8]) -> Result<ChunkHeader, Problem> {
        if bytes.len() < CHUNK_HEADER_LEN {
            return Err(Problem::Malformed("chunk shorter than its header".into()));
        }
        if bytes[0] != CHUNK_FORMAT {
            return Err(Problem::Malformed(format!(
                "not a chunk (format {})",
                bytes[0]
            )));
        }
        let count = u32::from_be_bytes(fixed(&bytes[9..13]));
        if count == 0 || count > MAX_CHUNK_RECORDS {
            return Err(Problem::Malformed(format!("chunk of {count} records")));
        }
        Ok(ChunkHeader {
            first_seq: u64::from_be_bytes(fixed(&bytes[1..9])),
            count,
            prev_hash: fixed(&bytes[13..45]),
            last_hash: fixed(&bytes[45..77]),
        })
    }

    /// The last record's sequence number.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count) - 1
    }
}

fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A delta of two u64 values, as a zigzag varint (wrapping, so any pair round-trips).
fn put_delta(out: &mut Vec<u8>, from: u64, to: u64) {
    put_varint(out, zigzag(to.wrapping_sub(from) as i64));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Interns byte strings (addresses, workers, targets) per chunk.
#[derive(Default)]
struct Table<'a> {
    index: HashMap<&'a [u8], u64>,
    items: Vec<&'a [u8]>,
}

impl<'a> Table<'a> {
    fn intern(&mut self, item: &'a [u8]) -> u64 {
        if let Some(&i) = self.index.get(item) {
            return i;
        }
        let i = self.items.len() as u64;
        self.items.push(item);
        self.index.insert(item, i);
        i
    }
}

/// The fields of a v1 share event, borrowed from its bytes.
struct ShareView<'a> {
    address: &'a [u8],
    worker: &'a [u8],
    share_target: &'a [u8],
    weight: &'a [u8],
    job_id: u64,
    height: u64,
    network_target: &'a [u8],
    time_ms: u64,
}

/// What a miner submitted for a `ShareWithWork`, borrowed from its bytes.
struct WorkView<'a> {
    extranonce1: &'a [u8],
    extranonce2: &'a [u8],
    ntime: u32,
    nonce: u32,
    version: u32,
}

/// The share in v1 event bytes (with its work for a `ShareWithWork`), if they are exactly a
/// share's layout (strings and extranonces are kept as bytes: re-encoding them gives the same
/// bytes whatever they hold).
fn parse_share(bytes: &[u8]) -> Option<(ShareView<'_>, Option<WorkView<'_>>)> {
    let mut c = Cursor { rest: bytes };
    let tag = c.u32_le()?;
    if tag != SHARE_ACCEPTED_TAG && tag != SHARE_WITH_WORK_TAG {
        return None;
    }
    let address = c.vec_u8()?;
    let worker = c.vec_u8()?;
    let share = ShareView {
        address,
        worker,
        share_target: c.take(32).ok()?,
        weight: c.take(32).ok()?,
        job_id: c.u64_le()?,
        height: c.u64_le()?,
        network_target: c.take(32).ok()?,
        time_ms: c.u64_le()?,
    };
    let work = if tag == SHARE_WITH_WORK_TAG {
        Some(WorkView {
            extranonce1: c.vec_u8()?,
            extranonce2: c.vec_u8()?,
            ntime: c.u32_le()?,
            nonce: c.u32_le()?,
            version: c.u32_le()?,
        })
    } else {
        None
    };
    c.rest.is_empty().then_some((share, work))
}

/// The work columns of the `ShareWithWork` records of a chunk, as they are built.
#[derive(Default)]
struct WorkColumns<'a> {
    extranonce1s: Table<'a>,
    /// The extranonce1 (index) of the last work share of each (address, worker) pair.
    last_extranonce1: HashMap<(u64, u64), u64>,
    extranonce1: Vec<u8>,
    extranonce2: Vec<u8>,
    ntimes: Vec<u8>,
    nonces: Vec<u8>,
    versions: Vec<u8>,
    ntime: u32,
    version: u32,
    shares: usize,
}

impl<'a> WorkColumns<'a> {
    fn push(&mut self, address: u64, worker: u64, w: &WorkView<'a>) {
        // A connection keeps its extranonce1, and a worker mostly keeps its connection: 0 says
        // "the same as this address and worker's previous work share", n the table's n - 1.
        let en1 = self.extranonce1s.intern(w.extranonce1);
        match self.last_extranonce1.insert((address, worker), en1) {
            Some(last) if last == en1 => put_varint(&mut self.extranonce1, 0),
            _ => put_varint(&mut self.extranonce1, en1 + 1),
        }
        put_bytes(&mut self.extranonce2, w.extranonce2);
        // Shares mostly carry their job's ntime: the same as the previous share's, or close.
        put_varint(
            &mut self.ntimes,
            zigzag(i64::from(w.ntime.wrapping_sub(self.ntime) as i32)),
        );
        self.ntime = w.ntime;
        self.nonces.extend_from_slice(&w.nonce.to_le_bytes());
        // Without version rolling every share has its job's version: XOR 0.
        put_varint(&mut self.versions, u64::from(w.version ^ self.version));
        self.version = w.version;
        self.shares += 1;
    }

    /// The work section (nothing for a chunk without work shares: such a chunk is encoded
    /// exactly as before the work section existed).
    fn write(&self, body: &mut Vec<u8>) {
        if self.shares == 0 {
            return;
        }
        put_varint(body, self.extranonce1s.items.len() as u64);
        for item in &self.extranonce1s.items {
            put_bytes(body, item);
        }
        for column in [
            &self.extranonce1,
            &self.extranonce2,
            &self.ntimes,
            &self.nonces,
            &self.versions,
        ] {
            put_bytes(body, column);
        }
    }
}

/// The work of a target, as stored (big-endian).
fn work_bytes(target: &[u8]) -> [u8; 32] {
    let work = Target::from_be_bytes(fixed(target)).work();
    Target::from_u256(work.as_u256()).to_be_bytes()
}

/// The uncompressed body of a chunk: tables, then columns (see [`crate::record`]).
pub fn encode_body(records: &[RawRecord]) -> Vec<u8> {
    let mut addresses = Table::default();
    let mut workers = Table::default();
    let mut targets = Table::default();
    let mut works: HashMap<&[u8], [u8; 32]> = HashMap::new();
    let (mut versions, mut times, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut refs, mut ints, mut weights, mut raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut work_columns = WorkColumns::default();
    let (mut time, mut job, mut height) = (0u64, 0u64, 0u64);
    for r in records {
        put_varint(&mut versions, u64::from(r.version));
        put_delta(&mut times, time, r.time_ms);
        time = r.time_ms;
        let share = if r.version == 1 {
            parse_share(&r.event)
        } else {
            None
        };
        let Some((s, work)) = share else {
            kinds.push(RAW);
            put_bytes(&mut raw, &r.event);
            continue;
        };
        let derived = *works
            .entry(s.share_target)
            .or_insert_with(|| work_bytes(s.share_target))
            == *s.weight;
        kinds.push(match (work.is_some(), derived) {
            (false, true) => SHARE,
            (false, false) => SHARE_WEIGHT,
            (true, true) => SHARE_WORK,
            (true, false) => SHARE_WORK_WEIGHT,
        });
        if !derived {
            weights.extend_from_slice(s.weight);
        }
        let (address, worker) = (addresses.intern(s.address), workers.intern(s.worker));
        put_varint(&mut refs, address);
        put_varint(&mut refs, worker);
        put_varint(&mut refs, targets.intern(s.share_target));
        put_varint(&mut refs, targets.intern(s.network_target));
        put_delta(&mut ints, job, s.job_id);
        put_delta(&mut ints, height, s.height);
        put_delta(&mut ints, r.time_ms, s.time_ms);
        job = s.job_id;
        height = s.height;
        if let Some(w) = work {
            work_columns.push(address, worker, &w);
        }
    }
    let mut body = Vec::new();
    for table in [&addresses, &workers] {
        put_varint(&mut body, table.items.len() as u64);
        for item in &table.items {
            put_bytes(&mut body, item);
        }
    }
    put_varint(&mut body, targets.items.len() as u64);
    for t in &targets.items {
        body.extend_from_slice(t);
    }
    for column in [&versions, &times, &kinds, &refs, &ints, &weights, &raw] {
        put_bytes(&mut body, column);
    }
    work_columns.write(&mut body);
    body
}

/// Builds a chunk of `records` (consecutive, as stored in format 1): `prev_hash` is the hash
/// of the record before the first, and the last record's stored hash becomes the chunk's
/// last hash.
pub fn encode(records: &[RawRecord], prev_hash: &[u8; 32]) -> Result<Vec<u8>, Problem> {
    let (first, last) = match (records.first(), records.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(Problem::Malformed("empty chunk".into())),
    };
    let count = u32::try_from(records.len())
        .ok()
        .filter(|&c| c <= MAX_CHUNK_RECORDS)
        .ok_or_else(|| Problem::Malformed(format!("{} records for a chunk", records.len())))?;
    let body = encode_body(records);
    let compressed = zstd::bulk::compress(&body, ZSTD_LEVEL)
        .map_err(|e| Problem::Malformed(format!("compressing a chunk: {e}")))?;
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN + 4 + compressed.len());
    out.push(CHUNK_FORMAT);
    out.extend_from_slice(&first.seq.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&last.hash);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&compressed);
    Ok(out)
}

fn bad(why: &str) -> Problem {
    Problem::Malformed(format!("chunk body: {why}"))
}

/// A read position in a chunk's body.
#[derive(Default)]
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Problem> {
        if n > self.rest.len() {
            return Err(bad("ends early"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u64_le(&mut self) -> Option<u64> {
        self.take(8).ok().map(|b| u64::from_le_bytes(fixed(b)))
    }

    fn u32_le(&mut self) -> Option<u32> {
        self.take(4).ok().map(|b| u32::from_le_bytes(fixed(b)))
    }

    /// A bincode `String` or `Vec<u8>` (a `u64` length, then the bytes), as bytes.
    fn vec_u8(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64_le()?).ok()?;
        self.take(n).ok()
    }

    fn varint(&mut self) -> Result<u64, Problem> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.rest.first().ok_or_else(|| bad("ends early"))?;
            self.rest = &self.rest[1..];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn len(&mut self) -> Result<usize, Problem> {
        usize::try_from(self.varint()?).map_err(|_| bad("length"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Problem> {
        let n = self.len()?;
        self.take(n)
    }

    fn delta(&mut self, from: u64) -> Result<u64, Problem> {
        Ok(from.wrapping_add(unzigzag(self.varint()?) as u64))
    }

    fn index<T: Copy>(&mut self, table: &[T]) -> Result<T, Problem> {
        let i = self.len()?;
        table.get(i).copied().ok_or_else(|| bad("table index"))
    }

    fn done(&self) -> Result<(), Problem> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(bad("stray bytes"))
        }
    }
}

/// Rebuilds the format-1 image of a chunk: the batch a writer would have stored for its
/// records, every hash recomputed from the chunk's previous hash. The recomputed last hash
/// must be the stored one ([`Problem::HashMismatch`] otherwise: the chunk was edited).
pub fn expand(bytes: &[u8]) -> Result<Vec<u8>, Problem> {
    let header = ChunkHeader::parse(bytes)?;
    let rest = &bytes[CHUNK_HEADER_LEN..];
    if rest.len() < 4 {
        return Err(Problem::Malformed("chunk without a body".into()));
    }
    let body_len = u32::from_be_bytes(fixed(&rest[..4])) as usize;
    // A share's body is at least a dozen bytes; far more than that per record is damage.
    if body_len > (header.count as usize).saturating_mul(1 << 16).max(1 << 20) {
        return Err(Problem::Malformed(format!(
            "chunk body of {body_len} bytes"
        )));
    }
    let body = zstd::bulk::decompress(&rest[4..], body_len)
        .map_err(|e| Problem::Malformed(format!("chunk body does not decompress: {e}")))?;
    if body.len() != body_len {
        return Err(bad("length differs from the header's"));
    }
    let mut c = Cursor { rest: &body };
    let mut tables: [Vec<&[u8]>; 2] = [Vec::new(), Vec::new()];
    for table in &mut tables {
        let n = c.len()?;
        if n > header.count as usize {
            return Err(bad("table larger than the chunk"));
        }
        for _ in 0..n {
            table.push(c.bytes()?);
        }
    }
    let [addresses, workers] = tables;
    let n = c.len()?;
    if n > 2 * header.count as usize {
        return Err(bad("table larger than the chunk"));
    }
    let targets: Vec<&[u8]> = (0..n).map(|_| c.take(32)).collect::<Result<_, _>>()?;
    let mut works: Vec<Option<[u8; 32]>> = vec![None; targets.len()];
    let mut column = || c.bytes().map(|rest| Cursor { rest });
    let (mut versions, mut times, mut kinds) = (column()?, column()?, column()?);
    let (mut refs, mut ints, mut weights, mut raw) = (column()?, column()?, column()?, column()?);
    // The work section, in chunks with work shares only (older chunks end here).
    let mut work = WorkReader::default();
    if !c.rest.is_empty() {
        let n = c.len()?;
        if n > header.count as usize {
            return Err(bad("table larger than the chunk"));
        }
        work.extranonce1s = (0..n).map(|_| c.bytes()).collect::<Result<_, _>>()?;
        let mut column = || c.bytes().map(|rest| Cursor { rest });
        work.extranonce1 = column()?;
        work.extranonce2 = column()?;
        work.ntimes = column()?;
        work.nonces = column()?;
        work.versions = column()?;
    }
    c.done()?;

    let count = header.count as usize;
    let mut out = record::begin_batch(count * 200);
    let mut event = Vec::with_capacity(256);
    let mut prev = header.prev_hash;
    let (mut time, mut job, mut height) = (0u64, 0u64, 0u64);
    for i in 0..count {
        let seq = header.first_seq.wrapping_add(i as u64);
        let version = u16::try_from(versions.varint()?).map_err(|_| bad("version"))?;
        time = times.delta(time)?;
        let kind = kinds.take(1)?[0];
        let event: &[u8] = match kind {
            RAW => raw.bytes()?,
            SHARE | SHARE_WEIGHT | SHARE_WORK | SHARE_WORK_WEIGHT => {
                event.clear();
                let a = refs.len()?;
                let w = refs.len()?;
                let address = *addresses.get(a).ok_or_else(|| bad("table index"))?;
                let worker = *workers.get(w).ok_or_else(|| bad("table index"))?;
                let t = refs.len()?;
                let share_target = *targets.get(t).ok_or_else(|| bad("table index"))?;
                let network_target = refs.index(&targets)?;
                job = ints.delta(job)?;
                height = ints.delta(height)?;
                let event_time = ints.delta(time)?;
                let tag = if matches!(kind, SHARE_WORK | SHARE_WORK_WEIGHT) {
                    SHARE_WITH_WORK_TAG
                } else {
                    SHARE_ACCEPTED_TAG
                };
                event.extend_from_slice(&tag.to_le_bytes());
                event.extend_from_slice(&(address.len() as u64).to_le_bytes());
                event.extend_from_slice(address);
                event.extend_from_slice(&(worker.len() as u64).to_le_bytes());
                event.extend_from_slice(worker);
                event.extend_from_slice(share_target);
                if matches!(kind, SHARE | SHARE_WORK) {
                    let work = works[t].get_or_insert_with(|| work_bytes(share_target));
                    event.extend_from_slice(work);
                } else {
                    event.extend_from_slice(weights.take(32)?);
                }
                event.extend_from_slice(&job.to_le_bytes());
                event.extend_from_slice(&height.to_le_bytes());
                event.extend_from_slice(network_target);
                event.extend_from_slice(&event_time.to_le_bytes());
                if tag == SHARE_WITH_WORK_TAG {
                    work.push_to(&mut event, (a, w))?;
                }
                &event
            }
            k => return Err(bad(&format!("record kind {k}"))),
        };
        prev = record::push_record(&mut out, &prev, seq, version, time, event)?;
    }
    for column in [&versions, &times, &kinds, &refs, &ints, &weights, &raw] {
        column.done()?;
    }
    work.done()?;
    if prev != header.last_hash {
        return Err(Problem::HashMismatch);
    }
    record::finish_batch(&mut out, header.count);
    debug_assert!(out.len() >= BATCH_HEADER_LEN + count * (RECORD_HEADER_LEN + 32));
    Ok(out)
}

/// The work section of a chunk being expanded: [`WorkColumns`] read back.
#[derive(Default)]
struct WorkReader<'a> {
    extranonce1s: Vec<&'a [u8]>,
    last_extranonce1: HashMap<(usize, usize), usize>,
    extranonce1: Cursor<'a>,
    extranonce2: Cursor<'a>,
    ntimes: Cursor<'a>,
    nonces: Cursor<'a>,
    versions: Cursor<'a>,
    ntime: u32,
    version: u32,
}

impl WorkReader<'_> {
    /// Appends the next work share's `ShareWork` (v1 bytes) to `event`; `pair` is the share's
    /// (address, worker) table indexes.
    fn push_to(&mut self, event: &mut Vec<u8>, pair: (usize, usize)) -> Result<(), Problem> {
        let en1 = match self.extranonce1.len()? {
            0 => *self
                .last_extranonce1
                .get(&pair)
                .ok_or_else(|| bad("extranonce1 of a first share"))?,
            n => {
                let i = n - 1;
                if i >= self.extranonce1s.len() {
                    return Err(bad("table index"));
                }
                self.last_extranonce1.insert(pair, i);
                i
            }
        };
        let extranonce1 = self.extranonce1s[en1];
        let extranonce2 = self.extranonce2.bytes()?;
        let delta = i32::try_from(unzigzag(self.ntimes.varint()?)).map_err(|_| bad("ntime"))?;
        self.ntime = self.ntime.wrapping_add(delta as u32);
        let nonce = self.nonces.take(4)?;
        let flipped = u32::try_from(self.versions.varint()?).map_err(|_| bad("version"))?;
        self.version ^= flipped;
        for b in [extranonce1, extranonce2] {
            event.extend_from_slice(&(b.len() as u64).to_le_bytes());
            event.extend_from_slice(b);
        }
        event.extend_from_slice(&self.ntime.to_le_bytes());
        event.extend_from_slice(nonce);
        event.extend_from_slice(&self.version.to_le_bytes());
        Ok(())
    }

    fn done(&self) -> Result<(), Problem> {
        for column in [
            &self.extranonce1,
            &self.extranonce2,
            &self.ntimes,
            &self.nonces,
            &self.versions,
        ] {
            column.done()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX / 3, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Cursor { rest: &out }.varint().unwrap(), v);
        }
        for (a, b) in [(0u64, 5u64), (5, 0), (0, u64::MAX), (u64::MAX, 0), (7, 7)] {
            let mut out = Vec::new();
            put_delta(&mut out, a, b);
            assert_eq!(Cursor { rest: &out }.delta(a).unwrap(), b);
        }
    }
}

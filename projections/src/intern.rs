//! Interning of payout addresses and workers to dense ids, so the per-share fold touches small
//! integers instead of cloning strings. Ids are given in order of first appearance in the event
//! sequence, so they are a deterministic function of it; the lookup maps are rebuilt on load and
//! never serialized (hash-map order never reaches the state's bytes).

use pool_core::event::{PayoutAddress, WorkerName};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a key (a namespace and bytes) word by word, with a final avalanche so every bit of
/// the result depends on every input bit. Fixed, unseeded: lookups only, nothing iterates.
fn key_hash(namespace: u32, bytes: &[u8]) -> u64 {
    const MIX: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h = (u64::from(namespace) << 32 | bytes.len() as u64).wrapping_mul(MIX);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(MIX);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(MIX);
    }
    // MurmurHash3's fmix64.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Passes an already mixed `u64` through as its own hash.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashIndex<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// Key -> id lookup whose keys live in one contiguous byte arena, so a lookup touches the
/// table and a hot arena instead of one scattered heap string per key (the fold's hot path).
#[derive(Clone, Debug, Default)]
struct KeyIndex {
    by_hash: HashIndex<u32>,
    /// Further ids whose key has the same 64-bit hash as the one in `by_hash` (practically never).
    colliding: HashIndex<Vec<u32>>,
    arena: Vec<u8>,
    /// Per id: namespace, start and length in `arena`.
    keys: Vec<(u32, u32, u32)>,
}

impl KeyIndex {
    fn key_is(&self, id: u32, namespace: u32, bytes: &[u8]) -> bool {
        let (ns, start, len) = self.keys[id as usize];
        ns == namespace && &self.arena[start as usize..(start + len) as usize] == bytes
    }

    #[inline]
    fn find(&self, namespace: u32, bytes: &[u8]) -> Option<u32> {
        self.find_hashed(key_hash(namespace, bytes), namespace, bytes)
    }

    #[inline]
    fn find_hashed(&self, h: u64, namespace: u32, bytes: &[u8]) -> Option<u32> {
        let first = *self.by_hash.get(&h)?;
        if self.key_is(first, namespace, bytes) {
            return Some(first);
        }
        self.colliding
            .get(&h)?
            .iter()
            .copied()
            .find(|id| self.key_is(*id, namespace, bytes))
    }

    /// Adds a key; ids must be given in order 0, 1, 2, ...
    fn insert(&mut self, namespace: u32, bytes: &[u8]) {
        let id = self.keys.len() as u32;
        let h = key_hash(namespace, bytes);
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(bytes);
        self.keys.push((namespace, start, bytes.len() as u32));
        match self.by_hash.entry(h) {
            Entry::Occupied(_) => self.colliding.entry(h).or_default().push(id),
            Entry::Vacant(slot) => {
                slot.insert(id);
            }
        }
    }
}

/// Payout addresses by id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Addresses {
    pub(crate) names: Vec<PayoutAddress>,
    #[serde(skip)]
    index: KeyIndex,
}

impl Addresses {
    pub(crate) fn get(&self, address: &str) -> Option<u32> {
        self.index.find(0, address.as_bytes())
    }

    /// The id of `address` and whether it is new.
    #[inline]
    pub(crate) fn intern(&mut self, address: &PayoutAddress) -> (u32, bool) {
        if let Some(id) = self.index.find(0, address.0.as_bytes()) {
            return (id, false);
        }
        let id = self.names.len() as u32;
        self.names.push(address.clone());
        self.index.insert(0, address.0.as_bytes());
        (id, true)
    }

    pub(crate) fn name(&self, id: u32) -> &PayoutAddress {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = KeyIndex::default();
        for a in &self.names {
            self.index.insert(0, a.0.as_bytes());
        }
    }
}

/// Workers (an address and a worker name) by id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Workers {
    pub(crate) names: Vec<(u32, WorkerName)>,
    #[serde(skip)]
    index: KeyIndex,
}

impl Workers {
    /// The id of `worker` under the address `address` and whether it is new.
    #[inline]
    pub(crate) fn intern(&mut self, address: u32, worker: &WorkerName) -> (u32, bool) {
        if let Some(id) = self.index.find(address, worker.0.as_bytes()) {
            return (id, false);
        }
        let id = self.names.len() as u32;
        self.names.push((address, worker.clone()));
        self.index.insert(address, worker.0.as_bytes());
        (id, true)
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = KeyIndex::default();
        for (address, worker) in &self.names {
            self.index.insert(*address, worker.0.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_still_find_the_right_key() {
        let mut index = KeyIndex::default();
        index.insert(0, b"a");
        index.insert(0, b"b");
        // Force a collision: file "c" under the hash of "a".
        let h = key_hash(0, b"a");
        index.arena.extend_from_slice(b"c");
        index.keys.push((0, 2, 1));
        index.colliding.entry(h).or_default().push(2);
        assert_eq!(index.find(0, b"a"), Some(0));
        assert_eq!(index.find(0, b"b"), Some(1));
        assert_eq!(index.find(1, b"a"), None);
        assert_eq!(index.find(0, b"zz"), None);
        // A lookup of "c" that lands on "a"'s hash finds it through the collision list.
        assert_eq!(index.find_hashed(h, 0, b"c"), Some(2));
        assert_eq!(index.find_hashed(h, 0, b"d"), None);
    }

    #[test]
    fn workers_are_per_address() {
        let mut w = Workers::default();
        let rig = WorkerName("rig".into());
        assert_eq!(w.intern(0, &rig), (0, true));
        assert_eq!(w.intern(1, &rig), (1, true));
        assert_eq!(w.intern(0, &rig), (0, false));
        let mut copy = w.clone();
        copy.rebuild_index();
        assert_eq!(copy.intern(1, &rig), (1, false));
    }
}

//! Interning of payout addresses and workers to dense ids, so the per-share fold touches small
//! integers instead of cloning strings. Ids are given in order of first appearance in the event
//! sequence, so they are a deterministic function of it; the lookup maps are rebuilt on load and
//! never serialized (hash-map order never reaches the state's bytes).

use pool_core::event::{PayoutAddress, WorkerName};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: a fast, fixed (unseeded) hash for short keys such as addresses.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Payout addresses by id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Addresses {
    pub(crate) names: Vec<PayoutAddress>,
    #[serde(skip)]
    index: FnvMap<String, u32>,
}

impl Addresses {
    pub(crate) fn get(&self, address: &str) -> Option<u32> {
        self.index.get(address).copied()
    }

    /// The id of `address` and whether it is new.
    #[inline]
    pub(crate) fn intern(&mut self, address: &PayoutAddress) -> (u32, bool) {
        if let Some(id) = self.index.get(address.0.as_str()) {
            return (*id, false);
        }
        let id = self.names.len() as u32;
        self.names.push(address.clone());
        self.index.insert(address.0.clone(), id);
        (id, true)
    }

    pub(crate) fn name(&self, id: u32) -> &PayoutAddress {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, a)| (a.0.clone(), i as u32))
            .collect();
    }
}

/// Workers (an address and a worker name) by id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Workers {
    pub(crate) names: Vec<(u32, WorkerName)>,
    #[serde(skip)]
    index: FnvMap<u32, FnvMap<String, u32>>,
}

impl Workers {
    /// The id of `worker` under the address `address` and whether it is new.
    #[inline]
    pub(crate) fn intern(&mut self, address: u32, worker: &WorkerName) -> (u32, bool) {
        let by_name = self.index.entry(address).or_default();
        if let Some(id) = by_name.get(worker.0.as_str()) {
            return (*id, false);
        }
        let id = self.names.len() as u32;
        self.names.push((address, worker.clone()));
        by_name.insert(worker.0.clone(), id);
        (id, true)
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = FnvMap::default();
        for (i, (address, worker)) in self.names.iter().enumerate() {
            self.index
                .entry(*address)
                .or_default()
                .insert(worker.0.clone(), i as u32);
        }
    }
}

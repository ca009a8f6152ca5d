//! A small, thread-safe cache of HeavyHash matrices keyed by previous block hash.

use super::heavyhash::Matrix;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Matrices for the last few previous-block hashes. A pool needs the current block's and, for
/// shares on a just-replaced job, the previous one's; [`MatrixCache::DEFAULT_CAPACITY`] leaves
/// room for a short reorg or two chains. The least recently used entry is evicted.
#[derive(Debug)]
pub struct MatrixCache {
    capacity: usize,
    /// Most recently used last.
    entries: Mutex<VecDeque<([u8; 32], Arc<Matrix>)>>,
}

impl MatrixCache {
    pub const DEFAULT_CAPACITY: usize = 4;

    /// A cache of at most `capacity` matrices (at least one).
    pub fn new(capacity: usize) -> MatrixCache {
        let capacity = capacity.max(1);
        MatrixCache {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// The matrix for `prev_hash` (serialized order, `header[4..36]`), built on a miss. The
    /// matrix is built outside the lock, so a miss does not stall other threads' lookups; two
    /// threads missing at once may both build it, and both get equal matrices.
    pub fn get(&self, prev_hash: &[u8; 32]) -> Arc<Matrix> {
        if let Some(found) = self.lookup(prev_hash) {
            return found;
        }
        let built = Arc::new(Matrix::for_prev_hash(prev_hash));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pos) = entries.iter().position(|(k, _)| k == prev_hash) {
            return Arc::clone(&entries[pos].1);
        }
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back((*prev_hash, Arc::clone(&built)));
        built
    }

    /// Number of matrices held.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, prev_hash: &[u8; 32]) -> Option<Arc<Matrix>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let pos = entries.iter().position(|(k, _)| k == prev_hash)?;
        let entry = entries.remove(pos)?;
        let matrix = Arc::clone(&entry.1);
        entries.push_back(entry);
        Some(matrix)
    }
}

impl Default for MatrixCache {
    fn default() -> Self {
        MatrixCache::new(MatrixCache::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_share_one_matrix_and_old_entries_are_evicted() {
        let cache = MatrixCache::new(2);
        let a = cache.get(&[1u8; 32]);
        let a2 = cache.get(&[1u8; 32]);
        assert!(Arc::ptr_eq(&a, &a2));
        let _b = cache.get(&[2u8; 32]);
        // Touch a so that b is the least recently used.
        let _ = cache.get(&[1u8; 32]);
        let _c = cache.get(&[3u8; 32]);
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&a, &cache.get(&[1u8; 32])));
        assert_eq!(*cache.get(&[2u8; 32]), Matrix::for_prev_hash(&[2u8; 32]));
    }
}

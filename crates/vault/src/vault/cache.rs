//! `BoundedCache`: a map that holds at most a fixed number of entries and starts afresh when
//! it is full. The vault keeps its unwrapped data keys and its subject lookups in one each.
//!
//! Clearing everything at the limit, rather than evicting one entry, keeps the hot path a
//! plain map lookup; a miss only costs a reload. It never locks: callers put it behind
//! their own lock, with whatever guard they need (see `subjects::SubjectCache`).

use std::collections::HashMap;
use std::hash::Hash;

/// A map of at most `limit` entries; inserting into a full one clears it first.
pub(super) struct BoundedCache<K, V> {
    entries: HashMap<K, V>,
    limit: usize,
}

impl<K: Eq + Hash, V> BoundedCache<K, V> {
    /// An empty cache of at most `limit` entries.
    pub(super) fn new(limit: usize) -> Self {
        BoundedCache {
            entries: HashMap::new(),
            limit,
        }
    }

    /// The value cached for `key`.
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// Caches `value` for `key`; a full cache is cleared first.
    pub(super) fn insert(&mut self, key: K, value: V) {
        if self.entries.len() >= self.limit {
            self.entries.clear();
        }
        self.entries.insert(key, value);
    }

    /// Drops `key`.
    pub(super) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Keeps only the entries for which `keep` is true.
    pub(super) fn retain(&mut self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::BoundedCache;

    #[test]
    fn a_full_cache_starts_afresh() {
        let mut cache = BoundedCache::new(3);
        for key in 0..3 {
            cache.insert(key, key * 10);
        }
        assert_eq!(cache.get(&2), Some(&20));
        cache.insert(3, 30);
        assert_eq!(cache.get(&0), None, "cleared when full");
        assert_eq!(cache.get(&3), Some(&30), "the new entry is kept");
    }

    #[test]
    fn remove_and_retain_drop_entries() {
        let mut cache = BoundedCache::new(10);
        for key in 0..6 {
            cache.insert(key, key % 2);
        }
        cache.remove(&0);
        assert_eq!(cache.get(&0), None);
        cache.retain(|_, value| *value == 1);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&3), Some(&1));
    }
}

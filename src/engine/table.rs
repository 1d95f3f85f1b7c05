//! `IdTable`: live task records by id, in O(1).
//!
//! A hash map with a multiplicative hash of the id (ids are sequential integers: they need no
//! defence against crafted keys, only spreading), so insert, lookup and removal cost the same
//! whatever order tasks end in. After a burst the map gives its memory back, with room to
//! spare so a pool that hovers near the threshold does not reallocate on every task.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Spreads a sequential id over the hash's bits (Fibonacci hashing).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    #[inline]
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) struct IdTable<V> {
    map: HashMap<u64, V, BuildHasherDefault<IdHasher>>,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

/// Below this capacity nothing is given back.
const KEEP: usize = 1024;

impl<V> IdTable<V> {
    #[inline]
    pub(crate) fn insert(&mut self, id: u64, value: V) {
        self.map.insert(id, value);
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        self.map.get_mut(&id)
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        self.map.get(&id)
    }

    #[inline]
    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        let value = self.map.remove(&id);
        let cap = self.map.capacity();
        if cap > KEEP && self.map.len() < cap / 16 {
            // A burst has passed: give back most of it, keeping twice what is live (or more).
            self.map.shrink_to((cap / 4).max(KEEP));
        }
        value
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All entries, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.map.iter().map(|(&k, v)| (k, v))
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.map.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::IdTable;

    #[test]
    fn insert_get_remove_in_any_order() {
        let mut t = IdTable::default();
        for id in [5, 3, 4, 10] {
            t.insert(id, id * 2);
        }
        assert_eq!(t.ids().len(), 4);
        assert_eq!(t.get(3), Some(&6));
        assert_eq!(t.get(6), None);
        assert_eq!(t.remove(3), Some(6));
        assert_eq!(t.remove(3), None);
        *t.get_mut(10).unwrap() += 1;
        assert_eq!(t.get(10), Some(&21));
        let mut ids = t.ids();
        ids.sort_unstable();
        assert_eq!(ids, [4, 5, 10]);
    }

    #[test]
    fn a_long_lived_entry_does_not_pin_memory() {
        let mut t = IdTable::default();
        t.insert(0, "old");
        // A sliding window of 100 live tasks, ended in FIFO order, behind one that never ends.
        for id in 1..100_000u64 {
            t.insert(id, "new");
            if id > 100 {
                assert_eq!(t.remove(id - 100), Some("new"));
            }
        }
        assert_eq!(t.ids().len(), 101);
        assert!(t.map.capacity() < 2048, "capacity {}", t.map.capacity());
        assert_eq!(t.get(0), Some(&"old"));
    }

    #[test]
    fn a_burst_of_live_tasks_gives_its_memory_back() {
        let mut t = IdTable::default();
        for id in 0..200_000u64 {
            t.insert(id, ());
        }
        for id in 0..200_000u64 {
            t.remove(id);
        }
        assert!(t.is_empty());
        assert!(t.map.capacity() <= 2048, "capacity {}", t.map.capacity());
    }
}

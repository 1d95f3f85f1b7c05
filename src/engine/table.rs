//! `IdTable`: live task records by id, in O(1).
//!
//! The records sit densely in a `Vec` (removal swaps the last one in); an id finds its
//! record's index without hashing in the common case: ids are handed out in sequence and the
//! live ones sit in a sliding window, kept as a ring of indices at `id - base` (4 bytes a
//! slot). The few ids that fall out of it, a long-lived task far behind or an id far ahead,
//! find theirs in a hash map (a multiplicative hash: sequential ids need spreading, not
//! defence against crafted keys). The window moves its older half to the map once it is
//! long and mostly empty, so each id moves at most once (O(1) amortized, in any order of
//! ends), a long-lived task never pins the window's memory, and after a burst every part
//! gives its memory back, with room to spare so that a pool hovering near the threshold does
//! not reallocate on every task.

use std::collections::{HashMap, VecDeque};
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

/// An empty window slot.
const NONE: u32 = u32::MAX;

pub(crate) struct IdTable<V> {
    /// The records, with their ids, in no order.
    entries: Vec<(u64, V)>,
    /// Indices into `entries` of ids `base..base + window.len()` (`NONE`: no record); the
    /// front slot, if any, is taken.
    window: VecDeque<u32>,
    base: u64,
    /// Taken slots in `window`.
    in_window: usize,
    /// Indices of the records whose ids are outside the window.
    spill: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            window: VecDeque::new(),
            base: 0,
            in_window: 0,
            spill: HashMap::default(),
        }
    }
}

/// Below this capacity nothing is given back.
const KEEP: usize = 1024;
/// An insert at most this far past the window's end extends it (with empty slots between);
/// further ahead, it goes to the spill map.
const MAX_GAP: u64 = 64;
/// The window moves its older half out once it is longer than this and more than `SPARSE`
/// times its taken slots (ends come out of order: a pool's runners run in turns, so the live
/// ids of a busy pool spread over a few times their number).
const COMPACT_AT: usize = 4096;
const SPARSE: usize = 16;

/// Gives back most of a buffer that a burst left mostly empty.
macro_rules! give_back {
    ($buf:expr) => {{
        let cap = $buf.capacity();
        if cap > KEEP && $buf.len() < cap / 16 {
            // Keep four times what is live (or more).
            $buf.shrink_to((cap / 4).max(KEEP));
        }
    }};
}

impl<V> IdTable<V> {
    /// The window's slot of `id`, if the window covers it.
    #[inline]
    fn slot(&self, id: u64) -> Option<usize> {
        let off = id.wrapping_sub(self.base);
        (off < self.window.len() as u64).then_some(off as usize)
    }

    /// The index of `id`'s record. (An id inside the window's range may still be in the
    /// spill map: inserted far ahead, or before the window last started afresh.)
    #[inline]
    fn index(&self, id: u64) -> Option<usize> {
        if let Some(i) = self.slot(id) {
            let at = self.window[i];
            if at != NONE {
                return Some(at as usize);
            }
        }
        if self.spill.is_empty() {
            return None;
        }
        self.spill.get(&id).map(|&at| at as usize)
    }

    #[inline]
    pub(crate) fn insert(&mut self, id: u64, value: V) {
        debug_assert!(self.index(id).is_none(), "id {id} inserted twice");
        let at = u32::try_from(self.entries.len()).expect("fewer than 2^32 live tasks");
        self.entries.push((id, value));
        self.index_at(id, at);
    }

    /// Moves the record of `old` to id `new` in place (`new` not live): what a `remove` of
    /// `old` and an `insert` of its value under `new` would do, without moving any record.
    /// `None` (and no change) if `old` is not live.
    #[inline]
    pub(crate) fn rekey(&mut self, old: u64, new: u64) -> Option<&mut V> {
        debug_assert!(self.index(new).is_none(), "id {new} inserted twice");
        // The usual case: `new` is the next id in sequence and `old` is in the window. Its
        // slot empties and the window grows by `new`'s, the count of taken slots unchanged
        // (where `unindex` would start an emptied window afresh for `index_at` to refill).
        let end = self.base + self.window.len() as u64;
        if new == end && self.window.len() < COMPACT_AT {
            if let Some(i) = self.slot(old).filter(|&i| self.window[i] != NONE) {
                let at = std::mem::replace(&mut self.window[i], NONE);
                self.window.push_back(at);
                if i == 0 {
                    self.trim();
                }
                self.entries[at as usize].0 = new;
                return Some(&mut self.entries[at as usize].1);
            }
        }
        let at = self.unindex(old)?;
        self.entries[at].0 = new;
        self.index_at(new, at as u32);
        Some(&mut self.entries[at].1)
    }

    /// Points `id` at index `at` of `entries`.
    #[inline]
    fn index_at(&mut self, id: u64, at: u32) {
        let end = self.base + self.window.len() as u64;
        if id == end && self.in_window != 0 && self.window.len() < COMPACT_AT {
            // The next id in sequence (the common case): it extends the window.
            self.window.push_back(at);
            self.in_window += 1;
            return;
        }
        self.place(id, at);
    }

    /// Where [`index_at`](Self::index_at) puts the index `at` of `id` when it does not
    /// simply extend the window.
    #[inline(never)]
    fn place(&mut self, id: u64, at: u32) {
        if self.in_window == 0 {
            // An empty window starts afresh at this id.
            self.window.clear();
            self.base = id;
        }
        if let Some(i) = self.slot(id) {
            self.window[i] = at;
            self.in_window += 1;
            return;
        }
        let ahead = id.wrapping_sub(self.base + self.window.len() as u64);
        if id >= self.base && ahead <= MAX_GAP {
            for _ in 0..ahead {
                self.window.push_back(NONE);
            }
            self.window.push_back(at);
            self.in_window += 1;
            if self.window.len() > COMPACT_AT && self.window.len() > SPARSE * self.in_window {
                self.compact();
            }
        } else {
            self.spill.insert(id, at);
        }
    }

    /// Moves the window's older half out: its indices to the spill map, its empty slots
    /// away. (Each id moves once: amortized O(1) per insert.)
    #[cold]
    fn compact(&mut self) {
        for _ in 0..self.window.len() / 2 {
            if let Some(at) = self.window.pop_front().filter(|&at| at != NONE) {
                self.in_window -= 1;
                self.spill.insert(self.base, at);
            }
            self.base += 1;
        }
        self.trim();
    }

    /// Drops the empty slots at the window's front. (Not at its back: the next insert
    /// would only put them back.)
    #[inline]
    fn trim(&mut self) {
        while self.window.front() == Some(&NONE) {
            self.window.pop_front();
            self.base += 1;
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        let at = self.index(id)?;
        Some(&mut self.entries[at].1)
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        Some(&self.entries[self.index(id)?].1)
    }

    #[inline]
    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        let at = self.unindex(id)?;
        let (_, value) = self.entries.swap_remove(at);
        if let Some(&(moved, _)) = self.entries.get(at) {
            // The last record moved into the hole: point its id at its new place, where its
            // old place was written.
            let was = self.entries.len() as u32;
            match self.slot(moved).filter(|&i| self.window[i] == was) {
                Some(i) => self.window[i] = at as u32,
                None => *self.spill.get_mut(&moved).expect("a live id is indexed") = at as u32,
            }
        }
        give_back!(self.entries);
        Some(value)
    }

    /// Forgets where `id`'s record is; returns its index in `entries`, if it is live.
    #[inline]
    fn unindex(&mut self, id: u64) -> Option<usize> {
        let in_window = self.slot(id).filter(|&i| self.window[i] != NONE);
        match in_window {
            Some(i) => {
                let at = std::mem::replace(&mut self.window[i], NONE);
                self.in_window -= 1;
                if self.in_window == 0 {
                    // The window is empty: the next insert starts it afresh.
                    self.window.clear();
                    if self.window.capacity() > KEEP {
                        self.window.shrink_to(KEEP);
                    }
                } else if i == 0 {
                    self.trim();
                    give_back!(self.window);
                }
                Some(at as usize)
            }
            None if self.spill.is_empty() => None,
            None => {
                let at = self.spill.remove(&id)?;
                give_back!(self.spill);
                Some(at as usize)
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.entries.iter().map(|(id, v)| (*id, v))
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.iter().map(|(id, _)| id).collect()
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
        assert!(
            t.window.capacity() + t.spill.capacity() < 4096,
            "capacity {} + {}",
            t.window.capacity(),
            t.spill.capacity()
        );
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
        assert!(
            t.window.capacity() <= 2048,
            "capacity {}",
            t.window.capacity()
        );
        assert!(
            t.spill.capacity() <= 2048,
            "capacity {}",
            t.spill.capacity()
        );
    }

    /// A burst of live tasks ended in any order still gives its memory back.
    #[test]
    fn a_burst_ended_in_reverse_gives_its_memory_back() {
        let mut t = IdTable::default();
        for id in 0..200_000u64 {
            t.insert(id, ());
        }
        for id in (0..200_000u64).rev() {
            assert_eq!(t.remove(id), Some(()));
        }
        assert!(t.is_empty());
        assert!(
            t.window.capacity() <= 2048,
            "capacity {}",
            t.window.capacity()
        );
    }

    /// Ids inserted in any order (a group's reserved ids start late, some far ahead, some
    /// behind a window that started afresh), gets, and removals in any order: the table
    /// answers as a map would.
    #[test]
    fn it_answers_as_a_map_would() {
        use proptest::prelude::*;
        use std::collections::HashMap;
        #[derive(Debug, Clone)]
        enum Op {
            /// Insert an id near the last one inserted (this far after it; may be taken).
            Next(u8),
            /// Insert an id anywhere in the id space (if not live).
            Any(u16),
            /// Remove or get the k-th live id (modulo their number), or an unknown one.
            Remove(u16),
            Get(u16),
            /// Move the k-th live id's value (or an unknown id's) to the next unused id
            /// after the last one inserted (a map worker's next item).
            Rekey(u16, u8),
        }
        let op = prop_oneof![
            5 => any::<u8>().prop_map(|a| Op::Next(a % 4)),
            1 => any::<u8>().prop_map(Op::Next),
            2 => (0u16..3000).prop_map(Op::Any),
            5 => any::<u16>().prop_map(Op::Remove),
            2 => any::<u16>().prop_map(Op::Get),
            3 => (any::<u16>(), any::<u8>()).prop_map(|(k, a)| Op::Rekey(k, a % 4)),
        ];
        let config = ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(ops in proptest::collection::vec(op, 1..500))| {
            let mut t = IdTable::default();
            let mut m: HashMap<u64, u64> = HashMap::new();
            let mut last = 0u64;
            for op in ops {
                match op {
                    Op::Next(_) | Op::Any(_) => {
                        let id = match op {
                            Op::Next(a) => last + u64::from(a),
                            Op::Any(id) => u64::from(id),
                            _ => unreachable!(),
                        };
                        if let std::collections::hash_map::Entry::Vacant(e) = m.entry(id) {
                            e.insert(id * 3);
                            t.insert(id, id * 3);
                            last = id;
                        }
                    }
                    Op::Rekey(k, ahead) => {
                        let mut live: Vec<u64> = m.keys().copied().collect();
                        live.sort_unstable();
                        let old = if live.is_empty() { u64::from(k) } else { live[k as usize % live.len()] };
                        let mut new = last + 1 + u64::from(ahead);
                        while m.contains_key(&new) {
                            new += 1;
                        }
                        let moved = t.rekey(old, new).map(|v| *v);
                        prop_assert_eq!(moved, m.get(&old).copied());
                        if let Some(v) = m.remove(&old) {
                            m.insert(new, v);
                            last = new;
                        }
                    }
                    Op::Remove(k) | Op::Get(k) => {
                        let mut live: Vec<u64> = m.keys().copied().collect();
                        live.sort_unstable();
                        let id = if live.is_empty() { u64::from(k) } else { live[k as usize % live.len()] };
                        if matches!(op, Op::Remove(_)) {
                            prop_assert_eq!(t.remove(id), m.remove(&id));
                        } else {
                            prop_assert_eq!(t.get(id), m.get(&id));
                        }
                    }
                }
                prop_assert_eq!(t.is_empty(), m.is_empty());
            }
            for (&id, v) in &m {
                prop_assert_eq!(t.get(id), Some(v), "id {}", id);
            }
            let mut ids = t.ids();
            ids.sort_unstable();
            let mut want: Vec<u64> = m.keys().copied().collect();
            want.sort_unstable();
            prop_assert_eq!(ids, want);
        });
    }

    /// A window gone sparse moves its old entries out, and keeps every one of them.
    #[test]
    fn a_sparse_window_keeps_its_entries_when_it_moves_on() {
        let mut t = IdTable::default();
        let mut live = Vec::new();
        for id in 0..50_000u64 {
            t.insert(id, id);
            if id % 40 == 0 {
                live.push(id); // one in 40 lives on; the rest end three ids later
            }
            if id >= 3 && (id - 3) % 40 != 0 {
                assert_eq!(t.remove(id - 3), Some(id - 3));
            }
        }
        assert!(
            t.window.len() < 2 * super::COMPACT_AT,
            "the window moved on: {}",
            t.window.len()
        );
        assert!(!t.spill.is_empty(), "old entries moved out");
        for &id in &live {
            assert_eq!(t.get(id), Some(&id), "id {id}");
        }
        for &id in &live {
            assert_eq!(t.remove(id), Some(id));
        }
        assert!(t.iter().all(|(id, _)| id >= 49_997), "{:?}", t.ids());
    }
}

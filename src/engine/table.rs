//! `IdTable`: live task records by id, in O(1).
//!
//! Ids are handed out sequentially, so recent ones live in a window indexed by `id - base`.
//! When a long-lived task keeps the window's front occupied while everything after it ended,
//! the window turns sparse; its oldest entries then move to an overflow map, so memory follows
//! the number of live tasks, not the span of their ids.

use super::capacity::shrink_after_burst;
use std::collections::{HashMap, VecDeque};

pub(crate) struct IdTable<V> {
    base: u64,
    window: VecDeque<Option<V>>,
    in_window: usize,
    overflow: HashMap<u64, V>,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            base: 0,
            window: VecDeque::new(),
            in_window: 0,
            overflow: HashMap::new(),
        }
    }
}

impl<V> IdTable<V> {
    pub(crate) fn insert(&mut self, id: u64, value: V) {
        if id < self.base {
            self.overflow.insert(id, value);
            return;
        }
        if self.window.is_empty() {
            self.base = id;
        }
        let idx = (id - self.base) as usize;
        if idx == self.window.len() {
            // The common case: ids arrive in order.
            self.window.push_back(Some(value));
            self.in_window += 1;
            self.evict_if_sparse();
            return;
        }
        if idx >= self.window.len() {
            self.window.resize_with(idx + 1, || None);
        }
        if self.window[idx].replace(value).is_none() {
            self.in_window += 1;
        }
        self.evict_if_sparse();
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        match id.checked_sub(self.base) {
            Some(idx) => self.window.get_mut(idx as usize)?.as_mut(),
            None => self.overflow.get_mut(&id),
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        match id.checked_sub(self.base) {
            Some(idx) => self.window.get(idx as usize)?.as_ref(),
            None => self.overflow.get(&id),
        }
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        let Some(idx) = id.checked_sub(self.base) else {
            let value = self.overflow.remove(&id);
            let cap = self.overflow.capacity();
            if cap > 1024 && self.overflow.len() < cap / 8 {
                self.overflow.shrink_to(cap / 4);
            }
            return value;
        };
        let value = self.window.get_mut(idx as usize)?.take()?;
        self.in_window -= 1;
        while matches!(self.window.front(), Some(None)) {
            self.window.pop_front();
            self.base += 1;
        }
        while matches!(self.window.back(), Some(None)) {
            self.window.pop_back();
        }
        shrink_after_burst(&mut self.window);
        Some(value)
    }

    /// Moves the oldest window entries to the overflow map while the window is mostly holes.
    fn evict_if_sparse(&mut self) {
        if self.window.len() < 1024 || self.in_window * 8 >= self.window.len() {
            return;
        }
        while self.in_window * 2 < self.window.len() {
            match self.window.pop_front() {
                Some(Some(v)) => {
                    self.overflow.insert(self.base, v);
                    self.in_window -= 1;
                }
                Some(None) => {}
                None => break,
            }
            self.base += 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.in_window + self.overflow.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let base = self.base;
        self.window
            .iter()
            .enumerate()
            .filter_map(move |(i, v)| v.as_ref().map(|v| (base + i as u64, v)))
            .chain(self.overflow.iter().map(|(&k, v)| (k, v)))
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
        assert_eq!(t.len(), 4);
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
        assert_eq!(t.len(), 101);
        assert_eq!(t.get(99_999), Some(&"new"));
        assert!(
            t.window.len() < 2048,
            "window stayed small: {}",
            t.window.len()
        );
        assert_eq!(t.get(0), Some(&"old"));
        assert_eq!(t.remove(0), Some("old"));
        for id in 99_900..100_000 {
            assert_eq!(t.remove(id), Some("new"));
        }
        assert!(t.is_empty());
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
    }
}

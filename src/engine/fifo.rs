//! A FIFO keyed by task id, for the loose tasks waiting for a slot, with O(1) removal by ticket and O(log n) lookup by
//! key (task id), so cancelling queued work never scans the queue.
//!
//! Keys mostly come in order (ids are handed out in sequence); one that comes below the
//! newest (a retried task queuing again under its first id) waits in a small ordered map
//! beside the ring, and leaves it by its key's turn: the FIFO's order stays the ids' order.

use super::capacity::shrink_after_burst;
use std::collections::{BTreeMap, VecDeque};

/// What a FIFO holds: an item that knows its key, with an empty form that keeps the key of
/// the item it replaced (the ring stays sorted for [`Fifo::find`]), so the ring stores no
/// key and no tag beside the item: a queued task's entry is its fat pointer alone, 16 bytes
/// (its key is in its cell).
pub(crate) trait Slot {
    fn vacant(key: u64) -> Self;
    fn is_vacant(&self) -> bool;
    fn key(&self) -> u64;
}

pub(crate) struct Fifo<T> {
    /// Ticket of `items[0]`.
    head: u64,
    /// Keys never decrease from front to back; vacated slots keep theirs.
    items: VecDeque<T>,
    /// The key of `items`' last entry, while it has one (read on every push, without asking
    /// the item).
    back_key: u64,
    /// Items pushed under a key below the newest key (by key; keys here are distinct).
    late: BTreeMap<u64, T>,
    /// Live items in `items` and `late`.
    live: usize,
}

/// The tickets of `late` items: their key with this bit set (a ring's ticket, counting pops,
/// never reaches it).
const LATE: u64 = 1 << 63;

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Self {
            head: 0,
            items: VecDeque::new(),
            back_key: 0,
            late: BTreeMap::new(),
            live: 0,
        }
    }
}

impl<T: Slot> Fifo<T> {
    /// Adds `item` under `key`, in its key's place; returns its ticket. A key below the
    /// newest must not be in the FIFO already.
    pub(crate) fn push(&mut self, key: u64, item: T) -> u64 {
        debug_assert!(!item.is_vacant());
        debug_assert_eq!(item.key(), key, "an item is pushed under its own key");
        if !self.items.is_empty() && self.back_key > key {
            debug_assert!(key < LATE, "keys stay below the late tickets' bit");
            let before = self.late.insert(key, item);
            debug_assert!(before.is_none(), "key {key} pushed twice out of order");
            self.live += 1;
            return LATE | key;
        }
        self.items.push_back(item);
        self.back_key = key;
        self.live += 1;
        self.head + self.items.len() as u64 - 1
    }

    /// The key of the oldest live item in the ring.
    fn front_key(&self) -> Option<u64> {
        self.items
            .iter()
            .find(|item| !item.is_vacant())
            .map(Slot::key)
    }

    /// Removes and returns the oldest item with its key.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
        if !self.late.is_empty() {
            return self.pop_with_late();
        }
        self.pop_ring()
    }

    /// [`pop`](Self::pop) while items wait in `late` (retried tasks): the lower key goes.
    #[inline(never)]
    fn pop_with_late(&mut self) -> Option<(u64, T)> {
        if let Some((&late, _)) = self.late.first_key_value() {
            if self.front_key().is_none_or(|k| late < k) {
                self.live -= 1;
                return self.late.pop_first();
            }
        }
        self.pop_ring()
    }

    #[inline]
    fn pop_ring(&mut self) -> Option<(u64, T)> {
        while let Some(item) = self.items.pop_front() {
            self.head += 1;
            if !item.is_vacant() {
                self.live -= 1;
                shrink_after_burst(&mut self.items);
                return Some((item.key(), item));
            }
        }
        None
    }

    /// Removes the item with `ticket`, wherever it is.
    pub(crate) fn take(&mut self, ticket: u64) -> Option<T> {
        if ticket & LATE != 0 {
            let item = self.late.remove(&(ticket & !LATE))?;
            self.live -= 1;
            return Some(item);
        }
        let idx = usize::try_from(ticket.checked_sub(self.head)?).ok()?;
        let slot = self.items.get_mut(idx)?;
        if slot.is_vacant() {
            return None;
        }
        let key = slot.key();
        let item = std::mem::replace(slot, T::vacant(key));
        self.live -= 1;
        // Trim vacated slots at the front so memory follows the live count.
        while self.items.front().is_some_and(Slot::is_vacant) {
            self.items.pop_front();
            self.head += 1;
        }
        shrink_after_burst(&mut self.items);
        Some(item)
    }

    /// The ticket of the live item under `key` that matches `pred`.
    pub(crate) fn find(&self, key: u64, pred: impl Fn(&T) -> bool) -> Option<u64> {
        if self.late.get(&key).is_some_and(&pred) {
            return Some(LATE | key);
        }
        let start = self.items.partition_point(|item| item.key() < key);
        self.items
            .range(start..)
            .take_while(|item| item.key() == key)
            .position(|item| !item.is_vacant() && pred(item))
            .map(|i| self.head + (start + i) as u64)
    }

    /// Live items with their keys, oldest (lowest key) first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let mut ring = self
            .items
            .iter()
            .filter(|item| !item.is_vacant())
            .map(|item| (item.key(), item))
            .peekable();
        let mut late = self.late.iter().map(|(k, item)| (*k, item)).peekable();
        // Both run in key order: merge them.
        std::iter::from_fn(move || match (ring.peek(), late.peek()) {
            (Some((r, _)), Some((l, _))) if l < r => late.next(),
            (Some(_), _) => ring.next(),
            (None, _) => late.next(),
        })
    }

    /// The newest (highest) key of a live item.
    pub(crate) fn newest(&self) -> Option<u64> {
        let ring = self
            .items
            .iter()
            .rev()
            .find(|item| !item.is_vacant())
            .map(Slot::key);
        ring.max(self.late.last_key_value().map(|(k, _)| *k))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::{Fifo, Slot};

    /// A test item: a key and a letter (none once vacated).
    #[derive(Debug, PartialEq, Clone, Copy)]
    pub(crate) struct K(pub(crate) u64, pub(crate) Option<char>);

    impl Slot for K {
        fn vacant(key: u64) -> Self {
            K(key, None)
        }
        fn is_vacant(&self) -> bool {
            self.1.is_none()
        }
        fn key(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn fifo_with_removal_and_lookup() {
        let mut q = Fifo::default();
        let a = q.push(0, K(0, Some('a')));
        let w = q.push(1, K(1, Some('w')));
        let b = q.push(1, K(1, Some('b')));
        let c = q.push(2, K(2, Some('c')));
        assert_eq!(q.find(1, |x| x.1 == Some('b')), Some(b));
        assert_eq!(q.find(1, |x| x.1 == Some('w')), Some(w));
        assert_eq!(q.find(3, |_| true), None);
        assert_eq!(q.take(b).map(|k| k.1), Some(Some('b')));
        assert_eq!(q.take(b), None);
        assert_eq!(q.find(1, |x| x.1 == Some('b')), None);
        assert_eq!(q.pop(), Some((0, K(0, Some('a')))));
        assert_eq!(q.take(a), None);
        assert_eq!(q.iter().filter_map(|(_, x)| x.1).collect::<String>(), "wc");
        assert_eq!(q.take(w).map(|k| k.1), Some(Some('w')));
        assert_eq!(q.take(c).map(|k| k.1), Some(Some('c')));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        let d = q.push(5, K(5, Some('d')));
        assert_eq!(q.find(5, |_| true), Some(d));
    }

    /// A vacated slot keeps its key: lookups still find what lies beyond holes.
    #[test]
    fn holes_keep_the_ring_sorted() {
        let mut q = Fifo::default();
        let t: Vec<u64> = (1..=6).map(|i| q.push(i, K(i, Some('x')))).collect();
        assert!(q.take(t[1]).is_some());
        assert!(q.take(t[2]).is_some());
        assert!(q.take(t[4]).is_some());
        for (i, ticket) in [(1, t[0]), (4, t[3]), (6, t[5])] {
            assert_eq!(q.find(i, |_| true), Some(ticket), "key {i}");
        }
        for gone in [2, 3, 5] {
            assert_eq!(q.find(gone, |_| true), None, "key {gone}");
        }
        let keys: Vec<u64> = q.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [1, 4, 6]);
        assert_eq!(q.newest(), Some(6));
    }

    #[test]
    fn a_drained_backlog_gives_its_memory_back() {
        let mut q = Fifo::default();
        for i in 0..200_000u64 {
            q.push(i, K(i, Some('x')));
        }
        while q.pop().is_some() {}
        assert!(
            q.items.capacity() <= 2048,
            "capacity {}",
            q.items.capacity()
        );
    }

    /// A key that comes below the newest (a retried task queuing again under its first id)
    /// takes its key's place: popped in key order, found and taken by its ticket.
    #[test]
    fn a_late_key_takes_its_place() {
        let mut q = Fifo::default();
        q.push(1, K(1, Some('a')));
        q.push(5, K(5, Some('e')));
        q.push(7, K(7, Some('g')));
        let late = q.push(3, K(3, Some('c')));
        q.push(2, K(2, Some('b')));
        assert_eq!(q.len(), 5);
        assert_eq!(q.find(3, |_| true), Some(late));
        assert_eq!(q.newest(), Some(7));
        let keys: Vec<u64> = q.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [1, 2, 3, 5, 7]);
        assert_eq!(q.pop(), Some((1, K(1, Some('a')))));
        assert_eq!(q.pop(), Some((2, K(2, Some('b')))));
        assert_eq!(q.take(late).map(|k| k.1), Some(Some('c')));
        assert_eq!(q.take(late), None);
        assert_eq!(q.find(3, |_| true), None);
        q.push(4, K(4, Some('d')));
        assert_eq!(q.pop(), Some((4, K(4, Some('d')))));
        assert_eq!(q.pop(), Some((5, K(5, Some('e')))));
        assert_eq!(q.pop(), Some((7, K(7, Some('g')))));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }
}

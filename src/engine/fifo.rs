//! A FIFO keyed by task id, for the loose tasks waiting for a slot, with O(1) removal by ticket and O(log n) lookup by
//! key (task id), so cancelling queued work never scans the queue.
//!
//! Keys mostly come in order (ids are handed out in sequence); one that comes below the
//! newest (a retried task queuing again under its first id) waits in a small ordered map
//! beside the ring, and leaves it by its key's turn: the FIFO's order stays the ids' order.

use super::capacity::shrink_after_burst;
use std::collections::{BTreeMap, VecDeque};

/// What a FIFO holds: an item with an empty form of its own, so that a vacated slot needs no
/// tag beside the item (a queued task's entry stays its key and a fat pointer: 24 bytes, not
/// 32).
pub(crate) trait Slot {
    fn vacant() -> Self;
    fn is_vacant(&self) -> bool;
}

impl<T> Slot for Option<T> {
    fn vacant() -> Self {
        None
    }
    fn is_vacant(&self) -> bool {
        self.is_none()
    }
}

pub(crate) struct Fifo<T> {
    /// Ticket of `items[0]`.
    head: u64,
    /// `(key, item)`; keys never decrease from front to back, vacated slots keep theirs.
    items: VecDeque<(u64, T)>,
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
        if self.items.back().is_some_and(|(k, _)| *k > key) {
            debug_assert!(key < LATE, "keys stay below the late tickets' bit");
            let before = self.late.insert(key, item);
            debug_assert!(before.is_none(), "key {key} pushed twice out of order");
            self.live += 1;
            return LATE | key;
        }
        self.items.push_back((key, item));
        self.live += 1;
        self.head + self.items.len() as u64 - 1
    }

    /// The key of the oldest live item in the ring.
    fn front_key(&self) -> Option<u64> {
        self.items
            .iter()
            .find(|(_, item)| !item.is_vacant())
            .map(|(k, _)| *k)
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
        while let Some((key, item)) = self.items.pop_front() {
            self.head += 1;
            if !item.is_vacant() {
                self.live -= 1;
                shrink_after_burst(&mut self.items);
                return Some((key, item));
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
        let slot = &mut self.items.get_mut(idx)?.1;
        if slot.is_vacant() {
            return None;
        }
        let item = std::mem::replace(slot, T::vacant());
        self.live -= 1;
        // Trim vacated slots at the front so memory follows the live count.
        while self.items.front().is_some_and(|(_, item)| item.is_vacant()) {
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
        let start = self.items.partition_point(|(k, _)| *k < key);
        self.items
            .range(start..)
            .take_while(|(k, _)| *k == key)
            .position(|(_, item)| !item.is_vacant() && pred(item))
            .map(|i| self.head + (start + i) as u64)
    }

    /// Live items with their keys, oldest (lowest key) first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let mut ring = self
            .items
            .iter()
            .filter(|(_, item)| !item.is_vacant())
            .map(|(k, item)| (*k, item))
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
            .find(|(_, item)| !item.is_vacant())
            .map(|(k, _)| *k);
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
mod tests {
    use super::Fifo;

    #[test]
    fn fifo_with_removal_and_lookup() {
        let mut q = Fifo::default();
        let a = q.push(0, Some('a'));
        let w = q.push(1, Some('w'));
        let b = q.push(1, Some('b'));
        let c = q.push(2, Some('c'));
        assert_eq!(q.find(1, |x| *x == Some('b')), Some(b));
        assert_eq!(q.find(1, |x| *x == Some('w')), Some(w));
        assert_eq!(q.find(3, |_| true), None);
        assert_eq!(q.take(b), Some(Some('b')));
        assert_eq!(q.take(b), None);
        assert_eq!(q.find(1, |x| *x == Some('b')), None);
        assert_eq!(q.pop(), Some((0, Some('a'))));
        assert_eq!(q.take(a), None);
        assert_eq!(q.iter().filter_map(|(_, x)| *x).collect::<String>(), "wc");
        assert_eq!(q.take(w), Some(Some('w')));
        assert_eq!(q.take(c), Some(Some('c')));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        let d = q.push(5, Some('d'));
        assert_eq!(q.find(5, |_| true), Some(d));
    }

    #[test]
    fn a_drained_backlog_gives_its_memory_back() {
        let mut q = Fifo::default();
        for i in 0..200_000u64 {
            q.push(i, Some(i));
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
        q.push(1, Some('a'));
        q.push(5, Some('e'));
        q.push(7, Some('g'));
        let late = q.push(3, Some('c'));
        q.push(2, Some('b'));
        assert_eq!(q.len(), 5);
        assert_eq!(q.find(3, |_| true), Some(late));
        assert_eq!(q.newest(), Some(7));
        let keys: Vec<u64> = q.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [1, 2, 3, 5, 7]);
        assert_eq!(q.pop(), Some((1, Some('a'))));
        assert_eq!(q.pop(), Some((2, Some('b'))));
        assert_eq!(q.take(late), Some(Some('c')));
        assert_eq!(q.take(late), None);
        assert_eq!(q.find(3, |_| true), None);
        q.push(4, Some('d'));
        assert_eq!(q.pop(), Some((4, Some('d'))));
        assert_eq!(q.pop(), Some((5, Some('e'))));
        assert_eq!(q.pop(), Some((7, Some('g'))));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }
}

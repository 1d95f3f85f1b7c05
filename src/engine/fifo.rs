//! A FIFO keyed by task id, for the loose tasks waiting for a slot, with O(1) removal by ticket and O(log n) lookup by
//! key (task id), so cancelling queued work never scans the queue.

use super::capacity::shrink_after_burst;
use std::collections::VecDeque;

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
    live: usize,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Self {
            head: 0,
            items: VecDeque::new(),
            live: 0,
        }
    }
}

impl<T: Slot> Fifo<T> {
    /// Appends `item` under `key` (not smaller than any key before it); returns its ticket.
    pub(crate) fn push(&mut self, key: u64, item: T) -> u64 {
        debug_assert!(self.items.back().is_none_or(|(k, _)| *k <= key));
        debug_assert!(!item.is_vacant());
        self.items.push_back((key, item));
        self.live += 1;
        self.head + self.items.len() as u64 - 1
    }

    /// Removes and returns the oldest item with its key.
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
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
        let start = self.items.partition_point(|(k, _)| *k < key);
        self.items
            .range(start..)
            .take_while(|(k, _)| *k == key)
            .position(|(_, item)| !item.is_vacant() && pred(item))
            .map(|i| self.head + (start + i) as u64)
    }

    /// Live items with their keys, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        self.items
            .iter()
            .filter(|(_, item)| !item.is_vacant())
            .map(|(k, item)| (*k, item))
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
}

//! A FIFO keyed by task id, for the loose tasks waiting for a slot, with O(1) removal by ticket and O(log n) lookup by
//! key (task id), so cancelling queued work never scans the queue.

use super::capacity::shrink_after_burst;
use std::collections::VecDeque;

pub(crate) struct Fifo<T> {
    /// Ticket of `items[0]`.
    head: u64,
    /// `(key, item)`; keys never decrease from front to back, vacated slots keep theirs.
    items: VecDeque<(u64, Option<T>)>,
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

impl<T> Fifo<T> {
    /// Appends `item` under `key` (not smaller than any key before it); returns its ticket.
    pub(crate) fn push(&mut self, key: u64, item: T) -> u64 {
        debug_assert!(self.items.back().is_none_or(|(k, _)| *k <= key));
        self.items.push_back((key, Some(item)));
        self.live += 1;
        self.head + self.items.len() as u64 - 1
    }

    /// Removes and returns the oldest item with its key.
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
        while let Some((key, slot)) = self.items.pop_front() {
            self.head += 1;
            if let Some(item) = slot {
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
        let item = self.items.get_mut(idx)?.1.take()?;
        self.live -= 1;
        // Trim vacated slots at the front so memory follows the live count.
        while matches!(self.items.front(), Some((_, None))) {
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
            .position(|(_, item)| item.as_ref().is_some_and(&pred))
            .map(|i| self.head + (start + i) as u64)
    }

    /// Live items with their keys, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        self.items
            .iter()
            .filter_map(|(k, item)| item.as_ref().map(|i| (*k, i)))
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
        let a = q.push(0, 'a');
        let w = q.push(1, 'w');
        let b = q.push(1, 'b');
        let c = q.push(2, 'c');
        assert_eq!(q.find(1, |x| *x == 'b'), Some(b));
        assert_eq!(q.find(1, |x| *x == 'w'), Some(w));
        assert_eq!(q.find(3, |_| true), None);
        assert_eq!(q.take(b), Some('b'));
        assert_eq!(q.take(b), None);
        assert_eq!(q.find(1, |x| *x == 'b'), None);
        assert_eq!(q.pop(), Some((0, 'a')));
        assert_eq!(q.take(a), None);
        assert_eq!(q.iter().map(|(_, x)| *x).collect::<String>(), "wc");
        assert_eq!(q.take(w), Some('w'));
        assert_eq!(q.take(c), Some('c'));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        let d = q.push(5, 'd');
        assert_eq!(q.find(5, |_| true), Some(d));
    }

    #[test]
    fn a_drained_backlog_gives_its_memory_back() {
        let mut q = Fifo::default();
        for i in 0..200_000u64 {
            q.push(i, i);
        }
        while q.pop().is_some() {}
        assert!(
            q.items.capacity() <= 2048,
            "capacity {}",
            q.items.capacity()
        );
    }
}

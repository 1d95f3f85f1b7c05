//! A FIFO queue with O(1) removal by ticket, for cancelling queued work without a scan.

use std::collections::VecDeque;

pub(crate) struct Queue<T> {
    /// Ticket of `items[0]`.
    head: u64,
    items: VecDeque<Option<T>>,
    live: usize,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            head: 0,
            items: VecDeque::new(),
            live: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Appends `item`; returns its ticket.
    pub(crate) fn push(&mut self, item: T) -> u64 {
        self.items.push_back(Some(item));
        self.live += 1;
        self.head + self.items.len() as u64 - 1
    }

    /// Removes and returns the oldest item.
    pub(crate) fn pop(&mut self) -> Option<T> {
        while let Some(slot) = self.items.pop_front() {
            self.head += 1;
            if let Some(item) = slot {
                self.live -= 1;
                return Some(item);
            }
        }
        None
    }

    /// Removes the item with `ticket`, wherever it is.
    pub(crate) fn take(&mut self, ticket: u64) -> Option<T> {
        let idx = usize::try_from(ticket.checked_sub(self.head)?).ok()?;
        let item = self.items.get_mut(idx)?.take()?;
        self.live -= 1;
        // Trim vacated slots at the front so memory follows the live count.
        while matches!(self.items.front(), Some(None)) {
            self.items.pop_front();
            self.head += 1;
        }
        Some(item)
    }

    /// Removes every item matching `pred`; returns how many. O(n): for rare bulk cancels.
    pub(crate) fn remove_where(&mut self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let mut removed = 0;
        for slot in &mut self.items {
            if slot.as_ref().is_some_and(&mut pred) {
                *slot = None;
                removed += 1;
            }
        }
        self.live -= removed;
        removed
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn fifo_with_removal() {
        let mut q = Queue::default();
        let a = q.push('a');
        let b = q.push('b');
        let c = q.push('c');
        assert_eq!(q.take(b), Some('b'));
        assert_eq!(q.take(b), None);
        assert_eq!(q.pop(), Some('a'));
        assert_eq!(q.take(a), None);
        assert!(!q.is_empty());
        assert_eq!(q.take(c), Some('c'));
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        let d = q.push('d');
        assert_eq!(q.take(d), Some('d'));
    }
}

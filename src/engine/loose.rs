//! The loose tasks waiting for a slot: one FIFO per priority, each a lane of its own.
//!
//! Priority 0 (every task that sets none) lives inline, so the common path is the one FIFO it
//! always was; other priorities get a level in a small ordered map when first used, dropped
//! again once empty and out of the turns.

use super::fifo::{Fifo, Slot};
use std::collections::BTreeMap;

/// One priority's waiting tasks.
pub(crate) struct Level<T> {
    pub(crate) fifo: Fifo<T>,
    /// In the turns ring (see `lanes::Turns`).
    pub(crate) in_turns: bool,
    /// Starts given to other lanes since it last got a slot, while it waited (ageing).
    pub(crate) passed_over: u64,
    /// Its stride-scheduling pass (see `shares.rs`).
    pub(crate) pass: u64,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Self {
            fifo: Fifo::default(),
            in_turns: false,
            passed_over: 0,
            pass: 0,
        }
    }
}

/// Waiting loose tasks by priority.
pub(crate) struct LooseQueue<T> {
    zero: Level<T>,
    others: BTreeMap<i32, Level<T>>,
    others_len: usize,
}

impl<T> Default for LooseQueue<T> {
    fn default() -> Self {
        Self {
            zero: Level::default(),
            others: BTreeMap::new(),
            others_len: 0,
        }
    }
}

impl<T: Slot> LooseQueue<T> {
    #[inline]
    pub(crate) fn level(&self, priority: i32) -> Option<&Level<T>> {
        if priority == 0 {
            Some(&self.zero)
        } else {
            self.others.get(&priority)
        }
    }

    #[inline]
    pub(crate) fn level_mut(&mut self, priority: i32) -> &mut Level<T> {
        if priority == 0 {
            &mut self.zero
        } else {
            self.others.entry(priority).or_default()
        }
    }

    /// Adds a task under its id, in its id's place (a retried task queues again under its
    /// first id); returns its level.
    #[inline]
    pub(crate) fn push(&mut self, priority: i32, id: u64, task: T) -> &mut Level<T> {
        if priority != 0 {
            self.others_len += 1;
        }
        let level = self.level_mut(priority);
        level.fifo.push(id, task);
        level
    }

    /// The oldest task of a priority, taken (it starts now).
    #[inline]
    pub(crate) fn pop(&mut self, priority: i32) -> Option<(u64, T)> {
        if priority == 0 {
            return self.zero.fifo.pop();
        }
        let popped = self.others.get_mut(&priority)?.fifo.pop();
        if popped.is_some() {
            self.others_len -= 1;
        }
        popped
    }

    /// Where task `id` waits: its priority and ticket.
    pub(crate) fn find(&self, id: u64) -> Option<(i32, u64)> {
        if let Some(t) = self.zero.fifo.find(id, |_| true) {
            return Some((0, t));
        }
        if self.others_len == 0 {
            return None;
        }
        self.others
            .iter()
            .find_map(|(p, l)| l.fifo.find(id, |_| true).map(|t| (*p, t)))
    }

    /// Takes the task at `ticket` of `priority` out (it is cancelled or shed).
    pub(crate) fn take(&mut self, priority: i32, ticket: u64) -> Option<T> {
        if priority == 0 {
            return self.zero.fifo.take(ticket);
        }
        let taken = self.others.get_mut(&priority)?.fifo.take(ticket);
        if taken.is_some() {
            self.others_len -= 1;
        }
        taken
    }

    /// A level that left the turns and has nothing waiting is forgotten.
    pub(crate) fn forget_if_idle(&mut self, priority: i32) {
        if priority != 0 {
            if let Some(l) = self.others.get(&priority) {
                if !l.in_turns && l.fifo.is_empty() {
                    self.others.remove(&priority);
                }
            }
        }
    }

    /// Every waiting task with its id, level by level (not in id order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.zero
            .fifo
            .iter()
            .chain(self.others.values().flat_map(|l| l.fifo.iter()))
    }

    /// Waiting tasks with ids from `from` on, at most `max` of each priority (so the first
    /// `max` by id are among them).
    pub(crate) fn iter_from(&self, from: u64, max: usize) -> impl Iterator<Item = (u64, &T)> {
        fn level<T: Slot>(l: &Level<T>, from: u64, max: usize) -> impl Iterator<Item = (u64, &T)> {
            l.fifo.iter().filter(move |(id, _)| *id >= from).take(max)
        }
        level(&self.zero, from, max)
            .chain(self.others.values().flat_map(move |l| level(l, from, max)))
    }

    /// The newest waiting task's id.
    pub(crate) fn newest(&self) -> Option<u64> {
        let zero = self.zero.fifo.newest();
        if self.others_len == 0 {
            return zero;
        }
        self.others
            .values()
            .filter_map(|l| l.fifo.newest())
            .chain(zero)
            .max()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.zero.fifo.is_empty() && self.others_len == 0
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.zero.fifo.len() + self.others_len
    }
}

#[cfg(test)]
mod tests {
    use super::super::fifo::tests::K;
    use super::LooseQueue;

    #[test]
    fn levels_keep_fifo_order_and_find_any_task() {
        let mut q = LooseQueue::default();
        q.push(0, 1, K(1, Some('a')));
        q.push(5, 2, K(2, Some('b')));
        q.push(0, 3, K(3, Some('c')));
        q.push(-1, 4, K(4, Some('d')));
        assert_eq!(q.len(), 4);
        assert_eq!(q.newest(), Some(4));
        assert_eq!(q.pop(5), Some((2, K(2, Some('b')))));
        assert_eq!(q.pop(5), None);
        q.forget_if_idle(5);
        assert!(q.level(5).is_none());
        let (p, t) = q.find(4).unwrap();
        assert_eq!(p, -1);
        assert_eq!(q.take(p, t).map(|k| k.1), Some(Some('d')));
        assert_eq!(q.find(4), None);
        assert_eq!(q.pop(0), Some((1, K(1, Some('a')))));
        let ids: Vec<u64> = q.iter().map(|(k, _)| k).collect();
        assert_eq!(ids, [3]);
        assert_eq!(q.len(), 1);
        assert!(!q.is_empty());
        assert_eq!(q.pop(0), Some((3, K(3, Some('c')))));
        assert!(q.is_empty());
    }
}

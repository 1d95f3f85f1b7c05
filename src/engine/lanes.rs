//! Where work waits for a slot, and whose turn it is.
//!
//! Waiting work is split into *lanes*: one per priority for the loose tasks (`spawn`,
//! `spawn_queued`, `exec`: a FIFO each, in submission order) and one per group (`map`,
//! `apply`, `SimpleTaskPool::start`: its items, in input order). A slot that frees goes to
//! the lane whose turn it is (`shares.rs`: ageing, then priority, then the fewest slots held
//! for its weight, then the earliest in [`Turns`]); the lane served then moves to the back.
//! With equal priorities and weights, lanes that compete for the pool converge on equal
//! shares of its slots (max-min fairness), and each gets a slot at least once every `k`
//! starts, `k` being the number of lanes with work waiting, however long each lane's backlog
//! is.

use std::collections::{BTreeSet, VecDeque};

/// A group's identity in its pool: never reused, unlike its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct GroupKey(pub(crate) u64);

/// A lane: the loose tasks of one priority, or one group's items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    Loose(i32),
    Group(GroupKey),
}

/// Lanes with work waiting for a slot, in turn order. A lane is in the ring at most once
/// (its owner keeps an `in_turns` flag); a lane that no longer wants a slot is dropped from
/// the ring when its turn comes.
#[derive(Default)]
pub(crate) struct Turns {
    ring: VecDeque<Lane>,
}

impl Turns {
    /// Puts `lane` at the back (its owner saw it was not in the ring).
    pub(crate) fn join(&mut self, lane: Lane) {
        self.ring.push_back(lane);
    }

    /// The lane at `i` in turn order.
    pub(crate) fn get(&self, i: usize) -> Option<Lane> {
        self.ring.get(i).copied()
    }

    /// The lane at `i` leaves the ring (it wants nothing more for now).
    pub(crate) fn leave(&mut self, i: usize) -> Option<Lane> {
        self.ring.remove(i)
    }

    /// The lane at `i` took its turn: it goes to the back.
    pub(crate) fn took_turn(&mut self, i: usize) {
        if let Some(lane) = self.ring.remove(i) {
            self.ring.push_back(lane);
        }
    }

    /// Forgets a lane wherever it is (its group ended).
    pub(crate) fn remove(&mut self, lane: Lane) {
        self.ring.retain(|l| *l != lane);
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}

/// The ids a `SimpleTaskPool::start` reserved and that have not started: `next..end`, less
/// those cancelled while queued. Kept as a range, so `start(n)` costs the same for any `n`.
#[derive(Debug, Default)]
pub(crate) struct Reserved {
    next: u64,
    end: u64,
    /// Cancelled ids inside `next..end`.
    holes: BTreeSet<u64>,
}

impl Reserved {
    pub(crate) fn new(first: u64, count: u64) -> Self {
        Self {
            next: first,
            end: first + count,
            holes: BTreeSet::new(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.end - self.next - self.holes.len() as u64
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        (self.next..self.end).contains(&id) && !self.holes.contains(&id)
    }

    /// The oldest waiting id, taken (it starts now).
    pub(crate) fn take_oldest(&mut self) -> Option<u64> {
        while self.next < self.end {
            let id = self.next;
            self.next += 1;
            if !self.holes.remove(&id) {
                return Some(id);
            }
        }
        None
    }

    /// The newest waiting id, taken (it is being stopped).
    pub(crate) fn take_newest(&mut self) -> Option<u64> {
        while self.next < self.end {
            self.end -= 1;
            let id = self.end;
            if !self.holes.remove(&id) {
                return Some(id);
            }
        }
        None
    }

    /// Takes `id` out wherever it is (it is being cancelled); whether it was waiting.
    pub(crate) fn take(&mut self, id: u64) -> bool {
        if !self.contains(id) {
            return false;
        }
        if id == self.next {
            self.take_oldest();
        } else if id + 1 == self.end {
            self.take_newest();
        } else {
            self.holes.insert(id);
        }
        true
    }

    /// Takes every waiting id (the group was cancelled); returns them as ranges' worth.
    pub(crate) fn take_all(&mut self) -> Reserved {
        std::mem::replace(
            self,
            Reserved {
                next: self.end,
                end: self.end,
                holes: BTreeSet::new(),
            },
        )
    }

    /// Waiting ids, oldest first, from `from` on.
    pub(crate) fn iter_from(&self, from: u64) -> impl DoubleEndedIterator<Item = u64> + '_ {
        (self.next.max(from)..self.end).filter(|id| !self.holes.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::{Lane, Reserved, Turns};
    use crate::engine::lanes::GroupKey;

    #[test]
    fn lanes_take_turns() {
        let mut t = Turns::default();
        t.join(Lane::Loose(0));
        t.join(Lane::Group(GroupKey(1)));
        assert_eq!(t.get(0), Some(Lane::Loose(0)));
        t.took_turn(0);
        assert_eq!(t.get(0), Some(Lane::Group(GroupKey(1))));
        t.took_turn(0);
        assert_eq!(t.get(0), Some(Lane::Loose(0)));
        assert_eq!(t.leave(0), Some(Lane::Loose(0)));
        assert_eq!(t.len(), 1);
        t.remove(Lane::Group(GroupKey(1)));
        assert_eq!(t.get(0), None);
    }

    #[test]
    fn reserved_ids_leave_from_both_ends_and_the_middle() {
        let mut r = Reserved::new(10, 6); // 10..16
        assert_eq!(r.len(), 6);
        assert_eq!(r.take_oldest(), Some(10));
        assert!(r.take(13));
        assert!(!r.take(13), "already taken");
        assert!(!r.contains(10));
        assert_eq!(r.take_newest(), Some(15));
        assert_eq!(r.iter_from(0).collect::<Vec<_>>(), [11, 12, 14]);
        assert_eq!(r.take_newest(), Some(14));
        assert_eq!(r.take_newest(), Some(12), "the hole at 13 is skipped");
        assert_eq!(r.len(), 1);
        let all = r.take_all();
        assert_eq!(all.iter_from(0).collect::<Vec<_>>(), [11]);
        assert!(r.is_empty());
        assert_eq!(r.take_oldest(), None);
        let huge = Reserved::new(0, 1_000_000_000_000);
        assert_eq!(
            huge.len(),
            1_000_000_000_000,
            "a range costs the same for any count"
        );
    }
}

//! A group's items whose retry backoff is over (`item_retry.rs`): their ids, in the order
//! they came back, waiting for a slot of their group. A leaf: the state holds one per group.

use crate::id::TaskId;
use std::collections::VecDeque;

/// Ids of a group's items waiting for their next attempt, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Requeued {
    ids: VecDeque<TaskId>,
}

impl Requeued {
    /// No item waits for another attempt (the usual case: one load).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Item `id` waits for a slot, behind those that came back before it.
    pub(crate) fn push(&mut self, id: TaskId) {
        self.ids.push_back(id);
    }

    /// The item that came back first.
    pub(crate) fn pop(&mut self) -> Option<TaskId> {
        self.ids.pop_front()
    }

    /// Takes `id` out (it was cancelled while it waited); whether it was there.
    pub(crate) fn remove(&mut self, id: TaskId) -> bool {
        match self.ids.iter().position(|i| *i == id) {
            Some(at) => {
                self.ids.remove(at);
                true
            }
            None => false,
        }
    }
}

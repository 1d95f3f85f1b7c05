//! A group's items whose retry backoff is over (`item_retry.rs`): their ids, in the order
//! they came back, waiting for a slot of their group (and, in a rate-limited group, for their
//! key's token: each id keeps its rate key). A leaf: the state holds one per group.

use super::rate_state::KeyHash;
use crate::id::TaskId;
use std::collections::VecDeque;

/// Ids of a group's items waiting for their next attempt, oldest first, with their rate keys
/// (0 in groups without keyed limits).
#[derive(Debug, Default)]
pub(crate) struct Requeued {
    ids: VecDeque<(TaskId, KeyHash)>,
}

impl Requeued {
    /// No item waits for another attempt (the usual case: one load).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Item `id`, of rate key `key`, waits for a slot, behind those that came back before it.
    pub(crate) fn push(&mut self, id: TaskId, key: KeyHash) {
        self.ids.push_back((id, key));
    }

    /// The item that came back first.
    pub(crate) fn pop(&mut self) -> Option<TaskId> {
        self.ids.pop_front().map(|(id, _)| id)
    }

    /// The oldest item whose key `ready` accepts (it takes that key's token), taken out.
    pub(crate) fn take_first(&mut self, mut ready: impl FnMut(KeyHash) -> bool) -> Option<TaskId> {
        let at = self.ids.iter().position(|&(_, key)| ready(key))?;
        self.ids.remove(at).map(|(id, _)| id)
    }

    /// The rate keys of the items waiting.
    pub(crate) fn keys(&self) -> impl Iterator<Item = KeyHash> + '_ {
        self.ids.iter().map(|&(_, key)| key)
    }

    /// Takes `id` out (it was cancelled while it waited); whether it was there.
    pub(crate) fn remove(&mut self, id: TaskId) -> bool {
        match self.ids.iter().position(|&(i, _)| i == id) {
            Some(at) => {
                self.ids.remove(at);
                true
            }
            None => false,
        }
    }
}

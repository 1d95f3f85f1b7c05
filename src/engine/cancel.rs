//! Cancelling: by id (atomically, all or none), the newest (`SimpleTaskPool::stop`), and
//! everything. Part of [`State`], split out of `core.rs` for size.

use super::core::{After, Core, Input, Life, Seat, Start, State};
use super::lanes::{GroupKey, Reserved};
use crate::error::PoolError;
use crate::id::TaskId;
use std::sync::Arc;

impl State {
    /// Why task `id` cannot be cancelled, if it cannot.
    pub(crate) fn check_cancel(&self, pool: &str, id: TaskId) -> Result<(), PoolError> {
        let pool = || pool.to_owned();
        match self.table.get(id.get()) {
            Some(e) if e.cancel_requested => Err(PoolError::AlreadyCancelled { pool: pool(), id }),
            Some(e) if e.life == Life::Ending => Err(PoolError::AlreadyEnded { pool: pool(), id }),
            Some(_) => Ok(()),
            None if self.is_waiting(id) => Ok(()),
            None if id.get() < self.next_id => Err(PoolError::AlreadyEnded { pool: pool(), id }),
            None => Err(PoolError::TaskNotFound { pool: pool(), id }),
        }
    }

    pub(super) fn is_waiting(&self, id: TaskId) -> bool {
        self.loose.find(id.get()).is_some() || self.reserving_group(id).is_some()
    }

    /// The start group that reserved `id` and has not started it.
    pub(super) fn reserving_group(&self, id: TaskId) -> Option<GroupKey> {
        self.groups.iter().find_map(|(k, g)| match &g.input {
            Input::Reserved(r) if r.contains(id.get()) => Some(k),
            _ => None,
        })
    }

    /// Cancels task `id` wherever it is; unknown and ended ids are skipped. A queued task
    /// leaves the queue and runs its callbacks without a slot.
    pub(crate) fn cancel_task(&mut self, id: TaskId, core: &Arc<Core>, after: &mut After) {
        if self.table.get(id.get()).is_some() {
            self.cancel_running(id, core, after);
            return;
        }
        if let Some((priority, ticket)) = self.loose.find(id.get()) {
            let task = self
                .loose
                .take(priority, ticket)
                .expect("found")
                .into_inner();
            let control = task.clone().control();
            after.wake(control.cancel(id));
            self.insert_ending(id, control, true);
            let job = task.launch(core, id, Seat::Unseated);
            after.start(Start::Job(job), None);
            return;
        }
        if let Some(key) = self.reserving_group(id) {
            self.reserved_waiting -= 1;
            let g = self.groups.get_mut(key).expect("found");
            if let Input::Reserved(r) = &mut g.input {
                r.take(id.get());
                g.backlog = r.len();
                if r.is_empty() {
                    g.input = Input::Done;
                }
            }
            g.unstarted_ending += 1;
            if let Some(driver) = g.driver.as_ref() {
                let job = Arc::clone(driver).unstarted(core, Reserved::new(id.get(), 1));
                after.start(Start::Job(job), None);
            }
        }
    }

    pub(super) fn cancel_running(&mut self, id: TaskId, core: &Arc<Core>, after: &mut After) {
        let Some(entry) = self.table.get_mut(id.get()) else {
            return;
        };
        if entry.cancel_requested || entry.life == Life::Ending {
            return;
        }
        entry.cancel_requested = true;
        after.wake(entry.control.cancel(id));
        if let (Life::Waiting, Some(key)) = (entry.life, entry.group) {
            if self.cancel_requeued(key, id, core, after) {
                // Waiting for a slot for its next attempt: it ends now (see `item_retry.rs`).
                return;
            }
            if self.cancel_aside(key, id, core, after) {
                // Set aside for a rate limit's token: it ends now (see `rate.rs`).
                return;
            }
            // Its worker waits for the group's turn, not on the item.
            if let Some(Some(Some(w))) = self.groups.get(key).map(|g| &g.parked_puller) {
                after.wake(Some(w.clone()));
            }
        }
    }

    /// Cancels the `num` newest live tasks (waiting ones first, then running ones not
    /// already being cancelled); returns their ids, newest first.
    pub(crate) fn stop_newest(
        &mut self,
        num: usize,
        core: &Arc<Core>,
        after: &mut After,
    ) -> Vec<TaskId> {
        let mut stopped = Vec::new();
        while stopped.len() < num {
            let loose = self.loose.newest();
            let reserved = self
                .groups
                .iter()
                .filter_map(|(_, g)| match &g.input {
                    Input::Reserved(r) if !g.cancelled => r.iter_from(0).next_back(),
                    _ => None,
                })
                .max();
            let Some(id) = loose.max(reserved) else { break };
            let id = TaskId::new(id);
            self.cancel_task(id, core, after);
            stopped.push(id);
        }
        if stopped.len() < num {
            let mut running: Vec<u64> = self
                .table
                .iter()
                .filter(|(_, e)| !e.cancel_requested && e.life != Life::Ending)
                .map(|(id, _)| id)
                .collect();
            running.sort_unstable_by(|a, b| b.cmp(a));
            running.truncate(num - stopped.len());
            for id in running {
                let id = TaskId::new(id);
                self.cancel_running(id, core, after);
                stopped.push(id);
            }
        }
        stopped
    }

    /// Cancels every task and group; forgets all groups' names.
    pub(crate) fn cancel_everything(&mut self, core: &Arc<Core>, after: &mut After) {
        let keys = self.groups.keys();
        for key in keys {
            self.cancel_group(key, core, after);
        }
        // Forget finished groups too: their names are free again.
        self.names.clear();
        for key in self.groups.keys() {
            self.drop_group_if_gone(key);
        }
        let queued: Vec<u64> = self.loose.iter().map(|(k, _)| k).collect();
        for id in queued {
            self.cancel_task(TaskId::new(id), core, after);
        }
        for id in self.table.ids() {
            self.cancel_running(TaskId::new(id), core, after);
        }
        after.notify = true;
    }
}

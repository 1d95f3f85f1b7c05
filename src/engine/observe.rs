//! Looking at a pool and waiting for it: `join`, `flush`, `until_closed`, stats and the task
//! list.

use super::core::{Core, Gate, GroupState, Input, Life, State};
use super::current;
use super::durations::LiveDurations;
use super::lanes::GroupKey;
use crate::concurrency::Concurrency;
use crate::error::PoolError;
use crate::id::{TaskId, TaskName};
use crate::stats::{GroupStats, PoolStats, TaskInfo, TaskState};
use crate::sync::AtomicUsize;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Core {
    /// Errors if called from inside one of this pool's tasks (or its callbacks, or a map
    /// input), where waiting for the pool would wait for the caller itself.
    pub(crate) fn refuse_own_task(&self, method: &'static str) -> Result<(), PoolError> {
        if current::inside_pool(self.serial) {
            return Err(PoolError::CalledFromOwnTask {
                pool: self.pool_name(),
                method,
            });
        }
        Ok(())
    }

    /// Waits until `done(state)` holds; refuses to from the pool's own tasks.
    pub(crate) async fn wait_until(
        &self,
        method: &'static str,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), PoolError> {
        self.refuse_own_task(method)?;
        self.wait_until_from_anywhere(done).await;
        Ok(())
    }

    /// Waits until `done(state)` holds, from any context.
    pub(crate) async fn wait_until_from_anywhere(&self, done: impl Fn(&State) -> bool) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let (waiters, changed) = self.waiters();
        waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(waiters);
        loop {
            if self.read(&done) {
                return;
            }
            let listener = changed.listen();
            if self.read(&done) {
                return;
            }
            listener.await;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.read(|st| st.gate() == Gate::Closed)
    }

    /// Forgets ended tasks' counters and finished groups.
    pub(crate) fn forget_ended(self: &Arc<Self>) {
        self.section().forget_ended();
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.read(|st| {
            let ended = st.ended();
            PoolStats {
                name: self.name.to_string(),
                limit: st.limit(),
                running: st.running(),
                queued: st.queued() as usize,
                backlog: st.backlog(),
                ending: st.ending(),
                ended: ended.ended,
                cancelled: ended.cancelled,
                panicked: ended.panicked,
                timed_out: ended.timed_out,
                dropped: ended.dropped,
                shed: ended.shed,
                retried: ended.retried,
                retrying: st.in_backoff(),
                submitted: st.next_id(),
                locked: st.gate() != Gate::Open,
                closed: st.gate() == Gate::Closed,
                is_full: !st.has_room(),
                groups: st.group_names(),
                loose_weight: st.loose_weight,
                queue_wait: st.pool_durations().map(|h| h.queue_wait()),
                run_time: st.pool_durations().map(|h| h.run_time()),
            }
        })
    }

    /// The named group's progress and durations.
    pub(crate) fn group_stats(&self, name: &str) -> Result<GroupStats, PoolError> {
        self.read(|st| {
            let g = st
                .group_key(name)
                .and_then(|k| st.groups.get(k))
                .ok_or_else(|| PoolError::GroupNotFound {
                    pool: self.pool_name(),
                    name: name.to_owned(),
                })?;
            let (queued, backlog) = match &g.input {
                Input::Reserved(r) => (r.len(), 0),
                _ => (0, g.backlog + g.ahead),
            };
            let live = g.items_live as u64 + g.unstarted_ending;
            let exact = g.backlog_exact || matches!(g.input, Input::Reserved(_) | Input::Done);
            let histograms = g.timing.as_deref().map(|t| &t.histograms);
            Ok(GroupStats {
                name: name.to_owned(),
                live,
                queued,
                backlog,
                done: g.ended,
                total: exact.then_some(g.ended + live + queued + backlog),
                cancelled: g.cancelled,
                priority: g.priority,
                weight: g.weight,
                num_concurrent: Concurrency::from_cap(g.num_concurrent),
                rate_limit: g.rate.as_ref().and_then(|r| r.quota()),
                queue_wait: histograms.map(|h| h.queue_wait()),
                run_time: histograms.map(|h| h.run_time()),
            })
        })
    }

    /// Live tasks with ids of at least `from`, ascending, at most `max` of them.
    pub(crate) fn tasks(&self, from: TaskId, max: usize) -> Vec<TaskInfo> {
        self.read(|st| {
            st.live_tasks(from.get(), max)
                .into_iter()
                .map(|t| TaskInfo {
                    id: t.id,
                    name: TaskName {
                        pool: &self.name,
                        custom: t.name,
                        id: t.id,
                    }
                    .to_string(),
                    group: t.group.map(str::to_owned),
                    state: match t.state {
                        LiveState::Queued => TaskState::Queued,
                        LiveState::Running => TaskState::Running,
                        LiveState::Ending => TaskState::Ending,
                        LiveState::Backoff => TaskState::Backoff,
                    },
                    attempt: t.attempt,
                    queue_wait: t.durations.0,
                    run_time: t.durations.1,
                })
                .collect()
        })
    }

    /// Ids of the group's live items (queued or running), or `None` if the pool forgot it.
    pub(crate) fn group_ids(&self, key: GroupKey) -> Vec<TaskId> {
        self.read(|st| st.ids_in_group(key))
    }

    /// The ids of the live tasks of the named groups.
    pub(crate) fn group_ids_named<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<BTreeSet<TaskId>, PoolError> {
        self.read(|st| {
            let mut out = BTreeSet::new();
            for name in names {
                let Some(key) = st.group_key(name) else {
                    return Err(PoolError::GroupNotFound {
                        pool: self.pool_name(),
                        name: name.to_owned(),
                    });
                };
                out.extend(st.ids_in_group(key));
            }
            Ok(out)
        })
    }

    /// Whether the task `id` belongs to the group `key`.
    pub(crate) fn in_group(&self, id: TaskId, key: GroupKey) -> bool {
        self.read(|st| st.group_of(id) == Some(key))
    }
}

/// A live task as `tasks()` lists it.
pub(crate) struct LiveTask<'a> {
    pub(crate) id: TaskId,
    pub(crate) name: Option<&'a str>,
    pub(crate) group: Option<&'a str>,
    pub(crate) state: LiveState,
    pub(crate) durations: LiveDurations,
    /// The attempt it is on (1-based).
    pub(crate) attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveState {
    Queued,
    Running,
    Ending,
    Backoff,
}

impl State {
    /// Live tasks of the group (queued or running), ascending.
    pub(crate) fn ids_in_group(&self, key: GroupKey) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .table
            .iter()
            .filter(|(_, e)| e.group == Some(key))
            .map(|(id, _)| TaskId::new(id))
            .collect();
        if let Some(GroupState {
            input: Input::Reserved(r),
            ..
        }) = self.groups.get(key)
        {
            ids.extend(r.iter_from(0).map(TaskId::new));
        }
        ids.sort_unstable();
        ids
    }

    pub(crate) fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }

    /// Every live task, ascending by id, from `after` on, at most `max` of them.
    pub(crate) fn live_tasks(&self, from: u64, max: usize) -> Vec<LiveTask<'_>> {
        let mut out: Vec<LiveTask<'_>> = self
            .table
            .iter()
            .filter(|(id, _)| *id >= from)
            .map(|(id, e)| LiveTask {
                id: TaskId::new(id),
                name: e.control.name(),
                group: e.group.and_then(|k| self.groups.get(k)).map(|g| &*g.name),
                state: match e.life {
                    Life::Waiting => LiveState::Queued,
                    Life::Running(_) => LiveState::Running,
                    Life::Ending => LiveState::Ending,
                    Life::Backoff => LiveState::Backoff,
                },
                durations: self.live_durations(id, None),
                attempt: e.control.attempt(),
            })
            .collect();
        out.sort_unstable_by_key(|t| t.id);
        out.truncate(max);
        let queued = self.loose.iter_from(from, max).map(|(id, t)| LiveTask {
            id: TaskId::new(id),
            name: t.name(),
            group: None,
            state: LiveState::Queued,
            durations: self.live_durations(id, None),
            attempt: t.attempt(),
        });
        out.extend(queued);
        for (_, g) in self.groups.iter() {
            if let Input::Reserved(r) = &g.input {
                out.extend(r.iter_from(from).take(max).map(|id| LiveTask {
                    id: TaskId::new(id),
                    name: None,
                    group: Some(&*g.name),
                    state: LiveState::Queued,
                    durations: self.live_durations(id, Some(g)),
                    attempt: 1,
                }));
            }
        }
        out.sort_unstable_by_key(|t| t.id);
        out.truncate(max);
        out
    }
}

//! The pool's shared state: slots, the FIFO queue, live task records and counters.
//!
//! Lock order: a group's feed lock may be held while taking a group's results lock; the pool
//! state lock may be held while taking a group's feed, results or a handle's slot lock. Nothing
//! takes the pool state lock while holding another lock.

use crate::abort::Abort;
use crate::id::TaskName;
use crate::queue::Queue;
use crate::stats::{PoolStats, TaskInfo, TaskState};
use crate::{current, PoolError, TaskId};
use async_taskpool_runtime::{BoxFuture, Spawner};
use event_listener::Event;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

static POOL_SERIAL: AtomicU64 = AtomicU64::new(0);

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Cancelled,
    Panicked,
    TimedOut,
}

/// Work waiting for a slot, in FIFO order.
pub(crate) enum Claim {
    /// A submitted task: its wrapper future, spawned once a slot is granted.
    Task { id: u64, fut: BoxFuture },
    /// A map or apply group that wants one more worker.
    Worker(Arc<dyn WorkerSource>),
}

/// A group that runs its items on reusable workers.
pub(crate) trait WorkerSource: Send + Sync {
    /// The worker future; it owns one slot from its first poll (or drop) on.
    fn worker(self: Arc<Self>) -> BoxFuture;
    /// Stop pulling items (the group was cancelled).
    fn stop_pulling(&self);
    /// A queued claim of this group was dropped unstarted. Returns whether that was the
    /// group's last worker, so it no longer counts as pulling.
    fn claim_dropped(&self) -> bool;
}

fn same_source(a: &Arc<dyn WorkerSource>, b: &Arc<dyn WorkerSource>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// A group as the pool's registry sees it.
pub(crate) struct GroupEntry {
    pub(crate) pulling: Option<Arc<dyn WorkerSource>>,
    pub(crate) finished: Arc<dyn Fn() -> bool + Send + Sync>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued(u64),
    /// Running; the task owns a slot.
    Running,
    /// A map item running on a worker, which owns the slot.
    Item,
    /// The future is done (or was cancelled while queued); callbacks may run. No slot.
    Ending,
}

struct Record {
    phase: Phase,
    name: Option<Arc<str>>,
    group: Option<Arc<str>>,
    control: Arc<dyn Abort>,
    cancel_requested: bool,
}

/// Ids are sequential, so hashing them is a multiply.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) ended: u64,
    pub(crate) cancelled: u64,
    pub(crate) panicked: u64,
    pub(crate) timed_out: u64,
}

pub(crate) struct State {
    limit: Option<usize>,
    slots_used: usize,
    locked: bool,
    closed: bool,
    queue: Queue<Claim>,
    tasks: HashMap<u64, Record, BuildHasherDefault<IdHasher>>,
    running: usize,
    queued: usize,
    ending: usize,
    groups: HashMap<Arc<str>, GroupEntry>,
    pulling_groups: usize,
    apply_groups: u64,
    map_groups: u64,
    start_groups: u64,
    counters: Counters,
}

/// Options a task is submitted with.
pub(crate) struct Submission {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) control: Arc<dyn Abort>,
    /// Refuse unless the task can start at once.
    pub(crate) only_now: bool,
    /// Skip the lock and close checks: the rest of a batch accepted earlier.
    pub(crate) accepted: bool,
}

pub(crate) struct Inner {
    pub(crate) serial: u64,
    pub(crate) name: Arc<str>,
    pub(crate) spawner: Arc<dyn Spawner>,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// Notified whenever a task retires, a group stops pulling or the pool closes.
    changed: Event,
}

impl Inner {
    pub(crate) fn new(
        spawner: Arc<dyn Spawner>,
        name: Option<String>,
        limit: Option<usize>,
    ) -> Self {
        let serial = POOL_SERIAL.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = match name {
            Some(n) => n.into(),
            None => format!("TaskPool-{serial}").into(),
        };
        tracing::debug!(pool = %name, runtime = spawner.runtime_name(), ?limit, "{name} initialized");
        Self {
            serial,
            name,
            spawner,
            next_id: AtomicU64::new(0),
            state: Mutex::new(State {
                limit,
                slots_used: 0,
                locked: false,
                closed: false,
                queue: Queue::default(),
                tasks: HashMap::default(),
                running: 0,
                queued: 0,
                ending: 0,
                groups: HashMap::new(),
                pulling_groups: 0,
                apply_groups: 0,
                map_groups: 0,
                start_groups: 0,
                counters: Counters::default(),
            }),
            changed: Event::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing user-supplied runs under this lock, so poisoning can only come from a bug in
        // this crate; carrying on with the data is better than panicking every later caller.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool_name(&self) -> String {
        self.name.to_string()
    }

    pub(crate) fn task_name(&self, custom: Option<&str>, id: TaskId) -> String {
        TaskName {
            pool: &self.name,
            custom,
            id,
        }
        .to_string()
    }

    fn check_open(&self, st: &State) -> Result<(), PoolError> {
        if st.closed {
            Err(PoolError::Closed {
                pool: self.pool_name(),
            })
        } else if st.locked {
            Err(PoolError::Locked {
                pool: self.pool_name(),
            })
        } else {
            Ok(())
        }
    }

    pub(crate) fn allocate_id(&self) -> TaskId {
        TaskId::new(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn has_room(st: &State) -> bool {
        st.limit.is_none_or(|l| st.slots_used < l)
    }

    /// Admits a task. `wrap` builds its wrapper future once the id is known. On refusal the
    /// future comes back to the caller.
    pub(crate) fn submit<F>(
        &self,
        sub: Submission,
        fut: F,
        wrap: impl FnOnce(F, TaskId) -> BoxFuture,
    ) -> Result<(TaskId, bool), (PoolError, F)> {
        let (id, start) = {
            let mut st = self.state();
            if !sub.accepted {
                if let Err(e) = self.check_open(&st) {
                    return Err((e, fut));
                }
            }
            let room = Self::has_room(&st) && st.queue.is_empty();
            if sub.only_now && !room {
                let limit = st.limit.unwrap_or(usize::MAX);
                return Err((
                    PoolError::Full {
                        pool: self.pool_name(),
                        limit,
                    },
                    fut,
                ));
            }
            let id = self.allocate_id();
            let wrapped = wrap(fut, id);
            let (phase, start) = if room {
                st.slots_used += 1;
                st.running += 1;
                (Phase::Running, Some(wrapped))
            } else {
                st.queued += 1;
                let q = st.queue.push(Claim::Task {
                    id: id.get(),
                    fut: wrapped,
                });
                (Phase::Queued(q), None)
            };
            st.tasks.insert(
                id.get(),
                Record {
                    phase,
                    name: sub.name,
                    group: sub.group,
                    control: sub.control,
                    cancel_requested: false,
                },
            );
            (id, start)
        };
        let started = start.is_some();
        if let Some(fut) = start {
            self.spawn(fut);
        }
        Ok((id, started))
    }

    pub(crate) fn spawn(&self, fut: BoxFuture) {
        if let Err(e) = self.spawner.spawn(fut) {
            // The wrapper was dropped unpolled; its guard has retired the task as cancelled.
            tracing::error!(pool = %self.name, error = %e, "{}: could not spawn a task: {e}", self.name);
        }
    }

    fn spawn_all(&self, futs: Vec<BoxFuture>) {
        for fut in futs {
            self.spawn(fut);
        }
    }

    /// Hands free slots to the head of the queue. Returns the futures to spawn after unlocking.
    fn grant(st: &mut State) -> Vec<BoxFuture> {
        let mut out = Vec::new();
        while Self::has_room(st) {
            let Some(claim) = st.queue.pop() else { break };
            st.slots_used += 1;
            match claim {
                Claim::Task { id, fut } => {
                    if let Some(rec) = st.tasks.get_mut(&id) {
                        rec.phase = Phase::Running;
                        rec.control.started();
                    }
                    st.queued -= 1;
                    st.running += 1;
                    out.push(fut);
                }
                Claim::Worker(source) => out.push(source.worker()),
            }
        }
        out
    }

    /// Queues a worker claim for a group; it starts at once if there is room.
    pub(crate) fn request_worker(&self, source: Arc<dyn WorkerSource>) {
        let futs = {
            let mut st = self.state();
            st.queue.push(Claim::Worker(source));
            Self::grant(&mut st)
        };
        self.spawn_all(futs);
    }

    /// A worker gives back its slot.
    pub(crate) fn release_worker_slot(&self) {
        let futs = {
            let mut st = self.state();
            st.slots_used -= 1;
            Self::grant(&mut st)
        };
        self.spawn_all(futs);
    }

    /// Registers a map item that a worker (holding a slot) is about to run.
    pub(crate) fn start_item(&self, id: TaskId, group: &Arc<str>, control: Arc<dyn Abort>) {
        let mut st = self.state();
        st.running += 1;
        st.tasks.insert(
            id.get(),
            Record {
                phase: Phase::Item,
                name: None,
                group: Some(group.clone()),
                control,
                cancel_requested: false,
            },
        );
        drop(st);
        self.log_started(id, None);
    }

    pub(crate) fn log_started(&self, id: TaskId, custom: Option<&str>) {
        tracing::info!(pool = %self.name, task_id = id.get(), "Started {}", TaskName { pool: &self.name, custom, id });
    }

    /// The task's future is done and its callbacks are about to run: free its slot now, so
    /// queued work can start while they run. For map items the worker frees its own slot.
    pub(crate) fn enter_callbacks(&self, id: TaskId) {
        let futs = {
            let mut st = self.state();
            let Some(rec) = st.tasks.get_mut(&id.get()) else {
                return;
            };
            let was = std::mem::replace(&mut rec.phase, Phase::Ending);
            st.ending += 1;
            match was {
                Phase::Running => {
                    st.running -= 1;
                    st.slots_used -= 1;
                    Self::grant(&mut st)
                }
                Phase::Item => {
                    st.running -= 1;
                    Vec::new()
                }
                Phase::Ending => {
                    st.ending -= 1;
                    Vec::new()
                }
                Phase::Queued(_) => unreachable!("a queued task is never polled"),
            }
        };
        self.spawn_all(futs);
    }

    /// Removes a finished task, updates the counters and delivers its result (under the lock, so
    /// that a resolved handle and the counters always agree). Returns whether a map worker
    /// should give up its slot (others are waiting, or the limit shrank).
    pub(crate) fn retire(
        &self,
        id: TaskId,
        outcome: Outcome,
        deliver: impl FnOnce() -> Option<Waker>,
    ) -> bool {
        let (waker, futs, custom, should_yield) = {
            let mut st = self.state();
            let Some(rec) = st.tasks.remove(&id.get()) else {
                return false;
            };
            let mut futs = Vec::new();
            match rec.phase {
                Phase::Running => {
                    st.running -= 1;
                    st.slots_used -= 1;
                    futs = Self::grant(&mut st);
                }
                Phase::Item => st.running -= 1,
                Phase::Ending => st.ending -= 1,
                Phase::Queued(q) => {
                    st.queued -= 1;
                    st.queue.take(q);
                }
            }
            let c = &mut st.counters;
            c.ended += 1;
            match outcome {
                Outcome::Completed => {}
                Outcome::Cancelled => c.cancelled += 1,
                Outcome::Panicked => c.panicked += 1,
                Outcome::TimedOut => c.timed_out += 1,
            }
            let waker = deliver();
            let should_yield = !st.queue.is_empty() || st.limit.is_some_and(|l| st.slots_used > l);
            (waker, futs, rec.name, should_yield)
        };
        if let Some(w) = waker {
            w.wake();
        }
        let name = TaskName {
            pool: &self.name,
            custom: custom.as_deref(),
            id,
        };
        match outcome {
            Outcome::Completed => {}
            Outcome::Cancelled => {
                tracing::debug!(pool = %self.name, task_id = id.get(), "Cancelled {name}")
            }
            Outcome::Panicked => {
                tracing::error!(pool = %self.name, task_id = id.get(), "{name} panicked")
            }
            Outcome::TimedOut => {
                tracing::warn!(pool = %self.name, task_id = id.get(), "{name} timed out")
            }
        }
        tracing::info!(pool = %self.name, task_id = id.get(), ?outcome, "Ended {name}");
        self.changed.notify(usize::MAX);
        self.spawn_all(futs);
        should_yield
    }

    /// A group's last worker ended with nothing left to pull.
    pub(crate) fn group_stopped_pulling(&self, source: &Arc<dyn WorkerSource>) {
        {
            let mut st = self.state();
            st.pulling_groups -= 1;
            // Drop the registry's reference (the engine refers back to the pool).
            for entry in st.groups.values_mut() {
                if entry
                    .pulling
                    .as_ref()
                    .is_some_and(|p| same_source(p, source))
                {
                    entry.pulling = None;
                }
            }
        }
        self.changed.notify(usize::MAX);
    }

    /// A batch group (no worker source) has submitted all its tasks.
    pub(crate) fn group_batch_done(&self) {
        self.state().pulling_groups -= 1;
        self.changed.notify(usize::MAX);
    }

    /// Registers a group under `name` (or a generated one), if the pool accepts work.
    pub(crate) fn register_group(
        &self,
        kind: GroupKind,
        name: Option<String>,
        entry: impl FnOnce(Arc<str>) -> GroupEntry,
    ) -> Result<Arc<str>, PoolError> {
        let mut st = self.state();
        self.check_open(&st)?;
        let name: Arc<str> = match name {
            Some(n) => {
                if st.groups.contains_key(n.as_str()) {
                    return Err(PoolError::GroupExists {
                        pool: self.pool_name(),
                        name: n,
                    });
                }
                n.into()
            }
            None => loop {
                let counter = match kind {
                    GroupKind::Apply => &mut st.apply_groups,
                    GroupKind::Map => &mut st.map_groups,
                    GroupKind::Start => &mut st.start_groups,
                };
                let k = *counter;
                *counter += 1;
                let candidate = format!("{}-group-{k}", kind.prefix());
                if !st.groups.contains_key(candidate.as_str()) {
                    break candidate.into();
                }
            },
        };
        let entry = entry(name.clone());
        // Counts as pulling (keeps `join` waiting) until its last item is issued.
        st.pulling_groups += 1;
        st.groups.insert(name.clone(), entry);
        Ok(name)
    }

    // ----- control -----

    /// Requests cancellation of one record; returns a wrapper to spawn if it was queued.
    fn cancel_record(st: &mut State, id: u64) -> Option<BoxFuture> {
        let rec = st.tasks.get_mut(&id)?;
        if rec.cancel_requested || rec.phase == Phase::Ending {
            return None;
        }
        rec.cancel_requested = true;
        rec.control.cancel(TaskId::new(id));
        if let Phase::Queued(q) = rec.phase {
            rec.phase = Phase::Ending;
            st.queued -= 1;
            st.ending += 1;
            // Spawned without a slot: it sees the cancellation on its first poll, runs the
            // callbacks and resolves its handle, however busy the pool is.
            if let Some(Claim::Task { fut, .. }) = st.queue.take(q) {
                return Some(fut);
            }
        }
        None
    }

    pub(crate) fn cancel(&self, ids: &[TaskId]) -> Result<(), PoolError> {
        let futs = {
            let mut st = self.state();
            let next = self.next_id.load(Ordering::Relaxed);
            for &id in ids {
                match st.tasks.get(&id.get()) {
                    None if id.get() < next => {
                        return Err(PoolError::AlreadyEnded {
                            pool: self.pool_name(),
                            id,
                        })
                    }
                    None => {
                        return Err(PoolError::TaskNotFound {
                            pool: self.pool_name(),
                            id,
                        })
                    }
                    Some(rec) if rec.cancel_requested => {
                        return Err(PoolError::AlreadyCancelled {
                            pool: self.pool_name(),
                            id,
                        })
                    }
                    Some(rec) if rec.phase == Phase::Ending => {
                        return Err(PoolError::AlreadyEnded {
                            pool: self.pool_name(),
                            id,
                        })
                    }
                    Some(_) => {}
                }
            }
            ids.iter()
                .filter_map(|id| Self::cancel_record(&mut st, id.get()))
                .collect::<Vec<_>>()
        };
        self.spawn_all(futs);
        Ok(())
    }

    /// Cancels without validation; used by `stop` and handles. Unknown ids are skipped.
    pub(crate) fn cancel_quietly(&self, id: TaskId) {
        let fut = Self::cancel_record(&mut self.state(), id.get());
        if let Some(fut) = fut {
            self.spawn(fut);
        }
    }

    pub(crate) fn cancel_group(&self, name: &str) -> Result<(), PoolError> {
        let futs = {
            let mut st = self.state();
            let Some(entry) = st.groups.remove(name) else {
                return Err(PoolError::GroupNotFound {
                    pool: self.pool_name(),
                    name: name.to_owned(),
                });
            };
            tracing::debug!(pool = %self.name, group = name, "{} cancelling tasks in group {name}", self.name);
            Self::cancel_group_locked(&mut st, name, entry)
        };
        self.spawn_all(futs);
        Ok(())
    }

    fn cancel_group_locked(st: &mut State, name: &str, entry: GroupEntry) -> Vec<BoxFuture> {
        if let Some(source) = entry.pulling {
            source.stop_pulling();
            // Its queued worker claims would only wait for a slot to find nothing to do.
            let dropped = st
                .queue
                .remove_where(|c| matches!(c, Claim::Worker(s) if same_source(s, &source)));
            for _ in 0..dropped {
                if source.claim_dropped() {
                    st.pulling_groups -= 1;
                }
            }
        }
        let ids: Vec<u64> = st
            .tasks
            .iter()
            .filter(|(_, r)| r.group.as_deref() == Some(name))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| Self::cancel_record(st, id))
            .collect()
    }

    pub(crate) fn cancel_all(&self) {
        tracing::warn!(pool = %self.name, "{} cancelling all tasks!", self.name);
        let futs = {
            let mut st = self.state();
            let groups: Vec<_> = st.groups.drain().collect();
            let mut futs = Vec::new();
            for (name, entry) in groups {
                futs.extend(Self::cancel_group_locked(&mut st, &name, entry));
            }
            let mut ids: Vec<u64> = st.tasks.keys().copied().collect();
            ids.sort_unstable();
            futs.extend(
                ids.into_iter()
                    .filter_map(|id| Self::cancel_record(&mut st, id)),
            );
            futs
        };
        self.changed.notify(usize::MAX);
        self.spawn_all(futs);
    }

    pub(crate) fn set_locked(&self, locked: bool) {
        let changed = {
            let mut st = self.state();
            std::mem::replace(&mut st.locked, locked) != locked
        };
        if changed && locked {
            tracing::info!(pool = %self.name, "{} is locked!", self.name);
        } else if changed {
            tracing::info!(pool = %self.name, "{} was unlocked.", self.name);
        }
    }

    pub(crate) fn close(&self) {
        let changed = {
            let mut st = self.state();
            st.locked = true;
            !std::mem::replace(&mut st.closed, true)
        };
        if changed {
            tracing::info!(pool = %self.name, "{} is closed", self.name);
            self.changed.notify(usize::MAX);
        }
    }

    pub(crate) fn set_limit(&self, limit: Option<usize>) -> Result<(), PoolError> {
        if limit == Some(0) {
            return Err(PoolError::InvalidLimit {
                what: "pool limit",
                value: 0,
            });
        }
        let futs = {
            let mut st = self.state();
            st.limit = limit;
            Self::grant(&mut st)
        };
        tracing::info!(pool = %self.name, ?limit, "{} limit set to {limit:?}", self.name);
        self.spawn_all(futs);
        Ok(())
    }

    // ----- waiting -----

    /// Waits until `done(state)` holds. Errors if called from inside one of this pool's tasks.
    pub(crate) async fn wait_until(
        &self,
        method: &'static str,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), PoolError> {
        if current::inside_pool(self.serial) {
            return Err(PoolError::CalledFromOwnTask {
                pool: self.pool_name(),
                method,
            });
        }
        self.wait_until_from_anywhere(done).await;
        Ok(())
    }

    /// Waits until `done(state)` holds, from any context.
    pub(crate) async fn wait_until_from_anywhere(&self, done: impl Fn(&State) -> bool) {
        loop {
            if done(&self.state()) {
                return;
            }
            let listener = self.changed.listen();
            if done(&self.state()) {
                return;
            }
            listener.await;
        }
    }

    pub(crate) fn is_idle(st: &State) -> bool {
        st.tasks.is_empty() && st.queue.is_empty() && st.pulling_groups == 0
    }

    pub(crate) fn no_callbacks_running(st: &State) -> bool {
        st.ending == 0
    }

    pub(crate) fn is_closed_state(st: &State) -> bool {
        st.closed
    }

    /// Forgets ended tasks' counters and finished groups.
    pub(crate) fn forget_ended(&self) {
        let mut st = self.state();
        st.counters = Counters::default();
        st.groups.retain(|_, g| !(g.finished)());
    }

    // ----- looking -----

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state())
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.state();
        PoolStats {
            name: self.name.to_string(),
            limit: st.limit,
            running: st.running,
            queued: st.queued,
            ending: st.ending,
            ended: st.counters.ended,
            cancelled: st.counters.cancelled,
            panicked: st.counters.panicked,
            timed_out: st.counters.timed_out,
            submitted: self.next_id.load(Ordering::Relaxed),
            locked: st.locked,
            closed: st.closed,
            is_full: !Self::has_room(&st),
            groups: {
                let mut g: Vec<String> = st.groups.keys().map(|k| k.to_string()).collect();
                g.sort();
                g
            },
        }
    }

    pub(crate) fn tasks(&self) -> Vec<TaskInfo> {
        let st = self.state();
        let mut out: Vec<TaskInfo> = st
            .tasks
            .iter()
            .map(|(&id, r)| TaskInfo {
                id: TaskId::new(id),
                name: self.task_name(r.name.as_deref(), TaskId::new(id)),
                group: r.group.as_deref().map(str::to_owned),
                state: match r.phase {
                    Phase::Queued(_) => TaskState::Queued,
                    Phase::Running | Phase::Item => TaskState::Running,
                    Phase::Ending => TaskState::Ending,
                },
            })
            .collect();
        out.sort_by_key(|t| t.id);
        out
    }

    pub(crate) fn group_exists(&self, name: &str) -> bool {
        self.state().groups.contains_key(name)
    }

    pub(crate) fn ids_in_group(st: &State, name: &str) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = st
            .tasks
            .iter()
            .filter(|(_, r)| r.group.as_deref() == Some(name))
            .map(|(&id, _)| TaskId::new(id))
            .collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn group_of(&self, id: TaskId) -> Option<Arc<str>> {
        self.state()
            .tasks
            .get(&id.get())
            .and_then(|r| r.group.clone())
    }
}

impl State {
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }
    pub(crate) fn running(&self) -> usize {
        self.running
    }
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }
    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }
    pub(crate) fn locked(&self) -> bool {
        self.locked
    }
    pub(crate) fn closed(&self) -> bool {
        self.closed
    }
    pub(crate) fn is_full(&self) -> bool {
        !Inner::has_room(self)
    }
    pub(crate) fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }
    /// Live ids, newest first: queued ones, then running ones.
    pub(crate) fn newest_live(&self, in_group: impl Fn(Option<&str>) -> bool) -> Vec<TaskId> {
        let mut queued = Vec::new();
        let mut running = Vec::new();
        for (&id, r) in &self.tasks {
            if r.cancel_requested || !in_group(r.group.as_deref()) {
                continue;
            }
            match r.phase {
                Phase::Queued(_) => queued.push(id),
                Phase::Running | Phase::Item => running.push(id),
                Phase::Ending => {}
            }
        }
        queued.sort_unstable_by(|a, b| b.cmp(a));
        running.sort_unstable_by(|a, b| b.cmp(a));
        queued.into_iter().chain(running).map(TaskId::new).collect()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum GroupKind {
    Apply,
    Map,
    Start,
}

impl GroupKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Map => "map",
            Self::Start => "start",
        }
    }
}

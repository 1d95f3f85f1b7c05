//! The pool's shared state: slots, the FIFO queue, live task records and counters.
//!
//! Lock order: a group's feed lock may be held while taking a group's results lock; the pool
//! state lock may be held while taking a group's feed, results or a handle's slot lock. Nothing
//! takes the pool state lock while holding another lock.

use crate::abort::TaskControl;
use crate::cell::Cell;
use crate::id::TaskName;
use crate::idle::{Mailbox, Parking, IDLE_CAP};
use crate::queue::Queue;
use crate::stats::{PoolStats, TaskInfo, TaskState};
use crate::table::IdTable;
use crate::task::{BoxJob, Job, Next, TaskFuture};
use crate::{current, PoolError, TaskId};
use async_taskpool_runtime::{BoxFuture, Spawner};
use event_listener::Event;
use std::cell::{Cell as StdCell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// Work waiting for a slot, in FIFO order. Queued tasks live only here (keyed by their id),
/// not in the task table: a queued task costs its cell and one queue slot.
pub(crate) enum Claim {
    /// A submitted task; its future waits in its cell.
    Task(Arc<dyn TaskControl>),
    /// A map or apply group that wants one more worker.
    Worker(Arc<dyn WorkerSource>),
}

/// What a map worker does after an item.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AfterItem {
    /// Nothing waits: keep the slot, pull the next item.
    Continue,
    /// The head of the queue was this group's own worker claim; it was removed, and this
    /// worker takes its place (the group must forget the claim).
    ContinueInPlaceOfClaim,
    /// Other work waits at the head of the queue, or the limit shrank: give the slot back.
    Yield,
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
    /// Running; the task owns a slot.
    Running,
    /// A map item running on a worker, which owns the slot.
    Item,
    /// The future is done (or was cancelled while queued); callbacks may run. No slot.
    Ending,
}

/// A task that left the queue and has not retired yet.
struct Entry {
    control: Arc<dyn TaskControl>,
    phase: Phase,
    cancel_requested: bool,
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
    tasks: IdTable<Entry>,
    running: usize,
    queued: usize,
    ending: usize,
    groups: HashMap<Arc<str>, GroupEntry>,
    /// Runtime tasks parked for the next task that starts at once, most recent last.
    idle: Vec<Arc<Mailbox>>,
    pulling_groups: usize,
    apply_groups: u64,
    map_groups: u64,
    start_groups: u64,
    counters: Counters,
}

thread_local! {
    /// Whether this thread is inside `Inner::spawn`. A runtime that drops a future inside
    /// `spawn` (it has shut down) retires its task, which may start the next queued task, and
    /// so on: nested spawns are deferred to `DEFERRED`, turning that recursion into a loop.
    static SPAWNING: StdCell<bool> = const { StdCell::new(false) };
    static DEFERRED: RefCell<Vec<(Arc<dyn Spawner>, BoxFuture)>> = const { RefCell::new(Vec::new()) };
}

/// Leaves the spawning state even if a spawner panics, so later spawns are not held back.
struct SpawnScope;
impl Drop for SpawnScope {
    fn drop(&mut self) {
        SPAWNING.set(false);
    }
}

pub(crate) struct Inner {
    pub(crate) serial: u64,
    pub(crate) name: Arc<str>,
    pub(crate) spawner: Arc<dyn Spawner>,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// Notified whenever a task retires, a group stops pulling or the pool closes...
    changed: Event,
    /// ...if anyone waits: most retirements have no waiter and skip the notification.
    waiters: AtomicUsize,
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
                tasks: IdTable::default(),
                running: 0,
                queued: 0,
                ending: 0,
                groups: HashMap::new(),
                idle: Vec::new(),
                pulling_groups: 0,
                apply_groups: 0,
                map_groups: 0,
                start_groups: 0,
                counters: Counters::default(),
            }),
            changed: Event::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    fn notify_changed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.changed.notify(usize::MAX);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock, so poisoning can only come from a bug here;
        // carrying on with the data beats panicking every later caller.
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

    /// Admits a task: starts it if there is room (and nothing queued ahead), else parks its
    /// future in its cell and queues it. On refusal the future comes back.
    pub(crate) fn submit<F>(
        self: &Arc<Self>,
        cell: Arc<Cell<F>>,
        fut: F,
        only_now: bool,
        accepted: bool,
    ) -> Result<(TaskId, bool), (PoolError, F)>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (id, fut, parked) = {
            let mut st = self.state();
            if !accepted {
                if let Err(e) = self.check_open(&st) {
                    return Err((e, fut));
                }
            }
            let room = Self::has_room(&st) && st.queue.is_empty();
            if only_now && !room {
                let limit = st.limit.unwrap_or(usize::MAX);
                let pool = self.pool_name();
                return Err((PoolError::Full { pool, limit }, fut));
            }
            let id = self.allocate_id();
            if room {
                st.slots_used += 1;
                st.running += 1;
                st.tasks.insert(
                    id.get(),
                    Entry {
                        control: cell.clone(),
                        phase: Phase::Running,
                        cancel_requested: false,
                    },
                );
                (id, Some(fut), st.idle.pop())
            } else {
                cell.park(fut);
                st.queued += 1;
                st.queue.push(id.get(), Claim::Task(cell.clone()));
                (id, None, None)
            }
        };
        let started = fut.is_some();
        if let Some(fut) = fut {
            let job: BoxJob = Box::pin(TaskFuture::new(self.clone(), id, fut, cell));
            let refused = match parked {
                Some(mailbox) => mailbox.deliver(job).err(),
                None => Some(job),
            };
            // No runner parked, or it went away (its runtime shut down): spawn one.
            if let Some(job) = refused {
                self.spawn(job.into_future());
            }
        }
        Ok((id, started))
    }

    pub(crate) fn spawn(&self, fut: BoxFuture) {
        if SPAWNING.get() {
            DEFERRED.with_borrow_mut(|d| d.push((self.spawner.clone(), fut)));
            return;
        }
        SPAWNING.set(true);
        let _scope = SpawnScope;
        self.spawn_on(&*self.spawner, fut);
        while let Some((spawner, fut)) = DEFERRED.with_borrow_mut(Vec::pop) {
            self.spawn_on(&*spawner, fut);
        }
    }

    fn spawn_on(&self, spawner: &dyn Spawner, fut: BoxFuture) {
        if let Err(e) = spawner.spawn(fut) {
            // The future was dropped unpolled; its drop has retired the task as cancelled.
            tracing::error!(pool = %self.name, error = %e, "{}: could not spawn a task: {e}", self.name);
        }
    }

    fn spawn_all(&self, futs: Vec<BoxFuture>) {
        for fut in futs {
            self.spawn(fut);
        }
    }

    /// Hands free slots to the head of the queue. Returns the futures to spawn after unlocking.
    fn grant(self: &Arc<Self>, st: &mut State) -> Vec<BoxFuture> {
        let mut out = Vec::new();
        while Self::has_room(st) {
            let Some((key, claim)) = st.queue.pop() else {
                break;
            };
            st.slots_used += 1;
            match claim {
                Claim::Task(control) => {
                    out.extend(self.start_queued(st, key, control).map(Job::into_future));
                }
                Claim::Worker(source) => out.push(source.worker()),
            }
        }
        out
    }

    /// Queues `n` worker claims for a group; they start at once if there is room.
    pub(crate) fn request_workers(self: &Arc<Self>, source: Arc<dyn WorkerSource>, n: usize) {
        if n == 0 {
            return;
        }
        let futs = {
            let mut st = self.state();
            // Keyed by the next id, so the queue's keys stay ordered for lookups.
            let key = self.next_id.load(Ordering::Relaxed);
            for _ in 0..n {
                st.queue.push(key, Claim::Worker(source.clone()));
            }
            self.grant(&mut st)
        };
        self.spawn_all(futs);
    }

    /// A worker gives back its slot.
    pub(crate) fn release_worker_slot(self: &Arc<Self>) {
        let futs = {
            let mut st = self.state();
            st.slots_used -= 1;
            self.grant(&mut st)
        };
        self.spawn_all(futs);
    }

    /// Registers a map item that a worker (holding a slot) is about to run.
    pub(crate) fn start_item(&self, id: TaskId, control: Arc<dyn TaskControl>) {
        {
            let mut st = self.state();
            st.running += 1;
            st.tasks.insert(
                id.get(),
                Entry {
                    control,
                    phase: Phase::Item,
                    cancel_requested: false,
                },
            );
        }
        self.log_started(id, None);
    }

    pub(crate) fn log_started(&self, id: TaskId, custom: Option<&str>) {
        tracing::info!(pool = %self.name, task_id = id.get(), "Started {}", TaskName { pool: &self.name, custom, id });
    }

    /// The task's future is done and its callbacks are about to run: free its slot now, so
    /// queued work can start while they run. For map items the worker frees its own slot.
    pub(crate) fn enter_callbacks(self: &Arc<Self>, id: TaskId) {
        let futs = {
            let mut st = self.state();
            let Some(entry) = st.tasks.get_mut(id.get()) else {
                return;
            };
            let was = std::mem::replace(&mut entry.phase, Phase::Ending);
            match was {
                Phase::Running => {
                    st.ending += 1;
                    st.running -= 1;
                    st.slots_used -= 1;
                    self.grant(&mut st)
                }
                Phase::Item => {
                    st.ending += 1;
                    st.running -= 1;
                    Vec::new()
                }
                Phase::Ending => Vec::new(),
            }
        };
        self.spawn_all(futs);
    }

    /// Removes a finished map item, updates the counters and delivers its result (under the
    /// lock, so that a resolved handle and the counters always agree), and says what the
    /// worker that ran it does next. `continuing` is the group's address (see
    /// [`AfterItem::ContinueInPlaceOfClaim`]) if the worker still holds its slot and would go
    /// on, `None` if it is ending.
    pub(crate) fn retire(
        self: &Arc<Self>,
        id: TaskId,
        outcome: Outcome,
        continuing: Option<*const ()>,
        deliver: impl FnOnce() -> Option<Waker>,
    ) -> AfterItem {
        self.retire_inner(id, outcome, None, continuing, deliver).0
    }

    /// Like [`retire`](Self::retire) for a task running on a runtime task of its own. With
    /// `runner` (the runner's spare mailbox: it goes on if it can), the runtime task runs the
    /// next queued task if one heads the queue (with this task's slot), or else parks for the
    /// next task that starts at once (see [`crate::idle`]).
    pub(crate) fn retire_task(
        self: &Arc<Self>,
        id: TaskId,
        outcome: Outcome,
        runner: Option<&mut Option<Arc<Mailbox>>>,
        deliver: impl FnOnce() -> Option<Waker>,
    ) -> Next {
        self.retire_inner(id, outcome, runner, None, deliver).1
    }

    fn retire_inner(
        self: &Arc<Self>,
        id: TaskId,
        outcome: Outcome,
        runner: Option<&mut Option<Arc<Mailbox>>>,
        own_group: Option<*const ()>,
        deliver: impl FnOnce() -> Option<Waker>,
    ) -> (AfterItem, Next) {
        let (waker, futs, entry, after, next) = {
            let mut st = self.state();
            let Some(entry) = st.tasks.remove(id.get()) else {
                return (AfterItem::Continue, Next::End);
            };
            let mut futs = Vec::new();
            let mut next = Next::End;
            match entry.phase {
                Phase::Running => {
                    st.running -= 1;
                    let keep_slot = runner.is_some()
                        && matches!(st.queue.front(), Some(Claim::Task(_)))
                        && st.limit.is_none_or(|l| st.slots_used <= l);
                    if keep_slot {
                        if let Some(job) = self.hand_over(&mut st) {
                            next = Next::Run(job);
                        }
                    } else {
                        st.slots_used -= 1;
                        futs = self.grant(&mut st);
                        if let Some(spare) =
                            runner.filter(|_| !st.closed && st.idle.len() < IDLE_CAP)
                        {
                            // Park this runtime task for the next task that starts at once.
                            let mailbox = spare.take().unwrap_or_else(Mailbox::new);
                            st.idle.push(mailbox.clone());
                            next = Next::Park(Parking::new(mailbox));
                        }
                    }
                }
                Phase::Item => st.running -= 1,
                Phase::Ending => st.ending -= 1,
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
            let after = if st.limit.is_some_and(|l| st.slots_used > l) {
                AfterItem::Yield
            } else {
                match st.queue.front() {
                    None => AfterItem::Continue,
                    Some(Claim::Worker(w))
                        if own_group.is_some_and(|own| std::ptr::addr_eq(Arc::as_ptr(w), own)) =>
                    {
                        // The slot would go to this claim, and its worker would run the group's
                        // next item, as this one can: keep the slot, save the runtime task.
                        st.queue.pop();
                        AfterItem::ContinueInPlaceOfClaim
                    }
                    Some(_) => AfterItem::Yield,
                }
            };
            (waker, futs, entry, after, next)
        };
        if let Some(w) = waker {
            w.wake();
        }
        let name = TaskName {
            pool: &self.name,
            custom: entry.control.name(),
            id,
        };
        match outcome {
            Outcome::Completed | Outcome::Panicked => {}
            Outcome::Cancelled => {
                tracing::debug!(pool = %self.name, task_id = id.get(), "Cancelled {name}")
            }
            Outcome::TimedOut => {
                tracing::warn!(pool = %self.name, task_id = id.get(), "{name} timed out")
            }
        }
        tracing::info!(pool = %self.name, task_id = id.get(), ?outcome, "Ended {name}");
        drop(entry);
        self.notify_changed();
        self.spawn_all(futs);
        (after, next)
    }

    /// Starts the task at the head of the queue in a slot its caller already holds.
    fn hand_over(self: &Arc<Self>, st: &mut State) -> Option<BoxJob> {
        let Some((key, Claim::Task(control))) = st.queue.pop() else {
            unreachable!("checked: the queue's head is a task");
        };
        self.start_queued(st, key, control)
    }

    /// A task that left the queue with a slot: now running; returns its job.
    fn start_queued(
        self: &Arc<Self>,
        st: &mut State,
        key: u64,
        control: Arc<dyn TaskControl>,
    ) -> Option<BoxJob> {
        st.queued -= 1;
        st.running += 1;
        control.started();
        st.tasks.insert(
            key,
            Entry {
                control: control.clone(),
                phase: Phase::Running,
                cancel_requested: false,
            },
        );
        control.launch(self, TaskId::new(key))
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
        self.notify_changed();
    }

    /// A batch group (no worker source) has submitted all its tasks.
    pub(crate) fn group_batch_done(&self) {
        self.state().pulling_groups -= 1;
        self.notify_changed();
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

    /// Requests cancellation of one task; returns a future to spawn if it was queued (it then
    /// runs without a slot: it sees the cancellation at once, runs its callbacks and resolves
    /// its handle, however busy the pool is).
    fn cancel_record(self: &Arc<Self>, st: &mut State, id: u64) -> Option<BoxFuture> {
        if let Some(entry) = st.tasks.get_mut(id) {
            if !entry.cancel_requested && entry.phase != Phase::Ending {
                entry.cancel_requested = true;
                entry.control.cancel(TaskId::new(id));
            }
            return None;
        }
        let ticket = st.queue.find(id, |c| matches!(c, Claim::Task(_)))?;
        let Some(Claim::Task(control)) = st.queue.take(ticket) else {
            return None;
        };
        st.queued -= 1;
        st.ending += 1;
        control.cancel(TaskId::new(id));
        st.tasks.insert(
            id,
            Entry {
                control: control.clone(),
                phase: Phase::Ending,
                cancel_requested: true,
            },
        );
        control.launch(self, TaskId::new(id)).map(Job::into_future)
    }

    fn is_queued_task(st: &State, id: u64) -> bool {
        st.queue.find(id, |c| matches!(c, Claim::Task(_))).is_some()
    }

    pub(crate) fn cancel(self: &Arc<Self>, ids: &[TaskId]) -> Result<(), PoolError> {
        let futs = {
            let mut st = self.state();
            let next = self.next_id.load(Ordering::Relaxed);
            for &id in ids {
                let pool = self.pool_name();
                match st.tasks.get(id.get()) {
                    Some(e) if e.cancel_requested => {
                        return Err(PoolError::AlreadyCancelled { pool, id })
                    }
                    Some(e) if e.phase == Phase::Ending => {
                        return Err(PoolError::AlreadyEnded { pool, id })
                    }
                    Some(_) => {}
                    None if Self::is_queued_task(&st, id.get()) => {}
                    None if id.get() < next => return Err(PoolError::AlreadyEnded { pool, id }),
                    None => return Err(PoolError::TaskNotFound { pool, id }),
                }
            }
            ids.iter()
                .filter_map(|id| self.cancel_record(&mut st, id.get()))
                .collect::<Vec<_>>()
        };
        self.spawn_all(futs);
        Ok(())
    }

    /// Cancels the `num` newest live tasks (queued first, then running ones not already being
    /// cancelled) and returns their ids, newest first. Picking and cancelling happen under one
    /// lock, so concurrent callers never pick the same task.
    pub(crate) fn stop_newest(self: &Arc<Self>, num: usize) -> Vec<TaskId> {
        let (ids, futs) = {
            let mut st = self.state();
            let mut ids = st.newest_live();
            ids.truncate(num);
            let futs: Vec<_> = ids
                .iter()
                .filter_map(|id| self.cancel_record(&mut st, id.get()))
                .collect();
            (ids, futs)
        };
        self.spawn_all(futs);
        ids
    }

    /// Cancels without validation; used by `stop` and handles. Unknown ids are skipped.
    pub(crate) fn cancel_quietly(self: &Arc<Self>, id: TaskId) {
        let fut = self.cancel_record(&mut self.state(), id.get());
        if let Some(fut) = fut {
            self.spawn(fut);
        }
    }

    pub(crate) fn cancel_group(self: &Arc<Self>, name: &str) -> Result<(), PoolError> {
        let futs = {
            let mut st = self.state();
            let Some(entry) = st.groups.remove(name) else {
                return Err(PoolError::GroupNotFound {
                    pool: self.pool_name(),
                    name: name.to_owned(),
                });
            };
            tracing::debug!(pool = %self.name, group = name, "{} cancelling tasks in group {name}", self.name);
            self.cancel_group_locked(&mut st, name, entry)
        };
        self.spawn_all(futs);
        Ok(())
    }

    fn cancel_group_locked(
        self: &Arc<Self>,
        st: &mut State,
        name: &str,
        entry: GroupEntry,
    ) -> Vec<BoxFuture> {
        if let Some(source) = entry.pulling {
            source.stop_pulling();
            // Its queued worker claims would only wait for a slot to find nothing to do.
            let dropped = st
                .queue
                .remove_where(|c| matches!(c, Claim::Worker(s) if same_source(s, &source)));
            for _ in dropped {
                if source.claim_dropped() {
                    st.pulling_groups -= 1;
                }
            }
        }
        let ids = Self::ids_in_group(st, name);
        ids.into_iter()
            .filter_map(|id| self.cancel_record(st, id.get()))
            .collect()
    }

    pub(crate) fn cancel_all(self: &Arc<Self>) {
        tracing::warn!(pool = %self.name, "{} cancelling all tasks!", self.name);
        let futs = {
            let mut st = self.state();
            let groups: Vec<_> = st.groups.drain().collect();
            let mut futs = Vec::new();
            for (name, entry) in groups {
                futs.extend(self.cancel_group_locked(&mut st, &name, entry));
            }
            let ids = Self::live_ids(&st);
            futs.extend(
                ids.into_iter()
                    .filter_map(|id| self.cancel_record(&mut st, id)),
            );
            futs
        };
        self.notify_changed();
        self.spawn_all(futs);
    }

    /// Every live task's id, ascending.
    fn live_ids(st: &State) -> Vec<u64> {
        let mut ids = st.tasks.ids();
        ids.extend(
            st.queue
                .iter()
                .filter(|(_, c)| matches!(c, Claim::Task(_)))
                .map(|(k, _)| k),
        );
        ids.sort_unstable();
        ids
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
        let (changed, idle) = {
            let mut st = self.state();
            st.locked = true;
            let changed = !std::mem::replace(&mut st.closed, true);
            (changed, std::mem::take(&mut st.idle))
        };
        // Nothing starts any more: parked runtime tasks end (and drop their hold on the pool).
        for mailbox in idle {
            mailbox.close();
        }
        if changed {
            tracing::info!(pool = %self.name, "{} is closed", self.name);
            self.notify_changed();
        }
    }

    pub(crate) fn set_limit(self: &Arc<Self>, limit: Option<usize>) -> Result<(), PoolError> {
        if limit == Some(0) {
            return Err(PoolError::InvalidLimit {
                what: "pool limit",
                value: 0,
            });
        }
        let futs = {
            let mut st = self.state();
            st.limit = limit;
            self.grant(&mut st)
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
        self.refuse_own_task(method)?;
        self.wait_until_from_anywhere(done).await;
        Ok(())
    }

    /// Errors if called from inside one of this pool's tasks, where waiting for the pool
    /// would wait for the caller itself.
    pub(crate) fn refuse_own_task(&self, method: &'static str) -> Result<(), PoolError> {
        if current::inside_pool(self.serial) {
            return Err(PoolError::CalledFromOwnTask {
                pool: self.pool_name(),
                method,
            });
        }
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
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiters);
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
        // The registry keeps its peak capacity otherwise (thousands of finished groups).
        let cap = st.groups.capacity();
        if cap > 1024 && st.groups.len() < cap / 8 {
            let keep = (cap / 4).max(st.groups.len());
            st.groups.shrink_to(keep);
        }
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
        let info = |id: u64, control: &Arc<dyn TaskControl>, state| TaskInfo {
            id: TaskId::new(id),
            name: self.task_name(control.name(), TaskId::new(id)),
            group: control.group().map(str::to_owned),
            state,
        };
        let mut out: Vec<TaskInfo> = st
            .tasks
            .iter()
            .map(|(id, e)| {
                let state = match e.phase {
                    Phase::Running | Phase::Item => TaskState::Running,
                    Phase::Ending => TaskState::Ending,
                };
                info(id, &e.control, state)
            })
            .collect();
        out.extend(st.queue.iter().filter_map(|(id, c)| match c {
            Claim::Task(control) => Some(info(id, control, TaskState::Queued)),
            Claim::Worker(_) => None,
        }));
        out.sort_by_key(|t| t.id);
        out
    }

    pub(crate) fn group_exists(&self, name: &str) -> bool {
        self.state().groups.contains_key(name)
    }

    /// Live tasks of the group (queued or running), ascending.
    pub(crate) fn ids_in_group(st: &State, name: &str) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = st
            .tasks
            .iter()
            .filter(|(_, e)| e.control.group() == Some(name))
            .map(|(id, _)| TaskId::new(id))
            .collect();
        ids.extend(st.queue.iter().filter_map(|(id, c)| match c {
            Claim::Task(control) if control.group() == Some(name) => Some(TaskId::new(id)),
            _ => None,
        }));
        ids.sort_unstable();
        ids
    }

    pub(crate) fn group_of(&self, id: TaskId) -> Option<String> {
        let st = self.state();
        st.tasks.get(id.get())?.control.group().map(str::to_owned)
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
    /// Live ids, newest first: queued ones, then running ones (not those being cancelled).
    pub(crate) fn newest_live(&self) -> Vec<TaskId> {
        let queued = self
            .queue
            .iter()
            .rev()
            .filter(|(_, c)| matches!(c, Claim::Task(_)))
            .map(|(id, _)| id);
        let mut running: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, e)| !e.cancel_requested && e.phase != Phase::Ending)
            .map(|(id, _)| id)
            .collect();
        running.sort_unstable_by(|a, b| b.cmp(a));
        queued.chain(running).map(TaskId::new).collect()
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

//! The model test's driver and reference model: applies the operations, and checks the pool
//! against what the model allows after every step and at the end.

use crate::bombs::{defuse, drop_quietly, Out};
use crate::ops::{Beh, Case, Ending, Inner, MapItem, Op, Pick, Reent, RetrySpec, Task};
use crate::support::{yield_n, BumpOnDrop, Counter, Gate, Sp};
use crate::tasks::{
    call_pool, configure, parent_future, retry_factory, start_item, start_task, task_future, Call,
    Ctx, ExecSlot, GroupConc, Input, Kind, Pulled, Rec, SpawnSlot, FAIL,
};
use async_taskpool::policy::{Quota, RetryPolicy};
use async_taskpool::runtime::{BoxFuture, SpawnError, Spawner};
use async_taskpool::{
    ExecError, Group, GroupSummary, PoolError, PoolStats, SimpleTaskPool, TaskError, TaskHandle,
    TaskId, TaskPool, TaskState,
};
use futures::{FutureExt, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// Ids from here on are never handed out in a case.
const UNKNOWN_ID: u64 = 1 << 40;

/// A case that takes longer than this hangs: fail it rather than stall. Cases take
/// milliseconds; `TASKPOOL_MODEL_WATCHDOG_SECS` overrides it (a short one shrinks hangs
/// faster).
pub fn watchdog() -> Duration {
    let secs = std::env::var("TASKPOOL_MODEL_WATCHDOG_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(secs)
}

/// Runs one case under the watchdog. `strict`: the runtime polls everything on one thread.
pub async fn guarded(sp: Sp, case: Case, strict: bool) {
    let limit = watchdog();
    let timer = sp.sleep(limit);
    let run = Box::pin(run_case(sp, case.clone(), strict));
    match futures::future::select(run, timer).await {
        futures::future::Either::Left(((), _)) => {}
        futures::future::Either::Right(_) => {
            panic!("case did not finish within {limit:?} (a hang): {case:?}")
        }
    }
}

/// The `exec` answer with the output's tag taken out and a panic payload defused.
pub fn exec_tag(res: Result<Out, ExecError>) -> Result<usize, ExecError> {
    match res {
        Ok(out) => Ok(out.tag()),
        Err(ExecError::Task(e)) => Err(ExecError::Task(defuse(e))),
        Err(e) => Err(e),
    }
}

/// A task's answer with the output's tag taken out and a panic payload defused.
fn task_tag(res: Result<Out, TaskError>) -> Result<usize, TaskError> {
    res.map(Out::tag).map_err(defuse)
}

/// Wraps the case's spawner to see when the pool lets go of it: once every handle is gone
/// and every task has ended, nothing may hold the pool any more.
struct FreedSpawner {
    inner: Sp,
    freed: Counter,
}

impl Drop for FreedSpawner {
    fn drop(&mut self) {
        self.freed.bump();
    }
}

impl Spawner for FreedSpawner {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        self.inner.spawn(fut)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture {
        self.inner.sleep(duration)
    }
    fn runtime_name(&self) -> &'static str {
        self.inner.runtime_name()
    }
    // So that on tokio's current-thread runtime the model's `exec`s run in their callers.
    fn is_current_thread(&self) -> bool {
        self.inner.is_current_thread()
    }
}

#[path = "finals.rs"]
mod finals;

// ----- the reference model -----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Completed,
    Cancelled,
    Panicked,
    TimedOut,
    /// It could not start within its `max_queue_wait`.
    Shed,
}

fn outcome_of(r: &Rec) -> Outcome {
    if r.shed {
        Outcome::Shed
    } else if r.on_cancel > 0 {
        Outcome::Cancelled
    } else if r.completed > 0 {
        Outcome::Completed
    } else if r.panicked > 0 {
        Outcome::Panicked
    } else if r.fail_runs > 0 && r.fail_panicked {
        // A retried task whose every attempt failed: the last failure is its outcome.
        Outcome::Panicked
    } else if r.fail_runs > 0 {
        Outcome::Completed
    } else if r.plain {
        // Never slow: it did not finish because it was cancelled.
        Outcome::Cancelled
    } else {
        Outcome::TimedOut
    }
}

/// Whether something holds, does not, or may (it depends on an interleaving the model does
/// not see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    No,
    Yes,
    Maybe,
}

impl Tri {
    fn of(b: bool) -> Self {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }
}

/// Where a loose task came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Submitted by the driver.
    Driver,
    /// `spawn_queued` from a map's input or closure, made in window `w` (it may not happen).
    Reentrant(usize),
    /// `exec` or `spawn` from inside the loose task `parent` (it may not happen).
    Child(usize, Inner),
}

struct Single {
    task: Task,
    gate: Option<usize>,
    step: usize,
    origin: Origin,
    /// The id is in `lo..hi` (exact when no map allocates ids meanwhile).
    lo: u64,
    hi: u64,
    /// Its id, once known (the handle may be gone).
    id: Option<u64>,
    handle: Option<TaskHandle<Out>>,
    spawn_slot: Option<SpawnSlot>,
    exec_slot: Option<ExecSlot>,
    /// Withdrawn `spawn` or dropped `exec`.
    dropped_at: Option<usize>,
    /// Retried from a factory: how its attempts fail.
    retry: Option<RetrySpec>,
    /// Submitted with a `max_queue_wait`: `Some(true)` if the model knew it must be shed
    /// (every slot held by a task at a closed gate while it waited), and saw it so.
    shed: Option<bool>,
    /// Its handle's answer, awaited by the driver before the end.
    early: Option<Result<usize, TaskError>>,
}

impl Single {
    fn new(task: Task, gate: Option<usize>, step: usize, origin: Origin) -> Self {
        Self {
            task,
            gate,
            step,
            origin,
            lo: 0,
            hi: 0,
            id: None,
            handle: None,
            spawn_slot: None,
            exec_slot: None,
            dropped_at: None,
            retry: None,
            shed: None,
            early: None,
        }
    }

    /// Whether it may end before its gate opens without being asked to cancel: shed, or
    /// failed in all its attempts.
    fn may_end_ungated(&self) -> bool {
        self.shed.is_some() || self.retry.is_some_and(|r| r.fails >= r.max)
    }

    fn beh(&self) -> Beh {
        self.task.beh
    }

    fn known_id(&self) -> Option<u64> {
        if let Some(id) = self.id.or(self.handle.as_ref().map(|h| h.id().get())) {
            return Some(id);
        }
        if let Some(slot) = &self.spawn_slot {
            if let Some(Ok(h)) = &*slot.lock().unwrap() {
                return Some(h.id().get());
            }
        }
        (self.origin == Origin::Driver && self.hi == self.lo + 1).then_some(self.lo)
    }

    fn known_retired(&self) -> bool {
        let slot_done =
            |s: &SpawnSlot| matches!(&*s.lock().unwrap(), Some(Ok(h)) if h.is_finished());
        self.early.is_some()
            || self.handle.as_ref().is_some_and(TaskHandle::is_finished)
            || self.spawn_slot.as_ref().is_some_and(slot_done)
            || self
                .exec_slot
                .as_ref()
                .is_some_and(|s| self.origin == Origin::Driver && s.lock().unwrap().is_some())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Yes,
    No,
    Maybe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GKind {
    Map,
    Apply,
    Start(u64),
}

type JoinFut = Pin<Box<dyn Future<Output = Result<GroupSummary, PoolError>> + Send>>;

struct GroupRec {
    name: String,
    kind: GKind,
    /// The handle, while the driver reads the group's results.
    group: Option<Group<Out>>,
    /// Detached into a `join()` (results discarded): its answer comes here.
    joined: Option<JoinFut>,
    summary: Option<GroupSummary>,
    /// Its `Group` was dropped at this step: nothing tells when it finishes...
    dropped_at: Option<usize>,
    /// ...but the pool was idle since, so it has.
    seen_idle: bool,
    /// Map and apply items (start items' tasks follow from their ids).
    items: Vec<Task>,
    gate: Option<usize>,
    ordered: bool,
    step: usize,
    /// Ids handed out before the group was made: its items' ids are at least this.
    first_id: u64,
    /// A start group's ids, when the model saw them handed out alone.
    start_ids: Option<(u64, u64)>,
    cancel_steps: Vec<usize>,
    reg: Reg,
    /// A map with a keyed rate limit.
    keyed: bool,
    /// A map with a `max_queue_wait`: items not started in time are shed.
    sheds: bool,
}

/// What a call into the pool from user code may change, until its group is seen finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eff {
    CancelAll,
    CancelGroup(usize),
    Lock,
    Unlock,
    Spawn,
    Read,
}

/// A call into the pool from a map's input or closure: it happens at some moment from step
/// `from` until the step its group was first seen finished (`until`), or never (if the
/// group is cancelled before it gets there).
#[derive(Debug, Clone, Copy)]
struct Window {
    group: usize,
    from: usize,
    until: Option<usize>,
    eff: Eff,
}

impl Window {
    fn open(&self) -> bool {
        self.until.is_none()
    }
    /// Whether it may have acted after step `t` began.
    fn after(&self, t: usize) -> bool {
        t < self.until.unwrap_or(usize::MAX)
    }
}

struct FlushSnap {
    sub1: u64,
    live1: BTreeSet<u64>,
    sub2: u64,
    live2: BTreeSet<u64>,
    a: Vec<Option<GroupSummary>>,
    b: Vec<Option<GroupSummary>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    NotFound,
    Ended,
    Cancelled,
}

struct Model {
    sp: Sp,
    strict: bool,
    pool: Option<TaskPool>,
    simple: Option<SimpleTaskPool<Out>>,
    ctx: Arc<Ctx>,
    limit: Option<usize>,
    locked: Tri,
    closed: bool,
    singles: Vec<Single>,
    groups: Vec<GroupRec>,
    gates: Vec<(Gate, Option<usize>)>,
    /// The gate `start` items wait at now.
    start_gate: Option<usize>,
    id_cancels: Vec<(u64, usize)>,
    cancel_all_steps: Vec<usize>,
    /// Ids handed out before the last `cancel_all`: all were asked to cancel.
    cancel_all_floor: u64,
    windows: Vec<Window>,
    /// Steps at which the driver locked or closed the pool.
    lock_events: Vec<usize>,
    /// The lock state at the start of each step.
    locked_at: Vec<Tri>,
    /// Ids handed out when the pool closed, and the step it closed at.
    closed_at: Option<(u64, usize)>,
    /// Tasks parked at their gate just before each cancelling step.
    parked: BTreeMap<usize, BTreeSet<u64>>,
    flush: Option<FlushSnap>,
    continuations: usize,
    done: Counter,
    last_single_id: Option<u64>,
    freed: Counter,
    /// Map closures made, and those dropped (their group's driver went): once all are, no
    /// map input or closure calls the pool any more.
    closures: usize,
    closures_dropped: Counter,
    /// Retried singles cancelled in their backoff (seen there, one thread polling
    /// everything): key, id, and the failing attempts they had run.
    backoff_cancels: Vec<(usize, u64, u32)>,
}

fn cap_of(limit: Option<usize>) -> usize {
    limit.unwrap_or(usize::MAX)
}

fn base_outcome(beh: Beh) -> Outcome {
    match beh {
        Beh::Now | Beh::Yield(_) | Beh::Gate => Outcome::Completed,
        Beh::Panic | Beh::PanicBomb => Outcome::Panicked,
        Beh::Slow => Outcome::TimedOut,
    }
}

/// The outcomes a task may end with, given the steps at which it was surely asked to cancel
/// and whether something else may have asked it (`maybe`). `sure(c)`: at step `c` the task
/// existed and no poll of it can have been in flight (one thread polls everything, or the
/// task was parked at its gate).
fn allowed_final(
    beh: Beh,
    release: Option<usize>,
    cancels: &[usize],
    maybe: bool,
    sure: impl Fn(usize) -> bool,
) -> Vec<Outcome> {
    let base = base_outcome(beh);
    if cancels.is_empty() && !maybe {
        return vec![base];
    }
    // Waiting at a closed gate, it cannot finish before it sees the cancellation. (A poll
    // that began before the cancel, on another thread, may see the gate open: that task
    // finished before it noticed, and keeps its output, as documented.)
    let gated = |c: usize| release.is_none_or(|r| c < r);
    if beh == Beh::Gate && cancels.iter().any(|&c| gated(c) && sure(c)) {
        return vec![Outcome::Cancelled];
    }
    // It may have finished before it noticed.
    vec![base, Outcome::Cancelled]
}

fn err_outcome(e: &TaskError) -> Outcome {
    if e.is_shed() {
        Outcome::Shed
    } else if e.is_cancelled() {
        Outcome::Cancelled
    } else if e.is_panic() {
        Outcome::Panicked
    } else if e.is_timeout() {
        Outcome::TimedOut
    } else {
        panic!("unexpected task error {e}")
    }
}

fn out_of<T>(res: &Result<T, TaskError>) -> Outcome {
    match res {
        Ok(_) => Outcome::Completed,
        Err(e) => err_outcome(e),
    }
}

fn pool_err_name(e: &PoolError) -> &'static str {
    match e {
        PoolError::Closed { .. } => "Closed",
        PoolError::Locked { .. } => "Locked",
        PoolError::Full { .. } => "Full",
        PoolError::TaskNotFound { .. } => "TaskNotFound",
        PoolError::AlreadyCancelled { .. } => "AlreadyCancelled",
        PoolError::AlreadyEnded { .. } => "AlreadyEnded",
        PoolError::GroupNotFound { .. } => "GroupNotFound",
        PoolError::GroupExists { .. } => "GroupExists",
        PoolError::GroupEnded { .. } => "GroupEnded",
        PoolError::InvalidLimit { .. } => "InvalidLimit",
        PoolError::CalledFromOwnTask { .. } => "CalledFromOwnTask",
        _ => "other",
    }
}

/// Whether a submission is surely accepted (`Yes`), surely refused, or either.
fn accepts(locked: Tri, closed: bool) -> Tri {
    match (closed, locked) {
        (true, _) | (_, Tri::Yes) => Tri::No,
        (false, Tri::No) => Tri::Yes,
        (false, Tri::Maybe) => Tri::Maybe,
    }
}

fn check_refusal<T: std::fmt::Debug>(
    res: &Result<T, PoolError>,
    locked: Tri,
    closed: bool,
    what: &str,
) {
    match (res, accepts(locked, closed)) {
        (Ok(_), Tri::Yes | Tri::Maybe) => {}
        (Err(e), Tri::No | Tri::Maybe) => {
            let want = if closed { "Closed" } else { "Locked" };
            assert_eq!(pool_err_name(e), want, "{what}: {e}");
        }
        (r, acc) => panic!("{what}: got {r:?}, the pool accepts: {acc:?}"),
    }
}

impl Model {
    fn pool(&self) -> &TaskPool {
        self.pool.as_ref().expect("the driver holds the pool")
    }

    fn simple(&self) -> &SimpleTaskPool<Out> {
        self.simple.as_ref().expect("the driver holds the pool")
    }

    /// `task` as submitted: a future whose destructor panics is dropped inside the pool's
    /// guard whether the pool accepts it or not (a refused one too, since issue 10's fix).
    fn armable(&self, task: Task) -> Task {
        task
    }

    fn new_gate(&mut self, needed: bool) -> (Option<usize>, Option<Gate>) {
        if !needed {
            return (None, None);
        }
        let g = Gate::new();
        self.gates.push((g.clone(), None));
        (Some(self.gates.len() - 1), Some(g))
    }

    fn release_all(&mut self, step: usize) {
        for (g, released) in &mut self.gates {
            if released.is_none() {
                g.open();
                *released = Some(step);
            }
        }
    }

    /// Whether group `g` has finished: `None` if the driver cannot tell (its `Group` was
    /// dropped and the pool was not idle since).
    fn group_finished(&mut self, g: usize) -> Option<bool> {
        let gr = &mut self.groups[g];
        if let Some(group) = &gr.group {
            return Some(group.is_finished());
        }
        if gr.summary.is_some() {
            return Some(true);
        }
        if let Some(fut) = gr.joined.as_mut() {
            return match fut.as_mut().now_or_never() {
                Some(res) => {
                    gr.summary = Some(res.expect("join from outside the pool"));
                    gr.joined = None;
                    Some(true)
                }
                None => Some(false),
            };
        }
        gr.seen_idle.then_some(true)
    }

    /// The group's summary now, if the driver can read it.
    fn group_summary_now(&mut self, g: usize) -> Option<GroupSummary> {
        self.group_finished(g);
        let gr = &self.groups[g];
        gr.group.as_ref().map(Group::summary).or(gr.summary)
    }

    /// Whether nothing but the driver hands out ids now: every group settled, and every task
    /// that submits a child has ended.
    fn all_groups_settled(&mut self) -> bool {
        let parents_done = self.singles.iter().all(|s| match s.origin {
            Origin::Child(p, _) => self.singles[p].known_retired(),
            _ => true,
        });
        parents_done && (0..self.groups.len()).all(|g| self.group_finished(g) == Some(true))
    }

    /// At the start of each step: closes the windows of calls from user code whose groups
    /// finished, applies what they may have done to the groups' registrations, and reads the
    /// lock state back once nothing else can change it.
    fn refresh(&mut self, step: usize) {
        for w in 0..self.windows.len() {
            let g = self.windows[w].group;
            if self.windows[w].open() && self.group_finished(g) == Some(true) {
                self.windows[w].until = Some(step);
            }
        }
        for w in self.windows.clone() {
            let maybe = |gr: &mut GroupRec| {
                if gr.reg == Reg::Yes {
                    gr.reg = Reg::Maybe;
                }
            };
            match w.eff {
                Eff::CancelAll => {
                    for gr in self.groups.iter_mut().filter(|gr| w.after(gr.step)) {
                        maybe(gr);
                    }
                }
                Eff::CancelGroup(t) => maybe(&mut self.groups[t]),
                _ => {}
            }
        }
        if self.locked == Tri::Maybe && !self.lock_calls_pending() {
            if let Some(pool) = &self.pool {
                self.locked = Tri::of(pool.is_locked());
            }
        }
    }

    fn lock_calls_pending(&self) -> bool {
        self.windows
            .iter()
            .any(|w| w.open() && matches!(w.eff, Eff::Lock | Eff::Unlock))
    }

    /// Whether a call made at some moment from step `from` until step `until` may have met a
    /// locked or closed pool.
    fn maybe_refusing(&self, from: usize, until: Option<usize>) -> bool {
        let until = until.unwrap_or(usize::MAX);
        self.locked_at.get(from).is_none_or(|&l| l != Tri::No)
            || self.lock_events.iter().any(|&s| from <= s && s < until)
            || self
                .windows
                .iter()
                .any(|w| w.eff == Eff::Lock && w.from < until && w.after(from))
    }

    /// Whether a call from user code may have cancelled everything submitted at step `t`.
    fn window_cancels_all(&self, t: usize) -> bool {
        self.windows
            .iter()
            .any(|w| w.eff == Eff::CancelAll && w.after(t))
    }

    /// Whether a call from user code may have cancelled group `g`.
    fn window_cancels_group(&self, g: usize) -> bool {
        let step = self.groups[g].step;
        self.windows.iter().any(|w| match w.eff {
            Eff::CancelAll => w.after(step),
            Eff::CancelGroup(t) => t == g,
            _ => false,
        })
    }

    fn submitted(&self) -> u64 {
        self.pool().stats().submitted
    }

    fn push_single(&mut self, task: Task, gate: Option<usize>, step: usize, lo: u64) -> usize {
        let hi = self.submitted();
        let mut s = Single::new(task, gate, step, Origin::Driver);
        s.lo = lo;
        s.hi = hi;
        self.singles.push(s);
        self.singles.len() - 1
    }

    fn note_handle(&mut self, key: usize, h: TaskHandle<Out>, settled: bool) {
        let s = &mut self.singles[key];
        let id = h.id().get();
        assert!(
            (s.lo..s.hi).contains(&id),
            "task id {id} outside the ids handed out meanwhile {}..{}",
            s.lo,
            s.hi
        );
        if settled {
            assert_eq!(id, s.lo, "ids are sequential at submission");
        }
        if let Some(last) = self.last_single_id {
            assert!(
                id > last,
                "ids grow with submission order: {id} after {last}"
            );
        }
        self.last_single_id = Some(id);
        s.id = Some(id);
        s.handle = Some(h);
    }

    /// Whether a cancel at step `c` surely reached task `id` before any poll of it could see
    /// its gate open.
    fn sure(&self, c: usize, id: u64) -> bool {
        self.strict || self.parked.get(&c).is_some_and(|p| p.contains(&id))
    }

    fn tasks_parked(&self) -> BTreeSet<u64> {
        self.ctx
            .tracer
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.parked)
            .map(|(id, _)| *id)
            .collect()
    }

    async fn apply(&mut self, op: &Op, step: usize) {
        self.refresh(step);
        self.locked_at.push(self.locked);
        if matches!(
            op,
            Op::Spawn(..)
                | Op::Exec(..)
                | Op::Cancel(_)
                | Op::CancelGroup(_)
                | Op::CancelAll
                | Op::Stop(_)
                | Op::ConcurrentStop(_)
        ) {
            // Nothing wakes a task parked at a closed gate but the gate or a cancel: no poll
            // of it is in flight when this step cancels it.
            let parked = self.tasks_parked();
            self.parked.insert(step, parked);
        }
        let (locked, closed) = (self.locked, self.closed);
        match op {
            Op::Spawn(task, drop_if_waiting) => {
                let task = &self.armable(*task);
                let key = self.singles.len();
                let (gi, gate) = self.new_gate(task.beh == Beh::Gate);
                let settled = self.all_groups_settled();
                let lo = self.submitted();
                let fut = task_future(
                    self.ctx.clone(),
                    Kind::Single(key),
                    *task,
                    gate,
                    None,
                    key,
                    false,
                );
                let (p, ctx, beh) = (self.pool().clone(), self.ctx.clone(), task.beh);
                let mut f: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
                    configure(&ctx, p.build_task(), key, beh, false)
                        .spawn(fut)
                        .await
                });
                match futures::poll!(f.as_mut()) {
                    std::task::Poll::Ready(res) => {
                        check_refusal(&res, locked, closed, "spawn");
                        if let Ok(h) = res {
                            let key = self.push_single(*task, gi, step, lo);
                            self.note_handle(key, h, settled);
                        }
                    }
                    std::task::Poll::Pending => {
                        assert_ne!(
                            accepts(locked, closed),
                            Tri::No,
                            "spawn accepted while refusing"
                        );
                        let key = self.push_single(*task, gi, step, lo);
                        if *drop_if_waiting {
                            drop(f);
                            self.singles[key].dropped_at = Some(step);
                        } else {
                            let slot: SpawnSlot = Arc::default();
                            let (s, done) = (slot.clone(), self.done.clone());
                            self.continuations += 1;
                            self.sp
                                .spawn(Box::pin(async move {
                                    let r = f.await;
                                    *s.lock().unwrap() = Some(r);
                                    done.bump();
                                }))
                                .unwrap();
                            self.singles[key].spawn_slot = Some(slot);
                        }
                    }
                }
            }
            Op::SpawnQueued(task, drop_handle) => self.submit_now(step, *task, *drop_handle, false),
            Op::TrySpawn(task) => self.submit_now(step, *task, false, true),
            Op::Burst(tasks) => {
                for &(task, drop_handle) in tasks {
                    self.submit_now(step, task, drop_handle, false);
                }
            }
            Op::Exec(task, drop_it) => {
                let task = &self.armable(*task);
                let key = self.singles.len();
                let (gi, gate) = self.new_gate(task.beh == Beh::Gate);
                let lo = self.submitted();
                let fut = task_future(
                    self.ctx.clone(),
                    Kind::Single(key),
                    *task,
                    gate,
                    None,
                    key,
                    false,
                );
                let (p, ctx, beh) = (self.pool().clone(), self.ctx.clone(), task.beh);
                let mut f: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
                    exec_tag(
                        configure(&ctx, p.build_task(), key, beh, false)
                            .exec(fut)
                            .await,
                    )
                });
                match futures::poll!(f.as_mut()) {
                    std::task::Poll::Ready(Err(ExecError::Pool(e))) => {
                        check_refusal::<()>(&Err(e), locked, closed, "exec");
                    }
                    std::task::Poll::Ready(res) => {
                        assert_ne!(
                            accepts(locked, closed),
                            Tri::No,
                            "exec accepted while refusing"
                        );
                        let key = self.push_single(*task, gi, step, lo);
                        self.singles[key].exec_slot = Some(Arc::new(Mutex::new(Some(res))));
                    }
                    std::task::Poll::Pending => {
                        assert_ne!(
                            accepts(locked, closed),
                            Tri::No,
                            "exec accepted while refusing"
                        );
                        let key = self.push_single(*task, gi, step, lo);
                        if *drop_it {
                            drop(f);
                            self.singles[key].dropped_at = Some(step);
                        } else {
                            let slot: ExecSlot = Arc::default();
                            let (s, done) = (slot.clone(), self.done.clone());
                            self.continuations += 1;
                            self.sp
                                .spawn(Box::pin(async move {
                                    let r = f.await;
                                    *s.lock().unwrap() = Some(r);
                                    done.bump();
                                }))
                                .unwrap();
                            self.singles[key].exec_slot = Some(slot);
                        }
                    }
                }
            }
            Op::Apply(n, task) => {
                let g = self.groups.len();
                let (gi, gate) = self.new_gate(task.beh == Beh::Gate);
                let conc = Arc::new(GroupConc {
                    nc: usize::MAX,
                    running: AtomicUsize::new(0),
                });
                let first_id = self.submitted();
                let (ctx, task) = (self.ctx.clone(), *task);
                let b = self.group_builder(g, task.beh == Beh::Slow);
                let res = b.apply(usize::from(*n), move || {
                    task_future(
                        ctx.clone(),
                        Kind::Item(g),
                        task,
                        gate.clone(),
                        Some(conc.clone()),
                        0,
                        false,
                    )
                });
                check_refusal(&res, locked, closed, "apply");
                if let Ok(group) = res {
                    self.push_group(group, GKind::Apply, vec![task; usize::from(*n)], gi, false);
                    self.groups[g].step = step;
                    self.groups[g].first_id = first_id;
                }
            }
            Op::Map {
                items,
                nc,
                ordered,
                timeout,
                keyed,
                shed,
            } => self.map(step, items, *nc, *ordered, *timeout, (*keyed, *shed)),
            Op::Retry(task, spec, wait) => self.retry(step, *task, *spec, *wait).await,
            Op::Shed(task, wait) => self.shed(step, *task, *wait).await,
            Op::Start(n) => {
                let g = self.groups.len();
                // Items wait at the newest start gate: a new one if the last one is open.
                let gi = match self.start_gate {
                    Some(i) if self.gates[i].1.is_none() => i,
                    _ => {
                        let (gi, gate) = self.new_gate(true);
                        *self.ctx.start_gate.lock().unwrap() = gate.unwrap();
                        self.start_gate = gi;
                        gi.unwrap()
                    }
                };
                let lo = self.submitted();
                let res = self.simple().start(usize::from(*n));
                let hi = self.submitted();
                check_refusal(&res, locked, closed, "start");
                if let Ok(group) = res {
                    let n = u64::from(*n);
                    self.push_group(group, GKind::Start(n), Vec::new(), Some(gi), false);
                    let gr = &mut self.groups[g];
                    gr.step = step;
                    gr.first_id = lo;
                    gr.start_ids = (hi - lo == n).then_some((lo, hi));
                }
            }
            Op::FromTask(inner, child) => {
                let (pk, ck) = (self.singles.len(), self.singles.len() + 1);
                let (gi, gate) = self.new_gate(child.beh == Beh::Gate);
                let settled = self.all_groups_settled();
                let lo = self.submitted();
                let (exec_slot, spawn_slot): (ExecSlot, SpawnSlot) = Default::default();
                let fut = parent_future(
                    self.ctx.clone(),
                    self.pool().clone(),
                    pk,
                    ck,
                    *inner,
                    *child,
                    gate,
                    exec_slot.clone(),
                    spawn_slot.clone(),
                    self.strict,
                );
                let res = configure(&self.ctx, self.pool().build_task(), pk, Beh::Now, false)
                    .spawn_queued(fut);
                check_refusal(&res, locked, closed, "spawn_queued (a parent)");
                if let Ok(h) = res {
                    let pk = self.push_single(Task::plain(Beh::Now), None, step, lo);
                    self.note_handle(pk, h, settled);
                    let mut c = Single::new(*child, gi, step, Origin::Child(pk, *inner));
                    match inner {
                        Inner::Exec => c.exec_slot = Some(exec_slot),
                        Inner::Spawn => c.spawn_slot = Some(spawn_slot),
                    }
                    self.singles.push(c);
                    debug_assert_eq!(self.singles.len() - 1, ck);
                }
            }
            Op::Cancel(picks) => {
                let backoff = self.in_backoff();
                let sub = self.submitted();
                let ids: Vec<u64> = picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Known(k) if sub > 0 => u64::from(k) % sub,
                        Pick::Known(_) => UNKNOWN_ID,
                        Pick::Unknown(k) => UNKNOWN_ID + u64::from(k),
                    })
                    .collect();
                let allowed: Vec<Vec<Status>> =
                    ids.iter().map(|&id| self.allowed_cancel(id)).collect();
                let res = self.pool().cancel(ids.iter().map(|&i| TaskId::new(i)));
                match res {
                    Ok(()) => {
                        self.backoff_cancels
                            .extend(backoff.into_iter().filter(|b| ids.contains(&b.1)));
                        for (id, a) in ids.iter().zip(&allowed) {
                            assert!(
                                a.contains(&Status::Ok),
                                "cancel({ids:?}) succeeded, but {id} allows {a:?}"
                            );
                            self.id_cancels.push((*id, step));
                        }
                    }
                    Err(e) => {
                        let (st, eid) = match &e {
                            PoolError::TaskNotFound { id, .. } => (Status::NotFound, id.get()),
                            PoolError::AlreadyEnded { id, .. } => (Status::Ended, id.get()),
                            PoolError::AlreadyCancelled { id, .. } => (Status::Cancelled, id.get()),
                            other => panic!("cancel: unexpected error {other}"),
                        };
                        let first = ids
                            .iter()
                            .position(|&i| i == eid)
                            .expect("the error names an id asked for");
                        assert!(
                            allowed[first].contains(&st),
                            "cancel({ids:?}): {e}, but {eid} allows {:?}",
                            allowed[first]
                        );
                        for (id, a) in ids[..first].iter().zip(&allowed) {
                            assert!(
                                a.contains(&Status::Ok),
                                "cancel({ids:?}): {e}, but earlier {id} allows only {a:?}"
                            );
                        }
                    }
                }
            }
            Op::CancelGroup(k) => {
                let n = self.groups.len();
                let g = usize::from(*k) % (n + 1);
                if g == n {
                    let res = self.pool().cancel_group("no-such-group");
                    assert!(
                        matches!(res, Err(PoolError::GroupNotFound { .. })),
                        "{res:?}"
                    );
                    return;
                }
                let gr = &self.groups[g];
                let (res, ended) = match &gr.group {
                    // The handle acts on its own group only.
                    Some(group) => (group.cancel(), "GroupEnded"),
                    // Detached: by name, which no other group of the case takes.
                    None => (self.pool().cancel_group(&gr.name), "GroupNotFound"),
                };
                let gr = &mut self.groups[g];
                match (gr.reg, &res) {
                    (Reg::Yes | Reg::Maybe, Ok(())) => {
                        gr.reg = Reg::No;
                        gr.cancel_steps.push(step);
                    }
                    // A handle whose group was cancelled or flushed reports that its group ended.
                    (Reg::No | Reg::Maybe, Err(e)) if pool_err_name(e) == ended => {
                        gr.reg = Reg::No;
                    }
                    (reg, res) => panic!("cancel_group of a group registered {reg:?}: {res:?}"),
                }
            }
            Op::CancelAll => {
                let backoff = self.in_backoff();
                self.backoff_cancels.extend(backoff);
                let floor = self.submitted();
                self.pool().cancel_all();
                self.cancel_all_steps.push(step);
                self.cancel_all_floor = floor;
                for g in &mut self.groups {
                    g.reg = Reg::No;
                }
            }
            Op::Stop(n) => {
                let surely = self.surely_live();
                let before = self.retired_ids();
                let ids: Vec<u64> = self
                    .simple()
                    .stop(usize::from(*n))
                    .iter()
                    .map(|i| i.get())
                    .collect();
                assert!(ids.len() <= usize::from(*n), "stop({n}) stopped {ids:?}");
                // Newest first: waiting tasks, then running ones.
                let rises = ids.windows(2).filter(|w| w[0] < w[1]).count();
                assert!(rises <= 1, "stop({n}): {ids:?} not newest first");
                self.check_stopped(step, &ids, &before, usize::from(*n), surely, "stop");
            }
            Op::ConcurrentStop(k) => {
                let k = usize::from(*k);
                let surely = self.surely_live();
                let before = self.retired_ids();
                let barrier = Barrier::new(k);
                let simple = self.simple().clone();
                let per_thread: Vec<Vec<TaskId>> = std::thread::scope(|s| {
                    let callers: Vec<_> = (0..k)
                        .map(|_| {
                            s.spawn(|| {
                                barrier.wait();
                                simple.stop(1)
                            })
                        })
                        .collect();
                    callers.into_iter().map(|c| c.join().unwrap()).collect()
                });
                assert!(
                    per_thread.iter().all(|ids| ids.len() <= 1),
                    "stop(1) from {k} threads: {per_thread:?}"
                );
                let ids: Vec<u64> = per_thread.iter().flatten().map(|i| i.get()).collect();
                if ids.len() > 1 {
                    crate::cover("concurrent stops stopped several tasks");
                }
                self.check_stopped(step, &ids, &before, k, surely, "concurrent stop(1)");
            }
            Op::Detach(k, drop_it) => {
                if self.groups.is_empty() {
                    return;
                }
                let g = usize::from(*k) % self.groups.len();
                let Some(group) = self.groups[g].group.take() else {
                    return;
                };
                crate::cover("a group was detached");
                if *drop_it {
                    // Its unread results (outputs, panic payloads) are the pool's to drop,
                    // now and as later items end.
                    drop(group);
                    self.groups[g].dropped_at = Some(step);
                } else {
                    let mut join: JoinFut = Box::pin(group.join());
                    match join.as_mut().now_or_never() {
                        Some(res) => {
                            self.groups[g].summary = Some(res.expect("join from outside"));
                        }
                        None => self.groups[g].joined = Some(join),
                    }
                }
            }
            Op::Lock => {
                self.pool().lock();
                self.lock_events.push(step);
                self.locked = if self.lock_calls_pending() {
                    Tri::Maybe
                } else {
                    Tri::Yes
                };
            }
            Op::Unlock => {
                self.pool().unlock();
                self.locked = if self.closed {
                    Tri::Yes
                } else if self.lock_calls_pending() {
                    Tri::Maybe
                } else {
                    Tri::No
                };
            }
            Op::SetLimit(l) => {
                let l = l.map(usize::from);
                if l == Some(0) {
                    let res = self.pool().set_limit(l);
                    assert!(
                        matches!(res, Err(PoolError::InvalidLimit { .. })),
                        "{res:?}"
                    );
                    return;
                }
                // Tasks already running may exceed a lowered limit until they end: keep the
                // highest limit since the pool was last idle as the bound.
                self.ctx.cap.fetch_max(cap_of(l), SeqCst);
                self.pool().set_limit(l).unwrap();
                self.limit = l;
            }
            Op::Release(k) => {
                if !self.gates.is_empty() {
                    let i = usize::from(*k) % self.gates.len();
                    let (g, released) = &mut self.gates[i];
                    if released.is_none() {
                        g.open();
                        *released = Some(step);
                    }
                }
            }
            Op::Join => {
                let p = self.pool().clone();
                self.wait_idle(step, Box::pin(async move { p.join().await }))
                    .await;
            }
            Op::GatherAndClose => {
                let p = self.pool().clone();
                self.lock_events.push(step);
                self.wait_idle(step, Box::pin(async move { p.gather_and_close().await }))
                    .await;
                self.closed_at.get_or_insert((self.submitted(), step));
                self.locked = Tri::Yes;
                self.closed = true;
            }
            Op::Close => {
                self.pool().close();
                self.lock_events.push(step);
                self.closed_at.get_or_insert((self.submitted(), step));
                self.locked = Tri::Yes;
                self.closed = true;
            }
            Op::Flush => self.do_flush().await,
        }
    }

    /// `spawn_queued` (or `try_spawn`): the handle comes back at once, and is dropped at once
    /// if `drop_handle` is set.
    fn submit_now(&mut self, step: usize, task: Task, drop_handle: bool, try_spawn: bool) {
        let (locked, closed) = (self.locked, self.closed);
        // A refused try_spawn gives the future back.
        let task = if try_spawn { task } else { self.armable(task) };
        // A plain task has no callbacks, so no timeout to end a slow one.
        let task = Task {
            beh: match task.beh {
                Beh::Slow if task.plain => Beh::Now,
                b => b,
            },
            ..task
        };
        let key = self.singles.len();
        let (gi, gate) = self.new_gate(task.beh == Beh::Gate);
        let settled = self.all_groups_settled();
        let lo = self.submitted();
        let fut = task_future(
            self.ctx.clone(),
            Kind::Single(key),
            task,
            gate,
            None,
            key,
            false,
        );
        let b = if task.plain {
            self.pool().build_task()
        } else {
            configure(&self.ctx, self.pool().build_task(), key, task.beh, false)
        };
        let res = if !try_spawn {
            b.spawn_queued(fut)
        } else {
            match b.try_spawn(fut) {
                Ok(h) => Ok(h),
                Err(e) if matches!(e.error(), PoolError::Full { .. }) => {
                    assert!(self.limit.is_some(), "an unlimited pool is never full");
                    assert_ne!(accepts(locked, closed), Tri::No);
                    if settled {
                        assert_eq!(self.submitted(), lo, "a refused try_spawn takes no id");
                    }
                    // The future comes back to its owner, destructor and all.
                    drop_quietly(e.into_future());
                    return;
                }
                Err(e) => {
                    let err = e.error().clone();
                    drop_quietly(e.into_future());
                    Err(err)
                }
            }
        };
        check_refusal(&res, locked, closed, "spawn_queued/try_spawn");
        if let Ok(h) = res {
            if task.plain {
                // No callback reports it: the driver does.
                let id = h.id().get();
                self.ctx.set_kind(id, Kind::Single(key));
                self.ctx.record(id, |r| r.plain = true);
            }
            let key = self.push_single(task, gi, step, lo);
            self.note_handle(key, h, settled);
            if drop_handle {
                // Its result (or panic payload), destructor and all, is the pool's to drop.
                drop(self.singles[key].handle.take());
            }
        }
    }

    /// A retried loose task (`retry(policy).spawn_queued_with(factory)`): its first
    /// `spec.fails` attempts fail, the next behaves as `task` (returns, yields or waits at
    /// its gate: a panic or a timeout would be one more failure), with a backoff of up to a
    /// few milliseconds between attempts.
    async fn retry(&mut self, step: usize, task: Task, spec: RetrySpec, wait_for_room: bool) {
        crate::cover("a retried task submitted");
        let (locked, closed) = (self.locked, self.closed);
        let beh = match task.beh {
            Beh::Yield(n) if spec.fails < spec.max => Beh::Yield(n),
            Beh::Gate if spec.fails < spec.max => Beh::Gate,
            _ => Beh::Now,
        };
        let task = Task {
            beh,
            plain: false,
            ..task
        };
        let key = self.singles.len();
        let (gi, gate) = self.new_gate(beh == Beh::Gate);
        let settled = self.all_groups_settled();
        let lo = self.submitted();
        let ms = Duration::from_millis;
        let mut policy = RetryPolicy::<Out>::builder()
            .max_attempts(u32::from(spec.max))
            .backoff(ms(1), ms(4))
            .retry_if(|r: &Result<Out, TaskError>| matches!(r, Ok(o) if o.peek() == FAIL));
        if spec.by_panic {
            policy = policy.retry_panics();
        }
        let make = retry_factory(self.ctx.clone(), key, task, spec, gate);
        let b = configure(&self.ctx, self.pool().build_task(), key, beh, false)
            .retry(policy.build().unwrap());
        let res = if wait_for_room {
            // On a full pool it would wait for room: then it is withdrawn, as `Spawn` does.
            let waited = b.spawn_with(make).now_or_never();
            let Some(res) = waited else {
                // It would wait: withdrawn (dropped), as `Spawn` does.
                assert!(
                    self.limit.is_some(),
                    "spawn_with waited for room on an unlimited pool"
                );
                let key = self.push_single(task, gi, step, lo);
                self.singles[key].retry = Some(spec);
                self.singles[key].dropped_at = Some(step);
                return;
            };
            res
        } else {
            b.spawn_queued_with(make)
        };
        check_refusal(&res, locked, closed, "spawn_queued_with (retried)");
        if let Ok(h) = res {
            let key = self.push_single(task, gi, step, lo);
            self.singles[key].retry = Some(spec);
            self.note_handle(key, h, settled);
            // Let its first attempt run: one that fails waits out its backoff while the next
            // steps run (and may cancel it there).
            yield_n(3).await;
        }
    }

    /// Retried singles in their backoff now (key, id, failing attempts run), when one thread
    /// polls everything (so none leaves its backoff before the driver's next call); each
    /// listed on the attempt that just failed.
    fn in_backoff(&self) -> Vec<(usize, u64, u32)> {
        if !self.strict || !self.singles.iter().any(|s| s.retry.is_some()) {
            return Vec::new();
        }
        let tasks = self.pool().tasks();
        let tracer = self.ctx.tracer.lock().unwrap();
        let mut found = Vec::new();
        for (k, s) in self.singles.iter().enumerate() {
            let (Some(_), Some(id)) = (s.retry, s.known_id()) else {
                continue;
            };
            let Some(t) = tasks
                .iter()
                .find(|t| t.id.get() == id && t.state == TaskState::Backoff)
            else {
                continue;
            };
            let runs = tracer.get(&id).map_or(0, |r| r.fail_runs);
            assert_eq!(t.attempt, runs, "retried single {k} in its backoff: {t:?}");
            found.push((k, id, runs));
        }
        found
    }

    /// Whether every slot is surely held until the driver opens a gate: at least `limit`
    /// tasks wait at a closed gate (parked there, so started), none of them maybe asked to
    /// cancel.
    fn surely_full(&self) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let tracer = self.ctx.tracer.lock().unwrap().clone();
        let held = tracer
            .iter()
            .filter(|(id, r)| {
                r.parked
                    && r.on_end == 0
                    && match r.kind {
                        Some(Kind::Single(k)) => self.singles.get(k).is_some_and(|s| {
                            !self.gate_open(s.gate) && !self.single_maybe_cancelled(k)
                        }),
                        Some(Kind::Item(g)) => self.groups.get(g).is_some_and(|gr| {
                            !self.gate_open(gr.gate)
                                && !self.group_maybe_cancelled(g)
                                && !self.id_cancels.iter().any(|c| c.0 == **id)
                        }),
                        _ => false,
                    }
            })
            .count();
        held >= limit
    }

    /// `spawn_queued` with a short `max_queue_wait`: it runs, or is shed if it could not
    /// start in time. When every slot is surely held by a task at a closed gate, it cannot
    /// start before its deadline: the driver waits for its handle, which must say shed.
    async fn shed(&mut self, step: usize, task: Task, wait: u8) {
        let (locked, closed) = (self.locked, self.closed);
        let task = Task {
            plain: false,
            ..task
        };
        let exact = self.surely_full();
        let key = self.singles.len();
        let (gi, gate) = self.new_gate(task.beh == Beh::Gate);
        let settled = self.all_groups_settled();
        let lo = self.submitted();
        let fut = task_future(
            self.ctx.clone(),
            Kind::Single(key),
            task,
            gate,
            None,
            key,
            false,
        );
        let res = configure(&self.ctx, self.pool().build_task(), key, task.beh, false)
            .max_queue_wait(Duration::from_millis(u64::from(wait)))
            .spawn_queued(fut);
        check_refusal(&res, locked, closed, "spawn_queued (max_queue_wait)");
        let Ok(h) = res else { return };
        let key = self.push_single(task, gi, step, lo);
        self.note_handle(key, h, settled);
        self.singles[key].shed = Some(false);
        if exact {
            crate::cover("a task was surely shed");
            let h = self.singles[key].handle.take().expect("kept");
            let res = task_tag(h.await);
            let shed = matches!(&res, Err(e) if e.is_shed());
            let cancelled = matches!(&res, Err(e) if e.is_cancelled());
            assert!(
                shed || (cancelled && self.window_cancels_all(step)),
                "single {key} waited for a slot while every slot was held by a task at a closed \
                 gate, past its max_queue_wait of {wait} ms, and ended {res:?}, not shed"
            );
            self.singles[key].shed = Some(true);
            self.singles[key].early = Some(res);
        }
    }

    fn push_group(
        &mut self,
        group: Group<Out>,
        kind: GKind,
        items: Vec<Task>,
        gate: Option<usize>,
        ordered: bool,
    ) {
        // A call from user code may cancel everything, this group too, from now on.
        let reg = if self
            .windows
            .iter()
            .any(|w| w.eff == Eff::CancelAll && w.open())
        {
            Reg::Maybe
        } else {
            Reg::Yes
        };
        self.groups.push(GroupRec {
            name: group.name().to_owned(),
            kind,
            group: Some(group),
            joined: None,
            summary: None,
            dropped_at: None,
            seen_idle: false,
            items,
            gate,
            ordered,
            step: 0,
            first_id: 0,
            start_ids: None,
            cancel_steps: Vec::new(),
            reg,
            keyed: false,
            sheds: false,
        });
    }

    /// Goes into a map's closure: counts it dropped.
    fn closure_guard(&mut self) -> BumpOnDrop {
        self.closures += 1;
        BumpOnDrop(self.closures_dropped.clone())
    }

    /// The name every group of the model gets (or, for start groups, the pool gives).
    fn group_name(g: usize) -> String {
        format!("model-{g}")
    }

    /// A `map` whose input and closure may call the pool.
    fn map(
        &mut self,
        step: usize,
        items: &[MapItem],
        nc: u8,
        ordered: bool,
        timeout: bool,
        (keyed, shed): (Option<u8>, Option<u8>),
    ) {
        let (locked, closed) = (self.locked, self.closed);
        let g = self.groups.len();
        // A timed group's items all have the timeout: gated items would time out rather
        // than wait, so they are slow ones, and yielding ones could, so they finish in their
        // first poll (the timer starts after it); an untimed group has no slow ones.
        let tasks: Vec<Task> = items
            .iter()
            .map(|it| {
                let beh = match (it.task.beh, timeout) {
                    (Beh::Gate, true) => Beh::Slow,
                    (Beh::Yield(_), true) => Beh::Now,
                    (Beh::Slow, false) => Beh::Now,
                    (b, _) => b,
                };
                Task { beh, ..it.task }
            })
            .collect();
        let (gi, gate) = self.new_gate(tasks.iter().any(|t| t.beh == Beh::Gate));
        // The calls into the pool, with the windows and tasks they may make: kept only if
        // the pool accepts the map.
        let (mut windows, mut spawned) = (Vec::new(), Vec::new());
        let mut new_call = |m: &mut Self, reent: Option<Reent>| -> Option<Call> {
            let reent = reent?;
            let mut call = Call {
                reent,
                target: None,
                spawn: None,
            };
            let eff = match reent {
                Reent::CancelAll => Eff::CancelAll,
                Reent::CancelGroup(k) => {
                    let t = usize::from(k) % (g + 1);
                    call.target = Some(if t == g {
                        Self::group_name(g)
                    } else {
                        m.groups[t].name.clone()
                    });
                    Eff::CancelGroup(t)
                }
                Reent::Lock => Eff::Lock,
                Reent::Unlock => Eff::Unlock,
                Reent::SpawnQueued(beh) => {
                    let key = m.singles.len() + spawned.len();
                    let (gi, gate) = m.new_gate(beh == Beh::Gate);
                    let slot: SpawnSlot = Arc::default();
                    call.spawn = Some((key, gate, slot.clone()));
                    let window = m.windows.len() + windows.len();
                    let mut s = Single::new(Task::plain(beh), gi, step, Origin::Reentrant(window));
                    s.spawn_slot = Some(slot);
                    spawned.push(s);
                    Eff::Spawn
                }
                Reent::NumRunning | Reent::Stats | Reent::Tasks => Eff::Read,
            };
            windows.push(Window {
                group: g,
                from: step,
                until: None,
                eff,
            });
            Some(call)
        };
        let mut input = Vec::new();
        for (i, (it, task)) in items.iter().zip(&tasks).enumerate() {
            let from_input = new_call(self, it.from_input);
            let from_closure = new_call(self, it.from_closure);
            input.push((i, *task, from_input, from_closure));
        }
        let input_calls = input.iter().any(|x| x.2.is_some());
        let closure_calls = input.iter().any(|x| x.3.is_some());
        let nc = usize::from(nc);
        let conc = Arc::new(GroupConc {
            nc,
            running: AtomicUsize::new(0),
        });
        let first_id = self.submitted();
        let ctx = self.ctx.clone();
        let input = Input {
            items: input.into_iter().collect::<Vec<_>>().into_iter(),
            // The input and the closure hold pool handles of their own.
            pool: input_calls.then(|| self.pool().clone()),
            ctx: ctx.clone(),
        };
        let p = closure_calls.then(|| self.pool().clone());
        let dropped = self.closure_guard();
        let f = move |(i, task, call): Pulled| {
            let _alive = &dropped;
            if let (Some(call), Some(p)) = (&call, &p) {
                call_pool(p, &ctx, call, "a map closure");
            }
            let gate = (task.beh == Beh::Gate).then(|| gate.clone().unwrap());
            task_future(
                ctx.clone(),
                Kind::Item(g),
                task,
                gate,
                Some(conc.clone()),
                i,
                false,
            )
        };
        let mut b = self.group_builder(g, timeout);
        if let Some(keys) = keyed {
            // A generous quota (a start per key every half millisecond), keys in pairs of
            // items (a a b b a a ...): an item of a key whose token is not due yet is set
            // aside for a moment, and the next key's item passes it.
            let quota = Quota::per_second(2_000).unwrap().burst(1).unwrap();
            let keys = usize::from(keys);
            b = b.rate_limit_by(move |p: &Pulled| p.0 / 2 % keys, quota);
            self.ctx.keyed.lock().unwrap().insert(Self::group_name(g));
        }
        if let Some(ms) = shed {
            b = b.max_queue_wait(Duration::from_millis(u64::from(ms)));
        }
        let res = if ordered {
            b.map(input, nc, f)
        } else {
            b.unordered().map(input, nc, f)
        };
        if nc == 0 {
            assert!(
                matches!(res, Err(PoolError::InvalidLimit { .. })),
                "{res:?}"
            );
            return;
        }
        check_refusal(&res, locked, closed, "map");
        if let Ok(group) = res {
            self.push_group(group, GKind::Map, tasks, gi, ordered);
            let gr = &mut self.groups[g];
            gr.step = step;
            gr.first_id = first_id;
            gr.keyed = keyed.is_some();
            gr.sheds = shed.is_some();
            self.windows.extend(windows);
            self.singles.extend(spawned);
            if self.lock_calls_pending() && !self.closed {
                self.locked = Tri::Maybe;
            }
        }
    }

    fn group_builder(&self, g: usize, timeout: bool) -> async_taskpool::GroupBuilder<'_> {
        let (c1, c2) = (self.ctx.clone(), self.ctx.clone());
        let b = self
            .pool()
            .build_group()
            .name(Self::group_name(g))
            .on_end(move |id| {
                let c = c1.clone();
                async move {
                    c.set_kind(id.get(), Kind::Item(g));
                    c.record(id.get(), |r| r.on_end += 1);
                }
            })
            .on_cancel(move |id| {
                let c = c2.clone();
                async move {
                    c.set_kind(id.get(), Kind::Item(g));
                    c.record(id.get(), |r| r.on_cancel += 1);
                }
            });
        if timeout {
            b.timeout(crate::tasks::TIMEOUT)
        } else {
            b
        }
    }

    /// Ids of loose tasks known to have ended.
    fn retired_ids(&self) -> BTreeSet<u64> {
        self.singles
            .iter()
            .filter(|s| s.known_retired())
            .filter_map(Single::known_id)
            .collect()
    }

    /// Tasks that surely live, unasked to cancel, with their future unfinished: `stop` must
    /// find at least these.
    fn surely_live(&mut self) -> usize {
        let singles = (0..self.singles.len())
            .filter(|&k| {
                let s = &self.singles[k];
                // A retried task in its backoff may not be found by `stop`.
                s.origin == Origin::Driver
                    && s.beh() == Beh::Gate
                    && !self.gate_open(s.gate)
                    && !s.may_end_ungated()
                    && s.retry.is_none()
                    && !self.single_maybe_cancelled(k)
            })
            .count();
        let mut items = 0;
        for g in 0..self.groups.len() {
            let gr = &self.groups[g];
            if let Some((lo, hi)) = gr.start_ids {
                if !self.gate_open(gr.gate) && !self.group_maybe_cancelled(g) {
                    items += (lo..hi)
                        .filter(|&id| start_task(id).beh == Beh::Gate)
                        .count();
                }
            }
        }
        singles + items
    }

    /// `stop` picked `ids` (at most `want`): distinct, live, not already asked to cancel, and
    /// at least as many as surely live.
    fn check_stopped(
        &mut self,
        step: usize,
        ids: &[u64],
        retired: &BTreeSet<u64>,
        want: usize,
        surely: usize,
        what: &str,
    ) {
        let distinct: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "{what}: the same task twice: {ids:?}"
        );
        assert!(
            ids.len() >= want.min(surely),
            "{what}: stopped {ids:?}, but {surely} tasks surely run or wait"
        );
        let sub = self.submitted();
        for &id in ids {
            assert!(id < sub, "{what}: stopped {id}, never handed out");
            assert!(
                !retired.contains(&id),
                "{what}: stopped {id}, which had ended"
            );
            assert!(
                !self.id_cancels.iter().any(|&(i, _)| i == id),
                "{what}: stopped {id}, already asked to cancel"
            );
            assert!(
                id >= self.cancel_all_floor,
                "{what}: stopped {id}, cancelled by cancel_all"
            );
            self.id_cancels.push((id, step));
        }
    }

    /// Whether a cancel may have been asked for a single task (by any means) so far.
    fn single_maybe_cancelled(&self, key: usize) -> bool {
        self.single_cancel(key) != Tri::No
    }

    /// Whether a cancel was surely asked for a single task so far (`Yes`), maybe (by calls
    /// from user code at moments the driver does not see, or before the task existed), or not.
    fn single_cancel(&self, key: usize) -> Tri {
        let s = &self.singles[key];
        let by_id = |known: u64| self.id_cancels.iter().any(|&(id, _)| id == known);
        let later_cancel_all = self.cancel_all_steps.iter().any(|&c| c > s.step);
        if s.origin == Origin::Driver {
            let asked = s.dropped_at.is_some()
                || later_cancel_all
                || match s.known_id() {
                    Some(k) => by_id(k),
                    None => self
                        .id_cancels
                        .iter()
                        .any(|&(id, _)| (s.lo..s.hi).contains(&id)),
                };
            return if asked {
                Tri::Yes
            } else if self.window_cancels_all(s.step) {
                Tri::Maybe
            } else {
                Tri::No
            };
        }
        if s.known_id().is_some_and(by_id) {
            return Tri::Yes;
        }
        let by_parent = match s.origin {
            Origin::Child(parent, Inner::Exec) => self.single_maybe_cancelled(parent),
            _ => false,
        };
        // Its id unknown, any id cancel may have been it.
        let unknown_id = s.known_id().is_none() && !self.id_cancels.is_empty();
        if by_parent || later_cancel_all || unknown_id || self.window_cancels_all(s.step) {
            Tri::Maybe
        } else {
            Tri::No
        }
    }

    fn group_maybe_cancelled(&self, g: usize) -> bool {
        let gr = &self.groups[g];
        !gr.cancel_steps.is_empty()
            || self.cancel_all_steps.iter().any(|&c| c > gr.step)
            || self.window_cancels_group(g)
            || self
                .id_cancels
                .iter()
                .any(|&(id, c)| c > gr.step && id >= gr.first_id)
    }

    fn gate_open(&self, gate: Option<usize>) -> bool {
        gate.is_none_or(|g| self.gates[g].1.is_some())
    }

    fn allowed_cancel(&self, id: u64) -> Vec<Status> {
        use Status::*;
        if id >= UNKNOWN_ID {
            return vec![NotFound];
        }
        if let Some(key) = self.singles.iter().position(|s| s.known_id() == Some(id)) {
            let s = &self.singles[key];
            return if s.known_retired() {
                vec![Ended]
            } else if self.single_cancel(key) == Tri::Yes {
                vec![Cancelled, Ended]
            } else if self.single_cancel(key) == Tri::Maybe {
                vec![Ok, Cancelled, Ended]
            } else if s.beh() == Beh::Gate && !self.gate_open(s.gate) && !s.may_end_ungated() {
                vec![Ok]
            } else {
                vec![Ok, Ended]
            };
        }
        let rec = self.ctx.tracer.lock().unwrap().get(&id).cloned();
        if let Some(Rec {
            kind: Some(Kind::Item(g)),
            beh: Some(Beh::Gate),
            on_end: 0,
            ..
        }) = rec
        {
            let gr = &self.groups[g];
            let asked = !gr.cancel_steps.is_empty()
                || self.cancel_all_steps.iter().any(|&c| c > gr.step)
                || self.window_cancels_group(g)
                || self.id_cancels.iter().any(|&(i, _)| i == id);
            if !asked && !self.gate_open(gr.gate) {
                return vec![Ok];
            }
        }
        vec![Ok, Ended, Cancelled]
    }

    /// Whether something surely keeps the pool busy until the driver opens a gate.
    fn must_block(&self) -> bool {
        let single = (0..self.singles.len()).any(|k| {
            let s = &self.singles[k];
            s.origin == Origin::Driver
                && s.beh() == Beh::Gate
                && !self.gate_open(s.gate)
                && !s.may_end_ungated()
                && !self.single_maybe_cancelled(k)
        });
        let group = (0..self.groups.len()).any(|g| {
            let gr = &self.groups[g];
            let gated = match gr.kind {
                GKind::Start(_) => gr
                    .start_ids
                    .is_some_and(|(lo, hi)| (lo..hi).any(|id| start_task(id).beh == Beh::Gate)),
                _ => gr.items.iter().any(|t| t.beh == Beh::Gate),
            };
            gated && !gr.sheds && !self.gate_open(gr.gate) && !self.group_maybe_cancelled(g)
        });
        single || group
    }

    /// Join or gather_and_close: never returns while something waits at a gate, always
    /// returns once the gates open; afterwards nothing runs, waits or is queued.
    async fn wait_idle(
        &mut self,
        step: usize,
        mut fut: Pin<Box<dyn Future<Output = Result<(), PoolError>> + Send>>,
    ) {
        if self.must_block() {
            for _ in 0..3 {
                assert!(
                    futures::poll!(fut.as_mut()).is_pending(),
                    "join returned while a task waits at a closed gate"
                );
                yield_n(5).await;
            }
        }
        self.release_all(step);
        fut.await.expect("join from outside the pool");
        self.check_idle(step);
    }

    fn check_idle(&mut self, step: usize) {
        let st = self.ctx.checked_stats(self.pool(), "idle");
        assert_eq!(
            (st.running, st.queued, st.ending, st.backlog, st.retrying),
            (0, 0, 0, 0, 0),
            "not idle after join: {st:?}"
        );
        for (k, s) in self.singles.iter().enumerate() {
            if let Some(h) = &s.handle {
                assert!(h.is_finished(), "single {k} unresolved after join");
            }
        }
        for g in 0..self.groups.len() {
            if self.groups[g].dropped_at.is_some() {
                self.groups[g].seen_idle = true;
            }
            assert_eq!(
                self.group_finished(g),
                Some(true),
                "group {g} unfinished after join"
            );
        }
        // Nothing of any group runs: no call from user code is still to come.
        for w in &mut self.windows {
            if w.open() {
                w.until = Some(step + 1);
            }
        }
        if self.locked == Tri::Maybe {
            self.locked = Tri::of(st.locked);
        }
        // Idle: nothing runs, so the bound can come down to the limit in force.
        self.ctx.cap.store(cap_of(self.limit), SeqCst);
    }

    async fn do_flush(&mut self) {
        let sub1 = self.submitted();
        let live1: BTreeSet<u64> = self.pool().tasks().iter().map(|t| t.id.get()).collect();
        let n = self.groups.len();
        let a: Vec<Option<GroupSummary>> = (0..n).map(|g| self.group_summary_now(g)).collect();
        let fin_before: Vec<Option<bool>> = (0..n).map(|g| self.group_finished(g)).collect();
        self.pool()
            .flush()
            .await
            .expect("flush from outside the pool");
        let live2: BTreeSet<u64> = self.pool().tasks().iter().map(|t| t.id.get()).collect();
        let sub2 = self.submitted();
        let b: Vec<Option<GroupSummary>> = (0..n).map(|g| self.group_summary_now(g)).collect();
        for (g, before) in fin_before.into_iter().enumerate() {
            let after = self.group_finished(g);
            let gr = &mut self.groups[g];
            if gr.reg == Reg::No {
                continue;
            }
            match (before, after) {
                (Some(true), _) => gr.reg = Reg::No,
                (_, Some(true) | None) => gr.reg = Reg::Maybe,
                _ => {}
            }
        }
        self.flush = Some(FlushSnap {
            sub1,
            live1,
            sub2,
            live2,
            a,
            b,
        });
    }

    fn check_step(&mut self, step: usize, op: &Op) {
        // Items not pulled yet: at most what the map and apply groups unfinished before the
        // stats were read hold.
        let mut backlog = 0;
        for g in 0..self.groups.len() {
            if self.group_finished(g) != Some(true) {
                backlog += self.groups[g].items.len() as u64;
            }
        }
        // Retried tasks not seen ended before the stats are read: at most these are in
        // their backoff then.
        let retried_live = self
            .singles
            .iter()
            .filter(|s| s.retry.is_some() && !s.known_retired())
            .count();
        let st = self.ctx.checked_stats(self.pool(), "the driver");
        let v = self.ctx.violations.lock().unwrap().clone();
        assert!(v.is_empty(), "after step {step} ({op:?}): {v:?}");
        if self.locked != Tri::Maybe {
            assert_eq!(
                Tri::of(st.locked),
                self.locked,
                "locked after step {step} ({op:?})"
            );
        }
        assert_eq!(st.closed, self.closed, "closed after step {step} ({op:?})");
        assert_eq!(st.limit, self.limit, "limit after step {step} ({op:?})");
        assert!(
            st.ended >= st.cancelled + st.panicked + st.timed_out + st.shed,
            "{st:?}"
        );
        if std::env::var_os("TASKPOOL_MODEL_COVERAGE").is_some()
            && self.groups.iter().any(|g| g.keyed)
        {
            // An item set aside: queued, while a later item of its group started.
            let tasks = self.pool().tasks();
            let tracer = self.ctx.tracer.lock().unwrap().clone();
            let aside = tasks.iter().any(|q| {
                q.state == TaskState::Queued
                    && (0..self.groups.len()).any(|g| {
                        self.groups[g].keyed
                            && q.group.as_deref() == Some(self.groups[g].name.as_str())
                            && tracer
                                .range(q.id.get() + 1..)
                                .any(|(_, r)| r.kind == Some(Kind::Item(g)) && r.started > 0)
                    })
            });
            if aside {
                crate::cover("a keyed map's item was set aside");
            }
        }
        assert!(
            st.retrying <= retried_live,
            "after step {step} ({op:?}): {st:?}: {retried_live} retried tasks may live"
        );
        assert!(
            st.backlog <= backlog,
            "after step {step} ({op:?}): {st:?}: backlog over {backlog}"
        );
        if self.locked != Tri::Maybe {
            assert_eq!(self.pool().is_locked(), st.locked);
        }
        assert_eq!(self.pool().is_closed(), st.closed);
    }

    /// The last handle: a map whose closure holds a clone of the pool; the driver drops every
    /// handle of its own, cancels that group, and lets everything end.
    fn drop_handles(&mut self, end: usize, items: &[Beh], nc: u8) {
        let (locked, closed) = (self.locked, self.closed);
        let g = self.groups.len();
        let (gi, gate) = self.new_gate(items.contains(&Beh::Gate));
        let conc = Arc::new(GroupConc {
            nc: usize::from(nc),
            running: AtomicUsize::new(0),
        });
        let first_id = self.submitted();
        let (p, ctx) = (self.pool().clone(), self.ctx.clone());
        let dropped = self.closure_guard();
        let f = move |(i, beh): (usize, Beh)| {
            let _alive = &dropped;
            let _ = p.num_running();
            let gate = (beh == Beh::Gate).then(|| gate.clone().unwrap());
            let task = Task::plain(beh);
            task_future(
                ctx.clone(),
                Kind::Item(g),
                task,
                gate,
                Some(conc.clone()),
                i,
                false,
            )
        };
        let input: Vec<(usize, Beh)> = items.iter().copied().enumerate().collect();
        let res = self.group_builder(g, false).map(input, usize::from(nc), f);
        check_refusal(&res, locked, closed, "map (holding the last handle)");
        if let Ok(group) = res {
            let tasks = items.iter().map(|&b| Task::plain(b)).collect();
            self.push_group(group, GKind::Map, tasks, gi, true);
            self.groups[g].step = end;
            self.groups[g].first_id = first_id;
        }
        self.pool = None;
        self.simple = None;
        *self.ctx.pool.lock().unwrap() = None;
        // The pool closes when its last handle goes, at a moment the driver does not see.
        self.lock_events.push(end);
        self.closed = true;
        if let Some(gr) = self.groups.get_mut(g).filter(|gr| gr.step == end) {
            let res = gr.group.as_ref().expect("attached").cancel();
            match (gr.reg, res) {
                (Reg::Yes | Reg::Maybe, Ok(())) => gr.cancel_steps.push(end),
                (Reg::Maybe, Err(PoolError::GroupEnded { .. })) => {}
                (reg, res) => panic!("cancel of the last handle's group ({reg:?}): {res:?}"),
            }
            gr.reg = Reg::No;
        }
        self.release_all(end);
    }
}

async fn run_case(sp: Sp, case: Case, strict: bool) {
    let limit = case.limit.map(usize::from);
    let ctx = Arc::new(Ctx::new(cap_of(limit)));
    let freed = Counter::new();
    let spawner = FreedSpawner {
        inner: sp.clone(),
        freed: freed.clone(),
    };
    // A SimpleTaskPool, so that `start` and `stop` take part; everything else goes through
    // its TaskPool.
    let (c0, c1, c2) = (ctx.clone(), ctx.clone(), ctx.clone());
    let mut b = SimpleTaskPool::builder(spawner, move || start_item(&c0))
        .on_end(move |id| {
            let c = c1.clone();
            async move {
                c.set_kind(id.get(), Kind::Start);
                c.record(id.get(), |r| r.on_end += 1);
            }
        })
        .on_cancel(move |id| {
            let c = c2.clone();
            async move {
                c.set_kind(id.get(), Kind::Start);
                c.record(id.get(), |r| r.on_cancel += 1);
            }
        });
    if let Some(l) = limit {
        b = b.limit(l);
    }
    let simple = b.build().unwrap();
    let pool = simple.as_task_pool().clone();
    *ctx.pool.lock().unwrap() = Some(pool.clone());
    let mut m = Model {
        sp,
        strict,
        pool: Some(pool),
        simple: Some(simple),
        ctx,
        limit,
        locked: Tri::No,
        closed: false,
        singles: Vec::new(),
        groups: Vec::new(),
        gates: Vec::new(),
        start_gate: None,
        id_cancels: Vec::new(),
        cancel_all_steps: Vec::new(),
        cancel_all_floor: 0,
        windows: Vec::new(),
        lock_events: Vec::new(),
        locked_at: Vec::new(),
        parked: BTreeMap::new(),
        closed_at: None,
        flush: None,
        continuations: 0,
        done: Counter::new(),
        last_single_id: None,
        freed,
        closures: 0,
        closures_dropped: Counter::new(),
        backoff_cancels: Vec::new(),
    };
    for (step, op) in case.ops.iter().enumerate() {
        m.apply(op, step).await;
        m.check_step(step, op);
    }
    let end = case.ops.len();
    m.refresh(end);
    m.locked_at.push(m.locked);
    match &case.ending {
        Ending::GatherAndClose => {
            let p = m.pool().clone();
            m.lock_events.push(end);
            m.wait_idle(end, Box::pin(async move { p.gather_and_close().await }))
                .await;
            m.locked = Tri::Yes;
            m.closed = true;
            m.check_step(end, &Op::GatherAndClose);
            let st = m.pool().stats();
            m.final_checks(Some(st), end).await;
        }
        Ending::DropHandles { items, nc } => {
            crate::cover("a case ended dropping its handles");
            m.drop_handles(end, items, *nc);
            m.final_checks(None, end).await;
        }
    }
}

//! Loose tasks (`spawn`, `spawn_queued`, `try_spawn`, `exec`): the cell a task shares with its
//! handle and the pool, the job that runs it, and the entry points that submit it.
//!
//! A loose task costs one cell (shared with its handle) and, once it starts, one runner
//! holding its job. While it waits in the queue, the cell also holds its future, so a queued
//! task costs its cell and a queue slot and nothing else.

use super::callbacks::TaskOptions;
use super::core::{
    Admission, After, BoxJob, Core, Inbox, Launch, Next, Outcome, QueuedTask, Seat, Start,
    TaskControl,
};
use super::current;
use super::poll::{poll_task, CancelSignal, Registered, RunTimer};
use super::retry::Retry;
use super::runner::{Runner, Work};
use super::span::{enter, task_span, TARGET};
use super::telemetry::{Kind, Rejection, Telemetry};
use super::timer::QueueTimer;
use super::user::{self, drop_some, drop_value, Whose};
use crate::error::{PoolError, TaskError};
use crate::id::{TaskId, TaskName};
use crate::sync::AtomicU64;
use async_taskpool_runtime::BoxFuture;
use futures_util::FutureExt;
use pin_project_lite::pin_project;
use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

mod backoff;
#[allow(unsafe_code)]
mod slot;
#[cfg(all(test, loom))]
use backoff::poll_backoff;
use backoff::{end_attempt, final_result, let_go, wait_backoff, Backoff, Requeued};
use slot::{Contents, Slot, Stage};

// A cell's flags: the low byte of its word (`TaskCell::flags`).
const CANCELLED: u64 = 1;
const STARTED: u64 = 2;
const DONE: u64 = 4;
const DETACHED: u64 = 8;
/// The handle took the result.
const TAKEN: u64 = 16;
/// It waited in the queue (for the `metrics` feature's gauges).
const QUEUED: u64 = 32;
/// Its future started running (for the `metrics` feature's gauges).
const RAN: u64 = 64;
/// It left the queue shed: its deadline passed before it could start.
const SHED: u64 = 128;
/// Where its id starts in its word: above the flags and the slot's own bits.
const ID_SHIFT: u32 = slot::HIGH_SHIFT;
const _: () = assert!(slot::FLAG_BITS == 8, "the flags above fill the low byte");

/// Everything optional about a task, boxed once so plain tasks stay small.
pub(crate) struct TaskSpec {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) options: TaskOptions,
    /// Its lane while it waits for a slot (see `shares.rs`).
    pub(crate) priority: i32,
    /// Its `max_queue_wait`, and the link to its timer (see `shed.rs`).
    pub(crate) deadline: Option<(Duration, Arc<QueueTimer>)>,
    /// Its retry policy, factory and attempt number, if it is retried (see `retry.rs`).
    pub(crate) retry: Option<Retry>,
}

impl TaskSpec {
    /// `None` for a plain task: nothing optional to store.
    pub(crate) fn boxed(
        name: Option<Arc<str>>,
        options: TaskOptions,
        priority: i32,
        queue_wait: Option<Duration>,
    ) -> Option<Box<Self>> {
        (name.is_some() || !options.is_plain() || priority != 0 || queue_wait.is_some()).then(
            || {
                Box::new(Self {
                    name,
                    options,
                    priority,
                    deadline: queue_wait.map(|d| (d, Arc::default())),
                    retry: None,
                })
            },
        )
    }

    /// The spec of a retried task: `spec` (its other options, if any) with `retry`.
    pub(crate) fn with_retry(spec: Option<Box<Self>>, retry: Retry) -> Box<Self> {
        let mut spec = spec.unwrap_or_else(|| {
            Box::new(Self {
                name: None,
                options: TaskOptions::default(),
                priority: 0,
                deadline: None,
                retry: None,
            })
        });
        spec.retry = Some(retry);
        spec
    }
}

/// What a cell keeps of its task's options: nothing for a plain task (`()`: 8 bytes less
/// per task, issue 15's memory target), its spec otherwise. Each kind is a cell type of its
/// own, so a plain task's code has no spec to look at.
pub(crate) trait CellSpec: Send + Sync + 'static {
    fn get(&self) -> Option<&TaskSpec>;
}

impl CellSpec for () {
    #[inline(always)]
    fn get(&self) -> Option<&TaskSpec> {
        None
    }
}

impl CellSpec for Box<TaskSpec> {
    #[inline(always)]
    fn get(&self) -> Option<&TaskSpec> {
        Some(self)
    }
}

/// What a task shares between its job, its handle and the pool.
pub(crate) struct TaskCell<F: Future, S> {
    spec: S,
    /// Its flags (the word's low byte), its id (the word's high bits, once it has one: ids
    /// stay below 2^53, decades of tasks at the lock's ceiling of a few million a second),
    /// and its future, runner's waker or output, and the handle's waker, under the word's
    /// lock bit (`slot.rs`).
    slot: Slot<F>,
}

impl<F: Future, S: CellSpec> TaskCell<F, S> {
    fn new(spec: S) -> Self {
        Self::holding(spec, Contents::Running(None))
    }

    /// A cell made with its future in it (parked before anyone else can see the cell, so
    /// without taking its lock).
    fn with_future(spec: S, fut: F) -> Self {
        Self::holding(spec, Contents::Queued(fut))
    }

    fn holding(spec: S, contents: Contents<F>) -> Self {
        Self {
            spec,
            slot: Slot::new(contents),
        }
    }

    /// Its flags and id: the slot's word, whose other bits are the slot's own.
    #[inline]
    fn flags(&self) -> &AtomicU64 {
        self.slot.word()
    }

    /// The future of a cell made [`with_future`](Self::with_future) that no job took.
    fn take_future(&self) -> F {
        self.slot
            .lock()
            .take_queued()
            .expect("taken once, by its submitter, before it was shared")
    }

    fn options(&self) -> Option<&TaskOptions> {
        self.spec.get().map(|s| &s.options)
    }

    fn custom_name(&self) -> Option<&str> {
        self.spec.get()?.name.as_deref()
    }

    /// Its retry policy and factory, if it is retried.
    fn retry(&self) -> Option<&Retry> {
        self.spec.get()?.retry.as_ref()
    }

    fn attempt(&self) -> u32 {
        self.retry().map_or(1, Retry::attempt)
    }

    /// A retried task queues again after its backoff: its next attempt's future waits here.
    /// (Under the state lock: it only moves the future in; what it replaces is the backoff's
    /// waker.)
    fn repark(&self, fut: F) {
        let _backoff_waker = self.slot.lock().replace(Contents::Queued(fut));
    }

    /// Its id goes into its word, once, when it gets it (before anyone else sees the cell).
    #[inline]
    fn set_id(&self, id: TaskId) {
        debug_assert!(id.get() < 1 << (64 - ID_SHIFT), "ids stay below 2^53");
        self.flags()
            .fetch_or(id.get() << ID_SHIFT, Ordering::Relaxed);
    }

    fn flag(&self, bit: u64) -> bool {
        self.flags().load(Ordering::Acquire) & bit != 0
    }

    /// It left the queue: its deadline timer, if it has one, ends.
    #[inline(never)]
    fn disarm_deadline(&self) {
        if let Some((_, timer)) = self.deadline() {
            timer.disarm();
        }
    }

    /// Its `max_queue_wait` and deadline timer, if it has one.
    fn deadline(&self) -> Option<&(Duration, Arc<QueueTimer>)> {
        self.spec.get()?.deadline.as_ref()
    }

    /// The task left the queue: the future, and the handle's waker (for `spawn().await`).
    #[inline]
    fn unpark(&self) -> (Option<F>, Option<Waker>) {
        if self.spec.get().is_some() {
            self.disarm_deadline();
        }
        self.flags().fetch_or(STARTED, Ordering::AcqRel);
        let mut slot = self.slot.lock();
        let fut = slot.take_queued();
        (fut, slot.with_handle_waker(Option::take))
    }

    /// Stores the result for the handle and returns the handle's waker; gives the result
    /// back if the handle went away (to be dropped after unlocking).
    fn deliver(
        &self,
        res: Result<F::Output, TaskError>,
    ) -> Result<Option<Waker>, Result<F::Output, TaskError>> {
        let mut slot = self.slot.lock();
        if self.flag(DETACHED) {
            return Err(res);
        }
        // What it replaces is the runner's waker: not a user value.
        let _runner = slot.replace(Contents::Done(res.map_err(Box::new)));
        if self.flags().fetch_or(DONE, Ordering::AcqRel) & DETACHED != 0 {
            // The handle went away meanwhile, before it could see the result (its `detach`
            // saw no `DONE` yet): the result comes back, to be dropped in the job's guard.
            let res = slot.take_done().expect("stored above");
            return Err(res.map_err(|e| *e));
        }
        Ok(slot.with_handle_waker(Option::take))
    }
}

impl<F: Future, S: CellSpec> CancelSignal for TaskCell<F, S> {
    fn is_cancelled(&self, _id: TaskId) -> bool {
        self.flag(CANCELLED)
    }

    fn register(&self, _id: TaskId, waker: &Waker) {
        self.slot.lock().with_runner_waker(|slot| match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        });
    }
}

impl<F, S: CellSpec> TaskControl for TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn cancel(&self, _id: TaskId) -> Option<Waker> {
        self.flags().fetch_or(CANCELLED, Ordering::AcqRel);
        self.slot.lock().with_runner_waker(Option::take).flatten()
    }

    fn name(&self) -> Option<&str> {
        self.custom_name()
    }

    fn attempt(&self) -> u32 {
        TaskCell::attempt(self)
    }
}

impl<F, S: CellSpec> QueuedTask for TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn launch(self: Arc<Self>, core: &Arc<Core>, id: TaskId, seat: Seat) -> BoxJob {
        let (fut, waker) = self.unpark();
        // The handle of a `spawn().await` waits for this; woken right after the section.
        if let Some(w) = waker {
            w.wake();
        }
        Runner::job(TaskRun::new(core.clone(), self, fut, id, seat))
    }

    fn control(self: Arc<Self>) -> Arc<dyn TaskControl> {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn cell_type(&self) -> TypeId {
        TypeId::of::<Self>()
    }

    fn mark_shed(&self) {
        self.flags().fetch_or(SHED, Ordering::AcqRel);
    }

    fn name(&self) -> Option<&str> {
        self.custom_name()
    }

    fn attempt(&self) -> u32 {
        TaskCell::attempt(self)
    }

    #[inline]
    fn key(&self) -> u64 {
        // Set before it was first queued, under the state lock this is read under.
        self.flags().load(Ordering::Relaxed) >> ID_SHIFT
    }
}

/// What a `TaskHandle` needs from its cell, without naming the future's type.
pub(crate) trait HandleSide<T>: Send + Sync {
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()>;
    fn is_finished(&self) -> bool;
    /// The handle went away: the result, if it came, is dropped (by the caller, outside the
    /// cell's lock); a later one is dropped by the task's job.
    fn detach(&self) -> Option<Result<T, TaskError>>;
}

impl<F, S: CellSpec> HandleSide<F::Output> for TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskError>> {
        let mut slot = self.slot.lock();
        if let Some(res) = slot.take_done() {
            self.flags().fetch_or(TAKEN, Ordering::Release);
            return Poll::Ready(res.map_err(|e| *e));
        }
        if slot.stage() == Stage::Taken {
            drop(slot);
            panic!("TaskHandle polled after it returned its result")
        }
        slot.with_handle_waker(|w| *w = Some(cx.waker().clone()));
        Poll::Pending
    }

    fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag(STARTED | DONE) {
            return Poll::Ready(());
        }
        let mut slot = self.slot.lock();
        if self.flag(STARTED | DONE) {
            return Poll::Ready(());
        }
        slot.with_handle_waker(|w| *w = Some(cx.waker().clone()));
        Poll::Pending
    }

    fn is_finished(&self) -> bool {
        self.flag(DONE)
    }

    fn detach(&self) -> Option<Result<F::Output, TaskError>> {
        // Before the result came, the flag alone is enough: `deliver` sets `DONE` after
        // storing and takes the result back if it then sees `DETACHED` (found by the loom
        // model `loom_task_result_goes_to_the_handle_or_back`).
        let flags = self.flags().fetch_or(DETACHED, Ordering::AcqRel);
        if flags & DONE == 0 || flags & TAKEN != 0 {
            return None;
        }
        let mut slot = self.slot.lock();
        let _waker = slot.with_handle_waker(Option::take);
        slot.take_done().map(|res| res.map_err(|e| *e))
    }
}

/// How far a task's job got. (The pool's own view of the task is `core::Life`; this is the
/// job's, which also knows whether it was ever polled and whether it retired the task.)
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// Not polled yet.
    Fresh,
    /// Its future runs.
    Running,
    /// A retried task between attempts: it waits out its backoff, without a slot.
    Backoff,
    /// Its future is done; its callbacks run.
    Callbacks,
    /// Retired.
    Done,
}

/// What only tasks with a timeout or callbacks need.
struct Extra<T> {
    timer: RunTimer,
    callbacks: Option<BoxFuture>,
    held: Option<Result<T, TaskError>>,
    /// A retried task's wait between attempts (the runtime's timer).
    backoff: Option<BoxFuture>,
}

pin_project! {
    #[project = TaskRunProj]
    /// The job of one loose task: polls its future, runs its callbacks, retires it, and says
    /// what its runner does next. If it is dropped before that (the runtime dropped or refused
    /// its runner), its drop retires the task as dropped by the runtime.
    pub(crate) struct TaskRun<F: Future, S: CellSpec> {
        #[pin]
        fut: Option<F>,
        cell: Option<Arc<TaskCell<F, S>>>,
        core: Option<Arc<Core>>,
        id: TaskId,
        seat: Seat,
        step: Step,
        extra: Option<Box<Extra<F::Output>>>,
        // When it started, if the pool's limit is adaptive (`adaptive.rs`).
        started: Option<Instant>,
        // It runs in its caller's task (an `exec` on the pool's single-threaded runtime), not
        // on a runner: it cannot park, and the work that takes its slot starts elsewhere.
        in_caller: bool,
        // Entered on each poll of the future and the callbacks (`span.rs`).
        span: tracing::Span,
        // The waker its cell holds for a cancel, while the cell holds it.
        registered: Registered,
    }

    impl<F: Future, S: CellSpec> PinnedDrop for TaskRun<F, S> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if *this.step == Step::Done {
                return;
            }
            let (Some(core), Some(cell)) = (this.core.take(), this.cell.take()) else {
                return;
            };
            let id = *this.id;
            let pool = core.name.clone(); // (not a hot path: the runtime dropped the task)
            let owner = Whose { pool: &pool, task: Some(id), what: "the task's future" };
            // Destructors first: the handle resolves after the future is gone.
            if let Err(p) = user::call(|| this.fut.set(None)) {
                log_destructor_panic(&core.name, id, p);
            }
            core.adaptive.ended(&core, this.started.take(), id, Outcome::Dropped);
            let held = this.extra.as_mut().and_then(|e| e.held.take());
            let in_callbacks = *this.step == Step::Callbacks;
            let res = held.unwrap_or_else(|| Err(dropped_error(id, *this.step == Step::Fresh)));
            let outcome = Outcome::of(&res);
            if Telemetry::ACTIVE {
                if *this.step == Step::Fresh && cell.flag(QUEUED) {
                    core.telemetry.dequeued();
                }
                core.telemetry.ended(Kind::Task, outcome, cell.flag(RAN));
            }
            let unwanted = {
                let mut s = core.section();
                let (st, after, core) = s.split();
                let unwanted = deliver(&cell, res, after);
                st.retire_held(id, outcome, after);
                if *this.seat == Seat::Slot && !in_callbacks {
                    // Nobody runs on: the slot goes back to the pool.
                    st.release_slot(core, after);
                }
                unwanted
            };
            log_end(&core.name, cell.custom_name(), id, outcome);
            drop_some(unwanted, owner);
            drop_value(cell, owner);
            drop_some(this.extra.take(), owner);
            drop_value(core, Whose { what: "the pool", ..owner });
        }
    }
}

/// The error of a task whose runner was dropped: refused by `Spawner::spawn` (dropped
/// unpolled inside it), or dropped by its runtime.
fn dropped_error(id: TaskId, never_polled: bool) -> TaskError {
    if never_polled && super::core::inside_spawn() {
        TaskError::SpawnFailed { id }
    } else {
        TaskError::RuntimeDropped { id }
    }
}

/// Hands the result to the handle (its waker goes to `after`); the result comes back if the
/// handle went away.
fn deliver<F: Future, S: CellSpec>(
    cell: &TaskCell<F, S>,
    res: Result<F::Output, TaskError>,
    after: &mut After,
) -> Option<Result<F::Output, TaskError>> {
    match cell.deliver(res) {
        Ok(waker) => {
            after.wake(waker);
            None
        }
        Err(res) => Some(res),
    }
}

#[cold]
fn log_destructor_panic(pool: &str, id: TaskId, payload: user::Payload) {
    let msg = user::panic_message(&*payload);
    tracing::error!(
        pool,
        task_id = id.get(),
        "the future of task {id} panicked while being dropped (ignored): {msg}"
    );
    user::drop_payload(payload);
}

/// Logs a task's start (DEBUG). The level check is inlined, so with no subscriber that
/// wants DEBUG events a task pays one load and a branch, not a call.
#[inline(always)]
pub(crate) fn log_started(pool: &str, custom: Option<&str>, id: TaskId) {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        log_started_slow(pool, custom, id);
    }
}

#[cold]
#[inline(never)]
fn log_started_slow(pool: &str, custom: Option<&str>, id: TaskId) {
    tracing::debug!(
        target: TARGET,
        pool,
        task_id = id.get(),
        "Started {}",
        TaskName { pool, custom, id }
    );
}

/// Logs a task's end: DEBUG, or WARN for a timeout, a drop by its runtime or a shed. A task
/// that completed or panicked (the panic was logged where it was caught) pays one load and a
/// branch unless DEBUG events are wanted.
#[inline(always)]
pub(crate) fn log_end(pool: &str, custom: Option<&str>, id: TaskId, outcome: Outcome) {
    let quiet = matches!(outcome, Outcome::Completed | Outcome::Panicked);
    if !quiet || tracing::level_enabled!(tracing::Level::DEBUG) {
        log_end_slow(pool, custom, id, outcome);
    }
}

#[cold]
#[inline(never)]
fn log_end_slow(pool: &str, custom: Option<&str>, id: TaskId, outcome: Outcome) {
    let name = TaskName { pool, custom, id };
    match outcome {
        Outcome::Completed | Outcome::Panicked => {}
        Outcome::Cancelled => tracing::debug!(pool, task_id = id.get(), "Cancelled {name}"),
        Outcome::TimedOut => tracing::warn!(pool, task_id = id.get(), "{name} timed out"),
        Outcome::Dropped => tracing::warn!(
            pool,
            task_id = id.get(),
            "{name} was dropped by its runtime (shut down, or refused to start it)"
        ),
        Outcome::Shed => tracing::warn!(
            pool,
            task_id = id.get(),
            "{name} was shed: it could not start within its max_queue_wait"
        ),
    }
    tracing::debug!(target: TARGET, pool, task_id = id.get(), ?outcome, "Ended {name}");
}

impl<F, S: CellSpec> TaskRun<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn new(
        core: Arc<Core>,
        cell: Arc<TaskCell<F, S>>,
        fut: Option<F>,
        id: TaskId,
        seat: Seat,
    ) -> Self {
        Self {
            fut,
            extra: extra_for(&cell),
            cell: Some(cell),
            core: Some(core),
            id,
            seat,
            step: Step::Fresh,
            started: None,
            in_caller: false,
            span: tracing::Span::none(),
            registered: Registered::default(),
        }
    }

    /// The job runs in the task that awaits it (see [`Core::run_in_caller`]).
    fn in_caller(mut self) -> Self {
        self.in_caller = true;
        self
    }

    /// Runs task `id` in this job's place, field by field (cheaper than building a new job
    /// and moving it in). The job has ended: it holds nothing of the user's any more.
    fn restart(
        self: Pin<&mut Self>,
        core: Arc<Core>,
        cell: Arc<TaskCell<F, S>>,
        fut: Option<F>,
        id: TaskId,
    ) {
        let this = self.project();
        debug_assert!(*this.step == Step::Done && this.cell.is_none() && this.extra.is_none());
        let mut fut_slot = this.fut;
        fut_slot.set(fut);
        *this.extra = extra_for(&cell);
        *this.cell = Some(cell);
        *this.core = Some(core);
        *this.id = id;
        *this.seat = Seat::Slot;
        *this.step = Step::Fresh;
        *this.started = None;
        // (A job run in its caller ends with `Next::End`: it never takes up another task.)
        debug_assert!(!*this.in_caller);
        *this.span = tracing::Span::none();
        this.registered.forget();
    }
}

/// The state a task with options (a timeout, callbacks, retries) keeps beside its future.
#[inline]
fn extra_for<F: Future, S: CellSpec>(cell: &TaskCell<F, S>) -> Option<Box<Extra<F::Output>>> {
    cell.spec
        .get()
        .filter(|s| !s.options.is_plain() || s.retry.is_some())
        .map(|s| {
            Box::new(Extra {
                timer: RunTimer::new(s.options.timeout),
                callbacks: None,
                held: None,
                backoff: None,
            })
        })
}

impl<F, S: CellSpec> Work for TaskRun<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn take_up(self: Pin<&mut Self>, launch: Launch) -> Result<(), Launch> {
        if launch.task.cell_type() != TypeId::of::<TaskCell<F, S>>() {
            return Err(launch);
        }
        let Launch { task, id, core } = launch;
        let Ok(cell) = task.into_any().downcast::<TaskCell<F, S>>() else {
            unreachable!("the type was checked");
        };
        let (fut, waker) = cell.unpark();
        if let Some(w) = waker {
            w.wake();
        }
        // The task that ended here left nothing of the user's behind: this drops nothing.
        self.restart(core, cell, fut, id);
        Ok(())
    }

    fn poll_work(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next> {
        let mut this = self.project();
        let id = *this.id;
        let serial = match this.core.as_ref() {
            Some(core) => core.serial,
            None => return Poll::Ready(Next::End),
        };
        let _inside = current::enter(serial, Some(id));
        let (res, slot_held) = loop {
            let (Some(core), Some(cell)) = (this.core.as_ref(), this.cell.as_ref()) else {
                return Poll::Ready(Next::End);
            };
            match *this.step {
                Step::Fresh => {
                    let starts = !cell.flag(CANCELLED) && *this.seat != Seat::Unseated;
                    if *this.seat != Seat::Unseated {
                        if starts {
                            log_started(&core.name, cell.custom_name(), id);
                            *this.started = core.adaptive.start(&*core.spawner);
                        }
                    } else if cell.flag(SHED) {
                        // Shed: its future never runs. It is dropped here, before callbacks.
                        if let Err(p) = user::call(|| this.fut.set(None)) {
                            log_destructor_panic(&core.name, id, p);
                        }
                    }
                    if Telemetry::ACTIVE {
                        observe_start(&core.telemetry, cell, starts);
                    }
                    *this.span = task_span(&core.name, id, cell.custom_name(), None);
                    *this.step = Step::Running;
                }
                Step::Running => {
                    let res = match this.fut.as_mut().as_pin_mut() {
                        Some(fut) => {
                            let mut plain = RunTimer::new(None);
                            let timer = match this.extra.as_mut() {
                                Some(e) => &mut e.timer,
                                None => &mut plain,
                            };
                            let _entered = enter(this.span);
                            let registered = Some(&mut *this.registered);
                            match poll_task(fut, id, &**cell, timer, registered, core, cx) {
                                Poll::Ready(res) => res,
                                Poll::Pending => return Poll::Pending,
                            }
                        }
                        // Shed or cancelled while queued: it never runs. (Or a retried
                        // task's backoff ended it: cancelled, or its factory panicked.)
                        None => match cell.deadline() {
                            _ if this.extra.as_ref().is_some_and(|e| e.held.is_some()) => this
                                .extra
                                .as_mut()
                                .and_then(|e| e.held.take())
                                .expect("checked"),
                            Some((waited, _)) if cell.flag(SHED) => Err(TaskError::Shed {
                                id,
                                waited: *waited,
                            }),
                            _ => Err(TaskError::Cancelled { id }),
                        },
                    };
                    // The future's destructors run before callbacks and before the handle
                    // resolves; a panicking one is logged, and the outcome stands.
                    if let Err(p) = user::call(|| this.fut.set(None)) {
                        log_destructor_panic(&core.name, id, p);
                    }
                    core.adaptive
                        .ended(core, this.started.take(), id, Outcome::of(&res));
                    // (Plain tasks have no spec: one branch.)
                    let res = if cell.spec.get().is_some() && *this.seat == Seat::Slot {
                        match end_attempt(core, cell, id, this.extra, res) {
                            Ok(res) => res,
                            Err(Backoff) => {
                                // Its slot went to other work; it ends, or starts again,
                                // without.
                                *this.seat = Seat::Unseated;
                                *this.step = Step::Backoff;
                                // The backoff puts the future back in the cell, in the
                                // waker's place.
                                this.registered.forget();
                                continue;
                            }
                        }
                    } else {
                        res
                    };
                    let Some(callbacks) = cell.options().and_then(|o| o.callbacks.clone()) else {
                        break (res, true);
                    };
                    {
                        // Free the slot before the callbacks, so queued work can start.
                        let mut s = core.section();
                        let (st, after, core) = s.split();
                        if st.enter_ending(id) == Some(Seat::Slot) {
                            st.release_slot(core, after);
                        }
                    }
                    let cancelled = Outcome::of(&res) == Outcome::Cancelled;
                    let extra = this
                        .extra
                        .as_mut()
                        .expect("a task with callbacks has extra");
                    extra.held = Some(res);
                    let pool = core.name.clone();
                    extra.callbacks = Some(Box::pin(async move {
                        callbacks.run(&pool, id, cancelled).await;
                    }));
                    *this.step = Step::Callbacks;
                }
                Step::Backoff => match wait_backoff(core, cell, id, this.extra, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Requeued(true)) => return Poll::Ready(let_go(&mut this)),
                    // With no future, it ends as cancelled, or with the result held.
                    Poll::Ready(Requeued(false)) => *this.step = Step::Running,
                },
                Step::Callbacks => {
                    let extra = this.extra.as_mut().expect("callbacks are in extra");
                    if let Some(cb) = extra.callbacks.as_mut() {
                        let _entered = enter(this.span);
                        if cb.poll_unpin(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    // Its slot went back before the callbacks: nothing to hand over.
                    break (
                        extra.held.take().expect("result held during callbacks"),
                        false,
                    );
                }
                Step::Done => return Poll::Ready(Next::End),
            }
        };
        Poll::Ready(finish(&mut this, res, spare, slot_held))
    }
}

/// Delivers the result, retires the task and, if its runner still holds the task's slot,
/// gives the slot to the work whose turn it is. Releases every user value the job held.
fn finish<F, S: CellSpec>(
    this: &mut TaskRunProj<'_, F, S>,
    res: Result<F::Output, TaskError>,
    spare: &mut Option<Arc<Inbox>>,
    slot_held: bool,
) -> Next
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (Some(core), Some(cell)) = (this.core.take(), this.cell.take()) else {
        return Next::End;
    };
    let id = *this.id;
    let res = if cell.spec.get().is_some() {
        final_result(&cell, res)
    } else {
        res
    };
    let outcome = Outcome::of(&res);
    *this.step = Step::Done;
    // Recorded before the section that resolves the handle and tells `join`: whoever waits
    // for the task sees it counted.
    if Telemetry::ACTIVE {
        core.telemetry.ended(Kind::Task, outcome, cell.flag(RAN));
    }
    let mut s = core.section();
    let (st, after, c) = s.split();
    let unwanted = deliver(&cell, res, after);
    let holds_slot = slot_held && *this.seat == Seat::Slot;
    let next = if holds_slot && !*this.in_caller {
        match st.task_to_next(id, outcome, c, after) {
            Some(start) => Next::Run(start),
            None => {
                st.retire_held(id, outcome, after);
                st.next_for_slot(c, after, spare)
            }
        }
    } else {
        st.retire_held(id, outcome, after);
        if holds_slot {
            st.pass_slot_on(c, after);
        }
        Next::End
    };
    drop(s);
    log_end(&core.name, cell.custom_name(), id, outcome);
    let owner = Whose {
        pool: &core.name,
        task: Some(id),
        what: "the task's output",
    };
    drop_some(unwanted, owner);
    drop_value(cell, owner);
    drop_some(this.extra.take(), owner);
    // Its pool: the last reference drops the pool's spawner, which is the user's.
    drop_value(
        core,
        Whose {
            pool: "(a pool whose last reference goes)",
            task: Some(id),
            what: "the pool",
        },
    );
    next
}

/// The `metrics` feature's view of a task's first poll: it left the queue, and it starts
/// (or, cancelled while queued, only runs its callbacks).
fn observe_start<F: Future, S: CellSpec>(
    telemetry: &Telemetry,
    cell: &TaskCell<F, S>,
    starts: bool,
) {
    if cell.flag(QUEUED) {
        telemetry.dequeued();
    }
    if starts {
        cell.flags().fetch_or(RAN, Ordering::AcqRel);
        telemetry.started(Kind::Task);
    }
}

/// A nested task ([`Core::exec_nested`]): its id, its job and its result's side of its cell.
type Nested<T> = (TaskId, BoxJob, Arc<dyn HandleSide<T>>);

/// A task accepted by [`Core::submit`].
pub(crate) struct Submitted<T> {
    pub(crate) id: TaskId,
    pub(crate) cell: Arc<dyn HandleSide<T>>,
    /// Whether it started at once (else it waits in the queue).
    pub(crate) started: bool,
    /// Its job, when it started at once under [`Admission::InCallerOrQueue`]: the caller
    /// runs it ([`Core::run_in_caller`]) before awaiting the handle.
    pub(crate) here: Option<BoxJob>,
}

/// A task refused by [`Core::submit`], with its future back.
pub(crate) struct Refused<F> {
    pub(crate) error: PoolError,
    pub(crate) future: F,
}

impl<F> Refused<F> {
    /// The error, the future dropped here: unlocked, inside the panic guard.
    pub(crate) fn into_error(self) -> PoolError {
        let pool = match &self.error {
            PoolError::Closed { pool }
            | PoolError::Locked { pool }
            | PoolError::Full { pool, .. }
            | PoolError::RateLimited { pool, .. } => pool.as_str(),
            _ => "",
        };
        drop_value(
            self.future,
            Whose {
                pool,
                task: None,
                what: "a refused task's future",
            },
        );
        self.error
    }
}

impl Core {
    /// Admits a loose task: starts it if there is room and nothing waits, else queues it
    /// (or, for [`Admission::Refuse`], gives it back; for
    /// [`Admission::InCallerOrQueue`], a start is left to the caller). Inlined into its two
    /// callers (`exec` and the other entry points), as it was into its one caller before
    /// `exec` called it too: ~30 instructions a task.
    #[inline(always)]
    pub(crate) fn submit<F>(
        self: &Arc<Self>,
        fut: F,
        spec: Option<Box<TaskSpec>>,
        admission: Admission,
    ) -> Result<Submitted<F::Output>, Refused<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match spec {
            None => self.submit_cell(Arc::new(TaskCell::with_future((), fut)), admission),
            Some(spec) => {
                self.submit_specced(Arc::new(TaskCell::with_future(spec, fut)), admission)
            }
        }
    }

    /// [`submit_cell`](Self::submit_cell) for a task with options, out of line: the plain
    /// path is the one inlined into every entry point.
    #[inline(never)]
    fn submit_specced<F>(
        self: &Arc<Self>,
        cell: Arc<TaskCell<F, Box<TaskSpec>>>,
        admission: Admission,
    ) -> Result<Submitted<F::Output>, Refused<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.submit_cell(cell, admission)
    }

    #[inline(always)]
    fn submit_cell<F, S: CellSpec>(
        self: &Arc<Self>,
        cell: Arc<TaskCell<F, S>>,
        admission: Admission,
    ) -> Result<Submitted<F::Output>, Refused<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let refuse = |error: PoolError| {
            if admission == Admission::Refuse {
                self.telemetry.rejected(match error {
                    // No room now, for a slot or a rate token.
                    PoolError::Full { .. } | PoolError::RateLimited { .. } => Rejection::Full,
                    PoolError::Locked { .. } => Rejection::Locked,
                    _ => Rejection::Closed,
                });
            }
            let future = cell.take_future();
            Err(Refused { error, future })
        };
        // A pool with a rate limit reads the clock before locking (see `rate.rs`).
        let now = self.rate_clock();
        let (id, started, runner, samples, deadline, rated) = {
            let mut s = self.state();
            if let Some(now) = now {
                s.observe_pool(now);
            }
            if let Err(error) = s.check_open(&self.name) {
                drop(s);
                return refuse(error);
            }
            let mut room = s.has_room() && !s.anything_waits();
            let rated = s.pool_rate.is_some();
            if rated {
                // Its start takes a token of the pool's rate limit, or it waits for one.
                let refusing = admission == Admission::Refuse;
                match s.admit_rated(room, refusing, &self.name) {
                    Ok(token) => room = token,
                    Err(error) => {
                        drop(s);
                        return refuse(error);
                    }
                }
            }
            if !room && admission == Admission::Refuse {
                let limit = s.limit().unwrap_or(usize::MAX);
                drop(s);
                return refuse(PoolError::Full {
                    pool: self.pool_name(),
                    limit,
                });
            }
            let id = s.allocate_id();
            cell.set_id(id);
            if room {
                s.take_slot();
                s.insert_running(id, cell.clone(), Seat::Slot);
                cell.flags().fetch_or(STARTED, Ordering::AcqRel);
                let samples = if Telemetry::ACTIVE {
                    s.take_samples()
                } else {
                    None
                };
                let runner = if admission == Admission::InCallerOrQueue {
                    None
                } else {
                    s.idle_runner()
                };
                (id, true, runner, samples, None, rated)
            } else {
                if Telemetry::ACTIVE {
                    cell.flags().fetch_or(QUEUED, Ordering::AcqRel);
                }
                let (priority, deadline) = match cell.spec.get() {
                    None => (0, None),
                    Some(spec) => (spec.priority, spec.deadline.as_ref()),
                };
                s.queue_loose(id, cell.clone(), priority);
                (id, false, None, None, deadline, rated)
            }
        };
        if rated && !started {
            // It may wait for a token: a section of its own grants (so arms the timer).
            let mut s = self.section();
            let (st, after, c) = s.split();
            st.grant(c, after);
        }
        if let Some((wait, timer)) = deadline {
            // It waits: its deadline runs from now (the timer starts after unlocking).
            self.arm_task_deadline(id, *wait, timer.clone());
        }
        if let Some(samples) = samples {
            self.telemetry.durations(samples.as_slice());
        }
        self.telemetry.submitted(Kind::Task, 1, u64::from(!started));
        let mut here = None;
        match (started, runner) {
            (true, Some(mailbox)) => {
                // A parked runner takes it up (in place, if it last ran a task of this type).
                let launch = Launch {
                    task: cell.clone(),
                    id,
                    core: self.clone(),
                };
                self.start(Start::Task(launch), Some(mailbox));
            }
            (true, None) => {
                let fut = cell.take_future();
                let run = TaskRun::new(self.clone(), cell.clone(), Some(fut), id, Seat::Slot);
                if admission == Admission::InCallerOrQueue {
                    here = Some(Runner::job(run.in_caller()));
                } else {
                    self.spawn(Runner::job(run).into_future());
                }
            }
            (false, _) => {}
        }
        Ok(Submitted {
            id,
            cell,
            started,
            here,
        })
    }

    /// Runs a task inside the task calling it (`exec` from one of the pool's own tasks): the
    /// child starts at once, in its caller's slot, so a task that waits for work of its own
    /// pool never waits for a slot that only it could free.
    pub(crate) async fn exec_nested<F>(
        self: &Arc<Self>,
        fut: F,
        spec: Option<Box<TaskSpec>>,
    ) -> Result<Result<F::Output, TaskError>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (id, job, handle) = match spec {
            None => self.nested(TaskCell::new(()), fut)?,
            Some(spec) => self.nested(TaskCell::new(spec), fut)?,
        };
        self.run_in_caller(id, job).await;
        let waker = futures_util::task::noop_waker();
        match handle.poll_result(&mut Context::from_waker(&waker)) {
            Poll::Ready(res) => Ok(res),
            Poll::Pending => unreachable!("a nested task delivers before its job ends"),
        }
    }

    /// A nested task's id (registered as running in its caller's slot), its job and its
    /// result's side of the cell.
    fn nested<F, S: CellSpec>(
        self: &Arc<Self>,
        cell: TaskCell<F, S>,
        fut: F,
    ) -> Result<Nested<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cell = Arc::new(cell);
        let id = {
            let mut s = self.section();
            if let Err(error) = s.check_open(&self.name) {
                drop(s);
                return Err(Refused { error, future: fut }.into_error());
            }
            let id = s.allocate_id();
            s.insert_running(id, cell.clone(), Seat::Nested);
            cell.flags().fetch_or(STARTED, Ordering::AcqRel);
            id
        };
        self.telemetry.submitted(Kind::Task, 1, 0);
        let job = TaskRun::new(self.clone(), cell.clone(), Some(fut), id, Seat::Nested);
        Ok((id, Runner::job(job), cell))
    }

    /// Runs task `id`'s job in the calling task, until the job ends: a nested `exec` (in its
    /// caller's slot), or an `exec` that found room on the pool's single-threaded runtime (in
    /// a slot of its own). If the caller stops waiting, the task is cancelled and its job
    /// finishes on a runtime task of its own.
    pub(crate) async fn run_in_caller(self: &Arc<Self>, id: TaskId, job: BoxJob) {
        let mut in_caller = InCaller {
            core: self,
            id,
            job: Some(job),
        };
        let next = std::future::poll_fn(|cx| {
            let job = in_caller.job.as_mut().expect("polled until done");
            job.as_mut().poll_job(cx, &mut None)
        })
        .await;
        in_caller.job = None;
        // Such a job hands its slot on itself and never parks; anything else still starts.
        debug_assert!(
            matches!(next, Next::End),
            "a job run in its caller ended with work"
        );
        match next {
            Next::End | Next::Park(_) => {}
            Next::Run(start) => self.start(start, None),
        }
    }
}

/// A task run in its caller whose caller stopped waiting: it is cancelled, and its job moves
/// to a runtime task of its own to run its callbacks and retire.
struct InCaller<'a> {
    core: &'a Arc<Core>,
    id: TaskId,
    job: Option<BoxJob>,
}

impl Drop for InCaller<'_> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            {
                let mut s = self.core.section();
                let (st, after, core) = s.split();
                st.cancel_task(self.id, core, after);
            }
            self.core.spawn(job.into_future());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model checks of a task's cell: its flags, its lock and the wake-ups of its handle and
    //! its runner (see `engine/loom_tests.rs`).
    use super::{poll_backoff, Extra, HandleSide, TaskCell};
    use crate::engine::core::Seat;
    use crate::engine::loom_tests::{check, check_bounded, drop_guarded, pool, Counted};
    use crate::engine::poll::{poll_task, Registered, RunTimer};
    use crate::error::TaskError;
    use loom::future::block_on;
    use loom::thread;
    use std::future::{pending, poll_fn, Future, Pending};
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    type Cell = TaskCell<Pending<Counted>, ()>;

    /// Polls the future `make` gives as task `id`'s runner does, while another thread
    /// cancels the task: it must end cancelled.
    fn polls_racing_a_cancel<F: Future>(make: impl Fn() -> F + Sync + Send + 'static) {
        check(move || {
            let core = pool();
            let cell = Arc::new(Cell::new(()));
            let id = core.section().allocate_id();
            core.section().insert_running(id, cell.clone(), Seat::Slot);
            let canceller = {
                let core = core.clone();
                thread::spawn(move || core.cancel(&[id]).expect("the task is live"))
            };
            let mut fut = pin!(make());
            let mut timer = RunTimer::new(None);
            let mut registered = Registered::default();
            let res = block_on(poll_fn(|cx| {
                let r = Some(&mut registered);
                poll_task(fut.as_mut(), id, &*cell, &mut timer, r, &core, cx)
            }));
            assert!(matches!(res, Err(TaskError::Cancelled { .. })));
            canceller.join().unwrap();
        });
    }

    /// A cancel racing the task's poll (cancel check, poll, register, re-check in
    /// `poll_task`) is never lost: the task always ends cancelled.
    #[test]
    fn loom_task_cancel_racing_its_poll_is_seen() {
        polls_racing_a_cancel(pending::<Counted>);
    }

    /// The same race while the task polls again with the waker it left (it yields twice,
    /// then waits for good): the polls that skip leaving the waker again (`Registered`)
    /// still end cancelled, whenever the cancel lands.
    #[test]
    fn loom_task_cancel_racing_its_repolls_is_seen() {
        polls_racing_a_cancel(|| {
            let mut yields = 2;
            poll_fn(move |cx| {
                if yields > 0 {
                    yields -= 1;
                    cx.waker().wake_by_ref();
                }
                std::task::Poll::<()>::Pending
            })
        });
    }

    /// A cancel racing a retried task's backoff wait (cancel check, register, re-check in
    /// `poll_backoff`) is never lost: the wait ends at once, and the task does not queue again.
    #[test]
    fn loom_task_cancel_racing_its_backoff_is_seen() {
        check(|| {
            let core = pool();
            let cell = Arc::new(Cell::new(()));
            let id = core.section().allocate_id();
            // Nested: no slot to give back when it enters its backoff.
            core.section()
                .insert_running(id, cell.clone(), Seat::Nested);
            {
                let mut s = core.section();
                let (st, after, c) = s.split();
                st.enter_backoff(id, c, after);
            }
            let canceller = {
                let core = core.clone();
                thread::spawn(move || core.cancel(&[id]).expect("the task is live"))
            };
            // A wait that never ends by itself: only the cancel ends it.
            let mut extra = Extra::<Counted> {
                timer: RunTimer::new(None),
                callbacks: None,
                held: None,
                backoff: Some(Box::pin(pending::<()>())),
            };
            block_on(poll_fn(|cx| poll_backoff(&*cell, id, &mut extra, cx)));
            canceller.join().unwrap();
            assert!(!core.section().may_leave_backoff(id));
        });
    }

    /// The handle goes away while the result is delivered (before, after, racing): the result
    /// is either the handle's (dropped with it) or handed back to the job, never both and
    /// never left behind, and dropped once, inside the engine's panic guard.
    #[test]
    fn loom_task_result_goes_to_the_handle_or_back() {
        check(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let given = Arc::new(AtomicUsize::new(0));
            let back = Arc::new(AtomicUsize::new(0));
            // loom's `Arc`, so that loom also explores which side lets go of the cell last.
            let cell = loom::sync::Arc::new(Cell::new(()));
            let job = {
                let (cell, drops, back) = (cell.clone(), drops.clone(), back.clone());
                thread::spawn(move || {
                    match cell.deliver(Ok(Counted::new(&drops))) {
                        Ok(waker) => assert!(waker.is_none(), "nobody polled the handle"),
                        Err(res) => {
                            back.fetch_add(1, SeqCst);
                            drop_guarded(res);
                        }
                    }
                    // As `finish` does: the job's reference to the cell goes last thing.
                    drop_guarded(cell);
                })
            };
            // The handle's drop: `TaskHandle::drop`.
            if let Some(res) = HandleSide::detach(&*cell) {
                given.fetch_add(1, SeqCst);
                drop_guarded(res);
            }
            drop(cell);
            job.join().unwrap();
            assert_eq!(
                given.load(SeqCst) + back.load(SeqCst),
                1,
                "the result was neither given to the handle nor handed back"
            );
            assert_eq!(drops.load(SeqCst), 1);
        });
    }

    /// `spawn().await` then `handle.await` while the task leaves the queue and delivers:
    /// the handle is woken for both, and gets the result. (Bounded: the slot's lock spins,
    /// and its four sections on two threads, each spinning, are past what an exhaustive run
    /// finishes in CI time; the lock itself is checked exhaustively in `slot.rs`.)
    #[test]
    fn loom_task_handle_woken_when_started_and_done() {
        check_bounded(4, || {
            let drops = Arc::new(AtomicUsize::new(0));
            let cell = Arc::new(Cell::with_future((), pending()));
            let job = {
                let (cell, drops) = (cell.clone(), drops.clone());
                thread::spawn(move || {
                    let (fut, waker) = cell.unpark();
                    assert!(fut.is_some(), "the future waited in the cell");
                    if let Some(w) = waker {
                        w.wake();
                    }
                    match cell.deliver(Ok(Counted::new(&drops))) {
                        Ok(Some(w)) => w.wake(),
                        Ok(None) => {}
                        Err(_) => panic!("the handle is there"),
                    }
                })
            };
            let handle: &dyn HandleSide<Counted> = &*cell;
            let res = block_on(async {
                poll_fn(|cx| handle.poll_started(cx)).await;
                poll_fn(|cx| handle.poll_result(cx)).await
            });
            job.join().unwrap();
            drop_guarded(res.expect("the task completed"));
            assert_eq!(drops.load(SeqCst), 1);
        });
    }
}

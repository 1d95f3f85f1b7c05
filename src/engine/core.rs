//! The pool's core: its state behind the one state lock, the named transitions that change
//! it, the scheduler that gives freed slots out, and the critical [`Section`] that carries
//! wake-ups, jobs to start and removed user values out of the lock.
//!
//! Every change of the state goes through a method of [`State`] named for what happens
//! (`insert_running`, `to_ending`, `remove_task`, `take_slot`, ...); those methods keep the
//! counts consistent, and nothing else writes them.

use super::adaptive_state::Adaptive;
use super::durations::{GroupTiming, Timing};
use super::handoff::{Mailbox, Parking, IDLE_CAP};
use super::lanes::{GroupKey, Lane, Reserved, Turns};
use super::loose::LooseQueue;
pub(crate) use super::outcome::{GroupKind, Outcome};
use super::rate_state::{GroupRate, PoolRate, PoolWait};
use super::slab::Slab;
use super::table::IdTable;
use super::telemetry::Telemetry;
use super::user::{drop_value, Held, Whose};
use crate::error::PoolError;
use crate::id::TaskId;
use crate::sync::lock::{lock, Locked, Rank};
use crate::sync::{AtomicUsize, Event, Mutex};
use async_taskpool_runtime::{BoxFuture, Spawner};
use std::any::{Any, TypeId};
use std::cell::{Cell as StdCell, RefCell};
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

static POOL_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Work a runner runs: a task or a group's worker. Always a boxed runner (`runner.rs`), so
/// it can run on the runner it is handed to or be spawned as a runtime task of its own.
pub(crate) trait Job: Send {
    /// Runs the job; once it ends, says what its runner does next. `spare` is the runner's
    /// mailbox from an earlier park, for the pool to reuse if the runner parks again.
    fn poll_job(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next>;

    /// The job as a runtime task of its own, to spawn.
    fn into_future(self: Pin<Box<Self>>) -> BoxFuture;
}

pub(crate) type BoxJob = Pin<Box<dyn Job>>;

/// Where a parked runner waits for what the pool hands it.
pub(crate) type Inbox = Mailbox<Start>;

/// What a runner is handed: a loose task leaving the queue, or a job already made.
pub(crate) enum Start {
    /// A loose task, with the slot the runner holds. A runner whose own first job was a task
    /// of the same type runs it in place (nothing allocated); any other makes its job.
    Task(Launch),
    /// A group's worker.
    Job(BoxJob),
}

/// A loose task to start in a slot.
pub(crate) struct Launch {
    pub(crate) task: Arc<dyn QueuedTask>,
    pub(crate) id: TaskId,
    pub(crate) core: Arc<Core>,
}

impl Start {
    /// The work as a job of its own (for a runner that cannot run it in place).
    pub(crate) fn into_job(self) -> BoxJob {
        match self {
            Start::Task(l) => l.task.launch(&l.core, l.id, Seat::Slot),
            Start::Job(job) => job,
        }
    }
}

/// What a runner does once its job ended.
pub(crate) enum Next {
    /// End the runtime task.
    End,
    /// Run this, handed over with the slot the runner holds.
    Run(Start),
    /// Wait in this mailbox (the pool has it) for work that starts at once.
    Park(Parking<Start>),
}

/// How a running task holds its place under the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seat {
    /// A slot of its own, held by its runner.
    Slot,
    /// The slot of the map worker running it.
    Worker,
    /// Its caller's slot: `exec` from inside the pool runs the child in place.
    Nested,
    /// None: cancelled while it waited, it only runs its callbacks.
    Unseated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// A map item pulled by a worker that waited on its input without a slot: it has its id
    /// and waits for the group's turn.
    Waiting,
    /// Its future runs (or is about to).
    Running(Seat),
    /// Its future is done; its callbacks run. It holds no slot.
    Ending,
    /// A retried task between attempts (`retry.rs`): it holds no slot.
    Backoff,
}

/// The pool's handle on a task that left the queue: to cancel it and to name it.
pub(crate) trait TaskControl: Send + Sync {
    /// Asks task `id` to stop at its next poll; returns the waker to wake once unlocked.
    fn cancel(&self, id: TaskId) -> Option<Waker>;
    /// Its custom name, if any.
    fn name(&self) -> Option<&str> {
        None
    }
    /// The attempt it is on (1-based; retried tasks only go past 1).
    fn attempt(&self) -> u32 {
        1
    }
}

/// A loose task waiting in the queue.
pub(crate) trait QueuedTask: Send + Sync {
    /// Its job, leaving the queue: to run in `seat` (`Slot` when granted one, `Unseated` when
    /// cancelled while queued). Called under the state lock: it only moves the future.
    fn launch(self: Arc<Self>, core: &Arc<Core>, id: TaskId, seat: Seat) -> BoxJob;
    /// The same task as the table sees it once it runs.
    fn control(self: Arc<Self>) -> Arc<dyn TaskControl>;
    /// The same task, to downcast to its cell (a runner running it in place).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// The type of its cell.
    fn cell_type(&self) -> TypeId;
    /// It is leaving the queue shed (its deadline passed): its job ends it as `Shed`.
    fn mark_shed(&self);
    /// Its custom name, if any.
    fn name(&self) -> Option<&str>;
    /// The attempt it waits to start (1-based; retried tasks only go past 1).
    fn attempt(&self) -> u32 {
        1
    }
    /// Its id, which is its key in its lane's FIFO (kept in its cell: the FIFO's entry is the
    /// fat pointer alone).
    fn key(&self) -> u64;
}

/// An entry of a loose lane's FIFO: a waiting task, or the place one left (cancelled or
/// shed), which keeps its key so the ring stays sorted. 16 bytes: the vacant form lives in
/// the niche of the task's pointer. Like a [`Held`] value, a task leaves it only through the
/// state's named steps (`pop`, `take`: started, cancelled or shed), which carry it out of
/// the section; the entries left are dropped with the state, when no lock is held. (It has
/// no `Drop` of its own to check that, as `Held` does: one would cost it its niche.)
#[must_use = "a waiting task is carried out of the section, never dropped under the lock"]
pub(crate) enum Waiting {
    Task(Arc<dyn QueuedTask>),
    Left(u64),
}

// The point of the type: a queued task's entry is its pointer alone.
const _: () = assert!(std::mem::size_of::<Waiting>() == 16);

impl Waiting {
    /// The task (an entry handed out by `pop` or `take` always holds one).
    #[inline]
    pub(crate) fn into_inner(self) -> Arc<dyn QueuedTask> {
        match self {
            Waiting::Task(task) => task,
            Waiting::Left(_) => unreachable!("a vacated entry is never handed out"),
        }
    }
}

impl std::ops::Deref for Waiting {
    type Target = Arc<dyn QueuedTask>;
    #[inline]
    fn deref(&self) -> &Self::Target {
        match self {
            Waiting::Task(task) => task,
            Waiting::Left(_) => unreachable!("a vacated entry is never handed out"),
        }
    }
}

impl super::fifo::Slot for Waiting {
    #[inline]
    fn vacant(key: u64) -> Self {
        Waiting::Left(key)
    }
    #[inline]
    fn is_vacant(&self) -> bool {
        matches!(self, Waiting::Left(_))
    }
    #[inline]
    fn key(&self) -> u64 {
        match self {
            Waiting::Task(task) => task.key(),
            Waiting::Left(key) => *key,
        }
    }
}

/// A group as the scheduler sees it.
pub(crate) trait GroupDriver: Send + Sync {
    /// A worker for a slot the group was just granted, starting with the reserved item
    /// `first` if there is one (called under the state lock; it only builds the job).
    fn worker(self: Arc<Self>, core: &Arc<Core>, first: Option<TaskId>) -> NewWorker;
    /// A job that ends reserved items cancelled before they started: delivers their results
    /// and runs their callbacks.
    fn unstarted(self: Arc<Self>, core: &Arc<Core>, ids: Reserved) -> BoxJob;
    /// No more items will be pulled (the input ended, or the group was cancelled with
    /// `not_started` items left in it); returns the results stream's waker.
    fn input_done(&self, not_started: u64) -> Option<Waker>;
    /// The group was cancelled: the items it pulled ahead will never start. Their places in
    /// the results are passed over (the items themselves are dropped with the driver, after
    /// unlocking). Returns the results stream's waker.
    fn skip_ahead(&self) -> Option<Waker>;
    /// The group's deadline passed: its workers shed the items not started yet.
    fn shed(&self);
    /// The group has a rate limit (from now on): its workers read the clock before taking
    /// an item (see `rate.rs`).
    fn set_rated(&self);
    /// A job that ends items set aside for their rate limit's tokens (already `Ending` in
    /// the state) as `outcome`: delivers their results and runs their callbacks.
    fn end_aside(self: Arc<Self>, core: &Arc<Core>, ids: Vec<TaskId>, outcome: Outcome) -> BoxJob;
    /// A job that ends item `id`, cancelled while it waited for a slot for its next attempt
    /// (already `Ending` in the state): drops the item it kept, runs its callbacks and
    /// delivers its result (see `item_retry.rs`).
    fn end_requeued(self: Arc<Self>, core: &Arc<Core>, id: TaskId) -> BoxJob;
}

/// A worker job, and the signal that cancels the items it runs.
pub(crate) struct NewWorker {
    pub(crate) job: BoxJob,
    pub(crate) control: Arc<dyn TaskControl>,
}

/// Whether the pool takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Open,
    Locked,
    Closed,
}

/// How a submission is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Start now if there is room, else wait in the queue (`spawn`, `spawn_queued`, `exec`).
    Queue,
    /// Start now or give the future back (`try_spawn`).
    Refuse,
    /// Start now in the caller's own task, if there is room, else wait in the queue (`exec`
    /// called on the pool's single-threaded runtime: see
    /// [`Submitted::here`](super::task::Submitted)).
    InCallerOrQueue,
}

/// Counters of ended tasks since the last flush.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ended {
    pub(crate) ended: u64,
    pub(crate) cancelled: u64,
    pub(crate) panicked: u64,
    pub(crate) timed_out: u64,
    pub(crate) dropped: u64,
    pub(crate) shed: u64,
    /// Retries scheduled (attempts that ended and were given another).
    pub(crate) retried: u64,
}

impl Ended {
    pub(super) fn count(&mut self, outcome: Outcome) {
        self.ended += 1;
        match outcome {
            Outcome::Completed => {}
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::Panicked => self.panicked += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Dropped => self.dropped += 1,
            Outcome::Shed => self.shed += 1,
        }
    }
}

/// A task that left the queue and has not retired.
pub(crate) struct Entry {
    pub(super) control: Held<Arc<dyn TaskControl>>,
    pub(super) life: Life,
    pub(super) cancel_requested: bool,
    pub(super) group: Option<GroupKey>,
}

/// A group's input, as the state holds it between pulls.
pub(crate) enum Input {
    /// The input (a boxed `Source<I>`), ready for the next worker to pull from.
    Idle(Held<Box<dyn Any + Send>>),
    /// A worker is pulling from it.
    Pulling,
    /// A worker waits on it without a slot (it was not ready); its waker, to end the wait.
    Waiting(Option<Waker>),
    /// Ids reserved at submission (`SimpleTaskPool::start`) that have not started.
    Reserved(Reserved),
    /// No more items.
    Done,
}

/// A group the pool knows.
pub(crate) struct GroupState {
    pub(crate) name: Arc<str>,
    /// Held until the group stops (it owns the user's closure and input).
    pub(super) driver: Option<Held<Arc<dyn GroupDriver>>>,
    pub(super) num_concurrent: usize,
    /// Its lane's priority: higher goes first (see `shares.rs`).
    pub(super) priority: i32,
    /// Its weight in the shares of the pool (see `shares.rs`).
    pub(super) weight: u32,
    /// Starts given to other lanes since it last got a slot, while it waited (ageing).
    pub(super) passed_over: u64,
    /// Its stride-scheduling pass (see `shares.rs`).
    pub(super) pass: u64,
    /// How many workers it wants now (ramps as items are pulled).
    pub(super) target: usize,
    /// Workers holding a slot.
    pub(super) workers: usize,
    pub(crate) input: Input,
    /// A worker holds an item and waits for a slot (its waker; `None` once granted).
    pub(super) parked_puller: Option<Option<Waker>>,
    pub(super) in_turns: bool,
    pub(super) cancelled: bool,
    /// Its `max_queue_wait` passed: items not started are shed (see `shed.rs`).
    pub(super) shed: bool,
    /// Items running or ending.
    pub(super) items_live: usize,
    /// Items waiting for room: a lower bound from the input's size hint (exact for exact
    /// inputs and reserved ids).
    pub(super) backlog: u64,
    /// Items pulled ahead from the input, waiting in the group's own queue (the driver
    /// keeps them; this counts them).
    pub(super) ahead: u64,
    /// Reserved items cancelled before they started, whose results and callbacks are still
    /// being delivered.
    pub(super) unstarted_ending: u64,
    /// Counted out of the busy groups (`join` no longer waits for it).
    pub(super) settled: bool,
    /// Items that ended (for `group_stats`'s progress).
    pub(super) ended: u64,
    /// Whether `backlog` is exact (the input knows its length), not a lower bound.
    pub(super) backlog_exact: bool,
    /// Its durations, if the pool tracks them.
    pub(super) timing: Option<Box<GroupTiming>>,
    /// Its rate limit, if it has one (see `rate.rs`).
    pub(super) rate: Option<Box<GroupRate>>,
    /// Its items whose retry backoff is over, waiting for a slot (see `item_retry.rs`).
    pub(super) requeued: super::requeue::Requeued,
}

impl GroupState {
    /// No more items will start and none is live: the group is over. (A worker still
    /// alive holds no item then; it leaves when it next runs.)
    pub(super) fn finished(&self) -> bool {
        matches!(self.input, Input::Done)
            && self.items_live == 0
            && self.unstarted_ending == 0
            && self.ahead == 0
    }

    /// Whether more items may come: the input is there (or a worker is pulling from it, a
    /// moment's work), or reserved ids wait. A group keeps its turns while its input is
    /// being pulled, so a busy input does not cost it its share of the pool.
    pub(super) fn has_input(&self) -> bool {
        self.ahead > 0
            || match &self.input {
                Input::Idle(_) | Input::Pulling => true,
                Input::Reserved(r) => !r.is_empty(),
                Input::Waiting(_) | Input::Done => false,
            }
            || self.rate.as_ref().is_some_and(|r| r.has_aside())
            || !self.requeued.is_empty()
    }

    /// Whether the group waits for a rate limit's token (its timer is armed): it takes no
    /// slot meanwhile. A shed group does not: shed items take no token.
    #[inline]
    pub(super) fn rate_gated(&self) -> bool {
        self.rate.as_ref().is_some_and(|r| r.gated()) && !self.shed
    }

    /// Whether the group would use a slot now.
    #[inline]
    pub(super) fn wants_slot(&self) -> bool {
        self.wants_slot_with(self.workers)
    }

    /// Whether the group would use a slot if it had `workers` workers.
    #[inline]
    pub(super) fn wants_slot_with(&self, workers: usize) -> bool {
        !self.cancelled
            && (matches!(self.parked_puller, Some(Some(_)))
                || (self.has_input()
                    && workers < self.target.min(self.num_concurrent)
                    && !self.rate_gated()))
    }
}

/// The pool's state. Only the named methods below change it.
pub(crate) struct State {
    pub(super) limit: Option<usize>,
    pub(super) slots: usize,
    pub(super) gate: Gate,
    pub(super) next_id: u64,
    pub(super) table: IdTable<Entry>,
    pub(super) loose: LooseQueue<Waiting>,
    /// The loose tasks' weight in the shares of the pool (see `shares.rs`).
    pub(super) loose_weight: u32,
    /// Starts a waiting lane may be passed over before it goes first (`None`: the default,
    /// from the limit; see `shares.rs`).
    pub(super) ageing: Option<u64>,
    /// The pass of the lane served last: where a lane joining the turns starts.
    pub(super) pass_clock: u64,
    pub(super) turns: Turns,
    pub(super) groups: Slab<GroupState>,
    pub(super) names: HashMap<Arc<str>, GroupKey>,
    pub(super) name_counters: [u64; 3],
    /// Groups not finished: `join` waits for them.
    pub(super) busy_groups: usize,
    /// Parked runners, most recent last.
    pub(super) idle: Vec<Arc<Inbox>>,
    pub(super) running: usize,
    pub(super) ending: usize,
    /// Slots held by groups' workers (the rest are loose tasks').
    pub(super) group_workers: usize,
    /// Items of start groups waiting (they have ids).
    pub(super) reserved_waiting: u64,
    /// Map items in `Life::Waiting`.
    pub(super) waiting_items: u64,
    /// Retried tasks in `Life::Backoff`.
    pub(super) backoff: usize,
    pub(super) ended: Ended,
    /// Durations, if the pool tracks them (`track_durations`).
    pub(super) timing: Option<Box<Timing>>,
    /// The pool's rate limit, if it has one (see `rate.rs`).
    pub(super) pool_rate: Option<Box<PoolRate>>,
}

/// Work the section found to do once the lock is released. Most sections make at most one
/// wake and drop at most one value: those need no allocation; the rest is boxed.
#[derive(Default)]
pub(crate) struct After {
    /// The one wake most sections make (a handle's, a consumer's).
    wake: Option<Waker>,
    /// The one user value most sections let go of.
    trash: Option<Trash>,
    /// Tell waiters (`join`, `flush`, `until_closed`) that something changed.
    pub(crate) notify: bool,
    rest: Option<Box<Rest>>,
}

#[derive(Default)]
struct Rest {
    wakes: Vec<Waker>,
    /// Jobs to start: delivered to a parked runner, or spawned.
    starts: Vec<(Start, Option<Arc<Inbox>>)>,
    trash: Vec<Trash>,
    closing: Vec<Arc<Inbox>>,
    /// The pool's rate timer to arm (see `rate.rs`).
    pool_timer: Option<PoolWait>,
}

/// A user value carried out of the state lock: held only to be dropped after unlocking.
#[expect(dead_code, reason = "the values are only dropped")]
pub(crate) enum Trash {
    Control(Arc<dyn TaskControl>),
    Driver(Arc<dyn GroupDriver>),
    Input(Box<dyn Any + Send>),
}

impl After {
    fn rest(&mut self) -> &mut Rest {
        self.rest.get_or_insert_with(Default::default)
    }

    #[inline]
    pub(crate) fn wake(&mut self, waker: Option<Waker>) {
        if let Some(w) = waker {
            match self.wake {
                None => self.wake = Some(w),
                Some(_) => self.rest().wakes.push(w),
            }
        }
    }

    pub(crate) fn start(&mut self, start: Start, mailbox: Option<Arc<Inbox>>) {
        self.rest().starts.push((start, mailbox));
    }

    /// Parked runners to end (the pool closed).
    pub(crate) fn close_runners(&mut self, runners: Vec<Arc<Inbox>>) {
        if !runners.is_empty() {
            self.rest().closing.extend(runners);
        }
    }

    pub(crate) fn discard(&mut self, trash: Trash) {
        match self.trash {
            None => self.trash = Some(trash),
            Some(_) => self.rest().trash.push(trash),
        }
    }

    /// The pool's rate timer, to arm once unlocked.
    pub(crate) fn arm_pool_timer(&mut self, timer: PoolWait) {
        self.rest().pool_timer = Some(timer);
    }

    /// Does it all, with no lock held.
    #[inline]
    fn run(&mut self, core: &Core) {
        if let Some(w) = self.wake.take() {
            w.wake();
        }
        if let Some(t) = self.trash.take() {
            drop_trash(t, core);
        }
        if let Some(rest) = self.rest.take() {
            rest.run(core);
        }
        if self.notify {
            core.notify_changed();
        }
    }
}

fn drop_trash(t: Trash, core: &Core) {
    drop_value(
        t,
        Whose {
            pool: &core.name,
            task: None,
            what: "a value the pool let go of",
        },
    );
}

impl Rest {
    fn run(self, core: &Core) {
        if let Some(timer) = self.pool_timer {
            core.arm_pool_timer(timer);
        }
        for w in self.wakes {
            w.wake();
        }
        for (start, mailbox) in self.starts {
            core.start(start, mailbox);
        }
        for t in self.trash {
            drop_trash(t, core);
        }
        for m in self.closing {
            m.close(&core.name);
        }
    }
}

/// One critical section of the state lock. Dropping it unlocks first, then does what the
/// section left in [`After`]: wakes, starts jobs, drops user values, notifies waiters.
pub(crate) struct Section<'a> {
    pub(crate) core: &'a Arc<Core>,
    st: Option<Locked<'a, State>>,
    /// Never dropped with drop glue: `After::run` empties it when the section ends.
    pub(crate) after: ManuallyDrop<After>,
}

impl std::ops::Deref for Section<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.st.as_ref().expect("locked until dropped")
    }
}

impl std::ops::DerefMut for Section<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.st.as_mut().expect("locked until dropped")
    }
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        let samples = if self.core.samples_wanted {
            self.st.as_mut().and_then(|st| st.take_samples())
        } else {
            None
        };
        drop(self.st.take());
        if let Some(samples) = samples {
            // Before the wake-ups: whoever this section wakes sees them recorded.
            self.core.telemetry.durations(samples.as_slice());
        }
        self.after.run(self.core);
    }
}

impl Section<'_> {
    /// The state and the after-work, borrowed apart.
    #[inline]
    pub(crate) fn split(&mut self) -> (&mut State, &mut After, &Arc<Core>) {
        (
            self.st.as_mut().expect("locked until dropped"),
            &mut self.after,
            self.core,
        )
    }
}

thread_local! {
    /// Whether this thread is inside `Core::spawn`. A runtime that drops a future inside
    /// `spawn` (it has shut down) retires its task, which may start the next queued task, and
    /// so on: nested spawns are deferred to `DEFERRED`, turning that recursion into a loop.
    static SPAWNING: StdCell<bool> = const { StdCell::new(false) };
    static DEFERRED: RefCell<Vec<(Arc<dyn Spawner>, BoxFuture)>> = const { RefCell::new(Vec::new()) };
}

/// Whether a runner dropped now, unpolled, was refused by `Spawner::spawn`.
pub(crate) fn inside_spawn() -> bool {
    SPAWNING.get()
}

/// Leaves the spawning state even if a spawner panics, so later spawns are not held back.
struct SpawnScope;
impl Drop for SpawnScope {
    fn drop(&mut self) {
        SPAWNING.set(false);
    }
}

/// The pool itself: what every handle, runner and group shares.
pub(crate) struct Core {
    pub(crate) serial: u64,
    pub(crate) name: Arc<str>,
    pub(crate) spawner: Arc<dyn Spawner>,
    state: Mutex<State>,
    /// Notified when a task retires, a group finishes or the pool closes...
    changed: Event,
    /// ...if anyone waits: most retirements have no waiter and skip the notification.
    waiters: AtomicUsize,
    /// The pool's `max_queue_wait` in nanoseconds, for tasks and groups that set none (0:
    /// none). Set at build; read on every submission, so a plain load.
    queue_wait_nanos: std::sync::atomic::AtomicU64,
    /// Its metrics (feature `metrics`; nothing without it).
    pub(crate) telemetry: Telemetry,
    /// Its adaptive limit, if one is set (`adaptive.rs`).
    pub(crate) adaptive: Adaptive,
    /// Its keyed spawns' single flights (`crate::flight`).
    pub(crate) flights: super::flights::Flights,
    /// Whether sections carry duration samples out to `telemetry` (durations tracked, and
    /// the `metrics` feature on).
    samples_wanted: bool,
    /// Whether the pool has a rate limit (`rate.rs`): sections read the runtime's clock
    /// before locking. A plain load, so that a pool without one pays a branch.
    pub(crate) pool_rated: std::sync::atomic::AtomicBool,
    /// The pool itself, weakly: its rate timer (`arm_pool_timer`, given only `&Core`) takes a
    /// strong reference from it for as long as work waits for a token.
    pub(crate) this: std::sync::Weak<Core>,
}

#[cfg(feature = "metrics")]
impl Drop for Core {
    fn drop(&mut self) {
        // What it still counted (tasks queued when its runtime went away) leaves the gauges.
        let (running, queued) = self.read(|st| ((st.running() + st.ending()) as u64, st.queued()));
        self.telemetry.gone(running, queued);
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("name", &&*self.name).finish()
    }
}

impl Core {
    pub(crate) fn new(
        spawner: Arc<dyn Spawner>,
        name: Option<String>,
        limit: Option<usize>,
        track_durations: bool,
        metrics: bool,
    ) -> Arc<Self> {
        let serial = POOL_SERIAL.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = match name {
            Some(n) => n.into(),
            None => format!("TaskPool-{serial}").into(),
        };
        tracing::debug!(pool = %name, runtime = spawner.runtime_name(), ?limit, "{name} initialized");
        let telemetry = Telemetry::new(&name, limit, metrics);
        Arc::new_cyclic(|this| Self {
            this: this.clone(),
            telemetry,
            adaptive: Adaptive::default(),
            flights: super::flights::Flights::default(),
            samples_wanted: Telemetry::ACTIVE && track_durations,
            pool_rated: std::sync::atomic::AtomicBool::new(false),
            serial,
            name,
            spawner,
            state: Mutex::new(State {
                limit,
                slots: 0,
                gate: Gate::Open,
                next_id: 0,
                table: IdTable::default(),
                loose: LooseQueue::default(),
                loose_weight: 1,
                ageing: None,
                pass_clock: 0,
                turns: Turns::default(),
                groups: Slab::default(),
                names: HashMap::new(),
                name_counters: [0; 3],
                busy_groups: 0,
                idle: Vec::new(),
                running: 0,
                ending: 0,
                group_workers: 0,
                reserved_waiting: 0,
                waiting_items: 0,
                backoff: 0,
                ended: Ended::default(),
                timing: track_durations.then(Timing::new),
                pool_rate: None,
            }),
            changed: Event::new(),
            waiters: AtomicUsize::new(0),
            queue_wait_nanos: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The pool's `max_queue_wait`, if it has one.
    #[inline]
    pub(crate) fn queue_wait(&self) -> Option<Duration> {
        match self.queue_wait_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Sets the pool's `max_queue_wait` (at build).
    pub(crate) fn set_queue_wait(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.queue_wait_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Enters a critical section.
    #[inline]
    pub(crate) fn section(self: &Arc<Self>) -> Section<'_> {
        // A pool with a rate limit reads the clock first (no lock held): its starts take
        // tokens at the instant they happen.
        let now = self.rate_clock();
        let mut st = lock(&self.state, Rank::State);
        if let Some(now) = now {
            st.observe_pool(now);
        }
        Section {
            core: self,
            st: Some(st),
            after: ManuallyDrop::new(After::default()),
        }
    }

    /// The runtime's clock, if the pool has a rate limit (read with no lock held).
    #[inline]
    pub(crate) fn rate_clock(&self) -> Option<std::time::Instant> {
        if self.pool_rated.load(Ordering::Relaxed) {
            Some(self.spawner.now())
        } else {
            None
        }
    }

    /// The state alone, for a section that leaves nothing to do after unlocking (no wake, no
    /// job to start, no value to drop).
    #[inline]
    pub(crate) fn state(&self) -> Locked<'_, State> {
        lock(&self.state, Rank::State)
    }

    /// Reads the state; for looks that change nothing.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&lock(&self.state, Rank::State))
    }

    #[inline]
    pub(crate) fn notify_changed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.changed.notify(usize::MAX);
        }
    }

    pub(crate) fn waiters(&self) -> (&AtomicUsize, &Event) {
        (&self.waiters, &self.changed)
    }

    /// Hands work to a parked runner, or (none parked, or it went away with its runtime)
    /// spawns a runner for it.
    pub(crate) fn start(&self, start: Start, mailbox: Option<Arc<Inbox>>) {
        let refused = match mailbox {
            Some(m) => m.deliver(start).err(),
            None => Some(start),
        };
        if let Some(start) = refused {
            self.spawn(start.into_job().into_future());
        }
    }

    /// Spawns a runtime task. A refused spawn drops the future unpolled, which retires its
    /// task as refused (see [`inside_spawn`]).
    /// Lets go of a reference to the pool that may be its last (a timer's or a job's): the
    /// pool's drop drops its spawner, the user's, so it goes through the panic guard as any
    /// user value does.
    pub(crate) fn let_go(self: Arc<Self>) {
        let whose = Whose {
            pool: "(a pool whose last reference goes)",
            task: None,
            what: "the pool",
        };
        drop_value(self, whose);
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
            tracing::error!(pool = %self.name, error = %e, "{}: the runtime refused to start a task: {e}", self.name);
        }
    }

    pub(crate) fn pool_name(&self) -> String {
        self.name.to_string()
    }
}

// ----- the state's named transitions -----

impl State {
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }
    pub(crate) fn gate(&self) -> Gate {
        self.gate
    }
    pub(crate) fn running(&self) -> usize {
        self.running
    }
    pub(crate) fn ending(&self) -> usize {
        self.ending
    }
    /// Tasks with ids waiting for room: queued loose tasks and reserved start items.
    pub(crate) fn queued(&self) -> u64 {
        self.loose.len() as u64 + self.reserved_waiting + self.waiting_items
    }
    /// Items of map and apply groups waiting for room (not yet pulled from their input).
    pub(crate) fn backlog(&self) -> u64 {
        self.groups
            .iter()
            .filter(|(_, g)| !matches!(g.input, Input::Reserved(_)))
            .fold(0u64, |sum, (_, g)| {
                sum.saturating_add(g.backlog).saturating_add(g.ahead)
            })
    }
    pub(crate) fn ended(&self) -> Ended {
        self.ended
    }
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.limit.is_none_or(|l| self.slots < l)
    }
    #[inline]
    pub(super) fn over_limit(&self) -> bool {
        self.limit.is_some_and(|l| self.slots > l)
    }
    /// No task queued or running, no group unfinished.
    pub(crate) fn is_idle(&self) -> bool {
        self.table.is_empty() && self.loose.is_empty() && self.busy_groups == 0
    }
    pub(crate) fn no_callbacks_running(&self) -> bool {
        self.ending == 0 && self.groups.iter().all(|(_, g)| g.unstarted_ending == 0)
    }

    #[inline]
    pub(crate) fn check_open(&self, pool: &str) -> Result<(), PoolError> {
        if self.gate == Gate::Open {
            Ok(())
        } else {
            Err(self.refusal(pool))
        }
    }

    #[cold]
    fn refusal(&self, pool: &str) -> PoolError {
        match self.gate {
            Gate::Locked => PoolError::Locked { pool: pool.into() },
            _ => PoolError::Closed { pool: pool.into() },
        }
    }

    pub(crate) fn set_gate(&mut self, gate: Gate) -> bool {
        let was = std::mem::replace(&mut self.gate, gate);
        was != gate
    }

    pub(crate) fn set_limit_to(&mut self, limit: Option<usize>) {
        self.limit = limit;
    }

    #[inline]
    pub(crate) fn allocate_id(&mut self) -> TaskId {
        let id = TaskId::new(self.next_id);
        self.next_id += 1;
        id
    }

    /// Reserves `n` consecutive ids; returns the first.
    pub(crate) fn reserve_ids(&mut self, n: u64) -> u64 {
        let first = self.next_id;
        self.next_id += n;
        first
    }

    #[inline]
    pub(crate) fn take_slot(&mut self) {
        self.slots += 1;
    }

    #[inline]
    pub(crate) fn free_slot(&mut self) {
        self.slots -= 1;
    }

    /// A parked runner for a job that starts now, if one waits.
    #[inline]
    pub(crate) fn idle_runner(&mut self) -> Option<Arc<Inbox>> {
        self.idle.pop()
    }

    pub(crate) fn close_idle_runners(&mut self) -> Vec<Arc<Inbox>> {
        std::mem::take(&mut self.idle)
    }

    /// A loose task starts running, in `seat` (a group's items: [`insert_item`](Self::insert_item)).
    #[inline]
    pub(crate) fn insert_running(&mut self, id: TaskId, control: Arc<dyn TaskControl>, seat: Seat) {
        self.register(id, control, Life::Running(seat), false, None);
    }

    /// Group `key`'s worker takes up item `id`: it runs, unless its group was shed (see
    /// [`insert_item_entry`](Self::insert_item_entry)).
    #[inline]
    pub(crate) fn insert_item(&mut self, id: TaskId, control: Arc<dyn TaskControl>, key: GroupKey) {
        let shed = match self.groups.get_mut(key) {
            Some(g) => {
                g.items_live += 1;
                g.shed
            }
            None => false,
        };
        self.insert_item_entry(id, control, key, shed);
    }

    /// Registers item `id` of group `key` (its group counted it live already). An item of a
    /// shed group is shed as its worker reaches it: it never runs, so it counts as ending,
    /// not running (a shed group's worker may hold no slot: `shed_group`), and has no start
    /// to time.
    #[inline]
    pub(crate) fn insert_item_entry(
        &mut self,
        id: TaskId,
        control: Arc<dyn TaskControl>,
        key: GroupKey,
        shed: bool,
    ) {
        let life = if shed {
            Life::Ending
        } else {
            Life::Running(Seat::Worker)
        };
        self.register(id, control, life, false, Some(key));
    }

    /// A queued task that was cancelled (or shed) runs its callbacks without a slot.
    pub(super) fn insert_ending(
        &mut self,
        id: TaskId,
        control: Arc<dyn TaskControl>,
        cancel_requested: bool,
    ) {
        self.register(id, control, Life::Ending, cancel_requested, None);
    }

    /// Enters task `id` in the table, counted by its life; a running one's start is timed.
    #[inline]
    fn register(
        &mut self,
        id: TaskId,
        control: Arc<dyn TaskControl>,
        life: Life,
        cancel_requested: bool,
        group: Option<GroupKey>,
    ) {
        match life {
            Life::Running(_) => self.running += 1,
            Life::Ending => self.ending += 1,
            Life::Waiting => self.waiting_items += 1,
            Life::Backoff => self.backoff += 1,
        }
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(control),
                life,
                cancel_requested,
                group,
            },
        );
        if let Life::Running(_) = life {
            self.time_started(id, group);
        }
    }

    /// A task's future is done and its callbacks are about to run. Returns its seat.
    pub(crate) fn enter_ending(&mut self, id: TaskId) -> Option<Seat> {
        let entry = self.table.get_mut(id.get())?;
        let seat = match entry.life {
            Life::Running(seat) => {
                self.running -= 1;
                seat
            }
            Life::Waiting => {
                self.waiting_items -= 1;
                Seat::Unseated
            }
            Life::Backoff => {
                self.backoff -= 1;
                Seat::Unseated
            }
            Life::Ending => return None,
        };
        entry.life = Life::Ending;
        self.ending += 1;
        Some(seat)
    }

    /// Removes a task that ended; counts it. Returns its entry (to drop after unlocking).
    #[inline]
    pub(crate) fn remove_task(&mut self, id: TaskId, outcome: Outcome) -> Option<Entry> {
        let entry = self.table.remove(id.get())?;
        match entry.life {
            Life::Waiting => self.waiting_items -= 1,
            Life::Running(_) => self.running -= 1,
            Life::Ending => self.ending -= 1,
            Life::Backoff => self.backoff -= 1,
        }
        if let Some(key) = entry.group {
            if let Some(g) = self.groups.get_mut(key) {
                g.items_live -= 1;
                g.ended += 1;
            }
        }
        self.ended.count(outcome);
        self.time_ended(id, entry.group);
        Some(entry)
    }

    /// Queues a loose task, behind those of its priority.
    #[inline]
    pub(crate) fn queue_loose(&mut self, id: TaskId, task: Arc<dyn QueuedTask>, priority: i32) {
        self.time_queued(id);
        let clock = self.pass_clock;
        let level = self.loose.push(priority, id.get(), Waiting::Task(task));
        if !level.in_turns {
            level.in_turns = true;
            level.passed_over = 0;
            level.pass = level.pass.max(clock);
            self.turns.join(Lane::Loose(priority));
        }
    }

    /// Whether anything waits for a slot.
    #[inline]
    pub(crate) fn anything_waits(&self) -> bool {
        self.turns.len() > 0
    }

    // ----- the scheduler -----

    /// Starts the work whose turn it is in a slot the caller already counted. `None` if the
    /// turn went to a worker waiting with an item (it was woken).
    pub(super) fn start_turn(
        &mut self,
        (lane, place): (Lane, usize),
        core: &Arc<Core>,
        after: &mut After,
    ) -> Option<Start> {
        self.take_turn(place);
        match lane {
            Lane::Loose(priority) => {
                let (key, task) = self
                    .loose
                    .pop(priority)
                    .expect("the loose lane wants a slot");
                // Its start takes a token of the pool's rate limit, if it has one (the
                // caller saw one due: `pool_held_after`).
                self.take_pool_token();
                let task = task.into_inner();
                let id = TaskId::new(key);
                self.insert_running(id, task.clone().control(), Seat::Slot);
                // Its future leaves the cell when the runner takes it up, outside the lock.
                Some(Start::Task(Launch {
                    task,
                    id,
                    core: core.clone(),
                }))
            }
            Lane::Group(key) => {
                let g = self.groups.get_mut(key).expect("a group in turns is known");
                if let Some(waiting) = g.parked_puller.as_mut().filter(|w| w.is_some()) {
                    // A worker holding an item gets the slot (and the item its token).
                    after.wake(waiting.take());
                    self.take_pool_token();
                    self.worker_in(key);
                    return None;
                }
                self.worker_in(key);
                // A reserved item starts with its slot, as a loose task does: it counts as
                // running from this section on (unless a rate limit decides when it starts).
                let rated = self.groups.get(key).is_some_and(|g| g.rate.is_some());
                let first = if rated { None } else { self.take_reserved(key) };
                let g = self.groups.get_mut(key).expect("checked");
                let driver = g
                    .driver
                    .as_ref()
                    .expect("a group that wants a slot has its driver");
                let worker = Arc::clone(driver).worker(core, first);
                if let Some(id) = first {
                    self.insert_item(id, worker.control, key);
                }
                Some(Start::Job(worker.job))
            }
        }
    }

    /// Gives free slots to waiting work, in turn.
    pub(crate) fn grant(&mut self, core: &Arc<Core>, after: &mut After) {
        if self.pool_rate.is_some() {
            // No more starts than the pool's rate limit has tokens due (`rate.rs`).
            return self.grant_rated(core, after);
        }
        while self.has_room() {
            let Some(lane) = self.lane_up(None) else {
                break;
            };
            self.take_slot();
            if let Some(start) = self.start_turn(lane, core, after) {
                let runner = self.idle_runner();
                after.start(start, runner);
            }
        }
    }

    /// A runner's job ended and its slot is free: what the runner does next. The slot goes
    /// to the work whose turn it is (handed over: same slot, same runtime task), or back.
    pub(crate) fn next_for_slot(
        &mut self,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Next {
        match self.slot_to_turn(core, after) {
            Some(start) => Next::Run(start),
            // The slot went to a waiting worker, or back to the pool: this runner has none.
            None => self.park_or_end(spare),
        }
    }

    /// The usual end of a loose task whose runner holds its slot, with only loose tasks of
    /// one priority waiting: task `ended` retires and the oldest of them starts on the same
    /// runner, taking over the ended task's record in the table (its control swapped in), so
    /// nothing is removed or inserted there. Returns what the runner runs next, or `None`,
    /// having changed nothing, in any other case: the caller then calls
    /// [`retire_held`](Self::retire_held) and [`next_for_slot`](Self::next_for_slot), which
    /// decide the same where this applies. The ended task's control is the caller's too
    /// (its runner holds the cell), so the table's reference is dropped here, a count only.
    #[inline]
    pub(crate) fn task_to_next(
        &mut self,
        ended: TaskId,
        outcome: Outcome,
        core: &Arc<Core>,
        after: &mut After,
    ) -> Option<Start> {
        // The case in which `slot_to_turn` asks `lane_up`, which answers from its one lane
        // without weighing or changing the ring, and `start_turn` pops a loose task.
        if self.turns.len() != 1 {
            return None;
        }
        self.queued_to_next(ended, outcome, core, after)
    }

    /// [`task_to_next`](Self::task_to_next) once one lane waits.
    #[inline(never)]
    fn queued_to_next(
        &mut self,
        ended: TaskId,
        outcome: Outcome,
        core: &Arc<Core>,
        after: &mut After,
    ) -> Option<Start> {
        if self.over_limit() || self.pool_rate.is_some() {
            return None;
        }
        let lane = self.turns.get(0)?;
        let Lane::Loose(priority) = lane else {
            return None;
        };
        if !self.wants(lane) {
            return None;
        }
        let e = self.table.get(ended.get())?;
        if !matches!(e.life, Life::Running(Seat::Slot)) || e.group.is_some() {
            return None;
        }
        let (key, task) = self
            .loose
            .pop(priority)
            .expect("the loose lane wants a slot");
        let task = task.into_inner();
        let id = TaskId::new(key);
        let e = self.hand_record_on(ended, id, None, outcome, after);
        let old = std::mem::replace(&mut e.control, Held::new(task.clone().control()));
        let old = old.into_inner();
        debug_assert!(Arc::strong_count(&old) > 1, "the caller holds the control");
        drop(old);
        Some(Start::Task(Launch {
            task,
            id,
            core: core.clone(),
        }))
    }

    /// The shared step of [`task_to_next`](Self::task_to_next) and
    /// [`item_to_next`](Self::item_to_next): `ended` (live, checked by the caller) retires
    /// and `next` starts in its record, which moves to `next`'s id; the ended count, the
    /// durations and the waiters end where `retire_held` and a start would leave them.
    /// Returns the record, for what differs (a task's control).
    pub(super) fn hand_record_on(
        &mut self,
        ended: TaskId,
        next: TaskId,
        group: Option<GroupKey>,
        outcome: Outcome,
        after: &mut After,
    ) -> &mut Entry {
        self.ended.count(outcome);
        self.time_ended(ended, group);
        self.time_started(next, group);
        after.notify = true;
        let e = self
            .table
            .rekey(ended.get(), next.get())
            .expect("checked live");
        e.cancel_requested = false;
        e
    }

    /// Like [`next_for_slot`](Self::next_for_slot), for work that holds a slot but no runner
    /// (an `exec` run in its caller's task): what starts in its place goes to a parked
    /// runner, or a new one, once unlocked.
    #[inline(never)]
    pub(crate) fn pass_slot_on(&mut self, core: &Arc<Core>, after: &mut After) {
        if let Some(start) = self.slot_to_turn(core, after) {
            let runner = self.idle_runner();
            after.start(start, runner);
        }
    }

    /// The slot of work that ended goes to the work whose turn it is: returned to run in its
    /// place, or given (to a waiting worker, or back to the pool) here.
    #[inline]
    fn slot_to_turn(&mut self, core: &Arc<Core>, after: &mut After) -> Option<Start> {
        if !self.over_limit() {
            if let Some(lane) = self.lane_up(Some(Lane::Loose(0))) {
                // No token of the pool's rate limit due: the slot goes back (`rate.rs`).
                if !(self.pool_rate.is_some() && self.pool_held_after(0, after)) {
                    // `None`: the slot went to a waiting worker.
                    return self.start_turn(lane, core, after);
                }
            }
        }
        self.free_slot();
        if self.anything_waits() {
            self.grant(core, after);
        }
        None
    }

    /// A runner with no slot and no job: park it for the next job that starts at once.
    pub(super) fn park_or_end(&mut self, spare: &mut Option<Arc<Inbox>>) -> Next {
        if self.gate == Gate::Closed || self.idle.len() >= IDLE_CAP {
            return Next::End;
        }
        let mailbox = spare.take().unwrap_or_else(Mailbox::new);
        self.idle.push(mailbox.clone());
        Next::Park(Parking::new(mailbox))
    }

    /// A task's slot is free (its callbacks are about to run): give it out.
    pub(crate) fn release_slot(&mut self, core: &Arc<Core>, after: &mut After) {
        self.free_slot();
        self.grant(core, after);
    }

    // ----- retiring -----

    /// A task ended: removes and counts it; waiters are told.
    pub(crate) fn retire(&mut self, id: TaskId, outcome: Outcome, after: &mut After) {
        if let Some(entry) = self.remove_task(id, outcome) {
            after.discard(Trash::Control(entry.control.into_inner()));
            after.notify = true;
        }
    }

    /// Like [`retire`](Self::retire), for a caller that holds the task's control itself (a
    /// task's job holds its cell; a worker, its items' abort signal): dropping the table's
    /// reference then only lowers a count, so it is dropped here, not carried out.
    #[inline]
    pub(crate) fn retire_held(&mut self, id: TaskId, outcome: Outcome, after: &mut After) {
        if let Some(entry) = self.remove_task(id, outcome) {
            let control = entry.control.into_inner();
            debug_assert!(
                Arc::strong_count(&control) > 1,
                "the caller holds the control"
            );
            drop(control);
            after.notify = true;
        }
    }

    /// Forgets the counters of ended tasks and finished groups.
    pub(crate) fn forget_ended(&mut self) {
        self.ended = Ended::default();
        self.forget_durations();
        let finished: Vec<(GroupKey, Arc<str>)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.settled)
            .map(|(k, g)| (k, g.name.clone()))
            .collect();
        for (key, name) in finished {
            if self.names.get(&name) == Some(&key) {
                self.names.remove(&name);
            }
            self.drop_group_if_gone(key);
        }
        let cap = self.names.capacity();
        if cap > 1024 && self.names.len() < cap / 8 {
            let keep = (cap / 4).max(self.names.len());
            self.names.shrink_to(keep);
        }
    }
}

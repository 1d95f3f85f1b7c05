//! The pool's core: its state behind the one state lock, the named transitions that change
//! it, the scheduler that gives freed slots out, and the critical [`Section`] that carries
//! wake-ups, jobs to start and removed user values out of the lock.
//!
//! Every change of the state goes through a method of [`State`] named for what happens
//! (`insert_running`, `to_ending`, `remove_task`, `take_slot`, ...); those methods keep the
//! counts consistent, and nothing else writes them.

use super::fifo::Fifo;
use super::handoff::{BoxJob, Mailbox, Next, Parking, IDLE_CAP};
use super::lanes::{GroupKey, Lane, Reserved, Turns};
use super::lock::{lock, Locked, Rank};
use super::slab::Slab;
use super::table::IdTable;
use super::user::{drop_value, Held, Owner};
use crate::error::{PoolError, TaskError};
use crate::id::TaskId;
use async_taskpool_runtime::{BoxFuture, Spawner};
use event_listener::Event;
use std::any::Any;
use std::cell::{Cell as StdCell, RefCell};
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

static POOL_SERIAL: AtomicU64 = AtomicU64::new(0);

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Cancelled,
    Panicked,
    TimedOut,
    /// The runtime dropped the task (it shut down), or refused to start it.
    Dropped,
}

impl Outcome {
    pub(crate) fn of<T>(res: &Result<T, TaskError>) -> Self {
        match res {
            Ok(_) => Self::Completed,
            Err(TaskError::Cancelled { .. }) => Self::Cancelled,
            Err(TaskError::Panicked { .. }) => Self::Panicked,
            Err(TaskError::TimedOut { .. }) => Self::TimedOut,
            Err(TaskError::RuntimeDropped { .. } | TaskError::SpawnFailed { .. }) => Self::Dropped,
        }
    }
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
enum Life {
    /// A map item pulled by a worker that waited on its input without a slot: it has its id
    /// and waits for the group's turn.
    Waiting,
    /// Its future runs (or is about to).
    Running(Seat),
    /// Its future is done; its callbacks run. It holds no slot.
    Ending,
}

/// The pool's handle on a task that left the queue: to cancel it and to name it.
pub(crate) trait TaskControl: Send + Sync {
    /// Asks task `id` to stop at its next poll; returns the waker to wake once unlocked.
    fn cancel(&self, id: TaskId) -> Option<Waker>;
    /// Its custom name, if any.
    fn name(&self) -> Option<&str> {
        None
    }
}

/// A loose task waiting in the queue.
pub(crate) trait QueuedTask: Send + Sync {
    /// Its job, leaving the queue: to run in `seat` (`Slot` when granted one, `Unseated` when
    /// cancelled while queued). Called under the state lock: it only moves the future.
    fn launch(self: Arc<Self>, core: &Arc<Core>, id: TaskId, seat: Seat) -> BoxJob;
    /// The same task as the table sees it once it runs.
    fn control(self: Arc<Self>) -> Arc<dyn TaskControl>;
    /// Its custom name, if any.
    fn name(&self) -> Option<&str>;
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
}

/// A worker job, and the signal that cancels the items it runs.
pub(crate) struct NewWorker {
    pub(crate) job: BoxJob,
    pub(crate) control: Arc<dyn TaskControl>,
}

/// What kind of group, for its generated name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    StartOrQueue,
    /// Start now or give the future back (`try_spawn`).
    StartNowOrRefuse,
}

/// Counters of ended tasks since the last flush.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ended {
    pub(crate) ended: u64,
    pub(crate) cancelled: u64,
    pub(crate) panicked: u64,
    pub(crate) timed_out: u64,
    pub(crate) dropped: u64,
}

impl Ended {
    fn count(&mut self, outcome: Outcome) {
        self.ended += 1;
        match outcome {
            Outcome::Completed => {}
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::Panicked => self.panicked += 1,
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Dropped => self.dropped += 1,
        }
    }
}

/// A task that left the queue and has not retired.
pub(crate) struct Entry {
    control: Held<Arc<dyn TaskControl>>,
    life: Life,
    cancel_requested: bool,
    group: Option<GroupKey>,
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
    driver: Option<Held<Arc<dyn GroupDriver>>>,
    num_concurrent: usize,
    /// How many workers it wants now (ramps as items are pulled).
    target: usize,
    /// Workers holding a slot.
    workers: usize,
    pub(crate) input: Input,
    /// A worker holds an item and waits for a slot (its waker; `None` once granted).
    parked_puller: Option<Option<Waker>>,
    in_turns: bool,
    cancelled: bool,
    /// Items running or ending.
    items_live: usize,
    /// Items waiting for room: a lower bound from the input's size hint (exact for exact
    /// inputs and reserved ids).
    backlog: u64,
    /// Reserved items cancelled before they started, whose results and callbacks are still
    /// being delivered.
    unstarted_ending: u64,
    /// Counted out of the busy groups (`join` no longer waits for it).
    settled: bool,
}

impl GroupState {
    /// No more items will start and none is live: the group is over. (A worker still
    /// alive holds no item then; it leaves when it next runs.)
    fn finished(&self) -> bool {
        matches!(self.input, Input::Done) && self.items_live == 0 && self.unstarted_ending == 0
    }

    /// Whether more items may come: the input is there (or a worker is pulling from it, a
    /// moment's work), or reserved ids wait. A group keeps its turns while its input is
    /// being pulled, so a busy input does not cost it its share of the pool.
    fn has_input(&self) -> bool {
        match &self.input {
            Input::Idle(_) | Input::Pulling => true,
            Input::Reserved(r) => !r.is_empty(),
            Input::Waiting(_) | Input::Done => false,
        }
    }

    /// Whether the group would use a slot now.
    fn wants_slot(&self) -> bool {
        !self.cancelled
            && (matches!(self.parked_puller, Some(Some(_)))
                || (self.has_input() && self.workers < self.target.min(self.num_concurrent)))
    }
}

/// What a worker does after an item.
pub(crate) enum AfterItem {
    /// Keep the slot and go on with the group's next item: taken in the same section, unless
    /// the worker asked for it later (it yields to its executor first).
    Continue(Option<Pull>),
    /// Give the slot (with the runtime task) to this job.
    HandOver(BoxJob),
    /// Give the slot back and end (or park).
    Leave(Next),
}

/// The pool's state. Only the named methods below change it.
pub(crate) struct State {
    limit: Option<usize>,
    slots: usize,
    gate: Gate,
    next_id: u64,
    table: IdTable<Entry>,
    loose: Fifo<Held<Arc<dyn QueuedTask>>>,
    loose_in_turns: bool,
    turns: Turns,
    groups: Slab<GroupState>,
    names: HashMap<Arc<str>, GroupKey>,
    name_counters: [u64; 3],
    /// Groups not finished: `join` waits for them.
    busy_groups: usize,
    /// Parked runners, most recent last.
    idle: Vec<Arc<Mailbox>>,
    running: usize,
    ending: usize,
    /// Slots held by groups' workers (the rest are loose tasks').
    group_workers: usize,
    /// Items of start groups waiting (they have ids).
    reserved_waiting: u64,
    /// Map items in `Life::Waiting`.
    waiting_items: u64,
    ended: Ended,
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
    starts: Vec<(BoxJob, Option<Arc<Mailbox>>)>,
    trash: Vec<Trash>,
    closing: Vec<Arc<Mailbox>>,
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

    pub(crate) fn start(&mut self, job: BoxJob, mailbox: Option<Arc<Mailbox>>) {
        self.rest().starts.push((job, mailbox));
    }

    /// Parked runners to end (the pool closed).
    pub(crate) fn close_runners(&mut self, runners: Vec<Arc<Mailbox>>) {
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
        Owner {
            pool: &core.name,
            task: None,
            what: "a value the pool let go of",
        },
    );
}

impl Rest {
    fn run(self, core: &Core) {
        for w in self.wakes {
            w.wake();
        }
        for (job, mailbox) in self.starts {
            let refused = match mailbox {
                Some(m) => m.deliver(job).err(),
                None => Some(job),
            };
            // No runner parked, or it went away (its runtime shut down): spawn one.
            if let Some(job) = refused {
                core.spawn(job.into_future());
            }
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
        drop(self.st.take());
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
    ) -> Arc<Self> {
        let serial = POOL_SERIAL.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = match name {
            Some(n) => n.into(),
            None => format!("TaskPool-{serial}").into(),
        };
        tracing::debug!(pool = %name, runtime = spawner.runtime_name(), ?limit, "{name} initialized");
        Arc::new(Self {
            serial,
            name,
            spawner,
            state: Mutex::new(State {
                limit,
                slots: 0,
                gate: Gate::Open,
                next_id: 0,
                table: IdTable::default(),
                loose: Fifo::default(),
                loose_in_turns: false,
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
                ended: Ended::default(),
            }),
            changed: Event::new(),
            waiters: AtomicUsize::new(0),
        })
    }

    /// Enters a critical section.
    #[inline]
    pub(crate) fn section(self: &Arc<Self>) -> Section<'_> {
        Section {
            core: self,
            st: Some(lock(&self.state, Rank::State)),
            after: ManuallyDrop::new(After::default()),
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

    /// Spawns a runtime task. A refused spawn drops the future unpolled, which retires its
    /// task as refused (see [`inside_spawn`]).
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
            .map(|(_, g)| g.backlog)
            .sum()
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
    fn over_limit(&self) -> bool {
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
    pub(crate) fn idle_runner(&mut self) -> Option<Arc<Mailbox>> {
        self.idle.pop()
    }

    pub(crate) fn close_idle_runners(&mut self) -> Vec<Arc<Mailbox>> {
        std::mem::take(&mut self.idle)
    }

    /// A task starts running.
    #[inline]
    pub(crate) fn insert_running(
        &mut self,
        id: TaskId,
        control: Arc<dyn TaskControl>,
        seat: Seat,
        group: Option<GroupKey>,
    ) {
        self.running += 1;
        if let Some(key) = group {
            if let Some(g) = self.groups.get_mut(key) {
                g.items_live += 1;
            }
        }
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(control),
                life: Life::Running(seat),
                cancel_requested: false,
                group,
            },
        );
    }

    /// A queued task that was cancelled runs its callbacks without a slot.
    fn insert_ending(&mut self, id: TaskId, control: Arc<dyn TaskControl>) {
        self.ending += 1;
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(control),
                life: Life::Ending,
                cancel_requested: true,
                group: None,
            },
        );
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
        }
        if let Some(key) = entry.group {
            if let Some(g) = self.groups.get_mut(key) {
                g.items_live -= 1;
            }
        }
        self.ended.count(outcome);
        Some(entry)
    }

    /// Queues a loose task.
    pub(crate) fn queue_loose(&mut self, id: TaskId, task: Arc<dyn QueuedTask>) {
        self.loose.push(id.get(), Held::new(task));
        if !self.loose_in_turns {
            self.loose_in_turns = true;
            self.turns.join(Lane::Loose);
        }
    }

    /// Whether anything waits for a slot.
    #[inline]
    pub(crate) fn anything_waits(&self) -> bool {
        self.turns.len() > 0
    }

    // ----- the scheduler -----

    /// Slots a lane holds now: its workers for a group, the loose tasks' own slots for the
    /// loose lane. `None` if the lane wants no slot.
    #[inline]
    fn held_if_wanting(&self, lane: Lane) -> Option<usize> {
        match lane {
            Lane::Loose => (!self.loose.is_empty()).then(|| self.slots - self.group_workers),
            Lane::Group(key) => self
                .groups
                .get(key)
                .filter(|g| g.wants_slot())
                .map(|g| g.workers),
        }
    }

    /// The lane whose turn it is: of those that want a slot, the one holding the fewest, the
    /// earliest in turn order among equals. `from` is the lane whose slot is up for grabs (it
    /// counts one fewer). Lanes that want none leave the ring. Returns the lane's place in the
    /// ring too, for [`take_turn`](Self::take_turn).
    fn lane_up(&mut self, from: Option<Lane>) -> Option<(Lane, usize)> {
        if self.turns.len() == 0 {
            return None;
        }
        if self.turns.len() == 1 {
            // One lane waits (the usual case): no shares to weigh.
            let lane = self.turns.get(0)?;
            if self.held_if_wanting(lane).is_some() {
                return Some((lane, 0));
            }
        }
        let mut best: Option<(usize, usize, Lane)> = None;
        let mut i = 0;
        while let Some(lane) = self.turns.get(i) {
            match self.held_if_wanting(lane) {
                Some(held) => {
                    let held = if from == Some(lane) { held - 1 } else { held };
                    if best.is_none_or(|(h, _, _)| held < h) {
                        best = Some((held, i, lane));
                    }
                    i += 1;
                }
                None => {
                    self.turns.leave(i);
                    match lane {
                        Lane::Loose => self.loose_in_turns = false,
                        Lane::Group(key) => {
                            if let Some(g) = self.groups.get_mut(key) {
                                g.in_turns = false;
                            }
                        }
                    }
                }
            }
        }
        best.map(|(_, i, lane)| (lane, i))
    }

    /// The lane at `place` took its turn: it moves to the back.
    #[inline]
    fn take_turn(&mut self, place: usize) {
        if self.turns.len() > 1 {
            self.turns.took_turn(place);
        }
    }

    /// A group's worker took a slot, or gave one up.
    fn worker_in(&mut self, key: GroupKey) {
        if let Some(g) = self.groups.get_mut(key) {
            g.workers += 1;
            self.group_workers += 1;
        }
    }

    fn worker_out(&mut self, key: GroupKey) {
        if let Some(g) = self.groups.get_mut(key) {
            g.workers -= 1;
            self.group_workers -= 1;
        }
        self.drop_group_if_gone(key);
    }

    /// Starts the work whose turn it is in a slot the caller already counted. `None` if the
    /// turn went to a worker waiting with an item (it was woken).
    fn start_turn(
        &mut self,
        (lane, place): (Lane, usize),
        core: &Arc<Core>,
        after: &mut After,
    ) -> Option<BoxJob> {
        self.take_turn(place);
        match lane {
            Lane::Loose => {
                let (key, task) = self.loose.pop().expect("the loose lane wants a slot");
                let task = task.into_inner();
                let id = TaskId::new(key);
                self.insert_running(id, task.clone().control(), Seat::Slot, None);
                Some(task.launch(core, id, Seat::Slot))
            }
            Lane::Group(key) => {
                let g = self.groups.get_mut(key).expect("a group in turns is known");
                if let Some(waiting) = g.parked_puller.as_mut().filter(|w| w.is_some()) {
                    // A worker holding an item gets the slot.
                    after.wake(waiting.take());
                    self.worker_in(key);
                    return None;
                }
                self.worker_in(key);
                // A reserved item starts with its slot, as a loose task does: it counts as
                // running from this section on.
                let first = self.take_reserved(key);
                let g = self.groups.get_mut(key).expect("checked");
                let driver = g
                    .driver
                    .as_ref()
                    .expect("a group that wants a slot has its driver");
                let worker = Arc::clone(driver).worker(core, first);
                if let Some(id) = first {
                    self.insert_running(id, worker.control, Seat::Worker, Some(key));
                }
                Some(worker.job)
            }
        }
    }

    /// Gives free slots to waiting work, in turn.
    pub(crate) fn grant(&mut self, core: &Arc<Core>, after: &mut After) {
        while self.has_room() {
            let Some(lane) = self.lane_up(None) else {
                break;
            };
            self.take_slot();
            if let Some(job) = self.start_turn(lane, core, after) {
                let runner = self.idle_runner();
                after.start(job, runner);
            }
        }
    }

    /// A runner's job ended and its slot is free: what the runner does next. The slot goes
    /// to the work whose turn it is (handed over: same slot, same runtime task), or back.
    pub(crate) fn next_for_slot(
        &mut self,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> Next {
        if !self.over_limit() {
            if let Some(lane) = self.lane_up(Some(Lane::Loose)) {
                match self.start_turn(lane, core, after) {
                    Some(job) => return Next::Run(job),
                    // The slot went to a waiting worker; this runner has none now.
                    None => return self.park_or_end(spare),
                }
            }
        }
        self.free_slot();
        if self.anything_waits() {
            self.grant(core, after);
        }
        self.park_or_end(spare)
    }

    /// A runner with no slot and no job: park it for the next job that starts at once.
    fn park_or_end(&mut self, spare: &mut Option<Arc<Mailbox>>) -> Next {
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

    // ----- groups -----

    /// The name a new group gets: `name`, if free, or a generated one; refused if the pool
    /// takes no new work.
    pub(crate) fn name_group(
        &mut self,
        pool: &str,
        kind: GroupKind,
        name: Option<String>,
    ) -> Result<Arc<str>, PoolError> {
        self.check_open(pool)?;
        Ok(match name {
            Some(n) => {
                if self.names.contains_key(n.as_str()) {
                    return Err(PoolError::GroupExists {
                        pool: pool.into(),
                        name: n,
                    });
                }
                n.into()
            }
            None => loop {
                let counter = &mut self.name_counters[kind as usize];
                let k = *counter;
                *counter += 1;
                let candidate = format!("{}-group-{k}", kind.prefix());
                if !self.names.contains_key(candidate.as_str()) {
                    break candidate.into();
                }
            },
        })
    }

    /// Registers a group named by [`name_group`](Self::name_group).
    pub(crate) fn register_group(
        &mut self,
        name: Arc<str>,
        num_concurrent: usize,
        input: Input,
        backlog: u64,
        target: usize,
    ) -> GroupKey {
        if let Input::Reserved(r) = &input {
            self.reserved_waiting += r.len();
        }
        self.busy_groups += 1;
        let key = self.groups.insert(GroupState {
            name: name.clone(),
            driver: None,
            num_concurrent,
            target: target.max(1),
            workers: 0,
            input,
            parked_puller: None,
            in_turns: false,
            cancelled: false,
            items_live: 0,
            backlog,
            unstarted_ending: 0,
            settled: false,
        });
        self.names.insert(name, key);
        key
    }

    /// The group's driver is ready: it takes its turns from now on.
    pub(crate) fn launch_group(
        &mut self,
        key: GroupKey,
        driver: Arc<dyn GroupDriver>,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let g = self.groups.get_mut(key).expect("registered");
        g.driver = Some(Held::new(driver));
        self.join_turns(key);
        self.grant(core, after);
        self.settle_if_finished(key, after);
    }

    /// The group's input is over: nothing more is pulled. Tells the group's results how
    /// many items never started: `dropped` pulled ones, and, if the group was cancelled, what
    /// its input said was left.
    fn close_input(&mut self, key: GroupKey, dropped: u64, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if !matches!(g.input, Input::Reserved(_) | Input::Done) || dropped > 0 {
            let left = if g.cancelled { g.backlog } else { 0 };
            if let Some(driver) = g.driver.as_ref() {
                after.wake(driver.input_done(left + dropped));
            }
        }
        g.input = Input::Done;
        g.backlog = 0;
    }

    fn join_turns(&mut self, key: GroupKey) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if !g.in_turns && g.wants_slot() {
            g.in_turns = true;
            self.turns.join(Lane::Group(key));
        }
    }

    pub(crate) fn group_key(&self, name: &str) -> Option<GroupKey> {
        self.names.get(name).copied()
    }

    /// Whether the group is still known under its name (not cancelled, not flushed).
    pub(crate) fn group_is_named(&self, key: GroupKey) -> bool {
        self.groups
            .get(key)
            .is_some_and(|g| !g.cancelled && self.names.get(&g.name) == Some(&key))
    }

    /// The group task `id` belongs to, if it is live and in one.
    pub(crate) fn group_of(&self, id: TaskId) -> Option<GroupKey> {
        self.table.get(id.get())?.group
    }

    /// The next item of a group for a worker holding a slot: an input to pull (checked out
    /// to the caller), a reserved id (now running), or nothing.
    pub(crate) fn next_item(&mut self, key: GroupKey, control: &Arc<dyn TaskControl>) -> Pull {
        let Some(g) = self.groups.get_mut(key) else {
            return Pull::Nothing;
        };
        if g.cancelled {
            return Pull::Nothing;
        }
        match std::mem::replace(&mut g.input, Input::Pulling) {
            Input::Idle(source) => Pull::Source(source.into_inner()),
            Input::Reserved(r) => {
                g.input = Input::Reserved(r);
                match self.take_reserved(key) {
                    Some(id) => {
                        self.insert_running(id, control.clone(), Seat::Worker, Some(key));
                        Pull::Reserved(id)
                    }
                    None => Pull::Nothing,
                }
            }
            other => {
                g.input = other;
                Pull::Busy
            }
        }
    }

    /// The group's oldest reserved id, taken out of the queue (it starts now).
    fn take_reserved(&mut self, key: GroupKey) -> Option<TaskId> {
        let g = self.groups.get_mut(key)?;
        let Input::Reserved(r) = &mut g.input else {
            return None;
        };
        let id = r.take_oldest()?;
        g.backlog = r.len();
        if r.is_empty() {
            g.input = Input::Done;
        }
        self.reserved_waiting -= 1;
        Some(TaskId::new(id))
    }

    /// A worker pulled an item from the group's input (checked out by `next_item`) and
    /// brings the input back. Registers the item under a fresh id unless the group was
    /// cancelled meanwhile (then the item comes back, not started).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn item_pulled(
        &mut self,
        key: GroupKey,
        source: Box<dyn Any + Send>,
        hint: SizeHint,
        control: &Arc<dyn TaskControl>,
        core: &Arc<Core>,
        after: &mut After,
    ) -> Option<TaskId> {
        let g = self
            .groups
            .get_mut(key)
            .expect("a group lives while its workers do");
        if g.cancelled {
            after.discard(Trash::Input(source));
            self.close_input(key, 1, after);
            return None;
        }
        g.backlog = hint.lower;
        let more = if hint.upper == Some(0) {
            // Known to be empty now: no worker needs to pull to find out. The caller closes
            // the input once it has issued this item's sequence number.
            after.discard(Trash::Input(source));
            0
        } else {
            g.input = Input::Idle(Held::new(source));
            hint.lower.clamp(1, MAX_RAMP as u64) as usize
        };
        g.target = g.target.max(g.workers.saturating_add(more));
        g.items_live += 1;
        let wants_turn = !g.in_turns && g.wants_slot();
        let id = self.allocate_id();
        self.running += 1;
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(control.clone()),
                life: Life::Running(Seat::Worker),
                cancel_requested: false,
                group: Some(key),
            },
        );
        if wants_turn {
            self.join_turns(key);
        }
        if self.has_room() {
            // More workers may start (the group ramps up as it learns its input's length).
            self.grant(core, after);
        }
        Some(id)
    }

    /// A worker found the group's input ended (or it panicked); the input is dropped by the
    /// caller.
    pub(crate) fn input_ended(&mut self, key: GroupKey, after: &mut After) {
        self.close_input(key, 0, after);
        self.settle_if_finished(key, after);
    }

    /// The input was not ready: the worker gives its slot back and waits on it.
    pub(crate) fn input_pending(
        &mut self,
        key: GroupKey,
        waker: Waker,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        if let Some(g) = self.groups.get_mut(key) {
            g.input = Input::Waiting(Some(waker));
        }
        self.worker_out(key);
        self.release_slot(core, after);
    }

    /// A slotless worker got an item from its pending input and brings the input back. The
    /// item gets its id now; it takes a slot if there is room and no other lane waits, else
    /// it waits (holding no slot) for the group's turn.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn item_arrived(
        &mut self,
        key: GroupKey,
        source: Box<dyn Any + Send>,
        hint: SizeHint,
        control: &Arc<dyn TaskControl>,
        waker: &Waker,
        after: &mut After,
    ) -> Arrival {
        let g = self
            .groups
            .get_mut(key)
            .expect("a group lives while its workers do");
        if g.cancelled {
            after.discard(Trash::Input(source));
            self.close_input(key, 1, after);
            return Arrival::Cancelled;
        }
        g.backlog = hint.lower;
        if hint.upper == Some(0) {
            // As in `item_pulled`: the caller closes the input after issuing.
            after.discard(Trash::Input(source));
        } else {
            g.input = Input::Idle(Held::new(source));
        }
        let id = self.allocate_id();
        if self.has_room() && self.turns.len() == 0 {
            self.take_slot();
            self.worker_in(key);
            self.insert_running(id, control.clone(), Seat::Worker, Some(key));
            return Arrival::Slot(id);
        }
        self.waiting_items += 1;
        let g = self.groups.get_mut(key).expect("checked");
        g.items_live += 1;
        g.parked_puller = Some(Some(waker.clone()));
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(control.clone()),
                life: Life::Waiting,
                cancel_requested: false,
                group: Some(key),
            },
        );
        self.join_turns(key);
        Arrival::WaitForTurn(id)
    }

    /// A worker waiting with item `id` for its group's turn polls: `Some(true)` once it was
    /// granted a slot (the item now runs), `Some(false)` if the item or its group was
    /// cancelled (the item now ends, without a slot), `None` to keep waiting.
    pub(crate) fn poll_turn(&mut self, key: GroupKey, id: TaskId, waker: &Waker) -> Option<bool> {
        let cancelled = self.table.get(id.get()).is_none_or(|e| e.cancel_requested);
        let g = self.groups.get_mut(key)?;
        match &mut g.parked_puller {
            Some(None) => {
                g.parked_puller = None;
                if let Some(e) = self.table.get_mut(id.get()) {
                    e.life = Life::Running(Seat::Worker);
                    self.waiting_items -= 1;
                    self.running += 1;
                }
                Some(true)
            }
            _ if cancelled || g.cancelled => {
                g.parked_puller = None;
                self.enter_ending(id);
                Some(false)
            }
            Some(Some(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                None
            }
            None => Some(false),
        }
    }

    /// A worker waiting on its pending input polls again: whether the group was cancelled.
    pub(crate) fn still_waiting_on_input(&mut self, key: GroupKey, waker: &Waker) -> bool {
        let Some(g) = self.groups.get_mut(key) else {
            return false;
        };
        if g.cancelled {
            return false;
        }
        if let Input::Waiting(w) = &mut g.input {
            *w = Some(waker.clone());
        }
        true
    }

    /// After an item ended: whether its worker keeps the slot for the group's next item,
    /// hands it to the lane whose turn it is, or gives it back.
    pub(crate) fn after_item(
        &mut self,
        key: GroupKey,
        take_next: bool,
        control: &Arc<dyn TaskControl>,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> AfterItem {
        let (has_input, cancelled) = match self.groups.get(key) {
            Some(g) => (g.has_input(), g.cancelled),
            None => (false, true),
        };
        let go_on = has_input && !cancelled && !self.over_limit();
        if go_on && self.turns.len() <= 1 && self.turns.get(0).is_none_or(|l| l == Lane::Group(key))
        {
            // Nobody else waits (the usual case of a lone map): go on.
            return AfterItem::Continue(take_next.then(|| self.next_item(key, control)));
        }
        if !self.over_limit() && !cancelled {
            match self.lane_up(Some(Lane::Group(key))) {
                // Its own turn, or nobody else waits: go on with the group's next item.
                Some((Lane::Group(k), place)) if k == key && has_input => {
                    self.take_turn(place);
                    return AfterItem::Continue(take_next.then(|| self.next_item(key, control)));
                }
                None if has_input => {
                    return AfterItem::Continue(take_next.then(|| self.next_item(key, control)))
                }
                Some(lane) => {
                    self.leave_group_slot(key, after);
                    return match self.start_turn(lane, core, after) {
                        Some(job) => AfterItem::HandOver(job),
                        None => AfterItem::Leave(self.park_or_end(spare)),
                    };
                }
                None => {}
            }
        }
        self.leave_group_slot(key, after);
        self.free_slot();
        self.grant(core, after);
        AfterItem::Leave(self.park_or_end(spare))
    }

    /// A worker that kept finding the group's input busy gives its slot back (the group
    /// keeps its turns: the slot may come back to it) and ends.
    pub(crate) fn give_up_slot(
        &mut self,
        key: GroupKey,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> Next {
        self.leave_group_slot(key, after);
        self.free_slot();
        self.grant(core, after);
        self.park_or_end(spare)
    }

    /// A worker of the group gives up its slot and ends.
    fn leave_group_slot(&mut self, key: GroupKey, after: &mut After) {
        self.worker_out(key);
        self.join_turns(key);
        self.settle_if_finished(key, after);
    }

    /// A worker of the group ends other than by `after_item` (after an item's callbacks, or
    /// dropped by the runtime), with what it still held.
    pub(crate) fn worker_gone(
        &mut self,
        key: GroupKey,
        held: WorkerHeld,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        if held.slot {
            self.worker_out(key);
        }
        if held.input {
            // It was dropped holding the input, which went with it: nothing more is pulled.
            self.close_input(key, 0, after);
        }
        if held.slot {
            self.free_slot();
        }
        self.join_turns(key);
        self.grant(core, after);
        self.settle_if_finished(key, after);
    }

    /// A map item's slot is given back before its callbacks run; the worker ends after them.
    pub(crate) fn item_to_callbacks(
        &mut self,
        key: GroupKey,
        id: TaskId,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        self.enter_ending(id);
        self.worker_out(key);
        self.release_slot(core, after);
    }

    /// Forgets the group's driver, turns and counts once nothing of it is left.
    fn settle_if_finished(&mut self, key: GroupKey, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.settled || !g.finished() {
            return;
        }
        g.settled = true;
        if let Some(driver) = g.driver.take() {
            after.discard(Trash::Driver(driver.into_inner()));
        }
        g.backlog = 0;
        if g.in_turns {
            g.in_turns = false;
            self.turns.remove(Lane::Group(key));
        }
        self.busy_groups -= 1;
        self.drop_group_if_gone(key);
        after.notify = true;
    }

    /// Removes a settled group that nothing refers to any more: its name was freed (it was
    /// cancelled or flushed) and no worker of it holds a slot.
    fn drop_group_if_gone(&mut self, key: GroupKey) {
        let Some(g) = self.groups.get(key) else {
            return;
        };
        let named = self.names.get(&g.name) == Some(&key);
        if g.settled && g.workers == 0 && !named {
            self.groups.remove(key);
        }
    }

    /// Cancels a group: nothing more is pulled or started, running items are asked to stop,
    /// reserved items end as cancelled, and the name is freed.
    pub(crate) fn cancel_group(&mut self, key: GroupKey, core: &Arc<Core>, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.cancelled {
            return;
        }
        g.cancelled = true;
        if self.names.get(&g.name) == Some(&key) {
            self.names.remove(&g.name);
        }
        match std::mem::replace(&mut g.input, Input::Pulling) {
            Input::Idle(source) => {
                after.discard(Trash::Input(source.into_inner()));
                self.close_input(key, 0, after);
            }
            // The worker that holds it drops it when it sees the cancel, and closes it.
            Input::Pulling => {}
            Input::Waiting(waker) => {
                after.wake(waker);
                g.input = Input::Waiting(None);
            }
            Input::Reserved(mut r) => {
                let unstarted = r.take_all();
                self.reserved_waiting -= unstarted.len();
                let g = self.groups.get_mut(key).expect("checked");
                g.input = Input::Done;
                g.backlog = 0;
                g.unstarted_ending += unstarted.len();
                if !unstarted.is_empty() {
                    if let Some(driver) = g.driver.as_ref() {
                        let job = Arc::clone(driver).unstarted(core, unstarted);
                        after.start(job, None);
                    }
                }
            }
            Input::Done => g.input = Input::Done,
        }
        let g = self.groups.get_mut(key).expect("checked");
        if let Some(Some(w)) = &g.parked_puller {
            // It drops its item and ends when it sees the cancel.
            after.wake(Some(w.clone()));
        }
        if g.in_turns {
            g.in_turns = false;
            self.turns.remove(Lane::Group(key));
        }
        let ids = self.ids_in_group(key);
        for id in ids {
            self.cancel_running(id, after);
        }
        self.settle_if_finished(key, after);
        after.notify = true;
    }

    /// A reserved item cancelled before it started has delivered its result and run its
    /// callbacks.
    pub(crate) fn unstarted_ended(
        &mut self,
        key: GroupKey,
        n: u64,
        outcome: Outcome,
        after: &mut After,
    ) {
        if let Some(g) = self.groups.get_mut(key) {
            g.unstarted_ending -= n;
        }
        for _ in 0..n {
            self.ended.count(outcome);
        }
        self.settle_if_finished(key, after);
        after.notify = true;
    }

    // ----- cancelling -----

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

    fn is_waiting(&self, id: TaskId) -> bool {
        self.loose.find(id.get(), |_| true).is_some() || self.reserving_group(id).is_some()
    }

    /// The start group that reserved `id` and has not started it.
    fn reserving_group(&self, id: TaskId) -> Option<GroupKey> {
        self.groups.iter().find_map(|(k, g)| match &g.input {
            Input::Reserved(r) if r.contains(id.get()) => Some(k),
            _ => None,
        })
    }

    /// Cancels task `id` wherever it is; unknown and ended ids are skipped. A queued task
    /// leaves the queue and runs its callbacks without a slot.
    pub(crate) fn cancel_task(&mut self, id: TaskId, core: &Arc<Core>, after: &mut After) {
        if self.table.get(id.get()).is_some() {
            self.cancel_running(id, after);
            return;
        }
        if let Some(ticket) = self.loose.find(id.get(), |_| true) {
            let task = self.loose.take(ticket).expect("found").into_inner();
            let control = task.clone().control();
            after.wake(control.cancel(id));
            self.insert_ending(id, control);
            let job = task.launch(core, id, Seat::Unseated);
            after.start(job, None);
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
                after.start(job, None);
            }
        }
    }

    fn cancel_running(&mut self, id: TaskId, after: &mut After) {
        let Some(entry) = self.table.get_mut(id.get()) else {
            return;
        };
        if entry.cancel_requested || entry.life == Life::Ending {
            return;
        }
        entry.cancel_requested = true;
        after.wake(entry.control.cancel(id));
        if let (Life::Waiting, Some(key)) = (entry.life, entry.group) {
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
            let loose = self.loose.iter().next_back().map(|(k, _)| k);
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
                self.cancel_running(id, after);
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
            self.cancel_running(TaskId::new(id), after);
        }
        after.notify = true;
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

    // ----- looking -----

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
                },
            })
            .collect();
        out.sort_unstable_by_key(|t| t.id);
        out.truncate(max);
        let queued = self
            .loose
            .iter()
            .filter(|(id, _)| *id >= from)
            .take(max)
            .map(|(id, t)| LiveTask {
                id: TaskId::new(id),
                name: t.name(),
                group: None,
                state: LiveState::Queued,
            });
        out.extend(queued);
        for (_, g) in self.groups.iter() {
            if let Input::Reserved(r) = &g.input {
                out.extend(r.iter_from(from).take(max).map(|id| LiveTask {
                    id: TaskId::new(id),
                    name: None,
                    group: Some(&*g.name),
                    state: LiveState::Queued,
                }));
            }
        }
        out.sort_unstable_by_key(|t| t.id);
        out.truncate(max);
        out
    }
}

/// What a worker holding a slot gets from its group.
pub(crate) enum Pull {
    /// The group's input, checked out to this worker: pull an item and bring it back.
    Source(Box<dyn Any + Send>),
    /// A reserved item, now running under this id.
    Reserved(TaskId),
    /// Another worker is pulling from the input.
    Busy,
    /// Nothing more: the input ended or the group was cancelled.
    Nothing,
}

/// What a worker that waited on its input without a slot does with the item it got.
pub(crate) enum Arrival {
    /// It took a slot: run the item, which has this id.
    Slot(TaskId),
    /// The item has this id; wait for the group's turn (`poll_turn`).
    WaitForTurn(TaskId),
    /// The group was cancelled: drop the item.
    Cancelled,
}

/// What a worker holds when it ends outside `after_item`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WorkerHeld {
    /// A slot.
    pub(crate) slot: bool,
    /// The group's input, checked out (or waited on).
    pub(crate) input: bool,
}

/// An input's size hint, read outside the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeHint {
    pub(crate) lower: u64,
    pub(crate) upper: Option<u64>,
}

impl SizeHint {
    pub(crate) fn of((lower, upper): (usize, Option<usize>)) -> Self {
        Self {
            lower: lower as u64,
            upper: upper.map(|u| u as u64),
        }
    }
}

/// Most workers a group adds at once: a huge `num_concurrent` keeps ramping as items are
/// pulled, rather than spawning a worker per item up front.
pub(crate) const MAX_RAMP: usize = 1024;

/// A live task as `tasks()` lists it.
pub(crate) struct LiveTask<'a> {
    pub(crate) id: TaskId,
    pub(crate) name: Option<&'a str>,
    pub(crate) group: Option<&'a str>,
    pub(crate) state: LiveState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveState {
    Queued,
    Running,
    Ending,
}

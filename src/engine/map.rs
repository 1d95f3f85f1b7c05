//! Groups (`map`, `apply`, `SimpleTaskPool::start`): items pulled lazily and run by workers.
//!
//! A worker is a job holding one slot. It takes the group's next item (pulling it from the
//! input, which is checked out to one worker at a time and polled with no lock held, or taking
//! the next reserved id), runs it as a task with its own id, cancellation, panic isolation,
//! timeout and result, and asks the scheduler whether to go on: it keeps the slot while it is
//! its group's turn (or nobody else waits), else hands the slot to the lane whose turn it is.
//! So a long map pays no runtime spawn per item, and competing groups share the pool.
//!
//! An input that is not ready is awaited by one worker at a time, holding no slot: a slow
//! input never pins pool capacity. The item it then gets has an id at once and waits for the
//! group's turn like any queued task.

use super::callbacks::TaskOptions;
use super::core::{
    BoxJob, Core, GroupDriver, GroupKind, Inbox, Input, NewWorker, Next, Outcome, Start,
    TaskControl,
};
use super::current;
use super::groups::{AfterItem, Arrival, Pull, Pulled, SizeHint, WorkerHeld, MAX_RAMP};
use super::item_retry::{final_result, ItemRetry, ItemWait};
use super::lanes::{GroupKey, Reserved};
use super::poll::{poll_task, CancelSignal, RunTimer};
use super::rate_state::{GroupRate, KeyHash, PANICKED_KEY};
use super::results::{Item, Results};
use super::runner::{Runner, Work, RUN_BUDGET};
use super::span::{enter, task_span};
use super::task::{log_end, log_started};
use super::telemetry::{Kind, Telemetry};
use super::timer::QueueTimer;
use super::user::{self, drop_some, drop_value, Held, Whose};
use super::yield_now::yield_now;
use crate::error::{PoolError, TaskError};
use crate::id::TaskId;
use crate::policy::Quota;
use crate::sync::lock::{lock, Rank};
use crate::sync::{AtomicU64, AtomicU8, AtomicWaker, Mutex};
use futures_core::Stream;
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) type Source<I> = Pin<Box<dyn Stream<Item = I> + Send>>;

/// Where a group's items come from.
pub(crate) enum GroupInput<I> {
    /// Pulled from a stream (or an iterator made one), ids given as items start.
    Stream(Source<I>),
    /// The same, rate-limited per key: the key's hash of each item (see `rate.rs`).
    Keyed(Source<I>, KeyFn<I>),
    /// `count` items with ids reserved now (`SimpleTaskPool::start`), each made by `item`.
    Reserved { count: u64, item: fn() -> I },
}

/// How a group is made.
pub(crate) struct GroupSpec {
    pub(crate) kind: GroupKind,
    pub(crate) name: Option<String>,
    pub(crate) num_concurrent: usize,
    /// Results in input order (else in completion order).
    pub(crate) ordered: bool,
    pub(crate) options: TaskOptions,
    /// Its lane's priority and weight (see `shares.rs`).
    pub(crate) priority: i32,
    pub(crate) weight: u32,
    /// Its `max_queue_wait` (see `shed.rs`).
    pub(crate) queue_wait: Option<Duration>,
    /// Its rate limit (see `rate.rs`): per key if the input is `GroupInput::Keyed`.
    pub(crate) rate: Option<Quota>,
}

/// Hashes an item's rate key (user code: called with no lock held).
pub(crate) type KeyFn<I> = Box<dyn Fn(&I) -> KeyHash + Send + Sync>;

/// A group the pool accepted.
pub(crate) struct Launched<T> {
    pub(crate) key: GroupKey,
    pub(crate) name: Arc<str>,
    pub(crate) results: Arc<Results<T>>,
    pub(crate) num_concurrent: usize,
    pub(crate) priority: i32,
    pub(crate) weight: u32,
}

/// A group's shared part: what its workers run, and where results go.
struct MapGroup<I, F, T> {
    key: GroupKey,
    /// For the items' spans.
    name: Arc<str>,
    /// For the `metrics` feature's `kind` label.
    kind: Kind,
    f: F,
    options: TaskOptions,
    results: Arc<Results<T>>,
    /// Makes the item of a reserved id (start groups).
    reserved_item: Option<fn() -> I>,
    /// Items pulled ahead, with their sequence numbers, for any worker of the group; the
    /// state counts them (`GroupState::ahead`). Touched only inside a section.
    ahead: Mutex<VecDeque<(u64, I)>>,
    /// The buffer a batch is pulled into, kept empty between pulls for the next: one per
    /// group, not per worker, since only the worker holding the input pulls (so a map's
    /// memory stays one batch, not `num_concurrent` batches).
    batch: Mutex<Vec<I>>,
    /// Whether an item's outcome stops the group (`try_map`: an `Err`, or any failure).
    stop_when: Option<StopWhen<T>>,
    /// Its `max_queue_wait` and deadline timer (see `shed.rs`).
    deadline: Option<(Duration, Arc<QueueTimer>)>,
    /// Its deadline passed: items not started yet are shed (set once, read by workers).
    shed: AtomicU8,
    /// It has a rate limit: workers read the clock before taking an item (see `rate.rs`).
    rated: AtomicU8,
    /// Its rate limit's key, for keyed limits.
    key_of: Option<KeyFn<I>>,
    /// Items set aside for their keys' tokens, with their ids and sequence numbers; the
    /// state counts them (`GroupRate::aside`). Touched only inside a section, or by the job
    /// that ends them.
    aside: Mutex<Vec<(TaskId, u64, I)>>,
    /// Its retry policy, if its items are retried (see `item_retry.rs`).
    retry: Option<ItemRetry<I, T>>,
    /// Items whose backoff is over, kept for their next attempt, with their ids, sequence
    /// numbers and the attempt they wait for; the state queues their ids
    /// (`GroupState::requeued`). Touched only inside a section, or by the job that ends them.
    requeued: Mutex<Vec<(TaskId, u64, I, u32)>>,
    /// Copies of the items running an attempt that may be retried, by id (kept here, not in
    /// the worker: a worker without retries carries nothing more across its awaits).
    kept: Mutex<Vec<(TaskId, I)>>,
    /// The attempts of requeued items taken by a worker, until it starts them.
    attempts: Mutex<Vec<(TaskId, u32)>>,
}

impl<I, F, T> Drop for MapGroup<I, F, T> {
    fn drop(&mut self) {
        // The group is over: its deadline timer, if still waiting, ends now.
        if let Some((_, timer)) = &self.deadline {
            timer.disarm();
        }
    }
}

/// What ends a `try_map` group early: the outcome of one item (our code, not the user's).
pub(crate) type StopWhen<T> = fn(&Item<T>) -> bool;

/// What a worker took from its group in a section.
enum Taken<I> {
    /// An item, now running under this id, with its result's sequence number.
    Item(TaskId, u64, I),
    /// The input to pull from, busy, or nothing.
    Pull(Pull),
}

impl Core {
    /// Registers a group and lets it take its turns.
    pub(crate) fn launch_group<I, F, Fut>(
        self: &Arc<Self>,
        spec: GroupSpec,
        input: GroupInput<I>,
        f: F,
        stop_when: Option<StopWhen<Fut::Output>>,
        retry: Option<ItemRetry<I, Fut::Output>>,
    ) -> Result<Launched<Fut::Output>, PoolError>
    where
        I: Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        if spec.num_concurrent == 0 {
            return Err(PoolError::InvalidLimit {
                what: "num_concurrent",
                value: 0,
            });
        }
        if spec.weight == 0 {
            return Err(PoolError::InvalidLimit {
                what: "weight",
                value: 0,
            });
        }
        // The input's size hint is user code: read it before locking.
        let (input, key_of) = match input {
            GroupInput::Keyed(source, key_of) => (GroupInput::Stream(source), Some(key_of)),
            other => (other, None),
        };
        // The clock is the runtime's (maybe the user's): read before locking too.
        let now = spec.rate.map(|_| self.spawner.now());
        let (input, reserved_item, hint, fixed) = match input {
            GroupInput::Stream(source) | GroupInput::Keyed(source, _) => {
                let hint = user::call(|| source.size_hint()).unwrap_or((0, None));
                let hint = SizeHint::of(hint);
                (Some(source), None, hint, None)
            }
            GroupInput::Reserved { count, item } => {
                let hint = SizeHint {
                    lower: count,
                    upper: Some(count),
                };
                (None, Some(item), hint, Some(count))
            }
        };
        let results = Arc::new(match fixed {
            Some(count) => Results::fixed(count),
            None => Results::new(spec.ordered),
        });
        let target = if hint.upper == Some(0) {
            1
        } else {
            (hint.lower.clamp(1, MAX_RAMP as u64) as usize).min(spec.num_concurrent)
        };
        let mut s = self.section();
        let (st, after, core) = s.split();
        let name = match st.name_group(&core.name, spec.kind, spec.name) {
            Ok(name) => name,
            Err(e) => {
                drop(s);
                drop_value(
                    (input, f, key_of, retry),
                    Whose {
                        pool: &self.name,
                        task: None,
                        what: "a refused map's input and closure",
                    },
                );
                return Err(e);
            }
        };
        let state_input = match (input, fixed) {
            (Some(source), _) => {
                let boxed: Box<dyn std::any::Any + Send> = Box::new(source);
                Input::Idle(Held::new(boxed))
            }
            (None, Some(count)) if count > 0 => {
                Input::Reserved(Reserved::new(st.reserve_ids(count), count))
            }
            _ => Input::Done,
        };
        let key = st.register_group(
            name.clone(),
            spec.num_concurrent,
            spec.priority,
            spec.weight,
            state_input,
            hint.lower,
            hint.is_exact(),
            target,
        );
        let kind = Kind::Group(spec.kind);
        let group = Arc::new(MapGroup {
            key,
            name: name.clone(),
            kind,
            f,
            options: spec.options,
            results: results.clone(),
            reserved_item,
            ahead: Mutex::new(VecDeque::new()),
            batch: Mutex::new(Vec::new()),
            stop_when,
            deadline: spec.queue_wait.map(|d| (d, Arc::default())),
            shed: AtomicU8::new(0),
            rated: AtomicU8::new(u8::from(spec.rate.is_some())),
            aside: Mutex::new(Vec::new()),
            key_of,
            retry,
            requeued: Mutex::new(Vec::new()),
            kept: Mutex::new(Vec::new()),
            attempts: Mutex::new(Vec::new()),
        });
        if let (Some(quota), Some(now)) = (spec.rate, now) {
            let keyed = group.key_of.is_some();
            st.rate_group(key, GroupRate::new(Some(quota), keyed, now));
        }
        let deadline = group.deadline.as_ref().map(|(d, t)| (*d, t.clone()));
        st.launch_group(key, group, core, after);
        drop(s);
        if let Some((wait, timer)) = deadline {
            self.arm_group_deadline(key, wait, timer);
        }
        if let Some(count) = fixed {
            // Reserved items have their ids now, and wait for room.
            self.telemetry.submitted(kind, count, count);
        }
        Ok(Launched {
            key,
            name,
            results,
            num_concurrent: spec.num_concurrent,
            priority: spec.priority,
            weight: spec.weight,
        })
    }
}

impl<I, F, T> MapGroup<I, F, T> {
    /// Puts the (emptied) batch buffer back for the next pull, its room kept. One another
    /// worker put back meanwhile is empty too, and is dropped after unlocking.
    fn keep_batch_buffer(&self, buffer: Vec<I>) {
        debug_assert!(buffer.is_empty(), "a batch's items all went on");
        let _empty = std::mem::replace(&mut *lock(&self.batch, Rank::Leaf), buffer);
    }

    /// The group's deadline passed: `Some(max_queue_wait)`.
    #[inline]
    fn shed_after(&self) -> Option<Duration> {
        if self.shed.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.deadline.as_ref().map(|(d, _)| *d)
    }

    /// The runtime's clock, for a group with a rate limit (read with no lock held).
    #[inline]
    fn clock(&self, core: &Core) -> Option<Instant> {
        if self.rated.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(core.spawner.now())
    }

    /// The rate keys of `items` (user code: no lock held). A key function that panics is
    /// logged, and its item counts under one shared key.
    fn keys_of<'i>(
        &self,
        items: impl IntoIterator<Item = &'i I>,
        pool: &str,
        keys: &mut Vec<KeyHash>,
    ) where
        I: 'i,
    {
        keys.clear();
        let Some(key_of) = &self.key_of else {
            return;
        };
        for item in items {
            keys.push(user::call(|| key_of(item)).unwrap_or_else(|payload| {
                let msg = user::panic_message(&*payload);
                tracing::error!(
                    pool,
                    "a rate_limit_by key function panicked; its item shares one quota with the others whose key panicked: {msg}"
                );
                user::drop_payload(payload);
                PANICKED_KEY
            }));
        }
    }

    /// Requeued item `id`, taken out of the store (inside the section that took its id); the
    /// attempt it is on waits in `attempts` for its worker.
    #[cold]
    fn take_kept(&self, id: TaskId) -> Taken<I> {
        let (_, seq, item, attempt) = {
            let mut kept = lock(&self.requeued, Rank::Leaf);
            let at = kept
                .iter()
                .position(|(i, ..)| *i == id)
                .expect("the state queues the items kept");
            kept.swap_remove(at)
        };
        // One leaf lock at a time.
        lock(&self.attempts, Rank::Leaf).push((id, attempt));
        Taken::Item(id, seq, item)
    }

    /// The attempt item `id` (about to run) is on, in a retried group.
    #[cold]
    fn attempt_of(&self, id: TaskId) -> u32 {
        let mut attempts = lock(&self.attempts, Rank::Leaf);
        match attempts.iter().position(|(i, _)| *i == id) {
            Some(at) => attempts.swap_remove(at).1,
            None => 1,
        }
    }

    fn reserved_item(&self) -> I {
        let make = self
            .reserved_item
            .expect("reserved ids belong to start groups");
        make()
    }

    /// What the section handed the worker, made an item where it is one. Called inside that
    /// section, so items pulled ahead start in their queue's order.
    // Inlined into the section that takes the item: it is on every item's path.
    #[inline(always)]
    fn hand(&self, pull: Pull) -> Taken<I> {
        match pull {
            Pull::Reserved(id) => Taken::Item(id, 0, self.reserved_item()),
            Pull::Ahead(id) => {
                let (seq, item) = lock(&self.ahead, Rank::Leaf)
                    .pop_front()
                    .expect("the state counts the items pulled ahead");
                Taken::Item(id, seq, item)
            }
            Pull::Aside(id) => {
                let mut aside = lock(&self.aside, Rank::Leaf);
                let at = aside
                    .iter()
                    .position(|(i, ..)| *i == id)
                    .expect("the state counts the items set aside");
                let (_, seq, item) = aside.swap_remove(at);
                Taken::Item(id, seq, item)
            }
            Pull::Requeued(id) => self.take_kept(id),
            Pull::SetAside(id) => {
                let (seq, item) = lock(&self.ahead, Rank::Leaf)
                    .pop_front()
                    .expect("the state counts the items pulled ahead");
                lock(&self.aside, Rank::Leaf).push((id, seq, item));
                Taken::Pull(Pull::SetAside(id))
            }
            other => Taken::Pull(other),
        }
    }
}

impl<I, F, Fut> GroupDriver for MapGroup<I, F, Fut::Output>
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn worker(self: Arc<Self>, core: &Arc<Core>, first: Option<TaskId>) -> NewWorker {
        let abort = Arc::new(ItemAbort::default());
        let guard = WorkerGuard {
            key: self.key,
            core: core.clone(),
            held: WorkerHeld {
                slot: true,
                input: false,
            },
            live: true,
            polled: false,
            wake: None,
        };
        // Groups without retries run a worker with no retry step compiled in.
        let job = if self.retry.is_some() {
            Runner::job(WorkerJob {
                fut: work::<I, F, Fut, true>(self, guard, abort.clone(), first),
                serial: core.serial,
            })
        } else {
            Runner::job(WorkerJob {
                fut: work::<I, F, Fut, false>(self, guard, abort.clone(), first),
                serial: core.serial,
            })
        };
        NewWorker {
            job,
            control: abort,
        }
    }

    fn unstarted(self: Arc<Self>, core: &Arc<Core>, ids: Reserved) -> BoxJob {
        let left = UnstartedGuard {
            key: self.key,
            core: core.clone(),
            results: self.results.clone(),
            ids,
        };
        Runner::job(WorkerJob {
            fut: end_unstarted(self, left),
            serial: core.serial,
        })
    }

    fn input_done(&self, not_started: u64) -> Option<Waker> {
        if not_started > 0 {
            self.results.add_not_started(not_started);
        }
        self.results.close_issuing()
    }

    fn shed(&self) {
        self.shed.store(1, Ordering::Release);
    }

    fn set_rated(&self) {
        self.rated.store(1, Ordering::Relaxed);
    }

    fn end_aside(self: Arc<Self>, core: &Arc<Core>, ids: Vec<TaskId>, outcome: Outcome) -> BoxJob {
        let left = AsideGuard {
            core: core.clone(),
            group: self,
            ids: ids.into(),
        };
        Runner::job(WorkerJob {
            fut: end_aside(left, outcome),
            serial: core.serial,
        })
    }

    fn end_requeued(self: Arc<Self>, core: &Arc<Core>, id: TaskId) -> BoxJob {
        let kept = {
            let mut kept = lock(&self.requeued, Rank::Leaf);
            let at = kept.iter().position(|(i, ..)| *i == id);
            at.map(|at| kept.swap_remove(at))
        };
        let (seq, item, attempt) = match kept {
            Some((_, seq, item, attempt)) => (seq, Some(item), attempt),
            None => (0, None, 1),
        };
        let left = Unrun {
            core: core.clone(),
            group: Some(self),
            id,
            seq,
            attempts: attempt,
            item,
            armed: true,
            queued: true,
        };
        Runner::job(WorkerJob {
            fut: end_unrun(left),
            serial: core.serial,
        })
    }

    fn skip_ahead(&self) -> Option<Waker> {
        let seqs: Vec<u64> = lock(&self.ahead, Rank::Leaf)
            .iter()
            .map(|(seq, _)| *seq)
            .collect();
        self.results.skip(&seqs)
    }
}

pin_project! {
    /// A worker's async body as pool work: polled inside the pool (with no task current;
    /// the body marks each item's own polls).
    struct WorkerJob<W> {
        #[pin]
        fut: W,
        serial: u64,
    }
}

impl<W: Future<Output = Next> + Send> Work for WorkerJob<W> {
    fn poll_work(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _spare: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next> {
        let this = self.project();
        let _inside = current::enter(*this.serial, None);
        this.fut.poll(cx)
    }
}

/// The cancel signal of the items a worker runs, reused for each: a cancel names the item's
/// id, so one meant for an item that already ended cannot hit the next.
#[derive(Default)]
struct ItemAbort {
    target: AtomicU64,
    waker: AtomicWaker,
    /// The attempt of the item it runs, set by retried groups only (0 reads as 1).
    attempt: AtomicU32,
}

impl CancelSignal for ItemAbort {
    fn is_cancelled(&self, id: TaskId) -> bool {
        self.target.load(Ordering::Acquire) == id.get() + 1
    }

    fn register(&self, _id: TaskId, waker: &Waker) {
        self.waker.register(waker);
    }
}

impl TaskControl for ItemAbort {
    fn cancel(&self, id: TaskId) -> Option<Waker> {
        // `+ 1`: the default 0 names no item.
        self.target.store(id.get() + 1, Ordering::Release);
        self.waker.take()
    }

    fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed).max(1)
    }
}

/// What a worker accounts for until it ends; its drop (the runtime dropped the worker, or
/// refused to start it) gives it back.
struct WorkerGuard {
    key: GroupKey,
    core: Arc<Core>,
    held: WorkerHeld,
    /// Still counted as one of the group's workers.
    live: bool,
    polled: bool,
    /// The results consumer's waker, taken by a result delivered during this poll. Woken when
    /// the worker stops running (pending, yield, exit): one wake per batch of ready items.
    wake: Option<Waker>,
}

impl WorkerGuard {
    fn wake_consumer(&mut self) {
        if let Some(w) = self.wake.take() {
            w.wake();
        }
    }

    /// The scheduler accounted for this worker's end (`after_item` handed its slot on).
    fn ended(&mut self) {
        self.live = false;
        self.held = WorkerHeld::default();
        self.wake_consumer();
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.wake_consumer();
        if !self.live {
            return;
        }
        let mut s = self.core.section();
        let (st, after, core) = s.split();
        if !self.polled && super::core::inside_spawn() {
            // The runtime refused to start it: a replacement would meet the same fate, so
            // the group stops here.
            st.cancel_group(self.key, core, after);
        }
        st.worker_gone(self.key, self.held, core, after);
    }
}

/// Retires the item in flight if its worker is dropped before the item ended.
struct ItemGuard<'a, T> {
    results: &'a Results<T>,
    core: &'a Arc<Core>,
    id: TaskId,
    seq: u64,
    armed: bool,
    kind: Kind,
    started: bool,
}

impl<T> Drop for ItemGuard<'_, T> {
    // Disarmed on every item's normal path: that check only is inlined.
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.dropped();
        }
    }
}

impl<T> ItemGuard<'_, T> {
    /// The worker was dropped with the item in flight: it ends as dropped by its runtime.
    #[cold]
    fn dropped(&mut self) {
        let id = self.id;
        self.core
            .telemetry
            .ended(self.kind, Outcome::Dropped, self.started);
        let unwanted = {
            let mut s = self.core.section();
            let (st, after, _) = s.split();
            let res = Err(TaskError::RuntimeDropped { id });
            let unwanted = deliver_result(self.results, self.seq, res, after);
            st.retire(id, Outcome::Dropped, after);
            unwanted
        };
        log_end(&self.core.name, None, id, Outcome::Dropped);
        drop_some(unwanted, owner(&self.core.name, id));
    }
}

fn owner(pool: &str, id: TaskId) -> Whose<'_> {
    Whose {
        pool,
        task: Some(id),
        what: "a map item's output",
    }
}

fn input_owner(pool: &str) -> Whose<'_> {
    Whose {
        pool,
        task: None,
        what: "a map input or an item not started",
    }
}

/// The group's input ended (or its group was cancelled while a worker held it).
fn end_input(key: GroupKey, core: &Arc<Core>) {
    let mut s = core.section();
    let (st, after, _) = s.split();
    st.input_ended(key, after);
}

/// Stores an item's result; its consumer's waker goes to `after` (or the worker's batch).
fn deliver_result<T>(
    results: &Results<T>,
    seq: u64,
    res: Item<T>,
    after: &mut super::core::After,
) -> Option<Item<T>> {
    match results.deliver(seq, res) {
        Ok(waker) => {
            after.wake(waker);
            None
        }
        Err(res) => Some(res),
    }
}

pin_project! {
    /// An item's future, dropped in place inside a panic guard, whether it ends normally or
    /// its worker is dropped.
    struct ItemFuture<F> {
        #[pin]
        fut: Option<F>,
    }

    impl<F> PinnedDrop for ItemFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            drop_in_place_guarded(this.project().fut, "", None);
        }
    }
}

fn drop_in_place_guarded<F>(mut fut: Pin<&mut Option<F>>, pool: &str, id: Option<TaskId>) {
    if fut.is_none() {
        return;
    }
    if let Err(p) = user::call(|| fut.set(None)) {
        let msg = user::panic_message(&*p);
        match id {
            Some(id) => tracing::error!(
                pool,
                task_id = id.get(),
                "the future of task {id} panicked while being dropped (ignored): {msg}"
            ),
            None => {
                tracing::error!("a map item's future panicked while being dropped (ignored): {msg}")
            }
        }
        user::drop_payload(p);
    }
}

/// Item `id` failed in a group that stops at its first failure (`try_map`): the group is
/// cancelled (nothing more is pulled, running items are asked to stop), unless it was
/// already, and `id` recorded as what stopped it.
#[cold]
fn stop_group<I, F, T>(group: &MapGroup<I, F, T>, core: &Arc<Core>, id: TaskId) {
    let mut s = core.section();
    let (st, after, c) = s.split();
    if st.group_is_named(group.key) {
        group.results.set_stopped_by(id);
        st.cancel_group(group.key, c, after);
    }
}

/// What a worker does after an item (the scheduler's `AfterItem`, with the next item taken
/// in the same section).
enum Decision<I> {
    Continue(Option<Taken<I>>),
    HandOver(Start),
    Leave(Next),
}

/// What a worker got from its group.
enum Got<I> {
    /// An item, running under this id, with its result's sequence number.
    Item(TaskId, u64, I),
    /// An item that waited for a slot was cancelled first: it ends without running.
    CancelledBeforeStart(TaskId, u64, I),
    /// Nothing: the worker ends, and its runner does this next.
    Done(Next),
    /// Go around again with this.
    Again(Taken<I>),
}

/// A worker: pulls and runs its group's items while it holds its slot.
/// `RETRY`: the group retries its items (`group.retry` is set).
async fn work<I, F, Fut, const RETRY: bool>(
    group: Arc<MapGroup<I, F, Fut::Output>>,
    mut w: WorkerGuard,
    abort: Arc<ItemAbort>,
    mut first: Option<TaskId>,
) -> Next
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    w.polled = true;
    let core = w.core.clone();
    let control: Arc<dyn TaskControl> = abort.clone();
    // The next item, when the section that ended the last one took it too.
    let mut pulled: Option<Taken<I>> = None;
    let mut ran = 0usize;
    loop {
        // Ready items would otherwise run back to back in one poll and starve the executor's
        // other tasks (the results' consumer among them).
        ran += 1;
        if ran % RUN_BUDGET == 0 {
            w.wake_consumer();
            yield_now().await;
        }
        let got = match first.take() {
            Some(id) => Got::Item(id, 0, group.reserved_item()),
            // The usual case: the section that ended the last item took this one.
            None if matches!(pulled, Some(Taken::Item(..))) => match pulled.take() {
                Some(Taken::Item(id, seq, item)) => Got::Item(id, seq, item),
                _ => unreachable!("matched above"),
            },
            None => {
                let mut pull = pulled.take();
                let now = poll_fn(|cx| {
                    let pull = pull.take();
                    Poll::Ready(item_now(&group, &core, &control, &mut w, pull, cx))
                })
                .await;
                match now {
                    Now::Got(got) => got,
                    slow => next_item(&group, &core, &control, &mut w, slow).await,
                }
            }
        };
        let (id, seq, item, start) = match got {
            Got::Item(id, seq, item) => (id, seq, item, true),
            Got::CancelledBeforeStart(id, seq, item) => (id, seq, item, false),
            Got::Done(next) => return next,
            Got::Again(_) => unreachable!("next_item goes around itself"),
        };
        let attempt = if RETRY { group.attempt_of(id) } else { 1 };
        if RETRY {
            abort.attempt.store(attempt, Ordering::Relaxed);
        }
        if Telemetry::ACTIVE {
            if attempt > 1 {
                // Counted as submitted at its first attempt, queued again after its backoff.
                core.telemetry.dequeued();
            } else if group.reserved_item.is_some() {
                // Counted as submitted (and queued) when the group was made.
                core.telemetry.dequeued();
            } else {
                core.telemetry.submitted(group.kind, 1, 0);
            }
        }
        // One item, to the worker's next step (a retried item's backoff leaves early).
        let decision = 'item: {
            let mut guard = ItemGuard {
                results: &group.results,
                core: &core,
                id,
                seq,
                armed: true,
                kind: group.kind,
                started: start,
            };
            let span = task_span(&core.name, id, None, Some(&group.name));
            // A retried item's later attempts are not shed (its wait for a slot was its first).
            let shed = if RETRY {
                group.shed_after().filter(|_| attempt == 1)
            } else {
                group.shed_after()
            };
            let runs = start && shed.is_none();
            let mut started = None;
            let mut res = if runs {
                // Calls the closure on the item and runs the future it makes, as task `id`: the
                // call, the first poll and (ready at once) the future's drop under one mark.
                let mut item = Some(item);
                let mut fut = pin!(ItemFuture { fut: None });
                let mut timer = RunTimer::new(group.options.timeout);
                poll_fn(|cx| {
                    let _inside = current::enter(core.serial, Some(id));
                    let _entered = enter(&span);
                    let mut slot = fut.as_mut().project().fut;
                    if let Some(item) = item.take() {
                        log_started(&core.name, None, id);
                        core.telemetry.started(group.kind);
                        started = core.adaptive.start(&*core.spawner);
                        if RETRY {
                            if let Err(err) = keep_item(&group, &item, &abort, id) {
                                tracing::error!(pool = %core.name, task_id = id.get(), "{err}");
                                drop_value(item, owner(&core.name, id));
                                return Poll::Ready(Err(err));
                            }
                        }
                        // Calling `f` may itself panic: that is this item's panic, like one in
                        // its future.
                        match user::call(|| (group.f)(item)) {
                            Ok(made) => slot.set(Some(made)),
                            Err(payload) => {
                                let err = TaskError::panicked(id, payload);
                                tracing::error!(pool = %core.name, task_id = id.get(), "{err}");
                                return Poll::Ready(Err(err));
                            }
                        }
                    }
                    let Some(f) = slot.as_mut().as_pin_mut() else {
                        return Poll::Ready(Err(TaskError::Cancelled { id }));
                    };
                    match poll_task(f, id, &*abort, &mut timer, None, &core, cx) {
                        Poll::Pending => {
                            w.wake_consumer();
                            Poll::Pending
                        }
                        Poll::Ready(res) => {
                            // The future's destructors run before callbacks and before the result
                            // is delivered.
                            drop_in_place_guarded(slot, &core.name, Some(id));
                            Poll::Ready(res)
                        }
                    }
                })
                .await
            } else {
                // Never started: shed (its group's deadline passed), or cancelled while it waited.
                drop_value(item, owner(&core.name, id));
                match shed {
                    Some(waited) => Err(TaskError::Shed { id, waited }),
                    None => Err(TaskError::Cancelled { id }),
                }
            };
            let outcome = Outcome::of(&res);
            core.adaptive.ended(&core, started, id, outcome);
            if RETRY {
                let attempt = abort.attempt.load(Ordering::Relaxed);
                res = match retry_item(&group, &core, id, seq, attempt, res) {
                    Ok(last) => last,
                    Err(Backoff) => {
                        // The item waits out its backoff (a job of its own): this worker goes on
                        // with the group's next item, or hands its slot on.
                        guard.armed = false;
                        break 'item after_backoff(&group, &core, &control, &mut w, ran);
                    }
                };
            }
            if let Some(stop) = group.stop_when {
                if stop(&res) {
                    stop_group(&group, &core, id);
                }
            }
            if let Some(callbacks) = &group.options.callbacks {
                if w.held.slot {
                    // Free the slot before the callbacks, as single tasks do; this worker then
                    // ends, and a fresh one takes the group's next item in turn.
                    let mut s = core.section();
                    let (st, after, c) = s.split();
                    st.item_to_callbacks(group.key, id, c, after);
                    w.held.slot = false;
                }
                w.wake_consumer();
                let mut run = pin!(callbacks.run(&core.name, id, outcome == Outcome::Cancelled));
                poll_fn(|cx| {
                    let _inside = current::enter(core.serial, Some(id));
                    let _entered = enter(&span);
                    run.as_mut().poll(cx)
                })
                .await;
            }
            drop(span);
            guard.armed = false;
            // Counted before the section that delivers the result (see `task::finish`).
            core.telemetry.ended(group.kind, outcome, runs);
            let mut unwanted = None;
            let now = group.clock(&core);
            let decision = {
                let mut s = core.section();
                let (st, after, c) = s.split();
                st.observe_now(group.key, now);
                match group.results.deliver(seq, res) {
                    Ok(waker) => {
                        if let Some(waker) = waker {
                            w.wake = Some(waker);
                        }
                    }
                    Err(res) => unwanted = Some(res),
                }
                // Every RUN_BUDGET items the worker yields before its next one: it takes that
                // one after the yield, not now, so no other worker finds the input held.
                let take_next = ran % RUN_BUDGET != RUN_BUDGET - 1;
                let in_place = if w.held.slot && take_next {
                    st.item_to_next(group.key, id, outcome, &control, after)
                } else {
                    None
                };
                if let Some(next) = in_place {
                    Decision::Continue(Some(group.hand(Pull::Ahead(next))))
                } else {
                    // The worker holds `abort`, the item's control in the table.
                    st.retire_held(id, outcome, after);
                    if w.held.slot {
                        match st.after_item(group.key, take_next, &control, c, after, &mut None) {
                            AfterItem::Continue(next) => {
                                Decision::Continue(next.map(|p| group.hand(p)))
                            }
                            AfterItem::HandOver(start) => Decision::HandOver(start),
                            AfterItem::Leave(next) => Decision::Leave(next),
                        }
                    } else {
                        st.worker_gone(group.key, w.held, c, after);
                        Decision::Leave(Next::End)
                    }
                }
            };
            log_end(&core.name, None, id, outcome);
            drop_some(unwanted, owner(&core.name, id));
            decision
        };
        match decision {
            Decision::Continue(next) => {
                // `pulled` was taken at the top of this round (it is `None`): set it without
                // a drop, whose out-of-line glue would cost a map ~1% per item.
                debug_assert!(pulled.is_none());
                std::mem::forget(std::mem::replace(&mut pulled, next));
            }
            Decision::HandOver(start) => {
                w.ended();
                return Next::Run(start);
            }
            Decision::Leave(next) => {
                w.ended();
                return next;
            }
        }
    }
}

/// A retried item's attempt ended and it waits for its next one.
struct Backoff;

/// Keeps a copy of item `id` in its group's store for its next attempt, if the attempt it
/// is on (in `abort`) may be followed by one (user code: `Clone`; no pool lock held). A clone
/// that panics is the attempt's panic.
#[cold]
#[inline(never)]
fn keep_item<I, F, T>(
    group: &MapGroup<I, F, T>,
    item: &I,
    abort: &ItemAbort,
    id: TaskId,
) -> Result<(), TaskError> {
    let Some(retry) = &group.retry else {
        return Ok(());
    };
    if !retry.may_retry(abort.attempt.load(Ordering::Relaxed)) {
        return Ok(());
    }
    match retry.keep(item) {
        Ok(copy) => {
            lock(&group.kept, Rank::Leaf).push((id, copy));
            Ok(())
        }
        Err(payload) => Err(TaskError::panicked(id, payload)),
    }
}

/// Attempt `attempt` of item `id` of a retried group ended with `res`: its final result
/// (`Ok`), or (the policy says retry) it enters its backoff, holding no slot, and a job of
/// its own waits it out (`Err`). The predicate runs, and the failed output and any item no
/// longer needed are dropped, with no lock held.
#[cold]
#[inline(never)]
fn retry_item<I, F, Fut>(
    group: &Arc<MapGroup<I, F, Fut::Output>>,
    core: &Arc<Core>,
    id: TaskId,
    seq: u64,
    attempt: u32,
    res: Item<Fut::Output>,
) -> Result<Item<Fut::Output>, Backoff>
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let retry = group.retry.as_ref().expect("a retried group");
    let kept = {
        let mut kept = lock(&group.kept, Rank::Leaf);
        let at = kept.iter().position(|(i, _)| *i == id);
        at.map(|at| kept.swap_remove(at).1)
    };
    let wait = kept
        .as_ref()
        .and_then(|_| retry.next_wait(attempt, &res, &core.name, id));
    let Some(wait) = wait else {
        drop_some(kept, kept_owner(&core.name, id));
        return Ok(final_result(attempt, res));
    };
    let item = kept.expect("a wait comes with a kept item");
    let ticket = Arc::new(ItemWait::new(attempt));
    let control: Arc<dyn TaskControl> = ticket.clone();
    if !core.section().item_to_backoff(id, group.key, control) {
        // Cancelled meanwhile: this outcome is final.
        drop_value(item, kept_owner(&core.name, id));
        return Ok(final_result(attempt, res));
    }
    core.telemetry.paused();
    tracing::debug!(
        pool = %core.name,
        task_id = id.get(),
        attempt,
        ?wait,
        "attempt {attempt} of task {id} ({}) ended with {:?}; retrying in {wait:?}",
        group.name,
        Outcome::of(&res),
    );
    drop_value(res, owner(&core.name, id));
    let left = Unrun {
        core: core.clone(),
        group: Some(group.clone()),
        id,
        seq,
        attempts: attempt,
        item: Some(item),
        armed: true,
        queued: false,
    };
    let job = Runner::job(WorkerJob {
        fut: item_backoff(left, ticket, wait),
        serial: core.serial,
    });
    core.start(Start::Job(job), None);
    Err(Backoff)
}

/// A worker whose item entered its backoff: the scheduler's word, as after any item.
fn after_backoff<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    w: &mut WorkerGuard,
    ran: usize,
) -> Decision<I> {
    let now = group.clock(core);
    let mut s = core.section();
    let (st, after, c) = s.split();
    st.observe_now(group.key, now);
    if !w.held.slot {
        st.worker_gone(group.key, w.held, c, after);
        return Decision::Leave(Next::End);
    }
    let take_next = ran % RUN_BUDGET != RUN_BUDGET - 1;
    match st.after_item(group.key, take_next, control, c, after, &mut None) {
        AfterItem::Continue(next) => Decision::Continue(next.map(|p| group.hand(p))),
        AfterItem::HandOver(start) => Decision::HandOver(start),
        AfterItem::Leave(next) => Decision::Leave(next),
    }
}

fn kept_owner(pool: &str, id: TaskId) -> Whose<'_> {
    Whose {
        pool,
        task: Some(id),
        what: "a map item kept for its next attempt",
    }
}

/// A retried item's job between attempts (holding no slot): waits out its backoff, woken
/// early by a cancel; then queues the item again in its group (the same id, its place in
/// the results kept), or ends it as cancelled.
async fn item_backoff<I, F, T>(
    mut left: Unrun<I, F, T>,
    ticket: Arc<ItemWait>,
    wait: Duration,
) -> Next {
    let core = left.core.clone();
    let mut sleep = core.spawner.sleep(wait);
    poll_fn(|cx| {
        if ticket.is_cancelled() {
            return Poll::Ready(());
        }
        // A cancel from now on wakes this job (it sets the flag, then takes the waker).
        ticket.register(cx.waker());
        if ticket.is_cancelled() {
            return Poll::Ready(());
        }
        sleep.as_mut().poll(cx)
    })
    .await;
    drop(sleep);
    drop(ticket.unregister());
    let (id, next) = (left.id, left.attempts + 1);
    // Its rate key, for a keyed rate limit: its next attempt waits for that key's token (the
    // key function is user code: no lock held).
    let mut keys = Vec::new();
    if let Some(item) = left.item.as_ref() {
        left.group()
            .keys_of(std::iter::once(item), &core.name, &mut keys);
    }
    let rate_key = keys.first().copied().unwrap_or(0);
    let requeued = {
        let mut s = core.section();
        let (st, after, c) = s.split();
        let key = left.group().key;
        if st.item_requeue(id, key, rate_key, c, after) {
            let item = left.item.take().expect("kept until requeued");
            lock(&left.group().requeued, Rank::Leaf).push((id, left.seq, item, next));
            ticket.set_attempt(next);
            true
        } else {
            // Cancelled meanwhile.
            st.enter_ending(id);
            false
        }
    };
    drop(ticket);
    if requeued {
        left.armed = false;
        core.telemetry.enqueued();
        return Next::End;
    }
    end_unrun(left).await
}

/// Ends a retried item cancelled between attempts (in its backoff, or waiting for a slot
/// for its next attempt; already `Ending`): drops the item kept, runs its callbacks and
/// delivers its result.
async fn end_unrun<I, F, T>(mut left: Unrun<I, F, T>) -> Next {
    let core = left.core.clone();
    let id = left.id;
    drop_some(left.item.take(), kept_owner(&core.name, id));
    let group = left.group.clone().expect("held until the end");
    if let Some(callbacks) = &group.options.callbacks {
        let mut run = pin!(callbacks.run(&core.name, id, true));
        poll_fn(|cx| {
            let _inside = current::enter(core.serial, Some(id));
            run.as_mut().poll(cx)
        })
        .await;
    }
    drop(group);
    left.end(Outcome::Cancelled, TaskError::Cancelled { id });
    Next::End
}

/// A retried item between attempts, not running: what its job must end if the runtime
/// drops the job (it ends as dropped, without callbacks).
struct Unrun<I, F, T> {
    core: Arc<Core>,
    /// Its group (let go of in a panic guard: it may be the last reference).
    group: Option<Arc<MapGroup<I, F, T>>>,
    id: TaskId,
    seq: u64,
    /// Attempts it was given so far.
    attempts: u32,
    /// The item kept for its next attempt.
    item: Option<I>,
    /// Not ended yet.
    armed: bool,
    /// It waited in its group's queue (the telemetry counts it queued).
    queued: bool,
}

impl<I, F, T> Unrun<I, F, T> {
    fn group(&self) -> &MapGroup<I, F, T> {
        self.group.as_deref().expect("held until the end")
    }

    /// Delivers its result and retires it.
    fn end(&mut self, outcome: Outcome, err: TaskError) {
        self.armed = false;
        let core = &self.core;
        let id = self.id;
        let group = self.group.as_deref().expect("held until the end");
        if self.queued {
            core.telemetry.dequeued();
        }
        core.telemetry.ended(group.kind, outcome, false);
        let res = final_result(self.attempts, Err(err));
        let unwanted = {
            let mut s = core.section();
            let (st, after, _) = s.split();
            let unwanted = deliver_result(&group.results, self.seq, res, after);
            st.retire(id, outcome, after);
            // Maybe the group's last item.
            st.settle_if_finished(group.key, after);
            unwanted
        };
        log_end(&core.name, None, id, outcome);
        drop_some(unwanted, owner(&core.name, id));
    }
}

impl<I, F, T> Drop for Unrun<I, F, T> {
    fn drop(&mut self) {
        drop_some(self.item.take(), kept_owner(&self.core.name, self.id));
        if self.armed {
            let id = self.id;
            self.end(Outcome::Dropped, TaskError::RuntimeDropped { id });
        }
        if let Some(group) = self.group.take() {
            drop_value(
                group,
                Whose {
                    pool: &self.core.name,
                    task: Some(self.id),
                    what: "a map group's closure",
                },
            );
        }
    }
}

/// What a worker holding a slot got without waiting.
enum Now<I> {
    Got(Got<I>),
    /// Another worker is pulling from the input.
    Busy,
    /// The input had no item ready; the worker waits on it (it holds it).
    Pending(Box<Source<I>>),
}

/// The group's next item, as far as it can be had without waiting: taken in the section
/// that ended the last item (`pulled`), or now. The common path of a worker: no future is
/// made for it.
fn item_now<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    w: &mut WorkerGuard,
    mut pulled: Option<Taken<I>>,
    cx: &mut Context<'_>,
) -> Now<I>
where
    I: Send + 'static,
{
    loop {
        let taken = match pulled.take() {
            Some(taken) => taken,
            None => {
                let now = group.clock(core);
                let mut s = core.section();
                s.observe_now(group.key, now);
                let pull = s.next_item(group.key, control);
                group.hand(pull)
            }
        };
        let got = match taken {
            Taken::Item(id, seq, item) => Got::Item(id, seq, item),
            Taken::Pull(Pull::Source(any, batch)) => {
                w.held.input = true;
                let mut source: Box<Source<I>> = any
                    .downcast()
                    .expect("a group's input has the group's item type");
                // Items pulled with the first, on their way to the group's queue.
                let mut extra = std::mem::take(&mut *lock(&group.batch, Rank::Leaf));
                let pulled = pull_batch(&mut source, batch, &mut extra, cx, &core.name);
                let got = match pulled {
                    Batch::Pending => {
                        group.keep_batch_buffer(extra);
                        return Now::Pending(source);
                    }
                    Batch::Items(first, ended) => {
                        pulled_some(group, core, control, source, first, ended, &mut extra, w)
                    }
                    Batch::Ended => {
                        end_input(group.key, core);
                        w.held.input = false;
                        drop_value(source, input_owner(&core.name));
                        leave_or_again(group, core, control, w)
                    }
                };
                group.keep_batch_buffer(extra);
                got
            }
            Taken::Pull(Pull::Busy) => return Now::Busy,
            // An item was set aside for its key's token: go on with the next.
            Taken::Pull(Pull::SetAside(_)) => continue,
            Taken::Pull(Pull::Wait(wait)) => {
                // The group waits for a token, holding no slot: the timer brings it back.
                core.arm_rate_timer(group.key, wait);
                leave_or_again(group, core, control, w)
            }
            Taken::Pull(_) => leave_or_again(group, core, control, w),
        };
        match got {
            Got::Again(taken) => pulled = Some(taken),
            got => return Now::Got(got),
        }
    }
}

/// What a pull of a batch from the input gave.
enum Batch<I> {
    /// At least one item (the first; the rest are in `extra`), and whether the input ended.
    Items(I, bool),
    /// The input ended before an item.
    Ended,
    /// No item ready.
    Pending,
}

/// Pulls up to `batch` items from the input checked out to this worker (no lock held).
fn pull_batch<I>(
    source: &mut Source<I>,
    batch: usize,
    extra: &mut Vec<I>,
    cx: &mut Context<'_>,
    pool: &str,
) -> Batch<I> {
    let first = match poll_input(source, cx, pool) {
        Poll::Ready(Some(item)) => item,
        Poll::Ready(None) => return Batch::Ended,
        Poll::Pending => return Batch::Pending,
    };
    // Room for the whole batch at once, not grown item by item (the worker keeps it for its
    // next batches).
    extra.reserve(batch - 1);
    while 1 + extra.len() < batch {
        match poll_input(source, cx, pool) {
            Poll::Ready(Some(item)) => extra.push(item),
            Poll::Ready(None) => return Batch::Items(first, true),
            // The items pulled so far go; the next worker finds the input idle again.
            Poll::Pending => break,
        }
    }
    Batch::Items(first, false)
}

/// The group's next item for a worker holding a slot, waiting for it if need be: for a
/// busy input (another worker pulls from it) or one with no item ready.
async fn next_item<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    w: &mut WorkerGuard,
    mut now: Now<I>,
) -> Got<I>
where
    I: Send + 'static,
{
    let mut busy = 0;
    loop {
        match now {
            Now::Got(got) => return got,
            Now::Pending(source) => return wait_for_input(group, core, control, source, w).await,
            Now::Busy if busy < 3 => {
                // Another worker is pulling; it is done in a moment.
                busy += 1;
                w.wake_consumer();
                yield_now().await;
            }
            Now::Busy => {
                // Still busy (its puller was descheduled): give the slot back rather than
                // hold it idle. The group keeps its turns.
                let next = {
                    let mut s = core.section();
                    let (st, after, c) = s.split();
                    st.give_up_slot(group.key, c, after, &mut None)
                };
                w.ended();
                return Got::Done(next);
            }
        }
        now = poll_fn(|cx| Poll::Ready(item_now(group, core, control, w, None, cx))).await;
    }
}

/// The scheduler's word for a worker with no item: hand over or leave (`Ok`), or go on
/// with the item it took (`Err`).
fn leave<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    w: &mut WorkerGuard,
) -> Result<Next, Taken<I>> {
    let now = group.clock(core);
    let decision = {
        let mut s = core.section();
        let (st, after, c) = s.split();
        st.observe_now(group.key, now);
        match st.after_item(group.key, true, control, c, after, &mut None) {
            AfterItem::Continue(pull) => Decision::Continue(pull.map(|p| group.hand(p))),
            AfterItem::HandOver(start) => Decision::HandOver(start),
            AfterItem::Leave(next) => Decision::Leave(next),
        }
    };
    match decision {
        Decision::Continue(taken) => Err(taken.expect("taken now")),
        Decision::HandOver(start) => {
            w.ended();
            Ok(Next::Run(start))
        }
        Decision::Leave(next) => {
            w.ended();
            Ok(next)
        }
    }
}

/// A worker that found nothing to run asks the scheduler: leave, or go around again with
/// what it was handed.
fn leave_or_again<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    w: &mut WorkerGuard,
) -> Got<I> {
    match leave(group, core, control, w) {
        Ok(next) => Got::Done(next),
        Err(taken) => Got::Again(taken),
    }
}

/// Polls the checked-out input (no lock held, inside the pool but in no task).
fn poll_input<I>(source: &mut Source<I>, cx: &mut Context<'_>, pool: &str) -> Poll<Option<I>> {
    match user::call(|| source.as_mut().poll_next(cx)) {
        Ok(poll) => poll,
        Err(payload) => {
            let msg = user::panic_message(&*payload);
            tracing::error!(
                pool,
                "a map input panicked; no more items are pulled: {msg}"
            );
            user::drop_payload(payload);
            Poll::Ready(None)
        }
    }
}

fn size_hint<I>(source: &Source<I>) -> SizeHint {
    SizeHint::of(user::call(|| source.size_hint()).unwrap_or((0, None)))
}

/// The input checked out to this worker gave `first` and `extra` (and maybe ended): brings
/// the input back, registers the first item, and puts the rest in the group's queue.
#[allow(clippy::too_many_arguments)]
fn pulled_some<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    source: Box<Source<I>>,
    first: I,
    ended: bool,
    extra: &mut Vec<I>,
    w: &mut WorkerGuard,
) -> Got<I>
where
    I: Send + 'static,
{
    let pool = &*core.name;
    let hint = if ended {
        SizeHint {
            lower: 0,
            upper: Some(0),
        }
    } else {
        size_hint(&source)
    };
    let pulled = 1 + extra.len();
    // A keyed rate limit's keys: user code, before locking.
    let mut keys = Vec::new();
    group.keys_of(std::iter::once(&first).chain(extra.iter()), pool, &mut keys);
    let now = group.clock(core);
    let mut s = core.section();
    let (st, after, c) = s.split();
    st.observe_now(group.key, now);
    let registered = st.item_pulled(group.key, source, pulled, hint, &keys, control, c, after);
    // Sequence numbers follow input order: issued while this worker still holds the input's
    // turn (inside the section that brings it back), and before the input is closed, so the
    // stream cannot end before these items.
    let mut first = Some(first);
    let got = match registered {
        Pulled::Run(id) => {
            let seq = group.results.issue_many(pulled as u64);
            if !extra.is_empty() {
                let mut ahead = lock(&group.ahead, Rank::Leaf);
                ahead.extend((seq + 1..).zip(extra.drain(..)));
            }
            Some(Got::Item(id, seq, first.take().expect("not taken")))
        }
        Pulled::Queued => {
            // Rate-limited: all wait in the queue, to start with their tokens.
            let seq = group.results.issue_many(pulled as u64);
            let mut ahead = lock(&group.ahead, Rank::Leaf);
            let items = first.take().into_iter().chain(extra.drain(..));
            ahead.extend((seq..).zip(items));
            None
        }
        Pulled::Cancelled => None,
    };
    if !matches!(registered, Pulled::Cancelled) && hint.upper == Some(0) {
        st.input_ended(group.key, after);
    }
    drop(s);
    w.held.input = false;
    if let Some(got) = got {
        return got;
    }
    if let Some(first) = first {
        // Cancelled while this worker pulled: the items never start.
        drop_value(first, input_owner(pool));
        drop_value(std::mem::take(extra), input_owner(pool));
    }
    leave_or_again(group, core, control, w)
}

/// The input was not ready: give the slot back and wait on it; then run the item in a slot
/// of its own, in the group's turn.
async fn wait_for_input<I, F, T>(
    group: &MapGroup<I, F, T>,
    core: &Arc<Core>,
    control: &Arc<dyn TaskControl>,
    mut source: Box<Source<I>>,
    w: &mut WorkerGuard,
) -> Got<I>
where
    I: Send + 'static,
{
    let pool = &*core.name;
    let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    {
        let mut s = core.section();
        let (st, after, c) = s.split();
        st.input_pending(group.key, waker, c, after);
    }
    w.held.slot = false;
    w.wake_consumer();
    let arrived = poll_fn(|cx| {
        if !core.section().still_waiting_on_input(group.key, cx.waker()) {
            return Poll::Ready(None);
        }
        poll_input(&mut source, cx, pool).map(Some)
    })
    .await;
    let item = match arrived {
        Some(Some(item)) => item,
        ended => {
            // The input ended, or the group was cancelled while this worker waited.
            end_input(group.key, core);
            w.held.input = false;
            drop_value(source, input_owner(pool));
            if let Some(Some(item)) = ended {
                drop_value(item, input_owner(pool));
            }
            return Got::Done(gone(group.key, core, w));
        }
    };
    let hint = size_hint(&source);
    let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let mut keys = Vec::new();
    group.keys_of(std::iter::once(&item), pool, &mut keys);
    let mut item = Some(item);
    let (arrival, seq) = {
        let mut s = core.section();
        let (st, after, _) = s.split();
        let arrival = st.item_arrived(group.key, source, hint, &keys, control, &waker, after);
        let seq = match arrival {
            Arrival::Slot(_) | Arrival::WaitForTurn(_) => group.results.issue(),
            Arrival::Queued => {
                // Rate-limited: it waits in the queue for its token (this worker leaves).
                let seq = group.results.issue();
                let item = item.take().expect("not taken");
                lock(&group.ahead, Rank::Leaf).push_back((seq, item));
                seq
            }
            Arrival::Cancelled => 0,
        };
        if !matches!(arrival, Arrival::Cancelled) && hint.upper == Some(0) {
            st.input_ended(group.key, after);
        }
        (arrival, seq)
    };
    w.held.input = false;
    let Some(item) = item else {
        return Got::Done(gone(group.key, core, w));
    };
    match arrival {
        Arrival::Slot(id) => {
            w.held.slot = true;
            Got::Item(id, seq, item)
        }
        Arrival::WaitForTurn(id) => {
            core.telemetry.enqueued();
            let granted = poll_fn(
                |cx| match core.section().poll_turn(group.key, id, cx.waker()) {
                    Some(granted) => Poll::Ready(granted),
                    None => Poll::Pending,
                },
            )
            .await;
            core.telemetry.dequeued();
            if granted {
                w.held.slot = true;
                Got::Item(id, seq, item)
            } else {
                Got::CancelledBeforeStart(id, seq, item)
            }
        }
        Arrival::Cancelled | Arrival::Queued => {
            drop_value(item, input_owner(pool));
            Got::Done(gone(group.key, core, w))
        }
    }
}

/// A worker holding no slot ends.
fn gone(key: GroupKey, core: &Arc<Core>, w: &mut WorkerGuard) -> Next {
    {
        let mut s = core.section();
        let (st, after, c) = s.split();
        st.worker_gone(key, w.held, c, after);
    }
    w.ended();
    Next::End
}

/// Ends items set aside for their rate limit's tokens that were cancelled or shed: each
/// runs its callbacks and delivers its result, as a queued task that never started.
async fn end_aside<I, F, T>(mut left: AsideGuard<I, F, T>, outcome: Outcome) -> Next {
    let core = left.core.clone();
    let mut n = 0usize;
    while let Some(id) = left.ids.pop_front() {
        n += 1;
        if n % RUN_BUDGET == 0 {
            yield_now().await;
        }
        let taken = {
            let mut aside = lock(&left.group.aside, Rank::Leaf);
            let at = aside.iter().position(|(i, ..)| *i == id);
            at.map(|at| aside.swap_remove(at))
        };
        let Some((_, seq, item)) = taken else {
            continue;
        };
        drop_value(item, owner(&core.name, id));
        if let Some(callbacks) = &left.group.options.callbacks {
            let cancelled = outcome == Outcome::Cancelled;
            let mut run = pin!(callbacks.run(&core.name, id, cancelled));
            poll_fn(|cx| {
                let _inside = current::enter(core.serial, Some(id));
                run.as_mut().poll(cx)
            })
            .await;
        }
        let res = match outcome {
            Outcome::Shed => {
                let waited = left
                    .group
                    .deadline
                    .as_ref()
                    .map_or(Duration::ZERO, |(d, _)| *d);
                Err(TaskError::Shed { id, waited })
            }
            _ => Err(TaskError::Cancelled { id }),
        };
        left.end(id, seq, outcome, res);
    }
    Next::End
}

/// The set-aside items an `end_aside` job has not ended yet. If the runtime drops the job,
/// they end as dropped (no callbacks can run).
struct AsideGuard<I, F, T> {
    core: Arc<Core>,
    group: Arc<MapGroup<I, F, T>>,
    ids: VecDeque<TaskId>,
}

impl<I, F, T> AsideGuard<I, F, T> {
    fn end(&self, id: TaskId, seq: u64, outcome: Outcome, res: Item<T>) {
        let core = &self.core;
        if Telemetry::ACTIVE {
            core.telemetry.submitted(self.group.kind, 1, 0);
        }
        core.telemetry.ended(self.group.kind, outcome, false);
        let unwanted = {
            let mut s = core.section();
            let (st, after, _) = s.split();
            let unwanted = deliver_result(&self.group.results, seq, res, after);
            st.retire(id, outcome, after);
            // Maybe the group's last item.
            st.settle_if_finished(self.group.key, after);
            unwanted
        };
        log_end(&core.name, None, id, outcome);
        drop_some(unwanted, owner(&core.name, id));
    }
}

impl<I, F, T> Drop for AsideGuard<I, F, T> {
    fn drop(&mut self) {
        while let Some(id) = self.ids.pop_front() {
            let taken = {
                let mut aside = lock(&self.group.aside, Rank::Leaf);
                let at = aside.iter().position(|(i, ..)| *i == id);
                at.map(|at| aside.swap_remove(at))
            };
            if let Some((_, seq, item)) = taken {
                drop_value(item, owner(&self.core.name, id));
                self.end(
                    id,
                    seq,
                    Outcome::Dropped,
                    Err(TaskError::RuntimeDropped { id }),
                );
            }
        }
    }
}

/// Ends reserved items cancelled before they started: each runs its callbacks and delivers
/// `Cancelled`, like a queued task cancelled before it started.
async fn end_unstarted<I, F, Fut>(
    group: Arc<MapGroup<I, F, Fut::Output>>,
    mut left: UnstartedGuard<Fut::Output>,
) -> Next
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let core = left.core.clone();
    let mut n = 0usize;
    while let Some(raw) = left.ids.take_oldest() {
        n += 1;
        if n % RUN_BUDGET == 0 {
            yield_now().await;
        }
        let id = TaskId::new(raw);
        if let Some(callbacks) = &group.options.callbacks {
            let mut run = pin!(callbacks.run(&core.name, id, true));
            poll_fn(|cx| {
                let _inside = current::enter(core.serial, Some(id));
                run.as_mut().poll(cx)
            })
            .await;
        }
        left.end(id, Outcome::Cancelled, Err(TaskError::Cancelled { id }));
    }
    Next::End
}

/// The reserved items an `end_unstarted` job has not ended yet. If the runtime drops the job,
/// they end as dropped (no callbacks can run).
struct UnstartedGuard<T> {
    key: GroupKey,
    core: Arc<Core>,
    results: Arc<Results<T>>,
    ids: Reserved,
}

impl<T> UnstartedGuard<T> {
    fn end(&self, id: TaskId, outcome: Outcome, res: Item<T>) {
        self.core.telemetry.dequeued();
        self.core
            .telemetry
            .ended(Kind::Group(super::core::GroupKind::Start), outcome, false);
        let unwanted = {
            let mut s = self.core.section();
            let (st, after, _) = s.split();
            let unwanted = deliver_result(&self.results, 0, res, after);
            st.unstarted_ended(self.key, 1, outcome, after);
            unwanted
        };
        log_end(&self.core.name, None, id, outcome);
        drop_some(unwanted, owner(&self.core.name, id));
    }
}

impl<T> Drop for UnstartedGuard<T> {
    fn drop(&mut self) {
        while let Some(raw) = self.ids.take_oldest() {
            let id = TaskId::new(raw);
            self.end(id, Outcome::Dropped, Err(TaskError::RuntimeDropped { id }));
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model checks of a worker's abort target, reused for each item it runs (see
    //! `engine/loom_tests.rs`). The cancels go through the pool's real cancel path.
    use super::ItemAbort;
    use crate::engine::core::{Core, Outcome, Seat};
    use crate::engine::loom_tests::{check, pool};
    use crate::engine::poll::{poll_task, RunTimer};
    use crate::engine::yield_now::yield_now;
    use crate::error::TaskError;
    use crate::id::TaskId;
    use loom::future::block_on;
    use loom::thread;
    use std::future::{pending, poll_fn, Future};
    use std::pin::pin;
    use std::sync::Arc;

    /// Runs item `id`'s future as the worker does, with the worker's abort target.
    async fn run_item<F: Future>(
        core: &Arc<Core>,
        abort: &ItemAbort,
        id: TaskId,
        fut: F,
    ) -> Result<F::Output, TaskError> {
        let mut fut = pin!(fut);
        let mut timer = RunTimer::new(None);
        poll_fn(|cx| poll_task(fut.as_mut(), id, abort, &mut timer, None, core, cx)).await
    }

    /// The worker retires item `done` and registers its next item `next`.
    fn next_item(core: &Arc<Core>, abort: &Arc<ItemAbort>, done: TaskId, next: TaskId) {
        let mut s = core.section();
        let (st, after, _) = s.split();
        st.retire_held(done, Outcome::Completed, after);
        st.insert_running(next, abort.clone(), Seat::Worker);
    }

    fn first_item(core: &Arc<Core>, abort: &Arc<ItemAbort>) -> (TaskId, TaskId) {
        let mut s = core.section();
        let (n, next) = (s.allocate_id(), s.allocate_id());
        s.insert_running(n, abort.clone(), Seat::Worker);
        (n, next)
    }

    /// A cancel meant for item N, racing the worker through item N and on to item N+1 (each
    /// pending once), never cancels item N+1.
    #[test]
    fn loom_map_cancel_for_an_item_never_hits_the_next() {
        check(|| {
            let core = pool();
            let abort = Arc::new(ItemAbort::default());
            let (n, next) = first_item(&core, &abort);
            let canceller = {
                let core = core.clone();
                // Refused once item N has ended: then there is nothing to cancel.
                thread::spawn(move || drop(core.cancel(&[n])))
            };
            let res = block_on(async {
                let _ = run_item(&core, &abort, n, yield_now()).await;
                next_item(&core, &abort, n, next);
                run_item(&core, &abort, next, yield_now()).await
            });
            assert!(res.is_ok(), "a cancel meant for item N cancelled item N+1");
            canceller.join().unwrap();
        });
    }

    /// A cancel racing the first poll of a worker's first item (no waker registered yet) is
    /// seen: the item, pending until cancelled, ends cancelled.
    #[test]
    fn loom_map_cancel_racing_the_first_items_poll_is_seen() {
        check(|| {
            let core = pool();
            let abort = Arc::new(ItemAbort::default());
            let (n, _) = first_item(&core, &abort);
            let canceller = {
                let core = core.clone();
                thread::spawn(move || core.cancel(&[n]).expect("the item is live"))
            };
            let res = block_on(run_item(&core, &abort, n, pending::<()>()));
            assert!(matches!(res, Err(TaskError::Cancelled { id }) if id == n));
            canceller.join().unwrap();
        });
    }

    /// A cancel of item N+1 racing its first poll (the worker's waker still registered by
    /// item N) is seen: the item, pending until cancelled, ends cancelled.
    #[test]
    fn loom_map_cancel_racing_an_items_poll_is_seen() {
        check(|| {
            let core = pool();
            let abort = Arc::new(ItemAbort::default());
            let (n, next) = first_item(&core, &abort);
            let (res, canceller) = block_on(async {
                let first = run_item(&core, &abort, n, yield_now()).await;
                assert!(first.is_ok());
                next_item(&core, &abort, n, next);
                let canceller = {
                    let core = core.clone();
                    thread::spawn(move || core.cancel(&[next]).expect("the item is live"))
                };
                (
                    run_item(&core, &abort, next, pending::<()>()).await,
                    canceller,
                )
            });
            assert!(matches!(res, Err(TaskError::Cancelled { id }) if id == next));
            canceller.join().unwrap();
        });
    }
}

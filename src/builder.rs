//! Per-task and per-group options, set before submitting: [`TaskBuilder`], [`GroupBuilder`].

use crate::concurrency::Concurrency;
use crate::engine::callbacks::{callback, Callbacks, TaskOptions};
use crate::engine::core::{Admission, Core, GroupKind};
use crate::engine::current::inside_pool;
use crate::engine::item_retry::ItemRetry;
use crate::engine::map::{GroupInput, GroupSpec, KeyFn, Source, StopWhen};
use crate::engine::task::{Refused, TaskSpec};
use crate::error::{ExecError, PoolError, TrySpawnError};
use crate::group::Group;
use crate::handle::TaskHandle;
use crate::id::TaskId;
use crate::policy::Quota;
use crate::try_group::TryGroup;
use futures_core::Stream;
use std::any::Any;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

/// Options shared by the task and group builders.
#[derive(Default)]
struct Options {
    name: Option<String>,
    timeout: Option<Duration>,
    callbacks: Callbacks,
    priority: i32,
    queue_wait: Option<Duration>,
    /// Some option was set (else the task is plain: checked first, on every submission).
    set: bool,
}

impl Options {
    /// The options, about to be set.
    fn set(&mut self) -> &mut Self {
        self.set = true;
        self
    }

    fn task_options(&self) -> TaskOptions {
        TaskOptions::new(self.timeout, self.callbacks.clone())
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("on_end", &self.callbacks.on_end.is_some())
            .field("on_cancel", &self.callbacks.on_cancel.is_some())
            .field("priority", &self.priority)
            .field("queue_wait", &self.queue_wait)
            .finish()
    }
}

/// Per-task options: name, run timeout, end and cancel callbacks. Made by
/// [`TaskPool::build_task`](crate::TaskPool::build_task).
///
/// Callbacks are async closures taking the task's id. `on_cancel` runs first (only if the task
/// was cancelled), then `on_end` (always, unless the runtime itself dropped the task: then no
/// async code can run). The task's slot is freed before they run, so queued work can start
/// meanwhile; its handle resolves after they finish. A panicking callback is logged and
/// ignored.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// use std::time::Duration;
///
/// let pool = TaskPool::new(TokioSpawner::current());
/// let handle = pool
///     .build_task()
///     .name("fetch-index")
///     .timeout(Duration::from_secs(5))
///     .on_end(|id| async move { println!("task {id} ended") })
///     .spawn(async { "<html>" })
///     .await?;
/// assert_eq!(handle.await.unwrap(), "<html>");
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
#[must_use = "a task builder does nothing until one of its spawn methods is called"]
#[derive(Debug)]
pub struct TaskBuilder<'a> {
    core: &'a Arc<Core>,
    options: Options,
}

impl<'a> TaskBuilder<'a> {
    pub(crate) fn new(core: &'a Arc<Core>) -> Self {
        Self {
            core,
            options: Options::default(),
        }
    }

    /// The pool this builder submits to (for `spawn_keyed` and the retrying builder).
    pub(crate) fn core(&self) -> &'a Arc<Core> {
        self.core
    }

    /// A name for logs and [`TaskPool::tasks`](crate::TaskPool::tasks), instead of
    /// `{pool}_Task-{id}`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.set().name = Some(name.into());
        self
    }

    /// Cancels the task (with [`TaskError::TimedOut`](crate::TaskError::TimedOut)) if it runs
    /// longer than `timeout`. Time spent queued does not count.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.set().timeout = Some(timeout);
        self
    }

    /// Its priority while it waits for a slot (default 0; higher starts first, negative is
    /// lower). Queued work starts by priority, then in submission order; ageing keeps low
    /// priorities from starving: see [`PoolBuilder::ageing`](crate::PoolBuilder::ageing) for
    /// the bound. A task that starts at once (there is room) is not affected, and a running
    /// task is never stopped for a higher priority one.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(1).build()?;
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let (tx, rx) = futures::channel::oneshot::channel::<()>();
    /// let busy = pool.spawn_queued(async move { let _ = rx.await; })?; // holds the only slot
    /// for (name, priority) in [("low", -1), ("normal", 0), ("urgent", 10)] {
    ///     let order = order.clone();
    ///     pool.build_task().priority(priority).spawn_queued(async move {
    ///         order.lock().unwrap().push(name);
    ///     })?;
    /// }
    /// drop(tx);
    /// pool.join().await?;
    /// assert_eq!(*order.lock().unwrap(), ["urgent", "normal", "low"]);
    /// # busy.await.unwrap();
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.set().priority = priority;
        self
    }

    /// The longest the task may wait for a slot: if it could not start within `wait` of
    /// being queued, it is *shed* instead of starting late: its future is dropped unpolled,
    /// it ends as [`TaskError::Shed`](crate::TaskError::Shed) (counted in
    /// [`PoolStats::shed`](crate::PoolStats::shed)), its `on_end` callback runs once
    /// (`on_cancel` does not), and its handle resolves. A task that starts at once is not
    /// affected. Default: the pool's ([`PoolBuilder::max_queue_wait`](crate::PoolBuilder::max_queue_wait)),
    /// else none. The deadline is a timer on the pool's runtime, so it follows that runtime's
    /// clock (a paused tokio clock in tests); a task it sheds never starts, though one that
    /// starts within the timer's latency of its deadline may.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use std::time::Duration;
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(1).build()?;
    /// let (tx, rx) = futures::channel::oneshot::channel::<()>();
    /// let busy = pool.spawn_queued(async move { let _ = rx.await; })?; // holds the only slot
    /// let late = pool
    ///     .build_task()
    ///     .max_queue_wait(Duration::from_millis(10))
    ///     .spawn_queued(async { "too late" })?;
    /// assert!(late.await.unwrap_err().is_shed());
    /// assert_eq!(pool.stats().shed, 1);
    /// # drop(tx); busy.await.unwrap();
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.options.set().queue_wait = Some(wait);
        self
    }

    /// Runs `f(id)` when the task ends, however it ends.
    pub fn on_end<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.set().callbacks.on_end = Some(callback(f));
        self
    }

    /// Runs `f(id)` when the task is cancelled, before `on_end`.
    pub fn on_cancel<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.set().callbacks.on_cancel = Some(callback(f));
        self
    }

    /// Like [`spawn`](Self::spawn), with the future made by `make()` (called once, here):
    /// the same as `spawn(make())` unless the task is [retried](Self::retry).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let handle = pool.build_task().spawn_with(|| async { 7 }).await?;
    /// assert_eq!(handle.await.unwrap(), 7);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub async fn spawn_with<M, F>(self, mut make: M) -> Result<TaskHandle<F::Output>, PoolError>
    where
        M: FnMut() -> F + Send + 'static,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(make()).await
    }

    pub(crate) fn spec(&self) -> Option<Box<TaskSpec>> {
        let o = &self.options;
        if !o.set {
            return plain_spec(self.core);
        }
        let queue_wait = o.queue_wait.or_else(|| self.core.queue_wait());
        let name = o.name.as_deref().map(Arc::from);
        TaskSpec::boxed(name, o.task_options(), o.priority, queue_wait)
    }

    /// Waits for room under the limit, then starts the task. See
    /// [`TaskPool::spawn`](crate::TaskPool::spawn).
    pub async fn spawn<F>(self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let spec = self.spec();
        spawn(self.core, fut, spec).await
    }

    /// Queues the task and returns at once. See
    /// [`TaskPool::spawn_queued`](crate::TaskPool::spawn_queued).
    pub fn spawn_queued<F>(self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let spec = self.spec();
        spawn_queued(self.core, fut, spec)
    }

    /// Starts the task now, or gives it back. See
    /// [`TaskPool::try_spawn`](crate::TaskPool::try_spawn).
    pub fn try_spawn<F>(self, fut: F) -> Result<TaskHandle<F::Output>, TrySpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let spec = self.spec();
        try_spawn(self.core, fut, spec)
    }

    /// Runs the task to completion and returns its output. See
    /// [`TaskPool::exec`](crate::TaskPool::exec).
    pub async fn exec<F>(self, fut: F) -> Result<F::Output, ExecError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let spec = self.spec();
        exec(self.core, fut, spec).await
    }
}

/// The spec of a task with no options of its own: nothing to store (the common case, kept
/// cheap), unless the pool gives every task a deadline.
#[inline]
pub(crate) fn plain_spec(core: &Arc<Core>) -> Option<Box<TaskSpec>> {
    let wait = core.queue_wait()?;
    TaskSpec::boxed(None, TaskOptions::default(), 0, Some(wait))
}

// The entry points behind `TaskPool`'s methods (with no options: `plain_spec`) and the
// builder's: they borrow the pool's core rather than clone it.

fn submit<F>(
    core: &Arc<Core>,
    fut: F,
    spec: Option<Box<TaskSpec>>,
    admission: Admission,
) -> Result<(TaskHandle<F::Output>, bool), Refused<F>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let s = core.submit(fut, spec, admission)?;
    debug_assert!(s.here.is_none(), "only `exec` starts a task in its caller");
    Ok((TaskHandle::new(s.id, s.cell, core.clone()), s.started))
}

pub(crate) async fn spawn<F>(
    core: &Arc<Core>,
    fut: F,
    spec: Option<Box<TaskSpec>>,
) -> Result<TaskHandle<F::Output>, PoolError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (handle, started) =
        submit(core, fut, spec, Admission::Queue).map_err(Refused::into_error)?;
    // From one of the pool's own tasks, waiting for room could wait for the caller's own
    // slot: the task stays queued and the handle comes back at once.
    if !started && !inside_pool(core.serial) {
        let mut withdraw = CancelOnDrop {
            core,
            id: handle.id(),
            armed: true,
        };
        poll_fn(|cx| handle.poll_started(cx)).await;
        withdraw.armed = false;
    }
    Ok(handle)
}

pub(crate) fn spawn_queued<F>(
    core: &Arc<Core>,
    fut: F,
    spec: Option<Box<TaskSpec>>,
) -> Result<TaskHandle<F::Output>, PoolError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    submit(core, fut, spec, Admission::Queue)
        .map(|(h, _)| h)
        .map_err(Refused::into_error)
}

pub(crate) fn try_spawn<F>(
    core: &Arc<Core>,
    fut: F,
    spec: Option<Box<TaskSpec>>,
) -> Result<TaskHandle<F::Output>, TrySpawnError<F>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    submit(core, fut, spec, Admission::Refuse)
        .map(|(h, _)| h)
        .map_err(|r| TrySpawnError::new(r.error, r.future))
}

pub(crate) async fn exec<F>(
    core: &Arc<Core>,
    fut: F,
    spec: Option<Box<TaskSpec>>,
) -> Result<F::Output, ExecError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if inside_pool(core.serial) {
        // From one of the pool's own tasks: the child runs in the caller's slot.
        return Ok(core.exec_nested(fut, spec).await??);
    }
    // In a task of the pool's single-threaded runtime, a task that finds room runs right
    // here, in the awaiting task: no runner to wake, no wake back (see
    // `Spawner::is_current_thread`).
    let admission = if core.spawner.is_current_thread() {
        Admission::InCallerOrQueue
    } else {
        Admission::Queue
    };
    let s = core
        .submit(fut, spec, admission)
        .map_err(Refused::into_error)?;
    let (handle, here) = (TaskHandle::new(s.id, s.cell, core.clone()), s.here);
    let mut cancel = CancelOnDrop {
        core,
        id: handle.id(),
        armed: true,
    };
    if let Some(job) = here {
        core.run_in_caller(handle.id(), job).await;
    }
    // Ready at once if it ran here.
    let out = handle.await;
    cancel.armed = false;
    Ok(out?)
}

/// Cancels a task if the future waiting on it is dropped (cancel safety of `spawn`/`exec`).
struct CancelOnDrop<'a> {
    core: &'a Arc<Core>,
    id: TaskId,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.core.cancel_quietly(self.id);
        }
    }
}

/// Options for a group of tasks from [`apply`](GroupBuilder::apply) or
/// [`map`](GroupBuilder::map): a name, result order, and a run timeout and callbacks for each
/// item. Made by [`TaskPool::build_group`](crate::TaskPool::build_group).
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// use std::time::Duration;
///
/// let pool = TaskPool::new(TokioSpawner::current());
/// let group = pool
///     .build_group()
///     .name("resize")
///     .timeout(Duration::from_secs(30))
///     .map(["a.png", "b.png"], 2, |path| async move { path.len() })?;
/// assert_eq!(group.name(), "resize");
/// assert_eq!(group.join().await?.completed, 2);
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
#[must_use = "a group builder does nothing until `apply` or a `map` method is called"]
#[derive(Debug)]
pub struct GroupBuilder<'a> {
    core: &'a Arc<Core>,
    options: Options,
    ordered: bool,
    cancel_on_drop: bool,
    weight: u32,
    rate: Option<Quota>,
    rate_key: Option<RateKey>,
}

/// A `rate_limit_by` key function, its item type erased until the group is made.
struct RateKey {
    /// A `KeyFn<I>`.
    key_of: Box<dyn Any + Send + Sync>,
    /// `I`'s name, for the error if the group's items are of another type.
    takes: &'static str,
}

impl fmt::Debug for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateKey(&{})", self.takes)
    }
}

impl<'a> GroupBuilder<'a> {
    pub(crate) fn new(core: &'a Arc<Core>) -> Self {
        Self {
            core,
            options: Options::default(),
            ordered: true,
            cancel_on_drop: false,
            weight: 1,
            rate: None,
            rate_key: None,
        }
    }

    /// The group's name (default `apply-group-K` or `map-group-K`). It must not be in use.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.set().name = Some(name.into());
        self
    }

    /// A run timeout for each item; time waiting for room does not count.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.set().timeout = Some(timeout);
        self
    }

    /// Runs `f(id)` when an item ends. See [`TaskBuilder::on_end`].
    pub fn on_end<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.set().callbacks.on_end = Some(callback(f));
        self
    }

    /// Runs `f(id)` when an item is cancelled, before `on_end`.
    pub fn on_cancel<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.set().callbacks.on_cancel = Some(callback(f));
        self
    }

    /// The group's priority (default 0): while its items wait for slots, they start before
    /// those of lower priority lanes (groups, and loose tasks of lower priority), and after
    /// higher ones; ageing keeps low priorities from starving (see
    /// [`PoolBuilder::ageing`](crate::PoolBuilder::ageing)). Change it later with
    /// [`Group::set_priority`].
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(4).build()?;
    /// let backfill = pool.build_group().priority(-5).map(0..100, 4, |x| async move { x })?;
    /// let urgent = pool.build_group().priority(5).map(0..10, 4, |x| async move { x })?;
    /// assert_eq!(urgent.priority(), 5);
    /// assert_eq!(urgent.join().await?.completed, 10);
    /// # backfill.join().await?;
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.set().priority = priority;
        self
    }

    /// The group's weight in the pool's shares (default 1, at least 1): groups of one
    /// priority that all have work waiting hold slots in proportion to their weights (within
    /// one slot), so a group of weight 3 beside one of weight 1 holds three quarters of the
    /// slots they share. The loose tasks share as one, with the pool's
    /// [`loose_weight`](crate::PoolBuilder::loose_weight). A group that wants fewer slots
    /// than its share (its cap, or its input, holds it back) leaves the rest to the others.
    /// Change it later with [`Group::set_weight`]. A weight of 0 is refused by the `map`
    /// methods with [`PoolError::InvalidLimit`].
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(8).build()?;
    /// let paying = pool.build_group().weight(3).map(0..300, usize::MAX, |x| async move { x })?;
    /// let free = pool.build_group().weight(1).map(0..100, usize::MAX, |x| async move { x })?;
    /// assert_eq!(paying.weight(), 3);
    /// paying.join().await?;
    /// free.join().await?;
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The longest the group's items may wait to start, counted from the group's submission:
    /// once `wait` has passed, each item that has not started is *shed* instead of starting
    /// late: its closure is not called, it ends as [`TaskError::Shed`](crate::TaskError::Shed)
    /// with its own id and result (counted in the summary's and the pool's `shed`), and its
    /// `on_end` callback runs once. Items running then go on. Items are shed as the group's
    /// workers reach them, back to back (an item waiting for the group's turn, at once); a
    /// group holding no slot sheds at its next turn. Default: the pool's
    /// ([`PoolBuilder::max_queue_wait`](crate::PoolBuilder::max_queue_wait)), else none.
    ///
    /// The clock starts when the group is made, for all its items: it bounds how late a
    /// batch may start, which suits `map` over a collection; for a long-lived stream, items
    /// arriving after the deadline are shed too.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use futures::FutureExt;
    /// use std::time::Duration;
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(2).build()?;
    /// let (tx, rx) = futures::channel::oneshot::channel::<()>();
    /// let rx = rx.shared();
    /// let group = pool
    ///     .build_group()
    ///     .max_queue_wait(Duration::from_millis(10))
    ///     .map(0..100, 2, move |_| rx.clone())?; // two items start, and wait
    /// tokio::time::sleep(Duration::from_millis(50)).await; // past the group's deadline
    /// drop(tx);
    /// let summary = group.join().await?;
    /// assert_eq!((summary.completed, summary.shed), (2, 98));
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.options.set().queue_wait = Some(wait);
        self
    }

    /// A rate limit on the group's items: at most `quota`'s starts (GCRA: on average one per
    /// [`interval`](Quota::interval), with bursts of up to [`max_burst`](Quota::max_burst)
    /// after a quiet spell), whatever the concurrency allows. Independent of
    /// `num_concurrent` and of the pool's limit: an item starts when it has both a slot and
    /// a token. The quota counts starts, not ends, so it also bounds a burst of retries.
    ///
    /// Waiting for a token holds no slot: while the group's next token is not due, its
    /// workers give their slots back (other work runs in them), and the group asks for a
    /// slot again at the instant the token is due, on a timer of the pool's runtime (so it
    /// follows a paused tokio clock in tests). Items are still started in input order, and
    /// items not started yet have no id. `max_queue_wait` sheds items that wait too long for
    /// a token as for a slot; cancelling the group stops the wait. Change or lift the quota
    /// later with [`Group::set_rate_limit`]. For one quota per key (per host, per tenant),
    /// see [`rate_limit_by`](Self::rate_limit_by).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskPool};
    /// use std::time::{Duration, Instant};
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let t0 = Instant::now();
    /// // 20 per second, no burst: one start every 50 ms.
    /// let quota = Quota::per_second(20)?.burst(1)?;
    /// let group = pool.build_group().rate_limit(quota).map(0..4, 4, |x| async move { x })?;
    /// assert_eq!(group.rate_limit(), Some(quota));
    /// assert_eq!(group.join().await?.completed, 4);
    /// assert!(t0.elapsed() >= Duration::from_millis(150)); // starts at 0, 50, 100, 150 ms
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn rate_limit(mut self, quota: Quota) -> Self {
        self.rate = Some(quota);
        self
    }

    /// A rate limit per key: each item's key is `key(&item)` (a host, a tenant, ...), and
    /// each key has its own `quota` (GCRA, as [`rate_limit`](Self::rate_limit)), so items of
    /// a busy key wait without holding up the others. For `map`, `map_stream`, `try_map` and
    /// `try_map_stream`; the closure's argument must be the group's item type (annotate it:
    /// `|url: &String| ...`), else the `map` method refuses with
    /// [`PoolError::RateKeyType`].
    ///
    /// An item whose key has no token is *set aside*: it gets its id (ids and ordered results
    /// follow input order), waits holding no slot, and starts as soon as its key's token is
    /// due, while the group goes on with items whose keys are ready. At most
    /// `min(num_concurrent, 64)` items are set aside at once; beyond that the group waits for
    /// the earliest token due. A set-aside item is queued as far as the pool is concerned
    /// ([`TaskPool::tasks`](crate::TaskPool::tasks) shows it so): cancelling it, or the group,
    /// ends it at once as cancelled, and the group's `max_queue_wait` sheds it. `join` waits
    /// for it.
    ///
    /// `key` is called once per item, when the item is pulled from the input, with no lock
    /// held; only a 64-bit hash of the key is kept (two keys whose hashes collide, about one
    /// chance in 2⁶⁴ per pair, would share a quota). A `key` that panics is logged, and its
    /// item shares one quota with the other items whose key panicked. Keys are forgotten once
    /// their quota is full again.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let urls = ["a.example/1", "a.example/2", "b.example/1", "b.example/2"];
    /// let host = |url: &&str| url.split('/').next().unwrap_or_default().to_owned();
    /// let fetched: Vec<_> = pool
    ///     .build_group()
    ///     .rate_limit_by(host, Quota::per_second(10)?.burst(1)?) // 10/s per host
    ///     .map(urls, 4, |url| async move { url.len() })?
    ///     .map(Result::unwrap)
    ///     .collect()
    ///     .await;
    /// assert_eq!(fetched, [11, 11, 11, 11]); // in input order
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn rate_limit_by<I, K, KF>(mut self, key: KF, quota: Quota) -> Self
    where
        I: 'static,
        K: Hash,
        KF: Fn(&I) -> K + Send + Sync + 'static,
    {
        let hasher = RandomState::new();
        let key_of: KeyFn<I> = Box::new(move |item: &I| hasher.hash_one(key(item)));
        self.rate = Some(quota);
        self.rate_key = Some(RateKey {
            key_of: Box::new(key_of),
            takes: std::any::type_name::<I>(),
        });
        self
    }

    /// Results in completion order instead of input order (asyncio-pool's `itermap`).
    /// `apply` results always come in completion order.
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Dropping the [`Group`] (or [`TryGroup`]) cancels the group's items that have not
    /// ended, instead of the default of letting them run on detached: so a consumer that
    /// stops reading early (`take`, `break`, `?`) stops the rest of the work too. Waiting for
    /// the group with [`Group::join`] keeps it alive until it ends (dropping that future
    /// drops the group, and so cancels it). Default: off.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(4).build()?;
    /// let first_two: Vec<u32> = pool
    ///     .build_group()
    ///     .cancel_on_drop(true)
    ///     .map(0..200, 4, |x| async move {
    ///         if x >= 2 { std::future::pending::<()>().await } // only two ever finish
    ///         x
    ///     })?
    ///     .take(2)
    ///     .map(Result::unwrap)
    ///     .collect()
    ///     .await;
    /// assert_eq!(first_two, [0, 1]);
    /// // Dropping the group cancelled the items left running; the rest never started.
    /// pool.join().await?;
    /// assert!(pool.num_cancelled() >= 2);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn cancel_on_drop(mut self, yes: bool) -> Self {
        self.cancel_on_drop = yes;
        self
    }

    /// Whether results come in input order.
    pub(crate) fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Starts `num` tasks, each from `factory()`. See [`TaskPool::apply`](crate::TaskPool::apply).
    pub fn apply<F, Fut>(self, num: usize, factory: F) -> Result<Group<Fut::Output>, PoolError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let source: Source<usize> = Box::pin(futures_util::stream::iter(0..num));
        self.launch(
            GroupKind::Apply,
            source,
            Concurrency::PoolLimit,
            false,
            move |_| factory(),
        )
    }

    /// `f(item)` for each item, at most `num_concurrent` at once (a number, or
    /// [`Concurrency::PoolLimit`]). See [`TaskPool::map`](crate::TaskPool::map).
    pub fn map<I, F, Fut>(
        self,
        items: I,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.map_stream(futures_util::stream::iter(items), num_concurrent, f)
    }

    /// `f(item)` for each item of a [`Stream`], at most `num_concurrent` at once. While the
    /// stream has no item ready, one worker waits on it without holding a pool slot.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let (tx, rx) = futures::channel::mpsc::unbounded();
    /// let doubled = pool.build_group().map_stream(rx, 4, |x: u32| async move { x * 2 })?;
    /// tx.unbounded_send(1).unwrap();
    /// tx.unbounded_send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(doubled.map(Result::unwrap).collect::<Vec<_>>().await, [2, 4]);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn map_stream<S, F, Fut>(
        self,
        items: S,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let ordered = self.ordered;
        self.launch(
            GroupKind::Map,
            Box::pin(items),
            num_concurrent.into(),
            ordered,
            f,
        )
    }

    /// `f(item)` for each item, where `f`'s future returns a `Result`: at the first item that
    /// fails (returns `Err`, panics, times out, is cancelled or shed) the group stops pulling
    /// items and cancels those running, and its stream yields that error and ends. See
    /// [`TaskPool::try_map`](crate::TaskPool::try_map).
    pub fn try_map<I, F, Fut, T, E>(
        self,
        items: I,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<TryGroup<T, E>, PoolError>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.try_map_stream(futures_util::stream::iter(items), num_concurrent, f)
    }

    /// [`try_map`](Self::try_map) over a [`Stream`].
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool, TryMapError};
    /// use futures::TryStreamExt;
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let lines = futures::stream::iter(["1", "2", "x", "4"]);
    /// let parsed = pool
    ///     .build_group()
    ///     .try_map_stream(lines, 1, |s| async move { s.parse::<u32>() })?;
    /// let err = parsed.try_collect::<Vec<u32>>().await.unwrap_err();
    /// assert!(matches!(err, TryMapError::Item(_)));
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn try_map_stream<S, F, Fut, T, E>(
        self,
        items: S,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<TryGroup<T, E>, PoolError>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let ordered = self.ordered;
        let group = self.launch_stopping(
            GroupKind::Map,
            Box::pin(items),
            num_concurrent.into(),
            ordered,
            f,
            Some(crate::try_group::fails::<T, E>),
            None,
        )?;
        Ok(TryGroup::new(group))
    }

    fn launch<I, F, Fut>(
        self,
        kind: GroupKind,
        source: Source<I>,
        num_concurrent: Concurrency,
        ordered: bool,
        f: F,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        I: Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.launch_stopping(kind, source, num_concurrent, ordered, f, None, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch_stopping<I, F, Fut>(
        self,
        kind: GroupKind,
        source: Source<I>,
        num_concurrent: Concurrency,
        ordered: bool,
        f: F,
        stop_when: Option<StopWhen<Fut::Output>>,
        retry: Option<ItemRetry<I, Fut::Output>>,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        I: Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let input = match self.rate_key {
            None => GroupInput::Stream(source),
            Some(k) => match k.key_of.downcast::<KeyFn<I>>() {
                Ok(key_of) => GroupInput::Keyed(source, *key_of),
                Err(_) => {
                    return Err(PoolError::RateKeyType {
                        pool: self.core.pool_name(),
                        key_takes: k.takes,
                        items: std::any::type_name::<I>(),
                    })
                }
            },
        };
        let spec = GroupSpec {
            kind,
            options: self.options.task_options(),
            name: self.options.name,
            num_concurrent: num_concurrent.cap(),
            ordered,
            priority: self.options.priority,
            weight: self.weight,
            queue_wait: self.options.queue_wait.or_else(|| self.core.queue_wait()),
            rate: self.rate,
        };
        let g = self.core.launch_group(spec, input, f, stop_when, retry)?;
        Ok(Group::new(g, self.core.clone()).with_cancel_on_drop(self.cancel_on_drop))
    }
}

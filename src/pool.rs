//! `TaskPool`: heterogeneous tasks with a limit, groups, cancellation and introspection.

use crate::builder::{self, GroupBuilder, TaskBuilder};
use crate::concurrency::Concurrency;
use crate::engine::core::Core;
use crate::error::{ExecError, PoolError, TrySpawnError};
use crate::group::Group;
use crate::handle::TaskHandle;
use crate::id::TaskId;
use crate::policy::Quota;
use crate::stats::{GroupStats, PoolStats, TaskInfo};
use crate::try_group::TryGroup;
use async_taskpool_runtime::Spawner;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A pool of async tasks of any output type, with a resizable concurrency limit.
///
/// `TaskPool` is a cheap handle: clone it into tasks, other threads, or a control server.
///
/// # Guarantees
/// - At most [`limit`](Self::limit) tasks run at once (a task's nested `exec` children run
///   in its slot). Loose tasks that do not fit wait in a FIFO queue per
///   [priority](TaskBuilder::priority) and start by priority, then in submission order; each
///   `map`/`apply`/`start` group waits in a lane of its own (with its own
///   [priority](GroupBuilder::priority) and [weight](GroupBuilder::weight)), and as room
///   frees, lanes of the highest priority share the pool by weight (equal by default), so
///   competing groups and the loose tasks share it instead of taking it in bursts; ageing
///   keeps lower priorities from starving ([`PoolBuilder::ageing`] states the bound).
///   Nothing waiting costs a runtime task.
/// - Up to 32 runtime tasks whose tasks ended stay parked, holding no slot, for tasks that
///   start at once; they end when the pool is closed (dropping its last handle closes it).
/// - Every submitted task gets a [`TaskId`] and ends exactly once: completed, cancelled, timed
///   out, panicked, or dropped by its runtime. Its slot is released whichever way it ends, and
///   its callbacks run for every outcome but the last (when the runtime shuts down, or refuses
///   to start it, no async code can run: its handle then resolves to
///   [`TaskError::RuntimeDropped`](crate::TaskError::RuntimeDropped) or
///   [`TaskError::SpawnFailed`](crate::TaskError::SpawnFailed)).
/// - A panic in a task is caught, counted, logged and returned as
///   [`TaskError::Panicked`](crate::TaskError::Panicked); the pool and the runtime thread carry on.
/// - When [`join`](Self::join) returns, no task of the pool is queued or running, every group
///   has pulled its last item, and every handle and group result is delivered.
///
/// # Locking and closing
/// One rule for every method: a [`lock`](Self::lock)ed or [`close`](Self::close)d pool refuses
/// *new submissions* with [`PoolError::Locked`] / [`PoolError::Closed`], and keeps running
/// everything it already accepted, including tasks still queued and the remaining items of an
/// `apply` or `map` already under way. `unlock` reopens a locked pool; closing is for good.
///
/// # Dropping
/// Dropping the last `TaskPool` handle closes the pool and lets accepted work (running and
/// queued) finish in the background; [`TaskHandle`]s and [`Group`]s keep working. Choose
/// [`PoolBuilder::cancel_on_drop`] to cancel it instead, or call
/// [`gather_and_close`](Self::gather_and_close) to wait for it.
///
/// # Tasks that wait for their own pool
/// A task that waits for room in its own full pool would wait for a slot that only it can
/// free. So, called from one of the pool's own tasks (or its callbacks), [`exec`](Self::exec)
/// runs the child *nested* in the caller's slot: it starts at once, with its own id,
/// cancellation, timeout and callbacks, and counts as running; and [`spawn`](Self::spawn)
/// queues the child and returns its handle at once instead of waiting for room. `join`,
/// `flush` and `gather_and_close` refuse with [`PoolError::CalledFromOwnTask`]. Awaiting the
/// handle of a *queued* child from a task of a full pool still waits for a slot the caller
/// holds: hand such handles to someone outside the pool (or use `exec`). A recursive crawler
/// therefore fetches its children with `exec`, or queues them with `spawn_queued` and returns
/// (see `examples/crawler_tokio.rs`).
///
/// # When not to use it
/// For a handful of tasks with no limit, spawning on the runtime directly is simpler. For CPU
/// bound work, use a thread pool (rayon) or your runtime's blocking pool: a pool task that
/// blocks a thread blocks every task scheduled there.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
///
/// let pool = TaskPool::builder(TokioSpawner::current()).name("crawler").limit(2).build()?;
/// let page = pool.spawn(async { "page" }).await?;     // waits for room, then starts
/// let queued = pool.spawn_queued(async { 2 })?;        // returns at once
/// assert_eq!(pool.exec(async { 1 + 1 }).await.unwrap(), 2);
/// assert_eq!(page.await.unwrap(), "page");
/// assert_eq!(queued.await.unwrap(), 2);
/// pool.gather_and_close().await?;
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
#[derive(Clone)]
pub struct TaskPool {
    core: Arc<Core>,
    _owner: Arc<Owner>,
}

/// Shared by user-facing clones only; its drop is "the last handle went away".
struct Owner {
    core: Arc<Core>,
    cancel_on_drop: bool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.core.close();
        if self.cancel_on_drop {
            self.core.cancel_all();
        }
    }
}

impl TaskPool {
    /// A pool without a limit, named `TaskPool-{k}`, spawning on `spawner`.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// let pool = async_taskpool::TaskPool::new(async_taskpool::runtime::SmolSpawner::global());
    /// assert_eq!(pool.limit(), None);
    /// # }
    /// ```
    pub fn new(spawner: impl Spawner) -> Self {
        Self::builder(spawner)
            .build()
            .expect("no limit set, so nothing to refuse")
    }

    /// A builder for a pool with a name, a limit or other options.
    pub fn builder(spawner: impl Spawner) -> PoolBuilder {
        PoolBuilder {
            spawner: Arc::new(spawner),
            name: None,
            limit: None,
            cancel_on_drop: false,
            track_durations: false,
            metrics: true,
            loose_weight: 1,
            ageing: None,
            queue_wait: None,
            rate: None,
            adaptive: None,
        }
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Per-task options (name, timeout, callbacks), then one of the spawn methods.
    pub fn build_task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(&self.core)
    }

    /// Group options (name, result order, per-item timeout and callbacks), then `apply`,
    /// `map` or `map_stream`.
    pub fn build_group(&self) -> GroupBuilder<'_> {
        GroupBuilder::new(&self.core)
    }

    /// Waits until the task fits under the limit (behind anything already queued), then
    /// starts it and returns its handle. Called from one of the pool's own tasks, it does not
    /// wait: the task is queued and its handle returned at once.
    ///
    /// Cancel-safe: dropping this future before it returns withdraws the task, which then
    /// counts as cancelled and never runs.
    pub async fn spawn<F>(&self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        builder::spawn(&self.core, fut, builder::plain_spec(&self.core)).await
    }

    /// Submits the task and returns at once; it waits in the FIFO queue if the pool is full.
    /// A queued task costs its future plus a small record, not a runtime task.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(1).build()?;
    /// let handles: Vec<_> = (0..3).map(|i| pool.spawn_queued(async move { i })).collect::<Result<_, _>>()?;
    /// assert!(pool.num_queued() <= 3);
    /// for (i, h) in handles.into_iter().enumerate() { assert_eq!(h.await.unwrap(), i); }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn spawn_queued<F>(&self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        builder::spawn_queued(&self.core, fut, builder::plain_spec(&self.core))
    }

    /// Starts the task if there is room right now (and nothing queued ahead of it); otherwise
    /// returns [`PoolError::Full`] (or `Locked`/`Closed`) with the future, so no work is lost.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool, PoolError};
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(1).build()?;
    /// let first = pool.try_spawn(std::future::pending::<()>()).unwrap();
    /// let refused = pool.try_spawn(async { 2 }).unwrap_err();
    /// assert!(matches!(refused.error(), PoolError::Full { .. }));
    /// let fut = refused.into_future(); // run it elsewhere, or later
    /// # drop(fut); first.cancel()?;
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn try_spawn<F>(&self, fut: F) -> Result<TaskHandle<F::Output>, TrySpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        builder::try_spawn(&self.core, fut, builder::plain_spec(&self.core))
    }

    /// Runs the task in the pool (waiting for room) and returns its output. Called from one
    /// of the pool's own tasks, the child runs at once in the caller's slot instead.
    ///
    /// Dropping this future cancels the task.
    ///
    /// When the pool has room and the caller is a task of the pool's own runtime, and that
    /// runtime has only the caller's thread (its spawner's
    /// [`is_current_thread`](crate::runtime::Spawner::is_current_thread): a task of tokio's
    /// current-thread runtime), the task takes its slot and runs right here, inside the
    /// awaiting task, as work under a semaphore would: no runtime task to wake and no
    /// wake-up when it ends, and no parallelism lost, since a runtime task would run on this
    /// thread too. It keeps its id, cancellation, timeout, callbacks and panic isolation;
    /// what differs is that it is polled in the caller's task (task-locals are the caller's)
    /// and makes progress while this future is polled. Otherwise (multi-threaded runtimes,
    /// other runtimes) it runs on one of the pool's runtime tasks, in parallel with the
    /// caller's other work, and this future waits for its output.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(8).build()?;
    /// let handler = tokio::spawn(async move {
    ///     let caller = tokio::task::id();
    ///     let ran_in = pool.exec(async { tokio::task::id() }).await.unwrap();
    ///     assert_eq!(ran_in, caller); // room, a current-thread runtime: run in the caller
    /// });
    /// handler.await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub async fn exec<F>(&self, fut: F) -> Result<F::Output, ExecError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        builder::exec(&self.core, fut, builder::plain_spec(&self.core)).await
    }

    /// Starts `num` tasks made by `factory` (asyncio-taskpool's `apply`), as a group named
    /// `apply-group-K`. Returns at once; tasks start as room frees and get their ids as they
    /// start. Results stream in completion order.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let group = pool.apply(3, || async { "pong" })?;
    /// assert_eq!(group.join().await?.completed, 3);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn apply<F, Fut>(&self, num: usize, factory: F) -> Result<Group<Fut::Output>, PoolError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.build_group().apply(num, factory)
    }

    /// Runs `f(item)` for every item, pulled lazily (at most `num_concurrent` items are pulled
    /// ahead of those running), with at most `num_concurrent` of them at once (and never over
    /// the pool's limit). Returns at once with a [`Group`] whose results
    /// come in input order (asyncio-pool's `map`); see [`map_unordered`](Self::map_unordered)
    /// for completion order. `num_concurrent` is a number (at least 1), or
    /// [`Concurrency::PoolLimit`] for as many as the pool's limit allows, following
    /// [`set_limit`](Self::set_limit); change it later with
    /// [`Group::set_num_concurrent`].
    ///
    /// Items run on reused workers: each still gets its own id, cancellation, panic isolation
    /// and result, without a runtime spawn per item.
    ///
    /// `starmap` and `doublestarmap` are closures in Rust: destructure in the pattern.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// // starmap: a tuple per item
    /// let sums = pool.map([(1, 2), (3, 4)], 2, |(a, b)| async move { a + b })?;
    /// assert_eq!(sums.map(Result::unwrap).collect::<Vec<_>>().await, [3, 7]);
    /// // doublestarmap: a struct per item
    /// struct Job { url: &'static str, retries: u32 }
    /// let jobs = [Job { url: "a", retries: 1 }, Job { url: "b", retries: 2 }];
    /// let out = pool.map(jobs, 2, |Job { url, retries }| async move { format!("{url}x{retries}") })?;
    /// assert_eq!(out.map(Result::unwrap).collect::<Vec<_>>().await, ["ax1", "bx2"]);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn map<I, F, Fut>(
        &self,
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
        self.build_group().map(items, num_concurrent, f)
    }

    /// Like [`map`](Self::map) for futures that return a `Result`, stopping at the first
    /// failure: the group pulls no more items and cancels those running as soon as one item
    /// returns `Err` (or panics, times out, is cancelled or shed), and its [`TryGroup`]
    /// stream yields the outputs before it, then that error. Results come in input order;
    /// for completion order use [`build_group().unordered().try_map(..)`](GroupBuilder::try_map).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool, TryMapError};
    /// use futures::TryStreamExt;
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(8).build()?;
    /// let checked = pool.try_map(0..1000u32, 8, |n| async move {
    ///     if n == 10 { Err(format!("item {n} is bad")) } else { Ok(n) }
    /// })?;
    /// let err = checked.try_collect::<Vec<_>>().await.unwrap_err();
    /// assert_eq!(err.into_item().unwrap(), "item 10 is bad");
    /// pool.join().await?;
    /// assert!(pool.num_ended() < 1000, "the rest never started");
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn try_map<I, F, Fut, T, E>(
        &self,
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
        self.build_group().try_map(items, num_concurrent, f)
    }

    /// Like [`map`](Self::map), with results in completion order (asyncio-pool's `itermap`).
    /// For a [`Stream`](futures_core::Stream) input, use
    /// [`build_group().map_stream(..)`](GroupBuilder::map_stream) (add `.unordered()` for
    /// completion order).
    pub fn map_unordered<I, F, Fut>(
        &self,
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
        self.build_group().unordered().map(items, num_concurrent, f)
    }

    /// Cancels the tasks with these ids, atomically: if any id is unknown
    /// ([`PoolError::TaskNotFound`]), already ended ([`PoolError::AlreadyEnded`]) or already
    /// being cancelled ([`PoolError::AlreadyCancelled`]), nothing is cancelled and the error
    /// names the first such id.
    ///
    /// A queued task never starts; a running one is dropped at its next poll (its destructors
    /// run). Both run their callbacks and count as cancelled.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool, TaskId, PoolError};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let h = pool.spawn(std::future::pending::<()>()).await?;
    /// let err = pool.cancel([h.id(), TaskId::new(99)]).unwrap_err();
    /// assert!(matches!(err, PoolError::TaskNotFound { .. }));
    /// pool.cancel([h.id()])?;
    /// assert!(h.await.unwrap_err().is_cancelled());
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn cancel(&self, ids: impl IntoIterator<Item = TaskId>) -> Result<(), PoolError> {
        let ids: Vec<TaskId> = ids.into_iter().collect();
        self.core.cancel(&ids)
    }

    /// Cancels a group's queued and running tasks and stops it pulling new items; then
    /// forgets the group, so its name can be used again. [`PoolError::GroupNotFound`] if the
    /// pool does not know the name.
    pub fn cancel_group(&self, name: &str) -> Result<(), PoolError> {
        self.core.cancel_group_named(name)
    }

    /// Cancels every task and group, queued or running, and forgets all groups. The pool
    /// stays open.
    pub fn cancel_all(&self) {
        self.core.cancel_all();
    }

    /// Refuses new submissions until [`unlock`](Self::unlock); accepted work carries on.
    pub fn lock(&self) {
        self.core.set_locked(true);
    }

    /// Accepts submissions again (a closed pool stays closed).
    pub fn unlock(&self) {
        self.core.set_locked(false);
    }

    /// Whether new submissions are refused.
    pub fn is_locked(&self) -> bool {
        self.stats().locked
    }

    /// Closes the pool for good: new submissions fail with [`PoolError::Closed`]; accepted
    /// work carries on. Wakes [`until_closed`](Self::until_closed).
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether the pool is closed.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Sets the maximum number of tasks running at once (`None`: no limit). Growing starts
    /// queued work at once; shrinking lets running tasks finish and starts nothing new until
    /// the count is under the new limit. [`PoolError::InvalidLimit`] for `Some(0)`.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// # let pool = async_taskpool::TaskPool::new(async_taskpool::runtime::SmolSpawner::global());
    /// pool.set_limit(3)?;
    /// assert_eq!(pool.limit(), Some(3));
    /// pool.set_limit(None)?;
    /// assert!(pool.set_limit(0).is_err());
    /// # }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// ```
    pub fn set_limit(&self, limit: impl Into<Option<usize>>) -> Result<(), PoolError> {
        self.core.set_limit(limit.into())
    }

    /// Changes the loose tasks' weight in the pool's shares (see
    /// [`PoolBuilder::loose_weight`]). [`PoolError::InvalidLimit`] for 0.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// # let pool = async_taskpool::TaskPool::new(async_taskpool::runtime::SmolSpawner::global());
    /// pool.set_loose_weight(3)?;
    /// assert_eq!(pool.loose_weight(), 3);
    /// assert!(pool.set_loose_weight(0).is_err());
    /// # }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// ```
    pub fn set_loose_weight(&self, weight: u32) -> Result<(), PoolError> {
        self.core.set_loose_weight(weight)
    }

    /// The loose tasks' weight in the pool's shares.
    pub fn loose_weight(&self) -> u32 {
        self.core.loose_weight()
    }

    /// How many starts may pass waiting work over before it goes first (see
    /// [`PoolBuilder::ageing`]); the default follows the limit.
    pub fn ageing(&self) -> usize {
        usize::try_from(self.core.ageing()).unwrap_or(usize::MAX)
    }

    /// The maximum number of tasks running at once; `None` is unlimited.
    pub fn limit(&self) -> Option<usize> {
        self.core.read(|st| st.limit())
    }

    /// Changes the pool's rate limit while it runs (`None` lifts it; see
    /// [`PoolBuilder::rate_limit`]). The next starts are judged by the new quota at once:
    /// starts already made keep counting against it, so a stricter quota after a burst makes
    /// the next start wait longer, a looser one sooner. Lifted, everything that waited only
    /// for a token starts now, as far as the limit allows. A pool built without a quota
    /// gets one.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let slow = Quota::per_minute(1)?.burst(1)?;
    /// pool.set_rate_limit(Some(slow));
    /// assert_eq!(pool.rate_limit(), Some(slow));
    /// let group = pool.map(0..5, 5, |x| async move { x })?; // one a minute...
    /// pool.set_rate_limit(None); // ...no: the other four start now
    /// assert_eq!(group.join().await?.completed, 5);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn set_rate_limit(&self, quota: Option<Quota>) {
        self.core.set_pool_rate(quota);
    }

    /// The pool's rate limit in force: the quota it was built with
    /// ([`PoolBuilder::rate_limit`]) or last set ([`set_rate_limit`](Self::set_rate_limit)),
    /// or `None`.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{policy::Quota, runtime::SmolSpawner, TaskPool};
    /// let quota = Quota::per_second(100)?;
    /// let pool = TaskPool::builder(SmolSpawner::global()).rate_limit(quota).build()?;
    /// assert_eq!(pool.rate_limit(), Some(quota));
    /// assert_eq!(TaskPool::new(SmolSpawner::global()).rate_limit(), None);
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate_limit(&self) -> Option<Quota> {
        self.core.pool_rate()
    }

    /// Waits until nothing runs or waits: no task queued or running, no group with items left
    /// to pull. The pool stays open, so new work may arrive right after.
    ///
    /// Errors with [`PoolError::CalledFromOwnTask`] if called from one of the pool's own tasks
    /// (it would wait for itself). Cancel-safe.
    pub async fn join(&self) -> Result<(), PoolError> {
        self.core.wait_until("join", |st| st.is_idle()).await
    }

    /// Waits for callbacks still running, then forgets ended tasks: resets the ended,
    /// cancelled, panicked and timed-out counters and forgets finished groups (their names
    /// become free). Running work is untouched. Cancel-safe.
    pub async fn flush(&self) -> Result<(), PoolError> {
        self.core
            .wait_until("flush", |st| st.no_callbacks_running())
            .await?;
        self.core.forget_ended();
        Ok(())
    }

    /// Waits until the pool is closed (by [`close`](Self::close),
    /// [`gather_and_close`](Self::gather_and_close) or dropping its last handle).
    /// Cancel-safe: dropping it only stops waiting.
    pub async fn until_closed(&self) {
        // Waiting for a close never waits for the caller itself, so any task may call this.
        self.core
            .wait_until_from_anywhere(|st| st.gate() == crate::engine::core::Gate::Closed)
            .await;
    }

    /// Locks the pool, waits for everything it accepted (queued tasks and map items not yet
    /// pulled included) to end, then closes it for good.
    ///
    /// Errors with [`PoolError::CalledFromOwnTask`] from one of the pool's own tasks, and
    /// then leaves the pool as it was (neither locked nor closed).
    /// Cancel-safe: if dropped midway the pool stays locked but not closed.
    pub async fn gather_and_close(&self) -> Result<(), PoolError> {
        // Refuse before locking: a refused call must not leave the pool refusing work.
        self.core.refuse_own_task("gather_and_close")?;
        self.lock();
        self.join().await?;
        self.core.close();
        Ok(())
    }

    /// Tasks whose future is running: [`stats().running`](PoolStats::running).
    #[doc(alias = "running")]
    pub fn num_running(&self) -> usize {
        self.core.read(|st| st.running())
    }

    /// Tasks waiting for room that have ids: [`stats().queued`](PoolStats::queued). Items
    /// of `map`/`apply` groups not yet pulled are in [`stats().backlog`](PoolStats::backlog).
    #[doc(alias = "queued")]
    pub fn num_queued(&self) -> usize {
        self.core.read(|st| st.queued() as usize)
    }

    /// Tasks ended since the last [`flush`](Self::flush), whatever the outcome:
    /// [`stats().ended`](PoolStats::ended). The outcomes are counted in [`stats`](Self::stats).
    #[doc(alias = "ended")]
    pub fn num_ended(&self) -> u64 {
        self.core.read(|st| st.ended().ended)
    }

    /// Tasks cancelled since the last flush (included in `num_ended`):
    /// [`stats().cancelled`](PoolStats::cancelled).
    #[doc(alias = "cancelled")]
    pub fn num_cancelled(&self) -> u64 {
        self.core.read(|st| st.ended().cancelled)
    }

    /// Whether the limit is reached (a new task would wait): [`stats().is_full`](PoolStats::is_full).
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        self.core.read(|st| !st.has_room())
    }

    /// The live tasks (queued, running or ending), by id, with names and groups. For a pool
    /// with many tasks, page through them with [`tasks_from`](Self::tasks_from).
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.core.tasks(TaskId::new(0), usize::MAX)
    }

    /// At most `max` live tasks with ids from `first` on, ascending: a page of
    /// [`tasks`](Self::tasks). The next page starts after the last id returned.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskId, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(1).build()?;
    /// for _ in 0..5 { drop(pool.spawn_queued(std::future::pending::<()>())?); }
    /// let page = pool.tasks_from(TaskId::new(0), 2);
    /// assert_eq!(page.iter().map(|t| t.id.get()).collect::<Vec<_>>(), [0, 1]);
    /// let next = pool.tasks_from(TaskId::new(page[1].id.get() + 1), 2);
    /// assert_eq!(next[0].id, TaskId::new(2));
    /// # pool.cancel_all();
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn tasks_from(&self, first: TaskId, max: usize) -> Vec<TaskInfo> {
        self.core.tasks(first, max)
    }

    /// The ids of the live tasks of the named groups. [`PoolError::GroupNotFound`] for an
    /// unknown name.
    pub fn group_ids<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<BTreeSet<TaskId>, PoolError> {
        self.core.group_ids_named(names)
    }

    /// Whether the pool knows a group of this name.
    pub fn has_group(&self, name: &str) -> bool {
        self.core.read(|st| st.group_key(name).is_some())
    }

    /// The named group's progress (items done of total, where the input knows its length)
    /// and, if the pool [tracks durations](PoolBuilder::track_durations), its items'
    /// queue-wait and run-time percentiles. [`PoolError::GroupNotFound`] for a name the pool
    /// does not know (never used, cancelled, or flushed).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).track_durations(true).build()?;
    /// let group = pool.build_group().name("resize").map(0..10, 2, |i| async move { i })?;
    /// group.join().await?;
    /// let stats = pool.group_stats("resize")?;
    /// assert_eq!((stats.done, stats.total), (10, Some(10)));
    /// assert_eq!(stats.run_time.expect("tracked").count, 10);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn group_stats(&self, name: &str) -> Result<GroupStats, PoolError> {
        self.core.group_stats(name)
    }

    /// A consistent snapshot of everything above, serializable with serde.
    pub fn stats(&self) -> PoolStats {
        self.core.stats()
    }
}

impl fmt::Debug for TaskPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskPool")
            .field("name", &&*self.core.name)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Configures a [`TaskPool`]: name, limit, what dropping the last handle does. Made by
/// [`TaskPool::builder`].
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{runtime::SmolSpawner, TaskPool};
/// let pool = TaskPool::builder(SmolSpawner::global())
///     .name("crawler")
///     .limit(8)
///     .cancel_on_drop(true)
///     .build()?;
/// assert_eq!(pool.name(), "crawler");
/// # }
/// # Ok::<_, async_taskpool::PoolError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    spawner: Arc<dyn Spawner>,
    name: Option<String>,
    limit: Option<usize>,
    cancel_on_drop: bool,
    track_durations: bool,
    /// Whether it reports through the `metrics` feature (a `BackgroundTask`'s own pool does
    /// not: one series per task would be unbounded).
    metrics: bool,
    loose_weight: u32,
    ageing: Option<usize>,
    queue_wait: Option<Duration>,
    rate: Option<Quota>,
    /// Its adaptive limit (`PoolBuilder::adaptive_limit`, in `adaptive.rs`).
    pub(crate) adaptive: Option<Box<dyn crate::policy::Limiter>>,
}

impl PoolBuilder {
    /// No metrics for this pool (the `metrics` feature).
    pub(crate) fn without_metrics(mut self) -> Self {
        self.metrics = false;
        self
    }

    /// The pool's name, used in logs and task names (default `TaskPool-{k}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// At most `limit` tasks run at once (default: no limit). Change it later with
    /// [`TaskPool::set_limit`]. Zero is refused by [`build`](Self::build).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// When the last `TaskPool` handle is dropped, cancel everything the pool still runs or
    /// queues, instead of the default of letting it finish.
    pub fn cancel_on_drop(mut self, yes: bool) -> Self {
        self.cancel_on_drop = yes;
        self
    }

    /// The loose tasks' weight in the pool's shares (default 1, at least 1): loose tasks
    /// (`spawn`, `spawn_queued`, `exec`) share the pool with groups of their priority as one
    /// more group of this weight (see [`GroupBuilder::weight`]). Change it later with
    /// [`TaskPool::set_loose_weight`].
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::builder(SmolSpawner::global()).limit(8).loose_weight(2).build()?;
    /// assert_eq!(pool.loose_weight(), 2);
    /// # }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// ```
    pub fn loose_weight(mut self, weight: u32) -> Self {
        self.loose_weight = weight;
        self
    }

    /// How many starts may pass waiting work over before it goes first, whatever its
    /// priority: the bound of the pool's ageing. Default: four times the pool's limit, at
    /// least 16 (about four generations of running tasks).
    ///
    /// Work waits in lanes: each group is one, and the loose tasks of each priority are one
    /// (in submission order). A freed slot goes to the highest priority lane, unless a lane
    /// was passed over `ageing` times while it waited: such a lane goes first (the one passed
    /// over most, first), once, then counts again from zero. So **a lane waiting for a slot
    /// is passed over at most `ageing + L - 1` times**, `L` being the number of lanes
    /// waiting: a queued task whose lane has `k` tasks ahead of it starts within
    /// `(k + 1) (ageing + L - 1)` starts of other lanes, however much higher priority work
    /// keeps arriving. Zero is refused by [`build`](Self::build).
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::builder(SmolSpawner::global()).limit(10).build()?;
    /// assert_eq!(pool.ageing(), 40);
    /// let strict = TaskPool::builder(SmolSpawner::global()).limit(10).ageing(1000).build()?;
    /// assert_eq!(strict.ageing(), 1000);
    /// # }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// ```
    pub fn ageing(mut self, starts: usize) -> Self {
        self.ageing = Some(starts);
        self
    }

    /// The longest work may wait for a slot before it is shed, for every task and group that
    /// sets none ([`TaskBuilder::max_queue_wait`], [`GroupBuilder::max_queue_wait`]): work
    /// that could not start in time ends as [`TaskError::Shed`](crate::TaskError::Shed),
    /// counted in [`PoolStats::shed`](crate::PoolStats::shed), instead of starting late.
    /// Default: none (work waits as long as it takes). `SimpleTaskPool` copies are never shed.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use std::time::Duration;
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current())
    ///     .limit(1)
    ///     .max_queue_wait(Duration::from_millis(10))
    ///     .build()?;
    /// let (tx, rx) = futures::channel::oneshot::channel::<()>();
    /// let first = pool.spawn_queued(async move { let _ = rx.await; })?;
    /// let second = pool.spawn_queued(async {})?;
    /// assert!(second.await.unwrap_err().is_shed());
    /// drop(tx);
    /// first.await.unwrap();
    /// assert_eq!(pool.stats().shed, 1);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn max_queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = Some(wait);
        self
    }

    /// A rate limit on the whole pool: at most `quota`'s starts (GCRA: on average one per
    /// [`interval`](Quota::interval), with bursts of up to [`max_burst`](Quota::max_burst)
    /// after a quiet spell), of loose tasks and groups' items together, whatever the limit
    /// allows. Independent of the limit: work starts when it has both a slot and a token. A
    /// group's own quota ([`GroupBuilder::rate_limit`]) applies on top: its items take a
    /// token of each. The quota counts starts, not ends (each attempt of a retried task is a
    /// start). Change or lift it later with [`TaskPool::set_rate_limit`].
    ///
    /// Waiting for a token holds no slot: while no token is due, no work gets a slot (a
    /// group's worker gives its slot back rather than hold it), and at the instant one is due
    /// a timer on the pool's runtime gives the free slots out again (so it follows a paused
    /// tokio clock in tests). Work waits as it waits for room: `spawn().await` waits,
    /// `spawn_queued` queues, `max_queue_wait` sheds work that waits too long, and
    /// `try_spawn` refuses with [`PoolError::RateLimited`] (saying when the next token is
    /// due). A task's nested `exec` (called from one of the pool's own tasks) takes no token:
    /// it runs in its caller's slot, as part of the caller's work.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskPool};
    /// use std::time::{Duration, Instant};
    ///
    /// // 20 starts per second, no burst: one every 50 ms, loose tasks and items alike.
    /// let quota = Quota::per_second(20)?.burst(1)?;
    /// let pool = TaskPool::builder(TokioSpawner::current()).rate_limit(quota).build()?;
    /// let t0 = Instant::now();
    /// let task = pool.spawn(async {}).await?; // starts at 0 ms
    /// let group = pool.map(0..3, 3, |x| async move { x })?; // 50, 100, 150 ms
    /// task.await?;
    /// assert_eq!(group.join().await?.completed, 3);
    /// assert!(t0.elapsed() >= Duration::from_millis(150));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn rate_limit(mut self, quota: Quota) -> Self {
        self.rate = Some(quota);
        self
    }

    /// Tracks how long each task waits for a slot and runs: [`TaskInfo::queue_wait`] and
    /// [`TaskInfo::run_time`] in [`TaskPool::tasks`], percentiles in [`PoolStats`]
    /// (`queue_wait`, `run_time`) and per group in [`TaskPool::group_stats`], and, with the
    /// `metrics` feature, the `taskpool_queue_wait_seconds` and `taskpool_run_seconds`
    /// histograms. Off by default: it reads the clock two or three times per task (about
    /// 40 ns each on a typical server, a quarter of a `map` item's own cost) and keeps two
    /// histograms of up to ~26 KB per pool and per group.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).track_durations(true).build()?;
    /// pool.exec(async {}).await?;
    /// let run_time = pool.stats().run_time.expect("tracked");
    /// assert_eq!(run_time.count, 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn track_durations(mut self, yes: bool) -> Self {
        self.track_durations = yes;
        self
    }

    /// Builds the pool. Fails only with [`PoolError::InvalidLimit`] for a limit, weight or
    /// ageing of 0.
    pub fn build(self) -> Result<TaskPool, PoolError> {
        for (what, value) in [
            ("pool limit", self.limit),
            ("weight", Some(self.loose_weight as usize)),
            ("ageing", self.ageing),
        ] {
            if value == Some(0) {
                return Err(PoolError::InvalidLimit { what, value: 0 });
            }
        }
        let core = Core::new(
            self.spawner,
            self.name,
            self.limit,
            self.track_durations,
            self.metrics,
        );
        core.set_loose_weight(self.loose_weight)?;
        core.set_ageing(self.ageing.map(|a| a as u64));
        if let Some(wait) = self.queue_wait {
            core.set_queue_wait(wait);
        }
        if let Some(limiter) = self.adaptive {
            core.adaptive.install(&core, limiter);
        }
        if let Some(quota) = self.rate {
            core.set_pool_rate(Some(quota));
        }
        let owner = Arc::new(Owner {
            core: core.clone(),
            cancel_on_drop: self.cancel_on_drop,
        });
        Ok(TaskPool {
            core,
            _owner: owner,
        })
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("runtime", &self.spawner.runtime_name())
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("cancel_on_drop", &self.cancel_on_drop)
            .field("track_durations", &self.track_durations)
            .field("loose_weight", &self.loose_weight)
            .field("ageing", &self.ageing)
            .field("max_queue_wait", &self.queue_wait)
            .field("rate_limit", &self.rate)
            .field("adaptive_limit", &self.adaptive)
            .finish()
    }
}

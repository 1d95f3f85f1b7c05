//! `TaskPool`: heterogeneous tasks with a limit, groups, cancellation and introspection.

use crate::builder::{GroupBuilder, PoolBuilder, TaskBuilder};
use crate::group::Group;
use crate::inner::Inner;
use crate::stats::{PoolStats, TaskInfo};
use crate::{ExecError, PoolError, TaskHandle, TaskId, TrySpawnError};
use async_taskpool_runtime::Spawner;
use futures_core::Stream;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A pool of async tasks of any output type, with a resizable concurrency limit.
///
/// `TaskPool` is a cheap handle: clone it into tasks, other threads, or a control server.
///
/// # Guarantees
/// - At most [`limit`](Self::limit) tasks run at once; work that does not fit waits in one FIFO
///   queue and starts in submission order as room frees. Nothing waiting costs a runtime task.
/// - Up to 32 runtime tasks whose tasks ended stay parked, holding no slot, for tasks that
///   start at once; they end when the pool is closed (dropping its last handle closes it).
/// - Every submitted task gets a [`TaskId`] and ends exactly once: completed, cancelled, timed
///   out or panicked. Its slot is released and its callbacks run whichever way it ends, even if
///   it is cancelled before it first runs or its runtime drops it.
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
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// Shared by user-facing clones only; its drop is "the last handle went away".
struct Owner {
    inner: Arc<Inner>,
    cancel_on_drop: bool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.inner.close();
        if self.cancel_on_drop {
            self.inner.cancel_all();
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
        Self::from_inner(Arc::new(Inner::new(Arc::new(spawner), None, None)), false)
    }

    /// A builder for a pool with a name, a limit or other options.
    pub fn builder(spawner: impl Spawner) -> PoolBuilder {
        PoolBuilder::new(Arc::new(spawner))
    }

    pub(crate) fn from_inner(inner: Arc<Inner>, cancel_on_drop: bool) -> Self {
        let owner = Arc::new(Owner {
            inner: inner.clone(),
            cancel_on_drop,
        });
        Self {
            inner,
            _owner: owner,
        }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Per-task options (name, timeout, callbacks), then one of the spawn methods.
    pub fn build_task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self)
    }

    /// Group options (name, per-item timeout and callbacks), then `apply` or a `map` method.
    pub fn build_group(&self) -> GroupBuilder<'_> {
        GroupBuilder::new(self)
    }

    /// Waits until the task fits under the limit (behind anything already queued), then
    /// starts it and returns its handle.
    ///
    /// Cancel-safe: dropping this future before it returns withdraws the task, which then
    /// counts as cancelled and never runs.
    pub async fn spawn<F>(&self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.build_task().spawn(fut).await
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
        self.build_task().spawn_queued(fut)
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
        self.build_task().try_spawn(fut)
    }

    /// Runs the task in the pool (waiting for room) and returns its output.
    ///
    /// Dropping this future cancels the task.
    pub async fn exec<F>(&self, fut: F) -> Result<F::Output, ExecError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.build_task().exec(fut).await
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

    /// Runs `f(item)` for every item, pulled lazily, with at most `num_concurrent` of them at
    /// once (and never over the pool's limit). Returns at once with a [`Group`] whose results
    /// come in input order (asyncio-pool's `map`); see [`map_unordered`](Self::map_unordered)
    /// for completion order. `num_concurrent` must be at least 1; pass `usize::MAX` for no
    /// group limit.
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
        num_concurrent: usize,
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

    /// Like [`map`](Self::map), with results in completion order (asyncio-pool's `itermap`).
    pub fn map_unordered<I, F, Fut>(
        &self,
        items: I,
        num_concurrent: usize,
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
        self.build_group().map_unordered(items, num_concurrent, f)
    }

    /// Like [`map`](Self::map), pulling items from a [`Stream`]. While the stream has no item
    /// ready, one worker waits on it without holding a pool slot.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let (tx, rx) = futures::channel::mpsc::unbounded();
    /// let doubled = pool.map_stream(rx, 4, |x: u32| async move { x * 2 })?;
    /// tx.unbounded_send(1).unwrap();
    /// tx.unbounded_send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(doubled.map(Result::unwrap).collect::<Vec<_>>().await, [2, 4]);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn map_stream<S, F, Fut>(
        &self,
        items: S,
        num_concurrent: usize,
        f: F,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.build_group().map_stream(items, num_concurrent, f)
    }

    /// Like [`map_stream`](Self::map_stream), with results in completion order.
    pub fn map_stream_unordered<S, F, Fut>(
        &self,
        items: S,
        num_concurrent: usize,
        f: F,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.build_group()
            .map_stream_unordered(items, num_concurrent, f)
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
        self.inner.cancel(&ids)
    }

    /// Cancels a group's queued and running tasks and stops it pulling new items; then
    /// forgets the group, so its name can be used again. [`PoolError::GroupNotFound`] if the
    /// pool does not know the name.
    pub fn cancel_group(&self, name: &str) -> Result<(), PoolError> {
        self.inner.cancel_group(name)
    }

    /// Cancels every task and group, queued or running, and forgets all groups. The pool
    /// stays open.
    pub fn cancel_all(&self) {
        self.inner.cancel_all();
    }

    /// Refuses new submissions until [`unlock`](Self::unlock); accepted work carries on.
    pub fn lock(&self) {
        self.inner.set_locked(true);
    }

    /// Accepts submissions again (a closed pool stays closed).
    pub fn unlock(&self) {
        if !self.is_closed() {
            self.inner.set_locked(false);
        }
    }

    /// Whether new submissions are refused.
    pub fn is_locked(&self) -> bool {
        self.inner.with_state(|st| st.locked())
    }

    /// Closes the pool for good: new submissions fail with [`PoolError::Closed`]; accepted
    /// work carries on. Wakes [`until_closed`](Self::until_closed).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the pool is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.with_state(|st| st.closed())
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
        self.inner.set_limit(limit.into())
    }

    /// The maximum number of tasks running at once; `None` is unlimited.
    pub fn limit(&self) -> Option<usize> {
        self.inner.with_state(|st| st.limit())
    }

    /// Waits until nothing runs or waits: no task queued or running, no group with items left
    /// to pull. The pool stays open, so new work may arrive right after.
    ///
    /// Errors with [`PoolError::CalledFromOwnTask`] if called from one of the pool's own tasks
    /// (it would wait for itself). Cancel-safe.
    pub async fn join(&self) -> Result<(), PoolError> {
        self.inner.wait_until("join", Inner::is_idle).await
    }

    /// Waits for callbacks still running, then forgets ended tasks: resets the ended,
    /// cancelled, panicked and timed-out counters and forgets finished groups (their names
    /// become free). Running work is untouched. Cancel-safe.
    pub async fn flush(&self) -> Result<(), PoolError> {
        self.inner
            .wait_until("flush", Inner::no_callbacks_running)
            .await?;
        self.inner.forget_ended();
        Ok(())
    }

    /// Waits until the pool is closed (by [`close`](Self::close),
    /// [`gather_and_close`](Self::gather_and_close) or dropping its last handle).
    /// Cancel-safe: dropping it only stops waiting.
    pub async fn until_closed(&self) {
        // Waiting for a close never waits for the caller itself, so any task may call this.
        self.inner
            .wait_until_from_anywhere(Inner::is_closed_state)
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
        self.inner.refuse_own_task("gather_and_close")?;
        self.lock();
        self.join().await?;
        self.inner.close();
        Ok(())
    }

    /// Tasks whose future is running.
    pub fn num_running(&self) -> usize {
        self.inner.with_state(|st| st.running())
    }

    /// Tasks waiting for room (map items not yet pulled are not counted).
    pub fn num_queued(&self) -> usize {
        self.inner.with_state(|st| st.queued())
    }

    /// Tasks ended since the last [`flush`](Self::flush), whatever the outcome.
    pub fn num_ended(&self) -> u64 {
        self.inner.with_state(|st| st.counters().ended)
    }

    /// Tasks cancelled since the last flush (included in `num_ended`).
    pub fn num_cancelled(&self) -> u64 {
        self.inner.with_state(|st| st.counters().cancelled)
    }

    /// Tasks that panicked since the last flush (included in `num_ended`).
    pub fn num_panicked(&self) -> u64 {
        self.inner.with_state(|st| st.counters().panicked)
    }

    /// Tasks that timed out since the last flush (included in `num_ended`).
    pub fn num_timed_out(&self) -> u64 {
        self.inner.with_state(|st| st.counters().timed_out)
    }

    /// Whether the limit is reached (a new task would wait).
    pub fn is_full(&self) -> bool {
        self.inner.with_state(|st| st.is_full())
    }

    /// The live tasks (queued, running or ending), by id, with names and groups.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.inner.tasks()
    }

    /// The ids of the live tasks of the named groups. [`PoolError::GroupNotFound`] for an
    /// unknown name.
    pub fn group_ids<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<BTreeSet<TaskId>, PoolError> {
        self.inner.with_state(|st| {
            let mut out = BTreeSet::new();
            for name in names {
                if !st.has_group(name) {
                    return Err(PoolError::GroupNotFound {
                        pool: self.name().to_owned(),
                        name: name.to_owned(),
                    });
                }
                out.extend(Inner::ids_in_group(st, name));
            }
            Ok(out)
        })
    }

    /// Whether the pool knows a group of this name.
    pub fn has_group(&self, name: &str) -> bool {
        self.inner.group_exists(name)
    }

    /// A consistent snapshot of everything above, serializable with serde.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }

    pub(crate) fn cancel_quietly(&self, id: TaskId) {
        self.inner.cancel_quietly(id);
    }
}

impl fmt::Debug for TaskPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskPool")
            .field("name", &&*self.inner.name)
            .field("stats", &self.stats())
            .finish()
    }
}

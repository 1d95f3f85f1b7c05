//! `SimpleTaskPool`: one work factory, started and stopped by count.

use crate::engine::callbacks::{callback, Callbacks, TaskOptions};
use crate::engine::core::GroupKind;
use crate::engine::item_retry::ItemRetry;
use crate::engine::map::{GroupInput, GroupSpec};
use crate::error::PoolError;
use crate::group::Group;
use crate::id::TaskId;
use crate::policy::Quota;
use crate::policy::RetryPolicy;
use crate::pool::{PoolBuilder, TaskPool};
use crate::stats::{PoolStats, TaskInfo};
use async_taskpool_runtime::Spawner;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

type JobFactory<T> = dyn Fn() -> Pin<Box<dyn Future<Output = T> + Send>> + Send + Sync;

/// A pool that runs copies of one job, started and stopped by count (asyncio-taskpool's
/// `SimpleTaskPool`): typically N identical workers consuming a queue.
///
/// It is a thin layer over [`TaskPool`]: ids, limits, locking, callbacks and waiting behave
/// exactly as there. Its tasks get ids when [`start`](Self::start) is called, so
/// [`stop`](Self::stop) can pick the newest, queued ones first.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, SimpleTaskPool};
///
/// let workers = SimpleTaskPool::builder(TokioSpawner::current(), || async {
///     loop { tokio::task::yield_now().await } // a worker that runs until stopped
/// })
/// .func_name("consumer")
/// .build()?;
/// workers.start(3)?;
/// assert_eq!(workers.num_running() + workers.num_queued(), 3);
/// let stopped = workers.stop(2);                  // the two newest
/// assert_eq!(stopped.len(), 2);
/// workers.stop_all();
/// workers.gather_and_close().await?;
/// assert_eq!(workers.num_cancelled(), 3);
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
pub struct SimpleTaskPool<T = ()> {
    pool: TaskPool,
    factory: Arc<JobFactory<T>>,
    func_name: Arc<str>,
    options: TaskOptions,
    retry: Option<RetryPolicy<T>>,
}

impl<T> Clone for SimpleTaskPool<T> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            factory: self.factory.clone(),
            func_name: self.func_name.clone(),
            options: self.options.clone(),
            retry: self.retry.clone(),
        }
    }
}

/// Configures a [`SimpleTaskPool`]. Made by [`SimpleTaskPool::builder`].
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{runtime::SmolSpawner, SimpleTaskPool};
/// let pool = SimpleTaskPool::builder(SmolSpawner::global(), || async {})
///     .name("workers")
///     .limit(4)
///     .func_name("work")
///     .build()?;
/// assert_eq!(pool.func_name(), "work");
/// # }
/// # Ok::<_, async_taskpool::PoolError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct SimpleTaskPoolBuilder<T> {
    pool: PoolBuilder,
    factory: Arc<JobFactory<T>>,
    func_name: Option<String>,
    timeout: Option<Duration>,
    callbacks: Callbacks,
    retry: Option<RetryPolicy<T>>,
}

impl<T> fmt::Debug for SimpleTaskPoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleTaskPoolBuilder")
            .field("pool", &self.pool)
            .field("func_name", &self.func_name)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> SimpleTaskPoolBuilder<T> {
    /// The pool's name (default `TaskPool-{k}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.pool = self.pool.name(name);
        self
    }

    /// At most `limit` tasks at once (default: no limit).
    pub fn limit(mut self, limit: usize) -> Self {
        self.pool = self.pool.limit(limit);
        self
    }

    /// Tracks queue waits and run times: see [`PoolBuilder::track_durations`].
    pub fn track_durations(mut self, yes: bool) -> Self {
        self.pool = self.pool.track_durations(yes);
        self
    }

    /// At most `quota`'s task starts (GCRA), whatever the limit allows: see
    /// [`PoolBuilder::rate_limit`]. Change it later with [`SimpleTaskPool::set_rate_limit`].
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Quota, runtime::TokioSpawner, SimpleTaskPool};
    /// use std::time::{Duration, Instant};
    ///
    /// let quota = Quota::per_second(20)?.burst(1)?; // one start every 50 ms
    /// let pool = SimpleTaskPool::builder(TokioSpawner::current(), || async {})
    ///     .rate_limit(quota)
    ///     .build()?;
    /// let t0 = Instant::now();
    /// pool.start(3)?.join().await?; // starts at 0, 50 and 100 ms
    /// assert!(t0.elapsed() >= Duration::from_millis(100));
    /// assert_eq!(pool.rate_limit(), Some(quota));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn rate_limit(mut self, quota: Quota) -> Self {
        self.pool = self.pool.rate_limit(quota);
        self
    }

    /// The name reported by [`SimpleTaskPool::func_name`] (default `"work"`).
    pub fn func_name(mut self, name: impl Into<String>) -> Self {
        self.func_name = Some(name.into());
        self
    }

    /// A run timeout for each task (queue time excluded).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs `f(id)` when a task ends, however it ends.
    pub fn on_end<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks.on_end = Some(callback(f));
        self
    }

    /// Runs `f(id)` when a task is cancelled, before `on_end`.
    pub fn on_cancel<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks.on_cancel = Some(callback(f));
        self
    }

    /// Retries the pool's tasks per `policy`: a task whose attempt fails is run again from
    /// the job's factory, under the same id, after a backoff that holds no slot. The
    /// guarantees are those of a [retried group](crate::RetryingGroupBuilder): callbacks
    /// once, at the final outcome; [`stop`](SimpleTaskPool::stop) and
    /// [`stop_all`](SimpleTaskPool::stop_all) end a task in its backoff at once.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, SimpleTaskPool};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(3)
    ///     .backoff(Duration::ZERO, Duration::ZERO)
    ///     .retry_errors()
    ///     .build()?;
    /// let pool = SimpleTaskPool::builder(TokioSpawner::current(), move || {
    ///     let n = c.fetch_add(1, Ordering::SeqCst);
    ///     async move { if n == 0 { Err("flaky") } else { Ok(n) } }
    /// })
    /// .retry(policy)
    /// .build()?;
    /// assert_eq!(pool.start(1)?.join().await?.completed, 1);
    /// assert_eq!(calls.load(Ordering::SeqCst), 2); // one retry
    /// assert_eq!(pool.stats().retried, 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn retry(mut self, policy: RetryPolicy<T>) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Builds the pool; fails only for a limit of 0.
    pub fn build(self) -> Result<SimpleTaskPool<T>, PoolError> {
        Ok(SimpleTaskPool {
            pool: self.pool.build()?,
            factory: self.factory,
            func_name: self.func_name.as_deref().unwrap_or("work").into(),
            options: TaskOptions::new(self.timeout, self.callbacks),
            retry: self.retry,
        })
    }
}

impl<T: Send + 'static> SimpleTaskPool<T> {
    /// A pool without a limit running copies of `factory()`.
    pub fn new<F, Fut>(spawner: impl Spawner, factory: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        Self::builder(spawner, factory)
            .build()
            .expect("no limit set, so nothing to refuse")
    }

    /// A builder for a pool with a name, a limit, a timeout or callbacks.
    pub fn builder<F, Fut>(spawner: impl Spawner, factory: F) -> SimpleTaskPoolBuilder<T>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        SimpleTaskPoolBuilder {
            pool: TaskPool::builder(spawner),
            factory: Arc::new(move || Box::pin(factory())),
            func_name: None,
            timeout: None,
            callbacks: Callbacks::default(),
            retry: None,
        }
    }

    /// The underlying [`TaskPool`], for everything not repeated here.
    pub fn as_task_pool(&self) -> &TaskPool {
        &self.pool
    }

    /// The job's name, for operators.
    pub fn func_name(&self) -> &str {
        &self.func_name
    }

    /// Submits `num` copies of the job as one group (`start-group-K`) and returns at once; they
    /// start as room frees. All are accepted or none (if the pool is locked or closed). Each
    /// gets its id now (so [`stop`](Self::stop) can pick the newest), but nothing is made for
    /// it until it starts: `start(n)` costs the same for any `n`, and the job's factory is
    /// called as each copy starts.
    pub fn start(&self, num: usize) -> Result<Group<T>, PoolError> {
        let factory = self.factory.clone();
        let spec = GroupSpec {
            kind: GroupKind::Start,
            name: None,
            num_concurrent: usize::MAX,
            ordered: false,
            options: self.options.clone(),
            priority: 0,
            weight: 1,
            queue_wait: None,
            rate: None,
        };
        let input = GroupInput::Reserved {
            count: num as u64,
            item: || (),
        };
        let core = self.pool.core();
        let retry = self.retry.clone().map(ItemRetry::new);
        let g = core.launch_group(spec, input, move |()| factory(), None, retry)?;
        Ok(Group::new(g, core.clone()))
    }

    /// Cancels the `num` newest tasks, queued ones before running ones; returns their ids,
    /// newest first. Stopping more than exist stops all. Concurrent calls never stop the same
    /// task.
    pub fn stop(&self, num: usize) -> Vec<TaskId> {
        self.pool.core().stop_newest(num)
    }

    /// Cancels every task; returns their ids, newest first.
    pub fn stop_all(&self) -> Vec<TaskId> {
        self.stop(usize::MAX)
    }

    /// Tasks whose future is running.
    pub fn num_running(&self) -> usize {
        self.pool.num_running()
    }

    /// Tasks waiting for room.
    pub fn num_queued(&self) -> usize {
        self.pool.num_queued()
    }

    /// Tasks ended since the last flush.
    pub fn num_ended(&self) -> u64 {
        self.pool.num_ended()
    }

    /// Tasks cancelled since the last flush.
    pub fn num_cancelled(&self) -> u64 {
        self.pool.num_cancelled()
    }

    /// Whether the limit is reached.
    pub fn is_full(&self) -> bool {
        self.pool.is_full()
    }

    /// See [`TaskPool::cancel`].
    pub fn cancel(&self, ids: impl IntoIterator<Item = TaskId>) -> Result<(), PoolError> {
        self.pool.cancel(ids)
    }

    /// See [`TaskPool::cancel_group`].
    pub fn cancel_group(&self, name: &str) -> Result<(), PoolError> {
        self.pool.cancel_group(name)
    }

    /// See [`TaskPool::group_ids`].
    pub fn group_ids<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<BTreeSet<TaskId>, PoolError> {
        self.pool.group_ids(names)
    }

    /// See [`TaskPool::lock`].
    pub fn lock(&self) {
        self.pool.lock();
    }

    /// See [`TaskPool::unlock`].
    pub fn unlock(&self) {
        self.pool.unlock();
    }

    /// See [`TaskPool::is_locked`].
    pub fn is_locked(&self) -> bool {
        self.pool.is_locked()
    }

    /// See [`TaskPool::close`].
    pub fn close(&self) {
        self.pool.close();
    }

    /// See [`TaskPool::is_closed`].
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// See [`TaskPool::set_limit`].
    pub fn set_limit(&self, limit: impl Into<Option<usize>>) -> Result<(), PoolError> {
        self.pool.set_limit(limit)
    }

    /// See [`TaskPool::limit`].
    pub fn limit(&self) -> Option<usize> {
        self.pool.limit()
    }

    /// See [`TaskPool::set_rate_limit`].
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{policy::Quota, runtime::SmolSpawner, SimpleTaskPool};
    /// let pool = SimpleTaskPool::new(SmolSpawner::global(), || async {});
    /// let quota = Quota::per_second(5)?;
    /// pool.set_rate_limit(Some(quota));
    /// assert_eq!(pool.rate_limit(), Some(quota));
    /// pool.set_rate_limit(None);
    /// assert_eq!(pool.rate_limit(), None);
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_rate_limit(&self, quota: Option<Quota>) {
        self.pool.set_rate_limit(quota);
    }

    /// See [`TaskPool::rate_limit`].
    pub fn rate_limit(&self) -> Option<Quota> {
        self.pool.rate_limit()
    }

    /// See [`TaskPool::join`].
    pub async fn join(&self) -> Result<(), PoolError> {
        self.pool.join().await
    }

    /// See [`TaskPool::flush`].
    pub async fn flush(&self) -> Result<(), PoolError> {
        self.pool.flush().await
    }

    /// See [`TaskPool::until_closed`].
    pub async fn until_closed(&self) {
        self.pool.until_closed().await;
    }

    /// See [`TaskPool::gather_and_close`].
    pub async fn gather_and_close(&self) -> Result<(), PoolError> {
        self.pool.gather_and_close().await
    }

    /// See [`TaskPool::tasks`].
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.pool.tasks()
    }

    /// See [`TaskPool::stats`].
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }
}

impl<T> fmt::Debug for SimpleTaskPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleTaskPool")
            .field("func_name", &&*self.func_name)
            .field("pool", &self.pool)
            .finish()
    }
}

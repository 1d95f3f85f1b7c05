//! [`RetryingTaskBuilder`]: a loose task run again, per a [`RetryPolicy`], from a factory.

use crate::builder::{spawn, spawn_queued, try_spawn, TaskBuilder};
use crate::engine::core::Core;
use crate::engine::retry::Retry;
use crate::engine::task::TaskSpec;
use crate::error::{PoolError, TrySpawnError};
use crate::handle::TaskHandle;
use crate::policy::RetryPolicy;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A task that runs again when an attempt fails, per its [`RetryPolicy`]: made by
/// [`TaskBuilder::retry`]. Each attempt's future comes from a factory (`FnMut() -> Fut`),
/// called once when the task is submitted and once before each retry.
///
/// What a retried task guarantees:
/// - **One task, one id.** Every attempt runs under the same [`TaskId`](crate::TaskId); the
///   handle resolves once, with the final outcome; `on_cancel` and `on_end` run once, at the
///   final outcome (not between attempts). [`TaskInfo::attempt`](crate::TaskInfo::attempt)
///   says which attempt it is on.
/// - **The wait holds no slot.** Between attempts the task is in
///   [`TaskState::Backoff`](crate::TaskState::Backoff): its slot went to other work the
///   moment its attempt ended; it waits on the pool's runtime timer (a paused tokio clock
///   works), then queues again in its lane (its priority kept, behind the work already
///   queued there) and starts like any queued task. It stays visible in
///   [`TaskPool::tasks`](crate::TaskPool::tasks), [`join`](crate::TaskPool::join) waits for
///   it, and cancelling it (by id, its handle, `cancel_all`) ends it as cancelled at once,
///   with no further attempt.
/// - **What is retried** is the policy's call (nothing by default; panics and run timeouts
///   only if it opted in); cancelled and shed attempts are final. The predicate and the
///   factory run with no pool lock held; a panicking attempt is isolated as usual. A factory
///   that panics before a retry ends the task with that panic ([`TaskError::Panicked`]).
/// - **The final error says how many attempts ran**: a task that fails after more than one
///   attempt ends with [`TaskError::Retried`] (`attempts`, and the last attempt's error;
///   `is_panic()` and the other `is_` methods look through it). An attempt the policy would
///   retry but that was the last allowed ends the task with its own outcome: an `Ok` output
///   stays `Ok`.
/// - **Counted**: [`PoolStats::retried`](crate::PoolStats::retried) counts retries,
///   [`PoolStats::retrying`](crate::PoolStats::retrying) the tasks in their backoff; the
///   task counts once in `ended`.
/// - Its run timeout applies to each attempt; its `max_queue_wait` only to its first wait
///   for a slot (a retry that waits again for a slot is not shed).
///
/// [`TaskError::Panicked`]: crate::TaskError::Panicked
/// [`TaskError::Retried`]: crate::TaskError::Retried
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
/// use std::time::Duration;
///
/// let pool = TaskPool::new(TokioSpawner::current());
/// let policy = RetryPolicy::builder()
///     .max_attempts(3)
///     .backoff(Duration::ZERO, Duration::ZERO)
///     .retry_panics()
///     .build()?;
/// let handle = pool
///     .build_task()
///     .retry(policy)
///     .spawn_queued_with(|| async { panic!("always") })?;
/// let err = handle.await.unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.attempts(), 3);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
#[must_use = "a task builder does nothing until one of its spawn methods is called"]
pub struct RetryingTaskBuilder<'a, T> {
    task: TaskBuilder<'a>,
    policy: RetryPolicy<T>,
}

impl<'a> TaskBuilder<'a> {
    /// Runs the task again, per `policy`, when an attempt ends with an outcome the policy
    /// retries: each attempt's future comes from a factory, so set the task up with
    /// [`RetryingTaskBuilder::spawn_with`] and its siblings. Set the other options first.
    /// See [`RetryingTaskBuilder`] for what a retried task guarantees.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(4)
    ///     .backoff(Duration::from_millis(1), Duration::from_millis(10))
    ///     .retry_errors()
    ///     .build()?;
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let handle = pool
    ///     .build_task()
    ///     .name("flaky")
    ///     .retry(policy)
    ///     .spawn_with(move || {
    ///         let n = c.fetch_add(1, Ordering::SeqCst) + 1;
    ///         async move { if n < 3 { Err("503") } else { Ok(n) } }
    ///     })
    ///     .await?;
    /// assert_eq!(handle.await.unwrap(), Ok(3)); // the third attempt succeeded
    /// assert_eq!(pool.stats().retried, 2);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn retry<T: Send + 'static>(self, policy: RetryPolicy<T>) -> RetryingTaskBuilder<'a, T> {
        RetryingTaskBuilder::new(self, policy)
    }
}

impl<'a, T: Send + 'static> RetryingTaskBuilder<'a, T> {
    pub(crate) fn new(task: TaskBuilder<'a>, policy: RetryPolicy<T>) -> Self {
        Self { task, policy }
    }

    /// The first attempt's future and the task's spec (its policy and factory in it).
    fn prepare<M, F>(self, mut make: M) -> (&'a Arc<Core>, F, Option<Box<TaskSpec>>)
    where
        M: FnMut() -> F + Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let first = make();
        let retry = Retry::new::<F, M>(self.policy, make);
        let spec = TaskSpec::with_retry(self.task.spec(), retry);
        (self.task.core(), first, Some(spec))
    }

    /// Waits for room under the limit, then starts the first attempt, `make()`. See
    /// [`TaskPool::spawn`](crate::TaskPool::spawn) and [`TaskBuilder::retry`] (an example).
    pub async fn spawn_with<M, F>(self, make: M) -> Result<TaskHandle<T>, PoolError>
    where
        M: FnMut() -> F + Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (core, first, spec) = self.prepare(make);
        spawn(core, first, spec).await
    }

    /// Queues the task and returns at once. See
    /// [`TaskPool::spawn_queued`](crate::TaskPool::spawn_queued) and the type's example.
    pub fn spawn_queued_with<M, F>(self, make: M) -> Result<TaskHandle<T>, PoolError>
    where
        M: FnMut() -> F + Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (core, first, spec) = self.prepare(make);
        spawn_queued(core, first, spec)
    }

    /// Starts the first attempt now, or gives its future back (the factory is dropped). See
    /// [`TaskPool::try_spawn`](crate::TaskPool::try_spawn).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let policy = RetryPolicy::<u8>::builder().retry_if(|r| matches!(r, Ok(0))).build()?;
    /// let handle = pool.build_task().retry(policy).try_spawn_with(|| async { 1 })?;
    /// assert_eq!(handle.await.unwrap(), 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn try_spawn_with<M, F>(self, make: M) -> Result<TaskHandle<T>, TrySpawnError<F>>
    where
        M: FnMut() -> F + Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (core, first, spec) = self.prepare(make);
        try_spawn(core, first, spec)
    }
}

impl<T> fmt::Debug for RetryingTaskBuilder<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryingTaskBuilder")
            .field("task", &self.task)
            .field("policy", &self.policy)
            .finish()
    }
}

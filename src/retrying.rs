//! [`RetryingTaskBuilder`]: a loose task run again, per a [`RetryPolicy`], from a factory;
//! [`RetryingGroupBuilder`]: a group whose items are.

use crate::builder::{spawn, spawn_queued, try_spawn, GroupBuilder, TaskBuilder};
use crate::concurrency::Concurrency;
use crate::engine::core::{Core, GroupKind};
use crate::engine::item_retry::ItemRetry;
use crate::engine::map::Source;
use crate::engine::retry::Retry;
use crate::engine::task::TaskSpec;
use crate::error::{PoolError, TrySpawnError};
use crate::group::Group;
use crate::handle::TaskHandle;
use crate::policy::RetryPolicy;
use crate::try_group::TryGroup;
use futures_core::Stream;
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

impl<'a> GroupBuilder<'a> {
    /// Retries the group's items per `policy` (see [`RetryingGroupBuilder`]): an item whose
    /// attempt fails is run again by calling the function on a copy of the item (so `map`'s
    /// items must be `Clone`), or `apply`'s factory again. Without this call items need no
    /// `Clone` and nothing is kept.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(3)
    ///     .backoff(Duration::from_millis(1), Duration::from_millis(10))
    ///     .retry_errors()
    ///     .build()?;
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let group = pool.build_group().retry(policy).map(["a", "b"], 2, move |s: &str| {
    ///     // "b" fails its first attempt.
    ///     let first = s == "b" && c.fetch_add(1, Ordering::SeqCst) == 0;
    ///     async move { if first { Err("503") } else { Ok(s.len()) } }
    /// })?;
    /// let out: Vec<_> = group.map(Result::unwrap).collect().await;
    /// assert_eq!(out, [Ok(1), Ok(1)]); // input order, "b" after its retry
    /// assert_eq!(pool.stats().retried, 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn retry<T: Send + 'static>(self, policy: RetryPolicy<T>) -> RetryingGroupBuilder<'a, T> {
        RetryingGroupBuilder::new(self, policy)
    }
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

/// A group whose items run again when an attempt fails, per its [`RetryPolicy`]: made by
/// [`GroupBuilder::retry`]. A `map` item is run again by calling the group's function on a
/// copy of the item (the item is cloned before each attempt that may be followed by
/// another, so `map`'s items must be `Clone`; groups without retry need no `Clone`);
/// `apply`'s factory is called again.
///
/// What a retried item guarantees (as a [retried task](RetryingTaskBuilder) does):
/// - **One item, one id.** Every attempt runs under the same [`TaskId`](crate::TaskId) and
///   delivers one result, at the final outcome, in its place (input order for ordered
///   groups); `on_cancel` and `on_end` run once, at the final outcome.
///   [`TaskInfo::attempt`](crate::TaskInfo::attempt) says which attempt it is on.
/// - **The wait holds no slot.** Between attempts the item is in
///   [`TaskState::Backoff`](crate::TaskState::Backoff): the worker that ran it goes on with
///   the group's next item (or hands its slot on) at once; the item waits on the pool's
///   runtime timer, then waits for a slot of its group again (ahead of the group's items not
///   started yet) and runs its next attempt there. The group's concurrency counts it only
///   while an attempt runs.
/// - **Ending the group ends it.** [`Group::cancel`](crate::Group::cancel), a
///   [`try_map`](Self::try_map) that stops at an error, a dropped
///   [`cancel_on_drop`](GroupBuilder::cancel_on_drop) group, `cancel` by id and
///   `cancel_all` end an item in its backoff (or waiting for its next attempt) as cancelled
///   at once, with no further attempt. [`join`](crate::TaskPool::join) and the group's
///   stream wait for it.
/// - **What is retried** is the policy's call (nothing by default; panics and run timeouts
///   only if it opted in); cancelled and shed attempts are final. The predicate, the clone
///   and the function run with no pool lock held; a clone that panics is that attempt's
///   panic. The final error after more than one attempt is [`TaskError::Retried`]; retries
///   count in [`PoolStats::retried`](crate::PoolStats::retried), items in their backoff in
///   [`PoolStats::retrying`](crate::PoolStats::retrying).
/// - The group's run timeout applies to each attempt; its `max_queue_wait` only to an
///   item's first wait for a slot. An attempt after a backoff does not wait for a rate
///   limit's token.
///
/// [`TaskError::Retried`]: crate::TaskError::Retried
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
/// use futures::StreamExt;
/// use std::time::Duration;
///
/// let pool = TaskPool::new(TokioSpawner::current());
/// let policy = RetryPolicy::builder()
///     .max_attempts(3)
///     .backoff(Duration::ZERO, Duration::ZERO)
///     .retry_panics()
///     .build()?;
/// let group = pool
///     .build_group()
///     .retry(policy)
///     .map(vec![1u32, 2], 2, |x| async move {
///         if x == 2 { panic!("always") }
///         x
///     })?;
/// let results: Vec<_> = group.collect().await;
/// assert_eq!(results[0].as_ref().unwrap(), &1);
/// let err = results[1].as_ref().unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.attempts(), 3);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
#[must_use = "a group builder does nothing until `apply` or a `map` method is called"]
pub struct RetryingGroupBuilder<'a, T> {
    group: GroupBuilder<'a>,
    policy: RetryPolicy<T>,
}

impl<'a, T: Send + 'static> RetryingGroupBuilder<'a, T> {
    pub(crate) fn new(group: GroupBuilder<'a>, policy: RetryPolicy<T>) -> Self {
        Self { group, policy }
    }

    /// Results in completion order instead of input order (see
    /// [`GroupBuilder::unordered`]).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let policy = RetryPolicy::<u32>::builder().retry_panics().build()?;
    /// let group = pool.build_group().retry(policy).unordered().map(0..3u32, 3, |x| async move { x })?;
    /// assert_eq!(group.join().await?.completed, 3);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn unordered(mut self) -> Self {
        self.group = self.group.unordered();
        self
    }

    /// Starts `num` tasks, each from `factory()`, called again for each retry (see
    /// [`GroupBuilder::apply`]).
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
    ///     .max_attempts(2)
    ///     .backoff(Duration::ZERO, Duration::ZERO)
    ///     .retry_errors()
    ///     .build()?;
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let c = calls.clone();
    /// let group = pool.build_group().retry(policy).apply(2, move || {
    ///     let n = c.fetch_add(1, Ordering::SeqCst);
    ///     async move { if n == 0 { Err("first call fails") } else { Ok(n) } }
    /// })?;
    /// assert_eq!(group.join().await?.completed, 2);
    /// assert_eq!(calls.load(Ordering::SeqCst), 3); // one retry
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn apply<F, Fut>(self, num: usize, factory: F) -> Result<Group<T>, PoolError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let source: Source<usize> = Box::pin(futures_util::stream::iter(0..num));
        self.group.launch_stopping(
            GroupKind::Apply,
            source,
            Concurrency::PoolLimit,
            false,
            move |_| factory(),
            None,
            Some(ItemRetry::new(self.policy)),
        )
    }

    /// `f(item)` for each item, at most `num_concurrent` at once, each item retried per the
    /// policy (see [`GroupBuilder::map`]).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// // Retries outputs under 10; an item gets 2 attempts.
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(2)
    ///     .backoff(std::time::Duration::ZERO, std::time::Duration::ZERO)
    ///     .retry_if(|r: &Result<u32, _>| matches!(r, Ok(n) if *n < 10))
    ///     .build()?;
    /// let group = pool.build_group().retry(policy).map(vec![5u32, 20], 2, |x| async move { x })?;
    /// let out: Vec<u32> = group.map(Result::unwrap).collect().await;
    /// assert_eq!(out, [5, 20]); // 5 ran twice: its last output stands
    /// assert_eq!(pool.stats().retried, 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn map<It, F, Fut>(
        self,
        items: It,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<Group<T>, PoolError>
    where
        It: IntoIterator,
        It::IntoIter: Send + 'static,
        It::Item: Clone + Send + 'static,
        F: Fn(It::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.map_stream(futures_util::stream::iter(items), num_concurrent, f)
    }

    /// `f(item)` for each item of a [`Stream`], each item retried per the policy (see
    /// [`GroupBuilder::map_stream`]).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// use futures::StreamExt;
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let policy = RetryPolicy::<u32>::builder().retry_panics().build()?;
    /// let items = futures::stream::iter([1u32, 2]);
    /// let doubled = pool.build_group().retry(policy).map_stream(items, 2, |x| async move { x * 2 })?;
    /// assert_eq!(doubled.map(Result::unwrap).collect::<Vec<_>>().await, [2, 4]);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn map_stream<S, F, Fut>(
        self,
        items: S,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<Group<T>, PoolError>
    where
        S: Stream + Send + 'static,
        S::Item: Clone + Send + 'static,
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let ordered = self.group.is_ordered();
        self.group.launch_stopping(
            GroupKind::Map,
            Box::pin(items),
            num_concurrent.into(),
            ordered,
            f,
            None,
            Some(ItemRetry::new(self.policy)),
        )
    }
}

impl<U: Send + 'static, E: Send + 'static> RetryingGroupBuilder<'_, Result<U, E>> {
    /// [`GroupBuilder::try_map`] with retries: an item that fails is retried per the policy,
    /// and only its final failure stops the group.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::RetryPolicy, runtime::TokioSpawner, TaskPool};
    /// use futures::TryStreamExt;
    /// use std::time::Duration;
    ///
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let policy = RetryPolicy::builder()
    ///     .max_attempts(2)
    ///     .backoff(Duration::ZERO, Duration::ZERO)
    ///     .retry_errors()
    ///     .build()?;
    /// let parsed = pool
    ///     .build_group()
    ///     .retry(policy)
    ///     .try_map(["1", "x"], 1, |s| async move { s.parse::<u32>() })?;
    /// assert!(parsed.try_collect::<Vec<u32>>().await.is_err()); // "x" failed twice
    /// assert_eq!(pool.stats().retried, 1);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn try_map<It, F, Fut>(
        self,
        items: It,
        num_concurrent: impl Into<Concurrency>,
        f: F,
    ) -> Result<TryGroup<U, E>, PoolError>
    where
        It: IntoIterator,
        It::IntoIter: Send + 'static,
        It::Item: Clone + Send + 'static,
        F: Fn(It::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
    {
        let ordered = self.group.is_ordered();
        let group = self.group.launch_stopping(
            GroupKind::Map,
            Box::pin(futures_util::stream::iter(items)),
            num_concurrent.into(),
            ordered,
            f,
            Some(crate::try_group::fails::<U, E>),
            Some(ItemRetry::new(self.policy)),
        )?;
        Ok(TryGroup::new(group))
    }
}

impl<T> fmt::Debug for RetryingGroupBuilder<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryingGroupBuilder")
            .field("group", &self.group)
            .field("policy", &self.policy)
            .finish()
    }
}

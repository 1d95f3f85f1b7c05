//! Builders: for a pool, for one task, and for a group of tasks.

use crate::cell::{Cell, Spec};
use crate::group::{Group, GroupCore};
use crate::handle::TaskHandle;
use crate::inner::{GroupEntry, GroupKind, Inner};
use crate::map::{MapEngine, Source};
use crate::pool::TaskPool;
use crate::run::{Callbacks, RunOptions};
use crate::{ExecError, PoolError, TaskId, TrySpawnError};
use async_taskpool_runtime::Spawner;
use futures_core::Stream;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::time::Duration;

/// Configures a [`TaskPool`]. Made by [`TaskPool::builder`].
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{runtime::SmolSpawner, TaskPool};
/// let pool = TaskPool::builder(SmolSpawner::global())
///     .name("crawler")
///     .limit(8)
///     .build()?;
/// assert_eq!(pool.name(), "crawler");
/// assert_eq!(pool.limit(), Some(8));
/// # }
/// # Ok::<_, async_taskpool::PoolError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    spawner: Arc<dyn Spawner>,
    name: Option<String>,
    limit: Option<usize>,
    cancel_on_drop: bool,
}

impl PoolBuilder {
    pub(crate) fn new(spawner: Arc<dyn Spawner>) -> Self {
        Self {
            spawner,
            name: None,
            limit: None,
            cancel_on_drop: false,
        }
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

    /// Builds the pool. Fails only with [`PoolError::InvalidLimit`] for a limit of 0.
    pub fn build(self) -> Result<TaskPool, PoolError> {
        if self.limit == Some(0) {
            return Err(PoolError::InvalidLimit {
                what: "pool limit",
                value: 0,
            });
        }
        let inner = Inner::new(self.spawner, self.name, self.limit);
        Ok(TaskPool::from_inner(Arc::new(inner), self.cancel_on_drop))
    }
}

fn callback<C, Fut>(f: C) -> Arc<crate::run::CallbackFn>
where
    C: Fn(TaskId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |id| Box::pin(f(id)))
}

/// Options shared by the task and group builders.
#[derive(Default)]
struct Options {
    name: Option<String>,
    timeout: Option<Duration>,
    callbacks: Callbacks,
}

impl Options {
    fn run_options(&self) -> RunOptions {
        RunOptions {
            timeout: self.timeout,
            callbacks: (!self.callbacks.is_empty()).then(|| Arc::new(self.callbacks.clone())),
        }
    }
}

/// Per-task options: name, run timeout, end and cancel callbacks. Made by
/// [`TaskPool::build_task`].
///
/// Callbacks are async closures taking the task's id. `on_cancel` runs first (only if the task
/// was cancelled), then `on_end` (always). The task's slot is freed before they run, so queued
/// work can start meanwhile; its handle resolves after they finish. A panicking callback is
/// logged and ignored.
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
pub struct TaskBuilder<'a> {
    pool: &'a TaskPool,
    options: Options,
}

impl<'a> TaskBuilder<'a> {
    pub(crate) fn new(pool: &'a TaskPool) -> Self {
        Self {
            pool,
            options: Options::default(),
        }
    }

    /// A name for logs and [`TaskPool::tasks`], instead of `{pool}_Task-{id}`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Cancels the task (with [`TaskError::TimedOut`](crate::TaskError::TimedOut)) if it runs
    /// longer than `timeout`. Time spent queued does not count.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Runs `f(id)` when the task ends, however it ends.
    pub fn on_end<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.callbacks.on_end = Some(callback(f));
        self
    }

    /// Runs `f(id)` when the task is cancelled, before `on_end`.
    pub fn on_cancel<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.callbacks.on_cancel = Some(callback(f));
        self
    }

    fn submit<F>(self, fut: F, only_now: bool) -> Result<Submitted<F::Output>, (PoolError, F)>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let inner = self.pool.inner();
        let options = self.options.run_options();
        let name: Option<Arc<str>> = self.options.name.as_deref().map(Into::into);
        // Plain tasks carry no spec at all: nothing optional to store.
        let spec = (name.is_some() || options.timeout.is_some() || options.callbacks.is_some())
            .then(|| {
                Box::new(Spec {
                    name,
                    group: None,
                    options,
                    sink: None,
                })
            });
        let cell = Arc::new(Cell::new(spec));
        let (id, started) = inner.submit(cell.clone(), fut, only_now, false)?;
        Ok((TaskHandle::new(id, cell, inner.clone()), started))
    }

    /// Waits for room under the limit, then starts the task. See [`TaskPool::spawn`].
    pub async fn spawn<F>(self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let pool = self.pool.inner().clone();
        let (handle, started) = self.submit(fut, false).map_err(|(e, _)| e)?;
        if !started {
            let mut withdraw = CancelOnDrop {
                pool: &pool,
                id: handle.id(),
                armed: true,
            };
            poll_fn(|cx| handle.poll_started(cx)).await;
            withdraw.armed = false;
        }
        Ok(handle)
    }

    /// Queues the task and returns at once. See [`TaskPool::spawn_queued`].
    pub fn spawn_queued<F>(self, fut: F) -> Result<TaskHandle<F::Output>, PoolError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.submit(fut, false).map(|(h, _)| h).map_err(|(e, _)| e)
    }

    /// Starts the task now, or gives it back. See [`TaskPool::try_spawn`].
    pub fn try_spawn<F>(self, fut: F) -> Result<TaskHandle<F::Output>, TrySpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.submit(fut, true)
            .map(|(h, _)| h)
            .map_err(|(e, f)| TrySpawnError::new(e, f))
    }

    /// Runs the task to completion and returns its output. See [`TaskPool::exec`].
    pub async fn exec<F>(self, fut: F) -> Result<F::Output, ExecError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let pool = self.pool.inner().clone();
        let (handle, _) = self.submit(fut, false).map_err(|(e, _)| e)?;
        let mut cancel = CancelOnDrop {
            pool: &pool,
            id: handle.id(),
            armed: true,
        };
        let out = handle.await;
        cancel.armed = false;
        Ok(out?)
    }
}

/// A submitted task's handle, and whether it started at once.
type Submitted<T> = (TaskHandle<T>, bool);

/// Cancels a task if the future waiting on it is dropped (cancel safety of `spawn`/`exec`).
struct CancelOnDrop<'a> {
    pool: &'a Arc<Inner>,
    id: TaskId,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.cancel_quietly(self.id);
        }
    }
}

/// Options for a group of tasks from [`apply`](GroupBuilder::apply) or
/// [`map`](GroupBuilder::map): a name, and a run timeout and callbacks for each item. Made by
/// [`TaskPool::build_group`].
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
pub struct GroupBuilder<'a> {
    pool: &'a TaskPool,
    options: Options,
}

impl<'a> GroupBuilder<'a> {
    pub(crate) fn new(pool: &'a TaskPool) -> Self {
        Self {
            pool,
            options: Options::default(),
        }
    }

    /// The group's name (default `apply-group-K` or `map-group-K`). It must not be in use.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// A run timeout for each item; time waiting for room does not count.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Runs `f(id)` when an item ends. See [`TaskBuilder::on_end`].
    pub fn on_end<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.callbacks.on_end = Some(callback(f));
        self
    }

    /// Runs `f(id)` when an item is cancelled, before `on_end`.
    pub fn on_cancel<C, Fut>(mut self, f: C) -> Self
    where
        C: Fn(TaskId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.callbacks.on_cancel = Some(callback(f));
        self
    }

    /// Starts `num` tasks, each from `factory()`. See [`TaskPool::apply`].
    pub fn apply<F, Fut>(self, num: usize, factory: F) -> Result<Group<Fut::Output>, PoolError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let source: Source<usize> = Box::pin(futures_util::stream::iter(0..num));
        self.launch(GroupKind::Apply, source, usize::MAX, false, move |_| {
            factory()
        })
    }

    /// `f(item)` for each item, results in input order. See [`TaskPool::map`].
    pub fn map<I, F, Fut>(
        self,
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
        let source: Source<I::Item> = Box::pin(futures_util::stream::iter(items));
        self.launch(GroupKind::Map, source, num_concurrent, true, f)
    }

    /// Like [`map`](Self::map), results in completion order.
    pub fn map_unordered<I, F, Fut>(
        self,
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
        let source: Source<I::Item> = Box::pin(futures_util::stream::iter(items));
        self.launch(GroupKind::Map, source, num_concurrent, false, f)
    }

    /// `f(item)` for each item of a [`Stream`], results in input order.
    pub fn map_stream<S, F, Fut>(
        self,
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
        self.launch(GroupKind::Map, Box::pin(items), num_concurrent, true, f)
    }

    /// Like [`map_stream`](Self::map_stream), results in completion order.
    pub fn map_stream_unordered<S, F, Fut>(
        self,
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
        self.launch(GroupKind::Map, Box::pin(items), num_concurrent, false, f)
    }

    fn launch<I, F, Fut>(
        self,
        kind: GroupKind,
        source: Source<I>,
        num_concurrent: usize,
        ordered: bool,
        f: F,
    ) -> Result<Group<Fut::Output>, PoolError>
    where
        I: Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        if num_concurrent == 0 {
            return Err(PoolError::InvalidLimit {
                what: "num_concurrent",
                value: 0,
            });
        }
        let inner = self.pool.inner();
        let options = self.options.run_options();
        let mut made = None;
        inner.register_group(kind, self.options.name, |name| {
            let core = Arc::new(GroupCore::new(name, ordered));
            let engine = MapEngine::new(
                inner.clone(),
                core.clone(),
                source,
                num_concurrent,
                f,
                options,
            );
            let entry = GroupEntry {
                pulling: Some(engine.clone()),
                finished: core.entry().finished,
            };
            made = Some((core, engine));
            entry
        })?;
        let (core, engine) = made.expect("registered");
        engine.launch();
        Ok(Group::new(core, inner.clone()))
    }
}

/// Submits a batch of ready futures as one group (SimpleTaskPool's `start`): all or none are
/// accepted, so a lock that lands midway cannot split it.
pub(crate) fn start_batch<T, Fut>(
    pool: &TaskPool,
    futs: Vec<Fut>,
    options: RunOptions,
) -> Result<Group<T>, PoolError>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let inner = pool.inner();
    let mut core = None;
    let name = inner.register_group(GroupKind::Start, None, |name| {
        let c = Arc::new(GroupCore::new(name, false));
        let entry = c.entry();
        core = Some(c);
        entry
    })?;
    let core = core.expect("registered");
    for fut in futs {
        let spec = Spec {
            name: None,
            group: Some(name.clone()),
            options: options.clone(),
            sink: Some((core.clone(), core.issue())),
        };
        let cell = Arc::new(Cell::new(Some(Box::new(spec))));
        // The batch was accepted as a whole above, so these are never refused.
        let _ = inner.submit(cell, fut, false, true);
    }
    core.close_issuing();
    inner.group_batch_done();
    Ok(Group::new(core, inner.clone()))
}

use super::BackgroundError;
use crate::error::{PoolError, TaskError};
use crate::handle::TaskHandle;
use crate::id::TaskId;
use crate::pool::TaskPool;
use crate::sync::lock::{lock as lock_ranked, Rank};
use async_taskpool_runtime::Spawner;
use futures_util::future::{FutureExt, Map, Shared};
use futures_util::lock::Mutex as OpLock;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

type RunFactory<T> = dyn Fn() -> Pin<Box<dyn Future<Output = T> + Send>> + Send + Sync;

/// One run's outcome, taken by the first `join` or `stop` that wants it.
type RunOutcome<T> = Arc<Mutex<Option<Result<T, TaskError>>>>;

/// A run's end that any number of callers can await; whoever polls drives it.
type End<T> = Shared<Map<TaskHandle<T>, fn(Result<T, TaskError>) -> RunOutcome<T>>>;

fn outcome<T>(res: Result<T, TaskError>) -> RunOutcome<T> {
    Arc::new(Mutex::new(Some(res)))
}

struct Run<T> {
    id: TaskId,
    end: End<T>,
}

impl<T> Clone for Run<T> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            end: self.end.clone(),
        }
    }
}

/// A task that lives as long as this value: dropping it cancels the task (concurrent_tasks'
/// `BackgroundTask`, as a guard).
///
/// It runs on any [`Spawner`], inside a private one-task [`TaskPool`], so cancellation, panic
/// isolation and logging are the pool's.
///
/// # Guarantees
/// - Dropping the `BackgroundTask` cancels its task: it is dropped at its next poll (its
///   destructors run on the executor soon after; use [`stop`](Self::stop) to wait for that).
/// - [`stop`](Self::stop) returns only once the task has really ended and its future, with
///   everything it owned, has been dropped.
/// - At most one run is alive at a time: [`restart`](Self::restart) stops the current run
///   and waits for its end before starting the next, and concurrent `stop`s and `restart`s
///   take turns.
/// - A panic, timeout or cancellation is never lost: it is logged by the pool through
///   `tracing` when it happens, and returned to the first `join` or `stop` that asks.
///
/// # When not to use it
/// For a task that must outlive the scope, spawn it on a [`TaskPool`] (whose handles
/// detach on drop). For many similar workers, use a
/// [`SimpleTaskPool`](crate::SimpleTaskPool). For work repeated on a timer, use
/// [`PeriodicTask`](crate::PeriodicTask).
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, BackgroundTask};
///
/// let (tx, mut rx) = tokio::sync::mpsc::channel(8);
/// let producer = BackgroundTask::spawn(TokioSpawner::current(), async move {
///     for i in 0.. {
///         if tx.send(i).await.is_err() { break }
///     }
/// });
/// assert_eq!(rx.recv().await, Some(0));
/// assert!(producer.is_running());
/// producer.stop().await?;          // cancelled, and its sender is dropped
/// assert!(!producer.is_running());
/// # while rx.recv().await.is_some() {}
/// # Ok::<_, async_taskpool::BackgroundError>(())
/// # }).unwrap(); }
/// ```
#[must_use = "dropping a BackgroundTask cancels its task"]
pub struct BackgroundTask<T> {
    pool: TaskPool,
    name: Arc<str>,
    factory: Option<Arc<RunFactory<T>>>,
    run: Mutex<Run<T>>,
    /// Serialises `stop` and `restart`, so there is never more than one run alive.
    ops: OpLock<()>,
}

impl<T: Send + 'static> BackgroundTask<T> {
    /// Starts `fut` on `spawner`. A task started this way cannot be restarted; see
    /// [`spawn_with`](Self::spawn_with).
    pub fn spawn<F>(spawner: impl Spawner, fut: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        BackgroundTaskBuilder::new(Arc::new(spawner)).spawn(fut)
    }

    /// Starts `factory()` on `spawner`, and again on every [`restart`](Self::restart).
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// # smol::block_on(async {
    /// use async_taskpool::{runtime::SmolSpawner, BackgroundTask};
    ///
    /// let task = BackgroundTask::spawn_with(SmolSpawner::global(), || async { "fresh" });
    /// assert_eq!(task.join().await?, "fresh");
    /// task.restart().await?;
    /// assert_eq!(task.join().await?, "fresh");
    /// # Ok::<_, async_taskpool::BackgroundError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn spawn_with<C, F>(spawner: impl Spawner, factory: C) -> Self
    where
        C: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        BackgroundTaskBuilder::new(Arc::new(spawner)).spawn_with(factory)
    }
}

impl BackgroundTask<()> {
    /// A builder, to name the task (the name is the pool's and the task's in logs).
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{runtime::SmolSpawner, BackgroundTask};
    /// let task = BackgroundTask::builder(SmolSpawner::global())
    ///     .name("heartbeat")
    ///     .spawn(std::future::pending::<()>());
    /// assert_eq!(task.name(), "heartbeat");
    /// # }
    /// ```
    pub fn builder(spawner: impl Spawner) -> BackgroundTaskBuilder {
        BackgroundTaskBuilder::new(Arc::new(spawner))
    }
}

impl<T: Send + 'static> BackgroundTask<T> {
    fn new(
        spawner: Arc<dyn Spawner>,
        name: Option<String>,
        factory: Option<Arc<RunFactory<T>>>,
        first: Pin<Box<dyn Future<Output = T> + Send>>,
    ) -> Self {
        let name: Arc<str> = name
            .unwrap_or_else(|| {
                format!(
                    "BackgroundTask-{}",
                    NEXT_NAME.fetch_add(1, Ordering::Relaxed)
                )
            })
            .into();
        let pool = TaskPool::builder(spawner)
            .name(name.to_string())
            // Its own pool, one per task: no metric series of its own (unbounded).
            .without_metrics()
            .build()
            .expect("no limit set, so nothing to refuse");
        let run = start(&pool, &name, first);
        Self {
            pool,
            name,
            factory,
            run: Mutex::new(run),
            ops: OpLock::new(()),
        }
    }

    /// Waits for the current run to end by itself and returns its output, or why it has none
    /// ([`BackgroundError::Task`]: panicked, timed out, or cancelled by `stop`, `restart` or a
    /// runtime shut-down).
    ///
    /// The outcome goes to the first caller: a later `join` of the same run gets
    /// [`BackgroundError::OutcomeTaken`]. From inside the task itself it returns
    /// [`PoolError::CalledFromOwnTask`] instead of waiting forever. Cancel-safe.
    pub async fn join(&self) -> Result<T, BackgroundError> {
        self.check_outside("join")?;
        let end = lock(&self.run).end.clone();
        let outcome = end.await;
        let taken = lock(&outcome).take();
        match taken {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.into()),
            None => Err(BackgroundError::OutcomeTaken {
                name: self.name.to_string(),
            }),
        }
    }

    /// Cancels the current run and returns once it has ended and its future was dropped.
    ///
    /// Returns `Ok(None)` if it was cancelled (or its outcome was already taken),
    /// `Ok(Some(output))` if it had already finished by itself, and the error if it had
    /// panicked or timed out. Stopping a stopped task does nothing. From inside the task
    /// itself it returns [`PoolError::CalledFromOwnTask`].
    ///
    /// The run is cancelled as soon as `stop` is first polled, so dropping the returned
    /// future early still leaves it cancelled.
    pub async fn stop(&self) -> Result<Option<T>, BackgroundError> {
        self.check_outside("stop")?;
        // Before waiting for our turn: a `restart` under way must not delay the cancel.
        let current = lock(&self.run).id;
        self.pool.core().cancel_quietly(current);
        let _turn = self.ops.lock().await;
        let run = lock(&self.run).clone();
        tracing::debug!(pool = %self.name, "stopping background task {}", self.name);
        self.pool.core().cancel_quietly(run.id);
        let outcome = run.end.await;
        let mut slot = lock(&outcome);
        match slot.take() {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) if e.is_cancelled() => {
                // Leave it for `join`, which reports how the run ended.
                *slot = Some(Err(e));
                Ok(None)
            }
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Stops the current run (as [`stop`](Self::stop) does, waiting for its end), then
    /// starts a new one from the factory given to [`spawn_with`](Self::spawn_with).
    ///
    /// The previous run's output, if any, is dropped; if it had panicked or timed out, that
    /// was logged when it happened. Concurrent calls take turns, so exactly one run is alive
    /// afterwards. If the returned future is dropped midway, the task may be left stopped;
    /// call `restart` again.
    ///
    /// Errors: [`BackgroundError::NotRestartable`] for a task started from a single future;
    /// [`PoolError::CalledFromOwnTask`] from inside the task itself.
    pub async fn restart(&self) -> Result<(), BackgroundError> {
        self.check_outside("restart")?;
        let Some(factory) = self.factory.clone() else {
            return Err(BackgroundError::NotRestartable {
                name: self.name.to_string(),
            });
        };
        let _turn = self.ops.lock().await;
        let old = lock(&self.run).clone();
        self.pool.core().cancel_quietly(old.id);
        let outcome = old.end.await;
        if let Some(Err(e)) = &*lock(&outcome) {
            if !e.is_cancelled() {
                tracing::warn!(pool = %self.name, "restarting background task {} after: {e}", self.name);
            }
        }
        let run = start(&self.pool, &self.name, from_factory(factory));
        *lock(&self.run) = run;
        tracing::info!(pool = %self.name, "restarted background task {}", self.name);
        Ok(())
    }
}

impl<T> BackgroundTask<T> {
    /// Whether the current run is still going (not yet ended, however it ends).
    pub fn is_running(&self) -> bool {
        self.pool.num_running() + self.pool.num_queued() > 0
    }

    /// The task's name, used in its log events.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_outside(&self, method: &'static str) -> Result<(), PoolError> {
        self.pool.core().refuse_own_task(method)
    }
}

fn from_factory<T>(factory: Arc<RunFactory<T>>) -> Pin<Box<dyn Future<Output = T> + Send>>
where
    T: Send + 'static,
{
    // The factory is called inside the task, so a panicking factory is a panicked run.
    Box::pin(async move { factory().await })
}

fn start<T: Send + 'static>(
    pool: &TaskPool,
    name: &str,
    fut: Pin<Box<dyn Future<Output = T> + Send>>,
) -> Run<T> {
    let handle = pool
        .build_task()
        .name(name)
        .spawn_queued(fut)
        .unwrap_or_else(|e| unreachable!("the private pool of a background task is open: {e}"));
    let id = handle.id();
    let to_outcome: fn(Result<T, TaskError>) -> RunOutcome<T> = outcome;
    Run {
        id,
        end: handle.map(to_outcome).shared(),
    }
}

impl<T> Drop for BackgroundTask<T> {
    fn drop(&mut self) {
        let id = lock(&self.run).id;
        self.pool.core().cancel_quietly(id);
    }
}

impl<T> fmt::Debug for BackgroundTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundTask")
            .field("name", &&*self.name)
            .field("running", &self.is_running())
            .field("restartable", &self.factory.is_some())
            .finish()
    }
}

/// Names a [`BackgroundTask`] before starting it. Made by [`BackgroundTask::builder`].
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{runtime::SmolSpawner, BackgroundTask};
/// let task = BackgroundTask::builder(SmolSpawner::global())
///     .name("cache-refresh")
///     .spawn_with(|| async { /* refresh */ });
/// # drop(task);
/// # }
/// ```
#[must_use = "a builder does nothing until `spawn` or `spawn_with` is called"]
pub struct BackgroundTaskBuilder {
    spawner: Arc<dyn Spawner>,
    name: Option<String>,
}

impl BackgroundTaskBuilder {
    pub(crate) fn new(spawner: Arc<dyn Spawner>) -> Self {
        Self {
            spawner,
            name: None,
        }
    }

    /// The name used in logs (default `BackgroundTask-{k}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Starts `fut`; see [`BackgroundTask::spawn`].
    pub fn spawn<F>(self, fut: F) -> BackgroundTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        BackgroundTask::new(self.spawner, self.name, None, Box::pin(fut))
    }

    /// Starts `factory()`, restartable; see [`BackgroundTask::spawn_with`].
    pub fn spawn_with<C, F>(self, factory: C) -> BackgroundTask<F::Output>
    where
        C: Fn() -> F + Send + Sync + 'static,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let factory: Arc<RunFactory<F::Output>> = Arc::new(move || Box::pin(factory()));
        let first = from_factory(factory.clone());
        BackgroundTask::new(self.spawner, self.name, Some(factory), first)
    }
}

impl fmt::Debug for BackgroundTaskBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundTaskBuilder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// This module's locks: never held while user code runs.
fn lock<T>(m: &Mutex<T>) -> crate::sync::lock::Locked<'_, T> {
    lock_ranked(m, Rank::Outside)
}

use super::core::Core;
use super::{ThreadRuntime, ThreadedError, ThreadedHandle, ThreadedPoolBuilder};
use crate::pool::TaskPool;
use crate::stats::PoolStats;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::thread::ThreadId;

/// A [`TaskPool`] on a thread of its own, for async callers on another runtime
/// (concurrent_tasks' `AsyncThreadedTaskPool`): `run(fut).await` waits without blocking the
/// caller's executor. The pool, its hooks and its guarantees are those of
/// [`ThreadedPool`](crate::ThreadedPool); only the waiting differs.
///
/// Typical use: keep a tokio-only client (or a `!Sync` resource opened by `setup`) on a
/// tokio thread, and call it from a smol or async-std application, or the other way round.
///
/// # Dropping
/// Dropping it stops the pool the way [`stop`](Self::stop) does (work is drained, teardown
/// runs) but **does not wait**: blocking in a destructor would stall the caller's executor.
/// Call `stop().await` to wait for the end, and to see a teardown error.
///
/// # When not to use it
/// If the work can run on the caller's runtime, a plain [`TaskPool`] there is cheaper: every
/// submission and result here crosses threads.
///
/// ```
/// # #[cfg(all(feature = "tokio", feature = "smol"))] {
/// # smol::block_on(async {
/// use async_taskpool::{AsyncThreadedPool, ThreadRuntime};
/// use std::time::Duration;
///
/// // A smol application using tokio's timer, on a tokio thread.
/// let tokio_side = AsyncThreadedPool::builder(ThreadRuntime::TokioCurrentThread)
///     .name("tokio-side")
///     .build_async()
///     .await?;
/// let out = tokio_side
///     .run(async {
///         tokio::time::sleep(Duration::from_millis(1)).await;
///         "slept on tokio"
///     })
///     .await?;
/// assert_eq!(out, "slept on tokio");
/// tokio_side.stop().await?;
/// # Ok::<_, async_taskpool::ThreadedError>(())
/// # }).unwrap(); }
/// ```
pub struct AsyncThreadedPool {
    core: Arc<Core>,
}

impl AsyncThreadedPool {
    /// A builder for a pool whose thread runs `runtime`; finish with
    /// [`build_async`](ThreadedPoolBuilder::build_async).
    pub fn builder(runtime: ThreadRuntime) -> ThreadedPoolBuilder {
        ThreadedPoolBuilder::new(runtime)
    }

    pub(crate) fn from_core(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Submits `fut` and returns at once with its handle. [`ThreadedError::Stopped`] after
    /// `stop`, with `fut` dropped.
    pub fn spawn<F>(&self, fut: F) -> Result<ThreadedHandle<F::Output>, ThreadedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.core.submit(fut)
    }

    /// Runs `fut` on the pool and waits for its output without blocking the caller.
    ///
    /// Dropping the returned future cancels the task. Errors: [`ThreadedError::Stopped`]
    /// after `stop` (with `fut` dropped), and [`ThreadedError::Task`] if the task was
    /// cancelled, timed out or panicked.
    pub async fn run<F>(&self, fut: F) -> Result<F::Output, ThreadedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.core.exec(fut).await
    }

    /// Refuses new work, lets every submitted task finish, runs teardown, and waits for the
    /// thread to end, without blocking the caller. Returns [`ThreadedError::Teardown`] if
    /// teardown failed (to the first caller only), and [`ThreadedError::OnPoolThread`] if
    /// awaited from one of the pool's own tasks or hooks, which it would wait for.
    pub async fn stop(&self) -> Result<(), ThreadedError> {
        self.core.stop_async(false).await
    }

    /// Like [`stop`](Self::stop), but cancels the running and queued tasks instead.
    pub async fn stop_now(&self) -> Result<(), ThreadedError> {
        self.core.stop_async(true).await
    }

    /// Whether `stop` or `stop_now` was called (new work is refused).
    pub fn is_stopped(&self) -> bool {
        self.core.is_stopped()
    }

    /// The pool's name, also its thread's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The runtime on the pool's thread.
    pub fn runtime(&self) -> ThreadRuntime {
        self.core.runtime
    }

    /// The id of the pool's thread.
    pub fn thread_id(&self) -> ThreadId {
        self.core.thread_id()
    }

    /// A snapshot of the inner pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.core.pool().stats()
    }

    /// The inner [`TaskPool`]; see [`ThreadedPool::task_pool`](crate::ThreadedPool::task_pool).
    pub fn task_pool(&self) -> &TaskPool {
        self.core.pool()
    }
}

impl Drop for AsyncThreadedPool {
    fn drop(&mut self) {
        self.core.request_stop(false);
    }
}

impl fmt::Debug for AsyncThreadedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncThreadedPool")
            .field("name", &self.name())
            .field("runtime", &self.runtime())
            .field("stopped", &self.is_stopped())
            .field("stats", &self.stats())
            .finish()
    }
}

use super::core::Core;
use super::handle::block_on;
use super::{ThreadRuntime, ThreadedError, ThreadedHandle, ThreadedPoolBuilder};
use crate::pool::TaskPool;
use crate::stats::PoolStats;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::thread::ThreadId;

/// A [`TaskPool`] running on a thread of its own, with its own event loop, for synchronous
/// code (concurrent_tasks' `BlockingThreadedTaskPool`). See [`AsyncThreadedPool`] for
/// callers that are themselves async.
///
/// Submit from any thread: [`run`](Self::run) blocks until the output is ready;
/// [`spawn`](Self::spawn) returns a [`ThreadedHandle`] at once, which can be waited on,
/// with or without a timeout, awaited, or cancelled.
///
/// # Guarantees
/// - Limits, ids, run timeouts, panic isolation and [`stats`](Self::stats) are those of the
///   inner [`TaskPool`]: at most `size` tasks run at once, the rest wait in FIFO order, and
///   the `timeout` counts only time spent running.
/// - The setup hook runs on the pool's loop before any task; the teardown hook runs on it
///   after every task has ended. `build` returns only after setup succeeded; if it fails, the
///   thread has exited and `build` returns the error.
/// - [`stop`](Self::stop) (and drop) refuses new work at once, lets every submitted task
///   finish, runs teardown and joins the thread. [`stop_now`](Self::stop_now) cancels the
///   tasks instead. Work submitted after either gets [`ThreadedError::Stopped`], and its
///   future is dropped on the spot.
/// - What a task starts on the runtime by itself (say with `tokio::spawn`) is not tracked
///   and not waited for: on tokio and smol it is dropped when the thread's runtime shuts
///   down, after teardown; on async-std it keeps running on the global executor.
/// - Blocking calls never deadlock on the pool itself: from the pool's thread or one of its
///   tasks, `run`, `stop`, `stop_now` and [`ThreadedHandle::wait`] return
///   [`ThreadedError::OnPoolThread`] instead.
///
/// # When not to use it
/// From async code, prefer [`AsyncThreadedPool`] or a [`TaskPool`] on your own runtime:
/// `run` blocks the calling thread. For blocking or CPU-bound work, use a thread pool (rayon,
/// or your runtime's blocking pool): every task here shares one thread (tokio and smol).
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// use async_taskpool::{ThreadRuntime, ThreadedPool};
/// use std::time::Duration;
///
/// let pool = ThreadedPool::builder(ThreadRuntime::TokioCurrentThread)
///     .name("io-loop")
///     .size(8)
///     .build()?;
/// // Synchronous code, no runtime in sight:
/// let answer = pool.run(async {
///     tokio::time::sleep(Duration::from_millis(1)).await;
///     42
/// })?;
/// assert_eq!(answer, 42);
/// let handle = pool.spawn(async { "later" })?;
/// assert_eq!(handle.wait()?, "later");
/// pool.stop()?; // drains, runs teardown, joins the thread
/// assert!(pool.spawn(async {}).is_err());
/// # }
/// # Ok::<_, async_taskpool::ThreadedError>(())
/// ```
///
/// [`AsyncThreadedPool`]: crate::AsyncThreadedPool
pub struct ThreadedPool {
    core: Arc<Core>,
}

impl ThreadedPool {
    /// A builder for a pool whose thread runs `runtime`.
    pub fn builder(runtime: ThreadRuntime) -> ThreadedPoolBuilder {
        ThreadedPoolBuilder::new(runtime)
    }

    pub(crate) fn from_core(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Submits `fut` and returns at once with its handle; it waits in the queue if `size`
    /// tasks already run. [`ThreadedError::Stopped`] after `stop`, with `fut` dropped.
    pub fn spawn<F>(&self, fut: F) -> Result<ThreadedHandle<F::Output>, ThreadedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.core.submit(fut)
    }

    /// Runs `fut` on the pool and blocks the calling thread until its output is ready.
    ///
    /// Errors: [`ThreadedError::Stopped`] after `stop`; [`ThreadedError::OnPoolThread`] on
    /// the pool's thread or from its tasks (`fut` is dropped unrun in both cases); and
    /// [`ThreadedError::Task`] if the task was cancelled, timed out or panicked.
    pub fn run<F>(&self, fut: F) -> Result<F::Output, ThreadedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.core.check_off_thread("ThreadedPool::run")?;
        let mut handle = self.core.submit(fut)?;
        block_on(&mut handle, None).expect("no deadline")
    }

    /// Refuses new work, lets every submitted task finish, runs teardown, and joins the
    /// thread. Returns [`ThreadedError::Teardown`] if teardown failed (to the first caller
    /// only). Calling it again, or after `stop_now`, waits for the same end.
    pub fn stop(&self) -> Result<(), ThreadedError> {
        self.core.stop_blocking(false)
    }

    /// Like [`stop`](Self::stop), but cancels the running and queued tasks instead of
    /// letting them finish. Teardown still runs, after they have all ended.
    pub fn stop_now(&self) -> Result<(), ThreadedError> {
        self.core.stop_blocking(true)
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

    /// A snapshot of the inner pool's counters: running, queued, ended, cancelled...
    pub fn stats(&self) -> PoolStats {
        self.core.pool().stats()
    }

    /// The inner [`TaskPool`], for what the front end does not cover: `set_limit`, `tasks`,
    /// cancelling by id, `map`. Work spawned on it directly does not get the builder's
    /// `timeout`.
    pub fn task_pool(&self) -> &TaskPool {
        self.core.pool()
    }
}

impl Drop for ThreadedPool {
    /// Stops as [`stop`](Self::stop) does, blocking until the thread has ended. Dropped on
    /// the pool's own thread, it only asks the pool to stop, and returns.
    fn drop(&mut self) {
        if self.core.on_pool_thread() {
            self.core.request_stop(false);
            return;
        }
        if let Err(e) = self.core.stop_blocking(false) {
            tracing::error!(pool = %self.core.name(), "while dropping threaded pool {}: {e}", self.core.name());
        }
    }
}

impl fmt::Debug for ThreadedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedPool")
            .field("name", &self.name())
            .field("runtime", &self.runtime())
            .field("stopped", &self.is_stopped())
            .field("stats", &self.stats())
            .finish()
    }
}

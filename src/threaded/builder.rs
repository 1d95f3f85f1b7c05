use super::core::{Hook, PoolThread, Settings};
use super::{AsyncThreadedPool, HookError, ThreadRuntime, ThreadedError, ThreadedPool};
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Configures a [`ThreadedPool`] or an [`AsyncThreadedPool`]. Made by
/// [`ThreadedPool::builder`] or [`AsyncThreadedPool::builder`].
///
/// Hooks are the Rust form of concurrent_tasks' context manager: `setup` runs on the pool's
/// loop after it starts and before any task; `teardown` runs on it after every task has
/// ended, before the loop stops. Their futures run on the pool's thread, so they need not be
/// `Send`. To share what setup opens with the tasks, put it somewhere both can reach, such
/// as an `Arc<OnceLock<_>>`:
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{ThreadRuntime, ThreadedPool};
/// use std::sync::{Arc, OnceLock};
/// use std::time::Duration;
///
/// struct Connection { url: String }
/// let conn: Arc<OnceLock<Connection>> = Arc::default();
/// let opened = conn.clone();
/// let pool = ThreadedPool::builder(ThreadRuntime::Smol)
///     .name("db")
///     .size(4)
///     .timeout(Duration::from_secs(30))
///     .setup(move || async move {
///         let _ = opened.set(Connection { url: "db://localhost".into() });
///         Ok::<_, std::io::Error>(())
///     })
///     .teardown(|| async { println!("closing"); Ok::<_, std::io::Error>(()) })
///     .build()?;
/// let c = conn.clone();
/// let url = pool.run(async move { c.get().unwrap().url.clone() })?;
/// assert_eq!(url, "db://localhost");
/// pool.stop()?;
/// # }
/// # Ok::<_, async_taskpool::ThreadedError>(())
/// ```
#[must_use = "a builder does nothing until `build` or `build_async` is called"]
pub struct ThreadedPoolBuilder {
    pub(crate) runtime: ThreadRuntime,
    pub(crate) name: Option<String>,
    pub(crate) size: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) track_durations: bool,
    pub(crate) setup: Option<Hook>,
    pub(crate) teardown: Option<Hook>,
}

impl ThreadedPoolBuilder {
    fn into_settings(self) -> Settings {
        Settings {
            runtime: self.runtime,
            name: self.name,
            size: self.size,
            timeout: self.timeout,
            track_durations: self.track_durations,
            setup: self.setup,
            teardown: self.teardown,
        }
    }
}

fn hook<C, F, E>(f: C) -> Hook
where
    C: FnOnce() -> F + Send + 'static,
    F: Future<Output = Result<(), E>> + 'static,
    E: Into<HookError>,
{
    Box::new(move || {
        let fut = f();
        Box::pin(async move { fut.await.map_err(Into::into) })
    })
}

impl ThreadedPoolBuilder {
    pub(crate) fn new(runtime: ThreadRuntime) -> Self {
        Self {
            runtime,
            name: None,
            size: None,
            timeout: None,
            track_durations: false,
            setup: None,
            teardown: None,
        }
    }

    /// The name of the thread and of the pool in logs (default `ThreadedPool-{k}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// At most `size` tasks run at once; the others wait in FIFO order (default: no limit).
    /// Zero is refused by `build`. Change it later with
    /// [`task_pool().set_limit`](crate::TaskPool::set_limit).
    pub fn size(mut self, size: usize) -> Self {
        self.size = Some(size);
        self
    }

    /// Cancels a task with [`TaskError::TimedOut`](crate::TaskError::TimedOut) if it runs
    /// longer than `timeout`. Time spent waiting for room under `size` does not count.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keeps each task's queue wait and run time, and their percentiles, as
    /// [`PoolBuilder::track_durations`](crate::PoolBuilder::track_durations) does (off by
    /// default: it reads the clock two or three times per task). Read them from
    /// [`task_pool()`](ThreadedPool::task_pool)`.stats()` and `.tasks()`.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{ThreadRuntime, ThreadedPool};
    /// let pool = ThreadedPool::builder(ThreadRuntime::Smol).track_durations(true).build()?;
    /// pool.run(async {})?;
    /// let run_time = pool.task_pool().stats().run_time.expect("tracked");
    /// assert_eq!(run_time.count, 1);
    /// pool.stop()?;
    /// # }
    /// # Ok::<_, async_taskpool::ThreadedError>(())
    /// ```
    pub fn track_durations(mut self, yes: bool) -> Self {
        self.track_durations = yes;
        self
    }

    /// Runs `f().await` on the pool's loop once it has started, before any task. If it
    /// fails (or panics), `build` returns [`ThreadedError::Setup`] and the thread exits.
    pub fn setup<C, F, E>(mut self, f: C) -> Self
    where
        C: FnOnce() -> F + Send + 'static,
        F: Future<Output = Result<(), E>> + 'static,
        E: Into<HookError>,
    {
        self.setup = Some(hook(f));
        self
    }

    /// Runs `f().await` on the pool's loop when it stops, after every task has ended. If it
    /// fails (or panics), `stop` returns [`ThreadedError::Teardown`]. It runs on `stop`,
    /// `stop_now` and drop, but not if setup failed.
    pub fn teardown<C, F, E>(mut self, f: C) -> Self
    where
        C: FnOnce() -> F + Send + 'static,
        F: Future<Output = Result<(), E>> + 'static,
        E: Into<HookError>,
    {
        self.teardown = Some(hook(f));
        self
    }

    /// Starts the thread and blocks until setup has run. For synchronous code; from async
    /// code use [`build_async`](Self::build_async).
    ///
    /// Errors: [`ThreadedError::Setup`] (the thread has exited), [`ThreadedError::Start`],
    /// and [`ThreadedError::Pool`] for a `size` of 0.
    pub fn build(self) -> Result<ThreadedPool, ThreadedError> {
        let core = PoolThread::start(self.into_settings())?;
        core.wait_ready_blocking()?;
        Ok(ThreadedPool::from_core(core))
    }

    /// Starts the thread and waits, without blocking the caller's executor, until setup has
    /// run. Errors as [`build`](Self::build).
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// # smol::block_on(async {
    /// use async_taskpool::{AsyncThreadedPool, ThreadRuntime};
    /// let pool = AsyncThreadedPool::builder(ThreadRuntime::Smol).build_async().await?;
    /// assert_eq!(pool.run(async { 2 + 2 }).await?, 4);
    /// pool.stop().await?;
    /// # Ok::<_, async_taskpool::ThreadedError>(())
    /// # }).unwrap(); }
    /// ```
    pub async fn build_async(self) -> Result<AsyncThreadedPool, ThreadedError> {
        let core = PoolThread::start(self.into_settings())?;
        // If this future is dropped while setup runs, the thread must not wait for a `stop`
        // that nobody can call any more.
        struct StopIfDropped<'a>(&'a PoolThread, bool);
        impl Drop for StopIfDropped<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.request_stop(false);
                }
            }
        }
        let mut guard = StopIfDropped(&core, true);
        let ready = core.wait_ready().await;
        guard.1 = false;
        drop(guard);
        ready?;
        Ok(AsyncThreadedPool::from_core(core))
    }
}

impl fmt::Debug for ThreadedPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedPoolBuilder")
            .field("runtime", &self.runtime)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("timeout", &self.timeout)
            .field("track_durations", &self.track_durations)
            .field("setup", &self.setup.is_some())
            .field("teardown", &self.teardown.is_some())
            .finish()
    }
}

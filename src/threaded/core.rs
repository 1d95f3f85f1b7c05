//! What both front ends share: the thread, its loop, the inner pool, and stopping.

use super::driver::Driver;
use super::{HookError, ThreadRuntime, ThreadedError, ThreadedHandle};
use crate::builder::TaskBuilder;
use crate::error::{ExecError, PoolError};
use crate::pool::TaskPool;
use crate::signal::Signal;
use crate::sync::lock::{lock as lock_ranked, Locked, Rank};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// The state the pool's thread shares with the callers.
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) pool: TaskPool,
    /// Set once setup has run; `setup_error` says how it went.
    ready: Signal,
    setup_error: Mutex<Option<ThreadedError>>,
    /// Set by `stop`/`stop_now`: the loop drains, runs teardown and returns.
    stop: Signal,
    /// Set when the thread is about to exit, whatever happened.
    ended: Signal,
    teardown_error: Mutex<Option<ThreadedError>>,
}

pub(crate) struct PoolThread {
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime: ThreadRuntime,
    timeout: Option<Duration>,
    thread_id: ThreadId,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A setup or teardown hook: a one-shot closure making a future that runs on the pool's
/// thread (so it need not be `Send`).
pub(crate) type Hook =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), HookError>>>> + Send>;

/// What a threaded pool is started with (the builder's settings).
pub(crate) struct Settings {
    pub(crate) runtime: ThreadRuntime,
    pub(crate) name: Option<String>,
    pub(crate) size: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) track_durations: bool,
    pub(crate) setup: Option<Hook>,
    pub(crate) teardown: Option<Hook>,
}

impl PoolThread {
    /// Starts the thread and its loop; does not wait for setup.
    pub(crate) fn start(b: Settings) -> Result<Arc<Self>, ThreadedError> {
        let name: Arc<str> = b
            .name
            .unwrap_or_else(|| {
                format!("ThreadedPool-{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed))
            })
            .into();
        let start_error = |source| ThreadedError::Start {
            pool: name.to_string(),
            source,
        };
        let driver = Driver::new(b.runtime).map_err(start_error)?;
        let mut pool = TaskPool::builder(driver.spawner())
            .name(name.to_string())
            .track_durations(b.track_durations);
        if let Some(size) = b.size {
            pool = pool.limit(size);
        }
        let shared = Arc::new(Shared {
            name: name.clone(),
            pool: pool.build()?,
            ready: Signal::default(),
            setup_error: Mutex::new(None),
            stop: Signal::default(),
            ended: Signal::default(),
            teardown_error: Mutex::new(None),
        });
        let on_thread = shared.clone();
        let (setup, teardown) = (b.setup, b.teardown);
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || thread_main(on_thread, driver, setup, teardown))
            .map_err(start_error)?;
        tracing::info!(pool = %name, runtime = ?b.runtime, limit = ?b.size, "threaded pool {name} started");
        Ok(Arc::new(Self {
            shared,
            runtime: b.runtime,
            timeout: b.timeout,
            thread_id: thread.thread().id(),
            thread: Mutex::new(Some(thread)),
        }))
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.name
    }

    pub(crate) fn thread_id(&self) -> ThreadId {
        self.thread_id
    }

    pub(crate) fn pool(&self) -> &TaskPool {
        &self.shared.pool
    }

    /// The outcome of setup, once `ready` is set. On failure the thread is joined first.
    fn setup_outcome(&self) -> Result<(), ThreadedError> {
        match lock(&self.shared.setup_error).take() {
            None => Ok(()),
            Some(e) => {
                self.shared.ended.wait_blocking();
                let _ = self.join_thread();
                Err(e)
            }
        }
    }

    pub(crate) fn wait_ready_blocking(&self) -> Result<(), ThreadedError> {
        self.shared.ready.wait_blocking();
        self.setup_outcome()
    }

    pub(crate) async fn wait_ready(&self) -> Result<(), ThreadedError> {
        self.shared.ready.wait().await;
        if lock(&self.shared.setup_error).is_some() {
            // The thread is on its way out; wait for that without blocking, then join.
            self.shared.ended.wait().await;
        }
        self.setup_outcome()
    }

    /// Whether the caller runs on the pool's thread or inside one of its tasks, where
    /// blocking on the pool would deadlock.
    pub(crate) fn on_pool_thread(&self) -> bool {
        thread::current().id() == self.thread_id
            || crate::engine::current::inside_pool(self.pool().core().serial)
    }

    pub(crate) fn check_off_thread(&self, method: &'static str) -> Result<(), ThreadedError> {
        if self.on_pool_thread() {
            return Err(ThreadedError::OnPoolThread {
                pool: self.name().to_owned(),
                method,
            });
        }
        Ok(())
    }

    /// A task with the builder's options.
    fn task(&self) -> TaskBuilder<'_> {
        let task = self.pool().build_task();
        match self.timeout {
            Some(after) => task.timeout(after),
            None => task,
        }
    }

    fn refused(&self, e: PoolError) -> ThreadedError {
        match e {
            PoolError::Closed { .. } => ThreadedError::Stopped {
                pool: self.name().to_owned(),
            },
            e => e.into(),
        }
    }

    pub(crate) fn submit<F>(
        self: &Arc<Self>,
        fut: F,
    ) -> Result<ThreadedHandle<F::Output>, ThreadedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // On refusal the pool drops the future here: nothing is left behind.
        match self.task().spawn_queued(fut) {
            Ok(handle) => Ok(ThreadedHandle::new(handle, self.clone())),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Runs `fut` and waits for its output without blocking; dropping this cancels it.
    pub(crate) async fn exec<F>(&self, fut: F) -> Result<F::Output, ThreadedError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.task().exec(fut).await.map_err(|e| match e {
            ExecError::Pool(e) => self.refused(e),
            ExecError::Task(e) => e.into(),
        })
    }

    /// Refuses new work at once and tells the loop to drain (or cancel) and tear down.
    pub(crate) fn request_stop(&self, cancel: bool) {
        let pool = self.pool();
        pool.close();
        if cancel {
            pool.cancel_all();
        }
        if !self.shared.stop.is_set() {
            tracing::info!(pool = %self.name(), cancel, "stopping threaded pool {}", self.name());
        }
        self.shared.stop.set();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stop.is_set()
    }

    pub(crate) fn stop_blocking(&self, cancel: bool) -> Result<(), ThreadedError> {
        self.check_off_thread(if cancel { "stop_now" } else { "stop" })?;
        self.request_stop(cancel);
        self.shared.ended.wait_blocking();
        self.finish()
    }

    pub(crate) async fn stop_async(&self, cancel: bool) -> Result<(), ThreadedError> {
        // Awaited from a task or hook of this pool, it would wait for itself.
        self.check_off_thread(if cancel { "stop_now" } else { "stop" })?;
        self.request_stop(cancel);
        self.shared.ended.wait().await;
        self.finish()
    }

    /// After `ended`: joins the thread (which has nothing left to do) and reports teardown.
    fn finish(&self) -> Result<(), ThreadedError> {
        self.join_thread()?;
        match lock(&self.shared.teardown_error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn join_thread(&self) -> Result<(), ThreadedError> {
        let thread = lock(&self.thread).take();
        match thread.map(JoinHandle::join) {
            Some(Err(_)) => Err(ThreadedError::ThreadPanicked {
                pool: self.name().to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Runs on the way out of the thread, even if it unwinds: nothing may wait forever.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        if thread::panicking() {
            tracing::error!(pool = %shared.name, "the thread of threaded pool {} panicked", shared.name);
            shared.pool.close();
            shared.pool.cancel_all();
            if !shared.ready.is_set() {
                *lock(&shared.setup_error) = Some(ThreadedError::ThreadPanicked {
                    pool: shared.name.to_string(),
                });
                shared.ready.set();
            }
        }
        tracing::debug!(pool = %shared.name, "the thread of threaded pool {} ended", shared.name);
        shared.ended.set();
    }
}

fn thread_main(shared: Arc<Shared>, driver: Driver, setup: Option<Hook>, teardown: Option<Hook>) {
    let _exit = ExitGuard(shared.clone());
    driver.block_on(async {
        if let Err(source) = run_hook(setup).await {
            tracing::error!(pool = %shared.name, "setup hook of threaded pool {} failed: {source}", shared.name);
            shared.pool.close();
            *lock(&shared.setup_error) = Some(ThreadedError::Setup {
                pool: shared.name.to_string(),
                source,
            });
            shared.ready.set();
            return;
        }
        shared.ready.set();
        shared.stop.wait().await;
        // `stop` closed the pool; this waits for everything it accepted. The loop is not a
        // task of the pool, so `join` cannot refuse.
        let _ = shared.pool.join().await;
        if let Err(source) = run_hook(teardown).await {
            tracing::error!(pool = %shared.name, "teardown hook of threaded pool {} failed: {source}", shared.name);
            *lock(&shared.teardown_error) = Some(ThreadedError::Teardown {
                pool: shared.name.to_string(),
                source,
            });
        }
    });
}

/// Runs a hook, turning a panic (in the call or in the future) into its error.
async fn run_hook(hook: Option<Hook>) -> Result<(), HookError> {
    let Some(hook) = hook else { return Ok(()) };
    let caught = match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        Err(payload) => Err(payload),
    };
    caught.unwrap_or_else(|payload| {
        let msg = crate::error::panic_message(&*payload);
        Err(format!("the hook panicked: {msg}").into())
    })
}

/// This module's locks: never held while user code runs.
fn lock<T>(m: &std::sync::Mutex<T>) -> Locked<'_, T> {
    lock_ranked(m, Rank::Outside)
}

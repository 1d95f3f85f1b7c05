use crate::{BoxFuture, SpawnError, Spawner};
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Spawns on a tokio runtime, through its [`Handle`].
///
/// The runtime must have its time driver enabled (`enable_time()` or `enable_all()` on the
/// builder, as `#[tokio::main]` does) for tasks with a run timeout.
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::{Spawner, TokioSpawner};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let spawner = TokioSpawner::from_handle(rt.handle().clone());
/// let (tx, rx) = tokio::sync::oneshot::channel();
/// spawner.spawn(Box::pin(async move { tx.send(5).unwrap() })).unwrap();
/// assert_eq!(rt.block_on(rx).unwrap(), 5);
/// ```
#[derive(Debug, Clone)]
pub struct TokioSpawner {
    handle: Handle,
}

impl TokioSpawner {
    /// Spawns on the runtime behind `handle`, from any thread.
    pub fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }

    /// Spawns on the runtime this thread is running inside.
    ///
    /// # Panics
    /// Outside a tokio runtime; use [`TokioSpawner::try_current`] to get an error instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
    /// let spawner = async_taskpool::runtime::TokioSpawner::current();
    /// # let _ = spawner; }
    /// ```
    pub fn current() -> Self {
        Self::try_current().expect(
            "TokioSpawner::current() called outside a tokio runtime: call it inside one, \
             or use TokioSpawner::from_handle",
        )
    }

    /// Like [`TokioSpawner::current`], but returns an error instead of panicking outside a
    /// tokio runtime: `Err(TryCurrentError)`, which says why (no runtime, or one shutting
    /// down).
    ///
    /// ```
    /// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
    /// use async_taskpool::runtime::TokioSpawner;
    /// assert!(TokioSpawner::try_current().is_err()); // not inside a runtime here
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// assert!(rt.block_on(async { TokioSpawner::try_current() }).is_ok());
    /// ```
    pub fn try_current() -> Result<Self, tokio::runtime::TryCurrentError> {
        Handle::try_current().map(Self::from_handle)
    }

    /// The runtime handle this spawner uses.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Spawner for TokioSpawner {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        // A shut-down runtime drops the future instead of running it; the pool handles that.
        drop(self.handle.spawn(fut));
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        let handle = self.handle.clone();
        Box::pin(async move {
            // `sleep` binds to the runtime current at creation: enter ours, whoever polls.
            let sleep = {
                let _entered = handle.enter();
                tokio::time::sleep(duration)
            };
            sleep.await
        })
    }

    fn runtime_name(&self) -> &'static str {
        "tokio"
    }

    /// True when called from one of this runtime's tasks and it is a current-thread runtime;
    /// a multi-thread runtime, another runtime, or none is `false`. So is its `block_on`
    /// future: when that yields, tokio polls its driver (a system call) before polling it
    /// again, where a yielding task just goes back in the run queue, so a task moved there
    /// would pay for every yield (measured: an `exec` of tasks that yield 4 times took
    /// 1.9x as long run in `block_on`).
    fn is_current_thread(&self) -> bool {
        self.handle.runtime_flavor() == RuntimeFlavor::CurrentThread
            && tokio::task::try_id().is_some()
            && Handle::try_current().is_ok_and(|h| h.id() == self.handle.id())
    }

    fn now(&self) -> std::time::Instant {
        // The runtime's clock (paused and advanced in tests), whoever asks.
        let _entered = self.handle.enter();
        tokio::time::Instant::now().into_std()
    }
}

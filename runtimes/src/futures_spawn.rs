use crate::{BoxFuture, SpawnError, Spawner};
use futures_task::{FutureObj, Spawn};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

type SleepFn = dyn Fn(Duration) -> BoxFuture + Send + Sync;

/// Adapts any [`futures_task::Spawn`] executor (for example `futures::executor::ThreadPool`).
///
/// `Spawn` has no timer, so you hand one in: a function from a duration to a future that
/// completes after it. Pools built on this adapter only use the timer for run timeouts.
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::{FuturesSpawner, Spawner};
/// use std::time::Duration;
///
/// let pool = futures::executor::ThreadPool::new().unwrap();
/// let spawner = FuturesSpawner::new(pool, |d: Duration| {
///     Box::pin(async move {
///         // a thread-based timer; use your executor's own timer where it has one
///         let (tx, rx) = futures::channel::oneshot::channel::<()>();
///         std::thread::spawn(move || { std::thread::sleep(d); let _ = tx.send(()); });
///         let _ = rx.await;
///     })
/// });
/// futures::executor::block_on(spawner.sleep(Duration::from_millis(1)));
/// ```
#[derive(Clone)]
pub struct FuturesSpawner<S> {
    spawn: S,
    sleep: Arc<SleepFn>,
}

impl<S: Spawn + Send + Sync + 'static> FuturesSpawner<S> {
    /// Wraps `spawn`, using `sleep` as the timer.
    pub fn new<T>(spawn: S, sleep: T) -> Self
    where
        T: Fn(Duration) -> BoxFuture + Send + Sync + 'static,
    {
        Self {
            spawn,
            sleep: Arc::new(sleep),
        }
    }
}

impl<S> fmt::Debug for FuturesSpawner<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FuturesSpawner").finish_non_exhaustive()
    }
}

impl<S: Spawn + Send + Sync + 'static> Spawner for FuturesSpawner<S> {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        self.spawn
            .spawn_obj(FutureObj::new(fut))
            .map_err(|_| SpawnError::shutdown("futures"))
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        (self.sleep)(duration)
    }

    fn runtime_name(&self) -> &'static str {
        "futures"
    }
}

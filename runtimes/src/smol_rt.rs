use crate::{BoxFuture, SpawnError, Spawner};
use smol::Executor;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Spawns on smol: its global executor, or an [`Executor`] of your own.
///
/// Timers come from `async-io`, which smol uses for everything.
///
/// A spawner made with [`from_executor`](SmolSpawner::from_executor) does not keep the
/// executor alive: when you drop your executor, the tasks on it are dropped with it (a pool
/// resolves their handles as dropped by the runtime), and later spawns fail with
/// [`SpawnError`]. Keep the executor for as long as its pools work: you need it anyway, to
/// run it.
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::{SmolSpawner, Spawner};
/// use std::sync::Arc;
///
/// let ex = Arc::new(smol::Executor::new());
/// let spawner = SmolSpawner::from_executor(ex.clone());
/// let (tx, rx) = smol::channel::bounded(1);
/// spawner.spawn(Box::pin(async move { tx.send(3).await.unwrap() })).unwrap();
/// assert_eq!(smol::block_on(ex.run(rx.recv())).unwrap(), 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SmolSpawner {
    executor: Option<Weak<Executor<'static>>>,
}

impl SmolSpawner {
    /// Spawns with `smol::spawn`, on smol's global executor (threads start on demand).
    pub fn global() -> Self {
        Self { executor: None }
    }

    /// Spawns on `executor`. Someone must drive it (`executor.run(..)`) for tasks to progress,
    /// and keep it: the spawner holds it only weakly (see above).
    pub fn from_executor(executor: Arc<Executor<'static>>) -> Self {
        Self {
            executor: Some(Arc::downgrade(&executor)),
        }
    }
}

impl Spawner for SmolSpawner {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        match &self.executor {
            Some(ex) => match ex.upgrade() {
                Some(ex) => ex.spawn(fut).detach(),
                None => return Err(SpawnError::shutdown("smol")),
            },
            None => smol::spawn(fut).detach(),
        }
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    fn runtime_name(&self) -> &'static str {
        "smol"
    }

    // `is_current_thread` keeps its default (`false`): an `async_executor::Executor` cannot
    // tell whether the calling task is one of its own, nor how many threads run it.
}

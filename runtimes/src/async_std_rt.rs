#![allow(deprecated)]
use crate::{BoxFuture, SpawnError, Spawner};
use std::time::Duration;

/// Spawns on async-std's global executor.
///
/// **Deprecated:** async-std is discontinued upstream; prefer smol (the `smol` feature and
/// `SmolSpawner`). This adapter still works fully and is tested like the others.
///
/// ```
/// # #![allow(deprecated)]
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::{AsyncStdSpawner, Spawner};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// AsyncStdSpawner::new().spawn(Box::pin(async move { tx.send(1).unwrap() })).unwrap();
/// assert_eq!(rx.recv().unwrap(), 1);
/// ```
#[deprecated(note = "async-std is discontinued upstream; prefer smol (`SmolSpawner`)")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdSpawner;

impl AsyncStdSpawner {
    /// The async-std global executor.
    pub fn new() -> Self {
        Self
    }
}

impl Spawner for AsyncStdSpawner {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        // Dropping an async-std JoinHandle detaches the task.
        drop(async_std::task::spawn(fut));
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(async_std::task::sleep(duration))
    }

    fn runtime_name(&self) -> &'static str {
        "async-std"
    }

    // `is_current_thread` keeps its default (`false`): async-std's executor has several
    // threads, and its `block_on` runs on the caller's.
}

use crate::error::{PoolError, TaskError};
use std::time::Duration;

/// Why a [`BackgroundTask`](crate::BackgroundTask) or [`PeriodicTask`](crate::PeriodicTask)
/// call did not give an output.
///
/// ```
/// use async_taskpool::BackgroundError;
/// let err = BackgroundError::NotRestartable { name: "uploader".into() };
/// assert!(err.to_string().contains("spawn_with"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackgroundError {
    /// The task ended without an output: it panicked, timed out or was cancelled.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// An earlier `join` or `stop` already took this run's output (or error).
    #[error(
        "the outcome of background task `{name}` was already taken by an earlier `join` or \
         `stop`; keep the first result, or `restart()` for a new run"
    )]
    OutcomeTaken {
        /// The task's name.
        name: String,
    },
    /// `restart` on a task started from a single future, which cannot be made again.
    #[error(
        "background task `{name}` was started from a single future and cannot be restarted; \
         start it with `spawn_with(spawner, factory)` to make it restartable"
    )]
    NotRestartable {
        /// The task's name.
        name: String,
    },
    /// A periodic task needs a non-zero interval.
    #[error("invalid interval {interval:?} for periodic task `{name}`: it must be more than zero")]
    InvalidInterval {
        /// The task's name.
        name: String,
        /// The interval given.
        interval: Duration,
    },
    /// The call was made from inside the task itself, where it would wait for itself.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl BackgroundError {
    /// The task's own error, if it panicked, timed out or was cancelled.
    ///
    /// ```
    /// use async_taskpool::{BackgroundError, TaskError, TaskId};
    /// let err = BackgroundError::from(TaskError::Cancelled { id: TaskId::new(0) });
    /// assert!(err.task_error().is_some_and(TaskError::is_cancelled));
    /// ```
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            Self::Task(e) => Some(e),
            _ => None,
        }
    }
}

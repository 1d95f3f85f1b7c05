use crate::error::{PoolError, TaskError};

/// The error a setup or teardown hook returns (any error type converts into it).
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`ThreadedPool`](crate::ThreadedPool) call failed.
///
/// Every message names the pool and says what to do instead.
///
/// ```
/// use async_taskpool::ThreadedError;
/// let err = ThreadedError::Stopped { pool: "db".into() };
/// assert_eq!(err.to_string(), "threaded pool `db` is stopped and accepts no new work; build a new pool");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThreadedError {
    /// The pool was stopped (or is stopping): the work was refused, and its future dropped.
    #[error("threaded pool `{pool}` is stopped and accepts no new work; build a new pool")]
    Stopped {
        /// The pool's name.
        pool: String,
    },
    /// A call that waits for the pool was made on its own thread or from one of its tasks,
    /// where it would wait for itself.
    #[error(
        "`{method}` waits for the pool, and was called on the thread or from a task of \
         threaded pool `{pool}`, where it would wait for itself forever; `.await` a handle \
         from `spawn` instead, or call it from another thread"
    )]
    OnPoolThread {
        /// The pool's name.
        pool: String,
        /// The method called.
        method: &'static str,
    },
    /// The setup hook failed or panicked; the pool's thread has exited.
    #[error(
        "the setup hook of threaded pool `{pool}` failed, so the pool did not start: {source}"
    )]
    Setup {
        /// The pool's name.
        pool: String,
        /// What the hook returned (or its panic message).
        source: HookError,
    },
    /// The teardown hook failed or panicked, after every task had ended; the thread has exited.
    #[error(
        "the teardown hook of threaded pool `{pool}` failed (all its tasks had ended): {source}"
    )]
    Teardown {
        /// The pool's name.
        pool: String,
        /// What the hook returned (or its panic message).
        source: HookError,
    },
    /// The thread or its runtime could not be created.
    #[error("could not start the thread or the runtime of threaded pool `{pool}`: {source}")]
    Start {
        /// The pool's name.
        pool: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The pool's thread panicked outside any task or hook (a bug in this crate or the runtime).
    #[error("the thread of threaded pool `{pool}` panicked; its tasks were cancelled")]
    ThreadPanicked {
        /// The pool's name.
        pool: String,
    },
    /// The inner [`TaskPool`](crate::TaskPool) refused: an invalid `size`, or it was locked.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The task ran and failed: cancelled, timed out or panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl ThreadedError {
    /// The task's own error, if it was cancelled, timed out or panicked.
    ///
    /// ```
    /// use async_taskpool::{TaskError, TaskId, ThreadedError};
    /// let err = ThreadedError::from(TaskError::Cancelled { id: TaskId::new(2) });
    /// assert!(err.task_error().is_some_and(TaskError::is_cancelled));
    /// ```
    pub fn task_error(&self) -> Option<&TaskError> {
        match self {
            Self::Task(e) => Some(e),
            _ => None,
        }
    }
}

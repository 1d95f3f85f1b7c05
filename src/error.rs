use crate::id::TaskId;
use crate::sync::lock::{lock, Rank};
use std::any::Any;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

pub use async_taskpool_runtime::SpawnError;

/// Why the pool refused a request.
///
/// Every message names the pool and says what to do instead.
///
/// ```
/// use async_taskpool::PoolError;
/// let err = PoolError::Locked { pool: "crawler".into() };
/// assert_eq!(err.to_string(), "pool `crawler` is locked and accepts no new work; call `unlock()` first");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool was closed (by `close` or `gather_and_close`) and takes no new work, ever.
    #[error("pool `{pool}` is closed and accepts no new work; create a new pool")]
    Closed {
        /// The pool's name.
        pool: String,
    },
    /// The pool is locked: new work is refused until `unlock`.
    #[error("pool `{pool}` is locked and accepts no new work; call `unlock()` first")]
    Locked {
        /// The pool's name.
        pool: String,
    },
    /// `try_spawn` found no free slot (or earlier work still queued).
    #[error(
        "pool `{pool}` is full ({limit} tasks running); use `spawn().await` to wait for room \
         or `spawn_queued` to queue"
    )]
    Full {
        /// The pool's name.
        pool: String,
        /// The limit in force.
        limit: usize,
    },
    /// `try_spawn` found a free slot but no token of the pool's rate limit
    /// ([`PoolBuilder::rate_limit`](crate::PoolBuilder::rate_limit)), or earlier work queued
    /// for one: the quota allows the next start in `retry_in`. Nothing was queued. (With no
    /// free slot, it is [`Full`](PoolError::Full).)
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Quota, runtime::TokioSpawner, PoolError, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current())
    ///     .rate_limit(Quota::per_second(1)?)
    ///     .build()?;
    /// pool.try_spawn(async {})?; // the one token of the burst
    /// let refused = pool.try_spawn(async {}).unwrap_err();
    /// assert!(matches!(refused.error(), PoolError::RateLimited { .. }));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    #[error(
        "pool `{pool}` has no rate-limit token now (the next is due in {retry_in:?}); use \
         `spawn().await` to wait for one, `spawn_queued` to queue, or `set_rate_limit` to \
         change the quota"
    )]
    RateLimited {
        /// The pool's name.
        pool: String,
        /// How long until the quota allows the next start.
        retry_in: std::time::Duration,
    },
    /// No task with this id was ever submitted to the pool.
    #[error("pool `{pool}` has no task with id {id}")]
    TaskNotFound {
        /// The pool's name.
        pool: String,
        /// The id asked for.
        id: TaskId,
    },
    /// The task was already asked to cancel and is winding down.
    #[error("task {id} of pool `{pool}` is already being cancelled")]
    AlreadyCancelled {
        /// The pool's name.
        pool: String,
        /// The id asked for.
        id: TaskId,
    },
    /// The task's future already finished (it may still be running its callbacks).
    #[error("task {id} of pool `{pool}` has already ended")]
    AlreadyEnded {
        /// The pool's name.
        pool: String,
        /// The id asked for.
        id: TaskId,
    },
    /// A `Group` handle's group ended and the pool forgot it (it was cancelled, or it finished
    /// and was flushed): its name may belong to a newer group now, which the handle never
    /// touches.
    #[error(
        "group `{name}` of pool `{pool}` has ended and the pool no longer knows it; a newer \
         group may have its name (use `TaskPool::cancel_group` to act on a group by name)"
    )]
    GroupEnded {
        /// The pool's name.
        pool: String,
        /// The group's name.
        name: String,
    },
    /// No group of that name is known (it never existed, or was cancelled or flushed).
    #[error("pool `{pool}` has no group named `{name}`")]
    GroupNotFound {
        /// The pool's name.
        pool: String,
        /// The group name asked for.
        name: String,
    },
    /// A group of that name is still known to the pool; pick another or `flush` first.
    #[error("pool `{pool}` already has a group named `{name}`; choose another name or flush ended groups")]
    GroupExists {
        /// The pool's name.
        pool: String,
        /// The group name asked for.
        name: String,
    },
    /// A limit (pool size, `num_concurrent`, a weight) was out of range.
    #[error("invalid {what} {value}: it must be at least 1; {fix}", fix = limit_fix(what))]
    InvalidLimit {
        /// Which limit.
        what: &'static str,
        /// The value given.
        value: usize,
    },
    /// The call would wait for the very task it is called from, which can never happen.
    #[error(
        "`{method}` was called from inside a task of pool `{pool}` and would wait for itself \
         forever; call it from outside the pool"
    )]
    CalledFromOwnTask {
        /// The pool's name.
        pool: String,
        /// The method called.
        method: &'static str,
    },
    /// The key function given to
    /// [`GroupBuilder::rate_limit_by`](crate::GroupBuilder::rate_limit_by) takes another type
    /// than the group's items.
    #[error(
        "pool `{pool}`: the `rate_limit_by` key function takes `&{key_takes}`, but the group's \
         items are `{items}`; give the closure's argument the item type: `|item: &{items}| ...`"
    )]
    RateKeyType {
        /// The pool's name.
        pool: String,
        /// The type the key function takes (by reference).
        key_takes: &'static str,
        /// The group's item type.
        items: &'static str,
    },
}

/// What the caller of each limit can pass instead of 0.
fn limit_fix(what: &str) -> &'static str {
    match what {
        "num_concurrent" => "pass `Concurrency::PoolLimit` to follow the pool's limit",
        "weight" => "weights are relative: give the other groups larger ones instead",
        "ageing" => "it counts the starts that may pass waiting work over; pass a larger one",
        _ => "pass `None` (`set_limit(None)`) for no limit, or `lock()` the pool to pause it",
    }
}

/// How a task failed: the error half of a [`TaskHandle`](crate::TaskHandle)'s output.
///
/// ```
/// use async_taskpool::{TaskError, TaskId};
/// let err = TaskError::Cancelled { id: TaskId::new(4) };
/// assert!(err.is_cancelled());
/// assert_eq!(err.id(), TaskId::new(4));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// Cancelled before it finished (by id, group, `cancel_all`, `stop`, or a handle).
    #[error("task {id} was cancelled")]
    Cancelled {
        /// The task.
        id: TaskId,
    },
    /// The runtime dropped the task before it finished (it shut down, or its executor was
    /// dropped). Its callbacks did not run: no runtime was left to run them.
    #[error("task {id} was dropped by its runtime before it finished (the runtime shut down)")]
    RuntimeDropped {
        /// The task.
        id: TaskId,
    },
    /// The runtime refused to start the task (`Spawner::spawn` failed, typically because it
    /// has shut down); it never ran and its callbacks did not run.
    #[error("task {id} could not be started: the runtime refused to spawn it (has it shut down?)")]
    SpawnFailed {
        /// The task.
        id: TaskId,
    },
    /// Ran longer than its run timeout (queue time is not counted).
    #[error("task {id} timed out after running for {after:?}")]
    TimedOut {
        /// The task.
        id: TaskId,
        /// The timeout that expired.
        after: Duration,
    },
    /// The task waited for a slot longer than its `max_queue_wait` and was shed instead of
    /// starting late: its future never ran (it was dropped). Its `on_end` callback ran
    /// (`on_cancel` did not). See
    /// [`TaskBuilder::max_queue_wait`](crate::TaskBuilder::max_queue_wait).
    #[error(
        "task {id} was shed: it could not start within its max_queue_wait of {waited:?} \
         (raise the pool's limit, or the max_queue_wait)"
    )]
    Shed {
        /// The task.
        id: TaskId,
        /// The longest it was allowed to wait.
        waited: Duration,
    },
    /// The task panicked; the pool and the runtime thread carried on.
    #[error("task {id} panicked: {message}")]
    Panicked {
        /// The task.
        id: TaskId,
        /// The panic message, when it was a string.
        message: String,
        /// The original payload.
        payload: PanicPayload,
    },
    /// The task was retried (see [`TaskBuilder::retry`](crate::TaskBuilder::retry)) and
    /// ended with an error after more than one attempt: `last` is the last attempt's error
    /// (never itself `Retried`). A task that ends in its first attempt has the plain error.
    /// [`is_panic`](Self::is_panic), [`is_timeout`](Self::is_timeout) and the other `is_`
    /// methods look through to `last`; [`last_attempt`](Self::last_attempt) gives it.
    ///
    /// ```
    /// use async_taskpool::{TaskError, TaskId};
    /// let id = TaskId::new(7);
    /// let err = TaskError::Retried { id, attempts: 3, last: Box::new(TaskError::Cancelled { id }) };
    /// assert!(err.is_cancelled());
    /// assert_eq!(err.attempts(), 3);
    /// assert_eq!(err.to_string(), "task 7 failed after 3 attempts; the last one: task 7 was cancelled");
    /// ```
    #[error("task {id} failed after {attempts} attempts; the last one: {last}")]
    Retried {
        /// The task.
        id: TaskId,
        /// How many attempts it was given, the first included: the last one counts even if
        /// it was cancelled before it could start.
        attempts: u32,
        /// The last attempt's error.
        last: Box<TaskError>,
    },
}

impl TaskError {
    /// The task this error is about.
    pub fn id(&self) -> TaskId {
        match self {
            Self::Cancelled { id }
            | Self::RuntimeDropped { id }
            | Self::SpawnFailed { id }
            | Self::TimedOut { id, .. }
            | Self::Shed { id, .. }
            | Self::Panicked { id, .. }
            | Self::Retried { id, .. } => *id,
        }
    }

    /// The error of the task's last attempt: `last` of [`TaskError::Retried`], else the
    /// error itself.
    ///
    /// ```
    /// use async_taskpool::{TaskError, TaskId};
    /// let err = TaskError::Cancelled { id: TaskId::new(1) };
    /// assert!(matches!(err.last_attempt(), TaskError::Cancelled { .. }));
    /// ```
    pub fn last_attempt(&self) -> &TaskError {
        match self {
            Self::Retried { last, .. } => last,
            other => other,
        }
    }

    /// How many attempts the task was given: `attempts` of [`TaskError::Retried`], else 1.
    ///
    /// ```
    /// use async_taskpool::{TaskError, TaskId};
    /// assert_eq!(TaskError::Cancelled { id: TaskId::new(1) }.attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Retried { attempts, .. } => *attempts,
            _ => 1,
        }
    }

    /// Whether the task was cancelled (in its last attempt, for a retried task).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.last_attempt(), Self::Cancelled { .. })
    }

    /// Whether the task hit its run timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.last_attempt(), Self::TimedOut { .. })
    }

    /// Whether the task was shed: it could not start within its `max_queue_wait`.
    ///
    /// ```
    /// use async_taskpool::{TaskError, TaskId};
    /// let err = TaskError::Shed { id: TaskId::new(1), waited: std::time::Duration::from_secs(2) };
    /// assert!(err.is_shed() && !err.is_cancelled());
    /// ```
    pub fn is_shed(&self) -> bool {
        matches!(self.last_attempt(), Self::Shed { .. })
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.last_attempt(), Self::Panicked { .. })
    }

    /// Whether the runtime dropped the task or refused to start it.
    pub fn is_runtime_dropped(&self) -> bool {
        matches!(
            self.last_attempt(),
            Self::RuntimeDropped { .. } | Self::SpawnFailed { .. }
        )
    }

    pub(crate) fn panicked(id: TaskId, payload: Box<dyn Any + Send>) -> Self {
        let message = panic_message(&*payload);
        Self::Panicked {
            id,
            message,
            payload: PanicPayload(Mutex::new(Some(payload))),
        }
    }
}

/// The value a task panicked with. Take it with [`PanicPayload::take`] to re-raise it with
/// `std::panic::resume_unwind`.
///
/// ```
/// use async_taskpool::TaskError;
/// # fn check(err: TaskError) {
/// if let TaskError::Panicked { payload, .. } = err {
///     if let Some(p) = payload.take() { std::panic::resume_unwind(p) }
/// }
/// # }
/// ```
pub struct PanicPayload(Mutex<Option<Box<dyn Any + Send>>>);

impl PanicPayload {
    /// Takes the payload out; later calls return `None`.
    pub fn take(&self) -> Option<Box<dyn Any + Send>> {
        lock(&self.0, Rank::Outside).take()
    }
}

impl Drop for PanicPayload {
    /// A payload whose own destructor panics is dropped inside a guard: that panic is
    /// logged, and goes no further.
    fn drop(&mut self) {
        let payload = self.0.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = payload {
            if let Err(again) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(p)))
            {
                tracing::error!(
                    "a panic payload's destructor panicked (ignored): {}",
                    panic_message(&*again)
                );
                if let Err(third) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(again)))
                {
                    std::mem::forget(third);
                }
            }
        }
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PanicPayload(..)")
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The error of [`TaskPool::exec`](crate::TaskPool::exec): refused, or ran and failed.
///
/// ```
/// use async_taskpool::{ExecError, PoolError};
/// let err: ExecError = PoolError::Closed { pool: "p".into() }.into();
/// assert!(matches!(err, ExecError::Pool(_)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The pool refused the task.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The task ran and failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// The error of `try_spawn`: why, plus the future back so no work is lost.
///
/// ```
/// use async_taskpool::{PoolError, TrySpawnError};
/// let err = TrySpawnError::new(PoolError::Closed { pool: "p".into() }, async { 1 });
/// let fut = err.into_future(); // still yours to run elsewhere
/// # drop(fut);
/// ```
pub struct TrySpawnError<F> {
    error: PoolError,
    future: F,
}

impl<F> TrySpawnError<F> {
    /// Pairs an error with the future that was refused.
    pub fn new(error: PoolError, future: F) -> Self {
        Self { error, future }
    }

    /// Why the future was refused.
    pub fn error(&self) -> &PoolError {
        &self.error
    }

    /// The refused future.
    pub fn into_future(self) -> F {
        self.future
    }
}

impl<F> fmt::Debug for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrySpawnError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<F> std::error::Error for TrySpawnError<F> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

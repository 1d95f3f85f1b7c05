//! The queue's errors: what went wrong and what to type to fix it.

use crate::JobId;

/// An error from the queue: enqueueing, administering, or running a worker.
///
/// ```
/// use async_taskpool_queue::QueueError;
/// let err = QueueError::InvalidOption { what: "max_attempts".into(), reason: "must be at least 1".into() };
/// assert!(err.to_string().contains("max_attempts"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The database refused or could not be reached.
    #[error(
        "database error while {doing}: {source} (check that PostgreSQL is up and the URL is right)"
    )]
    Database {
        /// What the queue was doing.
        doing: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations failed.
    #[error("could not migrate the queue's schema (`taskpool`): {0}; the role needs CREATE on the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A job's arguments could not be turned into JSON.
    #[error("the arguments of a `{kind}` job do not serialize to JSON: {source}")]
    Serialize {
        /// The job kind.
        kind: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// An option is out of range.
    #[error("invalid {what}: {reason}")]
    InvalidOption {
        /// The option.
        what: String,
        /// Why it was refused, and the accepted range.
        reason: String,
    },
    /// No job with this id exists (any more).
    #[error("no job with id {0} (it never existed, or it completed and its retention passed)")]
    NoSuchJob(JobId),
    /// The worker could not find an async runtime for its timers.
    #[error(transparent)]
    NoRuntime(#[from] async_taskpool::runtime::NoRuntimeError),
    /// The worker's pool refused work for good (it was closed).
    #[error("the worker's pool `{pool}` is closed; give the worker an open pool")]
    PoolClosed {
        /// The pool's name.
        pool: String,
    },
}

impl QueueError {
    pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { doing, source }
    }

    pub(crate) fn invalid(what: &str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            what: what.to_owned(),
            reason: reason.into(),
        }
    }
}

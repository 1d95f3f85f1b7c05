//! Jobs as the queue stores them: ids, states, and a new job's options.

use crate::QueueError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A job's id: the row's key in the queue's table, unique for the life of the database.
///
/// Key idempotent effects by it (see the crate docs, "At-least-once").
///
/// ```
/// use async_taskpool_queue::JobId;
/// assert_eq!(JobId::new(7).get(), 7);
/// assert_eq!(JobId::new(7).to_string(), "7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(i64);

impl JobId {
    /// The id with this number.
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    /// Its number.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i64> for JobId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

/// Where a job is in its life.
///
/// `pending` covers jobs due now, scheduled for later and waiting to be retried; the
/// [`ClusterView`](crate::ClusterView) splits them.
///
/// ```
/// use async_taskpool_queue::JobState;
/// assert_eq!(JobState::parse("dead"), Some(JobState::Dead));
/// assert_eq!(JobState::Dead.as_str(), "dead");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting to run (now, at its `run_at`, or for its next attempt).
    Pending,
    /// Leased by a worker and running there.
    Running,
    /// Its handler returned `Ok`; kept for the retention, then deleted.
    Completed,
    /// Out of attempts, or its arguments did not decode: kept until retried or discarded.
    Dead,
    /// Its task was cancelled through the worker's pool (or its control server).
    Cancelled,
}

impl JobState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "dead" => Self::Dead,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an enqueue did: made a new job, or found a pending or running job with the same
/// unique key and left it alone.
///
/// ```
/// use async_taskpool_queue::{Enqueued, JobId};
/// let e = Enqueued::Existing(JobId::new(3));
/// assert_eq!(e.id(), JobId::new(3));
/// assert!(!e.is_new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enqueued {
    /// A new job.
    New(JobId),
    /// A job with the same unique key was already pending or running; this is its id.
    Existing(JobId),
}

impl Enqueued {
    /// The job's id, new or existing.
    pub fn id(self) -> JobId {
        match self {
            Self::New(id) | Self::Existing(id) => id,
        }
    }

    /// Whether a new job was made.
    pub fn is_new(self) -> bool {
        matches!(self, Self::New(_))
    }
}

/// The most attempts a job may have.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10_000;

/// Attempts a job gets unless told otherwise (as Sidekiq and Faktory: 25).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;

/// When a new job may first run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RunAt {
    Now,
    /// Seconds from the database's `now()`.
    After(f64),
    /// Seconds since the Unix epoch.
    At(f64),
}

/// A job to enqueue: its kind, its arguments as JSON, and its options.
///
/// ```
/// use async_taskpool_queue::NewJob;
/// use std::time::Duration;
///
/// let job = NewJob::new("send_email", &("ada@example.com", 42))?
///     .priority(-1)                       // lower runs first; default 0
///     .delay(Duration::from_secs(60))     // not before a minute from now
///     .max_attempts(5)
///     .unique_key("welcome:ada");         // one pending or running job per key
/// assert_eq!(job.kind(), "send_email");
/// # Ok::<_, async_taskpool_queue::QueueError>(())
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) queue: Option<String>,
    pub(crate) kind: String,
    pub(crate) args: String,
    pub(crate) priority: i16,
    pub(crate) run_at: RunAt,
    pub(crate) max_attempts: u32,
    pub(crate) unique_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with `args` serialized to JSON; fails if they do not serialize.
    pub fn new<A: Serialize + ?Sized>(
        kind: impl Into<String>,
        args: &A,
    ) -> Result<Self, QueueError> {
        let kind = kind.into();
        let args = serde_json::to_string(args).map_err(|source| QueueError::Serialize {
            kind: kind.clone(),
            source,
        })?;
        Ok(Self {
            queue: None,
            kind,
            args,
            priority: 0,
            run_at: RunAt::Now,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
        })
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The queue to put it on, instead of the [`PgQueue`](crate::PgQueue)'s default queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Its priority: lower numbers run first (as in Oban and graphile-worker); default 0.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Not to run before `delay` from now (the database's clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.run_at = RunAt::After(delay.as_secs_f64());
        self
    }

    /// Not to run before `at`. A time in the past means now.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => RunAt::At(d.as_secs_f64()),
            Err(_) => RunAt::Now,
        };
        self
    }

    /// How many times it may run before it is dead: 1 to 10,000, default 25.
    /// Out of range values are refused when the job is enqueued.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// A key that makes the enqueue idempotent: while a job of the same queue with this key
    /// is pending (due, scheduled or waiting to retry) or running, enqueueing another returns
    /// [`Enqueued::Existing`] and adds nothing. Once that job completed, died or was
    /// cancelled, the key is free again.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    pub(crate) fn check(&self) -> Result<(), QueueError> {
        check_max_attempts(self.max_attempts)?;
        if self.kind.is_empty() {
            return Err(QueueError::invalid("kind", "a job kind cannot be empty"));
        }
        if self.queue.as_deref() == Some("") {
            return Err(QueueError::invalid("queue", "a queue name cannot be empty"));
        }
        Ok(())
    }
}

pub(crate) fn check_max_attempts(attempts: u32) -> Result<(), QueueError> {
    if attempts == 0 || attempts > MAX_ATTEMPTS_LIMIT {
        return Err(QueueError::invalid(
            "max_attempts",
            format!("{attempts} is out of range; use 1 to {MAX_ATTEMPTS_LIMIT}"),
        ));
    }
    Ok(())
}

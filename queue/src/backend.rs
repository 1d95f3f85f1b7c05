//! The seam between the worker and a storage engine. PostgreSQL is the one built
//! ([`PgQueue`](crate::PgQueue)); another engine (Redis Streams, NATS JetStream) implements
//! [`Backend`] and the worker, the registry and the admin calls work on it unchanged.

use crate::{ClusterView, DeadJob, JobId, QueueError};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a worker tells the backend about itself when it starts, and in each heartbeat.
///
/// ```
/// use async_taskpool_queue::WorkerRegistration;
/// let w = WorkerRegistration {
///     queue: "default".into(),
///     kinds: vec!["resize".into()],
///     host: "web-1".into(),
///     pid: 42,
///     lease: std::time::Duration::from_secs(30),
/// };
/// assert_eq!(w.kinds.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// The queue it drains.
    pub queue: String,
    /// The kinds it runs.
    pub kinds: Vec<String>,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The lease it takes on each job.
    pub lease: Duration,
}

/// A job a worker leased: run it, then [`report`](Backend::report) how it ended.
///
/// ```
/// use async_taskpool_queue::{FetchedJob, JobId};
/// let job = FetchedJob { id: JobId::new(1), kind: "k".into(), args: "null".into(), attempt: 1, max_attempts: 3, priority: 0 };
/// assert_eq!(job.attempt, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedJob {
    /// Its id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its arguments, as JSON text.
    pub args: String,
    /// This attempt's number (1 on the first run).
    pub attempt: u32,
    /// Attempts it has in all.
    pub max_attempts: u32,
    /// Its priority (lower first).
    pub priority: i16,
}

/// How one attempt of a job ended, as the worker reports it.
///
/// ```
/// use async_taskpool_queue::Outcome;
/// let o = Outcome::Retry { error: "timeout".into(), delay: std::time::Duration::from_secs(2) };
/// assert_eq!(o.name(), "retry");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The handler returned `Ok`.
    Completed,
    /// It failed and has attempts left: run it again after `delay`.
    Retry {
        /// The error, panic message or timeout.
        error: String,
        /// The backoff.
        delay: Duration,
    },
    /// It failed for the last time, or can never succeed (its arguments did not decode).
    Dead {
        /// Why.
        error: String,
    },
    /// Its task was cancelled through the pool: the job ends here.
    Cancelled {
        /// Who cancelled it.
        reason: String,
    },
    /// The worker gave it back unfinished (graceful shutdown, or its pool refused the task):
    /// pending again at once, the attempt not counted.
    Released {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// A short name: `completed`, `retry`, `dead`, `cancelled`, `released`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Retry { .. } => "retry",
            Self::Dead { .. } => "dead",
            Self::Cancelled { .. } => "cancelled",
            Self::Released { .. } => "released",
        }
    }
}

/// One attempt's outcome, for [`Backend::report`].
///
/// ```
/// use async_taskpool_queue::{JobId, Outcome, Report};
/// let r = Report { id: JobId::new(5), attempt: 1, outcome: Outcome::Completed };
/// assert_eq!(r.outcome.name(), "completed");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The job.
    pub id: JobId,
    /// The attempt this is about; a report for an attempt the worker no longer holds is
    /// ignored (another worker took the job after the lease expired).
    pub attempt: u32,
    /// How it ended.
    pub outcome: Outcome,
}

/// What a [`Backend::maintain`] pass did.
///
/// ```
/// let m = async_taskpool_queue::Maintenance::default();
/// assert_eq!(m.requeued + m.dead, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Maintenance {
    /// Running jobs whose lease expired, made pending again.
    pub requeued: u64,
    /// Running jobs whose lease expired on their last attempt, now dead.
    pub dead: u64,
    /// Finished jobs deleted after their retention.
    pub deleted: u64,
}

/// Which dead jobs an admin call is about.
///
/// ```
/// use async_taskpool_queue::{DeadSelection, JobId};
/// let one = DeadSelection::Job(JobId::new(4));
/// let by_kind = DeadSelection::Kind("resize".into());
/// # let _ = (one, by_kind, DeadSelection::All);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadSelection {
    /// One job.
    Job(JobId),
    /// Every dead job of a kind.
    Kind(String),
    /// Every dead job.
    All,
}

/// Wake-ups for a worker: an item whenever new work may be due on its queue.
///
/// The `Option<Duration>` says when: `None` now, `Some(d)` after `d` (a scheduled job). An
/// `Err` means the notification channel broke and wake-ups may have been missed; the worker
/// polls, waits a little and asks for a new stream.
pub type Wakeups = BoxStream<'static, Result<Option<Duration>, QueueError>>;

/// A job store a [`Worker`](crate::Worker) can drain. Object safe: the worker holds an
/// `Arc<dyn Backend>`.
///
/// Contract (what the worker relies on):
/// - [`fetch`](Self::fetch) leases up to `max` due jobs of `queue` whose kind is in `kinds`,
///   by priority, then run-at, then id, to `worker` for `lease`, and counts the attempt; no
///   job is leased to two workers at once.
/// - [`extend`](Self::extend) renews the leases `worker` still holds among `jobs` and returns
///   those; a job it does not return is lost to the worker.
/// - [`report`](Self::report) applies each outcome only if `worker` still holds that attempt.
/// - [`maintain`](Self::maintain) makes jobs whose lease expired pending again (or dead on
///   their last attempt) and deletes finished jobs older than `retention`.
/// - Every call may fail while the engine is unreachable; the worker retries, and nothing is
///   lost, since an unreported job's lease expires and the job runs again.
pub trait Backend: Send + Sync + 'static {
    /// Records a starting worker; returns its id.
    fn register_worker<'a>(
        &'a self,
        worker: &'a WorkerRegistration,
    ) -> BoxFuture<'a, Result<String, QueueError>>;
    /// Records that `worker` is alive, with its pool's stats (JSON).
    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        stats: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), QueueError>>;
    /// Forgets a worker that stopped.
    fn deregister_worker<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<(), QueueError>>;
    /// Leases up to `max` due jobs.
    fn fetch<'a>(
        &'a self,
        worker: &'a str,
        queue: &'a str,
        kinds: &'a [String],
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<FetchedJob>, QueueError>>;
    /// Extends the leases `worker` still holds among `jobs`; returns those.
    fn extend<'a>(
        &'a self,
        worker: &'a str,
        jobs: &'a [JobId],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<JobId>, QueueError>>;
    /// Applies outcomes, in one round trip where the engine allows.
    fn report<'a>(
        &'a self,
        worker: &'a str,
        reports: &'a [Report],
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), QueueError>>;
    /// Requeues expired leases and deletes finished jobs past `retention`.
    fn maintain(&self, retention: Duration) -> BoxFuture<'_, Result<Maintenance, QueueError>>;
    /// Wake-ups for `queue`.
    fn wakeups<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Wakeups, QueueError>>;
    /// The cluster: per queue and kind, and per worker.
    fn cluster(&self) -> BoxFuture<'_, Result<ClusterView, QueueError>>;
    /// Dead jobs, newest first, at most `limit`, optionally of one kind.
    fn dead_jobs<'a>(
        &'a self,
        kind: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadJob>, QueueError>>;
    /// Makes dead jobs pending again with fresh attempts; returns how many.
    fn retry_dead<'a>(&'a self, which: &'a DeadSelection)
        -> BoxFuture<'a, Result<u64, QueueError>>;
    /// Deletes dead jobs; returns how many.
    fn discard_dead<'a>(
        &'a self,
        which: &'a DeadSelection,
    ) -> BoxFuture<'a, Result<u64, QueueError>>;
}

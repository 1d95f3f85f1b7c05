//! A view of the cluster: jobs per queue and kind, and the workers draining them.

use crate::{JobId, JobState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A snapshot of every queue, kind and worker, from [`Backend::cluster`](crate::Backend::cluster)
/// (or [`PgQueue::cluster`](crate::PgQueue::cluster)).
///
/// ```
/// use async_taskpool_queue::ClusterView;
/// let view: ClusterView = serde_json::from_str(r#"{"kinds":[],"workers":[]}"#).unwrap();
/// assert!(view.kinds.is_empty());
/// println!("{view}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterView {
    /// Per queue and kind, sorted.
    pub kinds: Vec<KindStats>,
    /// Per worker that sent a heartbeat within the last hour, sorted by queue, host, id.
    pub workers: Vec<WorkerStatus>,
}

/// Jobs of one kind on one queue.
///
/// ```
/// let k = async_taskpool_queue::KindStats::default();
/// assert_eq!(k.pending + k.scheduled + k.retrying + k.running + k.dead, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KindStats {
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// Due now, never tried (or given back by a graceful shutdown).
    pub pending: u64,
    /// Never tried, due later.
    pub scheduled: u64,
    /// Failed at least once, waiting for (or due for) the next attempt.
    pub retrying: u64,
    /// Leased by a worker now.
    pub running: u64,
    /// Running jobs by worker id.
    pub running_by_worker: BTreeMap<String, u64>,
    /// Dead: out of attempts or undecodable.
    pub dead: u64,
    /// Completed in the last minute, as the workers counted them (whatever the retention).
    pub completed_last_minute: u64,
    /// Seconds since the oldest due job became due, if any is due.
    pub oldest_pending_age_secs: Option<f64>,
    /// Live workers (heartbeat within one lease period) that run this kind on this
    /// queue. Zero with jobs pending: nobody will run them until such a worker starts.
    pub live_workers: u64,
}

/// One worker, as its last heartbeat described it.
///
/// ```
/// let w = async_taskpool_queue::WorkerStatus::default();
/// assert!(!w.alive);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// Its id.
    pub id: String,
    /// The queue it drains.
    pub queue: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The kinds it runs.
    pub kinds: Vec<String>,
    /// Seconds since it started.
    pub uptime_secs: f64,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_secs: f64,
    /// Whether that heartbeat is recent (within one lease period).
    pub alive: bool,
    /// Jobs it holds a lease on.
    pub running_jobs: u64,
    /// Jobs it completed in the last minute.
    pub completed_last_minute: u64,
    /// Its pool's stats at the last heartbeat (`async_taskpool::PoolStats` as JSON).
    pub pool: serde_json::Value,
}

/// A dead job, as listed by [`Backend::dead_jobs`](crate::Backend::dead_jobs).
///
/// ```
/// let d = async_taskpool_queue::DeadJob::default();
/// assert_eq!(d.attempts, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadJob {
    /// Its id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts it had.
    pub max_attempts: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// Every failed attempt: `{"attempt", "at", "worker", "outcome", "error"}`.
    pub history: serde_json::Value,
    /// Seconds since it died.
    pub dead_for_secs: f64,
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new(0)
    }
}

/// A job as stored, from [`PgQueue::job`](crate::PgQueue::job).
///
/// ```
/// let j = async_taskpool_queue::JobInfo::default();
/// assert_eq!(j.state, async_taskpool_queue::JobState::Pending);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobInfo {
    /// Its id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Its state.
    pub state: JobState,
    /// Its priority.
    pub priority: i16,
    /// Attempts made (or under way).
    pub attempts: u32,
    /// Attempts it has.
    pub max_attempts: u32,
    /// Its unique key.
    pub unique_key: Option<String>,
    /// The worker holding (or that last held) it.
    pub worker_id: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// Every failed, lost or given-back attempt.
    pub history: serde_json::Value,
    /// Seconds until it is due (negative: overdue).
    pub due_in_secs: f64,
}

impl Default for JobInfo {
    fn default() -> Self {
        Self {
            id: JobId::default(),
            queue: String::new(),
            kind: String::new(),
            args: serde_json::Value::Null,
            state: JobState::Pending,
            priority: 0,
            attempts: 0,
            max_attempts: 0,
            unique_key: None,
            worker_id: None,
            last_error: None,
            history: serde_json::Value::Array(vec![]),
            due_in_secs: 0.0,
        }
    }
}

impl std::fmt::Display for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<12} {:<16} {:>8} {:>9} {:>8} {:>7} {:>6} {:>8} {:>10} {:>7}",
            "queue",
            "kind",
            "pending",
            "scheduled",
            "retrying",
            "running",
            "dead",
            "done/min",
            "oldest(s)",
            "workers"
        )?;
        for k in &self.kinds {
            writeln!(
                f,
                "{:<12} {:<16} {:>8} {:>9} {:>8} {:>7} {:>6} {:>8} {:>10} {:>7}",
                k.queue,
                k.kind,
                k.pending,
                k.scheduled,
                k.retrying,
                k.running,
                k.dead,
                k.completed_last_minute,
                k.oldest_pending_age_secs
                    .map_or("-".to_owned(), |s| format!("{s:.1}")),
                k.live_workers
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<38} {:<12} {:<16} {:>7} {:>7} {:>9} {:>7} {:>6}",
            "worker", "queue", "host", "pid", "running", "heartbeat", "limit", "alive"
        )?;
        for w in &self.workers {
            let limit = w.pool.get("limit").map_or("-".to_owned(), |l| match l {
                serde_json::Value::Null => "none".to_owned(),
                other => other.to_string(),
            });
            writeln!(
                f,
                "{:<38} {:<12} {:<16} {:>7} {:>7} {:>8.1}s {:>7} {:>6}",
                w.id,
                w.queue,
                w.host,
                w.pid,
                w.running_jobs,
                w.heartbeat_age_secs,
                limit,
                if w.alive { "yes" } else { "no" }
            )?;
        }
        Ok(())
    }
}

//! Introspection snapshots; all serialize with serde.

use crate::id::TaskId;
use serde::{Deserialize, Serialize};

/// A snapshot of a pool, taken atomically.
///
/// The `ended`, `cancelled`, `panicked` and `timed_out` counters cover tasks that ended since
/// the last [`flush`](crate::TaskPool::flush); `submitted` counts every task id ever handed out.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// let pool = TaskPool::builder(TokioSpawner::current()).name("crawler").limit(4).build().unwrap();
/// let stats = pool.stats();
/// assert_eq!(stats.limit, Some(4));
/// let json = serde_json::to_string(&stats).unwrap();
/// assert!(json.contains("\"name\":\"crawler\""));
/// # }); }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// The maximum number of tasks running at once; `None` is unlimited.
    pub limit: Option<usize>,
    /// Tasks whose future is running now.
    pub running: usize,
    /// Tasks waiting for room: queued loose tasks and `SimpleTaskPool::start` items (they
    /// have ids).
    pub queued: usize,
    /// Items of `map` and `apply` groups not yet pulled from their input, waiting for room:
    /// exact for inputs that know their length (ranges, collections), else a lower bound
    /// from the input's size hint. They get ids when they start.
    #[serde(default)]
    pub backlog: u64,
    /// Tasks whose future is done but whose callbacks still run.
    pub ending: usize,
    /// Tasks ended since the last flush, whatever the outcome.
    pub ended: u64,
    /// Of `ended`: cancelled.
    pub cancelled: u64,
    /// Of `ended`: panicked.
    pub panicked: u64,
    /// Of `ended`: timed out.
    pub timed_out: u64,
    /// Of `ended`: dropped by their runtime (it shut down) or refused by it.
    #[serde(default)]
    pub dropped: u64,
    /// Of `ended`: shed, because they could not start within their `max_queue_wait`
    /// ([`TaskError::Shed`](crate::TaskError::Shed)).
    #[serde(default)]
    pub shed: u64,
    /// Task ids handed out so far.
    pub submitted: u64,
    /// Whether new work is refused until `unlock`.
    pub locked: bool,
    /// Whether the pool is closed for good.
    pub closed: bool,
    /// Whether the limit is reached.
    pub is_full: bool,
    /// Names of the groups the pool knows (running, or ended and not yet flushed).
    pub groups: Vec<String>,
}

/// A live task, as listed by [`TaskPool::tasks`](crate::TaskPool::tasks).
///
/// ```
/// use async_taskpool::{TaskId, TaskInfo, TaskState};
/// let info: TaskInfo = serde_json::from_str(
///     r#"{"id":3,"name":"TaskPool-0_Task-3","group":null,"state":"running"}"#).unwrap();
/// assert_eq!(info.id, TaskId::new(3));
/// assert_eq!(info.state, TaskState::Running);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Its name: the custom one, or `{pool}_Task-{id}`.
    pub name: String,
    /// The group it belongs to, if any.
    pub group: Option<String>,
    /// Where it is in its life.
    pub state: TaskState,
}

/// Where a live task is in its life.
///
/// ```
/// assert_eq!(serde_json::to_string(&async_taskpool::TaskState::Queued).unwrap(), "\"queued\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting for room.
    Queued,
    /// Its future is running.
    Running,
    /// Its future is done; callbacks are running.
    Ending,
}

/// How the items of a [`Group`](crate::Group) ended; returned by
/// [`Group::join`](crate::Group::join).
///
/// ```
/// let s = async_taskpool::GroupSummary::default();
/// assert_eq!(s.total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupSummary {
    /// Items whose future returned.
    pub completed: u64,
    /// Items cancelled.
    pub cancelled: u64,
    /// Items that panicked.
    pub panicked: u64,
    /// Items that timed out.
    pub timed_out: u64,
    /// Items dropped by their runtime (it shut down) or refused by it.
    #[serde(default)]
    pub dropped: u64,
    /// Items shed: they could not start within the group's `max_queue_wait`
    /// ([`TaskError::Shed`](crate::TaskError::Shed)).
    #[serde(default)]
    pub shed: u64,
    /// Items of a cancelled `map` or `apply` that never started: pulled but not run, or left
    /// in the input (exact for inputs that know their length, else a lower bound from the
    /// input's size hint). They have no ids and no results, and are not in [`total`].
    ///
    /// [`total`]: GroupSummary::total
    #[serde(default)]
    pub not_started: u64,
}

impl GroupSummary {
    /// All items that ended (`not_started` ones never did).
    pub fn total(&self) -> u64 {
        self.completed + self.cancelled + self.panicked + self.timed_out + self.dropped + self.shed
    }
}

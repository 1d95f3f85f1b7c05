use serde::{Deserialize, Serialize};
use std::fmt;

/// A task's id: sequential per pool from 0, never reused, the same on every runtime.
///
/// Ids are handed out in submission order (for [`map`](crate::TaskPool::map) and
/// [`apply`](crate::TaskPool::apply) items, in the order the items start).
///
/// ```
/// use async_taskpool::TaskId;
/// let id = TaskId::new(3);
/// assert_eq!(id.get(), 3);
/// assert_eq!(id.to_string(), "3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(u64);

impl TaskId {
    /// Wraps a raw id, for example one read from a log or typed by an operator.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for TaskId {
    fn from(raw: u64) -> Self {
        Self(raw)
    }
}

/// `{pool}_Task-{id}`, formatted only when someone prints it.
pub(crate) struct TaskName<'a> {
    pub(crate) pool: &'a str,
    pub(crate) custom: Option<&'a str>,
    pub(crate) id: TaskId,
}

impl fmt::Display for TaskName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.custom {
            Some(name) => f.write_str(name),
            None => write!(f, "{}_Task-{}", self.pool, self.id),
        }
    }
}

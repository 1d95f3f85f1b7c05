//! What the scheduler reports of a task's end and of a group's kind: plain data, shared by the
//! state (`core`) and its telemetry without either importing the other.

use crate::error::TaskError;

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Cancelled,
    Panicked,
    TimedOut,
    /// The runtime dropped the task (it shut down), or refused to start it.
    Dropped,
    /// It could not start within its `max_queue_wait`.
    Shed,
}

impl Outcome {
    #[inline]
    pub(crate) fn of<T>(res: &Result<T, TaskError>) -> Self {
        match res {
            Ok(_) => Self::Completed,
            Err(e) => Self::of_error(e),
        }
    }

    #[inline(never)]
    fn of_error(e: &TaskError) -> Self {
        match e {
            TaskError::Cancelled { .. } => Self::Cancelled,
            TaskError::Panicked { .. } => Self::Panicked,
            TaskError::TimedOut { .. } => Self::TimedOut,
            TaskError::RuntimeDropped { .. } | TaskError::SpawnFailed { .. } => Self::Dropped,
            TaskError::Shed { .. } => Self::Shed,
            // A retried task ended as its last attempt did.
            TaskError::Retried { last, .. } => Self::of_error(last),
        }
    }
}

/// What kind of group, for its generated name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupKind {
    Apply,
    Map,
    Start,
}

impl GroupKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Map => "map",
            Self::Start => "start",
        }
    }
}

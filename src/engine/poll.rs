//! The one guarded poll of a task's future, for tasks and map items alike.

use super::user;
use crate::error::TaskError;
use crate::id::TaskId;
use async_taskpool_runtime::{BoxFuture, Spawner};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// What can cancel a running task: its cell (a loose task) or its worker's abort target (a
/// map item).
pub(crate) trait CancelSignal {
    /// Whether task `id` was asked to stop.
    fn is_cancelled(&self, id: TaskId) -> bool;
    /// Remembers the waker to wake when task `id` is asked to stop.
    fn register(&self, id: TaskId, waker: &Waker);
}

/// The run timeout of one task: its timer starts at the first poll, so time spent waiting for
/// a slot does not count.
pub(crate) struct RunTimer {
    after: Option<Duration>,
    sleep: Option<BoxFuture>,
}

impl RunTimer {
    pub(crate) fn new(after: Option<Duration>) -> Self {
        Self { after, sleep: None }
    }
}

/// One poll of task `id`'s future: cancelled (checked before and after, so a cancel that
/// races the poll is never lost), finished, panicked, timed out, or pending.
#[inline]
pub(crate) fn poll_task<F: Future>(
    fut: Pin<&mut F>,
    id: TaskId,
    signal: &dyn CancelSignal,
    timer: &mut RunTimer,
    spawner: &dyn Spawner,
    pool: &str,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, TaskError>> {
    if signal.is_cancelled(id) {
        return Poll::Ready(Err(TaskError::Cancelled { id }));
    }
    match user::call(|| fut.poll(cx)) {
        Ok(Poll::Ready(v)) => return Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => {}
        Err(payload) => {
            let err = TaskError::panicked(id, payload);
            tracing::error!(pool, task_id = id.get(), "{err}");
            return Poll::Ready(Err(err));
        }
    }
    if let Some(after) = timer.after {
        let sleep = timer.sleep.get_or_insert_with(|| spawner.sleep(after));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(TaskError::TimedOut { id, after }));
        }
    }
    signal.register(id, cx.waker());
    if signal.is_cancelled(id) {
        return Poll::Ready(Err(TaskError::Cancelled { id }));
    }
    Poll::Pending
}

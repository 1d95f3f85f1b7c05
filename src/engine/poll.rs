//! The one guarded poll of a task's future, for tasks and map items alike.

use super::core::Core;
use super::user;
use crate::error::TaskError;
use crate::id::TaskId;
use async_taskpool_runtime::BoxFuture;
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

/// The waker a task's pending poll last left with its cancel signal, by identity (what
/// [`Waker::will_wake`] compares), so that the next poll with the same waker need not take
/// the signal's lock to leave it again. Only for a signal whose waker leaves it by a cancel
/// alone (a task's cell: the cancel sets the flag the poll checks before it takes the
/// waker); the task forgets it whenever the cell's waker goes another way (a retry's
/// backoff, a new task on the same runner).
#[derive(Default)]
pub(crate) struct Registered(Option<(usize, usize)>);

impl Registered {
    #[inline]
    fn key(waker: &Waker) -> (usize, usize) {
        (waker.data() as usize, waker.vtable() as *const _ as usize)
    }

    /// The signal's waker may be gone: the next pending poll leaves it again.
    #[inline]
    pub(crate) fn forget(&mut self) {
        self.0 = None;
    }
}

/// One poll of task `id`'s future: cancelled (checked before and after, so a cancel that
/// races the poll is never lost), finished, panicked, timed out, or pending.
// Inlined into each caller: a call of its own costs a task's every poll more than its
// waker check saves (callgrind).
#[inline(always)]
pub(crate) fn poll_task<F: Future>(
    fut: Pin<&mut F>,
    id: TaskId,
    signal: &dyn CancelSignal,
    timer: &mut RunTimer,
    registered: Option<&mut Registered>,
    core: &Core,
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
            tracing::error!(pool = %core.name, task_id = id.get(), "{err}");
            return Poll::Ready(Err(err));
        }
    }
    if let Some(after) = timer.after {
        let sleep = timer.sleep.get_or_insert_with(|| core.spawner.sleep(after));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(TaskError::TimedOut { id, after }));
        }
    }
    match registered {
        // Still there: only a cancel takes it, and the check below sees the cancel.
        Some(r) if r.0 == Some(Registered::key(cx.waker())) => {}
        Some(r) => {
            signal.register(id, cx.waker());
            r.0 = Some(Registered::key(cx.waker()));
        }
        None => signal.register(id, cx.waker()),
    }
    if signal.is_cancelled(id) {
        return Poll::Ready(Err(TaskError::Cancelled { id }));
    }
    Poll::Pending
}

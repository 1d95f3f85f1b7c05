//! `TaskHandle`: the awaitable result of one task.

use crate::cell::HandleSide;
use crate::inner::Inner;
use crate::{PoolError, TaskError, TaskId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The result of one task: a future of `Result<T, TaskError>`.
///
/// Guarantees:
/// - it resolves exactly once, after the task's future was dropped and its callbacks ran, and
///   after the pool's counters include it;
/// - dropping the handle **detaches** the task: it keeps running, and its result is dropped.
///   Call [`cancel`](TaskHandle::cancel) to stop it.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
///
/// let pool = TaskPool::new(TokioSpawner::current());
/// let handle = pool.spawn(async { 6 * 7 }).await?;
/// println!("task {} started", handle.id());
/// assert_eq!(handle.await?, 42);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
#[must_use = "a TaskHandle does nothing unless awaited; dropping it detaches the task"]
pub struct TaskHandle<T> {
    id: TaskId,
    cell: Arc<dyn HandleSide<T>>,
    pool: Arc<Inner>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(id: TaskId, cell: Arc<dyn HandleSide<T>>, pool: Arc<Inner>) -> Self {
        Self { id, cell, pool }
    }

    /// Ready once the task left the queue (or ended).
    pub(crate) fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.cell.poll_started(cx)
    }

    /// The task's id in its pool.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Asks the task to stop, like [`TaskPool::cancel`](crate::TaskPool::cancel) with its id.
    ///
    /// A queued task never starts; a running one is dropped at its next poll. Either way its
    /// callbacks run and the handle resolves to [`TaskError::Cancelled`], unless the future
    /// finished first, in which case its output is kept.
    pub fn cancel(&self) -> Result<(), PoolError> {
        self.pool.cancel(&[self.id])
    }

    /// Whether the result is ready (awaiting the handle would not wait).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_result(cx)
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("pool", &&*self.pool.name)
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

//! `TaskHandle`: the awaitable result of one task.

use crate::engine::core::Core;
use crate::engine::task::HandleSide;
use crate::engine::user::{drop_value, Owner};
use crate::error::{PoolError, TaskError};
use crate::id::TaskId;
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
/// - dropping the handle **detaches** the task: it keeps running, and its result is dropped
///   (a destructor that panics is logged, not raised). Call [`cancel`](TaskHandle::cancel)
///   to stop it.
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
#[must_use = "the task runs whether or not its handle is awaited; dropping the handle discards its result"]
pub struct TaskHandle<T> {
    id: TaskId,
    cell: Arc<dyn HandleSide<T>>,
    core: Arc<Core>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(id: TaskId, cell: Arc<dyn HandleSide<T>>, core: Arc<Core>) -> Self {
        Self { id, cell, core }
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
        self.core.cancel(&[self.id])
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

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        if let Some(unread) = self.cell.detach() {
            drop_value(
                unread,
                Owner {
                    pool: &self.core.name,
                    task: Some(self.id),
                    what: "the unread result",
                },
            );
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("pool", &&*self.core.name)
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

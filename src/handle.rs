//! `TaskHandle`: the awaitable result of one task.

use crate::abort::{Abort, AbortFlag};
use crate::inner::Inner;
use crate::{PoolError, TaskError, TaskId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Where a task's result waits for its handle, plus the task's cancellation flag.
pub(crate) struct HandleCell<T> {
    abort: AbortFlag,
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    result: Option<Result<T, TaskError>>,
    done: bool,
    waker: Option<Waker>,
    started: bool,
    start_waker: Option<Waker>,
}

impl<T> HandleCell<T> {
    pub(crate) fn new(started: bool) -> Self {
        Self {
            abort: AbortFlag::default(),
            slot: Mutex::new(Slot {
                result: None,
                done: false,
                waker: None,
                started,
                start_waker: None,
            }),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the result; returns the waker to wake once the pool lock is released.
    pub(crate) fn deliver(&self, res: Result<T, TaskError>) -> Option<Waker> {
        let mut slot = self.slot();
        slot.result = Some(res);
        slot.done = true;
        if let Some(w) = slot.start_waker.take() {
            w.wake();
        }
        slot.waker.take()
    }

    /// Ready once the task left the queue (or ended).
    pub(crate) fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.slot();
        if slot.started || slot.done {
            Poll::Ready(())
        } else {
            slot.start_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl<T: Send> Abort for HandleCell<T> {
    fn cancel(&self, id: TaskId) {
        self.abort.cancel(id);
    }
    fn is_cancelled(&self, id: TaskId) -> bool {
        self.abort.is_cancelled(id)
    }
    fn register(&self, waker: &Waker) {
        self.abort.register(waker);
    }
    fn started(&self) {
        let mut slot = self.slot();
        slot.started = true;
        if let Some(w) = slot.start_waker.take() {
            w.wake();
        }
    }
}

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
    cell: Arc<HandleCell<T>>,
    pool: Arc<Inner>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(id: TaskId, cell: Arc<HandleCell<T>>, pool: Arc<Inner>) -> Self {
        Self { id, cell, pool }
    }

    pub(crate) fn cell(&self) -> &Arc<HandleCell<T>> {
        &self.cell
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
        self.cell.slot().done
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.cell.slot();
        if let Some(res) = slot.result.take() {
            return Poll::Ready(res);
        }
        assert!(!slot.done, "TaskHandle polled after it returned its result");
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
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

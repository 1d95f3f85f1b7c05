//! How the pool reaches a task it does not own: to cancel it, to start it, and to list it.

use crate::inner::Inner;
use crate::task::BoxJob;
use crate::TaskId;
use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The pool's handle on one task (or, for map items, on the worker running it).
pub(crate) trait TaskControl: Send + Sync {
    /// Asks task `id` to stop at its next poll, and wakes it.
    fn cancel(&self, id: TaskId);
    /// The task left the queue and now owns a slot.
    fn started(&self) {}
    /// The custom name, if any.
    fn name(&self) -> Option<&str> {
        None
    }
    /// The group the task belongs to, if any.
    fn group(&self) -> Option<&str> {
        None
    }
    /// The job of a queued task (called once, when it leaves the queue).
    fn launch(self: Arc<Self>, _pool: &Arc<Inner>, _id: TaskId) -> Option<BoxJob> {
        None
    }
}

/// One signal per map worker, reused for every item it runs: a cancel names the item's id,
/// so a request for an item that already finished cannot hit the next one.
pub(crate) struct WorkerAbort {
    target: AtomicU64,
    waker: AtomicWaker,
    group: Arc<str>,
}

impl WorkerAbort {
    pub(crate) fn new(group: Arc<str>) -> Self {
        Self {
            target: AtomicU64::new(u64::MAX),
            waker: AtomicWaker::new(),
            group,
        }
    }

    pub(crate) fn is_cancelled(&self, id: TaskId) -> bool {
        self.target.load(Ordering::Acquire) == id.get()
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }
}

impl TaskControl for WorkerAbort {
    fn cancel(&self, id: TaskId) {
        self.target.store(id.get(), Ordering::Release);
        self.waker.wake();
    }
    fn group(&self) -> Option<&str> {
        Some(&self.group)
    }
}

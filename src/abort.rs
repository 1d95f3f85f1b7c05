//! Cancellation signals: how the pool tells a running task to stop.

use crate::TaskId;
use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;

/// The pool's view of a task's cancellation and start signals.
pub(crate) trait Abort: Send + Sync {
    /// Asks task `id` to stop at its next poll, and wakes it.
    fn cancel(&self, id: TaskId);
    /// Whether task `id` has been asked to stop.
    fn is_cancelled(&self, id: TaskId) -> bool;
    /// Registers the waker of the task's wrapper, woken by `cancel`.
    fn register(&self, waker: &Waker);
    /// The task left the queue and now owns a slot.
    fn started(&self) {}
}

/// One flag for one task.
#[derive(Default)]
pub(crate) struct AbortFlag {
    cancelled: AtomicBool,
    waker: AtomicWaker,
}

impl Abort for AbortFlag {
    fn cancel(&self, _id: TaskId) {
        self.cancelled.store(true, Ordering::Release);
        self.waker.wake();
    }
    fn is_cancelled(&self, _id: TaskId) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
    fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

/// One signal per map worker, reused for every item it runs: a cancel names the item's id,
/// so a request for an item that already finished cannot hit the next one.
pub(crate) struct WorkerAbort {
    target: AtomicU64,
    waker: AtomicWaker,
}

impl Default for WorkerAbort {
    fn default() -> Self {
        Self {
            target: AtomicU64::new(u64::MAX),
            waker: AtomicWaker::new(),
        }
    }
}

impl Abort for WorkerAbort {
    fn cancel(&self, id: TaskId) {
        self.target.store(id.get(), Ordering::Release);
        self.waker.wake();
    }
    fn is_cancelled(&self, id: TaskId) -> bool {
        self.target.load(Ordering::Acquire) == id.get()
    }
    fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

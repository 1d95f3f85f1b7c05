//! Which pool task, if any, the current thread is polling.

use crate::TaskId;
use pin_project_lite::pin_project;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// (pool serial + 1, task id); pool 0 means "not inside a pool task".
    static CURRENT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The id of the pool task being polled on this thread, if any.
///
/// Works inside any future a pool runs, including its callbacks. For a map item, this is the
/// item's own id.
///
/// ```
/// assert_eq!(async_taskpool::current_task_id(), None);
/// ```
pub fn current_task_id() -> Option<TaskId> {
    let (pool, id) = CURRENT.with(Cell::get);
    (pool != 0).then(|| TaskId::new(id))
}

pub(crate) fn inside_pool(serial: u64) -> bool {
    CURRENT.with(Cell::get).0 == serial + 1
}

/// Sets the current item id while a worker runs it.
pub(crate) fn set_task(id: TaskId) {
    CURRENT.with(|c| {
        let (pool, _) = c.get();
        c.set((pool, id.get()));
    });
}

pin_project! {
    /// Marks every poll of `fut` as running inside task `id` of pool `serial`.
    pub(crate) struct Marked<F> {
        #[pin]
        fut: F,
        serial: u64,
        id: u64,
    }
}

impl<F> Marked<F> {
    pub(crate) fn new(fut: F, serial: u64, id: u64) -> Self {
        Self { fut, serial, id }
    }
}

impl<F: Future<Output = ()>> Future for Marked<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let _inside = enter(*this.serial, TaskId::new(*this.id));
        // User panics are caught where they happen; this is the last line of defence, so
        // that no panic ever reaches the executor's thread. The task's guards retire it.
        let fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                let msg = crate::error::panic_message(&*payload);
                tracing::error!("a pool worker panicked outside a task's future: {msg}");
                Poll::Ready(())
            }
        }
    }
}

/// Marks this thread as polling task `id` of pool `serial` until the guard drops (also on
/// unwind, so a panic cannot leave a stale marker behind).
pub(crate) fn enter(serial: u64, id: TaskId) -> Inside {
    Inside(CURRENT.with(|c| c.replace((serial + 1, id.get()))))
}

pub(crate) struct Inside((u64, u64));

impl Drop for Inside {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

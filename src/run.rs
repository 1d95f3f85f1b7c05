//! Running one task's future: cancellation, panic isolation, run timeout, callbacks.

use crate::abort::WorkerAbort;
use crate::inner::{Inner, Outcome};
use crate::{current, TaskError, TaskId};
use async_taskpool_runtime::BoxFuture;
use futures_util::FutureExt;
use pin_project_lite::pin_project;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub(crate) type CallbackFn = dyn Fn(TaskId) -> BoxFuture + Send + Sync;

/// End and cancel callbacks (asyncio-taskpool's `end_callback` / `cancel_callback`).
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) on_end: Option<Arc<CallbackFn>>,
    pub(crate) on_cancel: Option<Arc<CallbackFn>>,
}

impl Callbacks {
    pub(crate) fn is_empty(&self) -> bool {
        self.on_end.is_none() && self.on_cancel.is_none()
    }

    /// Runs `on_cancel` (if the task was cancelled), then `on_end`. A panicking callback is
    /// logged and does not stop the other one or the pool.
    pub(crate) async fn run(&self, pool: &Inner, id: TaskId, cancelled: bool) {
        let calls = [
            ("on_cancel", self.on_cancel.as_ref().filter(|_| cancelled)),
            ("on_end", self.on_end.as_ref()),
        ];
        for (which, cb) in calls {
            let Some(cb) = cb else { continue };
            let fut = catch_unwind(AssertUnwindSafe(|| cb(id)));
            let result = match fut {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                Err(p) => Err(p),
            };
            if let Err(p) = result {
                let msg = crate::error::panic_message(&*p);
                tracing::error!(pool = %pool.name, task_id = id.get(), "{which} callback of {} panicked: {msg}",
                    pool.task_name(None, id));
            }
        }
    }
}

/// What every task runs with besides its future.
#[derive(Clone, Default)]
pub(crate) struct RunOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) callbacks: Option<Arc<Callbacks>>,
}

pin_project! {
    /// Polls a task's future until it finishes, panics, times out or is cancelled.
    pub(crate) struct Run<'a, F> {
        #[pin]
        fut: F,
        abort: &'a WorkerAbort,
        pool: &'a Inner,
        id: TaskId,
        timeout: Option<Duration>,
        sleep: Option<BoxFuture>,
    }
}

impl<'a, F: Future> Run<'a, F> {
    pub(crate) fn new(
        fut: F,
        abort: &'a WorkerAbort,
        pool: &'a Inner,
        id: TaskId,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            fut,
            abort,
            pool,
            id,
            timeout,
            sleep: None,
        }
    }
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Result<F::Output, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let id = *this.id;
        if this.abort.is_cancelled(id) {
            return Poll::Ready(Err(TaskError::Cancelled { id }));
        }
        current::set_task(id);
        let fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => return Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => {}
            Err(payload) => {
                let err = TaskError::panicked(id, payload);
                tracing::error!(pool = %this.pool.name, task_id = id.get(), "{err}");
                return Poll::Ready(Err(err));
            }
        }
        if let Some(after) = *this.timeout {
            // Created on the first poll: time spent queued does not count.
            let sleep = this
                .sleep
                .get_or_insert_with(|| this.pool.spawner.sleep(after));
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(TaskError::TimedOut { id, after }));
            }
        }
        this.abort.register(cx.waker());
        if this.abort.is_cancelled(id) {
            return Poll::Ready(Err(TaskError::Cancelled { id }));
        }
        Poll::Pending
    }
}

pub(crate) fn outcome_of<T>(res: &Result<T, TaskError>) -> Outcome {
    match res {
        Ok(_) => Outcome::Completed,
        Err(TaskError::Cancelled { .. }) => Outcome::Cancelled,
        Err(TaskError::Panicked { .. }) => Outcome::Panicked,
        Err(TaskError::TimedOut { .. }) => Outcome::TimedOut,
    }
}

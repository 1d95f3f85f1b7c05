//! What a task runs with besides its future: a run timeout and end/cancel callbacks.

use super::user::{self, panic_message};
use crate::id::TaskId;
use async_taskpool_runtime::BoxFuture;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// A callback: an async closure taking the task's id.
pub(crate) type CallbackFn = dyn Fn(TaskId) -> BoxFuture + Send + Sync;

/// Boxes a user callback.
pub(crate) fn callback<C, Fut>(f: C) -> Arc<CallbackFn>
where
    C: Fn(TaskId) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Arc::new(move |id| Box::pin(f(id)))
}

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
    /// logged and does not stop the other one or the pool. The caller polls this with the
    /// task marked as current, and with no lock held.
    pub(crate) async fn run(&self, pool: &str, id: TaskId, cancelled: bool) {
        let calls = [
            ("on_cancel", self.on_cancel.as_ref().filter(|_| cancelled)),
            ("on_end", self.on_end.as_ref()),
        ];
        for (which, cb) in calls {
            let Some(cb) = cb else { continue };
            let result = match user::call(|| cb(id)) {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                Err(p) => Err(p),
            };
            if let Err(p) = result {
                let msg = panic_message(&*p);
                tracing::error!(
                    pool,
                    task_id = id.get(),
                    "{which} callback of task {id} panicked: {msg}"
                );
                user::drop_payload(p);
            }
        }
    }
}

/// The options a task (or each item of a group) runs with.
#[derive(Clone, Default)]
pub(crate) struct TaskOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) callbacks: Option<Arc<Callbacks>>,
}

impl TaskOptions {
    pub(crate) fn new(timeout: Option<Duration>, callbacks: Callbacks) -> Self {
        Self {
            timeout,
            callbacks: (!callbacks.is_empty()).then(|| Arc::new(callbacks)),
        }
    }

    /// Whether a plain task (no name) needs no options record at all.
    pub(crate) fn is_plain(&self) -> bool {
        self.timeout.is_none() && self.callbacks.is_none()
    }
}

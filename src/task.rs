//! The wrapper every single task (not a map item) runs in.

use crate::abort::Abort;
use crate::current::Marked;
use crate::group::GroupCore;
use crate::handle::HandleCell;
use crate::inner::{Inner, Outcome};
use crate::run::{outcome_of, Run, RunOptions};
use crate::{TaskError, TaskId};
use async_taskpool_runtime::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::task::Waker;

/// Where a task's result goes.
pub(crate) enum Sink<T> {
    Handle(Arc<HandleCell<T>>),
    Group(Arc<GroupCore<T>>, u64),
}

impl<T> Sink<T> {
    fn deliver(self, res: Result<T, TaskError>) -> Option<Waker> {
        match self {
            Self::Handle(cell) => cell.deliver(res),
            Self::Group(core, seq) => core.deliver(seq, res),
        }
    }
}

/// Retires the task as cancelled if the runtime drops it before it finished (for example at
/// shutdown, or when it refused to spawn it): the handle resolves and the slot comes back.
struct Guard<T> {
    pool: Arc<Inner>,
    id: TaskId,
    sink: Option<Sink<T>>,
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let id = self.id;
            self.pool.retire(id, Outcome::Cancelled, || {
                sink.deliver(Err(TaskError::Cancelled { id }))
            });
        }
    }
}

pub(crate) struct TaskSpec<T> {
    pub(crate) abort: Arc<dyn Abort>,
    pub(crate) options: RunOptions,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) sink: Sink<T>,
}

/// Builds the boxed runtime task for `fut`.
pub(crate) fn wrap<F>(pool: Arc<Inner>, id: TaskId, fut: F, spec: TaskSpec<F::Output>) -> BoxFuture
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let serial = pool.serial;
    // The guard exists before the first poll, so a task dropped unpolled still retires.
    let guard = Guard {
        pool,
        id,
        sink: Some(spec.sink),
    };
    let rest = TaskRest {
        abort: spec.abort,
        options: spec.options,
        name: spec.name,
    };
    Box::pin(Marked::new(run(guard, fut, rest), serial, id.get()))
}

struct TaskRest {
    abort: Arc<dyn Abort>,
    options: RunOptions,
    name: Option<Arc<str>>,
}

async fn run<F>(mut guard: Guard<F::Output>, fut: F, spec: TaskRest)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (pool, id) = (&guard.pool, guard.id);
    if !spec.abort.is_cancelled(id) {
        pool.log_started(id, spec.name.as_deref());
    }
    let res = Run::new(fut, &*spec.abort, pool, id, spec.options.timeout).await;
    let outcome = outcome_of(&res);
    if let Some(callbacks) = &spec.options.callbacks {
        pool.enter_callbacks(id);
        callbacks.run(pool, id, outcome == Outcome::Cancelled).await;
    }
    let sink = guard.sink.take().expect("delivered once");
    guard.pool.retire(id, outcome, || sink.deliver(res));
}

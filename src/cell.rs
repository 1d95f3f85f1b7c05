//! `Cell`: what a single task shares between its runtime future, its handle and the pool.
//!
//! One allocation per task. While the task waits in the queue, the cell also holds its
//! future, so a queued task costs this cell plus a queue slot and nothing else.

use crate::abort::TaskControl;
use crate::group::GroupCore;
use crate::inner::Inner;
use crate::run::RunOptions;
use crate::task::{BoxJob, TaskFuture};
use crate::{TaskError, TaskId};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

const CANCELLED: u8 = 1;
const STARTED: u8 = 2;
const DONE: u8 = 4;

/// Everything optional about a task, boxed once so plain tasks stay small.
pub(crate) struct Spec<T> {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) options: RunOptions,
    /// Deliver the result to this group (at this sequence number) instead of a handle.
    pub(crate) sink: Option<(Arc<GroupCore<T>>, u64)>,
}

pub(crate) struct Cell<F: Future> {
    flags: AtomicU8,
    pub(crate) spec: Option<Box<Spec<F::Output>>>,
    inner: Mutex<CellInner<F>>,
}

struct CellInner<F: Future> {
    stage: Stage<F>,
    /// The handle, waiting for the task to start (`spawn`) or to finish.
    waker: Option<Waker>,
}

enum Stage<F: Future> {
    /// Queued: the future waits here until a slot frees.
    Queued(F),
    /// Running, with the waker of its runtime task (woken by `cancel`).
    Running(Option<Waker>),
    /// Finished; the error is boxed to keep the cell small.
    Done(Result<F::Output, Box<TaskError>>),
    /// The result went to the handle (or nobody wanted it).
    Taken,
}

impl<F: Future> Cell<F> {
    pub(crate) fn new(spec: Option<Box<Spec<F::Output>>>) -> Self {
        Self {
            flags: AtomicU8::new(0),
            spec,
            inner: Mutex::new(CellInner {
                stage: Stage::Running(None),
                waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CellInner<F>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CANCELLED != 0
    }

    /// Parks the future here while the task waits for a slot.
    pub(crate) fn park(&self, fut: F) {
        self.lock().stage = Stage::Queued(fut);
    }

    /// Remembers the running task's waker so `cancel` can wake it.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut inner = self.lock();
        if let Stage::Running(slot) = &mut inner.stage {
            match slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    /// Stores the result for the handle; returns the handle's waker, to wake after unlocking.
    pub(crate) fn deliver(&self, res: Result<F::Output, TaskError>) -> Option<Waker> {
        let mut inner = self.lock();
        inner.stage = Stage::Done(res.map_err(Box::new));
        self.flags.fetch_or(DONE, Ordering::Release);
        inner.waker.take()
    }

    /// The result, once there.
    pub(crate) fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskError>> {
        let mut inner = self.lock();
        match std::mem::replace(&mut inner.stage, Stage::Taken) {
            Stage::Done(res) => Poll::Ready(res.map_err(|e| *e)),
            Stage::Taken => panic!("TaskHandle polled after it returned its result"),
            other => {
                inner.stage = other;
                inner.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Ready once the task left the queue (or ended).
    pub(crate) fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.flags.load(Ordering::Acquire) & (STARTED | DONE) != 0 {
            return Poll::Ready(());
        }
        let mut inner = self.lock();
        if self.flags.load(Ordering::Acquire) & (STARTED | DONE) != 0 {
            return Poll::Ready(());
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.flags.load(Ordering::Acquire) & DONE != 0
    }
}

impl<F> TaskControl for Cell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn cancel(&self, _id: TaskId) {
        self.flags.fetch_or(CANCELLED, Ordering::AcqRel);
        let waker = match &mut self.lock().stage {
            Stage::Running(w) => w.take(),
            _ => None,
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn started(&self) {
        self.flags.fetch_or(STARTED, Ordering::AcqRel);
        if let Some(w) = self.lock().waker.take() {
            w.wake();
        }
    }

    fn name(&self) -> Option<&str> {
        self.spec.as_ref()?.name.as_deref()
    }

    fn group(&self) -> Option<&str> {
        self.spec.as_ref()?.group.as_deref()
    }

    fn launch(self: Arc<Self>, pool: &Arc<Inner>, id: TaskId) -> Option<BoxJob> {
        let fut = {
            let mut inner = self.lock();
            match std::mem::replace(&mut inner.stage, Stage::Running(None)) {
                Stage::Queued(fut) => fut,
                other => {
                    inner.stage = other;
                    return None;
                }
            }
        };
        Some(Box::pin(TaskFuture::new(pool.clone(), id, fut, self)))
    }
}

/// What a `TaskHandle` needs from its cell, without naming the future's type.
pub(crate) trait HandleSide<T>: Send + Sync {
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()>;
    fn is_finished(&self) -> bool;
}

impl<F> HandleSide<F::Output> for Cell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskError>> {
        Cell::poll_result(self, cx)
    }
    fn poll_started(&self, cx: &mut Context<'_>) -> Poll<()> {
        Cell::poll_started(self, cx)
    }
    fn is_finished(&self) -> bool {
        Cell::is_finished(self)
    }
}

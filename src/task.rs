//! `TaskFuture`: the runtime future of a single task (not a map item).
//!
//! When a task that holds a slot finishes while other tasks wait in the queue, the pool hands
//! it the next one (with the slot) instead of spawning a new runtime task: the finished task's
//! runtime future goes on to run it, and so on. Each task keeps its own id, cell, cancellation,
//! panic isolation and result; only the runtime task is reused. A runner yields to its executor
//! after [`RUN_BUDGET`] tasks in one poll, so it never hogs a thread.

use crate::cell::Cell;
use crate::current;
use crate::idle::{Mailbox, Parking};
use crate::inner::{Inner, Outcome};
use crate::run::outcome_of;
use crate::{TaskError, TaskId};
use async_taskpool_runtime::BoxFuture;
use futures_util::FutureExt;
use pin_project_lite::pin_project;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Tasks a runner may finish in one poll before it yields to its executor.
pub(crate) const RUN_BUDGET: usize = 32;

/// Returns `Pending` once after waking itself: lets the executor run its other tasks.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// A queued task's runtime future, seen from whoever runs it.
pub(crate) trait Job: Send {
    /// Runs the task; when it ends, says what its runner does next. `spare` is the runner's
    /// mailbox from an earlier park, for the pool to reuse if the runner parks again.
    fn poll_job(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> Poll<Next>;
    /// The job as a runtime future of its own, to spawn.
    fn into_future(self: Pin<Box<Self>>) -> BoxFuture;
}

pub(crate) type BoxJob = Pin<Box<dyn Job>>;

/// What a runner (a runtime task running pool tasks) does once a task ended.
pub(crate) enum Next {
    /// End the runtime task.
    End,
    /// Run this queued task, handed over with its slot.
    Run(BoxJob),
    /// Wait, parked in this mailbox (the pool has it), for a task that starts at once.
    Park(Parking),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Fresh,
    Running,
    Callbacks,
    Done,
}

/// What only tasks with a timeout or callbacks need.
struct Extra<T> {
    sleep: Option<BoxFuture>,
    callbacks: Option<BoxFuture>,
    held: Option<Result<T, TaskError>>,
}

impl<T> Default for Extra<T> {
    fn default() -> Self {
        Self {
            sleep: None,
            callbacks: None,
            held: None,
        }
    }
}

pin_project! {
    /// Polls the task's future, then its callbacks, then retires it; then runs whatever the
    /// pool hands over. If the runtime drops it first (shutdown, refusal to spawn), the drop
    /// retires the task as cancelled: the slot comes back and the handle resolves.
    pub(crate) struct TaskFuture<F: Future> {
        #[pin]
        fut: Option<F>,
        cell: Arc<Cell<F>>,
        pool: Arc<Inner>,
        id: TaskId,
        step: Step,
        extra: Option<Box<Extra<F::Output>>>,
        // The task this runner runs now that its own has ended.
        next: Option<BoxJob>,
        // Where this runner waits while parked, and its mailbox kept between parks.
        parked: Option<Arc<Mailbox>>,
        spare: Option<Arc<Mailbox>>,
    }

    impl<F: Future> PinnedDrop for TaskFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mailbox) = this.parked.take() {
                // Dropped while parked (runtime shutdown): nothing may be delivered here now.
                mailbox.close();
            }
            if *this.step != Step::Done {
                let id = *this.id;
                let res = this
                    .extra
                    .as_mut()
                    .and_then(|e| e.held.take())
                    .unwrap_or(Err(TaskError::Cancelled { id }));
                // Not running any more: a handed-over task would have nobody to run it.
                finish(this.pool, this.cell, id, res, None);
            }
        }
    }
}

impl<F> TaskFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(pool: Arc<Inner>, id: TaskId, fut: F, cell: Arc<Cell<F>>) -> Self {
        Self {
            fut: Some(fut),
            cell,
            pool,
            id,
            step: Step::Fresh,
            extra: None,
            next: None,
            parked: None,
            spare: None,
        }
    }
}

/// Hands the result to its handle or group and removes the task from the pool. With
/// `runner` (the runner's spare mailbox; `None` when it is not going on), says what the runner
/// does next: the next queued task, with the slot, or a park.
fn finish<F: Future>(
    pool: &Arc<Inner>,
    cell: &Cell<F>,
    id: TaskId,
    res: Result<F::Output, TaskError>,
    runner: Option<&mut Option<Arc<Mailbox>>>,
) -> Next {
    let outcome = outcome_of(&res);
    match cell.spec.as_ref().and_then(|s| s.sink.as_ref()) {
        Some((core, seq)) => pool.retire_task(id, outcome, runner, || core.deliver(*seq, res)),
        None => pool.retire_task(id, outcome, runner, || cell.deliver(res)),
    }
}

impl<F> Job for TaskFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn poll_job(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> Poll<Next> {
        let _inside = current::enter(self.pool.serial, self.id);
        // User panics are caught where they happen; this catches the rest (a destructor that
        // panics when the future is dropped), so no panic reaches the executor thread. The
        // drop of this future then retires the task.
        match catch_unwind(AssertUnwindSafe(|| self.as_mut().step(cx, spare))) {
            Ok(poll) => poll,
            Err(payload) => {
                let msg = crate::error::panic_message(&*payload);
                tracing::error!(pool = %self.pool.name, task_id = self.id.get(),
                    "a pool task panicked outside its future (in a destructor?): {msg}");
                Poll::Ready(Next::End)
            }
        }
    }

    fn into_future(self: Pin<Box<Self>>) -> BoxFuture {
        self
    }
}

impl<F> Future for TaskFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut finished = 0;
        loop {
            let this = self.as_mut().project();
            let next = if let Some(mailbox) = this.parked.as_ref() {
                match ready!(mailbox.poll_take(cx)) {
                    Some(job) => {
                        // Keep the mailbox for the next park.
                        *this.spare = this.parked.take();
                        Next::Run(job)
                    }
                    None => {
                        *this.parked = None;
                        return Poll::Ready(());
                    }
                }
            } else if let Some(job) = this.next.as_mut() {
                ready!(job.as_mut().poll_job(cx, this.spare))
            } else if *this.step == Step::Done {
                return Poll::Ready(());
            } else {
                let mut spare = this.spare.take();
                let own = self.as_mut().poll_job(cx, &mut spare);
                *self.as_mut().project().spare = spare;
                ready!(own)
            };
            // The job that just ended is dropped here; the one it handed over (if any) runs
            // on this runtime task next.
            let this = self.as_mut().project();
            match next {
                Next::End => {
                    *this.next = None;
                    return Poll::Ready(());
                }
                Next::Run(job) => *this.next = Some(job),
                Next::Park(parking) => {
                    *this.next = None;
                    *this.parked = Some(parking.take_up());
                }
            }
            finished += 1;
            if finished == RUN_BUDGET {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl<F> TaskFuture<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> Poll<Next> {
        let mut this = self.project();
        let id = *this.id;
        loop {
            match *this.step {
                Step::Fresh => {
                    if !this.cell.is_cancelled() {
                        let name = this.cell.spec.as_ref().and_then(|s| s.name.as_deref());
                        this.pool.log_started(id, name);
                    }
                    *this.step = Step::Running;
                }
                Step::Running => {
                    let res = ready!(poll_task(
                        this.fut.as_mut(),
                        this.cell,
                        this.pool,
                        this.extra,
                        id,
                        cx
                    ));
                    // The future's destructors run before callbacks and before the handle
                    // resolves.
                    this.fut.set(None);
                    let callbacks = this
                        .cell
                        .spec
                        .as_ref()
                        .and_then(|s| s.options.callbacks.clone());
                    let Some(callbacks) = callbacks else {
                        *this.step = Step::Done;
                        return Poll::Ready(finish(this.pool, this.cell, id, res, Some(spare)));
                    };
                    this.pool.enter_callbacks(id);
                    let cancelled = outcome_of(&res) == Outcome::Cancelled;
                    let extra = this.extra.get_or_insert_with(Default::default);
                    extra.held = Some(res);
                    let pool = this.pool.clone();
                    extra.callbacks = Some(Box::pin(async move {
                        callbacks.run(&pool, id, cancelled).await;
                    }));
                    *this.step = Step::Callbacks;
                }
                Step::Callbacks => {
                    let extra = this.extra.as_mut().expect("callbacks are in extra");
                    if let Some(cb) = extra.callbacks.as_mut() {
                        ready!(cb.poll_unpin(cx));
                    }
                    let res = extra.held.take().expect("result held during callbacks");
                    *this.step = Step::Done;
                    // Its slot went back before the callbacks: nothing to hand over.
                    return Poll::Ready(finish(this.pool, this.cell, id, res, None));
                }
                Step::Done => return Poll::Ready(Next::End),
            }
        }
    }
}

/// One poll of the task's own future: cancelled, finished, panicked, timed out or pending.
fn poll_task<F: Future>(
    fut: Pin<&mut Option<F>>,
    cell: &Cell<F>,
    pool: &Inner,
    extra: &mut Option<Box<Extra<F::Output>>>,
    id: TaskId,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, TaskError>> {
    if cell.is_cancelled() {
        return Poll::Ready(Err(TaskError::Cancelled { id }));
    }
    let Some(fut) = fut.as_pin_mut() else {
        return Poll::Ready(Err(TaskError::Cancelled { id }));
    };
    match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Ready(v)) => return Poll::Ready(Ok(v)),
        Ok(Poll::Pending) => {}
        Err(payload) => {
            let err = TaskError::panicked(id, payload);
            tracing::error!(pool = %pool.name, task_id = id.get(), "{err}");
            return Poll::Ready(Err(err));
        }
    }
    let timeout = cell.spec.as_ref().and_then(|s| s.options.timeout);
    if let Some(after) = timeout {
        // Created on the first poll: time spent queued does not count.
        let extra = extra.get_or_insert_with(Default::default);
        let sleep = extra.sleep.get_or_insert_with(|| pool.spawner.sleep(after));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(TaskError::TimedOut { id, after }));
        }
    }
    cell.register(cx.waker());
    if cell.is_cancelled() {
        return Poll::Ready(Err(TaskError::Cancelled { id }));
    }
    Poll::Pending
}

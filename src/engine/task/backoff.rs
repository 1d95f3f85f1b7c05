//! A retried task's job between attempts (see `engine/retry.rs` for the design): the end of
//! an attempt the policy retries, the wait without a slot, and the queueing again. A child of
//! `task.rs`, for the cell's and the job's private parts; none of it is inlined into a plain
//! task's poll.

use super::{CellSpec, Extra, Step, TaskCell, TaskRunProj, CANCELLED, QUEUED, RAN};
use crate::engine::core::{Core, Next};
use crate::engine::outcome::Outcome;
use crate::engine::poll::CancelSignal;
use crate::engine::retry::discard;
use crate::engine::telemetry::Telemetry;
use crate::error::TaskError;
use crate::id::{TaskId, TaskName};
use futures_util::FutureExt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A retried task's attempt ended and it waits for its next one.
pub(super) struct Backoff;

/// Whether a retried task queued again after its backoff.
pub(super) struct Requeued(pub(super) bool);

/// The attempt of a task with options ended with `res`: if the task is retried and the
/// policy says so, it enters its backoff (`Err`); else `res` is its final result.
#[inline(never)]
pub(super) fn end_attempt<F, S: CellSpec>(
    core: &Arc<Core>,
    cell: &TaskCell<F, S>,
    id: TaskId,
    extra: &mut Option<Box<Extra<F::Output>>>,
    res: Result<F::Output, TaskError>,
) -> Result<Result<F::Output, TaskError>, Backoff>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(retry) = cell.retry() else {
        return Ok(res);
    };
    if cell.flag(CANCELLED) {
        return Ok(res);
    }
    let Some(wait) = retry.next_wait::<F>(&res, &core.name, id) else {
        return Ok(res);
    };
    let extra = extra.as_mut().expect("a retried task has extra");
    start_backoff(core, cell, id, wait, extra, res);
    Err(Backoff)
}

/// A retried task waits out its backoff, then queues again (`Requeued(true)`); or ends
/// (`Requeued(false)`: cancelled, or its factory panicked, the result held in `extra`).
#[inline(never)]
pub(super) fn wait_backoff<F, S: CellSpec>(
    core: &Arc<Core>,
    cell: &Arc<TaskCell<F, S>>,
    id: TaskId,
    extra: &mut Option<Box<Extra<F::Output>>>,
    cx: &mut Context<'_>,
) -> Poll<Requeued>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let extra = extra.as_mut().expect("a retried task has extra");
    if poll_backoff(cell, id, extra, cx).is_pending() {
        return Poll::Pending;
    }
    extra.backoff = None;
    if !cell.flag(CANCELLED) {
        match requeue(core, cell, id) {
            Ok(()) => return Poll::Ready(Requeued(true)),
            // The factory panicked: the task ends with that.
            Err(Some(res)) => extra.held = Some(res),
            // Cancelled meanwhile.
            Err(None) => {}
        }
    }
    Poll::Ready(Requeued(false))
}

/// The result the handle of a task with options gets (a retried task's error says how many
/// attempts ran).
#[inline(never)]
pub(super) fn final_result<F, S: CellSpec>(
    cell: &TaskCell<F, S>,
    res: Result<F::Output, TaskError>,
) -> Result<F::Output, TaskError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match cell.retry() {
        Some(retry) => retry.final_result(res),
        None => res,
    }
}

/// A retried task's attempt ended with `res` and gets another after `wait`: its slot goes
/// to other work at once, and it waits out its backoff still registered. Drops `res` after
/// unlocking.
#[cold]
#[inline(never)]
fn start_backoff<F, S: CellSpec>(
    core: &Arc<Core>,
    cell: &TaskCell<F, S>,
    id: TaskId,
    wait: Duration,
    extra: &mut Extra<F::Output>,
    res: Result<F::Output, TaskError>,
) where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    extra.backoff = Some(core.spawner.sleep(wait));
    {
        let mut s = core.section();
        let (st, after, c) = s.split();
        st.enter_backoff(id, c, after);
    }
    if Telemetry::ACTIVE && cell.flags().fetch_and(!RAN, Ordering::AcqRel) & RAN != 0 {
        core.telemetry.paused();
    }
    let attempt = cell.attempt();
    tracing::debug!(
        pool = %core.name,
        task_id = id.get(),
        attempt,
        ?wait,
        "attempt {attempt} of {} ended with {:?}; retrying in {wait:?}",
        TaskName { pool: &core.name, custom: cell.custom_name(), id },
        Outcome::of(&res),
    );
    discard(res, &core.name, id, "a failed attempt's output");
}

/// A retried task waits out its backoff: ready when the wait is over or it was cancelled.
pub(super) fn poll_backoff<F, S: CellSpec>(
    cell: &TaskCell<F, S>,
    id: TaskId,
    extra: &mut Extra<F::Output>,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if cell.flag(CANCELLED) {
        return Poll::Ready(());
    }
    // A cancel now wakes this job (it takes the waker under the cell's lock after setting
    // the flag: the check below sees one that came first).
    cell.register(id, cx.waker());
    if cell.flag(CANCELLED) {
        return Poll::Ready(());
    }
    match extra.backoff.as_mut() {
        Some(sleep) => sleep.poll_unpin(cx),
        None => Poll::Ready(()),
    }
}

/// A retried task's backoff is over: its next attempt's future, from the factory (no lock
/// held), goes into its cell and the same id queues again in its loose lane. `Err(Some)`:
/// the factory panicked (the task ends with that); `Err(None)`: it was cancelled meanwhile.
#[cold]
#[inline(never)]
fn requeue<F, S: CellSpec>(
    core: &Arc<Core>,
    cell: &Arc<TaskCell<F, S>>,
    id: TaskId,
) -> Result<(), Option<Result<F::Output, TaskError>>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let retry = cell.retry().expect("a task in its backoff is retried");
    let fut = retry
        .make::<F>()
        .map_err(|payload| Some(Err(TaskError::panicked(id, payload))))?;
    let priority = cell.spec.get().map_or(0, |s| s.priority);
    let mut s = core.section();
    let (st, after, c) = s.split();
    if !st.may_leave_backoff(id) {
        drop(s);
        discard(fut, &core.name, id, "a cancelled retry's future");
        return Err(None);
    }
    retry.next_attempt();
    if Telemetry::ACTIVE {
        cell.flags().fetch_or(QUEUED, Ordering::AcqRel);
    }
    cell.repark(fut);
    st.leave_backoff(id, cell.clone(), priority, c, after);
    drop(s);
    if Telemetry::ACTIVE {
        core.telemetry.enqueued();
    }
    Ok(())
}

/// The job of a retried task that queued again: it lets go of the task (a new job runs the
/// next attempt) and its runner ends.
pub(super) fn let_go<F, S: CellSpec>(this: &mut TaskRunProj<'_, F, S>) -> Next
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    *this.step = Step::Done;
    let (Some(core), Some(cell)) = (this.core.take(), this.cell.take()) else {
        return Next::End;
    };
    let id = *this.id;
    discard(cell, &core.name, id, "a retried task's cell");
    discard(
        this.extra.take(),
        &core.name,
        id,
        "a retried task's options",
    );
    discard(core, "(a pool whose last reference goes)", id, "the pool");
    Next::End
}

//! Retries of loose tasks made from a factory (`TaskBuilder::retry(..).spawn_with(..)`): what
//! a retried task carries (its policy, its factory, its attempt number), and the state's
//! transitions into and out of its backoff.
//!
//! After an attempt ends, its job (still on its runner, no lock held) asks the policy whether
//! to retry: the predicate is user code. If so, one section moves the task from `Running` to
//! `Backoff` and gives its slot to the work whose turn it is; the job then sleeps on the
//! pool's `Spawner::sleep`, holding no slot, woken early by a cancel. When the wait is over it
//! calls the factory (no lock held) and, in one section, puts the new future in the task's
//! cell and queues the same id again in its loose lane (its priority kept): from there the
//! task starts like any queued task. The task stays in the table all through its backoff, so
//! `tasks()` lists it, `cancel` and `cancel_all` reach it and `join` waits for it.

use super::core::{After, Core, Life, QueuedTask, Seat, State};
use super::user::{self, Payload, Whose};
use crate::error::TaskError;
use crate::id::TaskId;
use crate::policy::{RetryPolicy, Rng};
use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A retried task's part of its `TaskSpec`: its attempt number, and its policy and factory
/// (a [`Retrier`], its future's type erased: the spec is not generic).
pub(crate) struct Retry {
    /// The attempt it is on (1-based): raised when it queues again after a backoff.
    attempt: AtomicU32,
    retrier: Box<dyn Any + Send + Sync>,
}

/// The policy and the factory of a task whose future is an `F`.
struct Retrier<F: Future> {
    policy: RetryPolicy<F::Output>,
    /// The factory and the jitter's generator. Only the task's own job uses them, one
    /// attempt at a time: the lock is never contended, and it is no pool lock (the factory
    /// and the predicate run under it, with no pool lock held).
    make: Mutex<(Box<dyn FnMut() -> F + Send>, Rng)>,
}

impl Retry {
    pub(crate) fn new<F, M>(policy: RetryPolicy<F::Output>, make: M) -> Self
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        M: FnMut() -> F + Send + 'static,
    {
        let retrier: Retrier<F> = Retrier {
            policy,
            make: Mutex::new((Box::new(make), Rng::new())),
        };
        Self {
            attempt: AtomicU32::new(1),
            retrier: Box::new(retrier),
        }
    }

    /// The attempt the task is on (1-based).
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Acquire)
    }

    /// It queues again, for its next attempt.
    pub(crate) fn next_attempt(&self) {
        self.attempt.fetch_add(1, Ordering::AcqRel);
    }

    fn retrier<F>(&self) -> &Retrier<F>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.retrier
            .downcast_ref()
            .expect("a task's retrier makes futures of the task's type")
    }

    /// After the current attempt ended with `res`: the wait before the next one, or `None`
    /// if `res` is final. Runs the user's predicate: call with no lock held. A predicate that
    /// panics is logged, and the outcome is final.
    pub(crate) fn next_wait<F>(
        &self,
        res: &Result<F::Output, TaskError>,
        pool: &str,
        id: TaskId,
    ) -> Option<Duration>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let retrier = self.retrier::<F>();
        let attempt = self.attempt();
        let decided = user::call(|| {
            let mut make = retrier.make.lock().unwrap_or_else(PoisonError::into_inner);
            retrier.policy.retry_after(attempt, res, &mut make.1)
        });
        decided.unwrap_or_else(|payload| {
            predicate_panicked(pool, id, payload);
            None
        })
    }

    /// The next attempt's future, from the user's factory: call with no lock held. A panic
    /// comes back as its payload.
    pub(crate) fn make<F>(&self) -> Result<F, Payload>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let retrier = self.retrier::<F>();
        user::call(|| {
            let mut make = retrier.make.lock().unwrap_or_else(PoisonError::into_inner);
            (make.0)()
        })
    }

    /// The result the handle gets: an error after more than one attempt says how many.
    #[cold]
    pub(crate) fn final_result<T>(&self, res: Result<T, TaskError>) -> Result<T, TaskError> {
        let attempts = self.attempt();
        match res {
            Err(last) if attempts > 1 => Err(TaskError::Retried {
                id: last.id(),
                attempts,
                last: Box::new(last),
            }),
            res => res,
        }
    }
}

/// A value of the task's to let go of in a panic guard, outside any lock.
pub(crate) fn discard<T>(value: T, pool: &str, id: TaskId, what: &'static str) {
    user::drop_value(
        value,
        Whose {
            pool,
            task: Some(id),
            what,
        },
    );
}

impl State {
    /// Task `id`'s attempt failed and will be retried: it gives up its slot (to the work
    /// whose turn it is, at once) and waits out its backoff, still registered.
    pub(crate) fn enter_backoff(&mut self, id: TaskId, core: &Arc<Core>, after: &mut After) {
        let Some(entry) = self.table.get_mut(id.get()) else {
            return;
        };
        let Life::Running(seat) = entry.life else {
            return;
        };
        entry.life = Life::Backoff;
        self.running -= 1;
        self.backoff += 1;
        self.ended.retried += 1;
        // Each attempt's run time is recorded as it ends.
        self.time_ended(id, None);
        if seat == Seat::Slot {
            self.release_slot(core, after);
        }
    }

    /// Whether task `id`, in its backoff, may queue again (it was not cancelled meanwhile).
    pub(crate) fn may_leave_backoff(&self, id: TaskId) -> bool {
        self.table
            .get(id.get())
            .is_some_and(|e| e.life == Life::Backoff && !e.cancel_requested)
    }

    /// Task `id`'s backoff is over (checked with [`may_leave_backoff`](Self::may_leave_backoff)):
    /// it leaves the table and queues again in its loose lane, its next future in its cell;
    /// free slots are given out.
    pub(crate) fn leave_backoff(
        &mut self,
        id: TaskId,
        task: Arc<dyn QueuedTask>,
        priority: i32,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        if let Some(entry) = self.table.remove(id.get()) {
            debug_assert_eq!(entry.life, Life::Backoff);
            self.backoff -= 1;
            // The table's reference to the cell: the caller holds another.
            drop(entry.control.into_inner());
        }
        self.queue_loose(id, task, priority);
        self.grant(core, after);
    }

    /// Tasks waiting out a retry's backoff.
    pub(crate) fn in_backoff(&self) -> usize {
        self.backoff
    }
}

/// A retry predicate panicked: logged against its task, whose outcome is then final.
#[cold]
pub(crate) fn predicate_panicked(pool: &str, id: TaskId, payload: Payload) {
    tracing::error!(
        pool,
        task_id = id.get(),
        "the retry predicate of task {id} panicked; its outcome is final: {}",
        user::panic_message(&*payload)
    );
    user::drop_payload(payload);
}

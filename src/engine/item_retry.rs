//! Retries of group items (`GroupBuilder::retry(..).map(..)`, `apply`,
//! `SimpleTaskPoolBuilder::retry`): what a retried group carries (its policy and how to keep
//! an item for another attempt), the signal of an item between attempts, and the state's
//! transitions of an item into its backoff, back into its group's queue, and out of it.
//!
//! An item's attempt runs on a worker as usual; before it calls the user's function on the
//! item, the worker keeps a clone of it (user code: no lock held; not on the last attempt
//! allowed). When the attempt fails and the policy (its predicate is user code: no lock held)
//! says retry, one section moves the item from `Running` to `Backoff` (its id, its place in
//! the results and its entry kept; `cancel` now reaches its [`ItemWait`]) and lets the worker
//! go on with its group's next item or hand its slot on: the wait holds no slot. A job of its
//! own (on the pool's runtime, holding no slot) sleeps on `Spawner::sleep`, woken early by a
//! cancel. When the wait is over, one section moves the item to `Waiting` and puts its id in
//! its group's `requeued` queue (the kept item in the group's store): the group wants a slot
//! again, and the worker that gets it takes requeued items before new ones, under the same
//! id. An item cancelled in its backoff is ended by its job; one cancelled while requeued
//! leaves the queue in the cancel's section and is ended by a job of the group's driver
//! (`GroupDriver::end_requeued`). Either way it ends once: its callbacks run, its result
//! (`TaskError::Retried` after more than one attempt) is delivered, and it retires.

use super::core::{After, Core, Life, Seat, Start, State, TaskControl};
use super::groups::Pull;
use super::lanes::GroupKey;
use super::rate_state::KeyHash;
use super::retry::predicate_panicked;
use super::user::{self, Held};
use crate::error::TaskError;
use crate::id::TaskId;
use crate::policy::{RetryPolicy, Rng};
use crate::sync::AtomicWaker;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Duration;

/// A retried group's policy, and how it keeps an item for another attempt (`I::clone`, set
/// where `I: Clone` is known: the group itself needs no bound).
pub(crate) struct ItemRetry<I, T> {
    policy: RetryPolicy<T>,
    keep: fn(&I) -> I,
    /// The jitter's generator (never held with a pool lock, nor while user code runs).
    rng: Mutex<Rng>,
}

impl<I: Clone, T> ItemRetry<I, T> {
    pub(crate) fn new(policy: RetryPolicy<T>) -> Self {
        Self {
            policy,
            keep: I::clone,
            rng: Mutex::new(Rng::new()),
        }
    }
}

impl<I, T> ItemRetry<I, T> {
    /// Whether attempt `attempt` may be followed by another (so its item must be kept).
    #[inline]
    pub(crate) fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.policy.max_attempts()
    }

    /// A copy of `item` for the next attempt: user code (`Clone`), call with no lock held.
    pub(crate) fn keep(&self, item: &I) -> Result<I, user::Payload> {
        user::call(|| (self.keep)(item))
    }

    /// After attempt `attempt` ended with `res`: the wait before the next one, or `None` if
    /// `res` is final. Runs the user's predicate: call with no lock held. A predicate that
    /// panics is logged, and the outcome is final.
    pub(crate) fn next_wait(
        &self,
        attempt: u32,
        res: &Result<T, TaskError>,
        pool: &str,
        id: TaskId,
    ) -> Option<Duration> {
        if !self.may_retry(attempt) {
            return None;
        }
        match user::call(|| self.policy.should_retry(res)) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(payload) => {
                predicate_panicked(pool, id, payload);
                return None;
            }
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        self.policy.next_delay(attempt, &mut rng)
    }
}

/// The result an item's handle gets after `attempts` attempts: an error after more than one
/// says how many.
#[cold]
pub(crate) fn final_result<T>(attempts: u32, res: Result<T, TaskError>) -> Result<T, TaskError> {
    match res {
        Err(last) if attempts > 1 => Err(TaskError::Retried {
            id: last.id(),
            attempts,
            last: Box::new(last),
        }),
        res => res,
    }
}

/// An item between attempts, as the table sees it: cancelling it wakes its backoff job.
pub(crate) struct ItemWait {
    cancelled: AtomicBool,
    waker: AtomicWaker,
    /// The attempt it is on: the one that failed during its backoff, the next once requeued.
    attempt: AtomicU32,
}

impl ItemWait {
    pub(crate) fn new(attempt: u32) -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            waker: AtomicWaker::default(),
            attempt: AtomicU32::new(attempt),
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// The backoff job waits: a cancel from now on wakes `waker`.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// The backoff job is done waiting: the waker it left goes (dropped by the caller, no
    /// lock held).
    pub(crate) fn unregister(&self) -> Option<Waker> {
        self.waker.take()
    }

    pub(crate) fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Release);
    }
}

impl TaskControl for ItemWait {
    fn cancel(&self, _id: TaskId) -> Option<Waker> {
        self.cancelled.store(true, Ordering::Release);
        self.waker.take()
    }

    fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Acquire)
    }
}

impl State {
    /// Item `id` of group `key` failed an attempt that will be retried: it leaves its
    /// worker's slot (the worker goes on, `after_item`) and waits out its backoff, still
    /// registered, cancelled through `wait`. `false` (nothing changed) if it was cancelled
    /// meanwhile: its outcome is then final.
    pub(crate) fn item_to_backoff(
        &mut self,
        id: TaskId,
        key: GroupKey,
        wait: Arc<dyn TaskControl>,
    ) -> bool {
        let Some(entry) = self.table.get_mut(id.get()) else {
            return false;
        };
        if entry.cancel_requested || entry.life != Life::Running(Seat::Worker) {
            return false;
        }
        entry.life = Life::Backoff;
        // The worker's signal: the worker holds it too, so this only lowers a count.
        let worker = std::mem::replace(&mut entry.control, Held::new(wait)).into_inner();
        drop(worker);
        self.running -= 1;
        self.backoff += 1;
        self.ended.retried += 1;
        // Each attempt's run time is recorded as it ends.
        self.time_ended(id, Some(key));
        true
    }

    /// Item `id`'s backoff is over: unless it was cancelled (`false`), it waits for a slot
    /// of its group again, ahead of the group's new items, and free slots are given out.
    /// The caller puts the kept item in the group's store in this section.
    pub(crate) fn item_requeue(
        &mut self,
        id: TaskId,
        key: GroupKey,
        rate_key: KeyHash,
        core: &Arc<Core>,
        after: &mut After,
    ) -> bool {
        let ok = self
            .table
            .get_mut(id.get())
            .filter(|e| e.life == Life::Backoff && !e.cancel_requested)
            .map(|e| e.life = Life::Waiting)
            .is_some();
        if !ok {
            return false;
        }
        let Some(g) = self.groups.get_mut(key) else {
            return false;
        };
        g.requeued.push(id, rate_key);
        self.backoff -= 1;
        self.waiting_items += 1;
        self.time_queued(id);
        self.join_turns(key);
        self.grant(core, after);
        true
    }

    /// A worker of group `key` holding a slot takes its oldest requeued item, if any: it
    /// runs now, cancelled through `control`.
    #[cold]
    pub(crate) fn take_requeued(&mut self, key: GroupKey, control: &Arc<dyn TaskControl>) -> Pull {
        let Some(id) = self.groups.get_mut(key).and_then(|g| g.requeued.pop()) else {
            return Pull::Nothing;
        };
        self.start_requeued(key, id, control)
    }

    /// Requeued item `id` of group `key`, taken out of its group's queue, runs now.
    pub(crate) fn start_requeued(
        &mut self,
        key: GroupKey,
        id: TaskId,
        control: &Arc<dyn TaskControl>,
    ) -> Pull {
        let entry = self
            .table
            .get_mut(id.get())
            .expect("a requeued item is registered");
        debug_assert_eq!(entry.life, Life::Waiting);
        entry.life = Life::Running(Seat::Worker);
        // Its backoff job is over and took its waker: the signal holds no user value.
        let waited = std::mem::replace(&mut entry.control, Held::new(control.clone()));
        drop(waited.into_inner());
        self.waiting_items -= 1;
        self.running += 1;
        self.time_started(id, Some(key));
        Pull::Requeued(id)
    }

    /// Cancels item `id` of group `key` if it waits, requeued, for its next attempt: it
    /// leaves the queue and a job ends it. Whether it was there.
    pub(crate) fn cancel_requeued(
        &mut self,
        key: GroupKey,
        id: TaskId,
        core: &Arc<Core>,
        after: &mut After,
    ) -> bool {
        let Some(g) = self.groups.get_mut(key) else {
            return false;
        };
        if !g.requeued.remove(id) {
            return false;
        }
        let driver = g.driver.as_ref().map(|d| Arc::clone(d));
        self.enter_ending(id);
        if let Some(driver) = driver {
            let job = driver.end_requeued(core, id);
            after.start(Start::Job(job), None);
        }
        true
    }
}

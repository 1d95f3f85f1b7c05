//! The adaptive limit (`PoolBuilder::adaptive_limit`): a [`Limiter`] fed one sample per
//! task that ran, whose limit becomes the pool's.
//!
//! - **Where.** A task's start stamp is taken where it starts (only while a limiter is set:
//!   one relaxed load and a branch otherwise), and its sample is fed where its future ended,
//!   next to the telemetry's end hook: no pool lock held. Run time is read on the pool's
//!   runtime clock ([`Spawner::now`], tokio's paused clock in tests).
//! - **Locks.** The limiter lives under a mutex of its own, never held with a pool lock and
//!   never across user code other than the limiter's arithmetic. The limit it picks is
//!   applied in a pool section (`set_limit_to` and `grant`, no user code) only when it
//!   changed, and only if no newer choice was applied meanwhile: every choice (the
//!   limiter's, `set_limit`, a new limiter) takes a sequence number under the limiter's mutex
//!   and the section applies only numbers above the last one applied, so concurrent task
//!   ends and a `set_limit` cannot leave a stale limit behind.
//! - **Drops.** A limiter replaced or turned off is the user's value: it is dropped after
//!   every lock is released, through `user::drop_value`.
//! - **Outcomes.** A completed task is [`SampleOutcome::Ok`] unless it called
//!   `TaskPool::report_overload` while it ran ([`SampleOutcome::Error`]); a panic is an
//!   `Error`, a timeout `TimedOut`; a task cancelled, shed or dropped by its runtime is
//!   `Dropped` (ignored by the limiters).

use super::adaptive_state::{lock, Adaptive, Choice};
use super::core::Core;
use super::outcome::Outcome;
use super::user::{self, drop_value, Whose};
use crate::id::TaskId;
use crate::policy::{Limiter, PolicyError, Sample, SampleOutcome};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Adaptive {
    /// Installs `limiter` (replacing any): its limit becomes the pool's.
    pub(crate) fn install(&self, core: &Arc<Core>, limiter: Box<dyn Limiter>) {
        let (choice, old) = {
            let mut inner = lock(&self.inner);
            let choice = inner.choose(limiter.limit());
            let old = inner.limiter.replace(limiter);
            self.on.store(true, Ordering::Relaxed);
            (choice, old)
        };
        self.apply(core, choice);
        drop_limiter(core, old);
    }

    /// Turns the adaptive limit off; the pool's limit becomes `limit`.
    pub(crate) fn fix(&self, core: &Arc<Core>, limit: Option<usize>) {
        let (choice, old) = {
            let mut inner = lock(&self.inner);
            self.clear_reports(&mut inner);
            self.on.store(false, Ordering::Relaxed);
            (inner.next_choice(limit), inner.limiter.take())
        };
        self.apply(core, choice);
        drop_limiter(core, old);
    }

    /// Changes the limiter's bounds; the limit it clamps to becomes the pool's.
    pub(crate) fn set_bounds(
        &self,
        core: &Arc<Core>,
        min: usize,
        max: usize,
    ) -> Result<(), PolicyError> {
        let choice = {
            let mut inner = lock(&self.inner);
            let Some(limiter) = inner.limiter.as_mut() else {
                return Err(PolicyError::invalid(
                    "adaptive limit bounds",
                    (min, max),
                    "the pool has no adaptive limit; set one with TaskPool::set_adaptive_limit",
                ));
            };
            match user::call(|| limiter.set_bounds(min, max)) {
                Ok(res) => res?,
                Err(payload) => {
                    drop(inner);
                    limiter_panicked(core, payload);
                    return Ok(());
                }
            }
            let limit = limiter.limit();
            inner.choose(limit)
        };
        self.apply(core, choice);
        Ok(())
    }

    /// Task `id` ended. Stamped `started` (it started while a limiter was set): its sample
    /// goes to the limiter, and the limit it picks to the pool. No pool lock may be held.
    #[inline]
    pub(crate) fn ended(
        &self,
        core: &Arc<Core>,
        started: Option<Instant>,
        id: TaskId,
        outcome: Outcome,
    ) {
        match started {
            Some(at) => self.sample(core, at, id, outcome),
            None => self.forget(id),
        }
    }

    #[inline(never)]
    fn sample(&self, core: &Arc<Core>, started: Instant, id: TaskId, outcome: Outcome) {
        let run_time = core.spawner.now().saturating_duration_since(started);
        let in_flight = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let choice = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            let reported = self.take_report(inner, id);
            let outcome = match outcome {
                Outcome::Completed if reported => SampleOutcome::Error,
                Outcome::Completed => SampleOutcome::Ok,
                Outcome::Panicked => SampleOutcome::Error,
                Outcome::TimedOut => SampleOutcome::TimedOut,
                Outcome::Cancelled | Outcome::Dropped | Outcome::Shed => SampleOutcome::Dropped,
            };
            let Some(limiter) = inner.limiter.as_mut() else {
                return;
            };
            let sample = Sample::new(run_time, outcome, in_flight);
            let limit = match user::call(|| limiter.on_sample(sample, started + run_time)) {
                Ok(limit) => limit,
                Err(payload) => {
                    drop(guard);
                    limiter_panicked(core, payload);
                    return;
                }
            };
            inner.samples += 1;
            inner.overloads += u64::from(outcome.is_overload());
            if limit == inner.chosen {
                return;
            }
            inner.choose(limit)
        };
        self.apply(core, choice);
    }

    /// Makes `choice` the pool's limit, unless a newer choice was applied already.
    fn apply(&self, core: &Arc<Core>, choice: Choice) {
        let applied = {
            let mut s = core.section();
            let (st, after, c) = s.split();
            let newer = choice.seq > self.applied.load(Ordering::Relaxed);
            if newer {
                self.applied.store(choice.seq, Ordering::Relaxed);
                st.set_limit_to(choice.limit);
                st.grant(c, after);
            }
            newer
        };
        if applied {
            core.telemetry.limit(choice.limit);
            tracing::debug!(pool = %core.name, limit = ?choice.limit, "{} limit set to {:?}", core.name, choice.limit);
        }
    }
}

/// A limiter's panic: logged, the limit left as it was.
#[cold]
fn limiter_panicked(core: &Core, payload: user::Payload) {
    let msg = user::panic_message(&*payload);
    tracing::error!(pool = %core.name, "the adaptive limiter of pool {} panicked (the limit stays): {msg}", core.name);
    user::drop_payload(payload);
}

/// A limiter replaced or turned off: the user's value, dropped with no lock held.
fn drop_limiter(core: &Core, limiter: Option<Box<dyn Limiter>>) {
    if let Some(limiter) = limiter {
        drop_value(
            limiter,
            Whose {
                pool: &core.name,
                task: None,
                what: "the adaptive limiter",
            },
        );
    }
}

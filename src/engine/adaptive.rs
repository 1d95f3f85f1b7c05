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

use super::core::Core;
use super::outcome::Outcome;
use super::user::{self, drop_value, Whose};
use crate::id::TaskId;
use crate::policy::{Limiter, PolicyError, Sample, SampleOutcome};
use async_taskpool_runtime::Spawner;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// A pool's adaptive limit: off (no limiter) unless one was set.
#[derive(Debug, Default)]
pub(crate) struct Adaptive {
    /// Whether a limiter is set: the hot path's one load.
    on: AtomicBool,
    /// Tasks started with a stamp and not yet sampled (`Sample::in_flight`).
    in_flight: AtomicUsize,
    /// The sequence number of the last limit applied; written in pool sections only.
    applied: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    limiter: Option<Box<dyn Limiter>>,
    /// The last limit chosen (applied, or on its way).
    chosen: usize,
    /// The last sequence number handed out.
    seq: u64,
    samples: u64,
    overloads: u64,
    /// Tasks that reported an overload and have not been sampled yet.
    reported: Vec<TaskId>,
}

/// What [`TaskPool::adaptive`](crate::TaskPool::adaptive) shows of a pool's adaptive limit.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{policy::Aimd, runtime::TokioSpawner, TaskPool};
/// let pool = TaskPool::builder(TokioSpawner::current())
///     .adaptive_limit(Aimd::builder(2, 50).initial(10).build()?)
///     .build()?;
/// let a = pool.adaptive().expect("an adaptive limit");
/// assert_eq!((a.limiter.as_str(), a.min, a.max, a.limit), ("aimd", 2, 50, 10));
/// assert_eq!(pool.limit(), Some(10));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct AdaptiveStats {
    /// The limiter's [`name`](Limiter::name).
    pub limiter: String,
    /// Its lower bound.
    pub min: usize,
    /// Its upper bound.
    pub max: usize,
    /// The limit it chose last (the pool's limit, once applied).
    pub limit: usize,
    /// Samples fed to it (tasks that ran and ended while it was set).
    pub samples: u64,
    /// Of those, how many said to back off (errors, reported overloads, timeouts).
    pub overloads: u64,
}

impl Inner {
    /// The limiter chose `limit`: it is to be applied under the next sequence number.
    fn choose(&mut self, limit: usize) -> Choice {
        self.chosen = limit;
        self.next_choice(Some(limit))
    }

    /// A limit to apply (`None`: no limit) under a new sequence number, so that no limit
    /// chosen before it can overwrite it.
    fn next_choice(&mut self, limit: Option<usize>) -> Choice {
        self.seq += 1;
        Choice {
            seq: self.seq,
            limit,
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A limiter that panicked left numbers, not broken invariants.
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A limit chosen, to apply in a pool section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice {
    seq: u64,
    limit: Option<usize>,
}

impl Adaptive {
    /// Whether a limiter is set.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// A task starts: its stamp, if a limiter is set.
    #[inline]
    pub(crate) fn start(&self, spawner: &dyn Spawner) -> Option<Instant> {
        if self.is_on() {
            self.start_slow(spawner)
        } else {
            None
        }
    }

    #[inline(never)]
    fn start_slow(&self, spawner: &dyn Spawner) -> Option<Instant> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(spawner.now())
    }

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
            inner.reported.clear();
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

    /// The task that is being polled on this thread reports an overload. Whether it was
    /// one of this pool's (and a limiter is set).
    pub(crate) fn report(&self, id: TaskId) -> bool {
        if !self.is_on() {
            return false;
        }
        let mut inner = lock(&self.inner);
        if inner.limiter.is_none() {
            return false;
        }
        if !inner.reported.contains(&id) {
            inner.reported.push(id);
        }
        true
    }

    /// Task `id`, stamped `started`, ended: its sample goes to the limiter, and the limit
    /// it picks to the pool. No pool lock may be held.
    pub(crate) fn ended(&self, core: &Arc<Core>, started: Instant, id: TaskId, outcome: Outcome) {
        let run_time = core.spawner.now().saturating_duration_since(started);
        let in_flight = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let choice = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            let reported = match inner.reported.iter().position(|&r| r == id) {
                Some(i) => {
                    inner.reported.swap_remove(i);
                    true
                }
                None => false,
            };
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

    /// The snapshot `TaskPool::adaptive` shows.
    pub(crate) fn stats(&self) -> Option<AdaptiveStats> {
        let inner = lock(&self.inner);
        let limiter = inner.limiter.as_ref()?;
        let (min, max) = limiter.bounds();
        Some(AdaptiveStats {
            limiter: limiter.name().to_owned(),
            min,
            max,
            limit: inner.chosen,
            samples: inner.samples,
            overloads: inner.overloads,
        })
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

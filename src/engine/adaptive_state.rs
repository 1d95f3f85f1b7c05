//! The data of a pool's adaptive limit (`PoolBuilder::adaptive_limit`), and the steps that
//! touch nothing of the pool: a leaf, so that the pool's state can hold it. The steps that
//! apply a limit to the pool are in `adaptive.rs`, whose notes say how the two fit.

use crate::id::TaskId;
use crate::policy::Limiter;
use async_taskpool_runtime::Spawner;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// A pool's adaptive limit: off (no limiter) unless one was set.
#[derive(Debug, Default)]
pub(crate) struct Adaptive {
    /// Whether a limiter is set: the hot path's one load.
    pub(super) on: AtomicBool,
    /// Tasks started with a stamp and not yet sampled (`Sample::in_flight`).
    pub(super) in_flight: AtomicUsize,
    /// The sequence number of the last limit applied; written in pool sections only.
    pub(super) applied: AtomicU64,
    /// How many tasks' reports `inner.reported` holds: written under its mutex, read without
    /// it so that a task that ends unstamped takes the mutex only if some report is pending.
    pub(super) reports: AtomicUsize,
    pub(super) inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) limiter: Option<Box<dyn Limiter>>,
    /// The last limit chosen (applied, or on its way).
    pub(super) chosen: usize,
    /// The last sequence number handed out.
    pub(super) seq: u64,
    pub(super) samples: u64,
    pub(super) overloads: u64,
    /// Tasks that reported an overload and have not been sampled yet.
    pub(super) reported: Vec<TaskId>,
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
    pub(super) fn choose(&mut self, limit: usize) -> Choice {
        self.chosen = limit;
        self.next_choice(Some(limit))
    }

    /// A limit to apply (`None`: no limit) under a new sequence number, so that no limit
    /// chosen before it can overwrite it.
    pub(super) fn next_choice(&mut self, limit: Option<usize>) -> Choice {
        self.seq += 1;
        Choice {
            seq: self.seq,
            limit,
        }
    }
}

pub(super) fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A limiter that panicked left numbers, not broken invariants.
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A limit chosen, to apply in a pool section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice {
    pub(super) seq: u64,
    pub(super) limit: Option<usize>,
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
            self.reports.store(inner.reported.len(), Ordering::Relaxed);
        }
        true
    }

    /// Takes task `id`'s overload report out of `inner`: whether it made one.
    pub(super) fn take_report(&self, inner: &mut Inner, id: TaskId) -> bool {
        let Some(i) = inner.reported.iter().position(|&r| r == id) else {
            return false;
        };
        inner.reported.swap_remove(i);
        self.reports.store(inner.reported.len(), Ordering::Relaxed);
        true
    }

    /// Reports not yet taken by their tasks' ends (for tests: none may stay behind).
    #[cfg(all(test, feature = "tokio", not(loom)))]
    pub(crate) fn pending_reports(&self) -> usize {
        lock(&self.inner).reported.len()
    }

    /// Drops every pending report (the limiter goes).
    pub(super) fn clear_reports(&self, inner: &mut Inner) {
        inner.reported.clear();
        self.reports.store(0, Ordering::Relaxed);
    }

    /// Task `id` ended without a stamp (it started before the limiter was set, or never
    /// started): it is no sample, but a report it made is forgotten, so none stays behind.
    #[inline]
    pub(super) fn forget(&self, id: TaskId) {
        if self.reports.load(Ordering::Relaxed) != 0 {
            self.take_report(&mut lock(&self.inner), id);
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

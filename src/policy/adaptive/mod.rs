//! Adaptive concurrency limits: a [`Limiter`] turns what the tasks that ended saw (run time,
//! outcome, load) into a new limit, between a minimum and a maximum.
//!
//! Two limiters, after Netflix's concurrency-limits and TCP congestion control:
//! - [`Aimd`]: additive increase, multiplicative decrease. It climbs by about one per
//!   round trip while tasks succeed, and cuts the limit by a ratio on an error, a timeout or
//!   a run time over a threshold you set. Simple, needs a threshold to see latency.
//! - [`Gradient`]: compares the run time now with the backend's run time at low load, and
//!   moves the limit by their ratio. Needs no threshold: it finds where latency starts to
//!   rise.
//!
//! Judged on a simulated backend whose latency rises sharply past a concurrency knee (see
//! the tests and docs/BENCHMARKS.md): both settle near the knee, keep the throughput of the
//! best fixed limit, and follow the knee when it moves.

mod aimd;
mod gradient;
#[cfg(test)]
mod sim;

pub use aimd::{Aimd, AimdBuilder};
pub use gradient::{Gradient, GradientBuilder};

use super::PolicyError;
use std::fmt;
use std::time::{Duration, Instant};

/// How a task that fed a [`Sample`] ended, as a limiter sees it.
///
/// ```
/// use async_taskpool::policy::SampleOutcome;
/// assert!(SampleOutcome::TimedOut.is_overload());
/// assert!(!SampleOutcome::Dropped.is_overload());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    /// It succeeded; its run time is a latency measurement.
    Ok,
    /// It failed in a way that says the backend is overloaded (a 503, a refused
    /// connection): a signal to back off. Report failures that say nothing about load (a
    /// 404, a bad input) as `Ok`, or not at all.
    Error,
    /// It hit its run timeout: a signal to back off.
    TimedOut,
    /// It ended without telling anything about the backend (cancelled, or dropped by its
    /// runtime): ignored.
    Dropped,
}

impl SampleOutcome {
    /// Whether this outcome tells the limiter to back off (`Error`, `TimedOut`).
    ///
    /// ```
    /// assert!(async_taskpool::policy::SampleOutcome::Error.is_overload());
    /// ```
    pub fn is_overload(self) -> bool {
        matches!(self, Self::Error | Self::TimedOut)
    }
}

/// What one task that ended tells a [`Limiter`].
///
/// ```
/// use async_taskpool::policy::{Sample, SampleOutcome};
/// use std::time::Duration;
/// let s = Sample::new(Duration::from_millis(40), SampleOutcome::Ok, 8);
/// assert_eq!(s.in_flight, 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// How long the task ran (not counting time queued).
    pub run_time: Duration,
    /// How it ended.
    pub outcome: SampleOutcome,
    /// Tasks running when it ended, itself included: a limiter raises the limit only when
    /// the limit is actually used (a pool running 3 tasks under a limit of 100 says nothing
    /// about whether 101 would do).
    pub in_flight: usize,
}

impl Sample {
    /// A sample.
    ///
    /// ```
    /// use async_taskpool::policy::{Sample, SampleOutcome};
    /// let s = Sample::new(std::time::Duration::ZERO, SampleOutcome::Dropped, 1);
    /// assert_eq!(s.outcome, SampleOutcome::Dropped);
    /// ```
    pub const fn new(run_time: Duration, outcome: SampleOutcome, in_flight: usize) -> Self {
        Self {
            run_time,
            outcome,
            in_flight,
        }
    }

    /// When the task started, if `now` is when it ended.
    fn started(&self, now: Instant) -> Option<Instant> {
        now.checked_sub(self.run_time)
    }
}

/// A concurrency limit that adapts to what tasks observe.
///
/// The pool calls [`on_sample`](Limiter::on_sample) as each task ends and uses the limit
/// it returns from then on. Implementations do arithmetic only: no allocation, no lock, no
/// clock (time is the `now` passed in), so the pool can call them under its own lock.
///
/// ```
/// use async_taskpool::policy::{Gradient, Limiter, Sample, SampleOutcome};
/// use std::time::{Duration, Instant};
///
/// let mut limiter: Box<dyn Limiter> = Box::new(Gradient::builder(1, 64).initial(4).build()?);
/// let t0 = Instant::now();
/// for i in 0..100u32 {
///     let s = Sample::new(Duration::from_millis(10), SampleOutcome::Ok, limiter.limit());
///     limiter.on_sample(s, t0 + Duration::from_millis(i.into()));
/// }
/// assert!(limiter.limit() > 4); // steady latency at full use: it grows
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
pub trait Limiter: Send + fmt::Debug {
    /// Takes in one ended task's sample, observed at `now`, and returns the new limit
    /// (always within the limiter's bounds).
    fn on_sample(&mut self, sample: Sample, now: Instant) -> usize;

    /// The limit in force.
    fn limit(&self) -> usize;

    /// The bounds, `(min, max)`, the limit stays within.
    ///
    /// ```
    /// use async_taskpool::policy::{Aimd, Limiter};
    /// let aimd: &dyn Limiter = &Aimd::builder(2, 40).build()?;
    /// assert_eq!(aimd.bounds(), (2, 40));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    fn bounds(&self) -> (usize, usize);

    /// Changes the bounds at run time; the limit is clamped into them.
    ///
    /// The default refuses: a limiter that can change its bounds overrides it ([`Aimd`]
    /// and [`Gradient`] do).
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] unless `1 <= min <= max`, or if this limiter cannot change
    /// its bounds.
    ///
    /// ```
    /// use async_taskpool::policy::{Gradient, Limiter};
    /// let mut g = Gradient::builder(1, 100).initial(50).build()?;
    /// g.set_bounds(1, 20)?;
    /// assert_eq!((g.bounds(), g.limit()), ((1, 20), 20));
    /// assert!(g.set_bounds(0, 20).is_err());
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    fn set_bounds(&mut self, min: usize, max: usize) -> Result<(), PolicyError> {
        Err(PolicyError::invalid(
            "limiter bounds",
            (min, max),
            "this limiter cannot change its bounds at run time; install a new one (TaskPool::set_adaptive_limit)",
        ))
    }

    /// A short name for displays (stats, the control server). The default is the type's
    /// name.
    ///
    /// ```
    /// use async_taskpool::policy::{Aimd, Limiter};
    /// assert_eq!(Aimd::builder(1, 10).build()?.name(), "aimd");
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

impl<L: Limiter + ?Sized> Limiter for Box<L> {
    fn on_sample(&mut self, sample: Sample, now: Instant) -> usize {
        (**self).on_sample(sample, now)
    }

    fn limit(&self) -> usize {
        (**self).limit()
    }

    fn bounds(&self) -> (usize, usize) {
        (**self).bounds()
    }

    fn set_bounds(&mut self, min: usize, max: usize) -> Result<(), PolicyError> {
        (**self).set_bounds(min, max)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Checks `1 <= min <= max` for [`Limiter::set_bounds`] and returns `limit` clamped into
/// them.
fn rebound(min: usize, max: usize, limit: f64) -> Result<f64, PolicyError> {
    check_bounds(min, max, min)?;
    Ok(limit.clamp(min as f64, max as f64))
}

/// Checks `min <= initial <= max` and `min >= 1`.
fn check_bounds(min: usize, max: usize, initial: usize) -> Result<(), PolicyError> {
    if min == 0 {
        return Err(PolicyError::invalid(
            "limiter min",
            0,
            "it must be at least 1 (a limit of 0 would never start anything; lock the pool to pause it)",
        ));
    }
    if min > max {
        return Err(PolicyError::invalid(
            "limiter bounds",
            (min, max),
            "min must not exceed max",
        ));
    }
    if !(min..=max).contains(&initial) {
        return Err(PolicyError::invalid(
            "limiter initial limit",
            (initial, min, max),
            "the initial limit must lie within min..=max",
        ));
    }
    Ok(())
}

/// Checks that a ratio lies in an open or closed range.
fn check_ratio(
    what: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), PolicyError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(PolicyError::invalid(what, value, expected))
    }
}

//! A gradient limiter: the limit follows the ratio of the low-load run time to the run time
//! now.

use super::{check_bounds, check_ratio, Limiter, Sample, SampleOutcome};
use crate::policy::PolicyError;
use std::time::Instant;

/// The fewest samples a window averages (fewer would be too noisy to act on).
const MIN_WINDOW: usize = 8;

/// A gradient limiter, after Netflix's `Gradient2Limit` and TCP Vegas: it compares the
/// backend's run time at low load (the *baseline*) with the run time now, and moves the
/// limit by their ratio.
///
/// It works in **windows** of about one round trip (a limit's worth of samples, at least 8).
/// At the end of each window:
///
/// ```text
/// gradient  = clamp(tolerance × baseline / average run time, 0.5, 1.0)
///             (and at most 1 − the window's share of errors and timeouts)
/// new limit = limit × gradient + √limit
/// limit     = limit × (1 − smoothing) + new limit × smoothing
/// ```
///
/// While run times stay at the baseline, the gradient is 1 and the limit grows by about
/// `smoothing × √limit` per window; once queueing shows in the run time, the gradient pulls
/// the limit back. It settles where the run time is a little above the baseline
/// (`baseline / (1 − 1/√limit)` with tolerance 1): just past the knee where the backend
/// starts to queue. It grows only while the limit is at least half used.
///
/// **The baseline** is learnt from the first window (start low: the default initial limit
/// is `min`) and then by **probes**: every [`probe_every`](GradientBuilder::probe_every)
/// windows (default 100) the limiter halves the limit for a window of tasks started after
/// the cut (two limits' worth of them), blends their average run time into the baseline
/// (half each), and resumes. So the baseline follows a backend that got slower or faster
/// for good, and it is measured where queueing does not inflate it. It is never the
/// minimum of the windows seen: with run times that vary from task to task, a minimum
/// creeps ever lower and drags the limit down with it. A probe costs about two round trips
/// at half the limit: 1 to 2% of the throughput at the default.
///
/// [`SampleOutcome::Dropped`] changes nothing.
///
/// ```
/// use async_taskpool::policy::{Gradient, Limiter, Sample, SampleOutcome};
/// use std::time::{Duration, Instant};
/// let mut gradient = Gradient::builder(1, 200).initial(16).build()?;
/// let t0 = Instant::now();
/// let mut now = t0;
/// // Run times at the baseline while the limit is used: the limit grows.
/// for _ in 0..64 {
///     now += Duration::from_millis(1);
///     let s = Sample::new(Duration::from_millis(20), SampleOutcome::Ok, gradient.limit());
///     gradient.on_sample(s, now);
/// }
/// let grown = gradient.limit();
/// assert!(grown > 16);
/// // Run times doubled: the limit comes down.
/// for _ in 0..64 {
///     now += Duration::from_millis(1);
///     let s = Sample::new(Duration::from_millis(40), SampleOutcome::Ok, gradient.limit());
///     gradient.on_sample(s, now);
/// }
/// assert!(gradient.limit() < grown);
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gradient {
    min: usize,
    max: usize,
    limit: f64,
    tolerance: f64,
    smoothing: f64,
    probe_every: u32,
    /// The backend's run time at low load, in seconds.
    baseline: Option<f64>,
    windows_since_probe: u32,
    window: Window,
    probe: Option<Probe>,
}

/// The samples of the window under way.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    run_time_sum: f64,
    ok: usize,
    overload: usize,
    max_in_flight: usize,
}

/// A probe under way: the limit was halved at `started`.
#[derive(Debug, Clone, Copy)]
struct Probe {
    started: Instant,
    resume_at: f64,
}

impl Gradient {
    /// A builder for a limit between `min` and `max` (starting at `min`, tolerance 1.0,
    /// smoothing 0.2, a probe every 100 windows).
    ///
    /// ```
    /// use async_taskpool::policy::{Gradient, Limiter};
    /// assert_eq!(Gradient::builder(2, 20).build()?.limit(), 2);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn builder(min: usize, max: usize) -> GradientBuilder {
        GradientBuilder {
            min,
            max,
            initial: None,
            tolerance: 1.0,
            smoothing: 0.2,
            probe_every: 100,
        }
    }

    /// The bounds, `(min, max)`.
    ///
    /// ```
    /// let g = async_taskpool::policy::Gradient::builder(3, 30).build()?;
    /// assert_eq!(g.bounds(), (3, 30));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }

    /// The low-load run time learnt so far (`None` before the first window).
    ///
    /// ```
    /// let g = async_taskpool::policy::Gradient::builder(1, 30).build()?;
    /// assert_eq!(g.baseline(), None);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn baseline(&self) -> Option<std::time::Duration> {
        self.baseline.map(std::time::Duration::from_secs_f64)
    }

    fn clamp(&self, limit: f64) -> f64 {
        limit.clamp(self.min as f64, self.max as f64)
    }

    /// Ends the window under way: moves the limit, or ends a probe; maybe starts one.
    fn end_window(&mut self, now: Instant) {
        let window = std::mem::take(&mut self.window);
        let average = (window.ok > 0).then(|| window.run_time_sum / window.ok as f64);
        if let Some(probe) = self.probe.take() {
            // The probe ran at half the load: its average is a fresh look at the baseline,
            // blended with the last one to halve the noise of either.
            if let Some(average) = average {
                self.baseline = Some(self.baseline.map_or(average, |b| (b + average) / 2.0));
            }
            self.windows_since_probe = 0;
            self.limit = self.clamp(probe.resume_at);
            return;
        }
        let Some(baseline) = self.baseline else {
            // The first window, at the initial (low) limit, teaches the baseline.
            self.baseline = average;
            return;
        };
        let latency_gradient = match average {
            Some(average) if average > 0.0 => (self.tolerance * baseline / average).clamp(0.5, 1.0),
            _ => 1.0,
        };
        let samples = window.ok + window.overload;
        let overload_share = window.overload as f64 / samples as f64;
        let gradient = latency_gradient.min(1.0 - overload_share).max(0.5);
        let mut target = self.limit * gradient + self.limit.sqrt();
        if window.max_in_flight.saturating_mul(2) < self.limit() {
            target = target.min(self.limit); // not used: no evidence that more would do
        }
        self.limit = self.clamp(self.limit * (1.0 - self.smoothing) + target * self.smoothing);
        self.windows_since_probe += 1;
        if self.windows_since_probe >= self.probe_every {
            self.probe = Some(Probe {
                started: now,
                resume_at: self.limit,
            });
            self.limit = self.clamp((self.limit / 2.0).floor());
        }
    }

    /// Samples that end the window under way.
    fn window_size(&self) -> usize {
        match self.probe {
            // A probe's average sets the baseline for the next hundred windows: make it
            // twice as long, for a steadier one.
            Some(_) => (2 * self.limit()).max(4 * MIN_WINDOW),
            None => self.limit().max(MIN_WINDOW),
        }
    }
}

impl Limiter for Gradient {
    fn on_sample(&mut self, sample: Sample, now: Instant) -> usize {
        if sample.outcome == SampleOutcome::Dropped {
            return self.limit();
        }
        if let Some(probe) = &self.probe {
            // A probe measures only tasks that started at the probe's load.
            if sample
                .started(now)
                .is_none_or(|started| started < probe.started)
            {
                return self.limit();
            }
        }
        let w = &mut self.window;
        if sample.outcome.is_overload() {
            w.overload += 1;
        } else {
            w.ok += 1;
            w.run_time_sum += sample.run_time.as_secs_f64();
        }
        w.max_in_flight = w.max_in_flight.max(sample.in_flight);
        let seen = w.ok + w.overload;
        if seen >= self.window_size() {
            self.end_window(now);
        }
        self.limit()
    }

    fn limit(&self) -> usize {
        self.limit as usize
    }

    fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }

    fn set_bounds(&mut self, min: usize, max: usize) -> Result<(), PolicyError> {
        self.limit = super::rebound(min, max, self.limit)?;
        (self.min, self.max) = (min, max);
        Ok(())
    }

    fn name(&self) -> &str {
        "gradient"
    }
}

/// Builds a [`Gradient`]; [`build`](Self::build) checks the parameters.
///
/// ```
/// use async_taskpool::policy::Gradient;
/// assert!(Gradient::builder(1, 10).smoothing(0.0).build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct GradientBuilder {
    min: usize,
    max: usize,
    initial: Option<usize>,
    tolerance: f64,
    smoothing: f64,
    probe_every: u32,
}

impl GradientBuilder {
    /// The limit to start from (default: `min`). Start low: the first windows teach the
    /// limiter the low-load run time.
    ///
    /// ```
    /// use async_taskpool::policy::{Gradient, Limiter};
    /// assert_eq!(Gradient::builder(1, 100).initial(8).build()?.limit(), 8);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn initial(mut self, initial: usize) -> Self {
        self.initial = Some(initial);
        self
    }

    /// How much slower than the baseline run times may get before the limit stops growing,
    /// as a ratio `>= 1` (default 1.0: it backs off as soon as queueing shows; 1.5 lets
    /// run times grow by half first, for noisy backends).
    ///
    /// ```
    /// use async_taskpool::policy::Gradient;
    /// assert!(Gradient::builder(1, 10).tolerance(0.5).build().is_err());
    /// ```
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How far each window moves the limit toward its target, in `(0, 1]` (default 0.2).
    ///
    /// ```
    /// use async_taskpool::policy::Gradient;
    /// assert!(Gradient::builder(1, 10).smoothing(1.0).build().is_ok());
    /// ```
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Windows between two probes of the low-load run time, at least 2 (default 100).
    ///
    /// ```
    /// use async_taskpool::policy::Gradient;
    /// assert!(Gradient::builder(1, 10).probe_every(1).build().is_err());
    /// ```
    pub fn probe_every(mut self, windows: u32) -> Self {
        self.probe_every = windows;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] unless `1 <= min <= initial <= max`, `tolerance >= 1`,
    /// `0 < smoothing <= 1` and `probe_every >= 2`.
    ///
    /// ```
    /// use async_taskpool::policy::Gradient;
    /// let err = Gradient::builder(5, 1).build().unwrap_err();
    /// assert!(err.to_string().contains("min must not exceed max"));
    /// ```
    pub fn build(self) -> Result<Gradient, PolicyError> {
        let initial = self.initial.unwrap_or(self.min);
        check_bounds(self.min, self.max, initial)?;
        check_ratio(
            "gradient tolerance",
            self.tolerance,
            self.tolerance >= 1.0,
            "it must be at least 1.0 (1.0 backs off as soon as run times rise)",
        )?;
        check_ratio(
            "gradient smoothing",
            self.smoothing,
            self.smoothing > 0.0 && self.smoothing <= 1.0,
            "it must lie in (0, 1] (0.2 moves the limit a fifth of the way each window)",
        )?;
        if self.probe_every < 2 {
            return Err(PolicyError::invalid(
                "gradient probe_every",
                self.probe_every,
                "it must be at least 2 windows (100 probes about every 100 round trips)",
            ));
        }
        Ok(Gradient {
            min: self.min,
            max: self.max,
            limit: initial as f64,
            tolerance: self.tolerance,
            smoothing: self.smoothing,
            probe_every: self.probe_every,
            baseline: None,
            windows_since_probe: 0,
            window: Window::default(),
            probe: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `rounds` windows' worth of samples of `run_time`, the limit fully used.
    fn feed(g: &mut Gradient, now: &mut Instant, run_time: Duration, samples: usize) {
        for _ in 0..samples {
            *now += ms(1);
            let limit = g.limit();
            g.on_sample(Sample::new(run_time, SampleOutcome::Ok, limit), *now);
        }
    }

    #[test]
    fn grows_at_the_baseline_and_shrinks_when_run_times_rise() {
        let mut g = Gradient::builder(1, 1000).initial(10).build().unwrap();
        let mut now = Instant::now();
        feed(&mut g, &mut now, ms(100), 300);
        let grown = g.limit();
        assert!(grown > 20, "{grown}");
        assert_eq!(g.baseline(), Some(ms(100)));
        feed(&mut g, &mut now, ms(300), 300);
        assert!(g.limit() < grown / 2, "{} vs {grown}", g.limit());
    }

    #[test]
    fn errors_pull_the_limit_down_even_at_baseline_run_times() {
        let mut g = Gradient::builder(1, 1000).initial(64).build().unwrap();
        let mut now = Instant::now();
        feed(&mut g, &mut now, ms(100), 64);
        let before = g.limit();
        for _ in 0..640 {
            now += ms(1);
            let limit = g.limit();
            g.on_sample(Sample::new(ms(100), SampleOutcome::Error, limit), now);
        }
        assert!(g.limit() < before / 2, "{} vs {before}", g.limit());
    }

    #[test]
    fn does_not_grow_while_the_limit_is_mostly_unused() {
        let mut g = Gradient::builder(1, 1000).initial(40).build().unwrap();
        let now = Instant::now();
        for _ in 0..2000 {
            g.on_sample(Sample::new(ms(10), SampleOutcome::Ok, 3), now);
        }
        assert!(g.limit() <= 40);
    }

    #[test]
    fn a_probe_relearns_a_baseline_that_rose() {
        let mut g = Gradient::builder(1, 1000)
            .initial(20)
            .probe_every(5)
            .build()
            .unwrap();
        let mut now = Instant::now();
        feed(&mut g, &mut now, ms(10), 200);
        assert_eq!(g.baseline(), Some(ms(10)));
        // The backend is twice as slow for good, at any load.
        feed(&mut g, &mut now, ms(20), 3000);
        let baseline = g.baseline().unwrap();
        assert!(baseline > ms(19) && baseline <= ms(20), "{baseline:?}");
        assert!(g.limit() > 20, "{}", g.limit());
    }

    #[test]
    fn stays_within_bounds_and_ignores_dropped_tasks() {
        let mut g = Gradient::builder(5, 9).initial(9).build().unwrap();
        let mut now = Instant::now();
        feed(&mut g, &mut now, ms(10), 500);
        assert_eq!(g.limit(), 9);
        for _ in 0..500 {
            now += ms(1);
            assert!(g.on_sample(Sample::new(ms(10), SampleOutcome::TimedOut, 9), now) >= 5);
        }
        assert_eq!(g.limit(), 5);
        for _ in 0..500 {
            g.on_sample(Sample::new(ms(1), SampleOutcome::Dropped, 9), now);
        }
        assert_eq!(g.limit(), 5);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Gradient::builder(0, 1).build().is_err());
        assert!(Gradient::builder(1, 5).initial(0).build().is_err());
        assert!(Gradient::builder(1, 5).tolerance(f64::NAN).build().is_err());
        assert!(Gradient::builder(1, 5).smoothing(0.0).build().is_err());
        assert!(Gradient::builder(1, 5).smoothing(1.5).build().is_err());
        assert!(Gradient::builder(1, 5).probe_every(0).build().is_err());
    }
}

//! Additive increase, multiplicative decrease.

use super::{check_bounds, check_ratio, Limiter, Sample, SampleOutcome};
use crate::policy::PolicyError;
use std::time::{Duration, Instant};

/// Additive increase, multiplicative decrease (as in TCP, Netflix's `AIMDLimit` and
/// Vector's adaptive request concurrency).
///
/// - A success (run time within the threshold, if one is set) while the limit is at
///   least half used adds `1 / limit`: about **+1 per round trip**, since a limit's worth of
///   tasks end per round trip.
/// - An error, a timeout, or a success slower than the
///   [`latency_threshold`](AimdBuilder::latency_threshold) multiplies the limit by the
///   [`backoff`](AimdBuilder::backoff) ratio (default 0.9), **at most once per round
///   trip**: tasks that started before the last cut do not cut again (they ran under the
///   old limit), as TCP reacts once per window of loss.
/// - [`SampleOutcome::Dropped`] changes nothing.
///
/// Without a latency threshold it reacts to errors and timeouts only, so it climbs until
/// the backend fails. Set the threshold a little above the slowest run time you expect at
/// low load.
///
/// ```
/// use async_taskpool::policy::{Aimd, Limiter, Sample, SampleOutcome};
/// use std::time::{Duration, Instant};
/// let mut aimd = Aimd::builder(2, 100)
///     .initial(20)
///     .backoff(0.5)
///     .latency_threshold(Duration::from_millis(200))
///     .build()?;
/// let t0 = Instant::now();
/// let slow = Sample::new(Duration::from_millis(500), SampleOutcome::Ok, 20);
/// assert_eq!(aimd.on_sample(slow, t0 + Duration::from_secs(1)), 10);
/// // Another slow task that started before that cut: no second cut.
/// assert_eq!(aimd.on_sample(slow, t0 + Duration::from_millis(1100)), 10);
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Aimd {
    min: usize,
    max: usize,
    limit: f64,
    backoff: f64,
    latency_threshold: Option<Duration>,
    last_cut: Option<Instant>,
}

impl Aimd {
    /// A builder for a limit between `min` and `max` (starting at `min`, backoff 0.9, no
    /// latency threshold).
    ///
    /// ```
    /// use async_taskpool::policy::{Aimd, Limiter};
    /// let aimd = Aimd::builder(1, 50).build()?;
    /// assert_eq!(aimd.limit(), 1);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn builder(min: usize, max: usize) -> AimdBuilder {
        AimdBuilder {
            min,
            max,
            initial: None,
            backoff: 0.9,
            latency_threshold: None,
        }
    }

    /// The bounds, `(min, max)`.
    ///
    /// ```
    /// let aimd = async_taskpool::policy::Aimd::builder(3, 30).build()?;
    /// assert_eq!(aimd.bounds(), (3, 30));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }

    fn is_slow(&self, sample: &Sample) -> bool {
        self.latency_threshold
            .is_some_and(|limit| sample.run_time > limit)
    }
}

impl Limiter for Aimd {
    fn on_sample(&mut self, sample: Sample, now: Instant) -> usize {
        match sample.outcome {
            SampleOutcome::Dropped => {}
            SampleOutcome::Ok if !self.is_slow(&sample) => {
                if sample.in_flight.saturating_mul(2) >= self.limit() {
                    self.limit += 1.0 / self.limit;
                }
            }
            _ => {
                // Tasks that started before the last cut ran under the old limit: their
                // news was already acted on.
                let news = match (self.last_cut, sample.started(now)) {
                    (None, _) => true,
                    (Some(cut), Some(started)) => started >= cut,
                    (Some(_), None) => false,
                };
                if news {
                    self.limit *= self.backoff;
                    self.last_cut = Some(now);
                }
            }
        }
        self.limit = self.limit.clamp(self.min as f64, self.max as f64);
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
        "aimd"
    }
}

/// Builds an [`Aimd`]; [`build`](Self::build) checks the parameters.
///
/// ```
/// use async_taskpool::policy::Aimd;
/// assert!(Aimd::builder(10, 5).build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct AimdBuilder {
    min: usize,
    max: usize,
    initial: Option<usize>,
    backoff: f64,
    latency_threshold: Option<Duration>,
}

impl AimdBuilder {
    /// The limit to start from (default: `min`).
    ///
    /// ```
    /// use async_taskpool::policy::{Aimd, Limiter};
    /// assert_eq!(Aimd::builder(1, 100).initial(16).build()?.limit(), 16);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn initial(mut self, initial: usize) -> Self {
        self.initial = Some(initial);
        self
    }

    /// The ratio the limit is multiplied by on a back-off signal, in `(0, 1)` (default 0.9).
    ///
    /// ```
    /// use async_taskpool::policy::Aimd;
    /// assert!(Aimd::builder(1, 10).backoff(1.0).build().is_err());
    /// ```
    pub fn backoff(mut self, ratio: f64) -> Self {
        self.backoff = ratio;
        self
    }

    /// A run time above which a success counts as a back-off signal (default: none).
    ///
    /// ```
    /// use async_taskpool::policy::Aimd;
    /// let aimd = Aimd::builder(1, 10).latency_threshold(std::time::Duration::from_millis(250)).build()?;
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn latency_threshold(mut self, threshold: Duration) -> Self {
        self.latency_threshold = Some(threshold);
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] unless `1 <= min <= initial <= max` and `0 < backoff < 1`.
    ///
    /// ```
    /// use async_taskpool::policy::Aimd;
    /// let err = Aimd::builder(0, 10).build().unwrap_err();
    /// assert!(err.to_string().starts_with("invalid limiter min 0"));
    /// ```
    pub fn build(self) -> Result<Aimd, PolicyError> {
        let initial = self.initial.unwrap_or(self.min);
        check_bounds(self.min, self.max, initial)?;
        check_ratio(
            "AIMD backoff",
            self.backoff,
            self.backoff > 0.0 && self.backoff < 1.0,
            "the ratio must lie strictly between 0 and 1 (0.9 cuts the limit by 10%)",
        )?;
        Ok(Aimd {
            min: self.min,
            max: self.max,
            limit: initial as f64,
            backoff: self.backoff,
            latency_threshold: self.latency_threshold,
            last_cut: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_about_one_per_round_trip_while_the_limit_is_used() {
        let mut aimd = Aimd::builder(1, 1000).initial(10).build().unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        // 10 round trips, each a limit's worth of successes.
        for _ in 0..10 {
            for _ in 0..aimd.limit() {
                now += ms(1);
                let limit = aimd.limit();
                aimd.on_sample(Sample::new(ms(10), SampleOutcome::Ok, limit), now);
            }
        }
        assert!((19..=21).contains(&aimd.limit()), "{}", aimd.limit());
    }

    #[test]
    fn does_not_grow_while_the_limit_is_mostly_unused() {
        let mut aimd = Aimd::builder(1, 1000).initial(10).build().unwrap();
        let now = Instant::now();
        for _ in 0..1000 {
            aimd.on_sample(Sample::new(ms(10), SampleOutcome::Ok, 4), now);
        }
        assert_eq!(aimd.limit(), 10);
    }

    #[test]
    fn cuts_once_per_round_trip_on_errors_timeouts_and_slow_successes() {
        let mut aimd = Aimd::builder(1, 1000)
            .initial(100)
            .backoff(0.5)
            .latency_threshold(ms(100))
            .build()
            .unwrap();
        let t0 = Instant::now() + ms(10_000);
        assert_eq!(
            aimd.on_sample(Sample::new(ms(50), SampleOutcome::Error, 100), t0),
            50
        );
        // Same round trip (started before the cut): ignored.
        for outcome in [SampleOutcome::Error, SampleOutcome::TimedOut] {
            assert_eq!(
                aimd.on_sample(Sample::new(ms(50), outcome, 100), t0 + ms(10)),
                50
            );
        }
        // Started after the cut: a new signal.
        assert_eq!(
            aimd.on_sample(Sample::new(ms(150), SampleOutcome::Ok, 50), t0 + ms(200)),
            25
        );
        assert_eq!(
            aimd.on_sample(
                Sample::new(ms(20), SampleOutcome::TimedOut, 50),
                t0 + ms(300)
            ),
            12
        );
    }

    #[test]
    fn stays_within_its_bounds_and_ignores_dropped_tasks() {
        let mut aimd = Aimd::builder(4, 8).initial(8).backoff(0.1).build().unwrap();
        let mut now = Instant::now();
        for _ in 0..100 {
            now += ms(100);
            assert!(aimd.on_sample(Sample::new(ms(1), SampleOutcome::Error, 8), now) >= 4);
        }
        assert_eq!(aimd.limit(), 4);
        for _ in 0..1000 {
            assert!(aimd.on_sample(Sample::new(ms(1), SampleOutcome::Ok, 8), now) <= 8);
        }
        assert_eq!(aimd.limit(), 8);
        for _ in 0..100 {
            now += ms(100);
            aimd.on_sample(Sample::new(ms(1), SampleOutcome::Dropped, 8), now);
        }
        assert_eq!(aimd.limit(), 8);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Aimd::builder(0, 1).build().is_err());
        assert!(Aimd::builder(2, 1).build().is_err());
        assert!(Aimd::builder(1, 5).initial(6).build().is_err());
        for ratio in [0.0, 1.0, -0.5, f64::NAN, f64::INFINITY] {
            assert!(
                Aimd::builder(1, 5).backoff(ratio).build().is_err(),
                "{ratio}"
            );
        }
    }
}

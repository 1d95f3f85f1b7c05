//! Exponential backoff with jitter between a failed attempt and the next.

use crate::QueueError;
use std::time::Duration;

/// How long a failed job waits before its next attempt: `base * factor^(attempt - 1)`, capped
/// at `max`, then scaled by a random factor in `[1 - jitter, 1 + jitter]` so that jobs that
/// failed together do not all come back together.
///
/// The default is 1 s doubling up to 1 h, with ±20% jitter: attempts 1 to 25 wait about 1 s,
/// 2 s, 4 s, ... 1 h, 1 h, ..., a little under 19 hours in all.
///
/// ```
/// use async_taskpool_queue::Backoff;
/// use std::time::Duration;
///
/// let b = Backoff::exponential(Duration::from_millis(100)).max(Duration::from_secs(10)).jitter(0.0)?;
/// assert_eq!(b.delay(1), Duration::from_millis(100));
/// assert_eq!(b.delay(3), Duration::from_millis(400));
/// assert_eq!(b.delay(30), Duration::from_secs(10));
/// # Ok::<_, async_taskpool_queue::QueueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Doubling from `base`, up to 1 h, ±20% jitter.
    pub fn exponential(base: Duration) -> Self {
        Self {
            base,
            ..Self::default()
        }
    }

    /// The same delay every time (no growth), ±20% jitter unless changed.
    pub fn constant(delay: Duration) -> Self {
        Self {
            base: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.2,
        }
    }

    /// The growth factor per attempt (at least 1.0; default 2.0).
    pub fn factor(mut self, factor: f64) -> Result<Self, QueueError> {
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(QueueError::invalid(
                "backoff factor",
                format!("{factor} must be a number >= 1.0"),
            ));
        }
        self.factor = factor;
        Ok(self)
    }

    /// The longest delay (default 1 h).
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// The relative spread, from 0.0 (none) to 1.0 (between zero and twice the delay);
    /// default 0.2.
    pub fn jitter(mut self, jitter: f64) -> Result<Self, QueueError> {
        if !(0.0..=1.0).contains(&jitter) {
            return Err(QueueError::invalid(
                "backoff jitter",
                format!("{jitter} must be within 0.0..=1.0"),
            ));
        }
        self.jitter = jitter;
        Ok(self)
    }

    /// The delay after failed attempt number `attempt` (1 for the first run), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(1000) as i32;
        let secs = self.base.as_secs_f64() * self.factor.powi(exp);
        let max = self.max.as_secs_f64();
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// [`delay`](Self::delay) with the jitter applied.
    pub fn jittered(&self, attempt: u32) -> Duration {
        let spread = (fastrand::f64() * 2.0 - 1.0) * self.jitter;
        self.delay(attempt).mul_f64(1.0 + spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_band() {
        let b = Backoff::exponential(Duration::from_secs(1))
            .jitter(0.5)
            .unwrap();
        for _ in 0..1000 {
            let d = b.jittered(2);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(3),
                "{d:?}"
            );
        }
    }

    #[test]
    fn refuses_nonsense() {
        assert!(Backoff::default().factor(0.5).is_err());
        assert!(Backoff::default().factor(f64::NAN).is_err());
        assert!(Backoff::default().jitter(1.5).is_err());
        assert_eq!(
            Backoff::default().delay(u32::MAX),
            Duration::from_secs(3600)
        );
    }
}

//! Retries: how many attempts, how long between them, and which outcomes are worth another.

use super::{PolicyError, Rng};
use crate::error::TaskError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How the wait before a retry is spread.
///
/// ```
/// use async_taskpool::policy::Jitter;
/// assert_eq!(Jitter::default(), Jitter::Full);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform between zero and the capped exponential delay ("full jitter"). The default:
    /// clients that failed together retry spread over the whole window instead of in waves.
    /// AWS's study of backoff ("Exponential Backoff And Jitter", Marc Brooker, 2015) found it
    /// does the least work of the schemes it compared, with a completion time close to the
    /// best. It needs nothing but the attempt number, where "decorrelated jitter" needs each
    /// task's previous delay kept, and its spread is easy to bound.
    #[default]
    Full,
    /// No jitter: exactly the capped exponential delay. For a schedule you can predict (or
    /// when a single client retries and nobody else competes).
    None,
}

/// The outcome predicate: user code.
type Predicate<T> = Arc<dyn Fn(&Result<T, TaskError>) -> bool + Send + Sync>;

/// When and how often to run work again that failed: max attempts, exponential backoff with
/// jitter, and a predicate on the outcome.
///
/// `T` is the task's output; the outcome a predicate sees is the task's
/// `Result<T, TaskError>`.
///
/// **What is retried by default: nothing.** A policy retries only what it was told is worth
/// another attempt, because the pool cannot tell a failed `T` from a good one:
/// - [`retry_errors`](RetryPolicyBuilder::retry_errors) (outputs that are `Result`s): an
///   `Ok(Err(_))` output;
/// - [`retry_if`](RetryPolicyBuilder::retry_if): any outcome the predicate accepts;
/// - [`retry_panics`](RetryPolicyBuilder::retry_panics) and
///   [`retry_timeouts`](RetryPolicyBuilder::retry_timeouts): a panic or a run timeout. They
///   are off by default (a panic is usually a bug that will happen again; a timeout may mean
///   the backend is overloaded, where retrying adds load): opt in.
///
/// A cancelled or shed task, and one its runtime dropped or refused, is never retried,
/// whatever the predicate says: cancelling means "stop", a shed task already waited too long
/// (a retry would start it later still), and without a runtime no attempt can run.
///
/// ```
/// use async_taskpool::policy::{RetryPolicy, Rng};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::<Result<u32, String>>::builder()
///     .max_attempts(5)                                             // 1 try + 4 retries
///     .backoff(Duration::from_millis(100), Duration::from_secs(2)) // 100, 200, 400, 800 ms caps
///     .retry_errors()
///     .retry_timeouts()
///     .build()?;
/// let mut rng = Rng::with_seed(1);
/// let failed: Result<Result<u32, String>, _> = Ok(Err("503".to_string()));
/// assert!(policy.should_retry(&failed));
/// let wait = policy.retry_after(1, &failed, &mut rng).expect("attempt 2 is allowed");
/// assert!(wait <= Duration::from_millis(100));
/// assert_eq!(policy.retry_after(5, &failed, &mut rng), None); // no sixth attempt
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
pub struct RetryPolicy<T> {
    max_attempts: u32,
    initial: Duration,
    max_delay: Duration,
    jitter: Jitter,
    retry_panics: bool,
    retry_timeouts: bool,
    predicate: Option<Predicate<T>>,
}

impl<T> RetryPolicy<T> {
    /// A builder: 3 attempts, backoff from 100 ms capped at 10 s, full jitter, and nothing
    /// retried until you say what is (see the type's documentation).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// let policy = RetryPolicy::<()>::builder().retry_panics().build()?;
    /// assert_eq!(policy.max_attempts(), 3);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn builder() -> RetryPolicyBuilder<T> {
        RetryPolicyBuilder {
            policy: RetryPolicy {
                max_attempts: 3,
                initial: Duration::from_millis(100),
                max_delay: Duration::from_secs(10),
                jitter: Jitter::Full,
                retry_panics: false,
                retry_timeouts: false,
                predicate: None,
            },
        }
    }

    /// Attempts in all, the first included (1 means never retry).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// let p = RetryPolicy::<()>::builder().max_attempts(1).build()?;
    /// assert_eq!(p.max_attempts(), 1);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before attempt `attempt + 1`, after attempt `attempt` (counted from 1)
    /// failed; `None` if `attempt` was the last one allowed (or is 0).
    ///
    /// The cap for attempt *n* is `min(max_delay, initial × 2^(n-1))`; with
    /// [`Jitter::Full`] the wait is uniform in `0..=cap`, with [`Jitter::None`] it is the
    /// cap. Pure arithmetic: no allocation, no user code, no clock. The same seed gives the
    /// same waits.
    ///
    /// ```
    /// use async_taskpool::policy::{Jitter, RetryPolicy, Rng};
    /// use std::time::Duration;
    /// let p = RetryPolicy::<()>::builder()
    ///     .max_attempts(4)
    ///     .backoff(Duration::from_millis(100), Duration::from_millis(300))
    ///     .jitter(Jitter::None)
    ///     .build()?;
    /// let mut rng = Rng::with_seed(0);
    /// let waits: Vec<_> = (1..=4).map(|n| p.next_delay(n, &mut rng)).collect();
    /// let ms = Duration::from_millis;
    /// assert_eq!(waits, [Some(ms(100)), Some(ms(200)), Some(ms(300)), None]);
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn next_delay(&self, attempt: u32, rng: &mut Rng) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        let cap = self.initial.saturating_mul(factor).min(self.max_delay);
        Some(match self.jitter {
            Jitter::None => cap,
            Jitter::Full => {
                let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rng.up_to(nanos))
            }
        })
    }

    /// Whether this outcome is worth another attempt (attempts left aside): never for a
    /// cancelled or shed task or one its runtime dropped or refused; for a panic or a timeout if the
    /// policy opted in; else what the predicate says (no predicate: no).
    ///
    /// Runs the user's predicate: call it with no lock held.
    ///
    /// ```
    /// use async_taskpool::{policy::RetryPolicy, TaskError, TaskId};
    /// let p = RetryPolicy::<u32>::builder().retry_if(|r| matches!(r, Ok(0))).build()?;
    /// assert!(p.should_retry(&Ok(0)));
    /// assert!(!p.should_retry(&Ok(1)));
    /// assert!(!p.should_retry(&Err(TaskError::Cancelled { id: TaskId::new(1) })));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn should_retry(&self, outcome: &Result<T, TaskError>) -> bool {
        match outcome {
            Err(TaskError::Cancelled { .. })
            | Err(TaskError::Shed { .. })
            | Err(TaskError::RuntimeDropped { .. })
            | Err(TaskError::SpawnFailed { .. }) => return false,
            Err(TaskError::Panicked { .. }) if self.retry_panics => return true,
            Err(TaskError::TimedOut { .. }) if self.retry_timeouts => return true,
            _ => {}
        }
        self.predicate.as_ref().is_some_and(|p| p(outcome))
    }

    /// Both questions at once, after attempt `attempt` ended with `outcome`: the wait before
    /// the next attempt, or `None` when the outcome is final (not worth retrying, or no
    /// attempt left). Runs the predicate (see [`should_retry`](Self::should_retry)).
    ///
    /// ```
    /// use async_taskpool::policy::{RetryPolicy, Rng};
    /// let p = RetryPolicy::<Result<(), ()>>::builder().retry_errors().build()?;
    /// let mut rng = Rng::with_seed(9);
    /// assert!(p.retry_after(1, &Ok(Err(())), &mut rng).is_some());
    /// assert!(p.retry_after(1, &Ok(Ok(())), &mut rng).is_none());
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn retry_after(
        &self,
        attempt: u32,
        outcome: &Result<T, TaskError>,
        rng: &mut Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !self.should_retry(outcome) {
            return None;
        }
        self.next_delay(attempt, rng)
    }
}

impl<T> Clone for RetryPolicy<T> {
    fn clone(&self) -> Self {
        Self {
            max_attempts: self.max_attempts,
            initial: self.initial,
            max_delay: self.max_delay,
            jitter: self.jitter,
            retry_panics: self.retry_panics,
            retry_timeouts: self.retry_timeouts,
            predicate: self.predicate.clone(),
        }
    }
}

impl<T> fmt::Debug for RetryPolicy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial", &self.initial)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("retry_panics", &self.retry_panics)
            .field("retry_timeouts", &self.retry_timeouts)
            .field("retry_if", &self.predicate.is_some())
            .finish()
    }
}

/// Builds a [`RetryPolicy`]; [`build`](Self::build) checks the parameters.
///
/// ```
/// use async_taskpool::policy::{Jitter, RetryPolicy};
/// use std::time::Duration;
/// let policy = RetryPolicy::<Result<(), std::io::Error>>::builder()
///     .max_attempts(10)
///     .backoff(Duration::from_millis(50), Duration::from_secs(30))
///     .jitter(Jitter::Full)
///     .retry_errors()
///     .build()?;
/// assert_eq!(policy.max_attempts(), 10);
/// # Ok::<_, async_taskpool::policy::PolicyError>(())
/// ```
pub struct RetryPolicyBuilder<T> {
    policy: RetryPolicy<T>,
}

impl<T> RetryPolicyBuilder<T> {
    /// Attempts in all, the first included: at least 1 (default 3).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// assert!(RetryPolicy::<()>::builder().max_attempts(0).build().is_err());
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.policy.max_attempts = attempts;
        self
    }

    /// The first wait (before attempt 2) and the most any wait may be; each attempt doubles
    /// the previous cap. `initial` may be zero (retry at once); `initial <= max` (defaults
    /// 100 ms and 10 s).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy::<()>::builder().backoff(Duration::from_secs(2), Duration::from_secs(1));
    /// assert!(p.build().is_err()); // initial above max
    /// ```
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.policy.initial = initial;
        self.policy.max_delay = max;
        self
    }

    /// How waits are spread (default [`Jitter::Full`]).
    ///
    /// ```
    /// use async_taskpool::policy::{Jitter, RetryPolicy};
    /// let p = RetryPolicy::<()>::builder().jitter(Jitter::None).build()?;
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.policy.jitter = jitter;
        self
    }

    /// Retries a task that panicked (off by default).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// let p = RetryPolicy::<()>::builder().retry_panics().build()?;
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn retry_panics(mut self) -> Self {
        self.policy.retry_panics = true;
        self
    }

    /// Retries a task that hit its run timeout (off by default).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// let p = RetryPolicy::<()>::builder().retry_timeouts().build()?;
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn retry_timeouts(mut self) -> Self {
        self.policy.retry_timeouts = true;
        self
    }

    /// Retries the outcomes `predicate` accepts (it replaces an earlier one, including
    /// [`retry_errors`](Self::retry_errors)). It sees every outcome but a cancellation and a
    /// runtime's drop or refusal, which are final; panics and timeouts reach it unless
    /// [`retry_panics`](Self::retry_panics)/[`retry_timeouts`](Self::retry_timeouts)
    /// already said yes.
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// // Retry HTTP-like statuses 429 and 5xx, and panics too.
    /// let p = RetryPolicy::<u16>::builder()
    ///     .retry_if(|r| match r {
    ///         Ok(status) => *status == 429 || *status >= 500,
    ///         Err(e) => e.is_panic(),
    ///     })
    ///     .build()?;
    /// assert!(p.should_retry(&Ok(503)));
    /// assert!(!p.should_retry(&Ok(404)));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn retry_if<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&Result<T, TaskError>) -> bool + Send + Sync + 'static,
    {
        self.policy.predicate = Some(Arc::new(predicate));
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] if `max_attempts` is 0 or the backoff's `initial` exceeds
    /// its `max`.
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// let err = RetryPolicy::<()>::builder().max_attempts(0).build().unwrap_err();
    /// assert!(err.to_string().starts_with("invalid max_attempts 0"));
    /// ```
    pub fn build(self) -> Result<RetryPolicy<T>, PolicyError> {
        let p = &self.policy;
        if p.max_attempts == 0 {
            return Err(PolicyError::invalid(
                "max_attempts",
                0,
                "it counts the first attempt too, so it must be at least 1 (1: never retry)",
            ));
        }
        if p.initial > p.max_delay {
            return Err(PolicyError::invalid(
                "backoff",
                (p.initial, p.max_delay),
                "the initial delay must not exceed the maximum: pass backoff(initial, max) with initial <= max",
            ));
        }
        Ok(self.policy)
    }
}

impl<U, E> RetryPolicyBuilder<Result<U, E>> {
    /// For tasks whose output is a `Result`: retries an `Err` output (it replaces an earlier
    /// [`retry_if`](Self::retry_if)).
    ///
    /// ```
    /// use async_taskpool::policy::RetryPolicy;
    /// let p = RetryPolicy::<Result<u8, String>>::builder().retry_errors().build()?;
    /// assert!(p.should_retry(&Ok(Err("refused".into()))));
    /// assert!(!p.should_retry(&Ok(Ok(1))));
    /// # Ok::<_, async_taskpool::policy::PolicyError>(())
    /// ```
    pub fn retry_errors(self) -> Self {
        self.retry_if(|r| matches!(r, Ok(Err(_))))
    }
}

impl<T> fmt::Debug for RetryPolicyBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryPolicyBuilder")
            .field(&self.policy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TaskId;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn panicked() -> TaskError {
        TaskError::panicked(TaskId::new(1), Box::new("boom"))
    }

    fn timed_out() -> TaskError {
        TaskError::TimedOut {
            id: TaskId::new(1),
            after: ms(5),
        }
    }

    #[test]
    fn the_default_policy_retries_nothing() {
        let p = RetryPolicy::<Result<(), ()>>::builder().build().unwrap();
        assert!(!p.should_retry(&Ok(Err(()))));
        assert!(!p.should_retry(&Err(panicked())));
        assert!(!p.should_retry(&Err(timed_out())));
    }

    #[test]
    fn panics_and_timeouts_are_retried_only_when_opted_in() {
        let panics = RetryPolicy::<()>::builder().retry_panics().build().unwrap();
        assert!(panics.should_retry(&Err(panicked())));
        assert!(!panics.should_retry(&Err(timed_out())));
        let timeouts = RetryPolicy::<()>::builder()
            .retry_timeouts()
            .build()
            .unwrap();
        assert!(timeouts.should_retry(&Err(timed_out())));
        assert!(!timeouts.should_retry(&Err(panicked())));
    }

    #[test]
    fn cancellation_and_runtime_loss_are_final_whatever_the_predicate_says() {
        let p = RetryPolicy::<()>::builder()
            .retry_if(|_| true)
            .retry_panics()
            .build()
            .unwrap();
        let id = TaskId::new(3);
        for final_error in [
            TaskError::Cancelled { id },
            TaskError::RuntimeDropped { id },
            TaskError::SpawnFailed { id },
            // Shed: the task never ran because it waited too long; running it again later
            // would start it later still.
            TaskError::Shed { id, waited: ms(10) },
        ] {
            let outcome = Err(final_error);
            assert!(!p.should_retry(&outcome), "{outcome:?}");
        }
        assert!(p.should_retry(&Ok(())));
    }

    #[test]
    fn retry_if_sees_panics_and_timeouts_not_opted_in() {
        let p = RetryPolicy::<()>::builder()
            .retry_if(|r| r.as_ref().is_err_and(TaskError::is_timeout))
            .build()
            .unwrap();
        assert!(p.should_retry(&Err(timed_out())));
        assert!(!p.should_retry(&Err(panicked())));
    }

    #[test]
    fn waits_double_up_to_the_cap_without_jitter() {
        let p = RetryPolicy::<()>::builder()
            .max_attempts(40)
            .backoff(ms(10), ms(1000))
            .jitter(Jitter::None)
            .build()
            .unwrap();
        let mut rng = Rng::with_seed(0);
        let waits: Vec<_> = (1..=9)
            .map(|n| p.next_delay(n, &mut rng).unwrap())
            .collect();
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000].map(ms).to_vec()
        );
        // Far past the point where 2^(n-1) overflows: still the cap, no panic.
        assert_eq!(p.next_delay(39, &mut rng), Some(ms(1000)));
        assert_eq!(p.next_delay(40, &mut rng), None);
        assert_eq!(p.next_delay(0, &mut rng), None);
    }

    #[test]
    fn full_jitter_stays_within_the_cap_and_spreads_over_it() {
        let p = RetryPolicy::<()>::builder()
            .max_attempts(u32::MAX)
            .backoff(ms(100), Duration::MAX)
            .build()
            .unwrap();
        let mut rng = Rng::with_seed(11);
        for attempt in [1, 2, 3, 64, 1000] {
            let cap = ms(100).saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX));
            let waits: Vec<_> = (0..2000)
                .map(|_| p.next_delay(attempt, &mut rng).unwrap())
                .collect();
            assert!(waits.iter().all(|w| *w <= cap), "attempt {attempt}");
            // Spread: some waits in the lowest and in the highest fifth of the window.
            assert!(waits.iter().any(|w| *w < cap / 5), "attempt {attempt}");
            assert!(waits.iter().any(|w| *w > cap / 5 * 4), "attempt {attempt}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let p = RetryPolicy::<()>::builder()
            .max_attempts(10)
            .build()
            .unwrap();
        let run = |seed| {
            let mut rng = Rng::with_seed(seed);
            (1..10)
                .map(|n| p.next_delay(n, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn retry_after_combines_attempts_left_and_the_predicate() {
        let p = RetryPolicy::<Result<(), ()>>::builder()
            .max_attempts(2)
            .backoff(Duration::ZERO, Duration::ZERO)
            .retry_errors()
            .build()
            .unwrap();
        let mut rng = Rng::with_seed(1);
        assert_eq!(
            p.retry_after(1, &Ok(Err(())), &mut rng),
            Some(Duration::ZERO)
        );
        assert_eq!(p.retry_after(2, &Ok(Err(())), &mut rng), None);
        assert_eq!(p.retry_after(1, &Ok(Ok(())), &mut rng), None);
    }

    #[test]
    fn bad_parameters_are_refused_with_a_message_that_says_what_to_pass() {
        let err = RetryPolicy::<()>::builder()
            .max_attempts(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        let err = RetryPolicy::<()>::builder()
            .backoff(ms(5), ms(4))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("initial <= max"), "{err}");
    }
}

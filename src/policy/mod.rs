//! Scheduling policies as building blocks: retries with backoff, GCRA rate limits (plain and
//! keyed), adaptive concurrency limits, and single-flight de-duplication.
//!
//! Each block is a small value with no runtime, no timer and no thread of its own. Time comes
//! in as [`Instant`](std::time::Instant) values the caller passes (so a test can run them on
//! a simulated clock), and a wait they ask for is a [`Duration`](std::time::Duration) or an
//! `Instant` the caller sleeps until, on whatever timer it has (the pool's
//! [`Spawner::sleep`](crate::runtime::Spawner::sleep)). They are made to be called from
//! inside a pool's critical section:
//!
//! | block | what the caller asks | cost per call | user code run |
//! |---|---|---|---|
//! | [`RetryPolicy`] | [`next_delay`](RetryPolicy::next_delay): how long before attempt *n + 1*? | a few arithmetic operations | none |
//! | | [`should_retry`](RetryPolicy::should_retry): is this outcome worth another attempt? | one call of the predicate | the `retry_if` predicate: call it with no lock held |
//! | [`RateLimit`] | [`try_acquire`](RateLimit::try_acquire): may one start now, else when? | one comparison (GCRA) | none |
//! | [`KeyedRateLimit`] | [`try_acquire`](KeyedRateLimit::try_acquire) for one key | one hash lookup; an insert (and now and then a sweep) for a new key | the key's `Hash`/`Eq` (and `Drop` for expired keys) |
//! | [`Limiter`] ([`Aimd`], [`Gradient`]) | [`on_sample`](Limiter::on_sample): a task ended, what is the limit now? | a few float operations | none |
//! | [`SingleFlight`] | [`run`](SingleFlight::run): join the live flight with this key, or start one | one hash lookup under its own short lock | the key's `Hash`/`Eq`/`Drop` |
//!
//! None of them allocates on its common path: a [`KeyedRateLimit`] allocates when it meets a
//! new key (and gives memory back as keys expire), a [`SingleFlight`] once per flight. None
//! takes a lock except [`SingleFlight`] (its map's mutex, held for one lookup, never across
//! an await or a call into the pool).
//!
//! ```
//! use async_taskpool::policy::{Aimd, Limiter, Quota, RateLimit, RetryPolicy, Rng, Sample, SampleOutcome};
//! use std::time::{Duration, Instant};
//!
//! // Retry failed fetches up to 4 attempts, 100 ms, 200 ms, 400 ms apart at most (full jitter).
//! let retry = RetryPolicy::<Result<String, std::io::Error>>::builder()
//!     .max_attempts(4)
//!     .backoff(Duration::from_millis(100), Duration::from_secs(5))
//!     .retry_errors()
//!     .build()?;
//! let mut rng = Rng::with_seed(7);
//! assert!(retry.next_delay(1, &mut rng).unwrap() <= Duration::from_millis(100));
//!
//! // At most 2 starts per second, one at a time (no burst).
//! let mut rate = RateLimit::new(Quota::per_second(2)?.burst(1)?);
//! let t0 = Instant::now();
//! assert_eq!(rate.try_acquire(t0), Ok(()));
//! assert_eq!(rate.try_acquire(t0), Err(t0 + Duration::from_millis(500)));
//!
//! // A concurrency limit that follows the backend, between 1 and 200.
//! let mut limiter = Aimd::builder(1, 200).initial(10).build()?;
//! let sample = Sample { run_time: Duration::from_millis(80), outcome: SampleOutcome::Ok, in_flight: 10 };
//! let limit = limiter.on_sample(sample, t0);
//! assert!(limit >= 10);
//! # Ok::<_, async_taskpool::policy::PolicyError>(())
//! ```

mod adaptive;
mod error;
mod rate;
mod retry;
mod rng;
mod single_flight;

pub use adaptive::{Aimd, AimdBuilder, Gradient, GradientBuilder, Limiter, Sample, SampleOutcome};
pub use error::PolicyError;
pub use rate::{KeyedRateLimit, Quota, RateLimit};
pub use retry::{Jitter, RetryPolicy, RetryPolicyBuilder};
pub use rng::Rng;
pub use single_flight::{Flight, SingleFlight};

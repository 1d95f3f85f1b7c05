//! What the retry tests share: a tokio pool, policies with exact waits (no jitter), and a log
//! of when each attempt started on the paused clock.

use async_taskpool::{
    policy::{Jitter, RetryPolicy},
    runtime::TokioSpawner,
    TaskPool,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub const SEC: Duration = Duration::from_secs(1);

pub fn pool(limit: usize) -> TaskPool {
    TaskPool::builder(TokioSpawner::current())
        .limit(limit)
        .build()
        .unwrap()
}

/// Retries `Err` outputs after 1 s, 2 s, 4 s, ... (no jitter), up to `max` attempts.
pub fn doubling<T: Send + 'static>(max: u32) -> RetryPolicy<Result<T, ()>> {
    RetryPolicy::builder()
        .max_attempts(max)
        .backoff(SEC, 60 * SEC)
        .jitter(Jitter::None)
        .retry_errors()
        .build()
        .unwrap()
}

/// When each attempt started, in seconds of virtual time since `t0`.
#[derive(Clone, Default)]
pub struct Starts(Arc<Mutex<Vec<(&'static str, f64)>>>);

impl Starts {
    pub fn push(&self, who: &'static str, t0: Instant) {
        let at = t0.elapsed().as_secs_f64();
        self.0.lock().unwrap().push((who, at));
    }
    pub fn get(&self) -> Vec<(&'static str, f64)> {
        self.0.lock().unwrap().clone()
    }
}

//! What a handler knows about the job it runs.

use crate::JobId;
use event_listener::Event;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The job a handler runs: its id and attempt number (to make effects idempotent), and
/// whether the worker still holds its lease.
///
/// ```
/// use async_taskpool_queue::{JobContext, Registry};
///
/// let registry = Registry::new().register("greet", |ctx: JobContext, name: String| async move {
///     println!("job {} (attempt {} of {}): hello {name}", ctx.id(), ctx.attempt(), ctx.max_attempts());
///     if !ctx.lease_held() {
///         return Err("lease lost: another worker may run this job now");
///     }
///     Ok(())
/// });
/// assert_eq!(registry.kinds(), ["greet"]);
/// ```
#[derive(Clone, Debug)]
pub struct JobContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: JobId,
    kind: String,
    queue: String,
    attempt: u32,
    max_attempts: u32,
    worker: Arc<str>,
    lease: Arc<Lease>,
}

/// Whether a worker still holds a job's lease; shared by the worker and the job's context.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    lost: AtomicBool,
    event: Event,
}

impl Lease {
    pub(crate) fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl JobContext {
    pub(crate) fn new(
        id: JobId,
        kind: String,
        queue: String,
        attempt: u32,
        max_attempts: u32,
        worker: Arc<str>,
        lease: Arc<Lease>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id,
                kind,
                queue,
                attempt,
                max_attempts,
                worker,
                lease,
            }),
        }
    }

    /// The job's id: the same on every attempt, so a good key for idempotent effects.
    pub fn id(&self) -> JobId {
        self.inner.id
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.inner.kind
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// This attempt's number: 1 on the first run. Runs that a crashed or cut-off worker
    /// started count; a run given back by a graceful shutdown does not, so two runs may see
    /// the same number: key effects by [`id`](Self::id), not by the attempt.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// How many attempts the job has in all.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// Whether a failure now makes the job dead instead of retrying it.
    pub fn is_last_attempt(&self) -> bool {
        self.inner.attempt >= self.inner.max_attempts
    }

    /// The id of the worker running it.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker
    }

    /// Whether the worker still holds the job's lease. Once it is lost (the worker could
    /// not extend it in time, or another worker took the job) the worker cancels the job's
    /// task; check this before an effect that must not be done twice.
    pub fn lease_held(&self) -> bool {
        !self.inner.lease.is_lost()
    }

    /// Completes when the lease is lost (never, if the job ends first).
    pub async fn lease_lost(&self) {
        loop {
            if self.inner.lease.is_lost() {
                return;
            }
            let listener = self.inner.lease.event.listen();
            if self.inner.lease.is_lost() {
                return;
            }
            listener.await;
        }
    }
}

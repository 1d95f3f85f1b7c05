//! The worker: drains one queue into a `TaskPool`, as fast as the pool has room.

mod loops;
mod shared;

use crate::backend::{Backend, WorkerRegistration};
use crate::{QueueError, Registry};
use async_taskpool::runtime::{self, Spawner};
use async_taskpool::TaskPool;
use serde::{Deserialize, Serialize};
use shared::Shared;
use std::sync::Arc;
use std::time::Duration;

/// A builder for a [`Worker`]; made by [`Worker::builder`].
///
/// ```no_run
/// # async fn demo(queue: async_taskpool_queue::PgQueue, pool: async_taskpool::TaskPool,
/// #               registry: async_taskpool_queue::Registry) -> Result<(), async_taskpool_queue::QueueError> {
/// use async_taskpool_queue::Worker;
/// use std::time::Duration;
///
/// let worker = Worker::builder(queue, pool, registry)
///     .queue("mail")                          // default: `default`
///     .lease(Duration::from_secs(30))         // extended every 10 s while a job runs
///     .poll_interval(Duration::from_secs(1))  // when no notification comes
///     .batch_size(100)                        // most jobs per fetch
///     .retention(Duration::from_secs(3600))   // keep completed jobs an hour
///     .build()?;
/// worker.run().await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkerBuilder {
    backend: Arc<dyn Backend>,
    pool: TaskPool,
    registry: Registry,
    config: Config,
    spawner: Option<Arc<dyn Spawner>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) queue: String,
    pub(crate) lease: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) batch_size: usize,
    pub(crate) retention: Duration,
    pub(crate) grace: Duration,
}

impl WorkerBuilder {
    /// The queue to drain (default `default`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.config.queue = queue.into();
        self
    }

    /// How long a fetched job is leased (default 30 s). The worker extends its leases every
    /// third of this while jobs run; a worker that stops extending (crash, hang, lost
    /// network) loses its jobs to other workers this long after its last extension.
    /// At least 1 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// How often an idle worker looks for due jobs when no notification wakes it (default
    /// 1 s). Notifications wake it at once; this is the fallback, and what finds jobs whose
    /// notification was lost while the connection was down.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// The most jobs one fetch takes (default 100). A fetch never takes more than the pool
    /// has room for; with an unlimited pool this is also the most jobs the worker runs at
    /// once.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.config.batch_size = size;
        self
    }

    /// How long completed and cancelled jobs are kept before they are deleted (default
    /// zero: deleted as they complete). Dead jobs are kept until retried or discarded.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config.retention = retention;
        self
    }

    /// How long [`Stopper::stop_gracefully`] lets running jobs finish when no grace is
    /// given, and what the worker allows itself if its pool is closed under it (default
    /// 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// The runtime for the worker's timers (default: [`runtime::ambient`], the runtime the
    /// worker is built inside).
    pub fn spawner(mut self, spawner: impl Spawner) -> Self {
        self.spawner = Some(Arc::new(spawner));
        self
    }

    /// Checks the options and finds a runtime; the worker starts with [`Worker::run`].
    pub fn build(self) -> Result<Worker, QueueError> {
        let c = &self.config;
        if c.queue.is_empty() {
            return Err(QueueError::invalid("queue", "a queue name cannot be empty"));
        }
        if c.lease < Duration::from_secs(1) {
            return Err(QueueError::invalid(
                "lease",
                format!("{:?} is too short; use 1 s or more", c.lease),
            ));
        }
        if c.poll_interval.is_zero() {
            return Err(QueueError::invalid(
                "poll_interval",
                "must be more than zero",
            ));
        }
        if c.batch_size == 0 || c.batch_size > 10_000 {
            return Err(QueueError::invalid(
                "batch_size",
                format!("{} is out of range; use 1 to 10000", c.batch_size),
            ));
        }
        let spawner = match self.spawner {
            Some(s) => s,
            None => runtime::ambient()?,
        };
        let registration = WorkerRegistration {
            queue: c.queue.clone(),
            kinds: self
                .registry
                .kinds()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            lease: c.lease,
        };
        Ok(Worker {
            shared: Arc::new(Shared::new(
                self.backend,
                self.pool,
                self.registry,
                self.config,
                spawner,
                registration,
            )),
        })
    }
}

/// Drains one queue of a [`Backend`] (such as [`PgQueue`](crate::PgQueue)) into a
/// [`TaskPool`]: it fetches as many due jobs as the pool has room for, runs each as a pool
/// task, and reports how each ended.
///
/// - **Concurrency** is the pool's: a fetch takes at most `limit - running - queued` jobs
///   (and at most [`batch_size`](WorkerBuilder::batch_size)). Change the pool's limit at
///   run time, also through its control server, and the worker follows; lock the pool and
///   the worker stops fetching until it is unlocked.
/// - **Waking:** new jobs wake idle workers at once (`LISTEN/NOTIFY`); without a
///   notification the worker looks every [`poll_interval`](WorkerBuilder::poll_interval),
///   and at the due time of a retry or scheduled job it heard of.
/// - **Leases:** every running job is leased to this worker; the worker extends its leases
///   while the jobs run. If it cannot (the database is unreachable for a whole lease, or
///   another worker took the job), it tells the job's context and cancels the job's task.
/// - **Outcomes:** `Ok` completes the job; an error, a panic or a run timeout retries it
///   after the kind's [`Backoff`](crate::Backoff), or makes it dead after its last attempt;
///   arguments that do not decode make it dead at once (retrying cannot fix them).
///   Cancelling the job's task through the pool (`pool.cancel([id])`, or `cancel ID` in
///   `taskpool-ctl`) cancels the job: state `cancelled`, not retried. Task names are
///   `{kind}#{job id}`.
/// - **Unknown kinds:** a worker fetches only the kinds its [`Registry`] has; jobs of other
///   kinds stay pending for a worker that has them (as during a rolling deploy), and the
///   cluster view shows them with no live worker.
/// - **Outages:** every database call is retried; reports are kept until written.
/// - **Shutdown:** [`Stopper::stop_gracefully`] stops fetching, lets running jobs finish
///   within the grace period, then cancels the rest and gives them back (pending at once,
///   the attempt not counted) so other workers start them without waiting for the lease.
///
/// ```no_run
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// use async_taskpool_queue::{JobContext, PgQueue, Registry, Worker};
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = PgQueue::connect("postgres://app@127.0.0.1/app").await?;
/// let pool = TaskPool::builder(TokioSpawner::current()).name("jobs").limit(16).build()?;
/// let registry = Registry::new().register("greet", |ctx: JobContext, name: String| async move {
///     println!("job {} attempt {}: hello {name}", ctx.id(), ctx.attempt());
///     Ok::<(), String>(())
/// });
/// let worker = Worker::builder(queue, pool, registry).build()?;
/// let stopper = worker.stopper();
/// tokio::spawn(async move {
///     tokio::signal::ctrl_c().await.ok();
///     stopper.stop_gracefully(Duration::from_secs(10));
/// });
/// let summary = worker.run().await?; // returns once stopped and drained
/// println!("{summary:?}");
/// # Ok(()) }
/// ```
pub struct Worker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.shared.config.queue)
            .finish_non_exhaustive()
    }
}

/// Stops a running [`Worker`] from anywhere (a signal handler, another task, another thread).
///
/// ```no_run
/// # fn demo(worker: &async_taskpool_queue::Worker) {
/// let stopper = worker.stopper();
/// stopper.stop_gracefully(std::time::Duration::from_secs(10));
/// # }
/// ```
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper").finish_non_exhaustive()
    }
}

impl Stopper {
    /// Stops fetching; running jobs get `grace` to finish; then the rest are cancelled and
    /// given back to the queue. [`Worker::run`] returns once every outcome is written. A
    /// second call can only shorten the grace.
    pub fn stop_gracefully(&self, grace: Duration) {
        self.shared.request_stop(grace);
    }

    /// [`stop_gracefully`](Self::stop_gracefully) with the worker's configured grace.
    pub fn stop(&self) {
        self.shared.request_stop(self.shared.config.grace);
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.shared.is_stopping()
    }
}

/// What a worker did, returned by [`Worker::run`].
///
/// ```
/// let s = async_taskpool_queue::WorkerSummary::default();
/// assert_eq!(s.completed + s.retried + s.dead + s.cancelled + s.released + s.lost, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerSummary {
    /// Jobs that completed.
    pub completed: u64,
    /// Failed attempts scheduled for a retry.
    pub retried: u64,
    /// Jobs that died here.
    pub dead: u64,
    /// Jobs cancelled through the pool.
    pub cancelled: u64,
    /// Jobs given back unfinished (graceful shutdown, pool refused).
    pub released: u64,
    /// Jobs whose lease this worker lost (their tasks were cancelled).
    pub lost: u64,
}

impl Worker {
    /// A worker draining `backend`'s default queue `default` into `pool`, running the kinds
    /// in `registry`.
    pub fn builder(backend: impl Backend, pool: TaskPool, registry: Registry) -> WorkerBuilder {
        Self::builder_arc(Arc::new(backend), pool, registry)
    }

    /// [`builder`](Self::builder) for a backend you share.
    pub fn builder_arc(
        backend: Arc<dyn Backend>,
        pool: TaskPool,
        registry: Registry,
    ) -> WorkerBuilder {
        WorkerBuilder {
            backend,
            pool,
            registry,
            config: Config {
                queue: "default".to_owned(),
                lease: Duration::from_secs(30),
                poll_interval: Duration::from_secs(1),
                batch_size: 100,
                retention: Duration::ZERO,
                grace: Duration::from_secs(30),
            },
            spawner: None,
        }
    }

    /// A handle to stop the worker.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: self.shared.clone(),
        }
    }

    /// Registers the worker, then drains the queue until stopped; returns once every
    /// running job has ended (or was given back) and its outcome is written. Fails at once
    /// if the worker cannot register (the database is unreachable); after that, outages are
    /// ridden out.
    pub async fn run(self) -> Result<WorkerSummary, QueueError> {
        loops::run(self.shared).await
    }
}

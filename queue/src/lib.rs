//! A durable job queue on PostgreSQL that any number of worker processes drain through
//! their [`TaskPool`](async_taskpool::TaskPool)s.
//!
//! A pool lives in one process. When the work outgrows one machine, enqueue jobs in
//! PostgreSQL from any process ([`PgQueue`]), and run a [`Worker`] in each process that
//! should work: it fetches as many jobs as its pool has room for, runs each as a pool task
//! (with the pool's limit, ids, cancellation, timeouts and control server), and records how
//! each ended. Jobs are named kinds with serde arguments, registered on the worker
//! ([`Registry`]): no code comes from the database.
//!
//! ```no_run
//! use async_taskpool::{runtime::TokioSpawner, TaskPool};
//! use async_taskpool_queue::{JobContext, NewJob, PgQueue, Registry, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Thumbnail { path: String, width: u32 }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = PgQueue::connect("postgres://app@127.0.0.1/app").await?;   // runs the migrations
//!
//! // Any process: enqueue.
//! queue.enqueue("thumbnail", &Thumbnail { path: "a.png".into(), width: 64 }).await?;
//!
//! // Worker processes: drain through a pool.
//! let pool = TaskPool::builder(TokioSpawner::current()).name("jobs").limit(16).build()?;
//! let registry = Registry::new().register("thumbnail", |ctx: JobContext, t: Thumbnail| async move {
//!     println!("job {} attempt {}: {} at {}px", ctx.id(), ctx.attempt(), t.path, t.width);
//!     Ok::<(), std::io::Error>(())
//! });
//! Worker::builder(queue, pool, registry).build()?.run().await?;
//! # Ok(()) }
//! ```
//!
//! # At-least-once
//!
//! Every job enqueued (and committed) runs until it completes, dies or is cancelled; none
//! is lost to a crash. The price is that a job can run more than once. Precisely:
//!
//! - A job is leased to one worker at a time (`FOR UPDATE SKIP LOCKED`), and its attempt is
//!   counted when it is leased. While it runs, its worker extends the lease.
//! - If the worker dies (SIGKILL, power, network cut) before it writes the outcome, the
//!   lease expires and another worker runs the job again, as its next attempt. The first run
//!   may have done its effect, or part of it, before dying: **that is the duplicate.**
//! - A worker that can no longer extend a lease (the database is unreachable for a whole
//!   lease, or the job was given to another worker) cancels the job's task, and the job's
//!   [`JobContext::lease_held`] turns false; but a run may be past its effect already.
//! - A graceful shutdown cancels what outlives the grace period and gives it back: that run
//!   may also have done part of its effect.
//! - An outcome is written only by the worker that still holds the attempt: a completion is
//!   recorded once, whichever run finishes.
//!
//! So make every effect idempotent, keyed by [`JobContext::id`] (the same on every attempt):
//!
//! - In the same database: do the effect and record the job id in one transaction, with a
//!   unique constraint (`INSERT INTO effects (job_id, ...) ... ON CONFLICT (job_id) DO
//!   NOTHING`); a second run finds the row and does nothing.
//! - Elsewhere: pass the job id as the idempotency key of the API you call (payment
//!   providers, mail services take one), or check-then-act on a record keyed by it.
//! - [`JobContext::attempt`] says how many times the job was leased (crashed runs count; a
//!   run given back by a graceful shutdown does not): use it to log, or to do less on late
//!   attempts, not as a key.
//!
//! # Outcomes
//!
//! | the run                                   | the job                                         |
//! |-------------------------------------------|-------------------------------------------------|
//! | handler returns `Ok(())`                  | `completed` (deleted, or kept for the retention) |
//! | returns `Err`, panics, or times out       | retried after the kind's [`Backoff`]; `dead` after `max_attempts` |
//! | arguments do not decode into the handler's type | `dead` at once, with serde's error (retrying cannot help; fix and [`retry`](PgQueue::retry_dead)) |
//! | kind not registered on this worker        | not fetched by it: stays `pending` for a worker that has it; the cluster view shows no live worker for it |
//! | task cancelled through the pool / control server | `cancelled`, not retried                  |
//! | worker crashed or was cut off             | after the lease: `pending` again, attempt counted (`dead` if it was the last) |
//! | graceful shutdown past the grace period   | `pending` again at once, attempt not counted    |
//!
//! Dead jobs keep their last error and every failed attempt (`history`), and can be listed,
//! retried (one, by kind, all) or discarded ([`PgQueue::dead_jobs`],
//! [`PgQueue::retry_dead`], [`PgQueue::discard_dead`]).
//!
//! # Runtimes
//!
//! Features `tokio`, `smol` and `async-std` turn on the same runtime in `async-taskpool`
//! and in `sqlx` (`runtime-tokio`, `runtime-smol`, `runtime-async-std`); they are additive.
//! sqlx uses tokio when called inside a tokio runtime, and `async-io` (smol's reactor)
//! otherwise. Enable at least one.
//!
//! # The backend seam
//!
//! The worker talks to storage only through the [`Backend`] trait; [`PgQueue`] implements
//! it. Another engine (Redis Streams, NATS JetStream) would implement [`Backend`] and keep
//! the worker, the registry and the admin calls as they are; enqueueing is the engine's own
//! API (for PostgreSQL, inside the caller's transaction).
//!
//! Minimum supported Rust version: 1.94 (sqlx 0.9's).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod backoff;
mod cluster;
mod context;
#[cfg(feature = "control")]
#[cfg_attr(docsrs, doc(cfg(feature = "control")))]
mod control;
mod error;
mod job;
mod postgres;
mod registry;
mod worker;

pub use backend::{
    Backend, DeadSelection, FetchedJob, Maintenance, Outcome, Report, Wakeups, WorkerRegistration,
};
pub use backoff::Backoff;
pub use cluster::{ClusterView, DeadJob, JobInfo, KindStats, WorkerStatus};
pub use context::JobContext;
#[cfg(feature = "control")]
#[cfg_attr(docsrs, doc(cfg(feature = "control")))]
pub use control::QueueCommands;
pub use error::QueueError;
pub use job::{Enqueued, JobId, JobState, NewJob, DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_LIMIT};
pub use postgres::{PgQueue, SCHEMA};
pub use registry::{KindOptions, Registry};
pub use worker::{Stopper, Worker, WorkerBuilder, WorkerSummary};

/// `sqlx`, as this crate uses it (for the pool, transactions and connections you pass in).
pub use sqlx;

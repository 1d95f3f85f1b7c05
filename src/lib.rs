//! Pools that start, limit, resize, cancel, observe and await async tasks, on any executor.
//!
//! `async-taskpool` gives async Rust what Python's `asyncio-taskpool` and `asyncio-pool` give
//! asyncio: a [`TaskPool`] for tasks of any kind, with a concurrency limit you can change at
//! run time, task ids, groups, cancellation by id, group or all, end and cancel callbacks, run
//! timeouts and typed results; and a [`SimpleTaskPool`] that starts and stops copies of one job.
//! From Python's concurrent_tasks it takes a [`BackgroundTask`] (and [`PeriodicTask`]) whose
//! lifetime is a scope, and a `ThreadedPool` that runs a pool on a thread of its own, for
//! synchronous callers and callers on another runtime.
//! The same code runs on tokio, smol and async-std: the pool takes a
//! [`Spawner`](runtime::Spawner) value, and each runtime is an optional cargo feature.
//!
//! ```
//! # #[cfg(feature = "tokio")] {
//! # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! use async_taskpool::{runtime::TokioSpawner, TaskPool};
//! use futures::StreamExt;
//!
//! let pool = TaskPool::builder(TokioSpawner::current()).name("crawler").limit(3).build()?;
//! let pages = pool.map(["/a", "/b", "/c", "/d"], 2, |path| async move {
//!     format!("fetched {path}")          // at most 2 of these run at once
//! })?;
//! let lengths: Vec<usize> = pages.map(|page| page.unwrap().len()).collect().await;
//! assert_eq!(lengths, [10, 10, 10, 10]);
//! pool.gather_and_close().await?;
//! # Ok::<_, async_taskpool::PoolError>(())
//! # }).unwrap(); }
//! ```
//!
//! # Features
//!
//! | feature     | what it adds                                                      |
//! |-------------|-------------------------------------------------------------------|
//! | `tokio`     | `runtime::TokioSpawner`, `ThreadRuntime::TokioCurrentThread`      |
//! | `smol`      | `runtime::SmolSpawner`, `ThreadRuntime::Smol`                     |
//! | `async-std` | `runtime::AsyncStdSpawner`, `ThreadRuntime::AsyncStd` (deprecated upstream; prefer smol) |
//! | `control`   | [`control`]: a control server (TCP, Unix socket) and its client   |
//! | `cli`       | the `taskpool-ctl` binary, a command-line client (implies `control`) |
//! | `metrics`   | counters, gauges and histograms through the `metrics` facade ([Metrics](#metrics)) |
//!
//! No feature is on by default, and any combination builds. Without one, implement
//! [`runtime::Spawner`] or adapt a `futures` executor with [`runtime::FuturesSpawner`]. The
//! threaded pools (`ThreadedPool`, `AsyncThreadedPool`) exist with at least one runtime
//! feature, since they run that runtime on their thread.
//!
//! # Choosing a method
//!
//! | you want to                                  | use                                  |
//! |----------------------------------------------|--------------------------------------|
//! | start one task, waiting for room             | [`TaskPool::spawn`]                  |
//! | queue one task without waiting               | [`TaskPool::spawn_queued`]           |
//! | start one task only if there is room now     | [`TaskPool::try_spawn`]              |
//! | run one task and get its output              | [`TaskPool::exec`]                   |
//! | start `n` copies of a job                    | [`TaskPool::apply`]                  |
//! | process an iterator or stream, bounded       | [`TaskPool::map`], [`GroupBuilder::map_stream`] |
//! | the same, stopping at the first error        | [`TaskPool::try_map`]                |
//! | keep `n` identical workers, resize by count  | [`SimpleTaskPool`]                   |
//! | run one task for as long as a scope lives    | [`BackgroundTask`]                   |
//! | run a closure every interval                 | [`PeriodicTask`]                     |
//! | run async work from synchronous code         | `ThreadedPool`                       |
//! | run work on another runtime's thread         | `AsyncThreadedPool`                  |
//!
//! # When not to use this crate
//!
//! A pool adds a little bookkeeping to each task (an id, a record, a slot). If you spawn a
//! few tasks and await them, use your runtime's `spawn` or tokio's `JoinSet`. If the work is
//! CPU-bound or blocking, use a thread pool: async tasks must not block their thread.
//!
//! # Logging
//!
//! The crate logs through [`tracing`]: pool created (debug), `Started <task>` and
//! `Ended <task>` (debug, target `async_taskpool::task`), cancelled (debug), timed out (warn),
//! panicked (error), locked, unlocked and closed (info), `cancelling all tasks` (warn). Events
//! carry `pool` and `task_id` fields. The control server logs each session (connected, command,
//! failed command, disconnected) with a `session` field.
//!
//! Each task runs in an INFO span `task{pool, id, name, group}` of target
//! `async_taskpool::task`, entered on each poll of its future (and its `map` closure call and
//! callbacks): your own events inside a task carry its fields. The filter line
//! `info,async_taskpool::task=debug` (an `EnvFilter` or `Targets` directive) shows the
//! `Started`/`Ended` lines again, as INFO did before; `async_taskpool::task=warn` drops the
//! spans as well.
//!
//! # Metrics
//!
//! With the `metrics` feature, each pool reports counters, gauges and histograms through the
//! [`metrics`](https://docs.rs/metrics) facade, to the recorder installed when the pool is
//! built (none: they do nothing). Labels are the pool's name, and for the task counters the
//! kind of work (`task`, `map`, `apply`, `start`) and the outcome; never a task id or a group
//! name.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `taskpool_tasks_submitted_total` | counter | `pool`, `kind` |
//! | `taskpool_tasks_started_total` | counter | `pool`, `kind` |
//! | `taskpool_tasks_ended_total` | counter | `pool`, `kind`, `outcome` (`ok`, `panicked`, `cancelled`, `timed_out`, `dropped`) |
//! | `taskpool_tasks_rejected_total` | counter | `pool`, `reason` (`full`, `locked`, `closed`: refused by `try_spawn`) |
//! | `taskpool_tasks_running` | gauge | `pool` |
//! | `taskpool_tasks_queued` | gauge | `pool` |
//! | `taskpool_limit` | gauge | `pool` (`+Inf`: no limit) |
//! | `taskpool_queue_wait_seconds` | histogram | `pool` (pools built with [`PoolBuilder::track_durations`]) |
//! | `taskpool_run_seconds` | histogram | `pool` (likewise) |
// One module may use `unsafe`: a task's slot (`engine/task/slot.rs`), where it saves 16 bytes
// per queued task (issue 15); it says why it is sound, and loom checks it.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod adaptive;
mod background;
mod builder;
mod concurrency;
#[cfg(feature = "control")]
#[cfg_attr(docsrs, doc(cfg(feature = "control")))]
pub mod control;
mod engine;
mod error;
mod flight;
mod group;
mod handle;
mod id;
pub mod policy;
mod pool;
mod retrying;
#[cfg(any(
    feature = "control",
    feature = "tokio",
    feature = "smol",
    feature = "async-std"
))]
mod signal;
mod simple;
mod stats;
mod sync;
#[cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]
mod threaded;
mod try_group;

/// The runtime layer: the [`Spawner`](runtime::Spawner) trait and one adapter per executor
/// (re-exported from the `async-taskpool-runtime` crate).
pub mod runtime {
    pub use async_taskpool_runtime::*;
}

pub use background::{
    BackgroundError, BackgroundTask, BackgroundTaskBuilder, MissedTickBehavior, PeriodicTask,
    PeriodicTaskBuilder,
};
pub use builder::{GroupBuilder, TaskBuilder};
pub use concurrency::Concurrency;
pub use engine::adaptive_state::AdaptiveStats;
pub use engine::current::current_task_id;
pub use error::{ExecError, PanicPayload, PoolError, SpawnError, TaskError, TrySpawnError};
pub use flight::{KeyedHandle, KeyedOutput};
pub use group::Group;
pub use handle::TaskHandle;
pub use id::TaskId;
pub use pool::{PoolBuilder, TaskPool};
pub use retrying::{RetryingGroupBuilder, RetryingTaskBuilder};
pub use simple::{SimpleTaskPool, SimpleTaskPoolBuilder};
pub use stats::{DurationStats, GroupStats, GroupSummary, PoolStats, TaskInfo, TaskState};
/// The pool's state-lock hold and wait times: only in builds with
/// `RUSTFLAGS="--cfg taskpool_lock_timing"` (see `benches/lock_hold.rs`).
#[cfg(taskpool_lock_timing)]
#[doc(hidden)]
pub use sync::lock::timing as lock_timing;
#[cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "tokio", feature = "smol", feature = "async-std")))
)]
pub use threaded::{
    AsyncThreadedPool, HookError, ThreadRuntime, ThreadedError, ThreadedHandle, ThreadedPool,
    ThreadedPoolBuilder,
};
pub use try_group::{TryGroup, TryMapError};

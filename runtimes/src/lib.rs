//! The runtime layer of [`async-taskpool`]: one small trait, [`Spawner`], and an adapter per
//! executor.
//!
//! A pool needs exactly two things from an executor: a way to start a detached `Send + 'static`
//! future, and a timer for run timeouts. [`Spawner`] asks for those two and nothing else, so any
//! executor can drive a pool, and several executors can be compiled in at once: the runtime is
//! chosen by *value* (the spawner you pass to the pool), never by which cargo feature is on.
//!
//! | feature     | adapter                      | notes                                              |
//! |-------------|------------------------------|----------------------------------------------------|
//! | `tokio`     | `TokioSpawner`               | a `Handle`, or the runtime current at construction |
//! | `smol`      | `SmolSpawner`                | smol's global executor, or your `Arc<Executor>`    |
//! | `async-std` | `AsyncStdSpawner`            | deprecated upstream: prefer smol                   |
//! | (always)    | [`FuturesSpawner`]           | any [`futures_task::Spawn`] plus a timer you give  |
//!
//! No feature is on by default. [`ambient`] picks a running runtime for you (a tokio handle
//! first, then smol, then async-std) and otherwise returns [`NoRuntimeError`], which names the
//! features to enable.
//!
//! ```
//! use async_taskpool_runtime::{FuturesSpawner, Spawner};
//! use std::time::Duration;
//!
//! let executor = futures::executor::ThreadPool::new().unwrap();
//! // `futures` has no timer: this adapter takes one. Here a timer that never fires.
//! let spawner = FuturesSpawner::new(executor, |_d: Duration| Box::pin(std::future::pending()));
//! let (tx, rx) = futures::channel::oneshot::channel();
//! spawner.spawn(Box::pin(async move { tx.send(7).unwrap() })).unwrap();
//! assert_eq!(futures::executor::block_on(rx).unwrap(), 7);
//! ```
//!
//! [`async-taskpool`]: https://docs.rs/async-taskpool
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod futures_spawn;
pub use futures_spawn::FuturesSpawner;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
mod tokio_rt;
#[cfg(feature = "tokio")]
pub use tokio_rt::TokioSpawner;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
mod smol_rt;
#[cfg(feature = "smol")]
pub use smol_rt::SmolSpawner;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
mod async_std_rt;
#[cfg(feature = "async-std")]
#[allow(deprecated)]
pub use async_std_rt::AsyncStdSpawner;

/// A boxed, sendable unit future: what a [`Spawner`] runs and what its timer returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An executor the pool can start tasks on.
///
/// Implementations are cheap handles (clone them freely) and must be usable from any thread.
/// The pool keeps ids, results and cancellation itself, so a spawner only has to run a detached
/// unit future to completion and provide a timer.
///
/// Guarantees the pool relies on:
/// - [`spawn`](Spawner::spawn) never blocks and never polls the future inline;
/// - a spawned future is either polled to completion or dropped (for example at runtime
///   shutdown); the pool turns a drop before completion into a cancelled task.
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::{BoxFuture, SpawnError, Spawner};
/// use std::time::Duration;
///
/// /// Runs every task on a fresh thread: fine for a test, wasteful anywhere else.
/// struct ThreadPerTask;
///
/// impl Spawner for ThreadPerTask {
///     fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
///         std::thread::spawn(move || futures::executor::block_on(fut));
///         Ok(())
///     }
///     fn sleep(&self, d: Duration) -> BoxFuture {
///         Box::pin(async move {
///             let (tx, rx) = futures::channel::oneshot::channel::<()>();
///             std::thread::spawn(move || { std::thread::sleep(d); let _ = tx.send(()); });
///             let _ = rx.await;
///         })
///     }
/// }
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// ThreadPerTask.spawn(Box::pin(async move { tx.send(1).unwrap() })).unwrap();
/// assert_eq!(rx.recv().unwrap(), 1);
/// ```
pub trait Spawner: Send + Sync + 'static {
    /// Starts `fut` as a detached task. Returns an error only if the executor refuses new work
    /// (for example because it has shut down); the future is dropped in that case.
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError>;

    /// A future that completes after `duration`, on this executor's timer.
    fn sleep(&self, duration: Duration) -> BoxFuture;

    /// A short name of the executor, for logs and diagnostics.
    fn runtime_name(&self) -> &'static str {
        "custom"
    }

    /// The current instant on this executor's clock: the clock [`sleep`](Spawner::sleep)
    /// follows. The pool reads it only for rate limits (their tokens fall due at instants)
    /// and, with an adaptive limit, for tasks' run times. The default is [`Instant::now`];
    /// an executor with a clock of its own (tokio's paused clock in tests) overrides it, so
    /// that rate limits, run times and timers agree.
    ///
    /// ```
    /// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
    /// use async_taskpool::runtime::{BoxFuture, SpawnError, Spawner};
    /// use std::time::{Duration, Instant};
    ///
    /// struct Inline;
    /// impl Spawner for Inline {
    ///     fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
    ///         futures::executor::block_on(fut);
    ///         Ok(())
    ///     }
    ///     fn sleep(&self, d: Duration) -> BoxFuture {
    ///         Box::pin(async move { std::thread::sleep(d) })
    ///     }
    /// }
    /// let before = Instant::now();
    /// assert!(Inline.now() >= before); // the default: the system's monotonic clock
    /// ```
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Whether a task spawned now would run on the calling thread anyway: the caller runs on
    /// this executor, and the executor runs all its tasks on this one thread (tokio's
    /// current-thread runtime). The pool's `exec` then runs a task that finds room inside
    /// the awaiting caller rather than on a runtime task of its own: no runtime task to wake
    /// and no wake back, and no parallelism lost, since there was none to have. The default
    /// is `false` (always a runtime task), right for any executor that cannot tell or that
    /// has several threads; override it only if the answer is exact, since a wrong `true`
    /// runs work on the caller's thread that would have run elsewhere.
    ///
    /// ```
    /// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
    /// use async_taskpool::runtime::{BoxFuture, SpawnError, Spawner};
    /// use std::time::Duration;
    ///
    /// struct ThreadPerTask;
    /// impl Spawner for ThreadPerTask {
    ///     fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
    ///         std::thread::spawn(move || futures::executor::block_on(fut));
    ///         Ok(())
    ///     }
    ///     fn sleep(&self, d: Duration) -> BoxFuture {
    ///         Box::pin(async move { std::thread::sleep(d) })
    ///     }
    /// }
    /// assert!(!ThreadPerTask.is_current_thread()); // the default: never
    /// ```
    fn is_current_thread(&self) -> bool {
        false
    }
}

impl<S: Spawner + ?Sized> Spawner for Arc<S> {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        (**self).spawn(fut)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture {
        (**self).sleep(duration)
    }
    fn runtime_name(&self) -> &'static str {
        (**self).runtime_name()
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn is_current_thread(&self) -> bool {
        (**self).is_current_thread()
    }
}

impl<S: Spawner + ?Sized> Spawner for Box<S> {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        (**self).spawn(fut)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture {
        (**self).sleep(duration)
    }
    fn runtime_name(&self) -> &'static str {
        (**self).runtime_name()
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn is_current_thread(&self) -> bool {
        (**self).is_current_thread()
    }
}

/// The executor refused to start a task.
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::SpawnError;
/// let err = SpawnError::shutdown("futures");
/// assert!(err.to_string().contains("shut down"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("the {runtime} executor refused a task: {reason}")]
pub struct SpawnError {
    runtime: &'static str,
    reason: String,
}

impl SpawnError {
    /// The executor has shut down and takes no more tasks.
    pub fn shutdown(runtime: &'static str) -> Self {
        Self {
            runtime,
            reason: "it has shut down; spawn on a running executor".into(),
        }
    }

    /// Any other refusal, with a reason that tells the user what to do.
    pub fn other(runtime: &'static str, reason: impl fmt::Display) -> Self {
        Self {
            runtime,
            reason: reason.to_string(),
        }
    }

    /// The [`Spawner::runtime_name`] of the executor that refused.
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }
}

/// No executor could be found by [`ambient`].
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// use async_taskpool::runtime::NoRuntimeError;
/// assert!(NoRuntimeError.to_string().contains("feature"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no async runtime is available: enable the `tokio`, `smol` or `async-std` feature of \
     async-taskpool (for `tokio`, call from inside a runtime), or pass a spawner explicitly"
)]
pub struct NoRuntimeError;

/// Picks the runtime to spawn on from the environment.
///
/// Order: the tokio runtime this thread is inside (feature `tokio`), then smol's global
/// executor (feature `smol`), then async-std's (feature `async-std`). smol and async-std are
/// always available once compiled in, so with either feature on this only fails if you build
/// with tokio alone and call it outside a tokio runtime.
///
/// ```
/// # mod async_taskpool { pub mod runtime { pub use ::async_taskpool_runtime::*; } } // as re-exported
/// match async_taskpool::runtime::ambient() {
///     Ok(spawner) => println!("spawning on {}", spawner.runtime_name()),
///     Err(e) => println!("{e}"),
/// }
/// ```
pub fn ambient() -> Result<Arc<dyn Spawner>, NoRuntimeError> {
    #[cfg(feature = "tokio")]
    if let Ok(spawner) = TokioSpawner::try_current() {
        return Ok(Arc::new(spawner));
    }
    #[cfg(feature = "smol")]
    {
        return Ok(Arc::new(SmolSpawner::global()));
    }
    #[cfg(all(feature = "async-std", not(feature = "smol")))]
    #[allow(deprecated)]
    {
        return Ok(Arc::new(AsyncStdSpawner::new()));
    }
    #[allow(unreachable_code)]
    Err(NoRuntimeError)
}

#[cfg(test)]
mod doc_tests {
    // Users reach these items as `async_taskpool::runtime::...` (this crate is re-exported
    // there), so their examples must import them that way: a visible path through this
    // crate's own name in an item's example is one a user of async-taskpool cannot type.
    #[test]
    fn item_examples_use_the_paths_users_import() {
        let sources = [
            ("lib.rs", include_str!("lib.rs")),
            ("tokio_rt.rs", include_str!("tokio_rt.rs")),
            ("smol_rt.rs", include_str!("smol_rt.rs")),
            ("async_std_rt.rs", include_str!("async_std_rt.rs")),
            ("futures_spawn.rs", include_str!("futures_spawn.rs")),
        ];
        for (file, text) in sources {
            for (n, line) in text.lines().enumerate() {
                let doc = line.trim_start();
                // Item docs only (`//!` is this crate's own page); hidden lines may alias.
                if doc.starts_with("///")
                    && !doc.starts_with("/// #")
                    && doc.contains("async_taskpool_runtime::")
                {
                    panic!("{file}:{}: {line}", n + 1);
                }
            }
        }
    }
}

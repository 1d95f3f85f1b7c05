//! [`ThreadedPool`]: a [`TaskPool`](crate::TaskPool) on its own thread, with its own event
//! loop, for synchronous callers and for async callers on another runtime.

mod async_pool;
mod blocking;
mod builder;
mod core;
mod driver;
mod error;
mod handle;

pub use async_pool::AsyncThreadedPool;
pub use blocking::ThreadedPool;
pub use builder::ThreadedPoolBuilder;
pub use error::{HookError, ThreadedError};
pub use handle::ThreadedHandle;

/// The executor a [`ThreadedPool`] runs on its thread. Each variant needs the cargo feature
/// of its runtime.
///
/// | variant              | the pool's tasks run                                         |
/// |----------------------|--------------------------------------------------------------|
/// | `TokioCurrentThread` | on the pool's thread, in a current-thread tokio runtime with IO and time enabled |
/// | `Smol`               | on the pool's thread, on a `smol::Executor` of its own        |
/// | `AsyncStd`           | on async-std's global executor; the thread runs the pool's loop and its hooks |
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::ThreadRuntime;
/// let runtime = ThreadRuntime::Smol;
/// assert_eq!(format!("{runtime:?}"), "Smol");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadRuntime {
    /// A tokio current-thread runtime (`enable_all`), owned by the pool's thread. Tasks can
    /// use tokio's timers, and its IO if your tokio dependency enables it.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    TokioCurrentThread,
    /// A `smol::Executor` driven by `smol::block_on` on the pool's thread.
    #[cfg(feature = "smol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
    Smol,
    /// async-std's global executor; the pool's thread blocks on the pool's loop with
    /// `async_std::task::block_on`. Deprecated upstream: prefer `Smol`.
    #[cfg(feature = "async-std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
    #[deprecated(note = "async-std is discontinued upstream; prefer `ThreadRuntime::Smol`")]
    AsyncStd,
}

//! The executor on a threaded pool's thread, one arm per runtime feature.

use super::ThreadRuntime;
use async_taskpool_runtime::Spawner;
use std::future::Future;
use std::io;
use std::sync::Arc;

pub(crate) enum Driver {
    #[cfg(feature = "tokio")]
    Tokio(TokioRuntime),
    #[cfg(feature = "smol")]
    Smol(Arc<smol::Executor<'static>>),
    #[cfg(feature = "async-std")]
    AsyncStd,
}

impl Driver {
    /// Builds the executor (on the caller's thread, so errors come back at once).
    pub(crate) fn new(runtime: ThreadRuntime) -> io::Result<Self> {
        #[allow(deprecated)]
        Ok(match runtime {
            #[cfg(feature = "tokio")]
            ThreadRuntime::TokioCurrentThread => Self::Tokio(TokioRuntime(Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            ))),
            #[cfg(feature = "smol")]
            ThreadRuntime::Smol => Self::Smol(Arc::new(smol::Executor::new())),
            #[cfg(feature = "async-std")]
            ThreadRuntime::AsyncStd => Self::AsyncStd,
        })
    }

    /// Where the inner pool spawns its tasks; usable from any thread.
    pub(crate) fn spawner(&self) -> Arc<dyn Spawner> {
        match self {
            #[cfg(feature = "tokio")]
            Self::Tokio(TokioRuntime(rt)) => {
                let handle = rt.as_ref().expect("taken only by block_on").handle();
                Arc::new(async_taskpool_runtime::TokioSpawner::from_handle(
                    handle.clone(),
                ))
            }
            #[cfg(feature = "smol")]
            Self::Smol(ex) => Arc::new(async_taskpool_runtime::SmolSpawner::from_executor(
                ex.clone(),
            )),
            #[cfg(feature = "async-std")]
            #[allow(deprecated)]
            Self::AsyncStd => Arc::new(async_taskpool_runtime::AsyncStdSpawner::new()),
        }
    }

    /// Runs `fut` to completion on the current thread, driving the executor meanwhile, then
    /// shuts the executor down.
    pub(crate) fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            #[cfg(feature = "tokio")]
            Self::Tokio(mut rt) => {
                let rt = rt.0.take().expect("block_on runs once");
                // Dropped here, on the pool's thread, after the loop: a blocking shutdown.
                rt.block_on(fut)
            }
            #[cfg(feature = "smol")]
            Self::Smol(ex) => smol::block_on(ex.run(fut)),
            #[cfg(feature = "async-std")]
            Self::AsyncStd => async_std::task::block_on(fut),
        }
    }
}

/// A tokio runtime that, if dropped without having run (the pool failed to start), shuts
/// down without blocking: the caller may be inside a runtime of its own, where a blocking
/// shutdown panics.
#[cfg(feature = "tokio")]
pub(crate) struct TokioRuntime(Option<tokio::runtime::Runtime>);

#[cfg(feature = "tokio")]
impl Drop for TokioRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

//! The runtimes the benchmarks compare, behind one small interface.
#![allow(dead_code, deprecated)]

use async_taskpool::runtime::{AsyncStdSpawner, SmolSpawner, Spawner, TokioSpawner};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub enum Rt {
    TokioMulti(tokio::runtime::Runtime),
    TokioCurrent(tokio::runtime::Runtime),
    Smol,
    AsyncStd,
}

/// A raw runtime task handle, awaited for its output.
pub enum RawHandle<T> {
    Tokio(tokio::task::JoinHandle<T>),
    Smol(smol::Task<T>),
    AsyncStd(async_std::task::JoinHandle<T>),
}

impl<T> Future for RawHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Self::Tokio(h) => Pin::new(h).poll(cx).map(Result::unwrap),
            Self::Smol(t) => Pin::new(t).poll(cx),
            Self::AsyncStd(h) => Pin::new(h).poll(cx),
        }
    }
}

impl Rt {
    pub fn all() -> Vec<Rt> {
        vec![
            Rt::TokioMulti(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap(),
            ),
            Rt::TokioCurrent(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
            ),
            Rt::Smol,
            Rt::AsyncStd,
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Rt::TokioMulti(_) => "tokio multi-thread",
            Rt::TokioCurrent(_) => "tokio current-thread",
            Rt::Smol => "smol",
            Rt::AsyncStd => "async-std",
        }
    }

    pub fn spawner(&self) -> Arc<dyn Spawner> {
        match self {
            Rt::TokioMulti(rt) | Rt::TokioCurrent(rt) => {
                Arc::new(TokioSpawner::from_handle(rt.handle().clone()))
            }
            Rt::Smol => Arc::new(SmolSpawner::global()),
            Rt::AsyncStd => Arc::new(AsyncStdSpawner::new()),
        }
    }

    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self {
            Rt::TokioMulti(rt) | Rt::TokioCurrent(rt) => rt.block_on(fut),
            Rt::Smol => smol::block_on(fut),
            Rt::AsyncStd => async_std::task::block_on(fut),
        }
    }

    /// Runs `fut` to completion; returns how long that took.
    pub fn block_on_timed<F: Future>(&self, fut: F) -> Duration {
        self.block_on(async {
            let start = Instant::now();
            fut.await;
            start.elapsed()
        })
    }

    pub fn spawn<F>(&self, fut: F) -> RawHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Rt::TokioMulti(rt) | Rt::TokioCurrent(rt) => RawHandle::Tokio(rt.handle().spawn(fut)),
            Rt::Smol => RawHandle::Smol(smol::spawn(fut)),
            Rt::AsyncStd => RawHandle::AsyncStd(async_std::task::spawn(fut)),
        }
    }

    /// The usual hand-rolled limit: a semaphore permit per task, moved into the task. On tokio
    /// with a `JoinSet`, elsewhere with a `Vec` of handles.
    pub async fn spawn_all_with_semaphore<F, Fut>(
        &self,
        n: u64,
        sem: Arc<tokio::sync::Semaphore>,
        f: F,
    ) where
        F: Fn(u64) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        match self {
            Rt::TokioMulti(rt) | Rt::TokioCurrent(rt) => {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..n {
                    let permit = sem.clone().acquire_owned().await.unwrap();
                    let fut = f(i);
                    set.spawn_on(
                        async move {
                            let out = fut.await;
                            drop(permit);
                            out
                        },
                        rt.handle(),
                    );
                }
                while set.join_next().await.is_some() {}
            }
            _ => {
                let mut hs = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let permit = sem.clone().acquire_owned().await.unwrap();
                    let fut = f(i);
                    hs.push(self.spawn(async move {
                        let out = fut.await;
                        drop(permit);
                        out
                    }));
                }
                for h in hs {
                    h.await;
                }
            }
        }
    }
}

/// Yields to the scheduler `n` times (wakes itself, so it works on every runtime).
pub async fn yield_n(n: usize) {
    for _ in 0..n {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

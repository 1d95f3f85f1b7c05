//! The runtimes the benchmarks compare, behind one small interface.
#![allow(dead_code, deprecated)]

use async_taskpool::runtime::{AsyncStdSpawner, SmolSpawner, Spawner, TokioSpawner};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A runtime, owned by the benchmark (tokio), or a global one (smol, async-std).
pub enum Rt {
    /// A tokio multi-thread runtime with this many worker threads.
    TokioMulti(tokio::runtime::Runtime, usize),
    TokioCurrent(tokio::runtime::Runtime),
    /// smol's global executor (one thread unless `SMOL_THREADS` says otherwise).
    Smol,
    AsyncStd,
}

/// What a task needs to spawn on its runtime: cheap to clone, `Send`, `'static`.
#[derive(Clone)]
pub enum RtHandle {
    Tokio(tokio::runtime::Handle),
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
    /// Every runtime and flavour, as the main tables compare them.
    pub fn all() -> Vec<Rt> {
        vec![
            Rt::tokio_multi(2),
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

    pub fn tokio_multi(workers: usize) -> Rt {
        Rt::TokioMulti(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap(),
            workers,
        )
    }

    /// The column heading.
    pub fn name(&self) -> String {
        match self {
            Rt::TokioMulti(_, w) => format!("tokio multi-thread ({w})"),
            Rt::TokioCurrent(_) => "tokio current-thread".into(),
            Rt::Smol => "smol".into(),
            Rt::AsyncStd => "async-std".into(),
        }
    }

    pub fn handle(&self) -> RtHandle {
        match self {
            Rt::TokioMulti(rt, _) | Rt::TokioCurrent(rt) => RtHandle::Tokio(rt.handle().clone()),
            Rt::Smol => RtHandle::Smol,
            Rt::AsyncStd => RtHandle::AsyncStd,
        }
    }

    /// Waits (at most a minute) until no task is alive on the runtime, so that what one run
    /// left behind does not run during the next; returns how many were alive at first. Only
    /// tokio tells (`num_alive_tasks`); elsewhere this returns 0 at once.
    pub fn settle(&self) -> usize {
        let (Rt::TokioMulti(rt, _) | Rt::TokioCurrent(rt)) = self else {
            return 0;
        };
        let metrics = rt.handle().metrics();
        let first = metrics.num_alive_tasks();
        if first > 0 {
            rt.block_on(async {
                let start = Instant::now();
                while metrics.num_alive_tasks() > 0 && start.elapsed() < Duration::from_secs(60) {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            });
        }
        first
    }

    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self {
            Rt::TokioMulti(rt, _) | Rt::TokioCurrent(rt) => rt.block_on(fut),
            Rt::Smol => smol::block_on(fut),
            Rt::AsyncStd => async_std::task::block_on(fut),
        }
    }
}

impl RtHandle {
    pub fn spawner(&self) -> Arc<dyn Spawner> {
        match self {
            RtHandle::Tokio(h) => Arc::new(TokioSpawner::from_handle(h.clone())),
            RtHandle::Smol => Arc::new(SmolSpawner::global()),
            RtHandle::AsyncStd => Arc::new(AsyncStdSpawner::new()),
        }
    }

    pub fn spawn<F>(&self, fut: F) -> RawHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            RtHandle::Tokio(h) => RawHandle::Tokio(h.spawn(fut)),
            RtHandle::Smol => RawHandle::Smol(smol::spawn(fut)),
            RtHandle::AsyncStd => RawHandle::AsyncStd(async_std::task::spawn(fut)),
        }
    }

    /// The usual hand-rolled limit: a semaphore permit per task, moved into the task. On tokio
    /// with a `JoinSet`, elsewhere with a `Vec` of handles.
    pub async fn spawn_all_with_semaphore<F, Fut>(
        &self,
        items: std::ops::Range<u64>,
        sem: Arc<tokio::sync::Semaphore>,
        f: F,
    ) where
        F: Fn(u64) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        match self {
            RtHandle::Tokio(h) => {
                let mut set = tokio::task::JoinSet::new();
                for i in items {
                    let permit = sem.clone().acquire_owned().await.unwrap();
                    let fut = f(i);
                    set.spawn_on(
                        async move {
                            let out = fut.await;
                            drop(permit);
                            out
                        },
                        h,
                    );
                }
                while set.join_next().await.is_some() {}
            }
            _ => {
                let mut hs = Vec::with_capacity(items.end.saturating_sub(items.start) as usize);
                for i in items {
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

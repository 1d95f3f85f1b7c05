//! One pattern at a time, single-threaded, for profilers (callgrind: `benches/callgrind.sh`).
//!
//! ```text
//! cargo bench --bench profile --features tokio,smol --no-run
//! N=20000 ROUNDS=1 LIMIT=1000 valgrind --tool=callgrind target/release/deps/profile-* queued
//! N=20000 PRODUCER=task RT=smol target/release/deps/profile-* queued
//! ```
//!
//! Modes (the first argument):
//! - `raw`: raw runtime spawn of every task, then await every handle;
//! - `raw-loop`: raw spawn and await, one task at a time;
//! - `exec`: `pool.exec(..).await` in a loop;
//! - `spawn`: `pool.spawn(..).await` each, then await every handle;
//! - `queued`: `pool.spawn_queued(..)` each, then await every handle;
//! - `map`, `map_unordered`: over `0..N` with `num_concurrent` C, every result read;
//! - `apply`: N tasks, every result joined;
//! - `buffered`: `buffer_unordered(C)` over the items without spawning.
//!
//! Environment:
//! - `N` tasks per round (200,000), `ROUNDS` (5);
//! - `LIMIT`: the pool's limit (none if unset), `C`: `num_concurrent` of `map`,
//!   `map_unordered` and `buffered` (1000);
//! - `PRODUCER=task` submits from a runtime task instead of the `block_on` future;
//! - `RT=smol`: a `smol::Executor` run by `smol::block_on` on this thread alone (needs the
//!   `smol` feature), instead of tokio current-thread;
//! - `YIELDS`: each task yields this many times before it returns (0);
//! - `DURATIONS=1`: pools built with `track_durations(true)` (queue-wait and run-time
//!   percentiles);
//! - `SPAWNS=1`: count the pool's runtime spawns per task (through a counting spawner, which
//!   is a custom spawner: leave it off when counting instructions).
//!
//! Instruction counts are the steady measure on a shared machine; wall time is in `throughput`.

#[path = "common/yield_now.rs"]
mod yield_now;

use async_taskpool::runtime::{BoxFuture, SpawnError, Spawner, TokioSpawner};
use async_taskpool::TaskPool;
use futures::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The single-threaded executor the pattern runs on.
#[derive(Clone)]
enum Local {
    Tokio,
    #[cfg(feature = "smol")]
    Smol(Arc<smol::Executor<'static>>),
}

/// A raw task handle: an enum, not a box, so the raw baselines allocate nothing extra.
enum Handle<T> {
    Tokio(tokio::task::JoinHandle<T>),
    #[cfg(feature = "smol")]
    Smol(smol::Task<T>),
}

impl<T> Future for Handle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Handle::Tokio(h) => Pin::new(h).poll(cx).map(Result::unwrap),
            #[cfg(feature = "smol")]
            Handle::Smol(t) => Pin::new(t).poll(cx),
        }
    }
}

/// Counts the runtime spawns a pool makes (`SPAWNS=1`).
struct Counting<S> {
    inner: S,
    spawns: Arc<AtomicU64>,
}

impl<S: Spawner> Spawner for Counting<S> {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        self.spawns.fetch_add(1, Relaxed);
        self.inner.spawn(fut)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture {
        self.inner.sleep(duration)
    }
    fn runtime_name(&self) -> &'static str {
        self.inner.runtime_name()
    }
}

impl Local {
    fn spawn<F>(&self, fut: F) -> Handle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Local::Tokio => Handle::Tokio(tokio::spawn(fut)),
            #[cfg(feature = "smol")]
            Local::Smol(ex) => Handle::Smol(ex.spawn(fut)),
        }
    }

    /// A pool on this executor, built from the adapter's own type as a user would (or
    /// wrapped in [`Counting`]).
    fn pool(&self, limit: Option<usize>, spawns: Option<&Arc<AtomicU64>>) -> TaskPool {
        fn build(spawner: impl Spawner, limit: Option<usize>) -> TaskPool {
            let durations = std::env::var("DURATIONS").is_ok_and(|d| d == "1");
            let b = TaskPool::builder(spawner).track_durations(durations);
            match limit {
                Some(l) => b.limit(l),
                None => b,
            }
            .build()
            .expect("LIMIT must be at least 1")
        }
        fn counted<S: Spawner>(
            s: S,
            spawns: Option<&Arc<AtomicU64>>,
            limit: Option<usize>,
        ) -> TaskPool {
            match spawns {
                Some(spawns) => build(
                    Counting {
                        inner: s,
                        spawns: spawns.clone(),
                    },
                    limit,
                ),
                None => build(s, limit),
            }
        }
        match self {
            Local::Tokio => counted(TokioSpawner::current(), spawns, limit),
            #[cfg(feature = "smol")]
            Local::Smol(ex) => counted(
                async_taskpool::runtime::SmolSpawner::from_executor(ex.clone()),
                spawns,
                limit,
            ),
        }
    }
}

struct Run {
    mode: String,
    n: u64,
    limit: Option<usize>,
    c: usize,
    yields: usize,
}

async fn task(yields: usize, i: u64) -> u64 {
    if yields > 0 {
        yield_now::yield_n(yields).await;
    }
    i
}

/// One round of `run.mode`, submitted by the caller.
async fn produce(local: Local, pool: TaskPool, run: Arc<Run>) {
    let (n, y, c) = (run.n, run.yields, run.c);
    match run.mode.as_str() {
        "raw" => {
            let hs: Vec<_> = (0..n).map(|i| local.spawn(task(y, i))).collect();
            for h in hs {
                h.await;
            }
        }
        "raw-loop" => {
            for i in 0..n {
                local.spawn(task(y, i)).await;
            }
        }
        "exec" => {
            for i in 0..n {
                pool.exec(task(y, i)).await.unwrap();
            }
        }
        "spawn" => {
            let mut hs = Vec::with_capacity(n as usize);
            for i in 0..n {
                hs.push(pool.spawn(task(y, i)).await.unwrap());
            }
            for h in hs {
                h.await.unwrap();
            }
        }
        "queued" => {
            let hs: Vec<_> = (0..n)
                .map(|i| pool.spawn_queued(task(y, i)).unwrap())
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        }
        "map" => {
            let g = pool.map(0..n, c, move |i| task(y, i)).unwrap();
            assert_eq!(g.count().await as u64, n);
        }
        "map_unordered" => {
            let g = pool.map_unordered(0..n, c, move |i| task(y, i)).unwrap();
            assert_eq!(g.count().await as u64, n);
        }
        "apply" => {
            let g = pool.apply(n as usize, move || task(y, 0)).unwrap();
            assert_eq!(g.join().await.unwrap().completed, n);
        }
        "buffered" => {
            futures::stream::iter(0..n)
                .map(|i| task(y, i))
                .buffer_unordered(c)
                .for_each(|_| async {})
                .await;
        }
        other => panic!(
            "unknown mode {other:?}: raw, raw-loop, exec, spawn, queued, map, map_unordered, apply \
             or buffered"
        ),
    }
}

async fn rounds(local: Local, run: Arc<Run>, rounds: usize, in_task: bool, count: bool) {
    let spawns = count.then(|| Arc::new(AtomicU64::new(0)));
    for _ in 0..rounds {
        let pool = local.pool(run.limit, spawns.as_ref());
        let t = Instant::now();
        if in_task {
            local.spawn(produce(local.clone(), pool, run.clone())).await;
        } else {
            produce(local.clone(), pool, run.clone()).await;
        }
        println!(
            "{} {:.0}",
            run.mode,
            t.elapsed().as_nanos() as f64 / run.n as f64
        );
    }
    if let Some(spawns) = spawns {
        let per_task = spawns.load(Relaxed) as f64 / (run.n * rounds as u64) as f64;
        println!("runtime spawns per task: {per_task:.3}");
    }
}

fn main() {
    let run = Arc::new(Run {
        mode: std::env::args().nth(1).unwrap_or_else(|| "queued".into()),
        n: env("N").unwrap_or(200_000),
        limit: env("LIMIT"),
        c: env("C").unwrap_or(1000),
        yields: env("YIELDS").unwrap_or(0),
    });
    let n_rounds: usize = env("ROUNDS").unwrap_or(5);
    let in_task = std::env::var("PRODUCER").is_ok_and(|p| p == "task");
    let count = std::env::var("SPAWNS").is_ok_and(|s| s == "1");
    let rt = std::env::var("RT").unwrap_or_default();
    match if rt.is_empty() { "tokio" } else { rt.as_str() } {
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(rounds(Local::Tokio, run, n_rounds, in_task, count));
        }
        #[cfg(feature = "smol")]
        "smol" => {
            let ex = Arc::new(smol::Executor::new());
            smol::block_on(ex.run(rounds(
                Local::Smol(ex.clone()),
                run,
                n_rounds,
                in_task,
                count,
            )));
        }
        other => panic!("RT={other:?}: tokio, or smol (with the smol feature)"),
    }
}

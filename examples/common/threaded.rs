//! The body of the `threaded_*` examples: a [`ThreadedPool`] with its own thread and event loop,
//! used from synchronous code, then an [`AsyncThreadedPool`] used from another executor. The
//! Rust counterpart of concurrent_tasks' `BlockingThreadedTaskPool` and
//! `AsyncThreadedTaskPool`.
//!
//! Only the runtime on the pool's thread differs between `threaded_tokio`, `threaded_smol` and
//! `threaded_async_std`; each passes its runtime's own `sleep`, which the tasks use because
//! they run on that runtime.

use async_taskpool::{AsyncThreadedPool, ThreadRuntime, ThreadedPool};
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pool runtime's timer.
pub type Sleep = fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Stands for a client that the tasks share, opened and closed on the pool's own loop.
#[derive(Default)]
struct Connection {
    open: bool,
    queries: u32,
}

pub fn run(runtime: ThreadRuntime, sleep: Sleep) -> Result<(), Box<dyn Error + Send + Sync>> {
    blocking(runtime, sleep)?;
    // Any executor can drive the async front end; here the `futures` crate's `block_on`.
    futures::executor::block_on(non_blocking(runtime, sleep))
}

/// Synchronous code: no runtime on this thread at all.
fn blocking(runtime: ThreadRuntime, sleep: Sleep) -> Result<(), Box<dyn Error + Send + Sync>> {
    let conn = Arc::new(Mutex::new(Connection::default()));
    let (opener, closer) = (conn.clone(), conn.clone());
    let pool = ThreadedPool::builder(runtime)
        .name("db-loop")
        .size(2)
        .timeout(Duration::from_millis(500))
        .setup(move || async move {
            opener.lock().unwrap().open = true;
            println!(
                "setup: connection opened on {:?}",
                std::thread::current().name()
            );
            Ok::<_, std::io::Error>(())
        })
        .teardown(move || async move {
            let mut c = closer.lock().unwrap();
            c.open = false;
            println!("teardown: connection closed after {} queries", c.queries);
            Ok::<_, std::io::Error>(())
        })
        .build()?;

    let query = |n: u32| {
        let conn = conn.clone();
        async move {
            sleep(Duration::from_millis(100)).await;
            let mut c = conn.lock().unwrap();
            assert!(c.open, "setup ran before any task");
            c.queries += 1;
            n * 10
        }
    };

    // `run` blocks until the output is ready.
    println!("run(query 1) -> {}", pool.run(query(1))?);

    // `spawn` returns at once; with size 2, four queries take two rounds.
    let start = Instant::now();
    let handles: Vec<_> = (2..6)
        .map(|n| pool.spawn(query(n)))
        .collect::<Result<_, _>>()?;
    let outputs: Vec<u32> = handles
        .into_iter()
        .map(|h| h.wait())
        .collect::<Result<_, _>>()?;
    println!(
        "spawned 4 -> {outputs:?} in about {:?}",
        round(start.elapsed())
    );

    // Cancel from any thread; the task is dropped promptly.
    let stuck = pool.spawn(std::future::pending::<()>())?;
    let stuck = stuck.wait_timeout(Duration::from_millis(50)).unwrap_err();
    std::thread::scope(|s| s.spawn(|| stuck.cancel()).join().unwrap())?;
    println!("stuck task -> {}", stuck.wait().unwrap_err());

    // The timeout counts running time only.
    let slow = pool.run(async move { sleep(Duration::from_secs(2)).await });
    println!("slow task -> {}", slow.unwrap_err());

    let stats = pool.stats();
    println!(
        "stats: {} ended, {} cancelled, {} timed out",
        stats.ended, stats.cancelled, stats.timed_out
    );
    pool.stop()?; // drains, runs teardown, joins the thread
    println!("after stop: {}", pool.run(async {}).unwrap_err());
    Ok(())
}

/// Async code on another executor: waiting never blocks it.
async fn non_blocking(
    runtime: ThreadRuntime,
    sleep: Sleep,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let pool = AsyncThreadedPool::builder(runtime)
        .name("side-loop")
        .build_async()
        .await?;
    let out = pool
        .run(async move {
            sleep(Duration::from_millis(50)).await;
            "slept on the pool's runtime"
        })
        .await?;
    println!("async run -> {out}");
    let handle = pool.spawn(async { 1 + 1 })?;
    println!("async spawn -> {}", handle.await?);
    pool.stop().await?;
    Ok(())
}

fn round(d: Duration) -> Duration {
    Duration::from_millis((d.as_millis() as u64).div_ceil(100) * 100)
}

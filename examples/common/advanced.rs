//! The body of the `advanced_*` examples: a [`TaskPool`] limited to 3 tasks, running two kinds
//! of work with `apply` and a "starmap" (`map` over argument tuples). The Rust counterpart of
//! asyncio-taskpool's `TaskPool` usage example.
//!
//! Only the runtime differs between `advanced_tokio`, `advanced_smol` and `advanced_async_std`:
//! every sleep here goes through the spawner's own timer ([`Spawner::sleep`]), so this code runs
//! the same on any executor.

use async_taskpool::runtime::Spawner;
use async_taskpool::{current_task_id, TaskPool};
use futures::StreamExt;
use std::error::Error;
use std::time::Duration;

/// A pseudo-worker counting through `start..stop` in steps of `step`, 100 ms per count.
/// Returns how many counts it made.
async fn work(timer: impl Spawner, start: u32, stop: u32, step: usize) -> usize {
    let id = current_task_id().expect("`work` runs as a pool task");
    let mut counts = 0;
    for i in (start..stop).step_by(step) {
        timer.sleep(Duration::from_millis(100)).await;
        println!("Task-{id} work with {i}");
        counts += 1;
    }
    counts
}

/// Another pseudo-worker, counting through `a..b` at 50 ms per count. Returns the sum.
async fn other_work(timer: impl Spawner, a: u32, b: u32) -> u32 {
    let id = current_task_id().expect("`other_work` runs as a pool task");
    for i in a..b {
        timer.sleep(Duration::from_millis(50)).await;
        println!("Task-{id} other_work with {i}");
    }
    (a..b).sum()
}

/// Runs two `work` tasks and four `other_work` items in a pool of 3, then waits for all.
pub async fn run<S: Spawner + Clone>(spawner: S) -> Result<(), Box<dyn Error + Send + Sync>> {
    let timer = spawner.clone();
    // At most 3 tasks of this pool run at once.
    let pool = TaskPool::builder(spawner).limit(3).build()?;
    let limit = pool.limit().unwrap_or(usize::MAX);
    println!(
        "{} runs at most {limit} tasks at once, on {}",
        pool.name(),
        timer.runtime_name()
    );

    // Two copies of the same job (tasks 0 and 1), started at once since there is room.
    let t = timer.clone();
    let applied = pool.apply(2, move || work(t.clone(), 100, 200, 10))?;
    println!("apply(2, ..) -> {}", applied.name());
    timer.sleep(Duration::from_millis(150)).await; // lets them work a bit

    // A "starmap": one item per argument tuple, at most 2 at once. With 2 of the pool's 3
    // slots taken, only the first item starts now (task 2); the others start as room frees,
    // and get their ids as they start. `map` itself returns at once.
    let args = vec![(0, 10), (10, 20), (20, 30), (30, 40)];
    let t = timer.clone();
    let mut mapped = pool.map(args.clone(), 2, move |(a, b)| other_work(t.clone(), a, b))?;
    println!("map(.., 2, ..) -> {} returned at once", mapped.name());
    let stats = pool.stats();
    println!(
        "stats: {} running, {} queued, full: {}",
        stats.running, stats.queued, stats.is_full
    );

    // Results come in input order, whichever item finishes first.
    for (a, b) in args {
        let sum = mapped.next().await.expect("one result per item")?;
        println!("other_work({a}, {b}) -> {sum}");
    }

    // `join` waits for the group and discards its results; it returns how its items ended.
    let name = applied.name().to_owned();
    let summary = applied.join().await?;
    println!(
        "{name}: {} completed, {} cancelled",
        summary.completed, summary.cancelled
    );

    // Refuses new work, waits for everything accepted, then closes the pool for good.
    pool.gather_and_close().await?;
    println!("Done: {}", serde_json::to_string(&pool.stats())?);
    Ok(())
}

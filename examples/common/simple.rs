//! The body of the `simple_*` examples: a [`SimpleTaskPool`] of counting workers, started and
//! stopped by count. The Rust counterpart of asyncio-taskpool's `SimpleTaskPool` usage example.
//!
//! Only the runtime differs between `simple_tokio`, `simple_smol` and `simple_async_std`: every
//! sleep here goes through the spawner's own timer ([`Spawner::sleep`]), so this code runs the
//! same on any executor.

use async_taskpool::runtime::Spawner;
use async_taskpool::{current_task_id, SimpleTaskPool};
use std::error::Error;
use std::time::Duration;

/// How long a worker waits between two counts.
const TICK: Duration = Duration::from_millis(200);

/// A pseudo-worker: counts from 0 to `n - 1`, waiting one tick before each count.
///
/// In a real program a worker would take jobs from a shared queue or channel instead.
async fn work(timer: impl Spawner, n: u32) {
    let id = current_task_id().expect("`work` runs as a pool task");
    for i in 0..n {
        timer.sleep(TICK).await;
        println!("Task-{id} did {i}");
    }
}

/// Starts three workers, then a fourth, stops the two newest, and waits for the rest.
pub async fn run<S: Spawner + Clone>(spawner: S) -> Result<(), Box<dyn Error + Send + Sync>> {
    let timer = spawner.clone();
    let worker_timer = spawner.clone();
    let pool = SimpleTaskPool::builder(spawner, move || work(worker_timer.clone(), 5))
        .func_name("work")
        .on_cancel(|id| async move { println!("on_cancel: task {id} was cancelled") })
        .build()?;
    println!("running `{}` on {}", pool.func_name(), timer.runtime_name());

    // Launches tasks 0, 1 and 2 and returns at once.
    let group = pool.start(3)?;
    println!("start(3) -> {}", group.name());
    timer.sleep(TICK * 3 / 2).await; // lets the workers count a bit

    // Launches task 3.
    let group = pool.start(1)?;
    println!("start(1) -> {}", group.name());
    timer.sleep(TICK * 3 / 2).await;

    // Cancels the two newest tasks, 3 and 2; tasks 0 and 1 keep counting.
    let stopped: Vec<String> = pool.stop(2).iter().map(|id| id.to_string()).collect();
    println!("stop(2) -> [{}]", stopped.join(", "));

    // Refuses new work (gather_and_close would lock too), then waits for every task to end.
    pool.lock();
    pool.gather_and_close().await?;

    println!(
        "Done: {} ended, {} of them cancelled, {} running",
        pool.num_ended(),
        pool.num_cancelled(),
        pool.num_running()
    );
    Ok(())
}

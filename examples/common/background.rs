//! The body of the `background_*` examples: a [`PeriodicTask`] heartbeat, a [`BackgroundTask`]
//! producer whose lifetime is a scope, and a restartable one. The Rust counterpart of
//! concurrent_tasks' `BackgroundTask` and `PeriodicTask`.
//!
//! Only the runtime differs between `background_tokio`, `background_smol` and
//! `background_async_std`: every sleep goes through the spawner's own timer
//! ([`Spawner::sleep`]), so this code runs the same on any executor.

use async_taskpool::runtime::Spawner;
use async_taskpool::{BackgroundTask, MissedTickBehavior, PeriodicTask};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub async fn run<S: Spawner + Clone>(spawner: S) -> Result<(), Box<dyn Error + Send + Sync>> {
    let timer = spawner.clone();

    // A heartbeat every 100 ms, for as long as `heartbeat` lives.
    let heartbeat = PeriodicTask::builder(spawner.clone(), Duration::from_millis(100))
        .name("heartbeat")
        .missed_ticks(MissedTickBehavior::Skip)
        .spawn(|| async { println!("heartbeat: still alive") })?;

    // A producer feeding a channel. Its lifetime is this function: if we returned early
    // (with `?`, say), dropping it would cancel it.
    let (mut tx, mut rx) = mpsc::channel(4);
    let producer = BackgroundTask::builder(spawner.clone())
        .name("producer")
        .spawn(async move {
            let mut sent = 0;
            for item in 0..1_000 {
                if tx.send(item).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
    for _ in 0..5 {
        println!("consumer: got {:?}", rx.next().await);
    }
    // Cancels the producer and waits until it has ended (its sender is dropped by then).
    let output = producer.stop().await?; // `None`: it was cancelled, it did not finish
    let mut left = 0;
    while rx.next().await.is_some() {
        left += 1; // the channel ends: the producer's sender is gone
    }
    println!("producer stopped (output: {output:?}); {left} items were left in the channel");

    // A restartable job: a factory makes a fresh future for every run.
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let t = timer.clone();
    let job = BackgroundTask::builder(spawner.clone())
        .name("sync-job")
        .spawn_with(move || {
            let (r, t) = (r.clone(), t.clone());
            async move {
                let run = r.fetch_add(1, Ordering::SeqCst) + 1;
                t.sleep(Duration::from_millis(50)).await;
                format!("sync run {run} done")
            }
        });
    println!("{}", job.join().await?);
    job.restart().await?; // stops the current run (already over) and starts a new one
    println!("{}", job.join().await?);

    // A failure is reported to `join` (and logged when it happens), never lost. Rust's
    // default panic hook also prints the panic itself.
    let failing = BackgroundTask::spawn(spawner.clone(), async {
        if true {
            panic!("lost the connection");
        }
    });
    match failing.join().await {
        Ok(()) => println!("unexpected success"),
        Err(e) => println!("failing task reported: {e}"),
    }

    timer.sleep(Duration::from_millis(250)).await;
    heartbeat.stop().await?;
    println!("heartbeat stopped after {} ticks", heartbeat.ticks());
    Ok(())
}

//! A worker process: drains the queue at `DATABASE_URL` through a `TaskPool` of 4, running
//! `thumbnail` jobs. Start as many as you like, on as many machines as you like; SIGTERM or
//! Ctrl-C stops one gracefully (running jobs get 10 s, the rest go back to the queue).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5433/postgres \
//!     cargo run -p async-taskpool-queue --example queue_worker --features tokio
//! ```
//!
//! With the feature `control` too, it also serves a control server on a free port of
//! 127.0.0.1 (printed at start) with the queue's commands: `taskpool-ctl tcp 127.0.0.1 PORT
//! -- queue-stats`, `queue-workers`, `queue-dead`, `queue-retry all`, and the pool's own
//! (`pool-size 8`, `tasks`, `cancel ID`).

use async_taskpool::{runtime::TokioSpawner, TaskPool};
use async_taskpool_queue::{JobContext, PgQueue, Registry, Worker};
use serde::Deserialize;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::time::Duration;

/// What `queue_enqueue` sends.
#[derive(Deserialize)]
struct Thumbnail {
    path: String,
    millis: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        "set DATABASE_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5433/postgres"
    })?;
    let queue = PgQueue::connect(&url).await?; // runs the migrations
    let pool = TaskPool::builder(TokioSpawner::current())
        .name("thumbnails")
        .limit(4)
        .build()?;
    let pid = std::process::id();
    let registry = Registry::new().register(
        "thumbnail",
        move |ctx: JobContext, job: Thumbnail| async move {
            tokio::time::sleep(Duration::from_millis(job.millis)).await;
            println!(
                "[worker {pid}] job {:>4} attempt {}: {}",
                ctx.id(),
                ctx.attempt(),
                job.path
            );
            Ok::<(), String>(())
        },
    );
    #[cfg(feature = "control")]
    let _control = {
        use async_taskpool_queue::QueueCommands;
        let server = async_taskpool::control::ControlServer::new(&pool)
            .queue_commands(queue.clone())
            .serve_tcp("127.0.0.1:0")?;
        let port = server.local_addr().map_or(0, |a| a.port());
        eprintln!("[worker {pid}] control server: taskpool-ctl tcp 127.0.0.1 {port}");
        server
    };
    // A short lease, so that a killed worker's jobs move within seconds.
    let worker = Worker::builder(queue, pool, registry)
        .lease(Duration::from_secs(5))
        .build()?;
    let stopper = worker.stopper();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            eprintln!(
                "[worker {pid}] stopping: running jobs get 10 s, the rest go back to the queue"
            );
            stopper.stop_gracefully(Duration::from_secs(10));
        }
    });
    eprintln!("[worker {pid}] draining the queue `default` with up to 4 jobs at once");
    let summary = worker.run().await?;
    eprintln!("[worker {pid}] stopped: {summary:?}");
    Ok(())
}

//! Enqueues `thumbnail` jobs (default 200, each taking 300 ms) in one statement, then
//! watches the queue drain: once a second, the jobs pending and running, and who runs them.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5433/postgres \
//!     cargo run -p async-taskpool-queue --example queue_enqueue --features tokio -- 200
//! ```

use async_taskpool_queue::{NewJob, PgQueue};
use serde::Serialize;
use std::time::Duration;

/// What `queue_worker` runs.
#[derive(Serialize)]
struct Thumbnail {
    path: String,
    millis: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        "set DATABASE_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5433/postgres"
    })?;
    let n: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("`{n}` is not a number of jobs"))?,
        None => 200,
    };
    let queue = PgQueue::connect(&url).await?;
    let jobs = (0..n)
        .map(|i| {
            NewJob::new(
                "thumbnail",
                &Thumbnail {
                    path: format!("photo-{i:04}.jpg"),
                    millis: 300,
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids = queue.enqueue_many(jobs).await?;
    println!(
        "enqueued {} jobs ({}..={})",
        ids.len(),
        ids[0],
        ids[ids.len() - 1]
    );
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let view = queue.cluster().await?;
        let Some(k) = view
            .kinds
            .iter()
            .find(|k| k.queue == "default" && k.kind == "thumbnail")
        else {
            continue;
        };
        let by_worker: Vec<String> = view
            .workers
            .iter()
            .map(|w| {
                let running = k.running_by_worker.get(&w.id).copied().unwrap_or(0);
                format!(
                    "{}@{} pid {} {}",
                    &w.id[..8],
                    w.host,
                    w.pid,
                    if w.alive {
                        running.to_string()
                    } else {
                        "silent".into()
                    }
                )
            })
            .collect();
        println!(
            "pending {:>4}  running {:>2}  retrying {}  done/min {:>4}  workers: [{}]",
            k.pending,
            k.running,
            k.retrying,
            k.completed_last_minute,
            by_worker.join(", ")
        );
        if k.pending + k.running + k.retrying + k.scheduled == 0 {
            println!("drained");
            return Ok(());
        }
    }
}

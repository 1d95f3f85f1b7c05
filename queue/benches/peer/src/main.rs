//! The queue benchmark's peer: apalis with its PostgreSQL backend (apalis-postgres), on the
//! same database and with the same batch size and concurrency as ours. Started by
//! `queue/benches/queue.rs` (see `queue/benches/run.sh`); not part of the main workspace.
//!
//! ```text
//! peer setup URL
//! peer enqueue URL N                 # N no-op jobs in one statement; prints the seconds
//! peer enqueue-paced URL N GAP_US    # N jobs one at a time, GAP_US apart, each carrying its send time
//! peer worker URL BATCH CONCURRENCY  # runs until killed; records start latency in bench_latency
//! ```

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const QUEUE: &str = "bench";

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// A job's argument: 0 for a no-op job, else its send time (µs since the epoch).
async fn work(sent_us: i64, db: Data<PgPool>) -> Result<(), BoxDynError> {
    if sent_us > 0 {
        let latency = now_us() - sent_us;
        sqlx::query("INSERT INTO bench_latency (us) VALUES ($1)").bind(latency).execute(&*db).await?;
    }
    Ok(())
}

fn task(arg: i64) -> apalis_postgres::PgTask {
    TaskBuilder::new(serde_json::to_vec(&arg).unwrap()).build()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_else(|| panic!("missing argument {i}; see the file's docs")) };
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(10).connect(arg(1)).await?;
    match arg(0) {
        "setup" => PostgresStorage::setup(&pool).await?,
        "enqueue" => {
            let n: usize = arg(2).parse()?;
            let tasks: Vec<_> = (0..n).map(|_| task(0)).collect();
            let start = Instant::now();
            let mut conn = pool.acquire().await?;
            apalis_postgres::queries::push_tasks(&mut *conn, QUEUE, tasks).await?;
            println!("{}", start.elapsed().as_secs_f64());
        }
        "enqueue-paced" => {
            let n: usize = arg(2).parse()?;
            let gap = Duration::from_micros(arg(3).parse()?);
            let mut conn = pool.acquire().await?;
            let start = Instant::now();
            for i in 0..n {
                let due = start + gap * i as u32;
                tokio::time::sleep_until(due.into()).await;
                apalis_postgres::queries::push_tasks(&mut *conn, QUEUE, vec![task(now_us())]).await?;
            }
        }
        "worker" => {
            let batch: usize = arg(2).parse()?;
            let concurrency: usize = arg(3).parse()?;
            let config = Config::default().queue(QUEUE).batch_size(batch);
            let backend = PostgresStorage::<i64>::new(&pool)
                .with_config(config)
                .with_pubsub()
                .poll_with_interval(Duration::from_secs(1));
            let worker = WorkerBuilder::new(format!("peer-{}", std::process::id()))
                .backend(backend)
                .data(pool.clone())
                .concurrency(concurrency)
                .build(work);
            worker.run().await?;
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}

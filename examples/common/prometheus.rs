//! The body of the `prometheus` example: a pool's metrics exported for Prometheus to scrape,
//! on 127.0.0.1, by `metrics-exporter-prometheus`. Shared with `tests/prometheus.rs`, which
//! scrapes the endpoint over HTTP.

use async_taskpool::runtime::Spawner;
use async_taskpool::TaskPool;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

/// Installs the Prometheus recorder (global) and its HTTP listener on `addr`, serving
/// `/metrics` (any path answers). Call it from inside a tokio runtime, before building the
/// pools: a pool registers its metrics with the recorder installed when it is built.
pub fn install(addr: SocketAddr) -> Result<(), Box<dyn Error + Send + Sync>> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        // Histograms as histograms (buckets in seconds), not summaries.
        .set_buckets(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])?
        .install()?;
    Ok(())
}

/// The pool the example watches: limit 4, durations tracked (for the histograms).
pub fn pool(spawner: impl Spawner) -> Result<TaskPool, Box<dyn Error + Send + Sync>> {
    Ok(TaskPool::builder(spawner)
        .name("crawler")
        .limit(4)
        .track_durations(true)
        .build()?)
}

/// One round of work: a `map` of 20 "pages" (some fail), a few loose tasks, one that times
/// out, and a `try_spawn` refused while the pool is full.
pub async fn round<S: Spawner + Clone>(
    pool: &TaskPool,
    spawner: &S,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let pages = pool.build_group().map(0..20u64, 4, {
        let timer = spawner.clone();
        move |page| {
            let sleep = timer.sleep(Duration::from_millis(1 + page % 7));
            async move {
                sleep.await;
                assert!(page % 10 != 9, "page {page} failed to parse");
                page
            }
        }
    })?;
    let mut refused = 0;
    for i in 0..6u64 {
        let sleep = spawner.sleep(Duration::from_millis(2 * i));
        if pool.try_spawn(sleep).is_err() {
            refused += 1;
        }
    }
    let slow = pool
        .build_task()
        .timeout(Duration::from_millis(5))
        .spawn(spawner.sleep(Duration::from_secs(60)))
        .await?;
    let summary = pages.join().await?;
    let _ = slow.await;
    println!(
        "round: {} pages ok, {} panicked, {refused} refused by try_spawn",
        summary.completed, summary.panicked
    );
    Ok(())
}

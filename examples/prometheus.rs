//! A pool's metrics for Prometheus: the `metrics` feature, exported by
//! `metrics-exporter-prometheus` on 127.0.0.1. The body is in `common/prometheus.rs`.
//!
//! ```text
//! cargo run --example prometheus --features tokio,metrics            # serves 127.0.0.1:9000
//! cargo run --example prometheus --features tokio,metrics -- 127.0.0.1:9100 3   # 3 rounds, then exit
//! curl -s http://127.0.0.1:9000/metrics | grep taskpool_
//! ```

#[path = "common/prometheus.rs"]
mod prometheus;

use async_taskpool::runtime::TokioSpawner;
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:9000").parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: this example serves loopback only (127.0.0.1 or ::1)").into());
    }
    let rounds: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    // Some pages "fail to parse" (they panic, and count as `panicked`): one line each.
    std::panic::set_hook(Box::new(|info| eprintln!("a task panicked: {info}")));
    // The recorder first: pools register their metrics with the one installed when built.
    prometheus::install(addr)?;
    let spawner = TokioSpawner::current();
    let pool = prometheus::pool(spawner.clone())?;
    println!("metrics on http://{addr}/metrics (Ctrl-C to stop)");
    let mut done = 0;
    while rounds.is_none_or(|n| done < n) {
        prometheus::round(&pool, &spawner).await?;
        done += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    pool.gather_and_close().await?;
    Ok(())
}

//! `BackgroundTask` and `PeriodicTask` on tokio: a heartbeat, a producer stopped by its
//! guard, a restartable job, and a failure reported to `join`. The body is shared with the
//! other runtimes, in `common/background.rs`.
//!
//! Run it with `cargo run --example background_tokio --features tokio`.

#[path = "common/background.rs"]
mod background;

use async_taskpool::runtime::TokioSpawner;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // INFO, plus the pool's per-task `Started`/`Ended` lines: DEBUG events of their own target.
    use tracing_subscriber::prelude::*;
    let filter: tracing_subscriber::filter::Targets = "info,async_taskpool::task=debug"
        .parse()
        .expect("a valid filter");
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .with(filter)
        .init();
    background::run(TokioSpawner::current()).await
}

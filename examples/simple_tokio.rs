//! A `SimpleTaskPool` of counting workers on tokio: start 3, start 1 more, stop the 2 newest,
//! then gather the rest. The body is shared with the other runtimes, in `common/simple.rs`.
//!
//! Run it with `cargo run --example simple_tokio --features tokio`.

#[path = "common/simple.rs"]
mod simple;

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
    simple::run(TokioSpawner::current()).await
}

//! A `TaskPool` limited to 3 tasks on tokio: `apply` two copies of one job, then a "starmap"
//! (`map` over argument tuples, at most 2 at once) whose results come in input order, then
//! `gather_and_close`. The body is shared with the other runtimes, in `common/advanced.rs`.
//!
//! Run it with `cargo run --example advanced_tokio --features tokio`.

#[path = "common/advanced.rs"]
mod advanced;

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
    advanced::run(TokioSpawner::current()).await
}

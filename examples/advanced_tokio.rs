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
    tracing_subscriber::fmt().with_target(false).init();
    advanced::run(TokioSpawner::current()).await
}

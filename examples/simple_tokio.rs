//! A `SimpleTaskPool` of counting workers on tokio: start 3, start 1 more, stop the 2 newest,
//! then gather the rest. The body is shared with the other runtimes, in `common/simple.rs`.
//!
//! Run it with `cargo run --example simple_tokio --features tokio`.

#[path = "common/simple.rs"]
mod simple;

use async_taskpool::runtime::TokioSpawner;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();
    simple::run(TokioSpawner::current()).await
}

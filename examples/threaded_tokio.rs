//! A `ThreadedPool` running tokio on its own thread, used from synchronous `main` (no
//! runtime here), then an `AsyncThreadedPool` used from another executor. The body is shared
//! with the other runtimes, in `common/threaded.rs`.
//!
//! Run it with `cargo run --example threaded_tokio --features tokio`.

#[path = "common/threaded.rs"]
mod threaded;

use async_taskpool::ThreadRuntime;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // INFO, plus the pool's per-task `Started`/`Ended` lines: DEBUG events of their own target.
    use tracing_subscriber::prelude::*;
    let filter: tracing_subscriber::filter::Targets = "info,async_taskpool::task=debug"
        .parse()
        .expect("a valid filter");
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .with(filter)
        .init();
    // The tasks may use tokio's timer: they run inside the pool's tokio runtime.
    threaded::run(ThreadRuntime::TokioCurrentThread, |d| {
        Box::pin(tokio::time::sleep(d))
    })
}

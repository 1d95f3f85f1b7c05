//! A `ThreadedPool` running tokio on its own thread, used from synchronous `main` (no
//! runtime here), then an `AsyncThreadedPool` used from another executor. The body is shared
//! with the other runtimes, in `common/threaded.rs`.
//!
//! Run it with `cargo run --example threaded_tokio --features tokio`.

#[path = "common/threaded.rs"]
mod threaded;

use async_taskpool::ThreadRuntime;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();
    // The tasks may use tokio's timer: they run inside the pool's tokio runtime.
    threaded::run(ThreadRuntime::TokioCurrentThread, |d| {
        Box::pin(tokio::time::sleep(d))
    })
}

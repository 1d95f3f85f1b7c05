//! A `ThreadedPool` running smol on its own thread, used from synchronous `main`, then an
//! `AsyncThreadedPool` used from another executor. The body is shared with the other
//! runtimes, in `common/threaded.rs`.
//!
//! Run it with `cargo run --example threaded_smol --features smol`.

#[path = "common/threaded.rs"]
mod threaded;

use async_taskpool::ThreadRuntime;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();
    threaded::run(ThreadRuntime::Smol, |d| {
        Box::pin(async move {
            smol::Timer::after(d).await;
        })
    })
}

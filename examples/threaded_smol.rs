//! A `ThreadedPool` running smol on its own thread, used from synchronous `main`, then an
//! `AsyncThreadedPool` used from another executor. The body is shared with the other
//! runtimes, in `common/threaded.rs`.
//!
//! Run it with `cargo run --example threaded_smol --features smol`.

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
    threaded::run(ThreadRuntime::Smol, |d| {
        Box::pin(async move {
            smol::Timer::after(d).await;
        })
    })
}

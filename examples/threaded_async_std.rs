//! A `ThreadedPool` whose thread runs the pool's loop on async-std, used from synchronous
//! `main`, then an `AsyncThreadedPool` used from another executor. The body is shared with
//! the other runtimes, in `common/threaded.rs`.
//!
//! async-std is discontinued upstream (its runtime is deprecated): prefer `threaded_smol`.
//!
//! Run it with `cargo run --example threaded_async_std --features async-std`.

#[path = "common/threaded.rs"]
mod threaded;

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
    #[allow(deprecated)]
    let runtime = async_taskpool::ThreadRuntime::AsyncStd;
    threaded::run(runtime, |d| Box::pin(async_std::task::sleep(d)))
}

//! `BackgroundTask` and `PeriodicTask` on async-std: a heartbeat, a producer stopped by its
//! guard, a restartable job, and a failure reported to `join`. The body is shared with the
//! other runtimes, in `common/background.rs`.
//!
//! async-std is discontinued upstream (its adapter is deprecated): prefer `background_smol`.
//!
//! Run it with `cargo run --example background_async_std --features async-std`.

#[path = "common/background.rs"]
mod background;

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
    let spawner = async_taskpool::runtime::AsyncStdSpawner::new();
    async_std::task::block_on(background::run(spawner))
}

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
    tracing_subscriber::fmt().with_target(false).init();
    #[allow(deprecated)]
    let spawner = async_taskpool::runtime::AsyncStdSpawner::new();
    async_std::task::block_on(background::run(spawner))
}

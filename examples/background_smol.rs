//! `BackgroundTask` and `PeriodicTask` on smol: a heartbeat, a producer stopped by its guard,
//! a restartable job, and a failure reported to `join`. The body is shared with the other
//! runtimes, in `common/background.rs`.
//!
//! Run it with `cargo run --example background_smol --features smol`.

#[path = "common/background.rs"]
mod background;

use async_taskpool::runtime::SmolSpawner;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();
    smol::block_on(background::run(SmolSpawner::global()))
}

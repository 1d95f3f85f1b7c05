//! A `TaskPool` limited to 3 tasks on smol: `apply` two copies of one job, then a "starmap"
//! (`map` over argument tuples, at most 2 at once) whose results come in input order, then
//! `gather_and_close`. The body is shared with the other runtimes, in `common/advanced.rs`.
//!
//! Run it with `cargo run --example advanced_smol --features smol`.

#[path = "common/advanced.rs"]
mod advanced;

use async_taskpool::runtime::SmolSpawner;

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
    smol::block_on(advanced::run(SmolSpawner::global()))
}

//! A `SimpleTaskPool` of counting workers on smol: start 3, start 1 more, stop the 2 newest,
//! then gather the rest. The body is shared with the other runtimes, in `common/simple.rs`.
//!
//! Run it with `cargo run --example simple_smol --features smol`.

#[path = "common/simple.rs"]
mod simple;

use async_taskpool::runtime::SmolSpawner;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();
    smol::block_on(simple::run(SmolSpawner::global()))
}

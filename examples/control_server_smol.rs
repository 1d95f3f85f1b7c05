//! A SimpleTaskPool of queue workers on smol, steerable from outside through a control
//! server on 127.0.0.1:9999 (or the address given as the first argument), until Ctrl-C or
//! `--for SECONDS`. The body is shared with the other runtimes, in `common/control_server.rs`.
//!
//! Run it with `cargo run --example control_server_smol --features smol,control`, and from
//! another terminal `cargo run --features cli --bin taskpool-ctl -- tcp 127.0.0.1 9999`.

#[path = "common/control_server.rs"]
mod control_server;

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
    smol::block_on(control_server::run(SmolSpawner::global()))
}

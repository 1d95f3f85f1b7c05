//! A SimpleTaskPool of queue workers on tokio, steerable from outside through a control
//! server on 127.0.0.1:9999 (or the address given as the first argument), until Ctrl-C or
//! `--for SECONDS`. The body is shared with the other runtimes, in `common/control_server.rs`.
//!
//! Run it with `cargo run --example control_server_tokio --features tokio,control`, and from
//! another terminal `cargo run --features cli --bin taskpool-ctl -- tcp 127.0.0.1 9999`.

#[path = "common/control_server.rs"]
mod control_server;

use async_taskpool::runtime::TokioSpawner;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_target(false).init();
    control_server::run(TokioSpawner::current()).await
}

//! A recursive crawler on tokio: page tasks fetch their links with `exec` from inside the
//! pool, which runs each child nested in its caller's slot, so a pool smaller than the
//! crawl's fan-out never waits for itself. The body is shared with the other runtimes, in
//! `common/recursive_crawl.rs`.
//!
//! Run it with `cargo run --example recursive_crawl_tokio --features tokio`.

#[path = "common/recursive_crawl.rs"]
mod recursive_crawl;

use async_taskpool::runtime::TokioSpawner;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    recursive_crawl::run(TokioSpawner::current()).await
}

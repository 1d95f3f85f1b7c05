//! A recursive crawler on async_std: page tasks fetch their links with `exec` from inside the
//! pool, which runs each child nested in its caller's slot, so a pool smaller than the
//! crawl's fan-out never waits for itself. The body is shared with the other runtimes, in
//! `common/recursive_crawl.rs`.
//!
//! Run it with `cargo run --example recursive_crawl_async_std --features async-std`.

#[path = "common/recursive_crawl.rs"]
mod recursive_crawl;

#[allow(deprecated)]
use async_taskpool::runtime::AsyncStdSpawner;

#[allow(deprecated)]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    async_std::task::block_on(recursive_crawl::run(AsyncStdSpawner::new()))
}

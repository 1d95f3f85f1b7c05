//! One pattern at a time, for profilers, on tokio current-thread: `raw` (tokio spawn, then
//! await every handle), `raw-loop` (spawn and await, one at a time), `exec` (`exec` in a
//! loop), `spawn` (`spawn().await` each, then await every handle), `queued`
//! (`spawn_queued`, then await every handle) or `map` (`map` over `0..N` with `C` workers,
//! default 1000, every result read).
//!
//! ```text
//! cargo bench --bench profile --features tokio --no-run
//! N=20000 ROUNDS=1 LIMIT=1000 valgrind --tool=callgrind target/release/deps/profile-* queued
//! ```
//! Instruction counts are the steady measure on a shared machine; wall time is in `throughput`.

use async_taskpool::{runtime::TokioSpawner, TaskPool};
use futures::StreamExt;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mode = std::env::args().nth(1).unwrap_or_default();
    let workers: usize = std::env::var("C")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..rounds {
            let pool = match std::env::var("LIMIT").ok().and_then(|v| v.parse().ok()) {
                Some(l) => TaskPool::builder(TokioSpawner::current())
                    .limit(l)
                    .build()
                    .unwrap(),
                None => TaskPool::new(TokioSpawner::current()),
            };
            let t = Instant::now();
            if mode == "raw" {
                let hs: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
                for h in hs {
                    h.await.unwrap();
                }
            } else if mode == "raw-loop" {
                for i in 0..n {
                    tokio::spawn(async move { i }).await.unwrap();
                }
            } else if mode == "exec" {
                for i in 0..n {
                    pool.exec(async move { i }).await.unwrap();
                }
            } else if mode == "spawn" {
                let mut hs = Vec::with_capacity(n as usize);
                for i in 0..n {
                    hs.push(pool.spawn(async move { i }).await.unwrap());
                }
                for h in hs {
                    h.await.unwrap();
                }
            } else if mode == "map" {
                let results = pool.map(0..n, workers, |i| async move { i }).unwrap();
                assert_eq!(results.count().await as u64, n);
            } else {
                let hs: Vec<_> = (0..n)
                    .map(|i| pool.spawn_queued(async move { i }).unwrap())
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            }
            println!("{mode} {:.0}", t.elapsed().as_nanos() as f64 / n as f64);
        }
    });
}

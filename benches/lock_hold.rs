//! How long the pool's state lock is held and waited for, per task, as worker threads and
//! producers are added: tokio multi-thread with 1, 2 and 8 worker threads, 1 and 4 producer
//! tasks, `spawn_queued` and `map_unordered` of ready tasks at limit 1000. The figures and
//! what they say about 16 and 64 cores are in `docs/contention.md`.
//!
//! ```text
//! RUSTFLAGS="--cfg taskpool_lock_timing" cargo bench --bench lock_hold --features tokio
//! RUSTFLAGS="--cfg taskpool_lock_timing" cargo bench --bench lock_hold --features tokio -- --quick
//! ```
//!
//! The timing build reads the clock twice per section, which adds to each hold (about 20-40
//! ns here): compare the rows with each other, not with an uninstrumented build. Without the
//! cfg this bench only says how to build it.

#[cfg(taskpool_lock_timing)]
fn main() {
    use async_taskpool::{lock_timing, runtime::TokioSpawner, TaskPool};
    use futures::StreamExt;
    use std::time::Instant;

    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 4_000 } else { 400_000 };
    println!(
        "| pattern | worker threads | producers | ns/task (wall) | sections/task | hold, mean ns \
         | hold, max µs | wait, mean ns | waits > 1 µs | lock held, % of wall |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mode in ["spawn_queued", "map_unordered"] {
        for workers in [1usize, 2, 8] {
            for producers in [1usize, 4] {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                let wall = rt.block_on(async move {
                    let pool = TaskPool::builder(TokioSpawner::current())
                        .limit(1000)
                        .build()
                        .expect("limit 1000 is valid");
                    let _ = lock_timing::take();
                    let t0 = Instant::now();
                    let per = n / producers;
                    let mut producing = Vec::new();
                    for _ in 0..producers {
                        let pool = pool.clone();
                        producing.push(tokio::spawn(async move {
                            if mode == "spawn_queued" {
                                let handles: Vec<_> = (0..per)
                                    .map(|i| pool.spawn_queued(async move { i }).unwrap())
                                    .collect();
                                for h in handles {
                                    h.await.unwrap();
                                }
                            } else {
                                let group = pool
                                    .build_group()
                                    .unordered()
                                    .map(0..per, 1000, |i| async move { i })
                                    .unwrap();
                                assert_eq!(group.count().await, per);
                            }
                        }));
                    }
                    for p in producing {
                        p.await.unwrap();
                    }
                    pool.join().await.unwrap();
                    t0.elapsed()
                });
                let t = lock_timing::take();
                let per_section = |ns: u64| ns as f64 / t.sections.max(1) as f64;
                println!(
                    "| {mode} | {workers} | {producers} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1}% | {:.0}% |",
                    wall.as_nanos() as f64 / n as f64,
                    t.sections as f64 / n as f64,
                    per_section(t.held_ns),
                    t.max_held_ns as f64 / 1000.0,
                    per_section(t.waited_ns),
                    t.waited_over_1us as f64 * 100.0 / t.sections.max(1) as f64,
                    t.held_ns as f64 * 100.0 / wall.as_nanos() as f64,
                );
            }
        }
    }
}

#[cfg(not(taskpool_lock_timing))]
fn main() {
    eprintln!(
        "lock_hold: build with RUSTFLAGS=\"--cfg taskpool_lock_timing\" to time the pool's \
         state lock (see docs/contention.md)"
    );
}

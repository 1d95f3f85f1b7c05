//! Memory that must not grow with the work: a `map` over a long input holds what its
//! `num_concurrent` workers need, whatever the input's length, and a task waiting in the
//! queue costs a bounded number of bytes beside its future.
//!
//! Counted with a counting global allocator (live heap bytes as requested), on a
//! current-thread runtime so every run allocates the same. One test at a time: the counter
//! is the whole binary's.

#[path = "common/counting_alloc.rs"]
#[allow(dead_code)]
mod counting_alloc;

use async_taskpool::{runtime::TokioSpawner, TaskPool};
use counting_alloc::{live, peak_during};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

/// The counter is shared by the whole binary: its tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn map_peak(rt: &tokio::runtime::Runtime, items: u64, unordered: bool) -> usize {
    let (peak, ()) = peak_during(|| {
        rt.block_on(async {
            let pool = TaskPool::new(TokioSpawner::current());
            let b = pool.build_group();
            let b = if unordered { b.unordered() } else { b };
            let group = b.map(0..items, 1000, |i| async move { i }).unwrap();
            let summary = group.join().await.unwrap();
            assert_eq!(summary.completed, items);
        })
    });
    peak
}

#[test]
fn a_maps_peak_memory_does_not_grow_with_its_input() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    for unordered in [false, true] {
        // Long enough that every one of the 1,000 workers pulls batches from the input.
        let short = map_peak(&rt, 20_000, unordered);
        let long = map_peak(&rt, 400_000, unordered);
        assert!(
            long as f64 <= short as f64 * 1.05,
            "map (unordered: {unordered}) peaked at {long} bytes over 400,000 items against \
             {short} over 20,000: its memory grows with its input"
        );
    }
}

/// A future of exactly 64 bytes that completes at once.
struct Payload([u8; 64]);

impl Future for Payload {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        std::hint::black_box(&self.0);
        Poll::Ready(())
    }
}

#[test]
fn a_queued_task_costs_a_bounded_number_of_bytes_beside_its_future() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 100_000;
    runtime().block_on(async {
        let pool = TaskPool::builder(TokioSpawner::current())
            .limit(1)
            .build()
            .unwrap();
        let blocker = pool.spawn(std::future::pending::<()>()).await.unwrap();
        let before = live();
        for _ in 0..N {
            drop(pool.spawn_queued(Payload([7; 64])).unwrap());
        }
        let beyond = (live() - before) as f64 / N as f64 - 64.0;
        // 89 bytes on 64-bit targets today (BENCHMARKS.md, "Memory"); the bound catches a
        // field or an allocation added to every queued task.
        assert!(
            beyond <= 96.0,
            "a queued task costs {beyond:.1} bytes beside its 64-byte future"
        );
        pool.cancel_all();
        drop(blocker);
        pool.join().await.unwrap();
    });
}

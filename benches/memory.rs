//! Memory, with a counting global allocator (live heap bytes, not RSS):
//!
//! 1. bytes per pending `spawn_queued` task beyond the future's own size (1,000,000 tasks
//!    queued behind a full pool);
//! 2. peak live bytes of a `map` over a lazy iterator of 10,000,000 items at num_concurrent
//!    1,000, against the same map over 10,000 items: the peak must not grow with N.
//!
//! ```text
//! cargo bench --bench memory --features tokio             # full run
//! cargo bench --bench memory --features tokio -- --quick  # 100,000 / 1,000,000 items
//! ```

use async_taskpool::{runtime::TokioSpawner, TaskPool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now =
                    LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
}

/// Peak live bytes above the level at the call, while `f` runs.
fn peak_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let base = live();
    PEAK.store(base, Relaxed);
    let r = f();
    (PEAK.load(Relaxed) - base, r)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("# async-taskpool memory (live heap bytes, counting allocator)\n");

    // 1. Pending spawn_queued tasks.
    let n: usize = if quick { 100_000 } else { 1_000_000 };
    rt.block_on(async {
        let pool = TaskPool::builder(TokioSpawner::current())
            .limit(1)
            .build()
            .unwrap();
        let blocker = pool.spawn(std::future::pending::<()>()).await.unwrap();
        let unit = async {};
        let fut_size = std::mem::size_of_val(&unit);
        drop(unit);
        let before = live();
        for _ in 0..n {
            drop(pool.spawn_queued(async {}).unwrap());
        }
        let per_task = (live() - before) as f64 / n as f64;
        let before_kept = live();
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            handles.push(pool.spawn_queued(async {}).unwrap());
        }
        let per_task_kept = (live() - before_kept) as f64 / n as f64;
        println!("## Pending `spawn_queued` tasks ({n} queued behind a full pool)\n");
        println!("| what | bytes per pending task |");
        println!("|---|---:|");
        println!("| the future itself (`async {{}}`) | {fut_size} |");
        println!(
            "| pool's cost beyond the future (handles dropped) | {:.1} |",
            per_task - fut_size as f64
        );
        println!(
            "| the same, plus a `Vec` keeping every `TaskHandle` | {:.1} |",
            per_task_kept - fut_size as f64
        );
        println!();
        pool.cancel_all();
        drop(blocker);
        drop(handles);
        pool.join().await.unwrap();
    });

    // 2. map peak vs N.
    let sizes: [u64; 2] = if quick {
        [10_000, 1_000_000]
    } else {
        [10_000, 10_000_000]
    };
    println!("## `map` over a lazy iterator, num_concurrent 1000, results discarded\n");
    println!("| items | peak live bytes during the map |");
    println!("|---:|---:|");
    let mut peaks = Vec::new();
    for items in sizes {
        let (peak, summary) = peak_during(|| {
            rt.block_on(async {
                let pool = TaskPool::new(TokioSpawner::current());
                let g = pool.map(0..items, 1000, |i| async move { i }).unwrap();
                g.join().await.unwrap()
            })
        });
        assert_eq!(summary.completed, items);
        println!("| {items} | {peak} |");
        peaks.push(peak as f64);
    }
    println!(
        "\npeak at {} items / peak at {} items = {:.3}",
        sizes[1],
        sizes[0],
        peaks[1] / peaks[0]
    );
}

//! Stress with a leak check, on the multi-thread runtimes (tokio multi-thread, smol global).
//!
//! Several producers submit N tasks at once (spawn_queued, spawn().await, try_spawn): ~10%
//! are cancelled, ~1% panic, ~1% time out, the rest complete; a map of N/10 items runs beside
//! them; one producer changes the limit about every 2,000 submissions (1 to unlimited).
//! Afterwards the counters are exact, and the live heap (a counting global allocator) is back
//! to where it was, within a small bound, both while the idle pool lives (the queue, task
//! table and result buffers give back their peak capacity) and once it is dropped: no task,
//! permit, listener or result is kept.
//!
//! Two more tests drop public waits (`spawn`, `exec`, `join`, `until_closed`,
//! `gather_and_close`, `Group::join`) mid-await thousands of times and check that a second
//! batch adds nothing to the live heap: no listener, waiter or queue entry outlives its future.
//!
//! N is 100,000 in debug builds and 1,000,000 in release; `TASKPOOL_STRESS_TASKS=N` sets it
//! (`TASKPOOL_STRESS_TASKS=1000000 cargo test --release --all-features --test stress`).
#![cfg(any(feature = "tokio", feature = "smol"))]

#[path = "common/counting_alloc.rs"]
#[allow(dead_code)]
mod counting_alloc;
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

use async_taskpool::runtime::Spawner;
use async_taskpool::{PoolError, TaskPool};
use counting_alloc::live;
use futures::StreamExt;
use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Counter, Sp};

/// Heap measurements are global: one test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

const PRODUCERS: usize = 4;
const PANIC_MSG: &str = "stress: intended panic";
/// Live bytes allowed above the starting level afterwards (runtime queues and caches that
/// grew under load). A leak of one small record per task would be megabytes.
const LEAK_BOUND: usize = 256 * 1024;

fn tasks() -> usize {
    std::env::var("TASKPOOL_STRESS_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Complete,
    Cancel,
    Panic,
    TimeOut,
}

/// ~1% panic, ~1% time out, ~10% cancelled, the rest complete.
fn kind(i: usize) -> Kind {
    match i % 100 {
        0 => Kind::Panic,
        1 => Kind::TimeOut,
        2..=11 => Kind::Cancel,
        _ => Kind::Complete,
    }
}

#[derive(Default)]
struct Tally {
    completed: AtomicUsize,
    panicked: AtomicUsize,
}

fn quiet_intended_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PANIC_MSG) {
                default(info);
            }
        }));
    });
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

fn job(i: usize, tally: &Arc<Tally>) -> Job {
    let tally = tally.clone();
    match kind(i) {
        Kind::Complete => Box::pin(async move {
            if i % 3 == 0 {
                support::yield_n(1).await;
            }
            tally.completed.fetch_add(1, SeqCst);
        }),
        Kind::Panic => Box::pin(async move {
            tally.panicked.fetch_add(1, SeqCst);
            std::panic::panic_any(PANIC_MSG)
        }),
        // Cancelled right after submission, or timing out: never finishes by itself.
        Kind::Cancel | Kind::TimeOut => Box::pin(pending()),
    }
}

async fn produce(pool: TaskPool, me: usize, n: usize, tally: Arc<Tally>) {
    const LIMITS: [Option<usize>; 6] = [Some(1), Some(64), Some(7), None, Some(2), Some(256)];
    let mut submitted = 0;
    for i in (me..n).step_by(PRODUCERS) {
        let k = kind(i);
        let b = pool.build_task();
        let b = if k == Kind::TimeOut {
            b.timeout(Duration::from_millis(1))
        } else {
            b
        };
        let handle = match i % 16 {
            // Waits for room: never for a task this producer has yet to cancel, as those are
            // cancelled right after submission.
            0 => b.spawn(job(i, &tally)).await.unwrap(),
            1 => match b.try_spawn(job(i, &tally)) {
                Ok(h) => h,
                Err(e) => {
                    assert!(matches!(e.error(), PoolError::Full { .. }), "{e}");
                    let b = pool.build_task();
                    let b = if k == Kind::TimeOut {
                        b.timeout(Duration::from_millis(1))
                    } else {
                        b
                    };
                    b.spawn_queued(e.into_future()).unwrap()
                }
            },
            _ => b.spawn_queued(job(i, &tally)).unwrap(),
        };
        if k == Kind::Cancel {
            if i % 2 == 0 {
                handle.cancel().unwrap();
            } else {
                pool.cancel([handle.id()]).unwrap();
            }
        }
        // Dropping the handle detaches the task; the counters tell how it ended.
        drop(handle);
        submitted += 1;
        if me == 0 && submitted % 500 == 0 {
            pool.set_limit(LIMITS[(submitted / 500) % LIMITS.len()])
                .unwrap();
        }
        if submitted % 64 == 0 {
            support::yield_n(1).await;
        }
    }
}

async fn stress(sp: Sp) {
    quiet_intended_panics();
    let n = tasks();
    let m = n / 10;
    // Warm the runtime up (threads, timer, queues) before taking the baseline.
    {
        let pool = TaskPool::builder(sp.clone()).limit(8).build().unwrap();
        let warm = Arc::new(Tally::default());
        produce(pool.clone(), 0, 2_000, warm).await;
        pool.gather_and_close().await.unwrap();
    }
    let base = live();

    let pool = TaskPool::builder(sp.clone()).limit(64).build().unwrap();
    let tally = Arc::new(Tally::default());
    let done = Counter::new();
    for me in 0..PRODUCERS {
        let (pool, tally, done) = (pool.clone(), tally.clone(), done.clone());
        sp.spawn(Box::pin(async move {
            produce(pool, me, n, tally).await;
            done.bump();
        }))
        .unwrap();
    }
    let mapped = pool
        .map_unordered(0..m, 16, |i| async move {
            if i % 5 == 0 {
                support::yield_n(1).await;
            }
            i
        })
        .unwrap();
    let sum: usize = mapped
        .map(Result::unwrap)
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(sum, (0..m).sum::<usize>());
    done.wait_for(PRODUCERS).await;
    pool.gather_and_close().await.unwrap();

    let st = pool.stats();
    let count = |k| (0..n).filter(|&i| kind(i) == k).count() as u64;
    assert_eq!(st.submitted, (n + m) as u64, "{st:?}");
    assert_eq!(st.ended, (n + m) as u64, "{st:?}");
    assert_eq!(st.cancelled, count(Kind::Cancel), "{st:?}");
    assert_eq!(st.panicked, count(Kind::Panic), "{st:?}");
    assert_eq!(st.timed_out, count(Kind::TimeOut), "{st:?}");
    assert_eq!(tally.completed.load(SeqCst) as u64, count(Kind::Complete));
    assert_eq!(tally.panicked.load(SeqCst) as u64, count(Kind::Panic));
    assert_eq!((st.running, st.queued, st.ending), (0, 0, 0));
    // The pool gives back what its queue, task table and group buffers grew to at the peak
    // backlog while it lives, and everything once dropped.
    let idle = settled_heap(&sp, base).await;
    assert!(
        idle <= base + LEAK_BOUND,
        "a live, idle pool kept {} bytes after {} tasks (from {base} to {idle})",
        idle.saturating_sub(base),
        n + m
    );
    drop(pool);
    let after = settled_heap(&sp, base).await;
    assert!(
        after <= base + LEAK_BOUND,
        "live heap grew by {} bytes over {} tasks (from {base} to {after})",
        after.saturating_sub(base),
        n + m
    );
    eprintln!(
        "stress: {} tasks, live heap {base} -> {idle} (pool idle) -> {after} bytes (dropped)",
        n + m,
    );
}

/// The live heap once it is back within [`LEAK_BOUND`] of `base`, or after 2 s.
///
/// A runtime task that retired its pool task may still be finishing on another thread,
/// holding the pool: nothing signals when the runtime frees it, so this polls, bounded.
async fn settled_heap(sp: &Sp, base: usize) -> usize {
    let mut now = live();
    for _ in 0..200 {
        if now <= base + LEAK_BOUND {
            break;
        }
        sp.sleep(Duration::from_millis(10)).await;
        now = live();
    }
    now
}

/// Polls `fut` once (it must wait) and drops it.
async fn drop_after_one_poll<F: Future>(fut: F) {
    let mut fut = std::pin::pin!(fut);
    assert!(futures::poll!(fut.as_mut()).is_pending());
}

async fn dropped_waits(sp: Sp) {
    let rounds = if cfg!(debug_assertions) {
        5_000
    } else {
        50_000
    };
    let pool = TaskPool::builder(sp.clone()).limit(1).build().unwrap();
    let one_round = |pool: TaskPool, gate: support::Gate| async move {
        drop_after_one_poll(pool.spawn(async {})).await;
        drop_after_one_poll(pool.exec(async {})).await;
        drop_after_one_poll(pool.join()).await;
        drop_after_one_poll(pool.until_closed()).await;
        drop_after_one_poll(pool.gather_and_close()).await;
        pool.unlock();
        let g = gate.clone();
        let group = pool.apply(1, move || {
            let g = g.clone();
            async move { g.wait().await }
        });
        drop_after_one_poll(group.unwrap().join()).await;
    };
    // One batch: a task holds the only slot, so every wait waits; then the gate opens.
    let batch = |pool: TaskPool| async move {
        let gate = support::Gate::new();
        let g = gate.clone();
        let holder = pool.spawn(async move { g.wait().await }).await.unwrap();
        for _ in 0..rounds {
            one_round(pool.clone(), gate.clone()).await;
        }
        gate.open();
        holder.await.unwrap();
        pool.join().await.unwrap();
        // Every spawn and exec dropped above was withdrawn or cancelled; the items ran.
        let st = pool.stats();
        assert_eq!(st.cancelled, 2 * rounds as u64);
        assert_eq!(st.ended, 3 * rounds as u64 + 1);
        assert_eq!((st.running, st.queued, st.ending), (0, 0, 0));
        pool.flush().await.unwrap();
    };
    // The first batch grows the pool's queue, table and group registry to their high-water
    // mark (kept as capacity); a second one must not add to it.
    batch(pool.clone()).await;
    let base = live();
    batch(pool.clone()).await;
    let after = live();
    assert!(
        after <= base + LEAK_BOUND,
        "live heap grew by {} bytes over {rounds} rounds of dropped waits",
        after.saturating_sub(base)
    );
    eprintln!("dropped waits: {rounds} rounds, live heap {base} -> {after} bytes");
}

#[cfg(feature = "tokio")]
#[test]
fn dropped_waits_leak_nothing_tokio() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::flavour::tokio_multi_thread(dropped_waits);
}

#[cfg(feature = "smol")]
#[test]
fn dropped_waits_leak_nothing_smol() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::flavour::smol_global(dropped_waits);
}

#[cfg(feature = "tokio")]
#[test]
fn stress_tokio_multi_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::flavour::tokio_multi_thread(stress);
}

#[cfg(feature = "smol")]
#[test]
fn stress_smol_global() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::flavour::smol_global(stress);
}

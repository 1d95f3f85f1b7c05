//! Queue deadlines (`max_queue_wait`) on tokio's paused clock: exact virtual times, no
//! sleeps of real time. The same behaviours on every runtime flavour, without exact times,
//! are in the main crate's `tests/conformance/policies.rs`.

#[path = "../../tests/conformance/support.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use async_taskpool::{
    runtime::{Spawner, TokioSpawner},
    ExecError, TaskError, TaskPool, TryMapError,
};
use futures::{StreamExt, TryStreamExt};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{Counter, CountingSpawner, DropFlag, Gate, Log};
use tokio::time::{sleep, Instant};

const SEC: Duration = Duration::from_secs(1);

fn pool(limit: usize) -> TaskPool {
    TaskPool::builder(TokioSpawner::current())
        .limit(limit)
        .build()
        .unwrap()
}

/// Counts callback runs by kind.
#[derive(Clone, Default)]
struct Calls {
    end: Arc<AtomicUsize>,
    cancel: Arc<AtomicUsize>,
}

impl Calls {
    fn get(&self) -> (usize, usize) {
        (
            self.end.load(Ordering::SeqCst),
            self.cancel.load(Ordering::SeqCst),
        )
    }
}

/// A queued task is shed at its deadline, not before and not later: its future never runs
/// (it is dropped), `on_end` runs once and `on_cancel` not, it counts as shed, and its handle
/// says so. A task that starts before its deadline runs normally.
#[tokio::test(start_paused = true)]
async fn a_queued_task_is_shed_at_its_deadline() {
    let p = pool(1);
    let t0 = Instant::now();
    let busy = p.spawn_queued(sleep(10 * SEC)).unwrap();
    let calls = Calls::default();
    let (polled, dropped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (c1, c2, pl, guard) = (
        calls.end.clone(),
        calls.cancel.clone(),
        polled.clone(),
        DropFlag(dropped.clone()),
    );
    let late = p
        .build_task()
        .max_queue_wait(3 * SEC)
        .on_end(move |_| {
            c1.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .on_cancel(move |_| {
            c2.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .spawn_queued(async move {
            let _guard = guard;
            pl.store(true, Ordering::SeqCst);
        })
        .unwrap();
    let id = late.id();
    match late.await {
        Err(TaskError::Shed { id: shed, waited }) => {
            assert_eq!((shed, waited), (id, 3 * SEC));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed(), 3 * SEC, "shed at its deadline");
    assert!(!polled.load(Ordering::SeqCst) && dropped.load(Ordering::SeqCst));
    assert_eq!(calls.get(), (1, 0));
    let stats = p.stats();
    assert_eq!(
        (stats.shed, stats.ended, stats.cancelled, stats.queued),
        (1, 1, 0, 0)
    );
    // Shed: a cancel finds it ended.
    assert!(p.cancel([id]).is_err());

    // One that gets its slot in time runs.
    let on_time = p
        .build_task()
        .max_queue_wait(10 * SEC)
        .spawn_queued(async { "ran" })
        .unwrap();
    assert_eq!(on_time.await.unwrap(), "ran");
    assert_eq!(t0.elapsed(), 10 * SEC);
    busy.await.unwrap();
    p.join().await.unwrap();
    assert_eq!(p.stats().shed, 1);
}

/// A deadline's timer lives only while its task waits: once the task starts, the timer ends
/// at once (the runtime has nothing left to wake up for), and it never sheds anything later.
#[tokio::test(start_paused = true)]
async fn a_deadline_timer_ends_when_its_task_starts() {
    let (sp, counts) = CountingSpawner::wrap(Arc::new(TokioSpawner::current()));
    let p = TaskPool::builder(sp).limit(1).build().unwrap();
    let t0 = Instant::now();
    let gate = Gate::new();
    let g = gate.clone();
    let first = p.spawn_queued(async move { g.wait().await }).unwrap();
    let second = p
        .build_task()
        .max_queue_wait(3600 * SEC)
        .spawn_queued(async { 2 })
        .unwrap();
    gate.open();
    first.await.unwrap();
    assert_eq!(second.await.unwrap(), 2);
    p.gather_and_close().await.unwrap();
    // Every runtime task (runners and the timer) ends without an hour passing.
    counts.all_ended().await;
    assert!(t0.elapsed() < SEC, "the timer waited {:?}", t0.elapsed());
    assert_eq!(p.stats().shed, 0);
}

/// `spawn().await` waiting for room, and `exec`, see the shed too; the pool's default applies
/// to tasks that set none, and a task's own overrides it.
#[tokio::test(start_paused = true)]
async fn spawn_exec_and_the_pool_default() {
    let p = TaskPool::builder(TokioSpawner::current())
        .limit(1)
        .max_queue_wait(2 * SEC)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let busy = p.spawn_queued(sleep(5 * SEC)).unwrap();
    let waited = p.spawn(async { 1 }).await.unwrap();
    assert_eq!(
        t0.elapsed(),
        2 * SEC,
        "spawn returned when the task was shed"
    );
    assert!(waited.await.unwrap_err().is_shed());
    let exec = p.exec(async { 2 }).await.unwrap_err();
    assert!(
        matches!(exec, ExecError::Task(TaskError::Shed { .. })),
        "{exec}"
    );
    assert_eq!(t0.elapsed(), 4 * SEC);
    let patient = p
        .build_task()
        .max_queue_wait(60 * SEC)
        .spawn_queued(async { 3 })
        .unwrap();
    assert_eq!(patient.await.unwrap(), 3);
    assert_eq!(t0.elapsed(), 5 * SEC);
    busy.await.unwrap();
    assert_eq!(p.stats().shed, 2);
}

/// A group's deadline counts from its submission: items that started go on, the rest end as
/// shed when its workers reach them (back to back, without calling the closure), each with
/// its own id, result in input order and one `on_end`; the summary and the pool count them.
#[tokio::test(start_paused = true)]
async fn a_group_sheds_what_did_not_start_by_its_deadline() {
    let p = pool(2);
    let t0 = Instant::now();
    let called = Counter::new();
    let ends = Counter::new();
    let (c, e) = (called.clone(), ends.clone());
    let group = p
        .build_group()
        .max_queue_wait(Duration::from_millis(4500))
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .map(0..50u32, 2, move |x| {
            c.bump();
            async move {
                sleep(SEC).await;
                x
            }
        })
        .unwrap();
    let results: Vec<_> = group.collect().await;
    assert_eq!(t0.elapsed(), 5 * SEC, "the last items started at 4 s");
    assert_eq!(called.get(), 10, "the closure is not called for shed items");
    assert_eq!(results.len(), 50, "every item has its result");
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(x) => assert!(i < 10 && *x == i as u32),
            Err(TaskError::Shed { waited, .. }) => {
                assert!(i >= 10);
                assert_eq!(*waited, Duration::from_millis(4500));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ends.get(), 50, "on_end once per item, shed or not");
    let stats = p.stats();
    assert_eq!((stats.ended, stats.shed), (50, 40));
}

/// A group shed while every slot is held gets a worker at once, over the limit, to shed its
/// items: they never run, so they count as ending, not running, and the pool never shows
/// more tasks running than its limit (seen by an item's destructor, which runs as the item
/// is shed). The model test found `running` at 2 with a limit of 1.
#[tokio::test(start_paused = true)]
async fn shed_items_never_count_as_running() {
    struct Probe {
        pool: TaskPool,
        seen: Log<(usize, usize)>,
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            let st = self.pool.stats();
            self.seen.push((st.running, st.ending));
        }
    }
    let p = pool(1);
    let busy = p.spawn_queued(sleep(10 * SEC)).unwrap();
    let seen = Log::default();
    let items: Vec<Probe> = (0..3)
        .map(|_| Probe {
            pool: p.clone(),
            seen: seen.clone(),
        })
        .collect();
    let group = p
        .build_group()
        .max_queue_wait(2 * SEC)
        .map(items, 1, |_probe| async {})
        .unwrap();
    let results: Vec<_> = group.collect().await;
    assert!(
        results.iter().all(|r| r.as_ref().unwrap_err().is_shed()),
        "{results:?}"
    );
    assert_eq!(
        seen.get(),
        [(1, 1); 3],
        "each shed item is ending while the busy task runs"
    );
    assert_eq!(p.stats().running, 1);
    busy.await.unwrap();
}

/// An item that waits for its group's turn without a slot (its input was not ready) is shed
/// at the deadline at once; items arriving after the deadline are shed as they come.
#[tokio::test(start_paused = true)]
async fn a_stream_group_sheds_waiting_and_late_items() {
    let p = pool(1);
    let t0 = Instant::now();
    let busy = p.spawn_queued(sleep(10 * SEC)).unwrap();
    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    let group = p
        .build_group()
        .max_queue_wait(2 * SEC)
        .map_stream(rx, 1, |x| async move { x })
        .unwrap();
    tx.unbounded_send(1).unwrap();
    let mut group = group;
    let first = group.next().await.unwrap();
    assert!(first.unwrap_err().is_shed());
    assert_eq!(
        t0.elapsed(),
        2 * SEC,
        "the waiting item is shed at the deadline"
    );
    sleep(SEC).await;
    tx.unbounded_send(2).unwrap();
    drop(tx);
    let second = group.next().await.unwrap();
    assert!(second.unwrap_err().is_shed());
    assert!(group.next().await.is_none());
    assert!(
        t0.elapsed() < 10 * SEC,
        "shed items did not wait for a slot"
    );
    busy.await.unwrap();
}

/// Deadlines compose with priorities and `try_map`: a low priority group starved by a high
/// one is shed at its deadline, and a `try_map` group stops at its first shed item.
#[tokio::test(start_paused = true)]
async fn deadlines_compose_with_priorities_and_try_map() {
    let p = TaskPool::builder(TokioSpawner::current())
        .limit(2)
        .ageing(1_000_000)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let high = p
        .build_group()
        .priority(1)
        .map(0..20u32, 2, |_| sleep(SEC))
        .unwrap();
    let low = p
        .build_group()
        .max_queue_wait(3 * SEC)
        .map(0..5u32, 2, |_| sleep(SEC))
        .unwrap();
    let summary = low.join().await.unwrap();
    assert_eq!((summary.completed, summary.shed), (0, 5));
    assert!(t0.elapsed() <= 4 * SEC, "{:?}", t0.elapsed());
    high.join().await.unwrap();

    let p = pool(1);
    let busy = p.spawn_queued(sleep(10 * SEC)).unwrap();
    let tried = p
        .build_group()
        .max_queue_wait(SEC)
        .try_map(0..100u32, 1, |x| async move { Ok::<_, String>(x) })
        .unwrap();
    match tried.try_collect::<Vec<_>>().await {
        Err(TryMapError::Task(e)) => assert!(e.is_shed(), "{e}"),
        other => panic!("{other:?}"),
    }
    busy.await.unwrap();
    p.join().await.unwrap();
    assert!(p.stats().shed >= 1);
}

/// Shedding is counted once per task, and a group that finished before its deadline sheds
/// nothing (its timer is gone with it).
#[tokio::test(start_paused = true)]
async fn nothing_is_shed_after_it_started_or_ended() {
    let (sp, counts) = CountingSpawner::wrap(Arc::new(TokioSpawner::current()));
    let p = TaskPool::builder(sp.clone()).limit(4).build().unwrap();
    let t0 = Instant::now();
    let log: Log<u32> = Log::default();
    let l = log.clone();
    let group = p
        .build_group()
        .max_queue_wait(3600 * SEC)
        .map(0..10u32, 4, move |x| {
            let l = l.clone();
            async move { l.push(x) }
        })
        .unwrap();
    assert_eq!(group.join().await.unwrap().completed, 10);
    p.gather_and_close().await.unwrap();
    counts.all_ended().await;
    assert!(t0.elapsed() < SEC, "the group's timer outlived it");
    assert_eq!(p.stats().shed, 0);
    assert_eq!(log.get().len(), 10);
    let _ = sp.runtime_name();
}

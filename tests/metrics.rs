//! The `metrics` feature against a real recorder (metrics-util's `DebuggingRecorder`): the
//! exact names, labels and values of a small run, on tokio and on smol.
#![cfg(all(feature = "metrics", any(feature = "tokio", feature = "smol")))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

use async_taskpool::{TaskError, TaskPool};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Gate, Sp};

/// A metric as the test names it: its name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// Takes a snapshot: counters and gauges by series (a snapshot resets them: later ones hold
/// what changed since), histograms as their sample counts.
fn snapshot(s: &Snapshotter) -> BTreeMap<Series, f64> {
    s.snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(samples) => samples.len() as f64,
            };
            ((key.name().to_owned(), labels), value)
        })
        .collect()
}

/// Sums snapshots until `done` holds of the sums. Counters and gauges are recorded before
/// the section that ends a task (so before `join` can return), but duration samples only
/// right after it (they are taken under the pool's lock, and a recorder may not run there):
/// one may land just after `join` returned. Bounded: about 2 s at most.
async fn settled(
    s: &Snapshotter,
    sp: &Sp,
    done: impl Fn(&BTreeMap<Series, f64>) -> bool,
) -> BTreeMap<Series, f64> {
    let mut sums = snapshot(s);
    for _ in 0..2000 {
        if done(&sums) {
            break;
        }
        sp.sleep(Duration::from_millis(1)).await;
        for (k, v) in snapshot(s) {
            *sums.entry(k).or_default() += v;
        }
    }
    sums
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.push(("pool".into(), "m".into()));
    labels.sort();
    (name.to_owned(), labels)
}

/// The series that are not zero, as `name{labels} value` lines: one assert shows them all.
fn nonzero(m: &BTreeMap<Series, f64>) -> Vec<String> {
    m.iter()
        .filter(|(_, v)| **v != 0.0)
        .map(|((name, labels), v)| {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{name}{{{}}} {v}", labels.join(","))
        })
        .collect()
}

/// An expected series: name, labels besides `pool`, value.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

fn lines(expected: &[Expected<'_>]) -> Vec<String> {
    let mut m = BTreeMap::new();
    for (name, labels, v) in expected {
        m.insert(series(name, labels), *v);
    }
    nonzero(&m)
}

async fn a_small_run_is_counted_exactly(sp: Sp) {
    let recorder = DebuggingRecorder::new();
    let snapshots = recorder.snapshotter();
    // The pool registers its metrics with the recorder in scope when it is built.
    let pool = metrics::with_local_recorder(&recorder, || {
        TaskPool::builder(sp.clone())
            .name("m")
            .limit(1)
            .track_durations(true)
            .build()
            .unwrap()
    });

    // One task holds the only slot; another waits behind it.
    let (gate, running) = (Gate::new(), Gate::new());
    let (g, r) = (gate.clone(), running.clone());
    let held = pool
        .spawn(async move {
            r.open();
            g.wait().await
        })
        .await
        .unwrap();
    running.wait().await;
    let queued = pool.spawn_queued(async { 1 }).unwrap();
    // Refused for want of room, then because the pool is locked.
    assert!(pool.try_spawn(async {}).is_err());
    pool.lock();
    assert!(pool.try_spawn(async {}).is_err());
    pool.unlock();
    let mid = snapshot(&snapshots);
    assert_eq!(
        nonzero(&mid),
        lines(&[
            ("taskpool_limit", &[], 1.0),
            // The held task's wait (0 s: it started at once).
            ("taskpool_queue_wait_seconds", &[], 1.0),
            ("taskpool_tasks_queued", &[], 1.0),
            ("taskpool_tasks_rejected_total", &[("reason", "full")], 1.0),
            (
                "taskpool_tasks_rejected_total",
                &[("reason", "locked")],
                1.0
            ),
            ("taskpool_tasks_running", &[], 1.0),
            ("taskpool_tasks_started_total", &[("kind", "task")], 1.0),
            ("taskpool_tasks_submitted_total", &[("kind", "task")], 2.0),
        ])
    );
    // Every series is registered up front, also those still at zero.
    assert!(mid.contains_key(&series(
        "taskpool_tasks_ended_total",
        &[("kind", "map"), ("outcome", "timed_out")]
    )));
    assert!(mid.contains_key(&series("taskpool_run_seconds", &[])));

    gate.open();
    held.await.unwrap();
    assert_eq!(queued.await.unwrap(), 1);
    // A panic, a timeout, a cancel while queued, and a map of three.
    pool.set_limit(2).unwrap();
    let panicked = pool.spawn(async { panic!("boom") }).await.unwrap();
    assert!(matches!(panicked.await, Err(TaskError::Panicked { .. })));
    let slow = pool
        .build_task()
        .timeout(Duration::from_millis(10))
        .exec(std::future::pending::<()>());
    assert!(slow.await.is_err());
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let g = Gate::new();
            let h = pool
                .spawn_queued({
                    let g = g.clone();
                    async move { g.wait().await }
                })
                .unwrap();
            (g, h)
        })
        .collect();
    let doomed = pool.spawn_queued(async {}).unwrap();
    doomed.cancel().unwrap();
    assert!(matches!(doomed.await, Err(TaskError::Cancelled { .. })));
    for (g, h) in blockers {
        g.open();
        h.await.unwrap();
    }
    pool.map(0..3, 2, |i| async move { i })
        .unwrap()
        .join()
        .await
        .unwrap();
    pool.join().await.unwrap();

    // What changed since the first snapshot.
    let runs = series("taskpool_run_seconds", &[]);
    let end = settled(&snapshots, &sp, |m| m.get(&runs) >= Some(&9.0)).await;
    assert_eq!(
        nonzero(&end),
        lines(&[
            ("taskpool_limit", &[], 2.0),
            // Every task that started since (queued, panic, timeout, 2 blockers, 3 items)...
            ("taskpool_queue_wait_seconds", &[], 8.0),
            // ...and every one that ran and ended (the held one too; not the cancelled one).
            ("taskpool_run_seconds", &[], 9.0),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "map"), ("outcome", "ok")],
                3.0
            ),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "task"), ("outcome", "cancelled")],
                1.0
            ),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "task"), ("outcome", "ok")],
                4.0
            ),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "task"), ("outcome", "panicked")],
                1.0
            ),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "task"), ("outcome", "timed_out")],
                1.0
            ),
            // The gauges moved back to where they were before the first snapshot reset them.
            ("taskpool_tasks_queued", &[], -1.0),
            ("taskpool_tasks_running", &[], -1.0),
            ("taskpool_tasks_started_total", &[("kind", "map")], 3.0),
            ("taskpool_tasks_started_total", &[("kind", "task")], 5.0),
            ("taskpool_tasks_submitted_total", &[("kind", "map")], 3.0),
            ("taskpool_tasks_submitted_total", &[("kind", "task")], 5.0),
        ])
    );
    let stats = pool.stats();
    assert_eq!(stats.submitted, 10);
    assert_eq!((stats.ended, stats.running, stats.queued), (10, 0, 0));
}

/// `SimpleTaskPool::start` items are counted as submitted and queued when `start` is called,
/// as `stats()` counts them; a pool built without a recorder records nothing anywhere, and a
/// `BackgroundTask` (a pool of its own per task) registers no series.
async fn start_items_and_pools_without_a_recorder(sp: Sp) {
    let recorder = DebuggingRecorder::new();
    let snapshots = recorder.snapshotter();
    let gate = Gate::new();
    let g = gate.clone();
    let pool = metrics::with_local_recorder(&recorder, || {
        async_taskpool::SimpleTaskPool::builder(sp.clone(), move || {
            let g = g.clone();
            async move { g.wait().await }
        })
        .name("m")
        .limit(1)
        .build()
        .unwrap()
    });
    // Built outside the recorder's scope: its handles do nothing.
    let silent = TaskPool::builder(sp.clone()).name("m").build().unwrap();
    silent.exec(async {}).await.unwrap();
    let background = metrics::with_local_recorder(&recorder, || {
        async_taskpool::BackgroundTask::spawn(sp.clone(), async { 7 })
    });
    assert_eq!(background.join().await.unwrap(), 7);

    let group = pool.start(3).unwrap();
    let stop = pool.stop(1);
    assert_eq!(stop.len(), 1, "the newest queued one");
    gate.open();
    let summary = group.join().await.unwrap();
    assert_eq!((summary.completed, summary.cancelled), (2, 1));
    pool.join().await.unwrap();
    assert_eq!(
        nonzero(&snapshot(&snapshots)),
        lines(&[
            ("taskpool_limit", &[], 1.0),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "start"), ("outcome", "cancelled")],
                1.0
            ),
            (
                "taskpool_tasks_ended_total",
                &[("kind", "start"), ("outcome", "ok")],
                2.0
            ),
            ("taskpool_tasks_started_total", &[("kind", "start")], 2.0),
            ("taskpool_tasks_submitted_total", &[("kind", "start")], 3.0),
        ]),
        "queued and running went up and back to 0; no durations without track_durations"
    );
}

#[cfg(feature = "tokio")]
mod tokio_current_thread {
    #[test]
    fn a_small_run_is_counted_exactly() {
        crate::support::flavour::tokio_current_thread(|sp| {
            crate::support::guarded(|sp| Box::pin(crate::a_small_run_is_counted_exactly(sp)), sp)
        });
    }

    #[test]
    fn start_items_and_pools_without_a_recorder() {
        crate::support::flavour::tokio_current_thread(|sp| {
            crate::support::guarded(
                |sp| Box::pin(crate::start_items_and_pools_without_a_recorder(sp)),
                sp,
            )
        });
    }
}

#[cfg(feature = "tokio")]
mod tokio_multi_thread {
    #[test]
    fn a_small_run_is_counted_exactly() {
        crate::support::flavour::tokio_multi_thread(|sp| {
            crate::support::guarded(|sp| Box::pin(crate::a_small_run_is_counted_exactly(sp)), sp)
        });
    }
}

#[cfg(feature = "smol")]
mod smol_global {
    #[test]
    fn a_small_run_is_counted_exactly() {
        crate::support::flavour::smol_global(|sp| {
            crate::support::guarded(|sp| Box::pin(crate::a_small_run_is_counted_exactly(sp)), sp)
        });
    }

    #[test]
    fn start_items_and_pools_without_a_recorder() {
        crate::support::flavour::smol_global(|sp| {
            crate::support::guarded(
                |sp| Box::pin(crate::start_items_and_pools_without_a_recorder(sp)),
                sp,
            )
        });
    }
}

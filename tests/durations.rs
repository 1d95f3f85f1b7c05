//! Queue waits and run times (`PoolBuilder::track_durations`): per task in `tasks()`,
//! percentiles per pool in `stats()` and per group in `group_stats()`, on every runtime
//! flavour compiled in.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

use async_taskpool::{PoolError, TaskPool, TaskState};
use futures::StreamExt;
use std::time::Duration;
use support::{Gate, Sp};

/// Long enough to tell apart from the pool's own bookkeeping; only ever a lower bound.
const HELD: Duration = Duration::from_millis(30);

fn pool(sp: &Sp, limit: usize) -> TaskPool {
    TaskPool::builder(sp.clone())
        .limit(limit)
        .track_durations(true)
        .build()
        .unwrap()
}

/// A task held at a gate shows its run time so far; the one queued behind it its wait so
/// far; once both ended, the pool's percentiles count both, the first having run at least
/// as long as it was held and the second having waited at least that long.
async fn tasks_show_their_waits_and_run_times(sp: Sp) {
    let pool = pool(&sp, 1);
    let gate = Gate::new();
    let g = gate.clone();
    let first = pool.spawn(async move { g.wait().await }).await.unwrap();
    let second = pool.spawn_queued(async {}).unwrap();
    sp.sleep(HELD).await;
    let tasks = pool.tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].state, TaskState::Running);
    assert!(tasks[0].run_time.unwrap() >= HELD, "{:?}", tasks[0]);
    assert!(tasks[0].queue_wait.unwrap() < tasks[0].run_time.unwrap());
    assert_eq!(tasks[1].state, TaskState::Queued);
    assert_eq!(tasks[1].run_time, None, "it has not started");
    assert!(tasks[1].queue_wait.unwrap() >= HELD, "{:?}", tasks[1]);
    assert!(tasks[1].age().unwrap() >= HELD);
    let running = pool.stats();
    assert_eq!(running.queue_wait.unwrap().count, 1, "one task started");
    assert_eq!(running.run_time.unwrap().count, 0, "none ended");

    gate.open();
    first.await.unwrap();
    second.await.unwrap();
    let stats = pool.stats();
    let wait = stats.queue_wait.unwrap();
    let run = stats.run_time.unwrap();
    assert_eq!((wait.count, run.count), (2, 2));
    assert!(
        wait.max >= HELD,
        "the second waited for the first: {wait:?}"
    );
    assert!(run.max >= HELD, "the first ran while held: {run:?}");
    assert!(wait.p50 <= wait.p90 && wait.p90 <= wait.p99 && wait.p99 <= wait.max);

    // The percentiles follow the ended counters: a flush starts them afresh.
    pool.flush().await.unwrap();
    let flushed = pool.stats();
    assert_eq!(flushed.queue_wait.unwrap().count, 0);
    assert_eq!(flushed.run_time.unwrap().count, 0);
}

/// Without `track_durations`, nothing is measured and nothing is shown.
async fn durations_are_off_by_default(sp: Sp) {
    let pool = TaskPool::builder(sp.clone()).limit(1).build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let first = pool.spawn(async move { g.wait().await }).await.unwrap();
    let second = pool.spawn_queued(async {}).unwrap();
    for t in pool.tasks() {
        assert_eq!((t.queue_wait, t.run_time, t.age()), (None, None, None));
    }
    gate.open();
    first.await.unwrap();
    second.await.unwrap();
    let stats = pool.stats();
    assert_eq!((stats.queue_wait, stats.run_time), (None, None));
    let json = serde_json::to_value(&stats).unwrap();
    assert!(json["queue_wait"].is_null());
    let map = pool.map(0..3, 1, |i| async move { i }).unwrap();
    let name = map.name().to_owned();
    map.join().await.unwrap();
    let g = pool.group_stats(&name).unwrap();
    assert_eq!(
        (g.done, g.total, g.queue_wait, g.run_time),
        (3, Some(3), None, None)
    );
}

/// A group's own stats: progress (done of total for an input of known length, no total for
/// one that does not know its length until it ends) and its items' percentiles, apart from
/// the pool's other work.
async fn groups_have_progress_and_percentiles(sp: Sp) {
    let pool = pool(&sp, 4);
    let gate = Gate::new();
    let g = gate.clone();
    let known = pool
        .build_group()
        .name("known")
        .map(0..10u32, 2, move |i| {
            let g = g.clone();
            async move {
                if i >= 4 {
                    g.wait().await;
                }
                i
            }
        })
        .unwrap();
    // Four items ended, two hold the group's slots at the gate, four wait in the input.
    let mut results = known;
    for _ in 0..4 {
        results.next().await.unwrap().unwrap();
    }
    let mid = pool.group_stats("known").unwrap();
    assert_eq!(mid.done, 4);
    assert_eq!(mid.total, Some(10));
    assert_eq!(
        mid.done + mid.live + mid.queued + mid.backlog,
        10,
        "{mid:?}"
    );
    assert!(!mid.cancelled);
    assert_eq!(mid.run_time.unwrap().count, 4);
    gate.open();
    let rest: Vec<u32> = results.map(Result::unwrap).collect().await;
    assert_eq!(rest, (4..10).collect::<Vec<_>>());
    let done = pool.group_stats("known").unwrap();
    assert_eq!(
        (done.done, done.total, done.live, done.backlog),
        (10, Some(10), 0, 0)
    );
    assert_eq!(done.queue_wait.unwrap().count, 10);
    assert_eq!(done.run_time.unwrap().count, 10);

    // A stream of unknown length: no total until it ended.
    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    let streamed = pool
        .build_group()
        .name("streamed")
        .map_stream(rx, 2, |i| async move { i })
        .unwrap();
    tx.unbounded_send(1).unwrap();
    let mut streamed = streamed;
    assert_eq!(streamed.next().await.unwrap().unwrap(), 1);
    let open = pool.group_stats("streamed").unwrap();
    assert_eq!((open.done, open.total), (1, None));
    drop(tx);
    assert!(streamed.next().await.is_none());
    let ended = pool.group_stats("streamed").unwrap();
    assert_eq!((ended.done, ended.total), (1, Some(1)));
    assert_eq!(ended.run_time.unwrap().count, 1);
    // The pool's percentiles cover every group's items.
    assert_eq!(pool.stats().run_time.unwrap().count, 11);

    assert!(matches!(
        pool.group_stats("no-such-group"),
        Err(PoolError::GroupNotFound { .. })
    ));
}

/// `SimpleTaskPool::start` items wait from the `start` call: queued ones show it.
async fn reserved_items_wait_from_their_start(sp: Sp) {
    let gate = Gate::new();
    let g = gate.clone();
    let pool = async_taskpool::SimpleTaskPool::builder(sp.clone(), move || {
        let g = g.clone();
        async move { g.wait().await }
    })
    .limit(1)
    .track_durations(true)
    .build()
    .unwrap();
    let group = pool.start(3).unwrap();
    sp.sleep(HELD).await;
    let tasks = pool.tasks();
    assert_eq!(tasks.len(), 3);
    for t in &tasks[1..] {
        assert_eq!(t.state, TaskState::Queued);
        assert!(t.queue_wait.unwrap() >= HELD, "{t:?}");
        assert_eq!(t.run_time, None);
    }
    let stats = pool.as_task_pool().group_stats(group.name()).unwrap();
    assert_eq!((stats.queued, stats.live, stats.total), (2, 1, Some(3)));
    gate.open();
    let name = group.name().to_owned();
    assert_eq!(group.join().await.unwrap().completed, 3);
    let stats = pool.as_task_pool().group_stats(&name).unwrap();
    let wait = stats.queue_wait.unwrap();
    assert_eq!(wait.count, 3);
    assert!(wait.max >= HELD, "{wait:?}");
}

/// The JSON shape the control server and the dashboard read: seconds as floats.
async fn durations_serialize_as_seconds(sp: Sp) {
    let pool = pool(&sp, 1);
    let gate = Gate::new();
    let g = gate.clone();
    let held = pool.spawn(async move { g.wait().await }).await.unwrap();
    let task = serde_json::to_value(&pool.tasks()[0]).unwrap();
    assert!(task["queue_wait_secs"].as_f64().unwrap() >= 0.0, "{task}");
    assert!(task["run_time_secs"].as_f64().unwrap() >= 0.0, "{task}");
    gate.open();
    held.await.unwrap();
    let stats = serde_json::to_value(pool.stats()).unwrap();
    for key in ["count", "p50", "p90", "p99", "max"] {
        assert!(stats["run_time"][key].is_number(), "{key} in {stats}");
    }
    let back: async_taskpool::PoolStats = serde_json::from_value(stats).unwrap();
    assert_eq!(back.run_time.unwrap().count, 1);
}

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            tasks_show_their_waits_and_run_times,
            durations_are_off_by_default,
            groups_have_progress_and_percentiles,
            reserved_items_wait_from_their_start,
            durations_serialize_as_seconds,
        );
    };
    (@emit $run:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $run(|sp| Box::pin(crate::$case(sp)));
            }
        )*
    };
}

on_every_flavour!(for_each_case);

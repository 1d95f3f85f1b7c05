//! The conformance cases. Each takes the spawner of the runtime it runs on.
//!
//! Synchronisation is by gates and counters, never by sleeping; the only sleeps are where
//! the passage of time is the behaviour under test (timeouts), with generous margins.

use crate::support::*;
use async_taskpool::{
    ExecError, PoolError, PoolStats, SimpleTaskPool, TaskError, TaskId, TaskPool, TaskState,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn pool(sp: &Sp) -> TaskPool {
    TaskPool::new(sp.clone())
}

fn limited(sp: &Sp, limit: usize) -> TaskPool {
    TaskPool::builder(sp.clone()).limit(limit).build().unwrap()
}

/// A task that holds its slot until `gate` opens.
fn blocker(gate: &Gate) -> impl std::future::Future<Output = ()> + Send + 'static {
    let gate = gate.clone();
    async move { gate.wait().await }
}

pub async fn spawn_returns_output(sp: Sp) {
    let p = pool(&sp);
    let h = p.spawn(async { 41 + 1 }).await.unwrap();
    assert_eq!(h.await.unwrap(), 42);
    let q = p.spawn_queued(async { "queued" }).unwrap();
    assert_eq!(q.await.unwrap(), "queued");
    p.join().await.unwrap();
    assert_eq!(p.num_ended(), 2);
    assert_eq!(p.num_running(), 0);
    assert_eq!(p.num_queued(), 0);
}

pub async fn ids_are_sequential_and_names_follow_the_pool(sp: Sp) {
    assert!(pool(&sp).name().starts_with("TaskPool-"));
    let p = TaskPool::builder(sp.clone())
        .name("crawler")
        .build()
        .unwrap();
    let gate = Gate::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let g = gate.clone();
        handles.push(
            p.spawn_queued(async move {
                g.wait().await;
                async_taskpool::current_task_id()
            })
            .unwrap(),
        );
    }
    let named = p
        .build_task()
        .name("special")
        .spawn_queued(blocker(&gate))
        .unwrap();
    let ids: Vec<u64> = handles.iter().map(|h| h.id().get()).collect();
    assert_eq!(ids, [0, 1, 2]);
    assert_eq!(named.id(), TaskId::new(3));
    let names: Vec<String> = p.tasks().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "crawler_Task-0",
            "crawler_Task-1",
            "crawler_Task-2",
            "special"
        ]
    );
    gate.open();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), Some(TaskId::new(i as u64)));
    }
    named.await.unwrap();
    assert_eq!(async_taskpool::current_task_id(), None);
}

pub async fn exec_returns_output_and_errors(sp: Sp) {
    let p = pool(&sp);
    assert_eq!(p.exec(async { 5 }).await.unwrap(), 5);
    let err = p
        .exec(async {
            if true {
                panic!("boom");
            }
            1
        })
        .await
        .unwrap_err();
    match err {
        ExecError::Task(TaskError::Panicked { message, .. }) => assert_eq!(message, "boom"),
        other => panic!("unexpected {other:?}"),
    }
    p.lock();
    let err = p.exec(async { 1 }).await.unwrap_err();
    assert!(
        matches!(err, ExecError::Pool(PoolError::Locked { .. })),
        "{err}"
    );
}

pub async fn limit_is_never_exceeded(sp: Sp) {
    let p = limited(&sp, 3);
    let conc = Concurrency::default();
    let done = Counter::new();
    // Several producers at once, some waiting for room, some queueing.
    for producer in 0..4 {
        let (p, conc, done) = (p.clone(), conc.clone(), done.clone());
        sp.spawn(Box::pin(async move {
            for i in 0..15 {
                let c = conc.clone();
                let task = async move {
                    let _in = c.enter();
                    yield_n(3).await;
                };
                if (producer + i) % 2 == 0 {
                    drop(p.spawn(task).await.unwrap());
                } else {
                    drop(p.spawn_queued(task).unwrap());
                }
            }
            done.bump();
        }))
        .unwrap();
    }
    done.wait_for(4).await;
    p.join().await.unwrap();
    assert!(conc.max() <= 3, "saw {} running at once", conc.max());
    assert!(conc.max() >= 1);
    assert_eq!(p.num_ended(), 60);
}

pub async fn queued_work_starts_in_fifo_order(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.spawn_queued(blocker(&gate)).unwrap();
    let log = Log::default();
    for i in 0..10 {
        let log = log.clone();
        drop(p.spawn_queued(async move { log.push(i) }).unwrap());
    }
    assert_eq!(p.num_queued(), 10);
    gate.open();
    first.await.unwrap();
    p.join().await.unwrap();
    assert_eq!(log.get(), (0..10).collect::<Vec<_>>());
}

pub async fn spawn_waits_for_room(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let _first = p.spawn(blocker(&gate)).await.unwrap();
    let mut second = Box::pin(p.spawn(async { 7 }));
    assert!(futures::poll!(&mut second).is_pending());
    assert_eq!(p.num_queued(), 1);
    assert!(p.is_full());
    gate.open();
    let handle = second.await.unwrap();
    assert_eq!(handle.await.unwrap(), 7);
}

pub async fn dropped_spawn_withdraws_the_task(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let _first = p.spawn(blocker(&gate)).await.unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut waiting = Box::pin(p.spawn(async move { r.store(true, Ordering::SeqCst) }));
    assert!(futures::poll!(&mut waiting).is_pending());
    drop(waiting);
    assert_eq!(p.num_queued(), 0);
    gate.open();
    p.join().await.unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(p.num_cancelled(), 1);
    assert_eq!(p.exec(async { 1 }).await.unwrap(), 1, "no slot leaked");
}

pub async fn try_spawn_gives_the_future_back(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.try_spawn(blocker(&gate)).unwrap();
    let refused = p.try_spawn(async { 3 }).unwrap_err();
    assert!(matches!(refused.error(), PoolError::Full { limit: 1, .. }));
    assert!(refused.to_string().contains("full"));
    assert_eq!(refused.into_future().await, 3);
    gate.open();
    first.await.unwrap();
    p.join().await.unwrap();
    assert!(p.try_spawn(async { 4 }).unwrap().await.unwrap() == 4);
}

pub async fn cancel_running_task(sp: Sp) {
    let p = pool(&sp);
    let started = Counter::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let log = Log::default();
    let (s, d) = (started.clone(), dropped.clone());
    let (l1, l2) = (log.clone(), log.clone());
    let h = p
        .build_task()
        .on_cancel(move |id| {
            let l = l1.clone();
            async move { l.push(format!("cancel {id}")) }
        })
        .on_end(move |id| {
            let l = l2.clone();
            async move { l.push(format!("end {id}")) }
        })
        .spawn(async move {
            let _flag = DropFlag(d);
            s.bump();
            pending::<()>().await
        })
        .await
        .unwrap();
    started.wait_for(1).await;
    assert_eq!(p.num_running(), 1);
    h.cancel().unwrap();
    let err = h.await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the future was dropped before the handle resolved"
    );
    assert_eq!(log.get(), ["cancel 0", "end 0"]);
    assert_eq!(p.num_cancelled(), 1);
    assert_eq!(p.num_running(), 0);
}

/// A task that starts on the runner of a task before it (limit 1, same future type, so the
/// runner takes it up in place) and then waits can still be cancelled: the runner's waker
/// is left with the new task too, though it is the waker the first task left.
pub async fn cancel_a_task_that_took_over_a_runner(sp: Sp) {
    async fn job(gate: Option<Gate>, started: Counter) {
        started.bump();
        match gate {
            Some(gate) => gate.wait().await,
            // Pending once, with the runner's waker left for a cancel.
            None => yield_n(1).await,
        }
    }
    let p = limited(&sp, 1);
    let (first_started, second_started, never) = (Counter::new(), Counter::new(), Gate::new());
    let first = p.spawn_queued(job(None, first_started.clone())).unwrap();
    let second = p
        .spawn_queued(job(Some(never), second_started.clone()))
        .unwrap();
    first.await.unwrap();
    second_started.wait_for(1).await;
    second.cancel().unwrap();
    let err = second.await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!((first_started.get(), p.num_cancelled()), (1, 1));
    p.join().await.unwrap();
}

pub async fn cancel_queued_task_releases_slot_and_fires_callbacks(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.spawn(blocker(&gate)).await.unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let log = Log::default();
    let (r, l1, l2) = (ran.clone(), log.clone(), log.clone());
    let queued = p
        .build_task()
        .on_cancel(move |_| {
            let l = l1.clone();
            async move { l.push("cancel") }
        })
        .on_end(move |_| {
            let l = l2.clone();
            async move { l.push("end") }
        })
        .spawn_queued(async move { r.store(true, Ordering::SeqCst) })
        .unwrap();
    p.cancel([queued.id()]).unwrap();
    assert_eq!(p.num_queued(), 0);
    // Resolves while the pool is still full: a cancelled queued task needs no slot.
    assert!(queued.await.unwrap_err().is_cancelled());
    assert_eq!(log.get(), ["cancel", "end"]);
    assert!(!ran.load(Ordering::SeqCst));
    gate.open();
    first.await.unwrap();
    assert_eq!(
        p.exec(async { 1 }).await.unwrap(),
        1,
        "the slot was not leaked"
    );
    assert_eq!(p.num_cancelled(), 1);
}

pub async fn cancel_before_first_poll_releases_slot(sp: Sp) {
    let p = limited(&sp, 1);
    let ends = Counter::new();
    let e = ends.clone();
    let gate = Gate::new();
    let h = p
        .build_task()
        .on_end(move |_| {
            let e = e.clone();
            async move { e.bump() }
        })
        .spawn(blocker(&gate))
        .await
        .unwrap();
    // On a single-threaded runtime the task has not been polled yet.
    h.cancel().unwrap();
    assert!(h.await.unwrap_err().is_cancelled());
    assert_eq!(ends.get(), 1);
    assert_eq!(p.num_cancelled(), 1);
    assert_eq!(p.exec(async { 2 }).await.unwrap(), 2, "the slot came back");
}

pub async fn cancel_is_atomic(sp: Sp) {
    let p = pool(&sp);
    let ended = p.spawn(async {}).await.unwrap();
    let ended_id = ended.id();
    ended.await.unwrap();
    let gate = Gate::new();
    let hold = Gate::new();
    let h2 = hold.clone();
    let a = p
        .build_task()
        .on_cancel(move |_| {
            let h = h2.clone();
            async move { h.wait().await }
        })
        .spawn(blocker(&gate))
        .await
        .unwrap();
    let b = p.spawn(blocker(&gate)).await.unwrap();

    let err = p.cancel([a.id(), TaskId::new(999)]).unwrap_err();
    assert_eq!(
        err,
        PoolError::TaskNotFound {
            pool: p.name().into(),
            id: TaskId::new(999)
        }
    );
    let err = p.cancel([a.id(), ended_id]).unwrap_err();
    assert!(matches!(err, PoolError::AlreadyEnded { id, .. } if id == ended_id));
    assert_eq!(p.num_cancelled(), 0);
    assert!(
        !a.is_finished() && !b.is_finished(),
        "nothing was cancelled"
    );

    p.cancel([a.id()]).unwrap();
    // Its cancel callback is holding it in the ending phase.
    let err = p.cancel([a.id()]).unwrap_err();
    assert!(matches!(err, PoolError::AlreadyCancelled { .. }), "{err}");
    hold.open();
    assert!(a.await.unwrap_err().is_cancelled());
    gate.open();
    b.await.unwrap();
}

pub async fn cancel_group_stops_pulling(sp: Sp) {
    let p = pool(&sp);
    let started = Counter::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let (s, pl) = (started.clone(), pulled.clone());
    let never = Gate::new();
    let items = (0..).inspect(move |_| {
        pl.fetch_add(1, Ordering::SeqCst);
    });
    let group = p
        .map(items, 2, move |_i: u64| {
            let (s, g) = (s.clone(), never.clone());
            async move {
                s.bump();
                g.wait().await
            }
        })
        .unwrap();
    started.wait_for(2).await;
    assert_eq!(group.ids().len(), 2);
    let name = group.name().to_owned();
    assert!(p.has_group(&name));
    p.cancel_group(&name).unwrap();
    assert!(!p.has_group(&name));
    let results: Vec<_> = group.collect().await;
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().is_cancelled()));
    p.join().await.unwrap();
    // Workers of a group that competes with nobody pull a batch ahead (at most 32 items per
    // pull, one pull per worker at a time): pulling stopped within that.
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled <= 2 * 32 + 1,
        "pulling stopped: {pulled} items pulled"
    );
    let err = p.cancel_group(&name).unwrap_err();
    assert!(matches!(err, PoolError::GroupNotFound { .. }));
}

pub async fn cancel_all_cancels_everything(sp: Sp) {
    let p = limited(&sp, 2);
    let gate = Gate::new();
    let mut handles = Vec::new();
    for _ in 0..5 {
        handles.push(p.spawn_queued(blocker(&gate)).unwrap());
    }
    let g = gate.clone();
    let group = p
        .map(0..100, 4, move |_| {
            let g = g.clone();
            async move { g.wait().await }
        })
        .unwrap();
    p.cancel_all();
    p.join().await.unwrap();
    for h in handles {
        assert!(h.await.unwrap_err().is_cancelled());
    }
    let summary = group.join().await.unwrap();
    assert_eq!(summary.completed, 0);
    assert_eq!(p.num_running() + p.num_queued(), 0);
    assert!(p.stats().groups.is_empty());
    assert!(p.num_cancelled() >= 5);
    // The pool stays usable.
    assert_eq!(p.exec(async { 3 }).await.unwrap(), 3);
}

pub async fn panics_are_isolated(sp: Sp) {
    let p = limited(&sp, 1);
    let h = p
        .spawn(async {
            if true {
                panic!("kaboom {}", 7);
            }
        })
        .await
        .unwrap();
    match h.await.unwrap_err() {
        TaskError::Panicked {
            message, payload, ..
        } => {
            assert_eq!(message, "kaboom 7");
            assert!(payload.take().is_some());
            assert!(payload.take().is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(p.stats().panicked, 1);
    assert_eq!(
        p.exec(async { 1 }).await.unwrap(),
        1,
        "slot released after a panic"
    );
}

pub async fn panicking_callback_is_contained(sp: Sp) {
    let p = pool(&sp);
    let h = p
        .build_task()
        .on_end(|_| async {
            if true {
                panic!("callback boom");
            }
        })
        .spawn(async { 5 })
        .await
        .unwrap();
    assert_eq!(h.await.unwrap(), 5);
    p.join().await.unwrap();
    assert_eq!(p.exec(async { 6 }).await.unwrap(), 6);
}

pub async fn timeout_fires(sp: Sp) {
    let p = pool(&sp);
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let h = p
        .build_task()
        .timeout(Duration::from_millis(50))
        .spawn(async move {
            let _f = DropFlag(d);
            pending::<()>().await
        })
        .await
        .unwrap();
    let err = h.await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(p.stats().timed_out, 1);
}

pub async fn timeout_excludes_queue_time(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.spawn(blocker(&gate)).await.unwrap();
    let queued = p
        .build_task()
        .timeout(Duration::from_millis(100))
        .spawn_queued(async { 9 })
        .unwrap();
    // Queued for three times its timeout: that time must not count.
    sp.sleep(Duration::from_millis(300)).await;
    gate.open();
    first.await.unwrap();
    assert_eq!(queued.await.unwrap(), 9);
}

pub async fn lock_refuses_new_work_but_finishes_accepted(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.spawn(blocker(&gate)).await.unwrap();
    let log = Log::default();
    let l = log.clone();
    let group = p
        .map(0..5, 1, move |i| {
            let l = l.clone();
            async move { l.push(i) }
        })
        .unwrap();
    let queued = p.spawn_queued(async { "accepted" }).unwrap();
    p.lock();
    assert!(p.is_locked());
    let locked = |e: &PoolError| matches!(e, PoolError::Locked { .. });
    assert!(locked(&p.spawn_queued(async {}).unwrap_err()));
    assert!(locked(&p.spawn(async {}).await.unwrap_err()));
    assert!(locked(p.try_spawn(async {}).unwrap_err().error()));
    assert!(matches!(
        p.exec(async {}).await,
        Err(ExecError::Pool(PoolError::Locked { .. }))
    ));
    assert!(locked(&p.apply(1, || async {}).unwrap_err()));
    assert!(locked(&p.map(0..1, 1, |_| async {}).unwrap_err()));
    assert!(locked(
        &p.build_group()
            .map_stream(futures::stream::iter(0..1), 1, |_| async {})
            .unwrap_err()
    ));
    assert!(p
        .spawn(async {})
        .await
        .unwrap_err()
        .to_string()
        .contains("unlock"));
    gate.open();
    first.await.unwrap();
    p.join().await.unwrap();
    assert_eq!(
        log.get(),
        [0, 1, 2, 3, 4],
        "the accepted map ran to the end"
    );
    assert_eq!(queued.await.unwrap(), "accepted");
    assert_eq!(group.join().await.unwrap().completed, 5);
    p.unlock();
    assert!(!p.is_locked());
    assert_eq!(p.exec(async { 1 }).await.unwrap(), 1);
}

pub async fn close_is_final(sp: Sp) {
    let p = pool(&sp);
    p.close();
    assert!(p.is_closed());
    assert!(matches!(
        p.spawn_queued(async {}).unwrap_err(),
        PoolError::Closed { .. }
    ));
    p.unlock();
    assert!(matches!(
        p.spawn(async {}).await.unwrap_err(),
        PoolError::Closed { .. }
    ));
    p.until_closed().await;
}

pub async fn set_limit_grows_and_shrinks(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let conc = Concurrency::default();
    let seen = Log::default();
    let mut handles = Vec::new();
    for i in 0..5 {
        let (g, c, s) = (gate.clone(), conc.clone(), seen.clone());
        handles.push(
            p.spawn_queued(async move {
                let _in = c.enter();
                s.push((i, c.now()));
                g.wait().await;
            })
            .unwrap(),
        );
    }
    assert_eq!(p.num_running(), 1);
    p.set_limit(3).unwrap();
    assert_eq!(p.limit(), Some(3));
    assert_eq!(p.num_running(), 3, "growing starts queued work at once");
    assert_eq!(p.num_queued(), 2);
    p.set_limit(1).unwrap();
    assert_eq!(p.num_running(), 3, "shrinking cancels nothing");
    assert!(p.is_full());
    gate.open();
    for h in handles {
        h.await.unwrap();
    }
    let late: Vec<usize> = seen
        .get()
        .into_iter()
        .filter(|(i, _)| *i >= 3)
        .map(|(_, n)| n)
        .collect();
    assert_eq!(late, [1, 1], "after shrinking to 1, queued tasks ran alone");
    assert_eq!(p.num_cancelled(), 0);
    p.set_limit(None).unwrap();
    assert_eq!(p.limit(), None);
}

pub async fn invalid_limits_are_refused(sp: Sp) {
    let err = TaskPool::builder(sp.clone()).limit(0).build().unwrap_err();
    assert!(matches!(err, PoolError::InvalidLimit { value: 0, .. }));
    assert!(err.to_string().contains("at least 1"));
    let p = pool(&sp);
    assert!(matches!(
        p.set_limit(0),
        Err(PoolError::InvalidLimit { .. })
    ));
    assert_eq!(p.limit(), None, "a refused limit changes nothing");
    let err = p.map(0..3, 0, |_| async {}).unwrap_err();
    assert!(matches!(
        err,
        PoolError::InvalidLimit {
            what: "num_concurrent",
            ..
        }
    ));
    assert!(SimpleTaskPool::builder(sp.clone(), || async {})
        .limit(0)
        .build()
        .is_err());
}

pub async fn gather_and_close_waits_for_unpulled_items(sp: Sp) {
    let p = limited(&sp, 2);
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let group = p
        .map(0..50, 3, move |_| {
            let c = c.clone();
            async move {
                yield_n(2).await;
                c.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    let mut queued = Vec::new();
    for _ in 0..10 {
        let c = count.clone();
        queued.push(
            p.spawn_queued(async move {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    drop(group);
    p.gather_and_close().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 60);
    assert!(p.is_closed());
    assert_eq!(p.num_ended(), 60);
    assert!(matches!(
        p.spawn_queued(async {}),
        Err(PoolError::Closed { .. })
    ));
    for h in queued {
        assert!(h.is_finished());
    }
}

pub async fn join_from_own_task_is_an_error(sp: Sp) {
    let p = pool(&sp);
    let inner = p.clone();
    let errors = p
        .exec(async move {
            let join = inner.join().await.unwrap_err();
            let flush = inner.flush().await.unwrap_err();
            let gather = inner.gather_and_close().await.unwrap_err();
            [join, flush, gather]
        })
        .await
        .unwrap();
    for e in &errors {
        assert!(matches!(e, PoolError::CalledFromOwnTask { .. }), "{e}");
    }
    assert!(errors[0].to_string().contains("outside the pool"));
    // Another pool can be joined from inside this one.
    let other = pool(&sp);
    let o = other.clone();
    p.unlock();
    assert!(p.exec(async move { o.join().await }).await.unwrap().is_ok());
}

pub async fn map_keeps_input_order(sp: Sp) {
    let p = pool(&sp);
    let group = p
        .map(0..20usize, 4, |i| async move {
            yield_n((20 - i) % 5).await;
            i * 2
        })
        .unwrap();
    let out: Vec<usize> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
}

pub async fn map_unordered_yields_everything(sp: Sp) {
    let p = pool(&sp);
    let group = p
        .map_unordered(0..20usize, 4, |i| async move {
            yield_n(i % 3).await;
            i
        })
        .unwrap();
    let mut out: Vec<usize> = group.map(Result::unwrap).collect().await;
    out.sort_unstable();
    assert_eq!(out, (0..20).collect::<Vec<_>>());
}

/// Results are published in batches (one consumer wake per worker poll), so each must still
/// arrive while the worker waits on a later item or on its input.
pub async fn map_results_arrive_while_later_items_wait(sp: Sp) {
    let p = pool(&sp);
    let gate = Gate::new();
    let g = gate.clone();
    let mut group = p
        .map(0..10u32, 1, move |i| {
            let g = g.clone();
            async move {
                if i == 5 {
                    g.wait().await;
                }
                i
            }
        })
        .unwrap();
    for want in 0..5 {
        assert_eq!(group.next().await.unwrap().unwrap(), want);
    }
    gate.open();
    let rest: Vec<u32> = group.map(Result::unwrap).collect().await;
    assert_eq!(rest, [5, 6, 7, 8, 9]);

    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    let mut group = p
        .build_group()
        .unordered()
        .map_stream(rx, 4, |x| async move { x * 2 })
        .unwrap();
    for x in 0..3 {
        tx.unbounded_send(x).unwrap();
        assert_eq!(group.next().await.unwrap().unwrap(), x * 2);
    }
    drop(tx);
    assert!(group.next().await.is_none());
}

/// A group held back by the pool's limit runs its items on the worker that holds the slot,
/// not on a fresh runtime task per item, and still lets work queued behind it take its turn.
pub async fn a_group_held_back_by_the_limit_reuses_its_worker(sp: Sp) {
    let (counting, counts) = CountingSpawner::wrap(sp.clone());
    let p = TaskPool::builder(counting).limit(1).build().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let group = p
        .apply(5000, move || {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    let d = done.clone();
    let queued_behind = p
        .spawn_queued(async move { d.load(Ordering::SeqCst) })
        .unwrap();
    let items_before = queued_behind.await.unwrap();
    assert!(
        items_before < 5000,
        "a task queued behind the group waited for all of it"
    );
    assert_eq!(group.join().await.unwrap().completed, 5000);
    let n = counts.spawned();
    assert!(n < 100, "{n} runtime tasks for 5000 items on one slot");
}

/// A map with no group limit on an unlimited pool starts at most one worker per item: each
/// pull used to add as many workers as the input had items left, on top of those already
/// running (2,000 ready items took ~1.2 million runtime tasks and gigabytes of memory).
pub async fn an_unbounded_map_starts_a_worker_per_item_at_most(sp: Sp) {
    const ITEMS: u64 = 2_000;
    let (counting, counts) = CountingSpawner::wrap(sp.clone());
    let p = TaskPool::new(counting);
    let group = p.map(0..ITEMS, usize::MAX, |i| async move { i }).unwrap();
    assert_eq!(group.join().await.unwrap().completed, ITEMS);
    let n = counts.spawned();
    assert!(n <= ITEMS as usize, "{n} runtime tasks for {ITEMS} items");
}

/// A runtime task whose task ended with nothing queued parks for the next task that starts at
/// once, and parked runtime tasks end when the pool goes away.
pub async fn finished_runtime_tasks_park_for_the_next_task(sp: Sp) {
    let (counting, counts) = CountingSpawner::wrap(sp.clone());
    let p = TaskPool::new(counting);
    for i in 0..200u32 {
        let h = p.spawn(async move { i }).await.unwrap();
        assert_eq!(h.await.unwrap(), i);
    }
    assert_eq!(
        counts.spawned(),
        1,
        "spawn then await in a loop reuses one runtime task"
    );
    // A producer refilling a limited pool after it drained reuses the parked ones too.
    let (counting, refill) = CountingSpawner::wrap(sp.clone());
    let q = TaskPool::builder(counting).limit(4).build().unwrap();
    for round in 0..50u32 {
        let hs: Vec<_> = (0..4)
            .map(|i| q.spawn_queued(async move { round * 4 + i }).unwrap())
            .collect();
        for (i, h) in (0..).zip(hs) {
            assert_eq!(h.await.unwrap(), round * 4 + i);
        }
    }
    // At most one per slot: fewer when a task ended (and its runner parked) before the
    // producer submitted the next one, as happens on a loaded machine.
    assert!(
        (1..=4).contains(&refill.spawned()),
        "one runtime task per slot at most, reused every round: {} spawned",
        refill.spawned()
    );
    // Parked runtime tasks hold the pool; closing it (here: dropping it) ends them.
    drop(p);
    drop(q);
    counts.all_ended().await;
    refill.all_ended().await;
}

/// `exec` on the pool's own single-threaded runtime runs a task that finds room inside the
/// awaiting task (no runtime task, the caller's thread); the work queued behind it starts
/// when it ends, and dropping the `exec` future cancels the task and frees its slot. On
/// multi-threaded runtimes (or where the spawner cannot tell: smol) the task runs on a pool
/// runtime task as before, with the same outcomes.
pub async fn exec_on_a_single_threaded_runtime_runs_in_the_caller(sp: Sp) {
    // Not from the runtime's `block_on` future (see `TokioSpawner::is_current_thread`): the
    // checks run in one of its tasks.
    assert!(!sp.is_current_thread(), "never from block_on");
    let (tx, rx) = futures::channel::oneshot::channel();
    let inner = sp.clone();
    sp.spawn(Box::pin(async move {
        exec_in_caller_checks(inner).await;
        let _ = tx.send(());
    }))
    .unwrap();
    rx.await
        .expect("the checks failed in their task (see the panic above)");
}

async fn exec_in_caller_checks(sp: Sp) {
    let here = sp.is_current_thread();
    #[cfg(feature = "tokio")]
    if sp.runtime_name() == "tokio" {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let single = Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread;
        assert_eq!(here, single, "tokio tells its current-thread runtime");
    }
    if sp.runtime_name() != "tokio" {
        assert!(!here, "{} has several threads", sp.runtime_name());
    }
    let (counting, counts) = CountingSpawner::wrap(sp.clone());
    let p = TaskPool::builder(counting).limit(1).build().unwrap();
    for i in 0..100u32 {
        let caller = std::thread::current().id();
        let (out, ran_on) = p
            .exec(async move { (i, std::thread::current().id()) })
            .await
            .unwrap();
        assert_eq!(out, i);
        if here {
            assert_eq!(ran_on, caller, "ran in the caller's task");
        }
    }
    assert_eq!(
        counts.spawned(),
        usize::from(!here),
        "exec in a loop: no runtime task on the pool's runtime, else one, reused"
    );
    // A task queued behind it starts when it ends: its slot goes on.
    let (gate, started) = (Gate::new(), Counter::new());
    let first = {
        let (gate, started) = (gate.clone(), started.clone());
        p.exec(async move {
            started.bump();
            gate.wait().await;
            1
        })
    };
    let second = async {
        started.wait_for(1).await;
        let queued = p.spawn_queued(async { 2 }).unwrap();
        assert!(!queued.is_finished());
        gate.open();
        queued.await.unwrap()
    };
    let (first, second) = futures::join!(first, second);
    assert_eq!((first.unwrap(), second), (1, 2));
    // Dropping the `exec` future cancels its task; its future is dropped, its slot frees.
    let dropped = Counter::new();
    {
        let guard = BumpOnDrop(dropped.clone());
        let mut exec = std::pin::pin!(p.exec(async move {
            let _guard = guard;
            pending::<()>().await
        }));
        assert!(futures::poll!(exec.as_mut()).is_pending());
        assert_eq!(p.stats().running, 1);
    }
    dropped.wait_for(1).await;
    assert_eq!(
        p.exec(async { 3 }).await.unwrap(),
        3,
        "the slot is free again"
    );
    let stats = p.stats();
    assert_eq!((stats.cancelled, stats.running), (1, 0), "{stats:?}");
    // A panic is the task's: the caller gets it as the task's error, the slot frees.
    let err = p.exec(async { panic!("inline boom") }).await.unwrap_err();
    assert!(
        matches!(err, ExecError::Task(TaskError::Panicked { .. })),
        "{err}"
    );
    assert_eq!(p.exec(async { 4 }).await.unwrap(), 4);
    // Its options hold: a timeout ends it (its future dropped), then its callbacks run.
    let (ended, dropped) = (Counter::new(), Counter::new());
    let (e, guard) = (ended.clone(), BumpOnDrop(dropped.clone()));
    let err = p
        .build_task()
        .timeout(Duration::from_millis(20))
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .exec(async move {
            let _guard = guard;
            pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExecError::Task(e) if e.is_timeout()),
        "{err}"
    );
    assert_eq!((ended.get(), dropped.get()), (1, 1));
    assert_eq!(
        p.exec(async { 5 }).await.unwrap(),
        5,
        "the slot is free again"
    );
    assert_eq!(p.stats().timed_out, 1);
}

pub async fn map_respects_group_and_pool_limits(sp: Sp) {
    let p = limited(&sp, 3);
    let (all, g1, g2) = (
        Concurrency::default(),
        Concurrency::default(),
        Concurrency::default(),
    );
    let mk = |mine: Concurrency| {
        let all = all.clone();
        move |_: u32| {
            let (all, mine) = (all.clone(), mine.clone());
            async move {
                let _a = all.enter();
                let _m = mine.enter();
                yield_n(3).await;
            }
        }
    };
    let a = p.map(0..30, 2, mk(g1.clone())).unwrap();
    let b = p.map_unordered(0..30, 2, mk(g2.clone())).unwrap();
    assert_eq!(a.join().await.unwrap().completed, 30);
    assert_eq!(b.join().await.unwrap().completed, 30);
    assert!(
        g1.max() <= 2 && g2.max() <= 2,
        "group limits: {} {}",
        g1.max(),
        g2.max()
    );
    assert!(all.max() <= 3, "pool limit: {}", all.max());
}

pub async fn map_stream_waits_without_a_slot(sp: Sp) {
    let p = limited(&sp, 1);
    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    let group = p
        .build_group()
        .map_stream(rx, 1, |x| async move { x + 1 })
        .unwrap();
    // The input has nothing yet; its worker must not hold the only slot.
    assert_eq!(p.exec(async { 5 }).await.unwrap(), 5);
    tx.unbounded_send(1).unwrap();
    tx.unbounded_send(2).unwrap();
    assert_eq!(p.exec(async { 6 }).await.unwrap(), 6);
    tx.unbounded_send(3).unwrap();
    drop(tx);
    let out: Vec<u32> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, [2, 3, 4]);
    p.join().await.unwrap();
}

pub async fn map_items_panic_and_cancel_individually(sp: Sp) {
    let p = pool(&sp);
    let started = Counter::new();
    let ids = Log::default();
    let never = Gate::new();
    let (s, l) = (started.clone(), ids.clone());
    let group = p
        .map(0..6u32, 6, move |i| {
            let (s, l, g) = (s.clone(), l.clone(), never.clone());
            async move {
                l.push((i, async_taskpool::current_task_id().unwrap()));
                s.bump();
                match i {
                    2 => panic!("item two"),
                    4 => g.wait().await,
                    _ => {}
                }
                i
            }
        })
        .unwrap();
    started.wait_for(6).await;
    let id4 = ids.get().into_iter().find(|(i, _)| *i == 4).unwrap().1;
    p.cancel([id4]).unwrap();
    let out: Vec<_> = group.collect().await;
    assert_eq!(out.len(), 6);
    for (i, r) in out.iter().enumerate() {
        match i {
            2 => assert!(r.as_ref().unwrap_err().is_panic()),
            4 => assert!(r.as_ref().unwrap_err().is_cancelled()),
            _ => assert_eq!(*r.as_ref().unwrap(), i as u32),
        }
    }
    let mut all_ids: Vec<u64> = ids.get().into_iter().map(|(_, id)| id.get()).collect();
    all_ids.sort_unstable();
    all_ids.dedup();
    assert_eq!(all_ids.len(), 6, "every item has its own id");
    assert_eq!(p.stats().panicked, 1);
    assert_eq!(p.num_cancelled(), 1);
}

pub async fn apply_runs_n_copies(sp: Sp) {
    let p = limited(&sp, 2);
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let group = p
        .apply(5, move || {
            let c = c.clone();
            async move { c.fetch_add(1, Ordering::SeqCst) }
        })
        .unwrap();
    assert_eq!(group.name(), "apply-group-0");
    let summary = group.join().await.unwrap();
    assert_eq!(
        (summary.completed, summary.cancelled, summary.panicked),
        (5, 0, 0)
    );
    assert_eq!(summary.total(), 5);
    assert_eq!(count.load(Ordering::SeqCst), 5);
    let second = p.apply(0, || async {}).unwrap();
    assert_eq!(second.name(), "apply-group-1");
    assert_eq!(second.join().await.unwrap().total(), 0);
}

pub async fn group_names_and_errors(sp: Sp) {
    let p = pool(&sp);
    let gate = Gate::new();
    let g = gate.clone();
    let group = p
        .build_group()
        .name("g")
        .map(0..2, 2, move |_| {
            let g = g.clone();
            async move { g.wait().await }
        })
        .unwrap();
    let err = p.build_group().name("g").apply(1, || async {}).unwrap_err();
    assert!(matches!(err, PoolError::GroupExists { .. }));
    assert!(err.to_string().contains("`g`"));
    let err = p.group_ids(["g", "nope"]).unwrap_err();
    assert!(matches!(err, PoolError::GroupNotFound { ref name, .. } if name == "nope"));
    assert!(matches!(
        p.cancel_group("nope"),
        Err(PoolError::GroupNotFound { .. })
    ));
    gate.open();
    group.join().await.unwrap();
    assert!(
        p.group_ids(["g"]).unwrap().is_empty(),
        "ended items are not listed"
    );
}

pub async fn flush_forgets_ended(sp: Sp) {
    let p = pool(&sp);
    p.exec(async {}).await.unwrap();
    let gate = Gate::new();
    let h = p.spawn(blocker(&gate)).await.unwrap();
    h.cancel().unwrap();
    let _ = h.await;
    p.build_group()
        .name("x")
        .apply(2, || async {})
        .unwrap()
        .join()
        .await
        .unwrap();
    assert_eq!(p.num_ended(), 4);
    assert_eq!(p.num_cancelled(), 1);
    assert!(p.has_group("x"));

    // flush waits for callbacks still running.
    let hold = Gate::new();
    let in_callback = Counter::new();
    let (h2, ic) = (hold.clone(), in_callback.clone());
    let t = p
        .build_task()
        .on_end(move |_| {
            let (h, ic) = (h2.clone(), ic.clone());
            async move {
                ic.bump();
                h.wait().await
            }
        })
        .spawn(async {})
        .await
        .unwrap();
    in_callback.wait_for(1).await;
    let mut flush = Box::pin(p.flush());
    assert!(futures::poll!(&mut flush).is_pending());
    assert!(!t.is_finished());
    hold.open();
    flush.await.unwrap();
    t.await.unwrap();
    p.flush().await.unwrap();
    assert_eq!(p.num_ended(), 0);
    assert_eq!(p.num_cancelled(), 0);
    assert!(!p.has_group("x"));
    let again = p.build_group().name("x").apply(1, || async {}).unwrap();
    assert_eq!(again.name(), "x");
}

pub async fn handle_drop_detaches(sp: Sp) {
    let p = pool(&sp);
    let gate = Gate::new();
    let done = Counter::new();
    let (g, d) = (gate.clone(), done.clone());
    drop(
        p.spawn(async move {
            g.wait().await;
            d.bump();
        })
        .await
        .unwrap(),
    );
    gate.open();
    done.wait_for(1).await;
    p.join().await.unwrap();
    assert_eq!(p.num_cancelled(), 0);
}

pub async fn dropping_last_pool_handle_lets_work_finish(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.spawn(blocker(&gate)).await.unwrap();
    let queued = p.spawn_queued(async { "still ran" }).unwrap();
    drop(p);
    gate.open();
    first.await.unwrap();
    assert_eq!(queued.await.unwrap(), "still ran");
}

pub async fn cancel_on_drop_cancels(sp: Sp) {
    let p = TaskPool::builder(sp.clone())
        .cancel_on_drop(true)
        .build()
        .unwrap();
    let h = p.spawn(pending::<()>()).await.unwrap();
    let clone = p.clone();
    drop(p);
    assert!(!h.is_finished(), "a clone keeps the pool alive");
    drop(clone);
    assert!(h.await.unwrap_err().is_cancelled());
}

pub async fn until_closed_wakes(sp: Sp) {
    let p = pool(&sp);
    let waiter = p.clone();
    let (tx, rx) = futures::channel::oneshot::channel();
    sp.spawn(Box::pin(async move {
        waiter.until_closed().await;
        let _ = tx.send(());
    }))
    .unwrap();
    p.close();
    rx.await.unwrap();
}

pub async fn stats_and_tasks_snapshot(sp: Sp) {
    let p = TaskPool::builder(sp.clone())
        .name("snap")
        .limit(2)
        .build()
        .unwrap();
    let gate = Gate::new();
    let a = p
        .build_task()
        .name("named")
        .spawn(blocker(&gate))
        .await
        .unwrap();
    let g = gate.clone();
    let group = p
        .build_group()
        .name("grp")
        .map(0..1, 1, move |_| {
            let g = g.clone();
            async move { g.wait().await }
        })
        .unwrap();
    let q = p.spawn_queued(blocker(&gate)).unwrap();
    let st = p.stats();
    assert_eq!(st.name, "snap");
    assert_eq!(st.limit, Some(2));
    assert!(st.is_full);
    assert_eq!(st.groups, ["grp"]);
    let json = serde_json::to_string(&st).unwrap();
    let back: PoolStats = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    let tasks = p.tasks();
    let named = tasks.iter().find(|t| t.id == a.id()).unwrap();
    assert_eq!(
        (named.name.as_str(), named.state),
        ("named", TaskState::Running)
    );
    let queued = tasks.iter().find(|t| t.id == q.id()).unwrap();
    assert_eq!(queued.state, TaskState::Queued);
    gate.open();
    group.join().await.unwrap();
    p.join().await.unwrap();
    let st = p.stats();
    assert_eq!(
        (st.running, st.queued, st.ended, st.submitted),
        (0, 0, 3, 3)
    );
    serde_json::to_value(p.tasks()).unwrap();
}

pub async fn simple_pool_start_stop(sp: Sp) {
    let started = Counter::new();
    let s = started.clone();
    let workers = SimpleTaskPool::builder(sp.clone(), move || {
        let s = s.clone();
        async move {
            s.bump();
            pending::<()>().await
        }
    })
    .limit(3)
    .func_name("counter")
    .build()
    .unwrap();
    assert_eq!(workers.func_name(), "counter");
    let g0 = workers.start(3).unwrap();
    assert_eq!(g0.name(), "start-group-0");
    let g1 = workers.start(2).unwrap();
    assert_eq!(g1.name(), "start-group-1");
    assert_eq!((workers.num_running(), workers.num_queued()), (3, 2));
    started.wait_for(3).await;
    let stopped = workers.stop(3);
    assert_eq!(
        stopped,
        [TaskId::new(4), TaskId::new(3), TaskId::new(2)],
        "queued first, newest first"
    );
    let rest = workers.stop_all();
    assert_eq!(rest, [TaskId::new(1), TaskId::new(0)]);
    assert!(workers.stop(1).is_empty());
    workers.gather_and_close().await.unwrap();
    assert_eq!(workers.num_cancelled(), 5);
    assert_eq!(started.get(), 3, "stopped queued workers never started");
    assert_eq!(g0.join().await.unwrap().cancelled, 3);
}

pub async fn simple_pool_lock_and_close(sp: Sp) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let workers = SimpleTaskPool::new(sp.clone(), move || {
        let r = r.clone();
        async move { r.fetch_add(1, Ordering::SeqCst) }
    });
    workers.lock();
    assert!(matches!(workers.start(2), Err(PoolError::Locked { .. })));
    workers.unlock();
    let group = workers.start(2).unwrap();
    let mut results: Vec<usize> = group.map(Result::unwrap).collect().await;
    results.sort_unstable();
    assert_eq!(results, [0, 1]);
    workers.gather_and_close().await.unwrap();
    assert!(matches!(workers.start(1), Err(PoolError::Closed { .. })));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

pub async fn callbacks_run_exactly_once(sp: Sp) {
    let p = limited(&sp, 4);
    let ends: Arc<Mutex<HashMap<TaskId, usize>>> = Arc::default();
    let cancels: Arc<Mutex<HashMap<TaskId, usize>>> = Arc::default();
    let gate = Gate::new();
    let mut handles = Vec::new();
    for i in 0..20 {
        let (e, c) = (ends.clone(), cancels.clone());
        let g = gate.clone();
        let h = p
            .build_task()
            .on_end(move |id| {
                let e = e.clone();
                async move { *e.lock().unwrap().entry(id).or_default() += 1 }
            })
            .on_cancel(move |id| {
                let c = c.clone();
                async move { *c.lock().unwrap().entry(id).or_default() += 1 }
            })
            .spawn_queued(async move {
                if i % 2 == 0 {
                    g.wait().await;
                }
            })
            .unwrap();
        handles.push(h);
    }
    let even: Vec<TaskId> = handles.iter().step_by(2).map(|h| h.id()).collect();
    p.cancel(even.clone()).unwrap();
    p.join().await.unwrap();
    let ends = ends.lock().unwrap();
    let cancels = cancels.lock().unwrap();
    assert_eq!(ends.len(), 20);
    assert!(ends.values().all(|&n| n == 1), "on_end once per task");
    for h in &handles {
        let cancelled = cancels.get(&h.id()).copied().unwrap_or(0);
        assert!(cancelled <= 1);
    }
    // Every cancelled task got its cancel callback; a task that finished first did not.
    let cancelled_total: usize = cancels.values().sum();
    assert_eq!(cancelled_total as u64, p.num_cancelled());
    assert_eq!(p.num_ended(), 20);
}

pub async fn panics_in_map_closure_and_input_are_contained(sp: Sp) {
    let p = pool(&sp);
    let items = (0..10u32).inspect(|&i| {
        if i == 3 {
            panic!("input broke at 3");
        }
    });
    let group = p
        .map(items, 2, |i| {
            if i == 1 {
                panic!("closure broke at 1");
            }
            async move { i }
        })
        .unwrap();
    let out: Vec<_> = group.collect().await;
    assert_eq!(
        out.len(),
        3,
        "items before the broken input ran, then pulling stopped"
    );
    assert_eq!(*out[0].as_ref().unwrap(), 0);
    assert!(out[1].as_ref().unwrap_err().is_panic());
    assert_eq!(*out[2].as_ref().unwrap(), 2);
    p.join().await.unwrap();
    assert_eq!(p.stats().panicked, 1);
    assert_eq!(p.exec(async { 4 }).await.unwrap(), 4);
}

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("destructor panicked");
        }
    }
}

pub async fn panicking_destructor_is_contained(sp: Sp) {
    let p = limited(&sp, 1);
    let started = Counter::new();
    let s = started.clone();
    let h = p
        .spawn(async move {
            let _bomb = PanicOnDrop;
            s.bump();
            pending::<()>().await
        })
        .await
        .unwrap();
    started.wait_for(1).await;
    h.cancel().unwrap();
    assert!(h.await.unwrap_err().is_cancelled());
    p.join().await.unwrap();
    assert_eq!(p.num_cancelled(), 1);
    assert_eq!(
        p.exec(async { 8 }).await.unwrap(),
        8,
        "slot released, runtime alive"
    );
}

/// A long run of ready tasks must not monopolise the executor: a task spawned by the first
/// item gets to run before the last item does, on every runtime (a current-thread one too).
pub async fn long_runs_of_ready_work_let_other_tasks_run(sp: Sp) {
    let n = 10_000u32;
    let p = limited(&sp, 1);
    // Queued tasks handed from runner to runner.
    let flag = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..n {
        let (f, s) = (flag.clone(), sp.clone());
        handles.push(
            p.spawn_queued(async move {
                if i == 0 {
                    let f = f.clone();
                    s.spawn(Box::pin(async move { f.store(true, Ordering::SeqCst) }))
                        .unwrap();
                }
                i < n - 1 || f.load(Ordering::SeqCst)
            })
            .unwrap(),
        );
    }
    let last = handles.pop().unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert!(last.await.unwrap(), "queued tasks yielded to the executor");

    // Map items on a reused worker.
    let flag = Arc::new(AtomicBool::new(false));
    let s = sp.clone();
    let group = pool(&sp)
        .map(0..n, 1, move |i| {
            let (f, s) = (flag.clone(), s.clone());
            async move {
                if i == 0 {
                    let f = f.clone();
                    s.spawn(Box::pin(async move { f.store(true, Ordering::SeqCst) }))
                        .unwrap();
                }
                i < n - 1 || f.load(Ordering::SeqCst)
            }
        })
        .unwrap();
    assert!(
        group.map(Result::unwrap).all(|ok| async move { ok }).await,
        "map workers yielded"
    );
}

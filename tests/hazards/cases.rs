//! Cancel safety of every public `async fn`, and the documented deadlock hazards.
//!
//! Each cancel-safety case drops the future mid-await (after one poll that returned
//! `Pending`, or under a runtime timer), then shows that nothing it held leaked: no slot (a
//! later task runs in a pool of limit 1), no queue entry (`num_queued` is 0, `tasks()` is
//! empty), no waiter (a later wait of the same kind returns), and the pool is idle.

use crate::support::*;
use async_taskpool::{Group, PoolError, SimpleTaskPool, TaskError, TaskHandle, TaskPool};
use futures::future::{select, Either};
use futures::StreamExt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn limited(sp: &Sp, limit: usize) -> TaskPool {
    TaskPool::builder(sp.clone()).limit(limit).build().unwrap()
}

fn blocker(gate: &Gate) -> impl Future<Output = ()> + Send + 'static {
    let gate = gate.clone();
    async move { gate.wait().await }
}

/// Polls `fut` once, asserts it is waiting, and drops it.
async fn drop_after_one_poll<F: Future>(fut: F, what: &str) {
    let mut fut = pin!(fut);
    assert!(
        futures::poll!(fut.as_mut()).is_pending(),
        "{what} did not wait"
    );
}

/// Runs `fut` under a short runtime timer, which must fire first (the future is dropped).
async fn drop_under_timeout<F: Future>(sp: &Sp, fut: F, what: &str) {
    match select(pin!(fut), sp.sleep(Duration::from_millis(5))).await {
        Either::Left(_) => panic!("{what} returned instead of waiting"),
        Either::Right(_) => {}
    }
}

/// The pool runs nothing, queues nothing, and a limit-1 pool still has its slot.
async fn assert_nothing_leaked(p: &TaskPool) {
    p.join().await.unwrap();
    let st = p.stats();
    assert_eq!((st.running, st.queued, st.ending), (0, 0, 0), "{st:?}");
    assert!(p.tasks().is_empty(), "{:?}", p.tasks());
    assert!(!p.is_full(), "a slot leaked: {st:?}");
    assert_eq!(p.exec(async { 7 }).await.unwrap(), 7);
    p.join().await.unwrap();
}

// ----- cancel safety -----

pub async fn spawn_dropped_while_waiting_withdraws(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let first = p.spawn(blocker(&gate)).await.unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    drop_after_one_poll(p.spawn(async move { drop(flag) }), "spawn").await;
    drop_under_timeout(
        &sp,
        p.build_task().name("w").spawn(async {}),
        "TaskBuilder::spawn",
    )
    .await;
    assert_eq!(p.num_queued(), 0, "a withdrawn task stays queued");
    gate.open();
    first.await.unwrap();
    assert_nothing_leaked(&p).await;
    // Withdrawn, never run: both count as cancelled, and their futures were dropped.
    assert_eq!(p.num_cancelled(), 2);
    assert!(dropped.load(Ordering::SeqCst));
}

pub async fn exec_dropped_cancels_queued_or_running(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let ended = Counter::new();
    let e = ended.clone();
    // Running when dropped: the task is cancelled, and its callbacks run once.
    drop_after_one_poll(
        p.build_task()
            .on_end(move |_| {
                let e = e.clone();
                async move { e.bump() }
            })
            .exec(blocker(&gate)),
        "exec",
    )
    .await;
    ended.wait_for(1).await;
    // Queued when dropped, behind a running task.
    let running = p.spawn(blocker(&gate)).await.unwrap();
    drop_under_timeout(&sp, p.exec(async { 1 }), "exec").await;
    drop_after_one_poll(p.build_task().exec(async { 2 }), "TaskBuilder::exec").await;
    assert_eq!(p.num_queued(), 0);
    gate.open();
    running.await.unwrap();
    assert_nothing_leaked(&p).await;
    assert_eq!(p.num_cancelled(), 3);
    assert_eq!(ended.get(), 1);
}

pub async fn join_dropped_leaves_no_waiter(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let h = p.spawn(blocker(&gate)).await.unwrap();
    for _ in 0..100 {
        drop_after_one_poll(p.join(), "join").await;
    }
    drop_under_timeout(&sp, p.join(), "join").await;
    gate.open();
    h.await.unwrap();
    assert_nothing_leaked(&p).await;
}

pub async fn flush_dropped_leaves_no_waiter(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    // flush waits for callbacks still running: hold one open.
    let in_callback = Counter::new();
    let (g, c) = (gate.clone(), in_callback.clone());
    let h = p
        .build_task()
        .on_end(move |_| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                c.bump();
                g.wait().await
            }
        })
        .spawn(async { 3 })
        .await
        .unwrap();
    in_callback.wait_for(1).await;
    for _ in 0..50 {
        drop_after_one_poll(p.flush(), "flush").await;
    }
    drop_under_timeout(&sp, p.flush(), "flush").await;
    assert_eq!(p.num_ended(), 0, "a dropped flush must not have flushed");
    gate.open();
    assert_eq!(h.await.unwrap(), 3);
    p.flush().await.unwrap();
    assert_eq!(p.num_ended(), 0);
    assert_nothing_leaked(&p).await;
}

pub async fn until_closed_dropped_leaves_no_waiter(sp: Sp) {
    let p = limited(&sp, 1);
    for _ in 0..50 {
        drop_after_one_poll(p.until_closed(), "until_closed").await;
    }
    drop_under_timeout(&sp, p.until_closed(), "until_closed").await;
    assert_nothing_leaked(&p).await;
    let waiter = {
        let p = p.clone();
        async move { p.until_closed().await }
    };
    let mut waiter = pin!(waiter);
    assert!(futures::poll!(waiter.as_mut()).is_pending());
    p.close();
    waiter.await;
}

pub async fn gather_and_close_dropped_stays_locked_not_closed(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let h = p.spawn(blocker(&gate)).await.unwrap();
    drop_after_one_poll(p.gather_and_close(), "gather_and_close").await;
    drop_under_timeout(&sp, p.gather_and_close(), "gather_and_close").await;
    // As documented: locked, not closed; accepted work carries on.
    assert!(p.is_locked());
    assert!(!p.is_closed());
    p.unlock();
    gate.open();
    h.await.unwrap();
    assert_nothing_leaked(&p).await;
    p.gather_and_close().await.unwrap();
    assert!(p.is_closed());
}

pub async fn group_join_dropped_only_stops_waiting(sp: Sp) {
    let p = limited(&sp, 2);
    let gate = Gate::new();
    let g = gate.clone();
    let group = p
        .map(0..5usize, 2, move |i| {
            let g = g.clone();
            async move {
                g.wait().await;
                i
            }
        })
        .unwrap();
    drop_after_one_poll(group.join(), "Group::join").await;
    let g = gate.clone();
    let group = p.apply(3, move || blocker(&g)).unwrap();
    drop_under_timeout(&sp, group.join(), "Group::join").await;
    // The items carry on (the group detached with the join); none was cancelled.
    gate.open();
    p.join().await.unwrap();
    assert_eq!((p.num_ended(), p.num_cancelled()), (8, 0));
    assert_nothing_leaked(&p).await;
}

pub async fn simple_pool_waits_dropped(sp: Sp) {
    // Tasks that end at once, with callbacks that hold on until the gate opens: every
    // wait (join, flush, until_closed, gather_and_close) has something to wait for.
    let gate = Gate::new();
    let in_callback = Counter::new();
    let (g, c) = (gate.clone(), in_callback.clone());
    let simple = SimpleTaskPool::builder(sp.clone(), || async {})
        .limit(1)
        .on_end(move |_| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                c.bump();
                g.wait().await
            }
        })
        .build()
        .unwrap();
    simple.start(2).unwrap();
    in_callback.wait_for(2).await;
    drop_after_one_poll(simple.join(), "SimpleTaskPool::join").await;
    drop_under_timeout(&sp, simple.flush(), "SimpleTaskPool::flush").await;
    drop_after_one_poll(simple.until_closed(), "SimpleTaskPool::until_closed").await;
    drop_after_one_poll(
        simple.gather_and_close(),
        "SimpleTaskPool::gather_and_close",
    )
    .await;
    assert!(simple.is_locked() && !simple.is_closed());
    simple.unlock();
    gate.open();
    assert_nothing_leaked(simple.as_task_pool()).await;
    simple.gather_and_close().await.unwrap();
    assert_eq!(simple.num_ended(), 3);
}

/// A handle dropped mid-await detaches: the task runs to completion and nothing leaks.
pub async fn handle_dropped_mid_await_detaches(sp: Sp) {
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let g = gate.clone();
    let h: TaskHandle<u8> = p
        .spawn(async move {
            g.wait().await;
            9
        })
        .await
        .unwrap();
    drop_after_one_poll(h, "TaskHandle").await;
    gate.open();
    assert_nothing_leaked(&p).await;
    assert_eq!((p.num_ended(), p.num_cancelled()), (2, 0));
}

// ----- deadlock hazards -----

/// Group::join from one of the group's own items returns `CalledFromOwnTask` instead of
/// waiting for itself; joining another group from an item is fine and completes.
pub async fn group_join_from_own_item_is_an_error(sp: Sp) {
    let p = limited(&sp, 2);
    type Slot = Arc<Mutex<Option<Group<()>>>>;
    let own: Slot = Arc::default();
    let other: Slot = Arc::default();
    let seen: Arc<Mutex<Vec<Result<u64, PoolError>>>> = Arc::default();
    let gate = Gate::new();
    let (s, o, r, g) = (own.clone(), other.clone(), seen.clone(), gate.clone());
    let group = p
        .map([true, false], 2, move |mine| {
            let (s, o, r, g) = (s.clone(), o.clone(), r.clone(), g.clone());
            async move {
                g.wait().await;
                let slot = if mine { s } else { o };
                let group = slot
                    .lock()
                    .unwrap()
                    .take()
                    .expect("the driver put a group here");
                let res = group.join().await.map(|sum| sum.total());
                r.lock().unwrap().push(res);
            }
        })
        .unwrap();
    let unrelated = p.map([()], 1, |()| async {}).unwrap();
    *own.lock().unwrap() = Some(group);
    *other.lock().unwrap() = Some(unrelated);
    gate.open();
    p.join().await.unwrap();
    let mut res = seen.lock().unwrap().clone();
    res.sort_by_key(Result::is_err);
    assert!(matches!(res[0], Ok(1)), "{res:?}");
    assert!(
        matches!(
            res[1],
            Err(PoolError::CalledFromOwnTask {
                method: "Group::join",
                ..
            })
        ),
        "{res:?}"
    );
    assert_nothing_leaked(&p).await;
}

pub async fn waits_from_items_and_callbacks_are_errors(sp: Sp) {
    let p = limited(&sp, 2);
    let errors: Arc<Mutex<Vec<PoolError>>> = Arc::default();
    let p2 = p.clone();
    let group = p
        .map([0u8], 1, move |_| {
            let p = p2.clone();
            async move {
                vec![
                    p.join().await.unwrap_err(),
                    p.flush().await.unwrap_err(),
                    p.gather_and_close().await.unwrap_err(),
                ]
            }
        })
        .unwrap();
    let from_item: Vec<PoolError> = group.map(Result::unwrap).collect::<Vec<_>>().await.concat();
    assert_eq!(from_item.len(), 3);
    let (p3, e3) = (p.clone(), errors.clone());
    let h = p
        .build_task()
        .on_end(move |_| {
            let (p, e) = (p3.clone(), e3.clone());
            async move {
                let join = p.join().await.unwrap_err();
                let flush = p.flush().await.unwrap_err();
                e.lock().unwrap().extend([join, flush]);
            }
        })
        .spawn(async {})
        .await
        .unwrap();
    h.await.unwrap();
    let from_callback = errors.lock().unwrap().clone();
    assert_eq!(from_callback.len(), 2);
    for e in from_item.iter().chain(&from_callback) {
        assert!(matches!(e, PoolError::CalledFromOwnTask { .. }), "{e}");
    }
    assert_nothing_leaked(&p).await;
}

pub async fn callback_that_spawns_into_a_full_pool_completes(sp: Sp) {
    let p = limited(&sp, 1);
    let out: Arc<Mutex<Vec<u32>>> = Arc::default();
    let (p2, o2) = (p.clone(), out.clone());
    // The slot is freed before callbacks run, so a callback may wait for room (spawn), run a
    // task to completion (exec) or queue one, even in a pool of one.
    let h = p
        .build_task()
        .on_end(move |_| {
            let (p, o) = (p2.clone(), o2.clone());
            async move {
                let spawned = p.spawn(async { 1 }).await.unwrap();
                let queued = p.spawn_queued(async { 2 }).unwrap();
                let ran = p.exec(async { 3 }).await.unwrap();
                let got = [spawned.await.unwrap(), queued.await.unwrap(), ran];
                o.lock().unwrap().extend(got);
            }
        })
        .spawn(async { 0 })
        .await
        .unwrap();
    assert_eq!(h.await.unwrap(), 0);
    p.join().await.unwrap();
    assert_eq!(*out.lock().unwrap(), [1, 2, 3]);
    // Group callbacks too: the worker frees its slot first.
    let (p3, o3) = (p.clone(), out.clone());
    let group = p
        .build_group()
        .on_end(move |_| {
            let (p, o) = (p3.clone(), o3.clone());
            async move {
                let v = p.exec(async { 10 }).await.unwrap();
                o.lock().unwrap().push(v);
            }
        })
        .map(0..3u32, 1, |i| async move { i })
        .unwrap();
    assert_eq!(group.join().await.unwrap().completed, 3);
    p.join().await.unwrap();
    assert_eq!(out.lock().unwrap()[3..], [10, 10, 10]);
    assert_eq!(p.num_ended(), 4 + 3 + 3);
    assert_nothing_leaked(&p).await;
}

pub async fn panicking_callbacks_are_contained(sp: Sp) {
    let p = limited(&sp, 1);
    let boom = |_| async {
        if true {
            panic!("callback boom");
        }
    };
    let ok = p
        .build_task()
        .on_cancel(boom)
        .on_end(boom)
        .spawn(async { 1 })
        .await
        .unwrap();
    assert_eq!(ok.await.unwrap(), 1);
    let gate = Gate::new();
    let cancelled = p
        .build_task()
        .on_cancel(boom)
        .on_end(boom)
        .spawn(blocker(&gate))
        .await
        .unwrap();
    cancelled.cancel().unwrap();
    assert!(matches!(cancelled.await, Err(TaskError::Cancelled { .. })));
    // A callback that panics before returning its future.
    let h = p
        .build_task()
        .on_end(|_| -> std::future::Ready<()> { panic!("callback boom before its future") })
        .spawn(async { 2 })
        .await
        .unwrap();
    assert_eq!(h.await.unwrap(), 2);
    let group = p
        .build_group()
        .on_end(boom)
        .on_cancel(boom)
        .map(0..4u8, 2, |i| async move { i })
        .unwrap();
    assert_eq!(group.join().await.unwrap().completed, 4);
    match p.exec(async { 3 }).await {
        Ok(3) => {}
        other => panic!("{other:?}"),
    }
    assert_nothing_leaked(&p).await;
    assert_eq!((p.num_ended(), p.num_cancelled()), (9, 1));
}

/// A refused `gather_and_close` (called from the pool's own task) changes nothing: the pool
/// is neither closed nor left locked, so the caller's advice ("call it from outside the
/// pool") still works and new work is accepted meanwhile.
pub async fn refused_gather_and_close_leaves_the_pool_open(sp: Sp) {
    let p = limited(&sp, 2);
    let p2 = p.clone();
    let err = p
        .exec(async move { p2.gather_and_close().await.unwrap_err() })
        .await
        .unwrap();
    assert!(matches!(err, PoolError::CalledFromOwnTask { .. }), "{err}");
    assert!(!p.is_locked(), "a refused gather_and_close locked the pool");
    assert!(!p.is_closed());
    assert_eq!(p.exec(async { 1 }).await.unwrap(), 1);
    p.gather_and_close().await.unwrap();
    assert!(p.is_closed());
}

//! The threaded-pool cases. Blocking ones are plain functions called from a plain thread;
//! async ones are futures driven by a caller runtime other than the pool's.
//!
//! Synchronisation is by gates and counters; sleeps appear only where time is under test
//! (timeouts), with generous margins.

use crate::support::{BumpOnDrop, Concurrency, Counter, DropFlag, Gate, Log};
use async_taskpool::{AsyncThreadedPool, PoolError, ThreadRuntime, ThreadedError, ThreadedPool};
use futures::executor::block_on;
use std::cell::RefCell;
use std::future::pending;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Whether the runtime polls the pool's tasks on the pool's own thread.
fn tasks_on_pool_thread(rt: ThreadRuntime) -> bool {
    #[allow(deprecated)]
    match rt {
        #[cfg(feature = "async-std")]
        ThreadRuntime::AsyncStd => false,
        _ => true,
    }
}

/// Spins (at most 10 s) until `done()` holds; for states with no signal of their own.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        thread::sleep(Duration::from_millis(1));
    }
}

fn sleep(d: Duration) -> smol::Timer {
    // async-io's timer works on every executor, so one helper serves every runtime.
    smol::Timer::after(d)
}

// ----- blocking front end, called from plain threads -----

pub fn run_and_spawn_return_output(rt: ThreadRuntime) {
    let setup_thread = Arc::new(Mutex::new(None));
    let st = setup_thread.clone();
    let pool = ThreadedPool::builder(rt)
        .name("basic")
        .setup(move || async move {
            *st.lock().unwrap() = Some(thread::current().id());
            Ok::<_, io::Error>(())
        })
        .build()
        .unwrap();
    assert_eq!(pool.name(), "basic");
    assert_eq!(pool.runtime(), rt);
    assert_eq!(*setup_thread.lock().unwrap(), Some(pool.thread_id()));
    assert_ne!(pool.thread_id(), thread::current().id());

    assert_eq!(pool.run(async { 6 * 7 }).unwrap(), 42);
    let task_thread = pool.run(async { thread::current().id() }).unwrap();
    assert_eq!(task_thread == pool.thread_id(), tasks_on_pool_thread(rt));

    let h = pool.spawn(async { "spawned" }).unwrap();
    assert_eq!(h.wait().unwrap(), "spawned");
    // The same handle type is a future: await it on any executor.
    let h = pool.spawn(async { 5 }).unwrap();
    assert_eq!(block_on(h).unwrap(), 5);

    let gate = Gate::new();
    let g = gate.clone();
    let h = pool
        .spawn(async move {
            g.wait().await;
            1
        })
        .unwrap();
    let h = h
        .wait_timeout(Duration::from_millis(20))
        .expect_err("the gate is closed: the handle comes back");
    assert!(!h.is_finished());
    gate.open();
    let out = h.wait_timeout(Duration::from_secs(10)).ok().unwrap();
    assert_eq!(out.unwrap(), 1);
    assert_eq!(pool.stats().ended, 5);
    assert_eq!(pool.stats().name, "basic");
    pool.stop().unwrap();
    assert!(pool.is_stopped());
}

/// `track_durations(true)` reaches the pool on the thread: a running task shows its run
/// time so far, ended ones land in the percentiles; without it, nothing is kept.
pub fn durations_are_tracked_when_asked(rt: ThreadRuntime) {
    let pool = ThreadedPool::builder(rt)
        .track_durations(true)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let h = pool.spawn(async move { g.wait().await }).unwrap();
    let running = |p: &ThreadedPool| p.task_pool().tasks().iter().any(|t| t.run_time.is_some());
    eventually("the gated task is listed with its run time", || {
        running(&pool)
    });
    gate.open();
    h.wait().unwrap();
    pool.run(async {}).unwrap();
    let stats = pool.task_pool().stats();
    assert_eq!(stats.run_time.expect("tracked").count, 2);
    assert_eq!(stats.queue_wait.expect("tracked").count, 2);
    pool.stop().unwrap();

    let untracked = ThreadedPool::builder(rt).build().unwrap();
    untracked.run(async {}).unwrap();
    let stats = untracked.task_pool().stats();
    assert!(stats.run_time.is_none() && stats.queue_wait.is_none());
    untracked.stop().unwrap();
}

pub fn limit_is_held(rt: ThreadRuntime) {
    let pool = ThreadedPool::builder(rt).size(2).build().unwrap();
    assert_eq!(pool.task_pool().limit(), Some(2));
    let (inside, started, gate) = (Concurrency::default(), Counter::new(), Gate::new());
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (i, s, g) = (inside.clone(), started.clone(), gate.clone());
            pool.spawn(async move {
                let _inside = i.enter();
                s.bump();
                g.wait().await;
            })
            .unwrap()
        })
        .collect();
    block_on(started.wait_for(2));
    let stats = pool.stats();
    assert_eq!((stats.running, stats.queued), (2, 4));
    assert_eq!(started.get(), 2);
    gate.open();
    for h in handles {
        h.wait().unwrap();
    }
    assert_eq!(started.get(), 6);
    assert_eq!(inside.max(), 2);
}

pub fn timeout_excludes_queue_time(rt: ThreadRuntime) {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let pool = ThreadedPool::builder(rt)
        .size(1)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    // Each runs 0.4 s, well under the timeout; the last one waits about 1.2 s in the queue.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            pool.spawn(async move {
                sleep(Duration::from_millis(400)).await;
                i
            })
            .unwrap()
        })
        .collect();
    let late = pool.spawn(async { sleep(3 * TIMEOUT).await }).unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), i, "queue time was counted");
    }
    let err = late.wait().unwrap_err();
    assert!(err.task_error().is_some_and(|e| e.is_timeout()), "{err}");
    assert_eq!(pool.stats().timed_out, 1);
}

pub fn hooks_run_in_order(rt: ThreadRuntime) {
    let log = Log::<String>::default();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let pool = Arc::new(
        ThreadedPool::builder(rt)
            .name("hooks")
            .setup(move || async move {
                let name = thread::current().name().map(str::to_owned);
                l1.push(format!("setup on {}", name.unwrap_or_default()));
                Ok::<_, io::Error>(())
            })
            .teardown(move || async move {
                l2.push("teardown".into());
                Ok::<_, io::Error>(())
            })
            .build()
            .unwrap(),
    );
    let gate = Gate::new();
    for _ in 0..3 {
        let (l, g) = (l3.clone(), gate.clone());
        // Detached: `stop` must wait for them anyway.
        drop(pool.spawn(async move {
            g.wait().await;
            l.push("task".into());
        }));
    }
    let p = pool.clone();
    let stopper = thread::spawn(move || p.stop());
    eventually("stop begins", || pool.is_stopped());
    assert_eq!(
        log.get(),
        ["setup on hooks"],
        "teardown ran before the tasks ended"
    );
    gate.open();
    stopper.join().unwrap().unwrap();
    assert_eq!(
        log.get(),
        ["setup on hooks", "task", "task", "task", "teardown"]
    );
}

pub fn stop_drains_and_refuses_new_work(rt: ThreadRuntime) {
    let pool = Arc::new(ThreadedPool::builder(rt).size(2).build().unwrap());
    let (done, gate) = (Counter::new(), Gate::new());
    let handles: Vec<_> = (0..5)
        .map(|i| {
            let (d, g) = (done.clone(), gate.clone());
            pool.spawn(async move {
                g.wait().await;
                d.bump();
                i
            })
            .unwrap()
        })
        .collect();
    let p = pool.clone();
    let stopper = thread::spawn(move || p.stop());
    eventually("stop begins", || pool.is_stopped());

    // Refused at once, and the future is dropped, not kept.
    let dropped = flag();
    let f = DropFlag(dropped.clone());
    let err = pool
        .spawn(async move {
            let _f = f;
        })
        .unwrap_err();
    assert!(matches!(err, ThreadedError::Stopped { .. }), "{err}");
    assert!(dropped.load(Ordering::SeqCst));
    assert!(matches!(
        pool.run(async {}),
        Err(ThreadedError::Stopped { .. })
    ));

    gate.open();
    stopper.join().unwrap().unwrap();
    assert_eq!(done.get(), 5);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.wait().unwrap(), i);
    }
    pool.stop().unwrap(); // again: nothing to do
    pool.stop_now().unwrap();
}

pub fn stop_now_cancels_and_still_tears_down(rt: ThreadRuntime) {
    let torn_down = flag();
    let t = torn_down.clone();
    let pool = ThreadedPool::builder(rt)
        .size(2)
        .teardown(move || async move {
            t.store(true, Ordering::SeqCst);
            Ok::<_, io::Error>(())
        })
        .build()
        .unwrap();
    let (started, dropped) = (Counter::new(), Counter::new());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (s, d) = (started.clone(), BumpOnDrop(dropped.clone()));
            pool.spawn(async move {
                let _d = d;
                s.bump();
                pending::<()>().await
            })
            .unwrap()
        })
        .collect();
    block_on(started.wait_for(2));
    pool.stop_now().unwrap();
    assert!(torn_down.load(Ordering::SeqCst));
    assert_eq!(
        dropped.get(),
        4,
        "every future was dropped before stop_now returned"
    );
    for h in handles {
        let err = h.wait().unwrap_err();
        assert!(err.task_error().is_some_and(|e| e.is_cancelled()), "{err}");
    }
    assert_eq!(pool.stats().cancelled, 4);
}

pub fn cross_thread_cancel_is_prompt(rt: ThreadRuntime) {
    let pool = ThreadedPool::builder(rt).size(1).build().unwrap();
    let (started, dropped) = (Counter::new(), flag());
    let (s, d) = (started.clone(), DropFlag(dropped.clone()));
    let running = pool
        .spawn(async move {
            let _d = d;
            s.bump();
            pending::<()>().await
        })
        .unwrap();
    let queued = pool.spawn(async { "ran" }).unwrap();
    block_on(started.wait_for(1));

    // A waiter parked on another thread is woken by a cancel from this one.
    let id = running.id();
    let waiter = thread::spawn(move || running.wait_timeout(Duration::from_secs(5)).ok());
    pool.task_pool().cancel([id]).unwrap();
    let res = waiter.join().unwrap().expect("cancelled within 5 s");
    assert!(res.unwrap_err().task_error().unwrap().is_cancelled());
    assert!(dropped.load(Ordering::SeqCst));

    // And a handle cancelled from another thread, while queued behind a blocker.
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.spawn(async move { g.wait().await }).unwrap();
    assert_eq!(queued.wait().unwrap(), "ran"); // once the first task was cancelled
    let queued = pool.spawn(async { "never" }).unwrap();
    thread::scope(|s| s.spawn(|| queued.cancel().unwrap()).join().unwrap());
    let res = queued.wait_timeout(Duration::from_secs(5)).ok().unwrap();
    assert!(res.unwrap_err().task_error().unwrap().is_cancelled());
    gate.open();
    blocker.wait().unwrap();
}

pub fn blocking_calls_from_the_pool_are_errors(rt: ThreadRuntime) {
    let pool = Arc::new(ThreadedPool::builder(rt).name("selfish").build().unwrap());
    let p = pool.clone();
    let errors = pool
        .run(async move {
            let mut errors = vec![p.run(async { 1 }).unwrap_err()];
            errors.push(p.stop().unwrap_err());
            errors.push(p.stop_now().unwrap_err());
            // Spawning never blocks, so it is fine; waiting on the handle is not.
            let h = p.spawn(async { 2 }).unwrap();
            match h.wait_timeout(Duration::from_secs(1)) {
                Ok(res) => errors.push(res.unwrap_err()),
                Err(_) => panic!("wait_timeout blocked on the pool's thread"),
            }
            let h = p.spawn(async { 3 }).unwrap();
            errors.push(h.wait().unwrap_err());
            errors
        })
        .unwrap();
    assert_eq!(errors.len(), 5);
    for err in errors {
        assert!(matches!(err, ThreadedError::OnPoolThread { .. }), "{err}");
        assert!(err.to_string().contains("`selfish`"), "{err}");
    }
    assert!(!pool.is_stopped(), "the refused stop did not stop the pool");
    assert_eq!(pool.run(async { 4 }).unwrap(), 4);

    let err = ThreadedPool::builder(rt).size(0).build().unwrap_err();
    assert!(
        matches!(
            err,
            ThreadedError::Pool(PoolError::InvalidLimit { value: 0, .. })
        ),
        "{err}"
    );
}

thread_local! {
    /// Set by a setup hook on the pool's thread; dropped when that thread exits.
    static ON_EXIT: RefCell<Option<DropFlag>> = const { RefCell::new(None) };
}

pub fn failing_setup_is_reported_and_the_thread_exits(rt: ThreadRuntime) {
    let (exited, torn_down) = (flag(), flag());
    let (e, t) = (exited.clone(), torn_down.clone());
    let err = ThreadedPool::builder(rt)
        .name("no-db")
        .setup(move || async move {
            ON_EXIT.with(|slot| *slot.borrow_mut() = Some(DropFlag(e)));
            Err::<(), _>(io::Error::other("cannot reach the database"))
        })
        .teardown(move || async move {
            t.store(true, Ordering::SeqCst);
            Ok::<_, io::Error>(())
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, ThreadedError::Setup { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`no-db`") && msg.contains("cannot reach the database"),
        "{msg}"
    );
    assert!(
        exited.load(Ordering::SeqCst),
        "the pool's thread is still alive"
    );
    assert!(
        !torn_down.load(Ordering::SeqCst),
        "teardown ran after a failed setup"
    );

    let err = ThreadedPool::builder(rt)
        .setup(|| async {
            if true {
                panic!("setup exploded");
            }
            Ok::<_, io::Error>(())
        })
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("setup exploded"), "{err}");
}

pub fn panicking_task_is_isolated(rt: ThreadRuntime) {
    let pool = ThreadedPool::builder(rt).build().unwrap();
    let err = pool
        .run(async {
            if true {
                panic!("task exploded");
            }
        })
        .unwrap_err();
    assert!(err.task_error().is_some_and(|e| e.is_panic()), "{err}");
    assert!(err.to_string().contains("task exploded"));
    assert_eq!(pool.run(async { "still here" }).unwrap(), "still here");
    assert_eq!(pool.stats().panicked, 1);
}

pub fn failing_teardown_is_reported_by_stop(rt: ThreadRuntime) {
    let pool = ThreadedPool::builder(rt)
        .name("leaky")
        .teardown(|| async { Err::<(), _>("could not flush the cache") })
        .build()
        .unwrap();
    pool.run(async {}).unwrap();
    let err = pool.stop().unwrap_err();
    assert!(matches!(err, ThreadedError::Teardown { .. }), "{err}");
    assert!(
        err.to_string().contains("could not flush the cache"),
        "{err}"
    );
    pool.stop().unwrap(); // reported once
}

pub fn drop_drains_and_joins(rt: ThreadRuntime) {
    let torn_down = flag();
    let t = torn_down.clone();
    let pool = ThreadedPool::builder(rt)
        .teardown(move || async move {
            t.store(true, Ordering::SeqCst);
            Ok::<_, io::Error>(())
        })
        .build()
        .unwrap();
    let (done, gate) = (Counter::new(), Gate::new());
    for _ in 0..3 {
        let (d, g) = (done.clone(), gate.clone());
        drop(pool.spawn(async move {
            g.wait().await;
            d.bump();
        }));
    }
    let inner = pool.task_pool().clone();
    let dropper = thread::spawn(move || drop(pool));
    eventually("drop begins stopping", || inner.is_closed());
    assert!(!torn_down.load(Ordering::SeqCst));
    gate.open();
    dropper.join().unwrap();
    assert_eq!(done.get(), 3);
    assert!(torn_down.load(Ordering::SeqCst));
}

// ----- async front end, driven by another runtime -----

pub async fn async_run_spawn_and_stop(rt: ThreadRuntime) {
    let pool = AsyncThreadedPool::builder(rt)
        .name("aio")
        .size(2)
        .build_async()
        .await
        .unwrap();
    assert_eq!(pool.run(async { 1 + 1 }).await.unwrap(), 2);
    let task_thread = pool.run(async { thread::current().id() }).await.unwrap();
    assert_ne!(task_thread, thread::current().id());
    let h = pool.spawn(async { "handle" }).unwrap();
    assert_eq!(h.await.unwrap(), "handle");
    assert_eq!(pool.stats().ended, 3);

    // Awaiting `stop` from one of its own tasks would wait for itself.
    let pool = Arc::new(pool);
    let p = pool.clone();
    let err = pool
        .run(async move { p.stop().await.unwrap_err() })
        .await
        .unwrap();
    assert!(matches!(err, ThreadedError::OnPoolThread { .. }), "{err}");
    assert!(!pool.is_stopped());

    pool.stop().await.unwrap();
    assert!(pool.is_stopped());
    assert!(matches!(
        pool.run(async {}).await,
        Err(ThreadedError::Stopped { .. })
    ));
}

pub async fn async_run_does_not_block_the_caller(rt: ThreadRuntime) {
    let pool = AsyncThreadedPool::builder(rt).build_async().await.unwrap();
    let (gate, started) = (Gate::new(), Counter::new());
    let (g, s) = (gate.clone(), started.clone());
    let run = pool.run(async move {
        s.bump();
        g.wait().await;
        7
    });
    // The gate opens from the caller's side, on the caller's thread, only once the task is
    // under way: if `run` blocked that thread, this could never happen.
    let open = async {
        started.wait_for(1).await;
        gate.open();
    };
    let (out, ()) = futures::join!(run, open);
    assert_eq!(out.unwrap(), 7);
    pool.stop().await.unwrap();
}

pub async fn async_cancel_drop_and_stop_now(rt: ThreadRuntime) {
    let pool = AsyncThreadedPool::builder(rt).build_async().await.unwrap();
    let (started, dropped) = (Counter::new(), Counter::new());
    let pending_task = |started: &Counter, dropped: &Counter| {
        let (s, d) = (started.clone(), BumpOnDrop(dropped.clone()));
        async move {
            let _d = d;
            s.bump();
            pending::<()>().await
        }
    };

    let h = pool.spawn(pending_task(&started, &dropped)).unwrap();
    started.wait_for(1).await;
    h.cancel().unwrap();
    assert!(h.await.unwrap_err().task_error().unwrap().is_cancelled());
    dropped.wait_for(1).await;

    // Dropping the future of `run` cancels its task.
    let run = Box::pin(pool.run(pending_task(&started, &dropped)));
    match futures::future::select(run, Box::pin(started.wait_for(2))).await {
        futures::future::Either::Right(((), run)) => drop(run),
        futures::future::Either::Left(_) => unreachable!("the task never ends"),
    }
    dropped.wait_for(2).await;

    let handles: Vec<_> = (0..3)
        .map(|_| pool.spawn(pending_task(&started, &dropped)).unwrap())
        .collect();
    started.wait_for(5).await;
    pool.stop_now().await.unwrap();
    assert_eq!(dropped.get(), 5);
    for h in handles {
        assert!(h.await.unwrap_err().task_error().unwrap().is_cancelled());
    }
}

pub async fn async_bad_setup_and_size_are_reported(rt: ThreadRuntime) {
    let err = AsyncThreadedPool::builder(rt)
        .setup(|| async { Err::<(), _>("no config") })
        .build_async()
        .await
        .unwrap_err();
    assert!(matches!(err, ThreadedError::Setup { .. }), "{err}");
    assert!(err.to_string().contains("no config"));

    // Refused before the thread starts; the unused runtime is shut down without blocking
    // (which would panic inside a caller's tokio runtime).
    let err = AsyncThreadedPool::builder(rt)
        .size(0)
        .build_async()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ThreadedError::Pool(PoolError::InvalidLimit { value: 0, .. })
        ),
        "{err}"
    );
}

pub async fn async_drop_drains_in_the_background(rt: ThreadRuntime) {
    let torn_down = Gate::new();
    let t = torn_down.clone();
    let pool = AsyncThreadedPool::builder(rt)
        .teardown(move || async move {
            t.open();
            Ok::<_, io::Error>(())
        })
        .build_async()
        .await
        .unwrap();
    let (done, gate) = (Counter::new(), Gate::new());
    for _ in 0..3 {
        let (d, g) = (done.clone(), gate.clone());
        drop(pool.spawn(async move {
            g.wait().await;
            d.bump();
        }));
    }
    // Returns while the tasks are still blocked: dropping does not wait.
    drop(pool);
    gate.open();
    torn_down.wait().await;
    assert_eq!(done.get(), 3, "teardown ran before the tasks ended");
}

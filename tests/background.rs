//! `BackgroundTask` and `PeriodicTask` on every runtime and flavour compiled in (tokio
//! multi-thread and current-thread, smol global and own executor, async-std).
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

use async_taskpool::{
    BackgroundError, BackgroundTask, MissedTickBehavior, PeriodicTask, PoolError, TaskPool,
};
use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{BumpOnDrop, Case, Concurrency, Counter, DropFlag, Gate, Sp};

/// Waits (at most 10 s) until `done()` holds, checking every millisecond. Only for states
/// that offer no signal of their own, such as "the task ended by itself".
async fn eventually(sp: &Sp, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        sp.sleep(Duration::from_millis(1)).await;
    }
}

async fn join_returns_the_output_once(sp: Sp) {
    let task = BackgroundTask::spawn(sp.clone(), async { 7 });
    assert!(task.name().starts_with("BackgroundTask-"));
    assert_eq!(task.join().await.unwrap(), 7);
    assert!(!task.is_running());
    assert!(matches!(
        task.join().await,
        Err(BackgroundError::OutcomeTaken { .. })
    ));
    assert!(task.stop().await.unwrap().is_none(), "nothing left to stop");
    let err = task.restart().await.unwrap_err();
    assert!(matches!(err, BackgroundError::NotRestartable { .. }));
    assert!(err.to_string().contains("spawn_with"), "{err}");
}

async fn drop_cancels_the_task(sp: Sp) {
    let (started, dropped) = (Counter::new(), Counter::new());
    let (s, guard) = (started.clone(), BumpOnDrop(dropped.clone()));
    let task = BackgroundTask::builder(sp.clone())
        .name("guarded")
        .spawn(async move {
            let _guard = guard;
            s.bump();
            pending::<()>().await
        });
    started.wait_for(1).await;
    assert!(task.is_running());
    drop(task);
    dropped.wait_for(1).await; // the watchdog fails the test if this never happens
}

async fn stop_returns_after_destructors_ran(sp: Sp) {
    let flag = Arc::new(AtomicBool::new(false));
    let started = Counter::new();
    let (f, s) = (DropFlag(flag.clone()), started.clone());
    let task = BackgroundTask::spawn(sp.clone(), async move {
        let _flag = f;
        s.bump();
        pending::<()>().await
    });
    started.wait_for(1).await;
    assert_eq!(task.stop().await.unwrap(), None);
    assert!(
        flag.load(Ordering::SeqCst),
        "stop returned before the future was dropped"
    );
    assert!(!task.is_running());
    let err = task.join().await.unwrap_err();
    assert!(err.task_error().is_some_and(|e| e.is_cancelled()), "{err}");
    assert_eq!(
        task.stop().await.unwrap(),
        None,
        "stopping twice is harmless"
    );

    // Stopped before its first poll: the future is still dropped before `stop` returns.
    let flag = Arc::new(AtomicBool::new(false));
    let f = DropFlag(flag.clone());
    let task = BackgroundTask::spawn(sp.clone(), async move {
        let _flag = f;
        pending::<()>().await
    });
    assert_eq!(task.stop().await.unwrap(), None);
    assert!(flag.load(Ordering::SeqCst));
}

async fn stop_after_a_natural_end_returns_the_output(sp: Sp) {
    let gate = Gate::new();
    let g = gate.clone();
    let task = BackgroundTask::spawn(sp.clone(), async move {
        g.wait().await;
        5
    });
    gate.open();
    eventually(&sp, "task ends", || !task.is_running()).await;
    assert_eq!(task.stop().await.unwrap(), Some(5));
    assert!(matches!(
        task.join().await,
        Err(BackgroundError::OutcomeTaken { .. })
    ));
}

async fn panics_are_reported_to_join_and_stop(sp: Sp) {
    let task = BackgroundTask::spawn(sp.clone(), async {
        if true {
            panic!("background boom");
        }
    });
    let err = task.join().await.unwrap_err();
    let e = err.task_error().expect("a task error");
    assert!(e.is_panic());
    assert!(err.to_string().contains("background boom"), "{err}");

    let task = BackgroundTask::spawn(sp.clone(), async {
        if true {
            panic!("boom before stop");
        }
    });
    eventually(&sp, "task panics", || !task.is_running()).await;
    let err = task.stop().await.unwrap_err();
    assert!(err.task_error().is_some_and(|e| e.is_panic()), "{err}");
}

async fn restart_keeps_exactly_one_live_run(sp: Sp) {
    let live = Concurrency::default();
    let starts = Counter::new();
    let (l, s) = (live.clone(), starts.clone());
    let task = Arc::new(BackgroundTask::spawn_with(sp.clone(), move || {
        let (live, starts) = (l.clone(), s.clone());
        async move {
            let _inside = live.enter();
            starts.bump();
            pending::<()>().await
        }
    }));
    starts.wait_for(1).await;

    // Eight restarts at once, from tasks that may run on different threads.
    let restarts = TaskPool::new(sp.clone());
    let t = task.clone();
    let group = restarts
        .apply(8, move || {
            let t = t.clone();
            async move { t.restart().await.unwrap() }
        })
        .unwrap();
    assert_eq!(group.join().await.unwrap().completed, 8);
    // A run can be cancelled by the next restart before its first poll, so fewer than nine
    // may have started; the last one always does.
    assert!(task.is_running());
    eventually(&sp, "the last run starts", || live.now() == 1).await;
    assert!(starts.get() <= 9);
    assert_eq!(live.max(), 1, "two runs were alive at once");

    task.stop().await.unwrap();
    assert_eq!(live.now(), 0);
    assert!(!task.is_running());
    let before = starts.get();
    task.restart().await.unwrap();
    starts.wait_for(before + 1).await;
    assert_eq!(live.now(), 1);
    assert!(task.is_running());
}

async fn restart_after_a_natural_end_gives_a_new_output(sp: Sp) {
    let runs = Counter::new();
    let r = runs.clone();
    let task = BackgroundTask::spawn_with(sp.clone(), move || {
        let r = r.clone();
        async move {
            r.bump();
            r.get()
        }
    });
    assert_eq!(task.join().await.unwrap(), 1);
    task.restart().await.unwrap();
    assert_eq!(task.join().await.unwrap(), 2);
}

async fn calls_from_inside_the_task_are_errors(sp: Sp) {
    let (tx, rx) = futures::channel::oneshot::channel::<Arc<BackgroundTask<Vec<String>>>>();
    let task = Arc::new(
        BackgroundTask::builder(sp.clone())
            .name("selfish")
            .spawn(async move {
                let me = rx.await.unwrap();
                let mut errors = vec![me.join().await.unwrap_err().to_string()];
                errors.push(me.stop().await.unwrap_err().to_string());
                errors.push(me.restart().await.unwrap_err().to_string());
                errors
            }),
    );
    tx.send(task.clone()).unwrap();
    let errors = task.join().await.unwrap();
    for (err, method) in errors.iter().zip(["join", "stop", "restart"]) {
        let expected = PoolError::CalledFromOwnTask {
            pool: "selfish".into(),
            method,
        };
        assert_eq!(err, &expected.to_string());
    }
}

async fn periodic_ticks_until_stopped(sp: Sp) {
    let ticks = Counter::new();
    let inside = Concurrency::default();
    let (t, i) = (ticks.clone(), inside.clone());
    let periodic = PeriodicTask::builder(sp.clone(), Duration::from_millis(5))
        .name("heartbeat")
        .spawn(move || {
            let (t, i) = (t.clone(), i.clone());
            async move {
                let _inside = i.enter();
                t.bump();
            }
        })
        .unwrap();
    assert_eq!(periodic.name(), "heartbeat");
    assert_eq!(periodic.interval(), Duration::from_millis(5));
    assert_eq!(periodic.missed_ticks(), MissedTickBehavior::Skip);
    ticks.wait_for(3).await;
    periodic.stop().await.unwrap();
    assert!(!periodic.is_running());
    assert_eq!(inside.now(), 0);
    assert_eq!(inside.max(), 1, "ticks overlapped");
    let done = periodic.ticks();
    assert!(done >= 2, "{done} ticks completed");
    support::yield_n(50).await;
    assert_eq!(periodic.ticks(), done, "a tick ran after stop");

    let before = ticks.get();
    periodic.restart().await.unwrap();
    ticks.wait_for(before + 1).await; // the first tick of a run is at once
    periodic.stop().await.unwrap();
}

async fn periodic_panic_ends_the_task_and_is_reported(sp: Sp) {
    let ticks = Counter::new();
    let t = ticks.clone();
    let periodic = PeriodicTask::spawn(sp.clone(), Duration::from_millis(1), move || {
        let t = t.clone();
        async move {
            t.bump();
            if t.get() == 2 {
                panic!("tick 2 failed");
            }
        }
    })
    .unwrap();
    let why = periodic.join().await;
    assert!(why.task_error().is_some_and(|e| e.is_panic()), "{why}");
    assert!(why.to_string().contains("tick 2 failed"), "{why}");
    assert!(!periodic.is_running());
    assert_eq!(periodic.ticks(), 1);

    let zero = PeriodicTask::spawn(sp.clone(), Duration::ZERO, || async {});
    assert!(matches!(zero, Err(BackgroundError::InvalidInterval { .. })));
}

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            join_returns_the_output_once,
            drop_cancels_the_task,
            stop_returns_after_destructors_ran,
            stop_after_a_natural_end_returns_the_output,
            panics_are_reported_to_join_and_stop,
            restart_keeps_exactly_one_live_run,
            restart_after_a_natural_end_gives_a_new_output,
            calls_from_inside_the_task_are_errors,
            periodic_ticks_until_stopped,
            periodic_panic_ends_the_task_and_is_reported,
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

// ----- missed ticks: time itself is under test, so one runtime is enough -----

/// Runs `case` on one of the runtimes compiled in; the tick loop is runtime-neutral.
fn on_any_runtime(case: Case) {
    #[cfg(feature = "smol")]
    smol_global::run(case);
    #[cfg(all(feature = "tokio", not(feature = "smol")))]
    tokio_multi_thread::run(case);
    #[cfg(all(feature = "async-std", not(any(feature = "smol", feature = "tokio"))))]
    async_std_global::run(case);
}

const INTERVAL: Duration = Duration::from_millis(300);
const SLOW_TICK: Duration = Duration::from_millis(1000);

/// Starts a periodic task whose first tick takes `SLOW_TICK` (missing the ticks due at 300,
/// 600 and 900 ms) and returns when each of the first four ticks started and ended,
/// relative to the first start.
async fn four_ticks(sp: Sp, missed: MissedTickBehavior) -> Vec<(Duration, Duration)> {
    let times = Arc::new(Mutex::new(Vec::new()));
    let ticks = Counter::new();
    let (t, c, timer) = (times.clone(), ticks.clone(), sp.clone());
    let t0 = Arc::new(Mutex::new(None::<Instant>));
    let periodic = PeriodicTask::builder(sp.clone(), INTERVAL)
        .missed_ticks(missed)
        .spawn(move || {
            let (t, c, timer, t0) = (t.clone(), c.clone(), timer.clone(), t0.clone());
            async move {
                let start = Instant::now();
                let first = *t0.lock().unwrap().get_or_insert(start);
                if c.get() == 0 {
                    timer.sleep(SLOW_TICK).await;
                }
                t.lock()
                    .unwrap()
                    .push((start - first, Instant::now() - first));
                c.bump();
            }
        })
        .unwrap();
    ticks.wait_for(4).await;
    periodic.stop().await.unwrap();
    let times = times.lock().unwrap().clone();
    times[..4].to_vec()
}

#[test]
fn missed_ticks_burst_catches_up_back_to_back() {
    on_any_runtime(|sp| {
        Box::pin(async move {
            let t = four_ticks(sp, MissedTickBehavior::Burst).await;
            // Ticks 2-4 were due at 300-900 ms: all run at once after the slow first tick,
            // before the next point of the schedule (1200 ms).
            assert!(t[1].0 >= SLOW_TICK, "{t:?}");
            assert!(t[3].0 < 4 * INTERVAL, "no catch-up burst: {t:?}");
        })
    });
}

#[test]
fn missed_ticks_skip_keeps_to_the_schedule() {
    on_any_runtime(|sp| {
        Box::pin(async move {
            let t = four_ticks(sp, MissedTickBehavior::Skip).await;
            // The ticks due at 300-900 ms are dropped; the next are at 1200, 1500, 1800 ms.
            for (k, tick) in t.iter().enumerate().skip(1) {
                assert!(
                    tick.0 >= INTERVAL * (k as u32 + 3),
                    "tick {k} too early: {t:?}"
                );
            }
        })
    });
}

#[test]
fn missed_ticks_delay_waits_a_full_interval_after_each_tick() {
    on_any_runtime(|sp| {
        Box::pin(async move {
            let t = four_ticks(sp, MissedTickBehavior::Delay).await;
            for k in 1..4 {
                assert!(t[k].0 >= t[k - 1].1 + INTERVAL, "tick {k} too early: {t:?}");
            }
        })
    });
}

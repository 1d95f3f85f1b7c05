//! Model-based random test: random sequences of pool operations (proptest, with shrinking),
//! checked against a reference model after every step and at the end, on every runtime and
//! flavour compiled in. The operations include the hostile inputs of issue 10: map inputs and
//! closures that call the pool, destructors that panic (of futures, outputs and panic
//! payloads), closures holding the last pool handle, concurrent `stop`, and `exec`/`spawn`
//! from inside a pool task.
//!
//! The policies of issue 13 take part too: retried tasks (`retry(policy).spawn_queued_with`,
//! attempts that fail by panic or by output, then behave as a model task), `max_queue_wait`
//! on loose tasks and on map groups (shed or run; exactly shed when every slot is held by a
//! task at a closed gate past the deadline), and maps with a keyed rate limit (items set
//! aside). The two engine bugs these found have regression tests below
//! (`a_retried_task_requeued_behind_later_ids_keeps_its_place`,
//! `a_detached_rate_limited_group_runs_on_without_handles`).
//!
//! `TASKPOOL_MODEL_CASES` sets the number of cases per runtime (default 256; try 20000 for a
//! long local run). A failure prints the shrunk operation sequence.
//!
//! What the model can know on a multi-thread runtime: tasks that wait on a gate the driver
//! holds cannot end before the gate opens (unless cancelled), so their outcome is exact; tasks
//! that return, yield, panic or time out end on their own at some point, so the model allows
//! exactly the outcomes the documented semantics permit (e.g. a running task that was asked
//! to cancel may keep its output). Calls into the pool from user code happen at moments the
//! driver does not see: the model allows their effects from the step the group was made until
//! the step it was seen finished. Everything else (ids, counters, callbacks, FIFO order,
//! limits, lock/close, join) is checked exactly or with sound bounds. For the policies: a
//! retried task keeps one id, runs its failing attempts (all of them unless maybe
//! cancelled), ends with the outcome its spec gives (or cancelled, keeping a failure if the
//! cancel came while one ran), says its attempts in its error and in `tasks()`, and counts
//! in `retried` within bounds (exact without a flush or a cancel); one seen in its backoff
//! when a cancel came (one thread polling everything) ends cancelled with no further
//! attempt. A task or item with a deadline ends shed or as it would have.
//!
//! Each case runs its runtime on a thread of its own, so a deadlock (a blocked runtime
//! thread, which no timer of that runtime can report) fails the case too.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "model/bombs.rs"]
mod bombs;
#[path = "model/driver.rs"]
mod driver;
#[path = "model/ops.rs"]
mod ops;
#[path = "model/tasks.rs"]
mod tasks;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use support::Sp;

/// A case, given the runtime's spawner.
type CaseFn = Box<dyn FnOnce(Sp) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Builds a runtime, runs the future on it, tears it down.
type Runner = fn(CaseFn);

/// What the cases exercised, counted when `TASKPOOL_MODEL_COVERAGE` is set (printed at the
/// end of each flavour's run; counts are shared by the flavours running at once).
static COVERAGE: Mutex<BTreeMap<&str, usize>> = Mutex::new(BTreeMap::new());

pub fn cover(what: &'static str) {
    if std::env::var_os("TASKPOOL_MODEL_COVERAGE").is_some() {
        *COVERAGE.lock().unwrap().entry(what).or_default() += 1;
    }
}

fn cases() -> u32 {
    std::env::var("TASKPOOL_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Runs one case on a thread of its own: a panic fails it with its message, and so does a
/// runtime thread that never comes back (a deadlock).
fn run_isolated(run: Runner, case: ops::Case, strict: bool) -> Result<(), String> {
    let (done, finished) = mpsc::channel::<()>();
    let what = format!("{case:?}");
    let thread = std::thread::Builder::new()
        .name("model case".into())
        .spawn(move || {
            run(Box::new(move |sp| {
                Box::pin(driver::guarded(sp, case, strict))
            }));
            let _ = done.send(());
        })
        .expect("spawn the case's thread");
    let deadline = driver::watchdog() * 3 / 2;
    match finished.recv_timeout(deadline) {
        Ok(()) => thread
            .join()
            .map_err(|_| "the case's thread panicked".into()),
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic with no message".into())),
            Ok(()) => Err("the case's thread ended without reporting".into()),
        },
        // The thread is left behind, stuck.
        Err(RecvTimeoutError::Timeout) => Err(format!(
            "deadlock: the case's runtime did not come back within {deadline:?} (a thread \
             blocked): {what}"
        )),
    }
}

/// `strict`: the runtime polls every task on the driver's thread. `shared`: the runtime's
/// executor is global, so a deadlocked case starves every later one: the first deadlock is
/// reported as is, unshrunk.
fn check(run: Runner, strict: bool, shared: bool) {
    bombs::quiet_intended_panics();
    let config = Config {
        cases: cases(),
        // No regression files in the source tree; a failure prints its shrunk input.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        // Each shrinking run of a hang costs a watchdog: `TASKPOOL_MODEL_SHRINK_SECS` gives
        // such a failure more time to shrink.
        max_shrink_time: std::env::var("TASKPOOL_MODEL_SHRINK_SECS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(120)
            * 1_000,
        ..Config::default()
    };
    let deadlocked: Mutex<Option<String>> = Mutex::new(None);
    // Cases run, and the number of the first that failed (the rest are shrinking runs).
    let (ran, first_failed) = (AtomicUsize::new(0), Mutex::new(None));
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops::case_strategy(), |case| {
        if deadlocked.lock().unwrap().is_some() {
            return Ok(());
        }
        let n = ran.fetch_add(1, SeqCst) + 1;
        let res = run_isolated(run, case, strict);
        if res.is_err() {
            first_failed.lock().unwrap().get_or_insert(n);
        }
        match res {
            Ok(()) => Ok(()),
            Err(e) if shared && e.starts_with("deadlock") => {
                *deadlocked.lock().unwrap() = Some(e);
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(e)),
        }
    });
    let found = |first: Option<usize>| match first {
        Some(n) => format!(
            "first failing case: number {n}; {} shrinking runs after it",
            ran.load(SeqCst) - n
        ),
        None => String::new(),
    };
    if std::env::var_os("TASKPOOL_MODEL_COVERAGE").is_some() {
        eprintln!("coverage: {:#?}", COVERAGE.lock().unwrap());
    }
    let first = *first_failed.lock().unwrap();
    if let Some(e) = deadlocked.into_inner().unwrap() {
        panic!(
            "{e}\n({}, not shrunk: the executor is shared)",
            found(first)
        );
    }
    if let Err(e) = result {
        panic!("{e}\n({})", found(first));
    }
}

#[cfg(feature = "tokio")]
#[test]
fn model_tokio_multi_thread() {
    check(support::flavour::tokio_multi_thread, false, false);
}

#[cfg(feature = "tokio")]
#[test]
fn model_tokio_current_thread() {
    check(support::flavour::tokio_current_thread, true, false);
}

/// tokio current-thread again, the case inside one of the runtime's tasks rather than
/// `block_on`'s future: there an `exec` that finds room runs its task in its caller.
#[cfg(feature = "tokio")]
#[test]
fn model_tokio_current_thread_in_a_task() {
    check(tokio_current_thread_in_a_task, true, false);
}

#[cfg(feature = "tokio")]
fn tokio_current_thread_in_a_task(case: CaseFn) {
    support::flavour::tokio_current_thread(|sp| async move {
        if let Err(e) = tokio::spawn(case(sp)).await {
            // The case's own panic, with its message, as if it had panicked here.
            std::panic::resume_unwind(e.into_panic());
        }
    })
}

#[cfg(feature = "smol")]
#[test]
fn model_smol_global() {
    check(support::flavour::smol_global, false, true);
}

#[cfg(feature = "smol")]
#[test]
fn model_smol_own_executor() {
    check(support::flavour::smol_own_executor, true, false);
}

#[cfg(feature = "async-std")]
#[test]
fn model_async_std() {
    check(support::flavour::async_std_global, false, true);
}

/// Regression test of an engine bug the model's `Retry` op found (issue 13): a retried task
/// queues again for its next attempt under its own (old) id, behind loose tasks with later
/// ids queued meanwhile, and the loose lane's FIFO required keys that never decrease. A debug
/// build aborted (its `debug_assert!` fired inside a pool section); a release build's binary
/// search by id missed the task, so `cancel` said `AlreadyEnded`. Now an id below the newest
/// takes its place in the FIFO (`fifo.rs`). Shrunk by hand from the model (limit 1): a
/// retried task fails its first attempt and waits out its backoff; a task takes the only
/// slot; a third one queues; the backoff ends.
#[cfg(feature = "tokio")]
#[test]
fn a_retried_task_requeued_behind_later_ids_keeps_its_place() {
    use async_taskpool::policy::{Jitter, RetryPolicy};
    use async_taskpool::runtime::TokioSpawner;
    use async_taskpool::{TaskError, TaskPool, TaskState};
    use std::time::Duration;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = TaskPool::builder(TokioSpawner::current())
            .limit(1)
            .build()
            .unwrap();
        let policy = RetryPolicy::<u32>::builder()
            .max_attempts(2)
            .backoff(Duration::from_millis(1), Duration::from_millis(1))
            .jitter(Jitter::None)
            .retry_if(|r: &Result<u32, TaskError>| matches!(r, Ok(0)))
            .build()
            .unwrap();
        let mut made = 0;
        // Task 0: its first attempt fails at once (output 0), its second would return 2.
        let retried = pool
            .build_task()
            .retry(policy)
            .spawn_queued_with(move || {
                made += 1;
                let attempt = made;
                async move {
                    if attempt == 1 {
                        0
                    } else {
                        attempt
                    }
                }
            })
            .unwrap();
        while pool.stats().retrying == 0 {
            tokio::task::yield_now().await;
        }
        // Task 1 takes the only slot; task 2 queues behind it.
        let (open, gate) = futures::channel::oneshot::channel::<()>();
        let holder = pool
            .spawn_queued(async move {
                let _ = gate.await;
                1
            })
            .unwrap();
        let queued = pool.spawn_queued(async { 2 }).unwrap();
        // The backoff ends: task 0 queues again, behind task 2 (here a debug build aborts).
        let id = retried.id();
        loop {
            let requeued = pool
                .tasks()
                .iter()
                .any(|t| t.id == id && t.state == TaskState::Queued && t.attempt == 2);
            if requeued {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        pool.cancel([id])
            .expect("task 0 waits in the queue for its second attempt: cancel finds it");
        open.send(()).unwrap();
        let err = retried.await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert_eq!(holder.await.unwrap(), 1);
        assert_eq!(queued.await.unwrap(), 2);
    });
}

/// Regression test of an engine bug the model's keyed maps found (issue 13): a rate-limited
/// map whose `Group` was dropped (its items run on, detached) stopped for good when the
/// pool's last handle went while the group waited for a token: its timer held the pool
/// weakly and nothing else held it, so the pool was freed with the remaining items never run
/// (no ids, no callbacks). The timer holds the pool now (`rate.rs`). Shrunk by the model
/// (smol, unlimited pool): a keyed map of three `Now` items, one key, `num_concurrent` 1;
/// `Lock`; its `Group` dropped; then every pool handle dropped.
#[cfg(feature = "tokio")]
#[test]
fn a_detached_rate_limited_group_runs_on_without_handles() {
    use async_taskpool::policy::Quota;
    use async_taskpool::runtime::TokioSpawner;
    use async_taskpool::TaskPool;
    use std::sync::Arc;
    use std::time::Duration;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = TaskPool::new(TokioSpawner::current());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        // One start per 20 ms: the second item waits for its token.
        let quota = Quota::per_second(50).unwrap().burst(1).unwrap();
        let group = pool
            .build_group()
            .rate_limit_by(|_: &u32| 0, quota)
            .map(0..3u32, 1, move |x| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, SeqCst);
                    x
                }
            })
            .unwrap();
        drop(group);
        while ran.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        drop(pool);
        // Wait (bounded) for the other two items, which are due within 40 ms.
        for _ in 0..200 {
            if ran.load(SeqCst) == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            ran.load(SeqCst),
            3,
            "the detached group's items all run after the pool's last handle goes"
        );
    });
}

//! Retries (`TaskBuilder::retry(..).spawn_with(..)`) on tokio's paused clock: the backoff's
//! exact virtual times, a wait that holds no slot, the priority kept when the task queues
//! again, and a cancel during the wait. The same behaviours on every runtime flavour, without
//! exact times, are in the main crate's `tests/conformance/policies.rs`.

use async_taskpool::{policy::RetryPolicy, TaskError, TaskState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::{sleep, Instant};

mod common;
use common::{doubling, pool, Starts, SEC};

/// Attempts start exactly after the policy's waits (1, 2, 4 s after each failure), and the
/// task's run time between them does not shift the schedule's waits.
#[tokio::test(start_paused = true)]
async fn attempts_start_after_the_policys_waits() {
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Starts::default();
    let s = starts.clone();
    let h = p
        .build_task()
        .retry(doubling::<()>(4))
        .spawn_with(move || {
            let s = s.clone();
            async move {
                s.push("t", t0);
                sleep(SEC / 2).await; // each attempt runs 0.5 s, then fails
                Err(())
            }
        })
        .await
        .unwrap();
    assert_eq!(
        h.await.unwrap(),
        Err(()),
        "out of attempts: the last output stands"
    );
    let at: Vec<f64> = starts.get().into_iter().map(|(_, t)| t).collect();
    assert_eq!(at, [0.0, 1.5, 4.0, 8.5]);
    assert_eq!(p.stats().retried, 3);
}

/// The wait holds no slot: at limit 1, a queued task starts the moment the first attempt
/// fails and holds the slot for 5 s; the retry, due at 1 s, queues and starts when that slot
/// frees. Queued again, it keeps its priority: it starts before a task queued earlier with a
/// lower one.
#[tokio::test(start_paused = true)]
async fn the_wait_holds_no_slot_and_the_retry_keeps_its_priority() {
    let p = pool(1);
    let t0 = Instant::now();
    let starts = Starts::default();
    let (s, made) = (starts.clone(), Arc::new(AtomicUsize::new(0)));
    let m = made.clone();
    let retried = p
        .build_task()
        .priority(5)
        .retry(doubling::<usize>(3))
        .spawn_with(move || {
            let (s, n) = (s.clone(), m.fetch_add(1, Ordering::SeqCst) + 1);
            async move {
                s.push("retried", t0);
                sleep(SEC).await;
                if n < 2 {
                    Err(())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    let mut others = Vec::new();
    for (who, secs) in [("busy", 5), ("low", 1)] {
        let s = starts.clone();
        others.push(
            p.spawn_queued(async move {
                s.push(who, t0);
                sleep(secs * SEC).await;
            })
            .unwrap(),
        );
    }
    sleep(SEC + SEC / 2).await; // attempt 1 failed at 1 s; its retry was due at 2 s...
    let info = p
        .tasks()
        .into_iter()
        .find(|t| t.id == retried.id())
        .unwrap();
    assert_eq!((info.state, info.attempt), (TaskState::Backoff, 1));
    sleep(SEC).await; // ...and now waits for the slot `busy` holds, as attempt 2
    let info = p
        .tasks()
        .into_iter()
        .find(|t| t.id == retried.id())
        .unwrap();
    assert_eq!((info.state, info.attempt), (TaskState::Queued, 2));
    assert_eq!(retried.await.unwrap(), Ok(2));
    for h in others {
        h.await.unwrap();
    }
    assert_eq!(
        starts.get(),
        [
            ("retried", 0.0),
            ("busy", 1.0),
            ("retried", 6.0),
            ("low", 7.0)
        ]
    );
}

/// A cancel during the wait ends the task at once, as cancelled: `on_cancel` and `on_end`
/// once, no further attempt, the handle resolved without waiting out the backoff; the error
/// after two attempts says so.
#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_wait_ends_the_task_at_once() {
    let p = pool(2);
    let t0 = Instant::now();
    let (ends, cancels, made) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (e, c, m) = (ends.clone(), cancels.clone(), made.clone());
    let h = p
        .build_task()
        .on_end(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .on_cancel(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .retry(doubling::<()>(10))
        .spawn_queued_with(move || {
            m.fetch_add(1, Ordering::SeqCst);
            async { Err(()) }
        })
        .unwrap();
    // Attempts at 0 s and 1 s; the third is due at 3 s. Cancel at 2 s.
    sleep(2 * SEC).await;
    assert_eq!(p.stats().retrying, 1);
    h.cancel().unwrap();
    let err = h.await.unwrap_err();
    assert_eq!(t0.elapsed(), 2 * SEC, "the handle resolved at once");
    assert!(err.is_cancelled(), "{err:?}");
    assert!(
        matches!(&err, TaskError::Retried { attempts: 2, last, .. } if last.is_cancelled()),
        "{err:?}"
    );
    p.join().await.unwrap();
    sleep(60 * SEC).await;
    assert_eq!(
        made.load(Ordering::SeqCst),
        2,
        "no attempt after the cancel"
    );
    assert_eq!(
        (ends.load(Ordering::SeqCst), cancels.load(Ordering::SeqCst)),
        (1, 1)
    );
    let stats = p.stats();
    assert_eq!(
        (stats.cancelled, stats.ended, stats.retried, stats.retrying),
        (1, 1, 2, 0)
    );
}

/// Full jitter keeps each wait within its cap: ten tasks whose first attempt fails at 0 s
/// all start their second attempt within 1 s (the first cap), not all at once.
#[tokio::test(start_paused = true)]
async fn full_jitter_spreads_the_retries_within_the_cap() {
    let p = pool(10);
    let t0 = Instant::now();
    let starts = Starts::default();
    let policy = RetryPolicy::<Result<(), ()>>::builder()
        .max_attempts(2)
        .backoff(SEC, SEC)
        .retry_errors()
        .build()
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..10 {
        let (s, made) = (starts.clone(), Arc::new(AtomicUsize::new(0)));
        handles.push(
            p.build_task()
                .retry(policy.clone())
                .spawn_queued_with(move || {
                    let (s, n) = (s.clone(), made.fetch_add(1, Ordering::SeqCst));
                    async move {
                        if n == 1 {
                            s.push("retry", t0);
                        }
                        if n == 0 {
                            Err(())
                        } else {
                            Ok(())
                        }
                    }
                })
                .unwrap(),
        );
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), Ok(()));
    }
    let at: Vec<f64> = starts.get().into_iter().map(|(_, t)| t).collect();
    assert_eq!(at.len(), 10);
    assert!(at.iter().all(|t| *t <= 1.0), "{at:?}");
    let first = at.iter().cloned().fold(f64::INFINITY, f64::min);
    let last = at.iter().cloned().fold(0.0, f64::max);
    assert!(last > first, "all ten retried at the same instant: {at:?}");
}

//! Retries of group items (`GroupBuilder::retry(..).map(..)`, `SimpleTaskPoolBuilder::retry`)
//! on tokio's paused clock: the backoff's exact virtual times, the wait that holds no slot
//! (the group's next item runs meanwhile, and the retried item goes before the items not
//! pulled yet), and a cancel during the wait. The same behaviours on every runtime flavour,
//! without exact times, are in the main crate's `tests/conformance/policies.rs`.

use async_taskpool::{
    policy::{Jitter, RetryPolicy},
    runtime::TokioSpawner,
    SimpleTaskPool, TaskPool, TaskState,
};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

mod common;
use common::{doubling, pool, Starts, SEC};

/// An item's attempts start exactly after the policy's waits (1, 2, 4 s after each failure);
/// the other item runs once; the results keep input order, the failed item's last output
/// standing.
#[tokio::test(start_paused = true)]
async fn item_attempts_start_after_the_policys_waits() {
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Starts::default();
    let s = starts.clone();
    let group = p
        .build_group()
        .retry(doubling::<&str>(4))
        .map(["a", "b"], 2, move |x: &'static str| {
            let s = s.clone();
            async move {
                s.push(x, t0);
                sleep(SEC / 2).await; // each attempt runs 0.5 s
                if x == "a" {
                    Err(())
                } else {
                    Ok(x)
                }
            }
        })
        .unwrap();
    let out: Vec<_> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, [Err(()), Ok("b")]);
    assert_eq!(
        starts.get(),
        [("a", 0.0), ("b", 0.0), ("a", 1.5), ("a", 4.0), ("a", 8.5)]
    );
    assert_eq!(p.stats().retried, 3);
}

/// At limit 1, an item in its backoff holds no slot: the group's next item starts the moment
/// the attempt fails; once the wait is over the retried item runs next, before the items not
/// pulled yet.
#[tokio::test(start_paused = true)]
async fn the_wait_holds_no_slot_and_the_retry_goes_first() {
    let p = pool(1);
    let t0 = Instant::now();
    let starts = Starts::default();
    let s = starts.clone();
    let tries = Arc::new(Mutex::new(0));
    let group = p
        .build_group()
        .retry(doubling::<()>(3))
        .map(["a", "b", "c"], 1, move |x: &'static str| {
            let (s, tries) = (s.clone(), tries.clone());
            async move {
                s.push(x, t0);
                match x {
                    "a" => {
                        sleep(SEC / 2).await;
                        let mut n = tries.lock().unwrap();
                        *n += 1;
                        if *n == 1 {
                            Err(())
                        } else {
                            Ok(())
                        }
                    }
                    "b" => {
                        sleep(2 * SEC).await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        })
        .unwrap();
    sleep(SEC).await;
    let a = group.ids()[0];
    let info = |p: &TaskPool| {
        let t = p.tasks().into_iter().find(|t| t.id == a).unwrap();
        (t.state, t.attempt)
    };
    assert_eq!(info(&p), (TaskState::Backoff, 1));
    sleep(SEC).await;
    // Its wait ended at 1.5 s; b still holds the only slot: a waits for it, on attempt 2.
    assert_eq!(info(&p), (TaskState::Queued, 2));
    assert_eq!((p.stats().queued, p.stats().retrying), (1, 0));
    let out: Vec<_> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, [Ok(()), Ok(()), Ok(())]);
    // a fails at 0.5 s (wait 1 s: due at 1.5 s), b runs 0.5 to 2.5 s, then a (before c,
    // which was not pulled yet), then c.
    assert_eq!(
        starts.get(),
        [("a", 0.0), ("b", 0.5), ("a", 2.5), ("c", 3.0)]
    );
}

/// A cancel during an item's backoff ends it at once (not at the end of the wait), and
/// `join` returns then.
#[tokio::test(start_paused = true)]
async fn a_cancel_during_an_items_wait_ends_it_at_once() {
    let p = pool(2);
    let t0 = Instant::now();
    let policy = RetryPolicy::<Result<(), ()>>::builder()
        .backoff(10 * SEC, 10 * SEC)
        .jitter(Jitter::None)
        .retry_errors()
        .build()
        .unwrap();
    let group = p
        .build_group()
        .retry(policy)
        .map([()], 1, |()| async { Err(()) })
        .unwrap();
    sleep(3 * SEC).await;
    let id = group.ids()[0];
    p.cancel([id]).unwrap();
    let out: Vec<_> = group.collect().await;
    assert!(out[0].as_ref().unwrap_err().is_cancelled(), "{out:?}");
    p.join().await.unwrap();
    assert_eq!(t0.elapsed(), 3 * SEC);
}

/// A `SimpleTaskPool` with a retry policy runs its job again after the policy's waits.
#[tokio::test(start_paused = true)]
async fn a_simple_pools_tasks_retry_after_the_policys_waits() {
    let t0 = Instant::now();
    let starts = Starts::default();
    let s = starts.clone();
    let pool = SimpleTaskPool::builder(TokioSpawner::current(), move || {
        s.push("job", t0);
        async { Err::<(), ()>(()) }
    })
    .retry(doubling(3))
    .build()
    .unwrap();
    let summary = pool.start(1).unwrap().join().await.unwrap();
    assert_eq!(summary.completed, 1);
    assert_eq!(starts.get(), [("job", 0.0), ("job", 1.0), ("job", 3.0)]);
    assert_eq!(pool.stats().retried, 2);
}

/// Retries immediately (no backoff), up to `max` attempts.
fn at_once<T: Send + 'static>(max: u32) -> RetryPolicy<Result<T, ()>> {
    RetryPolicy::builder()
        .max_attempts(max)
        .backoff(Duration::ZERO, Duration::ZERO)
        .jitter(Jitter::None)
        .retry_errors()
        .build()
        .unwrap()
}

/// An item function logging each attempt's start in `starts`: the first attempt of all (of
/// "a") fails, every other succeeds.
fn a_fails_once(
    starts: Starts,
    t0: Instant,
) -> impl Fn(&'static str) -> futures::future::BoxFuture<'static, Result<&'static str, ()>>
       + Send
       + Sync
       + 'static {
    let failed = Arc::new(Mutex::new(false));
    move |x| {
        let (s, failed) = (starts.clone(), failed.clone());
        Box::pin(async move {
            s.push(x, t0);
            let first = !std::mem::replace(&mut *failed.lock().unwrap(), true);
            if x == "a" && first {
                Err(())
            } else {
                Ok(x)
            }
        })
    }
}

/// Policies compose: in a rate-limited group, each attempt of a retried item takes a token,
/// as a first attempt does (a crawler retrying a 503 stays within the host's quota). At one
/// start a second, "a" fails once: its retry starts at 1 s (before "b", which was not pulled
/// yet), "b" at 2 s; without the token the retry started at once.
#[tokio::test(start_paused = true)]
async fn each_attempt_of_a_retried_item_takes_a_rate_token() {
    use async_taskpool::policy::Quota;
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Starts::default();
    let group = p
        .build_group()
        .rate_limit(Quota::per_second(1).unwrap())
        .retry(at_once::<&str>(3))
        .map(["a", "b"], 1, a_fails_once(starts.clone(), t0))
        .unwrap();
    let out: Vec<_> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, [Ok("a"), Ok("b")]);
    assert_eq!(starts.get(), [("a", 0.0), ("a", 1.0), ("b", 2.0)]);
}

/// The same with a keyed limit: a retried item waits for its own key's token, not for the
/// other keys' ("b" of another host starts at once while "a"'s retry waits a second).
#[tokio::test(start_paused = true)]
async fn a_retried_item_waits_for_its_own_keys_token() {
    use async_taskpool::policy::Quota;
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Starts::default();
    let group = p
        .build_group()
        .rate_limit_by(|x: &&'static str| *x, Quota::per_second(1).unwrap())
        .retry(at_once::<&str>(3))
        .map(["a", "b"], 2, a_fails_once(starts.clone(), t0))
        .unwrap();
    let out: Vec<_> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, [Ok("a"), Ok("b")]);
    let mut got = starts.get();
    got.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(y.0)));
    assert_eq!(got, [("a", 0.0), ("b", 0.0), ("a", 1.0)]);
}

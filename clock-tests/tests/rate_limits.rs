//! Group rate limits (`GroupBuilder::rate_limit`, `rate_limit_by`) on tokio's paused clock:
//! exact virtual start times. The same behaviours on every runtime flavour, with sound
//! bounds instead of exact times, are in the main crate's `tests/conformance/policies.rs`.

#[path = "../../tests/conformance/support.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskError, TaskPool, TryMapError};
use futures::{StreamExt, TryStreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::Log;
use tokio::time::{sleep, Instant};

const MS: Duration = Duration::from_millis(1);

fn pool(limit: usize) -> TaskPool {
    TaskPool::builder(TokioSpawner::current())
        .limit(limit)
        .build()
        .unwrap()
}

/// Milliseconds since `t0` on the paused clock.
fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// A 10/s quota with no burst over 50 ready items starts item k at exactly k × 100 ms, in
/// input order, whatever the group's concurrency; results keep input order.
#[tokio::test(start_paused = true)]
async fn a_plain_quota_spaces_starts_exactly() {
    let p = pool(8);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let quota = Quota::per_second(10).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit(quota)
        .map(0..50u64, 4, move |k| {
            log.push((k, ms_since(t0)));
            async move { k }
        })
        .unwrap();
    let out: Vec<u64> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, (0..50).collect::<Vec<_>>());
    let want: Vec<(u64, u64)> = (0..50).map(|k| (k, k * 100)).collect();
    assert_eq!(starts.get(), want);
    assert_eq!(p.stats().running, 0);
}

/// A burst of 3 at 10/s: three starts at 0, then one every 100 ms.
#[tokio::test(start_paused = true)]
async fn a_burst_starts_at_once_then_the_rate_holds() {
    let p = pool(8);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let quota = Quota::per_second(10).unwrap().burst(3).unwrap();
    let group = p
        .build_group()
        .rate_limit(quota)
        .map(0..6u64, 8, move |_| {
            log.push(ms_since(t0));
            async {}
        })
        .unwrap();
    group.join().await.unwrap();
    assert_eq!(starts.get(), [0, 0, 0, 100, 200, 300]);
}

/// Waiting for a token holds no slot: with a pool limit of 1, a loose task and another
/// group start (and finish) while a rate-limited group waits for its next token.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_token_holds_no_slot() {
    let p = pool(1);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let quota = Quota::per_second(2).unwrap().burst(1).unwrap(); // one per 500 ms
    let limited = p
        .build_group()
        .rate_limit(quota)
        .map(0..3u64, 1, move |k| {
            log.push((format!("limited-{k}"), ms_since(t0)));
            async {}
        })
        .unwrap();
    sleep(10 * MS).await;
    let log = starts.clone();
    let loose = p
        .spawn_queued(async move { log.push(("loose".into(), ms_since(t0))) })
        .unwrap();
    let log = starts.clone();
    let other = p
        .map(0..2u64, 1, move |k| {
            let log = log.clone();
            async move {
                sleep(100 * MS).await;
                log.push((format!("other-{k}"), ms_since(t0)));
            }
        })
        .unwrap();
    loose.await.unwrap();
    other.join().await.unwrap();
    limited.join().await.unwrap();
    let got = starts.get();
    let at = |name: &str| got.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    assert_eq!(at("limited-0"), Some(0));
    assert_eq!(
        at("loose"),
        Some(10),
        "the loose task waited for the rate limit"
    );
    assert_eq!(at("other-0"), Some(110));
    assert_eq!(at("other-1"), Some(210));
    assert_eq!(at("limited-1"), Some(500));
    assert_eq!(at("limited-2"), Some(1000));
}

/// Two hosts at 2/s each, 20 items interleaved: each host's starts are exactly 500 ms
/// apart, and neither waits for the other (both start at 0, 500, 1000, ...).
#[tokio::test(start_paused = true)]
async fn keyed_limits_do_not_wait_for_each_other() {
    let p = pool(8);
    let t0 = Instant::now();
    let starts: Log<(String, u64, u64)> = Log::default();
    let log = starts.clone();
    let items: Vec<(String, u64)> = (0..20u64)
        .map(|k| (if k % 2 == 0 { "a" } else { "b" }.to_owned(), k))
        .collect();
    let quota = Quota::per_second(2).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit_by(|item: &(String, u64)| item.0.clone(), quota)
        .map(items, 4, move |(host, k)| {
            log.push((host, k, ms_since(t0)));
            async move { k }
        })
        .unwrap();
    let out: Vec<u64> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, (0..20).collect::<Vec<_>>(), "results in input order");
    for host in ["a", "b"] {
        let times: Vec<u64> = starts
            .get()
            .into_iter()
            .filter(|(h, ..)| h == host)
            .map(|(.., t)| t)
            .collect();
        let want: Vec<u64> = (0..10).map(|i| i * 500).collect();
        assert_eq!(times, want, "host {host}'s starts");
    }
    let ids_in_order = starts.get().iter().map(|(_, k, _)| *k).collect::<Vec<_>>();
    assert_eq!(ids_in_order, (0..20).collect::<Vec<_>>());
}

/// A key waiting for its token does not hold up the others behind it in the input: three
/// items of host a, then host b's: b starts at once, and a's start 1 s apart.
#[tokio::test(start_paused = true)]
async fn items_of_a_ready_key_pass_items_set_aside() {
    let p = pool(8);
    let t0 = Instant::now();
    let starts: Log<(&'static str, u64)> = Log::default();
    let log = starts.clone();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit_by(|host: &&'static str| *host, quota)
        .map(["a", "a", "a", "b"], 4, move |host| {
            log.push((host, ms_since(t0)));
            async move { host }
        })
        .unwrap();
    let ids: Vec<_> = {
        // Ids are given in input order, set-aside items included.
        sleep(MS).await;
        group.ids()
    };
    assert_eq!(ids.len(), 2, "the two set-aside a items: {ids:?}");
    let out: Vec<_> = group.map(Result::unwrap).collect().await;
    assert_eq!(out, ["a", "a", "a", "b"]);
    assert_eq!(starts.get(), [("a", 0), ("b", 0), ("a", 1000), ("a", 2000)]);
}

/// Beyond `num_concurrent` items set aside, the group waits for the earliest token: with
/// `num_concurrent` 1, one a item is set aside at a time; the next a item, set aside once
/// the first started, holds the b item behind it until a's next token.
#[tokio::test(start_paused = true)]
async fn the_set_aside_items_are_bounded() {
    let p = pool(8);
    let t0 = Instant::now();
    let starts: Log<(&'static str, u64)> = Log::default();
    let log = starts.clone();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit_by(|host: &&'static str| *host, quota)
        .map(["a", "a", "a", "b"], 1, move |host| {
            log.push((host, ms_since(t0)));
            async {}
        })
        .unwrap();
    group.join().await.unwrap();
    assert_eq!(
        starts.get(),
        [("a", 0), ("a", 1000), ("a", 2000), ("b", 2000)]
    );
}

/// Cancelling a group that waits for a token ends it at once: its items not pulled never
/// start, and `join` returns.
#[tokio::test(start_paused = true)]
async fn cancelling_a_waiting_group_ends_it_at_once() {
    let p = pool(4);
    let t0 = Instant::now();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit(quota)
        .map(0..10u64, 2, |k| async move { k })
        .unwrap();
    sleep(1500 * MS).await;
    group.cancel().unwrap();
    let summary = group.join().await.unwrap();
    assert_eq!(ms_since(t0), 1500, "join returned at once");
    assert_eq!((summary.completed, summary.not_started), (2, 8));
    p.join().await.unwrap();
    assert_eq!(ms_since(t0), 1500, "no timer kept the pool busy");
}

/// A set-aside item is a queued task with an id: cancelling it by id ends it at once (its
/// callbacks run), its result is `Cancelled` in its place, and the others run.
#[tokio::test(start_paused = true)]
async fn a_set_aside_item_is_cancellable_by_id() {
    let p = pool(4);
    let t0 = Instant::now();
    let ended = Arc::new(AtomicUsize::new(0));
    let e = ended.clone();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let mut group = p
        .build_group()
        .rate_limit_by(|host: &&'static str| *host, quota)
        .on_end(move |_| {
            let e = e.clone();
            async move {
                e.fetch_add(1, Ordering::SeqCst);
            }
        })
        .map(["a", "a", "b"], 4, |host| async move { host })
        .unwrap();
    assert_eq!(group.next().await.unwrap().unwrap(), "a");
    let waiting = group.ids();
    assert_eq!(waiting.len(), 1, "the second a is set aside: {waiting:?}");
    assert_eq!(
        p.tasks()
            .iter()
            .find(|t| t.id == waiting[0])
            .map(|t| t.state),
        Some(async_taskpool::TaskState::Queued)
    );
    p.cancel(waiting.clone()).unwrap();
    let second = group.next().await.unwrap();
    assert!(matches!(second, Err(TaskError::Cancelled { id }) if id == waiting[0]));
    assert_eq!(ms_since(t0), 0, "it ended at once");
    assert_eq!(group.next().await.unwrap().unwrap(), "b");
    assert!(group.next().await.is_none());
    assert_eq!(ended.load(Ordering::SeqCst), 3, "on_end ran once per item");
    assert_eq!(p.stats().cancelled, 1);
}

/// The group's deadline sheds items waiting for a token, set-aside ones included, at the
/// deadline; the items that started before it ran.
#[tokio::test(start_paused = true)]
async fn the_deadline_sheds_items_waiting_for_a_token() {
    let p = pool(4);
    let t0 = Instant::now();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let plain = p
        .build_group()
        .rate_limit(quota)
        .max_queue_wait(1500 * MS)
        .map(0..5u64, 2, |k| async move { k })
        .unwrap();
    let keyed = p
        .build_group()
        .rate_limit_by(|host: &&'static str| *host, quota)
        .max_queue_wait(1500 * MS)
        .map(["a", "a", "a", "a", "b"], 4, |h| async move { h })
        .unwrap();
    let (plain, keyed) = (plain.join().await.unwrap(), keyed.join().await.unwrap());
    assert_eq!(ms_since(t0), 1500);
    assert_eq!((plain.completed, plain.shed), (2, 3)); // at 0 and 1000 ms
    assert_eq!((keyed.completed, keyed.shed), (3, 2)); // a, b at 0; a at 1000 ms
    assert_eq!(p.stats().shed, 5);
}

/// `try_map` stops at its first error, set-aside items included, at once.
#[tokio::test(start_paused = true)]
async fn try_map_stops_items_waiting_for_a_token() {
    let p = pool(4);
    let t0 = Instant::now();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let items = [("a", 1), ("a", 2), ("b", 0), ("a", 3)];
    let err = p
        .build_group()
        .rate_limit_by(|item: &(&'static str, u32)| item.0, quota)
        .try_map(items, 4, |(_, x)| async move {
            if x == 0 {
                Err("bad")
            } else {
                Ok(x)
            }
        })
        .unwrap()
        .try_collect::<Vec<u32>>()
        .await
        .unwrap_err();
    assert!(matches!(err, TryMapError::Item("bad")));
    p.join().await.unwrap();
    assert_eq!(ms_since(t0), 0, "nothing waited for a token");
    assert!(p.stats().cancelled >= 1, "the set-aside a items");
}

/// `cancel_on_drop`: dropping a group whose items wait for tokens ends them at once.
#[tokio::test(start_paused = true)]
async fn dropping_a_cancel_on_drop_group_ends_its_waiting_items() {
    let p = pool(4);
    let t0 = Instant::now();
    let quota = Quota::per_second(1).unwrap().burst(1).unwrap();
    let mut group = p
        .build_group()
        .cancel_on_drop(true)
        .rate_limit_by(|host: &&'static str| *host, quota)
        .map(["a", "a", "a", "b"], 4, |h| async move { h })
        .unwrap();
    sleep(MS).await; // a and b ran; two a items are set aside
    assert_eq!(group.next().await.unwrap().unwrap(), "a");
    drop(group);
    p.join().await.unwrap();
    assert_eq!(p.stats().cancelled, 2, "the two set-aside a items");
    assert_eq!(ms_since(t0), 1);
}

/// The quota changes at run time: lifting it starts the waiting items at once; a stricter
/// one spaces the next starts by it.
#[tokio::test(start_paused = true)]
async fn the_quota_changes_at_run_time() {
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let hourly = Quota::per_minute(1).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit(hourly)
        .map(0..6u64, 1, move |_| {
            log.push(ms_since(t0));
            async {}
        })
        .unwrap();
    sleep(100 * MS).await;
    group
        .set_rate_limit(Some(Quota::per_second(10).unwrap().burst(1).unwrap()))
        .unwrap();
    sleep(250 * MS).await; // 350 ms
    group.set_rate_limit(None).unwrap();
    assert_eq!(group.rate_limit(), None);
    group.join().await.unwrap();
    // At 100 ms the start owed for the rest of the minute is owed for 100 ms at 10/s (due
    // at 199.8 ms, on tokio's millisecond timer 200 ms); at 350 ms the rest start at once.
    assert_eq!(starts.get(), [0, 200, 300, 350, 350, 350]);
}

/// A group made without a limit gets one at run time.
#[tokio::test(start_paused = true)]
async fn a_group_gets_a_quota_at_run_time() {
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let (tx, rx) = futures::channel::mpsc::unbounded::<u64>();
    let group = p
        .build_group()
        .map_stream(rx, 2, move |_| {
            log.push(ms_since(t0));
            async {}
        })
        .unwrap();
    let quota = Quota::per_second(5).unwrap().burst(1).unwrap();
    group.set_rate_limit(Some(quota)).unwrap();
    assert_eq!(group.rate_limit(), Some(quota));
    for k in 0..4 {
        tx.unbounded_send(k).unwrap();
    }
    drop(tx);
    group.join().await.unwrap();
    assert_eq!(starts.get(), [0, 200, 400, 600]);
}

/// Items arriving on a slow input are rate limited too (they wait in the group's queue, not
/// in a slot), and the input stays lazy: it is polled for the next item only once that
/// item's token is due (so each item here starts 10 ms after its token).
#[tokio::test(start_paused = true)]
async fn a_slow_input_is_rate_limited() {
    let p = pool(4);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let input = futures::stream::iter(0..4u64).then(|k| async move {
        sleep(10 * MS).await;
        k
    });
    let quota = Quota::per_second(10).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit(quota)
        .map_stream(input, 4, move |_| {
            log.push(ms_since(t0));
            async {}
        })
        .unwrap();
    group.join().await.unwrap();
    assert_eq!(starts.get(), [10, 120, 230, 340]);
}

/// A rate limit does not cap concurrency: items that run long overlap, up to
/// `num_concurrent`, even from an input that does not know its length.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_group_still_runs_items_concurrently() {
    let p = pool(8);
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    // A size hint of (0, Some(8)): the group learns its length as it pulls.
    let input = futures::stream::iter(0..8u64).filter(|_| std::future::ready(true));
    assert_eq!(futures::Stream::size_hint(&input), (0, Some(8)));
    let quota = Quota::per_second(10).unwrap().burst(1).unwrap();
    let group = p
        .build_group()
        .rate_limit(quota)
        .map_stream(input, 4, move |_| {
            log.push(ms_since(t0));
            sleep(1000 * MS)
        })
        .unwrap();
    group.join().await.unwrap();
    // Four at once, 100 ms apart; each next one as soon as a slot of the four frees.
    assert_eq!(starts.get(), [0, 100, 200, 300, 1000, 1100, 1200, 1300]);
}

// ----- the pool's rate limit (`PoolBuilder::rate_limit`, `TaskPool::set_rate_limit`) -----

fn rated_pool(limit: usize, quota: Quota) -> TaskPool {
    TaskPool::builder(TokioSpawner::current())
        .limit(limit)
        .rate_limit(quota)
        .build()
        .unwrap()
}

/// The pool's quota counts every start, loose tasks and map items together: with 10/s and
/// no burst, six starts at exactly 0, 100, ..., 500 ms, while the limit (8) would allow all
/// at once and the work runs long (it is starts that are counted, not ends).
#[tokio::test(start_paused = true)]
async fn a_pool_quota_spaces_loose_tasks_and_items_together() {
    let quota = Quota::per_second(10).unwrap().burst(1).unwrap();
    let p = rated_pool(8, quota);
    assert_eq!(p.rate_limit(), Some(quota));
    let t0 = Instant::now();
    let starts = Log::default();
    let mut loose = Vec::new();
    for k in 0..3u64 {
        let log = starts.clone();
        loose.push(
            p.spawn_queued(async move {
                log.push((format!("loose-{k}"), ms_since(t0)));
                sleep(1000 * MS).await;
            })
            .unwrap(),
        );
    }
    let log = starts.clone();
    let group = p
        .map(0..3u64, 3, move |k| {
            log.push((format!("item-{k}"), ms_since(t0)));
            async { sleep(1000 * MS).await }
        })
        .unwrap();
    for h in loose {
        h.await.unwrap();
    }
    assert_eq!(group.join().await.unwrap().completed, 3);
    let got = starts.get();
    let mut times: Vec<u64> = got.iter().map(|(_, t)| *t).collect();
    times.sort_unstable();
    assert_eq!(times, [0, 100, 200, 300, 400, 500], "{got:?}");
    // Each kind in its own order.
    let of = |kind: &str| -> Vec<String> {
        got.iter()
            .filter(|(n, _)| n.starts_with(kind))
            .map(|(n, _)| n.clone())
            .collect()
    };
    assert_eq!(of("loose"), ["loose-0", "loose-1", "loose-2"]);
    assert_eq!(of("item"), ["item-0", "item-1", "item-2"]);
}

/// A burst of 3 at 10/s: three starts at once, then one every 100 ms, across `spawn` and
/// `spawn_queued`; `spawn().await` waits for its token as it waits for room.
#[tokio::test(start_paused = true)]
async fn a_pool_burst_starts_at_once_then_the_rate_holds() {
    let p = rated_pool(8, Quota::per_second(10).unwrap().burst(3).unwrap());
    let t0 = Instant::now();
    let starts = Log::default();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let log = starts.clone();
        handles.push(
            p.spawn_queued(async move { log.push(ms_since(t0)) })
                .unwrap(),
        );
    }
    let log = starts.clone();
    // The fifth waits for its token (at 200 ms: the fourth took the one due at 100 ms).
    let h = p
        .spawn(async move { log.push(ms_since(t0)) })
        .await
        .unwrap();
    assert_eq!(
        ms_since(t0),
        200,
        "spawn().await returns once the task started"
    );
    h.await.unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(starts.get(), [0, 0, 0, 100, 200]);
}

/// Waiting for a pool token holds no slot: with a limit of 1, while a task waits for its
/// token the pool is not full and nothing else runs; a running task's nested `exec` takes
/// no token (it runs in its caller's slot) and starts at once.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_pool_token_holds_no_slot() {
    let p = rated_pool(1, Quota::per_second(2).unwrap().burst(1).unwrap()); // one per 500 ms
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let first = p
        .spawn_queued(async move { log.push(("first".to_string(), ms_since(t0))) })
        .unwrap();
    // The first took the token at 0: the second waits for the token at 500 ms.
    let log = starts.clone();
    let second = p
        .spawn_queued(async move { log.push(("second".to_string(), ms_since(t0))) })
        .unwrap();
    first.await.unwrap();
    sleep(10 * MS).await;
    assert_eq!(p.num_running(), 0, "waiting for a token holds no slot");
    assert_eq!(p.num_queued(), 1);
    assert!(!p.is_full());
    second.await.unwrap();
    assert_eq!(
        starts.get(),
        [("first".to_string(), 0), ("second".to_string(), 500)]
    );
    // A nested exec (from inside the pool) takes no token: it starts in its caller's slot
    // at once, though the next token is due only at 1000 ms.
    let p2 = p.clone();
    let outer = p
        .spawn_queued(async move {
            let before = ms_since(t0);
            let at = p2.exec(async move { ms_since(t0) }).await.unwrap();
            (before, at)
        })
        .unwrap();
    assert_eq!(outer.await.unwrap(), (1000, 1000));
    // The nested one took no token: the next start is due at 1500 ms, not 2000.
    let h = p.spawn(async move { ms_since(t0) }).await.unwrap();
    assert_eq!(h.await.unwrap(), 1500);
}

/// `try_spawn` with a free slot but no token refuses with `RateLimited`, saying when the
/// next token is due; nothing was queued. Once it is due, `try_spawn` starts the task.
#[tokio::test(start_paused = true)]
async fn try_spawn_refuses_without_a_pool_token() {
    let p = rated_pool(4, Quota::per_second(1).unwrap().burst(1).unwrap());
    p.try_spawn(async {}).unwrap().await.unwrap();
    sleep(300 * MS).await;
    let refused = p.try_spawn(async {}).unwrap_err();
    match refused.error() {
        async_taskpool::PoolError::RateLimited { retry_in, .. } => {
            assert_eq!(*retry_in, 700 * MS)
        }
        other => panic!("expected RateLimited, got {other}"),
    }
    assert!(refused.to_string().contains("rate"), "{refused}");
    assert_eq!(p.num_queued(), 0);
    assert_eq!(p.stats().submitted, 1);
    sleep(700 * MS).await;
    p.try_spawn(async {}).unwrap().await.unwrap();
}

/// The pool's quota changes at run time: a looser one brings the next start forward (the
/// start owed is owed at the new rate), a stricter one spaces the next starts by it, `None`
/// starts everything that waited at once; a pool built without one gets one.
#[tokio::test(start_paused = true)]
async fn the_pool_quota_changes_at_run_time() {
    let p = pool(4);
    assert_eq!(p.rate_limit(), None);
    let t0 = Instant::now();
    let starts = Log::default();
    let hourly = Quota::per_minute(1).unwrap().burst(1).unwrap();
    p.set_rate_limit(Some(hourly));
    assert_eq!(p.rate_limit(), Some(hourly));
    let log = starts.clone();
    let group = p
        .map(0..8u64, 1, move |_| {
            log.push(ms_since(t0));
            async {}
        })
        .unwrap();
    sleep(100 * MS).await;
    // Up: the start owed for the rest of the minute is owed for 100 ms at 10/s (due at
    // 199.8 ms, on tokio's millisecond timer 200 ms), then one every 100 ms.
    p.set_rate_limit(Some(Quota::per_second(10).unwrap().burst(1).unwrap()));
    sleep(250 * MS).await; // 350 ms
                           // Down: 2/s. At 350 the start due at 400 is owed for 50 ms at 10/s, so for 250 ms at
                           // 2/s: due at 600 ms, then one every 500 ms.
    p.set_rate_limit(Some(Quota::per_second(2).unwrap().burst(1).unwrap()));
    sleep(800 * MS).await; // 1150 ms
    p.set_rate_limit(None);
    assert_eq!(p.rate_limit(), None);
    group.join().await.unwrap();
    assert_eq!(starts.get(), [0, 200, 300, 600, 1100, 1150, 1150, 1150]);
    // Lifted: starts are free again.
    let h = p.spawn(async move { ms_since(t0) }).await.unwrap();
    assert_eq!(h.await.unwrap(), 1150);
}

/// A group's own quota applies on top of the pool's: its items take a token of each. With
/// the pool at 10/s and the group at 5/s (both without bursts), every start is at one of
/// the pool's token instants (a multiple of 100 ms, never two at once), the group's items
/// are 200 ms apart or more, and loose tasks take the pool's other tokens. (When the
/// group's token and the pool's are due at the same instant, which of the two lanes gets
/// the pool's depends on which timer runs first: so the instants are not all fixed.)
#[tokio::test(start_paused = true)]
async fn a_group_quota_applies_on_top_of_the_pools() {
    let p = rated_pool(8, Quota::per_second(10).unwrap().burst(1).unwrap());
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let group = p
        .build_group()
        .rate_limit(Quota::per_second(5).unwrap().burst(1).unwrap())
        .map(0..3u64, 3, move |k| {
            log.push((format!("item-{k}"), ms_since(t0)));
            async {}
        })
        .unwrap();
    let mut loose = Vec::new();
    for k in 0..3u64 {
        let log = starts.clone();
        loose.push(
            p.spawn_queued(async move { log.push((format!("loose-{k}"), ms_since(t0))) })
                .unwrap(),
        );
    }
    group.join().await.unwrap();
    for h in loose {
        h.await.unwrap();
    }
    let got = starts.get();
    let mut times: Vec<u64> = got.iter().map(|(_, t)| *t).collect();
    times.sort_unstable();
    assert_eq!(times[..4], [0, 100, 200, 300], "{got:?}");
    assert!(times.iter().all(|t| t % 100 == 0), "{got:?}");
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{got:?}");
    assert!(times[5] <= 600, "{got:?}");
    let items: Vec<u64> = got
        .iter()
        .filter(|(n, _)| n.starts_with("item"))
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(items.len(), 3);
    assert!(items.windows(2).all(|w| w[1] - w[0] >= 200), "{got:?}");
}

/// A `SimpleTaskPool` with a quota spaces its copies' starts; lifting it starts the rest.
#[tokio::test(start_paused = true)]
async fn a_simple_pool_quota_spaces_its_copies() {
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let p = async_taskpool::SimpleTaskPool::builder(TokioSpawner::current(), move || {
        let log = log.clone();
        async move { log.push(ms_since(t0)) }
    })
    .rate_limit(Quota::per_second(10).unwrap().burst(1).unwrap())
    .build()
    .unwrap();
    let group = p.start(5).unwrap();
    sleep(250 * MS).await;
    p.set_rate_limit(None);
    group.join().await.unwrap();
    assert_eq!(starts.get(), [0, 100, 200, 250, 250]);
}

/// A map waiting for the pool's token holds no slot either: its worker gave the slot back
/// (at limit 1 the pool is not full), and its items start at the token instants.
#[tokio::test(start_paused = true)]
async fn a_map_waiting_for_a_pool_token_holds_no_slot() {
    let p = rated_pool(1, Quota::per_second(2).unwrap().burst(1).unwrap()); // one per 500 ms
    let t0 = Instant::now();
    let starts = Log::default();
    let log = starts.clone();
    let group = p
        .map(0..3u64, 1, move |_| {
            log.push(ms_since(t0));
            async {}
        })
        .unwrap();
    sleep(10 * MS).await;
    assert_eq!(p.num_running(), 0, "waiting for a token holds no slot");
    assert!(!p.is_full());
    assert!(matches!(
        p.try_spawn(async {}).unwrap_err().error(),
        async_taskpool::PoolError::RateLimited { .. }
    ));
    group.join().await.unwrap();
    assert_eq!(starts.get(), [0, 500, 1000]);
}

/// Work waiting only for a token still runs when every handle of the pool, its tasks and its
/// groups is gone: the rate timers hold the pool while work waits for them (a detached
/// group, and loose tasks, behind the pool's quota and a group's).
#[tokio::test(start_paused = true)]
async fn work_waiting_for_a_token_runs_after_every_handle_is_gone() {
    let ran = Arc::new(AtomicUsize::new(0));
    let p = TaskPool::builder(TokioSpawner::current())
        .rate_limit(Quota::per_second(10).unwrap().burst(1).unwrap())
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = ran.clone();
        drop(
            p.spawn_queued(async move {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    let r = ran.clone();
    let group = p
        .build_group()
        .rate_limit(Quota::per_second(5).unwrap().burst(1).unwrap())
        .unordered()
        .map(0..3, 3, move |_| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    drop(group);
    drop(p);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 6, "every task and item ran");
}

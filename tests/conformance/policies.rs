//! The conformance cases of the scheduling policies (issue 13). Each takes the spawner of the
//! runtime it runs on. Synchronisation is by gates and counters, never by sleeping.

use crate::support::*;
use async_taskpool::{policy::Aimd, Concurrency as GroupConcurrency, PoolError, TaskPool};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn limited(sp: &Sp, limit: usize) -> TaskPool {
    TaskPool::builder(sp.clone()).limit(limit).build().unwrap()
}

/// An item body: counts its start, holds its slot until `gate` opens, and tracks how many run.
fn held(
    started: &Counter,
    gate: &Gate,
    conc: &Concurrency,
) -> impl Fn(u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + Sync
       + 'static {
    let (started, gate, conc) = (started.clone(), gate.clone(), conc.clone());
    move |_| {
        let (started, gate, conc) = (started.clone(), gate.clone(), conc.clone());
        Box::pin(async move {
            let _in = conc.enter();
            started.bump();
            gate.wait().await;
        })
    }
}

/// A group made with `Concurrency::PoolLimit` runs as many items as the pool's limit, and
/// more once the limit is raised (the `map(items, 50, f)` user of issue 13 found a number
/// stays a number); a numeric cap stays put until `set_num_concurrent`.
pub async fn a_group_at_the_pool_limit_follows_set_limit(sp: Sp) {
    let p = limited(&sp, 10);
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let group = p
        .map(
            0..200u32,
            GroupConcurrency::PoolLimit,
            held(&started, &gate, &conc),
        )
        .unwrap();
    started.wait_for(10).await;
    assert_eq!(p.num_running(), 10);
    p.set_limit(100).unwrap();
    started.wait_for(100).await;
    assert_eq!(
        p.num_running(),
        100,
        "the group follows the pool's new limit"
    );
    assert_eq!(conc.max(), 100);
    assert_eq!(group.num_concurrent(), GroupConcurrency::PoolLimit);
    gate.open();
    assert_eq!(group.join().await.unwrap().completed, 200);

    // A number is a cap: raising the pool's limit does not raise it...
    let p = limited(&sp, 10);
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let group = p.map(0..200u32, 10, held(&started, &gate, &conc)).unwrap();
    started.wait_for(10).await;
    p.set_limit(100).unwrap();
    // ...until the group's own cap is raised; then the workers start at once.
    group.set_num_concurrent(30).unwrap();
    started.wait_for(30).await;
    assert_eq!(p.num_running(), 30);
    group
        .set_num_concurrent(GroupConcurrency::PoolLimit)
        .unwrap();
    started.wait_for(100).await;
    assert_eq!(p.num_running(), 100);
    gate.open();
    assert_eq!(group.join().await.unwrap().completed, 200);
    assert_eq!(conc.max(), 100);
}

/// Lowering a group's cap lets its running items finish and starts no new item until fewer
/// than the new cap run; raising it again starts workers at once. Bad values are refused.
pub async fn set_num_concurrent_raises_and_lowers_a_running_group(sp: Sp) {
    let p = TaskPool::new(sp.clone());
    let started = Counter::new();
    let gate = Gate::new();
    let all = Concurrency::default();
    let lowered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let after_lowering: Log<usize> = Log::default();
    let body = {
        let (started, gate, all, lowered, after_lowering) = (
            started.clone(),
            gate.clone(),
            all.clone(),
            lowered.clone(),
            after_lowering.clone(),
        );
        move |_: u32| {
            let (started, gate, all, lowered, after_lowering) = (
                started.clone(),
                gate.clone(),
                all.clone(),
                lowered.clone(),
                after_lowering.clone(),
            );
            async move {
                let _in = all.enter();
                // An item started after the cap went down sees at most 2 running, itself
                // included (`all` counts every item whose future runs).
                let _late = lowered
                    .load(std::sync::atomic::Ordering::SeqCst)
                    .then(|| after_lowering.push(all.now()));
                started.bump();
                gate.wait().await;
                yield_n(2).await;
            }
        }
    };
    let group = p.map(0..60u32, 8, body).unwrap();
    started.wait_for(8).await;
    assert_eq!(p.num_running(), 8);
    assert!(matches!(
        group.set_num_concurrent(0),
        Err(PoolError::InvalidLimit { value: 0, .. })
    ));
    lowered.store(true, std::sync::atomic::Ordering::SeqCst);
    group.set_num_concurrent(2).unwrap();
    assert_eq!(group.num_concurrent(), GroupConcurrency::AtMost(2));
    assert_eq!(p.num_running(), 8, "lowering stops nothing that runs");
    gate.open();
    started.wait_for(30).await;
    let late = after_lowering.get();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|&n| n <= 2),
        "items started after the cap went down to 2 saw this many running: {late:?}"
    );
    assert_eq!(all.max(), 8);
    group
        .set_num_concurrent(GroupConcurrency::PoolLimit)
        .unwrap();
    let summary = group.join().await.unwrap();
    assert_eq!(summary.completed, 60);
}

/// A group built with `cancel_on_drop(true)` stops when its consumer stops: `take`, `?` and
/// `break` drop it, and the items still running are cancelled, the rest never start. By
/// default a dropped group detaches: every item runs.
pub async fn a_cancel_on_drop_group_stops_with_its_consumer(sp: Sp) {
    use futures::StreamExt;
    let p = limited(&sp, 4);
    let started = Counter::new();
    let never = Gate::new();
    // Only items 0 and 1 finish; the others hold their slots until cancelled.
    let body = |started: &Counter, never: &Gate| {
        let (started, never) = (started.clone(), never.clone());
        move |x: u32| {
            let (started, never) = (started.clone(), never.clone());
            async move {
                started.bump();
                if x >= 2 {
                    never.wait().await;
                }
                x
            }
        }
    };
    // `take`
    let first: Vec<u32> = p
        .build_group()
        .cancel_on_drop(true)
        .map(0..200u32, 4, body(&started, &never))
        .unwrap()
        .take(2)
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(first, [0, 1]);
    p.join().await.unwrap();
    assert!(started.get() <= 6, "{} items started", started.get());
    // Every item that started, but 0 and 1, was cancelled (and maybe one that had its id
    // but was not polled yet).
    let stats = p.stats();
    assert!(stats.cancelled as usize >= started.get() - 2, "{stats:?}");
    assert_eq!(stats.ended, stats.cancelled + 2, "{stats:?}");

    // `?` on the first failed item
    async fn until_first_failure(p: &TaskPool) -> Result<usize, async_taskpool::TaskError> {
        let mut group = p
            .build_group()
            .cancel_on_drop(true)
            .map(0..200u32, 4, |x| async move {
                if x == 3 {
                    panic!("item 3 fails");
                }
                if x > 3 {
                    std::future::pending::<()>().await;
                }
            })
            .unwrap();
        let mut read = 0;
        while let Some(r) = group.next().await {
            r?;
            read += 1;
        }
        Ok(read)
    }
    let p = limited(&sp, 4);
    let err = until_first_failure(&p).await.unwrap_err();
    assert!(err.is_panic(), "{err}");
    p.join().await.unwrap();
    assert!(p.num_ended() < 200);

    // `break`
    let p = limited(&sp, 4);
    let started = Counter::new();
    let mut group = p
        .build_group()
        .cancel_on_drop(true)
        .map(0..200u32, 4, body(&started, &never))
        .unwrap();
    while let Some(r) = group.next().await {
        if r.unwrap() == 1 {
            break;
        }
    }
    drop(group);
    p.join().await.unwrap();
    assert!(started.get() <= 6);

    // The default: a dropped group detaches and runs to its end.
    let p = limited(&sp, 4);
    let started = Counter::new();
    let gate = Gate::new();
    let g = gate.clone();
    let s = started.clone();
    let group = p
        .map(0..50u32, 4, move |_| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                s.bump();
                g.wait().await
            }
        })
        .unwrap();
    drop(group);
    gate.open();
    p.join().await.unwrap();
    assert_eq!(started.get(), 50);
    assert_eq!(p.stats().cancelled, 0);
}

/// `try_map` stops at the first failure, before anyone reads the stream: nothing more is
/// pulled, the items running are cancelled, and the stream yields the outputs before the
/// failure, then the failure, and ends. Items cancelled because of it are not yielded.
pub async fn try_map_stops_at_the_first_failure(sp: Sp) {
    use async_taskpool::TryMapError;
    use futures::{StreamExt, TryStreamExt};
    for ordered in [true, false] {
        let p = limited(&sp, 4);
        let started = Counter::new();
        let never = Gate::new();
        let (s, n) = (started.clone(), never.clone());
        let builder = p.build_group();
        let builder = if ordered {
            builder
        } else {
            builder.unordered()
        };
        let group = builder
            .try_map(0..1000u32, 4, move |x| {
                let (s, n) = (s.clone(), n.clone());
                async move {
                    s.bump();
                    match x {
                        0..=4 => Ok(x),
                        // Fails once items 6, 7 and 8 run beside it.
                        5 => {
                            s.wait_for(9).await;
                            Err(format!("item {x} failed"))
                        }
                        _ => {
                            n.wait().await;
                            Ok(x)
                        }
                    }
                }
            })
            .unwrap();
        // The group stops without a reader: the pool becomes idle.
        p.join().await.unwrap();
        assert_eq!(started.get(), 9, "nothing started after the failure");
        let summary = group.summary();
        assert_eq!(
            (summary.completed, summary.cancelled),
            (6, 3),
            "{summary:?}"
        );
        assert_eq!(group.stopped_by().map(|id| id.get()), Some(5));
        let out: Vec<_> = group.collect().await;
        let (oks, errs): (Vec<_>, Vec<_>) = out.into_iter().partition(Result::is_ok);
        let mut oks: Vec<u32> = oks.into_iter().map(Result::unwrap).collect();
        oks.sort_unstable();
        assert_eq!(oks, [0, 1, 2, 3, 4], "ordered: {ordered}");
        assert_eq!(errs.len(), 1);
        match errs.into_iter().next().unwrap() {
            Err(TryMapError::Item(e)) => assert_eq!(e, "item 5 failed"),
            other => panic!("{other:?}"),
        }
    }

    // A panic stops it too, and so does cancelling one of its items.
    let p = limited(&sp, 2);
    let group = p
        .try_map(0..100u32, 2, |x| async move {
            if x == 1 {
                panic!("boom");
            }
            Ok::<_, String>(x)
        })
        .unwrap();
    match group.try_collect::<Vec<_>>().await {
        Err(TryMapError::Task(e)) => assert!(e.is_panic(), "{e}"),
        other => panic!("{other:?}"),
    }
    p.join().await.unwrap();
    // The panic may have stopped an item that started beside it: count from here.
    let cancelled_before = p.stats().cancelled;
    let started = Counter::new();
    let s = started.clone();
    let group = p
        .try_map(0..100u32, 2, move |x| {
            let s = s.clone();
            async move {
                s.bump();
                std::future::pending::<()>().await;
                Ok::<_, String>(x)
            }
        })
        .unwrap();
    started.wait_for(2).await;
    let victim = group.ids()[1];
    p.cancel([victim]).unwrap();
    match group.try_collect::<Vec<_>>().await {
        Err(TryMapError::Task(async_taskpool::TaskError::Cancelled { id })) => {
            assert_eq!(
                id, victim,
                "the item cancelled is the error, not its sibling"
            )
        }
        other => panic!("{other:?}"),
    }
    p.join().await.unwrap();
    assert_eq!(p.stats().cancelled - cancelled_before, 2);

    // All good: every output, in order.
    let all: Vec<u32> = p
        .try_map(0..100u32, 2, |x| async move { Ok::<_, String>(x) })
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

/// Work that holds its slot until released, oldest first, so the tests below drive the pool
/// one start at a time, as if every item took the same time: each started item logs its lane
/// and waits; [`Relay::release_oldest`] ends the oldest one running.
type Release = futures::channel::oneshot::Sender<()>;

#[derive(Clone, Default)]
struct Relay {
    running: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(char, Release)>>>,
    started: Counter,
    order: Log<char>,
}

impl Relay {
    fn work(&self, lane: char) -> impl std::future::Future<Output = ()> + Send + 'static {
        let relay = self.clone();
        async move {
            let (tx, rx) = futures::channel::oneshot::channel();
            relay.running.lock().unwrap().push_back((lane, tx));
            relay.order.push(lane);
            relay.started.bump();
            let _ = rx.await;
        }
    }

    fn item<T>(
        &self,
        lane: char,
    ) -> impl Fn(T) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
           + Send
           + Sync
           + 'static {
        let relay = self.clone();
        move |_| Box::pin(relay.work(lane))
    }

    /// Ends the oldest item running and waits for the start that takes its slot; returns
    /// the lanes of the item ended and of the one started.
    async fn release_oldest(&self) -> (char, char) {
        let next = self.started.get() + 1;
        let (lane, tx) = self
            .running
            .lock()
            .unwrap()
            .pop_front()
            .expect("something runs");
        let _ = tx.send(());
        self.started.wait_for(next).await;
        (lane, self.order.get()[next - 1])
    }

    /// Ends everything running now and later.
    async fn release_all(&self, pool: &TaskPool) {
        loop {
            let all: Vec<_> = self.running.lock().unwrap().drain(..).collect();
            for (_, tx) in all {
                let _ = tx.send(());
            }
            if pool.num_running() == 0 && pool.num_queued() == 0 && pool.stats().backlog == 0 {
                break;
            }
            yield_n(1).await;
        }
    }
}

/// Counts of each lane in `order[from..]`, per window of `window` starts.
fn windows(order: &[char], from: usize, window: usize, lanes: [char; 2]) -> Vec<(usize, usize)> {
    order[from..]
        .chunks_exact(window)
        .map(|w| {
            let count = |l| w.iter().filter(|&&c| c == l).count();
            (count(lanes[0]), count(lanes[1]))
        })
        .collect()
}

/// Queued loose tasks start by priority, then in submission order.
pub async fn queued_tasks_start_by_priority_then_fifo(sp: Sp) {
    let p = TaskPool::builder(sp.clone()).limit(1).build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = p.spawn_queued(async move { g.wait().await }).unwrap();
    let order: Log<&'static str> = Log::default();
    let mut handles = Vec::new();
    for (name, priority) in [
        ("a0", 0),
        ("b5", 5),
        ("c0", 0),
        ("d-1", -1),
        ("e5", 5),
        ("f9", 9),
    ] {
        let order = order.clone();
        handles.push(
            p.build_task()
                .priority(priority)
                .spawn_queued(async move { order.push(name) })
                .unwrap(),
        );
    }
    assert_eq!(p.num_queued(), 6);
    gate.open();
    blocker.await.unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(order.get(), ["f9", "b5", "e5", "a0", "c0", "d-1"]);
}

/// A group of higher priority takes every slot that frees while it has items waiting (ageing
/// aside); a lower one waits. Changing a group's priority at run time takes effect at the
/// next start.
pub async fn higher_priority_groups_go_first(sp: Sp) {
    // Ageing far away: strict priority.
    let p = TaskPool::builder(sp.clone())
        .limit(4)
        .ageing(10_000)
        .build()
        .unwrap();
    let relay = Relay::default();
    let low = p
        .build_group()
        .priority(-1)
        .map(0..1000u32, GroupConcurrency::PoolLimit, relay.item('l'))
        .unwrap();
    relay.started.wait_for(4).await;
    let high = p
        .build_group()
        .priority(1)
        .map(0..40u32, GroupConcurrency::PoolLimit, relay.item('h'))
        .unwrap();
    for _ in 0..40 {
        relay.release_oldest().await;
    }
    // Every start after `high` came goes to it until its 40 items started.
    let order = relay.order.get();
    assert_eq!(
        order[4..].iter().filter(|&&c| c == 'h').count(),
        40,
        "{order:?}"
    );
    // Up the low group's priority: it now goes first.
    low.set_priority(2).unwrap();
    assert_eq!(low.priority(), 2);
    for _ in 0..8 {
        relay.release_oldest().await;
    }
    assert!(relay.order.get()[44..].iter().all(|&c| c == 'l'));
    low.cancel().unwrap();
    relay.release_all(&p).await;
    assert_eq!(high.join().await.unwrap().completed, 40);
}

/// A higher-priority group at its own cap (here the pool's limit) keeps the slot of each item
/// that ends for its next item, though it wants no more slots than it holds; a lower one waits.
pub async fn a_capped_group_keeps_its_slots_over_lower_priority(sp: Sp) {
    let p = TaskPool::builder(sp.clone())
        .limit(3)
        .ageing(10_000)
        .build()
        .unwrap();
    let relay = Relay::default();
    let high = p
        .build_group()
        .priority(1)
        .map(0..12u32, 2, relay.item('h'))
        .unwrap();
    relay.started.wait_for(2).await;
    // A loose task in the third slot; when it ends, its slot goes to the low group (the high
    // one is at its cap), which leaves the high group out of the ring of waiting lanes.
    let gate = Gate::new();
    let g = gate.clone();
    let loose = p.spawn_queued(async move { g.wait().await }).unwrap();
    let low = p
        .map(0..100u32, GroupConcurrency::PoolLimit, relay.item('l'))
        .unwrap();
    gate.open();
    loose.await.unwrap();
    relay.started.wait_for(3).await;
    let mut high_started = 2;
    while high_started < 12 {
        let (ended, started) = relay.release_oldest().await;
        if ended == 'h' {
            assert_eq!(
                started,
                'h',
                "the high group lost its slot: {:?}",
                relay.order.get()
            );
            high_started += 1;
        }
    }
    low.cancel().unwrap();
    relay.release_all(&p).await;
    assert_eq!(high.join().await.unwrap().completed, 12);
}

/// Ageing: a low-priority task waiting behind a stream of higher-priority work is passed over
/// at most `ageing + L - 1` times (`L` lanes waiting), then starts: here exactly `ageing`.
pub async fn ageing_bounds_how_long_low_priority_waits(sp: Sp) {
    const AGEING: usize = 8;
    let p = TaskPool::builder(sp.clone())
        .limit(4)
        .ageing(AGEING)
        .build()
        .unwrap();
    assert_eq!(p.ageing(), AGEING);
    let relay = Relay::default();
    let _high = p
        .build_group()
        .priority(10)
        .map(0..10_000u32, GroupConcurrency::PoolLimit, relay.item('h'))
        .unwrap();
    relay.started.wait_for(4).await;
    // Three low tasks queue behind the busy high-priority group (2 lanes wait: L = 2).
    for _ in 0..3 {
        drop(
            p.build_task()
                .priority(-10)
                .spawn_queued(relay.work('x'))
                .unwrap(),
        );
    }
    let bound = AGEING + 2 - 1;
    for _ in 0..4 * (bound + 1) {
        relay.release_oldest().await;
    }
    let order = relay.order.get();
    let lows: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 'x')
        .map(|(i, _)| i)
        .collect();
    assert_eq!(lows.len(), 3, "every low task started: {order:?}");
    let mut last = 3; // the fourth start was the last before the low tasks queued
    for &at in &lows {
        let passed_over = at - last - 1;
        assert!(
            passed_over <= bound,
            "a low task was passed over {passed_over} times (bound {bound}): {order:?}"
        );
        assert_eq!(
            passed_over, AGEING,
            "priority holds until ageing: {order:?}"
        );
        last = at;
    }
    p.cancel_all();
    relay.release_all(&p).await;
}

/// Weighted fair shares: two busy groups of weights 3 and 1 hold slots 3:1 (every window of
/// four limits' worth of starts, once settled), at a limit that divides evenly and at one
/// that does not; equal weights share equally; the loose tasks share as one lane of the
/// pool's `loose_weight`.
pub async fn busy_groups_hold_slots_by_weight(sp: Sp) {
    for limit in [8usize, 10] {
        let p = limited(&sp, limit);
        let relay = Relay::default();
        let a = p
            .build_group()
            .weight(3)
            .map(0..100_000u32, GroupConcurrency::PoolLimit, relay.item('a'))
            .unwrap();
        let b = p
            .build_group()
            .weight(1)
            .map(0..100_000u32, GroupConcurrency::PoolLimit, relay.item('b'))
            .unwrap();
        relay.started.wait_for(limit).await;
        let window = 4 * limit;
        for _ in 0..12 * window {
            relay.release_oldest().await;
        }
        let order = relay.order.get();
        // Settled after two windows; then every window is within one slot's worth of 3:1.
        for (wa, wb) in windows(&order, 2 * window, window, ['a', 'b']) {
            let share = wa as f64 / (wa + wb) as f64;
            assert!(
                (share - 0.75).abs() <= 1.0 / limit as f64,
                "limit {limit}: a window of {window} starts went {wa}:{wb} (share {share:.3})"
            );
        }
        let (ta, tb) = windows(&order, 2 * window, 10 * window, ['a', 'b'])[0];
        let share = ta as f64 / (ta + tb) as f64;
        eprintln!(
            "weights 3:1, limit {limit}: {ta}:{tb} starts over {} (share {share:.3})",
            10 * window
        );
        assert!(
            (share - 0.75).abs() < 0.02,
            "limit {limit}: {ta}:{tb} over {} starts",
            10 * window
        );
        a.cancel().unwrap();
        b.cancel().unwrap();
        relay.release_all(&p).await;
    }

    // Equal weights (the default): equal shares.
    let p = limited(&sp, 8);
    let relay = Relay::default();
    let a = p
        .map(0..100_000u32, GroupConcurrency::PoolLimit, relay.item('a'))
        .unwrap();
    let b = p
        .map(0..100_000u32, GroupConcurrency::PoolLimit, relay.item('b'))
        .unwrap();
    relay.started.wait_for(8).await;
    for _ in 0..12 * 32 {
        relay.release_oldest().await;
    }
    for (wa, wb) in windows(&relay.order.get(), 64, 32, ['a', 'b']) {
        assert_eq!((wa, wb), (16, 16));
    }
    a.cancel().unwrap();
    b.cancel().unwrap();
    relay.release_all(&p).await;

    // Loose tasks (weight 2) beside a group (weight 1): 2:1.
    let p = TaskPool::builder(sp.clone())
        .limit(9)
        .loose_weight(2)
        .build()
        .unwrap();
    let relay = Relay::default();
    let g = p
        .map(0..100_000u32, GroupConcurrency::PoolLimit, relay.item('g'))
        .unwrap();
    relay.started.wait_for(9).await;
    for _ in 0..2000 {
        drop(p.spawn_queued(relay.work('t')).unwrap());
    }
    for _ in 0..12 * 36 {
        relay.release_oldest().await;
    }
    for (wt, wg) in windows(&relay.order.get(), 9 + 72, 36, ['t', 'g']) {
        assert_eq!((wt, wg), (24, 12));
    }
    g.cancel().unwrap();
    p.cancel_all();
    relay.release_all(&p).await;
}

/// Counts `on_end` and `on_cancel` runs.
#[derive(Clone, Default)]
struct Callbacks {
    end: Counter,
    cancel: Counter,
}

/// A queued task that cannot start within its `max_queue_wait` is shed: it ends as
/// `TaskError::Shed` without running, `on_end` runs once (`on_cancel` not), and it counts as
/// shed. One that gets its slot in time runs. (Exact times: `tests/deadlines.rs`.)
pub async fn a_task_that_cannot_start_in_time_is_shed(sp: Sp) {
    use std::time::Duration;
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let g = gate.clone();
    let busy = p.spawn_queued(async move { g.wait().await }).unwrap();
    let calls = Callbacks::default();
    let (e, c) = (calls.end.clone(), calls.cancel.clone());
    let ran = Counter::new();
    let r = ran.clone();
    let late = p
        .build_task()
        .max_queue_wait(Duration::from_millis(20))
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .spawn_queued(async move { r.bump() })
        .unwrap();
    let patient = p
        .build_task()
        .max_queue_wait(Duration::from_secs(3600))
        .spawn_queued(async { "ran" })
        .unwrap();
    let err = late.await.unwrap_err();
    assert!(err.is_shed(), "{err}");
    calls.end.wait_for(1).await;
    assert_eq!((calls.end.get(), calls.cancel.get(), ran.get()), (1, 0, 0));
    let stats = p.stats();
    assert_eq!(
        (stats.shed, stats.cancelled, stats.queued),
        (1, 0, 1),
        "{stats:?}"
    );
    gate.open();
    busy.await.unwrap();
    assert_eq!(patient.await.unwrap(), "ran");
    p.join().await.unwrap();
    assert_eq!(p.stats().shed, 1);
}

/// A group's items that have not started by its deadline are shed, each with its own result
/// and one `on_end`, while the items running go on; the summary and the pool count them.
pub async fn a_group_sheds_what_did_not_start_in_time(sp: Sp) {
    use std::time::Duration;
    let p = limited(&sp, 2);
    let gate = Gate::new();
    let called = Counter::new();
    let ends = Counter::new();
    let (g, c, e) = (gate.clone(), called.clone(), ends.clone());
    // The deadline leaves the first two items ample time to start on a loaded machine: a
    // worker that finds the input busy (its puller preempted) gives its slot back, and an
    // item not started by the deadline is rightly shed.
    let group = p
        .build_group()
        .max_queue_wait(Duration::from_millis(300))
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .map(0..20u32, 2, move |x| {
            c.bump();
            let g = g.clone();
            async move {
                g.wait().await;
                x
            }
        })
        .unwrap();
    // Both slots are held by running items from here until the gate opens. (The canary
    // used to be queued before this: a slot given back by a worker went to it, and it ran.)
    called.wait_for(2).await;
    // A loose task queued behind them, with a deadline due after the group's: when it is
    // shed, the group's deadline has passed too.
    let canary = p
        .build_task()
        .max_queue_wait(Duration::from_millis(500))
        .spawn_queued(async {})
        .unwrap();
    assert!(canary.await.unwrap_err().is_shed());
    gate.open();
    let results: Vec<_> = futures::StreamExt::collect(group).await;
    assert_eq!(results.len(), 20);
    assert!(results[..2].iter().all(Result::is_ok), "{results:?}");
    assert!(results[2..]
        .iter()
        .all(|r| r.as_ref().unwrap_err().is_shed()));
    assert_eq!(called.get(), 2, "shed items never call the closure");
    ends.wait_for(20).await;
    p.join().await.unwrap();
    let stats = p.stats();
    assert_eq!((stats.ended, stats.shed), (21, 19), "{stats:?}");
}

/// A group's rate limit spaces its items' starts by the quota's interval at least (GCRA
/// with no burst: start k is never before start 0 + k intervals, on the runtime's clock),
/// starts them in input order, and keeps results in input order.
pub async fn a_group_rate_limit_spaces_starts(sp: Sp) {
    use async_taskpool::policy::Quota;
    use std::time::{Duration, Instant};
    let p = limited(&sp, 4);
    let starts: Log<(u32, Instant)> = Log::default();
    let log = starts.clone();
    let quota = Quota::per_second(50).unwrap().burst(1).unwrap(); // one per 20 ms
    let group = p
        .build_group()
        .rate_limit(quota)
        .map(0..6u32, 4, move |x| {
            log.push((x, Instant::now()));
            async move { x }
        })
        .unwrap();
    let out: Vec<u32> =
        futures::StreamExt::collect(futures::StreamExt::map(group, Result::unwrap)).await;
    assert_eq!(out, [0, 1, 2, 3, 4, 5]);
    let starts = starts.get();
    let order: Vec<u32> = starts.iter().map(|(x, _)| *x).collect();
    assert_eq!(order, [0, 1, 2, 3, 4, 5], "started in input order");
    let t0 = starts[0].1;
    for (k, (_, at)) in starts.iter().enumerate() {
        let earliest = Duration::from_millis(20) * k as u32;
        assert!(
            at.duration_since(t0) >= earliest,
            "start {k} came {:?} after the first, before {earliest:?}",
            at.duration_since(t0)
        );
    }
}

/// Waiting for a token holds no slot: with a pool limit of 1 and a group whose next token is
/// a minute away, a loose task and another group run to the end; cancelling the waiting
/// group ends it at once.
pub async fn a_rate_limited_group_waits_without_a_slot(sp: Sp) {
    use async_taskpool::policy::Quota;
    let p = limited(&sp, 1);
    let started = Counter::new();
    let s = started.clone();
    let per_minute = Quota::per_minute(1).unwrap().burst(1).unwrap();
    let waiting = p
        .build_group()
        .rate_limit(per_minute)
        .map(0..5u32, 1, move |x| {
            s.bump();
            async move { x }
        })
        .unwrap();
    started.wait_for(1).await;
    assert_eq!(p.spawn_queued(async { 7 }).unwrap().await.unwrap(), 7);
    let other = p.map(0..10u32, 1, |x| async move { x }).unwrap();
    assert_eq!(other.join().await.unwrap().completed, 10);
    assert_eq!(started.get(), 1, "the next token is a minute away");
    waiting.cancel().unwrap();
    let summary = waiting.join().await.unwrap();
    assert_eq!((summary.completed, summary.not_started), (1, 4));
    p.join().await.unwrap();
}

/// Keyed limits: items of a key with no token are set aside (with their ids, as queued
/// tasks) while items of other keys run; a set-aside item is cancelled by id at once, and
/// lifting the limit starts the rest.
pub async fn keyed_rate_limits_set_items_aside(sp: Sp) {
    use async_taskpool::policy::Quota;
    use async_taskpool::{TaskError, TaskState};
    let p = limited(&sp, 4);
    let ran = Counter::new();
    let r = ran.clone();
    let per_minute = Quota::per_minute(1).unwrap().burst(1).unwrap();
    let items = ["a", "a", "b", "a", "c"];
    let group = p
        .build_group()
        .rate_limit_by(|host: &&'static str| *host, per_minute)
        .map(items, 4, move |host| {
            r.bump();
            async move { host }
        })
        .unwrap();
    ran.wait_for(3).await; // a, b, c
                           // The set-aside items were registered, as queued tasks, before c (pulled after them)
                           // started: no wait is needed.
    let aside: Vec<_> = p
        .tasks()
        .into_iter()
        .filter(|t| t.state == TaskState::Queued)
        .map(|t| t.id)
        .collect();
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside.iter().all(|id| group.ids().contains(id)));
    assert_eq!(ran.get(), 3, "the second and third a wait for a's token");
    p.cancel([aside[0]]).unwrap();
    group.set_rate_limit(None).unwrap();
    let results: Vec<_> = futures::StreamExt::collect(group).await;
    assert_eq!(results.len(), 5);
    assert!(matches!(results[1], Err(TaskError::Cancelled { id }) if id == aside[0]));
    let ok: Vec<&str> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, ["a", "b", "a", "c"], "the rest ran, in input order");
    p.join().await.unwrap();
}

/// A group's deadline sheds the items waiting for a token, set-aside ones included.
pub async fn a_group_deadline_sheds_items_waiting_for_a_token(sp: Sp) {
    use async_taskpool::policy::Quota;
    use std::time::Duration;
    let p = limited(&sp, 4);
    let per_minute = Quota::per_minute(1).unwrap().burst(1).unwrap();
    let plain = p
        .build_group()
        .rate_limit(per_minute)
        .max_queue_wait(Duration::from_millis(30))
        .map(0..5u32, 2, |x| async move { x })
        .unwrap();
    let keyed = p
        .build_group()
        .rate_limit_by(|host: &&'static str| *host, per_minute)
        .max_queue_wait(Duration::from_millis(30))
        .map(["a", "a", "b", "a"], 4, |h| async move { h })
        .unwrap();
    let plain = plain.join().await.unwrap();
    let keyed = keyed.join().await.unwrap();
    assert_eq!((plain.completed, plain.shed), (1, 4));
    assert_eq!((keyed.completed, keyed.shed), (2, 2));
    p.join().await.unwrap();
    assert_eq!(p.stats().shed, 6);
}

/// `rate_limit_by` with a key function of another type than the items is refused, saying
/// how to fix it.
pub async fn a_rate_key_of_the_wrong_type_is_refused(sp: Sp) {
    use async_taskpool::policy::Quota;
    let p = limited(&sp, 4);
    let err = p
        .build_group()
        .rate_limit_by(|x: &u64| *x, Quota::per_second(1).unwrap())
        .map(0..3u32, 2, |x| async move { x })
        .expect_err("refused");
    assert!(matches!(err, PoolError::RateKeyType { .. }), "{err:?}");
    assert!(err.to_string().contains("`|item: &u32| ...`"), "{err}");
    assert_eq!(p.stats().submitted, 0);
}

/// A `rate_limit_by` key function that panics does not take the pool down or lose the item:
/// the panic is logged and the item runs, under a key shared by such items. (The key
/// function runs through the engine's user-code guard, which debug builds check runs with
/// no pool lock held.)
pub async fn a_panicking_rate_key_is_contained(sp: Sp) {
    use async_taskpool::policy::Quota;
    let p = limited(&sp, 4);
    let quota = Quota::per_second(1000).unwrap();
    let out: Vec<u32> = futures::StreamExt::collect(futures::StreamExt::map(
        p.build_group()
            .rate_limit_by(
                |x: &u32| {
                    assert!(*x != 2, "no key for 2");
                    *x % 2
                },
                quota,
            )
            .map(0..5u32, 2, |x| async move { x * 10 })
            .unwrap(),
        Result::unwrap,
    ))
    .await;
    assert_eq!(out, [0, 10, 20, 30, 40]);
    p.join().await.unwrap();
}

/// The pool's limit, seen from inside its tasks: the least and the most seen.
#[derive(Clone, Default)]
struct LimitSeen(Arc<Mutex<(usize, usize)>>);

impl LimitSeen {
    fn see(&self, pool: &TaskPool) {
        let limit = pool.limit().expect("an adaptive limit is a limit");
        let mut seen = self.0.lock().unwrap();
        *seen = if seen.1 == 0 {
            (limit, limit)
        } else {
            (seen.0.min(limit), seen.1.max(limit))
        };
    }

    fn range(&self) -> (usize, usize) {
        *self.0.lock().unwrap()
    }
}

/// An adaptive limit climbs while tasks succeed at full use, up to its limiter's max and
/// no further (loose tasks and group items feed it alike); concurrency never passes it.
pub async fn an_adaptive_limit_rises_with_successes_up_to_its_max(sp: Sp) {
    let p = TaskPool::builder(sp.clone())
        .adaptive_limit(Aimd::builder(2, 6).initial(2).build().unwrap())
        .build()
        .unwrap();
    assert_eq!(p.limit(), Some(2));
    let (conc, seen) = (Concurrency::default(), LimitSeen::default());
    // Rounds of as many tasks as the limit, all running before any ends: the limit is in
    // full use, as the limiter wants before it climbs.
    let mut samples = 0;
    for round in 0..40 {
        let limit = p.limit().unwrap();
        let (started, gate) = (Counter::new(), Gate::new());
        let body = {
            let (c, s, q, started, gate) = (
                conc.clone(),
                seen.clone(),
                p.clone(),
                started.clone(),
                gate.clone(),
            );
            move |_| {
                let (c, s, q, started, gate) = (
                    c.clone(),
                    s.clone(),
                    q.clone(),
                    started.clone(),
                    gate.clone(),
                );
                async move {
                    let _in = c.enter();
                    s.see(&q);
                    started.bump();
                    gate.wait().await;
                }
            }
        };
        if round % 2 == 0 {
            let handles: Vec<_> = (0..limit)
                .map(|i| p.spawn_queued(body(i)).unwrap())
                .collect();
            started.wait_for(limit).await;
            gate.open();
            for h in handles {
                h.await.unwrap();
            }
        } else {
            let group = p.map(0..limit, GroupConcurrency::PoolLimit, body).unwrap();
            started.wait_for(limit).await;
            gate.open();
            assert_eq!(group.join().await.unwrap().completed, limit as u64);
        }
        samples += limit as u64;
        if round >= 30 {
            assert_eq!(p.limit(), Some(6), "it rose to its max by round {round}");
        }
    }
    let (least, most) = seen.range();
    assert!(
        least >= 2 && most <= 6,
        "the limit left 2..=6: {least}..={most}"
    );
    assert!(conc.max() <= 6, "{} ran at once", conc.max());
    let a = p.adaptive().unwrap();
    assert_eq!(
        (a.limiter.as_str(), a.min, a.max, a.limit),
        ("aimd", 2, 6, 6)
    );
    assert_eq!((a.samples, a.overloads), (samples, 0));
}

/// An adaptive limit falls on overloads (reported by a task, or a timeout) down to its
/// limiter's min and no further; new bounds clamp it; `set_limit` replaces it with a fixed
/// limit that tasks no longer move.
pub async fn an_adaptive_limit_falls_on_errors_and_timeouts_down_to_its_min(sp: Sp) {
    let p = TaskPool::builder(sp.clone())
        .adaptive_limit(
            Aimd::builder(3, 40)
                .initial(32)
                .backoff(0.5)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let seen = LimitSeen::default();
    // One at a time, so each overload is news to the limiter (it cuts once per round trip).
    let overloaded = |p: &TaskPool| {
        let (q, s) = (p.clone(), seen.clone());
        async move {
            s.see(&q);
            q.report_overload()
        }
    };
    assert!(p.exec(overloaded(&p)).await.unwrap(), "reported");
    assert_eq!(p.limit(), Some(16));
    let never = p
        .build_task()
        .timeout(Duration::from_millis(1))
        .spawn_queued(futures::future::pending::<()>())
        .unwrap();
    assert!(never.await.unwrap_err().is_timeout());
    assert_eq!(p.limit(), Some(8), "a timeout cuts too");
    let panicked = p.spawn_queued(async { panic!("a bug") }).unwrap();
    assert!(panicked.await.is_err());
    assert_eq!(p.limit(), Some(4), "so does a panic");
    for _ in 0..3 {
        assert!(p.exec(overloaded(&p)).await.unwrap());
    }
    assert_eq!(p.limit(), Some(3), "never under the min");
    let (least, most) = seen.range();
    assert!(
        least >= 3 && most <= 40,
        "the limit left 3..=40: {least}..={most}"
    );
    assert!(!p.report_overload(), "not from one of its tasks");
    let a = p.adaptive().unwrap();
    assert_eq!((a.samples, a.overloads), (6, 6));

    // Cancelled tasks tell nothing.
    let gate = Gate::new();
    let g = gate.clone();
    let h = p.spawn_queued(async move { g.wait().await }).unwrap();
    p.cancel([h.id()]).unwrap();
    assert!(h.await.unwrap_err().is_cancelled());
    assert_eq!(p.adaptive().unwrap().overloads, 6);

    // New bounds clamp the limit at once; bad ones are refused.
    p.set_adaptive_bounds(5, 10).unwrap();
    assert_eq!(p.limit(), Some(5));
    assert!(p.set_adaptive_bounds(0, 10).is_err());
    assert!(p.set_adaptive_bounds(9, 8).is_err());

    // A fixed limit replaces it: tasks no longer move the limit.
    p.set_limit(7).unwrap();
    assert_eq!(p.adaptive(), None);
    assert!(
        !p.exec(overloaded(&p)).await.unwrap(),
        "nothing to report to"
    );
    assert_eq!(p.limit(), Some(7));
    assert!(
        p.set_adaptive_bounds(1, 2).is_err(),
        "no adaptive limit to bound"
    );
}

/// A keyed job: counts its runs (first polls) and the drops of its future, and ends with
/// `out` once `gate` opens.
fn keyed_job(
    runs: &Counter,
    drops: &Counter,
    gate: &Gate,
    out: u32,
) -> impl std::future::Future<Output = u32> + Send + 'static {
    let (runs, gate, dropped) = (runs.clone(), gate.clone(), BumpOnDrop(drops.clone()));
    async move {
        let _dropped = dropped;
        runs.bump();
        gate.wait().await;
        out
    }
}

/// Spawns with a key while a live task has it join that task: its future runs once, every
/// handle gets its output, the joiners' futures are dropped unpolled; other keys run on
/// their own; once the task ended, the key starts a new task. Joins also come from the
/// pool's own tasks, concurrently.
pub async fn keyed_spawns_share_one_live_task(sp: Sp) {
    // Room for the three keyed tasks and the six that join from inside the pool.
    let p = limited(&sp, 16);
    let (runs, drops, gate) = (Counter::new(), Counter::new(), Gate::new());
    let leader = p
        .spawn_keyed("k", keyed_job(&runs, &drops, &gate, 1))
        .unwrap();
    assert!(leader.is_leader());
    let id = leader.id().expect("the leader's task is submitted");
    let mut joiners: Vec<_> = (0..20)
        .map(|i| {
            p.spawn_keyed("k", keyed_job(&runs, &drops, &gate, 100 + i))
                .unwrap()
        })
        .collect();
    assert_eq!(drops.get(), 20, "the joiners' futures were dropped at once");
    assert!(joiners.iter().all(|j| !j.is_leader() && j.id() == Some(id)));
    // Concurrent joins from the pool's own tasks.
    let joined = Counter::new();
    let from_tasks: Vec<_> = (0..6)
        .map(|i| {
            let (q, runs, drops, gate, joined) = (
                p.clone(),
                runs.clone(),
                drops.clone(),
                gate.clone(),
                joined.clone(),
            );
            p.spawn_queued(async move {
                let h = q
                    .spawn_keyed("k", keyed_job(&runs, &drops, &gate, 200 + i))
                    .unwrap();
                joined.bump();
                (h.is_leader(), h.id(), h.await.unwrap())
            })
            .unwrap()
        })
        .collect();
    joined.wait_for(6).await;
    // Another key runs on its own.
    let other = p
        .spawn_keyed("other", keyed_job(&runs, &drops, &gate, 2))
        .unwrap();
    assert!(other.is_leader());
    assert_ne!(other.id(), Some(id));
    // A key of another type is another key.
    let typed = p
        .spawn_keyed(7u8, keyed_job(&runs, &drops, &gate, 3))
        .unwrap();
    assert!(typed.is_leader());
    runs.wait_for(3).await;
    gate.open();
    for j in joiners.drain(..) {
        assert_eq!(j.await.unwrap(), 1);
    }
    for t in from_tasks {
        assert_eq!(t.await.unwrap(), (false, Some(id), 1));
    }
    assert_eq!(leader.await.unwrap(), 1);
    assert_eq!((other.await.unwrap(), typed.await.unwrap()), (2, 3));
    assert_eq!(runs.get(), 3, "one run per key");
    // The task ended: the key starts afresh.
    let again = p
        .spawn_keyed("k", keyed_job(&runs, &drops, &gate, 4))
        .unwrap();
    assert!(again.is_leader());
    assert_ne!(again.id(), Some(id));
    assert_eq!(again.await.unwrap(), 4);
    assert_eq!(runs.get(), 4);
    p.join().await.unwrap();
    assert_eq!(
        p.stats().submitted,
        6 + 4,
        "the joining tasks and one task per flight"
    );
}

/// Dropping a joiner's handle leaves the shared task running for the others; cancelling the
/// task by id ends it for every handle; a panicking task gives every handle its panic.
pub async fn a_keyed_task_is_cancelled_or_panics_for_every_waiter(sp: Sp) {
    let p = limited(&sp, 4);
    let (runs, drops, gate) = (Counter::new(), Counter::new(), Gate::new());
    let a = p
        .spawn_keyed(1u32, keyed_job(&runs, &drops, &gate, 1))
        .unwrap();
    let b = p
        .spawn_keyed(1u32, keyed_job(&runs, &drops, &gate, 2))
        .unwrap();
    let c = p
        .spawn_keyed(1u32, keyed_job(&runs, &drops, &gate, 3))
        .unwrap();
    runs.wait_for(1).await;
    drop(b); // stops waiting; the task runs on
    gate.open();
    assert_eq!((a.await.unwrap(), c.await.unwrap()), (1, 1));

    let gate = Gate::new();
    let a = p
        .spawn_keyed(2u32, keyed_job(&runs, &drops, &gate, 1))
        .unwrap();
    let b = p
        .spawn_keyed(2u32, keyed_job(&runs, &drops, &gate, 2))
        .unwrap();
    p.cancel([b.id().unwrap()]).unwrap();
    for err in [a.await.unwrap_err(), b.await.unwrap_err()] {
        assert!(
            matches!(&*err, async_taskpool::ExecError::Task(e) if e.is_cancelled()),
            "{err}"
        );
    }

    let leader = p
        .spawn_keyed("boom", async { panic!("the leader fails") })
        .unwrap();
    let joiners: Vec<_> = (0..5)
        .map(|_| p.spawn_keyed("boom", async { 0u8 }).unwrap())
        .collect();
    let errors = std::iter::once(leader).chain(joiners);
    for h in errors {
        let err = h.await.unwrap_err();
        assert!(
            matches!(&*err, async_taskpool::ExecError::Task(e) if e.is_panic()),
            "{err}"
        );
    }
    // A closed pool refuses a new key.
    p.close();
    let err = p.spawn_keyed("late", async { 0u8 }).unwrap_err();
    assert!(matches!(err, PoolError::Closed { .. }), "{err}");
}

/// A limiter of the user's own: its default name is its type's, its bounds cannot move, and
/// one that panics leaves the limit as it was while the pool and its tasks carry on.
pub async fn a_custom_limiter_that_panics_leaves_the_limit_as_it_was(sp: Sp) {
    #[derive(Debug)]
    struct Fickle {
        samples: usize,
    }
    impl async_taskpool::policy::Limiter for Fickle {
        fn on_sample(&mut self, _: async_taskpool::policy::Sample, _: std::time::Instant) -> usize {
            self.samples += 1;
            if self.samples % 2 == 0 {
                panic!("a limiter bug");
            }
            3 + self.samples
        }
        fn limit(&self) -> usize {
            3
        }
        fn bounds(&self) -> (usize, usize) {
            (1, 100)
        }
    }
    let p = TaskPool::builder(sp.clone())
        .adaptive_limit(Fickle { samples: 0 })
        .build()
        .unwrap();
    assert_eq!(p.limit(), Some(3));
    assert!(p.adaptive().unwrap().limiter.ends_with("Fickle"));
    assert_eq!(p.exec(async { 1 }).await.unwrap(), 1);
    assert_eq!(p.limit(), Some(4), "its first sample set 4");
    assert_eq!(
        p.exec(async { 2 }).await.unwrap(),
        2,
        "its panic is not the task's"
    );
    assert_eq!(p.limit(), Some(4), "the panic left the limit");
    assert_eq!(p.exec(async { 3 }).await.unwrap(), 3);
    assert_eq!(p.limit(), Some(6));
    let err = p.set_adaptive_bounds(1, 10).unwrap_err();
    assert!(
        err.to_string().contains("cannot change its bounds"),
        "{err}"
    );
}
// ----- retries (`TaskBuilder::retry(..).spawn_with(..)`) -----

/// A policy that retries `Err` outputs, with no wait between attempts.
fn retry_errors<T, E>(max_attempts: u32) -> async_taskpool::policy::RetryPolicy<Result<T, E>> {
    async_taskpool::policy::RetryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(std::time::Duration::ZERO, std::time::Duration::ZERO)
        .retry_errors()
        .build()
        .unwrap()
}

/// Every attempt of a retried task runs under one id; its handle resolves once, with the
/// final outcome; `on_end` runs once (and `on_cancel` never) however many attempts ran; the
/// pool counts the retries and the task once.
pub async fn a_retried_task_keeps_its_id_and_ends_once(sp: Sp) {
    let p = limited(&sp, 2);
    let calls = Callbacks::default();
    let (e, c) = (calls.end.clone(), calls.cancel.clone());
    let ids = Log::default();
    let made = Counter::new();
    let (ids2, made2) = (ids.clone(), made.clone());
    let handle = p
        .build_task()
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .retry(retry_errors(5))
        .spawn_queued_with(move || {
            made2.bump();
            let n = made2.get();
            let ids = ids2.clone();
            async move {
                ids.push(async_taskpool::current_task_id().unwrap());
                if n < 3 {
                    Err(format!("attempt {n} failed"))
                } else {
                    Ok(n)
                }
            }
        })
        .unwrap();
    let id = handle.id();
    assert_eq!(handle.await.unwrap(), Ok(3));
    assert_eq!(ids.get(), [id, id, id], "one id across the attempts");
    p.join().await.unwrap();
    calls.end.wait_for(1).await;
    assert_eq!((calls.end.get(), calls.cancel.get(), made.get()), (1, 0, 3));
    let stats = p.stats();
    assert_eq!(
        (stats.retried, stats.ended, stats.retrying, stats.submitted),
        (2, 1, 0, 1),
        "{stats:?}"
    );

    // Out of attempts: the last attempt's output stands (an `Ok(Err)` is an output).
    let h = p
        .build_task()
        .retry(retry_errors::<(), _>(3))
        .spawn_with(|| async { Err("down") })
        .await
        .unwrap();
    assert_eq!(h.await.unwrap(), Err("down"));
    assert_eq!(p.stats().retried, 4);
}

/// Panics and run timeouts are retried only by a policy that opted in; each panicking attempt
/// is isolated as a lone task's is, and the final error says how many attempts ran.
pub async fn panics_and_timeouts_are_retried_only_when_opted_in(sp: Sp) {
    use async_taskpool::{policy::RetryPolicy, TaskError};
    use std::time::Duration;
    let p = limited(&sp, 2);
    let zero = (Duration::ZERO, Duration::ZERO);

    // Not opted in: one attempt, the plain error.
    let made = Counter::new();
    let m = made.clone();
    let policy = RetryPolicy::<()>::builder()
        .backoff(zero.0, zero.1)
        .build()
        .unwrap();
    let err = p
        .build_task()
        .retry(policy)
        .spawn_queued_with(move || {
            m.bump();
            async { panic!("boom") }
        })
        .unwrap()
        .await
        .unwrap_err();
    assert!(matches!(err, TaskError::Panicked { .. }), "{err:?}");
    assert_eq!((err.attempts(), made.get()), (1, 1));

    // Opted in: every attempt panics, the last error says 3 attempts and what the last was.
    let made = Counter::new();
    let m = made.clone();
    let policy = RetryPolicy::<()>::builder()
        .backoff(zero.0, zero.1)
        .retry_panics()
        .build()
        .unwrap();
    let err = p
        .build_task()
        .retry(policy)
        .spawn_queued_with(move || {
            m.bump();
            async { panic!("boom") }
        })
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!((err.attempts(), made.get()), (3, 3));
    match &err {
        TaskError::Retried {
            attempts: 3, last, ..
        } => {
            assert!(matches!(**last, TaskError::Panicked { ref message, .. } if message == "boom"))
        }
        other => panic!("not Retried: {other:?}"),
    }
    assert!(err.to_string().contains("after 3 attempts"), "{err}");

    // Run timeouts: each attempt gets the timeout afresh.
    let policy = RetryPolicy::<()>::builder()
        .max_attempts(2)
        .backoff(zero.0, zero.1)
        .retry_timeouts()
        .build()
        .unwrap();
    let err = p
        .build_task()
        .timeout(Duration::from_millis(5))
        .retry(policy)
        .spawn_queued_with(std::future::pending::<()>)
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.attempts() == 2, "{err:?}");
    p.join().await.unwrap();
    let stats = p.stats();
    assert_eq!(
        (stats.panicked, stats.timed_out, stats.retried, stats.ended),
        (2, 1, 3, 3),
        "{stats:?}"
    );
}

/// Between attempts a retried task holds no slot: with a limit of 1, another task starts the
/// moment the attempt fails. Meanwhile the task is listed (`Backoff`, attempt 1) and counted
/// as retrying, and a cancel ends it at once: cancelled, callbacks once, no further attempt.
/// `cancel_all` ends a task in its backoff too.
pub async fn the_wait_between_attempts_holds_no_slot_and_can_be_cancelled(sp: Sp) {
    use async_taskpool::{policy::RetryPolicy, TaskState};
    use std::time::Duration;
    let p = limited(&sp, 1);
    let hour = Duration::from_secs(3600);
    let policy = RetryPolicy::<Result<(), ()>>::builder()
        .backoff(hour, hour)
        .jitter(async_taskpool::policy::Jitter::None)
        .retry_errors()
        .build()
        .unwrap();
    let calls = Callbacks::default();
    let (e, c) = (calls.end.clone(), calls.cancel.clone());
    let (gate, made) = (Gate::new(), Counter::new());
    let (g, m) = (gate.clone(), made.clone());
    let retried = p
        .build_task()
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .retry(policy.clone())
        .spawn_queued_with(move || {
            m.bump();
            let g = g.clone();
            async move {
                g.wait().await;
                Err(())
            }
        })
        .unwrap();
    let (other_started, other_gate) = (Counter::new(), Gate::new());
    let (s, og) = (other_started.clone(), other_gate.clone());
    let other = p
        .spawn_queued(async move {
            s.bump();
            og.wait().await;
        })
        .unwrap();
    assert_eq!(
        other_started.get(),
        0,
        "the limit is 1 and the retried task holds it"
    );
    gate.open(); // attempt 1 fails: its slot goes to `other` at once
    other_started.wait_for(1).await;
    let info = p
        .tasks()
        .into_iter()
        .find(|t| t.id == retried.id())
        .unwrap();
    assert_eq!(
        (info.state, info.attempt),
        (TaskState::Backoff, 1),
        "{info:?}"
    );
    let stats = p.stats();
    assert_eq!(
        (stats.running, stats.retrying, stats.retried, stats.queued),
        (1, 1, 1, 0),
        "{stats:?}"
    );
    retried.cancel().unwrap();
    let err = retried.await.unwrap_err();
    assert!(err.is_cancelled() && err.attempts() == 1, "{err:?}");
    calls.end.wait_for(1).await;
    assert_eq!((calls.cancel.get(), calls.end.get(), made.get()), (1, 1, 1));
    assert_eq!(p.stats().retrying, 0);
    other_gate.open();
    other.await.unwrap();
    p.join().await.unwrap();

    // `cancel_all` reaches a task in its backoff; `join` then returns.
    let made = Counter::new();
    let m = made.clone();
    let h = p
        .build_task()
        .retry(policy)
        .spawn_queued_with(move || {
            m.bump();
            async { Err(()) }
        })
        .unwrap();
    // It holds the only slot until its attempt fails: then this one starts.
    let marker = Counter::new();
    let mk = marker.clone();
    let _marker = p.spawn_queued(async move { mk.bump() }).unwrap();
    marker.wait_for(1).await;
    assert_eq!(p.stats().retrying, 1);
    p.cancel_all();
    assert!(h.await.unwrap_err().is_cancelled());
    p.join().await.unwrap();
    assert_eq!(made.get(), 1);
}

/// `join` waits for a task in its backoff: it returns once the task's last attempt ended.
pub async fn join_waits_for_a_task_between_attempts(sp: Sp) {
    use async_taskpool::policy::RetryPolicy;
    use std::time::Duration;
    let p = limited(&sp, 4);
    let made = Counter::new();
    let m = made.clone();
    let policy = RetryPolicy::<Result<usize, ()>>::builder()
        .backoff(Duration::from_millis(20), Duration::from_millis(20))
        .jitter(async_taskpool::policy::Jitter::None)
        .retry_errors()
        .build()
        .unwrap();
    let h = p
        .build_task()
        .retry(policy)
        .spawn_with(move || {
            let n = m.bumped();
            async move {
                if n < 2 {
                    Err(())
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    p.join().await.unwrap();
    assert!(
        h.is_finished(),
        "join returned before the second attempt ended"
    );
    assert_eq!(made.get(), 2);
    assert_eq!(h.await.unwrap(), Ok(2));
}

// ----- retries of group items (`GroupBuilder::retry(..).map(..)`, `apply`, `SimpleTaskPool`) -----

/// The id of the task with `id`'s entry in `tasks()`: its state and attempt.
fn live(p: &TaskPool, id: async_taskpool::TaskId) -> Option<(async_taskpool::TaskState, u32)> {
    p.tasks()
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| (t.state, t.attempt))
}

/// Every attempt of a retried map item runs under one id, by calling the function again on
/// (a copy of) the item; `TaskInfo` shows the attempt it is on; its result comes once, in its
/// place in the input order; `on_end` runs once per item (never `on_cancel`); the pool counts
/// the retries and each item once. `apply`'s factory is called again for each attempt;
/// panics and timeouts are retried only when the policy opted in, and the final error says
/// how many attempts ran.
pub async fn a_retried_item_keeps_its_id_and_place_and_ends_once(sp: Sp) {
    use async_taskpool::{current_task_id, policy::RetryPolicy, TaskError, TaskState};
    use futures_util::StreamExt;
    let p = limited(&sp, 2);
    let calls = Callbacks::default();
    let (e, c) = (calls.end.clone(), calls.cancel.clone());
    let ids = Log::default();
    let (made, gate, second) = (Counter::new(), Gate::new(), Counter::new());
    let (ids2, made2, g2, s2) = (ids.clone(), made.clone(), gate.clone(), second.clone());
    let group = p
        .build_group()
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .retry(retry_errors(5))
        .map(vec![0u32, 1, 2], 2, move |x| {
            let (ids, made, gate, second) = (ids2.clone(), made2.clone(), g2.clone(), s2.clone());
            async move {
                if x != 0 {
                    return Ok(x);
                }
                made.bump();
                let n = made.get();
                ids.push(current_task_id().unwrap());
                if n == 2 {
                    second.bump();
                    gate.wait().await;
                }
                if n < 3 {
                    Err(format!("attempt {n} failed"))
                } else {
                    Ok(x)
                }
            }
        })
        .unwrap();
    second.wait_for(1).await;
    let id = ids.get()[0];
    assert_eq!(live(&p, id), Some((TaskState::Running, 2)));
    gate.open();
    let out: Vec<_> = group.map(Result::unwrap).collect().await;
    assert_eq!(
        out,
        [Ok(0), Ok(1), Ok(2)],
        "input order, item 0 after its retries"
    );
    assert_eq!(ids.get(), [id, id, id], "one id across the attempts");
    p.join().await.unwrap();
    calls.end.wait_for(3).await;
    assert_eq!((calls.end.get(), calls.cancel.get(), made.get()), (3, 0, 3));
    let stats = p.stats();
    assert_eq!(
        (stats.retried, stats.ended, stats.retrying),
        (2, 3, 0),
        "{stats:?}"
    );

    // `apply`: the factory is called again; panics are retried when opted in.
    let zero = Duration::ZERO;
    let made = Counter::new();
    let m = made.clone();
    let policy = RetryPolicy::<()>::builder()
        .backoff(zero, zero)
        .retry_panics()
        .build()
        .unwrap();
    let out: Vec<_> = p
        .build_group()
        .retry(policy)
        .apply(1, move || {
            m.bump();
            async { panic!("boom") }
        })
        .unwrap()
        .collect()
        .await;
    let err = out[0].as_ref().unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!((err.attempts(), made.get()), (3, 3));
    assert!(
        matches!(err, TaskError::Retried { attempts: 3, last, .. } if last.is_panic()),
        "{err:?}"
    );

    // Not opted in: one attempt, the plain error.
    let made = Counter::new();
    let m = made.clone();
    let policy = RetryPolicy::<()>::builder()
        .backoff(zero, zero)
        .build()
        .unwrap();
    let out: Vec<_> = p
        .build_group()
        .retry(policy)
        .map(vec![()], 1, move |()| {
            m.bump();
            async { panic!("boom") }
        })
        .unwrap()
        .collect()
        .await;
    let err = out[0].as_ref().unwrap_err();
    assert!(matches!(err, TaskError::Panicked { .. }), "{err:?}");
    assert_eq!(made.get(), 1);

    // Run timeouts, opted in: each attempt gets the timeout afresh.
    let policy = RetryPolicy::<()>::builder()
        .max_attempts(2)
        .backoff(zero, zero)
        .retry_timeouts()
        .build()
        .unwrap();
    let out: Vec<_> = p
        .build_group()
        .timeout(Duration::from_millis(5))
        .retry(policy)
        .map(vec![()], 1, |()| std::future::pending::<()>())
        .unwrap()
        .collect()
        .await;
    let err = out[0].as_ref().unwrap_err();
    assert!(err.is_timeout() && err.attempts() == 2, "{err:?}");
    p.join().await.unwrap();
}

/// A policy with an hour between attempts (never reached: the test cancels first).
fn retry_errors_hourly() -> async_taskpool::policy::RetryPolicy<Result<(), ()>> {
    let hour = Duration::from_secs(3600);
    async_taskpool::policy::RetryPolicy::builder()
        .backoff(hour, hour)
        .jitter(async_taskpool::policy::Jitter::None)
        .retry_errors()
        .build()
        .unwrap()
}

/// Between attempts a map item holds no slot: with a limit of 1, the group's next item runs
/// while the failed one waits (listed as `Backoff`, attempt 1, counted as retrying). A
/// cancel by id ends it at once: cancelled, its callbacks once, no further attempt, its
/// place in the results kept. Cancelling the group, or dropping a `cancel_on_drop` group,
/// ends an item in its backoff too, and `join` returns.
pub async fn an_item_between_attempts_holds_no_slot_and_can_be_cancelled(sp: Sp) {
    use async_taskpool::{current_task_id, TaskState};
    use futures_util::StreamExt;
    let p = limited(&sp, 1);
    let calls = Callbacks::default();
    let (e, c) = (calls.end.clone(), calls.cancel.clone());
    let ids = Log::default();
    let (made, gate, other) = (Counter::new(), Gate::new(), Counter::new());
    let (ids2, m, g, o) = (ids.clone(), made.clone(), gate.clone(), other.clone());
    let group = p
        .build_group()
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .retry(retry_errors_hourly())
        .map(vec![0u32, 1], 1, move |x| {
            let (ids, m, g, o) = (ids2.clone(), m.clone(), g.clone(), o.clone());
            async move {
                if x == 0 {
                    ids.push(current_task_id().unwrap());
                    m.bump();
                    return Err(());
                }
                o.bump();
                g.wait().await;
                Ok(())
            }
        })
        .unwrap();
    other.wait_for(1).await; // item 1 runs in the only slot while item 0 waits
    let id = ids.get()[0];
    assert_eq!(live(&p, id), Some((TaskState::Backoff, 1)));
    let stats = p.stats();
    assert_eq!(
        (stats.running, stats.retrying, stats.retried),
        (1, 1, 1),
        "{stats:?}"
    );
    p.cancel([id]).unwrap();
    calls.cancel.wait_for(1).await;
    gate.open();
    let out: Vec<_> = group.collect().await;
    let err = out[0].as_ref().unwrap_err();
    assert!(err.is_cancelled() && err.attempts() == 1, "{err:?}");
    assert_eq!(out[1].as_ref().unwrap(), &Ok(()));
    p.join().await.unwrap();
    calls.end.wait_for(2).await;
    assert_eq!((calls.cancel.get(), calls.end.get(), made.get()), (1, 2, 1));
    assert_eq!(p.stats().retrying, 0);

    // The group cancelled while its item waits out its backoff.
    for drop_it in [false, true] {
        let made = Counter::new();
        let m = made.clone();
        let group = p
            .build_group()
            .cancel_on_drop(drop_it)
            .retry(retry_errors_hourly())
            .map(vec![()], 1, move |()| {
                m.bump();
                async { Err(()) }
            })
            .unwrap();
        // The only slot is free once the attempt failed: then this starts.
        let marker = p.spawn_queued(async {}).unwrap();
        marker.await.unwrap();
        assert_eq!(p.stats().retrying, 1);
        let cancelled = p.stats().cancelled;
        if drop_it {
            drop(group);
        } else {
            group.cancel().unwrap();
            let out: Vec<_> = group.collect().await;
            assert!(out[0].as_ref().unwrap_err().is_cancelled(), "{out:?}");
        }
        p.join().await.unwrap();
        let stats = p.stats();
        assert_eq!((stats.retrying, stats.cancelled), (0, cancelled + 1));
        assert_eq!(made.get(), 1);
    }
}

/// An item whose backoff is over waits for a slot of its group (listed as queued, on its
/// next attempt); a cancel then ends it at once, and its final error counts that attempt.
pub async fn an_item_waiting_for_its_next_attempt_can_be_cancelled(sp: Sp) {
    use async_taskpool::{current_task_id, TaskState};
    use futures_util::StreamExt;
    let p = limited(&sp, 1);
    let ids = Log::default();
    let (made, gate, other) = (Counter::new(), Gate::new(), Counter::new());
    let (ids2, m, g, o) = (ids.clone(), made.clone(), gate.clone(), other.clone());
    // A backoff the worker outruns by far: it pulls item 1 before item 0 is requeued.
    let policy = async_taskpool::policy::RetryPolicy::<Result<(), ()>>::builder()
        .max_attempts(10)
        .backoff(Duration::from_millis(50), Duration::from_millis(50))
        .jitter(async_taskpool::policy::Jitter::None)
        .retry_errors()
        .build()
        .unwrap();
    let group = p
        .build_group()
        .retry(policy)
        .map(vec![0u32, 1], 1, move |x| {
            let (ids, m, g, o) = (ids2.clone(), m.clone(), g.clone(), o.clone());
            async move {
                if x == 0 {
                    ids.push(current_task_id().unwrap());
                    m.bump();
                    return Err(());
                }
                o.bump();
                g.wait().await;
                Ok(())
            }
        })
        .unwrap();
    other.wait_for(1).await;
    let id = ids.get()[0];
    // Its backoff ends while item 1 holds the group's only slot. Had the worker been slower
    // than the backoff, a requeued item 0 took the slot again (it goes ahead of items not
    // pulled yet; seen with no backoff): it then waits on a later attempt.
    let next = loop {
        match live(&p, id) {
            Some((TaskState::Queued, n)) if n >= 2 => break n,
            state => assert!(
                matches!(state, Some((_, n)) if n < 10),
                "item 0 is {state:?} after {} attempts, stats {:?}",
                made.get(),
                p.stats()
            ),
        }
        yield_n(1).await;
    };
    assert_eq!(made.get(), next as usize - 1);
    assert_eq!(p.stats().queued, 1);
    p.cancel([id]).unwrap();
    gate.open();
    let out: Vec<_> = group.collect().await;
    let err = out[0].as_ref().unwrap_err();
    assert!(err.is_cancelled() && err.attempts() == next, "{err:?}");
    assert_eq!(made.get(), next as usize - 1);
    p.join().await.unwrap();
    let stats = p.stats();
    assert_eq!((stats.queued, stats.retrying, stats.cancelled), (0, 0, 1));
}

/// `join` waits for an item in its backoff; the group's results come once its last attempt
/// ended. A `try_map` with retries stops only at an item's final failure.
pub async fn join_waits_for_an_item_between_attempts(sp: Sp) {
    use async_taskpool::{policy::RetryPolicy, TryMapError};
    use futures_util::TryStreamExt;
    let p = limited(&sp, 4);
    let made = Counter::new();
    let m = made.clone();
    let policy = RetryPolicy::<Result<usize, ()>>::builder()
        .backoff(Duration::from_millis(20), Duration::from_millis(20))
        .jitter(async_taskpool::policy::Jitter::None)
        .retry_errors()
        .build()
        .unwrap();
    let group = p
        .build_group()
        .retry(policy)
        .map(vec![()], 1, move |()| {
            let n = m.bumped();
            async move {
                if n < 2 {
                    Err(())
                } else {
                    Ok(n)
                }
            }
        })
        .unwrap();
    p.join().await.unwrap();
    assert!(
        group.is_finished(),
        "join returned before the second attempt ended"
    );
    assert_eq!(made.get(), 2);

    let tried = Log::default();
    let t = tried.clone();
    let err = p
        .build_group()
        .retry(retry_errors(2))
        .try_map(vec!["1", "x"], 1, move |s: &str| {
            t.push(s);
            async move { s.parse::<u32>().map_err(|_| s) }
        })
        .unwrap()
        .try_collect::<Vec<u32>>()
        .await
        .unwrap_err();
    assert!(matches!(err, TryMapError::Item("x")), "{err:?}");
    assert_eq!(tried.get(), ["1", "x", "x"]);
    p.join().await.unwrap();
}

/// A `SimpleTaskPool` with a retry policy retries its tasks (the job's factory is called
/// again, under the same id, callbacks once); `stop_all` ends a task in its backoff.
pub async fn a_simple_pool_retries_its_tasks(sp: Sp) {
    use async_taskpool::SimpleTaskPool;
    let made = Counter::new();
    let ends = Counter::new();
    let (m, e) = (made.clone(), ends.clone());
    let pool = SimpleTaskPool::builder(sp.clone(), move || {
        let n = m.bumped();
        async move {
            if n == 1 {
                Err(())
            } else {
                Ok(n)
            }
        }
    })
    .on_end(move |_| {
        e.bump();
        async {}
    })
    .retry(retry_errors(3))
    .build()
    .unwrap();
    let summary = pool.start(2).unwrap().join().await.unwrap();
    assert_eq!(summary.completed, 2, "{summary:?}");
    ends.wait_for(2).await;
    assert_eq!((made.get(), ends.get()), (3, 2));
    assert_eq!(pool.stats().retried, 1);

    let made = Counter::new();
    let m = made.clone();
    let pool = SimpleTaskPool::builder(sp, move || {
        m.bump();
        async { Err::<(), ()>(()) }
    })
    .limit(1)
    .retry(retry_errors_hourly())
    .build()
    .unwrap();
    let group = pool.start(1).unwrap();
    // The only slot is free once the attempt failed: then this starts.
    pool.as_task_pool()
        .spawn_queued(async {})
        .unwrap()
        .await
        .unwrap();
    assert_eq!(pool.stats().retrying, 1);
    assert_eq!(pool.stop_all().len(), 1);
    let summary = group.join().await.unwrap();
    assert_eq!(summary.cancelled, 1, "{summary:?}");
    assert_eq!(made.get(), 1);
}

/// The pool's rate limit counts every start, loose tasks and items together: with no burst,
/// start k (in start order) is never before k intervals after the pool was made, on the
/// runtime's clock, though the limit would start them all at once. (Each start is logged
/// when it runs, at or after its token: so the k-th log is at or after the k-th token.)
pub async fn a_pool_rate_limit_spaces_loose_tasks_and_items(sp: Sp) {
    use async_taskpool::policy::Quota;
    use std::time::{Duration, Instant};
    let quota = Quota::per_second(50).unwrap().burst(1).unwrap(); // one per 20 ms
    let t0 = Instant::now();
    let p = TaskPool::builder(sp.clone())
        .limit(8)
        .rate_limit(quota)
        .build()
        .unwrap();
    assert_eq!(p.rate_limit(), Some(quota));
    let starts: Log<Instant> = Log::default();
    let mut loose = Vec::new();
    for _ in 0..3 {
        let log = starts.clone();
        loose.push(
            p.spawn_queued(async move { log.push(Instant::now()) })
                .unwrap(),
        );
    }
    let log = starts.clone();
    let group = p
        .map(0..3u32, 3, move |x| {
            log.push(Instant::now());
            async move { x }
        })
        .unwrap();
    for h in loose {
        h.await.unwrap();
    }
    assert_eq!(group.join().await.unwrap().completed, 3);
    let mut starts = starts.get();
    assert_eq!(starts.len(), 6);
    starts.sort_unstable();
    for (k, at) in starts.iter().enumerate() {
        let earliest = Duration::from_millis(20) * k as u32;
        let after = at.duration_since(t0);
        assert!(
            after >= earliest,
            "start {k} came {after:?} after the pool was made, before {earliest:?}"
        );
    }
}

/// Waiting for the pool's token holds no slot and changes nothing else: with a limit of 1
/// and the next token a minute away, the waiting task holds no slot (the pool is not full),
/// `try_spawn` is refused as rate-limited, a waiting task is cancelled or shed at once, and
/// lifting the quota starts what waits (loose tasks and a map).
pub async fn a_pool_rate_limit_waits_without_a_slot(sp: Sp) {
    use async_taskpool::policy::Quota;
    use std::time::Duration;
    let per_minute = Quota::per_minute(1).unwrap().burst(1).unwrap();
    let p = TaskPool::builder(sp.clone())
        .limit(1)
        .rate_limit(per_minute)
        .build()
        .unwrap();
    assert_eq!(p.spawn(async { 1 }).await.unwrap().await.unwrap(), 1);
    let waiting = p.spawn_queued(async { 2 }).unwrap();
    let cancelled = p.spawn_queued(async { 3 }).unwrap();
    let shed = p
        .build_task()
        .max_queue_wait(Duration::from_millis(20))
        .spawn_queued(async { 4 })
        .unwrap();
    assert_eq!((p.num_running(), p.num_queued()), (0, 3));
    assert!(!p.is_full(), "waiting for a token holds no slot");
    let refused = p.try_spawn(async { 5 }).unwrap_err();
    match refused.error() {
        PoolError::RateLimited { retry_in, .. } => assert!(
            *retry_in > Duration::from_secs(50),
            "the next token is a minute away: {retry_in:?}"
        ),
        other => panic!("expected RateLimited, got {other}"),
    }
    cancelled.cancel().unwrap();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    assert!(shed.await.unwrap_err().is_shed());
    let group = p.map(0..4u32, 2, |x| async move { x }).unwrap();
    assert_eq!(p.num_running(), 0);
    p.set_rate_limit(None);
    assert_eq!(p.rate_limit(), None);
    assert_eq!(waiting.await.unwrap(), 2);
    assert_eq!(group.join().await.unwrap().completed, 4);
    p.join().await.unwrap();
    let stats = p.stats();
    assert_eq!(
        (stats.ended, stats.cancelled, stats.shed),
        (8, 1, 1),
        "{stats:?}"
    );
}

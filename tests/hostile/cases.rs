//! The hostile cases, one per bug of issue 10 (bug 8's first). Each takes the spawner of the
//! runtime it runs on and asserts the behaviour the fixed engine gives.
//!
//! Synchronisation is by gates, counters and channels; the only time bounds are upper bounds
//! on loops and on waits for something that has no signal (a spawner's destructor).

use crate::support::*;
use async_taskpool::runtime::{BoxFuture, SpawnError, Spawner};
use async_taskpool::{
    current_task_id, PoolError, SimpleTaskPool, TaskError, TaskHandle, TaskId, TaskPool,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

fn pool(sp: &Sp) -> TaskPool {
    TaskPool::new(sp.clone())
}

fn limited(sp: &Sp, limit: usize) -> TaskPool {
    TaskPool::builder(sp.clone()).limit(limit).build().unwrap()
}

/// A task that holds its slot until `gate` opens.
fn blocker(gate: &Gate) -> impl Future<Output = ()> + Send + 'static {
    let gate = gate.clone();
    async move { gate.wait().await }
}

/// A value whose destructor panics (unless the thread is already unwinding, which would
/// abort the test binary).
pub struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("Bomb: a user destructor that panics");
        }
    }
}

/// A future that returns `value` at its first poll and still holds a [`Bomb`], which goes off
/// when the pool drops the finished future.
struct ReturnsThenBombs {
    value: u32,
    _bomb: Bomb,
}

impl Future for ReturnsThenBombs {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(self.value)
    }
}

/// Runs `f` on a std thread of its own and waits for its answer at most 10 s: `None` if it
/// did not answer (it is stuck, on a pool lock say; the thread is leaked).
fn from_another_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

/// Waits, on `sp`'s timer, until `cond` holds; panics after 10 s. Only for conditions with
/// no signal to wait on (a destructor that runs somewhere else).
async fn eventually(sp: &Sp, what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        sp.sleep(Duration::from_millis(5)).await;
    }
}

/// A spawner that sets a flag when it is dropped: shows the pool let go of it.
pub struct FlagSpawner {
    inner: Arc<dyn Spawner>,
    _dropped: DropFlag,
}

impl FlagSpawner {
    pub fn wrap(inner: Arc<dyn Spawner>) -> (Self, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let sp = Self {
            inner,
            _dropped: DropFlag(dropped.clone()),
        };
        (sp, dropped)
    }
}

impl Spawner for FlagSpawner {
    fn spawn(&self, fut: BoxFuture) -> Result<(), SpawnError> {
        self.inner.spawn(fut)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture {
        self.inner.sleep(duration)
    }
    fn runtime_name(&self) -> &'static str {
        self.inner.runtime_name()
    }
}

/// A spawner whose executor refuses every task (as one that has shut down does).
struct RefusingSpawner(Sp);

impl Spawner for RefusingSpawner {
    fn spawn(&self, _fut: BoxFuture) -> Result<(), SpawnError> {
        Err(SpawnError::other(
            "refusing",
            "this test's executor takes no tasks",
        ))
    }
    fn sleep(&self, duration: Duration) -> BoxFuture {
        self.0.sleep(duration)
    }
    fn runtime_name(&self) -> &'static str {
        "refusing"
    }
}

/// The pool is idle, its counters add up, and it still runs a task.
async fn assert_idle_and_alive(p: &TaskPool) {
    p.join().await.unwrap();
    let st = p.stats();
    assert_eq!((st.running, st.queued, st.ending), (0, 0, 0), "{st:?}");
    assert!(p.tasks().is_empty(), "{:?}", p.tasks());
    assert_eq!(
        p.exec(async { 7 }).await.unwrap(),
        7,
        "the pool still runs work"
    );
}

// ----- bug 8 -----

/// Issue 10, bug 8: `stop` picked its ids and cancelled them in two steps, so concurrent
/// callers could pick the same task (4 concurrent `stop(1)` on 8 tasks returned an id twice
/// in ~14% of rounds).
pub async fn concurrent_stops_never_stop_the_same_task(sp: Sp) {
    const CALLERS: usize = 4;
    for _round in 0..100 {
        let workers = SimpleTaskPool::builder(sp.clone(), pending::<()>)
            .limit(4)
            .build()
            .unwrap();
        workers.start(8).unwrap();
        let barrier = Arc::new(Barrier::new(CALLERS));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (w, b) = (workers.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    w.stop(1)
                })
            })
            .collect();
        let mut ids: Vec<TaskId> = callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CALLERS, "each stop(1) stops a task of its own");
        assert_eq!(workers.stop_all().len(), 8 - CALLERS);
        workers.gather_and_close().await.unwrap();
        assert_eq!(workers.num_cancelled(), 8);
    }
}

// ----- bug 1 -----

/// Issue 10, bug 1: a map's input ran under the group's feed lock, so an input that called
/// the pool (here `cancel_all`, which stops the group's input) deadlocked the pool for good,
/// `stats()` from any thread included.
pub async fn map_input_that_calls_the_pool_does_not_hang(sp: Sp) {
    let pool = pool(&sp);
    let p = pool.clone();
    let pulled = Arc::new(AtomicUsize::new(0));
    let stats_answered = Arc::new(AtomicBool::new(false));
    let (n, answered) = (pulled.clone(), stats_answered.clone());
    let input = (0..100u32).inspect(move |&i| {
        n.fetch_add(1, Ordering::SeqCst);
        if i == 5 {
            p.cancel_all();
            // Another thread can look at the pool while the input runs.
            let other = p.clone();
            let got = from_another_thread(move || other.stats());
            answered.store(got.is_some(), Ordering::SeqCst);
        }
    });
    let g = pool.map(input, 2, |x| async move { x }).unwrap();
    let results = g.count().await;
    assert!(
        stats_answered.load(Ordering::SeqCst),
        "stats() from another thread did not answer while the input ran"
    );
    let pulled = pulled.load(Ordering::SeqCst);
    // A lone group's worker pulls a batch (up to 32 items) with no lock held; the cancel
    // stops pulling at the end of that batch.
    assert!(
        pulled <= 32,
        "cancel_all stopped the input ({pulled} pulls)"
    );
    assert!(results <= pulled, "{results} results from {pulled} items");
    assert_idle_and_alive(&pool).await;
}

/// Issue 10, bug 1 (second shape): an input that only reads the pool (`num_running`) took
/// the feed lock then the state lock, while `cancel_group` from another thread took them in
/// the opposite order: a deadlock (5 of 7 rounds). Here the canceller is let in while the
/// input is inside the pool, every round.
pub async fn map_input_reading_the_pool_races_cancel_group(sp: Sp) {
    for round in 0..5 {
        let pool = pool(&sp);
        let name = format!("fed-{round}");
        let (entered_tx, entered) = mpsc::channel::<()>();
        let cancelled = Arc::new(AtomicBool::new(false));
        let (p, done) = (pool.clone(), cancelled.clone());
        let input = (0..50u32).inspect(move |&i| {
            if i == 0 {
                let _ = entered_tx.send(());
                // Read the pool until the canceller is through (bounded), so its
                // `cancel_group` runs while this input is inside the pool.
                let t0 = Instant::now();
                while !done.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_millis(500) {
                    let _ = p.num_running();
                    std::thread::yield_now();
                }
            }
            let _ = p.num_running();
        });
        let g = pool
            .build_group()
            .name(name.clone())
            .map(input, 2, |x| async move { x })
            .unwrap();
        let finished = Gate::new();
        let (p, done, fin) = (pool.clone(), cancelled.clone(), finished.clone());
        let canceller = std::thread::spawn(move || {
            entered
                .recv_timeout(Duration::from_secs(10))
                .expect("the input was pulled");
            let res = p.cancel_group(&name);
            done.store(true, Ordering::SeqCst);
            fin.open();
            res
        });
        let results = g.count().await;
        finished.wait().await;
        let res = canceller.join().unwrap();
        assert!(res.is_ok(), "round {round}: {res:?}");
        assert!(results < 50, "round {round}: the cancel stopped the input");
        assert_idle_and_alive(&pool).await;
    }
}

// ----- bug 2 -----

/// Issue 10, bug 2: `cancel_group` dropped the map's closure under the state lock; when the
/// closure held the last pool handle, its drop closed the pool, which took the same lock.
pub async fn cancelling_a_map_whose_closure_holds_the_last_handle(sp: Sp) {
    let pool = limited(&sp, 1);
    let gate = Gate::new();
    let busy = pool.spawn(blocker(&gate)).await.unwrap();
    let p2 = pool.clone();
    let g = pool
        .map(0..10u32, 2, move |x| {
            let _p = p2.clone();
            async move { x }
        })
        .unwrap();
    drop(pool);
    g.cancel().unwrap();
    busy.cancel().unwrap();
    assert!(busy.await.unwrap_err().is_cancelled());
    let summary = g.join().await.unwrap();
    assert_eq!(summary.completed, 0, "{summary:?}");
}

// ----- bug 3 -----

/// Issue 10, bug 3: outputs dropped unread (the group was dropped) whose destructor panics.
/// At limit 1 the output was dropped inside the delivery, under the state lock, and every
/// later call hung; with no limit the panic skipped the change notification and `join()`
/// hung with nothing running. The outputs were produced: the tasks completed, and their
/// destructors' panics are only logged.
pub async fn outputs_whose_drop_panics_do_not_wedge_the_pool(sp: Sp) {
    for limit in [Some(1), None] {
        let mut builder = SimpleTaskPool::builder(sp.clone(), || async { Bomb });
        if let Some(l) = limit {
            builder = builder.limit(l);
        }
        let pool = builder.build().unwrap();
        drop(pool.start(3).unwrap());
        pool.join().await.unwrap();
        let st = pool.stats();
        assert_eq!(
            (st.ended, st.cancelled, st.panicked),
            (3, 0, 0),
            "limit {limit:?}: {st:?}"
        );
        assert_eq!((st.running, st.queued, st.ending), (0, 0, 0), "{st:?}");
        assert!(pool.tasks().is_empty());
        assert_eq!(pool.as_task_pool().exec(async { 5 }).await.unwrap(), 5);
        pool.gather_and_close().await.unwrap();
    }
}

// ----- bug 4 -----

/// Issue 10, bug 4: a panic payload whose destructor panics, dropped with nobody to take it
/// (the handle was dropped), escaped the runner at the hand-off to the next queued task,
/// which then resolved `Cancelled` without ever running (20 of 20).
pub async fn panic_payload_whose_drop_panics_spares_the_next_task(sp: Sp) {
    for round in 0..20 {
        let p = limited(&sp, 1);
        let gate = Gate::new();
        // A holds the slot, so B and C queue and run one after the other on A's runner.
        let a = p.spawn(blocker(&gate)).await.unwrap();
        drop(
            p.spawn_queued(async { std::panic::panic_any(Bomb) })
                .unwrap(),
        );
        let c = p.spawn_queued(async { 7 }).unwrap();
        gate.open();
        a.await.unwrap();
        let got = c.await;
        assert!(matches!(got, Ok(7)), "round {round}: C got {got:?}");
        p.join().await.unwrap();
        assert_eq!(p.num_cancelled(), 0, "round {round}");
        assert_eq!(p.stats().panicked, 1, "round {round}");
        assert_eq!(p.num_ended(), 3, "round {round}");
    }
}

// ----- bug 5 -----

/// Issue 10, bug 5: a future that returned 42 but whose destructor panics resolved
/// `Cancelled`, with `on_end` never run and the stats saying cancelled. The output stands
/// and `on_end` runs exactly once: for a task and for map items.
pub async fn future_whose_drop_panics_keeps_its_output(sp: Sp) {
    let p = pool(&sp);
    let (ends, cancels) = (Counter::new(), Counter::new());
    let (e, c) = (ends.clone(), cancels.clone());
    let h = p
        .build_task()
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .spawn(ReturnsThenBombs {
            value: 42,
            _bomb: Bomb,
        })
        .await
        .unwrap();
    let got = h.await;
    assert!(matches!(got, Ok(42)), "the task's output: {got:?}");
    p.join().await.unwrap();
    assert_eq!(
        (ends.get(), cancels.get()),
        (1, 0),
        "on_end, on_cancel runs"
    );
    let st = p.stats();
    assert_eq!((st.ended, st.cancelled, st.panicked), (1, 0, 0), "{st:?}");

    let (ends, cancels) = (Counter::new(), Counter::new());
    let (e, c) = (ends.clone(), cancels.clone());
    let g = p
        .build_group()
        .on_end(move |_| {
            e.bump();
            async {}
        })
        .on_cancel(move |_| {
            c.bump();
            async {}
        })
        .map(0..10u32, 2, |i| ReturnsThenBombs {
            value: i,
            _bomb: Bomb,
        })
        .unwrap();
    let results: Vec<Result<u32, TaskError>> = g.collect().await;
    let ok: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, (0..10).collect::<Vec<_>>(), "map results: {results:?}");
    p.join().await.unwrap();
    assert_eq!(
        (ends.get(), cancels.get()),
        (10, 0),
        "on_end, on_cancel runs"
    );
    let st = p.stats();
    assert_eq!((st.ended, st.cancelled, st.panicked), (11, 0, 0), "{st:?}");
}

// ----- bug 6 -----

/// Issue 10, bug 6 (every flavour): a closed pool whose handles are all dropped lets go of
/// its spawner, parked runtime tasks included (on smol they formed a cycle through the
/// executor: `Inner -> SmolSpawner -> Executor -> runner tasks -> Inner`). The smol-only
/// shapes (an executor that stops running, one the user drops) are in `runtime_gone.rs`.
pub async fn pools_let_go_of_their_spawner(sp: Sp) {
    let mut flags = Vec::new();
    for _ in 0..3 {
        let (spawner, dropped) = FlagSpawner::wrap(sp.clone());
        let p = TaskPool::builder(spawner).limit(4).build().unwrap();
        // Several tasks at once, then one by one: runtime tasks park for the next task.
        let burst: Vec<_> = (0..4)
            .map(|i| p.spawn_queued(async move { i }).unwrap())
            .collect();
        for h in burst {
            h.await.unwrap();
        }
        for i in 0..4 {
            assert_eq!(p.exec(async move { i }).await.unwrap(), i);
        }
        p.gather_and_close().await.unwrap();
        drop(p);
        flags.push(dropped);
    }
    // A SimpleTaskPool, stopped rather than gathered.
    let (spawner, dropped) = FlagSpawner::wrap(sp.clone());
    let s = SimpleTaskPool::builder(spawner, pending::<()>)
        .limit(2)
        .build()
        .unwrap();
    drop(s.start(3).unwrap());
    assert_eq!(s.stop_all().len(), 3);
    s.join().await.unwrap();
    drop(s);
    flags.push(dropped);
    for (i, dropped) in flags.iter().enumerate() {
        eventually(&sp, &format!("pool {i} dropped its spawner"), || {
            dropped.load(Ordering::SeqCst)
        })
        .await;
    }
}

// ----- bug 7 -----

/// Issue 10, bug 7: a `Group` found its group by name, so after `flush` freed the name a
/// stale handle cancelled (and listed) a newer group of the same name. A stale handle's calls
/// report that its group has ended.
pub async fn stale_group_does_not_act_on_a_new_group_of_its_name(sp: Sp) {
    let p = pool(&sp);
    let mut old = p
        .build_group()
        .name("batch")
        .map(0..2u32, 2, |i| async move { i })
        .unwrap();
    while let Some(r) = old.next().await {
        r.unwrap();
    }
    p.join().await.unwrap();
    p.flush().await.unwrap();
    assert!(!p.has_group("batch"), "flush freed the name");

    let (gate, started) = (Gate::new(), Counter::new());
    let (g, s) = (gate.clone(), started.clone());
    let new = p
        .build_group()
        .name("batch")
        .map(0..3u32, 3, move |i| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                s.bump();
                g.wait().await;
                i
            }
        })
        .unwrap();
    started.wait_for(3).await;
    assert_eq!(new.ids().len(), 3);
    assert_eq!(
        old.ids(),
        Vec::<TaskId>::new(),
        "the old group lists the new one's ids"
    );
    let res = old.cancel();
    assert!(
        res.is_err(),
        "the old group's cancel() acted on the new group: {res:?}"
    );
    assert!(p.has_group("batch"));
    gate.open();
    let summary = new.join().await.unwrap();
    assert_eq!(
        (summary.completed, summary.cancelled),
        (3, 0),
        "{summary:?}"
    );
}

// ----- bug 9 -----

/// Issue 10, bug 9: `current_task_id()` said `Some(u64::MAX)` inside a map's closure and in
/// an item's `on_end` after an `.await`. It is the item's own id everywhere: in the closure
/// call, in the item's future (where the pool's `tasks()` agrees) and in its callbacks.
pub async fn current_task_id_is_the_map_items_own(sp: Sp) {
    const N: u32 = 20;
    let p = pool(&sp);
    let in_on_end = Log::<(TaskId, Option<TaskId>)>::default();
    let log = in_on_end.clone();
    let p2 = p.clone();
    let g = p
        .build_group()
        .name("items")
        .on_end(move |id| {
            let log = log.clone();
            async move {
                yield_n(1).await;
                log.push((id, current_task_id()));
            }
        })
        .map(0..N, 4, move |i| {
            let in_closure = current_task_id();
            let p = p2.clone();
            async move {
                yield_n(1).await;
                let in_future = current_task_id();
                let listed = in_future.is_some_and(|id| {
                    p.tasks()
                        .iter()
                        .any(|t| t.id == id && t.group.as_deref() == Some("items"))
                });
                (i, in_closure, in_future, listed)
            }
        })
        .unwrap();
    let results: Vec<_> = g.map(Result::unwrap).collect().await;
    p.join().await.unwrap();
    let submitted = p.stats().submitted;
    let mut item_ids = Vec::new();
    for (i, in_closure, in_future, listed) in results {
        let Some(id) = in_future.filter(|id| id.get() < submitted) else {
            panic!("item {i}: current_task_id() in its future is {in_future:?}");
        };
        assert!(listed, "item {i}: tasks() does not list {id} in its group");
        assert_eq!(in_closure, Some(id), "item {i}: in the closure call");
        item_ids.push(id);
    }
    let mut on_end = in_on_end.get();
    on_end.sort();
    for &(id, current) in &on_end {
        assert_eq!(current, Some(id), "in on_end of {id}, after an await");
    }
    item_ids.sort();
    let ended: Vec<TaskId> = on_end.iter().map(|&(id, _)| id).collect();
    assert_eq!(
        ended, item_ids,
        "on_end ran once for each item, with its id"
    );
}

// ----- bug 10 -----

/// Issue 10, bug 10: between a map item's id being handed out and the item starting,
/// `cancel(id)` answered `AlreadyEnded`, and the item then ran (360 of 260,001 replies). A
/// canceller on another thread cancels each id as soon as it is handed out (it retries the
/// next id while the answer is `TaskNotFound`, then moves on: each id is cancelled at most
/// once); every `AlreadyEnded` it gets must come after that item's future first ran. Rounds
/// until the canceller got 5,000 replies (bounded to 3 s).
pub async fn map_item_is_never_already_ended_before_it_ran(sp: Sp) {
    let t0 = Instant::now();
    let (mut replies, mut already_ended, mut early) = (0, 0, Vec::new());
    while replies < 5_000 && t0.elapsed() < Duration::from_secs(3) && early.is_empty() {
        let round = cancel_items_as_they_are_handed_out(&sp).await;
        replies += round.0;
        already_ended += round.1;
        early = round.2;
    }
    assert!(
        early.is_empty(),
        "{} cancel replies said AlreadyEnded before the item ran ({already_ended} \
         AlreadyEnded of {replies} replies), e.g. (id, reply) {:?}",
        early.len(),
        &early[..early.len().min(5)]
    );
}

/// One round of [`map_item_is_never_already_ended_before_it_ran`]: the number of replies,
/// of `AlreadyEnded` replies, and the `AlreadyEnded` replies that came before the item's
/// start, as (id, reply time).
async fn cancel_items_as_they_are_handed_out(sp: &Sp) -> (u64, usize, Vec<(u64, u64)>) {
    const ITEMS: u64 = 20_000;
    let p = pool(sp);
    // One clock for both sides: a start stamps it, an `AlreadyEnded` reply stamps it.
    let clock = Arc::new(AtomicU64::new(0));
    let starts: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let (c, s) = (clock.clone(), starts.clone());
    let g = p
        .map_unordered(0..ITEMS, 4, move |_| {
            let (c, s) = (c.clone(), s.clone());
            async move {
                let id = current_task_id().expect("inside a pool task").get();
                let at = c.fetch_add(1, Ordering::SeqCst);
                s.lock().unwrap().insert(id, at);
                // Let the canceller keep up with the map.
                yield_n(3).await;
            }
        })
        .unwrap();
    let canceller_done = Gate::new();
    let (p2, c, done) = (p.clone(), clock.clone(), canceller_done.clone());
    // The map's items are the only tasks: their ids are 0..ITEMS.
    let canceller = std::thread::spawn(move || {
        let t0 = Instant::now();
        let (mut target, mut replies) = (0u64, 0u64);
        let mut already_ended = Vec::new();
        while target < ITEMS && t0.elapsed() < Duration::from_secs(3) {
            match p2.cancel([TaskId::new(target)]) {
                Err(PoolError::TaskNotFound { .. }) => {
                    std::hint::spin_loop();
                    continue;
                }
                Err(PoolError::AlreadyEnded { .. }) => {
                    already_ended.push((target, c.fetch_add(1, Ordering::SeqCst)));
                }
                _ => {}
            }
            replies += 1;
            // Skip ahead to the next id, so every cancel races the item's start.
            target = (target + 1).max(p2.stats().submitted);
        }
        done.open();
        (replies, already_ended)
    });
    canceller_done.wait().await;
    // If the canceller gave up before the end, stop the rest of the map.
    let _ = g.cancel();
    g.count().await;
    let (replies, already_ended) = canceller.join().unwrap();
    let early: Vec<_> = {
        let starts = starts.lock().unwrap();
        already_ended
            .iter()
            .filter(|(id, replied)| starts.get(id).is_none_or(|started| started > replied))
            .copied()
            .collect()
    };
    assert_idle_and_alive(&p).await;
    (replies, already_ended.len(), early)
}

// ----- bug 11 -----

/// Issue 10, bug 11: a task that waited for room in its own full pool hung forever. The rule:
/// `exec` from a task of the same pool runs the child in the caller's slot; it starts at
/// once, with its own id, and counts as running.
pub async fn exec_from_a_task_in_a_full_pool_runs_in_its_slot(sp: Sp) {
    let p = limited(&sp, 1);
    let p2 = p.clone();
    let parent = p
        .spawn(async move {
            let p3 = p2.clone();
            p2.exec(async move { (current_task_id(), p3.num_running()) })
                .await
        })
        .await
        .unwrap();
    let parent_id = parent.id();
    let (child_id, running) = parent.await.unwrap().unwrap();
    assert!(child_id.is_some(), "the child runs as a pool task");
    assert_ne!(child_id, Some(parent_id), "the child has an id of its own");
    assert_eq!(running, 2, "parent and child both count as running");
    assert_idle_and_alive(&p).await;
}

/// Issue 10, bug 11: `spawn(..).await` from tasks of the same, full pool waited for room that
/// only they could free. It queues the child and returns its handle at once. (Awaiting that
/// handle from the full pool would still wait forever, by design: the parents hand the
/// handles back.)
pub async fn spawn_from_tasks_in_a_full_pool_returns_at_once(sp: Sp) {
    let p = limited(&sp, 2);
    let both = Counter::new();
    // The parents' output is their child's handle, by design.
    #[allow(clippy::async_yields_async)]
    let parents: Vec<TaskHandle<TaskHandle<u32>>> = (0..2u32)
        .map(|i| {
            let (p2, both) = (p.clone(), both.clone());
            p.spawn_queued(async move {
                both.bump();
                both.wait_for(2).await; // the pool is full of parents
                p2.spawn(async move { 10 + i }).await.unwrap()
            })
            .unwrap()
        })
        .collect();
    for (i, parent) in parents.into_iter().enumerate() {
        let child = parent.await.unwrap();
        assert_eq!(child.await.unwrap(), 10 + i as u32);
    }
    assert_idle_and_alive(&p).await;
}

/// Pages below `depth` levels of a crawl with `FAN_OUT` links per page: each page execs its
/// links' crawls from inside the pool.
const FAN_OUT: usize = 3;

fn crawl(p: TaskPool, depth: u32) -> Pin<Box<dyn Future<Output = usize> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let links = (0..FAN_OUT).map(|_| p.exec(crawl(p.clone(), depth - 1)));
        let below: usize = futures::future::join_all(links)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .sum();
        1 + below
    })
}

/// Issue 10, bug 11: the natural shape of a recursive crawler (each page execs its links'
/// crawls) in a pool smaller than the crawl's fan-out completes.
pub async fn recursive_crawl_with_exec_completes(sp: Sp) {
    let p = limited(&sp, 2);
    let pages = p.exec(crawl(p.clone(), 4)).await.unwrap();
    assert_eq!(pages, 1 + 3 + 9 + 27 + 81);
    assert_idle_and_alive(&p).await;
}

// ----- bug 12 -----

/// Issue 10, bug 12: a spawn the executor refused was reported as "task N was cancelled". It
/// is an error of its own (`TaskError::SpawnFailed`), not `Cancelled`, and says so.
pub async fn refused_spawn_is_reported_as_such(sp: Sp) {
    let p = TaskPool::new(RefusingSpawner(sp.clone()));
    let err = p.spawn_queued(async { 1 }).unwrap().await.unwrap_err();
    assert!(
        !err.is_cancelled(),
        "a refused spawn reads as a cancel: {err}"
    );
    assert!(
        err.to_string().to_lowercase().contains("spawn"),
        "the message says the spawn failed: {err}"
    );
    p.join().await.unwrap();
    assert_eq!(p.stats().ended, 1, "{:?}", p.stats());
}

// ----- bug 13 -----

/// Checks that, between the point where both `tags` have started items and the point where
/// either has no more items to start, every window of `window` consecutive starts holds at
/// least `min` starts of each tag.
fn assert_shares(log: &[u8], tags: [u8; 2], window: usize, min: usize, what: &str) {
    let first = |t: u8| log.iter().position(|&x| x == t).expect("every tag started");
    let last = |t: u8| log.iter().rposition(|&x| x == t).unwrap();
    let begin = first(tags[0]).max(first(tags[1]));
    let end = last(tags[0]).min(last(tags[1])) + 1;
    let longest = log
        .chunk_by(|a, b| a == b)
        .map(|run| (run.len(), run[0] as char))
        .max()
        .unwrap();
    assert!(
        end >= begin + window,
        "{what}: no window of {window} starts in which both ran (both started by start {begin}, one \
         finished starting at {end}; longest run: {} starts of {:?})",
        longest.0,
        longest.1
    );
    for (offset, w) in log[begin..end].windows(window).enumerate() {
        for t in tags {
            let n = w.iter().filter(|&&x| x == t).count();
            assert!(
                n >= min,
                "{what}: starts {}..{}: {n} of {window} were {:?}, want at least {min} (longest run: \
                 {} starts of {:?})",
                begin + offset,
                begin + offset + window,
                t as char,
                longest.0,
                longest.1
            );
        }
    }
}

/// Drives a pool one start at a time, so what is measured is the pool's choice of what starts
/// next, not how an executor on a loaded machine happens to interleave its threads: each item
/// logs its start under its tag and waits until the test releases it; the test releases the
/// oldest running item and waits for the next start.
#[derive(Clone, Default)]
struct Stepper {
    log: Log<u8>,
    running: Arc<Mutex<std::collections::VecDeque<Gate>>>,
    started: Counter,
}

impl Stepper {
    fn item(&self, tag: u8) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move {
            let gate = Gate::new();
            {
                let mut running = this.running.lock().unwrap();
                running.push_back(gate.clone());
                this.log.push(tag);
            }
            this.started.bump();
            gate.wait().await;
        }
    }

    /// With `limit` items running, releases `total` items one by one, each after the start
    /// that filled the previous one's slot.
    async fn run(&self, limit: usize, total: usize) {
        self.started.wait_for(limit).await;
        for k in 0..total {
            let oldest = self
                .running
                .lock()
                .unwrap()
                .pop_front()
                .expect("an item runs");
            oldest.open();
            if k + limit < total {
                self.started.wait_for(limit + k + 1).await;
            }
        }
    }
}

/// Issue 10, bug 13: two groups on one pool took turns in bursts (one held 10 of 10 slots
/// for ~1,024 items, then the other). Competing groups each get slots within a small window:
/// of any 40 consecutive starts while both have items left, each group has at least 10;
/// with a group limit equal to the pool's and with none.
pub async fn two_groups_share_the_pool(sp: Sp) {
    const ITEMS: u32 = 300;
    for num_concurrent in [usize::MAX, 10] {
        let p = limited(&sp, 10);
        let steps = Stepper::default();
        let (sa, sb) = (steps.clone(), steps.clone());
        let a = p
            .map_unordered(0..ITEMS, num_concurrent, move |_| sa.item(b'A'))
            .unwrap();
        let b = p
            .map_unordered(0..ITEMS, num_concurrent, move |_| sb.item(b'B'))
            .unwrap();
        let (sa, sb, ()) = futures::join!(a.join(), b.join(), steps.run(10, 2 * ITEMS as usize));
        assert_eq!(sa.unwrap().completed, u64::from(ITEMS));
        assert_eq!(sb.unwrap().completed, u64::from(ITEMS));
        let what = format!("num_concurrent {num_concurrent}");
        assert_shares(&steps.log.get(), [b'A', b'B'], 40, 10, &what);
    }
}

/// Issue 10, bug 13: a group and loose `spawn_queued` tasks share the pool the same way.
pub async fn a_group_and_loose_tasks_share_the_pool(sp: Sp) {
    const ITEMS: u32 = 300;
    for num_concurrent in [usize::MAX, 10] {
        let p = limited(&sp, 10);
        let steps = Stepper::default();
        let sg = steps.clone();
        let g = p
            .map_unordered(0..ITEMS, num_concurrent, move |_| sg.item(b'G'))
            .unwrap();
        let loose: Vec<_> = (0..ITEMS)
            .map(|_| p.spawn_queued(steps.item(b'L')).unwrap())
            .collect();
        let (summary, (), ()) = futures::join!(
            g.join(),
            async {
                for h in loose {
                    h.await.unwrap();
                }
            },
            steps.run(10, 2 * ITEMS as usize)
        );
        assert_eq!(summary.unwrap().completed, u64::from(ITEMS));
        let what = format!("num_concurrent {num_concurrent}");
        assert_shares(&steps.log.get(), [b'G', b'L'], 40, 10, &what);
    }
}

// ----- bug 14 -----

/// Reads a numeric field of the pool's stats as serialized, so the test compiles before the
/// field exists; panics if it is absent.
fn stats_field(p: &TaskPool, field: &str) -> u64 {
    let json = serde_json::to_value(p.stats()).unwrap();
    json.get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("stats() has no numeric `{field}`: {json}"))
}

/// Issue 10, bug 14: while thousands of map items waited for room, `stats().queued` said 0,
/// and after a cancel the items that never started appeared in no count. `stats().backlog`
/// counts the map items not started yet (exact for an exact-size input; `queued` counts
/// queued tasks beside it), and the group's summary counts `not_started`.
pub async fn backlog_and_not_started_are_counted(sp: Sp) {
    const ITEMS: u64 = 5_000;
    let p = limited(&sp, 1);
    let gate = Gate::new();
    let busy = p.spawn(blocker(&gate)).await.unwrap();
    let (item_gate, started) = (Gate::new(), Counter::new());
    let (ig, s) = (item_gate.clone(), started.clone());
    let g = p
        .map(0..ITEMS, 4, move |i| {
            let (ig, s) = (ig.clone(), s.clone());
            async move {
                s.bump();
                if i == 3 {
                    ig.wait().await;
                }
                i
            }
        })
        .unwrap();
    // Behind the busy pool, nothing of the map started: all of it is backlog.
    assert_eq!(stats_field(&p, "backlog"), ITEMS, "{:?}", p.stats());
    gate.open();
    busy.await.unwrap();
    // Items 0..=3 start (one at a time: limit 1); item 3 holds the slot.
    started.wait_for(4).await;
    assert_eq!(stats_field(&p, "backlog"), ITEMS - 4, "{:?}", p.stats());
    g.cancel().unwrap();
    let summary = g.join().await.unwrap();
    let json = serde_json::to_value(summary).unwrap();
    assert_eq!(
        json.get("not_started").and_then(serde_json::Value::as_u64),
        Some(ITEMS - 4),
        "the group's summary counts the items that never started: {json}"
    );
    assert_eq!(
        (summary.completed, summary.cancelled),
        (3, 1),
        "{summary:?}"
    );
    item_gate.open();
    assert_idle_and_alive(&p).await;
}

// ----- the rule, where the model test found it broken -----

/// Work the pool refuses (it is locked) is dropped by the pool inside its panic guard, like
/// every other user value: a future, a map's input or closure whose destructor panics does
/// not panic the caller, nor a task whose `exec` child was refused. Before, the refused value
/// was dropped unguarded in the caller.
pub async fn refused_work_is_dropped_inside_the_guard(sp: Sp) {
    let pool = pool(&sp);
    let bomb = || {
        let b = Bomb;
        async move {
            let _b = b;
            1u32
        }
    };
    pool.lock();
    assert!(matches!(
        pool.spawn_queued(bomb()),
        Err(PoolError::Locked { .. })
    ));
    assert!(matches!(
        pool.spawn(bomb()).await,
        Err(PoolError::Locked { .. })
    ));
    assert!(pool.exec(bomb()).await.is_err());
    let (in_input, in_closure) = (Bomb, Bomb);
    let input = (0..3u32).inspect(move |_| {
        let _ = &in_input;
    });
    let refused = pool.map(input, 1, move |x| {
        let _ = &in_closure;
        async move { x }
    });
    assert!(matches!(refused, Err(PoolError::Locked { .. })));
    pool.unlock();
    // From inside a task: the child `exec` is refused, the task itself ends well.
    let p = pool.clone();
    let task = pool
        .spawn_queued(async move {
            p.lock();
            let refused = p.exec(bomb()).await.is_err();
            p.unlock();
            refused
        })
        .unwrap();
    assert!(task.await.unwrap(), "the locked pool refused the child");
    assert_idle_and_alive(&pool).await;
}

/// A map cancelled while its worker pulls the input (here the input itself cancels) counts
/// every item once: the ones that got an id in the summary's outcomes, the rest (the pulled
/// ones it drops included) in `not_started`. Before, the pulled item was counted twice.
pub async fn cancel_while_pulling_counts_each_item_once(sp: Sp) {
    const ITEMS: u32 = 100;
    let pool = limited(&sp, 1);
    let p = pool.clone();
    let input = (0..ITEMS).inspect(move |&i| {
        if i == 5 {
            p.cancel_all();
        }
    });
    let g = pool.map(input, 1, |x| async move { x }).unwrap();
    let summary = g.join().await.unwrap();
    assert_eq!(
        summary.total() + summary.not_started,
        u64::from(ITEMS),
        "{summary:?}"
    );
    assert_idle_and_alive(&pool).await;
}

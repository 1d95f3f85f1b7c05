//! What the model's tasks do and record, and the calls they and the pool's user code (map
//! inputs and closures) make back into the pool.

use crate::bombs::{BombOnDrop, Out, PayloadBomb, PANIC_MSG};
use crate::ops::{Beh, Inner, Reent, RetrySpec, Task};
use crate::support::{yield_n, Gate};
use async_taskpool::{
    current_task_id, ExecError, PoolError, PoolStats, TaskBuilder, TaskHandle, TaskPool,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

/// Run timeout of "slow" tasks, which never finish on their own: its length does not matter.
pub const TIMEOUT: Duration = Duration::from_millis(2);

/// Where a task came from, as the tracer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A loose task: the model's single `key`.
    Single(usize),
    /// An item of the model's group `g`.
    Item(usize),
    /// An item of some `SimpleTaskPool::start` group (mapped to its group at the end).
    Start,
}

/// Everything observed about one task id.
#[derive(Debug, Default, Clone)]
pub struct Rec {
    pub kind: Option<Kind>,
    pub beh: Option<Beh>,
    pub started: u32,
    /// Its last poll returned `Pending` at its closed gate.
    pub parked: bool,
    pub completed: u32,
    pub panicked: u32,
    pub on_cancel: u32,
    pub on_end: u32,
    /// Submitted without callbacks: no `on_end`, and a cancel shows only as no completion.
    pub plain: bool,
    /// The tag (input index of a map item) it ran with.
    pub tag: Option<usize>,
    /// Attempts of a retried task that failed on purpose (they do not count as started).
    pub fail_runs: u32,
    /// Those failed by panicking (else by a failing output).
    pub fail_panicked: bool,
    /// Its handle said it was shed (set by the driver at the end).
    pub shed: bool,
}

pub type SpawnSlot = Arc<Mutex<Option<Result<TaskHandle<Out>, PoolError>>>>;
/// An `exec`'s answer, with the output's tag taken out (so it is defused).
pub type ExecSlot = Arc<Mutex<Option<Result<usize, ExecError>>>>;

/// Shared by the driver, every task of one case and the pool's user code.
pub struct Ctx {
    /// For checks from inside tasks; taken out at the end to break the cycle.
    pub pool: Mutex<Option<TaskPool>>,
    /// Most tasks allowed inside their futures at once (see `SetLimit` in the driver).
    pub cap: AtomicUsize,
    pub running: AtomicUsize,
    /// `exec` children started from inside tasks (they run in their parent's slot), and those
    /// that left the running tasks (their `on_end` ran, or the `exec` was refused).
    pub nested_started: AtomicUsize,
    pub nested_ended: AtomicUsize,
    /// The gate `start` items wait at: the newest one the driver made.
    pub start_gate: Mutex<Gate>,
    pub violations: Mutex<Vec<String>>,
    pub tracer: Mutex<BTreeMap<u64, Rec>>,
    /// Names of the groups with a keyed rate limit: their items set aside wait queued while
    /// later items start, so FIFO holds only up to the keys.
    pub keyed: Mutex<BTreeSet<String>>,
}

impl Ctx {
    pub fn new(cap: usize) -> Self {
        Self {
            pool: Mutex::new(None),
            cap: AtomicUsize::new(cap),
            running: AtomicUsize::new(0),
            nested_started: AtomicUsize::new(0),
            nested_ended: AtomicUsize::new(0),
            start_gate: Mutex::new(Gate::new()),
            violations: Mutex::default(),
            tracer: Mutex::default(),
            keyed: Mutex::default(),
        }
    }

    pub fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    pub fn record(&self, id: u64, f: impl FnOnce(&mut Rec)) {
        f(self.tracer.lock().unwrap().entry(id).or_default());
    }

    pub fn set_kind(&self, id: u64, kind: Kind) {
        let mut t = self.tracer.lock().unwrap();
        let rec = t.entry(id).or_default();
        match rec.kind {
            Some(k) if k != kind => {
                let msg = format!("task {id} reported as {k:?} and as {kind:?}");
                drop(t);
                self.violation(msg);
            }
            _ => rec.kind = Some(kind),
        }
    }

    /// Queued work starts in FIFO order within its lane: when a task starts, no task of its
    /// lane (the loose tasks, or its group) submitted before it may still be queued.
    fn check_fifo(&self, id: u64) {
        let pool = self.pool.lock().unwrap().clone();
        let Some(pool) = pool else { return };
        let tasks = pool.tasks();
        let Some(me) = tasks.iter().find(|t| t.id.get() == id) else {
            self.violation(format!("task {id} runs but tasks() does not list it"));
            return;
        };
        if me
            .group
            .as_ref()
            .is_some_and(|g| self.keyed.lock().unwrap().contains(g))
        {
            return;
        }
        for t in &tasks {
            // A retried task queues again behind the work queued meanwhile.
            if t.state == async_taskpool::TaskState::Queued
                && t.attempt == 1
                && t.id.get() < id
                && t.group == me.group
            {
                self.violation(format!(
                    "task {id} started while earlier task {} of its lane ({:?}) is queued",
                    t.id, me.group
                ));
            }
        }
    }

    /// Reads the pool's stats and checks they are consistent: the outcomes add up (nothing is
    /// dropped by a runtime here), and no more tasks run than the limit allows plus the
    /// `exec` children running in their parents' slots.
    pub fn checked_stats(&self, pool: &TaskPool, at: &str) -> PoolStats {
        let nested_ended = self.nested_ended.load(SeqCst);
        let st = pool.stats();
        let bound = self
            .cap
            .load(SeqCst)
            .saturating_add(self.nested_started.load(SeqCst) - nested_ended);
        if st.ended < st.cancelled + st.panicked + st.timed_out + st.dropped + st.shed {
            self.violation(format!("{at}: outcomes exceed ended: {st:?}"));
        }
        if st.dropped != 0 {
            self.violation(format!(
                "{at}: tasks dropped by a runtime that runs: {st:?}"
            ));
        }
        if st.running > bound {
            self.violation(format!(
                "{at}: {} running, the limit and nested children allow {bound}: {st:?}",
                st.running
            ));
        }
        st
    }
}

/// Counts tasks inside their futures and checks a bound on entry.
struct Inside<'a>(&'a AtomicUsize);
impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

pub struct GroupConc {
    pub nc: usize,
    pub running: AtomicUsize,
}

/// Runs `work` as task `kind` does: records its start, checks the limits (an `exec` child
/// started from inside a task, `nested`, runs in its parent's slot and skips both the limit
/// and FIFO checks), then records its completion. Returns the tag.
async fn traced<W: Future<Output = ()>>(
    ctx: &Arc<Ctx>,
    kind: Kind,
    beh: Beh,
    group: Option<Arc<GroupConc>>,
    nested: bool,
    tag: usize,
    work: impl FnOnce(u64) -> W,
) -> usize {
    let id = current_task_id().expect("runs inside a pool task").get();
    ctx.set_kind(id, kind);
    ctx.record(id, |r| {
        r.beh = Some(beh);
        r.tag = Some(tag);
        r.started += 1;
    });
    let _in = if nested {
        None
    } else {
        ctx.check_fifo(id);
        let now = ctx.running.fetch_add(1, SeqCst) + 1;
        let guard = Inside(&ctx.running);
        let cap = ctx.cap.load(SeqCst);
        if now > cap {
            ctx.violation(format!(
                "task {id}: {now} tasks running, limit allows {cap}"
            ));
        }
        Some(guard)
    };
    let _in_group = group.as_ref().map(|g| {
        let now = g.running.fetch_add(1, SeqCst) + 1;
        if now > g.nc {
            ctx.violation(format!(
                "task {id}: {now} items of its group running, num_concurrent {}",
                g.nc
            ));
        }
        Inside(&g.running)
    });
    work(id).await;
    ctx.record(id, |r| r.completed += 1);
    tag
}

/// What a task of behaviour `beh` does once it runs.
async fn act(ctx: &Arc<Ctx>, id: u64, beh: Beh, gate: Option<Gate>) {
    match beh {
        Beh::Now => {}
        Beh::Yield(n) => yield_n(n.into()).await,
        Beh::Gate => {
            let gate = gate.expect("gated tasks get a gate");
            let mut wait = std::pin::pin!(gate.wait());
            std::future::poll_fn(|cx| {
                ctx.record(id, |r| r.parked = false);
                let poll = wait.as_mut().poll(cx);
                if poll.is_pending() {
                    ctx.record(id, |r| r.parked = true);
                }
                poll
            })
            .await
        }
        Beh::Panic => {
            ctx.record(id, |r| r.panicked += 1);
            std::panic::panic_any(PANIC_MSG);
        }
        Beh::PanicBomb => {
            ctx.record(id, |r| r.panicked += 1);
            std::panic::panic_any(PayloadBomb);
        }
        Beh::Slow => std::future::pending::<()>().await,
    }
}

pub type TaskFuture = BombOnDrop<Pin<Box<dyn Future<Output = Out> + Send>>>;

/// The future of a model task: it does `task.beh`, returns an `Out` tagged `tag`, and its
/// future and output panic when dropped if `task` says so.
pub fn task_future(
    ctx: Arc<Ctx>,
    kind: Kind,
    task: Task,
    gate: Option<Gate>,
    group: Option<Arc<GroupConc>>,
    tag: usize,
    nested: bool,
) -> TaskFuture {
    let armed = task.output_bomb;
    let fut = async move {
        let c = ctx.clone();
        let tag = traced(
            &ctx,
            kind,
            task.beh,
            group,
            nested,
            tag,
            move |id| async move { act(&c, id, task.beh, gate).await },
        )
        .await;
        Out::new(tag, armed)
    };
    BombOnDrop::new(Box::pin(fut), task.future_bomb)
}

/// What the item with id `id` of a `SimpleTaskPool::start` group does: fixed by its id, so
/// the model knows it without being told.
pub fn start_task(id: u64) -> Task {
    let h = ((id ^ 0x5DEE_CE66).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
    let beh = match h % 8 {
        0..=3 => Beh::Gate,
        4 => Beh::Now,
        5 => Beh::Yield(2),
        6 => Beh::Panic,
        _ => Beh::PanicBomb,
    };
    Task {
        beh,
        future_bomb: (h >> 3) % 4 == 0,
        output_bomb: (h >> 5) % 2 == 0,
        plain: false,
    }
}

/// The `SimpleTaskPool`'s factory: called as each `start` item starts, with its id current.
pub fn start_item(ctx: &Arc<Ctx>) -> TaskFuture {
    let Some(id) = current_task_id() else {
        ctx.violation("current_task_id() is None in a start item's factory".into());
        return BombOnDrop::new(Box::pin(async { Out::new(0, false) }), false);
    };
    let task = start_task(id.get());
    let gate = (task.beh == Beh::Gate).then(|| ctx.start_gate.lock().unwrap().clone());
    task_future(ctx.clone(), Kind::Start, task, gate, None, 0, false)
}

/// Gives a loose task callbacks that record into the tracer, and a timeout if it is slow.
/// `nested`: an `exec` child run from inside a task; its `on_end` marks it gone from the
/// running tasks.
pub fn configure<'p>(
    ctx: &Arc<Ctx>,
    b: TaskBuilder<'p>,
    key: usize,
    beh: Beh,
    nested: bool,
) -> TaskBuilder<'p> {
    let b = if beh == Beh::Slow {
        b.timeout(TIMEOUT)
    } else {
        b
    };
    let (c1, c2) = (ctx.clone(), ctx.clone());
    b.on_end(move |id| {
        let c = c1.clone();
        async move {
            c.set_kind(id.get(), Kind::Single(key));
            c.record(id.get(), |r| r.on_end += 1);
            if nested {
                c.nested_ended.fetch_add(1, SeqCst);
            }
        }
    })
    .on_cancel(move |id| {
        let c = c2.clone();
        async move {
            c.set_kind(id.get(), Kind::Single(key));
            c.record(id.get(), |r| r.on_cancel += 1);
        }
    })
}

/// A call into the pool that user code makes, as set up by the driver.
#[derive(Clone)]
pub struct Call {
    pub reent: Reent,
    /// `CancelGroup`: the group's name.
    pub target: Option<String>,
    /// `SpawnQueued`: the new task's key, gate, and where its handle goes.
    pub spawn: Option<(usize, Option<Gate>, SpawnSlot)>,
}

/// Makes `call` from user code the pool runs (`from`: where). Results that the documented
/// semantics rule out are violations.
pub fn call_pool(pool: &TaskPool, ctx: &Arc<Ctx>, call: &Call, from: &str) {
    crate::cover(if from == "a map input" {
        "a map input called the pool"
    } else {
        "a map closure called the pool"
    });
    match call.reent {
        Reent::CancelAll => pool.cancel_all(),
        Reent::CancelGroup(_) => {
            let name = call.target.as_deref().expect("a target group");
            match pool.cancel_group(name) {
                Ok(()) | Err(PoolError::GroupNotFound { .. }) => {}
                Err(e) => ctx.violation(format!("{from}: cancel_group({name}): {e}")),
            }
        }
        Reent::NumRunning => {
            let _ = pool.num_running();
        }
        Reent::Stats => {
            ctx.checked_stats(pool, from);
        }
        Reent::Tasks => {
            let ids: Vec<u64> = pool.tasks().iter().map(|t| t.id.get()).collect();
            let submitted = pool.stats().submitted;
            if !ids.windows(2).all(|w| w[0] < w[1]) || ids.iter().any(|&i| i >= submitted) {
                ctx.violation(format!(
                    "{from}: tasks() lists {ids:?} with {submitted} ids handed out"
                ));
            }
        }
        Reent::Lock => pool.lock(),
        Reent::Unlock => pool.unlock(),
        Reent::SpawnQueued(beh) => {
            let (key, gate, slot) = call.spawn.clone().expect("a spawn target");
            let fut = task_future(
                ctx.clone(),
                Kind::Single(key),
                Task::plain(beh),
                gate,
                None,
                key,
                false,
            );
            let res = configure(ctx, pool.build_task(), key, beh, false).spawn_queued(fut);
            *slot.lock().unwrap() = Some(res);
        }
    }
}

/// A map's input: its items, and the calls into the pool made while pulling them.
pub struct Input {
    pub items: std::vec::IntoIter<(usize, Task, Option<Call>, Option<Call>)>,
    /// Held only if some item calls the pool.
    pub pool: Option<TaskPool>,
    pub ctx: Arc<Ctx>,
}

/// What the map's closure gets: index, task, and the call the closure makes.
pub type Pulled = (usize, Task, Option<Call>);

impl Iterator for Input {
    type Item = Pulled;

    fn next(&mut self) -> Option<Pulled> {
        let (i, task, from_input, from_closure) = self.items.next()?;
        if let (Some(call), Some(pool)) = (&from_input, &self.pool) {
            call_pool(pool, &self.ctx, call, "a map input");
        }
        Some((i, task, from_closure))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

/// The future of a loose task that waits for a child of the same pool from inside it:
/// `exec` (the child runs nested in this task's slot) or `spawn` (it must return at once,
/// with the child queued). The answer goes to `exec_slot` or `spawn_slot`.
#[allow(clippy::too_many_arguments)]
pub async fn parent_future(
    ctx: Arc<Ctx>,
    pool: TaskPool,
    key: usize,
    child_key: usize,
    inner: Inner,
    child: Task,
    gate: Option<Gate>,
    exec_slot: ExecSlot,
    spawn_slot: SpawnSlot,
    strict: bool,
) -> Out {
    let c = ctx.clone();
    let tag = traced(
        &ctx,
        Kind::Single(key),
        Beh::Now,
        None,
        false,
        key,
        move |_| {
            async move {
                match inner {
                    Inner::Exec => {
                        c.nested_started.fetch_add(1, SeqCst);
                        let fut = task_future(
                            c.clone(),
                            Kind::Single(child_key),
                            child,
                            gate,
                            None,
                            child_key,
                            true,
                        );
                        let mut exec = std::pin::pin!(configure(
                            &c,
                            pool.build_task(),
                            child_key,
                            child.beh,
                            true
                        )
                        .exec(fut));
                        // Polled once per poll of this task (an extra poll would be a
                        // poll of the child that no wake asked for, which the model
                        // rules out for tasks parked at their gate).
                        let mut first = true;
                        let res = std::future::poll_fn(|cx| {
                            let poll = exec.as_mut().poll(cx);
                            if std::mem::take(&mut first) && strict && poll.is_pending() {
                                // Nested in this task's slot, the child runs at once: on
                                // one thread nothing can come between (a cancel, say).
                                let started = c.tracer.lock().unwrap().values().any(|r| {
                                    r.kind == Some(Kind::Single(child_key)) && r.started > 0
                                });
                                if !started {
                                    c.violation(format!(
                                        "exec from inside pool task (single {key}): the \
                                         child did not start at once"
                                    ));
                                }
                            }
                            poll
                        })
                        .await;
                        crate::cover("an exec from inside a task returned");
                        if let Err(ExecError::Pool(_)) = &res {
                            // Refused: the child never ran, so no `on_end` counts it out.
                            c.nested_ended.fetch_add(1, SeqCst);
                        }
                        *exec_slot.lock().unwrap() = Some(crate::driver::exec_tag(res));
                    }
                    Inner::Spawn => {
                        let fut = task_future(
                            c.clone(),
                            Kind::Single(child_key),
                            child,
                            gate,
                            None,
                            child_key,
                            false,
                        );
                        let mut spawn = std::pin::pin!(configure(
                            &c,
                            pool.build_task(),
                            child_key,
                            child.beh,
                            false
                        )
                        .spawn(fut));
                        let first =
                            std::future::poll_fn(|cx| Poll::Ready(spawn.as_mut().poll(cx))).await;
                        match first {
                            Poll::Ready(res) => {
                                crate::cover("a spawn from inside a task returned");
                                *spawn_slot.lock().unwrap() = Some(res)
                            }
                            Poll::Pending => c.violation(format!(
                                "spawn().await from inside pool task (single {key}) waited for \
                             room instead of queueing its child"
                            )),
                        }
                    }
                }
            }
        },
    )
    .await;
    Out::new(tag, false)
}

/// The output tag of a retried task's attempt that failed on purpose.
pub const FAIL: usize = usize::MAX;

/// Checks from inside attempt `attempt` of a retried task that `tasks()` lists it running
/// on that attempt.
fn check_attempt(ctx: &Arc<Ctx>, id: u64, attempt: u32) {
    let pool = ctx.pool.lock().unwrap().clone();
    let Some(pool) = pool else { return };
    let info = pool.tasks().into_iter().find(|t| t.id.get() == id);
    match info {
        Some(t) if t.attempt == attempt && t.state == async_taskpool::TaskState::Running => {}
        other => ctx.violation(format!(
            "retried task {id} on its attempt {attempt}: tasks() lists {other:?}"
        )),
    }
}

/// The factory of a retried loose task (the model's single `key`): its attempts
/// `1..=spec.fails` fail (panic, or return the `FAIL` output), each recorded in the tracer
/// and checked to run under one id with its attempt number listed; the next behaves as
/// `task`.
pub fn retry_factory(
    ctx: Arc<Ctx>,
    key: usize,
    task: Task,
    spec: RetrySpec,
    gate: Option<Gate>,
) -> impl FnMut() -> TaskFuture + Send + 'static {
    let mut made = 0u32;
    let first_id: Arc<Mutex<Option<u64>>> = Arc::default();
    move || {
        made += 1;
        let attempt = made;
        let (ctx, first_id) = (ctx.clone(), first_id.clone());
        let fails = attempt <= u32::from(spec.fails);
        // The bomb goes on the attempt's whole future, which the pool drops, not on the
        // inner one, which the attempt itself drops as it returns.
        let bomb = !fails && task.future_bomb;
        let inner = (!fails).then(|| {
            let task = Task {
                future_bomb: false,
                ..task
            };
            task_future(
                ctx.clone(),
                Kind::Single(key),
                task,
                gate.clone(),
                None,
                key,
                false,
            )
        });
        let fut = async move {
            let id = current_task_id().expect("runs inside a pool task").get();
            if *first_id.lock().unwrap().get_or_insert(id) != id {
                ctx.violation(format!(
                    "retried single {key}: attempt {attempt} runs as task {id}, not as the \
                     first attempt's task"
                ));
            }
            check_attempt(&ctx, id, attempt);
            match inner {
                Some(inner) => inner.await,
                None => {
                    ctx.set_kind(id, Kind::Single(key));
                    ctx.record(id, |r| {
                        r.fail_runs += 1;
                        r.fail_panicked = spec.by_panic;
                    });
                    if attempt > 1 {
                        crate::cover("a retried attempt failed again");
                    }
                    if spec.by_panic {
                        std::panic::panic_any(PANIC_MSG);
                    }
                    Out::new(FAIL, false)
                }
            }
        };
        BombOnDrop::new(Box::pin(fut), bomb)
    }
}

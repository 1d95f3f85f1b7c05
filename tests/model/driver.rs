//! The model test's operations, task bodies, driver and reference checks.

use crate::support::{yield_n, Counter, Gate, Sp};
use async_taskpool::{
    current_task_id, ExecError, Group, GroupSummary, PoolError, TaskBuilder, TaskError, TaskHandle,
    TaskPool,
};
use futures::StreamExt;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// Run timeout of "slow" tasks, which never finish on their own: its length does not matter.
const TIMEOUT: Duration = Duration::from_millis(2);
/// Ids from here on are never handed out in a case.
const UNKNOWN_ID: u64 = 1 << 40;
const PANIC_MSG: &str = "model: intended panic";
/// A case that takes longer than this hangs: fail it rather than stall.
const WATCHDOG: Duration = Duration::from_secs(30);

// ----- generated input -----

/// What a task does once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beh {
    /// Returns at once.
    Now,
    /// Yields this many times, then returns.
    Yield(u8),
    /// Waits until the driver opens its gate.
    Gate,
    /// Panics at once.
    Panic,
    /// Never returns; has a short run timeout.
    Slow,
}

/// An id to cancel: one handed out so far (index modulo the count), or one never handed out.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    Known(u16),
    Unknown(u8),
}

#[derive(Debug, Clone)]
pub enum Op {
    /// `spawn().await`; if it would wait and the flag is set, drop it (withdraws the task).
    Spawn(Beh, bool),
    SpawnQueued(Beh),
    TrySpawn(Beh),
    /// `exec().await`, run beside the driver; dropped after its first poll if the flag is set.
    Exec(Beh, bool),
    Apply(u8, Beh),
    Map {
        items: Vec<Beh>,
        nc: u8,
        ordered: bool,
        timeout: bool,
    },
    Cancel(Vec<Pick>),
    CancelGroup(u8),
    CancelAll,
    Lock,
    Unlock,
    SetLimit(Option<u8>),
    Release(u8),
    Join,
    Flush,
    GatherAndClose,
    Close,
}

#[derive(Debug, Clone)]
pub struct Case {
    limit: Option<u8>,
    ops: Vec<Op>,
}

fn beh() -> impl Strategy<Value = Beh> {
    prop_oneof![
        3 => Just(Beh::Now),
        2 => (1u8..4).prop_map(Beh::Yield),
        3 => Just(Beh::Gate),
        1 => Just(Beh::Panic),
        1 => Just(Beh::Slow),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<u16>().prop_map(Pick::Known),
        1 => any::<u8>().prop_map(Pick::Unknown),
    ]
}

fn submit_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (beh(), any::<bool>()).prop_map(|(b, d)| Op::Spawn(b, d)),
        4 => beh().prop_map(Op::SpawnQueued),
        2 => beh().prop_map(Op::TrySpawn),
        2 => (beh(), any::<bool>()).prop_map(|(b, d)| Op::Exec(b, d)),
        1 => (0u8..5, beh()).prop_map(|(n, b)| Op::Apply(n, b)),
        2 => (vec(beh(), 0..8), 0u8..5, any::<bool>(), prop::bool::weighted(0.25)).prop_map(
            |(items, nc, ordered, timeout)| Op::Map { items, nc, ordered, timeout }
        ),
    ]
}

fn control_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => vec(pick(), 1..4).prop_map(Op::Cancel),
        1 => any::<u8>().prop_map(Op::CancelGroup),
        1 => Just(Op::CancelAll),
        1 => Just(Op::Lock),
        1 => Just(Op::Unlock),
        2 => option::of(0u8..5).prop_map(Op::SetLimit),
        5 => any::<u8>().prop_map(Op::Release),
    ]
}

fn wait_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Join),
        2 => Just(Op::Flush),
        1 => Just(Op::GatherAndClose),
        1 => Just(Op::Close),
    ]
}

pub fn case_strategy() -> impl Strategy<Value = Case> {
    let op = prop_oneof![14 => submit_op(), 12 => control_op(), 2 => wait_op()];
    (option::of(1u8..5), vec(op, 1..40)).prop_map(|(limit, ops)| Case { limit, ops })
}

/// Intended panics in tasks would flood the output; everything else still prints.
pub fn quiet_intended_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PANIC_MSG) {
                default(info);
            }
        }));
    });
}

/// Runs one case under the watchdog. `strict`: the runtime polls everything on one thread.
pub async fn guarded(sp: Sp, case: Case, strict: bool) {
    let timer = sp.sleep(WATCHDOG);
    let run = Box::pin(run_case(sp, case.clone(), strict));
    match futures::future::select(run, timer).await {
        futures::future::Either::Left(((), _)) => {}
        futures::future::Either::Right(_) => {
            panic!("case did not finish within {WATCHDOG:?}: {case:?}")
        }
    }
}

// ----- what tasks record -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single(usize),
    Item(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Completed,
    Cancelled,
    Panicked,
    TimedOut,
}

/// Everything observed about one task id.
#[derive(Debug, Default, Clone)]
struct Rec {
    kind: Option<Kind>,
    beh: Option<Beh>,
    started: u32,
    /// Its last poll returned `Pending` at its closed gate.
    parked: bool,
    completed: u32,
    panicked: u32,
    on_cancel: u32,
    on_end: u32,
}

impl Rec {
    fn outcome(&self) -> Outcome {
        if self.on_cancel > 0 {
            Outcome::Cancelled
        } else if self.completed > 0 {
            Outcome::Completed
        } else if self.panicked > 0 {
            Outcome::Panicked
        } else {
            Outcome::TimedOut
        }
    }
}

/// Shared by the driver and every task of one case.
struct Ctx {
    /// For the FIFO check inside tasks; taken out at the end to break the cycle.
    pool: Mutex<Option<TaskPool>>,
    /// Most tasks allowed inside their futures at once (see `Model::raise_cap`).
    cap: AtomicUsize,
    running: AtomicUsize,
    violations: Mutex<Vec<String>>,
    tracer: Mutex<BTreeMap<u64, Rec>>,
}

impl Ctx {
    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    fn record(&self, id: u64, f: impl FnOnce(&mut Rec)) {
        f(self.tracer.lock().unwrap().entry(id).or_default());
    }

    fn set_kind(&self, id: u64, kind: Kind) {
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

    /// Queued work starts in FIFO order: when a task starts, no task submitted before it
    /// may still be queued.
    fn check_fifo(&self, id: u64) {
        let pool = self.pool.lock().unwrap().clone();
        let Some(pool) = pool else { return };
        for t in pool.tasks() {
            if t.state == async_taskpool::TaskState::Queued && t.id.get() < id {
                self.violation(format!(
                    "task {id} started while earlier task {} is queued",
                    t.id
                ));
            }
        }
    }
}

/// Counts tasks inside their futures and checks a bound on entry.
struct Inside<'a>(&'a AtomicUsize);
impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

struct GroupConc {
    nc: usize,
    running: AtomicUsize,
}

async fn body(
    ctx: Arc<Ctx>,
    kind: Kind,
    beh: Beh,
    gate: Option<Gate>,
    group: Option<Arc<GroupConc>>,
    tag: usize,
) -> usize {
    let id = current_task_id().expect("runs inside a pool task").get();
    ctx.set_kind(id, kind);
    ctx.record(id, |r| {
        r.beh = Some(beh);
        r.started += 1;
    });
    if let Kind::Single(_) = kind {
        ctx.check_fifo(id);
    }
    let now = ctx.running.fetch_add(1, SeqCst) + 1;
    let _in = Inside(&ctx.running);
    let cap = ctx.cap.load(SeqCst);
    if now > cap {
        ctx.violation(format!(
            "task {id}: {now} tasks running, limit allows {cap}"
        ));
    }
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
        Beh::Slow => std::future::pending::<()>().await,
    }
    ctx.record(id, |r| r.completed += 1);
    tag
}

// ----- the reference model -----

type SpawnSlot = Arc<Mutex<Option<Result<TaskHandle<usize>, PoolError>>>>;
type ExecSlot = Arc<Mutex<Option<Result<usize, ExecError>>>>;

struct Single {
    beh: Beh,
    gate: Option<usize>,
    step: usize,
    /// The id is in `lo..hi` (exact when no map allocates ids meanwhile).
    lo: u64,
    hi: u64,
    handle: Option<TaskHandle<usize>>,
    spawn_slot: Option<SpawnSlot>,
    exec_slot: Option<ExecSlot>,
    /// Withdrawn `spawn` or dropped `exec`.
    dropped_at: Option<usize>,
}

impl Single {
    fn known_id(&self) -> Option<u64> {
        self.handle
            .as_ref()
            .map(|h| h.id().get())
            .or((self.hi == self.lo + 1).then_some(self.lo))
    }
    fn known_retired(&self) -> bool {
        self.handle.as_ref().is_some_and(TaskHandle::is_finished)
            || self
                .exec_slot
                .as_ref()
                .is_some_and(|s| s.lock().unwrap().is_some())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Yes,
    No,
    Maybe,
}

struct GroupRec {
    group: Group<usize>,
    items: Vec<Beh>,
    gate: Option<usize>,
    ordered: bool,
    step: usize,
    /// Ids handed out before the group was made: its items' ids are at least this.
    first_id: u64,
    cancel_steps: Vec<usize>,
    reg: Reg,
}

struct FlushSnap {
    sub1: u64,
    live1: BTreeSet<u64>,
    sub2: u64,
    live2: BTreeSet<u64>,
    a: Vec<GroupSummary>,
    b: Vec<GroupSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    NotFound,
    Ended,
    Cancelled,
}

struct Model {
    sp: Sp,
    strict: bool,
    pool: TaskPool,
    ctx: Arc<Ctx>,
    limit: Option<usize>,
    locked: bool,
    closed: bool,
    singles: Vec<Single>,
    groups: Vec<GroupRec>,
    gates: Vec<(Gate, Option<usize>)>,
    id_cancels: Vec<(u64, usize)>,
    cancel_all_steps: Vec<usize>,
    /// Ids handed out when the pool closed, and the step it closed at.
    closed_at: Option<(u64, usize)>,
    /// Tasks parked at their gate just before each cancelling step.
    parked: BTreeMap<usize, BTreeSet<u64>>,
    flush: Option<FlushSnap>,
    continuations: usize,
    done: Counter,
    last_single_id: Option<u64>,
}

fn cap_of(limit: Option<usize>) -> usize {
    limit.unwrap_or(usize::MAX)
}

/// The outcomes a task may end with, given the steps at which it was asked to cancel.
/// `sure(c)`: at step `c` no poll of the task can have been in flight (one thread polls
/// everything, or the task was parked at its gate).
fn allowed_final(
    beh: Beh,
    release: Option<usize>,
    cancels: &[usize],
    sure: impl Fn(usize) -> bool,
) -> Vec<Outcome> {
    let base = match beh {
        Beh::Now | Beh::Yield(_) | Beh::Gate => Outcome::Completed,
        Beh::Panic => Outcome::Panicked,
        Beh::Slow => Outcome::TimedOut,
    };
    if cancels.is_empty() {
        return vec![base];
    }
    // Waiting at a closed gate, it cannot finish before it sees the cancellation. (A poll
    // that began before the cancel, on another thread, may see the gate open: that task
    // finished before it noticed, and keeps its output, as documented.)
    let gated = |c: usize| release.is_none_or(|r| c < r);
    if beh == Beh::Gate && cancels.iter().any(|&c| gated(c) && sure(c)) {
        return vec![Outcome::Cancelled];
    }
    // It may have finished before it noticed.
    vec![base, Outcome::Cancelled]
}

fn out_of<T>(res: &Result<T, TaskError>) -> Outcome {
    match res {
        Ok(_) => Outcome::Completed,
        Err(e) if e.is_cancelled() => Outcome::Cancelled,
        Err(e) if e.is_panic() => Outcome::Panicked,
        Err(e) if e.is_timeout() => Outcome::TimedOut,
        Err(e) => panic!("unexpected task error {e}"),
    }
}

fn refusal(locked: bool, closed: bool) -> Option<&'static str> {
    if closed {
        Some("Closed")
    } else if locked {
        Some("Locked")
    } else {
        None
    }
}

fn pool_err_name(e: &PoolError) -> &'static str {
    match e {
        PoolError::Closed { .. } => "Closed",
        PoolError::Locked { .. } => "Locked",
        PoolError::Full { .. } => "Full",
        PoolError::TaskNotFound { .. } => "TaskNotFound",
        PoolError::AlreadyCancelled { .. } => "AlreadyCancelled",
        PoolError::AlreadyEnded { .. } => "AlreadyEnded",
        PoolError::GroupNotFound { .. } => "GroupNotFound",
        PoolError::GroupExists { .. } => "GroupExists",
        PoolError::InvalidLimit { .. } => "InvalidLimit",
        PoolError::CalledFromOwnTask { .. } => "CalledFromOwnTask",
        _ => "other",
    }
}

fn check_refusal<T: std::fmt::Debug>(
    res: &Result<T, PoolError>,
    locked: bool,
    closed: bool,
    what: &str,
) {
    match (res, refusal(locked, closed)) {
        (Ok(_), None) => {}
        (Err(e), Some(want)) => assert_eq!(pool_err_name(e), want, "{what}: {e}"),
        (r, want) => panic!("{what}: got {r:?}, expected refusal {want:?}"),
    }
}

impl Model {
    fn cap(&self) -> usize {
        self.ctx.cap.load(SeqCst)
    }

    fn new_gate(&mut self, needed: bool) -> (Option<usize>, Option<Gate>) {
        if !needed {
            return (None, None);
        }
        let g = Gate::new();
        self.gates.push((g.clone(), None));
        (Some(self.gates.len() - 1), Some(g))
    }

    fn release_all(&mut self, step: usize) {
        for (g, released) in &mut self.gates {
            if released.is_none() {
                g.open();
                *released = Some(step);
            }
        }
    }

    fn all_groups_settled(&self) -> bool {
        self.groups.iter().all(|g| g.group.is_finished())
    }

    /// Configures a single task: callbacks that record into the tracer, a timeout if slow.
    fn configure<'p>(ctx: &Arc<Ctx>, b: TaskBuilder<'p>, key: usize, beh: Beh) -> TaskBuilder<'p> {
        let (c1, c2) = (ctx.clone(), ctx.clone());
        let b = b
            .on_end(move |id| {
                let c = c1.clone();
                async move {
                    c.set_kind(id.get(), Kind::Single(key));
                    c.record(id.get(), |r| r.on_end += 1);
                }
            })
            .on_cancel(move |id| {
                let c = c2.clone();
                async move {
                    c.set_kind(id.get(), Kind::Single(key));
                    c.record(id.get(), |r| r.on_cancel += 1);
                }
            });
        if beh == Beh::Slow {
            b.timeout(TIMEOUT)
        } else {
            b
        }
    }

    fn submitted(&self) -> u64 {
        self.pool.stats().submitted
    }

    fn push_single(&mut self, beh: Beh, gate: Option<usize>, step: usize, lo: u64) -> usize {
        let hi = self.submitted();
        self.singles.push(Single {
            beh,
            gate,
            step,
            lo,
            hi,
            handle: None,
            spawn_slot: None,
            exec_slot: None,
            dropped_at: None,
        });
        self.singles.len() - 1
    }

    fn note_handle(&mut self, key: usize, h: TaskHandle<usize>, settled: bool) {
        let s = &mut self.singles[key];
        let id = h.id().get();
        assert!(
            (s.lo..s.hi).contains(&id),
            "task id {id} outside the ids handed out meanwhile {}..{}",
            s.lo,
            s.hi
        );
        if settled {
            assert_eq!(id, s.lo, "ids are sequential at submission");
        }
        if let Some(last) = self.last_single_id {
            assert!(
                id > last,
                "ids grow with submission order: {id} after {last}"
            );
        }
        self.last_single_id = Some(id);
        s.handle = Some(h);
    }

    /// Whether a cancel at step `c` surely reached task `id` before any poll of it could see
    /// its gate open.
    fn sure(&self, c: usize, id: u64) -> bool {
        self.strict || self.parked.get(&c).is_some_and(|p| p.contains(&id))
    }

    async fn apply(&mut self, op: &Op, step: usize) {
        let (locked, closed) = (self.locked, self.closed);
        if matches!(
            op,
            Op::Spawn(..) | Op::Exec(..) | Op::Cancel(_) | Op::CancelGroup(_) | Op::CancelAll
        ) {
            // Nothing wakes a task parked at a closed gate but the gate or a cancel: no poll
            // of it is in flight when this step cancels it.
            let parked = self
                .ctx
                .tracer
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, r)| r.parked)
                .map(|(id, _)| *id)
                .collect();
            self.parked.insert(step, parked);
        }
        match op {
            Op::Spawn(beh, drop_if_waiting) => {
                let key = self.singles.len();
                let (gi, gate) = self.new_gate(*beh == Beh::Gate);
                let settled = self.all_groups_settled();
                let lo = self.submitted();
                let fut = body(self.ctx.clone(), Kind::Single(key), *beh, gate, None, key);
                let (p, ctx, beh) = (self.pool.clone(), self.ctx.clone(), *beh);
                let mut f: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
                    Self::configure(&ctx, p.build_task(), key, beh)
                        .spawn(fut)
                        .await
                });
                match futures::poll!(f.as_mut()) {
                    std::task::Poll::Ready(res) => {
                        check_refusal(&res, locked, closed, "spawn");
                        if let Ok(h) = res {
                            let key = self.push_single(beh, gi, step, lo);
                            self.note_handle(key, h, settled);
                        }
                    }
                    std::task::Poll::Pending => {
                        assert!(
                            refusal(locked, closed).is_none(),
                            "spawn accepted while refusing"
                        );
                        let key = self.push_single(beh, gi, step, lo);
                        if *drop_if_waiting {
                            drop(f);
                            self.singles[key].dropped_at = Some(step);
                        } else {
                            let slot: SpawnSlot = Arc::default();
                            let (s, done) = (slot.clone(), self.done.clone());
                            self.continuations += 1;
                            self.sp
                                .spawn(Box::pin(async move {
                                    let r = f.await;
                                    *s.lock().unwrap() = Some(r);
                                    done.bump();
                                }))
                                .unwrap();
                            self.singles[key].spawn_slot = Some(slot);
                        }
                    }
                }
            }
            Op::SpawnQueued(beh) | Op::TrySpawn(beh) => {
                let key = self.singles.len();
                let (gi, gate) = self.new_gate(*beh == Beh::Gate);
                let settled = self.all_groups_settled();
                let lo = self.submitted();
                let fut = body(self.ctx.clone(), Kind::Single(key), *beh, gate, None, key);
                let b = Self::configure(&self.ctx, self.pool.build_task(), key, *beh);
                let res = if let Op::SpawnQueued(_) = op {
                    b.spawn_queued(fut)
                } else {
                    match b.try_spawn(fut) {
                        Ok(h) => Ok(h),
                        Err(e) if matches!(e.error(), PoolError::Full { .. }) => {
                            assert!(self.limit.is_some(), "an unlimited pool is never full");
                            assert!(refusal(locked, closed).is_none());
                            if settled {
                                assert_eq!(self.submitted(), lo, "a refused try_spawn takes no id");
                            }
                            drop(e.into_future());
                            return;
                        }
                        Err(e) => Err(e.error().clone()),
                    }
                };
                check_refusal(&res, locked, closed, "spawn_queued/try_spawn");
                if let Ok(h) = res {
                    let key = self.push_single(*beh, gi, step, lo);
                    self.note_handle(key, h, settled);
                }
            }
            Op::Exec(beh, drop_it) => {
                let key = self.singles.len();
                let (gi, gate) = self.new_gate(*beh == Beh::Gate);
                let lo = self.submitted();
                let fut = body(self.ctx.clone(), Kind::Single(key), *beh, gate, None, key);
                let (p, ctx, beh) = (self.pool.clone(), self.ctx.clone(), *beh);
                let mut f: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
                    Self::configure(&ctx, p.build_task(), key, beh)
                        .exec(fut)
                        .await
                });
                match futures::poll!(f.as_mut()) {
                    std::task::Poll::Ready(Err(ExecError::Pool(e))) => {
                        check_refusal::<()>(&Err(e), locked, closed, "exec");
                    }
                    std::task::Poll::Ready(res) => {
                        assert!(
                            refusal(locked, closed).is_none(),
                            "exec accepted while refusing"
                        );
                        let key = self.push_single(beh, gi, step, lo);
                        self.singles[key].exec_slot = Some(Arc::new(Mutex::new(Some(res))));
                    }
                    std::task::Poll::Pending => {
                        assert!(
                            refusal(locked, closed).is_none(),
                            "exec accepted while refusing"
                        );
                        let key = self.push_single(beh, gi, step, lo);
                        if *drop_it {
                            drop(f);
                            self.singles[key].dropped_at = Some(step);
                        } else {
                            let slot: ExecSlot = Arc::default();
                            let (s, done) = (slot.clone(), self.done.clone());
                            self.continuations += 1;
                            self.sp
                                .spawn(Box::pin(async move {
                                    let r = f.await;
                                    *s.lock().unwrap() = Some(r);
                                    done.bump();
                                }))
                                .unwrap();
                            self.singles[key].exec_slot = Some(slot);
                        }
                    }
                }
            }
            Op::Apply(n, beh) => {
                let g = self.groups.len();
                let (gi, gate) = self.new_gate(*beh == Beh::Gate);
                let conc = Arc::new(GroupConc {
                    nc: usize::MAX,
                    running: AtomicUsize::new(0),
                });
                let first_id = self.submitted();
                let (ctx, beh) = (self.ctx.clone(), *beh);
                let b = self.group_builder(g, beh == Beh::Slow);
                let res = b.apply(usize::from(*n), move || {
                    body(
                        ctx.clone(),
                        Kind::Item(g),
                        beh,
                        gate.clone(),
                        Some(conc.clone()),
                        0,
                    )
                });
                check_refusal(&res, locked, closed, "apply");
                if let Ok(group) = res {
                    self.groups.push(GroupRec {
                        group,
                        items: vec![beh; usize::from(*n)],
                        gate: gi,
                        ordered: false,
                        step,
                        first_id,
                        cancel_steps: Vec::new(),
                        reg: Reg::Yes,
                    });
                }
            }
            Op::Map {
                items,
                nc,
                ordered,
                timeout,
            } => {
                let g = self.groups.len();
                // A timed group's items all have the timeout: gated items would time out
                // rather than wait, so they are slow ones, and yielding ones could, so they
                // finish in their first poll (the timer starts after it); an untimed group has
                // no slow ones.
                let items: Vec<Beh> = items
                    .iter()
                    .map(|&b| match (b, timeout) {
                        (Beh::Gate, true) => Beh::Slow,
                        (Beh::Yield(_), true) => Beh::Now,
                        (Beh::Slow, false) => Beh::Now,
                        (b, _) => b,
                    })
                    .collect();
                let (gi, gate) = self.new_gate(items.contains(&Beh::Gate));
                let nc = usize::from(*nc);
                let conc = Arc::new(GroupConc {
                    nc,
                    running: AtomicUsize::new(0),
                });
                let first_id = self.submitted();
                let ctx = self.ctx.clone();
                let b = self.group_builder(g, *timeout);
                let input: Vec<(usize, Beh)> = items.iter().copied().enumerate().collect();
                let f = move |(i, beh): (usize, Beh)| {
                    let gate = (beh == Beh::Gate).then(|| gate.clone().unwrap());
                    body(ctx.clone(), Kind::Item(g), beh, gate, Some(conc.clone()), i)
                };
                let res = if *ordered {
                    b.map(input, nc, f)
                } else {
                    b.unordered().map(input, nc, f)
                };
                if nc == 0 {
                    assert!(
                        matches!(res, Err(PoolError::InvalidLimit { .. })),
                        "{res:?}"
                    );
                    return;
                }
                check_refusal(&res, locked, closed, "map");
                if let Ok(group) = res {
                    self.groups.push(GroupRec {
                        group,
                        items,
                        gate: gi,
                        ordered: *ordered,
                        step,
                        first_id,
                        cancel_steps: Vec::new(),
                        reg: Reg::Yes,
                    });
                }
            }
            Op::Cancel(picks) => {
                let sub = self.submitted();
                let ids: Vec<u64> = picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Known(k) if sub > 0 => u64::from(k) % sub,
                        Pick::Known(_) => UNKNOWN_ID,
                        Pick::Unknown(k) => UNKNOWN_ID + u64::from(k),
                    })
                    .collect();
                let allowed: Vec<Vec<Status>> =
                    ids.iter().map(|&id| self.allowed_cancel(id)).collect();
                let res = self
                    .pool
                    .cancel(ids.iter().map(|&i| async_taskpool::TaskId::new(i)));
                match res {
                    Ok(()) => {
                        for (id, a) in ids.iter().zip(&allowed) {
                            assert!(
                                a.contains(&Status::Ok),
                                "cancel({ids:?}) succeeded, but {id} allows {a:?}"
                            );
                            self.id_cancels.push((*id, step));
                        }
                    }
                    Err(e) => {
                        let (st, eid) = match &e {
                            PoolError::TaskNotFound { id, .. } => (Status::NotFound, id.get()),
                            PoolError::AlreadyEnded { id, .. } => (Status::Ended, id.get()),
                            PoolError::AlreadyCancelled { id, .. } => (Status::Cancelled, id.get()),
                            other => panic!("cancel: unexpected error {other}"),
                        };
                        let first = ids
                            .iter()
                            .position(|&i| i == eid)
                            .expect("the error names an id asked for");
                        assert!(
                            allowed[first].contains(&st),
                            "cancel({ids:?}): {e}, but {eid} allows {:?}",
                            allowed[first]
                        );
                        for (id, a) in ids[..first].iter().zip(&allowed) {
                            assert!(
                                a.contains(&Status::Ok),
                                "cancel({ids:?}): {e}, but earlier {id} allows only {a:?}"
                            );
                        }
                    }
                }
            }
            Op::CancelGroup(k) => {
                let n = self.groups.len();
                let g = usize::from(*k) % (n + 1);
                if g == n {
                    let res = self.pool.cancel_group("no-such-group");
                    assert!(
                        matches!(res, Err(PoolError::GroupNotFound { .. })),
                        "{res:?}"
                    );
                    return;
                }
                let res = self.groups[g].group.cancel();
                match (self.groups[g].reg, &res) {
                    (Reg::Yes | Reg::Maybe, Ok(())) => {
                        self.groups[g].reg = Reg::No;
                        self.groups[g].cancel_steps.push(step);
                    }
                    // A handle whose group was cancelled or flushed reports that its group ended.
                    (Reg::No | Reg::Maybe, Err(PoolError::GroupEnded { .. })) => {
                        self.groups[g].reg = Reg::No;
                    }
                    (reg, res) => panic!("cancel_group of a group registered {reg:?}: {res:?}"),
                }
            }
            Op::CancelAll => {
                self.pool.cancel_all();
                self.cancel_all_steps.push(step);
                for g in &mut self.groups {
                    g.reg = Reg::No;
                }
            }
            Op::Lock => {
                self.pool.lock();
                self.locked = true;
            }
            Op::Unlock => {
                self.pool.unlock();
                self.locked = self.closed;
            }
            Op::SetLimit(l) => {
                let l = l.map(usize::from);
                if l == Some(0) {
                    let res = self.pool.set_limit(l);
                    assert!(
                        matches!(res, Err(PoolError::InvalidLimit { .. })),
                        "{res:?}"
                    );
                    return;
                }
                // Tasks already running may exceed a lowered limit until they end: keep the
                // highest limit since the pool was last idle as the bound.
                self.ctx.cap.fetch_max(cap_of(l), SeqCst);
                self.pool.set_limit(l).unwrap();
                self.limit = l;
            }
            Op::Release(k) => {
                if !self.gates.is_empty() {
                    let i = usize::from(*k) % self.gates.len();
                    let (g, released) = &mut self.gates[i];
                    if released.is_none() {
                        g.open();
                        *released = Some(step);
                    }
                }
            }
            Op::Join => {
                let p = self.pool.clone();
                self.wait_idle(step, Box::pin(async move { p.join().await }))
                    .await;
            }
            Op::GatherAndClose => {
                let p = self.pool.clone();
                self.wait_idle(step, Box::pin(async move { p.gather_and_close().await }))
                    .await;
                self.closed_at.get_or_insert((self.submitted(), step));
                self.locked = true;
                self.closed = true;
            }
            Op::Close => {
                self.pool.close();
                self.closed_at.get_or_insert((self.submitted(), step));
                self.locked = true;
                self.closed = true;
            }
            Op::Flush => self.do_flush().await,
        }
    }

    fn group_builder(&self, g: usize, timeout: bool) -> async_taskpool::GroupBuilder<'_> {
        let (c1, c2) = (self.ctx.clone(), self.ctx.clone());
        let b = self
            .pool
            .build_group()
            .on_end(move |id| {
                let c = c1.clone();
                async move {
                    c.set_kind(id.get(), Kind::Item(g));
                    c.record(id.get(), |r| r.on_end += 1);
                }
            })
            .on_cancel(move |id| {
                let c = c2.clone();
                async move {
                    c.set_kind(id.get(), Kind::Item(g));
                    c.record(id.get(), |r| r.on_cancel += 1);
                }
            });
        if timeout {
            b.timeout(TIMEOUT)
        } else {
            b
        }
    }

    /// Whether a cancel may have been asked for a single task (by any means) so far.
    fn single_maybe_cancelled(&self, key: usize) -> bool {
        let s = &self.singles[key];
        s.dropped_at.is_some()
            || self.cancel_all_steps.iter().any(|&c| c > s.step)
            || self.id_cancels.iter().any(|&(id, _)| match s.known_id() {
                Some(k) => id == k,
                None => (s.lo..s.hi).contains(&id),
            })
    }

    fn group_maybe_cancelled(&self, g: usize) -> bool {
        let gr = &self.groups[g];
        !gr.cancel_steps.is_empty()
            || self.cancel_all_steps.iter().any(|&c| c > gr.step)
            || self
                .id_cancels
                .iter()
                .any(|&(id, c)| c > gr.step && id >= gr.first_id)
    }

    fn gate_open(&self, gate: Option<usize>) -> bool {
        gate.is_none_or(|g| self.gates[g].1.is_some())
    }

    fn allowed_cancel(&self, id: u64) -> Vec<Status> {
        use Status::*;
        if id >= UNKNOWN_ID {
            return vec![NotFound];
        }
        if let Some(key) = self.singles.iter().position(|s| s.known_id() == Some(id)) {
            let s = &self.singles[key];
            return if s.known_retired() {
                vec![Ended]
            } else if self.single_maybe_cancelled(key) {
                vec![Cancelled, Ended]
            } else if s.beh == Beh::Gate && !self.gate_open(s.gate) {
                vec![Ok]
            } else {
                vec![Ok, Ended]
            };
        }
        let rec = self.ctx.tracer.lock().unwrap().get(&id).cloned();
        if let Some(Rec {
            kind: Some(Kind::Item(g)),
            beh: Some(Beh::Gate),
            on_end: 0,
            ..
        }) = rec
        {
            let gr = &self.groups[g];
            let asked = !gr.cancel_steps.is_empty()
                || self.cancel_all_steps.iter().any(|&c| c > gr.step)
                || self.id_cancels.iter().any(|&(i, _)| i == id);
            if !asked && !self.gate_open(gr.gate) {
                return vec![Ok];
            }
        }
        vec![Ok, Ended, Cancelled]
    }

    /// Whether something surely keeps the pool busy until the driver opens a gate.
    fn must_block(&self) -> bool {
        let single = (0..self.singles.len()).any(|k| {
            let s = &self.singles[k];
            s.beh == Beh::Gate && !self.gate_open(s.gate) && !self.single_maybe_cancelled(k)
        });
        let group = (0..self.groups.len()).any(|g| {
            let gr = &self.groups[g];
            gr.items.contains(&Beh::Gate)
                && !self.gate_open(gr.gate)
                && !self.group_maybe_cancelled(g)
        });
        single || group
    }

    /// Join or gather_and_close: never returns while something waits at a gate, always
    /// returns once the gates open; afterwards nothing runs, waits or is queued.
    async fn wait_idle(
        &mut self,
        step: usize,
        mut fut: Pin<Box<dyn Future<Output = Result<(), PoolError>> + Send>>,
    ) {
        if self.must_block() {
            for _ in 0..3 {
                assert!(
                    futures::poll!(fut.as_mut()).is_pending(),
                    "join returned while a task waits at a closed gate"
                );
                yield_n(5).await;
            }
        }
        self.release_all(step);
        fut.await.expect("join from outside the pool");
        self.check_idle();
    }

    fn check_idle(&mut self) {
        let st = self.pool.stats();
        assert_eq!(
            (st.running, st.queued, st.ending),
            (0, 0, 0),
            "not idle after join: {st:?}"
        );
        for (k, s) in self.singles.iter().enumerate() {
            if let Some(h) = &s.handle {
                assert!(h.is_finished(), "single {k} unresolved after join");
            }
        }
        for (g, gr) in self.groups.iter().enumerate() {
            assert!(gr.group.is_finished(), "group {g} unfinished after join");
        }
        // Idle: nothing runs, so the bound can come down to the limit in force.
        self.ctx.cap.store(cap_of(self.limit), SeqCst);
    }

    async fn do_flush(&mut self) {
        let sub1 = self.submitted();
        let live1: BTreeSet<u64> = self.pool.tasks().iter().map(|t| t.id.get()).collect();
        let a: Vec<GroupSummary> = self.groups.iter().map(|g| g.group.summary()).collect();
        let fin_before: Vec<bool> = self.groups.iter().map(|g| g.group.is_finished()).collect();
        self.pool
            .flush()
            .await
            .expect("flush from outside the pool");
        let live2: BTreeSet<u64> = self.pool.tasks().iter().map(|t| t.id.get()).collect();
        let sub2 = self.submitted();
        let b: Vec<GroupSummary> = self.groups.iter().map(|g| g.group.summary()).collect();
        for (gr, before) in self.groups.iter_mut().zip(fin_before) {
            if gr.reg == Reg::No {
                continue;
            }
            if before {
                gr.reg = Reg::No;
            } else if gr.group.is_finished() {
                gr.reg = Reg::Maybe;
            }
        }
        self.flush = Some(FlushSnap {
            sub1,
            live1,
            sub2,
            live2,
            a,
            b,
        });
    }

    fn check_step(&self, step: usize, op: &Op) {
        let st = self.pool.stats();
        let v = self.ctx.violations.lock().unwrap().clone();
        assert!(v.is_empty(), "after step {step} ({op:?}): {v:?}");
        assert_eq!(st.locked, self.locked, "locked after step {step} ({op:?})");
        assert_eq!(st.closed, self.closed, "closed after step {step} ({op:?})");
        assert_eq!(st.limit, self.limit, "limit after step {step} ({op:?})");
        assert!(
            st.ended >= st.cancelled + st.panicked + st.timed_out,
            "{st:?}"
        );
        assert!(st.running <= self.cap(), "{st:?} over cap {}", self.cap());
        assert_eq!(self.pool.is_locked(), st.locked);
        assert_eq!(self.pool.is_closed(), st.closed);
    }

    /// After the last gather_and_close: every task ended exactly once, as allowed, and every
    /// handle, group, callback and counter agrees.
    async fn final_checks(mut self) {
        self.done.wait_for(self.continuations).await;
        self.check_idle();
        let st = self.pool.stats();
        *self.ctx.pool.lock().unwrap() = None;
        let v = self.ctx.violations.lock().unwrap().clone();
        assert!(v.is_empty(), "{v:?}");
        let tracer = self.ctx.tracer.lock().unwrap().clone();
        let ids: Vec<u64> = tracer.keys().copied().collect();
        assert_eq!(
            ids,
            (0..st.submitted).collect::<Vec<_>>(),
            "every id handed out ends"
        );
        for (id, r) in &tracer {
            assert_eq!(
                r.on_end, 1,
                "task {id}: on_end ran {} times: {r:?}",
                r.on_end
            );
            assert!(
                r.on_cancel <= 1 && r.started <= 1 && r.completed <= 1 && r.panicked <= 1,
                "task {id}: {r:?}"
            );
            assert!(
                !(r.completed == 1 && r.on_cancel == 1),
                "task {id} completed and was cancelled: {r:?}"
            );
            assert!(r.kind.is_some(), "task {id} of unknown origin");
            if r.outcome() == Outcome::TimedOut {
                assert_eq!(r.beh, Some(Beh::Slow), "task {id} timed out: {r:?}");
            }
        }
        let outcome = |id: u64| tracer[&id].outcome();
        // Singles.
        let mut single_ids = Vec::new();
        for key in 0..self.singles.len() {
            let found: Vec<u64> = tracer
                .iter()
                .filter(|(_, r)| r.kind == Some(Kind::Single(key)))
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(found.len(), 1, "single {key} has ids {found:?}");
            let id = found[0];
            let s = &mut self.singles[key];
            if let Some(k) = s.known_id() {
                assert_eq!(k, id);
            }
            let mut steps: Vec<usize> = self
                .id_cancels
                .iter()
                .filter(|c| c.0 == id)
                .map(|c| c.1)
                .collect();
            steps.extend(self.cancel_all_steps.iter().filter(|&&c| c > s.step));
            steps.extend(s.dropped_at);
            let release = s
                .gate
                .map(|g| self.gates[g].1.expect("all gates open at the end"));
            let (strict, parked) = (self.strict, &self.parked);
            let sure = |c: usize| strict || parked.get(&c).is_some_and(|p| p.contains(&id));
            let allowed = allowed_final(s.beh, release, &steps, sure);
            let out = outcome(id);
            assert!(
                allowed.contains(&out),
                "single {key} (id {id}, {:?}, submitted at step {}) ended {out:?}, allowed \
                 {allowed:?} (cancels at {steps:?}, gate open at {release:?}; {:?})",
                s.beh,
                s.step,
                tracer[&id]
            );
            if let Some(b) = tracer[&id].beh {
                assert_eq!(b, s.beh);
            }
            if let Some(slot) = s.spawn_slot.take() {
                let h = slot
                    .lock()
                    .unwrap()
                    .take()
                    .expect("spawn continuation done")
                    .expect("accepted");
                assert_eq!(h.id().get(), id);
                s.handle = Some(h);
            }
            if let Some(h) = s.handle.take() {
                let res = h.await;
                assert_eq!(out_of(&res), out, "single {key}: handle vs tracer");
                if let Ok(tag) = res {
                    assert_eq!(tag, key);
                }
            }
            if let Some(slot) = s.exec_slot.take() {
                match slot.lock().unwrap().take().expect("exec continuation done") {
                    Ok(tag) => {
                        assert_eq!(out, Outcome::Completed);
                        assert_eq!(tag, key);
                    }
                    Err(ExecError::Task(e)) => assert_eq!(out_of::<()>(&Err(e)), out),
                    Err(ExecError::Pool(e)) => panic!("exec refused after acceptance: {e}"),
                }
            }
            single_ids.push(id);
        }
        // Nothing new starts after close: later ids belong to groups accepted before it.
        if let Some((sub, at)) = self.closed_at {
            for (id, r) in tracer.range(sub..) {
                match r.kind {
                    Some(Kind::Item(g)) if self.groups[g].step < at => {}
                    other => panic!("task {id} ({other:?}) got an id after close at step {at}"),
                }
            }
        }
        // Groups.
        let groups = std::mem::take(&mut self.groups);
        let mut group_final = Vec::new();
        for (g, gr) in groups.into_iter().enumerate() {
            let items: Vec<(u64, &Rec)> = tracer
                .iter()
                .filter(|(_, r)| r.kind == Some(Kind::Item(g)))
                .map(|(id, r)| (*id, r))
                .collect();
            let mut tally = GroupSummary::default();
            let mut group_steps = gr.cancel_steps.clone();
            group_steps.extend(self.cancel_all_steps.iter().filter(|&&c| c > gr.step));
            for &(id, r) in &items {
                let out = r.outcome();
                match out {
                    Outcome::Completed => tally.completed += 1,
                    Outcome::Cancelled => tally.cancelled += 1,
                    Outcome::Panicked => tally.panicked += 1,
                    Outcome::TimedOut => tally.timed_out += 1,
                }
                let mut steps = group_steps.clone();
                steps.extend(self.id_cancels.iter().filter(|c| c.0 == id).map(|c| c.1));
                match r.beh {
                    Some(beh) => {
                        let release = gr.gate.map(|i| self.gates[i].1.expect("open"));
                        let allowed = allowed_final(beh, release, &steps, |c| self.sure(c, id));
                        assert!(
                            allowed.contains(&out),
                            "group {g} item {id} ({beh:?}) ended {out:?}, allowed {allowed:?}"
                        );
                    }
                    None => assert_eq!(
                        out,
                        Outcome::Cancelled,
                        "group {g} item {id} never ran: {r:?}"
                    ),
                }
            }
            let mut summary = gr.group.summary();
            // Items never pulled are counted only in `not_started`, which the tracer (it sees
            // items that were pulled) does not model.
            summary.not_started = 0;
            assert_eq!(summary, tally, "group {g}: summary vs tracer");
            let maybe_cancelled = !group_steps.is_empty()
                || self
                    .id_cancels
                    .iter()
                    .any(|&(id, c)| c > gr.step && id >= gr.first_id);
            if !maybe_cancelled {
                assert_eq!(items.len(), gr.items.len(), "group {g}: every item runs");
            } else {
                assert!(items.len() <= gr.items.len());
            }
            let results: Vec<Result<usize, TaskError>> = gr.group.collect().await;
            assert_eq!(
                results.len() as u64,
                summary.total(),
                "group {g}: one result per item"
            );
            if gr.ordered {
                let tags: Vec<usize> = results
                    .iter()
                    .filter_map(|r| r.as_ref().ok().copied())
                    .collect();
                assert!(
                    tags.windows(2).all(|w| w[0] < w[1]),
                    "group {g}: out of input order: {tags:?}"
                );
                let errs: Vec<u64> = results
                    .iter()
                    .filter_map(|r| r.as_ref().err().map(|e| e.id().get()))
                    .collect();
                assert!(
                    errs.windows(2).all(|w| w[0] < w[1]),
                    "group {g}: errors out of order: {errs:?}"
                );
            }
            group_final.push(summary);
        }
        // Counters since the last flush: exact where the model knows on which side of the flush
        // a task ended, bounded where it ended during the flush.
        let cat = |o: Outcome| match o {
            Outcome::Completed => 0,
            Outcome::Cancelled => 1,
            Outcome::Panicked => 2,
            Outcome::TimedOut => 3,
        };
        let mut lo = [0u64; 4];
        let mut amb = [0u64; 4];
        for &id in &single_ids {
            let c = cat(outcome(id));
            match &self.flush {
                None => lo[c] += 1,
                Some(f) if f.live2.contains(&id) || id >= f.sub2 => lo[c] += 1,
                Some(f) if id < f.sub1 && !f.live1.contains(&id) => {}
                Some(_) => amb[c] += 1,
            }
        }
        let parts = |s: &GroupSummary| [s.completed, s.cancelled, s.panicked, s.timed_out];
        for (g, fin) in group_final.iter().enumerate() {
            let zero = GroupSummary::default();
            let (a, b) = match &self.flush {
                None => (zero, zero),
                Some(f) => (
                    f.a.get(g).copied().unwrap_or(zero),
                    f.b.get(g).copied().unwrap_or(zero),
                ),
            };
            for c in 0..4 {
                lo[c] += parts(fin)[c] - parts(&b)[c];
                amb[c] += parts(&b)[c] - parts(&a)[c];
            }
        }
        let got = [
            st.ended - st.cancelled - st.panicked - st.timed_out,
            st.cancelled,
            st.panicked,
            st.timed_out,
        ];
        for c in 0..4 {
            assert!(
                lo[c] <= got[c] && got[c] <= lo[c] + amb[c],
                "{} counter is {}, model says {}..={}: {st:?}",
                ["completed", "cancelled", "panicked", "timed_out"][c],
                got[c],
                lo[c],
                lo[c] + amb[c]
            );
        }
        assert_eq!(self.pool.num_ended(), st.ended);
        assert_eq!(self.pool.num_cancelled(), st.cancelled);
    }
}

async fn run_case(sp: Sp, case: Case, strict: bool) {
    let limit = case.limit.map(usize::from);
    let mut b = TaskPool::builder(sp.clone());
    if let Some(l) = limit {
        b = b.limit(l);
    }
    let pool = b.build().unwrap();
    let ctx = Arc::new(Ctx {
        pool: Mutex::new(Some(pool.clone())),
        cap: AtomicUsize::new(cap_of(limit)),
        running: AtomicUsize::new(0),
        violations: Mutex::default(),
        tracer: Mutex::default(),
    });
    let mut m = Model {
        sp,
        strict,
        pool,
        ctx,
        limit,
        locked: false,
        closed: false,
        singles: Vec::new(),
        groups: Vec::new(),
        gates: Vec::new(),
        id_cancels: Vec::new(),
        cancel_all_steps: Vec::new(),
        parked: BTreeMap::new(),
        closed_at: None,
        flush: None,
        continuations: 0,
        done: Counter::new(),
        last_single_id: None,
    };
    for (step, op) in case.ops.iter().enumerate() {
        m.apply(op, step).await;
        m.check_step(step, op);
    }
    let end = case.ops.len();
    let p = m.pool.clone();
    m.wait_idle(end, Box::pin(async move { p.gather_and_close().await }))
        .await;
    m.locked = true;
    m.closed = true;
    m.check_step(end, &Op::GatherAndClose);
    m.final_checks().await;
}

//! The model test's generated input: operations, what tasks do, and the hostile parts of
//! issue 10 (calls back into the pool from inputs and closures, destructors that panic,
//! closures holding the last pool handle, concurrent `stop`, waits for room from inside).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use std::fmt;

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
    /// Panics at once with a payload whose destructor panics.
    PanicBomb,
    /// Never returns; has a short run timeout.
    Slow,
}

/// A task: what it does, and which of its destructors panic.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub beh: Beh,
    /// Its future panics when dropped (also after it returned).
    pub future_bomb: bool,
    /// Its output panics when dropped (unless the driver reads it).
    pub output_bomb: bool,
    /// No callbacks (`spawn_queued` and `try_spawn` only; not slow): its slot goes straight
    /// to the next queued task on the same runner.
    pub plain: bool,
}

impl Task {
    pub fn plain(beh: Beh) -> Self {
        Self {
            beh,
            future_bomb: false,
            output_bomb: false,
            plain: false,
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.beh)?;
        if self.future_bomb {
            f.write_str("+future_bomb")?;
        }
        if self.output_bomb {
            f.write_str("+output_bomb")?;
        }
        if self.plain {
            f.write_str("+plain")?;
        }
        Ok(())
    }
}

/// A call into the pool from user code the pool runs (a map's input, a map's closure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reent {
    CancelAll,
    /// `cancel_group` by name: its own group if `k % (g + 1) == g` (g: the group's index),
    /// else the earlier group `k % (g + 1)`.
    CancelGroup(u8),
    NumRunning,
    Stats,
    Tasks,
    Lock,
    Unlock,
    /// `spawn_queued` of a new loose task.
    SpawnQueued(Beh),
}

/// One item of a `map`: its task, and calls into the pool made while it is pulled from the
/// input (the input's `next`) and while the closure makes its future.
#[derive(Clone)]
pub struct MapItem {
    pub task: Task,
    pub from_input: Option<Reent>,
    pub from_closure: Option<Reent>,
}

impl fmt::Debug for MapItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.task)?;
        if let Some(r) = self.from_input {
            write!(f, "+input:{r:?}")?;
        }
        if let Some(r) = self.from_closure {
            write!(f, "+closure:{r:?}")?;
        }
        Ok(())
    }
}

/// How a task of the pool waits for more work of the same pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// `exec(child).await`: the child runs nested in the caller's slot.
    Exec,
    /// `spawn(child).await`: returns at once with the child queued.
    Spawn,
}

/// An id to cancel: one handed out so far (index modulo the count), or one never handed out.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    Known(u16),
    Unknown(u8),
}

/// How a retried task fails before it behaves like a model task (issue 13's retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySpec {
    /// Its first `fails` attempts fail...
    pub fails: u8,
    /// ...of at most `max` attempts.
    pub max: u8,
    /// A failing attempt panics (the policy retries panics), else it returns the failure
    /// output (the policy's predicate retries that).
    pub by_panic: bool,
}

#[derive(Debug, Clone)]
pub enum Op {
    /// `spawn().await`; if it would wait and the flag is set, drop it (withdraws the task).
    Spawn(Task, bool),
    /// `spawn_queued`; the handle is dropped at once if the flag is set.
    SpawnQueued(Task, bool),
    TrySpawn(Task),
    /// Several `spawn_queued` in a row (a handle dropped at once where the flag is set): on a
    /// full pool they run one after another on one runner.
    Burst(Vec<(Task, bool)>),
    /// `exec().await`, run beside the driver; dropped after its first poll if the flag is set.
    Exec(Task, bool),
    Apply(u8, Task),
    Map {
        items: Vec<MapItem>,
        nc: u8,
        ordered: bool,
        timeout: bool,
        /// `rate_limit_by(index / 2 % keys, quota)` with this many keys and a generous quota:
        /// items of a key with no token are set aside.
        keyed: Option<u8>,
        /// The group's `max_queue_wait`, in milliseconds: items that could not start in
        /// time are shed.
        shed: Option<u8>,
    },
    /// `SimpleTaskPool::start(n)`.
    Start(u8),
    /// `build_task().retry(policy).spawn_queued_with(factory)` (`spawn_with(factory).await`
    /// if the flag is set): attempts fail as the spec says, then behave as the task (`Now`,
    /// `Yield` or `Gate`).
    Retry(Task, RetrySpec, bool),
    /// `spawn_queued` with a `max_queue_wait` of this many milliseconds (1..=4).
    Shed(Task, u8),
    /// A loose task that calls `exec` or `spawn` of a child from inside the pool.
    FromTask(Inner, Task),
    Cancel(Vec<Pick>),
    CancelGroup(u8),
    CancelAll,
    /// `SimpleTaskPool::stop(n)`.
    Stop(u8),
    /// This many std threads call `SimpleTaskPool::stop(1)` at once.
    ConcurrentStop(u8),
    /// Stop reading group `k % n`'s results: drop its `Group` (flag set) or turn it into a
    /// `join()` (which discards results).
    Detach(u8, bool),
    Lock,
    Unlock,
    SetLimit(Option<u8>),
    Release(u8),
    Join,
    Flush,
    GatherAndClose,
    Close,
}

/// How a case ends.
#[derive(Debug, Clone)]
pub enum Ending {
    /// `gather_and_close`, then the final checks.
    GatherAndClose,
    /// A new `map` whose closure holds a clone of the pool; the driver drops every handle of
    /// its own, cancels that group, then waits for everything to end without a pool handle.
    DropHandles { items: Vec<Beh>, nc: u8 },
}

#[derive(Debug, Clone)]
pub struct Case {
    pub limit: Option<u8>,
    pub ops: Vec<Op>,
    pub ending: Ending,
}

fn beh() -> impl Strategy<Value = Beh> {
    prop_oneof![
        3 => Just(Beh::Now),
        2 => (1u8..4).prop_map(Beh::Yield),
        3 => Just(Beh::Gate),
        1 => Just(Beh::Panic),
        2 => Just(Beh::PanicBomb),
        1 => Just(Beh::Slow),
    ]
}

fn task() -> impl Strategy<Value = Task> {
    (
        beh(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.4),
    )
        .prop_map(|(beh, future_bomb, output_bomb, plain)| Task {
            beh,
            future_bomb,
            output_bomb,
            plain,
        })
}

fn reent() -> impl Strategy<Value = Reent> {
    prop_oneof![
        1 => Just(Reent::CancelAll),
        2 => any::<u8>().prop_map(Reent::CancelGroup),
        1 => Just(Reent::NumRunning),
        1 => Just(Reent::Stats),
        1 => Just(Reent::Tasks),
        1 => Just(Reent::Lock),
        1 => Just(Reent::Unlock),
        2 => beh().prop_map(Reent::SpawnQueued),
    ]
}

fn map_item() -> impl Strategy<Value = MapItem> {
    (
        task(),
        option::weighted(0.15, reent()),
        option::weighted(0.15, reent()),
    )
        .prop_map(|(task, from_input, from_closure)| MapItem {
            task,
            from_input,
            from_closure,
        })
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<u16>().prop_map(Pick::Known),
        1 => any::<u8>().prop_map(Pick::Unknown),
    ]
}

fn retry_spec() -> impl Strategy<Value = RetrySpec> {
    (0u8..4, 1u8..4, any::<bool>()).prop_map(|(fails, max, by_panic)| RetrySpec {
        fails,
        max,
        by_panic,
    })
}

fn submit_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (task(), any::<bool>()).prop_map(|(t, d)| Op::Spawn(t, d)),
        5 => (task(), prop::bool::weighted(0.4)).prop_map(|(t, d)| Op::SpawnQueued(t, d)),
        2 => task().prop_map(Op::TrySpawn),
        3 => vec((task(), prop::bool::weighted(0.5)), 2..6).prop_map(Op::Burst),
        2 => (task(), any::<bool>()).prop_map(|(t, d)| Op::Exec(t, d)),
        1 => (0u8..5, task()).prop_map(|(n, t)| Op::Apply(n, t)),
        3 => (
            vec(map_item(), 0..8),
            0u8..5,
            any::<bool>(),
            prop::bool::weighted(0.25),
            option::weighted(0.3, 1u8..4),
            option::weighted(0.15, 1u8..5)
        )
            .prop_map(|(items, nc, ordered, timeout, keyed, shed)| Op::Map {
                items,
                nc,
                ordered,
                timeout,
                keyed,
                shed
            }),
        1 => (0u8..5).prop_map(Op::Start),
        2 => (task(), retry_spec(), any::<bool>()).prop_map(|(t, r, w)| Op::Retry(t, r, w)),
        2 => (task(), 1u8..5).prop_map(|(t, w)| Op::Shed(t, w)),
        2 => (prop_oneof![Just(Inner::Exec), Just(Inner::Spawn)], task())
            .prop_map(|(i, t)| Op::FromTask(i, t)),
    ]
}

fn control_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => vec(pick(), 1..4).prop_map(Op::Cancel),
        1 => any::<u8>().prop_map(Op::CancelGroup),
        1 => Just(Op::CancelAll),
        1 => (0u8..4).prop_map(Op::Stop),
        1 => (2u8..5).prop_map(Op::ConcurrentStop),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(k, d)| Op::Detach(k, d)),
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

fn ending() -> impl Strategy<Value = Ending> {
    let last_items = vec(
        prop_oneof![2 => Just(Beh::Now), 2 => Just(Beh::Gate), 1 => (1u8..3).prop_map(Beh::Yield)],
        0..5,
    );
    prop_oneof![
        3 => Just(Ending::GatherAndClose),
        1 => (last_items, 1u8..4).prop_map(|(items, nc)| Ending::DropHandles { items, nc }),
    ]
}

pub fn case_strategy() -> impl Strategy<Value = Case> {
    let op = prop_oneof![16 => submit_op(), 15 => control_op(), 2 => wait_op()];
    (option::weighted(0.7, 1u8..5), vec(op, 1..40), ending())
        .prop_map(|(limit, ops, ending)| Case { limit, ops, ending })
}

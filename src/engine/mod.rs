//! The engine: the scheduler behind every pool. Nothing here is public; `TaskPool`,
//! `SimpleTaskPool`, handles and groups are thin layers over it. This file is its design.
//!
//! # Words
//!
//! - A **task** has an id and ends exactly once, with an outcome: completed, cancelled,
//!   panicked, timed out, shed (it could not start within its `max_queue_wait`: `shed.rs`),
//!   or dropped by its runtime (a retried task ends once, after its last attempt). It is a
//!   *loose task* (`spawn`,
//!   `spawn_queued`, `try_spawn`, `exec`) or an *item* of a group.
//! - A **group** (`map`, `apply`, `SimpleTaskPool::start`) has an identity of its own
//!   ([`lanes::GroupKey`], never reused) and a name (a label, free again once the group is
//!   cancelled or flushed). Its items come from an input, pulled lazily, or from ids reserved
//!   when it was made (`start`).
//! - A **slot** is one unit of the pool's limit. A **runner** (`runner.rs`) is a runtime task
//!   the pool spawned; it holds one slot and runs one **job** at a time (`handoff.rs`): a loose
//!   task (`task.rs`), or a group's **worker** (`map.rs`), which runs the group's items one
//!   after another in its slot.
//! - A **lane** (`lanes.rs`) is where work waits for a slot: one per priority for the loose
//!   tasks (FIFO each, `loose.rs`), one per group. Lanes that want a slot take **turns**
//!   (`shares.rs`): ageing first, then priority, then weighted shares, then round robin.
//!   A group waiting for a rate limit's token (`rate.rs`) wants no slot until it is due;
//!   while the pool's own rate limit has no token due, no lane gets a turn (`rate.rs`).
//!
//! # A loose task's life
//!
//! ```text
//!  submit ──room──▶ Running(Slot) ──future done──▶ [Ending: callbacks] ──▶ retired
//!     │                   ▲     │
//!     └──no room──▶ Queued ┘     └──failed, policy says retry──▶ Backoff (no slot)
//!                   ▲  │                                          │      │
//!                   │  │    ──wait over: factory, same id, ───────┘      │
//!                   └──┼───── its lane again (priority kept)             │
//!                      │                                                 │
//!                      └──cancel, or its deadline (shed)──▶ Ending ◀──cancel (at once)
//!                                                   (callbacks, no slot) ──▶ retired
//! ```
//!
//! A **retried** task (`TaskBuilder::retry(..).spawn_with(factory)`; its state's transitions
//! in `retry.rs`, its job's steps in `task/backoff.rs`) ends an
//! attempt the policy retries by going to `Backoff` instead of `Ending`: in one section its
//! slot goes to the work whose turn it is; its job (on the same runner, now holding no slot)
//! sleeps on the pool's `Spawner::sleep`, woken early by a cancel through the task's cell.
//! When the wait is over the job calls the factory (no lock held) and, in one section, puts the
//! new future in the cell, moves the id from the table back to its loose lane, and gives out
//! free slots; then its runner ends. The predicate runs, and the failed output is dropped,
//! with no lock held. `Backoff` is in the table, so `tasks()`, `cancel`, `cancel_all` and
//! `join` see it; callbacks and the handle see only the final outcome.
//!
//! Submitting with room starts the task at once (on a parked runner if one waits, else a
//! fresh runtime task); without room it waits in the loose lane, its future parked in its
//! cell. When a task with a slot ends and the loose lane's turn is up, the next queued task
//! runs on the same runner in the same slot: no slot released and re-taken, no runtime
//! spawn. `exec` from one of the pool's own tasks runs the child nested in the caller's slot
//! (`Seat::Nested`), so a task waiting for work of its own pool never waits for a slot that
//! only it could free. An `exec` that finds room while its caller is a task of the pool's
//! runtime, which has only the caller's thread (`Spawner::is_current_thread`: a runtime task
//! would run there anyway), runs its job in the caller's task too, in a slot of its own
//! (`Admission::InCallerOrQueue`, `Core::run_in_caller`): no runner to wake and no wake
//! back, and the work whose turn comes when it ends starts on a parked or new runner
//! (`State::pass_slot_on`), since the caller cannot run it. If the caller stops waiting, the
//! task is cancelled and its job finishes on a runtime task of its own.
//!
//! # An item's life
//!
//! A worker (holding a slot) takes the group's next item: it checks the group's input out of
//! the state (no other worker can pull meanwhile), polls it with no lock held, and brings it
//! back in the section that registers the item under a fresh id (so ids and result order
//! follow input order, and a cancel never meets an id that exists but is not registered). The
//! item then runs like a task, with its own id, cancellation, panic isolation, timeout,
//! callbacks and result. After it, the scheduler says whether the worker keeps its slot for
//! the group's next item (its group's turn, or nobody else waits), hands it to the lane whose
//! turn it is, or gives it back. An input that is not ready is awaited without a slot.
//!
//! An item of a group with a rate limit (`rate.rs`) also **waits for a token**, holding no
//! slot: it is pulled one at a time into the group's queue and takes its token in the
//! section that gives it its id. While no token is due the group is *gated* (it wants no
//! slot; its workers hand theirs on), and a timer on the pool's runtime ungates it when one
//! is. With a keyed limit, an item whose key has no token is *set aside*: it gets its id
//! (registered as waiting, cancellable, sheddable) and starts when its key's token is due,
//! while the group goes on with ready keys.
//!
//! An item of a **retried** group (`GroupBuilder::retry`, `SimpleTaskPoolBuilder::retry`;
//! `item_retry.rs`) is copied (`Clone`, no lock held) into the group's store before each
//! attempt that may be followed by another. When the policy retries an attempt, one section
//! moves the item from `Running` to `Backoff` (same id, same place in the results; a cancel
//! now reaches its `ItemWait`) and the worker goes on with the group's next item or hands its
//! slot on, as after any item. A job of its own, holding no slot, sleeps out the backoff
//! (woken early by a cancel), then in one section moves the item to `Waiting` and queues its
//! id in the group's `requeued` list: the group wants a slot again, and its workers take
//! requeued items before pulling new ones. Cancelled in its backoff, the item is ended by
//! its job; cancelled while requeued, it leaves the list in the cancel's section and a job
//! of the group's driver ends it (`end_requeued`). Workers of groups without retries are
//! compiled without the retry steps (`work::<.., false>`).
//!
//! ```text
//!  Running ──attempt failed, policy says retry──▶ Backoff (own job, no slot)
//!     ▲                                              │ wait over        └─cancel─▶ Ending
//!     └──── a worker's slot, before new items ◀── Waiting (requeued) ──cancel──▶ Ending
//! ```
//!
//! ```text
//!  input ──pulled──▶ group queue ──token + slot──▶ Running ──▶ [Ending] ──▶ retired
//!                       │   ▲ (no token: group gated, timer)
//!                       └──key has no token──▶ Set aside (id, Waiting) ──token + slot──┘
//!                                                   └──cancel, deadline──▶ Ending (no slot)
//! ```
//!
//! # Slot accounting
//!
//! `State::slots` counts slots held: by runners of loose tasks and by workers. It changes
//! only in `take_slot`/`free_slot`, called from the scheduler's named steps (`grant`,
//! `next_for_slot`, `after_item`, `release_slot`, `worker_gone`). A slot freed while work
//! waits goes to the lane whose turn it is (`shares.rs`), which moves to the back: with equal
//! priorities and weights, competing groups and the loose tasks each get a slot at least once
//! every *k* starts (*k* lanes waiting), whatever their backlogs; with priorities, ageing
//! bounds how often a waiting lane is passed over (`W + k - 1`). A group over its own cap
//! (lowered at run time) takes no next item: its workers leave as their items end. Lowering
//! the limit takes effect as slots free up: nothing running is stopped, and no runner goes on
//! while the pool is over its limit.
//!
//! # The lock order, and where user code runs
//!
//! One state lock per pool ([`core::Core::section`]), then at most one leaf lock (a task's
//! cell, a group's results, a parked runner's mailbox). Nothing is locked under a leaf lock.
//! `crate::sync::lock` checks the order in debug builds. A task's cell locks with a bit of
//! the word that holds its flags, stage and id (`task/slot.rs`, the crate's one module with
//! `unsafe` code): its sections only move a value or a waker, so it spins; with a union for
//! the future, runner's waker or output, it keeps a queued task at 56.8 bytes beside its
//! future (a plain task's cell type, `TaskCell<F, ()>`, has no spec pointer either).
//!
//! **No user code runs and no user value is dropped while any pool lock is held**: not a
//! future, closure, input, callback or output, not a panic payload, not the last pool handle
//! a closure holds. This is structural:
//! - user code is called only through `user::call` (debug builds check no pool lock is held);
//! - values that may hold user values live in the state wrapped in `user::Held`, whose drop
//!   checks (in debug builds) that no lock is held; the state hands them out when it removes
//!   them, into the section's `After`, which drops them after unlocking (a queued loose task
//!   waits in a `core::Waiting` entry, 16 bytes with no drop check of its own, and leaves it
//!   the same way: started, cancelled or shed);
//! - every drop of a user value goes through `user::drop_value`, inside a panic guard: a
//!   panicking destructor is logged against its task and reaches neither the executor nor
//!   another task. A future is dropped in place in a guard (`TaskRun`, `ItemFuture`), before
//!   its callbacks run and before its result is delivered.
//! - wake-ups, spawns and notifications also happen after unlocking (`After::run`).
//!
//! The engine's `Mutex`es, atomics, `AtomicWaker` and `Event` come from `crate::sync`: std's (and
//! futures-util's, event-listener's) in normal builds, loom's under `cfg(loom)`, where the
//! models in `loom_tests.rs` and the `loom_tests` modules of `task.rs` and `map.rs` check the
//! hand-offs above under every interleaving.
//!
//! # Watching it
//!
//! - `timing.rs` (pools built with `track_durations(true)`): stamps and HDR histograms of queue
//!   wait and run time (the data in `durations.rs`), kept in side tables of the state by its
//!   named transitions (`insert_running`, `remove_task`, `queue_loose`, ...), under the state
//!   lock (no user code).
//! - `outcome.rs`: how a task ended and what kind a group is, plain data that the state and its
//!   telemetry share (so neither imports the other).
//! - `telemetry.rs` (feature `metrics`): the pool's metric handles. A recorder is the user's code,
//!   so the hooks run where a task's start and end are logged, with no lock held; a task's end
//!   is counted before the section that resolves its handle. Duration samples taken under the
//!   lock leave it in the section's hand-out (`Section::drop`, `State::take_samples`).
//! - `span.rs`: the `tracing` span of each task, entered on each poll of its future.
//!
//! # The adaptive limit
//!
//! `adaptive.rs` (pools with `adaptive_limit`): a task that starts while a limiter is set
//! takes a stamp on the runtime's clock (`Spawner::now`); where its future ends (the same
//! place as the telemetry's end hook, no lock held) its sample goes to the limiter, under
//! the limiter's own mutex (never held with a pool lock), and a changed limit is applied in
//! a section of its own (`set_limit_to`, `grant`). Each limit chosen (by the limiter, by
//! `set_limit`, by a new limiter) carries a sequence number and a section applies only a
//! newer one, so racing task ends and a `set_limit` never leave a stale limit. Without a
//! limiter: one relaxed load and a branch per start, an `Option` check per end (and a
//! relaxed load, so that the overload report of a task that started before the limiter was
//! set is forgotten when it ends).
//!
//! # Layering
//!
//! `core.rs` holds the state, and imports only leaves: modules that import nothing of
//! `core`. So the type of every field of the state lives in a leaf (`outcome.rs`,
//! `durations.rs`, `adaptive_state.rs`, `rate_state.rs`, `timer.rs`, `flights.rs`, `lanes.rs`,
//! `slab.rs`, ...), and the steps that change it (`impl State` / `impl Core` blocks) live
//! beside the feature they serve (`adaptive.rs`, `rate.rs`, `shed.rs`, `timing.rs`, ...), above
//! `core`. The engine has no import circle; keep it so when adding a policy (`farm-studio
//! look` draws it).
//!
//! # Contention
//!
//! One state lock per pool, taken about twice per task and held 0.1-0.5 µs: for tasks of a
//! few microseconds or less it is the pool's serial part, about 2-3 million tasks per second
//! per pool whatever the core count. `docs/contention.md` has the measured hold and wait
//! times (`benches/lock_hold.rs`, built with `--cfg taskpool_lock_timing`), what they mean at
//! 16 and 64 cores, and the changes that would lift the ceiling.
//!
//! # Invariants
//!
//! - Every task id is registered (table, loose lane or a group's reserved ids) from the
//!   section that hands it out until the section that retires it; `cancel` sees it all along.
//! - `running`, `ending`, `backoff`, the queued counts and `slots` change only in the named
//!   transitions of `State`, which keep them equal to what they count.
//! - A group is counted busy (`join` waits) until its input is done, no worker lives, and no
//!   item is live; then its driver (the user's closure and input) is dropped.
//! - A runner that parks holds no reference to its pool, so a pool whose runtime stops
//!   polling is freed with its last handle, unless work is still to start: a rate-limited
//!   group waiting for its token holds its pool through its timer (`rate.rs`), as a running
//!   task holds it through its runner.
//! - A task whose runtime drops or refuses it ends as `RuntimeDropped`/`SpawnFailed`: its slot
//!   comes back and its handle resolves; its callbacks cannot run (no runtime to run them).

pub(crate) mod adaptive;
pub(crate) mod adaptive_state;
pub(crate) mod callbacks;
pub(crate) mod cancel;
pub(crate) mod capacity;
pub(crate) mod control;
pub(crate) mod core;
pub(crate) mod current;
pub(crate) mod durations;
pub(crate) mod fifo;
pub(crate) mod flights;
pub(crate) mod groups;
pub(crate) mod handoff;
pub(crate) mod item_retry;
pub(crate) mod lanes;
#[cfg(all(test, loom))]
mod loom_tests;
pub(crate) mod loose;
pub(crate) mod map;
pub(crate) mod observe;
pub(crate) mod outcome;
pub(crate) mod poll;
pub(crate) mod rate;
pub(crate) mod rate_state;
pub(crate) mod requeue;
pub(crate) mod results;
pub(crate) mod retry;
pub(crate) mod runner;
pub(crate) mod settings;
pub(crate) mod shares;
pub(crate) mod shed;
pub(crate) mod slab;
pub(crate) mod span;
pub(crate) mod table;
pub(crate) mod task;
pub(crate) mod telemetry;
pub(crate) mod timer;
pub(crate) mod timing;
pub(crate) mod tuning;
pub(crate) mod user;
pub(crate) mod yield_now;

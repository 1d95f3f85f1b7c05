//! Model checks of the engine's own synchronization, with loom: each model runs the real
//! engine code (built on loom's primitives through `sync.rs`) under every interleaving loom
//! can reach within its bounds, and fails on a lost job, a lost wake-up (loom reports the
//! deadlock) or a broken invariant.
//!
//! Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p async-taskpool
//! --lib loom` (what `.ci/run` does; `--release` works too). A lost wake-up shows as loom's
//! "deadlock" panic (loom then aborts the test binary). Here: the parked runner's mailbox hand-off (`handoff.rs`, with the real
//! `Runner` and the state's idle list) and the waiter count of `Core::wait_until_from_anywhere`
//! with `Core::notify_changed`. A task's cell is checked in `task.rs`, a worker's abort target
//! in `map.rs`, both with the helpers below.

use super::core::{BoxJob, Core, Gate, Inbox, Next, Outcome, Seat, Start, TaskControl};
use super::runner::{Runner, Work};
use super::user::{drop_value, Whose};
use crate::id::TaskId;
use async_taskpool_runtime::{BoxFuture, SpawnError, Spawner};
use loom::future::block_on;
use loom::thread;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Explores every interleaving of `f` (`LOOM_MAX_PREEMPTIONS` may bound it).
pub(crate) fn check(f: impl Fn() + Sync + Send + 'static) {
    explore(None, f);
}

/// Explores the interleavings of `f` with at most `preemptions` preemptions (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise): for models of three threads, whose full space
/// would take CI hours. Most bugs of this kind need two or three preemptions to show.
pub(crate) fn check_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    explore(Some(preemptions), f);
}

fn explore(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut model = loom::model::Builder::new();
    if model.preemption_bound.is_none() {
        model.preemption_bound = bound;
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    model.check(move || {
        counter.fetch_add(1, SeqCst);
        f();
    });
    println!("{} interleavings explored", runs.load(SeqCst));
}

/// The pool the models run against. They start no runtime task: a spawn is a bug of the model.
pub(super) fn pool() -> Arc<Core> {
    Core::new(Arc::new(NoRuntime), Some("loom".into()), None, false, false)
}

struct NoRuntime;

impl Spawner for NoRuntime {
    fn spawn(&self, _: BoxFuture) -> Result<(), SpawnError> {
        panic!("a loom model spawned a runtime task")
    }
    fn sleep(&self, _: Duration) -> BoxFuture {
        panic!("a loom model started a timer")
    }
}

loom::thread_local! {
    /// Whether this (loom) thread is inside `drop_guarded`.
    static GUARDED: Cell<bool> = Cell::new(false);
}

/// Drops `value` the way the engine drops user values (`user::drop_value`), marked so that a
/// [`Counted`] knows it was dropped there.
pub(super) fn drop_guarded<T>(value: T) {
    GUARDED.with(|g| g.set(true));
    drop_value(
        value,
        Whose {
            pool: "loom",
            task: None,
            what: "a model's value",
        },
    );
    GUARDED.with(|g| g.set(false));
}

/// A user value (a task's output): counts its drops, and fails the model if it is dropped
/// anywhere but inside the engine's panic guard (`drop_guarded`).
pub(super) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(super) fn new(drops: &Arc<AtomicUsize>) -> Self {
        Self(drops.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        assert!(
            GUARDED.with(Cell::get),
            "a user value was dropped outside the engine's panic guard"
        );
    }
}

/// A cancel signal with nothing to signal, for tasks the models only count.
pub(super) struct Inert;

impl TaskControl for Inert {
    fn cancel(&self, _: TaskId) -> Option<Waker> {
        None
    }
}

// ----- the mailbox hand-off -----

/// A job handed to a runner: counts its runs and its drops.
struct Probe {
    ran: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}

impl Work for Probe {
    fn poll_work(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next> {
        self.ran.fetch_add(1, SeqCst);
        Poll::Ready(Next::End)
    }
}

#[derive(Default)]
struct Counts {
    ran: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Counts {
    fn job(&self) -> BoxJob {
        Runner::job(Probe {
            ran: self.ran.clone(),
            dropped: self.dropped.clone(),
        })
    }

    /// The job ran at most once and is gone: run, or dropped by a close (which retires its
    /// task as dropped by its runtime). Checked while the pool and its mailboxes still live,
    /// so a job stuck in a mailbox is caught.
    fn assert_accounted(&self) {
        assert!(self.ran.load(SeqCst) <= 1, "a job ran twice");
        assert_eq!(
            self.dropped.load(SeqCst),
            1,
            "a job was lost: delivered where nobody takes it"
        );
    }
}

/// How a runner's job ends in the models.
#[derive(Clone, Copy)]
enum Ending {
    /// It parks (`State::park_or_end`), as a runner does with nothing to run.
    Park,
    /// It parks, and panics before the runner takes up the park (a user's waker or log
    /// subscriber panicking on the way out): the `Parking` is dropped unwinding.
    PanicBeforePark,
}

/// A runner's first job: it ends, and the runner parks in the pool's idle list.
struct ParkingWork {
    core: Arc<Core>,
    ending: Ending,
}

impl Work for ParkingWork {
    fn poll_work(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next> {
        let next = self.core.section().park_or_end(spare);
        if let Next::Park(parking) = next {
            return Poll::Ready(match self.ending {
                Ending::Park => Next::Park(parking),
                Ending::PanicBeforePark => {
                    drop(parking);
                    Next::End
                }
            });
        }
        Poll::Ready(next)
    }
}

/// What `submit` and `After::run` do with a job that starts at once: deliver it to a parked
/// runner if one waits, else run it elsewhere (a fresh runtime task; here, on this thread).
fn start_at_once(core: &Arc<Core>, job: BoxJob) {
    let runner = core.state().idle_runner();
    let refused = match runner {
        Some(mailbox) => mailbox.deliver(Start::Job(job)).err(),
        None => Some(Start::Job(job)),
    };
    if let Some(start) = refused {
        block_on(start.into_job().into_future());
    }
}

fn runner(core: &Arc<Core>, ending: Ending) -> BoxJob {
    Runner::job(ParkingWork {
        core: core.clone(),
        ending,
    })
}

/// Every mailbox the pool still lists as a parked runner refuses a job: at the end of each
/// model no runner waits any more, so one that took it would lose it.
fn assert_no_dead_mailbox_listed(core: &Arc<Core>) {
    while let Some(mailbox) = core.state().idle_runner() {
        let late = Counts::default();
        assert!(
            mailbox.deliver(Start::Job(late.job())).is_err(),
            "a mailbox whose runner is gone took a job"
        );
    }
}

/// A runner parks; a job that starts at once is delivered to it; the pool closes. Every
/// order: the job runs exactly once or is dropped by the close, the runner ends, and the
/// closed mailbox refuses deliveries.
#[test]
fn loom_mailbox_deliver_take_close() {
    check(|| {
        let core = pool();
        let counts = Counts::default();
        let job = runner(&core, Ending::Park);
        let parked = thread::spawn(move || block_on(job.into_future()));
        let deliverer = {
            let (core, job) = (core.clone(), counts.job());
            thread::spawn(move || start_at_once(&core, job))
        };
        core.close();
        deliverer.join().unwrap();
        parked.join().unwrap();
        counts.assert_accounted();
        assert_no_dead_mailbox_listed(&core);
    });
}

/// Without a close, a job delivered to a parked runner is run by it, exactly once.
#[test]
fn loom_mailbox_delivered_job_runs_once() {
    check(|| {
        let core = pool();
        let counts = Counts::default();
        let job = runner(&core, Ending::Park);
        // The runner parks first (its first poll), so the job below finds it.
        let mut runner = job.into_future();
        let waker = futures_util::task::noop_waker();
        assert!(runner
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        let runner = thread::spawn(move || block_on(runner));
        start_at_once(&core, counts.job());
        runner.join().unwrap();
        assert_eq!(counts.ran.load(SeqCst), 1, "the delivered job did not run");
        counts.assert_accounted();
    });
}

/// The runner panics between registering its park and taking it up, while a job that starts
/// at once picks its mailbox: the job is refused (and runs elsewhere) or dropped by the
/// abandoned park's close, never left where nobody waits.
#[test]
fn loom_mailbox_park_abandoned_by_a_panic() {
    check(|| {
        let core = pool();
        let counts = Counts::default();
        let job = runner(&core, Ending::PanicBeforePark);
        let gone = thread::spawn(move || block_on(job.into_future()));
        start_at_once(&core, counts.job());
        gone.join().unwrap();
        counts.assert_accounted();
        assert_no_dead_mailbox_listed(&core);
    });
}

/// The runtime drops a parked runner (shutdown) while a job that starts at once is delivered
/// to it: the job is refused or dropped with the runner, never lost.
#[test]
fn loom_mailbox_parked_runner_dropped_by_its_runtime() {
    check(|| {
        let core = pool();
        let counts = Counts::default();
        let job = runner(&core, Ending::Park);
        let shutdown = thread::spawn(move || {
            let mut runner = job.into_future();
            let waker = futures_util::task::noop_waker();
            let _ = runner.as_mut().poll(&mut Context::from_waker(&waker));
            drop(runner);
        });
        start_at_once(&core, counts.job());
        shutdown.join().unwrap();
        counts.assert_accounted();
        assert_no_dead_mailbox_listed(&core);
    });
}

// ----- the waiter count -----

/// `until_closed` waits while the pool closes: the waiter is always woken.
#[test]
fn loom_waiter_sees_the_pool_close() {
    check(|| {
        let core = pool();
        let waiter = {
            let core = core.clone();
            thread::spawn(move || {
                block_on(core.wait_until_from_anywhere(|st| st.gate() == Gate::Closed));
            })
        };
        core.close();
        waiter.join().unwrap();
        assert_eq!(core.waiters().0.load(SeqCst), 0, "a waiter stayed counted");
    });
}

/// `join` waits while the last task retires: the waiter is always woken.
#[test]
fn loom_waiter_sees_the_last_task_retire() {
    check(|| {
        let core = pool();
        let id = {
            let mut s = core.section();
            let id = s.allocate_id();
            s.take_slot();
            s.insert_running(id, Arc::new(Inert), Seat::Slot);
            id
        };
        let ender = {
            let core = core.clone();
            thread::spawn(move || {
                let mut s = core.section();
                let (st, after, _) = s.split();
                st.free_slot();
                st.retire(id, Outcome::Completed, after);
            })
        };
        block_on(core.wait_until_from_anywhere(|st| st.is_idle()));
        ender.join().unwrap();
    });
}

/// Two waiters, one of which gives up (its future is dropped) while the pool closes: the
/// other is still woken.
#[test]
fn loom_waiter_woken_while_another_gives_up() {
    check_bounded(3, || {
        let core = pool();
        let quitter = {
            let core = core.clone();
            thread::spawn(move || {
                let mut wait =
                    Box::pin(core.wait_until_from_anywhere(|st| st.gate() == Gate::Closed));
                let waker = futures_util::task::noop_waker();
                let _ = wait.as_mut().poll(&mut Context::from_waker(&waker));
            })
        };
        let closer = {
            let core = core.clone();
            thread::spawn(move || core.close())
        };
        block_on(core.wait_until_from_anywhere(|st| st.gate() == Gate::Closed));
        quitter.join().unwrap();
        closer.join().unwrap();
        assert_eq!(core.waiters().0.load(SeqCst), 0, "a waiter stayed counted");
    });
}

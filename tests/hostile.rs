//! Hostile inputs, on every runtime flavour: user code that calls back into the pool from
//! where the pool runs it (inputs, closures, callbacks), destructors that panic (futures,
//! outputs, panic payloads), closures holding the last pool handle, concurrent callers, tasks
//! that wait for room in their own pool, runtimes that go away, and groups that compete for
//! slots. Each case is the regression test of a bug of issue 10; see the case's comment.
//!
//! Many of those bugs were deadlocks on the pool's std mutexes. A deadlocked runtime thread
//! cannot fire the case's own watchdog (it runs on that runtime's timer), so every test here
//! runs its whole runtime on a thread of its own and waits for it with a timeout on the test
//! thread ([`isolated`]). On timeout the test fails with "deadlock or hang" and the stuck
//! thread is leaked; the test binary still exits. A deadlock on a global executor (smol's,
//! async-std's) also starves the later tests of that flavour in the same process: run one
//! test alone (`cargo test --test hostile -- --exact NAME`) to see its own verdict.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "hostile/cases.rs"]
mod cases;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How long a test may run before it counts as a deadlock or hang: a case that hangs with its
/// runtime alive fails first on its own [`support::WATCHDOG`]; one whose runtime thread is
/// blocked fails here.
const DEADLINE: Duration = Duration::from_secs(support::WATCHDOG.as_secs() + 10);

/// Runs `body` on a thread of its own and waits for it at most [`DEADLINE`]. A panic in
/// `body` fails the test with the same payload; a timeout fails it with "deadlock or hang".
pub fn isolated(what: &str, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel::<()>();
    let runner = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            body();
            let _ = done.send(());
        })
        .expect("spawn the case's thread");
    match finished.recv_timeout(DEADLINE) {
        Ok(()) => runner.join().expect("the case returned"),
        // The sender went away without a message: `body` panicked.
        Err(RecvTimeoutError::Disconnected) => match runner.join() {
            Err(payload) if watchdog_fired(&*payload) => panic!(
                "deadlock or hang: {what} did not finish within {:?} (its runtime's timer \
                 still ran)",
                support::WATCHDOG
            ),
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the case's thread ended without reporting"),
        },
        Err(RecvTimeoutError::Timeout) => panic!(
            "deadlock or hang: {what} did not finish within {DEADLINE:?} (its runtime is \
             stuck, a thread blocked; the thread is leaked)"
        ),
    }
}

/// Whether a case's panic is its own watchdog's (see [`support::within_watchdog`]).
fn watchdog_fired(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = match payload.downcast_ref::<String>() {
        Some(s) => s.as_str(),
        None => payload.downcast_ref::<&str>().copied().unwrap_or(""),
    };
    msg.starts_with("case did not finish within")
}

/// A plain `#[test]` whose body runs under [`isolated`], named after the function.
#[allow(unused_macros)] // only the tokio and smol plain tests use it
macro_rules! isolated_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            crate::isolated(concat!(module_path!(), "::", stringify!($name)), || $body);
        }
    };
}

#[path = "hostile/runtime_gone.rs"]
mod runtime_gone;

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            concurrent_stops_never_stop_the_same_task,
            map_input_that_calls_the_pool_does_not_hang,
            map_input_reading_the_pool_races_cancel_group,
            cancelling_a_map_whose_closure_holds_the_last_handle,
            outputs_whose_drop_panics_do_not_wedge_the_pool,
            panic_payload_whose_drop_panics_spares_the_next_task,
            future_whose_drop_panics_keeps_its_output,
            pools_let_go_of_their_spawner,
            stale_group_does_not_act_on_a_new_group_of_its_name,
            current_task_id_is_the_map_items_own,
            map_item_is_never_already_ended_before_it_ran,
            exec_from_a_task_in_a_full_pool_runs_in_its_slot,
            spawn_from_tasks_in_a_full_pool_returns_at_once,
            recursive_crawl_with_exec_completes,
            refused_spawn_is_reported_as_such,
            two_groups_share_the_pool,
            a_group_and_loose_tasks_share_the_pool,
            backlog_and_not_started_are_counted,
            refused_work_is_dropped_inside_the_guard,
            cancel_while_pulling_counts_each_item_once,
        );
    };
    (@emit $run:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                crate::isolated(
                    concat!(module_path!(), "::", stringify!($case)),
                    || $run(|sp| Box::pin(crate::cases::$case(sp))),
                );
            }
        )*
    };
}

on_every_flavour!(for_each_case);

//! Model-based random test: random sequences of pool operations (proptest, with shrinking),
//! checked against a reference model after every step and at the end, on every runtime and
//! flavour compiled in.
//!
//! `TASKPOOL_MODEL_CASES` sets the number of cases per runtime (default 256; try 20000 for a
//! long local run). A failure prints the shrunk operation sequence.
//!
//! What the model can know on a multi-thread runtime: tasks that wait on a gate the driver
//! holds cannot end before the gate opens (unless cancelled), so their outcome is exact; tasks
//! that return, yield, panic or time out end on their own at some point, so the model allows
//! exactly the outcomes the documented semantics permit (e.g. a running task that was asked
//! to cancel may keep its output). Everything else (ids, counters, callbacks, FIFO order,
//! limits, lock/close, join) is checked exactly or with sound bounds.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "model/driver.rs"]
mod driver;

use proptest::test_runner::{Config, TestRunner};
use std::future::Future;
use std::pin::Pin;
use support::Sp;

/// Runs one generated case on a runtime: builds the runtime, runs the future, tears down.
type Runner = fn(Box<dyn FnOnce(Sp) -> Pin<Box<dyn Future<Output = ()> + Send>>>);

fn cases() -> u32 {
    std::env::var("TASKPOOL_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// `strict`: the runtime polls every task on the driver's thread.
fn check(run: Runner, strict: bool) {
    driver::quiet_intended_panics();
    let config = Config {
        cases: cases(),
        // No regression files in the source tree; a failure prints its shrunk input.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&driver::case_strategy(), |case| {
        run(Box::new(move |sp| {
            Box::pin(driver::guarded(sp, case, strict))
        }));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[cfg(feature = "tokio")]
#[test]
fn model_tokio_multi_thread() {
    check(support::flavour::tokio_multi_thread, false);
}

#[cfg(feature = "tokio")]
#[test]
fn model_tokio_current_thread() {
    check(support::flavour::tokio_current_thread, true);
}

#[cfg(feature = "smol")]
#[test]
fn model_smol_global() {
    check(support::flavour::smol_global, false);
}

#[cfg(feature = "smol")]
#[test]
fn model_smol_own_executor() {
    check(support::flavour::smol_own_executor, true);
}

#[cfg(feature = "async-std")]
#[test]
fn model_async_std() {
    check(support::flavour::async_std_global, false);
}

//! The threaded pools on every runtime the pool's thread can run (tokio current-thread, smol,
//! async-std), called from plain threads (blocking front end) and from other runtimes (async
//! front end: tokio current-thread, smol and async-std callers).
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "threaded/cases.rs"]
mod cases;

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// No case may take longer than this; a hang fails the test instead of stalling CI.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `case` on a thread of its own, failing if it hangs; its panic is the test's panic.
fn watchdog(case: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        case();
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => runner.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(runner.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("case did not finish within {WATCHDOG:?}"),
    }
}

/// The callers of the async front end: runtimes other than the pool's own.
mod callers {
    use super::*;

    pub fn tokio<F: Future<Output = ()>>(fut: F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(fut);
    }

    pub fn smol<F: Future<Output = ()>>(fut: F) {
        smol::block_on(fut);
    }

    pub fn async_std<F: Future<Output = ()>>(fut: F) {
        async_std::task::block_on(fut);
    }
}

macro_rules! blocking_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                watchdog(|| crate::cases::$case(RT));
            }
        )*
    };
}

macro_rules! async_cases {
    ($caller:path) => {
        async_cases!(@emit $caller;
            async_run_spawn_and_stop,
            async_run_does_not_block_the_caller,
            async_cancel_drop_and_stop_now,
            async_bad_setup_and_size_are_reported,
            async_drop_drains_in_the_background,
        );
    };
    (@emit $caller:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                watchdog(|| $caller(crate::cases::$case(super::RT)));
            }
        )*
    };
}

macro_rules! suite {
    () => {
        use super::*;

        blocking_cases!(
            run_and_spawn_return_output,
            durations_are_tracked_when_asked,
            limit_is_held,
            timeout_excludes_queue_time,
            hooks_run_in_order,
            stop_drains_and_refuses_new_work,
            stop_now_cancels_and_still_tears_down,
            cross_thread_cancel_is_prompt,
            blocking_calls_from_the_pool_are_errors,
            failing_setup_is_reported_and_the_thread_exits,
            panicking_task_is_isolated,
            failing_teardown_is_reported_by_stop,
            drop_drains_and_joins,
        );

        mod from_tokio {
            use super::*;
            async_cases!(crate::callers::tokio);
        }

        mod from_smol {
            use super::*;
            async_cases!(crate::callers::smol);
        }

        mod from_async_std {
            use super::*;
            async_cases!(crate::callers::async_std);
        }
    };
}

#[cfg(feature = "tokio")]
mod tokio_thread {
    const RT: async_taskpool::ThreadRuntime = async_taskpool::ThreadRuntime::TokioCurrentThread;
    suite!();

    /// Tasks can use tokio's own timers and context, even when called from smol.
    #[test]
    fn tasks_run_inside_the_tokio_runtime() {
        watchdog(|| {
            crate::callers::smol(async {
                let pool = async_taskpool::AsyncThreadedPool::builder(RT)
                    .build_async()
                    .await
                    .unwrap();
                let flavor = pool
                    .run(async {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        tokio::runtime::Handle::current().runtime_flavor()
                    })
                    .await
                    .unwrap();
                assert_eq!(flavor, tokio::runtime::RuntimeFlavor::CurrentThread);
                pool.stop().await.unwrap();
            })
        });
    }
}

#[cfg(feature = "smol")]
mod smol_thread {
    const RT: async_taskpool::ThreadRuntime = async_taskpool::ThreadRuntime::Smol;
    suite!();
}

#[cfg(feature = "async-std")]
mod async_std_thread {
    #[allow(deprecated)]
    const RT: async_taskpool::ThreadRuntime = async_taskpool::ThreadRuntime::AsyncStd;
    suite!();
}

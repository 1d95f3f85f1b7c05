//! Cancel safety of every public `async fn` and the documented deadlock hazards (waiting on
//! the pool or a group from inside it; callbacks that spawn into the pool or panic), on every
//! runtime and flavour compiled in. The cases are in `hazards/cases.rs`.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "hazards/cases.rs"]
mod cases;

use support::{Case, Sp, WATCHDOG};

async fn guarded(case: Case, sp: Sp) {
    let timer = sp.sleep(WATCHDOG);
    match futures::future::select(case(sp), timer).await {
        futures::future::Either::Left(((), _)) => {}
        futures::future::Either::Right(_) => panic!("case did not finish within {WATCHDOG:?}"),
    }
}

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            spawn_dropped_while_waiting_withdraws,
            exec_dropped_cancels_queued_or_running,
            join_dropped_leaves_no_waiter,
            flush_dropped_leaves_no_waiter,
            until_closed_dropped_leaves_no_waiter,
            gather_and_close_dropped_stays_locked_not_closed,
            group_join_dropped_only_stops_waiting,
            simple_pool_waits_dropped,
            handle_dropped_mid_await_detaches,
            group_join_from_own_item_is_an_error,
            waits_from_items_and_callbacks_are_errors,
            callback_that_spawns_into_a_full_pool_completes,
            panicking_callbacks_are_contained,
            refused_gather_and_close_leaves_the_pool_open,
        );
    };
    (@emit $run:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $run(|sp| Box::pin(crate::cases::$case(sp)));
            }
        )*
    };
}
#[cfg(feature = "tokio")]
mod tokio_multi_thread {
    use super::*;
    fn run(case: Case) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sp: Sp = std::sync::Arc::new(async_taskpool::runtime::TokioSpawner::from_handle(
            rt.handle().clone(),
        ));
        rt.block_on(guarded(case, sp));
    }
    for_each_case!(run);
}

#[cfg(feature = "tokio")]
mod tokio_current_thread {
    use super::*;
    fn run(case: Case) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sp: Sp = std::sync::Arc::new(async_taskpool::runtime::TokioSpawner::from_handle(
            rt.handle().clone(),
        ));
        rt.block_on(guarded(case, sp));
    }
    for_each_case!(run);
}

#[cfg(feature = "smol")]
mod smol_global {
    use super::*;
    fn run(case: Case) {
        let sp: Sp = std::sync::Arc::new(async_taskpool::runtime::SmolSpawner::global());
        smol::block_on(guarded(case, sp));
    }
    for_each_case!(run);
}

#[cfg(feature = "smol")]
mod smol_own_executor {
    use super::*;
    fn run(case: Case) {
        let ex = std::sync::Arc::new(smol::Executor::new());
        let sp: Sp = std::sync::Arc::new(async_taskpool::runtime::SmolSpawner::from_executor(
            ex.clone(),
        ));
        smol::block_on(ex.run(guarded(case, sp)));
    }
    for_each_case!(run);
}

#[cfg(feature = "async-std")]
mod async_std_global {
    use super::*;
    #[allow(deprecated)]
    fn run(case: Case) {
        let sp: Sp = std::sync::Arc::new(async_taskpool::runtime::AsyncStdSpawner::new());
        async_std::task::block_on(guarded(case, sp));
    }
    for_each_case!(run);
}

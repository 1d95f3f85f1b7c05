//! Cancel safety of every public `async fn` and the documented deadlock hazards (waiting on
//! the pool or a group from inside it; callbacks that spawn into the pool or panic), on every
//! runtime and flavour compiled in. The cases are in `hazards/cases.rs`.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "hazards/cases.rs"]
mod cases;

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

on_every_flavour!(for_each_case);

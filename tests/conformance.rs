//! The conformance suite: every case in `conformance/cases.rs` runs on every runtime and
//! flavour compiled in (tokio multi-thread and current-thread, smol, async-std).
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
mod support;

#[path = "conformance/cases.rs"]
mod cases;

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            spawn_returns_output,
            ids_are_sequential_and_names_follow_the_pool,
            exec_returns_output_and_errors,
            limit_is_never_exceeded,
            queued_work_starts_in_fifo_order,
            spawn_waits_for_room,
            dropped_spawn_withdraws_the_task,
            try_spawn_gives_the_future_back,
            cancel_running_task,
            cancel_a_task_that_took_over_a_runner,
            cancel_queued_task_releases_slot_and_fires_callbacks,
            cancel_before_first_poll_releases_slot,
            cancel_is_atomic,
            cancel_group_stops_pulling,
            cancel_all_cancels_everything,
            panics_are_isolated,
            panicking_callback_is_contained,
            timeout_fires,
            timeout_excludes_queue_time,
            lock_refuses_new_work_but_finishes_accepted,
            close_is_final,
            set_limit_grows_and_shrinks,
            invalid_limits_are_refused,
            gather_and_close_waits_for_unpulled_items,
            join_from_own_task_is_an_error,
            map_keeps_input_order,
            map_unordered_yields_everything,
            map_results_arrive_while_later_items_wait,
            a_group_held_back_by_the_limit_reuses_its_worker,
            an_unbounded_map_starts_a_worker_per_item_at_most,
            finished_runtime_tasks_park_for_the_next_task,
            exec_on_a_single_threaded_runtime_runs_in_the_caller,
            map_respects_group_and_pool_limits,
            map_stream_waits_without_a_slot,
            map_items_panic_and_cancel_individually,
            apply_runs_n_copies,
            group_names_and_errors,
            flush_forgets_ended,
            handle_drop_detaches,
            dropping_last_pool_handle_lets_work_finish,
            cancel_on_drop_cancels,
            until_closed_wakes,
            stats_and_tasks_snapshot,
            simple_pool_start_stop,
            simple_pool_lock_and_close,
            callbacks_run_exactly_once,
            panics_in_map_closure_and_input_are_contained,
            panicking_destructor_is_contained,
            long_runs_of_ready_work_let_other_tasks_run,
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

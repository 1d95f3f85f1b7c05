//! The conformance suite of the scheduling policies (issue 13): every case in
//! `conformance/policies.rs` runs on every runtime and flavour compiled in (tokio
//! multi-thread and current-thread, smol, async-std), as `tests/conformance.rs` does.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "conformance/policies.rs"]
mod cases;

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            a_group_at_the_pool_limit_follows_set_limit,
            set_num_concurrent_raises_and_lowers_a_running_group,
            a_cancel_on_drop_group_stops_with_its_consumer,
            try_map_stops_at_the_first_failure,
            queued_tasks_start_by_priority_then_fifo,
            higher_priority_groups_go_first,
            a_capped_group_keeps_its_slots_over_lower_priority,
            ageing_bounds_how_long_low_priority_waits,
            busy_groups_hold_slots_by_weight,
            a_task_that_cannot_start_in_time_is_shed,
            a_group_sheds_what_did_not_start_in_time,
            a_group_rate_limit_spaces_starts,
            a_rate_limited_group_waits_without_a_slot,
            keyed_rate_limits_set_items_aside,
            a_group_deadline_sheds_items_waiting_for_a_token,
            a_rate_key_of_the_wrong_type_is_refused,
            a_panicking_rate_key_is_contained,
            a_pool_rate_limit_spaces_loose_tasks_and_items,
            a_pool_rate_limit_waits_without_a_slot,
            an_adaptive_limit_rises_with_successes_up_to_its_max,
            an_adaptive_limit_falls_on_errors_and_timeouts_down_to_its_min,
            keyed_spawns_share_one_live_task,
            a_keyed_task_is_cancelled_or_panics_for_every_waiter,
            a_custom_limiter_that_panics_leaves_the_limit_as_it_was,
            a_retried_task_keeps_its_id_and_ends_once,
            panics_and_timeouts_are_retried_only_when_opted_in,
            the_wait_between_attempts_holds_no_slot_and_can_be_cancelled,
            join_waits_for_a_task_between_attempts,
            a_retried_item_keeps_its_id_and_place_and_ends_once,
            an_item_between_attempts_holds_no_slot_and_can_be_cancelled,
            an_item_waiting_for_its_next_attempt_can_be_cancelled,
            join_waits_for_an_item_between_attempts,
            a_simple_pool_retries_its_tasks,
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

//! Hostile inputs, on every runtime flavour: user code that calls back into the pool from
//! where the pool runs it (inputs, closures, callbacks), destructors that panic (futures,
//! outputs, panic payloads), closures holding the last pool handle, and concurrent callers.
//! Each case is the regression test of a bug that was seen; see the case's comment.
#![cfg(any(feature = "tokio", feature = "smol", feature = "async-std"))]

#[macro_use]
#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "hostile/cases.rs"]
mod cases;

macro_rules! for_each_case {
    ($run:path) => {
        for_each_case!(@emit $run;
            concurrent_stops_never_stop_the_same_task,
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

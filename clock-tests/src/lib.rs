//! Nothing here: the tests in `tests/` run async-taskpool on tokio's paused clock, which
//! needs tokio's `test-util` feature. They live in this crate so that feature is not turned on
//! for the main crate's own tests and benchmarks (it changes tokio's clock on every read).
#![forbid(unsafe_code)]

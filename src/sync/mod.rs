//! The crate's synchronization primitives and its one lock helper ([`lock`]: poison-tolerant,
//! ranked, and checked in debug builds), below everything that locks. The primitives are
//! named in one place so that the engine's hand-offs can be model-checked: in normal builds they are std's, futures-util's and event-listener's,
//! re-exported as they are; under `cfg(loom)` (`RUSTFLAGS="--cfg loom"`) they are loom's, and
//! `engine/loom_tests.rs` (with the `loom_tests` modules of `task.rs` and `map.rs`) explores every
//! interleaving of the mailbox hand-off, a task's cell, a worker's abort target and the
//! waiter count.
//!
//! Only primitives shared between threads in those models go through here. A `static` (loom's
//! types cannot be built in a constant) and the locks of the layers above the engine stay
//! std's; [`lock::lock`] takes both.

pub(crate) mod lock;

#[cfg(not(loom))]
pub(crate) use futures_util::task::AtomicWaker;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom_waker::AtomicWaker;

/// Waiters' wake-ups (`join`, `flush`, `until_closed`, a group's results). Under `cfg(loom)`
/// event-listener is built with its `loom` feature (see Cargo.toml), so this is loom's too and
/// the real `Event` is checked with the code that waits on it.
pub(crate) use event_listener::Event;

#[cfg(loom)]
mod loom_waker {
    use std::task::Waker;

    /// loom's `AtomicWaker` with the API of futures-util's, which the engine uses.
    #[derive(Default)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn register(&self, waker: &Waker) {
            self.0.register_by_ref(waker);
        }

        pub(crate) fn take(&self) -> Option<Waker> {
            self.0.take_waker()
        }
    }
}

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

/// An `UnsafeCell` reached through a closure, loom's way (its `with_mut`), so that code using
/// it is model-checked under `cfg(loom)`; in normal builds, std's.
#[cfg(not(loom))]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// One round of waiting for a lock bit another thread holds: a spin hint for the first
/// rounds (its holders only move a value), then the thread yields (the holder may have been
/// preempted). Under loom, a yield every round, as loom requires of spin loops.
#[inline]
pub(crate) fn spin(round: &mut u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *round += 1;
        if *round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

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

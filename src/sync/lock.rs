//! The one way the crate takes a lock: poison-tolerant, and in debug builds checked against
//! the lock order and against user code running while a pool lock is held.
//!
//! The order (see the design document in `mod.rs`): the pool's state lock first, then at most
//! one leaf lock (a task's cell, a group's results, a parked runner's mailbox). A thread
//! holding a leaf lock takes no other lock; a thread holding any pool lock runs no user code
//! and drops no user value. Debug builds count the locks each thread holds, so a test that
//! breaks either rule panics at the place that broke it instead of deadlocking somewhere else.

use std::ops::{Deref, DerefMut};
use std::sync::PoisonError;

/// A lock's place in the lock order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rank {
    /// The pool's state: taken with no other lock held.
    State,
    /// A task's cell, a group's results, a runner's mailbox: taken alone or under the state
    /// lock, and nothing is taken under it.
    Leaf,
    /// A lock of the layers above the engine (a background task's run, a threaded pool's
    /// control): not a pool lock, so it is not counted. User code still never runs under it.
    Outside,
}

/// A held lock; releases it (and, in debug builds, its count) when dropped.
pub(crate) struct Locked<'a, T> {
    guard: Guard<'a, T>,
    #[cfg(taskpool_lock_timing)]
    held_since: Option<std::time::Instant>,
    #[cfg(debug_assertions)]
    rank: Rank,
}

/// A mutex [`lock`] takes: std's, and under `cfg(loom)` also the engine's own (loom's, see
/// `sync.rs`). In normal builds they are the same type, and this is std's `lock`.
pub(crate) trait Lockable<T> {
    /// Locks, taking a poisoned lock as it is.
    fn acquire(&self) -> Guard<'_, T>;
}

#[cfg(not(loom))]
pub(crate) type Guard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Lockable<T> for std::sync::Mutex<T> {
    #[inline]
    fn acquire(&self) -> Guard<'_, T> {
        let guard = self.lock().unwrap_or_else(PoisonError::into_inner);
        #[cfg(loom)]
        let guard = Guard::Std(guard);
        guard
    }
}

/// A lock of `rank` was taken (by [`lock`], or a task slot's lock bit): counted in debug
/// builds, where the order is checked.
#[inline]
pub(crate) fn acquired(rank: Rank) {
    #[cfg(debug_assertions)]
    held::acquire(rank);
    #[cfg(not(debug_assertions))]
    let _ = rank;
}

/// The lock [`acquired`] counted was released.
#[inline]
pub(crate) fn released(rank: Rank) {
    #[cfg(debug_assertions)]
    held::release(rank);
    #[cfg(not(debug_assertions))]
    let _ = rank;
}

/// Locks `m`. A poisoned lock is taken as it is: no user code runs under the crate's locks,
/// so the data is consistent even after a panic elsewhere.
pub(crate) fn lock<T, M: Lockable<T>>(m: &M, rank: Rank) -> Locked<'_, T> {
    acquired(rank);
    #[cfg(taskpool_lock_timing)]
    let asked = (rank == Rank::State).then(std::time::Instant::now);
    let guard = m.acquire();
    Locked {
        guard,
        #[cfg(taskpool_lock_timing)]
        held_since: asked.map(timing::acquired),
        #[cfg(debug_assertions)]
        rank,
    }
}

/// How long the pool's state lock is waited for and held, summed over every pool of the
/// process: built only with `RUSTFLAGS="--cfg taskpool_lock_timing"` (two clock reads per
/// section), for `benches/lock_hold.rs` and the figures in `docs/contention.md`.
#[cfg(taskpool_lock_timing)]
pub mod timing {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Instant;

    static SECTIONS: AtomicU64 = AtomicU64::new(0);
    static HELD_NS: AtomicU64 = AtomicU64::new(0);
    static MAX_HELD_NS: AtomicU64 = AtomicU64::new(0);
    static WAITED_NS: AtomicU64 = AtomicU64::new(0);
    static WAITED_OVER_1US: AtomicU64 = AtomicU64::new(0);

    /// What the state lock saw since the last [`take`].
    #[derive(Clone, Copy, Debug, Default)]
    pub struct LockTimes {
        /// Sections (acquisitions of a pool's state lock).
        pub sections: u64,
        /// Time held, summed, in nanoseconds.
        pub held_ns: u64,
        /// The longest hold, in nanoseconds.
        pub max_held_ns: u64,
        /// Time waited to acquire, summed, in nanoseconds.
        pub waited_ns: u64,
        /// Acquisitions that waited more than a microsecond.
        pub waited_over_1us: u64,
    }

    /// The times since the last call, and starts counting afresh.
    pub fn take() -> LockTimes {
        LockTimes {
            sections: SECTIONS.swap(0, Relaxed),
            held_ns: HELD_NS.swap(0, Relaxed),
            max_held_ns: MAX_HELD_NS.swap(0, Relaxed),
            waited_ns: WAITED_NS.swap(0, Relaxed),
            waited_over_1us: WAITED_OVER_1US.swap(0, Relaxed),
        }
    }

    pub(super) fn acquired(asked: Instant) -> Instant {
        let now = Instant::now();
        let waited = (now - asked).as_nanos() as u64;
        WAITED_NS.fetch_add(waited, Relaxed);
        if waited > 1_000 {
            WAITED_OVER_1US.fetch_add(1, Relaxed);
        }
        now
    }

    pub(super) fn released(since: Instant) {
        let held = since.elapsed().as_nanos() as u64;
        SECTIONS.fetch_add(1, Relaxed);
        HELD_NS.fetch_add(held, Relaxed);
        MAX_HELD_NS.fetch_max(held, Relaxed);
    }
}

/// Under `cfg(loom)`, a lock is std's (the layers above the engine) or loom's (the engine's).
#[cfg(loom)]
pub(crate) enum Guard<'a, T> {
    Std(std::sync::MutexGuard<'a, T>),
    Loom(super::MutexGuard<'a, T>),
}

#[cfg(loom)]
impl<T> Lockable<T> for super::Mutex<T> {
    fn acquire(&self) -> Guard<'_, T> {
        Guard::Loom(self.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(loom)]
impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Guard::Std(g) => g,
            Guard::Loom(g) => g,
        }
    }
}

#[cfg(loom)]
impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Guard::Std(g) => g,
            Guard::Loom(g) => g,
        }
    }
}

impl<T> Deref for Locked<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(any(debug_assertions, taskpool_lock_timing))]
impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        released(self.rank);
        #[cfg(taskpool_lock_timing)]
        if let Some(since) = self.held_since {
            timing::released(since);
        }
    }
}

/// Panics (in debug builds) if this thread holds a pool lock: called wherever user code is
/// about to run or a user value is about to be dropped.
#[inline]
pub(crate) fn assert_unlocked(what: &str) {
    #[cfg(debug_assertions)]
    held::assert_none(what);
    #[cfg(not(debug_assertions))]
    let _ = what;
}

#[cfg(debug_assertions)]
mod held {
    use super::Rank;
    use std::cell::Cell;

    #[cfg(not(loom))]
    thread_local! {
        /// Pool locks this thread holds: (state, leaf).
        static HELD: Cell<(u8, u8)> = const { Cell::new((0, 0)) };
    }

    // loom runs its threads on one OS thread: each needs loom's thread-local.
    #[cfg(loom)]
    loom::thread_local! {
        static HELD: Cell<(u8, u8)> = Cell::new((0, 0));
    }

    fn get() -> (u8, u8) {
        HELD.with(Cell::get)
    }

    fn set(held: (u8, u8)) {
        HELD.with(|h| h.set(held));
    }

    pub(super) fn acquire(rank: Rank) {
        let (state, leaf) = get();
        match rank {
            Rank::State => {
                assert!(
                    state == 0 && leaf == 0,
                    "lock order: the state lock taken while holding a pool lock"
                );
                set((1, 0));
            }
            Rank::Leaf => {
                assert!(leaf == 0, "lock order: a leaf lock taken under a leaf lock");
                set((state, 1));
            }
            Rank::Outside => {}
        }
    }

    pub(super) fn release(rank: Rank) {
        let (state, leaf) = get();
        match rank {
            Rank::State => set((0, leaf)),
            Rank::Leaf => set((state, 0)),
            Rank::Outside => {}
        }
    }

    pub(super) fn assert_none(what: &str) {
        assert!(
            get() == (0, 0),
            "{what} would run under a pool lock (a bug of async-taskpool)"
        );
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::{assert_unlocked, lock, Rank};
    use std::sync::Mutex;

    #[test]
    fn the_order_is_state_then_one_leaf() {
        let (state, cell, other) = (Mutex::new(0), Mutex::new(0), Mutex::new(0));
        {
            let _s = lock(&state, Rank::State);
            let _c = lock(&cell, Rank::Leaf);
        }
        let inverted = std::panic::catch_unwind(|| {
            let _c = lock(&cell, Rank::Leaf);
            let _s = lock(&state, Rank::State);
        });
        assert!(inverted.is_err(), "state under a leaf is refused");
        let two_leaves = std::panic::catch_unwind(|| {
            let _c = lock(&cell, Rank::Leaf);
            let _o = lock(&other, Rank::Leaf);
        });
        assert!(two_leaves.is_err(), "a leaf under a leaf is refused");
        // Both refusals released what they held: locking works again.
        let _s = lock(&state, Rank::State);
    }

    #[test]
    fn user_code_under_a_lock_is_caught() {
        let state = Mutex::new(());
        assert_unlocked("free");
        let caught = std::panic::catch_unwind(|| {
            let _s = lock(&state, Rank::State);
            assert_unlocked("a closure");
        });
        assert!(caught.is_err());
        assert_unlocked("after the guard is gone");
    }
}

//! What a task's job, its handle and the pool share, in two words beside the future: one
//! atomic word for the task's flags, a lock bit and its stage; a union holding the future,
//! the runner's waker or the output, whichever the stage says; and the handle's waker.
//!
//! It replaces a `Mutex` around an enum, whose lock word and tag took 16 bytes more per task
//! (issue 15's memory target: a queued task's cost beyond its future went from 80.8 to 64.8
//! bytes). This is the crate's only `unsafe` code; everything outside this file reaches the
//! union through [`Locked`], a guard with safe methods.
//!
//! # Why it is sound
//!
//! - The union and the handle's waker are read and written only by the holder of the lock
//!   bit (taken with `Acquire`, released with `Release`, so each holder sees what the last
//!   one wrote), or through `&mut self` (`Drop`).
//! - The stage bits name the union's live field. Only a holder of the lock changes them, in
//!   the same step that changes the field (no panic can come between: moves only).
//! - The other bits of the word (flags, id) belong to the caller, which changes them with
//!   atomic read-modify-writes that leave the lock and stage bits alone; this module changes
//!   its bits the same way, so neither side loses the other's writes.
//!
//! # When not to use it
//!
//! It spins. Its sections move a value or a waker and nothing else: no user code, no
//! allocation, no other lock. Anything that may wait belongs under a real mutex.

use crate::error::TaskError;
use crate::sync::lock::{self, Rank};
use crate::sync::{spin, AtomicU64, UnsafeCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;
use std::task::Waker;

/// The caller's flags: the word's low byte.
pub(crate) const FLAG_BITS: u32 = 8;
/// Taken by a [`Locked`] guard.
const LOCK: u64 = 1 << FLAG_BITS;
const STAGE_SHIFT: u32 = FLAG_BITS + 1;
const STAGE_MASK: u64 = 0b11 << STAGE_SHIFT;
/// Where the bits left to the caller above this module's start (the task's id).
pub(crate) const HIGH_SHIFT: u32 = STAGE_SHIFT + 2;

/// What the slot holds, as a value to move in or out.
pub(crate) enum Contents<F: Future> {
    /// Queued: the future waits here until a slot frees.
    Queued(F),
    /// Running, with the waker of its runner (woken by `cancel`).
    Running(Option<Waker>),
    /// Finished; the error is boxed to keep the slot small.
    Done(Result<F::Output, Box<TaskError>>),
    /// The result went to the handle, or the handle went away.
    Taken,
}

/// Which of [`Contents`]' forms the slot holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stage {
    Queued = 0,
    Running = 1,
    Done = 2,
    Taken = 3,
}

impl Stage {
    fn of_word(word: u64) -> Self {
        match (word & STAGE_MASK) >> STAGE_SHIFT {
            0 => Stage::Queued,
            1 => Stage::Running,
            2 => Stage::Done,
            _ => Stage::Taken,
        }
    }

    fn of<F: Future>(contents: &Contents<F>) -> Self {
        match contents {
            Contents::Queued(_) => Stage::Queued,
            Contents::Running(_) => Stage::Running,
            Contents::Done(_) => Stage::Done,
            Contents::Taken => Stage::Taken,
        }
    }
}

/// The union's fields; `Taken` needs none.
union Value<F: Future> {
    fut: ManuallyDrop<F>,
    runner: ManuallyDrop<Option<Waker>>,
    done: ManuallyDrop<Result<F::Output, Box<TaskError>>>,
    taken: (),
}

pub(crate) struct Slot<F: Future> {
    word: AtomicU64,
    handle: UnsafeCell<Option<Waker>>,
    value: UnsafeCell<Value<F>>,
}

// SAFETY: the value and the handle's waker are reached only under the lock bit (see the
// module's documentation), as a `Mutex`'s data is: sharing the slot between threads moves
// them from one thread to another, which their `Send` allows.
unsafe impl<F: Future + Send> Sync for Slot<F> where F::Output: Send {}

impl<F: Future> Slot<F> {
    pub(crate) fn new(contents: Contents<F>) -> Self {
        let stage = Stage::of(&contents);
        Self {
            word: AtomicU64::new((stage as u64) << STAGE_SHIFT),
            handle: UnsafeCell::new(None),
            value: UnsafeCell::new(into_value(contents)),
        }
    }

    /// The word: the caller's flags below [`FLAG_BITS`] and its bits from [`HIGH_SHIFT`] on,
    /// to change only with read-modify-writes of those bits (`fetch_or`, `fetch_and`).
    #[inline]
    pub(crate) fn word(&self) -> &AtomicU64 {
        &self.word
    }

    /// Takes the lock bit (spinning: its holders only move values).
    #[inline]
    pub(crate) fn lock(&self) -> Locked<'_, F> {
        lock::acquired(Rank::Leaf);
        let mut round = 0;
        while self.word.fetch_or(LOCK, Ordering::Acquire) & LOCK != 0 {
            // Wait for the holder by reading, not by writing the line it holds; under loom
            // by yielding alone (each read would be one more interleaving to explore).
            #[cfg(not(loom))]
            while self.word.load(Ordering::Relaxed) & LOCK != 0 {
                spin(&mut round);
            }
            #[cfg(loom)]
            spin(&mut round);
        }
        Locked { slot: self }
    }
}

fn into_value<F: Future>(contents: Contents<F>) -> Value<F> {
    match contents {
        Contents::Queued(fut) => Value {
            fut: ManuallyDrop::new(fut),
        },
        Contents::Running(w) => Value {
            runner: ManuallyDrop::new(w),
        },
        Contents::Done(res) => Value {
            done: ManuallyDrop::new(res),
        },
        Contents::Taken => Value { taken: () },
    }
}

impl<F: Future> Drop for Slot<F> {
    fn drop(&mut self) {
        let stage = Stage::of_word(self.word.load(Ordering::Relaxed));
        self.value.with_mut(|v| {
            // SAFETY: `&mut self`: nobody else can reach the value; the stage names its live
            // field, which is dropped once, here.
            unsafe {
                match stage {
                    Stage::Queued => ManuallyDrop::drop(&mut (*v).fut),
                    Stage::Running => ManuallyDrop::drop(&mut (*v).runner),
                    Stage::Done => ManuallyDrop::drop(&mut (*v).done),
                    Stage::Taken => {}
                }
            }
        });
    }
}

/// The slot, locked: its value and the handle's waker, by safe methods. Unlocks when dropped.
pub(crate) struct Locked<'a, F: Future> {
    slot: &'a Slot<F>,
}

impl<F: Future> Locked<'_, F> {
    #[inline]
    pub(crate) fn stage(&self) -> Stage {
        // Its bits change only under the lock, which this guard holds.
        Stage::of_word(self.slot.word.load(Ordering::Relaxed))
    }

    /// Puts `new` in and gives back what was there.
    #[inline]
    pub(crate) fn replace(&mut self, new: Contents<F>) -> Contents<F> {
        let old = self.stage();
        let new_stage = Stage::of(&new);
        let taken = self.slot.value.with_mut(|v| {
            // SAFETY: this guard holds the lock, so nobody else reaches the value; `old` is
            // the stage the last holder left, which names the live field. It is moved out
            // and the new value written in its place (no drop of the old bits), and the
            // stage changes to the new value's below, with no panic in between.
            unsafe {
                let taken = match old {
                    Stage::Queued => Contents::Queued(ManuallyDrop::take(&mut (*v).fut)),
                    Stage::Running => Contents::Running(ManuallyDrop::take(&mut (*v).runner)),
                    Stage::Done => Contents::Done(ManuallyDrop::take(&mut (*v).done)),
                    Stage::Taken => Contents::Taken,
                };
                v.write(into_value(new));
                taken
            }
        });
        if old != new_stage {
            // Flip exactly the bits that differ: the caller's bits are left as they are.
            let flip = ((old as u64) ^ (new_stage as u64)) << STAGE_SHIFT;
            self.slot.word.fetch_xor(flip, Ordering::Relaxed);
        }
        taken
    }

    /// The future, if it is queued; the task runs from now on (no runner's waker yet).
    #[inline]
    pub(crate) fn take_queued(&mut self) -> Option<F> {
        if self.stage() != Stage::Queued {
            return None;
        }
        match self.replace(Contents::Running(None)) {
            Contents::Queued(fut) => Some(fut),
            _ => unreachable!("the stage said queued"),
        }
    }

    /// The output, if it is done; it is taken from now on.
    #[inline]
    pub(crate) fn take_done(&mut self) -> Option<Result<F::Output, Box<TaskError>>> {
        if self.stage() != Stage::Done {
            return None;
        }
        match self.replace(Contents::Taken) {
            Contents::Done(res) => Some(res),
            _ => unreachable!("the stage said done"),
        }
    }

    /// Calls `f` on the runner's waker, if the task runs (and gives back what `f` returns).
    #[inline]
    pub(crate) fn with_runner_waker<R>(
        &mut self,
        f: impl FnOnce(&mut Option<Waker>) -> R,
    ) -> Option<R> {
        if self.stage() != Stage::Running {
            return None;
        }
        // SAFETY: the lock is held (nobody else reaches the value) and the stage says the
        // runner's waker is the live field; `f` cannot change the stage (it has no guard).
        Some(self.slot.value.with_mut(|v| f(unsafe { &mut (*v).runner })))
    }

    /// Calls `f` on the handle's waker (`spawn().await`, `handle.await`).
    #[inline]
    pub(crate) fn with_handle_waker<R>(&mut self, f: impl FnOnce(&mut Option<Waker>) -> R) -> R {
        // SAFETY: the lock is held, so nobody else reaches it.
        self.slot.handle.with_mut(|w| f(unsafe { &mut *w }))
    }
}

impl<F: Future> Drop for Locked<'_, F> {
    #[inline]
    fn drop(&mut self) {
        self.slot.word.fetch_and(!LOCK, Ordering::Release);
        lock::released(Rank::Leaf);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::{Contents, Slot, Stage, LOCK};
    use crate::engine::loom_tests::check;
    use loom::thread;
    use std::future::Ready;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    type Counter = Slot<Ready<u32>>;

    /// Adds one to the count in the slot's output: moved out and back in one section.
    fn bump(slot: &Counter) {
        let mut locked = slot.lock();
        let Contents::Done(Ok(n)) = locked.replace(Contents::Taken) else {
            panic!("a section left the slot without its count");
        };
        let _ = locked.replace(Contents::Done(Ok(n + 1)));
    }

    /// Two threads take the lock, one of them setting one of the caller's flag bits just
    /// before: every section sees the last one's writes (no count is lost), and no flag bit,
    /// stage change or unlock is lost either. Exhaustive.
    #[test]
    fn loom_slot_lock_excludes_and_keeps_the_callers_bits() {
        check(|| {
            let slot = Arc::new(Counter::new(Contents::Done(Ok(0))));
            let other = {
                let slot = slot.clone();
                thread::spawn(move || {
                    slot.word().fetch_or(1, Relaxed);
                    bump(&slot);
                })
            };
            bump(&slot);
            other.join().unwrap();
            let word = slot.word().load(Relaxed);
            assert_eq!(word & 1, 1, "the caller's flag was lost");
            assert_eq!(word & LOCK, 0, "an unlock was lost");
            let mut locked = slot.lock();
            assert_eq!(locked.stage(), Stage::Done);
            assert!(matches!(
                locked.replace(Contents::Taken),
                Contents::Done(Ok(2))
            ));
        });
    }
}

//! The timer link of work that waits with a deadline (`max_queue_wait`) or for a rate
//! token: a leaf, so that tasks and groups can hold it. `shed.rs` and `rate.rs` arm it.

use crate::sync::{AtomicU8, AtomicWaker};
use async_taskpool_runtime::BoxFuture;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};

/// The link between work with a deadline and its timer: disarmed once the work left the
/// queue (or its group ended), which ends the timer early.
#[derive(Default)]
pub(crate) struct QueueTimer {
    disarmed: AtomicU8,
    waker: AtomicWaker,
}

impl QueueTimer {
    /// The work no longer waits: the timer ends without shedding anything.
    pub(crate) fn disarm(&self) {
        if let Some(w) = self.disarm_later() {
            w.wake();
        }
    }

    /// Like [`disarm`](Self::disarm), from inside a section: returns the timer's waker, to
    /// wake once unlocked.
    pub(crate) fn disarm_later(&self) -> Option<Waker> {
        if self.disarmed.swap(1, Ordering::AcqRel) == 0 {
            self.waker.take()
        } else {
            None
        }
    }

    fn is_disarmed(&self) -> bool {
        self.disarmed.load(Ordering::Acquire) != 0
    }

    /// Waits for `sleep` unless disarmed first: whether it slept to the end.
    pub(crate) async fn sleep(&self, mut sleep: BoxFuture) -> bool {
        poll_fn(|cx| {
            if self.is_disarmed() {
                return Poll::Ready(false);
            }
            self.waker.register(cx.waker());
            if self.is_disarmed() {
                return Poll::Ready(false);
            }
            sleep.as_mut().poll(cx).map(|()| true)
        })
        .await
    }
}

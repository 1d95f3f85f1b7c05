//! How a runtime task goes from one piece of pool work to the next.
//!
//! A *runner* (see `runner.rs`) is a runtime task the pool spawned. It runs one job at a
//! time: a task, or a group's worker. When a job ends, the pool says what the runner does
//! next (`core::Next`): end; run another, handed over with the slot the runner holds (no
//! runtime spawn, no slot released and re-taken); or park. This module is the parking: a
//! [`Mailbox`] a parked runner waits in, for whatever the pool hands it (`T`).
//!
//! Parking: a runner whose job ended with nothing waiting would end, and the next job that
//! starts at once would pay for a fresh runtime task. Instead, up to [`IDLE_CAP`] runners park
//! in a [`Mailbox`], holding no slot and no reference to the pool, and a job that starts at
//! once is delivered to one of them with a wake-up. Parked runners end when the pool closes.
//! If the runtime drops a parked runner (shutdown), a job just delivered to it is dropped with
//! it, which retires its task as dropped by the runtime, and the mailbox refuses further
//! deliveries: those jobs get a runtime task of their own.

use super::user::{drop_value, Whose};
use crate::sync::lock::{lock, Rank};
use crate::sync::Mutex;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Most runners a pool keeps parked. Each costs its executor's task record and the first job
/// it ran (the future's size), so the cap stays small; 32 covers the usual fan-out of a
/// producer refilling a pool between its wake-ups.
pub(crate) const IDLE_CAP: usize = 32;

/// Where a parked runner waits for its next job. A runner keeps its mailbox across parks, so
/// parking allocates nothing after the first time.
pub(crate) struct Mailbox<T>(Mutex<Delivery<T>>);

enum Delivery<T> {
    /// Parked (or about to), with the runner's waker once it has polled.
    Waiting(Option<Waker>),
    /// Work was handed over; the runner has not taken it yet.
    Delivered(T),
    /// The runner is gone or must end.
    Closed,
}

impl<T: Send> Mailbox<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Delivery::Waiting(None))))
    }

    /// Hands `job` to the parked runner; gives it back if the runner is gone.
    #[inline(always)]
    pub(crate) fn deliver(&self, job: T) -> Result<(), T> {
        let mut slot = lock(&self.0, Rank::Leaf);
        match &mut *slot {
            Delivery::Waiting(waker) => {
                let waker = waker.take();
                *slot = Delivery::Delivered(job);
                drop(slot);
                if let Some(w) = waker {
                    w.wake();
                }
                Ok(())
            }
            Delivery::Delivered(_) | Delivery::Closed => Err(job),
        }
    }

    /// The runner's side: the job handed over (the mailbox is then ready for the next park),
    /// `None` once closed, or pending with the waker kept.
    #[inline(always)]
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = lock(&self.0, Rank::Leaf);
        match std::mem::replace(&mut *slot, Delivery::Waiting(None)) {
            Delivery::Delivered(job) => Poll::Ready(Some(job)),
            Delivery::Closed => {
                *slot = Delivery::Closed;
                Poll::Ready(None)
            }
            Delivery::Waiting(_) => {
                *slot = Delivery::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    /// Ends the parked runner. A job delivered but not yet taken is dropped (after unlocking),
    /// which retires its task as dropped by the runtime.
    pub(crate) fn close(&self, pool: &str) {
        let old = std::mem::replace(&mut *lock(&self.0, Rank::Leaf), Delivery::Closed);
        match old {
            Delivery::Waiting(Some(w)) => w.wake(),
            Delivery::Waiting(None) | Delivery::Closed => {}
            Delivery::Delivered(job) => drop_value(
                job,
                Whose {
                    pool,
                    task: None,
                    what: "a job delivered to a closed runner",
                },
            ),
        }
    }
}

/// A park the runner has not taken up yet. If it is dropped instead (a panic between the pool
/// registering the mailbox and the runner parking on it), the mailbox closes, so no job is
/// ever delivered where nobody waits: it would be spawned afresh instead.
pub(crate) struct Parking<T: Send>(Option<Arc<Mailbox<T>>>);

impl<T: Send> Parking<T> {
    pub(crate) fn new(mailbox: Arc<Mailbox<T>>) -> Self {
        Self(Some(mailbox))
    }

    /// The runner parks on the mailbox.
    pub(crate) fn take_up(mut self) -> Arc<Mailbox<T>> {
        self.0.take().expect("taken up once")
    }
}

impl<T: Send> Drop for Parking<T> {
    fn drop(&mut self) {
        if let Some(mailbox) = self.0.take() {
            mailbox.close("(abandoned park)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Mailbox, Parking};
    use std::task::{Context, Poll};

    #[test]
    fn a_park_never_taken_up_refuses_deliveries() {
        let taken = Mailbox::new();
        let mailbox = Parking::new(taken.clone()).take_up();
        assert!(mailbox.deliver(1).is_ok(), "a parked runner takes a job");

        let abandoned = Mailbox::<u32>::new();
        drop(Parking::new(abandoned.clone()));
        assert_eq!(
            abandoned.deliver(2),
            Err(2),
            "the job comes back, to be spawned afresh"
        );
    }

    #[test]
    fn a_mailbox_is_reused_after_its_job_is_taken() {
        let mailbox = Mailbox::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(mailbox.poll_take(&mut cx).is_pending());
        assert!(mailbox.deliver(1).is_ok());
        assert_eq!(mailbox.deliver(2), Err(2), "one job at a time");
        assert!(matches!(mailbox.poll_take(&mut cx), Poll::Ready(Some(1))));
        assert!(mailbox.deliver(3).is_ok(), "ready for the next park");
        mailbox.close("test");
        assert!(matches!(mailbox.poll_take(&mut cx), Poll::Ready(None)));
    }
}

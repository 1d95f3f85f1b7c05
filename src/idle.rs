//! Idle runners: runtime tasks kept parked for the next submission.
//!
//! A runtime task whose pool task finished with nothing queued behind it would end, and the
//! next task started with room to spare would pay for a fresh runtime task (an allocation and
//! the executor's bookkeeping). Instead, up to [`IDLE_CAP`] such runtime tasks park, holding no
//! slot, and a task that starts at once is handed to one of them with a wake-up: `exec` in a
//! loop, and `spawn` whenever the pool drains between submissions, reuse runtime tasks the way
//! queued tasks already do.
//!
//! Parked runners end when the pool closes (which dropping its last handle does). If the
//! runtime drops a parked runner (shutdown), a task just delivered to it is retired as
//! cancelled, like any task the runtime drops, and the mailbox refuses further deliveries:
//! those tasks get a runtime task of their own.

use crate::sync::lock;
use crate::task::BoxJob;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Most runtime tasks a pool keeps parked. Each costs its executor's task record and the
/// first task it ran (the future's size), so the cap stays small; 32 covers the usual fan-out
/// of a producer refilling a pool between its wake-ups.
pub(crate) const IDLE_CAP: usize = 32;

/// Where a parked runner waits for its next task. A runner keeps its mailbox across parks, so
/// parking allocates nothing after the first time.
pub(crate) struct Mailbox(Mutex<Slot>);

enum Slot {
    /// Parked (or about to), with the runner's waker once it has polled.
    Waiting(Option<Waker>),
    /// A task was handed over; the runner has not taken it yet.
    Delivered(BoxJob),
    /// The runner is gone or must end.
    Closed,
}

impl Mailbox {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Slot::Waiting(None))))
    }

    /// Hands `job` to the parked runner; gives it back if the runner is gone.
    pub(crate) fn deliver(&self, job: BoxJob) -> Result<(), BoxJob> {
        let mut slot = lock(&self.0);
        match &mut *slot {
            Slot::Waiting(waker) => {
                let waker = waker.take();
                *slot = Slot::Delivered(job);
                drop(slot);
                if let Some(w) = waker {
                    w.wake();
                }
                Ok(())
            }
            Slot::Delivered(_) | Slot::Closed => Err(job),
        }
    }

    /// The runner's side: the task handed over (the mailbox is then ready for the next
    /// park), `None` once closed, or pending with the waker kept.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<BoxJob>> {
        let mut slot = lock(&self.0);
        match std::mem::replace(&mut *slot, Slot::Waiting(None)) {
            Slot::Delivered(job) => Poll::Ready(Some(job)),
            Slot::Closed => {
                *slot = Slot::Closed;
                Poll::Ready(None)
            }
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    /// Ends the parked runner; a task delivered but not yet taken is dropped, which retires
    /// it as cancelled.
    pub(crate) fn close(&self) {
        let old = std::mem::replace(&mut *lock(&self.0), Slot::Closed);
        // Outside the lock: a dropped job retires its task, which takes the pool's lock.
        match old {
            Slot::Waiting(Some(w)) => w.wake(),
            Slot::Waiting(None) | Slot::Closed => {}
            Slot::Delivered(job) => drop(job),
        }
    }
}

/// A park the runner has not taken up yet. If it is dropped instead (a panic between the pool
/// registering the mailbox and the runner parking on it), the mailbox closes, so no task is
/// ever delivered where nobody waits: it would be spawned afresh instead.
pub(crate) struct Parking(Option<Arc<Mailbox>>);

impl Parking {
    pub(crate) fn new(mailbox: Arc<Mailbox>) -> Self {
        Self(Some(mailbox))
    }

    /// The runner parks on the mailbox.
    pub(crate) fn take_up(mut self) -> Arc<Mailbox> {
        self.0.take().expect("taken up once")
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        if let Some(mailbox) = self.0.take() {
            mailbox.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Mailbox, Parking};
    use crate::task::{BoxJob, Job, Next};
    use async_taskpool_runtime::BoxFuture;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    struct Nop;
    impl Job for Nop {
        fn poll_job(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut Option<Arc<Mailbox>>,
        ) -> Poll<Next> {
            Poll::Ready(Next::End)
        }
        fn into_future(self: Pin<Box<Self>>) -> BoxFuture {
            Box::pin(async {})
        }
    }

    fn job() -> BoxJob {
        Box::pin(Nop)
    }

    #[test]
    fn a_park_never_taken_up_refuses_deliveries() {
        let taken = Mailbox::new();
        let mailbox = Parking::new(taken.clone()).take_up();
        assert!(
            mailbox.deliver(job()).is_ok(),
            "a parked runner takes a task"
        );

        let abandoned = Mailbox::new();
        drop(Parking::new(abandoned.clone()));
        assert!(
            abandoned.deliver(job()).is_err(),
            "the task comes back, to be spawned afresh"
        );
    }

    #[test]
    fn a_mailbox_is_reused_after_its_task_is_taken() {
        let mailbox = Mailbox::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(mailbox.poll_take(&mut cx).is_pending());
        assert!(mailbox.deliver(job()).is_ok());
        assert!(mailbox.deliver(job()).is_err(), "one task at a time");
        assert!(matches!(mailbox.poll_take(&mut cx), Poll::Ready(Some(_))));
        assert!(mailbox.deliver(job()).is_ok(), "ready for the next park");
        mailbox.close();
        assert!(matches!(mailbox.poll_take(&mut cx), Poll::Ready(None)));
    }
}

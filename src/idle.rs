//! Idle runners: runtime tasks kept parked for the next submission.
//!
//! A runtime task whose pool task finished with nothing queued behind it would end, and the
//! next task started with room to spare would pay for a fresh runtime task (an allocation and
//! the executor's bookkeeping). Instead, up to [`IDLE_CAP`] such runtime tasks park, holding no
//! slot, and a task that starts at once is handed to one of them with a wake-up: `exec` in a
//! loop, and `spawn` whenever the pool drains between submissions, reuse runtime tasks the way
//! queued tasks already do.
//!
//! Parked runners end when the pool closes (which dropping its last handle does); one the
//! runtime drops (shutdown) hands back any task just delivered to it, which is then retired as
//! cancelled like any task the runtime drops.

use crate::sync::lock;
use crate::task::{BoxJob, Job};
use async_taskpool_runtime::BoxFuture;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Most runtime tasks a pool keeps parked. Each costs its executor's task record and the
/// first task it ran (the future's size), so the cap stays small; 32 covers the usual fan-out
/// of a producer refilling a pool between its wake-ups.
pub(crate) const IDLE_CAP: usize = 32;

/// Where a parked runner waits for its next task.
pub(crate) struct Mailbox(Mutex<Slot>);

enum Slot {
    /// Parked, with the runner's waker once it has polled.
    Waiting(Option<Waker>),
    /// A task was handed over; the runner has not taken it yet.
    Delivered(BoxJob),
    /// The runner is gone or must end.
    Closed,
}

impl Mailbox {
    /// A mailbox and the job that parks its runner on it.
    pub(crate) fn park() -> (Arc<Self>, BoxJob) {
        let mailbox = Arc::new(Self(Mutex::new(Slot::Waiting(None))));
        let job = Box::pin(Parked(mailbox.clone()));
        (mailbox, job)
    }

    /// Hands `job` to the parked runner; gives it back if the runner is gone.
    pub(crate) fn deliver(&self, job: BoxJob) -> Result<(), BoxJob> {
        let mut slot = lock(&self.0);
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Waiting(waker) => {
                *slot = Slot::Delivered(job);
                drop(slot);
                if let Some(w) = waker {
                    w.wake();
                }
                Ok(())
            }
            other => {
                *slot = other;
                Err(job)
            }
        }
    }

    /// Ends the parked runner.
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

/// The job a runner runs while parked: it ends by handing over the task it was given, or with
/// nothing when its mailbox closes.
struct Parked(Arc<Mailbox>);

impl Job for Parked {
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BoxJob>> {
        let mut slot = lock(&self.0 .0);
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Delivered(job) => Poll::Ready(Some(job)),
            Slot::Closed => Poll::Ready(None),
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    fn into_future(self: Pin<Box<Self>>) -> BoxFuture {
        // A parked runner is only ever reached through a running task's chain.
        Box::pin(std::future::ready(()))
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // Taken, closed, or dropped by the runtime: either way, nobody may deliver here now.
        self.0.close();
    }
}

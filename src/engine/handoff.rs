//! How a runtime task goes from one piece of pool work to the next.
//!
//! A *runner* (see `runner.rs`) is a runtime task the pool spawned. It runs one [`Job`] at a
//! time: a task, or a group's worker. When a job ends, the pool says what the runner does
//! next ([`Next`]): end; run another job, handed over with the slot the runner holds (no
//! runtime spawn, no slot released and re-taken); or park.
//!
//! Parking: a runner whose job ended with nothing waiting would end, and the next job that
//! starts at once would pay for a fresh runtime task. Instead, up to [`IDLE_CAP`] runners park
//! in a [`Mailbox`], holding no slot and no reference to the pool, and a job that starts at
//! once is delivered to one of them with a wake-up. Parked runners end when the pool closes.
//! If the runtime drops a parked runner (shutdown), a job just delivered to it is dropped with
//! it, which retires its task as dropped by the runtime, and the mailbox refuses further
//! deliveries: those jobs get a runtime task of their own.

use super::lock::{lock, Rank};
use super::sync::Mutex;
use super::user::{drop_value, Owner};
use async_taskpool_runtime::BoxFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Most runners a pool keeps parked. Each costs its executor's task record and the first job
/// it ran (the future's size), so the cap stays small; 32 covers the usual fan-out of a
/// producer refilling a pool between its wake-ups.
pub(crate) const IDLE_CAP: usize = 32;

/// Work a runner runs: a task or a group's worker. Always a boxed runner (`runner.rs`), so it
/// can run on the runner it is handed to or be spawned as a runtime task of its own.
pub(crate) trait Job: Send {
    /// Runs the job; once it ends, says what its runner does next. `spare` is the runner's
    /// mailbox from an earlier park, for the pool to reuse if the runner parks again.
    fn poll_job(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Mailbox>>,
    ) -> Poll<Next>;

    /// The job as a runtime task of its own, to spawn.
    fn into_future(self: Pin<Box<Self>>) -> BoxFuture;
}

pub(crate) type BoxJob = Pin<Box<dyn Job>>;

/// What a runner does once its job ended.
pub(crate) enum Next {
    /// End the runtime task.
    End,
    /// Run this job, handed over with the slot the runner holds.
    Run(BoxJob),
    /// Wait in this mailbox (the pool has it) for a job that starts at once.
    Park(Parking),
}

/// Where a parked runner waits for its next job. A runner keeps its mailbox across parks, so
/// parking allocates nothing after the first time.
pub(crate) struct Mailbox(Mutex<Slot>);

enum Slot {
    /// Parked (or about to), with the runner's waker once it has polled.
    Waiting(Option<Waker>),
    /// A job was handed over; the runner has not taken it yet.
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
        let mut slot = lock(&self.0, Rank::Leaf);
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

    /// The runner's side: the job handed over (the mailbox is then ready for the next park),
    /// `None` once closed, or pending with the waker kept.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<BoxJob>> {
        let mut slot = lock(&self.0, Rank::Leaf);
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

    /// Ends the parked runner. A job delivered but not yet taken is dropped (after unlocking),
    /// which retires its task as dropped by the runtime.
    pub(crate) fn close(&self, pool: &str) {
        let old = std::mem::replace(&mut *lock(&self.0, Rank::Leaf), Slot::Closed);
        match old {
            Slot::Waiting(Some(w)) => w.wake(),
            Slot::Waiting(None) | Slot::Closed => {}
            Slot::Delivered(job) => drop_value(
                job,
                Owner {
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
            mailbox.close("(abandoned park)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BoxJob, Job, Mailbox, Next, Parking};
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
            "a parked runner takes a job"
        );

        let abandoned = Mailbox::new();
        drop(Parking::new(abandoned.clone()));
        assert!(
            abandoned.deliver(job()).is_err(),
            "the job comes back, to be spawned afresh"
        );
    }

    #[test]
    fn a_mailbox_is_reused_after_its_job_is_taken() {
        let mailbox = Mailbox::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(mailbox.poll_take(&mut cx).is_pending());
        assert!(mailbox.deliver(job()).is_ok());
        assert!(mailbox.deliver(job()).is_err(), "one job at a time");
        assert!(matches!(mailbox.poll_take(&mut cx), Poll::Ready(Some(_))));
        assert!(mailbox.deliver(job()).is_ok(), "ready for the next park");
        mailbox.close("test");
        assert!(matches!(mailbox.poll_take(&mut cx), Poll::Ready(None)));
    }
}

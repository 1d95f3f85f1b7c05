//! Runners: the runtime tasks a pool spawns.
//!
//! A runner runs its first piece of [`Work`] (stored inline, so a task that starts at once
//! costs one boxed runtime future), then whatever the pool hands it when that ends, then parks
//! or ends (see `handoff.rs`). A loose task handed to a runner whose own work was a task of
//! the same type runs in place of that one: a pool running many tasks of one kind allocates
//! nothing per task beyond each task's cell. A runner yields to its executor after
//! [`RUN_BUDGET`] jobs in one poll, so a backlog of ready work never hogs a thread.

use super::core::{BoxJob, Inbox, Job, Launch, Next, Start};
use super::user::panic_message;
use crate::sync::lock::assert_unlocked;
use async_taskpool_runtime::BoxFuture;
use pin_project_lite::pin_project;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Jobs a runner may finish in one poll before it yields to its executor.
pub(crate) const RUN_BUDGET: usize = 32;

/// One piece of pool work: a task, or a group's worker.
pub(crate) trait Work: Send {
    /// Runs it; once it ends (having released every user value it held), says what its
    /// runner does next. `spare` is the runner's mailbox from an earlier park.
    fn poll_work(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next>;

    /// This work has ended: run `launch` in its place if it is a task of the same kind (no
    /// allocation), or give it back.
    fn take_up(self: Pin<&mut Self>, launch: Launch) -> Result<(), Launch> {
        Err(launch)
    }
}

pin_project! {
    /// A runtime task of the pool (or, handed to another runner, one job of it).
    pub(crate) struct Runner<W> {
        #[pin]
        first: W,
        first_done: bool,
        // The job this runner runs now that its first one has ended.
        next: Option<BoxJob>,
        // Where this runner waits while parked, and its mailbox kept between parks.
        parked: Option<Arc<Inbox>>,
        spare: Option<Arc<Inbox>>,
    }

    impl<W> PinnedDrop for Runner<W> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mailbox) = this.parked.take() {
                // Dropped while parked (runtime shutdown): nothing may be delivered here now.
                mailbox.close("(a dropped runner)");
            }
        }
    }
}

impl<W: Work + 'static> Runner<W> {
    /// `work` as a job: to run on a runner it is handed to, or to spawn.
    pub(crate) fn job(work: W) -> BoxJob {
        Box::pin(Self {
            first: work,
            first_done: false,
            next: None,
            parked: None,
            spare: None,
        })
    }
}

/// Polls `work`, catching what no guard inside it caught (a bug of ours): the job then ends,
/// and its drop retires its task.
fn poll_guarded<W: Work>(
    work: Pin<&mut W>,
    cx: &mut Context<'_>,
    spare: &mut Option<Arc<Inbox>>,
) -> Poll<Next> {
    match catch_unwind(AssertUnwindSafe(|| work.poll_work(cx, spare))) {
        Ok(poll) => poll,
        Err(payload) => {
            tracing::error!(
                "a pool runner panicked outside user code: {}",
                panic_message(&*payload)
            );
            super::user::drop_payload(payload);
            Poll::Ready(Next::End)
        }
    }
}

impl<W: Work + 'static> Job for Runner<W> {
    fn poll_job(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Poll<Next> {
        let this = self.project();
        if *this.first_done {
            return Poll::Ready(Next::End);
        }
        let next = ready!(poll_guarded(this.first, cx, spare));
        *this.first_done = true;
        Poll::Ready(next)
    }

    fn into_future(self: Pin<Box<Self>>) -> BoxFuture {
        self
    }
}

impl<W: Work + 'static> Future for Runner<W> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        assert_unlocked("a runner's poll");
        let mut this = self.project();
        let mut finished = 0;
        loop {
            let next = if let Some(mailbox) = this.parked.as_ref() {
                match ready!(mailbox.poll_take(cx)) {
                    Some(start) => {
                        // Keep the mailbox for the next park.
                        *this.spare = this.parked.take();
                        Next::Run(start)
                    }
                    None => {
                        *this.parked = None;
                        return Poll::Ready(());
                    }
                }
            } else if let Some(job) = this.next.as_mut() {
                let next = ready!(job.as_mut().poll_job(cx, this.spare));
                // A job that ended has released every user value it held: what is left of
                // it is the pool's own.
                *this.next = None;
                next
            } else if !*this.first_done {
                let next = ready!(poll_guarded(this.first.as_mut(), cx, this.spare));
                *this.first_done = true;
                next
            } else {
                return Poll::Ready(());
            };
            match next {
                Next::End => return Poll::Ready(()),
                Next::Run(Start::Task(launch)) => {
                    // Run it in place of the first job (which has ended) if it is of its
                    // kind; else as a job of its own.
                    match this.first.as_mut().take_up(launch) {
                        Ok(()) => *this.first_done = false,
                        Err(launch) => *this.next = Some(Start::Task(launch).into_job()),
                    }
                }
                Next::Run(Start::Job(job)) => *this.next = Some(job),
                Next::Park(parking) => *this.parked = Some(parking.take_up()),
            }
            finished += 1;
            if finished == RUN_BUDGET {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

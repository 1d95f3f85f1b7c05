use super::core::Core;
use super::ThreadedError;
use crate::error::PoolError;
use crate::handle::TaskHandle;
use crate::id::TaskId;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// The result of one task of a [`ThreadedPool`](crate::ThreadedPool) or
/// [`AsyncThreadedPool`](crate::AsyncThreadedPool), for synchronous and async callers alike:
/// block on it with [`wait`](Self::wait) or [`wait_timeout`](Self::wait_timeout), or `.await`
/// it on any executor.
///
/// Guarantees:
/// - it resolves exactly once, after the task's future was dropped on the pool's side;
/// - [`cancel`](Self::cancel) works from any thread and takes effect promptly: the pool's
///   loop is woken, and the task is dropped at its next poll without waiting for anything
///   else to happen on the pool's thread;
/// - dropping the handle **detaches** the task: it keeps running, its output is dropped.
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{ThreadRuntime, ThreadedPool};
/// use std::time::Duration;
///
/// let pool = ThreadedPool::builder(ThreadRuntime::Smol).build()?;
/// let slow = pool.spawn(std::future::pending::<()>())?;
/// let slow = match slow.wait_timeout(Duration::from_millis(10)) {
///     Ok(_) => unreachable!("it never ends"),
///     Err(still_running) => still_running,          // the handle comes back
/// };
/// slow.cancel()?;                                     // from this (or any) thread
/// assert!(slow.wait().unwrap_err().task_error().unwrap().is_cancelled());
/// # pool.stop()?;
/// # }
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a ThreadedHandle does nothing unless waited for or awaited; dropping it detaches the task"]
pub struct ThreadedHandle<T> {
    task: TaskHandle<T>,
    core: Arc<Core>,
}

impl<T> ThreadedHandle<T> {
    pub(crate) fn new(task: TaskHandle<T>, core: Arc<Core>) -> Self {
        Self { task, core }
    }

    /// The task's id in the pool.
    pub fn id(&self) -> TaskId {
        self.task.id()
    }

    /// Asks the task to stop, from any thread. A queued task never starts; a running one is
    /// dropped at its next poll. The handle then resolves to a cancelled
    /// [`TaskError`](crate::TaskError), unless the task finished first. Errors as
    /// [`TaskHandle::cancel`].
    pub fn cancel(&self) -> Result<(), PoolError> {
        self.task.cancel()
    }

    /// Whether the result is ready (waiting would not block).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Blocks the calling thread until the task ends, and returns its output.
    ///
    /// Returns [`ThreadedError::OnPoolThread`] at once if called on the pool's own thread or
    /// from one of its tasks, where it would wait for itself.
    pub fn wait(mut self) -> Result<T, ThreadedError> {
        self.core.check_off_thread("ThreadedHandle::wait")?;
        block_on(&mut self.task, None)
            .expect("no deadline")
            .map_err(Into::into)
    }

    /// Like [`wait`](Self::wait), for at most `timeout`: gives the handle back in `Err` if the
    /// task has not ended by then (the task keeps running; wait again, or cancel it).
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<Result<T, ThreadedError>, Self> {
        if let Err(e) = self.core.check_off_thread("ThreadedHandle::wait_timeout") {
            return Ok(Err(e));
        }
        let deadline = Instant::now().checked_add(timeout);
        match block_on(&mut self.task, deadline) {
            Some(res) => Ok(res.map_err(Into::into)),
            None => Err(self),
        }
    }
}

impl<T> Future for ThreadedHandle<T> {
    type Output = Result<T, ThreadedError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx).map_err(Into::into)
    }
}

impl<T> fmt::Debug for ThreadedHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedHandle")
            .field("pool", &self.core.name())
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between wake-ups, until it is ready or `deadline`
/// passes (`None`: no deadline, or one too far to represent).
pub(crate) fn block_on<F: Future + Unpin>(
    fut: &mut F,
    deadline: Option<Instant>,
) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = Pin::new(&mut *fut).poll(&mut cx) {
            return Some(out);
        }
        // A spurious unpark only costs one more poll.
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

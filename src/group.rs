//! Groups: the tasks of one `apply`, `map` or `start`, and their results.

use crate::capacity::shrink_after_burst;
use crate::inner::{GroupEntry, Inner};
use crate::stats::GroupSummary;
use crate::{current_task_id, PoolError, TaskError, TaskId};
use event_listener::Event;
use futures_core::stream::{FusedStream, Stream};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

type Item<T> = Result<T, TaskError>;

/// A group's results, kept while someone holds the [`Group`].
pub(crate) struct GroupCore<T> {
    pub(crate) name: Arc<str>,
    results: Mutex<Results<T>>,
    /// Sequence numbers handed out. Only written under the map's feed lock (or by the one
    /// thread starting a group), and read under `results` after `issuing_done` is seen, so
    /// it needs no lock of its own: items are issued without touching the consumer's lock.
    issued: AtomicU64,
    finished: Event,
}

struct Results<T> {
    ordered: bool,
    keep: bool,
    /// Sequence number of `buf[0]` (ordered mode).
    base: u64,
    buf: VecDeque<Option<Item<T>>>,
    delivered: u64,
    issuing_done: bool,
    waker: Option<Waker>,
    summary: GroupSummary,
}

impl<T> Results<T> {
    fn finished(&self, issued: &AtomicU64) -> bool {
        self.issuing_done && self.delivered == issued.load(Ordering::Acquire)
    }
}

impl<T> GroupCore<T> {
    pub(crate) fn new(name: Arc<str>, ordered: bool) -> Self {
        Self {
            name,
            results: Mutex::new(Results {
                ordered,
                keep: true,
                base: 0,
                buf: VecDeque::new(),
                delivered: 0,
                issuing_done: false,
                waker: None,
                summary: GroupSummary::default(),
            }),
            issued: AtomicU64::new(0),
            finished: Event::new(),
        }
    }

    fn results(&self) -> MutexGuard<'_, Results<T>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out the next sequence number (input order).
    pub(crate) fn issue(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::AcqRel)
    }

    /// No more items will be issued.
    pub(crate) fn close_issuing(&self) {
        let waker = {
            let mut r = self.results();
            r.issuing_done = true;
            if !r.finished(&self.issued) {
                return;
            }
            r.waker.take()
        };
        self.finished.notify(usize::MAX);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Stores item `seq`'s result; returns the stream's waker, to wake after unlocking.
    pub(crate) fn deliver(&self, seq: u64, res: Item<T>) -> Option<Waker> {
        let mut r = self.results();
        r.delivered += 1;
        let s = &mut r.summary;
        match &res {
            Ok(_) => s.completed += 1,
            Err(e) if e.is_cancelled() => s.cancelled += 1,
            Err(e) if e.is_panic() => s.panicked += 1,
            Err(_) => s.timed_out += 1,
        }
        if r.keep {
            if r.ordered {
                let idx = (seq - r.base) as usize;
                if r.buf.len() <= idx {
                    r.buf.resize_with(idx + 1, || None);
                }
                r.buf[idx] = Some(res);
            } else {
                r.buf.push_back(Some(res));
            }
        }
        if r.finished(&self.issued) {
            self.finished.notify(usize::MAX);
        }
        r.waker.take()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.results().finished(&self.issued)
    }

    /// Moves every result that can be handed out now into `out` (empty on entry), so the
    /// consumer takes the lock once per batch rather than once per item. `Ready(false)`: the
    /// stream has ended.
    fn refill(&self, cx: &mut Context<'_>, out: &mut VecDeque<Option<Item<T>>>) -> Poll<bool> {
        let mut r = self.results();
        let ready = if r.ordered {
            r.buf.iter().take_while(|x| x.is_some()).count()
        } else {
            r.buf.len()
        };
        if ready > 0 {
            r.base += ready as u64;
            if ready == r.buf.len() {
                // Swap buffers: both sides keep their capacity, nothing is copied.
                std::mem::swap(&mut r.buf, out);
            } else {
                out.extend(r.buf.drain(..ready));
            }
            shrink_after_burst(&mut r.buf);
            return Poll::Ready(true);
        }
        if r.finished(&self.issued) && r.buf.is_empty() {
            return Poll::Ready(false);
        }
        r.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Results delivered but not yet handed out, and items issued but not yet ended.
    fn counts(&self) -> (usize, usize, bool) {
        let r = self.results();
        let ready = r.buf.iter().filter(|x| x.is_some()).count();
        let pending = (self.issued.load(Ordering::Acquire) - r.delivered) as usize;
        (ready, pending, r.issuing_done)
    }

    fn is_terminated(&self) -> bool {
        let r = self.results();
        r.finished(&self.issued) && r.buf.is_empty()
    }

    fn discard(&self) {
        let mut r = self.results();
        r.keep = false;
        r.base += r.buf.len() as u64;
        r.buf = VecDeque::new();
    }

    pub(crate) fn entry(self: &Arc<Self>) -> GroupEntry
    where
        T: Send + 'static,
    {
        let core = self.clone();
        GroupEntry {
            pulling: None,
            finished: Arc::new(move || core.is_finished()),
        }
    }
}

/// The tasks started by one [`apply`](crate::TaskPool::apply), [`map`](crate::TaskPool::map)
/// or [`start`](crate::SimpleTaskPool::start), and a [`Stream`] of their results.
///
/// Results come in input order from `map`/`map_stream`, and in completion order from the
/// `_unordered` variants and `apply`. Each is `Ok(output)` or the item's [`TaskError`].
///
/// Guarantees:
/// - the stream ends after the last item's result, and only once no item runs or waits;
/// - results are kept while the `Group` lives, so read them or drop the `Group` (or
///   [`join`](Group::join) it, which discards them): a group you hold but never read keeps
///   every result in memory;
/// - dropping the `Group` detaches: its items keep running and their results are dropped.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// use futures::StreamExt;
///
/// let pool = TaskPool::new(TokioSpawner::current());
/// let group = pool.map(1..=3, 2, |x| async move { x * 10 })?;
/// assert_eq!(group.name(), "map-group-0");
/// let out: Vec<_> = group.map(Result::unwrap).collect().await;
/// assert_eq!(out, [10, 20, 30]);
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
pub struct Group<T> {
    core: Arc<GroupCore<T>>,
    pool: Arc<Inner>,
    /// Results taken from the core in one batch, handed out without locking.
    ready: VecDeque<Option<Item<T>>>,
}

impl<T> Group<T> {
    pub(crate) fn new(core: Arc<GroupCore<T>>, pool: Arc<Inner>) -> Self {
        Self {
            core,
            pool,
            ready: VecDeque::new(),
        }
    }

    /// The group's name, given by the caller or generated (`apply-group-K`, `map-group-K`,
    /// `start-group-K`).
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Ids of the group's items that are queued or running now. Ended items are forgotten at
    /// once (so a map over millions of items stays small), and items not yet pulled from the
    /// input have no id yet.
    pub fn ids(&self) -> Vec<TaskId> {
        self.pool
            .with_state(|st| Inner::ids_in_group(st, &self.core.name))
    }

    /// Cancels the group: its running and queued items are cancelled and no further items are
    /// pulled from its input. Same as [`TaskPool::cancel_group`](crate::TaskPool::cancel_group).
    pub fn cancel(&self) -> Result<(), PoolError> {
        self.pool.cancel_group(&self.core.name)
    }

    /// Whether every item has ended and no more will start.
    pub fn is_finished(&self) -> bool {
        self.core.is_finished()
    }

    /// How the items that ended so far ended.
    pub fn summary(&self) -> GroupSummary {
        self.core.results().summary
    }

    /// Waits until every item has ended, discarding results, and returns how they ended.
    ///
    /// Errors with [`PoolError::CalledFromOwnTask`] when called from one of the group's own
    /// items, which would wait for itself. Cancel-safe: dropping the future only stops waiting;
    /// the items carry on, and as `join` took the `Group`, its results are dropped, as when
    /// the `Group` itself is dropped.
    pub async fn join(self) -> Result<GroupSummary, PoolError> {
        if let Some(id) = current_task_id() {
            if crate::current::inside_pool(self.pool.serial)
                && self.pool.group_of(id).as_deref() == Some(&*self.core.name)
            {
                return Err(PoolError::CalledFromOwnTask {
                    pool: self.pool.name.to_string(),
                    method: "Group::join",
                });
            }
        }
        self.core.discard();
        loop {
            if self.core.is_finished() {
                break;
            }
            let listener = self.core.finished.listen();
            if self.core.is_finished() {
                break;
            }
            listener.await;
        }
        Ok(self.summary())
    }
}

// Results are never pinned: the stream moves them out by value.
impl<T> Unpin for Group<T> {}

impl<T> Stream for Group<T> {
    type Item = Item<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ready.is_empty() {
                shrink_after_burst(&mut this.ready);
            }
            if let Some(slot) = this.ready.pop_front() {
                // Every slot taken from the core holds a result.
                if let Some(item) = slot {
                    return Poll::Ready(Some(item));
                }
                continue;
            }
            match this.core.refill(cx, &mut this.ready) {
                Poll::Ready(true) => {}
                Poll::Ready(false) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (ready, pending, issuing_done) = self.core.counts();
        let ready = ready + self.ready.len();
        if issuing_done {
            (ready, Some(ready + pending))
        } else {
            (ready, None)
        }
    }
}

impl<T> FusedStream for Group<T> {
    fn is_terminated(&self) -> bool {
        self.ready.is_empty() && self.core.is_terminated()
    }
}

impl<T> Drop for Group<T> {
    fn drop(&mut self) {
        self.core.discard();
    }
}

impl<T> fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &&*self.core.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

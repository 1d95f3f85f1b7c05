//! Groups: the tasks of one `apply`, `map` or `start`, and their results.

use crate::inner::{GroupEntry, Inner};
use crate::stats::GroupSummary;
use crate::{current_task_id, PoolError, TaskError, TaskId};
use event_listener::Event;
use futures_core::stream::{FusedStream, Stream};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

type Item<T> = Result<T, TaskError>;

/// A group's results, kept while someone holds the [`Group`].
pub(crate) struct GroupCore<T> {
    pub(crate) name: Arc<str>,
    results: Mutex<Results<T>>,
    finished: Event,
}

struct Results<T> {
    ordered: bool,
    keep: bool,
    /// Sequence number of `buf[0]` (ordered mode).
    base: u64,
    buf: VecDeque<Option<Item<T>>>,
    issued: u64,
    delivered: u64,
    issuing_done: bool,
    waker: Option<Waker>,
    summary: GroupSummary,
}

impl<T> Results<T> {
    fn finished(&self) -> bool {
        self.issuing_done && self.delivered == self.issued
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
                issued: 0,
                delivered: 0,
                issuing_done: false,
                waker: None,
                summary: GroupSummary::default(),
            }),
            finished: Event::new(),
        }
    }

    fn results(&self) -> MutexGuard<'_, Results<T>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out the next sequence number (input order).
    pub(crate) fn issue(&self) -> u64 {
        let mut r = self.results();
        r.issued += 1;
        r.issued - 1
    }

    /// No more items will be issued.
    pub(crate) fn close_issuing(&self) {
        let waker = {
            let mut r = self.results();
            r.issuing_done = true;
            if !r.finished() {
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
        if r.finished() {
            self.finished.notify(usize::MAX);
        }
        r.waker.take()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.results().finished()
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Item<T>>> {
        let mut r = self.results();
        if matches!(r.buf.front(), Some(Some(_))) {
            r.base += 1;
            return Poll::Ready(r.buf.pop_front().flatten());
        }
        if r.finished() && r.buf.is_empty() {
            return Poll::Ready(None);
        }
        r.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn discard(&self) {
        let mut r = self.results();
        r.keep = false;
        r.base += r.buf.len() as u64;
        r.buf.clear();
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
}

impl<T> Group<T> {
    pub(crate) fn new(core: Arc<GroupCore<T>>, pool: Arc<Inner>) -> Self {
        Self { core, pool }
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

impl<T> Stream for Group<T> {
    type Item = Item<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.core.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.core.results();
        let ready = r.buf.iter().filter(|x| x.is_some()).count();
        let pending = (r.issued - r.delivered) as usize;
        if r.issuing_done {
            (ready, Some(ready + pending))
        } else {
            (ready, None)
        }
    }
}

impl<T> FusedStream for Group<T> {
    fn is_terminated(&self) -> bool {
        let r = self.core.results();
        r.finished() && r.buf.is_empty()
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

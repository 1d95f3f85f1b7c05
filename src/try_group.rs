//! `TryGroup`: a group of fallible items that stops at the first failure.

use crate::concurrency::Concurrency;
use crate::engine::results::Item;
use crate::error::{PoolError, TaskError};
use crate::group::Group;
use crate::id::TaskId;
use crate::stats::GroupSummary;
use futures_core::stream::{FusedStream, Stream};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a [`TryGroup`] stopped: its first failed item.
///
/// ```
/// use async_taskpool::{TaskError, TaskId, TryMapError};
/// let err: TryMapError<std::num::ParseIntError> = TryMapError::Task(TaskError::Cancelled { id: TaskId::new(3) });
/// assert_eq!(err.to_string(), "a try_map item failed: task 3 was cancelled");
/// let err = TryMapError::Item("bad input");
/// assert_eq!(err.into_item(), Some("bad input"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TryMapError<E> {
    /// The item's future returned this `Err`.
    #[error("a try_map item returned an error: {0}")]
    Item(E),
    /// The item failed as a task: it panicked, timed out, was cancelled (by id, or its group)
    /// or shed.
    #[error("a try_map item failed: {0}")]
    Task(#[source] TaskError),
}

impl<E> TryMapError<E> {
    /// The item's own error, if that is what stopped the group.
    pub fn into_item(self) -> Option<E> {
        match self {
            Self::Item(e) => Some(e),
            Self::Task(_) => None,
        }
    }
}

/// Whether an item's outcome stops its `try_map` group: any failure.
pub(crate) fn fails<T, E>(res: &Item<Result<T, E>>) -> bool {
    !matches!(res, Ok(Ok(_)))
}

/// The items of one [`try_map`](crate::TaskPool::try_map), whose futures return `Result`s,
/// and a [`Stream`] of their outputs that stops at the first failure.
///
/// At the first item that fails (returns `Err`, panics, times out, is cancelled or is shed),
/// the group stops at once, whether or not anyone reads the stream: it pulls no more items
/// and cancels those running. The stream yields the outputs of items that succeeded, then
/// that failure as `Err`, then ends; items cancelled because of it are not yielded. So
/// [`TryStreamExt::try_collect`](https://docs.rs/futures/latest/futures/stream/trait.TryStreamExt.html#method.try_collect)
/// gives `Ok(all outputs)` or the error that stopped the group, and `?` on a read does what
/// it reads like.
///
/// Results come in input order (by default) or completion order
/// ([`unordered`](crate::GroupBuilder::unordered)). In input order, an item before the one
/// that stopped the group may itself fail before it is cancelled: then the stream yields the
/// first failure *in input order*.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool, TryMapError};
/// use futures::TryStreamExt;
///
/// let pool = TaskPool::builder(TokioSpawner::current()).limit(4).build()?;
/// let ok = pool.try_map(["1", "2", "3"], 2, |s| async move { s.parse::<u32>() })?;
/// assert_eq!(ok.try_collect::<Vec<_>>().await.unwrap(), [1, 2, 3]);
///
/// let bad = pool.try_map(["1", "x", "3"], 2, |s| async move { s.parse::<u32>() })?;
/// match bad.try_collect::<Vec<_>>().await {
///     Err(TryMapError::Item(e)) => assert_eq!(e.to_string(), "invalid digit found in string"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
pub struct TryGroup<T, E> {
    group: Group<Result<T, E>>,
    /// The stream yielded its failure (or ended).
    done: bool,
}

impl<T, E> TryGroup<T, E> {
    pub(crate) fn new(group: Group<Result<T, E>>) -> Self {
        Self { group, done: false }
    }

    /// The group's name. See [`Group::name`].
    pub fn name(&self) -> &str {
        self.group.name()
    }

    /// Ids of the items queued or running now. See [`Group::ids`].
    pub fn ids(&self) -> Vec<TaskId> {
        self.group.ids()
    }

    /// Cancels the group. See [`Group::cancel`].
    pub fn cancel(&self) -> Result<(), PoolError> {
        self.group.cancel()
    }

    /// Whether every item has ended and no more will start.
    pub fn is_finished(&self) -> bool {
        self.group.is_finished()
    }

    /// How the items that ended so far ended. See [`Group::summary`].
    pub fn summary(&self) -> GroupSummary {
        self.group.summary()
    }

    /// The id of the item whose failure stopped the group, if one did.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let group = pool.try_map([Ok(1), Err("no")], 1, |r| async move { r })?;
    /// let stopped = loop {
    ///     if let Some(id) = group.stopped_by() { break id; }
    ///     tokio::task::yield_now().await;
    /// };
    /// assert_eq!(stopped.get(), 1);
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn stopped_by(&self) -> Option<TaskId> {
        self.group.stopped_by()
    }

    /// How many items may run at once. See [`Group::num_concurrent`].
    pub fn num_concurrent(&self) -> Concurrency {
        self.group.num_concurrent()
    }

    /// Changes how many items may run at once. See [`Group::set_num_concurrent`].
    pub fn set_num_concurrent(&self, num: impl Into<Concurrency>) -> Result<(), PoolError> {
        self.group.set_num_concurrent(num)
    }

    /// Waits until every item has ended, discarding outputs. See [`Group::join`].
    pub async fn join(self) -> Result<GroupSummary, PoolError> {
        self.group.join().await
    }
}

impl<T, E> Unpin for TryGroup<T, E> {}

impl<T, E> Stream for TryGroup<T, E> {
    type Item = Result<T, TryMapError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let item = match Pin::new(&mut this.group).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(item)) => item,
            };
            let out = match item {
                Ok(Ok(v)) => return Poll::Ready(Some(Ok(v))),
                Ok(Err(e)) => TryMapError::Item(e),
                Err(TaskError::Cancelled { id })
                    if this.group.stopped_by().is_some_and(|s| s != id) =>
                {
                    // Cancelled because another item stopped the group: not a failure of
                    // its own.
                    continue;
                }
                Err(e) => TryMapError::Task(e),
            };
            this.done = true;
            return Poll::Ready(Some(Err(out)));
        }
    }
}

impl<T, E> FusedStream for TryGroup<T, E> {
    fn is_terminated(&self) -> bool {
        self.done || self.group.is_terminated()
    }
}

impl<T, E> fmt::Debug for TryGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryGroup")
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .field("stopped_by", &self.stopped_by())
            .finish()
    }
}

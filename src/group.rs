//! `Group`: the items of one `apply`, `map` or `start`, and a stream of their results.

use crate::concurrency::Concurrency;
use crate::engine::capacity::shrink_after_burst;
use crate::engine::core::Core;
use crate::engine::current::{current_task_id, inside_pool};
use crate::engine::lanes::GroupKey;
use crate::engine::map::Launched;
use crate::engine::results::{Item, Results, Slot};
use crate::engine::settings::GroupSettings;
use crate::engine::user::{drop_value, Whose};
use crate::error::PoolError;
use crate::id::TaskId;
use crate::policy::Quota;
use crate::stats::GroupSummary;
use futures_core::stream::{FusedStream, Stream};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The tasks started by one [`apply`](crate::TaskPool::apply), [`map`](crate::TaskPool::map)
/// or [`start`](crate::SimpleTaskPool::start), and a [`Stream`] of their results.
///
/// Results come in input order from `map` and `map_stream`, and in completion order from
/// `map_unordered`, groups built `.unordered()`, `apply` and `start`. Each is `Ok(output)` or
/// the item's [`TaskError`](crate::TaskError).
///
/// Guarantees:
/// - the stream ends after the last item's result, and only once no item runs or waits;
/// - results are kept while the `Group` lives, so read them or drop the `Group` (or
///   [`join`](Group::join) it, which discards them): a group you hold but never read keeps
///   every result in memory;
/// - dropping the `Group` detaches: its items keep running and their results are dropped
///   (unless it was built with [`cancel_on_drop`](crate::GroupBuilder::cancel_on_drop):
///   then dropping it cancels the items that have not ended);
/// - the `Group` acts on its own group only: once that group is cancelled or flushed, a new
///   group may take its name, and this handle's [`cancel`](Group::cancel) reports
///   [`PoolError::GroupEnded`] instead of touching it.
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
    key: GroupKey,
    name: Arc<str>,
    results: Arc<Results<T>>,
    core: Arc<Core>,
    /// The cap last set through this handle (or at launch), as `Concurrency::cap`.
    num_concurrent: AtomicUsize,
    /// The priority and weight last set through this handle (or at launch).
    priority: AtomicI32,
    weight: AtomicU32,
    /// Dropping the handle cancels the group's unfinished items.
    cancel_on_drop: bool,
    /// Results taken from the core in one batch, handed out without locking.
    ready: VecDeque<Slot<T>>,
}

impl<T> Group<T> {
    pub(crate) fn new(launched: Launched<T>, core: Arc<Core>) -> Self {
        Self {
            key: launched.key,
            name: launched.name,
            results: launched.results,
            core,
            num_concurrent: AtomicUsize::new(launched.num_concurrent),
            priority: AtomicI32::new(launched.priority),
            weight: AtomicU32::new(launched.weight),
            cancel_on_drop: false,
            ready: VecDeque::new(),
        }
    }

    pub(crate) fn with_cancel_on_drop(mut self, yes: bool) -> Self {
        self.cancel_on_drop = yes;
        self
    }

    /// The item whose failure stopped a `try_map` group, if one did.
    pub(crate) fn stopped_by(&self) -> Option<TaskId> {
        self.results.stopped_by()
    }

    /// The group's name, given by the caller or generated (`apply-group-K`, `map-group-K`,
    /// `start-group-K`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ids of the group's items that are queued or running now. Ended items are forgotten at
    /// once (so a map over millions of items stays small), and items not yet pulled from the
    /// input have no id yet.
    pub fn ids(&self) -> Vec<TaskId> {
        self.core.group_ids(self.key)
    }

    /// Cancels the group: its running and queued items are cancelled and no further items are
    /// pulled from its input; its name is free again. [`PoolError::GroupEnded`] if the group
    /// was already cancelled, or finished and was flushed.
    pub fn cancel(&self) -> Result<(), PoolError> {
        self.core.cancel_group(self.key, &self.name)
    }

    /// How many of the group's items may run at once: the cap it was made with, or the last
    /// one set (by [`set_num_concurrent`](Self::set_num_concurrent), or by the group's name
    /// from the control server (feature `control`)).
    pub fn num_concurrent(&self) -> Concurrency {
        Concurrency::from_cap(self.settings().num_concurrent)
    }

    /// The pool's record of the group's settings, which a change by name also moves; once
    /// the pool has forgotten the group, the last one this handle saw.
    fn settings(&self) -> GroupSettings {
        match self.core.group_settings(self.key) {
            Some(now) => {
                self.num_concurrent
                    .store(now.num_concurrent, Ordering::Relaxed);
                self.priority.store(now.priority, Ordering::Relaxed);
                self.weight.store(now.weight, Ordering::Relaxed);
                now
            }
            None => GroupSettings {
                priority: self.priority.load(Ordering::Relaxed),
                weight: self.weight.load(Ordering::Relaxed),
                num_concurrent: self.num_concurrent.load(Ordering::Relaxed),
                // Forgotten by the pool: its limit no longer applies.
                rate: None,
            },
        }
    }

    /// Changes how many of the group's items may run at once, while it runs. Raising it
    /// starts more items at once (as far as the pool's limit allows); lowering it lets the
    /// items running finish and starts no new one until fewer than the new cap run.
    /// [`Concurrency::PoolLimit`] makes the group follow the pool's limit from now on.
    ///
    /// Errors with [`PoolError::InvalidLimit`] for 0, and [`PoolError::GroupEnded`] once the
    /// group was cancelled or flushed.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, Concurrency, TaskPool};
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(100).build()?;
    /// let (tx, rx) = futures::channel::oneshot::channel::<()>();
    /// let rx = futures::future::FutureExt::shared(rx);
    /// let group = pool.map(0..200, 50, move |_| { let rx = rx.clone(); async move { let _ = rx.await; } })?;
    /// # while pool.num_running() < 50 { tokio::task::yield_now().await; }
    /// assert_eq!(pool.num_running(), 50);
    /// group.set_num_concurrent(Concurrency::PoolLimit)?; // follow the pool: 100 now
    /// while pool.num_running() < 100 { tokio::task::yield_now().await; }
    /// assert!(group.set_num_concurrent(0).is_err());
    /// drop(tx);
    /// group.join().await?;
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn set_num_concurrent(&self, num: impl Into<Concurrency>) -> Result<(), PoolError> {
        let cap = num.into().cap();
        self.core.set_num_concurrent(self.key, &self.name, cap)?;
        self.num_concurrent.store(cap, Ordering::Relaxed);
        Ok(())
    }

    /// The group's priority: the one it was made with
    /// ([`GroupBuilder::priority`](crate::GroupBuilder::priority)) or last set (through this
    /// handle, or by the group's name from the control server (feature `control`)).
    pub fn priority(&self) -> i32 {
        self.settings().priority
    }

    /// Changes the group's priority while it runs: its items that wait for slots from now on
    /// start by the new one. Items running are not affected. [`PoolError::GroupEnded`] once
    /// the group was cancelled or flushed.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(2).build()?;
    /// let group = pool.map(0..10, 2, |x| async move { x })?;
    /// group.set_priority(7)?;
    /// assert_eq!(group.priority(), 7);
    /// # group.join().await?;
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn set_priority(&self, priority: i32) -> Result<(), PoolError> {
        self.core
            .set_group_priority(self.key, &self.name, priority)?;
        self.priority.store(priority, Ordering::Relaxed);
        Ok(())
    }

    /// The group's weight in the pool's shares: the one it was made with
    /// ([`GroupBuilder::weight`](crate::GroupBuilder::weight)) or last set (through this
    /// handle, or by the group's name from the control server (feature `control`)).
    pub fn weight(&self) -> u32 {
        self.settings().weight
    }

    /// Changes the group's weight while it runs (slots are given by it from now on; none is
    /// taken away). [`PoolError::InvalidLimit`] for 0, [`PoolError::GroupEnded`] once the
    /// group was cancelled or flushed.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(2).build()?;
    /// let group = pool.map(0..10, 2, |x| async move { x })?;
    /// group.set_weight(4)?;
    /// assert_eq!(group.weight(), 4);
    /// assert!(group.set_weight(0).is_err());
    /// # group.join().await?;
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// # }).unwrap(); }
    /// ```
    pub fn set_weight(&self, weight: u32) -> Result<(), PoolError> {
        self.core.set_group_weight(self.key, &self.name, weight)?;
        self.weight.store(weight, Ordering::Relaxed);
        Ok(())
    }

    /// The group's rate limit in force: the quota it was made with
    /// ([`GroupBuilder::rate_limit`](crate::GroupBuilder::rate_limit) or
    /// [`rate_limit_by`](crate::GroupBuilder::rate_limit_by)) or last set, or `None`. `None`
    /// too once the group ended or was shed (its limit no longer applies).
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let quota = Quota::per_second(50)?;
    /// let group = pool.build_group().rate_limit(quota).map(0..10, 2, |x| async move { x })?;
    /// assert_eq!(group.rate_limit(), Some(quota));
    /// # group.join().await?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn rate_limit(&self) -> Option<Quota> {
        self.core.group_rate(self.key)
    }

    /// Changes the group's rate limit while it runs (`None` lifts it): its next starts are
    /// judged by the new quota at once. Starts already made keep counting against it, so a
    /// stricter quota after a burst makes the next start wait longer, never sooner. A group
    /// made without a limit gets one; a keyed group ([`rate_limit_by`]) keeps its keys (each
    /// key's quota changes), and with `None` its items start as soon as they have a slot.
    /// [`PoolError::GroupEnded`] once the group was cancelled or flushed.
    ///
    /// [`rate_limit_by`]: crate::GroupBuilder::rate_limit_by
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// # use async_taskpool::{policy::Quota, runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let slow = Quota::per_minute(1)?.burst(1)?;
    /// let group = pool.build_group().rate_limit(slow).map(0..5, 5, |x| async move { x })?;
    /// group.set_rate_limit(None)?; // the other four start now, not one a minute
    /// assert_eq!(group.rate_limit(), None);
    /// assert_eq!(group.join().await?.completed, 5);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn set_rate_limit(&self, quota: Option<Quota>) -> Result<(), PoolError> {
        self.core.set_group_rate(self.key, &self.name, quota)
    }

    /// Whether every item has ended and no more will start.
    pub fn is_finished(&self) -> bool {
        self.results.is_finished()
    }

    /// How the items that ended so far ended (and, for a cancelled group, how many never
    /// started).
    pub fn summary(&self) -> GroupSummary {
        self.results.summary()
    }

    /// Waits until every item has ended, discarding results, and returns how they ended.
    ///
    /// Errors with [`PoolError::CalledFromOwnTask`] when called from one of the group's own
    /// items, which would wait for itself. Cancel-safe: dropping the future only stops waiting;
    /// the items carry on, and as `join` took the `Group`, its results are dropped, as when
    /// the `Group` itself is dropped.
    pub async fn join(mut self) -> Result<GroupSummary, PoolError> {
        if let Some(id) = current_task_id() {
            if inside_pool(self.core.serial) && self.core.in_group(id, self.key) {
                return Err(PoolError::CalledFromOwnTask {
                    pool: self.core.pool_name(),
                    method: "Group::join",
                });
            }
        }
        self.discard();
        self.results.wait_finished().await;
        Ok(self.summary())
    }

    /// Stops keeping results; drops those kept so far (outside every lock, guarded).
    fn discard(&mut self) {
        let kept = self.results.discard();
        let taken = std::mem::take(&mut self.ready);
        if !kept.is_empty() || !taken.is_empty() {
            let owner = Whose {
                pool: &self.core.name,
                task: None,
                what: "a group's unread results",
            };
            drop_value(kept, owner);
            drop_value(taken, owner);
        }
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
                // Slots taken from the results hold a result or a skipped item.
                if let Slot::Ready(item) = slot {
                    return Poll::Ready(Some(item));
                }
                continue;
            }
            match this.results.refill(cx, &mut this.ready) {
                Poll::Ready(true) => {}
                Poll::Ready(false) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (ready, pending, issuing_done) = self.results.counts();
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
        self.ready.is_empty() && self.results.is_terminated()
    }
}

impl<T> Drop for Group<T> {
    fn drop(&mut self) {
        self.discard();
        if self.cancel_on_drop && !self.results.is_finished() {
            // Refused only if the group was cancelled or forgotten already: nothing to stop.
            let _ = self.core.cancel_group(self.key, &self.name);
        }
    }
}

impl<T> fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &&*self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

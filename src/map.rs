//! `map` and `apply`: items pulled lazily by reusable workers.
//!
//! A group runs its items on up to `num_concurrent` workers. Each worker is one runtime task
//! holding one pool slot; it pulls an item, runs it as a task with its own id, cancellation,
//! panic isolation, timeout and result, and pulls the next, so a long map does not pay a runtime
//! spawn per item. A worker gives its slot back after an item whenever other work waits at the
//! head of the pool's queue (the group re-queues for a worker behind it, keeping the queue
//! FIFO-fair) or the limit shrank; the group's own queued worker claims at the head do not
//! count, as handing the slot to one of them would only swap one worker for another.
//!
//! A `Stream` input that is not ready is awaited by one worker at a time, which holds no slot
//! while it waits: a slow input never pins pool capacity.

use crate::abort::{TaskControl, WorkerAbort};
use crate::current::Marked;
use crate::group::GroupCore;
use crate::inner::{AfterItem, Inner, Outcome, WorkerSource};
use crate::run::{outcome_of, Run, RunOptions};
use crate::{TaskError, TaskId};
use async_taskpool_runtime::BoxFuture;
use futures_core::Stream;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

pub(crate) type Source<I> = Pin<Box<dyn Stream<Item = I> + Send>>;

/// Most workers queued at once: a huge `num_concurrent` keeps ramping as items are pulled,
/// rather than spawning a worker per item up front.
const MAX_BURST: usize = 1024;

pub(crate) struct MapEngine<I, F, T> {
    pool: Arc<Inner>,
    core: Arc<GroupCore<T>>,
    f: F,
    num_concurrent: usize,
    options: RunOptions,
    cancelled: AtomicBool,
    feed: Mutex<Feed<I>>,
}

struct Feed<I> {
    source: Option<Source<I>>,
    /// An item a waiting puller received, for the next worker with a slot.
    ahead: Option<I>,
    /// A slot-less worker is waiting on the input (with its waker once it polled).
    puller: Option<Option<Waker>>,
    /// Workers that hold (or are queued for) a slot: at most `num_concurrent`.
    workers: usize,
    /// Worker futures alive or queued, the puller included.
    live: usize,
    /// Worker claims queued in the pool and not yet started.
    claims_pending: usize,
    /// No more items will be pulled.
    settled: bool,
}

impl<I> Feed<I> {
    /// How many more workers to queue (0 if none); books them.
    ///
    /// Ramps straight to the number of items known to be left (exact for ranges and
    /// collections, up to `num_concurrent`), as asyncio-taskpool's `map` starts its tasks at
    /// once; an input of unknown length ramps one worker per pulled item.
    fn workers_wanted(&mut self, num_concurrent: usize) -> usize {
        let pulling = self.source.is_some() && self.puller.is_none();
        let has_input = self.ahead.is_some() || pulling;
        if self.settled || self.claims_pending > 0 || self.workers >= num_concurrent || !has_input {
            return 0;
        }
        let known_left = usize::from(self.ahead.is_some())
            + if pulling {
                self.source.as_ref().map_or(0, |s| s.size_hint().0)
            } else {
                0
            };
        let n = known_left.clamp(1, (num_concurrent - self.workers).min(MAX_BURST));
        self.claims_pending += n;
        self.workers += n;
        self.live += n;
        n
    }
}

enum Pulled<I> {
    /// An item to run, and how many more workers to queue beside this one.
    Item(TaskId, u64, I, usize),
    Exit,
}

struct WorkerState {
    fresh: bool,
    puller: bool,
    counted: bool,
    holds_slot: bool,
    /// The consumer's waker, taken by a result delivered during this poll. It is woken when
    /// the worker stops running (pending, yield, exit): one wake per batch of ready items
    /// instead of one per item, and never later than the end of the poll that made them.
    wake: Option<Waker>,
}

impl WorkerState {
    fn wake_consumer(&mut self) {
        if let Some(w) = self.wake.take() {
            w.wake();
        }
    }
}

/// Polls the input; a panicking input counts as ended (logged), so it cannot take the
/// worker down.
fn poll_source<I>(source: &mut Source<I>, cx: &mut Context<'_>, group: &str) -> Poll<Option<I>> {
    match catch_unwind(AssertUnwindSafe(|| source.as_mut().poll_next(cx))) {
        Ok(poll) => poll,
        Err(payload) => {
            let msg = crate::error::panic_message(&*payload);
            tracing::error!(
                group,
                "the input of group {group} panicked; no more items are pulled: {msg}"
            );
            Poll::Ready(None)
        }
    }
}

impl<I, F, T> MapEngine<I, F, T> {
    /// This group's identity in the pool's queue: the address its worker claims point to.
    fn address(&self) -> *const () {
        self as *const Self as *const ()
    }

    fn feed(&self) -> MutexGuard<'_, Feed<I>> {
        self.feed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the input as finished, under the feed lock.
    fn settle(&self, feed: &mut Feed<I>) {
        if std::mem::replace(&mut feed.settled, true) {
            return;
        }
        feed.source = None;
        feed.ahead = None;
        if let Some(Some(w)) = feed.puller.take() {
            w.wake();
        }
        self.core.close_issuing();
    }

    fn pull(&self, cx: &mut Context<'_>, w: &mut WorkerState) -> Poll<Pulled<I>> {
        let mut feed = self.feed();
        if std::mem::take(&mut w.fresh) {
            feed.claims_pending -= 1;
        }
        if w.puller {
            let Some(source) = feed.source.as_mut() else {
                return Poll::Ready(Pulled::Exit);
            };
            return match poll_source(source, cx, &self.core.name) {
                Poll::Ready(item) => {
                    // Hand the item to a worker with a slot; this puller's job is done.
                    feed.puller = None;
                    w.puller = false;
                    match item {
                        Some(item) => feed.ahead = Some(item),
                        None => self.settle(&mut feed),
                    }
                    Poll::Ready(Pulled::Exit)
                }
                Poll::Pending => {
                    feed.puller = Some(Some(cx.waker().clone()));
                    drop(feed);
                    w.wake_consumer();
                    Poll::Pending
                }
            };
        }
        let item = if let Some(item) = feed.ahead.take() {
            item
        } else if feed.puller.is_some() {
            return Poll::Ready(Pulled::Exit);
        } else {
            let Some(source) = feed.source.as_mut() else {
                return Poll::Ready(Pulled::Exit);
            };
            match poll_source(source, cx, &self.core.name) {
                Poll::Ready(Some(item)) => item,
                Poll::Ready(None) => {
                    self.settle(&mut feed);
                    return Poll::Ready(Pulled::Exit);
                }
                Poll::Pending => {
                    // Wait for the input without a slot, so it does not pin capacity.
                    feed.puller = Some(Some(cx.waker().clone()));
                    feed.workers -= 1;
                    drop(feed);
                    w.puller = true;
                    w.counted = false;
                    w.holds_slot = false;
                    self.pool.release_worker_slot();
                    w.wake_consumer();
                    return Poll::Pending;
                }
            }
        };
        // Sequence and id are taken under the feed lock, so both follow input order.
        let seq = self.core.issue();
        let id = self.pool.allocate_id();
        let more = feed.workers_wanted(self.num_concurrent);
        Poll::Ready(Pulled::Item(id, seq, item, more))
    }
}

impl<I, F, Fut> MapEngine<I, F, Fut::Output>
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    pub(crate) fn new(
        pool: Arc<Inner>,
        core: Arc<GroupCore<Fut::Output>>,
        source: Source<I>,
        num_concurrent: usize,
        f: F,
        options: RunOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            core,
            f,
            num_concurrent,
            options,
            cancelled: AtomicBool::new(false),
            feed: Mutex::new(Feed {
                source: Some(source),
                ahead: None,
                puller: None,
                workers: 0,
                live: 0,
                claims_pending: 0,
                settled: false,
            }),
        })
    }

    /// Asks the pool for a first worker.
    pub(crate) fn launch(self: &Arc<Self>) {
        let n = self.feed().workers_wanted(self.num_concurrent);
        self.pool.request_workers(self.clone(), n);
    }

    async fn work(self: Arc<Self>, mut w: WorkerGuard<I, F, Fut::Output>) {
        let abort = Arc::new(WorkerAbort::new(self.core.name.clone()));
        let mut ran = 0usize;
        loop {
            // Ready items would otherwise run back to back in one poll and starve the
            // executor's other tasks (the results' consumer among them).
            ran += 1;
            if ran % crate::task::RUN_BUDGET == 0 {
                w.state.wake_consumer();
                crate::task::yield_now().await;
            }
            let pulled = poll_fn(|cx| self.pull(cx, &mut w.state)).await;
            let Pulled::Item(id, seq, item, more) = pulled else {
                return;
            };
            self.pool.request_workers(self.clone(), more);
            self.pool.start_item(id, abort.clone());
            if self.cancelled.load(Ordering::Acquire) {
                abort.cancel(id);
            }
            let mut guard = ItemGuard {
                engine: &self,
                id,
                seq,
                armed: true,
            };
            // Calling `f` may itself panic: that is this item's panic, like one in its future.
            let res = match catch_unwind(AssertUnwindSafe(|| (self.f)(item))) {
                Ok(fut) => {
                    let mut run = pin!(Run::new(fut, &abort, &self.pool, id, self.options.timeout));
                    poll_fn(|cx| {
                        let poll = run.as_mut().poll(cx);
                        if poll.is_pending() {
                            w.state.wake_consumer();
                        }
                        poll
                    })
                    .await
                }
                Err(payload) => Err(TaskError::panicked(id, payload)),
            };
            let outcome = outcome_of(&res);
            let callbacks = self.options.callbacks.as_ref();
            if let Some(callbacks) = callbacks {
                // Free the slot before the callbacks, as single tasks do; this worker then
                // ends, and a fresh one (queued behind waiting work) takes the next item.
                self.pool.enter_callbacks(id);
                w.give_back_slot();
                w.state.wake_consumer();
                callbacks
                    .run(&self.pool, id, outcome == Outcome::Cancelled)
                    .await;
            }
            guard.armed = false;
            let state = &mut w.state;
            // A worker that freed its slot for the callbacks ends after them.
            let continuing = callbacks.is_none().then(|| self.address());
            let after = self.pool.retire(id, outcome, continuing, || {
                if let Some(waker) = self.core.deliver(seq, res) {
                    state.wake = Some(waker);
                }
                None
            });
            match after {
                _ if callbacks.is_some() => return,
                AfterItem::Yield => return,
                AfterItem::Continue => {}
                AfterItem::ContinueInPlaceOfClaim => {
                    // This worker stands in for the claim the pool just removed; the group
                    // cannot have stopped, as this worker still lives.
                    let stopped = self.claim_dropped();
                    debug_assert!(!stopped);
                }
            }
        }
    }
}

/// Every way a worker ends (return, runtime drop, refusal to spawn) goes through its drop.
struct WorkerGuard<I, F, T> {
    engine: Arc<MapEngine<I, F, T>>,
    source: Arc<dyn WorkerSource>,
    state: WorkerState,
}

impl<I, F, T> WorkerGuard<I, F, T> {
    fn give_back_slot(&mut self) {
        if std::mem::take(&mut self.state.counted) {
            self.engine.feed().workers -= 1;
        }
        if std::mem::take(&mut self.state.holds_slot) {
            self.engine.pool.release_worker_slot();
        }
    }
}

impl<I, F, T> Drop for WorkerGuard<I, F, T> {
    fn drop(&mut self) {
        self.state.wake_consumer();
        let e = &self.engine;
        let (want, stopped) = {
            let mut feed = e.feed();
            if self.state.fresh {
                // Dropped before its first poll: the runtime refused it or is shutting down.
                // Stop the group rather than ask for a replacement that would meet the same fate.
                feed.claims_pending -= 1;
                e.settle(&mut feed);
            }
            if self.state.counted {
                feed.workers -= 1;
            }
            if self.state.puller {
                feed.puller = None;
            }
            feed.live -= 1;
            let want = feed.workers_wanted(e.num_concurrent);
            (want, feed.settled && feed.live == 0)
        };
        if self.state.holds_slot {
            e.pool.release_worker_slot();
        }
        e.pool.request_workers(self.source.clone(), want);
        if stopped {
            e.pool.group_stopped_pulling(&self.source);
        }
    }
}

/// Retires an item as cancelled if its worker is dropped before the item finished.
struct ItemGuard<'a, I, F, T> {
    engine: &'a MapEngine<I, F, T>,
    id: TaskId,
    seq: u64,
    armed: bool,
}

impl<I, F, T> Drop for ItemGuard<'_, I, F, T> {
    fn drop(&mut self) {
        if self.armed {
            let (id, seq, core) = (self.id, self.seq, &self.engine.core);
            self.engine.pool.retire(id, Outcome::Cancelled, None, || {
                core.deliver(seq, Err(TaskError::Cancelled { id }))
            });
        }
    }
}

impl<I, F, Fut> WorkerSource for MapEngine<I, F, Fut::Output>
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn worker(self: Arc<Self>) -> BoxFuture {
        let serial = self.pool.serial;
        // The guard exists before the first poll, so a worker dropped unpolled still settles.
        let guard = WorkerGuard {
            engine: self.clone(),
            source: self.clone(),
            state: WorkerState {
                fresh: true,
                puller: false,
                counted: true,
                holds_slot: true,
                wake: None,
            },
        };
        Box::pin(Marked::new(self.work(guard), serial, u64::MAX))
    }

    fn stop_pulling(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.settle(&mut self.feed());
    }

    fn claim_dropped(&self) -> bool {
        let mut feed = self.feed();
        feed.claims_pending -= 1;
        feed.workers -= 1;
        feed.live -= 1;
        feed.settled && feed.live == 0
    }
}

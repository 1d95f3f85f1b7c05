//! A group's results: kept in input or completion order for the group's stream, and counted
//! by outcome for its summary.

use super::capacity::shrink_after_burst;
use super::core::Outcome;
use crate::error::TaskError;
use crate::stats::GroupSummary;
use crate::sync::lock::{lock, Locked, Rank};
use event_listener::Event;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub(crate) type Item<T> = Result<T, TaskError>;

/// A place in a group's results.
pub(crate) enum Slot<T> {
    /// Not delivered yet (input order: an earlier item may end after a later one).
    Waiting,
    Ready(Item<T>),
    /// An item pulled from the input that never started (its group was cancelled): there is
    /// no result, the stream passes over it.
    Skipped,
}

/// A group's results, kept while someone holds the `Group`.
pub(crate) struct Results<T> {
    inner: Mutex<Inner<T>>,
    /// Sequence numbers handed out, in input order. Written only by the worker that holds the
    /// group's input (one at a time), read under `inner` once `issuing_done` is seen.
    issued: AtomicU64,
    finished: Event,
    /// The item whose failure stopped a `try_map` group (its id plus 1; 0: none).
    stopped_by: AtomicU64,
}

struct Inner<T> {
    ordered: bool,
    keep: bool,
    /// Sequence number of `buf[0]` (ordered mode).
    base: u64,
    buf: VecDeque<Slot<T>>,
    delivered: u64,
    issuing_done: bool,
    waker: Option<Waker>,
    summary: GroupSummary,
}

impl<T> Inner<T> {
    fn finished(&self, issued: &AtomicU64) -> bool {
        self.issuing_done && self.delivered == issued.load(Ordering::Acquire)
    }
}

impl<T> Results<T> {
    pub(crate) fn new(ordered: bool) -> Self {
        Self {
            inner: Mutex::new(Inner {
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
            stopped_by: AtomicU64::new(0),
        }
    }

    /// Results of exactly `count` items, known up front (their ids are reserved), in
    /// completion order.
    pub(crate) fn fixed(count: u64) -> Self {
        let results = Self::new(false);
        results.issued.store(count, Ordering::Release);
        results.inner().issuing_done = true;
        results
    }

    fn inner(&self) -> Locked<'_, Inner<T>> {
        lock(&self.inner, Rank::Leaf)
    }

    /// Hands out the next sequence number (input order).
    pub(crate) fn issue(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::AcqRel)
    }

    /// Hands out `n` consecutive sequence numbers; returns the first.
    pub(crate) fn issue_many(&self, n: u64) -> u64 {
        self.issued.fetch_add(n, Ordering::AcqRel)
    }

    /// No more items will be issued.
    pub(crate) fn close_issuing(&self) -> Option<Waker> {
        let mut r = self.inner();
        r.issuing_done = true;
        if !r.finished(&self.issued) {
            return None;
        }
        self.finished.notify(usize::MAX);
        r.waker.take()
    }

    /// Items that never started (the group was cancelled first), for the summary.
    pub(crate) fn add_not_started(&self, n: u64) {
        let mut r = self.inner();
        // A lower bound from a size hint, which may be `usize::MAX` (an endless input).
        r.summary.not_started = r.summary.not_started.saturating_add(n);
    }

    /// Items pulled from the input (sequence numbers issued) that will never start: they
    /// count as not started and the stream passes over their places.
    pub(crate) fn skip(&self, seqs: &[u64]) -> Option<Waker> {
        if seqs.is_empty() {
            return None;
        }
        let mut r = self.inner();
        r.summary.not_started = r.summary.not_started.saturating_add(seqs.len() as u64);
        r.delivered += seqs.len() as u64;
        if r.keep && r.ordered {
            for &seq in seqs {
                let idx = (seq - r.base) as usize;
                if r.buf.len() <= idx {
                    r.buf.resize_with(idx + 1, || Slot::Waiting);
                }
                r.buf[idx] = Slot::Skipped;
            }
        }
        if r.finished(&self.issued) {
            self.finished.notify(usize::MAX);
        }
        r.waker.take()
    }

    /// Stores item `seq`'s result; returns the stream's waker (to wake after unlocking), or
    /// the result itself if nobody keeps results (to drop after unlocking).
    pub(crate) fn deliver(&self, seq: u64, res: Item<T>) -> Result<Option<Waker>, Item<T>> {
        let mut r = self.inner();
        r.delivered += 1;
        let s = &mut r.summary;
        match Outcome::of(&res) {
            Outcome::Completed => s.completed += 1,
            Outcome::Cancelled => s.cancelled += 1,
            Outcome::Panicked => s.panicked += 1,
            Outcome::TimedOut => s.timed_out += 1,
            Outcome::Dropped => s.dropped += 1,
            Outcome::Shed => s.shed += 1,
        }
        if r.finished(&self.issued) {
            self.finished.notify(usize::MAX);
        }
        if !r.keep {
            return Err(res);
        }
        if r.ordered {
            let idx = (seq - r.base) as usize;
            if idx == r.buf.len() {
                // The usual case: results end in input order.
                r.buf.push_back(Slot::Ready(res));
            } else {
                if r.buf.len() <= idx {
                    r.buf.resize_with(idx + 1, || Slot::Waiting);
                }
                r.buf[idx] = Slot::Ready(res);
            }
        } else {
            r.buf.push_back(Slot::Ready(res));
        }
        Ok(r.waker.take())
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.inner().finished(&self.issued)
    }

    pub(crate) fn summary(&self) -> GroupSummary {
        self.inner().summary
    }

    /// Moves every result that can be handed out now into `out` (empty on entry), so the
    /// consumer takes the lock once per batch rather than once per item. `Ready(false)`: the
    /// stream has ended.
    pub(crate) fn refill(&self, cx: &mut Context<'_>, out: &mut VecDeque<Slot<T>>) -> Poll<bool> {
        let mut r = self.inner();
        let ready = if r.ordered {
            r.buf
                .iter()
                .take_while(|x| !matches!(x, Slot::Waiting))
                .count()
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

    /// Results delivered but not yet handed out, items issued but not yet ended, and whether
    /// issuing is over.
    pub(crate) fn counts(&self) -> (usize, usize, bool) {
        let r = self.inner();
        let ready = r.buf.iter().filter(|x| matches!(x, Slot::Ready(_))).count();
        let pending = (self.issued.load(Ordering::Acquire) - r.delivered) as usize;
        (ready, pending, r.issuing_done)
    }

    pub(crate) fn is_terminated(&self) -> bool {
        let r = self.inner();
        r.finished(&self.issued) && r.buf.is_empty()
    }

    /// Stops keeping results; returns those kept so far, for the caller to drop after
    /// unlocking.
    pub(crate) fn discard(&self) -> VecDeque<Slot<T>> {
        let mut r = self.inner();
        r.keep = false;
        r.base += r.buf.len() as u64;
        std::mem::take(&mut r.buf)
    }

    /// Item `id`'s failure stopped the group (recorded in the section that cancels it, so
    /// before any item it cancelled delivers).
    pub(crate) fn set_stopped_by(&self, id: crate::id::TaskId) {
        self.stopped_by.store(id.get() + 1, Ordering::Release);
    }

    /// The item whose failure stopped the group, if one did.
    pub(crate) fn stopped_by(&self) -> Option<crate::id::TaskId> {
        match self.stopped_by.load(Ordering::Acquire) {
            0 => None,
            n => Some(crate::id::TaskId::new(n - 1)),
        }
    }

    /// Waits until every item has ended.
    pub(crate) async fn wait_finished(&self) {
        loop {
            if self.is_finished() {
                return;
            }
            let listener = self.finished.listen();
            if self.is_finished() {
                return;
            }
            listener.await;
        }
    }
}

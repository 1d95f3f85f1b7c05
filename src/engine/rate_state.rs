//! The data of a group's rate limit (`GroupBuilder::rate_limit`, `rate_limit_by`) and of the
//! pool's (`PoolBuilder::rate_limit`), with their GCRA arithmetic: a leaf, so that a group's
//! state and the pool's can hold them. The steps that gate and ungate the group or the pool
//! in the pool's state are in `rate.rs`, whose notes say how the parts fit.

use super::timer::QueueTimer;
use crate::id::TaskId;
use crate::policy::{KeyedRateLimit, Quota, RateLimit};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// A key as the state knows it: a hash of the user's key (see the module's notes).
pub(crate) type KeyHash = u64;

/// The key of items whose key function panicked (they share one quota).
pub(crate) const PANICKED_KEY: KeyHash = 0;

/// Most items a keyed group sets aside (fewer if its `num_concurrent` is lower).
pub(crate) const MAX_ASIDE: usize = 64;

pub(super) enum Limit {
    /// No quota now (a keyed group whose limit was lifted: its items start at once).
    Off,
    Plain(RateLimit),
    Keyed(KeyedRateLimit<KeyHash>),
}

/// A group's rate limit, in its `GroupState`.
pub(crate) struct GroupRate {
    pub(super) limit: Limit,
    pub(super) keyed: bool,
    /// The latest instant a worker (or a timer) read from the runtime's clock.
    pub(super) now: Instant,
    /// Waiting for a token: the group takes no slot until `timer` fires.
    pub(super) gated: bool,
    /// The timer armed last; an older one that fires finds it replaced and does nothing.
    pub(super) timer: Option<Arc<QueueTimer>>,
    /// Keyed groups: the keys of the items in the group's queue (pulled ahead), front first.
    pub(super) keys: VecDeque<KeyHash>,
    /// Keyed groups: items set aside (registered, `Life::Waiting`), oldest first.
    pub(super) aside: VecDeque<(TaskId, KeyHash)>,
}

impl GroupRate {
    pub(crate) fn new(quota: Option<Quota>, keyed: bool, now: Instant) -> Self {
        let mut rate = GroupRate {
            limit: Limit::Off,
            keyed,
            now,
            gated: false,
            timer: None,
            keys: VecDeque::new(),
            aside: VecDeque::new(),
        };
        rate.set_quota(quota);
        rate
    }

    #[inline]
    pub(super) fn gated(&self) -> bool {
        self.gated
    }

    #[inline]
    pub(super) fn has_aside(&self) -> bool {
        !self.aside.is_empty()
    }

    pub(crate) fn quota(&self) -> Option<Quota> {
        match &self.limit {
            Limit::Off => None,
            Limit::Plain(l) => Some(l.quota()),
            Limit::Keyed(l) => Some(l.quota()),
        }
    }

    /// Changes the quota; the starts still owed under the old one are owed under the new.
    pub(super) fn set_quota(&mut self, quota: Option<Quota>) {
        let now = self.now;
        self.limit = match (std::mem::replace(&mut self.limit, Limit::Off), quota) {
            (_, None) => Limit::Off,
            (Limit::Plain(mut l), Some(q)) => {
                l.set_quota_at(q, now);
                Limit::Plain(l)
            }
            (Limit::Keyed(mut l), Some(q)) => {
                l.set_quota_at(q, now);
                Limit::Keyed(l)
            }
            (Limit::Off, Some(q)) if self.keyed => Limit::Keyed(KeyedRateLimit::new(q)),
            (Limit::Off, Some(q)) => Limit::Plain(RateLimit::new(q)),
        };
    }

    pub(super) fn observe(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Takes a token for `key` now, or says when one is due.
    pub(super) fn take(&mut self, key: KeyHash) -> Result<(), Instant> {
        let now = self.now;
        match &mut self.limit {
            Limit::Off => Ok(()),
            Limit::Plain(l) => l.try_acquire(now),
            Limit::Keyed(l) => l.try_acquire(&key, now),
        }
    }

    /// When a token for `key` is due (now, if one is).
    pub(super) fn due(&self, key: KeyHash) -> Instant {
        match &self.limit {
            Limit::Off => self.now,
            Limit::Plain(l) => l.available_at(self.now),
            Limit::Keyed(l) => l.available_at(&key, self.now),
        }
    }

    /// The earliest token due among the items set aside (and `also`).
    pub(super) fn earliest(&self, also: Option<KeyHash>) -> Instant {
        self.aside
            .iter()
            .map(|(_, k)| *k)
            .chain(also)
            .map(|k| self.due(k))
            .min()
            .unwrap_or(self.now)
    }

    /// The timer goes (the group ended): its waker, to wake once unlocked.
    pub(super) fn disarm(&mut self) -> Option<Waker> {
        self.gated = false;
        self.timer.take().and_then(|t| t.disarm_later())
    }
}

/// A timer to arm once unlocked: the group waits `wait` for its next token.
pub(crate) struct RateWait {
    pub(crate) timer: Arc<QueueTimer>,
    pub(crate) wait: Duration,
}

/// The pool's rate limit (`PoolBuilder::rate_limit`, `TaskPool::set_rate_limit`), in the
/// pool's `State`: every start of a loose task or a group's item takes one of its tokens.
pub(crate) struct PoolRate {
    pub(super) limit: RateLimit,
    /// The latest instant read from the runtime's clock (before a section, or by a timer).
    pub(super) now: Instant,
    /// The timer armed last (handed to a section's after-work), and the instant it fires
    /// at; an older one that fires finds it replaced and does nothing.
    pub(super) timer: Option<(Arc<QueueTimer>, Instant)>,
}

/// The pool's timer to arm once unlocked: it fires at `due`, when the pool's next token is;
/// `replaced` is the waker of the timer it replaces, to wake once unlocked.
pub(crate) struct PoolWait {
    pub(crate) timer: Arc<QueueTimer>,
    pub(crate) due: Instant,
    pub(crate) replaced: Option<Waker>,
}

impl PoolRate {
    pub(crate) fn new(quota: Quota, now: Instant) -> Self {
        PoolRate {
            limit: RateLimit::new(quota),
            now,
            timer: None,
        }
    }

    pub(crate) fn quota(&self) -> Quota {
        self.limit.quota()
    }

    pub(super) fn observe(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Changes the quota; the starts still owed under the old one are owed under the new.
    pub(super) fn set_quota(&mut self, quota: Quota) {
        self.limit.set_quota_at(quota, self.now);
    }

    /// When the next token is due after `promised` more are taken (now, if one is).
    pub(super) fn due_after(&self, promised: usize) -> Instant {
        if promised == 0 {
            return self.limit.available_at(self.now);
        }
        // Each promised start takes its token now (each was due when promised).
        let mut limit = self.limit.clone();
        for _ in 0..promised {
            if limit.try_acquire(self.now).is_err() {
                break;
            }
        }
        limit.available_at(self.now)
    }

    /// Takes a token now, or says when one is due.
    #[inline]
    pub(super) fn take(&mut self) -> Result<(), Instant> {
        self.limit.try_acquire(self.now)
    }

    /// A timer that fires at `due`, to arm once unlocked, unless one armed already fires
    /// no later (then `None`). It replaces the one armed before, which is disarmed.
    pub(super) fn arm(&mut self, due: Instant) -> Option<PoolWait> {
        if self.timer.as_ref().is_some_and(|(_, at)| *at <= due) {
            return None;
        }
        let replaced = self.timer.take().and_then(|(t, _)| t.disarm_later());
        let timer = Arc::new(QueueTimer::default());
        self.timer = Some((timer.clone(), due));
        Some(PoolWait {
            timer,
            due,
            replaced,
        })
    }

    /// The timer goes (the quota was lifted): its waker, to wake once unlocked.
    pub(super) fn disarm(&mut self) -> Option<Waker> {
        self.timer.take().and_then(|(t, _)| t.disarm_later())
    }
}

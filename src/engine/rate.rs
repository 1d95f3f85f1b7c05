//! Rate limits on groups (`GroupBuilder::rate_limit`, `rate_limit_by`): GCRA quotas on when a
//! group's items start, apart from how many run at once.
//!
//! A token is taken when an item starts, in the section that gives it its id and its slot
//! (`next_item`): so starts, not pulls, are what the quota counts. The clock is the pool's
//! runtime's ([`Spawner::now`]), read by the worker with no lock held just before that section
//! (only for groups with a limit) and kept in [`GroupRate`] (the latest instant seen).
//!
//! - **Items of a rate-limited group go through its queue** of items pulled ahead: a worker
//!   pulls one item at a time (none while no token is due), brings it back into that queue,
//!   and takes it from there with its token. An item arriving on a pending input joins the
//!   queue too. So no item has an id before it may start, except those set aside (below).
//! - **Waiting holds no slot.** When the next item's token is not due, the group is *gated*:
//!   it wants no slot, its workers give theirs back as they reach it (to other lanes at once),
//!   and a timer on the pool's runtime ([`Spawner::sleep`], holding no slot) ungates it at the
//!   instant the token is due: the group then asks for a slot like any lane. Unlike
//!   `shed.rs`'s deadlines, the timer holds the pool: the group's items are work to do, and
//!   with no worker and no handle left nothing else would (a detached group would stop for
//!   good); cancelling or shedding the group disarms the timer, which lets go at once.
//! - **Keyed limits** (`rate_limit_by`): each key has its own GCRA state. The key function is
//!   the user's: a worker calls it on the item it pulled, with no lock held, and only a 64-bit
//!   hash of the key (SipHash, random per group) enters the state, so no key is held or dropped
//!   under a lock. An item whose key has no token is *set aside*: it gets its id (ids and
//!   ordered results follow input order) and waits, registered and cancellable, holding no
//!   slot, while the worker goes on with items whose keys are ready. Set-aside items start,
//!   oldest first, as soon as their keys' tokens are due. At most `min(num_concurrent,
//!   MAX_ASIDE)` items are set aside per group; beyond that the group waits for the earliest
//!   token due.
//! - **Ends.** Cancelling the group (or `try_map`'s stop, or `cancel_on_drop`), or cancelling
//!   a set-aside item by id, ends set-aside items at once as cancelled; the group's deadline
//!   (`max_queue_wait`) sheds them at once and lifts the limit (shed items take no token).
//!   Each runs its callbacks and delivers its result, in a job holding no slot
//!   (`GroupDriver::end_aside`). `join` waits for them: they count as live items.
//!
//! # The pool's rate limit
//!
//! `PoolBuilder::rate_limit` / `TaskPool::set_rate_limit` ([`PoolRate`], in the state) use
//! the same two parts for the whole pool: a gate, and one weak timer.
//!
//! - **Every start takes a pool token**, in the section that starts it: a loose task
//!   starting at once (`Core::submit`) or leaving its lane (`start_turn`), a worker's item
//!   (`next_rated`, beside the group's own token: an item starts with both), a waiting
//!   worker's item (`start_turn`). A nested `exec` (`Seat::Nested`) takes none: it runs in
//!   its caller's slot, as part of the caller's work, which took its token when it started.
//!   A retried task's attempts each take one (each attempt starts again).
//! - **The clock.** While the pool has a quota, every section reads the runtime's clock
//!   first, with no lock held (`Core::section`, `Core::rate_clock`; the flag
//!   `Core::pool_rated` is one relaxed load without a quota), so a token is taken at the
//!   instant of its start.
//! - **Every group goes through its queue** while the pool has a quota: a group without a
//!   quota of its own gets a [`GroupRate`] with none (`Limit::Off`), so its items start one
//!   by one in `next_rated`, where both tokens are taken, and never in a section with no
//!   token check (`item_pulled`, `item_arrived`). Lifting the pool's quota takes those away.
//! - **The gate.** While no token is due (`pool_due`): no lane gets a turn (`grant` stops,
//!   `next_for_slot` gives its slot back, `after_item` lets its worker leave rather than hold
//!   its slot, `next_rated` gives nothing) and `submit` queues (`try_spawn` refuses with
//!   `PoolError::RateLimited`). Nothing is stored for it: it is judged again from the GCRA
//!   state and the clock each time. So waiting holds no slot.
//! - **The timer.** The pool has at most one timer live ([`Spawner::sleep`], holding the
//!   pool, as a group's rate timer does: work waiting for a token still runs when every
//!   handle is gone). A step with the section's after-work that finds no token due
//!   (`pool_held_after`: `grant`, `next_for_slot`, `after_item`) asks for one at the instant
//!   one is due (`PoolRate::arm`: kept if one armed already fires no later, else it replaces
//!   it), armed once unlocked (`After`). Steps without one (`next_rated`, `submit`) only
//!   decline: the worker goes on to `after_item`, `submit` to a section that grants. When the
//!   timer fires, `grant` gives the free slots out again.
//! - **Promised tokens.** `grant` hands a group's new worker its slot before the worker takes
//!   its item's token (next section): it counts such workers, and gives no more slots than
//!   tokens are due counting them, so a burst of 1 does not start a worker per free slot.
//!   A worker that ends up starting nothing gives its slot back through `after_item`, which
//!   grants again.
//!
//! [`Spawner::now`]: async_taskpool_runtime::Spawner::now
//! [`Spawner::sleep`]: async_taskpool_runtime::Spawner::sleep

use super::core::{After, Core, Entry, Input, Life, Outcome, Seat, Start, State, TaskControl};
use super::groups::{AfterItem, Pull, SizeHint, MAX_RAMP};
use super::lanes::{GroupKey, Lane};
use super::rate_state::{GroupRate, KeyHash, Limit, PoolRate, PoolWait, RateWait, MAX_ASIDE};
use super::timer::QueueTimer;
use super::user::Held;
use crate::id::TaskId;
use crate::policy::Quota;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

/// The control of a set-aside item: nothing runs to be told; a cancel ends it from the state.
struct AsideControl;

impl TaskControl for AsideControl {
    fn cancel(&self, _id: TaskId) -> Option<Waker> {
        None
    }
}

impl State {
    /// A worker of group `key` read the runtime's clock before this section.
    #[inline(always)]
    pub(crate) fn observe_now(&mut self, key: GroupKey, now: Option<Instant>) {
        if let Some(now) = now {
            self.observe_at(key, now);
        }
    }

    #[cold]
    fn observe_at(&mut self, key: GroupKey, now: Instant) {
        if let Some(rate) = self.groups.get_mut(key).and_then(|g| g.rate.as_deref_mut()) {
            rate.observe(now);
        }
    }

    /// Gives group `key` a rate limit (at launch).
    pub(crate) fn rate_group(&mut self, key: GroupKey, rate: GroupRate) {
        if let Some(g) = self.groups.get_mut(key) {
            g.rate = Some(Box::new(rate));
        }
    }

    /// `next_item` for a group with a rate limit (not shed): a set-aside item whose key has a
    /// token, the item pulled ahead if it has one (or set aside), the input to pull one item
    /// from, or a wait for the earliest token due.
    #[inline(never)]
    pub(super) fn next_rated(&mut self, key: GroupKey, control: &Arc<dyn TaskControl>) -> Pull {
        if self.pool_rate.is_some() && self.pool_due(0).is_some() {
            // The pool has no token due: the worker gives its slot back (`after_item`, which
            // arms the pool's timer).
            return Pull::Nothing;
        }
        let g = self.groups.get_mut(key).expect("checked by next_item");
        let cap = g.num_concurrent.min(MAX_ASIDE);
        let ahead = g.ahead > 0;
        let rate = g.rate.as_deref_mut().expect("checked by next_item");
        if rate.gated {
            return Pull::Nothing;
        }
        // Set-aside items first: they are older than anything still in the queue.
        let ready = (0..rate.aside.len()).find(|&i| rate.take(rate.aside[i].1).is_ok());
        if let Some(i) = ready {
            let (id, _) = rate.aside.remove(i).expect("found");
            take_pool(&mut self.pool_rate);
            self.start_aside(key, id, control);
            return Pull::Aside(id);
        }
        if ahead {
            let k = if rate.keyed {
                *rate.keys.front().expect("a key per queued item")
            } else {
                0
            };
            return match rate.take(k) {
                Ok(()) => {
                    if rate.keyed {
                        rate.keys.pop_front();
                    }
                    g.ahead -= 1;
                    take_pool(&mut self.pool_rate);
                    let id = self.allocate_id();
                    self.insert_item(id, control.clone(), key);
                    Pull::Ahead(id)
                }
                Err(_) if rate.keyed && rate.aside.len() < cap => {
                    rate.keys.pop_front();
                    g.ahead -= 1;
                    let id = self.allocate_id();
                    self.set_aside(key, id, k);
                    Pull::SetAside(id)
                }
                Err(_) => {
                    let due = rate.earliest(Some(k));
                    gate(rate, due)
                }
            };
        }
        match std::mem::replace(&mut g.input, Input::Pulling) {
            Input::Idle(source) => {
                // Pull only what may start or be set aside: the input stays lazy.
                let room = if rate.keyed {
                    rate.aside.len() < cap
                } else {
                    rate.due(0) <= rate.now
                };
                if room {
                    return Pull::Source(source.into_inner(), 1);
                }
                g.input = Input::Idle(source);
                let due = if rate.keyed {
                    rate.earliest(None)
                } else {
                    rate.due(0)
                };
                gate(rate, due)
            }
            Input::Reserved(r) => {
                g.input = Input::Reserved(r);
                if let Err(due) = rate.take(0) {
                    return gate(rate, due);
                }
                match self.take_reserved(key) {
                    Some(id) => {
                        take_pool(&mut self.pool_rate);
                        self.insert_item(id, control.clone(), key);
                        Pull::Reserved(id)
                    }
                    None => Pull::Nothing,
                }
            }
            Input::Pulling => Pull::Busy,
            other => {
                // Nothing more to pull for now: wait for the set-aside items' tokens.
                g.input = other;
                if rate.aside.is_empty() {
                    Pull::Nothing
                } else {
                    let due = rate.earliest(None);
                    gate(rate, due)
                }
            }
        }
    }

    /// `next_rated` for a group with retried items waiting for their next attempt: each
    /// attempt takes a token of its key, as a first one does. The oldest requeued item whose
    /// key has a token runs first; otherwise the group's other items go on as usual, and a
    /// group that would wait (or has nothing else) waits no longer than the earliest token due
    /// to a requeued item.
    #[cold]
    pub(super) fn next_rated_or_requeued(
        &mut self,
        key: GroupKey,
        control: &Arc<dyn TaskControl>,
    ) -> Pull {
        let g = self.groups.get_mut(key).expect("checked by next_item");
        let rate = g.rate.as_deref_mut().expect("checked by next_item");
        if rate.gated {
            return Pull::Nothing;
        }
        if let Some(id) = g.requeued.take_first(|k| rate.take(k).is_ok()) {
            return self.start_requeued(key, id, control);
        }
        let pull = self.next_rated(key, control);
        let Some(g) = self.groups.get_mut(key) else {
            return pull;
        };
        let (Some(rate), false) = (g.rate.as_deref_mut(), g.requeued.is_empty()) else {
            return pull;
        };
        let due = g
            .requeued
            .keys()
            .map(|k| rate.due(k))
            .min()
            .unwrap_or(rate.now);
        let wait = due.saturating_duration_since(rate.now);
        match pull {
            Pull::Wait(mut w) => {
                w.wait = w.wait.min(wait);
                Pull::Wait(w)
            }
            Pull::Nothing if !rate.gated => gate(rate, due),
            other => other,
        }
    }

    /// A set-aside item of group `key` got its token: it runs now, on the worker whose
    /// `control` cancels it.
    fn start_aside(&mut self, key: GroupKey, id: TaskId, control: &Arc<dyn TaskControl>) {
        let Some(e) = self.table.get_mut(id.get()) else {
            return;
        };
        let old = std::mem::replace(&mut e.control, Held::new(control.clone()));
        // Our own `AsideControl`, not a user value: dropped here.
        drop(old.into_inner());
        e.life = Life::Running(Seat::Worker);
        self.waiting_items -= 1;
        self.running += 1;
        self.time_started(id, Some(key));
    }

    /// The item at the front of group `key`'s queue waits for its key's token, set aside
    /// under `id`: registered (cancellable), holding no slot.
    fn set_aside(&mut self, key: GroupKey, id: TaskId, k: KeyHash) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        g.items_live += 1;
        if let Some(rate) = g.rate.as_deref_mut() {
            rate.aside.push_back((id, k));
        }
        self.waiting_items += 1;
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(Arc::new(AsideControl)),
                life: Life::Waiting,
                cancel_requested: false,
                group: Some(key),
            },
        );
        self.time_queued(id);
    }

    /// A worker of a rate-limited group pulled `pulled` items (with these keys, for a keyed
    /// group): they join the group's queue, to start with their tokens.
    pub(super) fn queue_rated(
        &mut self,
        key: GroupKey,
        pulled: usize,
        hint: SizeHint,
        keys: &[KeyHash],
    ) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        g.ahead += pulled as u64;
        // Workers it can use: one per live or queued item and per item its input says is
        // left, ramping as in `item_pulled` (a rate limit caps starts, not concurrency).
        let more = match hint.upper {
            Some(0) => 0,
            _ => hint.lower.clamp(1, MAX_RAMP as u64),
        };
        let useful = (g.items_live as u64 + g.ahead).saturating_add(more);
        let ramp = g.workers.saturating_add(MAX_RAMP) as u64;
        g.target = g.target.max(useful.min(ramp) as usize);
        if let Some(rate) = g.rate.as_deref_mut() {
            if rate.keyed {
                debug_assert_eq!(keys.len(), pulled);
                rate.keys.extend(keys.iter().copied());
                // A new key may be ready where the others were not.
                rate.gated = false;
            }
        }
        self.join_turns(key);
    }

    /// Group `key`'s rate timer fired at `now`: the group asks for slots again.
    pub(crate) fn rate_due(
        &mut self,
        key: GroupKey,
        timer: &Arc<QueueTimer>,
        now: Instant,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let Some(rate) = self.groups.get_mut(key).and_then(|g| g.rate.as_deref_mut()) else {
            return;
        };
        if !rate.timer.as_ref().is_some_and(|t| Arc::ptr_eq(t, timer)) {
            return;
        }
        rate.timer = None;
        rate.gated = false;
        rate.observe(now);
        self.join_turns(key);
        self.grant(core, after);
    }

    /// Sets (or lifts) group `key`'s quota at `now`; the group asks for slots again at once
    /// (its next item is judged by the new quota).
    pub(crate) fn set_group_rate(
        &mut self,
        key: GroupKey,
        quota: Option<Quota>,
        now: Instant,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.shed || g.settled {
            return;
        }
        // While the pool has a quota, the group keeps a rate with none (see the notes).
        let pool_rated = self.pool_rate.is_some();
        match (g.rate.as_deref_mut(), quota) {
            (None, None) => return,
            (Some(rate), None) if !rate.keyed && !pool_rated => {
                let mut rate = g.rate.take().expect("matched");
                after.wake(rate.disarm());
            }
            (Some(rate), quota) => {
                rate.observe(now);
                rate.set_quota(quota);
                rate.gated = false;
            }
            (None, Some(q)) => {
                g.rate = Some(Box::new(GroupRate::new(Some(q), false, now)));
                if let Some(driver) = g.driver.as_ref() {
                    driver.set_rated();
                }
            }
        }
        self.join_turns(key);
        if self.has_room() {
            self.grant(core, after);
        }
    }

    /// Group `key` is over (settled), or its limit no longer applies (cancelled, shed): its
    /// timer goes. Set-aside items must have been ended first.
    pub(super) fn drop_rate(&mut self, key: GroupKey, after: &mut After) {
        if let Some(mut rate) = self.groups.get_mut(key).and_then(|g| g.rate.take()) {
            debug_assert!(rate.aside.is_empty());
            after.wake(rate.disarm());
        }
    }

    /// Ends every item group `key` set aside, at once, as `outcome` (the group was cancelled
    /// or shed): they leave the set and run their callbacks, without a slot.
    pub(super) fn end_aside(
        &mut self,
        key: GroupKey,
        outcome: Outcome,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let Some(rate) = self.groups.get_mut(key).and_then(|g| g.rate.as_deref_mut()) else {
            return;
        };
        if rate.aside.is_empty() {
            return;
        }
        let ids: Vec<TaskId> = rate.aside.drain(..).map(|(id, _)| id).collect();
        self.end_set_aside(key, ids, outcome, core, after);
    }

    /// Cancels item `id` if group `key` set it aside: it ends at once. Whether it was.
    pub(super) fn cancel_aside(
        &mut self,
        key: GroupKey,
        id: TaskId,
        core: &Arc<Core>,
        after: &mut After,
    ) -> bool {
        let Some(rate) = self.groups.get_mut(key).and_then(|g| g.rate.as_deref_mut()) else {
            return false;
        };
        let Some(place) = rate.aside.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        rate.aside.remove(place);
        self.end_set_aside(key, vec![id], Outcome::Cancelled, core, after);
        true
    }

    fn end_set_aside(
        &mut self,
        key: GroupKey,
        ids: Vec<TaskId>,
        outcome: Outcome,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        for id in &ids {
            self.enter_ending(*id);
        }
        let Some(driver) = self.groups.get(key).and_then(|g| g.driver.as_ref()) else {
            return;
        };
        let job = Arc::clone(driver).end_aside(core, ids, outcome);
        after.start(Start::Job(job), None);
        after.notify = true;
    }
}

/// Gates the group until `due`: a timer to arm once unlocked.
fn gate(rate: &mut GroupRate, due: Instant) -> Pull {
    rate.gated = true;
    let timer = Arc::new(QueueTimer::default());
    rate.timer = Some(timer.clone());
    Pull::Wait(RateWait {
        timer,
        wait: due.saturating_duration_since(rate.now),
    })
}

impl Core {
    /// Arms group `key`'s rate timer: at its end, the group asks for slots again.
    pub(crate) fn arm_rate_timer(self: &Arc<Self>, key: GroupKey, wait: RateWait) {
        let sleep = self.spawner.sleep(wait.wait);
        // The timer holds the pool, as a worker would: the group's items are work still to
        // do, and without a worker nothing else may hold the pool once its handles are gone
        // (a weak timer let the pool go, with the items never run). A cancel or shed of the
        // group disarms it, which lets go at once.
        spawn_rate_timer(
            Arc::clone(self),
            sleep,
            wait.timer,
            move |st, timer, now, c, after| st.rate_due(key, timer, now, c, after),
        );
    }

    /// Sets group `key`'s quota (a `Group` handle's own group).
    pub(crate) fn set_group_rate(
        self: &Arc<Self>,
        key: GroupKey,
        name: &str,
        quota: Option<Quota>,
    ) -> Result<(), crate::error::PoolError> {
        let now = self.spawner.now();
        self.tune_group(key, name, |st, core, after| {
            st.set_group_rate(key, quota, now, core, after)
        })
    }

    /// Group `key`'s quota in force.
    pub(crate) fn group_rate(&self, key: GroupKey) -> Option<Quota> {
        self.read(|st| {
            st.groups
                .get(key)
                .and_then(|g| g.rate.as_ref())
                .and_then(|r| r.quota())
        })
    }
}

/// A start takes a token of the pool's rate limit, if it has one (the section saw one due).
#[inline]
fn take_pool(pool: &mut Option<Box<PoolRate>>) {
    if let Some(rate) = pool.as_deref_mut() {
        let taken = rate.take();
        debug_assert!(taken.is_ok(), "a pool token was seen due in this section");
    }
}

// ----- the pool's rate limit (see the notes above) -----

impl State {
    /// A section read the runtime's clock before locking (the pool has a rate limit).
    #[cold]
    pub(crate) fn observe_pool(&mut self, now: Instant) {
        if let Some(rate) = self.pool_rate.as_deref_mut() {
            rate.observe(now);
        }
    }

    /// [`grant`](Self::grant) for a pool with a rate limit: as many starts as tokens are
    /// due. A group's new worker takes its token when it starts its item, a moment from
    /// now: such workers count as promised, so that a burst of 1 does not start a worker
    /// per free slot.
    #[cold]
    #[inline(never)]
    pub(crate) fn grant_rated(&mut self, core: &Arc<Core>, after: &mut After) {
        let mut promised = 0;
        while self.has_room() {
            let Some(lane) = self.lane_up(None) else {
                break;
            };
            if self.pool_held_after(promised, after) {
                break;
            }
            self.take_slot();
            if let Some(start) = self.start_turn(lane, core, after) {
                if matches!(lane.0, Lane::Group(_)) && matches!(start, Start::Job(_)) {
                    promised += 1;
                }
                let runner = self.idle_runner();
                after.start(start, runner);
            }
        }
    }

    /// A start takes a token of the pool's rate limit, if it has one (the caller saw one due).
    #[inline]
    pub(crate) fn take_pool_token(&mut self) {
        take_pool(&mut self.pool_rate);
    }

    /// `after_item` in a pool with a rate limit and no token due: the worker of group `key`
    /// gives its slot back and leaves (no lane gets it). `None` if a token is due, or nobody
    /// wants one, or the group is cancelled, or shed with items left (they take no token:
    /// its worker goes on through them).
    #[cold]
    #[inline(never)]
    pub(super) fn leave_for_pool_token(
        &mut self,
        key: GroupKey,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<super::core::Inbox>>,
    ) -> Option<AfterItem> {
        let (has_input, cancelled, shed) = match self.groups.get(key) {
            Some(g) => (
                g.has_input() && g.workers <= g.num_concurrent && !g.rate_gated(),
                g.cancelled,
                g.shed,
            ),
            None => (false, true, false),
        };
        if cancelled || (shed && has_input) {
            return None;
        }
        if !(has_input || self.anything_waits()) || !self.pool_held_after(0, after) {
            return None;
        }
        self.leave_group_slot(key, after);
        self.free_slot();
        self.grant(core, after);
        Some(AfterItem::Leave(self.park_or_end(spare)))
    }

    /// When the pool's next rate token is due after `promised` more starts take theirs, if
    /// not now.
    #[cold]
    pub(crate) fn pool_due(&self, promised: usize) -> Option<Instant> {
        let rate = self.pool_rate.as_deref()?;
        let due = rate.due_after(promised);
        (due > rate.now).then_some(due)
    }

    /// Whether the pool's rate limit holds every start back now (no token due, after
    /// `promised` more starts take theirs); if so, its timer goes to `after`, to fire at the
    /// instant one is due (unless one armed already fires no later).
    #[cold]
    pub(crate) fn pool_held_after(&mut self, promised: usize, after: &mut After) -> bool {
        let Some(due) = self.pool_due(promised) else {
            return false;
        };
        if let Some(timer) = self.pool_rate.as_deref_mut().and_then(|r| r.arm(due)) {
            after.arm_pool_timer(timer);
        }
        true
    }

    /// `submit` of a loose task to a pool with a rate limit: whether it starts now (`room`:
    /// it would but for the limit; it takes its token), else it queues (the caller then
    /// grants in a section of its own, which arms the timer if no token is due), or,
    /// `refusing` (`try_spawn`) with a free slot and no token due, the error that says so.
    #[cold]
    #[inline(never)]
    pub(crate) fn admit_rated(
        &mut self,
        room: bool,
        refusing: bool,
        pool: &str,
    ) -> Result<bool, crate::error::PoolError> {
        let has_room = self.has_room();
        let Some(rate) = self.pool_rate.as_deref_mut() else {
            return Ok(room);
        };
        let due = if room {
            match rate.take() {
                Ok(()) => return Ok(true),
                Err(due) => due,
            }
        } else {
            // Earlier work queues: for a slot, or for a token.
            let due = rate.due_after(0);
            if !refusing || !has_room || due <= rate.now {
                return Ok(false);
            }
            due
        };
        if refusing {
            return Err(crate::error::PoolError::RateLimited {
                pool: pool.into(),
                retry_in: due.saturating_duration_since(rate.now),
            });
        }
        // It queues; the caller's next section arms the timer (`grant`).
        Ok(false)
    }

    /// A group launches while the pool has a rate limit: unless it has a quota of its own, it
    /// gets a rate with none, so that its items start through its queue, with tokens.
    pub(super) fn rate_group_for_pool(&mut self, key: GroupKey) {
        let Some(now) = self.pool_rate.as_ref().map(|r| r.now) else {
            return;
        };
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.rate.is_some() || g.shed || g.cancelled || g.settled {
            return;
        }
        g.rate = Some(Box::new(GroupRate::new(None, false, now)));
        if let Some(driver) = g.driver.as_ref() {
            driver.set_rated();
        }
    }

    /// The pool's rate timer fired at `now`: free slots are given out again.
    pub(crate) fn pool_rate_due(
        &mut self,
        timer: &Arc<QueueTimer>,
        now: Instant,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let Some(rate) = self.pool_rate.as_deref_mut() else {
            return;
        };
        if !rate
            .timer
            .as_ref()
            .is_some_and(|(t, _)| Arc::ptr_eq(t, timer))
        {
            return;
        }
        rate.timer = None;
        rate.observe(now);
        self.grant(core, after);
    }

    /// Sets (or lifts) the pool's quota at `now`. Lifted, what waits for a token is granted
    /// at once; changed, the starts still owed are owed under the new quota.
    pub(crate) fn set_pool_rate(
        &mut self,
        quota: Option<Quota>,
        now: Instant,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        match (self.pool_rate.as_deref_mut(), quota) {
            (None, None) => return,
            (Some(_), None) => {
                let mut rate = self.pool_rate.take().expect("matched");
                after.wake(rate.disarm());
                // The groups given a rate with no quota go back to the common path.
                let keys: Vec<GroupKey> = self
                    .groups
                    .iter()
                    .filter(|(_, g)| {
                        g.rate.as_deref().is_some_and(|r| {
                            !r.keyed && matches!(r.limit, Limit::Off) && r.aside.is_empty()
                        })
                    })
                    .map(|(k, _)| k)
                    .collect();
                for key in keys {
                    if let Some(mut rate) = self.groups.get_mut(key).and_then(|g| g.rate.take()) {
                        after.wake(rate.disarm());
                    }
                    self.join_turns(key);
                }
            }
            (Some(rate), Some(q)) => {
                rate.observe(now);
                rate.set_quota(q);
            }
            (None, Some(q)) => {
                self.pool_rate = Some(Box::new(PoolRate::new(q, now)));
                let keys: Vec<GroupKey> = self.groups.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.rate_group_for_pool(key);
                }
            }
        }
        // Under the lock, so that racing calls leave it as the last one set the state.
        core.pool_rated.store(
            self.pool_rate.is_some(),
            std::sync::atomic::Ordering::SeqCst,
        );
        self.grant(core, after);
    }
}

impl Core {
    /// Arms the pool's rate timer (a section asked for it): when it fires, the pool gives
    /// its free slots out again.
    pub(crate) fn arm_pool_timer(&self, wait: PoolWait) {
        if let Some(w) = wait.replaced {
            w.wake();
        }
        let sleep = self
            .spawner
            .sleep(wait.due.saturating_duration_since(self.spawner.now()));
        // The timer holds the pool, as the group's rate timer does (see `arm_rate_timer`):
        // the work waiting for a token is work still to do, which a pool whose handles all
        // went still finishes. Lifting the quota disarms the timer, which lets go at once.
        let Some(core) = self.this.upgrade() else {
            return; // (the pool is going: nothing waits any more)
        };
        spawn_rate_timer(core, sleep, wait.timer, |st, timer, now, c, after| {
            st.pool_rate_due(timer, now, c, after)
        });
    }

    /// Sets (or lifts) the pool's rate limit.
    pub(crate) fn set_pool_rate(self: &Arc<Self>, quota: Option<Quota>) {
        use std::sync::atomic::Ordering;
        if quota.is_some() {
            // Before the clock is read: sections from now on read it too.
            self.pool_rated.store(true, Ordering::SeqCst);
        }
        let now = self.spawner.now();
        {
            let mut s = self.section();
            let (st, after, c) = s.split();
            st.set_pool_rate(quota, now, c, after);
        }
    }

    /// The pool's quota in force.
    pub(crate) fn pool_rate(&self) -> Option<Quota> {
        self.read(|st| st.pool_rate.as_ref().map(|r| r.quota()))
    }
}

/// Spawns a rate timer on the pool's runtime, holding the pool: when `sleep` ends, unless the
/// timer was disarmed first, `due` runs in a section with the runtime's clock (read before
/// locking); then the reference goes.
fn spawn_rate_timer(
    core: Arc<Core>,
    sleep: async_taskpool_runtime::BoxFuture,
    timer: Arc<QueueTimer>,
    due: impl FnOnce(&mut State, &Arc<QueueTimer>, Instant, &Arc<Core>, &mut After) + Send + 'static,
) {
    let pool = Arc::clone(&core);
    pool.spawn(Box::pin(async move {
        if timer.sleep(sleep).await {
            let now = core.spawner.now();
            let mut s = core.section();
            let (st, after, c) = s.split();
            due(st, &timer, now, c, after);
        }
        core.let_go();
    }));
}

//! A group's transitions: its input checked out and back, its items registered, its
//! workers' slots, its end, and its cancellation. Part of [`State`], split out of `core.rs`
//! for size; the state and its scheduler are there.

use super::core::{
    After, Core, Entry, GroupDriver, GroupKind, GroupState, Inbox, Input, Life, Next, Outcome,
    Seat, Start, State, TaskControl, Trash,
};

use super::lanes::{GroupKey, Lane};
use super::rate_state::{KeyHash, RateWait};
use super::user::Held;
use crate::error::PoolError;
use crate::id::TaskId;
use std::any::Any;
use std::sync::Arc;
use std::task::Waker;

/// What a worker does after an item.
pub(crate) enum AfterItem {
    /// Keep the slot and go on with the group's next item: taken in the same section, unless
    /// the worker asked for it later (it yields to its executor first).
    Continue(Option<Pull>),
    /// Give the slot (with the runtime task) to this work.
    HandOver(Start),
    /// Give the slot back and end (or park).
    Leave(Next),
}

/// What a worker holding a slot gets from its group.
pub(crate) enum Pull {
    /// The group's input, checked out to this worker: pull up to this many items and bring
    /// it back (items past the first wait in the group's queue, for any of its workers).
    Source(Box<dyn Any + Send>, usize),
    /// An item pulled ahead, now running under this id: the worker takes the front of the
    /// group's queue in the same section.
    Ahead(TaskId),
    /// A reserved item, now running under this id.
    Reserved(TaskId),
    /// Another worker is pulling from the input.
    Busy,
    /// Nothing more: the input ended or the group was cancelled (or, for a rate-limited
    /// group, nothing may start before the timer armed earlier fires).
    Nothing,
    /// A set-aside item got its token: it runs now under this id (see `rate.rs`).
    Aside(TaskId),
    /// The front of the group's queue was set aside under this id; ask again.
    SetAside(TaskId),
    /// No token is due before this wait: arm the timer once unlocked, and leave.
    Wait(RateWait),
    /// An item whose retry backoff is over runs its next attempt now, under its own id (see
    /// `item_retry.rs`).
    Requeued(TaskId),
}

/// What a worker's pull from the input became.
pub(crate) enum Pulled {
    /// The first item runs now under this id; the rest wait in the group's queue.
    Run(TaskId),
    /// All wait in the group's queue (a rate-limited group: they start with their tokens).
    Queued,
    /// The group was cancelled: the items never start.
    Cancelled,
}

/// What a worker that waited on its input without a slot does with the item it got.
pub(crate) enum Arrival {
    /// It took a slot: run the item, which has this id.
    Slot(TaskId),
    /// The item has this id; wait for the group's turn (`poll_turn`).
    WaitForTurn(TaskId),
    /// It joins the group's queue (a rate-limited group: it starts with its token).
    Queued,
    /// The group was cancelled: drop the item.
    Cancelled,
}

/// What a worker holds when it ends outside `after_item`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WorkerHeld {
    /// A slot.
    pub(crate) slot: bool,
    /// The group's input, checked out (or waited on).
    pub(crate) input: bool,
}

/// An input's size hint, read outside the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeHint {
    pub(crate) lower: u64,
    pub(crate) upper: Option<u64>,
}

impl SizeHint {
    pub(crate) fn of((lower, upper): (usize, Option<usize>)) -> Self {
        Self {
            lower: lower as u64,
            upper: upper.map(|u| u as u64),
        }
    }

    /// Whether the input knows how many items are left.
    pub(crate) fn is_exact(self) -> bool {
        self.upper == Some(self.lower)
    }
}

/// Most workers a group adds at once: a huge `num_concurrent` keeps ramping as items are
/// pulled, rather than spawning a worker per item up front.
pub(crate) const MAX_RAMP: usize = 1024;

/// Most items a worker pulls from the input at once (while its group competes with nobody):
/// one checkout and one registration for several items.
pub(crate) const MAX_BATCH: usize = 32;

impl State {
    /// A group's worker took a slot, or gave one up.
    pub(super) fn worker_in(&mut self, key: GroupKey) {
        if let Some(g) = self.groups.get_mut(key) {
            g.workers += 1;
            self.group_workers += 1;
        }
    }

    pub(super) fn worker_out(&mut self, key: GroupKey) {
        if let Some(g) = self.groups.get_mut(key) {
            g.workers -= 1;
            self.group_workers -= 1;
        }
        self.drop_group_if_gone(key);
    }

    /// The name a new group gets: `name`, if free, or a generated one; refused if the pool
    /// takes no new work.
    pub(crate) fn name_group(
        &mut self,
        pool: &str,
        kind: GroupKind,
        name: Option<String>,
    ) -> Result<Arc<str>, PoolError> {
        self.check_open(pool)?;
        Ok(match name {
            Some(n) => {
                if self.names.contains_key(n.as_str()) {
                    return Err(PoolError::GroupExists {
                        pool: pool.into(),
                        name: n,
                    });
                }
                n.into()
            }
            None => loop {
                let counter = &mut self.name_counters[kind as usize];
                let k = *counter;
                *counter += 1;
                let candidate = format!("{}-group-{k}", kind.prefix());
                if !self.names.contains_key(candidate.as_str()) {
                    break candidate.into();
                }
            },
        })
    }

    /// Registers a group named by [`name_group`](Self::name_group).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register_group(
        &mut self,
        name: Arc<str>,
        num_concurrent: usize,
        priority: i32,
        weight: u32,
        input: Input,
        backlog: u64,
        backlog_exact: bool,
        target: usize,
    ) -> GroupKey {
        if let Input::Reserved(r) = &input {
            self.reserved_waiting += r.len();
        }
        let timing = self.timing.as_deref().map(|t| t.new_group());
        self.busy_groups += 1;
        let key = self.groups.insert(GroupState {
            name: name.clone(),
            driver: None,
            num_concurrent,
            priority,
            weight,
            passed_over: 0,
            pass: self.pass_clock,
            target: target.max(1),
            workers: 0,
            input,
            parked_puller: None,
            in_turns: false,
            cancelled: false,
            shed: false,
            items_live: 0,
            backlog,
            ahead: 0,
            unstarted_ending: 0,
            settled: false,
            ended: 0,
            backlog_exact,
            timing,
            rate: None,
            requeued: Default::default(),
        });
        self.names.insert(name, key);
        key
    }

    /// The group's driver is ready: it takes its turns from now on.
    pub(crate) fn launch_group(
        &mut self,
        key: GroupKey,
        driver: Arc<dyn GroupDriver>,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let g = self.groups.get_mut(key).expect("registered");
        g.driver = Some(Held::new(driver));
        if self.pool_rate.is_some() {
            // Its items start through its queue, with the pool's tokens (see `rate.rs`).
            self.rate_group_for_pool(key);
        }
        self.join_turns(key);
        self.grant(core, after);
        self.settle_if_finished(key, after);
    }

    /// The group's input is over: nothing more is pulled. Tells the group's results how
    /// many items never started: `dropped` pulled ones, and, if the group was cancelled, what
    /// its input said was left.
    pub(super) fn close_input(&mut self, key: GroupKey, dropped: u64, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if !matches!(g.input, Input::Reserved(_) | Input::Done) || dropped > 0 {
            let left = if g.cancelled { g.backlog } else { 0 };
            if let Some(driver) = g.driver.as_ref() {
                // An endless input's size hint is `usize::MAX`: the count saturates.
                after.wake(driver.input_done(left.saturating_add(dropped)));
            }
        }
        g.input = Input::Done;
        g.backlog = 0;
        g.backlog_exact = true;
    }

    pub(super) fn join_turns(&mut self, key: GroupKey) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if !g.in_turns && g.wants_slot() {
            g.in_turns = true;
            g.passed_over = 0;
            g.pass = g.pass.max(self.pass_clock);
            self.turns.join(Lane::Group(key));
        }
    }

    pub(crate) fn group_key(&self, name: &str) -> Option<GroupKey> {
        self.names.get(name).copied()
    }

    /// Whether the group is still known under its name (not cancelled, not flushed).
    pub(crate) fn group_is_named(&self, key: GroupKey) -> bool {
        self.groups
            .get(key)
            .is_some_and(|g| !g.cancelled && self.names.get(&g.name) == Some(&key))
    }

    /// The group task `id` belongs to, if it is live and in one.
    pub(crate) fn group_of(&self, id: TaskId) -> Option<GroupKey> {
        self.table.get(id.get())?.group
    }

    /// The next item of a group for a worker holding a slot: an input to pull (checked out
    /// to the caller), a reserved id (now running), or nothing.
    pub(crate) fn next_item(&mut self, key: GroupKey, control: &Arc<dyn TaskControl>) -> Pull {
        let Some(g) = self.groups.get_mut(key) else {
            return Pull::Nothing;
        };
        if g.cancelled {
            return Pull::Nothing;
        }
        if g.rate.is_some() {
            if g.requeued.is_empty() {
                return self.next_rated(key, control);
            }
            return self.next_rated_or_requeued(key, control);
        }
        if g.ahead > 0 {
            g.ahead -= 1;
            g.items_live += 1;
            let shed = g.shed;
            let id = self.allocate_id();
            self.insert_item_entry(id, control.clone(), key, shed);
            return Pull::Ahead(id);
        }
        // Items retried go before new ones are pulled (after the few pulled ahead already).
        if !g.requeued.is_empty() {
            return self.take_requeued(key, control);
        }
        match std::mem::replace(&mut g.input, Input::Pulling) {
            Input::Idle(source) => {
                // Pulled ahead only while no other lane waits (so the group keeps its fair
                // share exactly when others compete): as many as each worker would get.
                let alone = self.turns.len() == 0
                    || (self.turns.len() == 1 && self.turns.get(0) == Some(Lane::Group(key)));
                let g = self.groups.get(key).expect("checked");
                // Never more than the group could run at once: the input stays lazy, at most
                // `num_concurrent` items ahead of those running (as `buffer_unordered` holds
                // that many in flight).
                let batch = if alone {
                    (g.backlog / g.workers.max(1) as u64)
                        .clamp(1, MAX_BATCH.min(g.num_concurrent) as u64)
                        as usize
                } else {
                    1
                };
                Pull::Source(source.into_inner(), batch)
            }
            Input::Reserved(r) => {
                g.input = Input::Reserved(r);
                match self.take_reserved(key) {
                    Some(id) => {
                        self.insert_item(id, control.clone(), key);
                        Pull::Reserved(id)
                    }
                    None => Pull::Nothing,
                }
            }
            other => {
                g.input = other;
                Pull::Busy
            }
        }
    }

    /// The group's oldest reserved id, taken out of the queue (it starts now).
    pub(super) fn take_reserved(&mut self, key: GroupKey) -> Option<TaskId> {
        let g = self.groups.get_mut(key)?;
        let Input::Reserved(r) = &mut g.input else {
            return None;
        };
        let id = r.take_oldest()?;
        g.backlog = r.len();
        if r.is_empty() {
            g.input = Input::Done;
        }
        self.reserved_waiting -= 1;
        let id = TaskId::new(id);
        self.time_reserved(id, key);
        Some(id)
    }

    /// A worker pulled an item from the group's input (checked out by `next_item`) and
    /// brings the input back. Registers the item under a fresh id unless the group was
    /// cancelled meanwhile (then the item comes back, not started).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn item_pulled(
        &mut self,
        key: GroupKey,
        source: Box<dyn Any + Send>,
        pulled: usize,
        hint: SizeHint,
        keys: &[KeyHash],
        control: &Arc<dyn TaskControl>,
        core: &Arc<Core>,
        after: &mut After,
    ) -> Pulled {
        let g = self
            .groups
            .get_mut(key)
            .expect("a group lives while its workers do");
        if g.cancelled {
            // What is left is what the input says now: the items just pulled are no longer
            // in it (they count once, as `pulled`).
            g.backlog = hint.lower;
            after.discard(Trash::Input(source));
            self.close_input(key, pulled as u64, after);
            return Pulled::Cancelled;
        }
        g.backlog = hint.lower;
        g.backlog_exact = hint.is_exact();
        if g.rate.is_some() {
            if hint.upper == Some(0) {
                after.discard(Trash::Input(source));
            } else {
                g.input = Input::Idle(Held::new(source));
            }
            self.queue_rated(key, pulled, hint, keys);
            if self.has_room() {
                self.grant(core, after);
            }
            return Pulled::Queued;
        }
        // Items past the first wait in the group's queue (the caller puts them there in
        // this section).
        g.ahead += pulled as u64 - 1;
        let more = if hint.upper == Some(0) {
            // Known to be empty now: no worker needs to pull to find out. The caller closes
            // the input once it has issued this item's sequence number.
            after.discard(Trash::Input(source));
            0
        } else {
            g.input = Input::Idle(Held::new(source));
            hint.lower.clamp(1, MAX_RAMP as u64) as usize
        };
        // Workers it can use now: one per live item (this one included), per item in its
        // queue and per item its input says is left, ramping by at most `MAX_RAMP` at once.
        // (Not `workers + more`: the workers running cover their items already, and each
        // pull would add as many again.)
        let useful = (g.items_live as u64 + 1 + g.ahead).saturating_add(more as u64);
        let ramp = g.workers.saturating_add(MAX_RAMP) as u64;
        g.target = g.target.max(useful.min(ramp) as usize);
        g.items_live += 1;
        let wants_turn = !g.in_turns && g.wants_slot();
        let shed = g.shed;
        let id = self.allocate_id();
        self.insert_item_entry(id, control.clone(), key, shed);
        if wants_turn {
            self.join_turns(key);
        }
        if self.has_room() {
            // More workers may start (the group ramps up as it learns its input's length).
            self.grant(core, after);
        }
        Pulled::Run(id)
    }

    /// A worker found the group's input ended (or it panicked); the input is dropped by the
    /// caller.
    pub(crate) fn input_ended(&mut self, key: GroupKey, after: &mut After) {
        self.close_input(key, 0, after);
        self.settle_if_finished(key, after);
    }

    /// The input was not ready: the worker gives its slot back and waits on it.
    pub(crate) fn input_pending(
        &mut self,
        key: GroupKey,
        waker: Waker,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        if let Some(g) = self.groups.get_mut(key) {
            g.input = Input::Waiting(Some(waker));
        }
        self.worker_out(key);
        self.release_slot(core, after);
    }

    /// A slotless worker got an item from its pending input and brings the input back. The
    /// item gets its id now; it takes a slot if there is room and no other lane waits, else
    /// it waits (holding no slot) for the group's turn.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn item_arrived(
        &mut self,
        key: GroupKey,
        source: Box<dyn Any + Send>,
        hint: SizeHint,
        keys: &[KeyHash],
        control: &Arc<dyn TaskControl>,
        waker: &Waker,
        after: &mut After,
    ) -> Arrival {
        let g = self
            .groups
            .get_mut(key)
            .expect("a group lives while its workers do");
        if g.cancelled {
            g.backlog = hint.lower;
            after.discard(Trash::Input(source));
            self.close_input(key, 1, after);
            return Arrival::Cancelled;
        }
        g.backlog = hint.lower;
        g.backlog_exact = hint.is_exact();
        if hint.upper == Some(0) {
            // As in `item_pulled`: the caller closes the input after issuing.
            after.discard(Trash::Input(source));
        } else {
            g.input = Input::Idle(Held::new(source));
        }
        if g.rate.is_some() {
            // Its worker leaves without a slot, and asks for slots as it goes.
            self.queue_rated(key, 1, hint, keys);
            return Arrival::Queued;
        }
        let id = self.allocate_id();
        if self.has_room() && self.turns.len() == 0 {
            self.take_slot();
            self.worker_in(key);
            self.insert_item(id, control.clone(), key);
            return Arrival::Slot(id);
        }
        self.waiting_items += 1;
        let g = self.groups.get_mut(key).expect("checked");
        g.items_live += 1;
        g.parked_puller = Some(Some(waker.clone()));
        self.table.insert(
            id.get(),
            Entry {
                control: Held::new(control.clone()),
                life: Life::Waiting,
                cancel_requested: false,
                group: Some(key),
            },
        );
        self.time_queued(id);
        self.join_turns(key);
        Arrival::WaitForTurn(id)
    }

    /// A worker waiting with item `id` for its group's turn polls: `Some(true)` once it was
    /// granted a slot (the item now runs), `Some(false)` if the item or its group was
    /// cancelled (the item now ends, without a slot), `None` to keep waiting.
    pub(crate) fn poll_turn(&mut self, key: GroupKey, id: TaskId, waker: &Waker) -> Option<bool> {
        let cancelled = self.table.get(id.get()).is_none_or(|e| e.cancel_requested);
        let g = self.groups.get_mut(key)?;
        match &mut g.parked_puller {
            Some(None) => {
                g.parked_puller = None;
                if let Some(e) = self.table.get_mut(id.get()) {
                    e.life = Life::Running(Seat::Worker);
                    self.waiting_items -= 1;
                    self.running += 1;
                    self.time_started(id, Some(key));
                }
                Some(true)
            }
            // Shed: it ends at once, as the worker sees (the group is marked shed).
            _ if cancelled || g.cancelled || g.shed => {
                g.parked_puller = None;
                self.enter_ending(id);
                Some(false)
            }
            Some(Some(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                None
            }
            None => Some(false),
        }
    }

    /// A worker waiting on its pending input polls again: whether the group was cancelled.
    pub(crate) fn still_waiting_on_input(&mut self, key: GroupKey, waker: &Waker) -> bool {
        let Some(g) = self.groups.get_mut(key) else {
            return false;
        };
        if g.cancelled {
            return false;
        }
        if let Input::Waiting(w) = &mut g.input {
            *w = Some(waker.clone());
        }
        true
    }

    /// A lone group's usual step between two items, in one move: item `ended` retires and
    /// the next item pulled ahead starts on the same worker, reusing the ended item's record
    /// in the table (same control, same seat), so nothing is removed or inserted there.
    /// Returns the next item's id, or `None`, having changed nothing, whenever the case is
    /// any other: the caller then calls [`retire_held`](State::retire_held) and
    /// [`after_item`](Self::after_item), which decide the same where this applies.
    #[inline]
    pub(crate) fn item_to_next(
        &mut self,
        key: GroupKey,
        ended: TaskId,
        outcome: Outcome,
        control: &Arc<dyn TaskControl>,
        after: &mut After,
    ) -> Option<TaskId> {
        // The conditions under which `after_item` goes on with `next_item`'s `Pull::Ahead`.
        let alone = self.turns.len() == 0
            || (self.turns.len() == 1 && self.turns.get(0) == Some(Lane::Group(key)));
        if self.pool_rate.is_some() || self.over_limit() || !alone {
            return None;
        }
        let g = self.groups.get(key)?;
        if g.cancelled || g.shed || g.rate.is_some() || g.ahead == 0 || g.workers > g.num_concurrent
        {
            return None;
        }
        let e = self.table.get(ended.get())?;
        let same_control = std::ptr::addr_eq(Arc::as_ptr(&e.control), Arc::as_ptr(control));
        if !matches!(e.life, Life::Running(Seat::Worker)) || e.group != Some(key) || !same_control {
            return None;
        }
        let next = self.allocate_id();
        self.hand_record_on(ended, next, Some(key), outcome, after);
        let g = self.groups.get_mut(key).expect("checked");
        g.ahead -= 1;
        g.ended += 1;
        Some(next)
    }

    /// After an item ended: whether its worker keeps the slot for the group's next item,
    /// hands it to the lane whose turn it is, or gives it back.
    pub(crate) fn after_item(
        &mut self,
        key: GroupKey,
        take_next: bool,
        control: &Arc<dyn TaskControl>,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Inbox>>,
    ) -> AfterItem {
        // With no token of the pool's rate limit due, no lane gets the slot: the worker gives
        // it back rather than hold it (see `rate.rs`).
        if self.pool_rate.is_some() {
            if let Some(leave) = self.leave_for_pool_token(key, core, after, spare) {
                return leave;
            }
        }
        self.after_item_in_turn(key, take_next, control, core, after, spare)
    }

    /// [`after_item`](Self::after_item) once the pool's rate limit (if any) let it go on.
    #[inline(always)]
    fn after_item_in_turn(
        &mut self,
        key: GroupKey,
        take_next: bool,
        control: &Arc<dyn TaskControl>,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Inbox>>,
    ) -> AfterItem {
        // A group over its cap (it was lowered at run time) takes no next item here: the
        // worker leaves, and its slot goes to whoever's turn it is.
        let (has_input, cancelled, shed) = match self.groups.get(key) {
            Some(g) => (
                g.has_input() && g.workers <= g.num_concurrent && !g.rate_gated(),
                g.cancelled,
                g.shed,
            ),
            None => (false, true, false),
        };
        // A shed group's items take no time: its worker goes on through them even over the
        // limit (it may have been started over it to shed them: see `shed.rs`).
        let go_on = has_input && !cancelled && (shed || !self.over_limit());
        if go_on
            && (self.turns.len() <= 1 && self.turns.get(0).is_none_or(|l| l == Lane::Group(key))
                || shed)
        {
            // Nobody else waits (the usual case of a lone map), or the group is shed: its
            // next items end at once, taking no time from the others.
            return AfterItem::Continue(take_next.then(|| self.next_item(key, control)));
        }
        if !self.over_limit() && !cancelled {
            match self.lane_up(Some(Lane::Group(key))) {
                // Its own turn, or nobody else waits: go on with the group's next item.
                Some((Lane::Group(k), place)) if k == key && has_input => {
                    self.take_turn(place);
                    return AfterItem::Continue(take_next.then(|| self.next_item(key, control)));
                }
                None if has_input => {
                    return AfterItem::Continue(take_next.then(|| self.next_item(key, control)))
                }
                Some(lane) => {
                    self.leave_group_slot(key, after);
                    return match self.start_turn(lane, core, after) {
                        Some(start) => AfterItem::HandOver(start),
                        None => AfterItem::Leave(self.park_or_end(spare)),
                    };
                }
                None => {}
            }
        }
        self.leave_group_slot(key, after);
        self.free_slot();
        self.grant(core, after);
        AfterItem::Leave(self.park_or_end(spare))
    }

    /// A worker that kept finding the group's input busy gives its slot back (the group
    /// keeps its turns: the slot may come back to it) and ends.
    pub(crate) fn give_up_slot(
        &mut self,
        key: GroupKey,
        core: &Arc<Core>,
        after: &mut After,
        spare: &mut Option<Arc<Inbox>>,
    ) -> Next {
        self.leave_group_slot(key, after);
        self.free_slot();
        self.grant(core, after);
        self.park_or_end(spare)
    }

    /// A worker of the group gives up its slot and ends.
    pub(super) fn leave_group_slot(&mut self, key: GroupKey, after: &mut After) {
        self.worker_out(key);
        self.join_turns(key);
        self.settle_if_finished(key, after);
    }

    /// A worker of the group ends other than by `after_item` (after an item's callbacks, or
    /// dropped by the runtime), with what it still held.
    pub(crate) fn worker_gone(
        &mut self,
        key: GroupKey,
        held: WorkerHeld,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        if held.slot {
            self.worker_out(key);
        }
        if held.input {
            // It was dropped holding the input, which went with it: nothing more is pulled.
            self.close_input(key, 0, after);
        }
        if held.slot {
            self.free_slot();
        }
        self.join_turns(key);
        self.grant(core, after);
        self.settle_if_finished(key, after);
    }

    /// A map item's slot is given back before its callbacks run; the worker ends after them.
    pub(crate) fn item_to_callbacks(
        &mut self,
        key: GroupKey,
        id: TaskId,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        self.enter_ending(id);
        self.worker_out(key);
        self.release_slot(core, after);
    }

    /// Forgets the group's driver, turns and counts once nothing of it is left.
    pub(super) fn settle_if_finished(&mut self, key: GroupKey, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.settled || !g.finished() {
            return;
        }
        g.settled = true;
        if let Some(driver) = g.driver.take() {
            after.discard(Trash::Driver(driver.into_inner()));
        }
        self.drop_rate(key, after);
        let g = self.groups.get_mut(key).expect("checked");
        g.backlog = 0;
        if g.in_turns {
            g.in_turns = false;
            self.turns.remove(Lane::Group(key));
        }
        self.busy_groups -= 1;
        self.drop_group_if_gone(key);
        after.notify = true;
    }

    /// Removes a settled group that nothing refers to any more: its name was freed (it was
    /// cancelled or flushed) and no worker of it holds a slot.
    pub(super) fn drop_group_if_gone(&mut self, key: GroupKey) {
        let Some(g) = self.groups.get(key) else {
            return;
        };
        let named = self.names.get(&g.name) == Some(&key);
        if g.settled && g.workers == 0 && !named {
            self.groups.remove(key);
        }
    }

    /// Cancels a group: nothing more is pulled or started, running items are asked to stop,
    /// reserved items end as cancelled, and the name is freed.
    pub(crate) fn cancel_group(&mut self, key: GroupKey, core: &Arc<Core>, after: &mut After) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        if g.cancelled {
            return;
        }
        g.cancelled = true;
        if self.names.get(&g.name) == Some(&key) {
            self.names.remove(&g.name);
        }
        match std::mem::replace(&mut g.input, Input::Pulling) {
            Input::Idle(source) => {
                after.discard(Trash::Input(source.into_inner()));
                self.close_input(key, 0, after);
            }
            // The worker that holds it drops it when it sees the cancel, and closes it.
            Input::Pulling => {}
            Input::Waiting(waker) => {
                after.wake(waker);
                g.input = Input::Waiting(None);
            }
            Input::Reserved(mut r) => {
                let unstarted = r.take_all();
                self.reserved_waiting -= unstarted.len();
                let g = self.groups.get_mut(key).expect("checked");
                g.input = Input::Done;
                g.backlog = 0;
                g.unstarted_ending += unstarted.len();
                if !unstarted.is_empty() {
                    if let Some(driver) = g.driver.as_ref() {
                        let job = Arc::clone(driver).unstarted(core, unstarted);
                        after.start(Start::Job(job), None);
                    }
                }
            }
            Input::Done => g.input = Input::Done,
        }
        let g = self.groups.get_mut(key).expect("checked");
        if let Some(Some(w)) = &g.parked_puller {
            // It drops its item and ends when it sees the cancel.
            after.wake(Some(w.clone()));
        }
        if g.ahead > 0 {
            // Items pulled ahead never start.
            g.ahead = 0;
            if let Some(driver) = g.driver.as_ref() {
                after.wake(driver.skip_ahead());
            }
        }
        if g.in_turns {
            g.in_turns = false;
            self.turns.remove(Lane::Group(key));
        }
        // Items set aside for their rate limit's tokens end now.
        self.end_aside(key, Outcome::Cancelled, core, after);
        self.drop_rate(key, after);
        let ids = self.ids_in_group(key);
        for id in ids {
            self.cancel_running(id, core, after);
        }
        self.settle_if_finished(key, after);
        after.notify = true;
    }

    /// A reserved item cancelled before it started has delivered its result and run its
    /// callbacks.
    pub(crate) fn unstarted_ended(
        &mut self,
        key: GroupKey,
        n: u64,
        outcome: Outcome,
        after: &mut After,
    ) {
        if let Some(g) = self.groups.get_mut(key) {
            g.unstarted_ending -= n;
            g.ended += n;
        }
        for _ in 0..n {
            self.ended.count(outcome);
        }
        self.settle_if_finished(key, after);
        after.notify = true;
    }
}

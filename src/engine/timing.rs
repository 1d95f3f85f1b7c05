//! Durations, for pools built with `track_durations(true)`: when each task got its id and
//! when it started, and histograms of queue wait and run time per pool and per group.
//!
//! Off by default: reading the clock costs about 40 ns a call on our machines (two or three
//! calls a task), a quarter of a `map` item's own cost. Off, each hook below is one load and a
//! branch on `State::timing`. On, the stamps live in side tables of their own (the task table
//! and the queue keep their size), updated in the state's named transitions, under the state
//! lock: no user code runs here.
//!
//! - **Queue wait**: from the task getting its id (submitted; a map item pulled from its
//!   input; a `SimpleTaskPool::start` item when `start` was called) to its start. A map item
//!   pulled as a slot frees starts at once: its wait before the pull is the group's backlog.
//! - **Run time**: from its start to its retirement (its future and its callbacks).
//!
//! Histograms keep microseconds with 2 significant digits (hdrhistogram), clamped to an hour:
//! at most ~26 KB each, made on first use; a group's go with the group.

use super::core::{GroupState, State};
use super::durations::{record, GroupTiming, Histograms, LiveDurations, Samples, FEW};
use super::lanes::GroupKey;
use super::telemetry::{Sample, Telemetry};
use crate::id::TaskId;
use std::time::Duration;

impl State {
    /// Task `id` got its id and waits for a slot.
    #[inline]
    pub(crate) fn time_queued(&mut self, id: TaskId) {
        if let Some(t) = self.timing.as_deref_mut() {
            let now = t.now();
            t.queued.insert(id.get(), now);
        }
    }

    /// Reserved item `id` of group `key` leaves its group's queue (it starts now): it waited
    /// since the group was made.
    #[inline]
    pub(crate) fn time_reserved(&mut self, id: TaskId, key: GroupKey) {
        if let Some(t) = self.timing.as_deref_mut() {
            if let Some(g) = self.groups.get(key).and_then(|g| g.timing.as_deref()) {
                t.queued.insert(id.get(), g.made);
            }
        }
    }

    /// Task `id` starts: its queue wait is recorded.
    #[inline]
    pub(crate) fn time_started(&mut self, id: TaskId, group: Option<GroupKey>) {
        if self.timing.is_some() {
            self.record_start(id, group);
        }
    }

    #[inline(never)]
    fn record_start(&mut self, id: TaskId, group: Option<GroupKey>) {
        let Some(t) = self.timing.as_deref_mut() else {
            return;
        };
        let now = t.now();
        let wait = t
            .queued
            .remove(id.get())
            .map_or(0, |at| now.saturating_sub(at));
        t.running.insert(id.get(), (now, wait));
        record(&mut t.pool.queue_wait, wait);
        if Telemetry::ACTIVE {
            t.samples.push(Sample::QueueWait(wait));
        }
        if let Some(g) = group_timing(&mut self.groups, group) {
            record(&mut g.histograms.queue_wait, wait);
        }
    }

    /// Task `id` retired: its run time is recorded (if it started).
    #[inline]
    pub(crate) fn time_ended(&mut self, id: TaskId, group: Option<GroupKey>) {
        if self.timing.is_some() {
            self.record_end(id, group);
        }
    }

    #[inline(never)]
    fn record_end(&mut self, id: TaskId, group: Option<GroupKey>) {
        let Some(t) = self.timing.as_deref_mut() else {
            return;
        };
        let Some((started, _)) = t.running.remove(id.get()) else {
            // It never started (cancelled while it waited).
            t.queued.remove(id.get());
            return;
        };
        let run = t.now().saturating_sub(started);
        record(&mut t.pool.run_time, run);
        if Telemetry::ACTIVE {
            t.samples.push(Sample::Run(run));
        }
        if let Some(g) = group_timing(&mut self.groups, group) {
            record(&mut g.histograms.run_time, run);
        }
    }

    /// Queue wait and run time so far of live task `id` (`None`s if durations are off);
    /// `reserved_in` for a reserved item that has not started.
    pub(crate) fn live_durations(
        &self,
        id: u64,
        reserved_in: Option<&GroupState>,
    ) -> LiveDurations {
        let Some(t) = self.timing.as_deref() else {
            return (None, None);
        };
        let now = t.now();
        let since = |at: u64| Duration::from_nanos(now.saturating_sub(at));
        if let Some(&(started, wait)) = t.running.get(id) {
            return (Some(Duration::from_nanos(wait)), Some(since(started)));
        }
        let queued = t.queued.get(id).copied().or_else(|| {
            reserved_in
                .and_then(|g| g.timing.as_deref())
                .map(|g| g.made)
        });
        (queued.map(since), None)
    }

    /// The samples for the `metrics` histograms this section took, to emit once unlocked.
    #[inline]
    pub(crate) fn take_samples(&mut self) -> Option<Samples> {
        let t = self.timing.as_deref_mut()?;
        match t.samples.len() {
            0 => None,
            n if n <= FEW => {
                let mut buf = [Sample::Run(0); FEW];
                buf[..n].copy_from_slice(&t.samples);
                t.samples.clear();
                Some(Samples::Few(buf, n))
            }
            _ => Some(Samples::Many(std::mem::take(&mut t.samples))),
        }
    }

    /// The pool's histograms, if durations are tracked.
    pub(crate) fn pool_durations(&self) -> Option<&Histograms> {
        self.timing.as_deref().map(|t| &t.pool)
    }

    /// Starts the pool's histograms afresh (`flush`).
    pub(crate) fn forget_durations(&mut self) {
        if let Some(t) = self.timing.as_deref_mut() {
            t.pool = Histograms::default();
        }
    }
}

fn group_timing(
    groups: &mut super::slab::Slab<GroupState>,
    key: Option<GroupKey>,
) -> Option<&mut GroupTiming> {
    groups.get_mut(key?)?.timing.as_deref_mut()
}

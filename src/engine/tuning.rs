//! Changing scheduling at run time: a live group's concurrency, priority and weight, the
//! loose tasks' weight, the ageing window. Part of [`State`] and [`Core`], split out for the
//! policies of issue 13.

use super::core::{After, Core, State};
use super::groups::MAX_RAMP;
use super::lanes::GroupKey;
use crate::error::PoolError;
use std::sync::Arc;

impl State {
    /// Sets group `key`'s cap on items at once. Raising it starts workers at once (if the
    /// pool has room); lowering it lets running items finish, and their workers leave instead
    /// of taking the next item while the group is over its cap.
    pub(crate) fn set_num_concurrent(
        &mut self,
        key: GroupKey,
        cap: usize,
        core: &Arc<Core>,
        after: &mut After,
    ) {
        let Some(g) = self.groups.get_mut(key) else {
            return;
        };
        g.num_concurrent = cap;
        // The ramp: enough workers for what the group knows it has left, up to the cap.
        let known = (g.backlog + g.ahead).clamp(1, MAX_RAMP as u64) as usize;
        g.target = g.target.max(cap.min(g.workers.saturating_add(known)));
        self.join_turns(key);
        if self.has_room() {
            self.grant(core, after);
        }
    }
}

impl Core {
    /// Runs `f` on the state of group `key` (a `Group` handle's own group); refused once the
    /// group was cancelled or forgotten.
    pub(super) fn tune_group(
        self: &Arc<Self>,
        key: GroupKey,
        name: &str,
        f: impl FnOnce(&mut State, &Arc<Core>, &mut After),
    ) -> Result<(), PoolError> {
        let mut s = self.section();
        let (st, after, core) = s.split();
        if !st.group_is_named(key) {
            return Err(PoolError::GroupEnded {
                pool: core.pool_name(),
                name: name.to_owned(),
            });
        }
        f(st, core, after);
        Ok(())
    }

    /// Sets the priority of group `key`: its next turns go by it.
    pub(crate) fn set_group_priority(
        self: &Arc<Self>,
        key: GroupKey,
        name: &str,
        priority: i32,
    ) -> Result<(), PoolError> {
        self.tune_group(key, name, |st, _, _| {
            if let Some(g) = st.groups.get_mut(key) {
                g.priority = priority;
            }
        })
    }

    /// Sets the weight of group `key`.
    pub(crate) fn set_group_weight(
        self: &Arc<Self>,
        key: GroupKey,
        name: &str,
        weight: u32,
    ) -> Result<(), PoolError> {
        check_weight(weight)?;
        self.tune_group(key, name, |st, _, _| {
            if let Some(g) = st.groups.get_mut(key) {
                g.weight = weight;
            }
        })
    }

    /// Sets the loose tasks' weight in the pool's shares.
    pub(crate) fn set_loose_weight(self: &Arc<Self>, weight: u32) -> Result<(), PoolError> {
        check_weight(weight)?;
        self.state().loose_weight = weight;
        Ok(())
    }

    /// The loose tasks' weight.
    pub(crate) fn loose_weight(&self) -> u32 {
        self.read(|st| st.loose_weight)
    }

    /// Sets the ageing window (`None`: the default, from the limit).
    pub(crate) fn set_ageing(&self, starts: Option<u64>) {
        self.state().ageing = starts;
    }

    /// The ageing window in force.
    pub(crate) fn ageing(&self) -> u64 {
        self.read(|st| st.ageing_window())
    }

    /// Sets the cap of the group `key` (a `Group` handle's own group); refused once the
    /// group was cancelled or forgotten.
    pub(crate) fn set_num_concurrent(
        self: &Arc<Self>,
        key: GroupKey,
        name: &str,
        cap: usize,
    ) -> Result<(), PoolError> {
        if cap == 0 {
            return Err(PoolError::InvalidLimit {
                what: "num_concurrent",
                value: 0,
            });
        }
        self.tune_group(key, name, |st, core, after| {
            st.set_num_concurrent(key, cap, core, after)
        })
    }
}

fn check_weight(weight: u32) -> Result<(), PoolError> {
    if weight == 0 {
        return Err(PoolError::InvalidLimit {
            what: "weight",
            value: 0,
        });
    }
    Ok(())
}

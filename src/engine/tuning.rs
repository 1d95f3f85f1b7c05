//! Changing a live group's scheduling at run time: its concurrency. Part of [`State`] and
//! [`Core`], split out for the policies of issue 13.

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
        let mut s = self.section();
        let (st, after, core) = s.split();
        if !st.group_is_named(key) {
            return Err(PoolError::GroupEnded {
                pool: core.pool_name(),
                name: name.to_owned(),
            });
        }
        st.set_num_concurrent(key, cap, core, after);
        Ok(())
    }
}

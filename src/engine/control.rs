//! Steering a pool: cancel, stop, lock, close, resize, and groups by name.

use super::core::{Core, Gate};
use super::lanes::GroupKey;
use crate::error::PoolError;
use crate::id::TaskId;
use std::sync::Arc;

impl Core {
    /// Cancels the tasks with these ids, atomically: all or none (the error names the first
    /// id that cannot be cancelled).
    pub(crate) fn cancel(self: &Arc<Self>, ids: &[TaskId]) -> Result<(), PoolError> {
        let mut s = self.section();
        let (st, after, core) = s.split();
        for &id in ids {
            st.check_cancel(&core.name, id)?;
        }
        for &id in ids {
            st.cancel_task(id, core, after);
        }
        Ok(())
    }

    /// Cancels without checking; unknown or ended ids are skipped (`exec` dropped early).
    pub(crate) fn cancel_quietly(self: &Arc<Self>, id: TaskId) {
        let mut s = self.section();
        let (st, after, core) = s.split();
        st.cancel_task(id, core, after);
    }

    /// Cancels the `num` newest live tasks; their ids, newest first.
    pub(crate) fn stop_newest(self: &Arc<Self>, num: usize) -> Vec<TaskId> {
        let mut s = self.section();
        let (st, after, core) = s.split();
        st.stop_newest(num, core, after)
    }

    /// Cancels the group named `name` and frees the name.
    pub(crate) fn cancel_group_named(self: &Arc<Self>, name: &str) -> Result<(), PoolError> {
        let mut s = self.section();
        let (st, after, core) = s.split();
        let Some(key) = st.group_key(name) else {
            return Err(PoolError::GroupNotFound {
                pool: core.pool_name(),
                name: name.to_owned(),
            });
        };
        tracing::debug!(pool = %core.name, group = name, "{} cancelling tasks in group {name}", core.name);
        st.cancel_group(key, core, after);
        Ok(())
    }

    /// Cancels the group `key` (a `Group` handle's own group). A group that ended and was
    /// forgotten (flushed), or was cancelled, is reported as ended: its name may belong to a
    /// newer group now.
    pub(crate) fn cancel_group(
        self: &Arc<Self>,
        key: GroupKey,
        name: &str,
    ) -> Result<(), PoolError> {
        let mut s = self.section();
        let (st, after, core) = s.split();
        if !st.group_is_named(key) {
            return Err(PoolError::GroupEnded {
                pool: core.pool_name(),
                name: name.to_owned(),
            });
        }
        st.cancel_group(key, core, after);
        Ok(())
    }

    /// Cancels every task and group; forgets every group.
    pub(crate) fn cancel_all(self: &Arc<Self>) {
        tracing::warn!(pool = %self.name, "{} cancelling all tasks!", self.name);
        let mut s = self.section();
        let (st, after, core) = s.split();
        st.cancel_everything(core, after);
    }

    pub(crate) fn set_locked(self: &Arc<Self>, locked: bool) {
        let changed = {
            let mut s = self.section();
            if s.gate() == Gate::Closed {
                return;
            }
            s.set_gate(if locked { Gate::Locked } else { Gate::Open })
        };
        if changed && locked {
            tracing::info!(pool = %self.name, "{} is locked!", self.name);
        } else if changed {
            tracing::info!(pool = %self.name, "{} was unlocked.", self.name);
        }
    }

    /// Closes the pool for good; parked runners end.
    pub(crate) fn close(self: &Arc<Self>) {
        let changed = {
            let mut s = self.section();
            let (st, after, _) = s.split();
            let changed = st.set_gate(Gate::Closed);
            // Nothing starts at once any more: parked runners end (and let go of the pool).
            after.close_runners(st.close_idle_runners());
            after.notify = true;
            changed
        };
        if changed {
            tracing::info!(pool = %self.name, "{} is closed", self.name);
        }
    }

    pub(crate) fn set_limit(self: &Arc<Self>, limit: Option<usize>) -> Result<(), PoolError> {
        if limit == Some(0) {
            return Err(PoolError::InvalidLimit {
                what: "pool limit",
                value: 0,
            });
        }
        // A fixed limit replaces an adaptive one (`adaptive.rs` applies it).
        self.adaptive.fix(self, limit);
        tracing::info!(pool = %self.name, ?limit, "{} limit set to {limit:?}", self.name);
        Ok(())
    }
}

//! A group's scheduling settings (priority, weight, concurrency cap, rate limit), read and
//! changed by its name: what the control server shows and sets for an operator who has no `Group` handle.
//! A handle changes its own group by key (`tuning.rs`) and reads the settings here, so it sees
//! a change made by name.
//!
//! A change is checked whole before anything moves, and made in one section: a request that
//! fails changes nothing, and the settings it returns are those right after it.

use super::core::{Core, State};
use super::lanes::GroupKey;
use crate::error::PoolError;
use crate::policy::Quota;
use std::sync::Arc;

/// A group's run-time scheduling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupSettings {
    /// Its lane's priority (see `shares.rs`).
    pub(crate) priority: i32,
    /// Its weight in the pool's shares; at least 1.
    pub(crate) weight: u32,
    /// Its cap on items at once, as `Concurrency::cap` (`usize::MAX` follows the pool's
    /// limit); at least 1.
    pub(crate) num_concurrent: usize,
    /// Its rate limit in force (`None`: none, or no longer: the group ended or was shed).
    pub(crate) rate: Option<Quota>,
}

/// What to change in a group's settings; `None` leaves that setting as it is.
// Changed by name only by the control server.
#[cfg_attr(not(feature = "control"), allow(dead_code))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupChange {
    pub(crate) priority: Option<i32>,
    pub(crate) weight: Option<u32>,
    pub(crate) num_concurrent: Option<usize>,
    /// `Some(None)` lifts the rate limit; `Some(Some(q))` sets it (see `State::set_group_rate`).
    pub(crate) rate: Option<Option<Quota>>,
}

impl GroupChange {
    /// Refuses a weight or a cap of 0, before anything is changed.
    fn check(&self) -> Result<(), PoolError> {
        if self.weight == Some(0) {
            return Err(PoolError::InvalidLimit {
                what: "weight",
                value: 0,
            });
        }
        if self.num_concurrent == Some(0) {
            return Err(PoolError::InvalidLimit {
                what: "num_concurrent",
                value: 0,
            });
        }
        Ok(())
    }
}

impl State {
    /// The settings of group `key`, while the pool keeps its state.
    pub(crate) fn group_settings(&self, key: GroupKey) -> Option<GroupSettings> {
        self.groups.get(key).map(|g| GroupSettings {
            priority: g.priority,
            weight: g.weight,
            num_concurrent: g.num_concurrent,
            rate: g.rate.as_ref().and_then(|r| r.quota()),
        })
    }
}

impl Core {
    /// The settings of group `key`, while the pool keeps its state (until the group is
    /// cancelled or flushed and nothing of it is left).
    pub(crate) fn group_settings(&self, key: GroupKey) -> Option<GroupSettings> {
        self.read(|st| st.group_settings(key))
    }

    /// Changes the named group's settings, all of `change` or nothing, and returns them as
    /// they are right after. [`PoolError::GroupNotFound`] for a name the pool does not know
    /// (never used, cancelled or flushed); [`PoolError::InvalidLimit`] for a weight or cap of
    /// 0; [`PoolError::GroupEnded`] for a rate limit on a group that ended or was shed (it
    /// would never apply; the control server says so in its own words). An empty change only
    /// reads them.
    #[cfg_attr(not(feature = "control"), allow(dead_code))]
    pub(crate) fn change_group_named(
        self: &Arc<Self>,
        name: &str,
        change: GroupChange,
    ) -> Result<GroupSettings, PoolError> {
        change.check()?;
        // The runtime's clock, read with no lock held (as `Group::set_rate_limit` does).
        let now = change.rate.map(|_| self.spawner.now());
        let mut s = self.section();
        let (st, after, core) = s.split();
        let not_found = || PoolError::GroupNotFound {
            pool: core.pool_name(),
            name: name.to_owned(),
        };
        let key = st.group_key(name).ok_or_else(not_found)?;
        if change.rate.is_some() && st.groups.get(key).is_some_and(|g| g.shed || g.settled) {
            return Err(PoolError::GroupEnded {
                pool: core.pool_name(),
                name: name.to_owned(),
            });
        }
        if let Some(g) = st.groups.get_mut(key) {
            if let Some(p) = change.priority {
                g.priority = p;
            }
            if let Some(w) = change.weight {
                g.weight = w;
            }
        }
        if let Some(cap) = change.num_concurrent {
            // Raising it may start workers now: they leave in `after`, once unlocked.
            st.set_num_concurrent(key, cap, core, after);
        }
        if let (Some(quota), Some(now)) = (change.rate, now) {
            // Ungating may start workers now: they leave in `after` too.
            st.set_group_rate(key, quota, now, core, after);
        }
        st.group_settings(key).ok_or_else(not_found)
    }
}

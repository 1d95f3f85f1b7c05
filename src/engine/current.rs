//! Which pool task, if any, the current thread is polling.
//!
//! Set around every poll of user code the engine makes (a task's future, a map closure call,
//! an item's future, a callback) and around the input pulls of map workers (inside the pool,
//! no task), so `current_task_id()` answers for all of them, and the own-task checks
//! ([`inside_pool`]) see every way user code can call back into its pool.

use crate::id::TaskId;
use std::cell::Cell;

/// Pool 0 means "not inside a pool"; a task id of `NO_TASK` means "inside the pool, in no
/// task" (a map worker pulling its input).
const NO_TASK: u64 = u64::MAX;

thread_local! {
    /// (pool serial + 1, task id).
    static CURRENT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The id of the pool task being polled on this thread, if any.
///
/// Works inside any future a pool runs, in a `map` closure call, and in callbacks. For a map
/// item, this is the item's own id.
///
/// ```
/// assert_eq!(async_taskpool::current_task_id(), None);
/// ```
pub fn current_task_id() -> Option<TaskId> {
    let (pool, id) = CURRENT.with(Cell::get);
    (pool != 0 && id != NO_TASK).then(|| TaskId::new(id))
}

/// Whether this thread is polling something of the pool with this serial: the one own-task
/// check, for every call that would wait for the caller itself.
pub(crate) fn inside_pool(serial: u64) -> bool {
    CURRENT.with(Cell::get).0 == serial + 1
}

/// Marks this thread as polling `task` (or no task) of pool `serial` until the guard drops
/// (also on unwind, so a panic cannot leave a stale marker behind).
#[inline]
pub(crate) fn enter(serial: u64, task: Option<TaskId>) -> Inside {
    let id = task.map_or(NO_TASK, TaskId::get);
    Inside(CURRENT.with(|c| c.replace((serial + 1, id))))
}

pub(crate) struct Inside((u64, u64));

impl Drop for Inside {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

//! What a control server steers: a `TaskPool` or a `SimpleTaskPool` of any output type.

use super::protocol::PoolKind;
use crate::{PoolError, SimpleTaskPool, TaskId, TaskPool};
use std::fmt;
use std::sync::Arc;

/// The pool a [`ControlServer`](super::ControlServer) steers. Made from a [`TaskPool`] or a
/// [`SimpleTaskPool`] (or a reference to one) with `into()`; it holds a handle to the pool,
/// so the pool stays open while the server runs.
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{control::ControlTarget, runtime::SmolSpawner, SimpleTaskPool, TaskPool};
/// let tasks: ControlTarget = TaskPool::new(SmolSpawner::global()).into();
/// let workers = SimpleTaskPool::new(SmolSpawner::global(), || async {});
/// let simple: ControlTarget = (&workers).into();
/// assert_eq!(simple.pool().name(), workers.as_task_pool().name());
/// # drop(tasks);
/// # }
/// ```
#[derive(Clone)]
pub struct ControlTarget {
    pool: TaskPool,
    simple: Option<Arc<dyn SimpleOps>>,
}

/// The SimpleTaskPool methods the server needs, with the output type erased.
pub(crate) trait SimpleOps: Send + Sync {
    fn start(&self, num: usize) -> Result<String, PoolError>;
    fn stop(&self, num: usize) -> Vec<TaskId>;
    fn func_name(&self) -> String;
}

impl<T: Send + 'static> SimpleOps for SimpleTaskPool<T> {
    fn start(&self, num: usize) -> Result<String, PoolError> {
        // The group detaches when dropped: its tasks run on, their outputs are dropped.
        SimpleTaskPool::start(self, num).map(|g| g.name().to_owned())
    }
    fn stop(&self, num: usize) -> Vec<TaskId> {
        SimpleTaskPool::stop(self, num)
    }
    fn func_name(&self) -> String {
        SimpleTaskPool::func_name(self).to_owned()
    }
}

impl ControlTarget {
    /// The underlying [`TaskPool`] (for a `SimpleTaskPool`, the one it wraps).
    pub fn pool(&self) -> &TaskPool {
        &self.pool
    }

    /// Which kind of pool this is.
    pub fn kind(&self) -> PoolKind {
        if self.simple.is_some() {
            PoolKind::Simple
        } else {
            PoolKind::Task
        }
    }

    pub(crate) fn simple(&self) -> Option<&dyn SimpleOps> {
        self.simple.as_deref()
    }

    /// The pool's executor, for the program's own commands to run on.
    // The only place the control server reaches into the engine; the pool has no public
    // accessor for its spawner.
    pub(crate) fn spawner(&self) -> std::sync::Arc<dyn async_taskpool_runtime::Spawner> {
        self.pool.core().spawner.clone()
    }
}

impl From<TaskPool> for ControlTarget {
    fn from(pool: TaskPool) -> Self {
        Self { pool, simple: None }
    }
}

impl From<&TaskPool> for ControlTarget {
    fn from(pool: &TaskPool) -> Self {
        pool.clone().into()
    }
}

impl<T: Send + 'static> From<SimpleTaskPool<T>> for ControlTarget {
    fn from(pool: SimpleTaskPool<T>) -> Self {
        Self {
            pool: pool.as_task_pool().clone(),
            simple: Some(Arc::new(pool)),
        }
    }
}

impl<T: Send + 'static> From<&SimpleTaskPool<T>> for ControlTarget {
    fn from(pool: &SimpleTaskPool<T>) -> Self {
        pool.clone().into()
    }
}

impl fmt::Debug for ControlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlTarget")
            .field("pool", &self.pool.name())
            .field("kind", &self.kind())
            .finish()
    }
}

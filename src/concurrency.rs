//! [`Concurrency`]: how many of a group's items may run at once.

use serde::{Deserialize, Serialize};

/// How many items of one group ([`map`](crate::TaskPool::map), `map_stream`, `try_map`) may
/// run at once: a fixed cap, or whatever the pool's limit allows.
///
/// Every method that takes a group's concurrency takes `impl Into<Concurrency>`, so a number
/// (`pool.map(items, 50, f)`) still reads as a cap. With [`Concurrency::PoolLimit`] the group
/// follows the pool: raise the pool's limit with [`TaskPool::set_limit`](crate::TaskPool::set_limit)
/// and the group runs more items at once; a cap of `50` stays 50 until
/// [`Group::set_num_concurrent`](crate::Group::set_num_concurrent) changes it.
///
/// `usize::MAX` means the same as `PoolLimit` (and converts to it).
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, Concurrency, TaskPool};
///
/// let pool = TaskPool::builder(TokioSpawner::current()).limit(4).build()?;
/// // As many at once as the pool allows, now and after any `set_limit`.
/// let all = pool.map(1..=100, Concurrency::PoolLimit, |x| async move { x * 2 })?;
/// assert_eq!(all.num_concurrent(), Concurrency::PoolLimit);
/// // A number is a cap.
/// let capped = pool.map(1..=10, 2, |x| async move { x })?;
/// assert_eq!(capped.num_concurrent(), Concurrency::AtMost(2));
/// assert_eq!(Concurrency::from(usize::MAX), Concurrency::PoolLimit);
/// # all.join().await?; capped.join().await?;
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Concurrency {
    /// As many items as the pool's limit lets run: no cap of the group's own. Follows
    /// [`TaskPool::set_limit`](crate::TaskPool::set_limit) at run time.
    PoolLimit,
    /// At most this many items at once (and never more than the pool's limit). Must be at
    /// least 1.
    AtMost(usize),
}

impl Concurrency {
    /// The cap as a number: `usize::MAX` for [`PoolLimit`](Self::PoolLimit).
    ///
    /// ```
    /// use async_taskpool::Concurrency;
    /// assert_eq!(Concurrency::AtMost(8).cap(), 8);
    /// assert_eq!(Concurrency::PoolLimit.cap(), usize::MAX);
    /// ```
    pub fn cap(self) -> usize {
        match self {
            Self::PoolLimit => usize::MAX,
            Self::AtMost(n) => n,
        }
    }

    pub(crate) fn from_cap(cap: usize) -> Self {
        Self::from(cap)
    }
}

impl From<usize> for Concurrency {
    /// `n` as a cap; `usize::MAX` is [`Concurrency::PoolLimit`].
    fn from(n: usize) -> Self {
        if n == usize::MAX {
            Self::PoolLimit
        } else {
            Self::AtMost(n)
        }
    }
}

impl Default for Concurrency {
    /// [`Concurrency::PoolLimit`].
    fn default() -> Self {
        Self::PoolLimit
    }
}

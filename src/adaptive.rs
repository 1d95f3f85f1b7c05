//! The pool's adaptive limit: [`PoolBuilder::adaptive_limit`] and the [`TaskPool`] methods
//! that show and steer it (the engine side is `engine/adaptive.rs`).

use crate::engine::adaptive_state::AdaptiveStats;
use crate::policy::{Limiter, PolicyError};
use crate::{PoolBuilder, TaskPool};

impl PoolBuilder {
    /// Lets `limiter` drive the pool's limit: each task that runs feeds it one
    /// [`Sample`](crate::policy::Sample) when it ends (its run time on the pool's runtime
    /// clock, its outcome, the tasks running), and the limit it returns becomes the pool's,
    /// always within the limiter's own `min..=max`. It replaces [`limit`](Self::limit): the
    /// pool starts at the limiter's initial limit.
    ///
    /// How a task's end reads to the limiter: completed is
    /// [`Ok`](crate::policy::SampleOutcome::Ok), unless the task called
    /// [`TaskPool::report_overload`] while it ran
    /// ([`Error`](crate::policy::SampleOutcome::Error): a 503, a refused connection); a
    /// panic is an `Error`; a run [timeout](crate::TaskBuilder::timeout) is
    /// [`TimedOut`](crate::policy::SampleOutcome::TimedOut); a task cancelled, shed or
    /// dropped by its runtime is [`Dropped`](crate::policy::SampleOutcome::Dropped) (the
    /// limiters ignore it). A task's output is not looked at: a `Result` that is an `Err`
    /// counts as `Ok` unless the task reported an overload. Loose tasks and group items
    /// feed it alike.
    ///
    /// At run time: [`TaskPool::set_limit`] turns the adaptive limit off (the fixed limit
    /// replaces it), [`TaskPool::set_adaptive_limit`] installs another limiter (or turns it
    /// back on), [`TaskPool::set_adaptive_bounds`] moves its bounds, and
    /// [`TaskPool::adaptive`] shows it.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Gradient, runtime::TokioSpawner, TaskPool};
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current())
    ///     .adaptive_limit(Gradient::builder(1, 100).initial(4).build()?)
    ///     .build()?;
    /// assert_eq!(pool.limit(), Some(4));
    /// for _ in 0..20 {
    ///     pool.exec(async {}).await?;
    /// }
    /// let limit = pool.limit().expect("an adaptive limit is a limit");
    /// assert!((1..=100).contains(&limit));
    /// assert_eq!(pool.adaptive().expect("set").samples, 20);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn adaptive_limit(mut self, limiter: impl Limiter + 'static) -> Self {
        self.adaptive = Some(Box::new(limiter));
        self
    }
}

impl TaskPool {
    /// The adaptive limit, if one is set: the limiter's name and bounds, the limit it chose
    /// last, and how many samples (and overload signals) it took in.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{policy::Aimd, runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::builder(SmolSpawner::global()).limit(4).build()?;
    /// assert_eq!(pool.adaptive(), None);
    /// pool.set_adaptive_limit(Aimd::builder(1, 20).initial(8).build()?);
    /// let a = pool.adaptive().expect("set now");
    /// assert_eq!((a.min, a.max, a.limit), (1, 20, 8));
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn adaptive(&self) -> Option<AdaptiveStats> {
        self.core().adaptive.stats()
    }

    /// Lets `limiter` drive the limit from now on (see [`PoolBuilder::adaptive_limit`]),
    /// replacing a fixed limit or another limiter; the pool's limit becomes the limiter's
    /// at once. The limiter replaced is dropped here.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{policy::Gradient, runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::builder(SmolSpawner::global()).limit(50).build()?;
    /// pool.set_adaptive_limit(Gradient::builder(2, 30).initial(10).build()?);
    /// assert_eq!(pool.limit(), Some(10));
    /// pool.set_limit(50)?; // a fixed limit again: the limiter is gone
    /// assert_eq!(pool.adaptive(), None);
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_adaptive_limit(&self, limiter: impl Limiter + 'static) {
        self.core().adaptive.install(self.core(), Box::new(limiter));
    }

    /// Moves the adaptive limit's bounds ([`Limiter::set_bounds`]); the limit is clamped
    /// into them at once.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Invalid`] unless `1 <= min <= max`, if the pool has no adaptive limit
    /// (set one with [`set_adaptive_limit`](Self::set_adaptive_limit)), or if its limiter
    /// cannot change its bounds.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{policy::Aimd, runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::builder(SmolSpawner::global())
    ///     .adaptive_limit(Aimd::builder(1, 100).initial(60).build()?)
    ///     .build()?;
    /// pool.set_adaptive_bounds(5, 40)?;
    /// assert_eq!(pool.limit(), Some(40));
    /// assert!(pool.set_adaptive_bounds(10, 5).is_err());
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_adaptive_bounds(&self, min: usize, max: usize) -> Result<(), PolicyError> {
        self.core().adaptive.set_bounds(self.core(), min, max)
    }

    /// Called from inside one of this pool's tasks (a loose task or a group's item): its
    /// sample tells the adaptive limiter the backend is overloaded
    /// ([`SampleOutcome::Error`](crate::policy::SampleOutcome::Error)) even if the task
    /// completes, e.g. on an HTTP 503. Returns whether it was taken: `false` outside the
    /// pool's tasks or without an adaptive limit.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{policy::Aimd, runtime::TokioSpawner, TaskPool};
    /// let pool = TaskPool::builder(TokioSpawner::current())
    ///     .adaptive_limit(Aimd::builder(1, 100).initial(10).backoff(0.5).build()?)
    ///     .build()?;
    /// let p = pool.clone();
    /// let status = pool.exec(async move {
    ///     let status = 503; // what the backend answered
    ///     if status == 503 {
    ///         assert!(p.report_overload());
    ///     }
    ///     status
    /// }).await?;
    /// assert_eq!(pool.limit(), Some(5));
    /// assert!(!pool.report_overload()); // not from one of its tasks
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn report_overload(&self) -> bool {
        let core = self.core();
        match crate::current_task_id() {
            Some(id) if crate::engine::current::inside_pool(core.serial) => {
                core.adaptive.report(id)
            }
            _ => false,
        }
    }
}

#[cfg(all(test, feature = "tokio", not(loom)))]
mod tests {
    use crate::policy::Aimd;
    use crate::pool::TaskPool;
    use crate::runtime::TokioSpawner;

    /// A task that started before the limiter was set has no stamp, so it is no sample; the
    /// overload it reports must still not stay behind once it ended.
    #[test]
    fn the_report_of_a_task_started_before_the_limiter_goes_when_it_ends() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = TaskPool::new(TokioSpawner::current());
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            let p = pool.clone();
            let handle = pool
                .spawn(async move {
                    started_tx.send(()).unwrap();
                    go_rx.await.unwrap();
                    p.report_overload()
                })
                .await
                .unwrap();
            started_rx.await.unwrap();
            pool.set_adaptive_limit(Aimd::builder(1, 10).build().unwrap());
            go_tx.send(()).unwrap();
            assert!(handle.await.unwrap(), "the report counts: a limiter is set");
            let adaptive = &pool.core().adaptive;
            assert_eq!(adaptive.pending_reports(), 0);
            assert_eq!(adaptive.stats().unwrap().samples, 0, "no stamp, no sample");
        });
    }
}

use super::{BackgroundError, BackgroundTask, BackgroundTaskBuilder};
use async_taskpool_runtime::Spawner;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a [`PeriodicTask`] does when a tick could not run on time (because the previous one
/// ran longer than the interval, or the executor was busy).
///
/// With an interval of 10 s and a tick that once takes 25 s (starting at 0 s):
///
/// | behaviour | the next ticks start at       |
/// |-----------|-------------------------------|
/// | `Skip`    | 30 s, 40 s, 50 s …            |
/// | `Burst`   | 25 s, 25 s (back to back), 30 s, 40 s … |
/// | `Delay`   | 35 s, 45 s … (each run + 10 s) |
///
/// ```
/// use async_taskpool::MissedTickBehavior;
/// assert_eq!(MissedTickBehavior::default(), MissedTickBehavior::Skip);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MissedTickBehavior {
    /// Drop the missed ticks and keep to the original schedule: the next tick runs at the
    /// next multiple of the interval from the start. Never runs ticks back to back.
    #[default]
    Skip,
    /// Run every missed tick, back to back, until caught up with the original schedule.
    Burst,
    /// Wait one full interval after each tick ends: the interval is the pause between ticks
    /// (concurrent_tasks' `PeriodicTask`), and the schedule drifts by each tick's duration.
    Delay,
}

impl MissedTickBehavior {
    /// When the tick after the one due at `due` should run, given that it ended at `now`.
    fn next(self, due: Instant, now: Instant, interval: Duration) -> Instant {
        let after_now = now.checked_add(interval).unwrap_or(now);
        let Some(next) = due.checked_add(interval) else {
            return after_now;
        };
        match self {
            Self::Burst => next,
            Self::Delay => after_now,
            Self::Skip if next >= now => next,
            Self::Skip => {
                // The first point of the schedule at or after `now`.
                let behind = (now - next).as_nanos().div_ceil(interval.as_nanos());
                u32::try_from(behind)
                    .ok()
                    .and_then(|n| interval.checked_mul(n))
                    .and_then(|d| next.checked_add(d))
                    .unwrap_or(after_now)
            }
        }
    }
}

/// Runs an async closure every interval until dropped or stopped (concurrent_tasks'
/// `PeriodicTask`): heartbeats, cache refreshes, metrics flushes.
///
/// It is a [`BackgroundTask`] running a tick loop, so it has the same guard semantics.
///
/// # Guarantees
/// - The first tick runs at once; the next ones follow the interval and the
///   [`MissedTickBehavior`] (default [`Skip`](MissedTickBehavior::Skip)). Ticks never overlap:
///   a tick starts only after the previous one finished.
/// - Timing uses the spawner's own timer ([`Spawner::sleep`]), so it runs on any executor. A
///   tick never starts before its due time.
/// - A tick that panics ends the task; the panic is logged and returned by
///   [`stop`](Self::stop) and [`join`](Self::join). Handle errors inside the closure if the
///   loop should go on.
/// - Dropping the `PeriodicTask` cancels it, in the middle of a tick if need be.
///
/// # When not to use it
/// For work that must run at wall-clock times (cron-like), or survive a restart of the
/// process, use a scheduler. For a loop that decides its own pace, use a [`BackgroundTask`].
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, PeriodicTask};
/// use std::time::Duration;
///
/// let heartbeat = PeriodicTask::spawn(TokioSpawner::current(), Duration::from_millis(10), || async {
///     println!("still alive");
/// })?;
/// tokio::time::sleep(Duration::from_millis(25)).await;
/// heartbeat.stop().await?;
/// assert!(heartbeat.ticks() >= 1); // the first tick runs at once
/// # Ok::<_, async_taskpool::BackgroundError>(())
/// # }).unwrap(); }
/// ```
#[must_use = "dropping a PeriodicTask cancels it"]
pub struct PeriodicTask {
    task: BackgroundTask<()>,
    ticks: Arc<AtomicU64>,
    interval: Duration,
    missed: MissedTickBehavior,
}

impl PeriodicTask {
    /// Runs `tick()` now and then every `interval`, skipping missed ticks.
    /// [`BackgroundError::InvalidInterval`] for a zero interval.
    pub fn spawn<C, F>(
        spawner: impl Spawner,
        interval: Duration,
        tick: C,
    ) -> Result<Self, BackgroundError>
    where
        C: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        Self::builder(spawner, interval).spawn(tick)
    }

    /// A builder, to choose the [`MissedTickBehavior`] or a name.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{runtime::SmolSpawner, MissedTickBehavior, PeriodicTask};
    /// use std::time::Duration;
    ///
    /// let flush = PeriodicTask::builder(SmolSpawner::global(), Duration::from_secs(1))
    ///     .name("metrics-flush")
    ///     .missed_ticks(MissedTickBehavior::Delay)
    ///     .spawn(|| async { /* flush */ })?;
    /// assert_eq!(flush.name(), "metrics-flush");
    /// # }
    /// # Ok::<_, async_taskpool::BackgroundError>(())
    /// ```
    pub fn builder(spawner: impl Spawner, interval: Duration) -> PeriodicTaskBuilder {
        PeriodicTaskBuilder {
            spawner: Arc::new(spawner),
            name: None,
            interval,
            missed: MissedTickBehavior::default(),
        }
    }

    /// Ticks completed so far, over all runs (restarts do not reset it).
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Acquire)
    }

    /// The interval between ticks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The behaviour chosen for missed ticks.
    pub fn missed_ticks(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Whether the tick loop is still going.
    pub fn is_running(&self) -> bool {
        self.task.is_running()
    }

    /// The task's name, used in its log events.
    pub fn name(&self) -> &str {
        self.task.name()
    }

    /// Cancels the loop (in the middle of a tick if need be) and returns once it has ended.
    /// Returns the error if a tick had panicked; see [`BackgroundTask::stop`].
    pub async fn stop(&self) -> Result<(), BackgroundError> {
        self.task.stop().await.map(drop)
    }

    /// Waits until the loop ends, which it only does when a tick panics or the task is
    /// stopped, and returns why (see [`BackgroundTask::join`]).
    pub async fn join(&self) -> BackgroundError {
        match self.task.join().await {
            Err(e) => e,
            Ok(()) => unreachable!("the tick loop never returns"),
        }
    }

    /// Stops the loop, waiting for its end, and starts it again: the first tick of the new
    /// run is at once. See [`BackgroundTask::restart`].
    pub async fn restart(&self) -> Result<(), BackgroundError> {
        self.task.restart().await
    }
}

impl fmt::Debug for PeriodicTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicTask")
            .field("name", &self.name())
            .field("interval", &self.interval)
            .field("missed_ticks", &self.missed)
            .field("ticks", &self.ticks())
            .field("running", &self.is_running())
            .finish()
    }
}

/// Options for a [`PeriodicTask`]. Made by [`PeriodicTask::builder`].
#[must_use = "a builder does nothing until `spawn` is called"]
pub struct PeriodicTaskBuilder {
    spawner: Arc<dyn Spawner>,
    name: Option<String>,
    interval: Duration,
    missed: MissedTickBehavior,
}

impl PeriodicTaskBuilder {
    /// The name used in logs (default `BackgroundTask-{k}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// What to do when ticks are missed (default [`MissedTickBehavior::Skip`]).
    pub fn missed_ticks(mut self, behavior: MissedTickBehavior) -> Self {
        self.missed = behavior;
        self
    }

    /// Starts the loop: `tick()` now, then every interval.
    /// [`BackgroundError::InvalidInterval`] for a zero interval.
    pub fn spawn<C, F>(self, tick: C) -> Result<PeriodicTask, BackgroundError>
    where
        C: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            spawner,
            name,
            interval,
            missed,
        } = self;
        if interval.is_zero() {
            return Err(BackgroundError::InvalidInterval {
                name: name.unwrap_or_else(|| "(unnamed)".into()),
                interval,
            });
        }
        let mut task = BackgroundTaskBuilder::new(spawner.clone());
        if let Some(name) = name {
            task = task.name(name);
        }
        let ticks = Arc::new(AtomicU64::new(0));
        let tick = Arc::new(tick);
        let counter = ticks.clone();
        let task = task.spawn_with(move || {
            tick_loop(
                spawner.clone(),
                interval,
                missed,
                tick.clone(),
                counter.clone(),
            )
        });
        Ok(PeriodicTask {
            task,
            ticks,
            interval,
            missed,
        })
    }
}

impl fmt::Debug for PeriodicTaskBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicTaskBuilder")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("missed_ticks", &self.missed)
            .finish_non_exhaustive()
    }
}

async fn tick_loop<C, F>(
    timer: Arc<dyn Spawner>,
    interval: Duration,
    missed: MissedTickBehavior,
    tick: Arc<C>,
    ticks: Arc<AtomicU64>,
) where
    C: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let mut due = Instant::now();
    loop {
        if !sleep_until(&*timer, due).await {
            // Due already (a burst): let the executor run others between back-to-back ticks.
            crate::engine::yield_now::yield_now().await;
        }
        tick().await;
        ticks.fetch_add(1, Ordering::AcqRel);
        due = missed.next(due, Instant::now(), interval);
    }
}

/// Sleeps until `deadline`; returns whether it slept at all.
async fn sleep_until(timer: &dyn Spawner, deadline: Instant) -> bool {
    let mut slept = false;
    // Each round sleeps the whole remaining time; a second round happens only if a timer
    // fires early.
    loop {
        let now = Instant::now();
        if now >= deadline {
            return slept;
        }
        timer.sleep(deadline - now).await;
        slept = true;
    }
}

#[cfg(test)]
mod tests {
    use super::MissedTickBehavior::{Burst, Delay, Skip};
    use std::time::{Duration, Instant};

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn on_time_ticks_follow_the_schedule_for_every_behaviour() {
        let t0 = Instant::now();
        // The tick due at 0 s ended at 2 s, before the next one is due at 10 s.
        for b in [Skip, Burst] {
            assert_eq!(b.next(t0, t0 + 2 * S, 10 * S), t0 + 10 * S);
        }
        assert_eq!(Delay.next(t0, t0 + 2 * S, 10 * S), t0 + 12 * S);
    }

    #[test]
    fn missed_ticks_are_skipped_caught_up_or_delayed() {
        let t0 = Instant::now();
        // The tick due at 0 s ended at 25 s: the ones due at 10 s and 20 s were missed.
        assert_eq!(Skip.next(t0, t0 + 25 * S, 10 * S), t0 + 30 * S);
        assert_eq!(Burst.next(t0, t0 + 25 * S, 10 * S), t0 + 10 * S);
        assert_eq!(Burst.next(t0 + 10 * S, t0 + 25 * S, 10 * S), t0 + 20 * S);
        assert_eq!(Burst.next(t0 + 20 * S, t0 + 25 * S, 10 * S), t0 + 30 * S);
        assert_eq!(Delay.next(t0, t0 + 25 * S, 10 * S), t0 + 35 * S);
        // Ending exactly on a point of the schedule: that tick is due now, not skipped.
        assert_eq!(Skip.next(t0, t0 + 20 * S, 10 * S), t0 + 20 * S);
        assert_eq!(Skip.next(t0, t0 + 10 * S, 10 * S), t0 + 10 * S);
    }
}

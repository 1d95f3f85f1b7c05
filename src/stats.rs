//! Introspection snapshots; all serialize with serde.

use crate::id::TaskId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A snapshot of a pool, taken atomically.
///
/// The `ended`, `cancelled`, `panicked` and `timed_out` counters cover tasks that ended since
/// the last [`flush`](crate::TaskPool::flush); `submitted` counts every task id ever handed out.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// let pool = TaskPool::builder(TokioSpawner::current()).name("crawler").limit(4).build().unwrap();
/// let stats = pool.stats();
/// assert_eq!(stats.limit, Some(4));
/// let json = serde_json::to_string(&stats).unwrap();
/// assert!(json.contains("\"name\":\"crawler\""));
/// # }); }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// The maximum number of tasks running at once; `None` is unlimited.
    pub limit: Option<usize>,
    /// Tasks whose future is running now.
    pub running: usize,
    /// Tasks waiting for room: queued loose tasks and `SimpleTaskPool::start` items (they
    /// have ids).
    pub queued: usize,
    /// Items of `map` and `apply` groups not yet pulled from their input, waiting for room:
    /// exact for inputs that know their length (ranges, collections), else a lower bound
    /// from the input's size hint. They get ids when they start.
    #[serde(default)]
    pub backlog: u64,
    /// Tasks whose future is done but whose callbacks still run.
    pub ending: usize,
    /// Tasks ended since the last flush, whatever the outcome.
    pub ended: u64,
    /// Of `ended`: cancelled.
    pub cancelled: u64,
    /// Of `ended`: panicked.
    pub panicked: u64,
    /// Of `ended`: timed out.
    pub timed_out: u64,
    /// Of `ended`: dropped by their runtime (it shut down) or refused by it.
    #[serde(default)]
    pub dropped: u64,
    /// Of `ended`: shed, because they could not start within their `max_queue_wait`
    /// ([`TaskError::Shed`](crate::TaskError::Shed)).
    #[serde(default)]
    pub shed: u64,
    /// Retries since the last flush: attempts of retried tasks that ended and were given
    /// another (see [`TaskBuilder::retry`](crate::TaskBuilder::retry)). Not counted in
    /// `ended`: a task counts there once, at its final outcome.
    #[serde(default)]
    pub retried: u64,
    /// Retried tasks waiting out their backoff between attempts now (they hold no slot and
    /// are not counted in `running` or `queued`).
    #[serde(default)]
    pub retrying: usize,
    /// Task ids handed out so far.
    pub submitted: u64,
    /// Whether new work is refused until `unlock`.
    pub locked: bool,
    /// Whether the pool is closed for good.
    pub closed: bool,
    /// Whether the limit is reached.
    pub is_full: bool,
    /// Names of the groups the pool knows (running, or ended and not yet flushed).
    pub groups: Vec<String>,
    /// The loose tasks' weight in the pool's shares (see
    /// [`PoolBuilder::loose_weight`](crate::PoolBuilder::loose_weight)); 1 in snapshots from
    /// versions before this field.
    #[serde(default = "weight_one")]
    pub loose_weight: u32,
    /// How long tasks that started since the last flush waited for a slot; `None` unless
    /// the pool was built with [`track_durations`](crate::PoolBuilder::track_durations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_wait: Option<DurationStats>,
    /// How long tasks that ended since the last flush ran (from their start to their end,
    /// callbacks included); `None` unless the pool tracks durations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_time: Option<DurationStats>,
}

/// A live task, as listed by [`TaskPool::tasks`](crate::TaskPool::tasks).
///
/// ```
/// use async_taskpool::{TaskId, TaskInfo, TaskState};
/// let info: TaskInfo = serde_json::from_str(
///     r#"{"id":3,"name":"TaskPool-0_Task-3","group":null,"state":"running"}"#).unwrap();
/// assert_eq!(info.id, TaskId::new(3));
/// assert_eq!(info.state, TaskState::Running);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Its name: the custom one, or `{pool}_Task-{id}`.
    pub name: String,
    /// The group it belongs to, if any.
    pub group: Option<String>,
    /// Where it is in its life.
    pub state: TaskState,
    /// How long it waited for a slot (so far, if it still waits); `None` unless the pool
    /// was built with [`track_durations`](crate::PoolBuilder::track_durations). In JSON,
    /// `queue_wait_secs`.
    #[serde(
        default,
        rename = "queue_wait_secs",
        with = "secs_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_wait: Option<Duration>,
    /// How long it has run since it started; `None` while it waits, or unless the pool
    /// tracks durations. In JSON, `run_time_secs`.
    #[serde(
        default,
        rename = "run_time_secs",
        with = "secs_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub run_time: Option<Duration>,
    /// The attempt it is on, from 1: a retried task (see
    /// [`TaskBuilder::retry`](crate::TaskBuilder::retry)) goes past 1; in its backoff, the
    /// attempt that just failed.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

impl TaskInfo {
    /// How long ago it got its id: its queue wait and run time so far (`None` unless the
    /// pool tracks durations).
    ///
    /// ```
    /// use async_taskpool::TaskInfo;
    /// use std::time::Duration;
    /// let info: TaskInfo = serde_json::from_str(
    ///     r#"{"id":3,"name":"t","group":null,"state":"running","queue_wait_secs":0.5,"run_time_secs":2.0}"#,
    /// ).unwrap();
    /// assert_eq!(info.age(), Some(Duration::from_millis(2500)));
    /// ```
    pub fn age(&self) -> Option<Duration> {
        Some(self.queue_wait? + self.run_time.unwrap_or_default())
    }
}

/// Percentiles of a set of durations (queue waits or run times), from a histogram with two
/// significant digits at microsecond resolution. In JSON, each duration is in seconds.
///
/// ```
/// use async_taskpool::DurationStats;
/// use std::time::Duration;
/// let s: DurationStats = serde_json::from_str(
///     r#"{"count":10,"p50":0.001,"p90":0.002,"p99":0.01,"max":0.01}"#).unwrap();
/// assert_eq!(s.p50, Duration::from_millis(1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DurationStats {
    /// How many durations were recorded.
    pub count: u64,
    /// The median.
    #[serde(with = "secs")]
    pub p50: Duration,
    /// The 90th percentile.
    #[serde(with = "secs")]
    pub p90: Duration,
    /// The 99th percentile.
    #[serde(with = "secs")]
    pub p99: Duration,
    /// The longest.
    #[serde(with = "secs")]
    pub max: Duration,
}

/// One group of a pool, as [`TaskPool::group_stats`](crate::TaskPool::group_stats) sees it:
/// its progress, its scheduling settings as they are now (set by its builder, its
/// [`Group`](crate::Group) handle or the control server), and, if the pool tracks durations,
/// its items' queue-wait and run-time percentiles.
///
/// In JSON, `num_concurrent` is a number, or `null` for
/// [`Concurrency::PoolLimit`](crate::Concurrency::PoolLimit).
///
/// ```
/// use async_taskpool::{Concurrency, GroupStats};
/// let g: GroupStats = serde_json::from_str(
///     r#"{"name":"resize","live":2,"queued":0,"backlog":5,"done":3,"total":10,"cancelled":false,
///         "priority":5,"weight":3,"num_concurrent":null,
///         "rate_limit":{"count":10,"period_ms":1000,"burst":2}}"#,
/// ).unwrap();
/// assert_eq!((g.done, g.total), (3, Some(10)));
/// let quota = async_taskpool::policy::Quota::per_second(10)?.burst(2)?;
/// assert_eq!(g.rate_limit, Some(quota));
/// assert_eq!((g.priority, g.weight, g.num_concurrent), (5, 3, Concurrency::PoolLimit));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Items running or ending.
    pub live: u64,
    /// Items with ids waiting for room (`SimpleTaskPool::start` items).
    pub queued: u64,
    /// Items not yet pulled from the input (a lower bound for inputs that do not know
    /// their length), and items pulled ahead that have not started.
    pub backlog: u64,
    /// Items that ended, however they ended.
    pub done: u64,
    /// `done + live + queued + backlog` when the input knows its length (ranges,
    /// collections, `apply`, `start`) or has ended; else `None`.
    pub total: Option<u64>,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// Its priority while its items wait for slots (higher starts first); 0 in snapshots
    /// from versions before this field.
    #[serde(default)]
    pub priority: i32,
    /// Its weight in the pool's shares; 1 in snapshots from versions before this field.
    #[serde(default = "weight_one")]
    pub weight: u32,
    /// How many of its items may run at once: a cap, or
    /// [`PoolLimit`](crate::Concurrency::PoolLimit) (also in snapshots from versions before
    /// this field).
    #[serde(default, with = "cap_or_null")]
    pub num_concurrent: crate::concurrency::Concurrency,
    /// Its rate limit in force (see
    /// [`GroupBuilder::rate_limit`](crate::GroupBuilder::rate_limit)), or `None`: none, or
    /// the group ended. In JSON `{"count", "period_ms", "burst"}` (`count` starts per
    /// `period_ms` milliseconds, bursts of up to `burst`), or `null`.
    #[serde(default, with = "quota_or_null")]
    pub rate_limit: Option<crate::policy::Quota>,
    /// Its items' queue waits (see [`PoolStats::queue_wait`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_wait: Option<DurationStats>,
    /// Its items' run times (see [`PoolStats::run_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_time: Option<DurationStats>,
}

fn weight_one() -> u32 {
    1
}

/// A group's concurrency as a number, or `null` for `Concurrency::PoolLimit` (as `null` is
/// "no limit" for the pool's own).
mod cap_or_null {
    use crate::concurrency::Concurrency;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(c: &Concurrency, s: S) -> Result<S::Ok, S::Error> {
        match c {
            Concurrency::AtMost(n) => s.serialize_some(n),
            _ => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Concurrency, D::Error> {
        Ok(Option::<usize>::deserialize(d)?.map_or(Concurrency::PoolLimit, Concurrency::from))
    }
}

/// A rate quota as `{"count", "period_ms", "burst"}`, or `null`: the shape the control
/// server's `group-settings` takes and shows.
pub(crate) mod quota_or_null {
    use crate::policy::Quota;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    /// A quota as counted on the wire.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Parts {
        count: u64,
        period_ms: Millis,
        #[serde(default)]
        burst: Option<u64>,
    }

    /// Milliseconds: whole, or a fraction (to the nanosecond).
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub(crate) enum Millis {
        Whole(u64),
        Fraction(f64),
    }

    impl Millis {
        pub(crate) fn as_f64(self) -> f64 {
            match self {
                Millis::Whole(n) => n as f64,
                Millis::Fraction(f) => f,
            }
        }
    }

    /// `quota` as `count` starts per `period_ms`: the smallest whole count per second,
    /// minute, hour or day that gives its interval exactly, else one per interval.
    pub(crate) fn parts(quota: &Quota) -> (u32, Millis) {
        const SECOND: u64 = 1_000_000_000;
        for period in [SECOND, 60 * SECOND, 3_600 * SECOND, 86_400 * SECOND] {
            let interval = quota.interval().as_nanos().max(1);
            let count = (u128::from(period) + interval / 2) / interval;
            let Ok(count) = u32::try_from(count) else {
                continue;
            };
            let period = Duration::from_nanos(period);
            if count > 0
                && Quota::new(count, period).is_ok_and(|q| q.interval() == quota.interval())
            {
                return (count, millis(period));
            }
        }
        (1, millis(quota.interval()))
    }

    /// Milliseconds, whole if they are, else to the nanosecond.
    fn millis(d: Duration) -> Millis {
        let ns = d.as_nanos();
        if ns % 1_000_000 == 0 {
            Millis::Whole(u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX))
        } else {
            Millis::Fraction(ns as f64 / 1e6)
        }
    }

    /// `count` starts per `period_ms` milliseconds (a fraction to the nanosecond), bursts
    /// of `burst` (default `count`); the message says what was wrong.
    pub(crate) fn from_parts(
        count: u64,
        period_ms: f64,
        burst: Option<u64>,
    ) -> Result<Quota, String> {
        let count = u32::try_from(count).map_err(|_| format!("count {count} is too large"))?;
        let ns = period_ms * 1e6;
        if !ns.is_finite() || ns < 0.5 || ns >= u64::MAX as f64 {
            return Err(format!("period_ms {period_ms} is not a length of time"));
        }
        let period = Duration::from_nanos(ns.round() as u64);
        let quota = Quota::new(count, period).map_err(|e| e.to_string())?;
        match burst {
            None => Ok(quota),
            Some(b) => {
                let b = u32::try_from(b).map_err(|_| format!("burst {b} is too large"))?;
                quota.burst(b).map_err(|e| e.to_string())
            }
        }
    }

    pub(crate) fn serialize<S: Serializer>(q: &Option<Quota>, s: S) -> Result<S::Ok, S::Error> {
        match q {
            Some(q) => {
                let (count, period_ms) = parts(q);
                s.serialize_some(&Parts {
                    count: count.into(),
                    period_ms,
                    burst: Some(q.max_burst().into()),
                })
            }
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Quota>, D::Error> {
        Option::<Parts>::deserialize(d)?
            .map(|p| {
                from_parts(p.count, p.period_ms.as_f64(), p.burst).map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// Durations as seconds (a float) in serde formats.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Optional durations as seconds, or `null`.
mod secs_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Where a live task is in its life.
///
/// ```
/// assert_eq!(serde_json::to_string(&async_taskpool::TaskState::Queued).unwrap(), "\"queued\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting for room.
    Queued,
    /// Its future is running.
    Running,
    /// Its future is done; callbacks are running.
    Ending,
    /// A retried task between attempts: it waits out its backoff, holding no slot, then
    /// queues again for its next attempt.
    Backoff,
}

/// How the items of a [`Group`](crate::Group) ended; returned by
/// [`Group::join`](crate::Group::join).
///
/// ```
/// let s = async_taskpool::GroupSummary::default();
/// assert_eq!(s.total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupSummary {
    /// Items whose future returned.
    pub completed: u64,
    /// Items cancelled.
    pub cancelled: u64,
    /// Items that panicked.
    pub panicked: u64,
    /// Items that timed out.
    pub timed_out: u64,
    /// Items dropped by their runtime (it shut down) or refused by it.
    #[serde(default)]
    pub dropped: u64,
    /// Items shed: they could not start within the group's `max_queue_wait`
    /// ([`TaskError::Shed`](crate::TaskError::Shed)).
    #[serde(default)]
    pub shed: u64,
    /// Items of a cancelled `map` or `apply` that never started: pulled but not run, or left
    /// in the input (exact for inputs that know their length, else a lower bound from the
    /// input's size hint). They have no ids and no results, and are not in [`total`].
    ///
    /// [`total`]: GroupSummary::total
    #[serde(default)]
    pub not_started: u64,
}

impl GroupSummary {
    /// All items that ended (`not_started` ones never did).
    pub fn total(&self) -> u64 {
        self.completed + self.cancelled + self.panicked + self.timed_out + self.dropped + self.shed
    }
}

#[cfg(test)]
mod tests {
    use super::quota_or_null::{from_parts, parts, Millis};
    use crate::policy::Quota;
    use std::time::Duration;

    #[test]
    fn quotas_show_as_they_are_typed_and_read_back_exactly() {
        let q = |count, ms| Quota::new(count, Duration::from_millis(ms)).unwrap();
        for (quota, count, ms) in [
            (q(10, 1_000), 10, Millis::Whole(1_000)),
            (q(3, 1_000), 3, Millis::Whole(1_000)),
            (q(30, 60_000), 30, Millis::Whole(60_000)),
            (q(2, 3_600_000), 2, Millis::Whole(3_600_000)),
            (q(1, 86_400_000), 1, Millis::Whole(86_400_000)),
            (q(1, 2_500), 24, Millis::Whole(60_000)),
            (q(3, 7), 1_542_857, Millis::Whole(3_600_000)),
            (q(3, 7_000), 1, Millis::Fraction(2_333.333333)),
            (q(1, 172_800_000), 1, Millis::Whole(172_800_000)),
        ] {
            let quota = quota.burst(4).unwrap();
            assert_eq!(parts(&quota), (count, ms), "{quota:?}");
            let back = from_parts(count.into(), ms.as_f64(), Some(4)).unwrap();
            assert_eq!(back, quota);
        }
        assert!(from_parts(0, 1.0, None).is_err());
        assert!(from_parts(1, 0.0, None).is_err());
        assert!(from_parts(1, f64::NAN, None).is_err());
        assert!(from_parts(1, 1.0, Some(0)).is_err());
        assert!(from_parts(u64::MAX, 1.0, None).is_err());
    }
}

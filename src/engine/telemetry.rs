//! The `metrics` feature's glue: a pool's counters, gauges and histograms, registered once
//! when the pool is built (with the recorder installed then: global, or a local one in
//! scope) and updated by the engine's hooks below. Without the feature every hook is an
//! empty inline function.
//!
//! A recorder is the application's code, so every hook runs with no pool lock held (the
//! engine calls them where it logs a task's start and end). Gauges move by increments and
//! decrements, never by `set` from a value read under the lock, so concurrent updates commute
//! and the gauge is exact once the pool is quiet.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `taskpool_tasks_submitted_total` | counter | `pool`, `kind` |
//! | `taskpool_tasks_started_total` | counter | `pool`, `kind` |
//! | `taskpool_tasks_ended_total` | counter | `pool`, `kind`, `outcome` |
//! | `taskpool_tasks_rejected_total` | counter | `pool`, `reason` |
//! | `taskpool_tasks_running` | gauge | `pool` |
//! | `taskpool_tasks_queued` | gauge | `pool` |
//! | `taskpool_limit` | gauge | `pool` |
//! | `taskpool_queue_wait_seconds` | histogram | `pool` |
//! | `taskpool_run_seconds` | histogram | `pool` |
//!
//! `kind` is `task` (spawn, spawn_queued, try_spawn, exec), `map`, `apply` or `start`;
//! `outcome` is `ok`, `panicked`, `cancelled`, `timed_out` or `dropped`; `reason` is `full`,
//! `locked` or `closed`. Group names and task ids are never labels (unbounded).

use super::outcome::{GroupKind, Outcome};

/// What kind of work a task is, for the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Task,
    Group(GroupKind),
}

impl Kind {
    #[cfg(feature = "metrics")]
    fn index(self) -> usize {
        match self {
            Kind::Task => 0,
            Kind::Group(GroupKind::Map) => 1,
            Kind::Group(GroupKind::Apply) => 2,
            Kind::Group(GroupKind::Start) => 3,
        }
    }
}

/// Why `try_spawn` refused a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Full,
    Locked,
    Closed,
}

/// Which histogram a duration sample goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sample {
    QueueWait(u64),
    Run(u64),
}

#[cfg(feature = "metrics")]
pub(crate) use on::Telemetry;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::Telemetry;

#[cfg(feature = "metrics")]
mod on {
    use super::{Kind, Outcome, Rejection, Sample};
    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Unit};

    /// Each metric's help text (Prometheus `# HELP`), and its unit for histograms.
    const DESCRIPTIONS: [(&str, Option<Unit>, &str); 9] = [
        (
            "taskpool_tasks_submitted_total",
            None,
            "Task ids handed out by the pool",
        ),
        (
            "taskpool_tasks_started_total",
            None,
            "Tasks whose future started running",
        ),
        (
            "taskpool_tasks_ended_total",
            None,
            "Tasks that ended, by outcome",
        ),
        (
            "taskpool_tasks_rejected_total",
            None,
            "Tasks try_spawn refused, by reason",
        ),
        (
            "taskpool_tasks_running",
            None,
            "Tasks started and not ended",
        ),
        (
            "taskpool_tasks_queued",
            None,
            "Tasks with ids waiting for room",
        ),
        ("taskpool_limit", None, "The pool's limit (+Inf: none)"),
        (
            "taskpool_queue_wait_seconds",
            Some(Unit::Seconds),
            "Time tasks waited for a slot",
        ),
        (
            "taskpool_run_seconds",
            Some(Unit::Seconds),
            "Time from a task's start to its end",
        ),
    ];

    const KINDS: [&str; 4] = ["task", "map", "apply", "start"];
    const OUTCOMES: [&str; 6] = [
        "ok",
        "panicked",
        "cancelled",
        "timed_out",
        "dropped",
        "shed",
    ];
    const REASONS: [&str; 3] = ["full", "locked", "closed"];

    fn outcome_index(o: Outcome) -> usize {
        match o {
            Outcome::Completed => 0,
            Outcome::Panicked => 1,
            Outcome::Cancelled => 2,
            Outcome::TimedOut => 3,
            Outcome::Dropped => 4,
            Outcome::Shed => 5,
        }
    }

    /// A pool's metric handles.
    pub(crate) struct Telemetry {
        submitted: [Counter; 4],
        started: [Counter; 4],
        ended: [[Counter; 6]; 4],
        rejected: [Counter; 3],
        running: Gauge,
        queued: Gauge,
        limit: Gauge,
        queue_wait: Histogram,
        run: Histogram,
    }

    impl std::fmt::Debug for Telemetry {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Telemetry").finish_non_exhaustive()
        }
    }

    impl Telemetry {
        /// Registers the pool's metrics with the recorder in scope (a no-op recorder if none
        /// is installed: the handles then do nothing); with `enabled` false, registers nothing.
        pub(crate) fn new(pool: &str, limit: Option<usize>, enabled: bool) -> Self {
            if !enabled {
                return Self::silent();
            }
            let meta = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
            metrics::with_recorder(|r| {
                for (name, unit, help) in DESCRIPTIONS {
                    let name = KeyName::from(name);
                    match unit {
                        Some(unit) => r.describe_histogram(name, Some(unit), help.into()),
                        None if name.as_str().ends_with("_total") => {
                            r.describe_counter(name, None, help.into())
                        }
                        None => r.describe_gauge(name, None, help.into()),
                    }
                }
                let key = |name: &'static str, extra: &[(&'static str, &'static str)]| {
                    let mut labels = vec![Label::new("pool", pool.to_owned())];
                    labels.extend(extra.iter().map(|&(k, v)| Label::new(k, v)));
                    Key::from_parts(name, labels)
                };
                let counter = |name, extra: &[(&'static str, &'static str)]| {
                    r.register_counter(&key(name, extra), &meta)
                };
                let per_kind = |name| KINDS.map(|k| counter(name, &[("kind", k)]));
                let t = Self {
                    submitted: per_kind("taskpool_tasks_submitted_total"),
                    started: per_kind("taskpool_tasks_started_total"),
                    ended: KINDS.map(|k| {
                        OUTCOMES.map(|o| {
                            counter("taskpool_tasks_ended_total", &[("kind", k), ("outcome", o)])
                        })
                    }),
                    rejected: REASONS
                        .map(|why| counter("taskpool_tasks_rejected_total", &[("reason", why)])),
                    running: r.register_gauge(&key("taskpool_tasks_running", &[]), &meta),
                    queued: r.register_gauge(&key("taskpool_tasks_queued", &[]), &meta),
                    limit: r.register_gauge(&key("taskpool_limit", &[]), &meta),
                    queue_wait: r
                        .register_histogram(&key("taskpool_queue_wait_seconds", &[]), &meta),
                    run: r.register_histogram(&key("taskpool_run_seconds", &[]), &meta),
                };
                t.limit(limit);
                t
            })
        }

        /// Handles that do nothing, registered nowhere.
        fn silent() -> Self {
            Self {
                submitted: std::array::from_fn(|_| Counter::noop()),
                started: std::array::from_fn(|_| Counter::noop()),
                ended: std::array::from_fn(|_| std::array::from_fn(|_| Counter::noop())),
                rejected: std::array::from_fn(|_| Counter::noop()),
                running: Gauge::noop(),
                queued: Gauge::noop(),
                limit: Gauge::noop(),
                queue_wait: Histogram::noop(),
                run: Histogram::noop(),
            }
        }

        /// `n` task ids were handed out, `queued` of them waiting for room.
        #[inline]
        pub(crate) fn submitted(&self, kind: Kind, n: u64, queued: u64) {
            self.submitted[kind.index()].increment(n);
            if queued > 0 {
                self.queued.increment(queued as f64);
            }
        }

        #[cold]
        pub(crate) fn rejected(&self, why: Rejection) {
            self.rejected[why as usize].increment(1);
        }

        /// A task with an id started to wait for room (a map item waiting for its group's
        /// turn).
        #[inline]
        pub(crate) fn enqueued(&self) {
            self.queued.increment(1.0);
        }

        /// A task left the queue (to start, or to end unstarted).
        #[inline]
        pub(crate) fn dequeued(&self) {
            self.queued.decrement(1.0);
        }

        #[inline]
        pub(crate) fn started(&self, kind: Kind) {
            self.started[kind.index()].increment(1);
            self.running.increment(1.0);
        }

        /// A retried task's attempt ended and it waits for the next: it runs no more.
        #[cold]
        pub(crate) fn paused(&self) {
            self.running.decrement(1.0);
        }

        /// A task ended; `started` if it had (it counted as running).
        #[inline]
        pub(crate) fn ended(&self, kind: Kind, outcome: Outcome, started: bool) {
            self.ended[kind.index()][outcome_index(outcome)].increment(1);
            if started {
                self.running.decrement(1.0);
            }
        }

        pub(crate) fn limit(&self, limit: Option<usize>) {
            // No limit is +Inf, as Prometheus writes it.
            self.limit.set(limit.map_or(f64::INFINITY, |l| l as f64));
        }

        /// Duration samples the state took (`timing.rs`), emitted after unlocking.
        pub(crate) fn durations(&self, samples: &[Sample]) {
            for s in samples {
                match *s {
                    Sample::QueueWait(ns) => self.queue_wait.record(ns as f64 / 1e9),
                    Sample::Run(ns) => self.run.record(ns as f64 / 1e9),
                }
            }
        }

        /// The pool is gone: what it still counted as running or queued goes from the
        /// gauges (another pool of the same name shares them).
        pub(crate) fn gone(&self, running: u64, queued: u64) {
            if running > 0 {
                self.running.decrement(running as f64);
            }
            if queued > 0 {
                self.queued.decrement(queued as f64);
            }
        }

        /// Whether duration samples are wanted.
        pub(crate) const ACTIVE: bool = true;
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    use super::{Kind, Outcome, Rejection, Sample};

    /// Without the `metrics` feature: nothing.
    #[derive(Debug)]
    pub(crate) struct Telemetry;

    #[allow(clippy::unused_self)]
    impl Telemetry {
        pub(crate) fn new(_pool: &str, _limit: Option<usize>, _enabled: bool) -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn submitted(&self, _kind: Kind, _n: u64, _queued: u64) {}
        #[inline(always)]
        pub(crate) fn rejected(&self, _why: Rejection) {}
        #[inline(always)]
        pub(crate) fn enqueued(&self) {}
        #[inline(always)]
        pub(crate) fn dequeued(&self) {}
        #[inline(always)]
        pub(crate) fn started(&self, _kind: Kind) {}
        #[inline(always)]
        pub(crate) fn paused(&self) {}

        pub(crate) fn ended(&self, _kind: Kind, _outcome: Outcome, _started: bool) {}
        #[inline(always)]
        pub(crate) fn limit(&self, _limit: Option<usize>) {}
        #[inline(always)]
        pub(crate) fn durations(&self, _samples: &[Sample]) {}
        pub(crate) const ACTIVE: bool = false;
    }
}

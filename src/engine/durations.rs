//! The stamps and histograms behind `track_durations(true)`: plain data, kept by the state's
//! timing steps (`timing.rs`) and read by `stats()` and `tasks()`.

use super::table::IdTable;
use super::telemetry::Sample;
use crate::stats::DurationStats;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Longest duration a histogram tells apart: longer ones count as this.
const CLAMP_US: u64 = 3_600_000_000;

/// Queue-wait and run-time histograms, each made on its first sample.
#[derive(Default)]
pub(crate) struct Histograms {
    pub(super) queue_wait: Option<Box<Histogram<u64>>>,
    pub(super) run_time: Option<Box<Histogram<u64>>>,
}

pub(super) fn record(h: &mut Option<Box<Histogram<u64>>>, nanos: u64) {
    let h = h.get_or_insert_with(|| {
        Box::new(Histogram::new(2).expect("2 significant digits is a valid precision"))
    });
    // Auto-resizing, so in range once clamped; the counts saturate.
    let _ = h.record((nanos / 1_000).min(CLAMP_US));
}

fn summary(h: &Option<Box<Histogram<u64>>>) -> DurationStats {
    let Some(h) = h else {
        return DurationStats::default();
    };
    let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
    DurationStats {
        count: h.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: Duration::from_micros(h.max()),
    }
}

impl Histograms {
    pub(crate) fn queue_wait(&self) -> DurationStats {
        summary(&self.queue_wait)
    }

    pub(crate) fn run_time(&self) -> DurationStats {
        summary(&self.run_time)
    }
}

/// A group's durations.
pub(crate) struct GroupTiming {
    /// When the group was made: the queue wait of its reserved items starts here.
    pub(super) made: u64,
    pub(crate) histograms: Histograms,
}

/// The pool's stamps and histograms.
pub(crate) struct Timing {
    epoch: Instant,
    /// Waiting tasks with ids (queued loose tasks, map items waiting for their group's turn,
    /// reserved items leaving their group): when they got their id.
    pub(super) queued: IdTable<u64>,
    /// Tasks that started and have not retired: when they started, and how long they waited.
    pub(super) running: IdTable<(u64, u64)>,
    pub(crate) pool: Histograms,
    /// Samples for the `metrics` histograms, handed out by the section that took them and
    /// emitted once it unlocked (the recorder is the application's code).
    pub(super) samples: Vec<Sample>,
}

/// Samples a section carries out without allocating; a section that took more (a
/// `cancel_all`) carries them out in a `Vec`.
pub(super) const FEW: usize = 4;

/// The samples one section took.
pub(crate) enum Samples {
    Few([Sample; FEW], usize),
    Many(Vec<Sample>),
}

impl Samples {
    pub(crate) fn as_slice(&self) -> &[Sample] {
        match self {
            Samples::Few(buf, n) => &buf[..*n],
            Samples::Many(v) => v,
        }
    }
}

impl Timing {
    pub(crate) fn new() -> Box<Self> {
        Box::new(Self {
            epoch: Instant::now(),
            queued: IdTable::default(),
            running: IdTable::default(),
            pool: Histograms::default(),
            samples: Vec::new(),
        })
    }

    /// Nanoseconds since the pool was made.
    pub(super) fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub(crate) fn new_group(&self) -> Box<GroupTiming> {
        Box::new(GroupTiming {
            made: self.now(),
            histograms: Histograms::default(),
        })
    }
}

/// What `tasks()` shows of one live task's durations: queue wait and run time so far.
pub(crate) type LiveDurations = (Option<Duration>, Option<Duration>);

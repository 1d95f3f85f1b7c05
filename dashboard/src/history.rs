//! The last minutes of one pool: throughput and outcomes from the deltas of its `stats`
//! counters, one sample per poll.

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;

/// Samples kept per pool: ten minutes at one a second.
pub const KEPT: usize = 600;

/// The counters a sample is computed from, read from a `stats` reply.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub running: u64,
    pub queued: u64,
    pub backlog: u64,
    pub ending: u64,
    pub ended: u64,
    pub cancelled: u64,
    pub panicked: u64,
    pub timed_out: u64,
    pub dropped: u64,
    pub shed: u64,
}

impl Counters {
    /// Reads the counters from a `stats` value (fields a server lacks count as 0).
    pub fn of(stats: &Value) -> Self {
        let n = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self {
            running: n("running"),
            queued: n("queued"),
            backlog: n("backlog"),
            ending: n("ending"),
            ended: n("ended"),
            cancelled: n("cancelled"),
            panicked: n("panicked"),
            timed_out: n("timed_out"),
            dropped: n("dropped"),
            shed: n("shed"),
        }
    }

    /// Tasks that started (or ended while queued) since the last flush: every ended task,
    /// and the ones running or ending now.
    fn started(&self) -> u64 {
        self.ended + self.running + self.ending
    }
}

/// One poll's worth: the gauges, and what happened since the poll before.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Unix time, milliseconds.
    pub t: u64,
    pub running: u64,
    pub queued: u64,
    pub backlog: u64,
    /// Tasks started per second (a task cancelled while queued counts as started and
    /// ended); `None` where the counters were reset by a flush.
    pub started_per_s: Option<f64>,
    /// Tasks ended per second, whatever the outcome.
    pub ended_per_s: Option<f64>,
    /// Outcomes since the poll before: completed, cancelled, panicked, timed out, dropped,
    /// shed.
    pub outcomes: Option<[u64; 6]>,
}

/// A pool's recent samples.
#[derive(Debug, Default)]
pub struct History {
    last: Option<(u64, Counters)>,
    samples: VecDeque<Sample>,
}

impl History {
    /// Records a poll at `t` (Unix ms) and returns its sample.
    pub fn record(&mut self, t: u64, now: Counters) -> Sample {
        let delta = self.last.and_then(|(t0, before)| {
            let secs = t.checked_sub(t0)? as f64 / 1000.0;
            // `flush` forgets ended tasks: the counters went back, so this interval has no
            // rate (rather than a negative one).
            let reset = now.ended < before.ended
                || now.cancelled < before.cancelled
                || now.panicked < before.panicked
                || now.timed_out < before.timed_out
                || now.dropped < before.dropped
                || now.shed < before.shed
                || now.started() < before.started();
            (secs > 0.0 && !reset).then_some((secs, before))
        });
        let sample = match delta {
            Some((secs, before)) => {
                let cancelled = now.cancelled - before.cancelled;
                let panicked = now.panicked - before.panicked;
                let timed_out = now.timed_out - before.timed_out;
                let dropped = now.dropped - before.dropped;
                let shed = now.shed - before.shed;
                let ended = now.ended - before.ended;
                let completed =
                    ended.saturating_sub(cancelled + panicked + timed_out + dropped + shed);
                Sample {
                    t,
                    running: now.running,
                    queued: now.queued,
                    backlog: now.backlog,
                    started_per_s: Some((now.started() - before.started()) as f64 / secs),
                    ended_per_s: Some(ended as f64 / secs),
                    outcomes: Some([completed, cancelled, panicked, timed_out, dropped, shed]),
                }
            }
            None => Sample {
                t,
                running: now.running,
                queued: now.queued,
                backlog: now.backlog,
                started_per_s: None,
                ended_per_s: None,
                outcomes: None,
            },
        };
        self.last = Some((t, now));
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(sample.clone());
        sample
    }

    /// Every kept sample, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }

    /// Forgets the counters (the server went away, or is another one now).
    pub fn break_off(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(running: u64, ended: u64, cancelled: u64) -> Counters {
        Counters {
            running,
            ended,
            cancelled,
            ..Counters::default()
        }
    }

    #[test]
    fn rates_come_from_deltas_and_a_flush_leaves_a_gap() {
        let mut h = History::default();
        let first = h.record(1_000, counters(2, 10, 1));
        assert_eq!(first.started_per_s, None, "no rate from one poll");
        // 2 s later: 6 more ended (1 of them cancelled), 3 running.
        let s = h.record(3_000, counters(3, 16, 2));
        assert_eq!(s.ended_per_s, Some(3.0));
        assert_eq!(s.started_per_s, Some(3.5)); // (16 + 3) - (10 + 2) = 7 over 2 s
        assert_eq!(s.outcomes, Some([5, 1, 0, 0, 0, 0]));
        // A flush: the counters went back.
        let s = h.record(4_000, counters(3, 0, 0));
        assert_eq!((s.ended_per_s, s.outcomes), (None, None));
        let s = h.record(5_000, counters(1, 4, 0));
        assert_eq!(s.ended_per_s, Some(4.0));
        assert_eq!(h.samples().len(), 4);
    }

    #[test]
    fn keeps_ten_minutes() {
        let mut h = History::default();
        for i in 0..(KEPT as u64 + 50) {
            h.record(i * 1_000, counters(0, i, 0));
        }
        let samples = h.samples();
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples[0].t, 50_000);
    }

    #[test]
    fn missing_fields_count_as_zero() {
        let c = Counters::of(&serde_json::json!({"running": 2, "queued": 5}));
        assert_eq!((c.running, c.queued, c.backlog), (2, 5, 0));
    }
}

//! A deterministic discrete-event simulation of a backend with a concurrency knee, to judge
//! limiters: no threads, no sleeps, simulated time. Shared with `benches/adaptive` (which
//! draws the plot in docs/BENCHMARKS.md), hence `crate::policy` paths only.
//!
//! The backend serves every request in flight at once (processor sharing). Up to the knee
//! `K` each request runs at full speed; past it the backend thrashes: its total capacity
//! falls from `K` by `thrash × (c − K) / K` (down to `floor × K`), shared by the `c`
//! requests in flight, so latency rises sharply (×1.16 at 1.1 K, ×1.75 at 1.4 K, ×4 at 2 K
//! with the defaults) and throughput falls. A request still running at the deadline fails
//! (an overload error). `clock-tests/tests/adaptive.rs` drives a real pool with the same
//! [`Backend::speed`] on tokio's paused clock. The client keeps the backend as busy as its limit allows (an
//! endless backlog), and feeds every ended request to the limiter.

// Some fields are read only by the plotting program.
#![allow(dead_code)]

use crate::policy::{Limiter, Sample, SampleOutcome};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// The simulated backend.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `(from, knee)`: the knee in force from `from` seconds on (the first from 0).
    pub knees: Vec<(f64, f64)>,
    /// Mean work of one request, in seconds at full speed.
    pub work: f64,
    /// Work is uniform in `work × (1 ± spread)`.
    pub spread: f64,
    /// Capacity lost per knee's worth of requests past the knee.
    pub thrash: f64,
    /// The least capacity left, as a share of the knee.
    pub floor: f64,
    /// A request running this long (seconds) fails.
    pub deadline: f64,
}

impl Backend {
    /// Knee `knee`, 100 ms of work ± 50%, thrash 0.5, floor 0.2, deadline 1 s.
    pub fn with_knee(knee: f64) -> Self {
        Self {
            knees: vec![(0.0, knee)],
            work: 0.1,
            spread: 0.5,
            thrash: 0.5,
            floor: 0.2,
            deadline: 1.0,
        }
    }

    /// Speed of each of `c` requests in flight under knee `k` (1.0 is full speed).
    pub fn speed(&self, c: usize, k: f64) -> f64 {
        let c = c as f64;
        if c <= k {
            return 1.0;
        }
        let capacity = k * (1.0 - self.thrash * (c - k) / k).max(self.floor);
        capacity / c
    }
}

/// One bin of the trace.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// The bin's start, seconds.
    pub t: f64,
    /// The knee in force.
    pub knee: f64,
    /// The limit, averaged over the bin's time.
    pub limit: f64,
    /// Mean latency of the requests that ended in the bin, seconds.
    pub latency: f64,
    /// Their 99th percentile, seconds.
    pub p99: f64,
    /// Successful requests per second.
    pub goodput: f64,
}

/// What a run measured over its measured span.
#[derive(Debug, Clone)]
pub struct Run {
    /// Successful requests per second.
    pub goodput: f64,
    /// Median and 99th percentile latency of every request that ended (ok or failed).
    pub p50: f64,
    /// See `p50`.
    pub p99: f64,
    /// The limit, averaged over time.
    pub mean_limit: f64,
    /// Requests that failed at the deadline.
    pub errors: u64,
    /// Per-bin trace of the whole run.
    pub trace: Vec<Point>,
}

/// How the client sets its limit.
pub enum Control<'a> {
    /// A fixed limit.
    Fixed(usize),
    /// A limiter, fed every ended request.
    Adaptive(&'a mut dyn Limiter),
}

impl Control<'_> {
    fn limit(&self) -> usize {
        match self {
            Control::Fixed(n) => *n,
            Control::Adaptive(l) => l.limit(),
        }
    }
}

/// A job in flight.
#[derive(Debug, Clone, Copy)]
struct Job {
    started: f64,
    done: bool,
}

/// A heap entry: a job that finishes when the virtual work clock reaches `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due {
    at: f64,
    job: usize,
}

impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.total_cmp(&self.at) // a min-heap
    }
}

/// Runs the backend for `duration` seconds under `control`, measuring from `measure_from`;
/// the trace has bins of `bin` seconds. The same seed gives the same run.
pub fn simulate(
    backend: &Backend,
    mut control: Control<'_>,
    duration: f64,
    measure_from: f64,
    bin: f64,
    seed: u64,
) -> Run {
    let mut rng = fastrand::Rng::with_seed(seed);
    let origin = Instant::now();
    let mut t = 0.0;
    let mut virtual_work = 0.0; // how far every job in flight has progressed
    let mut jobs: Vec<Job> = Vec::new();
    let mut due = BinaryHeap::new();
    let mut deadlines = VecDeque::new(); // (time, job), in start order
    let mut in_flight = 0usize;
    let mut knee_at = 0;
    let mut limit = control.limit();

    let mut ok = 0u64;
    let mut errors = 0u64;
    let mut latencies = Vec::new();
    let mut limit_area = 0.0;
    let bins = (duration / bin).ceil() as usize;
    let mut bin_limit = vec![0.0; bins];
    let mut bin_latencies: Vec<Vec<f64>> = vec![Vec::new(); bins];
    let mut bin_ok = vec![0u64; bins];

    loop {
        // Start work up to the limit.
        while in_flight < limit {
            let work = backend.work * (1.0 + backend.spread * (2.0 * rng.f64() - 1.0));
            due.push(Due {
                at: virtual_work + work,
                job: jobs.len(),
            });
            deadlines.push_back((t + backend.deadline, jobs.len()));
            jobs.push(Job {
                started: t,
                done: false,
            });
            in_flight += 1;
        }
        while due.peek().is_some_and(|d: &Due| jobs[d.job].done) {
            due.pop();
        }
        while deadlines.front().is_some_and(|&(_, j)| jobs[j].done) {
            deadlines.pop_front();
        }
        let knee = backend.knees[knee_at].1;
        let speed = backend.speed(in_flight, knee);
        let next_completion = due
            .peek()
            .map_or(f64::INFINITY, |d| t + (d.at - virtual_work) / speed);
        let next_deadline = deadlines.front().map_or(f64::INFINITY, |&(at, _)| at);
        let next_knee = backend
            .knees
            .get(knee_at + 1)
            .map_or(f64::INFINITY, |&(at, _)| at);
        let next = next_completion
            .min(next_deadline)
            .min(next_knee)
            .min(duration);

        // Account the limit over [t, next).
        let mut from = t;
        while from < next {
            let b = ((from / bin) as usize).min(bins - 1);
            let to = next.min((b + 1) as f64 * bin);
            bin_limit[b] += limit as f64 * (to - from);
            if to > measure_from {
                limit_area += limit as f64 * (to - from.max(measure_from));
            }
            from = to;
        }
        virtual_work += (next - t) * speed;
        t = next;
        if t >= duration {
            break;
        }

        let (job, outcome) = if next == next_knee {
            knee_at += 1;
            continue;
        } else if next == next_completion {
            let d = due.pop().expect("a completion is due");
            (d.job, SampleOutcome::Ok)
        } else {
            let (_, job) = deadlines.pop_front().expect("a deadline is due");
            (job, SampleOutcome::Error)
        };
        jobs[job].done = true;
        let latency = t - jobs[job].started;
        let sample = Sample::new(Duration::from_secs_f64(latency), outcome, in_flight);
        in_flight -= 1;
        let b = ((t / bin) as usize).min(bins - 1);
        bin_latencies[b].push(latency);
        if outcome == SampleOutcome::Ok {
            bin_ok[b] += 1;
        }
        if t >= measure_from {
            latencies.push(latency);
            match outcome {
                SampleOutcome::Ok => ok += 1,
                _ => errors += 1,
            }
        }
        if let Control::Adaptive(limiter) = &mut control {
            limit = limiter.on_sample(sample, origin + Duration::from_secs_f64(t));
        }
    }

    let span = duration - measure_from;
    let trace = (0..bins)
        .map(|b| {
            let start = b as f64 * bin;
            let knee = backend
                .knees
                .iter()
                .rev()
                .find(|&&(from, _)| from <= start)
                .map_or(0.0, |&(_, k)| k);
            let mut l = std::mem::take(&mut bin_latencies[b]);
            Point {
                t: start,
                knee,
                limit: bin_limit[b] / bin,
                latency: if l.is_empty() {
                    0.0
                } else {
                    l.iter().sum::<f64>() / l.len() as f64
                },
                p99: percentile(&mut l, 0.99),
                goodput: bin_ok[b] as f64 / bin,
            }
        })
        .collect();
    Run {
        goodput: ok as f64 / span,
        p50: percentile(&mut latencies.clone(), 0.50),
        p99: percentile(&mut latencies, 0.99),
        mean_limit: limit_area / span,
        errors,
        trace,
    }
}

/// The `q` quantile (nearest rank) of `values`, 0 if empty.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The best fixed limit by sweep: `(limit, run)`.
pub fn best_fixed(
    backend: &Backend,
    limits: impl IntoIterator<Item = usize>,
    duration: f64,
) -> (usize, Run) {
    limits
        .into_iter()
        .map(|n| {
            (
                n,
                simulate(
                    backend,
                    Control::Fixed(n),
                    duration,
                    duration / 4.0,
                    duration,
                    1,
                ),
            )
        })
        .max_by(|a, b| a.1.goodput.total_cmp(&b.1.goodput))
        .expect("at least one limit to sweep")
}

/// The limiters judged, set up as their docs recommend for this backend: AIMD with a
/// latency threshold a little (1.2x) above the slowest low-load run time (150 ms), the
/// gradient limiter with its defaults. Both start at 1.
pub fn limiters() -> Vec<(&'static str, Box<dyn Limiter>)> {
    use crate::policy::{Aimd, Gradient};
    vec![
        (
            "Aimd",
            Box::new(
                Aimd::builder(1, 1000)
                    .latency_threshold(Duration::from_millis(180))
                    .build()
                    .expect("valid AIMD parameters"),
            ),
        ),
        (
            "Gradient",
            Box::new(
                Gradient::builder(1, 1000)
                    .build()
                    .expect("valid gradient parameters"),
            ),
        ),
    ]
}

/// The knee of the fixed-knee judgement.
pub const KNEE: f64 = 50.0;

/// The moving knee's phases: `(from seconds, knee)`, 200 s each.
pub const PHASES: [(f64, f64); 3] = [(0.0, 50.0), (200.0, 100.0), (400.0, 25.0)];

/// Fixed limits shown beside the best one: 1.5, 2 and 4 times the knee.
pub const TOO_HIGH: [usize; 3] = [75, 100, 200];

/// The fixed-knee judgement: the best fixed limit by sweep, some fixed limits set too
/// high, and each limiter.
#[derive(Debug)]
pub struct FixedKnee {
    /// The best fixed limit and its run.
    pub best: (usize, Run),
    /// The runs of the limits in [`TOO_HIGH`].
    pub too_high: Vec<(usize, Run)>,
    /// Each limiter's run (300 s, measured over the last 200 s).
    pub adaptive: Vec<(&'static str, Run)>,
}

/// Runs the fixed-knee judgement (deterministic).
pub fn judge_fixed_knee() -> FixedKnee {
    let backend = Backend::with_knee(KNEE);
    let best = best_fixed(&backend, (10..=150).step_by(5), 60.0);
    let too_high = TOO_HIGH
        .iter()
        .map(|&n| {
            (
                n,
                simulate(&backend, Control::Fixed(n), 60.0, 15.0, 60.0, 1),
            )
        })
        .collect();
    let adaptive = limiters()
        .into_iter()
        .map(|(name, mut limiter)| {
            let run = simulate(
                &backend,
                Control::Adaptive(&mut *limiter),
                300.0,
                100.0,
                1.0,
                7,
            );
            (name, run)
        })
        .collect();
    FixedKnee {
        best,
        too_high,
        adaptive,
    }
}

/// One limiter's run under the moving knee, and its mean limit over the second half of
/// each phase: `(knee, mean limit)`.
#[derive(Debug)]
pub struct MovingKnee {
    /// The limiter.
    pub name: &'static str,
    /// The whole run (trace in 1 s bins).
    pub run: Run,
    /// Per phase: the knee and the mean limit over the phase's second half.
    pub settled: Vec<(f64, f64)>,
}

/// Runs each limiter under the moving knee (deterministic).
pub fn judge_moving_knee() -> Vec<MovingKnee> {
    let backend = Backend {
        knees: PHASES.to_vec(),
        ..Backend::with_knee(KNEE)
    };
    limiters()
        .into_iter()
        .map(|(name, mut limiter)| {
            let run = simulate(
                &backend,
                Control::Adaptive(&mut *limiter),
                600.0,
                0.0,
                1.0,
                11,
            );
            let settled = PHASES
                .iter()
                .map(|&(from, knee)| {
                    let half: Vec<f64> = run
                        .trace
                        .iter()
                        .filter(|p| p.t >= from + 100.0 && p.t < from + 200.0)
                        .map(|p| p.limit)
                        .collect();
                    (knee, half.iter().sum::<f64>() / half.len() as f64)
                })
                .collect();
            MovingKnee { name, run, settled }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_peaks_at_its_knee_and_slows_past_it() {
        // Sanity of the model itself: the best fixed limit is the knee, and a limit 4x too
        // high has a far worse p99 and throughput.
        let backend = Backend::with_knee(KNEE);
        let (best, at_best) = best_fixed(&backend, (10..=150).step_by(10), 60.0);
        assert_eq!(best, 50);
        let too_high = simulate(&backend, Control::Fixed(200), 60.0, 15.0, 60.0, 1);
        assert!(
            too_high.p99 > 5.0 * at_best.p99,
            "{} vs {}",
            too_high.p99,
            at_best.p99
        );
        assert!(too_high.goodput < at_best.goodput / 2.0);
    }

    #[test]
    fn each_limiter_settles_near_the_knee_with_the_best_throughput_and_a_low_p99() {
        let j = judge_fixed_knee();
        let (best, at_best) = &j.best;
        eprintln!(
            "best fixed limit {best}: {:.0}/s, p99 {:.0} ms",
            at_best.goodput,
            at_best.p99 * 1e3
        );
        for (n, run) in &j.too_high {
            eprintln!(
                "fixed {n}: {:.0}/s, p99 {:.0} ms, {} errors",
                run.goodput,
                run.p99 * 1e3,
                run.errors
            );
        }
        let (_, four_times) = j.too_high.last().expect("a limit 4x the knee");
        for (name, run) in &j.adaptive {
            eprintln!(
                "{name}: mean limit {:.1} (knee {KNEE}), {:.0}/s ({:.1}% of best), p50 {:.0} ms, \
                 p99 {:.0} ms, {} errors",
                run.mean_limit,
                run.goodput,
                100.0 * run.goodput / at_best.goodput,
                run.p50 * 1e3,
                run.p99 * 1e3,
                run.errors
            );
            assert!(
                (0.8 * KNEE..=1.2 * KNEE).contains(&run.mean_limit),
                "{name} settled at {:.1}, knee {KNEE}",
                run.mean_limit
            );
            assert!(
                run.goodput >= 0.9 * at_best.goodput,
                "{name}: {:.0}/s",
                run.goodput
            );
            assert!(
                run.p99 * 3.0 < four_times.p99,
                "{name}: p99 {:.3} s",
                run.p99
            );
        }
    }

    #[test]
    fn each_limiter_follows_a_knee_that_moves() {
        for m in judge_moving_knee() {
            for &(knee, mean) in &m.settled {
                eprintln!(
                    "{}: knee {knee}: mean limit {mean:.1} over the phase's second half",
                    m.name
                );
                assert!(
                    (0.8 * knee..=1.2 * knee).contains(&mean),
                    "{}: knee {knee}, limit {mean:.1}",
                    m.name
                );
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let backend = Backend::with_knee(20.0);
        let mut a = limiters().remove(1).1;
        let mut b = limiters().remove(1).1;
        let ra = simulate(&backend, Control::Adaptive(&mut *a), 30.0, 0.0, 1.0, 3);
        let rb = simulate(&backend, Control::Adaptive(&mut *b), 30.0, 0.0, 1.0, 3);
        assert_eq!(ra.goodput, rb.goodput);
        assert_eq!(ra.p99, rb.p99);
    }
}

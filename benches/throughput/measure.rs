//! Timing with interleaved rounds, and the rows the timings become.

use crate::pattern::{Kind, Limit, Pattern, Producers};
use crate::work::Work;
use serde::{Serialize, Serializer};
use std::time::Duration;

/// One thing to time: a run of `tasks` tasks.
pub struct Cell<'a> {
    pub tasks: u64,
    pub run: Box<dyn Fn() -> Duration + 'a>,
}

pub fn median(mut ns: Vec<f64>) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

/// The median ns per task of every cell over `rounds` rounds, the rounds interleaved (round 1
/// of every cell, then round 2, ...): a slow spell on the shared machine then hits a baseline
/// and the pattern held against it alike, instead of whichever ran during it.
pub fn interleaved(rounds: usize, cells: &[Cell]) -> Vec<f64> {
    let mut ns = vec![Vec::with_capacity(rounds); cells.len()];
    for _ in 0..rounds {
        for (i, cell) in cells.iter().enumerate() {
            ns[i].push((cell.run)().as_nanos() as f64 / cell.tasks as f64);
        }
    }
    ns.into_iter().map(median).collect()
}

/// One measured cell, as printed and as written to `--json` (read by benches/chart).
#[derive(Serialize, Clone)]
pub struct Row {
    /// "runtimes" (the main tables), "threads" or "cpu".
    pub section: &'static str,
    pub runtime: String,
    pub work: Work,
    #[serde(serialize_with = "display")]
    pub producer: Producers,
    pub pattern: String,
    pub kind: Kind,
    #[serde(serialize_with = "display_opt")]
    pub limit: Option<Limit>,
    pub ours: bool,
    pub ns_per_task: f64,
    /// To the raw spawn of the same runtime, workload and producers (`exec`: to raw
    /// spawn+await in a loop).
    pub ratio: Option<f64>,
    /// Map-like patterns: to `buffer_unordered` without spawning, at the same limit.
    pub ratio_buffered: Option<f64>,
}

fn display<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<S: Serializer, T: std::fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// The rows of patterns measured together (same section, runtime, workload and producers),
/// with their ratios to the baselines among them.
pub fn rows(
    section: &'static str,
    runtime: &str,
    work: Work,
    producer: Producers,
    pats: &[&Pattern],
    ns: &[f64],
) -> Vec<Row> {
    let find = |kind: Kind, limit: Option<Limit>| {
        pats.iter()
            .position(|p| p.kind == kind && p.limit == limit)
            .map(|i| ns[i])
    };
    let raw = find(Kind::RawSpawn, None);
    let raw_loop = find(Kind::RawLoop, None);
    pats.iter()
        .zip(ns)
        .map(|(p, &ns)| {
            let base = if p.kind == Kind::Exec { raw_loop } else { raw };
            let buffered = if p.kind.is_map_like() {
                find(Kind::Buffered, p.limit)
            } else {
                None
            };
            Row {
                section,
                runtime: runtime.to_owned(),
                work,
                producer,
                pattern: p.name.clone(),
                kind: p.kind,
                limit: p.limit,
                ours: p.kind.is_ours(),
                ns_per_task: ns,
                ratio: base.map(|b| ns / b),
                ratio_buffered: buffered.map(|b| ns / b),
            }
        })
        .collect()
}

/// The distinct values of `key` over `rows`, in order of first appearance.
pub fn distinct<'a, T: PartialEq>(
    rows: impl IntoIterator<Item = &'a Row>,
    key: impl Fn(&Row) -> T,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for r in rows {
        let k = key(r);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

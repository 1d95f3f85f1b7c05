//! Threads: tokio multi-thread with 1, 2 and 8 worker threads (8 oversubscribes our 2
//! cores), with 1 and with 4 producer tasks submitting concurrently to one shared pool.

use crate::measure::{distinct, interleaved, rows, Cell, Row};
use crate::pattern::{patterns, Kind, Limit, Pattern, Producers};
use crate::rt::Rt;
use crate::work::Work;
use crate::Config;

const WORKERS: [usize; 3] = [1, 2, 8];
const PRODUCERS: [u64; 2] = [1, 4];

/// The patterns measured here: the baselines and the pool's ways, at the limits.
fn wanted(p: &Pattern) -> bool {
    match p.kind {
        Kind::RawSpawn | Kind::RawLoop | Kind::Exec => true,
        Kind::PoolSpawn => p.limit == Some(Limit::At(16)),
        Kind::PoolQueued | Kind::Map | Kind::MapUnordered | Kind::Apply => {
            p.limit == Some(Limit::At(1000))
        }
        _ => false,
    }
}

fn label(runtime: &str, producers: Producers) -> String {
    let threads = runtime
        .trim_start_matches("tokio multi-thread (")
        .trim_end_matches(')');
    let p = match producers {
        Producers::Tasks(p) => p,
        Producers::BlockOn => 0,
    };
    let s = |n: &str| if n == "1" { "" } else { "s" };
    format!(
        "{threads} thread{}, {p} producer{}",
        s(threads),
        s(&p.to_string())
    )
}

pub fn measure(cfg: &Config, out: &mut Vec<Row>) {
    let rts: Vec<Rt> = WORKERS.iter().map(|&w| Rt::tokio_multi(w)).collect();
    for work in [Work::Ready, Work::Yield4] {
        eprintln!("  threads {work:?}");
        let pats: Vec<Pattern> = patterns(work, cfg.n).into_iter().filter(wanted).collect();
        let configs: Vec<(&Rt, Producers)> = PRODUCERS
            .iter()
            .flat_map(|&p| rts.iter().map(move |rt| (rt, Producers::Tasks(p))))
            .collect();
        // Every configuration in every round: the comparison here is across runtimes.
        let cells: Vec<Cell> = configs
            .iter()
            .flat_map(|&(rt, producers)| {
                pats.iter().map(move |p| Cell {
                    tasks: p.tasks,
                    run: Box::new(move || p.run(rt, producers)),
                })
            })
            .collect();
        let ns = interleaved(cfg.rounds, &cells);
        let pats: Vec<&Pattern> = pats.iter().collect();
        for (k, (rt, producers)) in configs.iter().enumerate() {
            let ns = &ns[k * pats.len()..(k + 1) * pats.len()];
            out.extend(rows("threads", &rt.name(), work, *producers, &pats, ns));
        }
    }
}

/// Throughput with `more` worker threads over throughput with `fewer`, same producers.
fn gain(rows: &[&Row], pattern: &str, p: Producers, fewer: usize, more: usize) -> Option<f64> {
    let ns = |w: usize| {
        rows.iter()
            .find(|r| {
                r.pattern == pattern
                    && r.producer == p
                    && r.runtime == format!("tokio multi-thread ({w})")
            })
            .map(|r| r.ns_per_task)
    };
    Some(ns(fewer)? / ns(more)?)
}

const GAINS: [(u64, usize, usize); 4] = [(1, 1, 2), (1, 2, 8), (4, 1, 2), (4, 2, 8)];

pub fn render(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == "threads").collect();
    let mut out = String::new();
    for work in distinct(rows.iter().copied(), |r| r.work) {
        let these: Vec<&Row> = rows.iter().copied().filter(|r| r.work == work).collect();
        let configs = distinct(these.iter().copied(), |r| (r.runtime.clone(), r.producer));
        out += &format!("## Threads, {work:?}: {}\n\n", work.describe());
        let heads: Vec<String> = configs.iter().map(|(rt, p)| label(rt, *p)).collect();
        out += &format!("| pattern | {} |\n", heads.join(" | "));
        out += &format!("|---|{}\n", "---:|".repeat(heads.len()));
        let patterns = distinct(these.iter().copied(), |r| r.pattern.clone());
        for pattern in &patterns {
            let cells: Vec<String> = configs
                .iter()
                .map(|(rt, p)| {
                    these
                        .iter()
                        .find(|r| &r.runtime == rt && r.producer == *p && &r.pattern == pattern)
                        .map_or("-".into(), |r| match r.ratio {
                            Some(x) => {
                                let mark = if r.kind == Kind::Exec { "†" } else { "" };
                                format!("{:.0} ({x:.2}x{mark})", r.ns_per_task)
                            }
                            None => format!("{:.0}", r.ns_per_task),
                        })
                })
                .collect();
            out += &format!("| {pattern} | {} |\n", cells.join(" | "));
        }
        out += "\nThroughput (tasks/s) with more worker threads ÷ with fewer, same producers \
                (≥ 1.00x: it did not fall; **bold**: a pool pattern's fell):\n\n";
        let heads: Vec<String> = GAINS
            .iter()
            .map(|(p, a, b)| {
                format!(
                    "{b} ÷ {a} threads, {p} producer{}",
                    if *p == 1 { "" } else { "s" }
                )
            })
            .collect();
        out += &format!("| pattern | {} |\n", heads.join(" | "));
        out += &format!("|---|{}\n", "---:|".repeat(heads.len()));
        for pattern in &patterns {
            let ours = these.iter().any(|r| &r.pattern == pattern && r.ours);
            let cells: Vec<String> = GAINS
                .iter()
                .map(
                    |&(p, a, b)| match gain(&these, pattern, Producers::Tasks(p), a, b) {
                        Some(g) if ours && g < 1.0 => format!("**{g:.2}x**"),
                        Some(g) => format!("{g:.2}x"),
                        None => "-".into(),
                    },
                )
                .collect();
            out += &format!("| {pattern} | {} |\n", cells.join(" | "));
        }
        out += "\n";
    }
    out += "ns per task, median of the rounds, every configuration measured in every round; \
            producers are runtime tasks sharing one pool, each submitting its share of the N \
            tasks; ratios to raw spawn with the same threads and producers († to raw \
            spawn+await in a loop).\n\n";
    out
}

/// Summary lines: the worst gain of a pool pattern for each comparison, over both workloads.
pub fn summary(rows: &[Row]) -> Vec<String> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == "threads").collect();
    let mut out = Vec::new();
    for (p, a, b) in GAINS {
        let mut worst: Option<(f64, String)> = None;
        let mut raw = Vec::new();
        for work in distinct(rows.iter().copied(), |r| r.work) {
            let these: Vec<&Row> = rows.iter().copied().filter(|r| r.work == work).collect();
            for r in these
                .iter()
                .filter(|r| r.runtime.ends_with("(1)") && r.producer == Producers::Tasks(p))
            {
                let Some(g) = gain(&these, &r.pattern, Producers::Tasks(p), a, b) else {
                    continue;
                };
                if r.kind == Kind::RawSpawn {
                    raw.push(format!("{g:.2}x {work:?}"));
                }
                if r.ours && worst.as_ref().is_none_or(|(w, _)| g < *w) {
                    worst = Some((g, format!("{} ({work:?})", r.pattern)));
                }
            }
        }
        let Some((g, at)) = worst else { continue };
        out.push(format!(
            "| threads: tasks/s with {b} ÷ {a} worker threads, {p} producer{} | ≥ 1.00x | worst pool pattern {g:.2}x: {at}; raw spawn {} | {} |",
            if p == 1 { "" } else { "s" },
            raw.join(", "),
            if g >= 1.0 { "met" } else { "**missed**" }
        ));
    }
    out
}

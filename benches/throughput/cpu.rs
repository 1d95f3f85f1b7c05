//! The CPU-heavy item mix on tokio multi-thread with 1 and with 2 worker threads: does a map
//! run its items on every worker thread (speed-up), where `buffer_unordered` cannot?

use crate::measure::{distinct, interleaved, rows, Cell, Row};
use crate::pattern::{limit_patterns, patterns, Kind, Limit, Pattern, Producers};
use crate::rt::Rt;
use crate::runtimes::PLACEMENTS;
use crate::work::Work;
use crate::Config;

/// The speed-up issue 15 asks of `map` from 1 to 2 worker threads.
const MAP_SPEEDUP: f64 = 1.7;

fn cpu_patterns(n: u64) -> Vec<Pattern> {
    let mut p: Vec<Pattern> = patterns(Work::Cpu, n)
        .into_iter()
        .filter(|p| p.kind == Kind::RawSpawn && p.limit.is_none())
        .collect();
    // `patterns` has every limit; keep the ones wanted here, in this order.
    for (c, kinds) in [
        (16, &[Kind::Buffered, Kind::Map][..]),
        (
            1000,
            &[
                Kind::Buffered,
                Kind::Map,
                Kind::MapUnordered,
                Kind::PoolQueued,
            ][..],
        ),
    ] {
        p.extend(
            limit_patterns(Work::Cpu, n, Limit::At(c))
                .into_iter()
                .filter(|p| kinds.contains(&p.kind)),
        );
    }
    p
}

pub fn measure(cfg: &Config, out: &mut Vec<Row>) {
    eprintln!("  cpu");
    let rts = [Rt::tokio_multi(1), Rt::tokio_multi(2)];
    let pats = cpu_patterns(cfg.n_cpu);
    let configs: Vec<(&Rt, Producers)> = PLACEMENTS
        .iter()
        .flat_map(|&p| rts.iter().map(move |rt| (rt, p)))
        .collect();
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
        out.extend(rows("cpu", &rt.name(), Work::Cpu, *producers, &pats, ns));
    }
}

/// ns per item with 1 thread ÷ with 2 threads.
fn speedup(rows: &[&Row], pattern: &str, p: Producers) -> Option<(f64, f64)> {
    let ns = |w: usize| {
        rows.iter()
            .find(|r| {
                r.pattern == pattern
                    && r.producer == p
                    && r.runtime == format!("tokio multi-thread ({w})")
            })
            .map(|r| r.ns_per_task)
    };
    Some((ns(1)?, ns(2)?))
}

pub fn render(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == "cpu").collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("## CPU-heavy items: 1 and 2 worker threads (tokio multi-thread)\n\n");
    out += "Each item hashes for about 1, 2, 4 or 8 µs in turn (chained SipHash). ns per item, \
            median of the rounds (both thread counts and producer placements in every round), \
            and the speed-up from 1 to 2 worker threads. Issue 15 expects ≥ 1.7x for `map` \
            and about 1.0x for `buffer_unordered` without spawning (one task polls every item); \
            raw spawn shows what this machine gives at the time.\n\n";
    let placements = distinct(rows.iter().copied(), |r| r.producer);
    let mut head = String::from("| pattern |");
    for p in &placements {
        head += &format!(" 1 thread, producer {p} | 2 threads, producer {p} | speed-up |");
    }
    out += &head;
    out += &format!("\n|---|{}\n", "---:|".repeat(3 * placements.len()));
    for pattern in distinct(rows.iter().copied(), |r| r.pattern.clone()) {
        let is_map = rows
            .iter()
            .any(|r| r.pattern == pattern && r.kind.is_map_like());
        let mut line = format!("| {pattern} |");
        for &p in &placements {
            match speedup(&rows, &pattern, p) {
                Some((one, two)) => {
                    let s = one / two;
                    let s = if is_map && s < MAP_SPEEDUP {
                        format!("**{s:.2}x**")
                    } else {
                        format!("{s:.2}x")
                    };
                    line += &format!(" {one:.0} | {two:.0} | {s} |");
                }
                None => line += " - | - | - |",
            }
        }
        out += &line;
        out += "\n";
    }
    out += "\n";
    out
}

/// Summary lines: the map speed-up (worst over limits and placements), and
/// `buffer_unordered`'s and raw spawn's for reference.
pub fn summary(rows: &[Row]) -> Vec<String> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == "cpu").collect();
    let speedups = |kinds: &[Kind]| -> Vec<(f64, String)> {
        let mut v = Vec::new();
        for r in rows
            .iter()
            .filter(|r| kinds.contains(&r.kind) && r.runtime.ends_with("(1)"))
        {
            if let Some((one, two)) = speedup(&rows, &r.pattern, r.producer) {
                v.push((one / two, format!("{}, producer {}", r.pattern, r.producer)));
            }
        }
        v
    };
    let list = |v: &[(f64, String)]| {
        v.iter()
            .map(|(s, at)| format!("{s:.2}x {at}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let maps = speedups(&[Kind::Map, Kind::MapUnordered]);
    let Some(worst) = maps.iter().map(|(s, _)| *s).min_by(f64::total_cmp) else {
        return Vec::new();
    };
    vec![
        format!(
            "| CPU mix: `map` speed-up, 1 → 2 worker threads | ≥ {MAP_SPEEDUP:.1}x | {} | {} |",
            list(&maps),
            if worst >= MAP_SPEEDUP {
                "met"
            } else {
                "**missed**"
            }
        ),
        format!(
            "| CPU mix: `buffer_unordered`, no spawn, speed-up (reference) | ≈ 1.0x | {} | |",
            list(&speedups(&[Kind::Buffered]))
        ),
        format!(
            "| CPU mix: raw spawn speed-up (what the machine gives) | | {} | |",
            list(&speedups(&[Kind::RawSpawn]))
        ),
    ]
}

//! The main tables: every pattern on every runtime and flavour, with the producer on the
//! `block_on` thread and in a runtime task, ready and yielding tasks.

use crate::measure::{distinct, interleaved, rows, Cell, Row};
use crate::pattern::{patterns, Kind, Producers};
use crate::rt::Rt;
use crate::targets::{misses, Versus};
use crate::work::Work;
use crate::Config;

pub const PLACEMENTS: [Producers; 2] = [Producers::BlockOn, Producers::Tasks(1)];

pub fn measure(cfg: &Config, out: &mut Vec<Row>) {
    for work in [Work::Ready, Work::Yield4] {
        let pats = patterns(work, cfg.n);
        // The baselines always run, so every ratio has its denominator.
        let chosen: Vec<_> = pats
            .iter()
            .filter(|p| {
                matches!(p.kind, Kind::RawSpawn | Kind::RawLoop | Kind::Buffered)
                    || cfg.pattern.as_deref().is_none_or(|f| p.name.contains(f))
            })
            .collect();
        for rt in Rt::all() {
            if !cfg.filter.as_deref().is_none_or(|f| rt.name().contains(f)) {
                continue;
            }
            eprintln!("  {} {work:?}", rt.name());
            let cells: Vec<Cell> = PLACEMENTS
                .iter()
                .flat_map(|&producers| {
                    let rt = &rt;
                    chosen.iter().map(move |p| Cell {
                        tasks: p.tasks,
                        run: Box::new(move || p.run(rt, producers)),
                    })
                })
                .collect();
            let ns = interleaved(cfg.rounds, &cells);
            for (k, &producers) in PLACEMENTS.iter().enumerate() {
                let ns = &ns[k * chosen.len()..(k + 1) * chosen.len()];
                out.extend(rows("runtimes", &rt.name(), work, producers, &chosen, ns));
            }
        }
    }
}

/// `ns (ratio)`; misses of a target in bold; map-like rows add their ratio to
/// `buffer_unordered` without spawning.
fn cell(r: &Row) -> String {
    let bold = |s: String, miss: bool| if miss { format!("**{s}**") } else { s };
    let Some(ratio) = r.ratio else {
        return format!("{:.0}", r.ns_per_task);
    };
    let mark = if r.kind == Kind::Exec { "†" } else { "" };
    let mut s = format!(
        "{:.0} ({}",
        r.ns_per_task,
        bold(format!("{ratio:.2}x{mark}"), misses(r, Versus::Raw))
    );
    if let Some(rb) = r.ratio_buffered {
        s += &format!(
            "; {}",
            bold(format!("{rb:.1}x‡"), misses(r, Versus::Buffered))
        );
    }
    s + ")"
}

pub fn render(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == "runtimes").collect();
    let runtimes = distinct(rows.iter().copied(), |r| r.runtime.clone());
    let mut out = String::new();
    for work in distinct(rows.iter().copied(), |r| r.work) {
        for producers in PLACEMENTS {
            let these: Vec<&Row> = rows
                .iter()
                .copied()
                .filter(|r| r.work == work && r.producer == producers)
                .collect();
            if these.is_empty() {
                continue;
            }
            let place = match producers {
                Producers::BlockOn => "producer on the `block_on` thread",
                _ => "producer in a runtime task",
            };
            out += &format!("## {work:?}: {}, {place}\n\n", work.describe());
            out += &format!("| pattern | {} |\n", runtimes.join(" | "));
            out += &format!("|---|{}\n", "---:|".repeat(runtimes.len()));
            for pattern in distinct(these.iter().copied(), |r| r.pattern.clone()) {
                let cells: Vec<String> = runtimes
                    .iter()
                    .map(|rt| {
                        these
                            .iter()
                            .find(|r| &r.runtime == rt && r.pattern == pattern)
                            .map_or("-".into(), |r| cell(r))
                    })
                    .collect();
                out += &format!("| {pattern} | {} |\n", cells.join(" | "));
            }
            out += "\n";
        }
    }
    out += "ns per task, median of the rounds; in brackets the ratio to \"raw spawn, then await \
            all\" of the same runtime, workload and producer placement; † to \"raw spawn+await, in a \
            loop\" instead; ‡ to \"buffer_unordered(C), no spawn\" at the same C. **Bold**: a \
            ratio outside issue 15's target.\n\n";
    out
}

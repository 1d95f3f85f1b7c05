//! Issue 15's per-task targets: which ratio each bounds, and where each stands.

use crate::measure::{distinct, Row};
use crate::pattern::{Kind, Limit};
use crate::work::Work;

/// Which ratio of a row a target bounds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Versus {
    /// [`Row::ratio`]: raw spawn (for `exec`, raw spawn+await in a loop).
    Raw,
    /// [`Row::ratio_buffered`]: `buffer_unordered` without spawning, at the same limit.
    Buffered,
}

/// An upper bound on one ratio of one kind of pattern.
pub struct Target {
    pub what: &'static str,
    pub kind: Kind,
    pub versus: Versus,
    pub at_most: f64,
    /// Only at limits of at least this (`spawn().await`: C >= 16).
    pub min_limit: usize,
}

pub const TARGETS: [Target; 9] = [
    target(
        "`spawn_queued` ÷ raw spawn",
        Kind::PoolQueued,
        Versus::Raw,
        1.10,
        0,
    ),
    target(
        "`spawn().await` ÷ raw spawn, C ≥ 16",
        Kind::PoolSpawn,
        Versus::Raw,
        1.25,
        16,
    ),
    target(
        "`exec` loop ÷ raw spawn+await loop",
        Kind::Exec,
        Versus::Raw,
        1.10,
        0,
    ),
    target("`map` ÷ raw spawn", Kind::Map, Versus::Raw, 0.35, 0),
    target(
        "`map_unordered` ÷ raw spawn",
        Kind::MapUnordered,
        Versus::Raw,
        0.35,
        0,
    ),
    target("`apply` ÷ raw spawn", Kind::Apply, Versus::Raw, 0.35, 0),
    target(
        "`map` ÷ `buffer_unordered`, no spawn",
        Kind::Map,
        Versus::Buffered,
        2.0,
        0,
    ),
    target(
        "`map_unordered` ÷ `buffer_unordered`",
        Kind::MapUnordered,
        Versus::Buffered,
        2.0,
        0,
    ),
    target(
        "`apply` ÷ `buffer_unordered`",
        Kind::Apply,
        Versus::Buffered,
        2.0,
        0,
    ),
];

const fn target(
    what: &'static str,
    kind: Kind,
    versus: Versus,
    at_most: f64,
    min_limit: usize,
) -> Target {
    Target {
        what,
        kind,
        versus,
        at_most,
        min_limit,
    }
}

impl Target {
    /// The ratio this target bounds in `row`, if it applies there.
    pub fn value(&self, row: &Row) -> Option<f64> {
        if row.kind != self.kind || row.limit.map_or(0, Limit::get) < self.min_limit {
            return None;
        }
        match self.versus {
            Versus::Raw => row.ratio,
            Versus::Buffered => row.ratio_buffered,
        }
    }
}

/// Whether `row`'s ratio against `versus` misses a target (printed in bold).
pub fn misses(row: &Row, versus: Versus) -> bool {
    TARGETS
        .iter()
        .filter(|t| t.versus == versus)
        .any(|t| t.value(row).is_some_and(|v| v > t.at_most))
}

/// Where a row was measured, briefly: workload, producer, limit.
fn place(r: &Row) -> String {
    let work = match r.work {
        Work::Ready => "ready",
        Work::Yield4 => "yield4",
        Work::Cpu => "cpu",
    };
    let limit = r.limit.map(|c| format!(", C={c}")).unwrap_or_default();
    format!("{work}, {}{limit}", r.producer)
}

/// One line per target, one column per runtime: how many cells meet it, and the worst one.
pub fn by_runtime(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == "runtimes").collect();
    let runtimes = distinct(rows.iter().copied(), |r| r.runtime.clone());
    let mut out = String::new();
    out += "Each cell: how many of the measured cells (ready and yielding tasks, producer on the\n";
    out += "`block_on` thread and in a task, every limit) meet the bound, the median ratio, and\n";
    out += "the worst ratio with where it was measured.\n\n";
    out += &format!("| target | bound | {} |\n", runtimes.join(" | "));
    out += &format!("|---|---:|{}\n", "---|".repeat(runtimes.len()));
    for t in &TARGETS {
        let cells: Vec<String> = runtimes
            .iter()
            .map(|rt| {
                let vals: Vec<(f64, &Row)> = rows
                    .iter()
                    .filter(|r| &r.runtime == rt)
                    .filter_map(|r| t.value(r).map(|v| (v, *r)))
                    .collect();
                if vals.is_empty() {
                    return "-".into();
                }
                let met = vals.iter().filter(|(v, _)| *v <= t.at_most).count();
                let (worst, at) = vals
                    .iter()
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .expect("not empty");
                let med = crate::measure::median(vals.iter().map(|(v, _)| *v).collect());
                let worst = if *worst > t.at_most {
                    format!("**{worst:.2}x**")
                } else {
                    format!("{worst:.2}x")
                };
                format!(
                    "{met}/{} met; median {med:.2}x; worst {worst} ({})",
                    vals.len(),
                    place(at)
                )
            })
            .collect();
        out += &format!(
            "| {} | ≤ {:.2}x | {} |\n",
            t.what,
            t.at_most,
            cells.join(" | ")
        );
    }
    out
}

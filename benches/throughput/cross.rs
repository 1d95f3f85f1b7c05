//! The Python peers' workload (benches/python): 100,000 no-op tasks at limits 100 and 1000,
//! in tasks/s, for a cross-language table.

use crate::measure::{interleaved, Cell};
use crate::pattern::{limit_patterns, Kind, Limit, Producers};
use crate::rt::Rt;
use crate::work::Work;
use crate::Config;

pub fn run(cfg: &Config) {
    let n = cfg.n.min(100_000);
    println!(
        "## Cross-language workload: {n} no-op tasks, tasks/s (median of {} rounds)\n",
        cfg.rounds
    );
    let runtimes = Rt::all();
    let names: Vec<String> = runtimes.iter().map(Rt::name).collect();
    println!("| method | limit | {} |", names.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(names.len()));
    for limit in [100usize, 1000] {
        let pats: Vec<_> = limit_patterns(Work::Ready, n, Limit::At(limit))
            .into_iter()
            .filter(|p| {
                matches!(
                    p.kind,
                    Kind::Semaphore | Kind::PoolSpawn | Kind::PoolQueued | Kind::Map
                )
            })
            .collect();
        let per_rt: Vec<Vec<f64>> = runtimes
            .iter()
            .map(|rt| {
                let cells: Vec<Cell> = pats
                    .iter()
                    .map(|p| Cell {
                        tasks: p.tasks,
                        run: Box::new(move || p.run(rt, Producers::BlockOn)),
                    })
                    .collect();
                interleaved(cfg.rounds, &cells)
            })
            .collect();
        for (i, p) in pats.iter().enumerate() {
            let cells: Vec<String> = per_rt
                .iter()
                .map(|ns| format!("{:.0}", 1e9 / ns[i]))
                .collect();
            let method = p.name.split(',').next().unwrap_or(&p.name);
            println!("| {method} | {limit} | {} |", cells.join(" | "));
        }
    }
    println!();
}

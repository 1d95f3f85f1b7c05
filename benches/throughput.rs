//! Side-by-side throughput: the pool's ways of running N tasks against raw runtime spawns and
//! the usual hand-rolled patterns, in one process, with ratios to the raw spawn of the same
//! runtime, workload and producer placement measured in the same run.
//!
//! ```text
//! cargo bench --bench throughput --all-features                  # full run (N = 200,000)
//! cargo bench --bench throughput --all-features -- --quick       # seconds; what CI runs
//! cargo bench --bench throughput --all-features -- --json out.json --summary targets.md
//! cargo bench --bench throughput --all-features -- --sections runtimes --filter smol --pattern map
//! cargo bench --bench throughput --all-features -- --cross       # the Python peers' workload
//! ```
//!
//! Sections (`--sections runtimes,threads,cpu`, all by default):
//! - `runtimes`: every pattern on every runtime and flavour (tokio multi-thread with 2 worker
//!   threads, tokio current-thread, smol's global executor, async-std), ready and yielding
//!   tasks, with the producer on the `block_on` thread and in a runtime task;
//! - `threads`: tokio multi-thread with 1, 2 and 8 worker threads, 1 and 4 producer tasks;
//! - `cpu`: a CPU-heavy item mix on 1 and 2 worker threads (speed-ups).
//!
//! `--filter` picks runtimes and `--pattern` rows of `runtimes` (the baselines always run).
//! Rounds are interleaved, so slow spells hit baseline and pattern alike. Prints markdown:
//! issue 15's targets by runtime first, then the tables; `--summary FILE` writes the other
//! targets' lines (CPU mix, threads) as markdown table rows, for benches/run-all.sh.

// The root of a bench target looks for modules beside it, hence the paths.
#[path = "throughput/cpu.rs"]
mod cpu;
#[path = "throughput/cross.rs"]
mod cross;
#[path = "throughput/measure.rs"]
mod measure;
#[path = "throughput/pattern.rs"]
mod pattern;
#[path = "common/rt.rs"]
mod rt;
#[path = "throughput/runtimes.rs"]
mod runtimes;
#[path = "throughput/targets.rs"]
mod targets;
#[path = "throughput/threads.rs"]
mod threads;
#[path = "throughput/work.rs"]
mod work;
#[path = "common/yield_now.rs"]
mod yield_now;

use std::time::Instant;

pub struct Config {
    n: u64,
    /// Items of the CPU-heavy mix (each costs microseconds, not nanoseconds).
    n_cpu: u64,
    rounds: usize,
    sections: Vec<String>,
    filter: Option<String>,
    pattern: Option<String>,
    json: Option<String>,
    summary: Option<String>,
    cross: bool,
}

fn parse_args() -> Config {
    let mut cfg = Config {
        n: 200_000,
        n_cpu: 50_000,
        rounds: 5,
        sections: vec!["runtimes".into(), "threads".into(), "cpu".into()],
        filter: None,
        pattern: None,
        json: None,
        summary: None,
        cross: false,
    };
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| -> u64 {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what} takes a number"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                cfg.n = 2_000;
                cfg.n_cpu = 400;
                cfg.rounds = 1;
            }
            "--n" => cfg.n = number(args.next(), "--n"),
            "--n-cpu" => cfg.n_cpu = number(args.next(), "--n-cpu"),
            "--rounds" => cfg.rounds = number(args.next(), "--rounds").max(1) as usize,
            "--sections" => {
                cfg.sections = args
                    .next()
                    .expect("--sections runtimes,threads,cpu")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            "--filter" => cfg.filter = args.next(),
            "--pattern" => cfg.pattern = args.next(),
            "--json" => cfg.json = args.next(),
            "--summary" => cfg.summary = args.next(),
            "--cross" => cfg.cross = true,
            "--bench" => {} // passed by `cargo bench`
            other => eprintln!("ignoring unknown argument {other:?}"),
        }
    }
    cfg
}

fn main() {
    let cfg = parse_args();
    if cfg.cross {
        cross::run(&cfg);
        return;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let wants = |s: &str| cfg.sections.iter().any(|x| x == s);
    if wants("runtimes") {
        eprintln!("runtimes ({:.0?})", started.elapsed());
        runtimes::measure(&cfg, &mut rows);
    }
    if wants("threads") {
        eprintln!("threads ({:.0?})", started.elapsed());
        threads::measure(&cfg, &mut rows);
    }
    if wants("cpu") {
        eprintln!("cpu ({:.0?})", started.elapsed());
        cpu::measure(&cfg, &mut rows);
    }
    println!(
        "# async-taskpool throughput: N = {} tasks ({} CPU-heavy items), median of {} round(s)\n",
        cfg.n, cfg.n_cpu, cfg.rounds
    );
    println!("## Targets by runtime\n\n{}", targets::by_runtime(&rows));
    print!("{}", runtimes::render(&rows));
    print!("{}", threads::render(&rows));
    print!("{}", cpu::render(&rows));
    print!("{}", pattern::left_behind());
    println!("(ran in {:.0?})", started.elapsed());
    if let Some(path) = &cfg.summary {
        let mut lines = cpu::summary(&rows);
        lines.extend(threads::summary(&rows));
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    if let Some(path) = &cfg.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}

//! Side-by-side throughput: the pool's ways of running N tasks against raw runtime spawns and
//! the usual hand-rolled patterns, on every runtime, in one process.
//!
//! ```text
//! cargo bench --bench throughput --all-features                  # full run (N = 200,000)
//! cargo bench --bench throughput --all-features -- --quick       # seconds; what CI runs
//! cargo bench --bench throughput --all-features -- --json out.json --filter tokio
//! cargo bench --bench throughput --all-features -- --filter smol --pattern "map"
//! ```
//!
//! `--filter` picks runtimes, `--pattern` rows (the two raw baselines always run). Rounds are
//! interleaved across the patterns of a runtime, so slow spells hit baseline and pattern alike.
//!
//! Prints markdown tables of ns per task (median of the rounds) and, for every row, the ratio
//! to the raw-spawn baseline of the same runtime and workload measured in the same run.

#[path = "common/rt.rs"]
mod rt;

use async_taskpool::TaskPool;
use futures::StreamExt;
use rt::{yield_n, Rt};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
enum Work {
    /// Returns at once.
    Ready,
    /// Yields to the scheduler 4 times, then returns.
    Yield4,
}

async fn work(kind: Work, i: u64) -> u64 {
    if kind == Work::Yield4 {
        yield_n(4).await;
    }
    i
}

/// A concurrency limit; `None` is unlimited.
type Limit = Option<usize>;
const LIMITS: [Limit; 4] = [Some(1), Some(16), Some(1000), None];

/// The limit-dependent patterns at one extra limit (not in `LIMITS`).
fn patterns_at(kind: Work, n: u64, limit: usize) -> Vec<Pattern> {
    if LIMITS.contains(&Some(limit)) {
        return Vec::new();
    }
    limit_patterns(kind, n, Some(limit))
}

fn limit_name(c: Limit) -> String {
    c.map_or("∞".to_owned(), |c| c.to_string())
}

#[derive(Serialize)]
struct Row {
    runtime: &'static str,
    work: Work,
    pattern: String,
    ours: bool,
    ns_per_task: f64,
    ratio: f64,
}

struct Config {
    n: u64,
    rounds: usize,
    filter: Option<String>,
    pattern: Option<String>,
    json: Option<String>,
    cross: bool,
}

fn parse_args() -> Config {
    let mut cfg = Config {
        n: 200_000,
        rounds: 5,
        filter: None,
        pattern: None,
        json: None,
        cross: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                cfg.n = 2_000;
                cfg.rounds = 1;
            }
            "--n" => {
                cfg.n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--n NUMBER")
            }
            "--rounds" => {
                cfg.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds NUMBER")
            }
            "--filter" => cfg.filter = args.next(),
            "--pattern" => cfg.pattern = args.next(),
            "--json" => cfg.json = args.next(),
            "--cross" => cfg.cross = true,
            "--bench" => {} // passed by `cargo bench`
            other => eprintln!("ignoring unknown argument {other:?}"),
        }
    }
    cfg
}

fn median(mut ns: Vec<f64>) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

/// Median of `rounds` timings of `f`, in ns per task.
fn measure(rt: &Rt, rounds: usize, tasks: u64, f: &dyn Fn(&Rt) -> Duration) -> f64 {
    median(
        (0..rounds)
            .map(|_| f(rt).as_nanos() as f64 / tasks as f64)
            .collect(),
    )
}

/// Like [`measure`] for many patterns at once, with the rounds interleaved (round 1 of every
/// pattern, then round 2, ...): a slow spell on the shared machine then hits the baseline and
/// the pattern held against it alike, instead of whichever ran during it.
fn measure_interleaved(rt: &Rt, rounds: usize, pats: &[&Pattern]) -> Vec<f64> {
    let mut ns = vec![Vec::with_capacity(rounds); pats.len()];
    for _ in 0..rounds {
        for (i, (_, _, tasks, run)) in pats.iter().enumerate() {
            ns[i].push(run(rt).as_nanos() as f64 / *tasks as f64);
        }
    }
    ns.into_iter().map(median).collect()
}

type Pattern = (String, bool, u64, Box<dyn Fn(&Rt) -> Duration>);

/// Every pattern for one workload: (name, ours?, tasks per run, run).
fn patterns(kind: Work, n: u64) -> Vec<Pattern> {
    // Spawn-and-await-one-at-a-time is latency-bound: a tenth of the tasks keeps it short.
    let n_loop = (n / 10).max(1);
    let mut p: Vec<Pattern> = Vec::new();
    p.push((
        "raw spawn, then await all".into(),
        false,
        n,
        Box::new(move |rt: &Rt| {
            rt.block_on_timed(async {
                let hs: Vec<_> = (0..n).map(|i| rt.spawn(work(kind, i))).collect();
                for h in hs {
                    h.await;
                }
            })
        }),
    ));
    p.push((
        "raw spawn+await, in a loop".into(),
        false,
        n_loop,
        Box::new(move |rt: &Rt| {
            rt.block_on_timed(async {
                for i in 0..n_loop {
                    rt.spawn(work(kind, i)).await;
                }
            })
        }),
    ));
    p.push((
        "pool exec, in a loop".into(),
        true,
        n_loop,
        Box::new(move |rt: &Rt| {
            let pool = TaskPool::new(rt.spawner());
            rt.block_on_timed(async {
                for i in 0..n_loop {
                    pool.exec(work(kind, i)).await.unwrap();
                }
            })
        }),
    ));
    for c in LIMITS {
        p.extend(limit_patterns(kind, n, c));
    }
    p
}

/// The patterns that take a concurrency limit, at limit `c`.
fn limit_patterns(kind: Work, n: u64, c: Limit) -> Vec<Pattern> {
    let mut p: Vec<Pattern> = Vec::new();
    {
        let cn = c.unwrap_or(usize::MAX);
        // With a limit of 1 and a runtime spawn per task, every task waits for the previous
        // one to finish and wake the producer: latency-bound, so a tenth of the tasks will do.
        let n_serial = if c == Some(1) { (n / 10).max(1) } else { n };
        let lim = limit_name(c);
        let sem_permits = c.unwrap_or(tokio::sync::Semaphore::MAX_PERMITS);
        p.push((
            format!("spawn + Semaphore({lim}) per task"),
            false,
            n,
            Box::new(move |rt: &Rt| {
                rt.block_on_timed(async {
                    let sem = Arc::new(tokio::sync::Semaphore::new(sem_permits));
                    rt.spawn_all_with_semaphore(n, sem, move |i| work(kind, i))
                        .await;
                })
            }),
        ));
        p.push((
            format!("spawn, buffer_unordered({lim})"),
            false,
            n_serial,
            Box::new(move |rt: &Rt| {
                rt.block_on_timed(async {
                    futures::stream::iter(0..n_serial)
                        .map(|i| rt.spawn(work(kind, i)))
                        .buffer_unordered(cn.min(n as usize))
                        .for_each(|_| async {})
                        .await;
                })
            }),
        ));
        p.push((
            format!("buffer_unordered({lim}), no spawn"),
            false,
            n,
            Box::new(move |rt: &Rt| {
                rt.block_on_timed(async {
                    futures::stream::iter(0..n)
                        .map(|i| work(kind, i))
                        .buffer_unordered(cn.min(n as usize))
                        .for_each(|_| async {})
                        .await;
                })
            }),
        ));
        p.push((
            format!("{lim} workers pulling a shared iterator"),
            false,
            n,
            Box::new(move |rt: &Rt| {
                rt.block_on_timed(async {
                    let next = Arc::new(AtomicU64::new(0));
                    let workers = cn.min(n as usize);
                    let hs: Vec<_> = (0..workers)
                        .map(|_| {
                            let next = next.clone();
                            rt.spawn(async move {
                                loop {
                                    let i = next.fetch_add(1, Ordering::Relaxed);
                                    if i >= n {
                                        break;
                                    }
                                    work(kind, i).await;
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await;
                    }
                })
            }),
        ));
        p.push((
            format!("pool spawn().await, limit {lim}"),
            true,
            n_serial,
            Box::new(move |rt: &Rt| {
                let pool = limited(rt, c);
                rt.block_on_timed(async {
                    let mut hs = Vec::with_capacity(n_serial as usize);
                    for i in 0..n_serial {
                        hs.push(pool.spawn(work(kind, i)).await.unwrap());
                    }
                    for h in hs {
                        h.await.unwrap();
                    }
                })
            }),
        ));
        p.push((
            format!("pool spawn_queued, limit {lim}"),
            true,
            n,
            Box::new(move |rt: &Rt| {
                let pool = limited(rt, c);
                rt.block_on_timed(async {
                    let hs: Vec<_> = (0..n)
                        .map(|i| pool.spawn_queued(work(kind, i)).unwrap())
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                })
            }),
        ));
        p.push((
            format!("pool map, num_concurrent {lim}"),
            true,
            n,
            Box::new(move |rt: &Rt| {
                let pool = TaskPool::new(rt.spawner());
                rt.block_on_timed(async {
                    let g = pool.map(0..n, cn, move |i| work(kind, i)).unwrap();
                    assert_eq!(g.count().await as u64, n);
                })
            }),
        ));
        p.push((
            format!("pool map_unordered, num_concurrent {lim}"),
            true,
            n,
            Box::new(move |rt: &Rt| {
                let pool = TaskPool::new(rt.spawner());
                rt.block_on_timed(async {
                    let g = pool
                        .map_unordered(0..n, cn, move |i| work(kind, i))
                        .unwrap();
                    assert_eq!(g.count().await as u64, n);
                })
            }),
        ));
        p.push((
            format!("pool apply, limit {lim}"),
            true,
            n,
            Box::new(move |rt: &Rt| {
                let pool = limited(rt, c);
                rt.block_on_timed(async {
                    let g = pool.apply(n as usize, move || work(kind, 0)).unwrap();
                    assert_eq!(g.join().await.unwrap().completed, n);
                })
            }),
        ));
    }
    p
}

fn limited(rt: &Rt, c: Limit) -> TaskPool {
    let b = TaskPool::builder(rt.spawner());
    match c {
        Some(c) => b.limit(c),
        None => b,
    }
    .build()
    .unwrap()
}

/// The Python peers' workload (benches/python): 100,000 no-op tasks at limits 100 and 1000,
/// in tasks/s, for a cross-language table.
fn cross_language(cfg: &Config) {
    let n = cfg.n.min(100_000);
    println!(
        "## Cross-language workload: {n} no-op tasks, tasks/s (median of {} rounds)\n",
        cfg.rounds
    );
    let runtimes = Rt::all();
    let names: Vec<&str> = runtimes.iter().map(Rt::name).collect();
    println!("| method | limit | {} |", names.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(names.len()));
    for limit in [100usize, 1000] {
        let all = patterns(Work::Ready, n);
        let wanted = [
            format!("pool spawn().await, limit {limit}"),
            format!("pool spawn_queued, limit {limit}"),
            format!("pool map, num_concurrent {limit}"),
            format!("spawn + Semaphore({limit}) per task"),
        ];
        let mut extra = patterns_at(Work::Ready, n, limit);
        extra.extend(all.into_iter().filter(|(name, ..)| wanted.contains(name)));
        for (name, _, tasks, run) in extra.iter().filter(|(name, ..)| wanted.contains(name)) {
            let cells: Vec<String> = runtimes
                .iter()
                .map(|rt| {
                    let ns = measure(rt, cfg.rounds, *tasks, run.as_ref());
                    format!("{:.0}", 1e9 / ns)
                })
                .collect();
            let method = name.split(',').next().unwrap_or(name);
            println!("| {method} | {limit} | {} |", cells.join(" | "));
        }
    }
    println!();
}

fn main() {
    let cfg = parse_args();
    if cfg.cross {
        cross_language(&cfg);
        return;
    }
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    println!(
        "# async-taskpool throughput: N = {} tasks, median of {} round(s), ns per task (ratio to raw spawn)\n",
        cfg.n, cfg.rounds
    );
    for kind in [Work::Ready, Work::Yield4] {
        let runtimes = Rt::all();
        let names: Vec<&str> = runtimes.iter().map(Rt::name).collect();
        let pats = patterns(kind, cfg.n);
        let mut table: Vec<(String, Vec<String>)> = pats
            .iter()
            .map(|(n, _, _, _)| (n.clone(), Vec::new()))
            .collect();
        for rt in &runtimes {
            if !cfg.filter.as_deref().is_none_or(|f| rt.name().contains(f)) {
                table.iter_mut().for_each(|row| row.1.push("-".into()));
                continue;
            }
            // The two baselines always run, so every ratio has its denominator.
            let chosen: Vec<usize> = (0..pats.len())
                .filter(|&i| i < 2 || cfg.pattern.as_deref().is_none_or(|p| pats[i].0.contains(p)))
                .collect();
            let picked: Vec<&Pattern> = chosen.iter().map(|&i| &pats[i]).collect();
            let ns = measure_interleaved(rt, cfg.rounds, &picked);
            let (raw, raw_loop) = (ns[0], ns[1]);
            for (i, row) in table.iter_mut().enumerate() {
                let Some(k) = chosen.iter().position(|&c| c == i) else {
                    row.1.push("-".into());
                    continue;
                };
                let (name, ours, _, _) = &pats[i];
                let ns = ns[k];
                // `exec` in a loop is held against spawn-then-await in a loop; all else
                // against spawning every task, then awaiting every handle.
                let (ratio, mark) = if i == 2 {
                    (ns / raw_loop, "†")
                } else {
                    (ns / raw, "")
                };
                row.1.push(format!("{ns:.0} ({ratio:.2}x{mark})"));
                rows.push(Row {
                    runtime: rt.name(),
                    work: kind,
                    pattern: name.clone(),
                    ours: *ours,
                    ns_per_task: ns,
                    ratio,
                });
            }
        }
        println!("## {kind:?}\n");
        println!("| pattern | {} |", names.join(" | "));
        println!("|---|{}", "---:|".repeat(names.len()));
        for (name, cells) in table {
            println!("| {name} | {} |", cells.join(" | "));
        }
        println!();
    }
    println!("† relative to \"raw spawn+await, in a loop\" (one task at a time).\n");
    println!("(ran in {:.0?})", started.elapsed());
    if let Some(path) = cfg.json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}

//! The queue's benchmark, side by side on one PostgreSQL in one run:
//!
//! - **drain:** batch-enqueue N no-op jobs (100,000; `--quick`: 5,000), then drain them
//!   with 1, 2 and 4 worker processes; jobs per second from the workers' start to the last
//!   job done;
//! - **latency:** enqueue to handler start, p50 and p99, at low load (one job every 20 ms,
//!   one idle worker woken by NOTIFY) and under load (1,000 jobs/s, two workers);
//! - against a hand-written `FOR UPDATE SKIP LOCKED` fetch-run-delete loop with the same
//!   batch size (one per process), and against the peer, apalis' PostgreSQL backend
//!   (`--peer PATH` to the binary of `queue/benches/peer`; see `run.sh`).
//!
//! Worker processes are this binary again (`worker-ours URL`, `worker-raw URL`).
//!
//! ```text
//! bash queue/benches/run.sh          # everything; rewrites BENCHMARKS.md's queue section
//! cargo bench -p async-taskpool-queue --bench queue --features tokio -- --quick
//! ```

#[path = "../tests/support/pg.rs"]
mod pg;

use async_taskpool::runtime::TokioSpawner;
use async_taskpool::TaskPool;
use async_taskpool_queue::sqlx::{self, Connection, PgPool};
use async_taskpool_queue::{JobContext, NewJob, PgQueue, Registry, Worker};
use serde::Serialize;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Jobs per fetch for every system, and each worker process's concurrency.
const BATCH: usize = 100;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("worker-ours") => worker_ours(&args[1]),
        Some("worker-raw") => worker_raw(&args[1]),
        _ => orchestrate(&args),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Our worker: a pool of `BATCH`, a fetch of at most `BATCH`, default everything else.
fn worker_ours(url: &str) {
    if let Ok(filter) = std::env::var("TASKPOOL_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    runtime().block_on(async {
        let queue = PgQueue::connect(url).await.unwrap();
        let db = queue.pool().clone();
        let pool = TaskPool::builder(TokioSpawner::current())
            .name("bench")
            .limit(BATCH)
            .build()
            .unwrap();
        let registry = Registry::new().register("noop", move |_: JobContext, sent_us: i64| {
            let db = db.clone();
            async move { record(&db, sent_us).await }
        });
        Worker::builder(queue, pool, registry)
            .batch_size(BATCH)
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
    });
}

/// A job's argument: 0 for a no-op, else its send time: the latency is recorded.
async fn record(db: &PgPool, sent_us: i64) -> Result<(), sqlx::Error> {
    if sent_us > 0 {
        let latency = now_us() - sent_us;
        sqlx::query("INSERT INTO bench_latency (us) VALUES ($1)")
            .bind(latency)
            .execute(db)
            .await?;
    }
    Ok(())
}

/// The limit of this design: fetch a batch with SKIP LOCKED, run it, delete it, commit.
fn worker_raw(url: &str) {
    runtime().block_on(async {
        let db = PgPool::connect(url).await.unwrap();
        loop {
            let mut tx = db.begin().await.unwrap();
            let batch: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, arg FROM bench_raw ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(BATCH as i64)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            if batch.is_empty() {
                tx.rollback().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            for (_, arg) in &batch {
                std::hint::black_box(arg);
            }
            sqlx::query("DELETE FROM bench_raw WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    });
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Ours,
    Peer,
    Raw,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Ours => "async-taskpool-queue",
            System::Peer => "apalis-postgres 1.0",
            System::Raw => "hand-written SKIP LOCKED loop",
        }
    }
}

#[derive(Serialize, Debug, Clone)]
struct DrainRow {
    system: &'static str,
    workers: usize,
    jobs: usize,
    enqueue_s: f64,
    drain_s: f64,
    jobs_per_s: f64,
}

#[derive(Serialize, Debug, Clone)]
struct LatencyRow {
    system: &'static str,
    load: &'static str,
    jobs: usize,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize, Default)]
struct Results {
    machine: String,
    drain: Vec<DrainRow>,
    latency: Vec<LatencyRow>,
}

struct Opts {
    quick: bool,
    peer: Option<String>,
    json: Option<String>,
    markdown: Option<String>,
    jobs: usize,
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        quick: false,
        peer: None,
        json: None,
        markdown: None,
        jobs: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--peer" => o.peer = it.next().cloned(),
            "--json" => o.json = it.next().cloned(),
            "--markdown" => o.markdown = it.next().cloned(),
            "--jobs" => o.jobs = it.next().and_then(|n| n.parse().ok()).expect("--jobs N"),
            "--bench" => {}
            other => panic!("unknown argument {other}; see the file's docs"),
        }
    }
    if o.jobs == 0 {
        o.jobs = if o.quick { 5_000 } else { 100_000 };
    }
    o
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn orchestrate(args: &[String]) {
    let o = parse(args);
    let server;
    let base = match std::env::var(pg::URL_VAR) {
        Ok(url) => url,
        Err(_) => {
            // Durable defaults (fsync on): the figures are what a real deployment pays.
            server = pg::PgServer::start(&[]).unwrap_or_else(|e| panic!("{e}\n\n{}", pg::HOW_TO));
            server.url("postgres")
        }
    };
    let me = std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut systems = vec![System::Ours, System::Raw];
    if o.peer.is_some() {
        systems.insert(1, System::Peer);
    }
    let counts: &[usize] = if o.quick { &[1, 2] } else { &[1, 2, 4] };
    let rt = runtime();
    let mut results = Results {
        machine: machine(),
        ..Results::default()
    };
    rt.block_on(async {
        // Interleaved: each worker count runs every system before the next count.
        for &n in counts {
            for &s in &systems {
                let row = drain(&base, &me, o.peer.as_deref(), s, n, o.jobs).await;
                eprintln!("{row:?}");
                results.drain.push(row);
            }
        }
        let (low, loaded) = if o.quick { (20, 0) } else { (200, 3000) };
        for &s in systems.iter().filter(|s| **s != System::Raw) {
            let row = latency(
                &base,
                &me,
                o.peer.as_deref(),
                s,
                1,
                low,
                Duration::from_millis(20),
                "low (1 job / 20 ms, 1 worker)",
            )
            .await;
            eprintln!("{row:?}");
            results.latency.push(row);
            if loaded > 0 {
                let row = latency(
                    &base,
                    &me,
                    o.peer.as_deref(),
                    s,
                    2,
                    loaded,
                    Duration::from_millis(1),
                    "under load (1,000 jobs/s, 2 workers)",
                )
                .await;
                eprintln!("{row:?}");
                results.latency.push(row);
            }
        }
    });
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    }
    let md = markdown(&results, o.jobs);
    if let Some(path) = &o.markdown {
        std::fs::write(path, &md).unwrap();
    }
    println!("{md}");
}

async fn fresh(base: &str, hint: &str) -> String {
    let name = pg::database_name(hint);
    let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    pg::with_database(base, &name)
}

async fn drop_db(base: &str, url: &str) {
    let name = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
}

/// Creates the system's schema and the latency table.
async fn setup(s: System, url: &str, peer: Option<&str>) -> PgPool {
    match s {
        System::Ours => drop(PgQueue::connect(url).await.unwrap()),
        System::Raw => {
            let db = PgPool::connect(url).await.unwrap();
            sqlx::query("CREATE TABLE bench_raw (id bigserial PRIMARY KEY, arg bigint NOT NULL)")
                .execute(&db)
                .await
                .unwrap();
        }
        System::Peer => {
            let ok = Command::new(peer.unwrap())
                .args(["setup", url])
                .status()
                .unwrap()
                .success();
            assert!(ok, "peer setup failed");
        }
    }
    let db = PgPool::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE bench_latency (us bigint NOT NULL)")
        .execute(&db)
        .await
        .unwrap();
    db
}

fn workers(s: System, me: &str, peer: Option<&str>, url: &str, n: usize) -> Procs {
    let batch = BATCH.to_string();
    Procs(
        (0..n)
            .map(|_| match s {
                System::Ours => spawn(me, &["worker-ours", url]),
                System::Raw => spawn(me, &["worker-raw", url]),
                System::Peer => spawn(peer.unwrap(), &["worker", url, &batch, &batch]),
            })
            .collect(),
    )
}

async fn drain(
    base: &str,
    me: &str,
    peer: Option<&str>,
    s: System,
    n: usize,
    jobs: usize,
) -> DrainRow {
    let url = fresh(base, "bench").await;
    let db = setup(s, &url, peer).await;
    let enqueue_s = match s {
        System::Ours => {
            let queue = PgQueue::new(db.clone());
            let batch: Vec<NewJob> = (0..jobs)
                .map(|_| NewJob::new("noop", &0i64).unwrap())
                .collect();
            let start = Instant::now();
            queue.enqueue_many(batch).await.unwrap();
            start.elapsed().as_secs_f64()
        }
        System::Raw => {
            let start = Instant::now();
            sqlx::query("INSERT INTO bench_raw (arg) SELECT 0 FROM generate_series(1, $1)")
                .bind(jobs as i64)
                .execute(&db)
                .await
                .unwrap();
            start.elapsed().as_secs_f64()
        }
        System::Peer => {
            let out = Command::new(peer.unwrap())
                .args(["enqueue", &url, &jobs.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "peer enqueue failed");
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        }
    };
    // Settle the table's statistics the same way for everyone.
    let _ = sqlx::query("ANALYZE").execute(&db).await;
    let t0 = epoch_s();
    let started = Instant::now();
    let procs = workers(s, me, peer, &url, n);
    let limit = Duration::from_secs(600);
    let drain_s = match s {
        System::Ours | System::Raw => {
            let check = if s == System::Ours {
                "SELECT EXISTS (SELECT 1 FROM taskpool.jobs)"
            } else {
                "SELECT EXISTS (SELECT 1 FROM bench_raw)"
            };
            while sqlx::query_scalar::<_, bool>(check)
                .fetch_one(&db)
                .await
                .unwrap()
            {
                assert!(
                    started.elapsed() < limit,
                    "{s:?} did not drain in {limit:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            started.elapsed().as_secs_f64()
        }
        System::Peer => loop {
            // Sparse polls (the check scans the table); the end is the last job's done_at.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (left, last): (i64, Option<f64>) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status <> 'Done'), extract(epoch FROM max(done_at))::float8 FROM apalis.jobs",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            if left == 0 {
                break last.unwrap() - t0;
            }
            assert!(
                started.elapsed() < limit,
                "{s:?} did not drain in {limit:?}: {left} left"
            );
        },
    };
    drop(procs);
    db.close().await;
    drop_db(base, &url).await;
    DrainRow {
        system: s.name(),
        workers: n,
        jobs,
        enqueue_s,
        drain_s,
        jobs_per_s: jobs as f64 / drain_s,
    }
}

#[allow(clippy::too_many_arguments)]
async fn latency(
    base: &str,
    me: &str,
    peer: Option<&str>,
    s: System,
    n: usize,
    jobs: usize,
    gap: Duration,
    load: &'static str,
) -> LatencyRow {
    let url = fresh(base, "latency").await;
    let db = setup(s, &url, peer).await;
    let procs = workers(s, me, peer, &url, n);
    let registered = match s {
        System::Ours => "SELECT count(*) FROM taskpool.workers",
        _ => "SELECT count(*) FROM apalis.workers",
    };
    let start = Instant::now();
    while sqlx::query_scalar::<_, i64>(registered)
        .fetch_one(&db)
        .await
        .unwrap_or(0)
        < n as i64
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{s:?} workers did not register"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Registered first, listening a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    match s {
        System::Ours => {
            let queue = PgQueue::new(db.clone());
            let start = Instant::now();
            for i in 0..jobs {
                tokio::time::sleep_until((start + gap * i as u32).into()).await;
                queue.enqueue("noop", &now_us()).await.unwrap();
            }
        }
        _ => {
            let ok = Command::new(peer.unwrap())
                .args([
                    "enqueue-paced",
                    &url,
                    &jobs.to_string(),
                    &gap.as_micros().to_string(),
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok, "peer enqueue-paced failed");
        }
    }
    let start = Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bench_latency")
        .fetch_one(&db)
        .await
        .unwrap()
        < jobs as i64
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{s:?}: not every latency job ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut us: Vec<i64> = sqlx::query_scalar("SELECT us FROM bench_latency")
        .fetch_all(&db)
        .await
        .unwrap();
    us.sort_unstable();
    let pct =
        |p: f64| us[((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1] as f64 / 1000.0;
    drop(procs);
    db.close().await;
    drop_db(base, &url).await;
    LatencyRow {
        system: s.name(),
        load,
        jobs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pg = Command::new("sh")
        .arg("-c")
        .arg("ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores; PostgreSQL {pg} on 127.0.0.1 (fsync on, default settings)")
}

fn markdown(r: &Results, jobs: usize) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Drain: {jobs} no-op jobs enqueued in one statement, then drained by N worker processes \
         (each: a tokio runtime with 2 threads, a batch of {BATCH} per fetch, {BATCH} jobs at once). \
         Jobs per second from the workers' start to the last job done; higher is better. \
         {}.\n\n",
        r.machine
    ));
    let systems: Vec<&str> = {
        let mut v: Vec<&str> = r.drain.iter().map(|d| d.system).collect();
        v.dedup();
        let mut seen = Vec::new();
        for x in v {
            if !seen.contains(&x) {
                seen.push(x);
            }
        }
        seen
    };
    let counts: Vec<usize> = {
        let mut c: Vec<usize> = r.drain.iter().map(|d| d.workers).collect();
        c.sort();
        c.dedup();
        c
    };
    s.push_str("| system | enqueue (jobs/s) |");
    for n in &counts {
        s.push_str(&format!(
            " drain, {n} worker{} (jobs/s) |",
            if *n == 1 { "" } else { "s" }
        ));
    }
    s.push_str("\n|---|---:|");
    for _ in &counts {
        s.push_str("---:|");
    }
    s.push('\n');
    let ours = |n: usize| {
        r.drain
            .iter()
            .find(|d| d.workers == n && d.system == System::Ours.name())
            .map(|d| d.jobs_per_s)
    };
    for sys in &systems {
        let rows: Vec<&DrainRow> = r.drain.iter().filter(|d| d.system == *sys).collect();
        let enq = rows
            .iter()
            .map(|d| d.jobs as f64 / d.enqueue_s)
            .sum::<f64>()
            / rows.len() as f64;
        s.push_str(&format!("| {sys} | {enq:.0} |"));
        for n in &counts {
            match rows.iter().find(|d| d.workers == *n) {
                Some(d) => {
                    let ratio = match ours(*n) {
                        Some(o) if *sys != System::Ours.name() => {
                            format!(" (ours {:.2}x)", o / d.jobs_per_s)
                        }
                        _ => String::new(),
                    };
                    s.push_str(&format!(" {:.0}{ratio} |", d.jobs_per_s));
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\nLatency from enqueue to the handler's start (one enqueue per job, its send time in the job):\n\n");
    s.push_str("| system | load | jobs | p50 (ms) | p99 (ms) |\n|---|---|---:|---:|---:|\n");
    for l in &r.latency {
        s.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} |\n",
            l.system, l.load, l.jobs, l.p50_ms, l.p99_ms
        ));
    }
    s
}

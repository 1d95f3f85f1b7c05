//! The queue across real processes: worker processes (this test binary, re-run as
//! `child_worker`) draining one real PostgreSQL, killed with SIGKILL, stopped with SIGTERM,
//! and riding out a server restart. Every wait is bounded.

mod support;

use async_taskpool::TaskPool;
use async_taskpool_queue::sqlx::{self, PgPool};
use async_taskpool_queue::{JobContext, NewJob, PgQueue, Registry, Worker};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{pg, Rt};

/// What a child worker does; passed as JSON in `TASKPOOL_CHILD`.
#[derive(Serialize, Deserialize, Clone)]
struct Spec {
    url: String,
    runtime: String,
    limit: usize,
    lease_ms: u64,
    grace_ms: u64,
    /// How long a `work` job takes, and a `long` one.
    work_ms: u64,
    long_ms: u64,
    retention_s: u64,
}

impl Spec {
    fn new(url: &str, runtime: Rt) -> Self {
        Self {
            url: url.to_owned(),
            runtime: runtime.name().to_owned(),
            limit: 16,
            lease_ms: 2000,
            grace_ms: 1000,
            work_ms: 2,
            long_ms: 600_000,
            retention_s: 3600,
        }
    }
}

/// The worker process. Records each run in `effects` (job id, attempt, pid): not
/// idempotent on purpose, so that the tests see every duplicate run.
#[test]
#[ignore = "a worker process for the other tests of this file, which start it themselves"]
fn child_worker() {
    let spec: Spec =
        serde_json::from_str(&std::env::var("TASKPOOL_CHILD").expect("TASKPOOL_CHILD")).unwrap();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .try_init();
    let rt = Rt::parse(&spec.runtime);
    rt.block_on(Duration::from_secs(900), async move {
        let queue = PgQueue::connect(&spec.url).await.expect("connect");
        let sp = rt.spawner();
        let pool = TaskPool::builder(sp.clone())
            .name("jobs")
            .limit(spec.limit)
            .build()
            .unwrap();
        let effect = |db: PgPool,
                      sp: std::sync::Arc<dyn async_taskpool::runtime::Spawner>,
                      ms: u64| {
            move |ctx: JobContext, _n: i64| {
                let (db, sp) = (db.clone(), sp.clone());
                async move {
                    sp.sleep(Duration::from_millis(ms)).await;
                    sqlx::query("INSERT INTO effects (job_id, attempt, pid) VALUES ($1, $2, $3)")
                        .bind(ctx.id().get())
                        .bind(ctx.attempt() as i32)
                        .bind(std::process::id() as i32)
                        .execute(&db)
                        .await
                        .map(|_| ())
                }
            }
        };
        let registry = Registry::new()
            .register(
                "work",
                effect(queue.pool().clone(), sp.clone(), spec.work_ms),
            )
            .register(
                "long",
                effect(queue.pool().clone(), sp.clone(), spec.long_ms),
            );
        let worker = Worker::builder(queue, pool, registry)
            .lease(Duration::from_millis(spec.lease_ms))
            .poll_interval(Duration::from_millis(500))
            .retention(Duration::from_secs(spec.retention_s))
            .spawner(sp)
            .build()
            .unwrap();
        let stopper = worker.stopper();
        let grace = Duration::from_millis(spec.grace_ms);
        let mut signals =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM]).unwrap();
        std::thread::spawn(move || {
            for _ in signals.forever() {
                stopper.stop_gracefully(grace);
            }
        });
        let summary = worker.run().await.expect("worker");
        println!("SUMMARY {}", serde_json::to_string(&summary).unwrap());
    });
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(spec: &Spec, name: &str) -> Proc {
        let log =
            std::env::temp_dir().join(format!("taskpool-queue-{}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TASKPOOL_CHILD", serde_json::to_string(spec).unwrap())
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// Waits for the exit (bounded) and checks it was clean.
    fn wait_ok(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "worker {} exited with {status}: see {}",
                    self.pid(),
                    self.log.display()
                );
                return;
            }
            assert!(
                start.elapsed() < limit,
                "worker {} did not exit within {limit:?}: see {}",
                self.pid(),
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept for a failing test (its panic message names the file).
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn block_on<F: std::future::Future<Output = T>, T>(f: F) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn scalar(db: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

/// Polls `sql` (a count) until it equals `want`; fails after `limit`, showing the logs.
async fn wait_count(db: &PgPool, sql: &'static str, want: i64, limit: Duration, procs: &[&Proc]) {
    let start = Instant::now();
    loop {
        match sqlx::query_scalar::<_, i64>(sql).fetch_one(db).await {
            Ok(n) if n == want => return,
            Ok(n) if start.elapsed() > limit => {
                let logs: Vec<String> = procs.iter().map(|p| p.log()).collect();
                panic!(
                    "`{sql}` is {n}, not {want}, after {limit:?}\n{}",
                    logs.join("\n-----\n")
                );
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn setup(url: &str, jobs: usize, kind: &str) -> PgQueue {
    let queue = PgQueue::connect(url).await.unwrap();
    sqlx::query(
        "CREATE TABLE effects (job_id bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL)",
    )
    .execute(queue.pool())
    .await
    .unwrap();
    if jobs > 0 {
        let batch: Vec<NewJob> = (0..jobs as i64)
            .map(|i| NewJob::new(kind, &i).unwrap())
            .collect();
        assert_eq!(queue.enqueue_many(batch).await.unwrap().len(), jobs);
    }
    queue
}

const NOT_COMPLETED: &str = "SELECT count(*) FROM taskpool.jobs WHERE state <> 'completed'";
const WORKERS: &str = "SELECT count(*) FROM taskpool.workers";

/// Effects per job id.
async fn effects(db: &PgPool) -> HashMap<i64, i64> {
    sqlx::query_as::<_, (i64, i64)>("SELECT job_id, count(*) FROM effects GROUP BY job_id")
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// 10,000 jobs, three worker processes (one per runtime): every job completed exactly once,
/// every effect done exactly once (nothing crashed), all three workers took part.
#[test]
fn ten_thousand_jobs_drained_by_three_worker_processes() {
    block_on(async {
        let url = support::fresh_database("drain10k").await;
        let queue = setup(&url, 0, "work").await;
        let db = queue.pool().clone();
        let procs: Vec<Proc> = support::RUNTIMES
            .iter()
            .map(|rt| Proc::spawn(&Spec::new(&url, *rt), &format!("drain-{}", rt.name())))
            .collect();
        let refs: Vec<&Proc> = procs.iter().collect();
        wait_count(&db, WORKERS, 3, Duration::from_secs(60), &refs).await;
        let batch: Vec<NewJob> = (0..10_000i64)
            .map(|i| NewJob::new("work", &i).unwrap())
            .collect();
        queue.enqueue_many(batch).await.unwrap();
        wait_count(&db, NOT_COMPLETED, 0, Duration::from_secs(240), &refs).await;

        assert_eq!(
            scalar(
                &db,
                "SELECT count(*) FROM taskpool.jobs WHERE state = 'completed'"
            )
            .await,
            10_000
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT count(*) FROM taskpool.jobs WHERE attempts <> 1 OR history <> '[]'"
            )
            .await,
            0
        );
        let e = effects(&db).await;
        assert_eq!(e.len(), 10_000, "every job's effect is there");
        assert!(e.values().all(|&n| n == 1), "no crash, so no job ran twice");
        let per_worker: Vec<(String, i64)> =
            sqlx::query_as("SELECT worker_id, count(*) FROM taskpool.jobs GROUP BY 1")
                .fetch_all(&db)
                .await
                .unwrap();
        assert_eq!(
            per_worker.len(),
            3,
            "all three workers took part: {per_worker:?}"
        );

        for p in &procs {
            p.sigterm();
        }
        for mut p in procs {
            p.wait_ok(Duration::from_secs(30));
            assert!(p.log().contains("SUMMARY"), "{}", p.log());
        }
        assert_eq!(
            scalar(&db, WORKERS).await,
            0,
            "workers deregister on SIGTERM"
        );
    });
}

/// SIGKILL one of three workers mid-run: nothing is lost; the jobs it held finish
/// elsewhere after the lease, as their second attempt; duplicate effects only for them.
#[test]
fn a_worker_killed_mid_run_loses_nothing() {
    block_on(async {
        let url = support::fresh_database("sigkill").await;
        let queue = setup(&url, 0, "work").await;
        let db = queue.pool().clone();
        let mut spec = Spec::new(&url, Rt::Tokio);
        spec.work_ms = 20;
        spec.limit = 8;
        let mut procs: Vec<Proc> = (0..3)
            .map(|i| Proc::spawn(&spec, &format!("kill-{i}")))
            .collect();
        let refs: Vec<&Proc> = procs.iter().collect();
        wait_count(&db, WORKERS, 3, Duration::from_secs(60), &refs).await;
        let batch: Vec<NewJob> = (0..3000i64)
            .map(|i| NewJob::new("work", &i).unwrap())
            .collect();
        queue.enqueue_many(batch).await.unwrap();

        let victim_pid = procs[0].pid() as i32;
        let start = Instant::now();
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM effects WHERE pid = $1")
                .bind(victim_pid)
                .fetch_one(&db)
                .await
                .unwrap();
            if n >= 100 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the victim never got going: {}",
                procs[0].log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let victim_id: String =
            sqlx::query_scalar("SELECT id FROM taskpool.workers WHERE pid = $1")
                .bind(victim_pid)
                .fetch_one(&db)
                .await
                .unwrap();
        procs[0].child.kill().unwrap(); // SIGKILL
        procs[0].child.wait().unwrap();
        let held: HashSet<i64> = sqlx::query_scalar(
            "SELECT id FROM taskpool.jobs WHERE state = 'running' AND worker_id = $1",
        )
        .bind(&victim_id)
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert!(!held.is_empty(), "the victim held jobs when it died");

        let refs: Vec<&Proc> = procs[1..].iter().collect();
        wait_count(&db, NOT_COMPLETED, 0, Duration::from_secs(240), &refs).await;
        assert_eq!(
            scalar(
                &db,
                "SELECT count(*) FROM taskpool.jobs WHERE state = 'completed'"
            )
            .await,
            3000
        );
        let jobs: Vec<(i64, i32, Option<String>, String)> =
            sqlx::query_as("SELECT id, attempts, worker_id, history::text FROM taskpool.jobs")
                .fetch_all(&db)
                .await
                .unwrap();
        for (id, attempts, worker, history) in &jobs {
            if held.contains(id) {
                assert_eq!(*attempts, 2, "job {id}: the lost attempt counts");
                assert_ne!(
                    worker.as_deref(),
                    Some(victim_id.as_str()),
                    "job {id} finished elsewhere"
                );
                let h: serde_json::Value = serde_json::from_str(history).unwrap();
                assert_eq!(h[0]["outcome"], "lease_expired");
                assert_eq!(h[0]["worker"], victim_id.as_str());
            } else {
                assert_eq!(
                    *attempts, 1,
                    "job {id} was not in flight at the crash: {history}"
                );
            }
        }
        let e = effects(&db).await;
        assert_eq!(e.len(), 3000, "every job's effect is there");
        for (id, n) in &e {
            assert!(
                *n == 1 || held.contains(id),
                "job {id} ran {n} times but was not in flight at the crash"
            );
        }
        for p in &procs[1..] {
            p.sigterm();
        }
        for mut p in procs.drain(1..) {
            p.wait_ok(Duration::from_secs(30));
        }
    });
}

/// PostgreSQL restarted mid-run: the workers reconnect and go on; nothing is lost.
#[test]
fn workers_ride_out_a_postgres_restart() {
    let extra = [
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
    ];
    let server = if std::env::var(pg::URL_VAR).is_ok() {
        // A server we did not start is not ours to restart.
        eprintln!(
            "{} is set; starting a private server for this test anyway",
            pg::URL_VAR
        );
        pg::PgServer::start(&extra)
    } else {
        pg::PgServer::start(&extra)
    }
    .unwrap_or_else(|e| panic!("{e}\n\n{}", pg::HOW_TO));
    block_on(async {
        let url = server.url("postgres");
        let queue = setup(&url, 0, "work").await;
        let db = queue.pool().clone();
        let mut a = Spec::new(&url, Rt::Tokio);
        a.work_ms = 5;
        a.lease_ms = 5000;
        let mut b = a.clone();
        b.runtime = "smol".into();
        let procs = [
            Proc::spawn(&a, "restart-tokio"),
            Proc::spawn(&b, "restart-smol"),
        ];
        let refs: Vec<&Proc> = procs.iter().collect();
        wait_count(&db, WORKERS, 2, Duration::from_secs(60), &refs).await;
        let batch: Vec<NewJob> = (0..3000i64)
            .map(|i| NewJob::new("work", &i).unwrap())
            .collect();
        queue.enqueue_many(batch).await.unwrap();
        let start = Instant::now();
        while scalar(&db, "SELECT count(*) FROM effects").await < 500 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no progress before the restart"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = scalar(&db, "SELECT count(*) FROM effects").await;
        server.restart(&extra);
        // Our own pool reconnects too (its old connections fail once).
        let mut left = i64::MAX;
        let start = Instant::now();
        while left != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(240),
                "{left} jobs left:\n{}\n-----\n{}",
                procs[0].log(),
                procs[1].log()
            );
            left = sqlx::query_scalar(NOT_COMPLETED)
                .fetch_one(&db)
                .await
                .unwrap_or(i64::MAX);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(before < 3000, "the restart came mid-run");
        assert_eq!(
            scalar(
                &db,
                "SELECT count(*) FROM taskpool.jobs WHERE state = 'completed'"
            )
            .await,
            3000
        );
        let e = effects(&db).await;
        assert_eq!(e.len(), 3000, "every job's effect is there");
        let retried: HashSet<i64> =
            sqlx::query_scalar("SELECT id FROM taskpool.jobs WHERE attempts > 1")
                .fetch_all(&db)
                .await
                .unwrap()
                .into_iter()
                .collect();
        for (id, n) in &e {
            assert!(
                *n == 1 || retried.contains(id),
                "job {id} ran {n} times in one attempt"
            );
        }
        for mut p in procs {
            assert!(
                p.child.try_wait().unwrap().is_none(),
                "worker exited: {}",
                p.log()
            );
            p.sigterm();
            p.wait_ok(Duration::from_secs(30));
        }
    });
    drop(server);
}

/// SIGTERM: running jobs get the grace; longer ones are given back, pending at once with
/// the attempt not counted; another worker then runs them without waiting for a lease.
#[test]
fn sigterm_stops_a_worker_gracefully() {
    block_on(async {
        let url = support::fresh_database("sigterm").await;
        let queue = setup(&url, 0, "work").await;
        let db = queue.pool().clone();
        let mut spec = Spec::new(&url, Rt::Tokio);
        spec.work_ms = 300;
        spec.lease_ms = 60_000;
        let mut worker = Proc::spawn(&spec, "sigterm");
        wait_count(&db, WORKERS, 1, Duration::from_secs(60), &[&worker]).await;
        queue
            .enqueue_many((0..6i64).map(|i| NewJob::new("work", &i).unwrap()))
            .await
            .unwrap();
        queue
            .enqueue_many((0..2i64).map(|i| NewJob::new("long", &i).unwrap()))
            .await
            .unwrap();
        wait_count(
            &db,
            "SELECT count(*) FROM taskpool.jobs WHERE state = 'running'",
            8,
            Duration::from_secs(30),
            &[&worker],
        )
        .await;
        worker.sigterm();
        worker.wait_ok(Duration::from_secs(30));
        assert!(
            worker.log().contains(r#""completed":6"#),
            "{}",
            worker.log()
        );
        assert_eq!(scalar(&db, "SELECT count(*) FROM effects").await, 6);
        let long: Vec<(String, i32, Option<String>, String)> =
            sqlx::query_as("SELECT state, attempts, worker_id, history::text FROM taskpool.jobs WHERE kind = 'long'")
                .fetch_all(&db)
                .await
                .unwrap();
        for (state, attempts, worker_id, history) in &long {
            assert_eq!(
                (state.as_str(), *attempts, worker_id),
                ("pending", 0, &None)
            );
            assert!(history.contains("released"), "{history}");
        }
        assert_eq!(scalar(&db, WORKERS).await, 0);
        // Given back, not leased: a new worker takes them at once (its lease is 60 s).
        spec.long_ms = 10;
        let mut next = Proc::spawn(&spec, "sigterm-next");
        wait_count(&db, NOT_COMPLETED, 0, Duration::from_secs(30), &[&next]).await;
        next.sigterm();
        next.wait_ok(Duration::from_secs(30));
    });
}

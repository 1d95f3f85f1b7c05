//! The adaptive limit on a real pool, on tokio's paused clock: the pool drives a simulated
//! backend whose latency rises sharply past a concurrency knee (the model of
//! `src/policy/adaptive/sim.rs`, shared as is), and its limit must settle near the knee and
//! follow the knee when it moves.
//!
//! Each request takes its work (100 ms ± 50%) divided by the backend's speed at the
//! concurrency it meets when it starts (`Backend::speed`); one that would take longer than
//! the deadline (1 s) fails at the deadline, and the task reports an overload. The pool
//! keeps the backend as busy as its limit allows: a `map` over an endless input, as many
//! items at once as the pool's limit.

/// What `sim.rs` calls `crate::policy`.
mod policy {
    pub use async_taskpool::policy::*;
}

#[path = "../../src/policy/adaptive/sim.rs"]
mod sim;

use async_taskpool::{policy::Limiter, runtime::TokioSpawner, Concurrency, TaskPool};
use sim::Backend;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// The backend, shared by the requests in flight.
struct Server {
    model: Backend,
    knee: Mutex<f64>,
    in_flight: AtomicUsize,
    rng: Mutex<fastrand::Rng>,
}

impl Server {
    /// One request: its latency from the concurrency it meets; an overload past the deadline.
    async fn request(&self, pool: &TaskPool) {
        let c = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let knee = *self.knee.lock().unwrap();
        let jitter = 2.0 * self.rng.lock().unwrap().f64() - 1.0;
        let work = self.model.work * (1.0 + self.model.spread * jitter);
        let latency = work / self.model.speed(c, knee);
        if latency > self.model.deadline {
            sleep(Duration::from_secs_f64(self.model.deadline)).await;
            assert!(pool.report_overload());
        } else {
            sleep(Duration::from_secs_f64(latency)).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `limiter` against the backend through `phases` (`(from second, knee)`, each `span`
/// seconds) and returns, per phase, the knee and the pool's mean limit over the phase's
/// second half (sampled every 100 ms of virtual time).
async fn run(limiter: Box<dyn Limiter>, phases: &[(f64, f64)], span: f64) -> Vec<(f64, f64)> {
    let pool = TaskPool::builder(TokioSpawner::current())
        .adaptive_limit(limiter)
        .build()
        .unwrap();
    let server = Arc::new(Server {
        model: Backend::with_knee(phases[0].1),
        knee: Mutex::new(phases[0].1),
        in_flight: AtomicUsize::new(0),
        rng: Mutex::new(fastrand::Rng::with_seed(7)),
    });
    let (s, p) = (server.clone(), pool.clone());
    let load = pool
        .map(0u64.., Concurrency::PoolLimit, move |_| {
            let (s, p) = (s.clone(), p.clone());
            async move { s.request(&p).await }
        })
        .unwrap();
    let t0 = Instant::now();
    let tick = Duration::from_millis(100);
    let mut settled = Vec::new();
    for &(from, knee) in phases {
        *server.knee.lock().unwrap() = knee;
        let (mut sum, mut n) = (0.0, 0u32);
        while t0.elapsed().as_secs_f64() < from + span {
            sleep(tick).await;
            if t0.elapsed().as_secs_f64() >= from + span / 2.0 {
                sum += pool.limit().unwrap() as f64;
                n += 1;
            }
        }
        settled.push((knee, sum / f64::from(n)));
    }
    load.cancel().unwrap();
    let stats = pool.adaptive().unwrap();
    eprintln!(
        "{}: {} samples, {} overloads; limit now {} (bounds {}..={})",
        stats.limiter, stats.samples, stats.overloads, stats.limit, stats.min, stats.max
    );
    settled
}

/// Both limiters, set up as `sim.rs` judges them, settle within ±20% of the knee on a real
/// pool, and follow the knee when it moves at run time (up, then down).
#[tokio::test(start_paused = true)]
async fn a_pool_with_an_adaptive_limit_settles_at_the_knee_and_follows_it() {
    for (name, limiter) in sim::limiters() {
        let settled = run(
            limiter,
            &[(0.0, 50.0), (120.0, 100.0), (240.0, 25.0)],
            120.0,
        )
        .await;
        for (knee, limit) in settled {
            eprintln!("{name}: knee {knee}: mean limit {limit:.1} over the phase's second half");
            assert!(
                (0.8 * knee..=1.2 * knee).contains(&limit),
                "{name}: knee {knee}, limit settled at {limit:.1}"
            );
        }
    }
}

/// The pool measures run times on its runtime's clock: `TokioSpawner::now` follows tokio's
/// paused clock (the system clock would see no time pass here).
#[tokio::test(start_paused = true)]
async fn tokio_spawner_now_follows_the_paused_clock() {
    use async_taskpool::runtime::Spawner;
    let sp = TokioSpawner::current();
    let t0 = sp.now();
    sleep(Duration::from_secs(10)).await;
    assert_eq!(sp.now() - t0, Duration::from_secs(10));
}

//! The ways of running N tasks that the benchmark compares, each runnable with its producer on
//! the `block_on` thread or in one or more runtime tasks.
#![allow(deprecated)] // async-std: measured for as long as the crate supports it

use crate::rt::{Rt, RtHandle};
use crate::work::{work, Work};
use async_taskpool::runtime::{AsyncStdSpawner, SmolSpawner, TokioSpawner};
use async_taskpool::TaskPool;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A concurrency limit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Limit {
    At(usize),
    Unlimited,
}

impl Limit {
    pub fn get(self) -> usize {
        match self {
            Limit::At(c) => c,
            Limit::Unlimited => usize::MAX,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::At(c) => write!(f, "{c}"),
            Limit::Unlimited => f.write_str("∞"),
        }
    }
}

/// The limits of the main tables.
pub const LIMITS: [Limit; 4] = [
    Limit::At(1),
    Limit::At(16),
    Limit::At(1000),
    Limit::Unlimited,
];

/// What a pattern is, for the ratios and targets (its name is for people).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum Kind {
    /// Raw spawn of every task, then await every handle: the baseline.
    RawSpawn,
    /// Raw spawn and await, one task at a time: the baseline of `Exec`.
    RawLoop,
    Exec,
    Semaphore,
    SpawnBuffered,
    /// `buffer_unordered` without spawning: the baseline of the map targets.
    Buffered,
    Workers,
    PoolSpawn,
    PoolQueued,
    Map,
    MapUnordered,
    Apply,
}

impl Kind {
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Kind::Exec
                | Kind::PoolSpawn
                | Kind::PoolQueued
                | Kind::Map
                | Kind::MapUnordered
                | Kind::Apply
        )
    }

    /// The map-like patterns, also held against `buffer_unordered` without spawning.
    pub fn is_map_like(self) -> bool {
        matches!(self, Kind::Map | Kind::MapUnordered | Kind::Apply)
    }
}

/// Where the code that submits the tasks runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Producers {
    /// In the future given to `block_on`, on the calling thread (not a runtime task).
    BlockOn,
    /// In this many runtime tasks, each submitting its share of the items, concurrently.
    Tasks(u64),
}

impl fmt::Display for Producers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Producers::BlockOn => f.write_str("block_on"),
            Producers::Tasks(1) => f.write_str("task"),
            Producers::Tasks(p) => write!(f, "{p} tasks"),
        }
    }
}

type Run = Box<dyn Fn(&RtHandle, Producers) -> BoxFuture<'static, Duration> + Send + Sync>;

pub struct Pattern {
    pub name: String,
    pub work: Work,
    pub kind: Kind,
    pub limit: Option<Limit>,
    /// Tasks per run (all producers together).
    pub tasks: u64,
    run: Run,
}

impl Pattern {
    /// One run on `rt`: the time from the first submission to the last result. Then waits
    /// for the runtime tasks the run left behind (see [`Rt::settle`]), untimed, and notes
    /// them if there were more than a pool's parked runners.
    pub fn run(&self, rt: &Rt, producers: Producers) -> Duration {
        let took = rt.block_on((self.run)(&rt.handle(), producers));
        let left = rt.settle();
        if left > LEFT_BEHIND_NOTED {
            let mut all = LEFT_BEHIND.lock().unwrap();
            let key = (rt.name(), self.work, producers, self.name.clone());
            match all.iter_mut().find(|(k, _)| *k == key) {
                Some((_, most)) => *most = (*most).max(left),
                None => all.push((key, left)),
            }
        }
        took
    }
}

/// A pool keeps up to 32 runtime tasks parked until it closes; more than this is noted.
const LEFT_BEHIND_NOTED: usize = 64;

type LeftBehind = ((String, Work, Producers, String), usize);

/// Runs that left more than [`LEFT_BEHIND_NOTED`] runtime tasks alive when they returned:
/// (runtime, workload, producers, pattern) and the most seen.
pub static LEFT_BEHIND: std::sync::Mutex<Vec<LeftBehind>> = std::sync::Mutex::new(Vec::new());

/// The runs that left runtime tasks behind, as markdown (empty if none did).
pub fn left_behind() -> String {
    let all = LEFT_BEHIND.lock().unwrap();
    if all.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## Runtime tasks left alive after a run\n\nRuns (tokio only: it counts its alive tasks) \
         that returned with more than 64 runtime tasks still alive. The harness waits for them, \
         untimed, before the next run, so they do not slow it down; they are work the timed \
         figure does not include.\n\n| runtime | workload | producer | pattern | most tasks left |\n\
         |---|---|---|---|---:|\n",
    );
    for ((rt, work, producers, pattern), most) in all.iter() {
        out += &format!("| {rt} | {work:?} | {producers} | {pattern} | {most} |\n");
    }
    out + "\n"
}

/// A pattern from its set-up (made before the clock starts, shared by all producers) and
/// the body one producer runs over its share of the items.
#[allow(clippy::too_many_arguments)]
fn pattern<S, Setup, Body, Fut>(
    name: String,
    work: Work,
    kind: Kind,
    limit: Option<Limit>,
    tasks: u64,
    setup: Setup,
    body: Body,
) -> Pattern
where
    Setup: Fn(&RtHandle) -> S + Send + Sync + 'static,
    S: Clone + Send + 'static,
    Body: Fn(S, Range<u64>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let body = Arc::new(body);
    let run: Run = Box::new(move |h: &RtHandle, producers| {
        let state = setup(h);
        let body = body.clone();
        let h = h.clone();
        Box::pin(async move {
            let start = Instant::now();
            match producers {
                Producers::BlockOn => body(state, 0..tasks).await,
                Producers::Tasks(p) => {
                    let share = |k: u64| k * tasks / p..(k + 1) * tasks / p;
                    let hs: Vec<_> = (0..p)
                        .map(|k| h.spawn(body(state.clone(), share(k))))
                        .collect();
                    for x in hs {
                        x.await;
                    }
                }
            }
            start.elapsed()
        })
    });
    Pattern {
        name,
        work,
        kind,
        limit,
        tasks,
        run,
    }
}

/// A pool on `h`'s runtime, built from its concrete spawner type, as a user would.
fn pool(h: &RtHandle, limit: Limit) -> TaskPool {
    let b = match h {
        RtHandle::Tokio(h) => TaskPool::builder(TokioSpawner::from_handle(h.clone())),
        RtHandle::Smol => TaskPool::builder(SmolSpawner::global()),
        RtHandle::AsyncStd => TaskPool::builder(AsyncStdSpawner::new()),
    };
    match limit {
        Limit::At(c) => b.limit(c),
        Limit::Unlimited => b,
    }
    .build()
    .unwrap()
}

/// Every pattern for one workload: the two raw baselines first, then `exec`, then the
/// patterns that take a limit, at every limit of [`LIMITS`].
pub fn patterns(workload: Work, n: u64) -> Vec<Pattern> {
    // Spawn-and-await-one-at-a-time is latency-bound: a tenth of the tasks keeps it short.
    let n_loop = (n / 10).max(1);
    let mut p = vec![
        pattern(
            "raw spawn, then await all".into(),
            workload,
            Kind::RawSpawn,
            None,
            n,
            RtHandle::clone,
            move |h, items| async move {
                let hs: Vec<_> = items.map(|i| h.spawn(work(workload, i))).collect();
                for x in hs {
                    x.await;
                }
            },
        ),
        pattern(
            "raw spawn+await, in a loop".into(),
            workload,
            Kind::RawLoop,
            None,
            n_loop,
            RtHandle::clone,
            move |h, items| async move {
                for i in items {
                    h.spawn(work(workload, i)).await;
                }
            },
        ),
        pattern(
            "pool exec, in a loop".into(),
            workload,
            Kind::Exec,
            None,
            n_loop,
            |h| pool(h, Limit::Unlimited),
            move |pool, items| async move {
                for i in items {
                    pool.exec(work(workload, i)).await.unwrap();
                }
            },
        ),
    ];
    for c in LIMITS {
        p.extend(limit_patterns(workload, n, c));
    }
    p
}

/// The patterns that take a concurrency limit, at limit `c`.
pub fn limit_patterns(workload: Work, n: u64, c: Limit) -> Vec<Pattern> {
    let cn = c.get();
    // With a limit of 1 and a runtime spawn per task, every task waits for the previous one
    // to finish and wake the producer: latency-bound, so a tenth of the tasks will do.
    let n_serial = if c == Limit::At(1) {
        (n / 10).max(1)
    } else {
        n
    };
    let sem_permits = cn.min(tokio::sync::Semaphore::MAX_PERMITS);
    let width = move |items: &Range<u64>| cn.min((items.end - items.start).max(1) as usize);
    vec![
        pattern(
            format!("spawn + Semaphore({c}) per task"),
            workload,
            Kind::Semaphore,
            Some(c),
            n_serial,
            move |h| {
                (
                    h.clone(),
                    Arc::new(tokio::sync::Semaphore::new(sem_permits)),
                )
            },
            move |(h, sem), items| async move {
                h.spawn_all_with_semaphore(items, sem, move |i| work(workload, i))
                    .await;
            },
        ),
        pattern(
            format!("spawn, buffer_unordered({c})"),
            workload,
            Kind::SpawnBuffered,
            Some(c),
            n_serial,
            RtHandle::clone,
            move |h, items| async move {
                let w = width(&items);
                futures::stream::iter(items)
                    .map(|i| h.spawn(work(workload, i)))
                    .buffer_unordered(w)
                    .for_each(|_| async {})
                    .await;
            },
        ),
        pattern(
            format!("buffer_unordered({c}), no spawn"),
            workload,
            Kind::Buffered,
            Some(c),
            n,
            |_| (),
            move |(), items| async move {
                let w = width(&items);
                futures::stream::iter(items)
                    .map(|i| work(workload, i))
                    .buffer_unordered(w)
                    .for_each(|_| async {})
                    .await;
            },
        ),
        pattern(
            format!("{c} workers pulling a shared iterator"),
            workload,
            Kind::Workers,
            Some(c),
            n,
            RtHandle::clone,
            move |h, items| async move {
                let next = Arc::new(AtomicU64::new(items.start));
                let end = items.end;
                let hs: Vec<_> = (0..width(&items))
                    .map(|_| {
                        let next = next.clone();
                        h.spawn(async move {
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                if i >= end {
                                    break;
                                }
                                work(workload, i).await;
                            }
                        })
                    })
                    .collect();
                for x in hs {
                    x.await;
                }
            },
        ),
        pattern(
            format!("pool spawn().await, limit {c}"),
            workload,
            Kind::PoolSpawn,
            Some(c),
            n_serial,
            move |h| pool(h, c),
            move |pool, items| async move {
                let mut hs = Vec::with_capacity((items.end - items.start) as usize);
                for i in items {
                    hs.push(pool.spawn(work(workload, i)).await.unwrap());
                }
                for x in hs {
                    x.await.unwrap();
                }
            },
        ),
        pattern(
            format!("pool spawn_queued, limit {c}"),
            workload,
            Kind::PoolQueued,
            Some(c),
            n,
            move |h| pool(h, c),
            move |pool, items| async move {
                let hs: Vec<_> = items
                    .map(|i| pool.spawn_queued(work(workload, i)).unwrap())
                    .collect();
                for x in hs {
                    x.await.unwrap();
                }
            },
        ),
        pattern(
            format!("pool map, num_concurrent {c}"),
            workload,
            Kind::Map,
            Some(c),
            n,
            |h| pool(h, Limit::Unlimited),
            move |pool, items| async move {
                let len = items.end - items.start;
                let g = pool.map(items, cn, move |i| work(workload, i)).unwrap();
                assert_eq!(g.count().await as u64, len);
            },
        ),
        pattern(
            format!("pool map_unordered, num_concurrent {c}"),
            workload,
            Kind::MapUnordered,
            Some(c),
            n,
            |h| pool(h, Limit::Unlimited),
            move |pool, items| async move {
                let len = items.end - items.start;
                let g = pool
                    .map_unordered(items, cn, move |i| work(workload, i))
                    .unwrap();
                assert_eq!(g.count().await as u64, len);
            },
        ),
        pattern(
            format!("pool apply, limit {c}"),
            workload,
            Kind::Apply,
            Some(c),
            n,
            move |h| pool(h, c),
            move |pool, items| async move {
                let len = items.end - items.start;
                let g = pool.apply(len as usize, move || work(workload, 0)).unwrap();
                assert_eq!(g.join().await.unwrap().completed, len);
            },
        ),
    ]
}

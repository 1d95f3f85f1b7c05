//! A polite crawler that uses the pool's scheduling policies together, against a simulated web
//! served over real HTTP on 127.0.0.1 (`common/site.rs`): twelve hosts in front of one backend
//! whose latency rises sharply past a concurrency knee (moved half-way through the run).
//!
//! - an **adaptive limit** (`Gradient`) finds the knee and follows it; tasks report the backend's
//!   "overloaded" answers with `report_overload`;
//! - a **per-host rate limit** (`rate_limit_by`) keeps each host under its politeness quota,
//!   and a host waiting for its token holds up neither a slot nor the other hosts;
//! - **retries** with backoff and jitter (`RetryPolicy`) absorb the backend's transient 503s;
//! - two tenants share the pool by **weight** (3:1), and a low-**priority** prefetch group with
//!   a **queue deadline** is shed rather than started late;
//! - **single flight** (`spawn_keyed`) fetches each host's robots.txt once however many
//!   crawls ask for it at the same time.
//!
//! Run it with `cargo run --release --example policy_crawler_tokio --features tokio`; it prints
//! what each policy did.

#[path = "common/site.rs"]
mod site;

use async_taskpool::policy::{Gradient, Quota, RetryPolicy};
use async_taskpool::runtime::TokioSpawner;
use async_taskpool::{Concurrency, TaskPool};
use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use site::{Backend, FetchError};
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

const HOSTS: usize = 12;
const KNEE: usize = 40;
const MOVED_KNEE: usize = 80;
/// When the knee moves, in seconds from the start.
const MOVE_AT: u64 = 4;

/// What the sampler saw.
struct Sample {
    at: Duration,
    limit: usize,
    knee: usize,
    in_flight: usize,
    news: usize,
    archive: usize,
    /// The pool ran as many tasks as its limit allowed.
    full: bool,
}

/// A page to fetch: a host (its index in the site's list) and a page number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Url {
    host: usize,
    page: u64,
}

/// A fetched page's links.
type Links = Vec<Url>;

/// A page that could not be fetched, and why.
#[derive(Debug)]
struct Failed {
    url: Url,
    error: FetchError,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let backend = Backend {
        knee: KNEE,
        base: Duration::from_millis(20),
        overload: 3 * MOVED_KNEE,
        transient_every: 20,
        pages: 2000,
        polite_per_sec: 500,
        burst: 20,
    };
    let site = site::start(HOSTS, backend).await?;
    let hosts = Arc::new(site.hosts.clone());
    let pool = TaskPool::builder(TokioSpawner::current())
        .name("crawler")
        // A gradient limiter: it cuts when run times rise above those at low load.
        .adaptive_limit(Gradient::builder(1, 400).initial(4).build()?)
        .build()?;
    let started = Instant::now();

    // Single flight: every seed asks for its host's robots.txt; one fetch per host runs.
    let mut robots = Vec::new();
    for _seed in 0..8 {
        for &host in hosts.iter() {
            robots.push(pool.spawn_keyed(host, fetch_robots(host))?);
        }
    }
    let asked = robots.len();
    for handle in robots {
        let robots = handle.await.map_err(|e| format!("robots.txt: {e}"))?;
        robots.map_err(|e| format!("robots.txt: {e}"))?;
    }

    // Two tenants, weights 3:1, each crawling its own six hosts; and a prefetch group at low
    // priority whose items may wait 300 ms at most.
    let crawl = Crawl {
        pool: pool.clone(),
        hosts: hosts.clone(),
    };
    let news = crawl.tenant("news", 3, 0..HOSTS / 2, &backend)?;
    let archive = crawl.tenant("archive", 1, HOSTS / 2..HOSTS, &backend)?;
    let prefetch = {
        let crawl = crawl.clone();
        pool.build_group()
            .name("prefetch")
            .priority(-1)
            .max_queue_wait(Duration::from_millis(300))
            .map(
                (0..200u64).map(|page| Url { host: 0, page }),
                Concurrency::PoolLimit,
                move |url| crawl.clone().fetch(url),
            )?
    };
    drop(crawl);

    // The sampler: the adaptive limit and both tenants' slots, every 50 ms.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let (pool, seen) = (pool.clone(), site.seen.clone());
        tokio::spawn(async move {
            let mut stopped = stopped;
            let mut trace = Vec::new();
            let mut moved = false;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let t = started.elapsed();
                if !moved && t >= Duration::from_secs(MOVE_AT) {
                    seen.set_knee(MOVED_KNEE);
                    moved = true;
                }
                let limit = pool.adaptive().map_or(0, |a| a.limit);
                let running = |name| {
                    pool.group_stats(name)
                        .map_or(0, |g| g.live.saturating_sub(g.queued) as usize)
                };
                let full = pool.stats().running >= limit;
                trace.push(Sample {
                    at: t,
                    limit,
                    knee: seen.knee(),
                    in_flight: seen.in_flight(),
                    news: running("news"),
                    archive: running("archive"),
                    full,
                });
                if stopped.try_recv().is_ok() {
                    return trace;
                }
            }
        })
    };

    let (news_pages, archive_pages) = tokio::join!(news, archive);
    let (news_pages, archive_pages) = (news_pages?, archive_pages?);
    let prefetched = prefetch
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await;
    pool.join().await?;
    let _ = stop.send(());
    let trace = sampler.await?;
    let elapsed = started.elapsed();

    let stats = pool.stats();
    let seen = &site.seen;
    let load = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
    println!("crawled in {:.2} s", elapsed.as_secs_f64());
    println!(
        "pages: news {news_pages}, archive {archive_pages}, prefetch {prefetched} of 200 ({} shed)",
        stats.shed
    );
    println!(
        "backend: {} requests, {} transient 503s, {} overloaded 503s, {} impolite (429)",
        load(&seen.requests),
        load(&seen.transient),
        load(&seen.overloaded),
        load(&seen.impolite)
    );
    println!(
        "robots.txt: {asked} asked, {} fetched (one per host)",
        load(&seen.robots)
    );
    // Shares while the pool was full and both tenants held slots: then the weights decide.
    let both: Vec<_> = trace
        .iter()
        .filter(|s| s.full && s.news > 0 && s.archive > 0)
        .collect();
    let (n, a) = both
        .iter()
        .fold((0, 0), |(n, a), s| (n + s.news, a + s.archive));
    if a > 0 {
        println!(
            "slots held while the pool was full: news {n}, archive {a}: {:.2}:1 (weights 3:1, {} samples)",
            n as f64 / a as f64,
            both.len()
        );
    }
    // The limit against the knee once it had time to find it, while the pool was full.
    let moved = Duration::from_secs(MOVE_AT);
    for (knee, from, to) in [
        (KNEE, moved / 2, moved),
        (MOVED_KNEE, moved + moved / 2, Duration::MAX),
    ] {
        let phase: Vec<_> = trace
            .iter()
            .filter(|s| (from..to).contains(&s.at) && s.full)
            .collect();
        if !phase.is_empty() {
            let mean = |f: fn(&Sample) -> usize| {
                phase.iter().map(|s| f(s) as f64).sum::<f64>() / phase.len() as f64
            };
            let limit = mean(|s| s.limit);
            println!(
                "knee {knee}: mean limit {limit:.1} ({:+.0}%), mean in flight at the backend {:.1}, over {} samples",
                (limit / knee as f64 - 1.0) * 100.0,
                mean(|s| s.in_flight),
                phase.len()
            );
        }
    }
    let line: Vec<String> = trace
        .iter()
        .step_by(5)
        .map(|s| format!("{:.2}s {}/{}", s.at.as_secs_f64(), s.limit, s.knee))
        .collect();
    println!("limit/knee every 250 ms: {}", line.join(", "));
    Ok(())
}

/// What a fetch needs: the pool (to report overloads) and the hosts' addresses.
#[derive(Clone)]
struct Crawl {
    pool: TaskPool,
    hosts: Arc<Vec<SocketAddr>>,
}

impl Crawl {
    /// Crawls `hosts` from their page 0 as one group of the pool, breadth first as links
    /// come back, each host under its politeness quota; resolves to the pages fetched.
    fn tenant(
        &self,
        name: &str,
        weight: u32,
        hosts: Range<usize>,
        backend: &Backend,
    ) -> Result<impl Future<Output = Result<usize, Error>>, Error> {
        let (frontier, urls) = mpsc::unbounded::<Url>();
        // Up to 3 more attempts of a page the backend turned away (503), 20 ms to 500 ms
        // apart with full jitter.
        let retry = RetryPolicy::<Result<Links, Failed>>::builder()
            .max_attempts(4)
            .backoff(Duration::from_millis(20), Duration::from_millis(500))
            .retry_if(|r| matches!(r, Ok(Err(f)) if matches!(f.error, FetchError::Status(503))))
            .build()?;
        let quota = Quota::per_second(backend.polite_per_sec)?.burst(backend.burst)?;
        let (crawl, retrier) = (self.clone(), self.clone());
        let mut pages = self
            .pool
            .build_group()
            .name(name)
            .weight(weight)
            .rate_limit_by(|url: &Url| url.host, quota)
            .unordered()
            .map_stream(urls, Concurrency::PoolLimit, move |url| {
                crawl.clone().fetch(url)
            })?;
        Ok(async move {
            let mut seen: HashSet<Url> = HashSet::new();
            let mut outstanding = 0usize;
            for host in hosts.clone() {
                let url = Url { host, page: 0 };
                seen.insert(url);
                frontier.unbounded_send(url)?;
                outstanding += 1;
            }
            let mut fetched = 0;
            let mut retried = FuturesUnordered::new();
            loop {
                let result = tokio::select! {
                    Some(result) = pages.next() => match result {
                        // A page that failed gets a task of its own, retried with backoff
                        // (one task id across its attempts; the waits hold no slot).
                        Ok(Err(Failed { url, error: FetchError::Status(503) })) => {
                            let crawl = retrier.clone();
                            retried.push(
                                retrier
                                    .pool
                                    .build_task()
                                    .retry(retry.clone())
                                    .spawn_queued_with(move || crawl.clone().fetch(url))?,
                            );
                            continue;
                        }
                        result => result,
                    },
                    Some(result) = retried.next(), if !retried.is_empty() => result,
                    else => break,
                };
                outstanding -= 1;
                if let Ok(Ok(links)) = result {
                    fetched += 1;
                    for url in links {
                        if hosts.contains(&url.host) && seen.insert(url) {
                            frontier.unbounded_send(url)?;
                            outstanding += 1;
                        }
                    }
                }
                if outstanding == 0 {
                    frontier.close_channel();
                }
            }
            Ok(fetched)
        })
    }

    /// Fetches one page: its links, or why not. An "overloaded" answer is reported to the
    /// adaptive limit.
    async fn fetch(self, url: Url) -> Result<Links, Failed> {
        let addr = self.hosts[url.host];
        let failed = |error| Failed { url, error };
        let (status, body) = site::get(addr, &format!("/p/{}", url.page))
            .await
            .map_err(failed)?;
        if status != 200 {
            if status == 503 && body == "overloaded" {
                self.pool.report_overload();
            }
            return Err(failed(FetchError::Status(status)));
        }
        // "7 12 +3": pages 7 and 12 of this host, page 3 of the next one.
        Ok(body
            .split_whitespace()
            .filter_map(|link| match link.strip_prefix('+') {
                Some(page) => page.parse().ok().map(|page| Url {
                    host: (url.host + 1) % self.hosts.len(),
                    page,
                }),
                None => link.parse().ok().map(|page| Url {
                    host: url.host,
                    page,
                }),
            })
            .collect())
    }
}

async fn fetch_robots(host: SocketAddr) -> Result<String, Arc<FetchError>> {
    match site::get(host, "/robots.txt").await {
        Ok((200, body)) => Ok(body),
        Ok((status, _)) => Err(Arc::new(FetchError::Status(status))),
        Err(e) => Err(Arc::new(e)),
    }
}

//! The body of the `recursive_crawl_*` examples: a crawler whose page tasks fetch their links
//! from inside the pool, the natural shape of a recursive crawl, in a pool smaller than the
//! crawl's fan-out.
//!
//! A task that waited for room in its own full pool would wait for a slot only it can free.
//! So `exec` called from one of the pool's own tasks runs the child nested in the caller's
//! slot: it starts at once, with its own id, and the crawl never hangs. (Awaiting the handle
//! of a *queued* child from inside a full pool would still wait on yourself: use `exec`, or
//! queue children with `spawn_queued` and let the caller outside the pool await them, as the
//! second crawl below does.)
//!
//! The "web" is simulated: page `n` links to pages `3n+1`, `3n+2` and `3n+3`, a fetch takes
//! 20 ms on the pool's own timer, and the crawl stops at a depth. The same code runs on
//! every runtime.

use async_taskpool::runtime::Spawner;
use async_taskpool::{current_task_id, TaskPool};
use futures::future::join_all;
use std::collections::HashSet;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEPTH: u32 = 4;
const LIMIT: usize = 4;

/// Fetches a page: waits like a network request, returns the page's links.
async fn fetch(timer: &dyn Spawner, page: u64) -> Vec<u64> {
    timer.sleep(Duration::from_millis(20)).await;
    (1..=3).map(|k| 3 * page + k).collect()
}

type Crawl = Pin<Box<dyn Future<Output = usize> + Send>>;

/// Crawls `page` and, below it, `depth` more levels; returns the pages fetched. Each link is
/// crawled by `exec` from inside this (pool) task: nested, in this task's slot.
fn crawl(
    pool: TaskPool,
    timer: Arc<dyn Spawner>,
    seen: Arc<Mutex<HashSet<u64>>>,
    page: u64,
    depth: u32,
) -> Crawl {
    Box::pin(async move {
        if !seen.lock().unwrap().insert(page) {
            return 0;
        }
        let links = fetch(&*timer, page).await;
        println!(
            "task {:>3}: fetched page {page}",
            current_task_id().unwrap()
        );
        if depth == 0 {
            return 1;
        }
        let children = links.into_iter().map(|link| {
            let child = crawl(pool.clone(), timer.clone(), seen.clone(), link, depth - 1);
            pool.exec(child)
        });
        let below: usize = join_all(children)
            .await
            .into_iter()
            .map(|r| r.unwrap_or(0))
            .sum();
        1 + below
    })
}

/// The same crawl, level by level: each level's pages are fetched by `map` (at most `LIMIT`
/// at once), and the links found make the next level. Nothing waits on the pool from inside
/// it, so nothing can wait for itself.
async fn crawl_by_levels(
    pool: &TaskPool,
    timer: Arc<dyn Spawner>,
) -> Result<usize, Box<dyn Error + Send + Sync>> {
    use futures::StreamExt;
    let mut level = vec![0u64];
    let mut fetched = 0;
    for _ in 0..=DEPTH {
        let t = timer.clone();
        let results = pool.map(level, LIMIT, move |page| {
            let t = t.clone();
            async move { fetch(&*t, page).await }
        })?;
        let links: Vec<Vec<u64>> = results.map(|r| r.unwrap()).collect().await;
        fetched += links.len();
        level = links.into_iter().flatten().collect();
    }
    Ok(fetched)
}

pub async fn run(spawner: impl Spawner + Clone) -> Result<(), Box<dyn Error + Send + Sync>> {
    let pool = TaskPool::builder(spawner.clone())
        .name("crawler")
        .limit(LIMIT)
        .build()?;
    let timer: Arc<dyn Spawner> = Arc::new(spawner);
    let expected: usize = (0..=DEPTH).map(|d| 3usize.pow(d)).sum();

    let seen = Arc::new(Mutex::new(HashSet::new()));
    let pages = pool
        .exec(crawl(pool.clone(), timer.clone(), seen, 0, DEPTH))
        .await?;
    println!("recursive crawl: {pages} pages (expected {expected}) with a limit of {LIMIT}");
    assert_eq!(pages, expected);

    let pages = crawl_by_levels(&pool, timer).await?;
    println!("level-by-level crawl: {pages} pages");
    assert_eq!(pages, expected);

    pool.gather_and_close().await?;
    Ok(())
}

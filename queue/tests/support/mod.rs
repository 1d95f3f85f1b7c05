//! Shared by the queue's tests: a real PostgreSQL (see `pg.rs`), a fresh database per
//! test, and the three runtimes.

#![allow(dead_code)]

pub mod pg;

#[allow(deprecated)]
use async_taskpool::runtime::AsyncStdSpawner;
use async_taskpool::runtime::{SmolSpawner, Spawner, TokioSpawner};
use async_taskpool_queue::sqlx::{self, Connection};
use async_taskpool_queue::PgQueue;
use futures::future::{select, Either};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A runtime sqlx supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rt {
    Tokio,
    Smol,
    AsyncStd,
}

pub const RUNTIMES: [Rt; 3] = [Rt::Tokio, Rt::Smol, Rt::AsyncStd];

impl Rt {
    pub fn name(self) -> &'static str {
        match self {
            Rt::Tokio => "tokio",
            Rt::Smol => "smol",
            Rt::AsyncStd => "async-std",
        }
    }

    pub fn parse(s: &str) -> Rt {
        match s {
            "tokio" => Rt::Tokio,
            "smol" => Rt::Smol,
            "async-std" => Rt::AsyncStd,
            other => panic!("unknown runtime {other}"),
        }
    }

    /// The pool's spawner on this runtime (call inside it).
    pub fn spawner(self) -> Arc<dyn Spawner> {
        match self {
            Rt::Tokio => Arc::new(TokioSpawner::current()),
            Rt::Smol => Arc::new(SmolSpawner::global()),
            #[allow(deprecated)]
            Rt::AsyncStd => Arc::new(AsyncStdSpawner::new()),
        }
    }

    /// Runs `fut` to completion on this runtime, failing after `limit`.
    pub fn block_on<F: Future<Output = ()> + Send + 'static>(self, limit: Duration, fut: F) {
        let bounded = async move {
            let spawner = self.spawner();
            match select(Box::pin(fut), spawner.sleep(limit)).await {
                Either::Left(_) => {}
                Either::Right(_) => {
                    panic!("test on {} did not finish within {limit:?}", self.name())
                }
            }
        };
        match self {
            Rt::Tokio => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(bounded),
            Rt::Smol => smol::block_on(bounded),
            Rt::AsyncStd => async_std::task::block_on(bounded),
        }
    }
}

/// A fresh, migrated database on the shared server, and its URL.
pub async fn fresh_queue(hint: &str) -> (PgQueue, String) {
    let url = fresh_database(hint).await;
    let queue = PgQueue::connect(&url).await.expect("connect and migrate");
    (queue, url)
}

/// A fresh, empty database on the shared server; returns its URL.
pub async fn fresh_database(hint: &str) -> String {
    let base = pg::shared_server();
    let name = pg::database_name(hint);
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {base}: {e}\n\n{}", pg::HOW_TO));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e} (the role needs CREATEDB)"));
    pg::with_database(base, &name)
}

/// Polls `check` until it returns true; fails after `limit` with `what`.
pub async fn eventually<F, Fut>(spawner: &dyn Spawner, limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        spawner.sleep(Duration::from_millis(20)).await;
    }
}

/// How many jobs are in `state`.
pub async fn count_state(queue: &PgQueue, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM taskpool.jobs WHERE state = $1")
        .bind(state)
        .fetch_one(queue.pool())
        .await
        .unwrap()
}

/// How many jobs there are.
pub async fn count_jobs(queue: &PgQueue) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM taskpool.jobs")
        .fetch_one(queue.pool())
        .await
        .unwrap()
}

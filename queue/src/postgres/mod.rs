//! The PostgreSQL backend: schema migrations, enqueue (alone, in batches, inside the
//! caller's transaction), the worker's statements and the admin calls.

mod admin;
mod enqueue;
mod work;

use crate::QueueError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::{Arc, OnceLock};

/// The channel the insert trigger notifies and idle workers listen on.
pub(crate) const CHANNEL: &str = "taskpool_jobs";

/// The queue's tables live in this schema; its migrations are recorded in
/// `taskpool._sqlx_migrations`, apart from the application's own.
pub const SCHEMA: &str = "taskpool";

/// A job queue on PostgreSQL: enqueue from any process, drain with [`Worker`](crate::Worker)s,
/// administer dead jobs, view the cluster. A cheap handle around a `sqlx` pool; clone it.
///
/// Its tables live in the schema `taskpool`, created by [`migrate`](Self::migrate) (which
/// [`connect`](Self::connect) runs): versioned `sqlx` migrations, applied under an advisory
/// lock so that many workers can start at once.
///
/// ```no_run
/// # async fn demo() -> Result<(), async_taskpool_queue::QueueError> {
/// use async_taskpool_queue::{NewJob, PgQueue};
/// use std::time::Duration;
///
/// let queue = PgQueue::connect("postgres://app@127.0.0.1/app").await?; // migrates
/// queue.enqueue("send_email", &("ada@example.com", "welcome")).await?;
/// queue.enqueue_job(NewJob::new("report", &2026)?.delay(Duration::from_secs(3600))).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgQueue {
    pool: PgPool,
    queue: Arc<str>,
    /// The workers' own connections; see [`PgQueue::worker_pool`].
    workers: Arc<OnceLock<PgPool>>,
}

impl PgQueue {
    /// Connects with a pool of up to 10 connections, runs the migrations, and uses the
    /// queue `default` for enqueues that name none.
    ///
    /// The pool does not ping connections before handing them out (one round trip less per
    /// statement); a connection broken by a server restart fails one statement, which the
    /// worker retries, and is replaced.
    pub async fn connect(url: &str) -> Result<Self, QueueError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(QueueError::db("connecting"))?;
        let queue = Self::new(pool);
        queue.migrate().await?;
        Ok(queue)
    }

    /// Wraps a pool you configured. Call [`migrate`](Self::migrate) once before use.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Arc::from("default"),
            workers: Arc::default(),
        }
    }

    /// The connections a worker's own statements use (fetch, lease extension, outcomes,
    /// heartbeat, LISTEN): up to 5, made like the main pool's but with
    /// `synchronous_commit = off`. A worker's write lost in a server crash only makes a job
    /// run again (a lost fetch leaves it pending, a lost completion lets its lease expire),
    /// which at-least-once allows; so these commits do not wait for the WAL flush. Enqueues
    /// and admin calls use the main pool, with the server's setting: an acknowledged
    /// enqueue is durable.
    pub(crate) fn worker_pool(&self) -> &PgPool {
        self.workers.get_or_init(|| {
            let options = (*self.pool.connect_options())
                .clone()
                .options([("synchronous_commit", "off")]);
            PgPoolOptions::new()
                .max_connections(5)
                .test_before_acquire(false)
                .connect_lazy_with(options)
        })
    }

    /// The same database, with `queue` as the default queue of enqueues.
    ///
    /// ```no_run
    /// # async fn demo(q: async_taskpool_queue::PgQueue) -> Result<(), async_taskpool_queue::QueueError> {
    /// let mail = q.with_queue("mail");
    /// mail.enqueue("send", &"hello").await?; // on queue `mail`
    /// # Ok(()) }
    /// ```
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Arc::from(queue.into());
        self
    }

    /// The default queue of enqueues.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The connection pool (for your own statements, or a transaction to enqueue in).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or upgrades the schema `taskpool`. Idempotent, and safe to run from many
    /// processes at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), QueueError> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.create_schema(SCHEMA);
        migrator.dangerous_set_table_name(format!("{SCHEMA}._sqlx_migrations"));
        migrator.run(&self.pool).await?;
        Ok(())
    }
}

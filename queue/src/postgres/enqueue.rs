//! Enqueue: one job or a batch in one statement, on the pool or inside the caller's
//! transaction. The insert trigger wakes idle workers when the transaction commits.

use super::PgQueue;
use crate::job::RunAt;
use crate::{Enqueued, JobId, NewJob, QueueError};
use serde::Serialize;
use sqlx::PgConnection;

/// A unique key held by a job that another transaction is committing can be invisible to
/// this statement's snapshot; a few tries settle it (the next statement sees the commit).
const UNIQUE_TRIES: usize = 5;

const INSERT_ONE: &str = "
WITH ins AS (
    INSERT INTO taskpool.jobs (queue, kind, args, priority, run_at, max_attempts, unique_key)
    VALUES ($1, $2, $3::jsonb, $4,
            coalesce(to_timestamp($6), now() + make_interval(secs => coalesce($5, 0))),
            $7, $8)
    ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN ('pending', 'running')
    DO NOTHING
    RETURNING id
)
SELECT id, true FROM ins
UNION ALL
SELECT id, false FROM taskpool.jobs
WHERE $8::text IS NOT NULL AND queue = $1 AND unique_key = $8 AND state IN ('pending', 'running')
  AND NOT EXISTS (SELECT 1 FROM ins)
LIMIT 1";

const INSERT_MANY: &str = "
INSERT INTO taskpool.jobs (queue, kind, args, priority, run_at, max_attempts, unique_key)
SELECT q, k, a::jsonb, p, coalesce(to_timestamp(t), now() + make_interval(secs => coalesce(d, 0))), m, u
FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::float8[], $6::float8[], $7::int4[], $8::text[])
     WITH ORDINALITY AS j(q, k, a, p, d, t, m, u, n)
ORDER BY n
ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN ('pending', 'running')
DO NOTHING
RETURNING id";

fn times(run_at: RunAt) -> (Option<f64>, Option<f64>) {
    match run_at {
        RunAt::Now => (None, None),
        RunAt::After(secs) => (Some(secs), None),
        RunAt::At(epoch) => (None, Some(epoch)),
    }
}

impl PgQueue {
    /// Enqueues a job of `kind` with `args` on the default queue, with default options.
    ///
    /// ```no_run
    /// # async fn demo(queue: async_taskpool_queue::PgQueue) -> Result<(), async_taskpool_queue::QueueError> {
    /// let id = queue.enqueue("resize", &serde_json::json!({"path": "a.png", "width": 64})).await?.id();
    /// println!("enqueued job {id}");
    /// # Ok(()) }
    /// ```
    pub async fn enqueue<A: Serialize + ?Sized>(
        &self,
        kind: &str,
        args: &A,
    ) -> Result<Enqueued, QueueError> {
        self.enqueue_job(NewJob::new(kind, args)?).await
    }

    /// Enqueues a job with its options (priority, run-at, attempts, unique key).
    pub async fn enqueue_job(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(QueueError::db("enqueueing"))?;
        self.enqueue_job_in(&mut conn, job).await
    }

    /// Enqueues a job inside your own transaction (pass `&mut *tx`): it exists, and idle
    /// workers are woken, only if the transaction commits.
    ///
    /// ```no_run
    /// # async fn demo(queue: async_taskpool_queue::PgQueue) -> Result<(), Box<dyn std::error::Error>> {
    /// use async_taskpool_queue::NewJob;
    ///
    /// let mut tx = queue.pool().begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES (1)").execute(&mut *tx).await?;
    /// queue.enqueue_job_in(&mut *tx, NewJob::new("ship", &1)?).await?;
    /// tx.commit().await?; // or roll back: then neither the order nor the job exists
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_job_in(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
    ) -> Result<Enqueued, QueueError> {
        job.check()?;
        let queue = job.queue.as_deref().unwrap_or(&self.queue);
        let (delay, at) = times(job.run_at);
        for _ in 0..UNIQUE_TRIES {
            let row: Option<(i64, bool)> = sqlx::query_as(INSERT_ONE)
                .bind(queue)
                .bind(&job.kind)
                .bind(&job.args)
                .bind(job.priority)
                .bind(delay)
                .bind(at)
                .bind(job.max_attempts as i32)
                .bind(job.unique_key.as_deref())
                .fetch_optional(&mut *conn)
                .await
                .map_err(QueueError::db("enqueueing"))?;
            match row {
                Some((id, true)) => return Ok(Enqueued::New(JobId::new(id))),
                Some((id, false)) => return Ok(Enqueued::Existing(JobId::new(id))),
                // The key's holder was committed after this statement's snapshot: again.
                None => continue,
            }
        }
        Err(QueueError::invalid(
            "unique_key",
            format!(
                "`{}` stayed contended over {UNIQUE_TRIES} tries (jobs with this key keep \
                 finishing and starting); retry the enqueue",
                job.unique_key.unwrap_or_default()
            ),
        ))
    }

    /// Enqueues many jobs in one statement (one round trip however many). Returns the ids
    /// of the jobs made, in input order; a job whose unique key is held by a pending or
    /// running job (or by an earlier job of the same batch) is skipped and has no id here.
    ///
    /// ```no_run
    /// # async fn demo(queue: async_taskpool_queue::PgQueue) -> Result<(), async_taskpool_queue::QueueError> {
    /// use async_taskpool_queue::NewJob;
    /// let jobs = (0..10_000).map(|i| NewJob::new("thumbnail", &i)).collect::<Result<Vec<_>, _>>()?;
    /// let ids = queue.enqueue_many(jobs).await?;
    /// assert_eq!(ids.len(), 10_000);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_many(
        &self,
        jobs: impl IntoIterator<Item = NewJob>,
    ) -> Result<Vec<JobId>, QueueError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(QueueError::db("enqueueing"))?;
        self.enqueue_many_in(&mut conn, jobs).await
    }

    /// [`enqueue_many`](Self::enqueue_many) inside your own transaction (pass `&mut *tx`).
    pub async fn enqueue_many_in(
        &self,
        conn: &mut PgConnection,
        jobs: impl IntoIterator<Item = NewJob>,
    ) -> Result<Vec<JobId>, QueueError> {
        let jobs: Vec<NewJob> = jobs.into_iter().collect();
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let n = jobs.len();
        let (mut q, mut k, mut a, mut p) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut d, mut t, mut m, mut u) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for job in jobs {
            job.check()?;
            let (delay, at) = times(job.run_at);
            q.push(job.queue.unwrap_or_else(|| self.queue.to_string()));
            k.push(job.kind);
            a.push(job.args);
            p.push(job.priority);
            d.push(delay);
            t.push(at);
            m.push(job.max_attempts as i32);
            u.push(job.unique_key);
        }
        let mut ids: Vec<JobId> = sqlx::query_scalar::<_, i64>(INSERT_MANY)
            .bind(q)
            .bind(k)
            .bind(a)
            .bind(p)
            .bind(d)
            .bind(t)
            .bind(m)
            .bind(u)
            .fetch_all(&mut *conn)
            .await
            .map_err(QueueError::db("enqueueing a batch"))?
            .into_iter()
            .map(JobId::new)
            .collect();
        // Ids come from one sequence in input order; RETURNING does not promise an order.
        ids.sort_unstable();
        Ok(ids)
    }
}

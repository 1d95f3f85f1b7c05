//! Admin calls: the cluster view, one job, and the dead set (list, retry, discard).

use super::PgQueue;
use crate::backend::{Backend, Maintenance, Wakeups};
use crate::{
    ClusterView, DeadJob, DeadSelection, FetchedJob, JobId, JobInfo, JobState, KindStats,
    QueueError, Report, WorkerRegistration, WorkerStatus,
};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::time::Duration;

const KINDS: &str = "
SELECT queue, kind,
    count(*) FILTER (WHERE state = 'pending' AND attempts = 0 AND run_at <= now()),
    count(*) FILTER (WHERE state = 'pending' AND attempts = 0 AND run_at > now()),
    count(*) FILTER (WHERE state = 'pending' AND attempts > 0),
    count(*) FILTER (WHERE state = 'running'),
    count(*) FILTER (WHERE state = 'dead'),
    extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'pending' AND run_at <= now()))::float8
FROM taskpool.jobs
GROUP BY queue, kind
ORDER BY queue, kind";

/// Completions are counted by the workers (whatever the retention) and sent with their
/// heartbeats.
const COMPLETED: &str = "
SELECT queue, c.key, sum(c.value::bigint)::int8
FROM taskpool.workers, jsonb_each_text(stats -> 'completed_last_minute') AS c
WHERE heartbeat_at > now() - interval '1 minute'
GROUP BY 1, 2";

const RUNNING_BY_WORKER: &str = "
SELECT queue, kind, coalesce(worker_id, '?'), count(*)
FROM taskpool.jobs WHERE state = 'running'
GROUP BY 1, 2, 3";

const LIVE_WORKERS: &str = "
SELECT queue, kind, count(*)
FROM taskpool.workers, unnest(kinds) AS kind
WHERE heartbeat_at > now() - make_interval(secs => lease_secs)
GROUP BY 1, 2";

const WORKERS: &str = "
SELECT w.id, w.queue, w.host, w.pid, w.kinds,
    extract(epoch FROM now() - w.started_at)::float8,
    extract(epoch FROM now() - w.heartbeat_at)::float8,
    w.heartbeat_at > now() - make_interval(secs => w.lease_secs),
    (SELECT count(*) FROM taskpool.jobs j WHERE j.state = 'running' AND j.worker_id = w.id),
    w.stats::text
FROM taskpool.workers w
WHERE w.heartbeat_at > now() - interval '1 hour'
ORDER BY w.queue, w.host, w.id";

const DEAD: &str = "
SELECT id, queue, kind, args::text, attempts, max_attempts, last_error, history::text,
    extract(epoch FROM now() - coalesce(finished_at, now()))::float8
FROM taskpool.jobs
WHERE state = 'dead' AND ($1::text IS NULL OR kind = $1)
ORDER BY id DESC
LIMIT $2";

/// Dead jobs whose unique key is held again by a live job stay dead (retrying them would
/// break the key's promise).
const RETRY_DEAD: &str = "
WITH upd AS (
    UPDATE taskpool.jobs j SET
        state = 'pending', attempts = 0, run_at = now(), finished_at = NULL, worker_id = NULL,
        history = j.history || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'outcome', 'retried_from_dead'))
    WHERE j.state = 'dead'
      AND ($1::int8 IS NULL OR j.id = $1) AND ($2::text IS NULL OR j.kind = $2)
      AND (j.unique_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM taskpool.jobs o
          WHERE o.queue = j.queue AND o.unique_key = j.unique_key
            AND o.state IN ('pending', 'running')))
    RETURNING j.queue
), woken AS (
    SELECT pg_notify('taskpool_jobs', '0:' || queue) FROM (SELECT DISTINCT queue FROM upd) q
)
SELECT count(*), (SELECT count(*) FROM woken) FROM upd";

const DISCARD_DEAD: &str = "
DELETE FROM taskpool.jobs
WHERE state = 'dead' AND ($1::int8 IS NULL OR id = $1) AND ($2::text IS NULL OR kind = $2)";

const JOB: &str = "
SELECT id, queue, kind, args::text, state, priority, attempts, max_attempts, unique_key,
    worker_id, last_error, history::text, extract(epoch FROM run_at - now())::float8
FROM taskpool.jobs WHERE id = $1";

fn selection(which: &DeadSelection) -> (Option<i64>, Option<&str>) {
    match which {
        DeadSelection::Job(id) => (Some(id.get()), None),
        DeadSelection::Kind(kind) => (None, Some(kind.as_str())),
        DeadSelection::All => (None, None),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

impl PgQueue {
    /// The cluster: jobs per queue and kind (pending, scheduled, retrying, running by
    /// worker, dead, completed in the last minute, age of the oldest due job, live workers
    /// for the kind), and each worker (host, pid, pool stats, last heartbeat).
    ///
    /// It counts the whole table: meant for dashboards and operators, not a hot loop.
    ///
    /// ```no_run
    /// # async fn demo(queue: async_taskpool_queue::PgQueue) -> Result<(), async_taskpool_queue::QueueError> {
    /// let view = queue.cluster().await?;
    /// print!("{view}"); // a table; or serde_json::to_string(&view)
    /// # Ok(()) }
    /// ```
    pub async fn cluster(&self) -> Result<ClusterView, QueueError> {
        let err = QueueError::db("reading the cluster view");
        let mut tx = self.pool().begin().await.map_err(err)?;
        // One snapshot for all four reads.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(QueueError::db("reading the cluster view"))?;
        type KindRow = (String, String, i64, i64, i64, i64, i64, Option<f64>);
        let kinds: Vec<KindRow> = sqlx::query_as(KINDS)
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::db("reading the cluster view"))?;
        let completed: Vec<(String, String, i64)> = sqlx::query_as(COMPLETED)
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::db("reading the cluster view"))?;
        let running: Vec<(String, String, String, i64)> = sqlx::query_as(RUNNING_BY_WORKER)
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::db("reading the cluster view"))?;
        let live: Vec<(String, String, i64)> = sqlx::query_as(LIVE_WORKERS)
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::db("reading the cluster view"))?;
        type WorkerRow = (
            String,
            String,
            String,
            i32,
            Vec<String>,
            f64,
            f64,
            bool,
            i64,
            String,
        );
        let workers: Vec<WorkerRow> = sqlx::query_as(WORKERS)
            .fetch_all(&mut *tx)
            .await
            .map_err(QueueError::db("reading the cluster view"))?;
        tx.commit()
            .await
            .map_err(QueueError::db("reading the cluster view"))?;

        let mut by_kind: BTreeMap<(String, String), KindStats> = BTreeMap::new();
        for (queue, kind, pending, scheduled, retrying, running, dead, oldest) in kinds {
            by_kind.insert(
                (queue.clone(), kind.clone()),
                KindStats {
                    queue,
                    kind,
                    pending: count(pending),
                    scheduled: count(scheduled),
                    retrying: count(retrying),
                    running: count(running),
                    dead: count(dead),
                    oldest_pending_age_secs: oldest.map(|s| s.max(0.0)),
                    ..KindStats::default()
                },
            );
        }
        for (queue, kind, n) in completed {
            let k = by_kind
                .entry((queue.clone(), kind.clone()))
                .or_insert_with(|| KindStats {
                    queue,
                    kind,
                    ..KindStats::default()
                });
            k.completed_last_minute = count(n);
        }
        for (queue, kind, worker, n) in running {
            if let Some(k) = by_kind.get_mut(&(queue, kind)) {
                k.running_by_worker.insert(worker, count(n));
            }
        }
        for (queue, kind, n) in live {
            let k = by_kind
                .entry((queue.clone(), kind.clone()))
                .or_insert_with(|| KindStats {
                    queue,
                    kind,
                    ..KindStats::default()
                });
            k.live_workers = count(n);
        }
        Ok(ClusterView {
            kinds: by_kind.into_values().collect(),
            workers: workers
                .into_iter()
                .map(
                    |(id, queue, host, pid, kinds, uptime, age, alive, running, stats)| {
                        let stats = json(&stats);
                        WorkerStatus {
                            id,
                            queue,
                            host,
                            pid: pid.max(0) as u32,
                            kinds,
                            uptime_secs: uptime,
                            heartbeat_age_secs: age.max(0.0),
                            alive,
                            running_jobs: count(running),
                            completed_last_minute: stats
                                .get("completed_last_minute")
                                .and_then(|m| m.as_object())
                                .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum()),
                            pool: stats
                                .get("pool")
                                .cloned()
                                .unwrap_or(serde_json::Value::Null),
                        }
                    },
                )
                .collect(),
        })
    }

    /// One job as stored.
    pub async fn job(&self, id: JobId) -> Result<JobInfo, QueueError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            i16,
            i32,
            i32,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            f64,
        );
        let row: Option<Row> = sqlx::query_as(JOB)
            .bind(id.get())
            .fetch_optional(self.pool())
            .await
            .map_err(QueueError::db("reading a job"))?;
        let Some(r) = row else {
            return Err(QueueError::NoSuchJob(id));
        };
        Ok(JobInfo {
            id: JobId::new(r.0),
            queue: r.1,
            kind: r.2,
            args: json(&r.3),
            state: JobState::parse(&r.4).unwrap_or(JobState::Pending),
            priority: r.5,
            attempts: r.6.max(0) as u32,
            max_attempts: r.7.max(0) as u32,
            unique_key: r.8,
            worker_id: r.9,
            last_error: r.10,
            history: json(&r.11),
            due_in_secs: r.12,
        })
    }

    /// Dead jobs, newest first, at most `limit`, of one kind or all.
    pub async fn dead_jobs(
        &self,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadJob>, QueueError> {
        type Row = (
            i64,
            String,
            String,
            String,
            i32,
            i32,
            Option<String>,
            String,
            f64,
        );
        let rows: Vec<Row> = sqlx::query_as(DEAD)
            .bind(kind)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(self.pool())
            .await
            .map_err(QueueError::db("listing dead jobs"))?;
        Ok(rows
            .into_iter()
            .map(|r| DeadJob {
                id: JobId::new(r.0),
                queue: r.1,
                kind: r.2,
                args: json(&r.3),
                attempts: r.4.max(0) as u32,
                max_attempts: r.5.max(0) as u32,
                last_error: r.6,
                history: json(&r.7),
                dead_for_secs: r.8.max(0.0),
            })
            .collect())
    }

    /// Makes dead jobs pending again, due now, with their attempts reset; returns how many.
    /// A dead job whose unique key a live job holds again stays dead.
    ///
    /// ```no_run
    /// # async fn demo(queue: async_taskpool_queue::PgQueue) -> Result<(), async_taskpool_queue::QueueError> {
    /// use async_taskpool_queue::DeadSelection;
    /// let n = queue.retry_dead(&DeadSelection::Kind("resize".into())).await?;
    /// println!("{n} resize jobs retried");
    /// # Ok(()) }
    /// ```
    pub async fn retry_dead(&self, which: &DeadSelection) -> Result<u64, QueueError> {
        let (id, kind) = selection(which);
        let (n, _woken): (i64, i64) = sqlx::query_as(RETRY_DEAD)
            .bind(id)
            .bind(kind)
            .fetch_one(self.pool())
            .await
            .map_err(QueueError::db("retrying dead jobs"))?;
        Ok(count(n))
    }

    /// Deletes dead jobs; returns how many.
    pub async fn discard_dead(&self, which: &DeadSelection) -> Result<u64, QueueError> {
        let (id, kind) = selection(which);
        Ok(sqlx::query(DISCARD_DEAD)
            .bind(id)
            .bind(kind)
            .execute(self.pool())
            .await
            .map_err(QueueError::db("discarding dead jobs"))?
            .rows_affected())
    }
}

impl Backend for PgQueue {
    fn register_worker<'a>(
        &'a self,
        worker: &'a WorkerRegistration,
    ) -> BoxFuture<'a, Result<String, QueueError>> {
        self.register_worker_impl(worker).boxed()
    }
    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        stats: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), QueueError>> {
        self.heartbeat_impl(worker, stats).boxed()
    }
    fn deregister_worker<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        self.deregister_worker_impl(worker).boxed()
    }
    fn fetch<'a>(
        &'a self,
        worker: &'a str,
        queue: &'a str,
        kinds: &'a [String],
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<FetchedJob>, QueueError>> {
        self.fetch_impl(worker, queue, kinds, max, lease).boxed()
    }
    fn extend<'a>(
        &'a self,
        worker: &'a str,
        jobs: &'a [JobId],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<JobId>, QueueError>> {
        self.extend_impl(worker, jobs, lease).boxed()
    }
    fn report<'a>(
        &'a self,
        worker: &'a str,
        reports: &'a [Report],
        retention: Duration,
    ) -> BoxFuture<'a, Result<(), QueueError>> {
        self.report_impl(worker, reports, retention).boxed()
    }
    fn maintain(&self, retention: Duration) -> BoxFuture<'_, Result<Maintenance, QueueError>> {
        self.maintain_impl(retention).boxed()
    }
    fn wakeups<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Wakeups, QueueError>> {
        self.wakeups_impl(queue).boxed()
    }
    fn cluster(&self) -> BoxFuture<'_, Result<ClusterView, QueueError>> {
        PgQueue::cluster(self).boxed()
    }
    fn dead_jobs<'a>(
        &'a self,
        kind: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadJob>, QueueError>> {
        PgQueue::dead_jobs(self, kind, limit).boxed()
    }
    fn retry_dead<'a>(
        &'a self,
        which: &'a DeadSelection,
    ) -> BoxFuture<'a, Result<u64, QueueError>> {
        PgQueue::retry_dead(self, which).boxed()
    }
    fn discard_dead<'a>(
        &'a self,
        which: &'a DeadSelection,
    ) -> BoxFuture<'a, Result<u64, QueueError>> {
        PgQueue::discard_dead(self, which).boxed()
    }
}

//! The worker's statements: register, heartbeat, fetch, extend, report, maintain, listen.

use super::{PgQueue, CHANNEL};
use crate::backend::{Maintenance, Wakeups};
use crate::{FetchedJob, JobId, Outcome, QueueError, Report, WorkerRegistration};
use futures_util::StreamExt;
use sqlx::postgres::PgListener;
use std::time::Duration;

/// `id = ANY(ARRAY(...))`, not a join: a prepared statement's generic plan guesses a
/// parameter LIMIT at a tenth of the table and would hash-join a sequential scan of it;
/// an array of ids always takes the primary key.
const FETCH: &str = "
UPDATE taskpool.jobs
SET state = 'running', attempts = attempts + 1, worker_id = $4,
    locked_until = now() + make_interval(secs => $5), started_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM taskpool.jobs
    WHERE state = 'pending' AND queue = $1 AND run_at <= now() AND kind = ANY($2)
    ORDER BY priority, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED))
RETURNING id, kind, args::text, attempts, max_attempts, priority, extract(epoch FROM run_at)::float8";

const EXTEND: &str = "
UPDATE taskpool.jobs SET locked_until = now() + make_interval(secs => $3)
WHERE id = ANY($1) AND worker_id = $2 AND locked_until IS NOT NULL
RETURNING id";

/// Joined from the list to the table (a nested loop over the primary key: linear in the
/// batch). "Still leased" is `locked_until IS NOT NULL` (set exactly while running), not `state =
/// 'running'`: that would let the planner pick the partial lease index, whose statistics
/// often say "empty", over the primary key.
///
/// Completed jobs with no retention: deleted at once.
const DELETE_COMPLETED: &str = "
DELETE FROM taskpool.jobs j
USING unnest($1::int8[], $2::int4[]) AS d(id, attempt)
WHERE j.id = d.id AND j.attempts = d.attempt AND j.worker_id = $3
  AND j.locked_until IS NOT NULL";

/// Every other outcome in one statement; retried and given-back jobs wake the workers.
const REPORT: &str = "
WITH d AS (
    SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::float8[])
        AS d(id, attempt, outcome, error, delay)
), upd AS (
    UPDATE taskpool.jobs j SET
        state = CASE d.outcome WHEN 'completed' THEN 'completed' WHEN 'dead' THEN 'dead'
                               WHEN 'cancelled' THEN 'cancelled' ELSE 'pending' END,
        attempts = CASE WHEN d.outcome = 'released' THEN j.attempts - 1 ELSE j.attempts END,
        run_at = CASE d.outcome WHEN 'retry' THEN now() + make_interval(secs => d.delay)
                                WHEN 'released' THEN now() ELSE j.run_at END,
        locked_until = NULL,
        worker_id = CASE WHEN d.outcome IN ('retry', 'released') THEN NULL ELSE j.worker_id END,
        finished_at = CASE WHEN d.outcome IN ('completed', 'dead', 'cancelled') THEN now() END,
        last_error = CASE WHEN d.outcome = 'completed' THEN j.last_error ELSE d.error END,
        history = CASE WHEN d.outcome = 'completed' THEN j.history ELSE j.history || jsonb_build_array(
            jsonb_build_object('attempt', d.attempt, 'at', now(), 'worker', $6::text,
                               'outcome', d.outcome, 'error', d.error)) END
    FROM d
    WHERE j.id = d.id AND j.attempts = d.attempt AND j.worker_id = $6
      AND j.locked_until IS NOT NULL
    RETURNING j.queue, d.outcome, d.delay
)
SELECT count(*) FROM (
    SELECT pg_notify('taskpool_jobs', w.due::text || ':' || w.queue)
    FROM (SELECT queue, min(CASE WHEN outcome = 'retry' THEN delay ELSE 0 END) AS due
          FROM upd WHERE outcome IN ('retry', 'released') GROUP BY queue) w) n";

const REAP: &str = "
WITH upd AS (
    UPDATE taskpool.jobs j SET
        state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'pending' END,
        run_at = now(),
        locked_until = NULL,
        worker_id = NULL,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
        last_error = 'lease expired: worker ' || coalesce(j.worker_id, '?')
                     || ' stopped extending it (it crashed, hung or lost the database)',
        history = j.history || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'worker', j.worker_id,
            'outcome', 'lease_expired', 'error', 'lease expired'))
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM taskpool.jobs
        WHERE state = 'running' AND locked_until < now()
        ORDER BY locked_until
        LIMIT 1000
        FOR UPDATE SKIP LOCKED))
    RETURNING j.queue, j.state
), woken AS (
    SELECT pg_notify('taskpool_jobs', '0:' || queue)
    FROM (SELECT DISTINCT queue FROM upd WHERE state = 'pending') q
)
SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead'),
       (SELECT count(*) FROM woken)
FROM upd";

/// Seconds until the next pending job of a queue is due (negative: overdue).
const NEXT_DUE: &str =
    "SELECT extract(epoch FROM min(run_at) - now())::float8 FROM taskpool.jobs WHERE state = 'pending' AND queue = $1 AND run_at > now()";

const PRUNE: &str = "
DELETE FROM taskpool.jobs WHERE id IN (
    SELECT id FROM taskpool.jobs
    WHERE state IN ('completed', 'cancelled') AND finished_at < now() - make_interval(secs => $1)
    LIMIT 10000)";

const PRUNE_WORKERS: &str =
    "DELETE FROM taskpool.workers WHERE heartbeat_at < now() - interval '1 hour'";

impl PgQueue {
    pub(crate) async fn register_worker_impl(
        &self,
        w: &WorkerRegistration,
    ) -> Result<String, QueueError> {
        sqlx::query_scalar(
            "INSERT INTO taskpool.workers (queue, kinds, host, pid, lease_secs)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&w.queue)
        .bind(&w.kinds)
        .bind(&w.host)
        .bind(w.pid as i32)
        .bind(w.lease.as_secs_f64())
        .fetch_one(self.worker_pool())
        .await
        .map_err(QueueError::db("registering a worker"))
    }

    pub(crate) async fn heartbeat_impl(
        &self,
        worker: &str,
        stats: serde_json::Value,
    ) -> Result<(), QueueError> {
        sqlx::query("UPDATE taskpool.workers SET heartbeat_at = now(), stats = $2 WHERE id = $1")
            .bind(worker)
            .bind(sqlx::types::Json(stats))
            .execute(self.worker_pool())
            .await
            .map_err(QueueError::db("sending a heartbeat"))?;
        Ok(())
    }

    pub(crate) async fn deregister_worker_impl(&self, worker: &str) -> Result<(), QueueError> {
        sqlx::query("DELETE FROM taskpool.workers WHERE id = $1")
            .bind(worker)
            .execute(self.worker_pool())
            .await
            .map_err(QueueError::db("deregistering a worker"))?;
        Ok(())
    }

    pub(crate) async fn fetch_impl(
        &self,
        worker: &str,
        queue: &str,
        kinds: &[String],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<FetchedJob>, QueueError> {
        if max == 0 || kinds.is_empty() {
            return Ok(Vec::new());
        }
        type Row = (i64, String, String, i32, i32, i16, f64);
        let rows: Vec<Row> = sqlx::query_as(FETCH)
            .bind(queue)
            .bind(kinds)
            .bind(max.min(i32::MAX as usize) as i64)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .fetch_all(self.worker_pool())
            .await
            .map_err(QueueError::db("fetching jobs"))?;
        let mut rows = rows;
        // RETURNING has no order: start them in the order the fetch chose them.
        rows.sort_by(|a, b| {
            (a.5, a.6, a.0)
                .partial_cmp(&(b.5, b.6, b.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let jobs: Vec<FetchedJob> = rows
            .into_iter()
            .map(
                |(id, kind, args, attempt, max_attempts, priority, _)| FetchedJob {
                    id: JobId::new(id),
                    kind,
                    args,
                    attempt: attempt.max(0) as u32,
                    max_attempts: max_attempts.max(1) as u32,
                    priority,
                },
            )
            .collect();
        Ok(jobs)
    }

    pub(crate) async fn extend_impl(
        &self,
        worker: &str,
        jobs: &[JobId],
        lease: Duration,
    ) -> Result<Vec<JobId>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = jobs.iter().map(|j| j.get()).collect();
        let held: Vec<i64> = sqlx::query_scalar(EXTEND)
            .bind(ids)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .fetch_all(self.worker_pool())
            .await
            .map_err(QueueError::db("extending leases"))?;
        Ok(held.into_iter().map(JobId::new).collect())
    }

    pub(crate) async fn report_impl(
        &self,
        worker: &str,
        reports: &[Report],
        retention: Duration,
    ) -> Result<(), QueueError> {
        let delete_completed = retention.is_zero();
        let (mut done_ids, mut done_attempts) = (Vec::new(), Vec::new());
        let (mut ids, mut attempts, mut outcomes, mut errors, mut delays) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in reports {
            let attempt = r.attempt.min(i32::MAX as u32) as i32;
            if delete_completed && r.outcome == Outcome::Completed {
                done_ids.push(r.id.get());
                done_attempts.push(attempt);
                continue;
            }
            let (error, delay) = match &r.outcome {
                Outcome::Completed => (None, 0.0),
                Outcome::Retry { error, delay } => (Some(clip(error)), delay.as_secs_f64()),
                Outcome::Dead { error } => (Some(clip(error)), 0.0),
                Outcome::Cancelled { reason } | Outcome::Released { reason } => {
                    (Some(clip(reason)), 0.0)
                }
            };
            ids.push(r.id.get());
            attempts.push(attempt);
            outcomes.push(r.outcome.name());
            errors.push(error);
            delays.push(delay);
        }
        // Both in one transaction: a report is applied whole or retried whole.
        let mut tx = self
            .worker_pool()
            .begin()
            .await
            .map_err(QueueError::db("reporting outcomes"))?;
        if !done_ids.is_empty() {
            sqlx::query(DELETE_COMPLETED)
                .bind(done_ids)
                .bind(done_attempts)
                .bind(worker)
                .execute(&mut *tx)
                .await
                .map_err(QueueError::db("reporting completed jobs"))?;
        }
        if !ids.is_empty() {
            sqlx::query(REPORT)
                .bind(ids)
                .bind(attempts)
                .bind(outcomes)
                .bind(errors)
                .bind(delays)
                .bind(worker)
                .execute(&mut *tx)
                .await
                .map_err(QueueError::db("reporting outcomes"))?;
        }
        tx.commit()
            .await
            .map_err(QueueError::db("reporting outcomes"))
    }

    pub(crate) async fn maintain_impl(
        &self,
        retention: Duration,
    ) -> Result<Maintenance, QueueError> {
        let (requeued, dead, _woken): (i64, i64, i64) = sqlx::query_as(REAP)
            .fetch_one(self.worker_pool())
            .await
            .map_err(QueueError::db("requeueing expired leases"))?;
        let deleted = sqlx::query(PRUNE)
            .bind(retention.as_secs_f64())
            .execute(self.worker_pool())
            .await
            .map_err(QueueError::db("deleting finished jobs"))?
            .rows_affected();
        sqlx::query(PRUNE_WORKERS)
            .execute(self.worker_pool())
            .await
            .map_err(QueueError::db("forgetting stale workers"))?;
        Ok(Maintenance {
            requeued: requeued as u64,
            dead: dead as u64,
            deleted,
        })
    }

    pub(crate) async fn wakeups_impl(&self, queue: &str) -> Result<Wakeups, QueueError> {
        let mut listener = PgListener::connect_with(self.worker_pool())
            .await
            .map_err(QueueError::db("listening for new jobs"))?;
        listener.ignore_pool_close_event(true);
        listener
            .listen(CHANNEL)
            .await
            .map_err(QueueError::db("listening for new jobs"))?;
        // Jobs scheduled before we listened were announced to nobody here: ask once.
        let next: Option<f64> = sqlx::query_scalar(NEXT_DUE)
            .bind(queue)
            .fetch_one(self.worker_pool())
            .await
            .map_err(QueueError::db("listening for new jobs"))?;
        let first = Ok(next
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(86_400.0))));
        let queue = queue.to_owned();
        let stream = futures_util::stream::unfold(Some(listener), move |listener| {
            let queue = queue.clone();
            async move {
                let mut listener = listener?;
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            if let Some(due) = parse_payload(n.payload(), &queue) {
                                return Some((Ok(due), Some(listener)));
                            }
                        }
                        // Reconnected: notifications sent meanwhile are lost, so look now.
                        Ok(None) => return Some((Ok(None), Some(listener))),
                        Err(e) => {
                            return Some((Err(QueueError::db("listening for new jobs")(e)), None))
                        }
                    }
                }
            }
        });
        Ok(futures_util::stream::once(async move { first })
            .chain(stream)
            .boxed())
    }
}

/// `"<seconds>:<queue>"` for our queue: `None` for due now, else the wait.
fn parse_payload(payload: &str, queue: &str) -> Option<Option<Duration>> {
    let (secs, q) = payload.split_once(':')?;
    if q != queue {
        return None;
    }
    let secs: f64 = secs.parse().ok()?;
    Some((secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0))))
}

/// Errors are kept whole up to 4 KiB: a handler's error must not bloat the row.
fn clip(s: &str) -> String {
    const MAX: usize = 4096;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(parse_payload("0:default", "default"), Some(None));
        assert_eq!(
            parse_payload("1.5:default", "default"),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(parse_payload("0:mail", "default"), None);
        assert_eq!(parse_payload("0:a:b", "a:b"), Some(None));
        assert_eq!(parse_payload("junk", "default"), None);
    }

    #[test]
    fn clips_long_errors_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let c = clip(&long);
        assert!(c.len() < 4200 && c.ends_with("bytes in all)"));
    }
}

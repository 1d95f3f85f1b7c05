//! The queue's commands for the control server (feature `control`), so that `taskpool-ctl`
//! shows the cluster and manages dead jobs.

use crate::{Backend, ClusterView, DeadJob, DeadSelection, JobId};
use async_taskpool::control::ControlServer;
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::Arc;

/// Adds the queue's commands to a [`ControlServer`]: `queue-stats`, `queue-workers`,
/// `queue-dead`, `queue-retry` and `queue-discard`.
///
/// | command (in `taskpool-ctl`)        | does                                              |
/// |------------------------------------|---------------------------------------------------|
/// | `queue-stats` (`queue-stats json`) | the [`ClusterView`] as a table (as JSON)          |
/// | `queue-workers`                    | the workers: host, pid, running jobs, heartbeat   |
/// | `queue-dead` (`{"kind": K, "limit": N}`, `json`) | dead jobs, newest first (default 20) |
/// | `queue-retry ID` / `{"kind": K}` / `all` | makes dead jobs pending again; says how many |
/// | `queue-discard ID` / `{"kind": K}` / `all` | deletes dead jobs; says how many         |
///
/// ```no_run
/// # async fn demo(queue: async_taskpool_queue::PgQueue, pool: async_taskpool::TaskPool) -> Result<(), Box<dyn std::error::Error>> {
/// use async_taskpool::control::ControlServer;
/// use async_taskpool_queue::QueueCommands;
///
/// let server = ControlServer::new(&pool).queue_commands(queue.clone()).serve_tcp("127.0.0.1:9999")?;
/// // $ taskpool-ctl tcp 127.0.0.1 9999 -- queue-stats
/// # drop(server); Ok(()) }
/// ```
pub trait QueueCommands {
    /// Adds the commands, answered from `backend`.
    fn queue_commands(self, backend: impl Backend) -> Self;
}

impl QueueCommands for ControlServer {
    fn queue_commands(self, backend: impl Backend) -> Self {
        let b: Arc<dyn Backend> = Arc::new(backend);
        let (b1, b2, b3, b4, b5) = (b.clone(), b.clone(), b.clone(), b.clone(), b);
        self.command(
            "queue-stats",
            "The job queue: per queue and kind, and per worker (`queue-stats json` for JSON).",
            move |args: Value| {
                let b = b1.clone();
                async move {
                    let view = b.cluster().await.map_err(|e| e.to_string())?;
                    if wants_json(&args) {
                        serde_json::to_value(&view).map_err(|e| e.to_string())
                    } else {
                        Ok(Value::String(view.to_string().trim_end().to_owned()))
                    }
                }
            },
        )
        .command(
            "queue-workers",
            "The queue's workers: host, pid, running jobs, last heartbeat (`json` for JSON).",
            move |args: Value| {
                let b = b2.clone();
                async move {
                    let view = b.cluster().await.map_err(|e| e.to_string())?;
                    if wants_json(&args) {
                        return serde_json::to_value(&view.workers).map_err(|e| e.to_string());
                    }
                    Ok(Value::String(workers_text(&view)))
                }
            },
        )
        .command(
            "queue-dead",
            "Dead jobs, newest first: queue-dead [{\"kind\": K, \"limit\": N, \"json\": true}].",
            move |args: Value| {
                let b = b3.clone();
                async move {
                    let kind = args.get("kind").and_then(Value::as_str).map(str::to_owned);
                    let limit = args
                        .get("limit")
                        .and_then(Value::as_u64)
                        .unwrap_or(20)
                        .min(1000) as usize;
                    let dead = b
                        .dead_jobs(kind.as_deref(), limit)
                        .await
                        .map_err(|e| e.to_string())?;
                    if wants_json(&args) {
                        return serde_json::to_value(&dead).map_err(|e| e.to_string());
                    }
                    Ok(Value::String(dead_text(&dead)))
                }
            },
        )
        .command(
            "queue-retry",
            "Retries dead jobs: queue-retry ID | {\"kind\": K} | all.",
            move |args: Value| {
                let b = b4.clone();
                async move {
                    let which = selection(&args)?;
                    let n = b.retry_dead(&which).await.map_err(|e| e.to_string())?;
                    Ok(json!(format!(
                        "retried {n} dead job{}",
                        if n == 1 { "" } else { "s" }
                    )))
                }
            },
        )
        .command(
            "queue-discard",
            "Deletes dead jobs: queue-discard ID | {\"kind\": K} | all.",
            move |args: Value| {
                let b = b5.clone();
                async move {
                    let which = selection(&args)?;
                    let n = b.discard_dead(&which).await.map_err(|e| e.to_string())?;
                    Ok(json!(format!(
                        "discarded {n} dead job{}",
                        if n == 1 { "" } else { "s" }
                    )))
                }
            },
        )
    }
}

fn wants_json(args: &Value) -> bool {
    args.as_str() == Some("json") || args.get("json").and_then(Value::as_bool) == Some(true)
}

fn selection(args: &Value) -> Result<DeadSelection, String> {
    match args {
        Value::Number(n) => n
            .as_i64()
            .map(|id| DeadSelection::Job(JobId::new(id)))
            .ok_or_else(|| format!("`{n}` is not a job id")),
        Value::String(s) if s == "all" => Ok(DeadSelection::All),
        Value::Object(o) => match (
            o.get("id").and_then(Value::as_i64),
            o.get("kind").and_then(Value::as_str),
        ) {
            (Some(id), None) => Ok(DeadSelection::Job(JobId::new(id))),
            (None, Some(kind)) => Ok(DeadSelection::Kind(kind.to_owned())),
            _ => Err("give one of {\"id\": ID} or {\"kind\": KIND}".to_owned()),
        },
        _ => Err(
            "say which dead jobs: a job id (e.g. 42), {\"kind\": \"resize\"}, or all".to_owned(),
        ),
    }
}

fn workers_text(view: &ClusterView) -> String {
    if view.workers.is_empty() {
        return "(no workers)".to_owned();
    }
    let mut out = String::new();
    for w in &view.workers {
        let limit = match w.pool.get("limit") {
            Some(Value::Null) | None => "none".to_owned(),
            Some(l) => l.to_string(),
        };
        let _ = writeln!(
            out,
            "{}  queue {}  {} pid {}  running {}  limit {}  done/min {}  heartbeat {:.1}s ago{}",
            w.id,
            w.queue,
            w.host,
            w.pid,
            w.running_jobs,
            limit,
            w.completed_last_minute,
            w.heartbeat_age_secs,
            if w.alive { "" } else { "  (silent)" }
        );
    }
    out.pop();
    out
}

fn dead_text(dead: &[DeadJob]) -> String {
    if dead.is_empty() {
        return "(no dead jobs)".to_owned();
    }
    let mut out = String::new();
    for d in dead {
        let _ = writeln!(
            out,
            "{:>8}  {}/{}  {} attempt{}  dead {:.0}s  {}  args {}",
            d.id,
            d.queue,
            d.kind,
            d.attempts,
            if d.attempts == 1 { "" } else { "s" },
            d.dead_for_secs,
            d.last_error.as_deref().unwrap_or("-"),
            d.args
        );
    }
    out.pop();
    out
}

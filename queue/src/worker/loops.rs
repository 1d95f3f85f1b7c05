//! The worker's five loops, run side by side in one future: fetch, outcomes, leases (with
//! heartbeat and maintenance), notifications, and the drain that ends a graceful stop.

use super::shared::{EndedJob, Ending, Key, Kill, Shared, Started};
use super::WorkerSummary;
use crate::{Outcome, QueueError, Report};
use async_taskpool::TaskError;
use futures_util::future::{join5, select, BoxFuture, Either};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Waits between retries of a failed database call: short first, then up to the poll
/// interval.
struct Retry {
    delay: Duration,
    max: Duration,
}

impl Retry {
    fn new(max: Duration) -> Self {
        Self {
            delay: Duration::from_millis(50),
            max,
        }
    }
    fn next(&mut self) -> Duration {
        let d = self.delay;
        self.delay = (self.delay * 2).min(self.max.max(Duration::from_millis(50)));
        d
    }
    fn reset(&mut self) {
        self.delay = Duration::from_millis(50);
    }
}

pub(super) async fn run(shared: Arc<Shared>) -> Result<WorkerSummary, QueueError> {
    let id = shared.backend.register_worker(&shared.registration).await?;
    shared.set_id(id);
    info!(
        worker = shared.id(),
        queue = %shared.config.queue,
        pool = shared.pool.name(),
        kinds = ?shared.kinds,
        "worker started"
    );
    join5(
        fetch_loop(&shared),
        outcome_loop(&shared),
        lease_loop(&shared),
        listen_loop(&shared),
        drain(&shared),
    )
    .await;
    if let Err(e) = shared.backend.deregister_worker(shared.id()).await {
        warn!(worker = shared.id(), error = %e, "could not deregister the worker; it ages out of the cluster view");
    }
    let summary = shared.summary();
    info!(worker = shared.id(), ?summary, "worker stopped");
    Ok(summary)
}

async fn fetch_loop(shared: &Shared) {
    let c = &shared.config;
    let mut retry = Retry::new(c.poll_interval);
    // The last fetch filled its request: there is a backlog, and fetching a few jobs at a
    // time would cost a statement per few jobs.
    let mut backlog = false;
    while !shared.is_stopping() {
        if shared.pool.is_closed() {
            warn!(
                worker = shared.id(),
                pool = shared.pool.name(),
                "the worker's pool was closed; stopping the worker"
            );
            shared.request_stop(c.grace);
            break;
        }
        let mut seen = shared.changes();
        let mut room = shared.room();
        if room == 0 {
            // Woken when a job ends; the poll interval catches limit changes and unlocks.
            shared.wait_change(seen, c.poll_interval).await;
            continue;
        }
        if backlog {
            // With a backlog, let the pool free half its room (for at most 2 ms) so that
            // short jobs are fetched in batches, not one statement per finished job.
            let half = shared.capacity().div_ceil(2);
            let until = Instant::now() + Duration::from_millis(2);
            while room < half && Instant::now() < until {
                shared
                    .wait_change(seen, until.saturating_duration_since(Instant::now()))
                    .await;
                seen = shared.changes();
                room = shared.room();
            }
        }
        match shared
            .backend
            .fetch(shared.id(), &c.queue, &shared.kinds, room, c.lease)
            .await
        {
            Ok(jobs) => {
                retry.reset();
                let n = jobs.len();
                backlog = n == room;
                if n > 0 {
                    debug!(worker = shared.id(), jobs = n, room, "fetched");
                }
                for job in jobs {
                    shared.start(job);
                }
                if n < room {
                    let wait = shared.idle_wait();
                    shared.wait_change(seen, wait).await;
                }
            }
            Err(e) => {
                warn!(worker = shared.id(), error = %e, "fetch failed; retrying");
                let seen = shared.changes();
                shared.wait_change(seen, retry.next()).await;
            }
        }
    }
    shared.set_fetch_done();
}

/// Collects ended jobs in batches (all that ended since the last write) and writes their
/// outcomes in one call, retrying until it goes through.
async fn outcome_loop(shared: &Shared) {
    let mut running: FuturesUnordered<BoxFuture<'static, (Key, Ending)>> = FuturesUnordered::new();
    loop {
        let batch = poll_fn(|cx| {
            shared.outcome_waker.register(cx.waker());
            let mut ready = Vec::new();
            for s in shared.take_started() {
                match s {
                    Started::Task(f) => running.push(f),
                    Started::Ready(key, ending) => ready.push((key, ending)),
                }
            }
            while let Poll::Ready(Some(done)) = running.poll_next_unpin(cx) {
                ready.push(done);
            }
            if !ready.is_empty() {
                return Poll::Ready(Some(ready));
            }
            if shared.is_fetch_done() && running.is_empty() && shared.inflight_len() == 0 {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let Some(batch) = batch else { break };
        // Room freed: let the fetch loop look while the outcomes are written.
        shared.poke();
        write(shared, batch).await;
    }
}

async fn write(shared: &Shared, batch: Vec<(Key, Ending)>) {
    let mut reports = Vec::with_capacity(batch.len());
    let mut done = Vec::with_capacity(batch.len());
    for (key, ending) in batch {
        let Some(job) = shared.ended(key) else {
            continue;
        };
        let kind_name = job.kind.name.clone();
        let outcome = classify(shared, key, &job, ending);
        match outcome {
            Some(outcome) => {
                done.push((key, outcome.name(), kind_name));
                reports.push(Report {
                    id: key.0,
                    attempt: key.1,
                    outcome,
                });
            }
            None => done.push((key, "lost", kind_name)),
        }
    }
    if !reports.is_empty() {
        let mut retry = Retry::new(shared.config.poll_interval);
        loop {
            match shared
                .backend
                .report(shared.id(), &reports, shared.config.retention)
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    // Past the grace and a whole lease on top, the leases have expired and
                    // other workers run these jobs again: stop trying.
                    if let Some(deadline) = shared.stop_deadline() {
                        if Instant::now() > deadline + shared.config.lease {
                            warn!(worker = shared.id(), error = %e, jobs = reports.len(),
                                "giving up writing outcomes at shutdown; the jobs will run again after their lease");
                            break;
                        }
                    }
                    warn!(worker = shared.id(), error = %e, jobs = reports.len(), "could not write outcomes; retrying");
                    shared.sleep(retry.next()).await;
                }
            }
        }
    }
    shared.written(&done);
}

fn classify(shared: &Shared, key: Key, job: &EndedJob, ending: Ending) -> Option<Outcome> {
    let (backoff, max_attempts, kill, task) = (
        &job.kind.options.backoff,
        job.max_attempts,
        job.kill,
        job.task,
    );
    let (id, attempt) = key;
    let failed = |error: String| {
        if attempt >= max_attempts {
            warn!(job = %id, attempt, error = %error, "job failed on its last attempt: dead");
            Outcome::Dead { error }
        } else {
            let delay = backoff.jittered(attempt);
            debug!(job = %id, attempt, error = %error, ?delay, "job failed; will retry");
            Outcome::Retry { error, delay }
        }
    };
    Some(match ending {
        Ending::Ran(Ok(Ok(()))) => Outcome::Completed,
        Ending::Ran(Ok(Err(error))) => failed(error),
        Ending::Ran(Err(TaskError::Panicked { message, .. })) => {
            failed(format!("panicked: {message}"))
        }
        Ending::Ran(Err(TaskError::TimedOut { after, .. })) => {
            failed(format!("timed out after {after:?}"))
        }
        Ending::Ran(Err(e)) if e.is_cancelled() => match kill {
            Some(Kill::LeaseLost) => {
                warn!(job = %id, attempt, "job cancelled: its lease was lost");
                return None;
            }
            Some(Kill::Shutdown) => Outcome::Released {
                reason: format!("worker {} shut down before the job finished", shared.id()),
            },
            None => Outcome::Cancelled {
                reason: format!(
                    "its task {} was cancelled through the pool `{}`",
                    task.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                    shared.pool.name()
                ),
            },
        },
        Ending::Ran(Err(e)) => failed(e.to_string()),
        Ending::BadArgs(error) => {
            warn!(job = %id, error = %error, "job arguments do not decode: dead");
            Outcome::Dead { error }
        }
        Ending::Refused(reason) => Outcome::Released { reason },
    })
}

/// Extends leases every third of a lease; sends the heartbeat; requeues other workers'
/// expired leases and prunes old jobs.
async fn lease_loop(shared: &Shared) {
    let c = &shared.config;
    let tick = c.lease / 3;
    let mut last_ok = Instant::now();
    // At once, so the cluster view shows the pool from the start.
    if let Err(e) = shared
        .backend
        .heartbeat(shared.id(), shared.heartbeat_stats())
        .await
    {
        debug!(worker = shared.id(), error = %e, "heartbeat failed");
    }
    loop {
        if shared.sleep_unless_finished(tick).await {
            break;
        }
        let asked = shared.held();
        if asked.is_empty() {
            last_ok = Instant::now();
        } else {
            match shared.backend.extend(shared.id(), &asked, c.lease).await {
                Ok(held) => {
                    last_ok = Instant::now();
                    let lost = shared.lose_missing(&asked, &held);
                    if lost > 0 {
                        warn!(
                            worker = shared.id(),
                            jobs = lost,
                            "lost leases (another worker took the jobs); their tasks are cancelled"
                        );
                    }
                }
                Err(e) => {
                    if last_ok.elapsed() >= c.lease {
                        let lost = shared.lose_all();
                        warn!(worker = shared.id(), error = %e, jobs = lost,
                            "could not extend leases for a whole lease period; cancelling the jobs (other workers will run them)");
                    } else {
                        warn!(worker = shared.id(), error = %e, "could not extend leases; retrying");
                    }
                }
            }
        }
        if let Err(e) = shared
            .backend
            .heartbeat(shared.id(), shared.heartbeat_stats())
            .await
        {
            debug!(worker = shared.id(), error = %e, "heartbeat failed");
        }
        match shared.backend.maintain(c.retention).await {
            Ok(m) if m.requeued + m.dead > 0 => {
                info!(
                    worker = shared.id(),
                    requeued = m.requeued,
                    dead = m.dead,
                    "requeued jobs whose lease expired"
                )
            }
            Ok(_) => {}
            Err(e) => debug!(worker = shared.id(), error = %e, "maintenance failed"),
        }
    }
}

/// Turns notifications into wake-ups; reconnects when the channel breaks.
async fn listen_loop(shared: &Shared) {
    let c = &shared.config;
    while !shared.is_finished() {
        match shared.backend.wakeups(&c.queue).await {
            Ok(mut stream) => loop {
                if shared.is_finished() {
                    return;
                }
                let finished = Box::pin(async {
                    while !shared.is_finished() {
                        shared
                            .wait_change(shared.changes(), Duration::from_secs(3600))
                            .await;
                    }
                });
                match select(stream.next(), finished).await {
                    Either::Right(_) => return,
                    Either::Left((Some(Ok(None)), _)) => shared.poke(),
                    Either::Left((Some(Ok(Some(after))), _)) => {
                        shared.note_due(after);
                        shared.poke();
                    }
                    Either::Left((Some(Err(e)), _)) => {
                        warn!(worker = shared.id(), error = %e, "notifications lost; polling until they are back");
                        break;
                    }
                    Either::Left((None, _)) => break,
                }
            },
            Err(e) => {
                debug!(worker = shared.id(), error = %e, "cannot listen for notifications yet")
            }
        }
        // Jobs may have arrived unannounced meanwhile.
        shared.poke();
        if shared.sleep_unless_finished(c.poll_interval).await {
            return;
        }
    }
}

/// After a stop request: waits for running jobs up to the grace, cancels the rest (given
/// back), waits for every outcome to be written, then ends the other loops.
async fn drain(shared: &Shared) {
    while !shared.is_stopping() {
        let seen = shared.changes();
        if shared.is_stopping() {
            break;
        }
        shared.wait_change(seen, Duration::from_secs(3600)).await;
    }
    info!(
        worker = shared.id(),
        running = shared.running_len(),
        "stopping: no more fetches; waiting for running jobs"
    );
    // Until every running job ended, or the (possibly shortened) grace is over.
    loop {
        let seen = shared.changes();
        if shared.running_len() == 0 {
            break;
        }
        let deadline = shared.stop_deadline().unwrap_or_else(Instant::now);
        let now = Instant::now();
        if now >= deadline {
            let n = shared.cancel_running_for_shutdown();
            info!(
                worker = shared.id(),
                jobs = n,
                "grace period over: cancelling the jobs still running and giving them back"
            );
            break;
        }
        shared.wait_change(seen, deadline - now).await;
    }
    // Every outcome written (the outcome loop gives up a lease after the deadline).
    loop {
        let seen = shared.changes();
        if shared.inflight_len() == 0 && shared.is_fetch_done() {
            break;
        }
        shared.wait_change(seen, Duration::from_millis(200)).await;
    }
    shared.set_finished();
}

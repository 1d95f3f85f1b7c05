//! State shared by the worker's loops: jobs in flight, wake-ups, the stop request.

use super::{Config, WorkerSummary};
use crate::backend::{Backend, FetchedJob, WorkerRegistration};
use crate::context::Lease;
use crate::registry::Kind;
use crate::{JobContext, JobId, Registry};
use async_taskpool::runtime::Spawner;
use async_taskpool::{TaskError, TaskId, TaskPool};
use event_listener::Event;
use futures_util::future::{select, BoxFuture};
use futures_util::task::AtomicWaker;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// A job attempt in flight: from its fetch until its outcome is written.
pub(super) type Key = (JobId, u32);

/// Why the worker itself cancelled a job's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kill {
    LeaseLost,
    Shutdown,
}

pub(super) struct InFlight {
    pub(super) kind: Arc<Kind>,
    pub(super) max_attempts: u32,
    pub(super) task: Option<TaskId>,
    pub(super) lease: Arc<Lease>,
    pub(super) kill: Option<Kill>,
    /// Its task ended (its outcome may not be written yet).
    pub(super) ended: bool,
}

/// What the outcome of an ended job depends on.
pub(super) struct EndedJob {
    pub(super) kind: Arc<Kind>,
    pub(super) max_attempts: u32,
    pub(super) kill: Option<Kill>,
    pub(super) task: Option<TaskId>,
}

/// How a job's run ended, before it is turned into an outcome.
pub(super) enum Ending {
    Ran(Result<Result<(), String>, TaskError>),
    BadArgs(String),
    Refused(String),
}

pub(super) enum Started {
    Task(BoxFuture<'static, (Key, Ending)>),
    Ready(Key, Ending),
}

#[derive(Default)]
struct State {
    inflight: HashMap<Key, InFlight>,
    next_due: Option<Instant>,
    started: Vec<Started>,
    stop_deadline: Option<Instant>,
    summary: WorkerSummary,
    completed_by_kind: HashMap<String, u64>,
    /// Snapshots of `completed_by_kind`, for the last minute's count.
    window: VecDeque<(Instant, HashMap<String, u64>)>,
}

pub(super) struct Shared {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) pool: TaskPool,
    pub(super) registry: Registry,
    pub(super) kinds: Vec<String>,
    pub(super) config: Config,
    pub(super) spawner: Arc<dyn Spawner>,
    pub(super) registration: WorkerRegistration,
    id: OnceLock<Arc<str>>,
    state: Mutex<State>,
    /// Poked on anything the fetch loop or the drain waits for.
    changed: Event,
    changes: AtomicU64,
    stopping: AtomicBool,
    fetch_done: AtomicBool,
    finished: AtomicBool,
    pub(super) outcome_waker: AtomicWaker,
    started_at: Instant,
}

impl Shared {
    pub(super) fn new(
        backend: Arc<dyn Backend>,
        pool: TaskPool,
        registry: Registry,
        config: Config,
        spawner: Arc<dyn Spawner>,
        registration: WorkerRegistration,
    ) -> Self {
        Self {
            kinds: registration.kinds.clone(),
            backend,
            pool,
            registry,
            config,
            spawner,
            registration,
            id: OnceLock::new(),
            state: Mutex::new(State::default()),
            changed: Event::new(),
            changes: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            fetch_done: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            outcome_waker: AtomicWaker::new(),
            started_at: Instant::now(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set_id(&self, id: String) {
        let _ = self.id.set(Arc::from(id));
    }

    pub(super) fn id(&self) -> &str {
        self.id.get().map_or("", |s| s)
    }

    fn id_arc(&self) -> Arc<str> {
        self.id.get().cloned().unwrap_or_else(|| Arc::from(""))
    }

    // ---- waking -------------------------------------------------------------------------

    pub(super) fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    pub(super) fn poke(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.changed.notify(usize::MAX);
    }

    /// Waits until something changed since `seen`, or `timeout`.
    pub(super) async fn wait_change(&self, seen: u64, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let listener = self.changed.listen();
        if self.changes() != seen {
            return;
        }
        let _ = select(listener, self.spawner.sleep(timeout)).await;
    }

    pub(super) fn sleep(&self, d: Duration) -> async_taskpool::runtime::BoxFuture {
        self.spawner.sleep(d)
    }

    pub(super) fn note_due(&self, after: Duration) {
        let at = Instant::now() + after;
        let mut st = self.state();
        st.next_due = Some(st.next_due.map_or(at, |d| d.min(at)));
    }

    /// How long an idle fetch loop may wait: the poll interval, or less if a job is due.
    pub(super) fn idle_wait(&self) -> Duration {
        let now = Instant::now();
        let mut st = self.state();
        match st.next_due {
            Some(due) if due <= now => {
                st.next_due = None;
                Duration::ZERO
            }
            Some(due) => (due - now).min(self.config.poll_interval),
            None => self.config.poll_interval,
        }
    }

    // ---- stopping -----------------------------------------------------------------------

    pub(super) fn request_stop(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        {
            let mut st = self.state();
            st.stop_deadline = Some(st.stop_deadline.map_or(deadline, |d| d.min(deadline)));
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.poke();
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub(super) fn stop_deadline(&self) -> Option<Instant> {
        self.state().stop_deadline
    }

    pub(super) fn set_fetch_done(&self) {
        self.fetch_done.store(true, Ordering::SeqCst);
        self.outcome_waker.wake();
    }

    pub(super) fn is_fetch_done(&self) -> bool {
        self.fetch_done.load(Ordering::SeqCst)
    }

    pub(super) fn set_finished(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.poke();
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, or less if the worker finished; returns whether it finished.
    pub(super) async fn sleep_unless_finished(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.is_finished() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let seen = self.changes();
            if self.is_finished() {
                return true;
            }
            self.wait_change(seen, deadline - now).await;
        }
    }

    // ---- room and starting jobs ---------------------------------------------------------

    /// How many jobs to fetch now: what the pool has room for, at most a batch.
    pub(super) fn room(&self) -> usize {
        let pool = &self.pool;
        if pool.is_locked() || pool.is_closed() {
            return 0;
        }
        let batch = self.config.batch_size;
        let free = match pool.limit() {
            Some(limit) => limit.saturating_sub(pool.num_running() + pool.num_queued()),
            None => {
                batch.saturating_sub(self.state().inflight.values().filter(|f| !f.ended).count())
            }
        };
        free.min(batch)
    }

    /// The most jobs the worker runs at once: the pool's limit, at most a batch.
    pub(super) fn capacity(&self) -> usize {
        let batch = self.config.batch_size;
        self.pool.limit().map_or(batch, |l| l.min(batch)).max(1)
    }

    /// Starts a fetched job as a pool task (or records why it cannot run).
    pub(super) fn start(&self, job: FetchedJob) {
        let key = (job.id, job.attempt);
        let Some(kind) = self.registry.get(&job.kind).cloned() else {
            // Only registered kinds are fetched; a backend that sent another is answered.
            self.push(Started::Ready(
                key,
                Ending::Refused(format!(
                    "kind `{}` is not registered on this worker",
                    job.kind
                )),
            ));
            return;
        };
        let lease = Arc::new(Lease::default());
        {
            let mut st = self.state();
            // The same job leased again while an older attempt of ours still runs: that
            // attempt lost its lease.
            let stale: Vec<Key> = st
                .inflight
                .keys()
                .filter(|k| k.0 == job.id)
                .copied()
                .collect();
            for k in stale {
                self.lose_locked(&mut st, k, Kill::LeaseLost);
            }
            st.inflight.insert(
                key,
                InFlight {
                    kind: kind.clone(),
                    max_attempts: job.max_attempts,
                    task: None,
                    lease: lease.clone(),
                    kill: None,
                    ended: false,
                },
            );
        }
        let ctx = JobContext::new(
            job.id,
            job.kind.clone(),
            self.config.queue.clone(),
            job.attempt,
            job.max_attempts,
            self.id_arc(),
            lease,
        );
        let fut = match (kind.launch)(ctx, &job.args) {
            Ok(fut) => fut,
            Err(msg) => {
                self.push(Started::Ready(key, Ending::BadArgs(msg)));
                return;
            }
        };
        let mut task = self
            .pool
            .build_task()
            .name(format!("{}#{}", job.kind, job.id));
        if let Some(t) = kind.options.timeout {
            task = task.timeout(t);
        }
        match task.spawn_queued(fut) {
            Ok(handle) => {
                let id = handle.id();
                let cancel_now = {
                    let mut st = self.state();
                    match st.inflight.get_mut(&key) {
                        Some(f) => {
                            f.task = Some(id);
                            f.kill.is_some()
                        }
                        None => false,
                    }
                };
                if cancel_now {
                    let _ = self.pool.cancel([id]);
                }
                self.push(Started::Task(Box::pin(async move {
                    (key, Ending::Ran(handle.await))
                })));
            }
            Err(e) => self.push(Started::Ready(
                key,
                Ending::Refused(format!("the pool refused the job's task: {e}")),
            )),
        }
    }

    fn push(&self, s: Started) {
        self.state().started.push(s);
        self.outcome_waker.wake();
    }

    pub(super) fn take_started(&self) -> Vec<Started> {
        std::mem::take(&mut self.state().started)
    }

    // ---- leases -------------------------------------------------------------------------

    /// The jobs to extend: in flight and not given up.
    pub(super) fn held(&self) -> Vec<JobId> {
        let st = self.state();
        let mut ids: Vec<JobId> = st
            .inflight
            .iter()
            .filter(|(_, f)| f.kill != Some(Kill::LeaseLost))
            .map(|(k, _)| k.0)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Cancels the jobs among `asked` that are not in `held`.
    pub(super) fn lose_missing(&self, asked: &[JobId], held: &[JobId]) -> usize {
        let held: std::collections::HashSet<JobId> = held.iter().copied().collect();
        let mut st = self.state();
        let lost: Vec<Key> = st
            .inflight
            .keys()
            .filter(|k| asked.contains(&k.0) && !held.contains(&k.0))
            .copied()
            .collect();
        for k in &lost {
            self.lose_locked(&mut st, *k, Kill::LeaseLost);
        }
        lost.len()
    }

    /// Cancels every job in flight: their leases can no longer be extended.
    pub(super) fn lose_all(&self) -> usize {
        let mut st = self.state();
        let keys: Vec<Key> = st
            .inflight
            .iter()
            .filter(|(_, f)| f.kill != Some(Kill::LeaseLost))
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            self.lose_locked(&mut st, *k, Kill::LeaseLost);
        }
        keys.len()
    }

    fn lose_locked(&self, st: &mut State, key: Key, kill: Kill) {
        if let Some(f) = st.inflight.get_mut(&key) {
            if kill == Kill::LeaseLost {
                f.lease.lose();
            }
            if f.kill.is_none() || kill == Kill::LeaseLost {
                f.kill = Some(kill);
            }
            if let (Some(task), false) = (f.task, f.ended) {
                let _ = self.pool.cancel([task]);
            }
        }
    }

    /// Cancels every job still running, to give it back (graceful shutdown's end).
    pub(super) fn cancel_running_for_shutdown(&self) -> usize {
        let mut st = self.state();
        let keys: Vec<Key> = st
            .inflight
            .iter()
            .filter(|(_, f)| !f.ended && f.kill.is_none())
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            self.lose_locked(&mut st, *k, Kill::Shutdown);
        }
        keys.len()
    }

    // ---- outcomes -----------------------------------------------------------------------

    /// Marks a job's task ended and returns what the outcome needs to know.
    pub(super) fn ended(&self, key: Key) -> Option<EndedJob> {
        let mut st = self.state();
        let f = st.inflight.get_mut(&key)?;
        f.ended = true;
        Some(EndedJob {
            kind: f.kind.clone(),
            max_attempts: f.max_attempts,
            kill: f.kill,
            task: f.task,
        })
    }

    /// The outcomes of `keys` are written (or given up): forget them, count them.
    pub(super) fn written(&self, done: &[(Key, &'static str, String)]) {
        let mut st = self.state();
        for (key, outcome, kind) in done {
            st.inflight.remove(key);
            let s = &mut st.summary;
            match *outcome {
                "completed" => {
                    s.completed += 1;
                    *st.completed_by_kind.entry(kind.clone()).or_default() += 1;
                }
                "retry" => s.retried += 1,
                "dead" => s.dead += 1,
                "cancelled" => s.cancelled += 1,
                "released" => s.released += 1,
                _ => s.lost += 1,
            }
        }
        drop(st);
        self.poke();
    }

    pub(super) fn inflight_len(&self) -> usize {
        self.state().inflight.len()
    }

    pub(super) fn running_len(&self) -> usize {
        self.state().inflight.values().filter(|f| !f.ended).count()
    }

    pub(super) fn summary(&self) -> WorkerSummary {
        self.state().summary
    }

    /// The heartbeat's payload: pool stats, completions in the last minute, totals.
    pub(super) fn heartbeat_stats(&self) -> serde_json::Value {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let mut st = self.state();
        let current = st.completed_by_kind.clone();
        st.window.push_back((now, current.clone()));
        while st.window.len() > 1 && now.duration_since(st.window[1].0) >= minute {
            st.window.pop_front();
        }
        let base = match st.window.front() {
            Some((at, counts)) if now.duration_since(*at) >= minute => counts.clone(),
            // Younger than a minute: everything counted so far is within the minute.
            _ if now.duration_since(self.started_at) < minute => HashMap::new(),
            Some((_, counts)) => counts.clone(),
            None => HashMap::new(),
        };
        let last_minute: serde_json::Map<String, serde_json::Value> = current
            .iter()
            .map(|(k, n)| (k.clone(), (n - base.get(k).copied().unwrap_or(0)).into()))
            .collect();
        serde_json::json!({
            "pool": self.pool.stats(),
            "completed_last_minute": last_minute,
            "totals": st.summary,
            "in_flight": st.inflight.len(),
        })
    }
}

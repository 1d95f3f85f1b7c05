//! Single flight in the pool: [`TaskPool::spawn_keyed`] and [`TaskBuilder::spawn_keyed`]
//! join the live task with the same key instead of starting another one. Built on the
//! [`SingleFlight`] block: one per pool and per key and output type, kept in the pool's
//! registry (`Core::flights`).
//!
//! The leader's flight future waits for its task's handle (published right after the task is
//! submitted) and awaits it; every [`KeyedHandle`] is a waiter on that flight, and the task
//! itself keeps one more (dropped when its future ends), so the key stays taken exactly as
//! long as the task runs, whether or not anyone waits.

use crate::builder::TaskBuilder;
use crate::engine::user::{drop_value, Whose};
use crate::error::{ExecError, PoolError};
use crate::handle::TaskHandle;
use crate::id::TaskId;
use crate::policy::Flight;
use crate::pool::TaskPool;
use event_listener::Event;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

/// What a keyed task's waiters get: its output, or why there is none (shared, so cloned):
/// the task's [`TaskError`](crate::TaskError) as [`ExecError::Task`], or, if the task could
/// not be submitted, the [`PoolError`] as [`ExecError::Pool`].
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, ExecError, KeyedOutput, TaskPool};
/// let pool = TaskPool::new(TokioSpawner::current());
/// let out: KeyedOutput<u8> = pool.spawn_keyed("k", async { panic!("boom") })?.await;
/// let err = out.unwrap_err();
/// assert!(matches!(&*err, ExecError::Task(e) if e.is_panic()));
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
pub type KeyedOutput<T> = Result<T, Arc<ExecError>>;

/// The leader's task, as its flight and its joiners see it.
struct Lead<T> {
    /// The task's id, once submitted.
    id: OnceLock<TaskId>,
    /// Its handle (until the flight takes it), or why it could not be submitted.
    handle: Mutex<Option<Result<TaskHandle<T>, PoolError>>>,
    published: Event,
}

impl<T> Lead<T> {
    fn new() -> Self {
        Self {
            id: OnceLock::new(),
            handle: Mutex::new(None),
            published: Event::new(),
        }
    }

    fn publish(&self, submitted: Result<TaskHandle<T>, PoolError>) {
        if let Ok(h) = &submitted {
            let _ = self.id.set(h.id());
        }
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(submitted);
        self.published.notify(usize::MAX);
    }

    fn take(&self) -> Option<Result<TaskHandle<T>, PoolError>> {
        self.handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The flight's future: waits for the handle, then for the task.
    async fn outcome(self: Arc<Self>) -> KeyedOutput<T> {
        let submitted = loop {
            if let Some(s) = self.take() {
                break s;
            }
            let listener = self.published.listen();
            if let Some(s) = self.take() {
                break s;
            }
            listener.await;
        };
        match submitted {
            Ok(handle) => handle.await.map_err(|e| Arc::new(ExecError::Task(e))),
            Err(e) => Err(Arc::new(ExecError::Pool(e))),
        }
    }
}

/// A waiter on a keyed task (see [`TaskPool::spawn_keyed`]): a future of a clone of the
/// task's output, or of its error, shared with every other waiter.
///
/// Dropping it only stops this waiter: the task runs on. To stop the task for every waiter,
/// cancel it by id ([`TaskPool::cancel`]).
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
/// let pool = TaskPool::new(TokioSpawner::current());
/// let a = pool.spawn_keyed("/index.html", async { "<html>".to_string() })?;
/// // Same key and output type: joins a's task, its own future is dropped unpolled.
/// let b = pool.spawn_keyed("/index.html", async { "never polled".to_string() })?;
/// assert!(a.is_leader() && !b.is_leader());
/// assert_eq!(a.id(), b.id());
/// assert_eq!(b.await?, "<html>");
/// assert_eq!(a.await?, "<html>");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
#[must_use = "the task runs whether or not its handle is awaited"]
pub struct KeyedHandle<T> {
    flight: Flight<KeyedOutput<T>>,
    lead: Option<Arc<Lead<T>>>,
}

impl<T> KeyedHandle<T> {
    /// The shared task's id: `None` only for a joiner that came in while the leader was
    /// still submitting it (a few instructions' window), or if that submission failed
    /// (this handle then resolves to the leader's [`PoolError`]).
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::new(SmolSpawner::global());
    /// let h = pool.spawn_keyed(1u32, async { 2u32 })?;
    /// assert!(h.id().is_some());
    /// # }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// ```
    pub fn id(&self) -> Option<TaskId> {
        self.lead.as_ref().and_then(|l| l.id.get().copied())
    }

    /// Whether this spawn started the task (its future is the one that runs), rather than
    /// joining a live one.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::new(SmolSpawner::global());
    /// let (tx, rx) = futures::channel::oneshot::channel::<()>();
    /// let a = pool.spawn_keyed("k", async move { rx.await.is_ok() })?;
    /// let b = pool.spawn_keyed("k", async { false })?;
    /// assert!(a.is_leader() && !b.is_leader());
    /// # drop(tx);
    /// # }
    /// # Ok::<_, async_taskpool::PoolError>(())
    /// ```
    pub fn is_leader(&self) -> bool {
        self.flight.is_leader()
    }
}

impl<T: Clone> Future for KeyedHandle<T> {
    type Output = KeyedOutput<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.flight).poll(cx)
    }
}

impl<T> fmt::Debug for KeyedHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHandle")
            .field("id", &self.id())
            .field("leader", &self.is_leader())
            .finish()
    }
}

impl TaskPool {
    /// Spawns `fut` as a task keyed by `key`, unless a live task of this pool has that key
    /// (spawned here with a key and output of the same types): then this joins it, and
    /// `fut` is dropped, never polled. Every [`KeyedHandle`] of the task resolves to a
    /// clone of its output, or to its error (a panic, a timeout, a cancel) shared in an
    /// `Arc`. Queued like [`spawn_queued`](Self::spawn_queued) when the pool is full.
    ///
    /// The key is taken from the spawn that starts the task until the task's output has
    /// been handed to a waiter (or, with no waiter left, until the task ends): a spawn with
    /// the key after that starts afresh. This de-duplicates concurrent work (crawls, cache
    /// fills); it is not a cache. Cancelling the task by id ([`cancel`](Self::cancel))
    /// ends it for every waiter; dropping a handle stops only that waiter.
    ///
    /// Task options (a name, a timeout, callbacks, a priority) come from
    /// [`TaskBuilder::spawn_keyed`], and apply only when the spawn starts the task.
    ///
    /// # Errors
    ///
    /// [`PoolError::Closed`] or [`PoolError::Locked`] if the pool accepts no new work and
    /// no live task has the key.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).limit(8).build()?;
    /// let fetches = Arc::new(AtomicUsize::new(0));
    /// let fetch = |url: &'static str| {
    ///     let fetches = fetches.clone();
    ///     async move {
    ///         fetches.fetch_add(1, Ordering::SeqCst);
    ///         format!("body of {url}")
    ///     }
    /// };
    /// let handles: Vec<_> = (0..5).map(|_| pool.spawn_keyed("/a", fetch("/a"))).collect::<Result<_, _>>()?;
    /// for h in handles {
    ///     assert_eq!(h.await?, "body of /a");
    /// }
    /// assert_eq!(fetches.load(Ordering::SeqCst), 1);
    /// // It ended: the same key runs again.
    /// assert_eq!(pool.spawn_keyed("/a", fetch("/a"))?.await?, "body of /a");
    /// assert_eq!(fetches.load(Ordering::SeqCst), 2);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn spawn_keyed<K, F>(&self, key: K, fut: F) -> Result<KeyedHandle<F::Output>, PoolError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        F: Future + Send + 'static,
        F::Output: Clone + Send + Sync + 'static,
    {
        self.build_task().spawn_keyed(key, fut)
    }
}

impl TaskBuilder<'_> {
    /// [`TaskPool::spawn_keyed`] with this builder's options, which apply when this spawn
    /// starts the task (a joiner's are ignored: the task is the leader's).
    ///
    /// # Errors
    ///
    /// As [`TaskPool::spawn_keyed`].
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use std::time::Duration;
    /// let pool = TaskPool::new(TokioSpawner::current());
    /// let h = pool
    ///     .build_task()
    ///     .name("fill cache")
    ///     .timeout(Duration::from_secs(5))
    ///     .spawn_keyed(("user", 42u64), async { vec![1, 2, 3] })?;
    /// assert_eq!(h.await?, vec![1, 2, 3]);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn spawn_keyed<K, F>(self, key: K, fut: F) -> Result<KeyedHandle<F::Output>, PoolError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        F: Future + Send + 'static,
        F::Output: Clone + Send + Sync + 'static,
    {
        let core = self.core().clone();
        let flights = core.flights.of::<K, KeyedOutput<F::Output>>();
        let lead = Arc::new(Lead::new());
        let tag: Arc<dyn Any + Send + Sync> = lead.clone();
        match flights.run_tagged(key, lead.clone().outcome(), Some(tag)) {
            Err((flight, tag, fut_of_flight)) => {
                drop(fut_of_flight);
                drop(lead);
                let owner = Whose {
                    pool: &core.name,
                    task: None,
                    what: "the future of a keyed spawn that joined a live task",
                };
                drop_value(fut, owner);
                let lead = tag.and_then(|t| t.downcast::<Lead<F::Output>>().ok());
                Ok(KeyedHandle { flight, lead })
            }
            Ok(flight) => {
                // The task keeps its flight (and so its key) until its future ends.
                let keep = flight.clone();
                let task = async move {
                    let out = fut.await;
                    drop(keep);
                    out
                };
                let submitted = self.spawn_queued(task);
                let failed = submitted.as_ref().err().cloned();
                lead.publish(submitted);
                match failed {
                    Some(e) => Err(e),
                    None => Ok(KeyedHandle {
                        flight,
                        lead: Some(lead),
                    }),
                }
            }
        }
    }
}

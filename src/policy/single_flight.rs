//! Single flight: one run per key at a time; callers with the same key while it runs share
//! its output.

use futures_util::future::{BoxFuture, FutureExt, Shared, WeakShared};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};

/// The live flights, by key.
struct Flights<K, T> {
    by_key: HashMap<K, Entry<T>>,
    next_id: u64,
}

/// A live flight: weak, so that a flight nobody waits for any more is dropped (and its key
/// with it).
struct Entry<T> {
    id: u64,
    flight: WeakShared<BoxFuture<'static, T>>,
    /// What the pool's keyed spawns keep with a flight (`crate::flight`).
    tag: Option<Tag>,
}

/// A value kept with a flight, handed to those who join it.
pub(crate) type Tag = Arc<dyn std::any::Any + Send + Sync>;

type Table<K, T> = Mutex<Flights<K, T>>;

fn lock<K, T>(table: &Table<K, T>) -> MutexGuard<'_, Flights<K, T>> {
    // A panic under this lock (in a key's `Hash` or `Eq`) leaves the map consistent.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one future per key at a time: [`run`](Self::run) with a key whose flight is live
/// joins it (its future is dropped unpolled) and resolves to a clone of that flight's
/// output; else it starts a flight with its own future.
///
/// A flight's key is removed when the flight ends: when its future completes, or when every
/// [`Flight`] waiting on it was dropped (the future is then dropped too). A later `run` with
/// that key starts afresh: this de-duplicates concurrent work, it is not a cache.
///
/// The future runs in whichever waiter polls it (like `futures`' `Shared`), so a slow
/// waiter never holds the others back, and the flight lives while anyone waits. To run the
/// work as a pool task (with an id, a slot, cancellation), make the flight's future submit
/// it, as below: the task then runs to its end even if every waiter goes away, though its
/// key is free again from then on. If the future panics, every waiter's poll panics (a
/// pool task's panic is a `TaskError` instead).
///
/// Its lock is a `std` mutex held for one map lookup or insert, never across a poll or
/// user code other than the key's `Hash`, `Eq` and `Drop`.
///
/// ```
/// use async_taskpool::policy::SingleFlight;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let fetches = Arc::new(AtomicUsize::new(0));
/// let flights = SingleFlight::<String, Arc<str>>::new();
/// let fetch = |url: &str| {
///     let fetches = fetches.clone();
///     let url = url.to_string();
///     async move {
///         fetches.fetch_add(1, Ordering::SeqCst);
///         Arc::<str>::from(format!("body of {url}"))
///     }
/// };
/// let a = flights.run("/a".to_string(), fetch("/a"));
/// let b = flights.run("/a".to_string(), fetch("/a")); // joins a's flight
/// assert!(a.is_leader() && !b.is_leader());
/// let (a, b) = futures::executor::block_on(futures::future::join(a, b));
/// assert_eq!((&*a, &*b), ("body of /a", "body of /a"));
/// assert_eq!(fetches.load(Ordering::SeqCst), 1);
/// assert!(flights.is_empty()); // the flight ended: its key is gone
/// ```
///
/// With a pool, the flight submits the work and shares the task's result (its error made
/// `Clone` here with an `Arc`):
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{policy::SingleFlight, runtime::TokioSpawner, ExecError, TaskPool};
/// use std::sync::Arc;
///
/// let pool = TaskPool::builder(TokioSpawner::current()).limit(4).build()?;
/// let flights = SingleFlight::<String, Result<usize, Arc<ExecError>>>::new();
/// let fetch = |url: String| {
///     let pool = pool.clone();
///     async move { pool.exec(async move { url.len() }).await.map_err(Arc::new) }
/// };
/// let first = flights.run("/x".into(), fetch("/x".into()));
/// let second = flights.run("/x".into(), fetch("/x".into()));
/// assert_eq!(first.await.unwrap(), 2);
/// assert_eq!(second.await.unwrap(), 2);
/// assert_eq!(pool.stats().submitted, 1); // one task ran for both
/// # Ok::<_, async_taskpool::PoolError>(())
/// # }).unwrap(); }
/// ```
pub struct SingleFlight<K, T> {
    table: Arc<Table<K, T>>,
}

impl<K, T> SingleFlight<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// No flight yet.
    ///
    /// ```
    /// let flights = async_taskpool::policy::SingleFlight::<u32, u32>::new();
    /// assert!(flights.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            table: Arc::new(Mutex::new(Flights {
                by_key: HashMap::new(),
                next_id: 0,
            })),
        }
    }

    /// Joins the live flight for `key`, or starts one that runs `fut`.
    ///
    /// `fut` is not polled here: it runs when a returned [`Flight`] is first polled. When
    /// the key's flight is live, `fut` is dropped unpolled (after the lock is released), so
    /// make the work inside it lazy (an `async` block that submits it, not a task submitted
    /// beforehand). Allocates once per new flight (the boxed future and its shared state).
    ///
    /// ```
    /// use async_taskpool::policy::SingleFlight;
    /// let flights = SingleFlight::<&'static str, u8>::new();
    /// let leader = flights.run("k", async { 1 });
    /// let follower = flights.run("k", async { unreachable!("joined, never polled") });
    /// assert_eq!(futures::executor::block_on(follower), 1);
    /// assert_eq!(futures::executor::block_on(leader), 1);
    /// ```
    pub fn run<F>(&self, key: K, fut: F) -> Flight<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        match self.run_tagged(key, fut, None) {
            Ok(flight) => flight,
            Err((flight, _, fut)) => {
                drop(fut);
                flight
            }
        }
    }

    /// [`run`](Self::run), keeping `tag` with a new flight: joining, it gives back the live
    /// flight, its tag and `fut` (unpolled, for the caller to drop).
    pub(crate) fn run_tagged<F>(
        &self,
        key: K,
        fut: F,
        tag: Option<Tag>,
    ) -> Result<Flight<T>, (Flight<T>, Option<Tag>, F)>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut flights = lock(&self.table);
        if let Some((shared, tag)) = flights
            .by_key
            .get(&key)
            .and_then(|e| Some((e.flight.upgrade()?, e.tag.clone())))
        {
            drop(flights);
            let flight = Flight {
                shared,
                leader: false,
            };
            return Err((flight, tag, fut));
        }
        let id = flights.next_id;
        flights.next_id += 1;
        let guard = RemoveOnEnd {
            table: Arc::downgrade(&self.table),
            key: Some(key.clone()),
            id,
        };
        let shared = async move {
            let _guard = guard; // dropped when the future completes or is dropped
            fut.await
        }
        .boxed()
        .shared();
        let flight = shared
            .downgrade()
            .expect("a Shared that was never polled has its state");
        // A stale entry (its flight dropped, its guard not yet run) is replaced; the
        // guard then sees another id and leaves this one alone.
        let stale = flights.by_key.insert(key, Entry { id, flight, tag });
        drop(flights);
        drop(stale);
        Ok(Flight {
            shared,
            leader: true,
        })
    }

    /// Whether a flight for `key` is live.
    ///
    /// ```
    /// use async_taskpool::policy::SingleFlight;
    /// let flights = SingleFlight::<String, ()>::new();
    /// let f = flights.run("k".into(), async {});
    /// assert!(flights.is_live("k"));
    /// drop(f); // nobody waits: the flight and its key are gone
    /// assert!(!flights.is_live("k"));
    /// ```
    pub fn is_live<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.table).by_key.contains_key(key)
    }

    /// How many flights are live.
    ///
    /// ```
    /// let flights = async_taskpool::policy::SingleFlight::<u8, ()>::new();
    /// let _a = flights.run(1, async {});
    /// let _b = flights.run(2, async {});
    /// assert_eq!(flights.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        lock(&self.table).by_key.len()
    }

    /// Whether no flight is live.
    ///
    /// ```
    /// assert!(async_taskpool::policy::SingleFlight::<u8, ()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        lock(&self.table).by_key.is_empty()
    }
}

impl<K, T> Default for SingleFlight<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, T> Clone for SingleFlight<K, T> {
    /// Another handle to the same flights.
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
        }
    }
}

impl<K, T> fmt::Debug for SingleFlight<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = lock(&self.table).by_key.len();
        f.debug_struct("SingleFlight").field("live", &live).finish()
    }
}

/// Removes its flight's key when the flight's future completes or is dropped, unless a
/// newer flight took the key.
struct RemoveOnEnd<K: Hash + Eq, T> {
    table: Weak<Table<K, T>>,
    key: Option<K>,
    id: u64,
}

impl<K: Hash + Eq, T> Drop for RemoveOnEnd<K, T> {
    fn drop(&mut self) {
        let (Some(table), Some(key)) = (self.table.upgrade(), self.key.take()) else {
            return;
        };
        let mut flights = lock(&table);
        if flights.by_key.get(&key).is_some_and(|e| e.id == self.id) {
            let entry = flights.by_key.remove(&key);
            drop(flights);
            drop(entry);
        }
    }
}

/// A future resolving to a clone of its flight's output: what [`SingleFlight::run`]
/// returns.
///
/// Dropping it stops waiting; the flight goes on while another waiter remains.
///
/// ```
/// use async_taskpool::policy::SingleFlight;
/// let flights = SingleFlight::<u8, &'static str>::new();
/// let flight = flights.run(7, async { "done" });
/// assert!(flight.is_leader());
/// assert_eq!(futures::executor::block_on(flight), "done");
/// ```
#[must_use = "a flight does nothing unless polled"]
pub struct Flight<T> {
    shared: Shared<BoxFuture<'static, T>>,
    leader: bool,
}

impl<T> Flight<T> {
    /// Whether this call started the flight (its own future is the one that runs), rather
    /// than joining a live one.
    ///
    /// ```
    /// use async_taskpool::policy::SingleFlight;
    /// let flights = SingleFlight::<u8, ()>::new();
    /// let a = flights.run(1, async {});
    /// assert!(a.is_leader());
    /// assert!(!flights.run(1, async {}).is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

impl<T: Clone> Future for Flight<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.shared).poll(cx)
    }
}

impl<T> Clone for Flight<T> {
    /// Another waiter on the same flight (never its leader).
    ///
    /// ```
    /// let flights = async_taskpool::policy::SingleFlight::<u8, u8>::new();
    /// let a = flights.run(1, async { 5 });
    /// let b = a.clone();
    /// assert!(!b.is_leader());
    /// assert_eq!(futures::executor::block_on(b), 5);
    /// ```
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            leader: false,
        }
    }
}

impl<T> fmt::Debug for Flight<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flight")
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use futures::executor::block_on;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A future that counts its runs and its drops, and finishes when `release` fires.
    fn gated(
        runs: &Arc<AtomicUsize>,
        drops: &Arc<AtomicUsize>,
        release: oneshot::Receiver<u32>,
    ) -> impl Future<Output = u32> + Send + 'static {
        struct CountDrop(Arc<AtomicUsize>);
        impl Drop for CountDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (runs, count) = (runs.clone(), CountDrop(drops.clone()));
        async move {
            let _count = count;
            runs.fetch_add(1, Ordering::SeqCst);
            release.await.unwrap_or(0)
        }
    }

    #[test]
    fn concurrent_callers_share_one_run_and_its_output() {
        let flights = SingleFlight::<String, u32>::new();
        let (runs, drops) = (Arc::default(), Arc::default());
        let (tx, rx) = oneshot::channel();
        let leader = flights.run("k".into(), gated(&runs, &drops, rx));
        let followers: Vec<_> = (0..10)
            .map(|_| {
                let (_tx, rx) = oneshot::channel();
                flights.run("k".into(), gated(&runs, &drops, rx))
            })
            .collect();
        // The followers' own futures were dropped unpolled.
        assert_eq!(drops.load(Ordering::SeqCst), 10);
        assert_eq!(flights.len(), 1);
        tx.send(42).unwrap();
        let outputs = block_on(futures::future::join_all(
            std::iter::once(leader).chain(followers),
        ));
        assert_eq!(outputs, vec![42; 11]);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(
            flights.is_empty(),
            "the key is removed when the flight ends"
        );
    }

    #[test]
    fn a_key_is_free_again_after_its_flight_ended() {
        let flights = SingleFlight::<u8, u8>::new();
        assert_eq!(block_on(flights.run(1, async { 1 })), 1);
        let again = flights.run(1, async { 2 });
        assert!(again.is_leader());
        assert_eq!(block_on(again), 2);
    }

    #[test]
    fn a_flight_nobody_waits_for_is_dropped_with_its_key() {
        let flights = SingleFlight::<u8, u32>::new();
        let (runs, drops) = (Arc::default(), Arc::default());
        let (_tx, rx) = oneshot::channel();
        let mut leader = flights.run(1, gated(&runs, &drops, rx));
        let follower = flights.run(1, async { 0 });
        // Start it, then walk away.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut leader).poll(&mut cx).is_pending());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(leader);
        assert!(flights.is_live(&1), "the follower still waits");
        drop(follower);
        assert!(!flights.is_live(&1));
        // The flight's future was dropped with its last waiter.
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_flight_goes_on_in_a_follower_when_its_leader_stops_waiting() {
        let flights = SingleFlight::<u8, u32>::new();
        let (runs, drops) = (Arc::default(), Arc::default());
        let (tx, rx) = oneshot::channel();
        let leader = flights.run(1, gated(&runs, &drops, rx));
        let follower = flights.run(1, async { 0 });
        drop(leader);
        tx.send(7).unwrap();
        assert_eq!(block_on(follower), 7);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }

    #[test]
    fn different_keys_fly_separately() {
        let flights = SingleFlight::<u8, u8>::new();
        let a = flights.run(1, async { 1 });
        let b = flights.run(2, async { 2 });
        assert!(a.is_leader() && b.is_leader());
        assert_eq!(block_on(async { (a.await, b.await) }), (1, 2));
    }

    #[test]
    fn a_panicking_flight_frees_its_key_once_nobody_waits() {
        let flights = SingleFlight::<u8, u8>::new();
        let leader = flights.run(1, async { panic!("boom") });
        let follower = flights.run(1, async { 0 });
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(leader)));
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(follower)));
        assert!(caught.is_err(), "waiters of a panicked flight panic too");
        assert!(flights.is_empty());
        assert_eq!(block_on(flights.run(1, async { 3 })), 3);
    }
}

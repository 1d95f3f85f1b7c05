//! Runtime-neutral helpers for the conformance cases.

use async_taskpool::runtime::Spawner;
use event_listener::Event;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Sp = Arc<dyn Spawner>;
pub type Case = fn(Sp) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// No case may take longer than this; a hang fails the test instead of stalling CI.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// A gate tasks wait at until it opens.
#[derive(Clone, Default)]
pub struct Gate(Arc<(AtomicBool, Event)>);

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn open(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify(usize::MAX);
    }
    pub async fn wait(&self) {
        loop {
            if self.0 .0.load(Ordering::SeqCst) {
                return;
            }
            let l = self.0 .1.listen();
            if self.0 .0.load(Ordering::SeqCst) {
                return;
            }
            l.await;
        }
    }
}

/// Counts tasks inside a section and remembers the most at once.
#[derive(Clone, Default)]
pub struct Concurrency(Arc<(AtomicUsize, AtomicUsize)>);

impl Concurrency {
    pub fn enter(&self) -> impl Drop {
        let now = self.0 .0.fetch_add(1, Ordering::SeqCst) + 1;
        self.0 .1.fetch_max(now, Ordering::SeqCst);
        Leave(self.clone())
    }
    pub fn max(&self) -> usize {
        self.0 .1.load(Ordering::SeqCst)
    }
    pub fn now(&self) -> usize {
        self.0 .0.load(Ordering::SeqCst)
    }
}

struct Leave(Concurrency);
impl Drop for Leave {
    fn drop(&mut self) {
        self.0 .0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An ordered log shared by tasks.
#[derive(Clone)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Log<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Log<T> {
    pub fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }
    pub fn get(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

/// Sets a flag when dropped: proves a task's future (and its destructors) went away.
pub struct DropFlag(pub Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Bumps a counter when dropped: lets a test wait for a destructor that runs elsewhere.
pub struct BumpOnDrop(pub Counter);
impl Drop for BumpOnDrop {
    fn drop(&mut self) {
        self.0.bump();
    }
}

/// Yields to the scheduler `n` times.
pub async fn yield_n(n: usize) {
    for _ in 0..n {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
    }
}

/// A counter others can wait on: "wait until at least k things happened".
#[derive(Clone, Default)]
pub struct Counter(Arc<(AtomicUsize, Event)>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn bump(&self) {
        self.bumped();
    }
    /// Counts one more thing, and says the count with it (one atomic step: two bumps at once
    /// on two threads see different counts, which `bump(); get()` does not promise).
    pub fn bumped(&self) -> usize {
        let now = self.0 .0.fetch_add(1, Ordering::SeqCst) + 1;
        self.0 .1.notify(usize::MAX);
        now
    }
    pub fn get(&self) -> usize {
        self.0 .0.load(Ordering::SeqCst)
    }
    pub async fn wait_for(&self, k: usize) {
        loop {
            if self.get() >= k {
                return;
            }
            let l = self.0 .1.listen();
            if self.get() >= k {
                return;
            }
            l.await;
        }
    }
}

/// Runs `fut` under the [`WATCHDOG`] on `sp`'s timer: a hang fails the test instead of
/// stalling CI.
pub async fn within_watchdog(sp: &Sp, fut: impl Future<Output = ()>) {
    let timer = sp.sleep(WATCHDOG);
    match futures::future::select(std::pin::pin!(fut), timer).await {
        futures::future::Either::Left(((), _)) => {}
        futures::future::Either::Right(_) => panic!("case did not finish within {WATCHDOG:?}"),
    }
}

/// Runs `case` with `sp` under the [`WATCHDOG`].
pub async fn guarded(case: Case, sp: Sp) {
    within_watchdog(&sp.clone(), case(sp)).await
}

/// The runtime flavours the suites run on, one function each: it builds the runtime, gives
/// `f` a spawner for it and blocks on the future `f` returns (from outside the runtime, as
/// a `main` would).
#[allow(dead_code)]
pub mod flavour {
    use super::Sp;
    use std::future::Future;
    use std::sync::Arc;

    #[cfg(feature = "tokio")]
    pub fn tokio_multi_thread<F: Future>(f: impl FnOnce(Sp) -> F) -> F::Output {
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        on_tokio(rt.worker_threads(2), f)
    }

    #[cfg(feature = "tokio")]
    pub fn tokio_current_thread<F: Future>(f: impl FnOnce(Sp) -> F) -> F::Output {
        on_tokio(&mut tokio::runtime::Builder::new_current_thread(), f)
    }

    #[cfg(feature = "tokio")]
    fn on_tokio<F: Future>(
        builder: &mut tokio::runtime::Builder,
        f: impl FnOnce(Sp) -> F,
    ) -> F::Output {
        let rt = builder.enable_all().build().unwrap();
        let handle = rt.handle().clone();
        rt.block_on(f(Arc::new(
            async_taskpool::runtime::TokioSpawner::from_handle(handle),
        )))
    }

    #[cfg(feature = "smol")]
    pub fn smol_global<F: Future>(f: impl FnOnce(Sp) -> F) -> F::Output {
        smol::block_on(f(Arc::new(async_taskpool::runtime::SmolSpawner::global())))
    }

    /// A private `smol::Executor`, driven by the blocked-on thread itself.
    #[cfg(feature = "smol")]
    pub fn smol_own_executor<F: Future>(f: impl FnOnce(Sp) -> F) -> F::Output {
        let ex = Arc::new(smol::Executor::new());
        let sp = async_taskpool::runtime::SmolSpawner::from_executor(ex.clone());
        smol::block_on(ex.run(f(Arc::new(sp))))
    }

    #[cfg(feature = "async-std")]
    #[allow(deprecated)]
    pub fn async_std_global<F: Future>(f: impl FnOnce(Sp) -> F) -> F::Output {
        async_std::task::block_on(f(Arc::new(async_taskpool::runtime::AsyncStdSpawner::new())))
    }
}

/// Emits one module per runtime flavour compiled in (named as in [`flavour`]), each with a
/// `run(case)` that runs a [`Case`] there under the watchdog, and the tests that
/// `$for_each_case!(run)` expands to.
#[allow(unused_macros)]
macro_rules! on_every_flavour {
    ($for_each_case:ident) => {
        on_every_flavour!(@one $for_each_case, "tokio", tokio_multi_thread);
        on_every_flavour!(@one $for_each_case, "tokio", tokio_current_thread);
        on_every_flavour!(@one $for_each_case, "smol", smol_global);
        on_every_flavour!(@one $for_each_case, "smol", smol_own_executor);
        on_every_flavour!(@one $for_each_case, "async-std", async_std_global);
    };
    (@one $for_each_case:ident, $feature:literal, $flavour:ident) => {
        #[cfg(feature = $feature)]
        mod $flavour {
            #[allow(dead_code)]
            pub(super) fn run(case: crate::support::Case) {
                crate::support::flavour::$flavour(|sp| crate::support::guarded(case, sp));
            }
            $for_each_case!(run);
        }
    };
}

/// A spawner that counts the runtime tasks the pool spawns through it, and those alive.
pub struct CountingSpawner {
    inner: Sp,
    spawned: Arc<AtomicUsize>,
    alive: Counter,
}

/// What a [`CountingSpawner`] counts.
#[derive(Clone)]
pub struct SpawnCounts {
    spawned: Arc<AtomicUsize>,
    /// Bumped when a runtime task's future is dropped (it finished, or its runtime dropped it).
    dropped: Counter,
}

impl SpawnCounts {
    /// Runtime tasks spawned so far.
    pub fn spawned(&self) -> usize {
        self.spawned.load(Ordering::SeqCst)
    }
    /// Waits until every runtime task spawned so far has ended.
    pub async fn all_ended(&self) {
        self.dropped.wait_for(self.spawned()).await
    }
}

impl CountingSpawner {
    /// Wraps `inner`.
    pub fn wrap(inner: Sp) -> (Sp, SpawnCounts) {
        let counts = SpawnCounts {
            spawned: Arc::new(AtomicUsize::new(0)),
            dropped: Counter::new(),
        };
        let sp = Arc::new(Self {
            inner,
            spawned: counts.spawned.clone(),
            alive: counts.dropped.clone(),
        });
        (sp, counts)
    }
}

impl Spawner for CountingSpawner {
    fn spawn(
        &self,
        fut: async_taskpool::runtime::BoxFuture,
    ) -> Result<(), async_taskpool::runtime::SpawnError> {
        self.spawned.fetch_add(1, Ordering::SeqCst);
        let ended = BumpOnDrop(self.alive.clone());
        self.inner.spawn(Box::pin(async move {
            let _ended = ended;
            fut.await
        }))
    }
    fn sleep(&self, dur: Duration) -> async_taskpool::runtime::BoxFuture {
        self.inner.sleep(dur)
    }
    fn runtime_name(&self) -> &'static str {
        self.inner.runtime_name()
    }
    fn now(&self) -> std::time::Instant {
        self.inner.now()
    }
    fn is_current_thread(&self) -> bool {
        self.inner.is_current_thread()
    }
}

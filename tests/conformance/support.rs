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
#[allow(dead_code)] // used by the background and threaded suites
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
        self.0 .0.fetch_add(1, Ordering::SeqCst);
        self.0 .1.notify(usize::MAX);
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

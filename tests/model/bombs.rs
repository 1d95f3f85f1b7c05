//! User values whose destructors panic: task outputs, task futures and panic payloads. The
//! pool must drop the ones it owns inside a guard (the panic is logged, nothing else changes);
//! the driver defuses the ones it gets back.

use async_taskpool::TaskError;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

/// The payload of the panics tasks make on purpose.
pub const PANIC_MSG: &str = "model: intended panic";
/// The payload of the panics destructors make on purpose.
pub const BOMB_MSG: &str = "model: intended destructor panic";

fn explode() {
    // Panicking while unwinding would abort the test binary.
    if !std::thread::panicking() {
        crate::cover("a destructor panicked");
        std::panic::panic_any(BOMB_MSG);
    }
}

/// Every task's output: the tag the driver checks, and maybe a destructor that panics.
pub struct Out {
    tag: usize,
    armed: bool,
}

impl Out {
    pub fn new(tag: usize, armed: bool) -> Self {
        Self { tag, armed }
    }

    /// The tag, the output left as it is (for a retry predicate).
    pub fn peek(&self) -> usize {
        self.tag
    }

    /// The tag; the driver took the output, so its destructor no longer panics.
    pub fn tag(mut self) -> usize {
        self.armed = false;
        self.tag
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        if self.armed {
            explode();
        }
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Out({})", self.tag)
    }
}

/// A panic payload whose destructor panics.
pub struct PayloadBomb;

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        explode();
    }
}

/// A future whose destructor panics once `armed`, whether or not it returned.
pub struct BombOnDrop<F> {
    fut: Option<Pin<Box<F>>>,
    armed: bool,
}

impl<F> BombOnDrop<F> {
    pub fn new(fut: F, armed: bool) -> Self {
        Self {
            fut: Some(Box::pin(fut)),
            armed,
        }
    }
}

impl<F: Future> Future for BombOnDrop<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.fut
            .as_mut()
            .expect("polled after being dropped")
            .as_mut()
            .poll(cx)
    }
}

impl<F> Drop for BombOnDrop<F> {
    fn drop(&mut self) {
        // The task's own destructors first (they count it out of the running tasks).
        drop(self.fut.take());
        if self.armed {
            explode();
        }
    }
}

/// Drops a value the driver got back from the pool (a refused future, an error), whose
/// destructor may panic on purpose.
pub fn drop_quietly<T>(value: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        std::mem::forget(payload);
    }
}

/// Takes a task's error apart without setting off a payload bomb: the payload is taken out
/// and dropped quietly, so what the driver checks is the pool's own handling.
pub fn defuse(err: TaskError) -> TaskError {
    if let TaskError::Panicked { payload, .. } = &err {
        drop_quietly(payload.take());
    }
    err
}

/// Intended panics (in tasks and in destructors) would flood the output; everything else
/// still prints.
pub fn quiet_intended_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let intended = p
                .downcast_ref::<&str>()
                .is_some_and(|s| *s == PANIC_MSG || *s == BOMB_MSG)
                || p.is::<PayloadBomb>();
            if !intended {
                default(info);
            }
        }));
    });
}

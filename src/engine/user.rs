//! Where user code runs and user values are dropped: never under a pool lock, always inside a
//! panic guard.
//!
//! User code is every future, closure, input, callback and destructor the caller gave us. The
//! engine calls it only through [`call`] and drops what may hold it only through
//! [`drop_value`]; values the engine removes under a lock are carried out of it (see
//! `core::After`) and dropped here after the lock is released. A panic in user code is the
//! task's own outcome (`call`) or is logged against the task it belongs to (`drop_value`); it
//! never reaches the executor's thread or another task.

use crate::id::TaskId;
use crate::sync::lock::assert_unlocked;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a panic carries.
pub(crate) type Payload = Box<dyn Any + Send>;

/// Calls user code, with no pool lock held (checked in debug builds), catching a panic.
#[inline]
pub(crate) fn call<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    assert_unlocked("user code");
    catch_unwind(AssertUnwindSafe(f))
}

/// Whose value is dropped, for the log line a panicking destructor gets.
#[derive(Clone, Copy)]
pub(crate) struct Whose<'a> {
    pub(crate) pool: &'a str,
    pub(crate) task: Option<TaskId>,
    pub(crate) what: &'static str,
}

/// Drops `value` with no pool lock held (checked in debug builds). A destructor that panics
/// is logged against its owner and goes no further.
#[inline]
pub(crate) fn drop_value<T>(value: T, owner: Whose<'_>) {
    assert_unlocked("a destructor");
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        log_destructor_panic(owner, payload);
    }
}

/// [`drop_value`] for an optional value: nothing to do (and no guard) for `None`.
#[inline]
pub(crate) fn drop_some<T>(value: Option<T>, owner: Whose<'_>) {
    if let Some(v) = value {
        drop_value(v, owner);
    }
}

#[cold]
fn log_destructor_panic(owner: Whose<'_>, payload: Payload) {
    let msg = panic_message(&*payload);
    match owner.task {
        Some(id) => tracing::error!(
            pool = owner.pool,
            task_id = id.get(),
            "the destructor of {} of task {id} panicked (ignored): {msg}",
            owner.what
        ),
        None => tracing::error!(
            pool = owner.pool,
            "the destructor of {} panicked (ignored): {msg}",
            owner.what
        ),
    }
    drop_payload(payload);
}

/// Drops a panic payload; if its own destructor panics too, the second payload is leaked
/// rather than dropped, which could panic again without end.
pub(crate) fn drop_payload(payload: Payload) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

pub(crate) use crate::error::panic_message;

/// A value that may hold user values, kept in the pool's state. In debug builds its drop
/// checks that no pool lock is held: the state keeps such values only while it is locked and
/// hands them out (to be dropped with [`drop_value`]) when it removes them.
pub(crate) struct Held<T>(Option<T>);

impl<T> Held<T> {
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// The value, to carry out of the lock.
    #[inline]
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("a held value is there until taken")
    }
}

impl<T> Drop for Held<T> {
    #[inline]
    fn drop(&mut self) {
        if self.0.is_some() {
            assert_unlocked("a user value's destructor");
        }
    }
}

impl<T> std::ops::Deref for Held<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.0.as_ref().expect("a held value is there until taken")
    }
}

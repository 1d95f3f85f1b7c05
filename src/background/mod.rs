//! Tasks whose lifetime is a scope: [`BackgroundTask`] and [`PeriodicTask`].
//!
//! Both are guards over a one-task [`TaskPool`](crate::TaskPool), so cancellation, panic
//! isolation, logging and ids work exactly as in a pool; dropping the guard cancels the task.

mod error;
mod periodic;
mod task;

pub use error::BackgroundError;
pub use periodic::{MissedTickBehavior, PeriodicTask, PeriodicTaskBuilder};
pub use task::{BackgroundTask, BackgroundTaskBuilder};

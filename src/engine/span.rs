//! The `tracing` span of each task: `task{pool, id, name, group}`, entered on each poll of
//! the task's future (and on a map item's closure call and its callbacks), so the user's own
//! events inside a task carry its fields.
//!
//! An INFO span of target [`TARGET`], with no parent (a task outlives the code that submitted
//! it). With no subscriber, or one that filters it out, making and entering it costs a few
//! loads and branches; the name is formatted only by a subscriber that records it.

use crate::id::{TaskId, TaskName};

/// The target of the task spans and of the per-task `Started`/`Ended` events (DEBUG).
pub(crate) const TARGET: &str = "async_taskpool::task";

/// Enters `span` unless it is disabled (no subscriber wants it): then nothing is done at
/// all, not even the guard's bookkeeping.
#[inline(always)]
pub(crate) fn enter(span: &tracing::Span) -> Option<tracing::span::Entered<'_>> {
    (!span.is_disabled()).then(|| span.enter())
}

/// The span of task `id`. The level check is inlined: with no subscriber that wants INFO
/// spans a task pays one load and a branch, not a call.
#[inline(always)]
pub(crate) fn task_span(
    pool: &str,
    id: TaskId,
    custom: Option<&str>,
    group: Option<&str>,
) -> tracing::Span {
    if tracing::level_enabled!(tracing::Level::INFO) {
        make_span(pool, id, custom, group)
    } else {
        tracing::Span::none()
    }
}

#[cold]
#[inline(never)]
fn make_span(pool: &str, id: TaskId, custom: Option<&str>, group: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        target: TARGET,
        parent: None,
        "task",
        pool = %pool,
        id = id.get(),
        name = %TaskName { pool, custom, id },
        group = group.map(tracing::field::display),
    )
}

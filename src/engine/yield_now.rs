//! The one `yield_now`: lets the executor run its other tasks.

use std::task::Poll;

/// Returns `Pending` once after waking itself, so the executor runs its other tasks before it
/// polls the caller again. Used by runners and map workers after a budget of ready work, and by
/// periodic tasks that catch up on missed ticks.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

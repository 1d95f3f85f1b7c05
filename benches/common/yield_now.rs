//! A yield that works on every runtime.

use std::task::Poll;

/// Yields to the scheduler `n` times (wakes itself, so it works on every runtime).
pub async fn yield_n(n: usize) {
    for _ in 0..n {
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
}

//! The pool's tracing events: what an operator sees in the logs.
#![cfg(feature = "tokio")]

use async_taskpool::{runtime::TokioSpawner, TaskPool};

#[path = "common/log_capture.rs"]
mod log_capture;
use log_capture::Capture;

#[test]
fn lifecycle_events_name_the_pool_and_task() {
    let (subscriber, capture) = Capture::subscriber();
    // A current-thread runtime: every task runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = TaskPool::builder(TokioSpawner::current())
            .name("logs")
            .build()
            .unwrap();
        pool.exec(async {}).await.unwrap();
        let h = pool.spawn(std::future::pending::<()>()).await.unwrap();
        h.cancel().unwrap();
        let _ = h.await;
        let _ = pool
            .exec(async {
                if true {
                    panic!("bad input");
                }
            })
            .await;
        pool.lock();
        pool.unlock();
        pool.cancel_all();
        pool.gather_and_close().await.unwrap();
    });
    let text = capture.text();
    for expected in [
        "logs initialized",
        "Started logs_Task-0",
        "Ended logs_Task-0",
        "Cancelled logs_Task-1",
        "task 2 panicked: bad input",
        "logs is locked!",
        "logs was unlocked.",
        "logs cancelling all tasks!",
        "logs is closed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("pool=logs"), "events carry the pool field");
    assert!(text.contains("task_id=1"), "events carry the task id");
}

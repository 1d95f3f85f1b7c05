use crate::support::*;
use async_taskpool::{SimpleTaskPool, TaskId};
use std::future::pending;
use std::sync::{Arc, Barrier};

/// Issue 10, bug 8: `stop` picked its ids and cancelled them in two steps, so concurrent
/// callers could pick the same task (4 concurrent `stop(1)` on 8 tasks returned an id twice
/// in ~14% of rounds).
pub async fn concurrent_stops_never_stop_the_same_task(sp: Sp) {
    const CALLERS: usize = 4;
    for _round in 0..100 {
        let workers = SimpleTaskPool::builder(sp.clone(), pending::<()>)
            .limit(4)
            .build()
            .unwrap();
        workers.start(8).unwrap();
        let barrier = Arc::new(Barrier::new(CALLERS));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (w, b) = (workers.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    w.stop(1)
                })
            })
            .collect();
        let mut ids: Vec<TaskId> = callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CALLERS, "each stop(1) stops a task of its own");
        assert_eq!(workers.stop_all().len(), 8 - CALLERS);
        workers.gather_and_close().await.unwrap();
        assert_eq!(workers.num_cancelled(), 8);
    }
}

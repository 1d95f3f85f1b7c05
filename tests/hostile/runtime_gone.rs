//! Hostile cases about a runtime that goes away under its pools, as plain tests: each builds
//! (and drops, or stops running) a runtime of its own, so they cannot run on the shared
//! flavours. Each runs under [`crate::isolated`], as a hang is the bug.

#[cfg(feature = "smol")]
mod smol_executor {
    use crate::cases::FlagSpawner;
    use crate::support::Counter;
    use async_taskpool::runtime::SmolSpawner;
    use async_taskpool::{SimpleTaskPool, TaskPool};
    use std::future::pending;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A pool left behind by [`pools_on_an_executor_no_longer_run_let_go_of_their_spawner`],
    /// with the flag its spawner sets when dropped.
    type Used = (Box<dyn Send>, Arc<AtomicBool>);

    /// Uses pools on the executor, runs it, and returns them once it stopped running.
    type Shape = fn(&Arc<smol::Executor<'static>>) -> Vec<Used>;

    /// Pools used inside `block_on(ex.run(..))` and closed, the last thing the run does.
    fn gathered_pools(ex: &Arc<smol::Executor<'static>>) -> Vec<Used> {
        smol::block_on(ex.run(async {
            let mut pools: Vec<Used> = Vec::new();
            for _ in 0..3 {
                let spawner = Arc::new(SmolSpawner::from_executor(ex.clone()));
                let (spawner, dropped) = FlagSpawner::wrap(spawner);
                let p = TaskPool::builder(spawner).limit(4).build().unwrap();
                let burst: Vec<_> = (0..4)
                    .map(|i| p.spawn_queued(async move { i }).unwrap())
                    .collect();
                for h in burst {
                    h.await.unwrap();
                }
                for i in 0..4 {
                    assert_eq!(p.exec(async move { i }).await.unwrap(), i);
                }
                p.gather_and_close().await.unwrap();
                pools.push((Box::new(p), dropped));
            }
            pools
        }))
    }

    /// A `SimpleTaskPool` used inside `block_on(ex.run(..))`, its tasks stopped, the last
    /// thing the run does.
    fn stopped_pool(ex: &Arc<smol::Executor<'static>>) -> Vec<Used> {
        smol::block_on(ex.run(async {
            let spawner = Arc::new(SmolSpawner::from_executor(ex.clone()));
            let (spawner, dropped) = FlagSpawner::wrap(spawner);
            let s = SimpleTaskPool::builder(spawner, pending::<()>)
                .limit(2)
                .build()
                .unwrap();
            drop(s.start(2).unwrap());
            assert_eq!(s.stop_all().len(), 2);
            s.join().await.unwrap();
            vec![(Box::new(s) as Box<dyn Send>, dropped)]
        }))
    }

    isolated_test! {
        /// Issue 10, bug 6: pools on a private smol executor leaked (2.5-4.2 KB each): closing
        /// (or stopping) a pool wakes its parked runtime tasks, but an executor no longer run
        /// never polls them, and they held the pool, which held the spawner, which held the
        /// executor. Pools used inside `block_on(ex.run(..))`, closed (or stopped) and dropped
        /// after the executor stopped running (its owner keeps it) let go of their spawner.
        fn pools_on_an_executor_no_longer_run_let_go_of_their_spawner() {
            let shapes: [(&str, Shape); 2] = [
                ("gathered and closed", gathered_pools),
                ("SimpleTaskPool stopped", stopped_pool),
            ];
            let mut executors = Vec::new();
            let mut kept = Vec::new();
            for (shape, used) in shapes {
                let ex = Arc::new(smol::Executor::new());
                let pools = used(&ex);
                // The executor is not run any more; its owner still holds it.
                for (i, (pool, dropped)) in pools.into_iter().enumerate() {
                    drop(pool);
                    if !dropped.load(Ordering::SeqCst) {
                        kept.push(format!("{shape} #{i}"));
                    }
                }
                executors.push(ex);
            }
            assert!(
                kept.is_empty(),
                "pools still hold their spawner once dropped: {kept:?}"
            );
        }
    }

    isolated_test! {
        /// Issue 10, bug 6: a user who drops their own executor got handles and
        /// `gather_and_close` that hung forever (the pool's spawner kept the executor, and so
        /// its never-polled tasks, alive). They resolve, to an error, as on tokio when the
        /// runtime is dropped.
        fn handles_resolve_when_the_user_drops_the_executor() {
            let ex = Arc::new(smol::Executor::new());
            let pool = TaskPool::new(SmolSpawner::from_executor(ex.clone()));
            let started = Counter::new();
            let handles = smol::block_on(ex.run(async {
                let handles: Vec<_> = (0..3)
                    .map(|_| {
                        let s = started.clone();
                        pool.spawn_queued(async move {
                            s.bump();
                            pending::<()>().await
                        })
                        .unwrap()
                    })
                    .collect();
                started.wait_for(3).await;
                handles
            }));
            drop(ex); // the user's only handle on the executor
            futures::executor::block_on(async {
                for h in handles {
                    let res = h.await;
                    assert!(res.is_err(), "{res:?}");
                }
                pool.gather_and_close().await.unwrap();
            });
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use crate::support::Counter;
    use async_taskpool::runtime::TokioSpawner;
    use async_taskpool::TaskPool;
    use std::future::pending;

    isolated_test! {
        /// Issue 10, bug 12: with the tokio runtime dropped, every task resolved `Cancelled` (6
        /// of 6) and its callbacks never ran, though the docs promised they would. The handles
        /// say the runtime dropped the task (`TaskError::RuntimeDropped`, not `Cancelled`), and
        /// the callbacks, which cannot run without a runtime, ran 0 times, as documented.
        fn tasks_dropped_with_their_runtime_say_so() {
            for multi_thread in [false, true] {
                let flavour = if multi_thread { "multi-thread" } else { "current-thread" };
                let rt = if multi_thread {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                }
                .unwrap();
                let (ends, cancels, started) = (Counter::new(), Counter::new(), Counter::new());
                let (pool, handles) = rt.block_on(async {
                    let pool = TaskPool::builder(TokioSpawner::current())
                        .limit(2)
                        .build()
                        .unwrap();
                    // Two running, four queued behind them.
                    let handles: Vec<_> = (0..6)
                        .map(|_| {
                            let (e, c, s) = (ends.clone(), cancels.clone(), started.clone());
                            pool.build_task()
                                .on_end(move |_| {
                                    e.bump();
                                    async {}
                                })
                                .on_cancel(move |_| {
                                    c.bump();
                                    async {}
                                })
                                .spawn_queued(async move {
                                    s.bump();
                                    pending::<()>().await
                                })
                                .unwrap()
                        })
                        .collect();
                    started.wait_for(2).await;
                    (pool, handles)
                });
                drop(rt);
                futures::executor::block_on(async {
                    for h in handles {
                        let err = h.await.unwrap_err();
                        assert!(
                            !err.is_cancelled(),
                            "{flavour}: a task the runtime dropped reads as cancelled: {err}"
                        );
                        assert!(
                            err.to_string().to_lowercase().contains("runtime"),
                            "{flavour}: the message says the runtime dropped it: {err}"
                        );
                    }
                    pool.join().await.unwrap();
                });
                assert_eq!(
                    (ends.get(), cancels.get()),
                    (0, 0),
                    "{flavour}: on_end, on_cancel runs"
                );
                let st = pool.stats();
                assert_eq!(st.ended, 6, "{flavour}: {st:?}");
                assert_eq!((st.running, st.queued, st.ending), (0, 0, 0), "{st:?}");
            }
        }
    }
}

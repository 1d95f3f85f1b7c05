//! Hostile cases about a runtime that goes away under its pools, as plain tests: each builds
//! (and drops, or stops running) a runtime of its own, so they cannot run on the shared
//! flavours. Each runs under [`crate::isolated`], as a hang is the bug.

#[cfg(feature = "smol")]
mod smol_executor {
    use crate::cases::FlagSpawner;
    use crate::isolated;
    use crate::support::Counter;
    use async_taskpool::runtime::SmolSpawner;
    use async_taskpool::TaskPool;
    use std::future::pending;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    /// Issue 10, bug 6: pools on a private smol executor leaked (2.5-4.2 KB each): closing a
    /// pool wakes its parked runtime tasks, but an executor no longer run never polls them,
    /// and they held the pool, which held the spawner, which held the executor. Pools used
    /// inside `block_on(ex.run(..))`, closed and dropped after the executor stopped running
    /// (the user keeps it), let go of their spawner.
    #[test]
    fn pools_on_an_executor_no_longer_run_let_go_of_their_spawner() {
        isolated(concat!(module_path!(), "::pools_on_an_executor_no_longer_run_let_go_of_their_spawner"), || {
            let ex = Arc::new(smol::Executor::new());
            let pools = smol::block_on(ex.run(async {
                let mut pools = Vec::new();
                for _ in 0..3 {
                    let smol = Arc::new(SmolSpawner::from_executor(ex.clone()));
                    let (spawner, dropped) = FlagSpawner::wrap(smol);
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
                    pools.push((p, dropped));
                }
                pools
            }));
            // The executor is not run any more; its owner still holds it.
            let flags: Vec<_> = pools
                .into_iter()
                .map(|(p, dropped)| {
                    drop(p);
                    dropped
                })
                .collect();
            let kept: Vec<usize> = (0..flags.len())
                .filter(|&i| !flags[i].load(Ordering::SeqCst))
                .collect();
            assert!(
                kept.is_empty(),
                "pools {kept:?} (of 0..3) still hold their spawner after they were closed and \
                 dropped"
            );
            drop(ex);
        });
    }

    /// Issue 10, bug 6: a user who drops their own executor got handles and
    /// `gather_and_close` that hung forever (the pool's spawner kept the executor, and so its
    /// never-polled tasks, alive). They resolve, to an error, as on tokio when the runtime
    /// is dropped.
    #[test]
    fn handles_resolve_when_the_user_drops_the_executor() {
        isolated(concat!(module_path!(), "::handles_resolve_when_the_user_drops_the_executor"), || {
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
        });
    }
}

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use crate::isolated;
    use crate::support::Counter;
    use async_taskpool::runtime::TokioSpawner;
    use async_taskpool::TaskPool;
    use std::future::pending;

    /// Issue 10, bug 12: with the tokio runtime dropped, every task resolved `Cancelled` (6
    /// of 6) and its callbacks never ran, though the docs promised they would. The handles
    /// say the runtime dropped the task (`TaskError::RuntimeDropped`, not `Cancelled`), and
    /// the callbacks, which cannot run without a runtime, ran 0 times, as documented.
    #[test]
    fn tasks_dropped_with_their_runtime_say_so() {
        isolated(concat!(module_path!(), "::tasks_dropped_with_their_runtime_say_so"), || {
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
        });
    }
}

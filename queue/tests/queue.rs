//! The queue against a real PostgreSQL, with workers inside the test process, on every
//! runtime sqlx supports (tokio, smol, async-std). Process-level tests (several worker
//! processes, SIGKILL, a server restart, SIGTERM) are in `cluster.rs`.

mod support;

use async_taskpool::TaskPool;
use async_taskpool_queue::sqlx;
use async_taskpool_queue::{
    Backoff, DeadSelection, Enqueued, JobContext, JobId, JobState, KindOptions, NewJob, PgQueue,
    QueueError, Registry, Stopper, Worker, WorkerBuilder, WorkerSummary,
};
use futures::channel::oneshot;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{count_jobs, count_state, eventually, fresh_queue, Rt, RUNTIMES};

const LIMIT: Duration = Duration::from_secs(60);

/// Starts `worker` beside the test; returns its stopper and its result.
fn spawn_worker(
    rt: Rt,
    worker: Worker,
) -> (
    Stopper,
    oneshot::Receiver<Result<WorkerSummary, QueueError>>,
) {
    let stopper = worker.stopper();
    let (tx, rx) = oneshot::channel();
    rt.spawner()
        .spawn(Box::pin(async move {
            let _ = tx.send(worker.run().await);
        }))
        .unwrap();
    (stopper, rx)
}

fn builder(rt: Rt, queue: &PgQueue, limit: usize, registry: Registry) -> (WorkerBuilder, TaskPool) {
    let pool = TaskPool::builder(rt.spawner())
        .name("jobs")
        .limit(limit)
        .build()
        .unwrap();
    let b = Worker::builder(queue.clone(), pool.clone(), registry)
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(200))
        .spawner(rt.spawner());
    (b, pool)
}

async fn stop(
    stopper: Stopper,
    done: oneshot::Receiver<Result<WorkerSummary, QueueError>>,
) -> WorkerSummary {
    stopper.stop_gracefully(Duration::from_secs(5));
    done.await
        .expect("worker task dropped")
        .expect("worker failed")
}

async fn state_of(queue: &PgQueue, id: JobId) -> JobState {
    queue.job(id).await.unwrap().state
}

#[test]
fn drains_a_batch_exactly_once_on_every_runtime() {
    for rt in RUNTIMES {
        rt.block_on(LIMIT, async move {
            let (queue, _) = fresh_queue(&format!("drain_{}", rt.name())).await;
            let seen = Arc::new(Mutex::new(HashMap::<i64, u32>::new()));
            let s = seen.clone();
            let registry =
                Registry::new().register("add", move |ctx: JobContext, (a, b): (i64, i64)| {
                    let s = s.clone();
                    async move {
                        assert_eq!(a + 1, b);
                        *s.lock().unwrap().entry(ctx.id().get()).or_default() += 1;
                        Ok::<(), String>(())
                    }
                });
            let jobs: Vec<NewJob> = (0..300)
                .map(|i| NewJob::new("add", &(i, i + 1)).unwrap())
                .collect();
            let ids = queue.enqueue_many(jobs).await.unwrap();
            assert_eq!(ids.len(), 300);
            let (b, _pool) = builder(rt, &queue, 8, registry);
            let (stopper, done) = spawn_worker(rt, b.batch_size(50).build().unwrap());
            let sp = rt.spawner();
            eventually(&*sp, LIMIT, "300 jobs run", || {
                let q = queue.clone();
                async move { count_jobs(&q).await == 0 }
            })
            .await;
            let summary = stop(stopper, done).await;
            assert_eq!(summary.completed, 300, "{summary:?}");
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 300);
            assert!(seen.values().all(|&n| n == 1), "a job ran twice");
            let mut want: Vec<i64> = ids.iter().map(|i| i.get()).collect();
            let mut got: Vec<i64> = seen.keys().copied().collect();
            want.sort();
            got.sort();
            assert_eq!(want, got);
        });
    }
}

#[test]
fn retention_keeps_completed_jobs() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("retention").await;
        let registry = Registry::new().register("noop", |_: JobContext, (): ()| async {
            Ok::<(), String>(())
        });
        let id = queue.enqueue("noop", &()).await.unwrap().id();
        let (b, _pool) = builder(Rt::Tokio, &queue, 2, registry);
        let (stopper, done) = spawn_worker(
            Rt::Tokio,
            b.retention(Duration::from_secs(3600)).build().unwrap(),
        );
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "the job completes", || {
            let q = queue.clone();
            async move { state_of(&q, id).await == JobState::Completed }
        })
        .await;
        stop(stopper, done).await;
        let job = queue.job(id).await.unwrap();
        assert_eq!(job.attempts, 1);
        assert!(job.worker_id.is_some());
    });
}

/// Attempts, in order, with the backoff between them; dead after the last; retry from
/// the dead set runs it again with fresh attempts.
#[test]
fn retries_with_backoff_then_dead_then_retry_from_dead_on_every_runtime() {
    for rt in RUNTIMES {
        rt.block_on(LIMIT, async move {
            let (queue, _) = fresh_queue(&format!("retries_{}", rt.name())).await;
            let log = Arc::new(Mutex::new(Vec::<(u32, Instant)>::new()));
            let succeed = Arc::new(Mutex::new(false));
            let (l, ok) = (log.clone(), succeed.clone());
            let backoff = Backoff::exponential(Duration::from_millis(100))
                .jitter(0.0)
                .unwrap();
            let registry = Registry::new().register_with(
                "flaky",
                KindOptions::new().backoff(backoff),
                move |ctx: JobContext, (): ()| {
                    let (l, ok) = (l.clone(), ok.clone());
                    async move {
                        l.lock().unwrap().push((ctx.attempt(), Instant::now()));
                        if *ok.lock().unwrap() {
                            Ok(())
                        } else {
                            Err(format!("attempt {} failed", ctx.attempt()))
                        }
                    }
                },
            );
            let id = queue
                .enqueue_job(NewJob::new("flaky", &()).unwrap().max_attempts(3))
                .await
                .unwrap()
                .id();
            let (b, _pool) = builder(rt, &queue, 2, registry);
            let (stopper, done) = spawn_worker(rt, b.build().unwrap());
            let sp = rt.spawner();
            eventually(&*sp, LIMIT, "the job is dead", || {
                let q = queue.clone();
                async move { state_of(&q, id).await == JobState::Dead }
            })
            .await;
            {
                let log = log.lock().unwrap();
                let attempts: Vec<u32> = log.iter().map(|(a, _)| *a).collect();
                assert_eq!(attempts, [1, 2, 3]);
                // The backoff is a floor: 100 ms, then 200 ms.
                assert!(log[1].1 - log[0].1 >= Duration::from_millis(100));
                assert!(log[2].1 - log[1].1 >= Duration::from_millis(200));
            }
            let job = queue.job(id).await.unwrap();
            assert_eq!(job.attempts, 3);
            assert_eq!(job.last_error.as_deref(), Some("attempt 3 failed"));
            let outcomes: Vec<&str> = job
                .history
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["outcome"].as_str().unwrap())
                .collect();
            assert_eq!(outcomes, ["retry", "retry", "dead"]);
            let dead = queue.dead_jobs(None, 10).await.unwrap();
            assert_eq!(dead.len(), 1);
            assert_eq!(dead[0].id, id);
            assert_eq!(dead[0].history.as_array().unwrap().len(), 3);

            *succeed.lock().unwrap() = true;
            assert_eq!(queue.retry_dead(&DeadSelection::Job(id)).await.unwrap(), 1);
            eventually(&*sp, LIMIT, "the retried job completes", || {
                let q = queue.clone();
                async move { matches!(q.job(id).await, Err(QueueError::NoSuchJob(_))) }
            })
            .await;
            assert_eq!(
                log.lock().unwrap().last().unwrap().0,
                1,
                "a retried dead job starts from attempt 1"
            );
            let summary = stop(stopper, done).await;
            assert_eq!(
                (summary.retried, summary.dead, summary.completed),
                (2, 1, 1)
            );
        });
    }
}

#[test]
fn panics_and_timeouts_are_failed_attempts() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("panics").await;
        let quick = KindOptions::new().backoff(Backoff::constant(Duration::from_millis(10)));
        let registry = Registry::new()
            .register_with("boom", quick.clone(), |_: JobContext, (): ()| async {
                if true {
                    panic!("kaboom");
                }
                Ok::<(), String>(())
            })
            .register_with(
                "slow",
                quick.timeout(Duration::from_millis(50)),
                |_: JobContext, (): ()| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<(), String>(())
                },
            );
        let boom = queue
            .enqueue_job(NewJob::new("boom", &()).unwrap().max_attempts(2))
            .await
            .unwrap()
            .id();
        let slow = queue
            .enqueue_job(NewJob::new("slow", &()).unwrap().max_attempts(2))
            .await
            .unwrap()
            .id();
        let (b, _pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "both dead", || {
            let q = queue.clone();
            async move { count_state(&q, "dead").await == 2 }
        })
        .await;
        stop(stopper, done).await;
        let boom = queue.job(boom).await.unwrap();
        assert_eq!(boom.attempts, 2);
        assert!(boom.last_error.unwrap().contains("panicked: kaboom"));
        let slow = queue.job(slow).await.unwrap();
        assert!(
            slow.last_error.unwrap().contains("timed out"),
            "{:?}",
            slow.history
        );
    });
}

#[test]
fn dead_set_retry_by_kind_and_all_and_discard() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("deadset").await;
        let fail = Arc::new(Mutex::new(true));
        let f = fail.clone();
        let handler = move |_: JobContext, (): ()| {
            let f = f.clone();
            async move {
                if *f.lock().unwrap() {
                    Err("no")
                } else {
                    Ok(())
                }
            }
        };
        let registry = Registry::new()
            .register("a", handler.clone())
            .register("b", handler);
        for kind in ["a", "a", "b", "b", "b"] {
            queue
                .enqueue_job(NewJob::new(kind, &()).unwrap().max_attempts(1))
                .await
                .unwrap();
        }
        let (b, _pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "five dead", || {
            let q = queue.clone();
            async move { count_state(&q, "dead").await == 5 }
        })
        .await;
        assert_eq!(queue.dead_jobs(Some("b"), 10).await.unwrap().len(), 3);
        assert_eq!(queue.dead_jobs(None, 2).await.unwrap().len(), 2);
        // By kind: the two `a` jobs fail again (still failing).
        assert_eq!(
            queue
                .retry_dead(&DeadSelection::Kind("a".into()))
                .await
                .unwrap(),
            2
        );
        eventually(&*sp, LIMIT, "a jobs dead again", || {
            let q = queue.clone();
            async move { count_state(&q, "dead").await == 5 }
        })
        .await;
        // Discard one, then retry all with the handler fixed.
        let one = queue.dead_jobs(Some("b"), 1).await.unwrap()[0].id;
        assert_eq!(
            queue.discard_dead(&DeadSelection::Job(one)).await.unwrap(),
            1
        );
        assert_eq!(
            queue.discard_dead(&DeadSelection::Job(one)).await.unwrap(),
            0
        );
        *fail.lock().unwrap() = false;
        assert_eq!(queue.retry_dead(&DeadSelection::All).await.unwrap(), 4);
        eventually(&*sp, LIMIT, "all done", || {
            let q = queue.clone();
            async move { count_jobs(&q).await == 0 }
        })
        .await;
        stop(stopper, done).await;
        assert_eq!(queue.discard_dead(&DeadSelection::All).await.unwrap(), 0);
    });
}

/// 8 enqueuers race on the same 25 keys: one job per key, and every enqueue of a key
/// returns that job's id.
#[test]
fn unique_keys_under_eight_concurrent_enqueuers() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("unique").await;
        let mut tasks = Vec::new();
        for e in 0..8 {
            let q = queue.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for round in 0..25 {
                    let k = (round + e * 3) % 25; // each enqueuer walks the keys in another order
                    let job = NewJob::new("mail", &k)
                        .unwrap()
                        .unique_key(format!("user-{k}"));
                    got.push((k, q.enqueue_job(job).await.unwrap()));
                }
                got
            }));
        }
        let mut by_key: BTreeMap<i32, Vec<Enqueued>> = BTreeMap::new();
        for t in tasks {
            for (k, e) in t.await.unwrap() {
                by_key.entry(k).or_default().push(e);
            }
        }
        assert_eq!(count_jobs(&queue).await, 25);
        for (k, results) in &by_key {
            assert_eq!(results.len(), 8);
            assert_eq!(
                results.iter().filter(|e| e.is_new()).count(),
                1,
                "key {k}: {results:?}"
            );
            let id = results[0].id();
            assert!(results.iter().all(|e| e.id() == id), "key {k}: {results:?}");
        }
        // A batch with a held key and a duplicate inside it adds only the new key, once.
        let batch = vec![
            NewJob::new("mail", &0).unwrap().unique_key("user-0"),
            NewJob::new("mail", &100).unwrap().unique_key("user-100"),
            NewJob::new("mail", &100).unwrap().unique_key("user-100"),
        ];
        assert_eq!(queue.enqueue_many(batch).await.unwrap().len(), 1);
        // Once the job is done the key is free again.
        let registry = Registry::new().register("mail", |_: JobContext, _k: i32| async {
            Ok::<(), String>(())
        });
        let (b, _pool) = builder(Rt::Tokio, &queue, 8, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "all mail sent", || {
            let q = queue.clone();
            async move { count_jobs(&q).await == 0 }
        })
        .await;
        stop(stopper, done).await;
        let again = queue
            .enqueue_job(NewJob::new("mail", &0).unwrap().unique_key("user-0"))
            .await
            .unwrap();
        assert!(again.is_new());
    });
}

#[test]
fn enqueue_inside_a_rolled_back_transaction_leaves_nothing() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("tx").await;
        sqlx::query("CREATE TABLE orders (id int PRIMARY KEY)")
            .execute(queue.pool())
            .await
            .unwrap();
        let ran = Arc::new(Mutex::new(Vec::<i32>::new()));
        let r = ran.clone();
        let registry = Registry::new().register("ship", move |_: JobContext, order: i32| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push(order);
                Ok::<(), String>(())
            }
        });
        let (b, _pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(
            Rt::Tokio,
            b.poll_interval(Duration::from_secs(30)).build().unwrap(),
        );

        let mut tx = queue.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO orders VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        queue
            .enqueue_job_in(&mut tx, NewJob::new("ship", &1).unwrap())
            .await
            .unwrap();
        queue
            .enqueue_many_in(&mut tx, vec![NewJob::new("ship", &2).unwrap()])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count_jobs(&queue).await, 0);

        let mut tx = queue.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO orders VALUES (3)")
            .execute(&mut *tx)
            .await
            .unwrap();
        queue
            .enqueue_job_in(&mut tx, NewJob::new("ship", &3).unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The commit's notification wakes the worker (its poll interval is 30 s).
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, Duration::from_secs(10), "order 3 shipped", || {
            let r = ran.clone();
            async move { !r.lock().unwrap().is_empty() }
        })
        .await;
        stop(stopper, done).await;
        assert_eq!(*ran.lock().unwrap(), [3]);
    });
}

/// Bad arguments: dead at once with serde's error, the handler never called. Unknown
/// kinds: left pending for a worker that has them; the cluster view shows nobody runs them.
#[test]
fn bad_arguments_and_unknown_kinds() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("badargs").await;
        let called = Arc::new(Mutex::new(0));
        let c = called.clone();
        let registry =
            Registry::new().register("add", move |_: JobContext, (_a, _b): (i64, i64)| {
                let c = c.clone();
                async move {
                    *c.lock().unwrap() += 1;
                    Ok::<(), String>(())
                }
            });
        let bad = queue
            .enqueue("add", &serde_json::json!({"a": "x"}))
            .await
            .unwrap()
            .id();
        let mystery = queue.enqueue("mystery", &1).await.unwrap().id();
        let good = queue.enqueue("add", &(1, 2)).await.unwrap().id();
        let (b, _pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "good done, bad dead", || {
            let q = queue.clone();
            async move { q.job(good).await.is_err() && state_of(&q, bad).await == JobState::Dead }
        })
        .await;
        assert_eq!(*called.lock().unwrap(), 1);
        let bad = queue.job(bad).await.unwrap();
        assert_eq!(bad.attempts, 1);
        let err = bad.last_error.unwrap();
        assert!(
            err.contains("do not fit its handler's type") && err.contains("(i64, i64)"),
            "{err}"
        );
        let m = queue.job(mystery).await.unwrap();
        assert_eq!((m.state, m.attempts), (JobState::Pending, 0));
        let view = queue.cluster().await.unwrap();
        let k = view.kinds.iter().find(|k| k.kind == "mystery").unwrap();
        assert_eq!((k.pending, k.live_workers), (1, 0));
        let k = view.kinds.iter().find(|k| k.kind == "add").unwrap();
        assert_eq!((k.dead, k.live_workers), (1, 1));
        stop(stopper, done).await;

        // A worker that knows the kind runs it.
        let registry = Registry::new().register("mystery", |_: JobContext, n: i32| async move {
            if n == 1 {
                Ok(())
            } else {
                Err("wrong")
            }
        });
        let (b, _pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        eventually(&*sp, LIMIT, "mystery done", || {
            let q = queue.clone();
            async move { q.job(mystery).await.is_err() }
        })
        .await;
        stop(stopper, done).await;
    });
}

/// Cancelling a job's task through the pool cancels the job (not retried); the worker goes on.
#[test]
fn cancelling_the_task_through_the_pool_cancels_the_job_on_every_runtime() {
    for rt in RUNTIMES {
        rt.block_on(LIMIT, async move {
            let (queue, _) = fresh_queue(&format!("cancel_{}", rt.name())).await;
            let registry = Registry::new()
                .register("forever", |_: JobContext, (): ()| async {
                    std::future::pending::<()>().await;
                    Ok::<(), String>(())
                })
                .register("noop", |_: JobContext, (): ()| async {
                    Ok::<(), String>(())
                });
            let id = queue.enqueue("forever", &()).await.unwrap().id();
            let (b, pool) = builder(rt, &queue, 4, registry);
            let (stopper, done) = spawn_worker(rt, b.build().unwrap());
            let sp = rt.spawner();
            let name = format!("forever#{id}");
            eventually(&*sp, LIMIT, "the job's task runs", || {
                let p = pool.clone();
                let n = name.clone();
                async move { p.tasks().iter().any(|t| t.name == n) }
            })
            .await;
            let task = pool
                .tasks()
                .into_iter()
                .find(|t| t.name == name)
                .unwrap()
                .id;
            pool.cancel([task]).unwrap();
            eventually(&*sp, LIMIT, "the job is cancelled", || {
                let q = queue.clone();
                async move { state_of(&q, id).await == JobState::Cancelled }
            })
            .await;
            let job = queue.job(id).await.unwrap();
            assert!(job
                .last_error
                .unwrap()
                .contains("cancelled through the pool `jobs`"));
            // The worker goes on.
            let next = queue.enqueue("noop", &()).await.unwrap().id();
            eventually(&*sp, LIMIT, "the next job runs", || {
                let q = queue.clone();
                async move { q.job(next).await.is_err() }
            })
            .await;
            let summary = stop(stopper, done).await;
            assert_eq!((summary.cancelled, summary.completed), (1, 1));
        });
    }
}

/// A worker that loses a lease (here: another worker took the job) tells the job's context
/// and cancels its task.
#[test]
fn a_lost_lease_cancels_the_task_and_tells_the_handler() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("lease").await;
        struct Guard(JobContext, Arc<Mutex<Option<bool>>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                *self.1.lock().unwrap() = Some(self.0.lease_held());
            }
        }
        let held_at_drop = Arc::new(Mutex::new(None));
        let h = held_at_drop.clone();
        let registry = Registry::new().register("long", move |ctx: JobContext, (): ()| {
            let h = h.clone();
            async move {
                let _guard = Guard(ctx, h);
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }
        });
        let id = queue.enqueue("long", &()).await.unwrap().id();
        let (b, pool) = builder(Rt::Tokio, &queue, 2, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "the job runs", || {
            let q = queue.clone();
            async move { state_of(&q, id).await == JobState::Running }
        })
        .await;
        sqlx::query("UPDATE taskpool.jobs SET worker_id = 'thief' WHERE id = $1")
            .bind(id.get())
            .execute(queue.pool())
            .await
            .unwrap();
        eventually(&*sp, LIMIT, "the task is cancelled", || {
            let h = held_at_drop.clone();
            async move { h.lock().unwrap().is_some() }
        })
        .await;
        assert_eq!(
            *held_at_drop.lock().unwrap(),
            Some(false),
            "the context said the lease was lost"
        );
        assert_eq!(pool.num_running(), 0);
        // The thief's job is untouched.
        assert_eq!(
            queue.job(id).await.unwrap().worker_id.as_deref(),
            Some("thief")
        );
        let summary = stop(stopper, done).await;
        assert_eq!(summary.lost, 1);
    });
}

/// Stop: running jobs get the grace; the rest are cancelled and given back, due at once,
/// their attempt not counted; the worker leaves the cluster view.
#[test]
fn graceful_shutdown_on_every_runtime() {
    for rt in RUNTIMES {
        rt.block_on(LIMIT, async move {
            let (queue, _) = fresh_queue(&format!("graceful_{}", rt.name())).await;
            let sp = rt.spawner();
            let s2 = sp.clone();
            let registry = Registry::new()
                .register("quick", move |_: JobContext, (): ()| {
                    let s = s2.clone();
                    async move {
                        s.sleep(Duration::from_millis(300)).await;
                        Ok::<(), String>(())
                    }
                })
                .register("forever", |_: JobContext, (): ()| async {
                    std::future::pending::<()>().await;
                    Ok::<(), String>(())
                });
            let quick: Vec<JobId> = queue
                .enqueue_many((0..3).map(|_| NewJob::new("quick", &()).unwrap()))
                .await
                .unwrap();
            let forever: Vec<JobId> = queue
                .enqueue_many((0..2).map(|_| NewJob::new("forever", &()).unwrap()))
                .await
                .unwrap();
            let (b, _pool) = builder(rt, &queue, 8, registry);
            let (stopper, done) = spawn_worker(rt, b.build().unwrap());
            eventually(&*sp, LIMIT, "all five run", || {
                let q = queue.clone();
                async move { count_state(&q, "running").await == 5 }
            })
            .await;
            stopper.stop_gracefully(Duration::from_secs(2));
            let summary = done.await.unwrap().unwrap();
            assert_eq!((summary.completed, summary.released), (3, 2), "{summary:?}");
            for id in quick {
                assert!(queue.job(id).await.is_err());
            }
            for id in forever {
                let j = queue.job(id).await.unwrap();
                assert_eq!(
                    (j.state, j.attempts, j.worker_id),
                    (JobState::Pending, 0, None)
                );
                assert!(j.due_in_secs <= 0.0);
                assert_eq!(j.history[0]["outcome"], "released");
            }
            assert!(queue.cluster().await.unwrap().workers.is_empty());
        });
    }
}

#[test]
fn scheduled_jobs_wait_for_their_time_and_priorities_order_the_rest() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("schedule").await;
        let order = Arc::new(Mutex::new(Vec::<String>::new()));
        let o = order.clone();
        let registry = Registry::new().register("rec", move |_: JobContext, name: String| {
            let o = o.clone();
            async move {
                o.lock().unwrap().push(name);
                Ok::<(), String>(())
            }
        });
        let later = queue
            .enqueue_job(
                NewJob::new("rec", "later")
                    .unwrap()
                    .delay(Duration::from_millis(800)),
            )
            .await
            .unwrap()
            .id();
        queue
            .enqueue_job(NewJob::new("rec", "low").unwrap().priority(5))
            .await
            .unwrap();
        queue
            .enqueue_job(NewJob::new("rec", "high").unwrap().priority(-5))
            .await
            .unwrap();
        queue
            .enqueue_job(NewJob::new("rec", "mid").unwrap())
            .await
            .unwrap();
        let view = queue.cluster().await.unwrap();
        assert_eq!((view.kinds[0].pending, view.kinds[0].scheduled), (3, 1));
        assert!(queue.job(later).await.unwrap().due_in_secs > 0.0);
        // One at a time, so the order is the fetch's.
        let (b, _pool) = builder(Rt::Tokio, &queue, 1, registry);
        let started = Instant::now();
        let (stopper, done) = spawn_worker(
            Rt::Tokio,
            b.poll_interval(Duration::from_secs(30)).build().unwrap(),
        );
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, Duration::from_secs(20), "all four run", || {
            let o = order.clone();
            async move { o.lock().unwrap().len() == 4 }
        })
        .await;
        // Woken at its due time (the notification said when), not by the 30 s poll.
        assert!(started.elapsed() < Duration::from_secs(20));
        stop(stopper, done).await;
        assert_eq!(*order.lock().unwrap(), ["high", "mid", "low", "later"]);
    });
}

#[test]
fn the_cluster_view_counts_jobs_and_workers() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("cluster").await;
        let registry = Registry::new()
            .register("hold", |_: JobContext, (): ()| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .register("fail", |_: JobContext, (): ()| async { Err::<(), _>("no") })
            .register("ok", |_: JobContext, (): ()| async { Ok::<(), String>(()) });
        queue
            .enqueue_many((0..2).map(|_| NewJob::new("hold", &()).unwrap()))
            .await
            .unwrap();
        queue
            .enqueue_job(NewJob::new("fail", &()).unwrap().max_attempts(1))
            .await
            .unwrap();
        queue
            .enqueue_many((0..5).map(|_| NewJob::new("ok", &()).unwrap()))
            .await
            .unwrap();
        queue
            .enqueue_job(
                NewJob::new("ok", &())
                    .unwrap()
                    .delay(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        let (b, _pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "the heartbeat reports 5 completions", || {
            let q = queue.clone();
            async move {
                let v = q.cluster().await.unwrap();
                v.kinds
                    .iter()
                    .any(|k| k.kind == "ok" && k.completed_last_minute == 5)
                    && v.kinds.iter().any(|k| k.kind == "hold" && k.running == 2)
            }
        })
        .await;
        let view = queue.cluster().await.unwrap();
        assert_eq!(view.workers.len(), 1);
        let w = &view.workers[0];
        assert!(w.alive);
        assert_eq!(
            (w.running_jobs, w.pid, w.completed_last_minute),
            (2, std::process::id(), 5)
        );
        assert_eq!(w.pool["limit"], 4);
        let hold = view.kinds.iter().find(|k| k.kind == "hold").unwrap();
        assert_eq!(hold.running_by_worker.get(&w.id), Some(&2));
        let fail = view.kinds.iter().find(|k| k.kind == "fail").unwrap();
        assert_eq!(fail.dead, 1);
        let ok = view.kinds.iter().find(|k| k.kind == "ok").unwrap();
        assert_eq!((ok.scheduled, ok.pending), (1, 0));
        let text = view.to_string();
        assert!(text.contains("hold") && text.contains(&w.id), "{text}");
        stop(stopper, done).await;
    });
}

#[test]
fn migrations_are_idempotent_and_safe_to_run_at_once() {
    Rt::Tokio.block_on(LIMIT, async {
        let url = support::fresh_database("migrate").await;
        let connects: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn({
                    let u = url.clone();
                    async move { PgQueue::connect(&u).await.map(|_| ()) }
                })
            })
            .collect();
        for c in connects {
            c.await.unwrap().unwrap();
        }
        let q = PgQueue::connect(&url).await.unwrap();
        q.migrate().await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM taskpool._sqlx_migrations")
            .fetch_one(q.pool())
            .await
            .unwrap();
        assert_eq!(applied, 1);
    });
}

#[test]
fn bad_options_are_refused_with_the_range() {
    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("options").await;
        let e = queue
            .enqueue_job(NewJob::new("x", &()).unwrap().max_attempts(0))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("use 1 to 10000"), "{e}");
        let e = queue.enqueue("", &()).await.unwrap_err();
        assert!(e.to_string().contains("kind"), "{e}");
        let pool = TaskPool::new(Rt::Tokio.spawner());
        let e = Worker::builder(queue.clone(), pool.clone(), Registry::new())
            .lease(Duration::from_millis(10))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("1 s or more"), "{e}");
        let e = Worker::builder(queue.clone(), pool, Registry::new())
            .batch_size(0)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("batch_size"), "{e}");
        assert_eq!(count_jobs(&queue).await, 0);
    });
}

/// The queue's commands on the control server, as `taskpool-ctl` sends them.
#[cfg(feature = "control")]
#[test]
fn control_server_commands_show_the_cluster_and_manage_dead_jobs() {
    use async_taskpool::control::protocol::{Command, Reply};
    use async_taskpool::control::{ControlClient, ControlServer};
    use async_taskpool_queue::QueueCommands;
    use serde_json::{json, Value};

    Rt::Tokio.block_on(LIMIT, async {
        let (queue, _) = fresh_queue("control").await;
        let registry = Registry::new().register("fail", |_: JobContext, (): ()| async {
            Err::<(), _>("always")
        });
        for _ in 0..3 {
            queue
                .enqueue_job(NewJob::new("fail", &()).unwrap().max_attempts(1))
                .await
                .unwrap();
        }
        let (b, pool) = builder(Rt::Tokio, &queue, 4, registry);
        let (stopper, done) = spawn_worker(Rt::Tokio, b.build().unwrap());
        let sp = Rt::Tokio.spawner();
        eventually(&*sp, LIMIT, "three dead", || {
            let q = queue.clone();
            async move { count_state(&q, "dead").await == 3 }
        })
        .await;
        let server = ControlServer::new(&pool)
            .queue_commands(queue.clone())
            .serve_tcp("127.0.0.1:0")
            .unwrap();
        let addr = server.local_addr().unwrap();
        let ask = move |name: &'static str, args: Value| {
            tokio::task::spawn_blocking(move || {
                let mut ctl = ControlClient::connect_tcp(addr, None).unwrap();
                match ctl
                    .request(&Command::Custom {
                        name: name.into(),
                        args,
                    })
                    .unwrap()
                {
                    Reply::Ok { value, .. } => Ok(value),
                    Reply::Error { message, .. } => Err(message),
                }
            })
        };
        let text = ask("queue-stats", Value::Null).await.unwrap().unwrap();
        let text = text.as_str().unwrap();
        assert!(text.contains("fail") && text.contains("worker"), "{text}");
        let start = Instant::now();
        let view = loop {
            // The pool's stats come with the worker's first heartbeat.
            let view = ask("queue-stats", json!("json")).await.unwrap().unwrap();
            if view["workers"][0]["pool"]["limit"] == 4 || start.elapsed() > Duration::from_secs(20)
            {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(view["kinds"][0]["dead"], 3);
        assert_eq!(view["workers"][0]["pool"]["limit"], 4);
        let workers = ask("queue-workers", Value::Null).await.unwrap().unwrap();
        assert!(
            workers
                .as_str()
                .unwrap()
                .contains(&format!("pid {}", std::process::id())),
            "{workers}"
        );
        let dead = ask("queue-dead", json!({"json": true, "limit": 2}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(dead.as_array().unwrap().len(), 2);
        let one = dead[0]["id"].as_i64().unwrap();
        let lines = ask("queue-dead", Value::Null).await.unwrap().unwrap();
        assert!(lines.as_str().unwrap().contains("always"), "{lines}");
        assert_eq!(
            ask("queue-discard", json!(one)).await.unwrap().unwrap(),
            "discarded 1 dead job"
        );
        let err = ask("queue-retry", json!("some"))
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.contains("say which dead jobs"), "{err}");
        stop(stopper, done).await; // no worker: the retried jobs stay pending
        assert_eq!(
            ask("queue-retry", json!("all")).await.unwrap().unwrap(),
            "retried 2 dead jobs"
        );
        assert_eq!(count_state(&queue, "pending").await, 2);
        server.shutdown();
    });
}

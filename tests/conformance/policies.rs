//! The conformance cases of the scheduling policies (issue 13). Each takes the spawner of the
//! runtime it runs on. Synchronisation is by gates and counters, never by sleeping.

use crate::support::*;
use async_taskpool::{Concurrency as GroupConcurrency, PoolError, TaskPool};

fn limited(sp: &Sp, limit: usize) -> TaskPool {
    TaskPool::builder(sp.clone()).limit(limit).build().unwrap()
}

/// An item body: counts its start, holds its slot until `gate` opens, and tracks how many run.
fn held(
    started: &Counter,
    gate: &Gate,
    conc: &Concurrency,
) -> impl Fn(u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + Sync
       + 'static {
    let (started, gate, conc) = (started.clone(), gate.clone(), conc.clone());
    move |_| {
        let (started, gate, conc) = (started.clone(), gate.clone(), conc.clone());
        Box::pin(async move {
            let _in = conc.enter();
            started.bump();
            gate.wait().await;
        })
    }
}

/// A group made with `Concurrency::PoolLimit` runs as many items as the pool's limit, and
/// more once the limit is raised (the `map(items, 50, f)` user of issue 13 found a number
/// stays a number); a numeric cap stays put until `set_num_concurrent`.
pub async fn a_group_at_the_pool_limit_follows_set_limit(sp: Sp) {
    let p = limited(&sp, 10);
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let group = p
        .map(
            0..200u32,
            GroupConcurrency::PoolLimit,
            held(&started, &gate, &conc),
        )
        .unwrap();
    started.wait_for(10).await;
    assert_eq!(p.num_running(), 10);
    p.set_limit(100).unwrap();
    started.wait_for(100).await;
    assert_eq!(
        p.num_running(),
        100,
        "the group follows the pool's new limit"
    );
    assert_eq!(conc.max(), 100);
    assert_eq!(group.num_concurrent(), GroupConcurrency::PoolLimit);
    gate.open();
    assert_eq!(group.join().await.unwrap().completed, 200);

    // A number is a cap: raising the pool's limit does not raise it...
    let p = limited(&sp, 10);
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let group = p.map(0..200u32, 10, held(&started, &gate, &conc)).unwrap();
    started.wait_for(10).await;
    p.set_limit(100).unwrap();
    // ...until the group's own cap is raised; then the workers start at once.
    group.set_num_concurrent(30).unwrap();
    started.wait_for(30).await;
    assert_eq!(p.num_running(), 30);
    group
        .set_num_concurrent(GroupConcurrency::PoolLimit)
        .unwrap();
    started.wait_for(100).await;
    assert_eq!(p.num_running(), 100);
    gate.open();
    assert_eq!(group.join().await.unwrap().completed, 200);
    assert_eq!(conc.max(), 100);
}

/// Lowering a group's cap lets its running items finish and starts no new item until fewer
/// than the new cap run; raising it again starts workers at once. Bad values are refused.
pub async fn set_num_concurrent_raises_and_lowers_a_running_group(sp: Sp) {
    let p = TaskPool::new(sp.clone());
    let started = Counter::new();
    let gate = Gate::new();
    let all = Concurrency::default();
    let lowered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let after_lowering: Log<usize> = Log::default();
    let body = {
        let (started, gate, all, lowered, after_lowering) = (
            started.clone(),
            gate.clone(),
            all.clone(),
            lowered.clone(),
            after_lowering.clone(),
        );
        move |_: u32| {
            let (started, gate, all, lowered, after_lowering) = (
                started.clone(),
                gate.clone(),
                all.clone(),
                lowered.clone(),
                after_lowering.clone(),
            );
            async move {
                let _in = all.enter();
                // An item started after the cap went down sees at most 2 running, itself
                // included (`all` counts every item whose future runs).
                let _late = lowered
                    .load(std::sync::atomic::Ordering::SeqCst)
                    .then(|| after_lowering.push(all.now()));
                started.bump();
                gate.wait().await;
                yield_n(2).await;
            }
        }
    };
    let group = p.map(0..60u32, 8, body).unwrap();
    started.wait_for(8).await;
    assert_eq!(p.num_running(), 8);
    assert!(matches!(
        group.set_num_concurrent(0),
        Err(PoolError::InvalidLimit { value: 0, .. })
    ));
    lowered.store(true, std::sync::atomic::Ordering::SeqCst);
    group.set_num_concurrent(2).unwrap();
    assert_eq!(group.num_concurrent(), GroupConcurrency::AtMost(2));
    assert_eq!(p.num_running(), 8, "lowering stops nothing that runs");
    gate.open();
    started.wait_for(30).await;
    let late = after_lowering.get();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|&n| n <= 2),
        "items started after the cap went down to 2 saw this many running: {late:?}"
    );
    assert_eq!(all.max(), 8);
    group
        .set_num_concurrent(GroupConcurrency::PoolLimit)
        .unwrap();
    let summary = group.join().await.unwrap();
    assert_eq!(summary.completed, 60);
}

//! Each adapter spawns a detached task and sleeps on its own timer; `ambient` picks a runtime.

use async_taskpool_runtime::{FuturesSpawner, Spawner};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Spawns a task that sleeps on the spawner's timer, then reports; checks both happened.
fn check(spawner: &dyn Spawner) {
    let (tx, rx) = mpsc::channel();
    let sleep = spawner.sleep(Duration::from_millis(20));
    let start = Instant::now();
    spawner
        .spawn(Box::pin(async move {
            sleep.await;
            tx.send(start.elapsed()).unwrap();
        }))
        .unwrap();
    let elapsed = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the task ran");
    assert!(elapsed >= Duration::from_millis(20), "slept {elapsed:?}");
}

#[test]
fn futures_adapter_with_its_timer() {
    let pool = futures::executor::ThreadPool::new().unwrap();
    let timer = |d: Duration| -> async_taskpool_runtime::BoxFuture {
        Box::pin(async move {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            std::thread::spawn(move || {
                std::thread::sleep(d);
                let _ = tx.send(());
            });
            let _ = rx.await;
        })
    };
    let spawner = FuturesSpawner::new(pool, timer);
    assert_eq!(spawner.runtime_name(), "futures");
    check(&spawner);
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_adapter_from_handle_and_current() {
    use async_taskpool_runtime::TokioSpawner;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let spawner = TokioSpawner::from_handle(rt.handle().clone());
    assert_eq!(spawner.runtime_name(), "tokio");
    // Works from a thread outside the runtime.
    check(&spawner);
    assert!(TokioSpawner::try_current().is_err());
    let inside = rt.block_on(async { TokioSpawner::try_current().is_ok() });
    assert!(inside);
    // `ambient` prefers the tokio runtime the caller is inside.
    let name = rt.block_on(async { async_taskpool_runtime::ambient().unwrap().runtime_name() });
    assert_eq!(name, "tokio");
}

#[cfg(feature = "smol")]
#[test]
fn smol_adapter_global_and_own_executor() {
    use async_taskpool_runtime::SmolSpawner;
    use std::sync::Arc;
    check(&SmolSpawner::global());
    let ex = Arc::new(smol::Executor::new());
    let own = SmolSpawner::from_executor(ex.clone());
    let (tx, rx) = mpsc::channel();
    own.spawn(Box::pin(async move { tx.send(1).unwrap() }))
        .unwrap();
    assert!(
        rx.try_recv().is_err(),
        "nothing runs until the executor is driven"
    );
    smol::block_on(ex.run(async { while ex.try_tick() {} }));
    assert_eq!(rx.recv().unwrap(), 1);
    // The spawner does not keep the executor alive: once its owner drops it, spawning fails
    // (and what was spawned on it was dropped with it).
    let (tx, rx) = mpsc::channel::<()>();
    own.spawn(Box::pin(async move {
        std::future::pending::<()>().await;
        drop(tx)
    }))
    .unwrap();
    drop(ex);
    assert!(
        rx.recv().is_err(),
        "the pending task was dropped with its executor"
    );
    let err = own.spawn(Box::pin(async {})).unwrap_err();
    assert_eq!(err.runtime(), "smol");
    // Outside tokio, `ambient` falls back to smol.
    assert_eq!(
        async_taskpool_runtime::ambient().unwrap().runtime_name(),
        "smol"
    );
}

#[cfg(feature = "async-std")]
#[test]
#[allow(deprecated)]
fn async_std_adapter() {
    use async_taskpool_runtime::AsyncStdSpawner;
    check(&AsyncStdSpawner::new());
}

#[cfg(not(any(feature = "tokio", feature = "smol", feature = "async-std")))]
#[test]
fn ambient_without_runtimes_names_the_features() {
    let err = async_taskpool_runtime::ambient()
        .err()
        .expect("no runtime compiled in");
    let msg = err.to_string();
    assert!(msg.contains("`tokio`") && msg.contains("`smol`") && msg.contains("`async-std`"));
}

//! Each task's `tracing` span (`task{pool, id, name, group}`): the user's own events inside a
//! task carry its fields; the per-task `Started`/`Ended` lines are DEBUG events, shown again
//! by the filter line the README gives.
#![cfg(any(feature = "tokio", feature = "smol"))]

use async_taskpool::{runtime::Spawner, TaskPool};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

/// What a subscriber wrote.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A test body, given the runtime's spawner.
type Body<F> = Box<dyn FnOnce(Arc<dyn Spawner>) -> F>;

/// Runs `body` on this thread (a current-thread runtime, or smol's executor driven by this
/// thread) under a plain-text subscriber filtered by `filter` (an env-filter line).
fn logged<F: std::future::Future<Output = ()>>(
    filter: &str,
    on: fn(Body<F>),
    body: impl FnOnce(Arc<dyn Spawner>) -> F + 'static,
) -> String {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || sink.clone()),
        )
        .with(filter.parse::<Targets>().unwrap());
    tracing::subscriber::with_default(subscriber, || on(Box::new(body)));
    capture.text()
}

#[cfg(feature = "tokio")]
fn tokio_current_thread<F: std::future::Future<Output = ()>>(body: Body<F>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sp = async_taskpool::runtime::TokioSpawner::from_handle(rt.handle().clone());
    rt.block_on(body(Arc::new(sp)));
}

#[cfg(feature = "smol")]
fn smol_own_executor<F: std::future::Future<Output = ()>>(body: Body<F>) {
    let ex = Arc::new(smol::Executor::new());
    let sp = async_taskpool::runtime::SmolSpawner::from_executor(ex.clone());
    smol::block_on(ex.run(body(Arc::new(sp))));
}

/// A loose task, a named one, a map item (with its group) and a callback: each user event
/// inside shows its task's span and fields.
async fn user_events_inside_tasks(sp: Arc<dyn Spawner>) {
    let pool = TaskPool::builder(sp).name("spans").build().unwrap();
    pool.exec(async {
        tracing::info!("hello from a task");
        // Across an await: entered again on each poll.
        futures::future::ready(()).await;
        tracing::info!("still in the task");
    })
    .await
    .unwrap();
    pool.build_task()
        .name("fetch")
        .on_end(|_| async { tracing::info!("in the callback") })
        .exec(async { tracing::info!("named") })
        .await
        .unwrap();
    let group = pool
        .build_group()
        .name("resize")
        .map([7], 1, |x| {
            tracing::info!("making item {x}");
            async move { tracing::info!("running item {x}") }
        })
        .unwrap();
    group.join().await.unwrap();
    tracing::info!("outside any task");
}

fn check_user_events(text: &str) {
    for expected in [
        "task{pool=spans id=0 name=spans_Task-0}: task_span: hello from a task",
        "task{pool=spans id=0 name=spans_Task-0}: task_span: still in the task",
        "task{pool=spans id=1 name=fetch}: task_span: named",
        "task{pool=spans id=1 name=fetch}: task_span: in the callback",
        "task{pool=spans id=2 name=spans_Task-2 group=resize}: task_span: making item 7",
        "task{pool=spans id=2 name=spans_Task-2 group=resize}: task_span: running item 7",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let outside = text
        .lines()
        .find(|l| l.contains("outside any task"))
        .unwrap();
    assert!(!outside.contains("task{"), "{outside}");
    // INFO is the usual filter: the per-task lines are DEBUG now.
    assert!(!text.contains("Started"), "{text}");
    assert!(!text.contains("Ended"), "{text}");
}

/// The README's line for the old behaviour: the per-task lines at DEBUG of their target.
fn check_old_behaviour(text: &str) {
    for expected in [
        "Started spans_Task-0",
        "Ended spans_Task-0",
        "Started fetch",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("spans initialized"),
        "only the per-task lines come back, not the crate's other DEBUG events:\n{text}"
    );
}

/// Filtering the task target out keeps the user's events and drops the span.
fn check_span_filtered_out(text: &str) {
    assert!(text.contains("hello from a task"), "{text}");
    assert!(!text.contains("task{"), "{text}");
}

#[cfg(feature = "tokio")]
mod tokio_current {
    use super::*;

    #[test]
    fn user_events_carry_the_task_span() {
        check_user_events(&logged(
            "info",
            tokio_current_thread,
            user_events_inside_tasks,
        ));
    }

    #[test]
    fn started_and_ended_come_back_with_the_documented_filter() {
        let text = logged(
            "info,async_taskpool::task=debug",
            tokio_current_thread,
            user_events_inside_tasks,
        );
        check_old_behaviour(&text);
    }

    #[test]
    fn the_span_can_be_filtered_out() {
        let text = logged(
            "info,async_taskpool::task=warn",
            tokio_current_thread,
            user_events_inside_tasks,
        );
        check_span_filtered_out(&text);
    }
}

#[cfg(feature = "smol")]
mod smol_own {
    use super::*;

    #[test]
    fn user_events_carry_the_task_span() {
        check_user_events(&logged("info", smol_own_executor, user_events_inside_tasks));
    }

    #[test]
    fn started_and_ended_come_back_with_the_documented_filter() {
        let text = logged(
            "info,async_taskpool::task=debug",
            smol_own_executor,
            user_events_inside_tasks,
        );
        check_old_behaviour(&text);
    }

    #[test]
    fn the_span_can_be_filtered_out() {
        let text = logged(
            "info,async_taskpool::task=warn",
            smol_own_executor,
            user_events_inside_tasks,
        );
        check_span_filtered_out(&text);
    }
}

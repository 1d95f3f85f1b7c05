//! The body of the `control_server_*` examples, the Rust counterpart of asyncio-taskpool's
//! `example_server.py`: a [`SimpleTaskPool`] of workers takes jobs from a queue, and a
//! [`ControlServer`] on 127.0.0.1:9999 lets you steer it while it runs, from another
//! terminal:
//!
//! ```text
//! cargo run --features cli --bin taskpool-ctl -- tcp 127.0.0.1 9999
//! workers> start 2          # two more workers
//! workers> stop 1           # the newest one goes; its job returns to the queue
//! workers> watch            # (as a subcommand: taskpool-ctl tcp 127.0.0.1 9999 watch)
//! ```
//!
//! asyncio-taskpool's client works too: `python -m asyncio_taskpool.control tcp 127.0.0.1 9999`.
//! Give another address as the first argument or in `TASKPOOL_CONTROL_ADDR`. When every job
//! is done, the workers are stopped, the pool is closed and the server stops. (Stop every
//! worker and the example waits for you to start new ones.)

use async_taskpool::control::ControlServer;
use async_taskpool::runtime::Spawner;
use async_taskpool::{current_task_id, SimpleTaskPool};
use event_listener::Event;
use std::collections::VecDeque;
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JOBS: u32 = 20;

/// The jobs still to do, shared by the workers.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<VecDeque<u32>>>);

impl Queue {
    fn pop(&self) -> Option<u32> {
        self.0.lock().unwrap().pop_front()
    }
    fn push_front(&self, job: u32) {
        self.0.lock().unwrap().push_front(job);
    }
}

/// Jobs done so far, and a way to wait for all of them.
#[derive(Clone, Default)]
struct Progress(Arc<(AtomicUsize, Event)>);

impl Progress {
    fn bump(&self) {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
        self.0 .1.notify(usize::MAX);
    }
    async fn wait_for(&self, n: usize) {
        while self.0 .0.load(Ordering::SeqCst) < n {
            let listener = self.0 .1.listen();
            if self.0 .0.load(Ordering::SeqCst) >= n {
                break;
            }
            listener.await;
        }
    }
}

/// Puts a job back at the front of the queue if its worker is stopped halfway through it.
struct Requeue {
    queue: Queue,
    job: Option<u32>,
}

impl Drop for Requeue {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            println!("job {job} goes back to the queue");
            self.queue.push_front(job);
        }
    }
}

/// A worker: takes jobs until the queue is empty. A job takes 0.2 to 1 s.
async fn worker(timer: impl Spawner, queue: Queue, progress: Progress) {
    let id = current_task_id().expect("`worker` runs as a pool task");
    while let Some(job) = queue.pop() {
        let mut guard = Requeue {
            queue: queue.clone(),
            job: Some(job),
        };
        timer
            .sleep(Duration::from_millis(200 * u64::from(job % 5 + 1)))
            .await;
        guard.job = None;
        println!("worker {id} did job {job}");
        progress.bump();
    }
}

pub async fn run<S: Spawner + Clone>(spawner: S) -> Result<(), Box<dyn Error + Send + Sync>> {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TASKPOOL_CONTROL_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:9999".to_owned());
    let queue = Queue::default();
    queue.0.lock().unwrap().extend(0..JOBS);
    let progress = Progress::default();

    let (q, p, timer) = (queue.clone(), progress.clone(), spawner.clone());
    let pool =
        SimpleTaskPool::builder(spawner, move || worker(timer.clone(), q.clone(), p.clone()))
            .name("workers")
            .func_name("worker")
            .build()?;
    let server = ControlServer::new(&pool).serve_tcp(addr.as_str())?;
    let at = server.local_addr().expect("a TCP server has an address");
    println!(
        "control server on {at}; steer the pool with: taskpool-ctl tcp {} {}",
        at.ip(),
        at.port()
    );

    println!("start(3) -> {}", pool.start(3)?.name());
    progress.wait_for(JOBS as usize).await;
    println!("all {JOBS} jobs done");

    pool.stop_all();
    pool.gather_and_close().await?;
    server.shutdown();
    println!("{} workers ended; server stopped", pool.num_ended());
    Ok(())
}

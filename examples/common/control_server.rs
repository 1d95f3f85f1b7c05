//! The body of the `control_server_*` examples, the Rust counterpart of asyncio-taskpool's
//! `example_server.py`: a [`SimpleTaskPool`] of workers takes jobs from a queue that a
//! producer keeps filling, and a [`ControlServer`] on 127.0.0.1:9999 lets you steer it while
//! it runs, from another terminal:
//!
//! ```text
//! cargo run --features cli --bin taskpool-ctl -- tcp 127.0.0.1 9999
//! workers> start 2          # two more workers
//! workers> stop 1           # the newest one goes; its job returns to the queue
//! workers> watch            # live stats until Ctrl-C (also: taskpool-ctl tcp 127.0.0.1 9999 watch)
//! ```
//!
//! asyncio-taskpool's client works too: `python -m asyncio_taskpool.control tcp 127.0.0.1 9999`.
//! Give another address as the first argument or in `TASKPOOL_CONTROL_ADDR`. It runs until
//! Ctrl-C, or for `--for SECONDS`; then the workers are stopped, the pool is closed and the
//! server stops.

use async_taskpool::control::ControlServer;
use async_taskpool::runtime::Spawner;
use async_taskpool::{current_task_id, PeriodicTask, SimpleTaskPool};
use event_listener::Event;
use std::collections::VecDeque;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn Error + Send + Sync>;

/// The jobs waiting, shared by the producer and the workers.
#[derive(Clone, Default)]
struct Queue(Arc<(Mutex<VecDeque<u32>>, Event)>);

impl Queue {
    fn push(&self, job: u32, front: bool) {
        let mut jobs = self.0 .0.lock().unwrap();
        if front {
            jobs.push_front(job);
        } else {
            jobs.push_back(job);
        }
        drop(jobs);
        self.0 .1.notify(1);
    }

    /// The next job, waiting for one if the queue is empty.
    async fn pop(&self) -> u32 {
        loop {
            if let Some(job) = self.0 .0.lock().unwrap().pop_front() {
                return job;
            }
            let listener = self.0 .1.listen();
            if let Some(job) = self.0 .0.lock().unwrap().pop_front() {
                return job;
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
            self.queue.push(job, true);
        }
    }
}

/// A worker: takes jobs for as long as it runs (until stopped). A job takes 0.2 to 1 s.
async fn worker(timer: impl Spawner, queue: Queue) {
    let id = current_task_id().expect("`worker` runs as a pool task");
    loop {
        let job = queue.pop().await;
        let mut guard = Requeue {
            queue: queue.clone(),
            job: Some(job),
        };
        timer
            .sleep(Duration::from_millis(200 * u64::from(job % 5 + 1)))
            .await;
        guard.job = None;
        println!("worker {id} did job {job}");
    }
}

/// What to serve and for how long.
pub struct Options {
    /// Where the control server listens, e.g. `127.0.0.1:9999`.
    pub addr: String,
    /// Stop after this long; `None`: until Ctrl-C.
    pub run_for: Option<Duration>,
}

impl Options {
    /// From the command line: `[ADDR] [--for SECONDS]`, the address also from
    /// `TASKPOOL_CONTROL_ADDR`.
    #[allow(dead_code)] // the tests build `Options` themselves
    pub fn from_args() -> Result<Self, BoxError> {
        let mut addr = std::env::var("TASKPOOL_CONTROL_ADDR").ok();
        let mut run_for = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--for" {
                let secs: f64 = args
                    .next()
                    .ok_or("--for needs a number of seconds")?
                    .parse()
                    .map_err(|e| format!("--for SECONDS: {e}"))?;
                run_for = Some(Duration::try_from_secs_f64(secs)?);
            } else {
                addr = Some(arg);
            }
        }
        Ok(Self {
            addr: addr.unwrap_or_else(|| "127.0.0.1:9999".to_owned()),
            run_for,
        })
    }
}

/// The example's `main`: serves as the command line says, until Ctrl-C or `--for` runs out.
#[allow(dead_code)] // the tests call `serve`
pub async fn run<S: Spawner + Clone>(spawner: S) -> Result<(), BoxError> {
    let options = Options::from_args()?;
    let stopped = Arc::new(Event::new());
    let ctrl_c = stopped.listen();
    let s = stopped.clone();
    ctrlc::set_handler(move || {
        s.notify(usize::MAX);
    })?;
    let timer = spawner.clone();
    let run_for = options.run_for;
    let stop = async move {
        match run_for {
            Some(d) => {
                futures::future::select(ctrl_c, timer.sleep(d)).await;
            }
            None => ctrl_c.await,
        }
    };
    serve(spawner, options, |_| {}, stop).await
}

/// Starts three workers and a producer, serves the pool on `options.addr` (telling
/// `listening` where), and when `stop` resolves, stops everything in order.
pub async fn serve<S: Spawner + Clone>(
    spawner: S,
    options: Options,
    listening: impl FnOnce(SocketAddr),
    stop: impl Future<Output = ()>,
) -> Result<(), BoxError> {
    let queue = Queue::default();
    let (q, timer) = (queue.clone(), spawner.clone());
    let pool = SimpleTaskPool::builder(spawner.clone(), move || worker(timer.clone(), q.clone()))
        .name("workers")
        .func_name("worker")
        .build()?;
    // A new job every 300 ms, for as long as the example runs.
    let (q, next) = (queue.clone(), Arc::new(AtomicU32::new(0)));
    let producer = PeriodicTask::spawn(spawner, Duration::from_millis(300), move || {
        q.push(next.fetch_add(1, Ordering::SeqCst), false);
        async {}
    })?;

    let server = ControlServer::new(&pool).serve_tcp(options.addr.as_str())?;
    let at = server.local_addr().expect("a TCP server has an address");
    println!(
        "control server on {at}; steer the pool with: taskpool-ctl tcp {} {}",
        at.ip(),
        at.port()
    );
    println!("start(3) -> {}", pool.start(3)?.name());
    match options.run_for {
        Some(d) => println!("running for {d:?} (or until Ctrl-C)"),
        None => println!("running until Ctrl-C"),
    }
    listening(at);
    stop.await;

    println!("stopping");
    producer.stop().await?;
    pool.stop_all();
    pool.gather_and_close().await?;
    server.shutdown();
    println!(
        "{} workers ended; {} jobs left in the queue; server stopped",
        pool.num_ended(),
        queue.0 .0.lock().unwrap().len()
    );
    Ok(())
}

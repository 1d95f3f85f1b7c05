//! The `prometheus` example's body, scraped over HTTP on 127.0.0.1: every metric of the
//! `metrics` feature is exported under its name, with the pool's labels.

#[path = "../examples/common/prometheus.rs"]
mod prometheus;

use async_taskpool::runtime::TokioSpawner;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A port free on 127.0.0.1 a moment ago (the exporter binds it by address).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET /metrics` with a plain HTTP/1.1 request: the status line and the body.
fn scrape(addr: SocketAddr) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn the_example_exports_every_metric_over_http() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = free_port();
    let body = rt.block_on(async {
        prometheus::install(addr).unwrap();
        let spawner = TokioSpawner::current();
        let pool = prometheus::pool(spawner.clone()).unwrap();
        prometheus::round(&pool, &spawner).await.unwrap();
        pool.join().await.unwrap();
        let (status, body) = tokio::task::spawn_blocking(move || scrape(addr))
            .await
            .unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        body
    });
    // Every name, with its labels.
    for name in [
        "taskpool_tasks_submitted_total{pool=\"crawler\",kind=\"map\"} 20",
        "taskpool_tasks_started_total{pool=\"crawler\",kind=\"map\"} 20",
        "taskpool_tasks_ended_total{pool=\"crawler\",kind=\"map\",outcome=\"ok\"} 18",
        "taskpool_tasks_ended_total{pool=\"crawler\",kind=\"map\",outcome=\"panicked\"} 2",
        "taskpool_tasks_ended_total{pool=\"crawler\",kind=\"task\",outcome=\"timed_out\"} 1",
        "taskpool_tasks_rejected_total{pool=\"crawler\",reason=\"full\"}",
        "taskpool_tasks_running{pool=\"crawler\"} 0",
        "taskpool_tasks_queued{pool=\"crawler\"} 0",
        "taskpool_limit{pool=\"crawler\"} 4",
        "taskpool_queue_wait_seconds_bucket{pool=\"crawler\",le=\"0.001\"}",
        "taskpool_queue_wait_seconds_count{pool=\"crawler\"}",
        "taskpool_run_seconds_bucket{pool=\"crawler\",le=\"+Inf\"}",
        "taskpool_run_seconds_sum{pool=\"crawler\"}",
        "# HELP taskpool_tasks_ended_total Tasks that ended, by outcome",
        "# TYPE taskpool_run_seconds histogram",
    ] {
        assert!(body.contains(name), "missing {name:?} in:\n{body}");
    }
    // Task ids and group names are never labels.
    assert!(!body.contains("task_id"), "{body}");
    assert!(!body.contains("map-group"), "{body}");
}

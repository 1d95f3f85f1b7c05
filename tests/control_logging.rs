//! The control server's tracing events: connected, command, error, disconnected, per session.
//! Sessions run on their own threads, so this binary installs a global subscriber.
#![cfg(all(feature = "control", feature = "smol"))]

use async_taskpool::control::protocol::Command;
use async_taskpool::control::{ControlClient, ControlServer};
use async_taskpool::{runtime::SmolSpawner, TaskPool};

#[path = "common/log_capture.rs"]
mod log_capture;
use log_capture::Capture;

#[test]
fn sessions_are_logged() {
    let (subscriber, capture) = Capture::subscriber();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let pool = TaskPool::builder(SmolSpawner::global())
        .name("logged")
        .build()
        .unwrap();
    let server = ControlServer::new(&pool).serve_tcp("127.0.0.1:0").unwrap();
    let mut client = ControlClient::connect_tcp(server.local_addr().unwrap(), None).unwrap();
    assert!(!client.request(&Command::Lock).unwrap().is_error());
    assert!(client
        .request(&Command::Cancel { ids: vec![7] })
        .unwrap()
        .is_error());
    drop(client);
    // Let the session see the client leave before stopping the server (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.num_sessions() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.shutdown(); // joins the session threads: every event is written by now

    // Refused tokens are logged with the peer and how many it has had (item 6).
    let guarded = ControlServer::new(&pool)
        .token("s3cret")
        .refusal_delay(std::time::Duration::from_millis(1))
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    for _ in 0..2 {
        let refused = ControlClient::connect_tcp(guarded.local_addr().unwrap(), Some("guess"));
        assert!(refused.is_err());
    }
    guarded.shutdown();

    let text = capture.text();
    for expected in [
        "control server listening",
        "control session connected",
        "control command",
        "command=\"lock\"",
        "control command failed: pool `logged` has no task with id 7",
        "kind=\"task_not_found\"",
        "control session disconnected",
        "reason=\"closed by client\"",
        "control server stopped",
        "control client refused: wrong token",
        "peer=127.0.0.1:",
        "refusals=2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        text.contains("session=0"),
        "events carry the session id:\n{text}"
    );
}

//! The control server's tracing events: connected, command, error, disconnected, per session.
//! Sessions run on their own threads, so this binary installs a global subscriber.
#![cfg(all(feature = "control", feature = "smol"))]

use async_taskpool::control::protocol::Command;
use async_taskpool::control::{ControlClient, ControlServer};
use async_taskpool::{runtime::SmolSpawner, TaskPool};
use std::io::Write;
use std::sync::{Arc, Mutex};

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

#[test]
fn sessions_are_logged() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
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

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        text.contains("session=0"),
        "events carry the session id:\n{text}"
    );
}

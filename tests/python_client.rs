//! asyncio-taskpool's own Python client (`python -m asyncio_taskpool.control`) steering our
//! server, over TCP and a Unix socket.
//!
//! These tests need that client, so they are `#[ignore]`d (a plain `cargo test` lists them as
//! ignored, with the reason) and run with `--ignored`, where a missing client fails them.
//! `.ci/run` installs the client in a virtualenv and runs them; by hand:
//!
//! ```text
//! python3 -m venv target/python-client
//! target/python-client/bin/pip install asyncio-taskpool==1.2.0
//! TASKPOOL_PYTHON=target/python-client/bin/python \
//!     cargo test --all-features --test python_client -- --ignored
//! ```
#![cfg(all(feature = "control", feature = "tokio"))]

use async_taskpool::control::ControlServer;
use async_taskpool::{runtime::TokioSpawner, SimpleTaskPool};
use std::io::Write;
use std::process::{Command, Stdio};

/// The Python interpreter that has the client: `$TASKPOOL_PYTHON`, or `python3`. Fails the
/// test, saying how to install it, if the client cannot be imported.
fn python() -> String {
    let python = std::env::var("TASKPOOL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import asyncio_taskpool.control"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{python} -c 'import asyncio_taskpool.control'` failed: install the client with \
         `{python} -m pip install asyncio-taskpool==1.2.0` (or in a virtualenv, and point \
         TASKPOOL_PYTHON at its python)"
    );
    python
}

/// Runs the Python client with `input` piped to its prompt; returns its stdout.
fn python_client(args: &[&str], input: &str) -> String {
    let mut child = Command::new(python())
        .args(["-m", "asyncio_taskpool.control"])
        .args(args)
        .env("COLUMNS", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The commands an operator types, and the replies the Python client must print.
const SESSION: &str =
    "start 2\npool-size\npool-size 5\nis-locked\nlock\nis-locked\nstart 1\nunlock\n\
    get-group-ids start-group-0\ngroup-settings start-group-0 -p -2 -w 3\n\
    pool-settings --loose-weight 0\ncancel 99\nbogus\nfunc-name\nstart 1000000000000\npool-size 0\n\
    stop 1\nstop-all\nnum-cancelled\nexit\n";

fn check(stdout: &str) {
    println!("{stdout}");
    // The client prints "Connected to <first reply>", then "> <reply>" per command.
    assert!(stdout.contains("Connected to py-workers"), "{stdout}");
    let replies: Vec<&str> = stdout
        .split("> ")
        .skip(1)
        .map(|r| r.trim_end_matches('\n'))
        .collect();
    let expected_prefixes = [
        "start-group-0",
        "inf",
        "5",
        "False",
        "ok",
        "True",
        "error: pool `py-workers` is locked",
        "ok",
        "{0, 1}",
        "          name: start-group-0\n      priority: -2\n        weight: 3\nnum_concurrent: pool",
        "error: `pool-settings --loose-weight` (JSON `loose_weight`) must be at least 1: give a whole number from 1 to 1000",
        "error: pool `py-workers` has no task with id 99 [task_not_found]",
        "error: unknown command `bogus`",
        "work",
        "error: `start 1000000000000` asks for more than this server takes in one request",
        "error: a pool size must be at least 1: give a whole number from 1 to 1000000, or `inf`",
        "[1]",
        "[0]",
    ];
    assert!(replies.len() >= expected_prefixes.len(), "{stdout}");
    for (got, want) in replies.iter().zip(expected_prefixes) {
        assert!(
            got.starts_with(want),
            "expected {want:?}, got {got:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("Disconnected from control server."),
        "{stdout}"
    );
}

fn pool(rt: &tokio::runtime::Runtime) -> SimpleTaskPool {
    SimpleTaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()), || {
        std::future::pending::<()>()
    })
    .name("py-workers")
    .build()
    .unwrap()
}

#[test]
#[ignore = "needs asyncio-taskpool's Python client: see tests/python_client.rs"]
fn python_client_over_tcp() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = pool(&rt);
    let server = ControlServer::new(&pool).serve_tcp("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    check(&python_client(&["tcp", "127.0.0.1", &port], SESSION));
    assert_eq!(pool.limit(), Some(5));
}

#[cfg(unix)]
#[test]
#[ignore = "needs asyncio-taskpool's Python client: see tests/python_client.rs"]
fn python_client_over_a_unix_socket() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = pool(&rt);
    let dir = std::env::temp_dir().join(format!("tpc-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctl.sock");
    let server = ControlServer::new(&pool).serve_unix(&path).unwrap();
    check(&python_client(&["unix", path.to_str().unwrap()], SESSION));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

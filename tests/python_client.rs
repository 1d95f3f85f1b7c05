//! asyncio-taskpool's own Python client (`python -m asyncio_taskpool.control`) steering our
//! server, over TCP and a Unix socket. Skipped, with a note, where Python or the package is
//! missing; `.ci/run` installs it (`pip install asyncio-taskpool==1.2.0`).
#![cfg(all(feature = "control", feature = "tokio"))]

use async_taskpool::control::ControlServer;
use async_taskpool::{runtime::TokioSpawner, SimpleTaskPool};
use std::io::Write;
use std::process::{Command, Stdio};

fn python_client_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import asyncio_taskpool.control"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "note: skipping: `python3 -c 'import asyncio_taskpool'` failed; \
             install it with `python3 -m pip install asyncio-taskpool==1.2.0`"
        );
    }
    ok
}

/// Runs the Python client with `input` piped to its prompt; returns its stdout.
fn python_client(args: &[&str], input: &str) -> String {
    let mut child = Command::new("python3")
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
const SESSION: &str = "start 2\npool-size\npool-size 5\nis-locked\nlock\nis-locked\nstart 1\nunlock\n\
    get-group-ids start-group-0\ncancel 99\nbogus\nfunc-name\nstop 1\nstop-all\nnum-cancelled\nexit\n";

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
        "error: pool `py-workers` has no task with id 99 [task_not_found]",
        "error: unknown command `bogus`",
        "work",
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
fn python_client_over_tcp() {
    if !python_client_available() {
        return;
    }
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
fn python_client_over_a_unix_socket() {
    if !python_client_available() {
        return;
    }
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

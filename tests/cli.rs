//! `taskpool-ctl` run as a process against a live server: one-shot mode, a piped interactive
//! session, `watch`, and the messages for a missing server, a wrong path or a refused token.
#![cfg(all(feature = "cli", feature = "tokio"))]

use async_taskpool::control::{ControlServer, ServerHandle};
use async_taskpool::{runtime::TokioSpawner, SimpleTaskPool};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const CTL: &str = env!("CARGO_BIN_EXE_taskpool-ctl");

/// A SimpleTaskPool of workers that run until stopped, with a runtime to run them on.
struct Fixture {
    _rt: tokio::runtime::Runtime,
    pool: SimpleTaskPool,
}

fn workers() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = SimpleTaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()), || {
        std::future::pending::<()>()
    })
    .name("workers")
    .build()
    .unwrap();
    Fixture { _rt: rt, pool }
}

fn tcp_args(server: &ServerHandle) -> Vec<String> {
    let addr = server.local_addr().unwrap();
    vec!["tcp".into(), addr.ip().to_string(), addr.port().to_string()]
}

fn ctl(args: &[String], extra: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(CTL)
        .args(args)
        .args(extra)
        .env_remove("TASKPOOL_CTL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn one_shot_prints_the_reply_and_fails_on_error_replies() {
    let f = workers();
    let server = ControlServer::new(&f.pool)
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let conn = tcp_args(&server);
    let run = |cmd: &[&str]| {
        // One-shot commands need no `--` (item 10); `--json -- ...` below still works.
        ctl(&conn, cmd, "")
    };
    let out = run(&["start", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "start-group-0\n");
    assert_eq!(text(&run(&["pool-size", "3"]).stdout), "3\n");
    assert_eq!(text(&run(&["is-locked"]).stdout), "false\n");
    assert_eq!(f.pool.limit(), Some(3));

    let out = run(&["stop", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("NUM must be a whole number"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["cancel", "99"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: pool `workers` has no task with id 99 [task_not_found]"),
        "{err}"
    );
    let out = run(&["bogus"]);
    assert_eq!(out.status.code(), Some(1));

    let out = ctl(&conn, &["--json", "--", "func-name"], "");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply, serde_json::json!({"status":"ok","value":"work"}));
    let out = ctl(&conn, &["--json", "--", "cancel", "99"], "");
    assert_eq!(out.status.code(), Some(1));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["kind"], "task_not_found");

    let out = run(&["help", "stop"]);
    assert!(text(&out.stdout).contains("how many tasks to stop"));
    let out = run(&["stats"]);
    assert!(
        text(&out.stdout).contains("name: workers"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&run(&["stop-all"]).stdout), "[1, 0]\n");
    // A cancelled running task ends at its next poll, on the runtime's thread: wait for that
    // (the tasks never end by themselves, so `join` returns only if both were cancelled).
    let joined = f._rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(30), f.pool.join()).await
    });
    assert!(matches!(joined, Ok(Ok(()))), "stop-all left tasks running");
    assert_eq!(f.pool.num_running() + f.pool.num_queued(), 0);
}

#[test]
fn piped_interactive_session() {
    let f = workers();
    let server = ControlServer::new(&f.pool)
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let out = ctl(
        &tcp_args(&server),
        &[],
        "help\nstart 1\n\n   \npool-size 4\nbogus\nstop -h\nstop 1\nexit\nis-locked\n",
    );
    // An error reply (`bogus`) makes piped input exit 1, as one-shot mode does.
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("Connected to workers (SimpleTaskPool"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: unknown command `bogus`"),
        "{stderr}"
    );
    assert!(stderr.contains("Disconnected."), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("commands"), "{stdout}");
    assert!(stdout.contains("stop NUM"));
    assert!(
        !stdout.contains("apply JOB"),
        "TaskPool commands are not listed for a SimpleTaskPool"
    );
    assert!(lines.contains(&"start-group-0"), "{stdout}");
    assert!(lines.contains(&"4"), "{stdout}");
    assert!(stdout.contains("usage: stop NUM"), "{stdout}");
    assert_eq!(
        lines.last(),
        Some(&"[0]"),
        "nothing runs after `exit`: {stdout}"
    );
    assert_eq!(f.pool.limit(), Some(4));
    // Without an error reply, piped input exits 0.
    let out = ctl(
        &tcp_args(&server),
        &[],
        "pool-size inf
pool-size
stats
",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // No limit is spelled `inf` everywhere.
    assert!(stdout.starts_with("inf\ninf\n"), "{stdout}");
    assert!(stdout.contains("limit: inf"), "{stdout}");
}

#[test]
fn piped_session_on_a_task_pool_lists_its_commands() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = async_taskpool::TaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()))
        .name("jobs")
        .build()
        .unwrap();
    let server = ControlServer::new(&pool)
        .register("tick", |(): ()| async {})
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let out = ctl(&tcp_args(&server), &[], "help\nstart 1\nlock\napply tick\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("apply JOB") && !stdout.contains("stop NUM"),
        "{stdout}"
    );
    assert!(stderr.contains("[unsupported]"), "{stderr}");
    assert!(stderr.contains("[locked]"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn unix_socket_one_shot_and_watch() {
    let f = workers();
    let dir = std::env::temp_dir().join(format!("tpc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctl.sock");
    let server = ControlServer::new(&f.pool).serve_unix(&path).unwrap();
    let conn = vec!["unix".to_owned(), path.display().to_string()];
    f.pool.start(2).unwrap();
    let out = ctl(&conn, &["--", "num-queued"], "");
    assert_eq!(text(&out.stdout), "0\n", "{}", text(&out.stderr));

    let out = ctl(&conn, &["watch", "--count", "3", "--interval", "0.05"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for l in lines {
        assert!(l.starts_with("workers  running "), "{l}");
        assert!(l.contains("queued 0") && l.contains("limit inf"), "{l}");
    }
    let out = ctl(&conn, &["watch", "--count", "1", "stats"], "");
    assert_eq!(out.status.code(), Some(2), "watch takes no command");
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clear_messages_when_the_server_cannot_be_reached() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = ctl(
        &["tcp".into(), "127.0.0.1".into(), port.to_string()],
        &["--", "stats"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "no control server is listening at 127.0.0.1:{port}"
        )),
        "{}",
        text(&out.stderr)
    );
    let missing: PathBuf = std::env::temp_dir().join("tpc-no-such-dir/ctl.sock");
    let out = ctl(&["unix".into(), missing.display().to_string()], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no socket at"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&["unix".into(), CTL.into()], &[], "");
    assert!(
        text(&out.stderr).contains("is not a socket"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn token_is_sent_and_a_refused_token_is_explained() {
    let f = workers();
    let server = ControlServer::new(&f.pool)
        .token("s3cret")
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let conn = tcp_args(&server);
    let out = ctl(&conn, &["--", "is-locked"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("requires a token") && err.contains("--token"),
        "{err}"
    );
    let out = ctl(&conn, &["--token", "guess", "is-locked"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the token was refused"));
    let out = ctl(&conn, &["--token", "s3cret", "--", "is-locked"], "");
    assert_eq!(text(&out.stdout), "false\n", "{}", text(&out.stderr));
    let out = Command::new(CTL)
        .args(&conn)
        .args(["--", "is-locked"])
        .env("TASKPOOL_CTL_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "false\n");
}

#[test]
fn custom_commands_from_the_command_line() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = async_taskpool::TaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()))
        .name("mailer")
        .build()
        .unwrap();
    let server = ControlServer::new(&pool)
        .command(
            "queue-stats",
            "Jobs waiting per queue.",
            |args: serde_json::Value| async move {
                match args["queue"].as_str() {
                    Some(q) => Ok(serde_json::json!({ "queue": q, "waiting": 3 })),
                    None => Err("give the queue: queue-stats {\"queue\": NAME}".to_owned()),
                }
            },
        )
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let conn = tcp_args(&server);
    let out = ctl(&conn, &["--", "queue-stats", r#"{"queue": "mail"}"#], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"queue\":\"mail\",\"waiting\":3}\n");
    let out = ctl(&conn, &["--", "queue-stats"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("give the queue")
            && text(&out.stderr).contains("[command_failed]"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&conn, &[], "help\nhelp queue-stats\n");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("commands of this program:"), "{stdout}");
    assert!(stdout.contains("queue-stats [ARGS_JSON]"), "{stdout}");
    assert!(
        stdout.contains("usage: queue-stats [ARGS_JSON]"),
        "{stdout}"
    );
}

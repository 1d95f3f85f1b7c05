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

#[cfg(unix)]
#[path = "common/log_capture.rs"]
mod log_capture;

/// The interactive prompt, driven through a real pseudo-terminal as a person would: Ctrl-C,
/// Ctrl-D, `watch`, and a server that goes away.
#[cfg(unix)]
mod at_the_prompt {
    use super::*;
    use rexpect::process::WaitStatus;
    use rexpect::session::PtySession;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use crate::log_capture;

    /// The server's log, to know when a command has reached it (the prompt cannot tell).
    fn log() -> &'static log_capture::Capture {
        static LOG: OnceLock<log_capture::Capture> = OnceLock::new();
        LOG.get_or_init(|| {
            let (subscriber, capture) = log_capture::Capture::subscriber();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            capture
        })
    }

    /// Waits (bounded) until the server has logged `needle` `n` times.
    fn logged(needle: &str, n: usize) {
        let until = Instant::now() + Duration::from_secs(20);
        while log().text().matches(needle).count() < n {
            assert!(Instant::now() < until, "never logged {needle:?} x{n}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn spawn(args: &[String]) -> PtySession {
        let mut cmd = Command::new(CTL);
        cmd.args(args)
            .env("TERM", "xterm")
            .env_remove("TASKPOOL_CTL_TOKEN");
        rexpect::session::spawn_command(cmd, Some(30_000)).unwrap()
    }

    fn exit_code(p: &PtySession) -> Option<i32> {
        match p.process().wait().unwrap() {
            WaitStatus::Exited(_, code) => Some(code),
            _ => None,
        }
    }

    /// Two workers that run until stopped.
    fn running_workers() -> Fixture {
        let f = workers();
        f.pool.start(2).unwrap();
        f
    }

    #[test]
    fn ctrl_c_abandons_a_waiting_command_and_ctrl_d_leaves() {
        let f = running_workers();
        let server = ControlServer::new(&f.pool)
            .serve_tcp("127.0.0.1:0")
            .unwrap();
        let mut p = spawn(&tcp_args(&server));
        p.exp_string("workers> ").unwrap();
        let before = log().text().matches("command=\"until-closed\"").count();
        p.send_line("until-closed").unwrap();
        logged("command=\"until-closed\"", before + 1);
        p.send_control('c').unwrap();
        p.exp_string("interrupted: no longer waiting for `until-closed`")
            .unwrap();
        p.exp_string("workers> ").unwrap();
        // The prompt works again, on a fresh session.
        p.send_line("num-running").unwrap();
        p.exp_string("2\r\n").unwrap();
        // gather-and-close waits for workers that never end: Ctrl-C gets out of it too,
        // leaving the pool locked (not closed), as documented.
        let before = log().text().matches("command=\"gather-and-close\"").count();
        p.send_line("gather-and-close").unwrap();
        logged("command=\"gather-and-close\"", before + 1);
        p.send_control('c').unwrap();
        p.exp_string("interrupted").unwrap();
        p.exp_string("workers> ").unwrap();
        p.send_line("is-locked").unwrap();
        p.exp_string("true\r\n").unwrap();
        assert!(!f.pool.is_closed());
        // Ctrl-D at an empty prompt leaves.
        p.exp_string("workers> ").unwrap();
        p.send_control('d').unwrap();
        p.exp_string("Disconnected.").unwrap();
        p.exp_eof().unwrap();
        assert_eq!(exit_code(&p), Some(0));
    }

    #[test]
    fn watch_runs_at_the_prompt_until_ctrl_c() {
        let f = running_workers();
        let server = ControlServer::new(&f.pool)
            .serve_tcp("127.0.0.1:0")
            .unwrap();
        let mut p = spawn(&tcp_args(&server));
        p.exp_string("workers> ").unwrap();
        p.send_line("watch --interval 0.1").unwrap();
        p.exp_string("workers  running 2  queued 0").unwrap();
        p.exp_string("limit inf").unwrap();
        p.send_control('c').unwrap();
        p.exp_string("workers> ").unwrap();
        p.send_line("help").unwrap();
        p.exp_string("watch [--count N] [--interval SECONDS]")
            .unwrap();
        p.send_line("exit").unwrap();
        p.exp_eof().unwrap();
        assert_eq!(exit_code(&p), Some(0));
    }

    #[test]
    fn watch_says_on_a_line_of_its_own_that_the_server_went_away() {
        let f = running_workers();
        let server = ControlServer::new(&f.pool)
            .serve_tcp("127.0.0.1:0")
            .unwrap();
        let mut args = tcp_args(&server);
        args.extend(["watch".into(), "--interval".into(), "0.1".into()]);
        let mut p = spawn(&args);
        p.exp_string("limit inf").unwrap();
        server.shutdown();
        // The status line is ended before the error: never `limit inferror: ...`.
        let (before, _) = p.exp_regex("error: [^\r\n]*shutting down").unwrap();
        assert!(
            before.ends_with('\n'),
            "error glued to the status line: {before:?}"
        );
        p.exp_string("taskpool-ctl: the server closed the connection")
            .unwrap();
        p.exp_eof().unwrap();
        assert_eq!(exit_code(&p), Some(2));
    }

    #[test]
    fn a_closed_connection_is_said_plainly_and_ends_the_prompt() {
        let f = running_workers();
        let server = ControlServer::new(&f.pool)
            .serve_tcp("127.0.0.1:0")
            .unwrap();
        let mut p = spawn(&tcp_args(&server));
        p.exp_string("workers> ").unwrap();
        server.shutdown();
        p.send_line("stats").unwrap();
        p.exp_string("taskpool-ctl: the server closed the connection")
            .unwrap();
        let rest = p.exp_eof().unwrap();
        assert!(!rest.contains("os error"), "{rest}");
        assert_eq!(exit_code(&p), Some(2));
    }
}

#[test]
fn help_apply_lists_the_jobs_and_their_arguments() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = async_taskpool::TaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()))
        .name("crawler")
        .build()
        .unwrap();
    let server = ControlServer::new(&pool)
        .register("fetch", |url: String| async move { url.len() })
        .register("pair", |(a, b): (u32, u32)| async move { a + b })
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let out = ctl(&tcp_args(&server), &["help", "apply"], "");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("jobs (JOB: the JSON its argument takes):"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fetch") && stdout.contains("string"),
        "{stdout}"
    );
    assert!(stdout.contains("[integer >= 0, integer >= 0]"), "{stdout}");
    let out = ctl(&tcp_args(&server), &["help", "map"], "");
    assert!(
        text(&out.stdout).contains("each item: string"),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&tcp_args(&server), &["map", "fetch", r#"["/a", 4]"#], "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("does not fit its argument (string)"),
        "{stderr}"
    );
    assert!(!stderr.contains("alloc::"), "{stderr}");
}

#[cfg(unix)]
#[allow(dead_code)]
#[path = "../examples/common/control_server.rs"]
mod control_server;

/// The README's operator session, replayed as printed against the `control_server_*`
/// examples' body through a real terminal (the port is the only difference).
#[cfg(unix)]
mod readme {
    use super::*;
    use async_taskpool::runtime::TokioSpawner;

    use crate::control_server;

    /// Removes terminal control sequences (`ESC [ ... letter`) and carriage returns.
    fn plain(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' if chars.peek() == Some(&'[') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                '\r' => {}
                c => out.push(c),
            }
        }
        out
    }

    /// The README's session: `(command, expected output lines)` after the first line.
    fn session() -> (String, Vec<(String, Vec<String>)>) {
        let readme = include_str!("../README.md");
        let start = readme
            .find("```text\n$ taskpool-ctl tcp 127.0.0.1 9999\n")
            .expect("the README's operator session");
        let block = &readme[start..];
        let block = &block[block.find('\n').unwrap() + 1..];
        let block = &block[..block.find("```").unwrap()];
        let mut lines = block.lines().skip(1);
        let connected = lines.next().unwrap().to_owned();
        let mut steps: Vec<(String, Vec<String>)> = Vec::new();
        for line in lines {
            match line.strip_prefix("workers> ") {
                Some(cmd) => steps.push((cmd.to_owned(), Vec::new())),
                None => steps.last_mut().unwrap().1.push(line.to_owned()),
            }
        }
        (connected, steps)
    }

    #[test]
    fn the_operator_session_works_as_printed() {
        let (connected, steps) = session();
        assert!(steps.len() >= 6, "{steps:?}");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        let example = rt.spawn(control_server::serve(
            TokioSpawner::from_handle(rt.handle().clone()),
            control_server::Options {
                addr: "127.0.0.1:0".into(),
                run_for: None,
            },
            move |addr| addr_tx.send(addr).unwrap(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let addr = addr_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap();
        let mut cmd = Command::new(CTL);
        cmd.args(["tcp", "127.0.0.1", &addr.port().to_string()])
            .env("TERM", "xterm")
            .env_remove("TASKPOOL_CTL_TOKEN");
        let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
        let first = plain(&p.exp_string("workers> ").unwrap());
        assert_eq!(first.trim_end(), connected);
        for (command, expected) in steps {
            p.send_line(&command).unwrap();
            let got = if command == "exit" {
                p.exp_eof().unwrap()
            } else {
                p.exp_string("workers> ").unwrap()
            };
            let got = plain(&got);
            // The first line is the editor echoing the command.
            let lines: Vec<&str> = got.lines().skip(1).map(str::trim_end).collect();
            assert_eq!(lines, expected, "`{command}` printed:\n{got}");
        }
        stop_tx.send(()).unwrap();
        rt.block_on(example).unwrap().unwrap();
    }
}

/// `group-settings` and `pool-settings` typed as an operator would: shown and changed in one
/// shot, negative priorities without `--`, errors with what to type and exit 1, the help.
#[test]
fn scheduling_settings_from_the_command_line() {
    let f = workers();
    let server = ControlServer::new(&f.pool)
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let conn = tcp_args(&server);
    let run = |cmd: &[&str]| ctl(&conn, cmd, "");
    let ok = |cmd: &[&str]| {
        let out = run(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(ok(&["start", "2"]), "start-group-0\n");
    assert_eq!(
        ok(&["group-settings", "start-group-0"]),
        "          name: start-group-0\n      priority: 0\n        weight: 1\nnum_concurrent: pool\n    rate_limit: inf\n"
    );
    assert_eq!(
        ok(&[
            "group-settings",
            "start-group-0",
            "--priority",
            "-5",
            "-w",
            "3",
            "-n",
            "4"
        ]),
        "          name: start-group-0\n      priority: -5\n        weight: 3\nnum_concurrent: 4\n    rate_limit: inf\n"
    );
    let groups = ok(&["groups"]);
    assert!(
        groups.contains("start-group-0  (priority -5, weight 3, num_concurrent 4)"),
        "{groups}"
    );
    let pool = f.pool.as_task_pool();
    let g = pool.group_stats("start-group-0").unwrap();
    assert_eq!((g.priority, g.weight), (-5, 3));
    assert_eq!(g.num_concurrent, async_taskpool::Concurrency::AtMost(4));

    assert_eq!(
        ok(&["pool-settings"]),
        "       limit: inf\nloose_weight: 1\n  rate_limit: inf\n    adaptive: off\n"
    );
    assert_eq!(
        ok(&["pool-settings", "--loose-weight", "2"]),
        "       limit: inf\nloose_weight: 2\n  rate_limit: inf\n    adaptive: off\n"
    );
    assert_eq!(pool.loose_weight(), 2);
    let stats = ok(&["stats"]);
    assert!(stats.contains("loose_weight: 2"), "{stats}");
    // The pool-wide rate limit, set and lifted.
    let shown = ok(&["pool-settings", "--rate", "10/s", "--burst", "2"]);
    assert!(shown.contains("\n  rate_limit: 10/s, burst 2\n"), "{shown}");
    assert_eq!(
        pool.rate_limit(),
        Some(
            async_taskpool::policy::Quota::per_second(10)
                .unwrap()
                .burst(2)
                .unwrap()
        )
    );
    assert!(ok(&["pool-settings", "--rate", "inf"]).contains("rate_limit: inf"));
    assert_eq!(pool.rate_limit(), None);

    // Refused: exit 1, the reason and what to type on stderr, nothing changed.
    for (cmd, says) in [
        (
            &["group-settings", "nope", "-w", "2"][..],
            "[group_not_found]",
        ),
        (
            &["group-settings", "start-group-0", "-w", "0"],
            "from 1 to 1000",
        ),
        (
            &["group-settings", "start-group-0", "-w", "0"],
            "[invalid_limit]",
        ),
        (
            &["group-settings", "start-group-0", "-w", "5000"],
            "[over_limit]",
        ),
        (
            &["group-settings", "start-group-0", "-p", "9", "-n", "0"],
            "or `pool` (JSON `null`) to follow the pool's limit",
        ),
        (
            &["group-settings", "start-group-0", "-n", "many"],
            "or `pool`",
        ),
        (&["group-settings"], "missing argument NAME"),
        (&["pool-settings", "-w", "0"], "[invalid_limit]"),
    ] {
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{cmd:?}: {err}");
    }
    let g = pool.group_stats("start-group-0").unwrap();
    assert_eq!(
        (g.priority, g.weight),
        (-5, 3),
        "a refused command changed the group"
    );

    // `pool` follows the pool's limit again; `--json` prints the reply as sent.
    let out = ctl(
        &conn,
        &["--json", "group-settings", "start-group-0", "-n", "pool"],
        "",
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"status": "ok", "value": {"name": "start-group-0", "priority": -5,
            "weight": 3, "num_concurrent": null, "rate_limit": null}})
    );

    // The help, in one shot and listed with the others.
    let help = ok(&["help", "group-settings"]);
    for says in [
        "usage: group-settings NAME [--priority P] [--weight W] [--num-concurrent N|pool]",
        "--priority, -p P",
        "--weight, -w W",
        "1000 unless configured",
        "`pool` to follow the pool's limit",
    ] {
        assert!(help.contains(says), "{says:?} not in:\n{help}");
    }
    assert_eq!(ok(&["group-settings", "-h"]), help);
    let help = ok(&["help", "pool-settings"]);
    assert!(
        help.contains("usage: pool-settings [--loose-weight W]") && help.contains("`pool-size`"),
        "{help}"
    );
    let all = ok(&["help"]);
    assert!(
        all.contains("group-settings NAME") && all.contains("pool-settings [--loose-weight W]"),
        "{all}"
    );
    let usage = text(&Command::new(CTL).arg("--help").output().unwrap().stdout);
    assert!(usage.contains("group-settings pages -w 3 -p 1"), "{usage}");
    f.pool.stop_all();
}

/// A group's rate limit and the adaptive limit typed as an operator would: `--rate N/PERIOD`,
/// `--burst`, `inf`; `--adaptive-min`/`--adaptive-max`; shown in `groups`, `pool-settings`
/// and `stats`; bad values refused with what to type and exit 1; the help.
#[test]
fn rate_limits_and_the_adaptive_limit_from_the_command_line() {
    use async_taskpool::policy::{Aimd, Quota};
    use async_taskpool::TaskPool;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = TaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()))
        .name("crawler")
        .adaptive_limit(Aimd::builder(1, 100).initial(10).build().unwrap())
        .build()
        .unwrap();
    let _pages = pool
        .build_group()
        .name("pages")
        .map(0..3, 1, |_| std::future::pending::<()>())
        .unwrap();
    let server = ControlServer::new(&pool).serve_tcp("127.0.0.1:0").unwrap();
    let conn = tcp_args(&server);
    let run = |cmd: &[&str]| ctl(&conn, cmd, "");
    let ok = |cmd: &[&str]| {
        let out = run(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let shown = ok(&["group-settings", "pages", "--rate", "10/s", "--burst", "2"]);
    assert!(
        shown.ends_with("\n    rate_limit: 10/s, burst 2\n"),
        "{shown}"
    );
    let ten = Quota::per_second(10).unwrap().burst(2).unwrap();
    assert_eq!(pool.group_stats("pages").unwrap().rate_limit, Some(ten));
    let groups = ok(&["groups"]);
    assert!(
        groups.contains("pages  (priority 0, weight 1, num_concurrent 1, rate 10/s, burst 2)"),
        "{groups}"
    );
    let shown = ok(&["group-settings", "pages", "-r", "3/2.5s"]);
    assert!(shown.ends_with("rate_limit: 72/min, burst 3\n"), "{shown}");
    let shown = ok(&["group-settings", "pages", "-r", "inf"]);
    assert!(shown.ends_with("rate_limit: inf\n"), "{shown}");
    assert_eq!(pool.group_stats("pages").unwrap().rate_limit, None);

    assert_eq!(
        ok(&["pool-settings"]),
        "       limit: 10\nloose_weight: 1\n  rate_limit: inf\n    adaptive: aimd at 10 (bounds \
         1..=100; 0 samples, 0 overloads)\n"
    );
    let shown = ok(&["pool-settings", "--adaptive-max", "5"]);
    assert!(
        shown.starts_with("       limit: 5\n")
            && shown.contains("adaptive: aimd at 5 (bounds 1..=5;"),
        "{shown}"
    );
    assert_eq!(pool.limit(), Some(5));
    let stats = ok(&["stats"]);
    assert!(
        stats.contains("adaptive: aimd at 5 (bounds 1..=5;"),
        "{stats}"
    );

    for (cmd, says) in [
        (
            &["group-settings", "pages", "--rate", "0/s"][..],
            "[invalid_limit]",
        ),
        (
            &["group-settings", "pages", "--rate", "10/s", "-b", "0"],
            "[invalid_limit]",
        ),
        (
            &["group-settings", "pages", "--rate", "5000000000/s"],
            "from 1 to 1000000000",
        ),
        (
            &["group-settings", "pages", "--rate", "5000000000/s"],
            "[over_limit]",
        ),
        (
            &["group-settings", "pages", "--rate", "1/400day"],
            "365 days",
        ),
        (
            &["group-settings", "pages", "--rate", "10/fortnight"],
            "`30/min`",
        ),
        (&["group-settings", "pages", "--rate", "10"], "N/PERIOD"),
        (
            &["group-settings", "pages", "--burst", "3"],
            "goes with --rate",
        ),
        (&["group-settings", "pages", "--rate"], "needs a value"),
        (&["pool-settings", "--adaptive-min", "9"], "upper bound 5"),
        (&["pool-settings", "--adaptive-min", "9"], "[bad_request]"),
        (
            &[
                "pool-settings",
                "--adaptive-min",
                "9",
                "--adaptive-max",
                "3",
            ],
            "at most",
        ),
        (&["pool-settings", "--adaptive-max", "0"], "[invalid_limit]"),
        (
            &["pool-settings", "--adaptive-max", "2000000"],
            "[over_limit]",
        ),
    ] {
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{cmd:?}: {err}");
    }
    assert_eq!(pool.group_stats("pages").unwrap().rate_limit, None);
    assert_eq!(pool.adaptive().unwrap().max, 5);

    // `pool-size` replaces the adaptive limit with a fixed one; its bounds are gone with it.
    assert_eq!(ok(&["pool-size", "7"]), "7\n");
    assert!(ok(&["pool-settings"]).ends_with("adaptive: off\n"));
    let out = run(&["pool-settings", "--adaptive-max", "9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("[unsupported]"));

    let help = ok(&["help", "group-settings"]);
    for says in [
        "[--rate N/PERIOD|inf [--burst B]]",
        "--rate, -r N/PERIOD",
        "`30/min`",
        "--burst, -b B",
    ] {
        assert!(help.contains(says), "{says:?} not in:\n{help}");
    }
    let help = ok(&["help", "pool-settings"]);
    for says in [
        "--adaptive-min N",
        "--adaptive-max N",
        "`pool-size`, which turns an adaptive limit off",
    ] {
        assert!(help.contains(says), "{says:?} not in:\n{help}");
    }
    let usage = text(&Command::new(CTL).arg("--help").output().unwrap().stdout);
    assert!(
        usage.contains("group-settings pages --rate 10/s --burst 5"),
        "{usage}"
    );
    pool.cancel_group("pages").unwrap();
    drop(server);
}

/// The same typed at a piped prompt over a Unix socket.
#[cfg(unix)]
#[test]
fn scheduling_settings_at_a_piped_prompt_over_a_unix_socket() {
    let f = workers();
    let dir = std::env::temp_dir().join(format!("tpc-cli-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctl.sock");
    let server = ControlServer::new(&f.pool).serve_unix(&path).unwrap();
    let conn = vec!["unix".to_owned(), path.display().to_string()];
    let out = ctl(
        &conn,
        &[],
        "start 1\ngroup-settings start-group-0 -p 7 -w 2\npool-settings -w 4\n\
         group-settings start-group-0 -w 0\ngroup-settings start-group-0 --rate 30/min -b 2\n\
         group-settings start-group-0 --rate 30/fortnight\nexit\n",
    );
    // The refused weight makes piped input exit 1.
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("      priority: 7\n        weight: 2\nnum_concurrent: pool"),
        "{stdout}"
    );
    assert!(stdout.contains("loose_weight: 4"), "{stdout}");
    assert!(stderr.contains("[invalid_limit]"), "{stderr}");
    assert!(
        stdout.contains("    rate_limit: 30/min, burst 2"),
        "{stdout}"
    );
    assert!(
        stderr.contains("--rate takes N/PERIOD") && stderr.contains("[bad_request]"),
        "{stderr}"
    );
    let pool = f.pool.as_task_pool();
    let g = pool.group_stats("start-group-0").unwrap();
    assert_eq!((g.priority, g.weight, pool.loose_weight()), (7, 2, 4));
    let half_minute = async_taskpool::policy::Quota::per_minute(30).unwrap();
    assert_eq!(g.rate_limit, Some(half_minute.burst(2).unwrap()));
    drop(server);
    f.pool.stop_all();
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `taskpool-dashboard`: a web page that shows and steers async-taskpool pools through their
//! control servers.
//!
//! ```text
//! taskpool-dashboard 127.0.0.1:9999                       # one pool, page on http://127.0.0.1:8080/
//! taskpool-dashboard --listen 127.0.0.1:8081 \
//!     tcp:127.0.0.1:9999,token-env=CRAWLER_TOKEN unix:/run/app/ctl.sock
//! ```
//!
//! How it is put together: `monitor` polls each control server on a thread of its own
//! (`stats` and `groups` every interval, the job queue's views every fifth) through the
//! library's `ControlClient` and keeps ten minutes of samples (`history`); `web` serves the
//! page and its assets (compiled in from `assets/`), a server-sent event stream of those
//! views, task pages on demand (the control server's `tasks`, one page per request) and
//! actions (`actions`), each in a fresh control session opened with the token the page's
//! user typed; `guard` holds the sessions, anti-CSRF tokens and host checks.
//!
//! What the page shows beyond the counts:
//! - queue-wait and run-time percentiles, for pools built with `track_durations(true)`:
//!   `stats` is passed to the page as the server sends it, and `assets/app.js`
//!   (`PERCENTILE_FIELDS`, `renderLatency`) shows its `queue_wait` and `run_time` objects; per
//!   group, `renderGroups` shows `done` of `total` (from the `groups` reply) and the group's
//!   run-time p50 and p99;
//! - a task's age (`taskAge`): its `queue_wait_secs` plus `run_time_secs`, when the pool
//!   tracks durations;
//! - job-queue views: shown for servers whose hello lists the job queue's commands
//!   (`queue-stats`, `queue-dead`, `queue-retry`, `queue-discard`; `monitor::queue_views` and
//!   `renderQueue`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actions;
mod config;
mod guard;
mod history;
mod link;
mod monitor;
mod web;

use clap::Parser;
use config::ServerSpec;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "taskpool-dashboard",
    version,
    about = "A live web page for async-taskpool pools, through their control servers",
    after_help = "SERVER is tcp:HOST:PORT, HOST:PORT, unix:PATH or a socket path, optionally \
        followed by ,token-env=VAR or ,token-file=PATH (the control server's token; --token \
        or $TASKPOOL_CTL_TOKEN gives one to every server without its own).\n\n\
        The page binds loopback only; reach it from elsewhere through an SSH tunnel \
        (ssh -L 8080:127.0.0.1:8080 HOST). Actions on a server with a token ask for that \
        token in the page.\n\n\
        Examples:\n  \
        taskpool-dashboard 127.0.0.1:9999\n  \
        taskpool-dashboard --listen 127.0.0.1:8081 tcp:10.0.0.5:9999,token-env=TOKEN unix:/run/app/ctl.sock"
)]
struct Cli {
    /// Where the page is served: a loopback address and port (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seconds between polls of each server (and updates of the page).
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// The token of every server given without a token of its own.
    #[arg(long, env = "TASKPOOL_CTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The control servers to watch.
    #[arg(required = true, value_name = "SERVER")]
    servers: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskpool-dashboard: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if !cli.listen.ip().is_loopback() {
        return Err(format!(
            "--listen {} is not a loopback address: the page steers pools and has no TLS, so it \
             is served on 127.0.0.1 or [::1] only; reach it from elsewhere through an SSH \
             tunnel (ssh -L 8080:127.0.0.1:8080 HOST)",
            cli.listen
        ));
    }
    let every = Duration::try_from_secs_f64(cli.interval)
        .ok()
        .filter(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(3600))
        .ok_or_else(|| "--interval must be between 0.1 and 3600 seconds".to_owned())?;
    let specs = cli
        .servers
        .iter()
        .map(|s| ServerSpec::parse(s, cli.token.as_deref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the web server's runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        let count = specs.len();
        let monitor = monitor::Monitor::start(specs, every)
            .map_err(|e| format!("cannot start the polling threads: {e}"))?;
        let app = Arc::new(web::App {
            monitor,
            sessions: guard::Sessions::default(),
            hosts: guard::allowed_hosts(addr),
            every,
        });
        // The first line on stdout is the page's address (scripts and tests read it).
        println!(
            "taskpool-dashboard: serving http://{addr}/ for {count} server{}",
            if count == 1 { "" } else { "s" }
        );
        axum::serve(listener, web::router(app))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| format!("the web server failed: {e}"))
    })
}

//! `taskpool-ctl`: steer a live async-taskpool pool through its control server.
//!
//! ```text
//! taskpool-ctl tcp 127.0.0.1 9999              # interactive prompt (history, tab completion)
//! taskpool-ctl tcp 127.0.0.1 9999 -- stop 2    # one command, for scripts; exit 1 on an error reply
//! taskpool-ctl unix /run/app/ctl.sock watch    # live stats, refreshed every second
//! ```
#![forbid(unsafe_code)]

use async_taskpool::control::protocol::{Command, PoolKind, Reply};
use async_taskpool::control::text::{help_text, parse_line, parse_words, render, Style};
use async_taskpool::control::{ClientError, ControlClient};
use clap::{Args, Parser, Subcommand};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use serde_json::Value;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "taskpool-ctl",
    version,
    about = "Steer a live async-taskpool pool through its control server",
    after_help = "Examples:\n  \
        taskpool-ctl tcp 127.0.0.1 9999                 interactive prompt\n  \
        taskpool-ctl tcp 127.0.0.1 9999 -- pool-size 4  one command, then exit\n  \
        taskpool-ctl unix /tmp/app.sock watch           live stats until Ctrl-C\n\n\
        Type `help` at the prompt for the pool's commands."
)]
struct Cli {
    /// Print each reply as its raw JSON object.
    #[arg(long, global = true)]
    json: bool,
    /// The server's shared token, if it requires one.
    #[arg(
        long,
        global = true,
        env = "TASKPOOL_CTL_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    target: Target,
}

#[derive(Subcommand)]
enum Target {
    /// Connect over TCP.
    Tcp {
        /// The server's host name or IP address.
        host: String,
        /// The server's port.
        port: u16,
        #[command(flatten)]
        run: Run,
    },
    /// Connect to a Unix socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
        #[command(flatten)]
        run: Run,
    },
}

#[derive(Args)]
struct Run {
    #[command(subcommand)]
    action: Option<Action>,
    /// One command to run, after `--` (e.g. `-- stop 2`); without one, an interactive prompt.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum Action {
    /// Show the live stats (running, queued, ended, cancelled, limit), refreshed until Ctrl-C.
    Watch {
        /// Stop after this many refreshes.
        #[arg(long)]
        count: Option<u64>,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

/// Exit codes: 0 ok, 1 an error reply, 2 no connection (or a usage error, from clap).
const EXIT_ERROR_REPLY: u8 = 1;
const EXIT_NO_CONNECTION: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let token = cli.token.as_deref();
    let (connected, run) = match &cli.target {
        Target::Tcp { host, port, run } => (
            ControlClient::connect_tcp((host.as_str(), *port), token),
            run,
        ),
        #[cfg(unix)]
        Target::Unix { path, run } => (ControlClient::connect_unix(path, token), run),
        #[cfg(not(unix))]
        Target::Unix { .. } => {
            eprintln!("taskpool-ctl: Unix sockets are not available on this platform");
            return ExitCode::from(EXIT_NO_CONNECTION);
        }
    };
    let mut client = match connected {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taskpool-ctl: {e}");
            if matches!(e, ClientError::Refused { ref kind, .. } if kind.as_str() == "auth_failed")
            {
                eprintln!(
                    "taskpool-ctl: pass the server's token with --token or $TASKPOOL_CTL_TOKEN"
                );
            }
            return ExitCode::from(EXIT_NO_CONNECTION);
        }
    };
    let out = Output { json: cli.json };
    let code = match (&run.action, run.command.is_empty()) {
        (Some(_), false) => {
            eprintln!("taskpool-ctl: give either `watch` or a command after `--`, not both");
            EXIT_NO_CONNECTION
        }
        (Some(Action::Watch { count, interval }), true) => {
            watch(&mut client, &out, *count, *interval)
        }
        (None, false) => one_shot(&mut client, &out, &run.command),
        (None, true) => interactive(&mut client, &out),
    };
    ExitCode::from(code)
}

struct Output {
    json: bool,
}

impl Output {
    /// Prints a reply; returns whether it was an error.
    fn reply(&self, command: &str, reply: &Reply) -> bool {
        if self.json {
            println!("{}", serde_json::to_string(reply).unwrap_or_default());
            return reply.is_error();
        }
        match reply {
            Reply::Ok { value, .. } => println!("{}", render(command, value, Style::Plain)),
            Reply::Error { kind, message, .. } => eprintln!("error: {message} [{kind}]"),
        }
        reply.is_error()
    }
}

/// Sends `cmd` and prints the reply. `Err` means the connection is gone.
fn send(client: &mut ControlClient, out: &Output, cmd: &Command) -> Result<bool, ClientError> {
    let reply = client.request(cmd)?;
    Ok(out.reply(cmd.name(), &reply))
}

fn local_help(client: &ControlClient, command: Option<&str>) {
    println!("{}", help_text(client.info(), command));
}

fn one_shot(client: &mut ControlClient, out: &Output, words: &[String]) -> u8 {
    let cmd = match parse_words(words) {
        Ok(Command::Help { command }) if !out.json => {
            local_help(client, command.as_deref());
            return 0;
        }
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("error: {} [{}]", e.message, e.kind);
            return EXIT_ERROR_REPLY;
        }
    };
    match send(client, out, &cmd) {
        Ok(false) => 0,
        Ok(true) => EXIT_ERROR_REPLY,
        Err(e) => {
            eprintln!("taskpool-ctl: {e}");
            EXIT_NO_CONNECTION
        }
    }
}

fn watch(client: &mut ControlClient, out: &Output, count: Option<u64>, interval: f64) -> u8 {
    let Ok(every) = Duration::try_from_secs_f64(interval) else {
        eprintln!("taskpool-ctl: --interval must be a positive number of seconds");
        return EXIT_NO_CONNECTION;
    };
    let tty = std::io::stdout().is_terminal() && !out.json;
    let mut n = 0u64;
    loop {
        let reply = match client.request(&Command::Stats) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("\ntaskpool-ctl: {e}");
                return EXIT_NO_CONNECTION;
            }
        };
        match (&reply, out.json) {
            (_, true) | (Reply::Error { .. }, _) => {
                if out.reply("stats", &reply) {
                    return EXIT_ERROR_REPLY;
                }
            }
            (Reply::Ok { value, .. }, false) => {
                let line = stats_line(value);
                if tty {
                    // Redraw in place: an operator's live view, not a scrolling log.
                    print!("\r\x1b[2K{line}");
                    let _ = std::io::stdout().flush();
                } else {
                    println!("{line}");
                }
            }
        }
        n += 1;
        if count.is_some_and(|c| n >= c) {
            if tty {
                println!();
            }
            return 0;
        }
        std::thread::sleep(every);
    }
}

fn stats_line(stats: &Value) -> String {
    let num = |k: &str| stats.get(k).map_or_else(|| "?".into(), |v| v.to_string());
    let limit = match stats.get("limit") {
        Some(Value::Null) => "none".to_owned(),
        _ => num("limit"),
    };
    let mut flags = String::new();
    if stats.get("locked") == Some(&Value::Bool(true)) {
        flags.push_str("  [locked]");
    }
    if stats.get("closed") == Some(&Value::Bool(true)) {
        flags.push_str("  [closed]");
    }
    format!(
        "{}  running {}  queued {}  ended {}  cancelled {}  limit {limit}{flags}",
        stats.get("name").and_then(Value::as_str).unwrap_or("?"),
        num("running"),
        num("queued"),
        num("ended"),
        num("cancelled"),
    )
}

/// Completes command names at the start of the line.
struct CtlHelper {
    commands: Vec<String>,
}

impl Completer for CtlHelper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        if head.contains(char::is_whitespace) {
            let rest = head.trim_start();
            if let Some(arg) = rest.strip_prefix("help ") {
                if !arg.contains(char::is_whitespace) {
                    let start = pos - arg.len();
                    return Ok((start, self.matching(arg)));
                }
            }
            return Ok((pos, Vec::new()));
        }
        Ok((0, self.matching(head)))
    }
}

impl CtlHelper {
    fn matching(&self, prefix: &str) -> Vec<String> {
        self.commands
            .iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Hinter for CtlHelper {
    type Hint = String;
}
impl Highlighter for CtlHelper {}
impl Validator for CtlHelper {}
impl Helper for CtlHelper {}

/// Where typed lines come from: a line editor on a terminal, plain lines from a pipe.
enum Input {
    Editor(Box<Editor<CtlHelper, DefaultHistory>>),
    Piped(std::io::StdinLock<'static>),
}

enum Read {
    Line(String),
    Interrupted,
    End,
}

impl Input {
    fn read(&mut self, prompt: &str) -> Read {
        match self {
            Self::Editor(ed) => match ed.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = ed.add_history_entry(line.as_str());
                    }
                    Read::Line(line)
                }
                Err(ReadlineError::Interrupted) => Read::Interrupted,
                Err(_) => Read::End,
            },
            Self::Piped(stdin) => {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => Read::End,
                    Ok(_) => Read::Line(line),
                }
            }
        }
    }
}

fn interactive(client: &mut ControlClient, out: &Output) -> u8 {
    let info = client.info().clone();
    let kind = match info.kind {
        PoolKind::Task => "TaskPool",
        PoolKind::Simple => "SimpleTaskPool",
    };
    let mut input = None;
    if std::io::stdin().is_terminal() {
        if let Ok(mut ed) = Editor::<CtlHelper, DefaultHistory>::new() {
            let mut commands = info.commands.clone();
            commands.push("exit".into());
            commands.sort();
            ed.set_helper(Some(CtlHelper { commands }));
            input = Some(Input::Editor(Box::new(ed)));
        }
    }
    let mut input = input.unwrap_or_else(|| Input::Piped(std::io::stdin().lock()));
    eprintln!(
        "Connected to {} ({kind}, {}). Type `help` for commands, `exit` or Ctrl-D to leave.",
        info.pool, info.server
    );
    let prompt = format!("{}> ", info.pool);
    loop {
        let line = match input.read(&prompt) {
            Read::Line(l) => l,
            Read::Interrupted => continue,
            Read::End => break,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "exit" || line == "quit" {
            break;
        }
        let cmd = match parse_line(line) {
            Ok(None) => continue,
            Ok(Some(Command::Help { command })) if !out.json => {
                local_help(client, command.as_deref());
                continue;
            }
            Ok(Some(cmd)) => cmd,
            Err(e) => {
                eprintln!("error: {} [{}]", e.message, e.kind);
                continue;
            }
        };
        if let Err(e) = send(client, out, &cmd) {
            eprintln!("taskpool-ctl: {e}");
            return EXIT_NO_CONNECTION;
        }
    }
    eprintln!("Disconnected.");
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::History;

    fn complete(line: &str) -> (usize, Vec<String>) {
        let helper = CtlHelper {
            commands: ["start", "stats", "stop", "stop-all", "tasks"]
                .map(String::from)
                .to_vec(),
        };
        let history = DefaultHistory::new();
        let ctx = rustyline::Context::new(&history as &dyn History);
        helper.complete(line, line.len(), &ctx).unwrap()
    }

    #[test]
    fn completes_command_names() {
        assert_eq!(
            complete("st"),
            (
                0,
                vec![
                    "start".into(),
                    "stats".into(),
                    "stop".into(),
                    "stop-all".into()
                ]
            )
        );
        assert_eq!(complete("stop-"), (0, vec!["stop-all".into()]));
        assert_eq!(complete("help ta"), (5, vec!["tasks".into()]));
        assert_eq!(complete("stop 1"), (6, vec![]));
    }

    #[test]
    fn stats_line_shows_what_an_operator_watches() {
        let stats = serde_json::json!({"name":"w","limit":null,"running":2,"queued":1,"ended":5,
            "cancelled":1,"locked":true,"closed":false});
        assert_eq!(
            stats_line(&stats),
            "w  running 2  queued 1  ended 5  cancelled 1  limit none  [locked]"
        );
    }
}

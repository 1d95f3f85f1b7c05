//! `taskpool-ctl`: steer a live async-taskpool pool through its control server.
//!
//! ```text
//! taskpool-ctl tcp 127.0.0.1 9999              # interactive prompt (history, tab completion)
//! taskpool-ctl tcp 127.0.0.1 9999 stop 2       # one command, for scripts; exit 1 on an error reply
//! taskpool-ctl unix /run/app/ctl.sock watch    # live stats, refreshed every second
//! ```
#![forbid(unsafe_code)]

use async_taskpool::control::protocol::{Command, ErrorKind, PoolKind, Reply};
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "taskpool-ctl",
    version,
    about = "Steer a live async-taskpool pool through its control server",
    after_help = "Examples:\n  \
        taskpool-ctl tcp 127.0.0.1 9999                 interactive prompt\n  \
        taskpool-ctl tcp 127.0.0.1 9999 pool-size 4     one command, then exit\n  \
        taskpool-ctl tcp 127.0.0.1 9999 group-settings pages -w 3 -p 1\n  \
        \x20                                               a group's weight and priority\n  \
        taskpool-ctl tcp 127.0.0.1 9999 group-settings pages --rate 10/s --burst 5\n  \
        \x20                                               a group's rate limit (`--rate inf` lifts it)\n  \
        taskpool-ctl tcp 127.0.0.1 9999 pool-settings --adaptive-max 50\n  \
        \x20                                               the adaptive limit's upper bound\n  \
        taskpool-ctl unix /tmp/app.sock watch           live stats until Ctrl-C\n\n\
        Type `help` at the prompt for the pool's commands. Ctrl-C abandons a command that \
        waits (until-closed, flush, ...); Ctrl-D or `exit` leaves.\n\n\
        Exit status: 0 success; 1 an error reply (in one-shot mode, or any in piped input); \
        2 no connection, the connection was lost, or a usage error."
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
        run: CommandArgs,
    },
    /// Connect to a Unix socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
        #[command(flatten)]
        run: CommandArgs,
    },
    /// Serve a live web page of one or more pools: runs `taskpool-dashboard` (crate
    /// async-taskpool-dashboard) with these arguments, e.g. `dashboard --listen
    /// 127.0.0.1:8080 127.0.0.1:9999 unix:/run/app/ctl.sock`.
    #[command(disable_help_flag = true)]
    Dashboard {
        /// `taskpool-dashboard`'s arguments (`dashboard --help` lists them).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

#[derive(Args)]
struct CommandArgs {
    /// One command to run, e.g. `stop 2` (`--` before it is optional), or `watch [--count
    /// N] [--interval SECONDS]` for live stats; without one, an interactive prompt.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// `watch`, as a command line or typed at the prompt.
#[derive(Parser)]
#[command(
    name = "watch",
    no_binary_name = true,
    about = "Live stats (running, queued, ended, cancelled, limit), refreshed until Ctrl-C"
)]
struct WatchArgs {
    /// Stop after this many refreshes.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

/// Exit codes: 0 ok, 1 an error reply, 2 no connection or connection lost (or a usage error,
/// from clap).
const EXIT_ERROR_REPLY: u8 = 1;
const EXIT_NO_CONNECTION: u8 = 2;

/// Ctrl-C presses not yet acted on. A command that waits checks it; a second press before the
/// first was acted on exits at once.
static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

fn take_interrupt() -> bool {
    INTERRUPTS.swap(0, Ordering::SeqCst) > 0
}

/// Counts Ctrl-C presses in [`INTERRUPTS`]. Installed after the line editor, which takes
/// SIGINT for itself when created; at the prompt it reads Ctrl-C as a key anyway.
fn catch_interrupts() -> bool {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTS.fetch_add(1, Ordering::SeqCst) > 0 {
            std::process::exit(130);
        }
    });
    if let Err(e) = &installed {
        eprintln!("taskpool-ctl: cannot catch Ctrl-C: {e}");
    }
    installed.is_ok()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (endpoint, run) = match cli.target {
        Target::Tcp { host, port, run } => (Endpoint::Tcp(host, port), run),
        Target::Unix { path, run } => (Endpoint::Unix(path), run),
        Target::Dashboard { args } => return dashboard(&args, cli.token.as_deref()),
    };
    let client = match endpoint.connect(cli.token.as_deref()) {
        Ok(c) => c,
        Err(code) => return ExitCode::from(code),
    };
    let mut ctl = Ctl {
        client,
        endpoint,
        token: cli.token,
        json: cli.json,
    };
    let code = match run.command.split_first() {
        None => ctl.interactive(),
        Some(_) if !catch_interrupts() => EXIT_NO_CONNECTION,
        Some((first, rest)) if first == "watch" => match WatchArgs::try_parse_from(rest) {
            Ok(args) => match ctl.watch(&args) {
                Ok(Sent::Ok | Sent::Interrupted) => 0,
                Ok(Sent::ErrorReply) => EXIT_ERROR_REPLY,
                Err(Lost) => EXIT_NO_CONNECTION,
            },
            Err(e) => {
                let _ = e.print();
                EXIT_NO_CONNECTION
            }
        },
        Some(_) => ctl.one_shot(&run.command),
    };
    ExitCode::from(code)
}

/// Runs `taskpool-dashboard` (next to this binary, else on the `PATH`) with `args`, and exits
/// with its status.
fn dashboard(args: &[String], token: Option<&str>) -> ExitCode {
    const NAME: &str = "taskpool-dashboard";
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            Some(
                exe.parent()?
                    .join(format!("{NAME}{}", std::env::consts::EXE_SUFFIX)),
            )
        })
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from(NAME));
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args);
    if let Some(t) = token {
        // Through the environment, never the command line others can read.
        cmd.env("TASKPOOL_CTL_TOKEN", t);
    }
    match cmd.status() {
        Ok(status) => ExitCode::from(status.code().map_or(EXIT_NO_CONNECTION, |c| c as u8)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "taskpool-ctl: the dashboard is a separate program, `{NAME}`, not found next to \
                 taskpool-ctl or on the PATH: install it with `cargo install \
                 async-taskpool-dashboard`"
            );
            ExitCode::from(EXIT_NO_CONNECTION)
        }
        Err(e) => {
            eprintln!("taskpool-ctl: cannot run {}: {e}", program.display());
            ExitCode::from(EXIT_NO_CONNECTION)
        }
    }
}

enum Endpoint {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl Endpoint {
    /// Connects and says hello; on failure, says why and returns the exit code.
    fn connect(&self, token: Option<&str>) -> Result<ControlClient, u8> {
        let connected = match self {
            Self::Tcp(host, port) => ControlClient::connect_tcp((host.as_str(), *port), token),
            #[cfg(unix)]
            Self::Unix(path) => ControlClient::connect_unix(path, token),
            #[cfg(not(unix))]
            Self::Unix(_) => {
                eprintln!("taskpool-ctl: Unix sockets are not available on this platform");
                return Err(EXIT_NO_CONNECTION);
            }
        };
        connected.map_err(|e| {
            eprintln!("taskpool-ctl: {e}");
            if matches!(e, ClientError::Refused { ref kind, .. } if *kind == ErrorKind::AuthFailed)
            {
                eprintln!(
                    "taskpool-ctl: pass the server's token with --token or $TASKPOOL_CTL_TOKEN"
                );
            }
            EXIT_NO_CONNECTION
        })
    }
}

/// What became of one command.
enum Sent {
    Ok,
    ErrorReply,
    /// Abandoned with Ctrl-C; the session was replaced by a fresh one.
    Interrupted,
}

/// The connection is gone (the reason was printed).
struct Lost;

struct Ctl {
    client: ControlClient,
    endpoint: Endpoint,
    token: Option<String>,
    json: bool,
}

/// Error kinds after which the server closes the connection.
fn closes_connection(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ShuttingDown | ErrorKind::IdleTimeout | ErrorKind::AuthFailed | ErrorKind::Busy
    )
}

impl Ctl {
    /// Prints a reply; returns whether it was an error.
    fn print(&self, command: &str, reply: &Reply) -> bool {
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

    fn lost(&self, why: impl std::fmt::Display) -> Lost {
        eprintln!("taskpool-ctl: {why}");
        Lost
    }

    /// Sends `cmd`, waits for its reply (Ctrl-C abandons the wait) and prints it.
    fn send(&mut self, cmd: &Command) -> Result<Sent, Lost> {
        // Only a Ctrl-C pressed while this command waits counts.
        take_interrupt();
        match self.client.request_until(cmd, take_interrupt) {
            Ok(reply) => {
                let failed = self.print(cmd.name(), &reply);
                if let Reply::Error { kind, .. } = &reply {
                    if closes_connection(kind) {
                        return Err(self.lost(ClientError::Closed));
                    }
                }
                Ok(if failed { Sent::ErrorReply } else { Sent::Ok })
            }
            Err(ClientError::Interrupted) => {
                eprintln!(
                    "interrupted: no longer waiting for `{}`; reconnecting",
                    cmd.name()
                );
                self.reconnect()?;
                Ok(Sent::Interrupted)
            }
            Err(e) => Err(self.lost(e)),
        }
    }

    /// A fresh session: the old one is out of step, and closing it tells the server to
    /// stop waiting.
    fn reconnect(&mut self) -> Result<(), Lost> {
        self.client = self
            .endpoint
            .connect(self.token.as_deref())
            .map_err(|_| Lost)?;
        Ok(())
    }

    fn one_shot(&mut self, words: &[String]) -> u8 {
        let cmd = match parse_words(words) {
            Ok(Command::Help { command }) if !self.json => {
                self.help(command.as_deref());
                return 0;
            }
            Ok(cmd) => cmd,
            Err(e) => {
                eprintln!("error: {} [{}]", e.message, e.kind);
                return EXIT_ERROR_REPLY;
            }
        };
        match self.send(&cmd) {
            Ok(Sent::Ok) => 0,
            Ok(Sent::ErrorReply) => EXIT_ERROR_REPLY,
            Ok(Sent::Interrupted) => 130,
            Err(Lost) => EXIT_NO_CONNECTION,
        }
    }

    fn help(&self, command: Option<&str>) {
        match command {
            Some("watch") => println!("{}", WatchArgs::command_help()),
            Some("exit" | "quit") => println!("usage: exit\n  Leaves (so does Ctrl-D)."),
            _ => println!("{}", help_text(self.client.info(), command)),
        }
        if command.is_none() {
            let watch = "watch [--count N] [--interval SECONDS]";
            println!("at this prompt:");
            println!("  {watch:<50} Live stats, refreshed until Ctrl-C.");
            println!("  {:<50} Leaves (so does Ctrl-D).", "exit");
        }
    }

    /// Live stats until `count` refreshes or Ctrl-C.
    fn watch(&mut self, args: &WatchArgs) -> Result<Sent, Lost> {
        let Ok(every) = Duration::try_from_secs_f64(args.interval) else {
            eprintln!("error: --interval must be a positive number of seconds [bad_request]");
            return Ok(Sent::ErrorReply);
        };
        let tty = std::io::stdout().is_terminal() && !self.json;
        // A status line drawn in place has no newline yet: anything printed after it
        // starts on a line of its own.
        let mut drawn = false;
        let end_line = |drawn: bool| {
            if drawn {
                println!();
            }
        };
        let mut n = 0u64;
        take_interrupt();
        loop {
            let reply = match self.client.request_until(&Command::Stats, take_interrupt) {
                Ok(r) => r,
                Err(ClientError::Interrupted) => {
                    end_line(drawn);
                    self.reconnect()?;
                    return Ok(Sent::Interrupted);
                }
                Err(e) => {
                    end_line(drawn);
                    return Err(self.lost(e));
                }
            };
            match (&reply, self.json) {
                (Reply::Error { kind, .. }, _) => {
                    end_line(drawn);
                    self.print("stats", &reply);
                    if closes_connection(kind) {
                        return Err(self.lost(ClientError::Closed));
                    }
                    return Ok(Sent::ErrorReply);
                }
                (_, true) => {
                    self.print("stats", &reply);
                }
                (Reply::Ok { value, .. }, false) => {
                    let line = stats_line(value);
                    if tty {
                        // Redraw in place: an operator's live view, not a scrolling log.
                        print!("\r\x1b[2K{line}");
                        let _ = std::io::stdout().flush();
                        drawn = true;
                    } else {
                        println!("{line}");
                    }
                }
            }
            n += 1;
            if args.count.is_some_and(|c| n >= c) {
                end_line(drawn);
                return Ok(Sent::Ok);
            }
            // Sleep, waking for Ctrl-C.
            let until = Instant::now() + every;
            while Instant::now() < until {
                if take_interrupt() {
                    end_line(drawn);
                    return Ok(Sent::Interrupted);
                }
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
        }
    }

    fn interactive(&mut self) -> u8 {
        let info = self.client.info().clone();
        let kind = match info.kind {
            PoolKind::Task => "TaskPool",
            PoolKind::Simple => "SimpleTaskPool",
        };
        let mut input = None;
        if std::io::stdin().is_terminal() {
            if let Ok(mut ed) = Editor::<CtlHelper, DefaultHistory>::new() {
                let mut commands = info.commands.clone();
                commands.extend(["exit", "quit", "watch"].map(String::from));
                commands.sort();
                ed.set_helper(Some(CtlHelper { commands }));
                input = Some(Input::Editor(Box::new(ed)));
            }
        }
        let piped = input.is_none();
        let mut input = input.unwrap_or_else(|| Input::Piped(std::io::stdin().lock()));
        if !catch_interrupts() {
            return EXIT_NO_CONNECTION;
        }
        eprintln!(
            "Connected to {} ({kind}, {}). Type `help` for commands, `exit` or Ctrl-D to leave.",
            info.pool, info.server
        );
        let prompt = format!("{}> ", info.pool);
        let mut any_error = false;
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
            let words = async_taskpool::control::text::split_words(line);
            if words.first().is_some_and(|w| w == "watch") {
                let sent = match WatchArgs::try_parse_from(&words[1..]) {
                    Ok(args) => self.watch(&args),
                    Err(e) => {
                        let _ = e.print();
                        Ok(Sent::ErrorReply)
                    }
                };
                match sent {
                    Ok(Sent::ErrorReply) => any_error = true,
                    Ok(_) => {}
                    Err(Lost) => return EXIT_NO_CONNECTION,
                }
                continue;
            }
            let cmd = match parse_line(line) {
                Ok(None) => continue,
                Ok(Some(Command::Help { command })) if !self.json => {
                    self.help(command.as_deref());
                    continue;
                }
                Ok(Some(cmd)) => cmd,
                Err(e) => {
                    eprintln!("error: {} [{}]", e.message, e.kind);
                    any_error = true;
                    continue;
                }
            };
            match self.send(&cmd) {
                Ok(Sent::ErrorReply) => any_error = true,
                Ok(_) => {}
                Err(Lost) => return EXIT_NO_CONNECTION,
            }
        }
        eprintln!("Disconnected.");
        // A person at a terminal saw each error; a script piping commands needs the status.
        if piped && any_error {
            EXIT_ERROR_REPLY
        } else {
            0
        }
    }
}

impl WatchArgs {
    fn command_help() -> String {
        use clap::CommandFactory;
        WatchArgs::command().render_help().to_string()
    }
}

fn stats_line(stats: &Value) -> String {
    let num = |k: &str| stats.get(k).map_or_else(|| "?".into(), |v| v.to_string());
    let limit = match stats.get("limit") {
        Some(Value::Null) => "inf".to_owned(),
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

/// Completes command names at the start of the line, and after `help`.
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
            "w  running 2  queued 1  ended 5  cancelled 1  limit inf  [locked]"
        );
    }

    #[test]
    fn commands_need_no_double_dash() {
        for args in [
            &["taskpool-ctl", "tcp", "h", "1", "stats"][..],
            &["taskpool-ctl", "tcp", "h", "1", "--", "stats"],
            &["taskpool-ctl", "--json", "tcp", "h", "1", "stats"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Target::Tcp { run, .. } = cli.target else {
                panic!()
            };
            assert_eq!(run.command, ["stats"], "{args:?}");
        }
        let cli = Cli::try_parse_from(["taskpool-ctl", "tcp", "h", "1", "apply", "j", "-n", "2"])
            .unwrap();
        let Target::Tcp { run, .. } = cli.target else {
            panic!()
        };
        assert_eq!(run.command, ["apply", "j", "-n", "2"]);
        // `dashboard` hands every argument, `--help` included, to taskpool-dashboard.
        let cli = Cli::try_parse_from([
            "taskpool-ctl",
            "dashboard",
            "--listen",
            "127.0.0.1:8080",
            "127.0.0.1:9999",
            "--help",
        ])
        .unwrap();
        let Target::Dashboard { args } = cli.target else {
            panic!()
        };
        assert_eq!(
            args,
            ["--listen", "127.0.0.1:8080", "127.0.0.1:9999", "--help"]
        );
        let w = WatchArgs::try_parse_from(["--count", "3", "--interval", "0.5"]).unwrap();
        assert_eq!((w.count, w.interval), (Some(3), 0.5));
    }
}

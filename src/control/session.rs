//! One client's session, on its own thread: hello (or the Python client's handshake), then
//! one reply per request line.

use super::dispatch::{shutting_down, Context};
use super::hangup::Hangup;
use super::line::{Line, LineReader};
use super::protocol::{Command, ErrorKind, Reply, WireError, PROTOCOL_VERSION};
use super::text::{help_text, parse_line, render, Style};
use super::transport::Conn;
use serde_json::Value;
use std::io;
use std::time::{Duration, Instant};

/// The session settings a server hands each session.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) token: Option<String>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_line: usize,
    pub(crate) legacy: bool,
}

/// How long a reply may take to write before the client counts as gone. A client that stops
/// reading only ever blocks its own session, and only this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

enum Mode {
    Json,
    /// asyncio-taskpool's Python client: text commands, text replies.
    Legacy,
}

/// Why a session ended when its client hung up during a waiting command.
const HUNG_UP: &str = "client hung up while its command waited";

pub(crate) struct Session<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) cfg: &'a Config,
    pub(crate) id: u64,
    /// The client hung up while a command waited (see [`Hangup`]).
    pub(crate) hung_up: std::cell::Cell<bool>,
}

impl Session<'_> {
    pub(crate) fn run(&self, mut conn: Box<dyn Conn>) {
        let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
        let mut reader = LineReader::new(self.cfg.max_line);
        let end = match self.serve(&mut *conn, &mut reader) {
            Ok(reason) => reason,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => "refused",
            Err(e) => {
                tracing::debug!(session = self.id, "control session I/O error: {e}");
                "connection error"
            }
        };
        conn.shutdown_both();
        tracing::info!(
            session = self.id,
            reason = end,
            "control session disconnected"
        );
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.cfg.idle_timeout
    }

    fn serve(&self, conn: &mut dyn Conn, reader: &mut LineReader) -> io::Result<&'static str> {
        let mode = loop {
            let line = match reader.next(conn, self.deadline())? {
                Line::Text(l) => l,
                Line::TooLong => {
                    self.send_json(conn, self.too_long().into())?;
                    continue;
                }
                Line::Eof => return Ok("closed by client"),
                Line::TimedOut => {
                    self.send_json(conn, idle(self.cfg.idle_timeout).into())?;
                    return Ok("idle timeout");
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.hello(conn, &line)? {
                Some(mode) => break mode,
                None if self.ctx.stop.is_stopped() => return Ok("server stopped"),
                None => continue,
            }
        };
        let mode_name = match mode {
            Mode::Json => "json",
            Mode::Legacy => "python client (text)",
        };
        tracing::info!(session = self.id, mode = mode_name, "control session ready");
        loop {
            if self.ctx.stop.is_stopped() {
                self.reply(conn, &mode, "", Err(shutting_down()))?;
                return Ok("server stopped");
            }
            let line = match reader.next(conn, self.deadline())? {
                Line::Text(l) => l,
                Line::TooLong => {
                    self.reply(conn, &mode, "", Err(self.too_long()))?;
                    continue;
                }
                // The server shut our read side: say why before closing.
                Line::Eof if self.ctx.stop.is_stopped() => continue,
                Line::Eof => return Ok("closed by client"),
                Line::TimedOut => {
                    self.reply(conn, &mode, "", Err(idle(self.cfg.idle_timeout)))?;
                    return Ok("idle timeout");
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match mode {
                Mode::Json => {
                    let (id, result) = match Command::from_line(&line) {
                        Ok((id, cmd)) => (id, self.execute(conn, cmd)),
                        Err(e) => {
                            let id = e.id.clone();
                            (id, Err(e))
                        }
                    };
                    if self.hung_up.get() {
                        return Ok(HUNG_UP);
                    }
                    let mut reply = Reply::from(result);
                    match &mut reply {
                        Reply::Ok { id: slot, .. } | Reply::Error { id: slot, .. } => *slot = id,
                    }
                    self.log_error(&reply);
                    let stopping = is_shutting_down(&reply);
                    self.send_json(conn, reply)?;
                    if stopping {
                        return Ok("server stopped");
                    }
                }
                Mode::Legacy => {
                    let text = String::from_utf8_lossy(&line);
                    let (name, result) = match parse_line(&text) {
                        Ok(None) => continue,
                        Ok(Some(Command::Help { command })) => (
                            "help".to_owned(),
                            Ok(Value::String(help_text(
                                &self.ctx.info(PROTOCOL_VERSION),
                                command.as_deref(),
                            ))),
                        ),
                        Ok(Some(cmd)) => (cmd.name().to_owned(), self.execute(conn, cmd)),
                        Err(e) => (String::new(), Err(e)),
                    };
                    if self.hung_up.get() {
                        return Ok(HUNG_UP);
                    }
                    let mut stopping = false;
                    if let Err(e) = &result {
                        let reply = Reply::from(e.clone());
                        self.log_error(&reply);
                        stopping = is_shutting_down(&reply);
                    }
                    self.reply(conn, &mode, &name, result)?;
                    if stopping {
                        return Ok("server stopped");
                    }
                }
            }
        }
    }

    fn execute(&self, conn: &dyn Conn, cmd: Command) -> Result<Value, WireError> {
        tracing::debug!(session = self.id, command = cmd.name(), "control command");
        let hangup = cmd
            .waits_on_pool()
            .then(|| Hangup::watch(conn, self.id))
            .flatten();
        let result = self.ctx.execute(cmd, hangup.as_ref());
        // A server stopping shuts our read side, which looks like a hang-up from here: then
        // the client is still there, and is told why the session ends.
        if hangup.as_ref().is_some_and(Hangup::is_gone) && !self.ctx.stop.is_stopped() {
            self.hung_up.set(true);
        }
        result
    }

    fn log_error(&self, reply: &Reply) {
        if let Reply::Error { kind, message, .. } = reply {
            tracing::info!(
                session = self.id,
                kind = kind.as_str(),
                "control command failed: {message}"
            );
        }
    }

    /// Handles the first line. `Some(mode)` once the session is open.
    fn hello(&self, conn: &mut dyn Conn, line: &[u8]) -> io::Result<Option<Mode>> {
        // The Python client's first line is `{"terminal_width": N}`: no `cmd`.
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(line) {
            if map.contains_key("terminal_width") && !map.contains_key("cmd") {
                if !self.cfg.legacy || self.cfg.token.is_some() {
                    let why = if self.cfg.token.is_some() {
                        "this server requires a token, which asyncio-taskpool's client cannot send; use taskpool-ctl --token"
                    } else {
                        "this server does not accept asyncio-taskpool's client; use taskpool-ctl"
                    };
                    write_all(conn, format!("error: {why} [auth_failed]\n").as_bytes())?;
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
                }
                write_all(
                    conn,
                    format!("{}\n", self.ctx.target.pool().name()).as_bytes(),
                )?;
                return Ok(Some(Mode::Legacy));
            }
        }
        let example = format!(
            "start with a hello such as {{\"cmd\":\"hello\",\"version\":{PROTOCOL_VERSION}}}"
        );
        let (id, version, token, client) = match Command::from_line(line) {
            Ok((
                id,
                Command::Hello {
                    version,
                    token,
                    client,
                },
            )) => (id, version, token, client),
            Ok((id, _)) => {
                let e = WireError::new(ErrorKind::HelloRequired, example).with_id(id);
                self.send_json(conn, e.into())?;
                return Ok(None);
            }
            Err(e) => {
                let e = WireError::new(
                    ErrorKind::HelloRequired,
                    format!("{}; {example}", e.message),
                )
                .with_id(e.id);
                self.send_json(conn, e.into())?;
                return Ok(None);
            }
        };
        if let Some(expected) = &self.cfg.token {
            if !token.as_deref().is_some_and(|t| same_secret(t, expected)) {
                let msg = if token.is_some() {
                    "the token was refused; check --token"
                } else {
                    "this server requires a token in the hello; pass --token"
                };
                tracing::warn!(
                    session = self.id,
                    "control client refused: bad or missing token"
                );
                self.send_json(
                    conn,
                    WireError::new(ErrorKind::AuthFailed, msg)
                        .with_id(id)
                        .into(),
                )?;
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, msg));
            }
        }
        if version < 1 {
            let e = WireError::new(
                ErrorKind::UnsupportedVersion,
                format!("protocol version {version} is not spoken here; this server speaks 1 to {PROTOCOL_VERSION}"),
            );
            self.send_json(conn, e.with_id(id).into())?;
            return Ok(None);
        }
        tracing::debug!(
            session = self.id,
            client = client.as_deref().unwrap_or("?"),
            "control hello"
        );
        let info = self.ctx.info(version);
        let value = serde_json::to_value(info).unwrap_or(Value::Null);
        self.send_json(conn, Reply::Ok { value, id })?;
        Ok(Some(Mode::Json))
    }

    fn too_long(&self) -> WireError {
        WireError::new(
            ErrorKind::LineTooLong,
            format!(
                "the line was longer than {} bytes and was discarded; send shorter requests",
                self.cfg.max_line
            ),
        )
    }

    fn send_json(&self, conn: &mut dyn Conn, reply: Reply) -> io::Result<()> {
        write_all(conn, reply.to_line().as_bytes())
    }

    fn reply(
        &self,
        conn: &mut dyn Conn,
        mode: &Mode,
        command: &str,
        result: Result<Value, WireError>,
    ) -> io::Result<()> {
        match mode {
            Mode::Json => self.send_json(conn, result.into()),
            Mode::Legacy => {
                let mut text = match result {
                    Ok(v) => render(command, &v, Style::Python),
                    Err(e) => format!("error: {} [{}]", e.message, e.kind),
                };
                text.push('\n');
                write_all(conn, text.as_bytes())
            }
        }
    }
}

/// One `write_all` per reply: the Python client reads each reply with a single `read()`.
fn write_all(conn: &mut dyn Conn, bytes: &[u8]) -> io::Result<()> {
    conn.write_all(bytes)?;
    conn.flush()
}

fn is_shutting_down(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::Error {
            kind: ErrorKind::ShuttingDown,
            ..
        }
    )
}

fn idle(after: Duration) -> WireError {
    WireError::new(
        ErrorKind::IdleTimeout,
        format!("no complete request for {after:?}; closing the connection"),
    )
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(super::same_secret("abc", "abc"));
        assert!(!super::same_secret("abd", "abc"));
        assert!(!super::same_secret("ab", "abc"));
        assert!(!super::same_secret("abcd", "abc"));
        assert!(!super::same_secret("", "abc"));
    }
}

//! One client's session, on its own thread: hello (or the Python client's handshake) within
//! the hello timeout, then one reply per request line.

use super::dispatch::shutting_down;
use super::hangup::Hangup;
use super::line::{Line, LineReader};
use super::protocol::{Command, ErrorKind, Reply, WireError, PROTOCOL_VERSION};
use super::server::Shared;
use super::text::{help_text, parse_line, render, Style};
use super::transport::{Conn, Peer};
use serde_json::Value;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The session settings a server hands each session.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) token: Option<String>,
    pub(crate) idle_timeout: Duration,
    pub(crate) hello_timeout: Duration,
    /// The most one whole reply may take to write: a client that reads too slowly (or not
    /// at all) only ever holds its own session, and only this long per reply.
    pub(crate) write_timeout: Duration,
    /// The first refused token's delay; it doubles per refusal from the same peer.
    pub(crate) refusal_delay: Duration,
    pub(crate) legacy: bool,
}

/// How long a refused client is given to read its last reply and hang up, before the
/// connection is closed under it.
const LINGER: Duration = Duration::from_secs(1);

enum Mode {
    Json,
    /// asyncio-taskpool's Python client: text commands, text replies.
    Legacy,
}

/// How a session ended: why (for the log), and whether the server refused it, in which case
/// it waits briefly for the client to read the refusal (see [`linger`]).
struct End {
    reason: &'static str,
    refused: bool,
}

impl End {
    fn quiet(reason: &'static str) -> Self {
        Self {
            reason,
            refused: false,
        }
    }

    fn refused(reason: &'static str) -> Self {
        Self {
            reason,
            refused: true,
        }
    }
}

/// What a first line led to.
enum Hello {
    Open(Mode),
    /// Not a hello (or a version we do not speak): the client may try again.
    Again,
    Refused(&'static str),
}

pub(crate) struct Session<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) id: u64,
    pub(crate) peer: Peer,
    /// Set when a newer connection took this one's place before it said hello.
    pub(crate) evicted: Arc<AtomicBool>,
    pub(crate) started: Instant,
    /// The client hung up while a command waited (see [`Hangup`]).
    pub(crate) hung_up: std::cell::Cell<bool>,
}

impl Session<'_> {
    pub(crate) fn run(&self, mut conn: Box<dyn Conn>) {
        let mut reader = LineReader::new(self.shared.ctx.limits.max_line_len);
        let end = match self.serve(&mut *conn, &mut reader) {
            Ok(end) => end,
            Err(e) => {
                tracing::debug!(session = self.id, "control session I/O error: {e}");
                End::quiet("connection error")
            }
        };
        // From here on, this connection holds no place another client could use.
        self.shared.admission.leaving(self.id);
        if end.refused {
            if let Some(_permit) = self.shared.admission.may_linger() {
                linger(&mut *conn);
            }
        }
        conn.shutdown_both();
        tracing::info!(
            session = self.id,
            reason = end.reason,
            "control session disconnected"
        );
    }

    fn cfg(&self) -> &Config {
        &self.shared.config
    }

    fn stopped(&self) -> bool {
        self.shared.ctx.stop.is_stopped()
    }

    fn serve(&self, conn: &mut dyn Conn, reader: &mut LineReader) -> io::Result<End> {
        // The whole hello must arrive within the hello timeout, however it trickles in.
        let hello_by = self.started + self.cfg().hello_timeout;
        let mode = loop {
            let line = match reader.next(conn, hello_by)? {
                Line::Text(l) => l,
                Line::TooLong => {
                    self.send_json(conn, self.too_long().into())?;
                    continue;
                }
                Line::Eof if self.evicted.load(Ordering::SeqCst) => {
                    self.send_json(conn, evicted().into())?;
                    return Ok(End::refused("evicted before its hello"));
                }
                Line::Eof if self.stopped() => return Ok(End::quiet("server stopped")),
                Line::Eof => return Ok(End::quiet("closed by client")),
                Line::TimedOut => {
                    let e = WireError::new(
                        ErrorKind::HelloTimeout,
                        format!(
                            "no hello within {:?}; send {{\"cmd\":\"hello\",\"version\":{PROTOCOL_VERSION}}} first",
                            self.cfg().hello_timeout
                        ),
                    );
                    self.send_json(conn, e.into())?;
                    return Ok(End::refused("no hello in time"));
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.hello(conn, &line)? {
                Hello::Open(mode) => break mode,
                Hello::Again if self.stopped() => return Ok(End::quiet("server stopped")),
                Hello::Again => continue,
                Hello::Refused(reason) => return Ok(End::refused(reason)),
            }
        };
        let mode_name = match mode {
            Mode::Json => "json",
            Mode::Legacy => "python client (text)",
        };
        tracing::info!(session = self.id, mode = mode_name, "control session ready");
        loop {
            if self.stopped() {
                self.reply(conn, &mode, "", Err(shutting_down()))?;
                return Ok(End::quiet("server stopped"));
            }
            let idle_by = Instant::now() + self.cfg().idle_timeout;
            let line = match reader.next(conn, idle_by)? {
                Line::Text(l) => l,
                Line::TooLong => {
                    self.reply(conn, &mode, "", Err(self.too_long()))?;
                    continue;
                }
                // The server shut our read side: say why before closing.
                Line::Eof if self.stopped() => continue,
                Line::Eof => return Ok(End::quiet("closed by client")),
                Line::TimedOut => {
                    self.reply(conn, &mode, "", Err(idle(self.cfg().idle_timeout)))?;
                    return Ok(End::quiet("idle timeout"));
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let stopping = match mode {
                Mode::Json => {
                    let (id, result) = match Command::from_line(&line) {
                        Ok((id, cmd)) => (id, self.execute(conn, cmd)),
                        Err(e) => {
                            let id = e.id.clone();
                            (id, Err(e))
                        }
                    };
                    if self.hung_up.get() {
                        return Ok(End::quiet("client hung up while its command waited"));
                    }
                    let mut reply = Reply::from(result);
                    match &mut reply {
                        Reply::Ok { id: slot, .. } | Reply::Error { id: slot, .. } => *slot = id,
                    }
                    self.log_error(&reply);
                    let stopping = is_shutting_down(&reply);
                    self.send_json(conn, reply)?;
                    stopping
                }
                Mode::Legacy => {
                    let text = String::from_utf8_lossy(&line);
                    let (name, result) = match parse_line(&text) {
                        Ok(None) => continue,
                        Ok(Some(Command::Help { command })) => (
                            "help".to_owned(),
                            Ok(Value::String(help_text(
                                &self.shared.ctx.info(PROTOCOL_VERSION),
                                command.as_deref(),
                            ))),
                        ),
                        Ok(Some(cmd)) => (cmd.name().to_owned(), self.execute(conn, cmd)),
                        Err(e) => (String::new(), Err(e)),
                    };
                    if self.hung_up.get() {
                        return Ok(End::quiet("client hung up while its command waited"));
                    }
                    let mut stopping = false;
                    if let Err(e) = &result {
                        let reply = Reply::from(e.clone());
                        self.log_error(&reply);
                        stopping = is_shutting_down(&reply);
                    }
                    self.reply(conn, &mode, &name, result)?;
                    stopping
                }
            };
            if stopping {
                return Ok(End::quiet("server stopped"));
            }
        }
    }

    fn execute(&self, conn: &dyn Conn, cmd: Command) -> Result<Value, WireError> {
        tracing::debug!(session = self.id, command = cmd.name(), "control command");
        let hangup = cmd
            .waits_on_pool()
            .then(|| Hangup::watch(conn, self.id))
            .flatten();
        let result = self.shared.ctx.execute(cmd, hangup.as_ref());
        // A server stopping shuts our read side, which looks like a hang-up from here: then
        // the client is still there, and is told why the session ends.
        if hangup.as_ref().is_some_and(Hangup::is_gone) && !self.stopped() {
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

    fn busy(&self, max: usize) -> WireError {
        WireError::new(
            ErrorKind::Busy,
            format!("the server already has {max} sessions, its limit; try again later"),
        )
    }

    /// Handles a line before the session is open.
    fn hello(&self, conn: &mut dyn Conn, line: &[u8]) -> io::Result<Hello> {
        // The Python client's first line is `{"terminal_width": N}`: no `cmd`.
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(line) {
            if map.contains_key("terminal_width") && !map.contains_key("cmd") {
                if !self.cfg().legacy || self.cfg().token.is_some() {
                    let why = if self.cfg().token.is_some() {
                        "this server requires a token, which asyncio-taskpool's client cannot send; use taskpool-ctl --token"
                    } else {
                        "this server does not accept asyncio-taskpool's client; use taskpool-ctl"
                    };
                    self.write(conn, format!("error: {why} [auth_failed]\n").as_bytes())?;
                    return Ok(Hello::Refused("python client refused"));
                }
                if let Err(max) = self.shared.admission.promote(self.id) {
                    let e = self.busy(max);
                    self.write(conn, format!("error: {} [busy]\n", e.message).as_bytes())?;
                    return Ok(Hello::Refused("busy"));
                }
                let pool = self.shared.ctx.target.pool().name();
                self.write(conn, format!("{pool}\n").as_bytes())?;
                return Ok(Hello::Open(Mode::Legacy));
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
                return Ok(Hello::Again);
            }
            Err(e) => {
                let e = WireError::new(
                    ErrorKind::HelloRequired,
                    format!("{}; {example}", e.message),
                )
                .with_id(e.id);
                self.send_json(conn, e.into())?;
                return Ok(Hello::Again);
            }
        };
        if let Some(expected) = &self.cfg().token {
            if !token.as_deref().is_some_and(|t| same_secret(t, expected)) {
                let (refusals, delay) = self.shared.refusals.refuse(&self.peer.key);
                tracing::warn!(
                    session = self.id,
                    peer = %self.peer.shown,
                    refusals,
                    delay_ms = delay.as_millis() as u64,
                    "control client refused: {} token",
                    if token.is_some() { "wrong" } else { "missing" }
                );
                // Guessing gets slow: the answer comes only after the back-off, and a
                // connection evicted or stopped meanwhile learns nothing.
                if !self.pause(delay) {
                    return Ok(Hello::Refused("token refused"));
                }
                let msg = if token.is_some() {
                    "the token was refused; check --token"
                } else {
                    "this server requires a token in the hello; pass --token"
                };
                let e = WireError::new(ErrorKind::AuthFailed, msg).with_id(id);
                self.send_json(conn, e.into())?;
                return Ok(Hello::Refused("token refused"));
            }
        }
        if version < 1 {
            let e = WireError::new(
                ErrorKind::UnsupportedVersion,
                format!("protocol version {version} is not spoken here; this server speaks 1 to {PROTOCOL_VERSION}"),
            );
            self.send_json(conn, e.with_id(id).into())?;
            return Ok(Hello::Again);
        }
        if let Err(max) = self.shared.admission.promote(self.id) {
            self.send_json(conn, self.busy(max).with_id(id).into())?;
            return Ok(Hello::Refused("busy"));
        }
        tracing::debug!(
            session = self.id,
            client = client.as_deref().unwrap_or("?"),
            "control hello"
        );
        let info = self.shared.ctx.info(version);
        let value = serde_json::to_value(info).unwrap_or(Value::Null);
        self.send_json(conn, Reply::Ok { value, id })?;
        Ok(Hello::Open(Mode::Json))
    }

    /// Waits `d`; `false` if the server stopped or the connection was evicted meanwhile.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stopped() || self.evicted.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn too_long(&self) -> WireError {
        WireError::new(
            ErrorKind::LineTooLong,
            format!(
                "the line was longer than {} bytes and was discarded; send shorter requests",
                self.shared.ctx.limits.max_line_len
            ),
        )
    }

    fn send_json(&self, conn: &mut dyn Conn, reply: Reply) -> io::Result<()> {
        self.write(conn, reply.to_line().as_bytes())
    }

    /// Writes one whole reply, which must be read by the write timeout.
    fn write(&self, conn: &mut dyn Conn, bytes: &[u8]) -> io::Result<()> {
        write_all(conn, bytes, Instant::now() + self.cfg().write_timeout)
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
                self.write(conn, text.as_bytes())
            }
        }
    }
}

/// The most one `write` call is given: a Unix socket's send timeout restarts for each buffer
/// the kernel waits for within one call, so a large write to a slow reader would outlast
/// any deadline.
const WRITE_CHUNK: usize = 16 * 1024;

/// Writes all of `bytes` by `deadline`, however slowly the client reads: each partial write
/// gets only the time left, so a reader taking a byte at a time cannot stretch it. The
/// bytes go out as one stream of writes, with no other reply between (the Python client
/// reads each reply with a single `read()`).
fn write_all(conn: &mut dyn Conn, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the reply within the write timeout",
            ));
        }
        conn.set_write_timeout(Some(deadline - now))?;
        match conn.write(&bytes[..bytes.len().min(WRITE_CHUNK)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    conn.flush()
}

/// Says goodbye without losing the last reply: a connection closed with unread input is
/// reset, and a reset can destroy the reply before the client reads it. So: stop sending,
/// then read and drop what the client still sends until it hangs up (at most [`LINGER`]).
fn linger(conn: &mut dyn Conn) {
    conn.shutdown_write();
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= until || conn.set_read_timeout(Some(until - now)).is_err() {
            return;
        }
        match conn.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn evicted() -> WireError {
    WireError::new(
        ErrorKind::Busy,
        "too many connections are waiting to say hello, and this one waited longest; \
         connect again and send the hello at once",
    )
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

//! A blocking client of the control protocol: what `taskpool-ctl` uses, and what a Rust
//! program or test can use to steer a pool in another process.

use super::protocol::{Command, ErrorKind, Reply, ServerInfo, PROTOCOL_VERSION};
use super::transport::Conn;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a waiting [`ControlClient::request_until`] asks whether to give up.
const POLL: Duration = Duration::from_millis(50);

/// A connected, greeted session with a [`ControlServer`](super::ControlServer).
///
/// Requests are answered in order, one reply each. The client blocks; give it its own thread
/// in async code.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::control::{protocol::Command, ControlClient, ControlServer};
/// use async_taskpool::{runtime::TokioSpawner, TaskPool};
///
/// let pool = TaskPool::builder(TokioSpawner::current()).name("crawler").build()?;
/// let server = ControlServer::new(&pool).serve_tcp("127.0.0.1:0")?;
/// let mut client = ControlClient::connect_tcp(server.local_addr().unwrap(), None)?;
/// assert_eq!(client.info().pool, "crawler");
/// client.request(&Command::PoolSize { value: Some(Some(3)) })?;
/// assert_eq!(pool.limit(), Some(3));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
pub struct ControlClient {
    conn: Box<dyn Conn>,
    /// Bytes read past the last reply's newline.
    pending: Vec<u8>,
    timeout: Option<Duration>,
    info: ServerInfo,
}

/// Why a client could not connect or talk to a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing listens on that TCP address.
    #[error("no control server is listening at {addr} ({source}); is the program running, and serving on that port?")]
    NotListening {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No file at that path.
    #[error("no socket at `{}`; check the path the program serves on", path.display())]
    NoSocket {
        /// The path.
        path: PathBuf,
    },
    /// The file at that path is not a socket.
    #[error("`{}` is not a socket; check the path the program serves on", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A socket file no server accepts on (left by a program that exited).
    #[error("nobody accepts connections on `{}` (a server that exited?)", path.display())]
    StaleSocket {
        /// The path.
        path: PathBuf,
    },
    /// The server refused the session: bad token, too many sessions, and so on.
    #[error("the server refused the session: {message} ({kind})")]
    Refused {
        /// The error kind (`auth_failed`, `busy`, ...).
        kind: ErrorKind,
        /// The server's message.
        message: String,
    },
    /// The server closed the connection (or it broke).
    #[error("the server closed the connection")]
    Closed,
    /// No reply within the timeout set with [`ControlClient::set_timeout`].
    #[error("no reply from the server within {0:?}")]
    TimedOut(Duration),
    /// [`ControlClient::request_until`] gave up waiting, as asked. The reply may still come,
    /// so the session is out of step: connect again.
    #[error("interrupted while waiting for the reply")]
    Interrupted,
    /// The server sent something that is not a protocol reply.
    #[error("the server's reply is not valid protocol: {0}")]
    Protocol(String),
    /// Another I/O error.
    #[error("control connection: {0}")]
    Io(#[from] io::Error),
}

impl ControlClient {
    /// Connects over TCP and says hello, with `token` if the server needs one.
    pub fn connect_tcp(addr: impl ToSocketAddrs, token: Option<&str>) -> Result<Self, ClientError> {
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        let shown = addrs
            .first()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, Duration::from_secs(5)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Self::greet(Box::new(s), token);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ClientError::NotListening {
            addr: shown,
            source: last.unwrap_or_else(|| io::ErrorKind::NotFound.into()),
        })
    }

    /// Connects to a Unix socket and says hello, with `token` if the server needs one.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn connect_unix(path: impl AsRef<Path>, token: Option<&str>) -> Result<Self, ClientError> {
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClientError::NoSocket { path: path.into() })
            }
            Ok(m) if !m.file_type().is_socket() => {
                return Err(ClientError::NotASocket { path: path.into() })
            }
            _ => {}
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => Self::greet(Box::new(s), token),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Err(ClientError::StaleSocket { path: path.into() })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn greet(conn: Box<dyn Conn>, token: Option<&str>) -> Result<Self, ClientError> {
        let mut client = Self {
            conn,
            pending: Vec::new(),
            timeout: None,
            info: ServerInfo {
                server: String::new(),
                version: 0,
                pool: String::new(),
                kind: super::protocol::PoolKind::Task,
                commands: Vec::new(),
                jobs: Vec::new(),
                job_args: Default::default(),
                custom_commands: Vec::new(),
                limits: None,
            },
        };
        let hello = Command::Hello {
            version: PROTOCOL_VERSION,
            token: token.map(str::to_owned),
            client: Some(concat!("async-taskpool ", env!("CARGO_PKG_VERSION")).into()),
        };
        match client.request(&hello)? {
            Reply::Ok { value, .. } => {
                client.info = serde_json::from_value(value)
                    .map_err(|e| ClientError::Protocol(format!("bad hello reply: {e}")))?;
                Ok(client)
            }
            Reply::Error { kind, message, .. } => Err(ClientError::Refused { kind, message }),
        }
    }

    /// What the server said about itself and the pool.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// Bounds how long a reply may take (`None`: wait for ever, the default, which
    /// `until-closed` needs).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a reply timeout must be longer than zero",
            )));
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Sends one command and reads its reply. Error replies are `Ok(Reply::Error {..})`:
    /// the session goes on after them.
    pub fn request(&mut self, command: &Command) -> Result<Reply, ClientError> {
        self.request_until(command, || false)
    }

    /// Like [`request`](Self::request), but gives up with [`ClientError::Interrupted`] as
    /// soon as `give_up()` returns `true` (it is asked every 50 ms while the reply is
    /// awaited), e.g. when the user pressed Ctrl-C during `until-closed`. After that the
    /// session is out of step (the reply may still come): drop this client, which tells
    /// the server by closing the connection (it then ends the wait), and connect again.
    pub fn request_until(
        &mut self,
        command: &Command,
        mut give_up: impl FnMut() -> bool,
    ) -> Result<Reply, ClientError> {
        let mut line =
            serde_json::to_string(command).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        let sent = self
            .conn
            .write_all(line.as_bytes())
            .and_then(|()| self.conn.flush());
        let line = match (sent, self.read_line(&mut give_up)) {
            (_, Ok(line)) => line,
            // A server that refused us may have closed before our request arrived: its
            // refusal, already received, says more than the broken pipe.
            (Err(e), Err(_)) => return Err(closed_or(e)),
            (Ok(()), Err(e)) => return Err(e),
        };
        serde_json::from_slice(&line).map_err(|e| {
            ClientError::Protocol(format!(
                "{e}: {}",
                String::from_utf8_lossy(&line).trim_end()
            ))
        })
    }

    /// The next line from the server, without its newline.
    fn read_line(&mut self, give_up: &mut dyn FnMut() -> bool) -> Result<Vec<u8>, ClientError> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut scanned = 0;
        loop {
            if let Some(i) = self.pending[scanned..].iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=scanned + i).collect();
                line.pop();
                return Ok(line);
            }
            scanned = self.pending.len();
            if give_up() {
                return Err(ClientError::Interrupted);
            }
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ClientError::TimedOut(self.timeout.unwrap_or_default()));
                    }
                    left.min(POLL)
                }
                None => POLL,
            };
            self.conn.set_read_timeout(Some(wait))?;
            let mut chunk = [0u8; 8192];
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(closed_or(e)),
            }
        }
    }
}

/// A broken connection is a closed one, to the user.
fn closed_or(e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => ClientError::Closed,
        _ => ClientError::Io(e),
    }
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("info", &self.info)
            .finish()
    }
}

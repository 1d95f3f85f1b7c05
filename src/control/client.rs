//! A blocking client of the control protocol: what `taskpool-ctl` uses, and what a Rust
//! program or test can use to steer a pool in another process.

use super::protocol::{Command, ErrorKind, Reply, ServerInfo, PROTOCOL_VERSION};
use super::transport::Conn;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    reader: BufReader<Box<dyn Conn>>,
    writer: Box<dyn Conn>,
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
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
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
        let writer = conn.try_clone_conn()?;
        let mut client = Self {
            reader: BufReader::new(conn),
            writer,
            info: ServerInfo {
                server: String::new(),
                version: 0,
                pool: String::new(),
                kind: super::protocol::PoolKind::Task,
                commands: Vec::new(),
                jobs: Vec::new(),
                job_args: Default::default(),
                custom_commands: Vec::new(),
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
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.reader.get_ref().set_read_timeout(timeout)?;
        Ok(())
    }

    /// Sends one command and reads its reply. Error replies are `Ok(Reply::Error {..})`:
    /// the session goes on after them.
    pub fn request(&mut self, command: &Command) -> Result<Reply, ClientError> {
        let mut line =
            serde_json::to_string(command).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        self.writer.flush()?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(ClientError::Closed);
        }
        serde_json::from_str(&reply)
            .map_err(|e| ClientError::Protocol(format!("{e}: {}", reply.trim_end())))
    }
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("info", &self.info)
            .finish()
    }
}

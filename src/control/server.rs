//! `ControlServer` (configuration, job registry) and `ServerHandle` (a running server).

use super::custom::CustomCommands;
use super::dispatch::{Context, StopSignal};
use super::jobs::Jobs;
use super::protocol::{ErrorKind, WireError, DEFAULT_MAX_LINE};
use super::session::{Config, Session};
use super::target::ControlTarget;
use super::transport::{Conn, Listener};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// A control server for one pool: operators start, stop, resize, lock and inspect the pool
/// from another terminal (with `taskpool-ctl` or asyncio-taskpool's Python client) or from
/// any program that writes JSON lines to a socket. `PROTOCOL.md` documents the protocol.
///
/// Configure it, register the jobs `apply` and `map` may start, then call
/// [`serve_tcp`](Self::serve_tcp) or [`serve_unix`](Self::serve_unix), which return a
/// [`ServerHandle`] at once; the server runs until the handle is shut down or dropped.
///
/// # How it runs, and why
/// The server uses std's blocking sockets on its own threads: one accepting thread, plus one
/// thread per session. It needs no runtime and no runtime IO types (tokio's panic outside a
/// tokio runtime), so it works the same whatever executor drives the pool, and it answers
/// however saturated that executor is: no server code waits for an executor thread.
/// Commands that wait (`flush`, `gather-and-close`, `until-closed`) block only their own
/// session's thread, on the pool's event listeners (`futures::executor::block_on`), while a
/// watcher thread polls the connection (on unix) so that a client hanging up ends the wait
/// and the session at once. The cost is a thread per connected client (two while one waits),
/// which the connection limit bounds.
///
/// # Guarantees
/// - TCP binds to loopback unless you pass another address, and then a token is required
///   ([`ControlError::TokenRequired`]); with a token set, every client must send it.
/// - A Unix socket is created with mode 0600 and removed on shutdown; a stale socket file
///   from a crashed run is replaced, a live one or a non-socket file is an error.
/// - Bad input (malformed JSON, unknown commands, wrong argument types, lines over the
///   bound, commands on a closed pool) gets an error reply and the session goes on. Input
///   never panics the server.
/// - At most [`max_connections`](Self::max_connections) sessions at once; extra clients get
///   a `busy` error and are closed. A session with no complete request for
///   [`idle_timeout`](Self::idle_timeout) is closed. A slow or vanished client only ever
///   holds its own thread; one that hangs up while its command waits frees its thread and
///   slot within ~0.1 s (on unix; elsewhere when the wait ends).
/// - Nothing from the wire is evaluated or loaded: `apply` and `map` run only jobs registered
///   with [`register`](Self::register), with arguments decoded by serde.
///
/// # When not to use it
/// It has no TLS: across machines, keep it on loopback or a Unix socket and tunnel (ssh), or
/// bind to a trusted network only, with a token. The server holds a handle to the pool, so
/// the pool is not closed by dropping your own handles while the server runs.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// use async_taskpool::{control::ControlServer, runtime::TokioSpawner, TaskPool};
///
/// let pool = TaskPool::builder(TokioSpawner::current()).name("crawler").limit(4).build()?;
/// let server = ControlServer::new(&pool)
///     .register("fetch", |url: String| async move { url.len() })
///     .serve_tcp("127.0.0.1:0")?;               // port 0: any free port
/// println!("steer me with: taskpool-ctl tcp 127.0.0.1 {}", server.local_addr().unwrap().port());
/// server.shutdown();
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # }).unwrap(); }
/// ```
#[must_use = "a control server does nothing until `serve_tcp` or `serve_unix` is called"]
pub struct ControlServer {
    target: ControlTarget,
    jobs: Jobs,
    custom: CustomCommands,
    /// The first refused `command` registration, returned by `serve_*`.
    refused: Option<ControlError>,
    config: Config,
    max_connections: usize,
}

impl ControlServer {
    /// A server for `pool` (a [`TaskPool`](crate::TaskPool) or a
    /// [`SimpleTaskPool`](crate::SimpleTaskPool), or a reference to one), with no token, at
    /// most 16 sessions, a 5-minute idle timeout and a 64 KiB line bound.
    pub fn new(pool: impl Into<ControlTarget>) -> Self {
        Self {
            target: pool.into(),
            jobs: Jobs::default(),
            custom: CustomCommands::default(),
            refused: None,
            config: Config {
                token: None,
                idle_timeout: Duration::from_secs(300),
                max_line: DEFAULT_MAX_LINE,
                legacy: true,
            },
            max_connections: 16,
        }
    }

    /// Registers a job factory under `name`, for the `TaskPool` commands
    /// `apply NAME [ARGS_JSON] --num N` and `map NAME ARGS_JSON --num-concurrent N`.
    ///
    /// The argument type `A` is decoded from the request's JSON with serde; use `()` for a job
    /// without arguments (`apply NAME` sends `null`), a tuple or a struct for several. A
    /// request whose JSON does not fit `A` gets a `bad_args` error and starts nothing. Each
    /// `apply` task gets a clone of the one argument. The jobs' outputs are dropped.
    /// Registering a name again replaces the earlier job.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{control::ControlServer, runtime::SmolSpawner, TaskPool};
    /// use serde::Deserialize;
    ///
    /// #[derive(Clone, Deserialize)]
    /// struct Resize { path: String, width: u32 }
    ///
    /// let pool = TaskPool::new(SmolSpawner::global());
    /// let server = ControlServer::new(&pool)
    ///     .register("tick", |(): ()| async {})
    ///     .register("resize", |job: Resize| async move { (job.path, job.width) });
    /// // On the wire: `map resize [{"path":"a.png","width":64}] -n 2`
    /// # drop(server);
    /// # }
    /// ```
    pub fn register<A, F, Fut>(mut self, name: impl AsRef<str>, factory: F) -> Self
    where
        A: DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.jobs.register(name.as_ref(), factory);
        self
    }

    /// Adds a command that clients can call by `name`; `help` is its one-line description shown by `help`.
    ///
    /// On the wire it is `{"cmd": "<name>", "args": <any JSON>}` (`args` defaults to `null`),
    /// typed as `NAME [ARGS_JSON]` in `taskpool-ctl` and asyncio-taskpool's client. The
    /// handler gets `args` and its future runs as a task on the pool's executor (through the
    /// pool's [`Spawner`](crate::runtime::Spawner)), so runtime I/O such as a database query
    /// works inside it; it is not a pool task, so it runs even when the pool is full, locked
    /// or closed. The session waits for it like for `flush`: `Ok(value)` is the reply's
    /// `value`, `Err(message)` an error reply of kind `command_failed` (as is a panic, caught).
    /// If the client hangs up or the server stops first, the handler's future is dropped.
    ///
    /// `name` must be 1 to 64 characters: a lowercase letter, then lowercase letters, digits,
    /// `-`, `_`, `.` or `:`, and not a built-in command (`stats`, `help`, `hello`, ...) nor
    /// one of `taskpool-ctl`'s own words (`watch`, `exit`, `quit`). A name that breaks these
    /// rules is not added and makes [`serve_tcp`](Self::serve_tcp) and
    /// [`serve_unix`](Self::serve_unix) return [`ControlError::InvalidCommand`]. Adding a
    /// name again replaces the earlier command. Custom commands are listed by `help`, in the
    /// hello's `commands` and `custom_commands`, and completed by `taskpool-ctl`.
    ///
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// # let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    /// # rt.block_on(async {
    /// use async_taskpool::control::{protocol::Command, ControlClient, ControlServer};
    /// use async_taskpool::{runtime::TokioSpawner, TaskPool};
    /// use serde_json::{json, Value};
    ///
    /// let pool = TaskPool::builder(TokioSpawner::current()).name("mailer").build()?;
    /// let server = ControlServer::new(&pool)
    ///     .command("queue-stats", "Jobs waiting per queue.", |args: Value| async move {
    ///         let queue = args["queue"].as_str().ok_or("give {\"queue\": NAME}")?.to_owned();
    ///         Ok(json!({ "queue": queue, "waiting": 3 })) // e.g. a database query
    ///     })
    ///     .serve_tcp("127.0.0.1:0")?;
    ///
    /// let addr = server.local_addr().unwrap();
    /// let reply = tokio::task::spawn_blocking(move || {
    ///     let mut ctl = ControlClient::connect_tcp(addr, None)?;
    ///     ctl.request(&Command::Custom { name: "queue-stats".into(), args: json!({"queue": "mail"}) })
    /// }).await??;
    /// assert_eq!(reply, async_taskpool::control::protocol::Reply::ok(json!({"queue": "mail", "waiting": 3})));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// # }).unwrap(); }
    /// ```
    pub fn command<F, Fut>(mut self, name: &str, help: &str, handler: F) -> Self
    where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, String>> + Send + 'static,
    {
        if let Err(why) = self.custom.add(name, help, handler) {
            self.refused.get_or_insert(ControlError::InvalidCommand {
                name: name.to_owned(),
                why,
            });
        }
        self
    }

    /// Requires every client to send this token in its hello. Required when TCP binds to a
    /// non-loopback address. asyncio-taskpool's client cannot send one, so it is refused.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into());
        self
    }

    /// At most this many sessions at once (default 16; at least 1). A session waiting in
    /// `until-closed` counts; further clients get a `busy` error.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Closes a session that sends no complete request for this long (default 5 minutes).
    /// Commands that wait (`until-closed`) do not count as idle.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// The longest request line accepted, in bytes (default 64 KiB; at least 1 KiB). Longer
    /// lines get a `line_too_long` error; they are skipped, never stored.
    pub fn max_line_len(mut self, bytes: usize) -> Self {
        self.config.max_line = bytes;
        self
    }

    /// Whether asyncio-taskpool's Python client may connect (default `true`; it can never
    /// connect to a server with a token).
    pub fn python_clients(mut self, allow: bool) -> Self {
        self.config.legacy = allow;
        self
    }

    fn check(&mut self) -> Result<(), ControlError> {
        if let Some(refused) = self.refused.take() {
            return Err(refused);
        }
        let bad = |what: &str| {
            Err(ControlError::InvalidConfig {
                what: what.to_owned(),
            })
        };
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.config.idle_timeout.is_zero() {
            return bad("idle_timeout must be longer than zero");
        }
        if self.config.max_line < 1024 {
            return bad("max_line_len must be at least 1024 bytes");
        }
        if self.config.token.as_deref() == Some("") {
            return bad("the token must not be empty");
        }
        Ok(())
    }

    /// Listens on TCP at `addr` (e.g. `"127.0.0.1:9999"`; port 0 picks a free port) and
    /// returns at once.
    ///
    /// Errors: [`ControlError::TokenRequired`] for a non-loopback address without a
    /// [`token`](Self::token); [`ControlError::Io`] if the address cannot be bound.
    pub fn serve_tcp(mut self, addr: impl ToSocketAddrs) -> Result<ServerHandle, ControlError> {
        self.check()?;
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| ControlError::Io {
                what: "resolving the control address".into(),
                source: e,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(ControlError::Io {
                what: "resolving the control address".into(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
            });
        }
        if self.config.token.is_none() {
            if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(ControlError::TokenRequired { addr: *a });
            }
        }
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| ControlError::Io {
            what: format!("binding the control server to {addrs:?}"),
            source: e,
        })?;
        self.start(Listener::Tcp(listener))
    }

    /// Listens on a Unix socket at `path`, created with mode 0600 and removed on shutdown,
    /// and returns at once.
    ///
    /// Errors: [`ControlError::SocketInUse`] if a server already listens there,
    /// [`ControlError::NotASocket`] if `path` is another kind of file (it is left alone),
    /// [`ControlError::SocketPathTooLong`] if `path` does not fit in a socket address,
    /// [`ControlError::Io`] otherwise.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn serve_unix(mut self, path: impl AsRef<Path>) -> Result<ServerHandle, ControlError> {
        self.check()?;
        let listener = super::transport::bind_unix(path.as_ref())?;
        self.start(listener)
    }

    fn start(self, listener: Listener) -> Result<ServerHandle, ControlError> {
        let shared = Arc::new(Shared {
            ctx: Context {
                target: self.target,
                jobs: self.jobs,
                custom: self.custom,
                stop: StopSignal::default(),
            },
            config: self.config,
            max_connections: self.max_connections,
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            sessions: Mutex::default(),
        });
        let listener = Arc::new(listener);
        let where_ = listener.describe();
        tracing::info!(pool = shared.ctx.target.pool().name(), at = %where_, "control server listening");
        let (s, l) = (shared.clone(), listener.clone());
        let acceptor = std::thread::Builder::new()
            .name("taskpool-control".into())
            .spawn(move || accept_loop(&s, &l))
            .map_err(|e| ControlError::Io {
                what: "starting the control server's thread".into(),
                source: e,
            })?;
        Ok(ServerHandle {
            shared,
            listener,
            acceptor: Some(acceptor),
        })
    }
}

impl fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlServer")
            .field("target", &self.target)
            .field("jobs", &self.jobs.names())
            .field(
                "commands",
                &self.custom.list().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.config.idle_timeout)
            .field("max_line", &self.config.max_line)
            .field("token", &self.config.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

struct SessionSlot {
    conn: Box<dyn Conn>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    ctx: Context,
    config: Config,
    max_connections: usize,
    active: AtomicUsize,
    next_id: AtomicU64,
    sessions: Mutex<HashMap<u64, SessionSlot>>,
}

impl Shared {
    fn sessions(&self) -> MutexGuard<'_, HashMap<u64, SessionSlot>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends a session's bookkeeping even if the session thread panics.
struct Leave<'a>(&'a Shared, u64);
impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.sessions().remove(&self.1);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &Listener) {
    loop {
        let accepted = listener.accept();
        if shared.ctx.stop.is_stopped() {
            return;
        }
        let (mut conn, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("control server could not accept a connection: {e}");
                // Out of file descriptors and similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.max_connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(session = id, peer = %peer, "control client refused: too many sessions");
            let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
            let busy = WireError::new(
                ErrorKind::Busy,
                format!(
                    "the server already has {} sessions, its limit; try again later",
                    shared.max_connections
                ),
            );
            let _ = conn.write_all(super::protocol::Reply::from(busy).to_line().as_bytes());
            conn.shutdown_both();
            continue;
        }
        tracing::info!(session = id, peer = %peer, "control session connected");
        let clone = match conn.try_clone_conn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(session = id, "control session dropped: {e}");
                shared.active.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
        };
        // Register before the thread starts, so shutdown always finds it.
        let mut sessions = shared.sessions();
        sessions.insert(
            id,
            SessionSlot {
                conn: clone,
                thread: None,
            },
        );
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("taskpool-control-{id}"))
            .spawn(move || {
                let _leave = Leave(&s, id);
                Session {
                    ctx: &s.ctx,
                    cfg: &s.config,
                    id,
                    hung_up: Default::default(),
                }
                .run(conn);
            });
        match spawned {
            Ok(handle) => {
                if let Some(slot) = sessions.get_mut(&id) {
                    slot.thread = Some(handle);
                }
            }
            Err(e) => {
                tracing::warn!(session = id, "control session dropped: no thread: {e}");
                sessions.remove(&id);
                shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// A running control server. [`shutdown`](Self::shutdown) or drop it to stop the server:
/// it stops accepting, closes every session (a session waiting in `until-closed` or
/// `gather-and-close` gets a `shutting_down` error), waits for their threads, and removes
/// its Unix socket file. The pool itself is left as it is.
///
/// Stopping waits at most the write timeout (10 s) for a session whose client stopped
/// reading in the middle of a reply.
pub struct ServerHandle {
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    acceptor: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The TCP address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr()
    }

    /// The Unix socket path the server listens on.
    pub fn socket_path(&self) -> Option<&Path> {
        self.listener.socket_path()
    }

    /// The number of sessions open now.
    pub fn num_sessions(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Stops the server and waits until its threads have ended.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.ctx.stop.stop();
        match self.listener.wake() {
            Ok(()) => {
                let _ = acceptor.join();
            }
            // The acceptor ends at its next accept; don't wait for it.
            Err(e) => tracing::warn!("could not wake the control server's thread: {e}"),
        }
        // Shutting the read side ends sessions waiting for a request; a session waiting in
        // the pool wakes on the stop signal and can still write its `shutting_down` reply.
        let threads: Vec<JoinHandle<()>> = {
            let mut sessions = self.shared.sessions();
            sessions
                .values_mut()
                .filter_map(|s| {
                    s.conn.shutdown_read();
                    s.thread.take()
                })
                .collect()
        };
        for t in threads {
            let _ = t.join();
        }
        tracing::info!(
            pool = self.shared.ctx.target.pool().name(),
            "control server stopped"
        );
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("at", &self.listener.describe())
            .field("sessions", &self.num_sessions())
            .finish()
    }
}

/// Why a control server could not start.
///
/// ```
/// # #[cfg(feature = "smol")] {
/// use async_taskpool::{control::{ControlError, ControlServer}, runtime::SmolSpawner, TaskPool};
/// let pool = TaskPool::new(SmolSpawner::global());
/// let err = ControlServer::new(&pool).serve_tcp("0.0.0.0:0").unwrap_err();
/// assert!(matches!(err, ControlError::TokenRequired { .. }));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// A non-loopback TCP address was asked for without a token.
    #[error(
        "refusing to serve on {addr} without a token: anyone who can reach it could steer the \
         pool; call `.token(..)` or bind to 127.0.0.1 / ::1"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Another server already listens on this Unix socket.
    #[error("a server already listens on `{}`; stop it or choose another path", path.display())]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The path exists and is not a socket; it was left alone.
    #[error("`{}` exists and is not a socket; remove it or choose another path", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The path is too long for a Unix socket address (`sun_path`).
    #[error(
        "`{}` is {len} bytes long; a Unix socket path can be at most {max}: choose a shorter \
         path (e.g. under /tmp or $XDG_RUNTIME_DIR)",
        path.display()
    )]
    SocketPathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The most this system allows.
        max: usize,
    },
    /// A [`ControlServer::command`] could not be added under that name.
    #[error("cannot add the control command `{name}`: {why}")]
    InvalidCommand {
        /// The name asked for.
        name: String,
        /// Why it was refused, and what to use instead.
        why: String,
    },
    /// A setting was out of range.
    #[error("invalid control server setting: {what}")]
    InvalidConfig {
        /// What was wrong.
        what: String,
    },
    /// The operating system refused.
    #[error("{what}: {source}")]
    Io {
        /// What the server was doing.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

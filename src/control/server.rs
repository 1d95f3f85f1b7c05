//! `ControlServer` (configuration, job registry) and `ServerHandle` (a running server).

use super::admission::{Admission, Refusals};
use super::custom::CustomCommands;
use super::dispatch::{Context, StopSignal};
use super::jobs::Jobs;
use super::protocol::Limits;
use super::session::{Config, Session, Shared};
use super::target::ControlTarget;
use super::transport::Listener;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
/// - No request makes the server allocate or start more than a bound allows: every count
///   and list from the wire is checked against [`max_count`](Self::max_count),
///   [`max_pool_size`](Self::max_pool_size) and [`tasks_page`](Self::tasks_page) before
///   anything runs (an `over_limit` error past them), and lines against
///   [`max_line_len`](Self::max_line_len).
/// - No client can lock operators out: connections that have not said hello have a budget
///   of their own ([`max_pending`](Self::max_pending); a new one pushes out the one that
///   waited longest) and [`hello_timeout`](Self::hello_timeout) to say it; at most
///   [`max_connections`](Self::max_connections) sessions that said hello, a hello past that
///   gets `busy`. A refused token is answered after [`refusal_delay`](Self::refusal_delay),
///   doubling per refusal from the same peer. Every refusal is sent in reply to the hello
///   and lingered over, so the client reads it instead of a reset connection.
/// - A session with no complete request for [`idle_timeout`](Self::idle_timeout) is
///   closed; a reply not read within [`write_timeout`](Self::write_timeout) ends its
///   session. A slow or vanished client only ever holds its own thread; one that hangs up
///   while its command waits frees its thread and slot within ~0.1 s (on unix; elsewhere
///   when the wait ends).
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
    limits: Limits,
    max_connections: usize,
    /// `None`: twice `max_connections`, at least 32.
    max_pending: Option<usize>,
}

impl ControlServer {
    /// A server for `pool` (a [`TaskPool`](crate::TaskPool) or a
    /// [`SimpleTaskPool`](crate::SimpleTaskPool), or a reference to one), with no token and
    /// these defaults:
    ///
    /// | setting | default |
    /// |---|---|
    /// | [`max_connections`](Self::max_connections) (sessions that said hello) | 16 |
    /// | [`max_pending`](Self::max_pending) (connections yet to say hello) | twice `max_connections`, at least 32 |
    /// | [`hello_timeout`](Self::hello_timeout) | 5 s |
    /// | [`idle_timeout`](Self::idle_timeout) | 5 minutes |
    /// | [`write_timeout`](Self::write_timeout) (one whole reply) | 10 s |
    /// | [`refusal_delay`](Self::refusal_delay) (first refused token; doubles per refusal, to 32x) | 1 s |
    /// | [`max_line_len`](Self::max_line_len) | 64 KiB |
    /// | [`max_count`](Self::max_count) (tasks or list items per request) | 10,000 |
    /// | [`max_pool_size`](Self::max_pool_size) | 1,000,000 |
    /// | [`tasks_page`](Self::tasks_page) (default, maximum) | 100, 1,000 |
    pub fn new(pool: impl Into<ControlTarget>) -> Self {
        Self {
            target: pool.into(),
            jobs: Jobs::default(),
            custom: CustomCommands::default(),
            refused: None,
            config: Config {
                token: None,
                idle_timeout: Duration::from_secs(300),
                hello_timeout: Duration::from_secs(5),
                write_timeout: Duration::from_secs(10),
                refusal_delay: Duration::from_secs(1),
                legacy: true,
            },
            limits: Limits::default(),
            max_connections: 16,
            max_pending: None,
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

    /// At most this many sessions that said hello at once (default 16; at least 1). A
    /// session waiting in `until-closed` counts; a hello past the limit gets a `busy` error
    /// and the connection is closed. Connections that have not said hello yet do not count
    /// here (see [`max_pending`](Self::max_pending)), so they can never lock operators out.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// At most this many connections that have not said hello yet (default: twice
    /// [`max_connections`](Self::max_connections), at least 32; at least 1). When they are
    /// all taken, a new connection takes the place of the one that has waited longest, which
    /// gets a `busy` error and is closed: a flood of silent or garbage connections cannot
    /// keep an operator from connecting. Make it larger than the bursts of clients you expect
    /// to connect at once.
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = Some(max);
        self
    }

    /// A connection must complete its hello within this long of connecting (default 5 s),
    /// or it gets a `hello_timeout` error and is closed.
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.config.hello_timeout = timeout;
        self
    }

    /// Closes a session that sends no complete request for this long (default 5 minutes).
    /// Commands that wait (`until-closed`) do not count as idle.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// The most one whole reply may take to be read by the client (default 10 s). A client
    /// that reads more slowly, or not at all, loses its session; it never holds up others,
    /// nor [`ServerHandle::shutdown`] for longer than this.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// How long the first refused token from one peer (IP address, or any Unix socket
    /// peer) waits for its `auth_failed` reply (default 1 s). Each further refusal from that
    /// peer within 10 minutes waits twice as long, up to 32 times this; a right token is
    /// never delayed. Refusals are logged (warn) with the peer and its count.
    pub fn refusal_delay(mut self, delay: Duration) -> Self {
        self.config.refusal_delay = delay;
        self
    }

    /// The longest request line accepted, in bytes (default 64 KiB; at least 1 KiB). Longer
    /// lines get a `line_too_long` error; they are skipped, never stored.
    pub fn max_line_len(mut self, bytes: usize) -> Self {
        self.limits.max_line_len = bytes;
        self
    }

    /// The most tasks one request may start, stop or run at once (`start NUM`, `stop NUM`,
    /// `apply --num N`, `map --num-concurrent N`, a group's cap `group-settings
    /// --num-concurrent N`), and the most items a list in one request
    /// may hold (`map`'s arguments, `cancel`'s ids, `get-group-ids`' names). Default 10,000;
    /// at least 1. A request past it gets an `over_limit` error and changes nothing.
    pub fn max_count(mut self, max: usize) -> Self {
        self.limits.max_count = max;
        self
    }

    /// The highest limit `pool-size N` may set (default 1,000,000; at least 1). `pool-size
    /// inf` (no limit) is always allowed.
    pub fn max_pool_size(mut self, max: usize) -> Self {
        self.limits.max_pool_size = max;
        self
    }

    /// The highest weight a client may set (`group-settings --weight W`, `pool-settings
    /// --loose-weight W`; default 1,000, at least 1). A weight past it gets an `over_limit`
    /// error and changes nothing; the program itself may set any weight.
    ///
    /// ```
    /// # #[cfg(feature = "smol")] {
    /// use async_taskpool::{control::ControlServer, runtime::SmolSpawner, TaskPool};
    /// let pool = TaskPool::new(SmolSpawner::global());
    /// let server = ControlServer::new(&pool).max_weight(100).serve_tcp("127.0.0.1:0")?;
    /// # server.shutdown();
    /// # }
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_weight(mut self, max: u32) -> Self {
        self.limits.max_weight = max;
        self
    }

    /// How many tasks a `tasks` page holds when the request does not say (`default`,
    /// default 100), and at most (`max`, default 1,000; `default` at most `max`).
    pub fn tasks_page(mut self, default: usize, max: usize) -> Self {
        self.limits.default_page = default;
        self.limits.max_page = max;
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
        if self.max_pending == Some(0) {
            return bad("max_pending must be at least 1");
        }
        for (name, d) in [
            ("idle_timeout", self.config.idle_timeout),
            ("hello_timeout", self.config.hello_timeout),
            ("write_timeout", self.config.write_timeout),
        ] {
            if d.is_zero() {
                return bad(&format!("{name} must be longer than zero"));
            }
        }
        if self.limits.max_line_len < 1024 {
            return bad("max_line_len must be at least 1024 bytes");
        }
        if self.limits.max_count == 0 || self.limits.max_pool_size == 0 {
            return bad("max_count and max_pool_size must be at least 1");
        }
        if self.limits.max_weight == 0 {
            return bad("max_weight must be at least 1");
        }
        if self.limits.max_page == 0 || self.limits.default_page > self.limits.max_page {
            return bad(
                "tasks_page: the maximum must be at least 1, and the default at most the maximum",
            );
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

    fn pending_budget(&self) -> usize {
        self.max_pending
            .unwrap_or_else(|| self.max_connections.saturating_mul(2).max(32))
    }

    fn start(self, listener: Listener) -> Result<ServerHandle, ControlError> {
        let pending = self.pending_budget();
        let shared = Arc::new(Shared {
            ctx: Context {
                target: self.target,
                jobs: self.jobs,
                custom: self.custom,
                limits: self.limits,
                stop: StopSignal::default(),
            },
            admission: Admission::new(pending, self.max_connections),
            refusals: Refusals::new(self.config.refusal_delay),
            config: self.config,
            next_id: AtomicU64::new(0),
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
            .field("max_pending", &self.pending_budget())
            .field("hello_timeout", &self.config.hello_timeout)
            .field("idle_timeout", &self.config.idle_timeout)
            .field("write_timeout", &self.config.write_timeout)
            .field("limits", &self.limits)
            .field("token", &self.config.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Forgets a session even if its thread panics.
struct Leave<'a>(&'a Shared, u64);
impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.admission.remove(self.1);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &Listener) {
    loop {
        let accepted = listener.accept();
        if shared.ctx.stop.is_stopped() {
            return;
        }
        let (conn, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("control server could not accept a connection: {e}");
                // Out of file descriptors and similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let started = Instant::now();
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let clone = match conn.try_clone_conn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(session = id, "control session dropped: {e}");
                continue;
            }
        };
        let (evicted, pushed_out) = shared.admission.admit(id, clone);
        if let Some(old) = pushed_out {
            tracing::warn!(
                session = old,
                "control connection evicted: too many connections waiting to say hello"
            );
        }
        tracing::info!(session = id, peer = %peer.shown, "control session connected");
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("taskpool-control-{id}"))
            .spawn(move || {
                let _leave = Leave(&s, id);
                Session {
                    shared: &s,
                    id,
                    peer,
                    evicted,
                    started,
                    hung_up: Default::default(),
                }
                .run(conn);
            });
        match spawned {
            Ok(handle) => shared.admission.set_thread(id, handle),
            Err(e) => {
                tracing::warn!(session = id, "control session dropped: no thread: {e}");
                shared.admission.remove(id);
            }
        }
    }
}

/// A running control server. [`shutdown`](Self::shutdown) or drop it to stop the server:
/// it stops accepting, closes every session (a session waiting in `until-closed` or
/// `gather-and-close` gets a `shutting_down` error), waits for their threads, and removes
/// its Unix socket file. The pool itself is left as it is.
///
/// Stopping waits at most the [write timeout](ControlServer::write_timeout) (10 s unless
/// set) for a session whose client stopped reading in the middle of a reply, and at most
/// about a second for a refused client to read its refusal.
///
/// The server runs only as long as this handle lives: keep it (e.g. `let _server = ...`),
/// since `serve_tcp(addr)?;` alone would stop the server at the semicolon.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn serve(server: async_taskpool::control::ControlServer) -> Result<(), async_taskpool::control::ControlError> {
///     server.serve_tcp("127.0.0.1:0")?; // error: the handle is dropped and the server stops
///     Ok(())
/// }
/// ```
#[must_use = "the server stops when its `ServerHandle` is dropped: keep it, e.g. `let _server = ...`"]
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

    /// The number of connections open now: sessions, connections yet to say hello, and
    /// refused ones saying goodbye.
    pub fn num_sessions(&self) -> usize {
        self.shared.admission.count()
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
        let threads: Vec<JoinHandle<()>> = self.shared.admission.close_all();
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

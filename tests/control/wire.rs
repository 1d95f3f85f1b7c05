//! Blocking test clients of the control server, over real sockets.

use async_taskpool::control::{ControlServer, ServerHandle};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long any single read may block before the test fails instead of hanging.
pub const READ_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Tcp,
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix,
}

pub enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> Stream {
        match self {
            Self::Tcp(s) => Self::Tcp(s.try_clone().unwrap()),
            #[cfg(unix)]
            Self::Unix(s) => Self::Unix(s.try_clone().unwrap()),
        }
    }
    fn set_read_timeout(&self, d: Duration) {
        match self {
            Self::Tcp(s) => s.set_read_timeout(Some(d)).unwrap(),
            #[cfg(unix)]
            Self::Unix(s) => s.set_read_timeout(Some(d)).unwrap(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Self::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running server plus where to reach it; removes its temporary directory on drop.
pub struct Served {
    pub handle: Option<ServerHandle>,
    pub net: Net,
    pub dir: Option<PathBuf>,
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// A fresh, private directory for a socket.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tpc-test-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Served {
    pub fn start(server: ControlServer, net: Net) -> Served {
        match net {
            Net::Tcp => Served {
                handle: Some(server.serve_tcp("127.0.0.1:0").unwrap()),
                net,
                dir: None,
            },
            #[cfg(unix)]
            Net::Unix => {
                let dir = temp_dir();
                let handle = server.serve_unix(dir.join("ctl.sock")).unwrap();
                Served {
                    handle: Some(handle),
                    net,
                    dir: Some(dir),
                }
            }
            #[cfg(not(unix))]
            Net::Unix => unreachable!(),
        }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    /// A raw connection, no hello.
    pub fn connect(&self) -> Wire {
        let stream = match self.net {
            Net::Tcp => {
                Stream::Tcp(TcpStream::connect(self.handle().local_addr().unwrap()).unwrap())
            }
            #[cfg(unix)]
            Net::Unix => {
                Stream::Unix(UnixStream::connect(self.handle().socket_path().unwrap()).unwrap())
            }
            #[cfg(not(unix))]
            Net::Unix => unreachable!(),
        };
        stream.set_read_timeout(READ_LIMIT);
        Wire {
            writer: stream.try_clone(),
            reader: BufReader::new(stream),
        }
    }

    /// A connection that said hello, or `None` if the server refused it or could not be
    /// reached.
    #[allow(dead_code)]
    pub fn try_session(&self) -> Option<Wire> {
        let mut w = self.try_connect()?;
        w.writer
            .write_all(b"{\"cmd\":\"hello\",\"version\":1}\n")
            .ok()?;
        let reply: Value = serde_json::from_str(&w.recv_quiet()?).ok()?;
        (reply["status"] == "ok").then_some(w)
    }

    /// A raw connection, or `None` if the connect failed.
    #[allow(dead_code)]
    pub fn try_connect(&self) -> Option<Wire> {
        let stream = match self.net {
            Net::Tcp => Stream::Tcp(TcpStream::connect(self.handle().local_addr()?).ok()?),
            #[cfg(unix)]
            Net::Unix => Stream::Unix(UnixStream::connect(self.handle().socket_path()?).ok()?),
            #[cfg(not(unix))]
            Net::Unix => unreachable!(),
        };
        stream.set_read_timeout(READ_LIMIT);
        Some(Wire {
            writer: stream.try_clone(),
            reader: BufReader::new(stream),
        })
    }

    /// A connection that said hello.
    pub fn session(&self) -> Wire {
        let mut w = self.connect();
        let info = w.ok(r#"{"cmd":"hello","version":1}"#);
        assert_eq!(info["version"], 1);
        w
    }

    /// A session, once the server has a free slot: retries while it answers `busy` (or
    /// closes first), for up to 20 s; `why` says which slot should have been freed.
    pub fn session_when_free(&self, why: &str) -> Wire {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut w = self.connect();
            // A refused client may find the socket closed before its hello is written.
            let _ = w.writer.write_all(b"{\"cmd\":\"hello\",\"version\":1}\n");
            let first: Value = w.recv().map_or(serde_json::Value::Null, |l| {
                serde_json::from_str(&l).unwrap()
            });
            if first["status"] == "ok" {
                return w;
            }
            assert!(first.is_null() || first["kind"] == "busy", "{first}");
            assert!(std::time::Instant::now() < deadline, "{why}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub struct Wire {
    pub reader: BufReader<Stream>,
    pub writer: Stream,
}

impl Wire {
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next line, without its newline; `None` at EOF or when the server reset the
    /// connection.
    pub fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no reply within {READ_LIMIT:?}: {e}"),
        }
    }

    /// The next line, or `None` at EOF, on a reset or a timeout.
    #[allow(dead_code)]
    pub fn recv_quiet(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_owned()),
        }
    }

    /// Bounds how long reads block (at least 1 ms).
    #[allow(dead_code)]
    pub fn set_read_timeout(&self, d: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(d.max(Duration::from_millis(1)));
    }

    /// Sends one line, returns the parsed reply.
    pub fn req(&mut self, line: &str) -> Value {
        self.send_raw(format!("{line}\n").as_bytes());
        let reply = self.recv().expect("the server closed the connection");
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"))
    }

    /// Sends a request that must succeed; returns its value.
    pub fn ok(&mut self, line: &str) -> Value {
        let r = self.req(line);
        assert_eq!(r["status"], "ok", "{line} -> {r}");
        r["value"].clone()
    }

    /// Sends a request that must fail; returns its error kind.
    pub fn err(&mut self, line: &str) -> String {
        let r = self.req(line);
        assert_eq!(r["status"], "error", "{line} -> {r}");
        assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
        r["kind"].as_str().unwrap().to_owned()
    }
}

/// Runs blocking client code on its own thread, so the runtime stays free to run the pool's
/// tasks (a current-thread runtime has no other thread). Panics propagate.
pub async fn off<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.await.expect("client thread vanished") {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Waits on an async condition from a client thread.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

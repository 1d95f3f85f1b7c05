//! Listeners and connections over std sockets: TCP, and Unix sockets on unix.

use super::ControlError;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A connection the session thread owns; clones let the server shut it down from outside.
pub(crate) trait Conn: Read + Write + Send + 'static {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    fn shutdown_both(&self);
    fn shutdown_read(&self);
    fn shutdown_write(&self);
    fn try_clone_conn(&self) -> io::Result<Box<dyn Conn>>;
    /// Waits up to `wait` for the peer to hang up, consuming nothing: `Some(true)` if it
    /// closed its end (or the connection broke), `Some(false)` if it sent data instead,
    /// `None` if neither happened in time.
    fn peer_closed(&self, wait: Duration) -> Option<bool>;
}

/// [`Conn::peer_closed`] on unix: `poll` for readability, then peek one byte without waiting.
#[cfg(unix)]
fn peer_closed(fd: std::os::fd::BorrowedFd<'_>, wait: Duration) -> Option<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    use rustix::net::{recv, RecvFlags};
    let timeout = Timespec {
        tv_sec: wait.as_secs().try_into().unwrap_or(i64::MAX as _),
        tv_nsec: wait.subsec_nanos().into(),
    };
    match poll(&mut [PollFd::new(&fd, PollFlags::IN)], Some(&timeout)) {
        Ok(0) | Err(Errno::INTR) => return None,
        Ok(_) => {}
        Err(_) => return Some(true),
    }
    let mut byte = [0u8; 1];
    match recv(fd, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((0, _)) => Some(true),
        Ok(_) => Some(false),
        Err(Errno::AGAIN | Errno::INTR) => None,
        Err(_) => Some(true),
    }
}

impl Conn for TcpStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, d)
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn shutdown_read(&self) {
        let _ = self.shutdown(Shutdown::Read);
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
    fn try_clone_conn(&self) -> io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
    #[cfg(unix)]
    fn peer_closed(&self, wait: Duration) -> Option<bool> {
        peer_closed(std::os::fd::AsFd::as_fd(self), wait)
    }
    /// Not watched off unix: the session notices when it next writes.
    #[cfg(not(unix))]
    fn peer_closed(&self, wait: Duration) -> Option<bool> {
        std::thread::sleep(wait);
        None
    }
}

#[cfg(unix)]
impl Conn for std::os::unix::net::UnixStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, d)
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn shutdown_read(&self) {
        let _ = self.shutdown(Shutdown::Read);
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
    fn try_clone_conn(&self) -> io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn peer_closed(&self, wait: Duration) -> Option<bool> {
        peer_closed(std::os::fd::AsFd::as_fd(self), wait)
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// For logs: `ip:port`, or `unix socket peer`.
    pub(crate) shown: String,
    /// What refused tokens are counted against: the IP address (every Unix socket peer
    /// shares one key: they are local users the socket's 0600 mode already admits).
    pub(crate) key: String,
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener, UnixSocketFile),
}

impl Listener {
    /// The next connection and its peer.
    pub(crate) fn accept(&self) -> io::Result<(Box<dyn Conn>, Peer)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept()?;
                let _ = s.set_nodelay(true);
                let who = Peer {
                    shown: peer.to_string(),
                    key: peer.ip().to_string(),
                };
                Ok((Box::new(s), who))
            }
            #[cfg(unix)]
            Self::Unix(l, _) => {
                let (s, _) = l.accept()?;
                let who = Peer {
                    shown: "unix socket peer".to_owned(),
                    key: "unix socket".to_owned(),
                };
                Ok((Box::new(s), who))
            }
        }
    }

    /// Unblocks a thread sitting in `accept` by connecting to ourselves.
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self {
            Self::Tcp(l) => {
                let mut addr = l.local_addr()?;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(drop)
            }
            #[cfg(unix)]
            Self::Unix(_, file) => std::os::unix::net::UnixStream::connect(&file.path).map(drop),
        }
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            #[cfg(unix)]
            Self::Unix(..) => None,
        }
    }

    pub(crate) fn socket_path(&self) -> Option<&Path> {
        match self {
            Self::Tcp(_) => None,
            #[cfg(unix)]
            Self::Unix(_, f) => Some(&f.path),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match (self.local_addr(), self.socket_path()) {
            (Some(a), _) => a.to_string(),
            (_, Some(p)) => p.display().to_string(),
            _ => "?".into(),
        }
    }
}

/// The socket file we created, identified by device and inode so that shutdown removes it
/// only if it is still ours.
#[cfg(unix)]
pub(crate) struct UnixSocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), "could not remove the control socket: {e}");
                }
            }
        }
    }
}

/// A hidden name of `len` bytes (at least 2): a dot and random lowercase letters and digits,
/// from std's randomly keyed SipHash (keys from the OS's random source, secret to this
/// process), so other users cannot predict it.
#[cfg(unix)]
fn random_name(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut name = String::from(".");
    let mut bits = 0u64;
    for i in 0..len.saturating_sub(1) {
        if i % 12 == 0 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            h.write_u32(std::process::id());
            if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                h.write_u128(t.as_nanos());
            }
            bits = h.finish();
        }
        name.push(char::from(ALPHABET[(bits % 36) as usize]));
        bits /= 36;
    }
    name
}

/// Binds a Unix socket at `path` with mode 0600.
///
/// The socket is bound inside a fresh directory of mode 0700 next to `path`, made 0600, and
/// then hard-linked into place, so no other user can ever connect through a window of wider
/// permissions, and an existing file is never overwritten (the link fails instead).
/// A socket file left by a crashed run (nobody accepts on it) is removed first; a socket
/// someone still listens on, or a file that is not a socket, is an error.
#[cfg(unix)]
pub(crate) fn bind_unix(path: &Path) -> Result<Listener, ControlError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};

    let io_err = |what: &str, e: io::Error| ControlError::Io {
        what: format!("{what} `{}`", path.display()),
        source: e,
    };
    // `sun_path` holds 108 bytes on Linux (104 on the BSDs), the terminating NUL included.
    // The socket is bound at a shorter staging path and linked into place, so a longer
    // path would bind but not be reachable: refuse it up front.
    const MAX: usize = if cfg!(any(target_os = "linux", target_os = "android")) {
        107
    } else {
        103
    };
    let len = path.as_os_str().len();
    if len > MAX {
        return Err(ControlError::SocketPathTooLong {
            path: path.to_owned(),
            len,
            max: MAX,
        });
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket {
                path: path.to_owned(),
            });
        }
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(ControlError::SocketInUse {
                    path: path.to_owned(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing a stale control socket left by an earlier run");
                std::fs::remove_file(path).map_err(|e| io_err("removing the stale socket", e))?;
            }
            Err(e) => return Err(io_err("checking the existing socket", e)),
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // The staging directory has an unpredictable name (made like `mkdtemp`: created 0700,
    // never reused, a new name tried when one exists), so another local user cannot
    // squat it in advance. The staging path must fit in `sun_path` wherever `path` does:
    // the name is as long as the room left allows, up to 16 bytes.
    let room = MAX.saturating_sub(parent.as_os_str().len() + 3);
    let name_len = room.min(16);
    let mut tries = 0;
    let private = loop {
        let private = parent.join(random_name(name_len.max(2)));
        match std::fs::DirBuilder::new().mode(0o700).create(&private) {
            Ok(()) => break private,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(e) => return Err(io_err("creating a private directory beside", e)),
        }
    };
    let staged = private.join("s");
    let bound = UnixListener::bind(&staged).and_then(|l| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::hard_link(&staged, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    let listener = match bound {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ControlError::SocketInUse {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io_err("binding the control socket", e)),
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err("reading", e))?;
    Ok(Listener::Unix(
        listener,
        UnixSocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

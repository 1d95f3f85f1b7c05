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
    fn try_clone_conn(&self) -> io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn peer_closed(&self, wait: Duration) -> Option<bool> {
        peer_closed(std::os::fd::AsFd::as_fd(self), wait)
    }
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener, UnixSocketFile),
}

impl Listener {
    /// The next connection and a description of its peer.
    pub(crate) fn accept(&self) -> io::Result<(Box<dyn Conn>, String)> {
        match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), peer.to_string()))
            }
            #[cfg(unix)]
            Self::Unix(l, _) => {
                let (s, _) = l.accept()?;
                Ok((Box::new(s), "unix socket peer".to_owned()))
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
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
    // The staging path must fit in `sun_path` (~108 bytes) wherever `path` does, so its
    // directory name is as short as can be (`.N`, 4 + digits bytes with the `/s`): never
    // longer than a final name of 4 or more bytes. Names taken by other binds (or left by a
    // crash) are skipped.
    let mut tries = 0;
    let private = loop {
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let private = parent.join(format!(".{n}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&private) {
            Ok(()) => break private,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 1000 => tries += 1,
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

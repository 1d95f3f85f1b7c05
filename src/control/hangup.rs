//! Noticing that a client hung up while its session waits on the pool.
//!
//! A session blocked in `until-closed`, `join` or `gather-and-close` reads nothing, so a
//! client that vanishes would hold its thread and connection slot until the wait ended. While
//! such a command waits, a watcher thread polls the connection (without reading it) and, when
//! the peer has closed its end, ends the wait; the session then closes. A client that sends
//! more lines meanwhile is alive: the watcher stops, and those lines are read after the reply.

use super::transport::Conn;
use crate::signal::Signal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the watcher checks that the command is still waiting: it exits at most this
/// long after the command ends.
const POLL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Shared {
    gone: Signal,
    done: AtomicBool,
}

/// Watches one waiting command's connection; dropping it stops the watch.
pub(crate) struct Hangup(Arc<Shared>);

impl Hangup {
    /// Starts watching `conn`; `None` if it cannot be cloned or no thread can be started
    /// (the wait then simply goes unwatched).
    pub(crate) fn watch(conn: &dyn Conn, session: u64) -> Option<Self> {
        let watched = conn.try_clone_conn().ok()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("taskpool-control-watch-{session}"))
            .spawn(move || {
                while !s.done.load(Ordering::SeqCst) {
                    match watched.peer_closed(POLL) {
                        None => {}
                        Some(false) => return,
                        Some(true) => {
                            s.gone.set();
                            return;
                        }
                    }
                }
            })
            .ok()?;
        Some(Self(shared))
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.0.gone.is_set()
    }

    /// Resolves once the client has hung up.
    pub(crate) async fn wait(&self) {
        self.0.gone.wait().await
    }
}

impl Drop for Hangup {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::SeqCst);
    }
}

//! Who may hold a connection, and for how long: two budgets, so that connections that have
//! not said hello (silent, garbage, slow or hostile) never take the places of sessions that
//! have, plus a back-off for refused tokens.
//!
//! - A connection starts *pending*. At most `max_pending` are pending at once; a new one
//!   takes the place of the pending connection that has waited longest (which is told `busy`
//!   and closed), so a flood of connections that never say hello cannot keep an operator
//!   from connecting. Each must say hello within the hello timeout.
//! - A hello moves it to *active*; at most `max_active` sessions are active, and a hello past
//!   that is answered `busy`.
//! - A connection on its way out is *leaving*: it holds neither budget while it says goodbye.

use super::transport::Conn;
use crate::sync::lock::{lock, Locked, Rank};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Pending,
    Active,
    Leaving,
}

struct Slot {
    /// A clone of the connection, so the server can shut it from outside.
    conn: Box<dyn Conn>,
    thread: Option<JoinHandle<()>>,
    state: SessionState,
    evicted: Arc<AtomicBool>,
}

#[derive(Default)]
struct Slots {
    by_id: HashMap<u64, Slot>,
    pending: usize,
    active: usize,
}

impl Slots {
    fn count_mut(&mut self, state: SessionState) -> Option<&mut usize> {
        match state {
            SessionState::Pending => Some(&mut self.pending),
            SessionState::Active => Some(&mut self.active),
            SessionState::Leaving => None,
        }
    }

    fn set_state(&mut self, id: u64, to: SessionState) {
        let Some(slot) = self.by_id.get_mut(&id) else {
            return;
        };
        let from = std::mem::replace(&mut slot.state, to);
        if let Some(n) = self.count_mut(from) {
            *n -= 1;
        }
        if let Some(n) = self.count_mut(to) {
            *n += 1;
        }
    }
}

/// The connections of one server.
pub(crate) struct Admission {
    slots: Mutex<Slots>,
    max_pending: usize,
    max_active: usize,
    /// Connections saying goodbye slowly (see [`Admission::may_linger`]).
    lingering: AtomicUsize,
}

/// How many connections may linger at once; past that, goodbyes are abrupt.
const MAX_LINGERING: usize = 64;

impl Admission {
    pub(crate) fn new(max_pending: usize, max_active: usize) -> Self {
        Self {
            slots: Mutex::default(),
            max_pending,
            max_active,
            lingering: AtomicUsize::new(0),
        }
    }

    fn slots(&self) -> Locked<'_, Slots> {
        lock(&self.slots, Rank::Outside)
    }

    /// Registers a new pending connection (a clone of it); if the pending budget is full, the
    /// one that has waited longest is evicted first: marked, and its read side shut, so its
    /// session wakes, says `busy` and leaves. Returns the new connection's eviction flag and
    /// the evicted session's id.
    pub(crate) fn admit(&self, id: u64, conn: Box<dyn Conn>) -> (Arc<AtomicBool>, Option<u64>) {
        let mut slots = self.slots();
        let mut evicted = None;
        if slots.pending >= self.max_pending {
            // Ids grow with time: the smallest pending id waited longest.
            let oldest = slots
                .by_id
                .iter()
                .filter(|(_, s)| s.state == SessionState::Pending)
                .map(|(&id, _)| id)
                .min();
            if let Some(old) = oldest {
                if let Some(slot) = slots.by_id.get(&old) {
                    slot.evicted.store(true, Ordering::SeqCst);
                    slot.conn.shutdown_read();
                }
                slots.set_state(old, SessionState::Leaving);
                evicted = Some(old);
            }
        }
        let flag = Arc::new(AtomicBool::new(false));
        slots.by_id.insert(
            id,
            Slot {
                conn,
                thread: None,
                state: SessionState::Pending,
                evicted: flag.clone(),
            },
        );
        slots.pending += 1;
        (flag, evicted)
    }

    /// Records the session's thread, so shutdown can wait for it.
    pub(crate) fn set_thread(&self, id: u64, thread: JoinHandle<()>) {
        if let Some(slot) = self.slots().by_id.get_mut(&id) {
            slot.thread = Some(thread);
        }
    }

    /// A hello was accepted: the session becomes active, or `Err(max)` if all
    /// `max` active places are taken (or it was evicted meanwhile).
    pub(crate) fn promote(&self, id: u64) -> Result<(), usize> {
        let mut slots = self.slots();
        let pending = slots
            .by_id
            .get(&id)
            .is_some_and(|s| s.state == SessionState::Pending);
        if !pending || slots.active >= self.max_active {
            return Err(self.max_active);
        }
        slots.set_state(id, SessionState::Active);
        Ok(())
    }

    /// The session is ending: its place is free for others from now on.
    pub(crate) fn leaving(&self, id: u64) {
        self.slots().set_state(id, SessionState::Leaving);
    }

    /// Forgets the session (its thread is ending).
    pub(crate) fn remove(&self, id: u64) {
        let mut slots = self.slots();
        if let Some(slot) = slots.by_id.remove(&id) {
            if let Some(n) = slots.count_mut(slot.state) {
                *n -= 1;
            }
        }
    }

    /// Connections open now, in every state.
    pub(crate) fn count(&self) -> usize {
        self.slots().by_id.len()
    }

    /// Shuts every connection's read side (sessions waiting for a request wake up and end;
    /// one waiting on the pool wakes on the stop signal instead) and hands back their
    /// threads to join.
    pub(crate) fn close_all(&self) -> Vec<JoinHandle<()>> {
        self.slots()
            .by_id
            .values_mut()
            .filter_map(|s| {
                s.conn.shutdown_read();
                s.thread.take()
            })
            .collect()
    }

    /// A permit to linger over a goodbye, if fewer than [`MAX_LINGERING`] connections do.
    pub(crate) fn may_linger(&self) -> Option<LingerPermit<'_>> {
        let n = self.lingering.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_LINGERING {
            self.lingering.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(LingerPermit(&self.lingering))
    }
}

pub(crate) struct LingerPermit<'a>(&'a AtomicUsize);

impl Drop for LingerPermit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Refused tokens per peer, for a back-off that makes guessing slow: the n-th refusal from
/// one peer within [`Refusals::MEMORY`] is answered after `base * 2^(n-1)`, at most
/// `base * 32`. A right token is never delayed.
pub(crate) struct Refusals {
    base: Duration,
    by_peer: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Refusals {
    /// How long a refusal counts against its peer.
    const MEMORY: Duration = Duration::from_secs(600);
    /// Peers remembered at most (the longest quiet is forgotten first).
    const MAX_PEERS: usize = 1024;

    pub(crate) fn new(base: Duration) -> Self {
        Self {
            base,
            by_peer: Mutex::default(),
        }
    }

    /// Counts a refusal for `peer`; returns how many it has had lately and how long to
    /// wait before answering.
    pub(crate) fn refuse(&self, peer: &str) -> (u32, Duration) {
        let now = Instant::now();
        let mut map = lock(&self.by_peer, Rank::Outside);
        map.retain(|_, (_, last)| now.duration_since(*last) < Self::MEMORY);
        if map.len() >= Self::MAX_PEERS && !map.contains_key(peer) {
            let quietest = map
                .iter()
                .min_by_key(|(_, (_, last))| *last)
                .map(|(k, _)| k.clone());
            if let Some(k) = quietest {
                map.remove(&k);
            }
        }
        let entry = map.entry(peer.to_owned()).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let n = entry.0;
        (n, self.base.saturating_mul(1 << (n - 1).min(5)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_back_off_per_peer_and_cap() {
        let r = Refusals::new(Duration::from_millis(10));
        let delays: Vec<u64> = (0..8)
            .map(|_| r.refuse("10.0.0.1").1.as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 320, 320]);
        assert_eq!(r.refuse("10.0.0.2"), (1, Duration::from_millis(10)));
    }

    #[test]
    fn refusals_remember_a_bounded_number_of_peers() {
        let r = Refusals::new(Duration::from_millis(1));
        for i in 0..3000 {
            r.refuse(&format!("peer-{i}"));
        }
        assert!(r.by_peer.lock().unwrap().len() <= Refusals::MAX_PEERS);
    }
}

//! What keeps other web pages and other names off the dashboard: the `Host` it answers to
//! (against DNS rebinding), the `Origin` of every action (against cross-site requests), and a
//! per-session anti-CSRF token that only the dashboard's own page knows.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Sessions kept; the oldest is forgotten past this (its page must be reloaded).
const SESSIONS: usize = 256;

/// The session cookie's name.
pub const COOKIE: &str = "taskpool_dashboard";

/// The header an action carries its anti-CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `Host` values the dashboard answers to: its own address, and `localhost` with its port.
pub fn allowed_hosts(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![addr.to_string(), format!("localhost:{port}")];
    if addr.ip().is_unspecified() {
        // Never bound by `main`, which refuses non-loopback addresses; kept strict anyway.
        hosts.truncate(1);
    }
    hosts
}

/// 32 random bytes as hex, from the operating system's generator.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Sessions by id, each with its anti-CSRF token.
#[derive(Default)]
pub struct Sessions {
    kept: Mutex<VecDeque<(String, String)>>,
}

impl Sessions {
    /// A new session: `(id, csrf)`.
    pub fn open(&self) -> Result<(String, String), getrandom::Error> {
        let pair = (random_token()?, random_token()?);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == SESSIONS {
            kept.pop_front();
        }
        kept.push_back(pair.clone());
        Ok(pair)
    }

    /// The anti-CSRF token of session `id`, if it is known.
    pub fn csrf(&self, id: &str) -> Option<String> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter()
            .find(|(sid, _)| same(sid, id))
            .map(|(_, csrf)| csrf.clone())
    }
}

/// The session id in a `Cookie` header.
pub fn session_of(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_sessions_and_tokens() {
        let hosts = allowed_hosts("127.0.0.1:8080".parse().unwrap());
        assert_eq!(hosts, ["127.0.0.1:8080", "localhost:8080"]);
        let hosts = allowed_hosts("[::1]:8080".parse().unwrap());
        assert_eq!(hosts, ["[::1]:8080", "localhost:8080"]);
        let sessions = Sessions::default();
        let (id, csrf) = sessions.open().unwrap();
        assert_eq!((id.len(), csrf.len()), (64, 64));
        assert_ne!(id, csrf);
        assert_eq!(sessions.csrf(&id), Some(csrf));
        assert_eq!(sessions.csrf("nope"), None);
        for _ in 0..SESSIONS {
            sessions.open().unwrap();
        }
        assert_eq!(sessions.csrf(&id), None, "the oldest is forgotten");
        assert_eq!(session_of(&format!("a=b; {COOKIE}=xyz; c=d")), Some("xyz"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}

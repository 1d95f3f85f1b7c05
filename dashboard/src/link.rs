//! Sessions with one control server, through the library's blocking [`ControlClient`] (each
//! call runs on a blocking thread, never on the web server's workers).

use crate::config::{Endpoint, ServerSpec};
use async_taskpool::control::protocol::{Command, ErrorKind, Reply, ServerInfo};
use async_taskpool::control::{ClientError, ControlClient};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How long one reply may take before the dashboard gives up on the session.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request: the server's error reply, or why there was no reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The protocol's error kind (`auth_failed`, `locked`, ...), or `unreachable`.
    pub kind: String,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    fn from_client(e: &ClientError) -> Self {
        match e {
            ClientError::Refused { kind, message } => Self {
                kind: kind.to_string(),
                message: message.clone(),
            },
            other => Self {
                kind: "unreachable".into(),
                message: other.to_string(),
            },
        }
    }
}

/// Connects to `endpoint` and says hello with `token`.
pub fn connect(endpoint: &Endpoint, token: Option<&str>) -> Result<ControlClient, Failure> {
    let client = match endpoint {
        Endpoint::Tcp(addr) => ControlClient::connect_tcp(addr.as_str(), token),
        #[cfg(unix)]
        Endpoint::Unix(path) => ControlClient::connect_unix(path, token),
        #[cfg(not(unix))]
        Endpoint::Unix(_) => {
            return Err(Failure {
                kind: "unreachable".into(),
                message: "Unix sockets are not available on this platform".into(),
            })
        }
    };
    let mut client = client.map_err(|e| Failure::from_client(&e))?;
    client
        .set_timeout(Some(REPLY_TIMEOUT))
        .map_err(|e| Failure::from_client(&e))?;
    Ok(client)
}

/// Sends one command on `client`; an error reply or a lost connection is a [`Failure`].
pub fn request(client: &mut ControlClient, cmd: &Command) -> Result<Value, Failure> {
    match client.request(cmd) {
        Ok(Reply::Ok { value, .. }) => Ok(value),
        Ok(Reply::Error { kind, message, .. }) => Err(Failure {
            kind: kind.to_string(),
            message,
        }),
        Err(e) => Err(Failure::from_client(&e)),
    }
}

/// A session the dashboard reads through, reconnected when it breaks.
pub struct Link {
    spec: ServerSpec,
    client: Mutex<Option<ControlClient>>,
    connects: AtomicU64,
}

impl Link {
    /// A link to `spec`; it connects on first use.
    pub fn new(spec: ServerSpec) -> Self {
        Self {
            spec,
            client: Mutex::new(None),
            connects: AtomicU64::new(0),
        }
    }

    /// How many times it tried to connect.
    #[cfg(test)]
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// The server it reads from.
    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    /// What the server said in its hello, connecting if needed.
    pub fn info(&self) -> Result<ServerInfo, Failure> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.connected(&mut slot)?.info().clone())
    }

    fn connected<'a>(
        &self,
        slot: &'a mut Option<ControlClient>,
    ) -> Result<&'a mut ControlClient, Failure> {
        if slot.is_none() {
            self.connects.fetch_add(1, Ordering::Relaxed);
            *slot = Some(connect(&self.spec.endpoint, self.spec.token.as_deref())?);
        }
        Ok(slot.as_mut().expect("just connected"))
    }

    /// Sends `cmd`, connecting first if needed. A broken session is dropped, so the next
    /// request connects afresh.
    pub fn request(&self, cmd: &Command) -> Result<Value, Failure> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let result = request(self.connected(&mut slot)?, cmd);
        if let Err(f) = &result {
            if closes_session(&f.kind) {
                *slot = None;
            }
        }
        result
    }
}

/// Failures after which the session is gone.
fn closes_session(kind: &str) -> bool {
    let closing = [
        ErrorKind::ShuttingDown,
        ErrorKind::IdleTimeout,
        ErrorKind::AuthFailed,
        ErrorKind::Busy,
    ];
    kind == "unreachable" || closing.iter().any(|k| k.as_str() == kind)
}

//! What the page can ask a pool to do. Each action runs in a session of its own, opened with
//! the token the page's user typed: the control server, not the dashboard, decides whether it
//! is right, and its reply (or refusal) goes back to the page as it is.

use crate::config::ServerSpec;
use crate::link::{self, Failure};
use async_taskpool::control::protocol::Command;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An action, as the page posts it: `{"server": 0, "token": "...", "action": "set-limit",
/// "limit": 4}`.
#[derive(Debug, Deserialize)]
pub struct Request {
    /// The server's index on the page.
    pub server: usize,
    /// The control server's token, as typed (absent or empty: none).
    #[serde(default)]
    pub token: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
}

/// What to do to a pool (or its job queue).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Sets the limit (`null`: none).
    SetLimit { limit: Option<usize> },
    /// Refuses new work.
    Lock,
    /// Accepts new work again.
    Unlock,
    /// Cancels one task.
    Cancel { id: u64 },
    /// Cancels a group.
    CancelGroup { name: String },
    /// Cancels everything.
    CancelAll,
    /// `SimpleTaskPool`: starts `num` tasks.
    Start { num: usize },
    /// `SimpleTaskPool`: stops the `num` newest tasks.
    Stop { num: usize },
    /// The job queue: makes dead jobs pending again (`{"id": N}`, `{"kind": K}` or `"all"`).
    QueueRetry { target: Value },
    /// The job queue: deletes dead jobs.
    QueueDiscard { target: Value },
}

impl Action {
    /// The control command it sends.
    pub fn command(&self) -> Command {
        match self.clone() {
            Self::SetLimit { limit } => Command::PoolSize { value: Some(limit) },
            Self::Lock => Command::Lock,
            Self::Unlock => Command::Unlock,
            Self::Cancel { id } => Command::Cancel { ids: vec![id] },
            Self::CancelGroup { name } => Command::CancelGroup { name },
            Self::CancelAll => Command::CancelAll,
            Self::Start { num } => Command::Start { num },
            Self::Stop { num } => Command::Stop { num },
            Self::QueueRetry { target } => Command::Custom {
                name: "queue-retry".into(),
                args: target,
            },
            Self::QueueDiscard { target } => Command::Custom {
                name: "queue-discard".into(),
                args: target,
            },
        }
    }
}

/// Runs `action` against `spec` with the user's `token`, in a fresh session.
///
/// A server the dashboard reads with a token needs one from the user too: without it the
/// action is refused here (`token_required`), before anything is sent.
pub fn run(spec: &ServerSpec, token: Option<&str>, action: &Action) -> Result<Value, Failure> {
    let token = token.filter(|t| !t.is_empty());
    if spec.token.is_some() && token.is_none() {
        return Err(Failure {
            kind: "token_required".into(),
            message: format!(
                "{} requires its control token for actions: type it in the dialog",
                spec.endpoint
            ),
        });
    }
    let mut client = link::connect(&spec.endpoint, token)?;
    link::request(&mut client, &action.command())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_map_to_commands() {
        let r: Request = serde_json::from_value(
            json!({"server": 1, "token": "t", "action": "set-limit", "limit": 4}),
        )
        .unwrap();
        assert_eq!(r.server, 1);
        assert_eq!(
            r.action.command(),
            Command::PoolSize {
                value: Some(Some(4))
            }
        );
        let r: Request =
            serde_json::from_value(json!({"server": 0, "action": "set-limit", "limit": null}))
                .unwrap();
        assert_eq!(r.action.command(), Command::PoolSize { value: Some(None) });
        let r: Request = serde_json::from_value(
            json!({"server": 0, "action": "queue-retry", "target": {"id": 7}}),
        )
        .unwrap();
        assert_eq!(r.action.command().name(), "queue-retry");
        assert!(
            serde_json::from_value::<Request>(json!({"server": 0, "action": "rm-rf"})).is_err()
        );
    }

    #[test]
    fn a_server_with_a_token_needs_one_from_the_user() {
        let spec = ServerSpec::parse("127.0.0.1:9,token-file=/dev/null", None);
        // An empty token file is refused when the dashboard starts.
        assert!(spec.is_err());
        let spec = ServerSpec::parse("127.0.0.1:9", Some("s3cret")).unwrap();
        for token in [None, Some("")] {
            let e = run(&spec, token, &Action::CancelAll).unwrap_err();
            assert_eq!(e.kind, "token_required");
        }
    }
}

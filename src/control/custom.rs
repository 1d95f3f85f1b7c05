//! Commands a program adds to its control server ([`ControlServer::command`]): a name, a
//! line of help, and an async handler that runs on the pool's executor.
//!
//! [`ControlServer::command`]: super::ControlServer::command

use super::protocol::{is_built_in, ErrorKind, WireError};
use crate::signal::Signal;
use crate::sync::lock::{lock, Rank};
use async_taskpool_runtime::Spawner;
use futures_util::future::{AbortHandle, Abortable};
use futures_util::FutureExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

type Output = Result<Value, String>;
type Handler = dyn Fn(Value) -> Pin<Box<dyn Future<Output = Output> + Send>> + Send + Sync;

/// Words a custom command may not take: the protocol's and `taskpool-ctl`'s own.
const CLIENT_WORDS: [&str; 3] = ["exit", "quit", "watch"];

/// The longest name a custom command may have.
pub(crate) const MAX_NAME: usize = 64;

#[derive(Clone)]
struct CommandEntry {
    summary: String,
    handler: Arc<Handler>,
}

/// The commands a program added, by name.
#[derive(Clone, Default)]
pub(crate) struct CustomCommands {
    by_name: BTreeMap<String, CommandEntry>,
}

/// Why a name cannot be a custom command's, or `Ok`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c));
    if !first_ok || !rest_ok || name.len() > MAX_NAME {
        return Err(format!(
            "a command name is 1 to {MAX_NAME} characters: a lowercase letter, then lowercase \
             letters, digits, `-`, `_`, `.` or `:` (e.g. `queue-stats`)"
        ));
    }
    if is_built_in(name) || CLIENT_WORDS.contains(&name) {
        return Err(format!(
            "`{name}` is a built-in command{}; choose another name (e.g. `app-{name}`)",
            if CLIENT_WORDS.contains(&name) {
                " of taskpool-ctl"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

impl CustomCommands {
    /// Adds (or replaces) a command; the name must pass [`check_name`].
    pub(crate) fn add<F, Fut>(&mut self, name: &str, help: &str, handler: F) -> Result<(), String>
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Output> + Send + 'static,
    {
        check_name(name)?;
        let handler: Arc<Handler> = Arc::new(move |args| Box::pin(handler(args)));
        let summary = help.lines().next().unwrap_or_default().trim().to_owned();
        self.by_name
            .insert(name.to_owned(), CommandEntry { summary, handler });
        Ok(())
    }

    /// `(name, one-line help)` of every command, by name.
    pub(crate) fn list(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_name
            .iter()
            .map(|(n, e)| (n.as_str(), e.summary.as_str()))
    }

    /// Starts the command `name` as a task on `spawner`; `None` if there is no such command.
    pub(crate) fn start(&self, spawner: &dyn Spawner, name: &str, args: Value) -> Option<Running> {
        let entry = self.by_name.get(name)?;
        let slot = Arc::new(ReplySlot::default());
        let (abort, registration) = AbortHandle::new_pair();
        let handler = entry.handler.clone();
        let fill = Fill(slot.clone());
        // Calling the handler inside the task: it may need the runtime's context, and a
        // panic in it or in its future is caught either way.
        let run = AssertUnwindSafe(async move { handler(args).await }).catch_unwind();
        let task = Abortable::new(run, registration).map(move |outcome| {
            fill.set(match outcome {
                Ok(Ok(result)) => CommandOutcome::Done(result),
                Ok(Err(_panic)) => CommandOutcome::Panicked,
                Err(_aborted) => CommandOutcome::Dropped,
            })
        });
        let running = Running {
            name: name.to_owned(),
            slot,
            abort,
        };
        if let Err(e) = spawner.spawn(Box::pin(task)) {
            running.slot.set(CommandOutcome::NotStarted(e.to_string()));
        }
        Some(running)
    }
}

enum CommandOutcome {
    Done(Output),
    Panicked,
    /// The runtime dropped the task before it finished (it is shutting down).
    Dropped,
    NotStarted(String),
}

#[derive(Default)]
struct ReplySlot {
    outcome: Mutex<Option<CommandOutcome>>,
    done: Signal,
}

impl ReplySlot {
    fn set(&self, outcome: CommandOutcome) {
        let mut slot = lock(&self.outcome, Rank::Outside);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        drop(slot);
        self.done.set();
    }
}

/// The task's end of the slot: a task the runtime drops unfinished still fills it.
struct Fill(Arc<ReplySlot>);

impl Fill {
    fn set(&self, outcome: CommandOutcome) {
        self.0.set(outcome);
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        self.0.set(CommandOutcome::Dropped);
    }
}

/// A custom command running on the pool's executor. Dropping it before it finished cancels
/// the handler's future (the client hung up, or the server stopped).
pub(crate) struct Running {
    name: String,
    slot: Arc<ReplySlot>,
    abort: AbortHandle,
}

impl Running {
    /// Waits for the handler; its `Err(message)` becomes a `command_failed` error reply.
    pub(crate) async fn result(&self) -> Result<Value, WireError> {
        self.slot.done.wait().await;
        let outcome = lock(&self.slot.outcome, Rank::Outside).take();
        let failed = |message: String| Err(WireError::new(ErrorKind::CommandFailed, message));
        match outcome {
            Some(CommandOutcome::Done(Ok(value))) => Ok(value),
            Some(CommandOutcome::Done(Err(message))) => failed(message),
            Some(CommandOutcome::Panicked) => failed(format!(
                "the command `{}` panicked; see the program's log",
                self.name
            )),
            Some(CommandOutcome::Dropped) | None => failed(format!(
                "the command `{}` was dropped by the pool's runtime before it finished (is the \
                 program shutting down?)",
                self.name
            )),
            Some(CommandOutcome::NotStarted(why)) => failed(format!(
                "the command `{}` could not start on the pool's runtime: {why}",
                self.name
            )),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_checked() {
        for ok in ["queue-stats", "q", "jobs.retry", "db:vacuum", "a_b-2"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Queue", "-x", "2fa", "a b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for taken in [
            "stats",
            "hello",
            "help",
            "pool-size",
            "watch",
            "exit",
            "quit",
        ] {
            let why = check_name(taken).unwrap_err();
            assert!(why.contains("built-in"), "{taken}: {why}");
        }
    }
}

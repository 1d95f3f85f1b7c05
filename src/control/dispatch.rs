//! Runs one command against the pool and returns the reply's value.

use super::custom::CustomCommands;
use super::hangup::Hangup;
use super::jobs::{JobCall, Jobs};
use super::protocol::{
    spec, unknown_command, Command, CommandInfo, ErrorKind, Limits, PoolKind, ServerInfo,
    WireError, COMMANDS, PROTOCOL_VERSION,
};
use super::target::ControlTarget;
use crate::signal::Signal;
use futures_util::future::{select, Either};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::pin;

/// The server's stop signal: set once, wakes every waiting session.
#[derive(Default)]
pub(crate) struct StopSignal(Signal);

impl StopSignal {
    pub(crate) fn stop(&self) {
        self.0.set();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.0.is_set()
    }

    async fn wait(&self) {
        self.0.wait().await
    }
}

/// The shared, read-only context every session dispatches against.
pub(crate) struct Context {
    pub(crate) target: ControlTarget,
    pub(crate) jobs: Jobs,
    pub(crate) custom: CustomCommands,
    pub(crate) limits: Limits,
    pub(crate) stop: StopSignal,
}

impl Context {
    /// Waits for one of the pool's async methods on the session's own thread.
    ///
    /// The pool's waits are event listeners, not runtime futures, so `block_on` here needs
    /// no runtime and takes no executor thread, however busy the pool's executor is.
    ///
    /// With `hangup`, the wait also ends when the client hangs up; the error returned then is
    /// never sent, as the session sees the hang-up and closes.
    fn wait<T, F: Future<Output = T>>(
        &self,
        fut: F,
        hangup: Option<&Hangup>,
    ) -> Result<T, WireError> {
        let stop = pin!(self.stop.wait());
        let gone = pin!(async {
            match hangup {
                Some(h) => h.wait().await,
                None => std::future::pending().await,
            }
        });
        let fut = pin!(fut);
        match futures_executor::block_on(select(fut, select(stop, gone))) {
            Either::Left((v, _)) => Ok(v),
            // Stopping shuts the session's read side, which the watcher may see first.
            _ if self.stop.is_stopped() => Err(shutting_down()),
            Either::Right((Either::Left(_), _)) => Err(shutting_down()),
            Either::Right((Either::Right(_), _)) => Err(WireError::new(
                ErrorKind::ShuttingDown,
                "the client hung up while the command waited",
            )),
        }
    }

    fn not_for(&self, name: &str) -> WireError {
        let (this, other) = match self.target.kind() {
            PoolKind::Task => ("TaskPool", "SimpleTaskPool"),
            PoolKind::Simple => ("SimpleTaskPool", "TaskPool"),
        };
        WireError::new(
            ErrorKind::Unsupported,
            format!("`{name}` is a {other} command and this pool is a {this}; `help` lists its commands"),
        )
    }

    /// The built-in commands for this pool, then the program's own.
    pub(crate) fn command_names(&self) -> Vec<String> {
        let kind = self.target.kind();
        COMMANDS
            .iter()
            .filter(|c| c.applies.to(kind))
            .map(|c| c.name.to_owned())
            .chain(self.custom.list().map(|(n, _)| n.to_owned()))
            .collect()
    }

    /// What a hello's reply says about the server, for a session of `version`.
    pub(crate) fn info(&self, version: u32) -> ServerInfo {
        ServerInfo {
            server: concat!("async-taskpool ", env!("CARGO_PKG_VERSION")).to_owned(),
            version: version.min(PROTOCOL_VERSION),
            pool: self.target.pool().name().to_owned(),
            kind: self.target.kind(),
            commands: self.command_names(),
            jobs: self.jobs.names(),
            job_args: self.jobs.args(),
            custom_commands: self
                .custom
                .list()
                .map(|(n, s)| CommandInfo::new(n, s))
                .collect(),
            limits: Some(self.limits),
        }
    }

    /// The `help` reply: every command, or one.
    fn help(&self, command: Option<String>) -> Result<Value, WireError> {
        let kind = self.target.kind();
        let custom = |name: &str, summary: &str| {
            json!({
                "name": name,
                "usage": format!("{name} [ARGS_JSON]"),
                "summary": summary,
                "args": [{"name": "ARGS_JSON", "doc": super::text::CUSTOM_ARGS_DOC}],
                "custom": true,
            })
        };
        let Some(name) = command else {
            let built_in = COMMANDS
                .iter()
                .filter(|c| c.applies.to(kind))
                .map(spec_json);
            let added = self.custom.list().map(|(n, s)| custom(n, s));
            return Ok(Value::Array(built_in.chain(added).collect()));
        };
        if let Some((n, s)) = self.custom.list().find(|(n, _)| *n == name) {
            return Ok(custom(n, s));
        }
        let s = spec(&name).ok_or_else(|| unknown_command(&name))?;
        let mut entry = spec_json(s);
        if matches!(s.name, "apply" | "map") {
            entry["jobs"] = self
                .jobs
                .args()
                .into_iter()
                .map(|(name, args)| json!({"name": name, "args": args}))
                .collect();
        }
        Ok(entry)
    }

    /// Runs `cmd`. `hello` is handled by the session, before this is ever called.
    /// Runs `cmd`; a command that waits on the pool also stops waiting if `hangup` fires.
    pub(crate) fn execute(
        &self,
        cmd: Command,
        hangup: Option<&Hangup>,
    ) -> Result<Value, WireError> {
        let name = cmd.name();
        if let Some(s) = spec(name) {
            if !s.applies.to(self.target.kind()) {
                return Err(self.not_for(name));
            }
        }
        super::bounds::check(&cmd, &self.limits)?;
        let pool = self.target.pool();
        let simple = || self.target.simple().ok_or_else(|| self.not_for(name));
        let ids =
            |ids: Vec<crate::id::TaskId>| json!(ids.iter().map(|i| i.get()).collect::<Vec<_>>());
        Ok(match cmd {
            Command::Hello { .. } => {
                return Err(WireError::new(
                    ErrorKind::BadRequest,
                    "this session has already said hello",
                ))
            }
            Command::Help { command } => self.help(command)?,
            Command::Custom { name, args } => {
                let spawner = self.target.spawner();
                let Some(running) = self.custom.start(&*spawner, &name, args) else {
                    return Err(unknown_command(&name));
                };
                // Dropping `running` when the wait ends early cancels the handler.
                self.wait(running.result(), hangup)??
            }
            Command::Lock => {
                pool.lock();
                Value::Null
            }
            Command::Unlock => {
                pool.unlock();
                Value::Null
            }
            Command::IsLocked => pool.is_locked().into(),
            Command::IsFull => pool.is_full().into(),
            Command::NumRunning => pool.num_running().into(),
            Command::NumQueued => pool.num_queued().into(),
            Command::NumEnded => pool.num_ended().into(),
            Command::NumCancelled => pool.num_cancelled().into(),
            Command::PoolSize { value } => {
                // Answer with the limit this request set: another session may change it next.
                match value {
                    Some(limit) => {
                        pool.set_limit(limit)?;
                        json!(limit)
                    }
                    None => json!(pool.limit()),
                }
            }
            Command::Cancel { ids } => {
                pool.cancel(ids.into_iter().map(crate::id::TaskId::new))?;
                Value::Null
            }
            Command::CancelGroup { name } => {
                pool.cancel_group(&name)?;
                Value::Null
            }
            Command::CancelAll => {
                pool.cancel_all();
                Value::Null
            }
            Command::GetGroupIds { names } => ids(pool
                .group_ids(names.iter().map(String::as_str))?
                .into_iter()
                .collect()),
            Command::Flush => {
                self.wait(async { pool.flush().await.map(|()| Value::Null) }, hangup)??
            }
            Command::GatherAndClose => self.wait(
                async { pool.gather_and_close().await.map(|()| Value::Null) },
                hangup,
            )??,
            Command::UntilClosed => self.wait(
                async {
                    pool.until_closed().await;
                    Value::Bool(true)
                },
                hangup,
            )?,
            Command::Stats => super::settings::stats(pool),
            Command::Tasks {
                offset,
                after,
                limit,
                state,
                group,
                search,
            } => super::pages::tasks(
                pool,
                offset,
                after,
                limit.unwrap_or(self.limits.default_page),
                &super::pages::TaskFilter::new(state, group, search),
            ),
            Command::Groups { after, limit } => super::pages::groups(
                pool,
                after.as_deref(),
                limit.unwrap_or(self.limits.default_page),
            ),
            Command::GroupSettings {
                name,
                priority,
                weight,
                num_concurrent,
                rate_limit,
            } => super::settings::group(pool, &name, priority, weight, num_concurrent, rate_limit)?,
            Command::PoolSettings {
                loose_weight,
                adaptive_min,
                adaptive_max,
                rate_limit,
            } => super::settings::pool(pool, loose_weight, adaptive_min, adaptive_max, rate_limit)?,
            Command::Start { num } => simple()?.start(num)?.into(),
            Command::Stop { num } => ids(simple()?.stop(num)),
            Command::StopAll => ids(simple()?.stop(usize::MAX)),
            Command::FuncName => simple()?.func_name().into(),
            Command::Apply {
                name,
                args,
                num,
                group,
            } => self
                .jobs
                .launch(pool, &name, JobCall::Apply { args, num, group })?
                .into(),
            Command::Map {
                name,
                args,
                num_concurrent,
                group,
            } => self
                .jobs
                .launch(
                    pool,
                    &name,
                    JobCall::Map {
                        items: args,
                        num_concurrent,
                        group,
                    },
                )?
                .into(),
        })
    }
}

fn spec_json(s: &super::protocol::CommandSpec) -> Value {
    json!({
        "name": s.name,
        "usage": s.usage,
        "summary": s.summary,
        "args": s.args.iter().map(|(a, d)| json!({"name": a, "doc": d})).collect::<Vec<_>>(),
    })
}

pub(crate) fn shutting_down() -> WireError {
    WireError::new(
        ErrorKind::ShuttingDown,
        "the control server is shutting down; the connection will close",
    )
}

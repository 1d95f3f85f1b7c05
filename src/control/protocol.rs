//! The wire protocol: requests, replies, error kinds and the command table.
//!
//! One JSON object per line each way (UTF-8, `\n`-terminated). `PROTOCOL.md` at the root of
//! the repository documents it with a full session transcript.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The protocol version this crate speaks. A client sends the highest version it speaks in its
/// hello; the server answers with the version the session will use.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default bound on one line, newline excluded: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// The bounds a server puts on what one request may ask for; a request past one gets an
/// `over_limit` error. Sent in the hello's `limits`; set with the
/// [`ControlServer`](super::ControlServer) builder (`max_count`, `max_pool_size`,
/// `max_weight`, `tasks_page`, `max_line_len`).
///
/// ```
/// let limits = async_taskpool::control::protocol::Limits::default();
/// assert_eq!((limits.max_count, limits.max_pool_size), (10_000, 1_000_000));
/// assert_eq!((limits.default_page, limits.max_page), (100, 1_000));
/// assert_eq!(limits.max_weight, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// The most tasks one request may start, stop or run at once (`start`, `stop`,
    /// `apply --num`, `map --num-concurrent`, `group-settings --num-concurrent`), and the
    /// longest list it may carry (`map` items, `cancel` ids, `get-group-ids` names).
    pub max_count: usize,
    /// The highest `pool-size` a client may set (`inf`, no limit, is always allowed).
    pub max_pool_size: usize,
    /// Tasks per `tasks` page when the request gives no `limit`.
    pub default_page: usize,
    /// The most tasks one `tasks` page may hold.
    pub max_page: usize,
    /// The longest request line, in bytes, newline excluded.
    pub max_line_len: usize,
    /// The highest weight a client may set (`group-settings --weight`, `pool-settings
    /// --loose-weight`); absent from servers before this field existed.
    #[serde(default = "default_max_weight")]
    pub max_weight: u32,
}

fn default_max_weight() -> u32 {
    Limits::default().max_weight
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_count: 10_000,
            max_pool_size: 1_000_000,
            default_page: 100,
            max_page: 1_000,
            max_line_len: DEFAULT_MAX_LINE,
            // Weights are ratios of slots: past 1,000:1 no pool limit in use tells them apart.
            max_weight: 1_000,
        }
    }
}

/// A rate quota as sent in `group-settings` (`rate_limit`) and shown in its reply and in
/// `groups`: `count` starts per `period_ms` milliseconds on average, in bursts of up to
/// `burst` back to back (default `count`), as
/// [`Quota::new`](crate::policy::Quota::new)`(count, period)`[`.burst(burst)`](crate::policy::Quota::burst).
/// A reply shows the quota in force as the smallest whole `count` per second, minute, hour
/// or day that gives its interval, else as 1 per interval.
///
/// ```
/// use async_taskpool::control::protocol::{Command, WireQuota};
/// let cmd: Command = serde_json::from_str(
///     r#"{"cmd":"group-settings","name":"crawl","rate_limit":{"count":10,"period_ms":1000}}"#,
/// ).unwrap();
/// let Command::GroupSettings { rate_limit, .. } = cmd else { unreachable!() };
/// assert_eq!(rate_limit, Some(Some(WireQuota { count: 10, period_ms: 1000.0, burst: None })));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireQuota {
    /// Starts per period, from 1 to [`MAX_QUOTA_COUNT`].
    pub count: u64,
    /// The period in milliseconds (a fraction to the nanosecond), above 0 and at most
    /// [`MAX_QUOTA_PERIOD_MS`].
    pub period_ms: f64,
    /// The most starts back to back, from 1 to [`MAX_QUOTA_COUNT`]; `count` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// The highest `count` and `burst` of a [`WireQuota`].
///
/// ```
/// assert_eq!(async_taskpool::control::protocol::MAX_QUOTA_COUNT, 1_000_000_000);
/// ```
pub const MAX_QUOTA_COUNT: u64 = 1_000_000_000;

/// The longest `period_ms` of a [`WireQuota`]: 365 days.
///
/// ```
/// assert_eq!(async_taskpool::control::protocol::MAX_QUOTA_PERIOD_MS, 31_536_000_000);
/// ```
pub const MAX_QUOTA_PERIOD_MS: u64 = 365 * 86_400_000;

/// A command, as sent on the wire: `{"cmd": "<name>", ...arguments}`.
///
/// The JSON names of the commands are kebab-case (`pool-size`, `cancel-group`), those of
/// their arguments snake_case (`num_concurrent`). Unknown fields are refused, so a typo is an
/// error reply rather than a silently ignored argument.
///
/// ```
/// use async_taskpool::control::protocol::Command;
/// let cmd: Command = serde_json::from_str(r#"{"cmd":"cancel","ids":[1,2]}"#).unwrap();
/// assert_eq!(cmd, Command::Cancel { ids: vec![1, 2] });
/// assert_eq!(cmd.name(), "cancel");
/// let set: Command = serde_json::from_str(r#"{"cmd":"pool-size","value":3}"#).unwrap();
/// assert_eq!(set, Command::PoolSize { value: Some(Some(3)) });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// `remote = "Self"`: the derives become inherent functions, which the hand-written trait
// impls below wrap to add `Custom` (whose `cmd` is the command's own name).
#[serde(
    remote = "Self",
    tag = "cmd",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum Command {
    /// Opens a session (first line only).
    Hello {
        /// The highest protocol version the client speaks.
        version: u32,
        /// The shared token, required when the server has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The client's name and version, for the server's logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// The command table, or one command's help (`{"command": "stop"}`).
    Help {
        /// One command to describe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
    /// Refuse new work until `unlock`.
    Lock,
    /// Accept new work again.
    Unlock,
    /// Whether new work is refused.
    IsLocked,
    /// Whether the limit is reached.
    IsFull,
    /// Tasks running now.
    NumRunning,
    /// Tasks waiting for room.
    NumQueued,
    /// Tasks ended since the last flush.
    NumEnded,
    /// Tasks cancelled since the last flush.
    NumCancelled,
    /// Without `value`: the limit (`null` for none). With `value`: sets it (`null`: no limit).
    PoolSize {
        /// `None`: get; `Some(None)`: no limit; `Some(Some(n))`: limit `n`.
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        value: Option<Option<usize>>,
    },
    /// Cancels these tasks, atomically.
    Cancel {
        /// Task ids.
        ids: Vec<u64>,
    },
    /// Cancels a group and forgets it.
    CancelGroup {
        /// The group's name.
        name: String,
    },
    /// Cancels everything.
    CancelAll,
    /// The live task ids of these groups.
    GetGroupIds {
        /// Group names.
        #[serde(default)]
        names: Vec<String>,
    },
    /// Waits for callbacks, then forgets ended tasks and finished groups.
    Flush,
    /// Locks, waits for all accepted work, closes.
    GatherAndClose,
    /// Waits until the pool is closed.
    UntilClosed,
    /// A [`PoolStats`](crate::PoolStats) snapshot, with `adaptive` (the adaptive limit's
    /// [`AdaptiveStats`](crate::AdaptiveStats)) and `rate_limit` (the pool-wide quota, as
    /// `pool-settings` shows it) while the pool has them.
    Stats,
    /// A page of the live tasks, in id order: `{"total", "offset", "tasks", "next"}` (see
    /// `PROTOCOL.md`).
    Tasks {
        /// Skip this many tasks (default 0). Not with `after`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<usize>,
        /// Start after the task with this id (the `next` of the page before). Not with
        /// `offset`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// At most this many tasks (default and maximum: the server's, 100 and 1,000 unless
        /// configured).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// Only tasks in this state. A filtered page is paged with `after` only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<crate::TaskState>,
        /// Only tasks of the group of this name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// Only tasks whose id, name or group contains this text (ignoring case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search: Option<String>,
    },
    /// A page of the pool's groups, by name, each with its live task count:
    /// `{"total", "groups": [{"name", "live"}], "next"}` (see `PROTOCOL.md`).
    Groups {
        /// Start after the group of this name (the `next` of the page before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// At most this many groups (default and maximum: the server's `tasks` page bounds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// A group's scheduling settings, `{"name", "priority", "weight", "num_concurrent"}`
    /// (`num_concurrent` `null`: it follows the pool's limit); with any of the optional
    /// fields, changes those first, all or none. Checked against [`Limits`].
    GroupSettings {
        /// The group's name.
        name: String,
        /// Its new priority (higher starts first), within `i32`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<i64>,
        /// Its new weight, from 1 to [`Limits::max_weight`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u64>,
        /// `None`: unchanged; `Some(None)`: follow the pool's limit; `Some(Some(n))`: at most
        /// `n` items at once, from 1 to [`Limits::max_count`].
        #[serde(
            default,
            deserialize_with = "cap_or_null",
            skip_serializing_if = "Option::is_none"
        )]
        num_concurrent: Option<Option<usize>>,
        /// `None`: unchanged; `Some(None)`: no rate limit; `Some(Some(q))`: at most
        /// `q.count` starts per `q.period_ms` (see [`WireQuota`]). A group made without a
        /// limit gets one; a keyed group's applies to each key.
        #[serde(
            default,
            deserialize_with = "quota_or_null",
            skip_serializing_if = "Option::is_none"
        )]
        rate_limit: Option<Option<WireQuota>>,
    },
    /// The pool's scheduling settings, `{"limit", "loose_weight", "rate_limit", "adaptive"}`
    /// (`rate_limit`: the pool-wide quota, or `null`; `adaptive`: the adaptive limit's
    /// [`AdaptiveStats`](crate::AdaptiveStats), or `null`); with `loose_weight`, `rate_limit`
    /// or the adaptive limit's bounds, changes those first. (The limit is
    /// changed with `pool-size`, which replaces an adaptive limit with a fixed one.)
    PoolSettings {
        /// The loose tasks' new weight, from 1 to [`Limits::max_weight`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loose_weight: Option<u64>,
        /// The adaptive limit's new lower bound, from 1 to [`Limits::max_pool_size`] (the
        /// upper one stays unless given too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adaptive_min: Option<u64>,
        /// The adaptive limit's new upper bound, from 1 to [`Limits::max_pool_size`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adaptive_max: Option<u64>,
        /// `None`: unchanged; `Some(None)`: no pool-wide rate limit; `Some(Some(q))`: at most
        /// `q.count` starts per `q.period_ms` across the pool (see [`WireQuota`]).
        #[serde(
            default,
            deserialize_with = "quota_or_null",
            skip_serializing_if = "Option::is_none"
        )]
        rate_limit: Option<Option<WireQuota>>,
    },
    /// SimpleTaskPool: starts `num` copies of the job.
    Start {
        /// How many.
        num: usize,
    },
    /// SimpleTaskPool: stops the `num` newest tasks.
    Stop {
        /// How many.
        num: usize,
    },
    /// SimpleTaskPool: stops every task.
    StopAll,
    /// SimpleTaskPool: the job's name.
    FuncName,
    /// TaskPool: starts `num` tasks of a registered job, all with the same argument.
    Apply {
        /// The job's registered name.
        name: String,
        /// The job's argument, decoded into its Rust type (`null` for `()`).
        #[serde(default)]
        args: Value,
        /// How many tasks.
        #[serde(default = "one")]
        num: usize,
        /// A name for the group (default `apply-group-K`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// TaskPool: runs a registered job once per item, at most `num_concurrent` at once.
    Map {
        /// The job's registered name.
        name: String,
        /// One argument per task.
        args: Vec<Value>,
        /// At most this many items at once.
        #[serde(default = "one")]
        num_concurrent: usize,
        /// A name for the group (default `map-group-K`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// A command the program added with
    /// [`ControlServer::command`](super::ControlServer::command), on the wire
    /// `{"cmd": "<name>", "args": <any JSON>}`. Any name that is not a built-in command parses
    /// as this; the server answers `unknown_command` if it has no such command.
    #[serde(skip)]
    Custom {
        /// The command's name.
        name: String,
        /// Its argument, any JSON (`null` when omitted).
        args: Value,
    },
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Custom { name, args } => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("cmd", name)?;
                map.serialize_entry("args", args)?;
                map.end()
            }
            _ => Self::serialize(self, s),
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let custom = match value.get("cmd") {
            Some(Value::String(name)) => !is_built_in(name),
            _ => false,
        };
        if !custom {
            return Self::deserialize(value).map_err(D::Error::custom);
        }
        let Value::Object(mut map) = value else {
            unreachable!("only an object has a `cmd`")
        };
        let Some(Value::String(name)) = map.remove("cmd") else {
            unreachable!("checked above")
        };
        let args = map.remove("args").unwrap_or(Value::Null);
        if let Some(extra) = map.keys().next() {
            return Err(D::Error::custom(format!(
                "unknown field `{extra}`: `{name}` takes its argument in `args`"
            )));
        }
        Ok(Self::Custom { name, args })
    }
}

/// Whether `name` is one of the protocol's own commands (`hello` included).
pub(crate) fn is_built_in(name: &str) -> bool {
    name == "hello" || spec(name).is_some()
}

fn one() -> usize {
    1
}

/// Tells "absent" (`None`, by `default`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

/// A group's cap as `present` reads a limit, with an error that says what to send instead
/// (typed, it is `pool`; in JSON, `null`).
fn cap_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Some(None)),
        v => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(|n| Some(Some(n)))
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "`num_concurrent` must be a whole number, or null to follow the pool's \
                     limit, not {v}"
                ))
            }),
    }
}

/// A group's rate limit as `present` reads a limit: absent, `null` (lift it) or a quota, with
/// an error that says what to send instead.
fn quota_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<WireQuota>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Some(None)),
        v => serde_json::from_value::<WireQuota>(v.clone())
            .map(|q| Some(Some(q)))
            .map_err(|e| {
                D::Error::custom(format!(
                    "`rate_limit` must be {{\"count\": N, \"period_ms\": MS, \"burst\": B}} \
                     (`burst` optional), or null to lift the limit, not {v} ({e})"
                ))
            }),
    }
}

impl Command {
    /// Whether the command waits on the pool (a session then watches for a hang-up).
    pub(crate) fn waits_on_pool(&self) -> bool {
        matches!(
            self,
            Self::Flush | Self::GatherAndClose | Self::UntilClosed | Self::Custom { .. }
        )
    }

    /// The command's wire name, e.g. `"pool-size"`.
    pub fn name(&self) -> &str {
        match self {
            Self::Custom { name, .. } => name,
            Self::Hello { .. } => "hello",
            Self::Help { .. } => "help",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::IsLocked => "is-locked",
            Self::IsFull => "is-full",
            Self::NumRunning => "num-running",
            Self::NumQueued => "num-queued",
            Self::NumEnded => "num-ended",
            Self::NumCancelled => "num-cancelled",
            Self::PoolSize { .. } => "pool-size",
            Self::Cancel { .. } => "cancel",
            Self::CancelGroup { .. } => "cancel-group",
            Self::CancelAll => "cancel-all",
            Self::GetGroupIds { .. } => "get-group-ids",
            Self::Flush => "flush",
            Self::GatherAndClose => "gather-and-close",
            Self::UntilClosed => "until-closed",
            Self::Stats => "stats",
            Self::Tasks { .. } => "tasks",
            Self::Groups { .. } => "groups",
            Self::GroupSettings { .. } => "group-settings",
            Self::PoolSettings { .. } => "pool-settings",
            Self::Start { .. } => "start",
            Self::Stop { .. } => "stop",
            Self::StopAll => "stop-all",
            Self::FuncName => "func-name",
            Self::Apply { .. } => "apply",
            Self::Map { .. } => "map",
        }
    }

    /// Parses one request line: a JSON object with a `cmd` field and an optional `id`, which
    /// the reply echoes. Errors are the reply to send.
    ///
    /// ```
    /// use async_taskpool::control::protocol::{Command, ErrorKind};
    /// let (id, cmd) = Command::from_line(br#"{"id":7,"cmd":"stop","num":2}"#).unwrap();
    /// assert_eq!((id, cmd), (Some(7.into()), Command::Stop { num: 2 }));
    /// let err = Command::from_line(b"{\"cmd\":\"stop\",\"num\":\"two\"}").unwrap_err();
    /// assert_eq!(err.kind, ErrorKind::BadRequest);
    /// assert_eq!(Command::from_line(b"stop 2").unwrap_err().kind, ErrorKind::BadJson);
    /// ```
    pub fn from_line(line: &[u8]) -> Result<(Option<Value>, Command), WireError> {
        let value: Value = serde_json::from_slice(line).map_err(|e| {
            WireError::new(
                ErrorKind::BadJson,
                format!("the line is not valid JSON ({e}); send one JSON object per line"),
            )
        })?;
        let Value::Object(mut map) = value else {
            return Err(WireError::new(
                ErrorKind::BadRequest,
                "a request must be a JSON object such as {\"cmd\":\"stats\"}",
            ));
        };
        let id = map.remove("id");
        let fail = |e: WireError| Err(e.with_id(id.clone()));
        let name =
            match map.get("cmd") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return fail(WireError::new(
                        ErrorKind::BadRequest,
                        "`cmd` must be a string naming a command",
                    ))
                }
                None => return fail(WireError::new(
                    ErrorKind::BadRequest,
                    "the request has no `cmd` field; send {\"cmd\":\"help\"} for the command list",
                )),
            };
        match spec(&name) {
            // Not ours: a custom command, or unknown (the server decides).
            None if name != "hello" => {}
            // serde ignores extra fields on unit variants; refuse them like on the others.
            Some(s) if s.args.is_empty() && map.len() > 1 => {
                let extra = map
                    .keys()
                    .find(|k| *k != "cmd")
                    .cloned()
                    .unwrap_or_default();
                return fail(WireError::new(
                    ErrorKind::BadRequest,
                    format!("`{name}` takes no arguments, but got `{extra}`"),
                ));
            }
            _ => {}
        }
        match <Command as Deserialize>::deserialize(Value::Object(map)) {
            Ok(cmd) => Ok((id, cmd)),
            Err(e) => fail(WireError::new(
                ErrorKind::BadRequest,
                format!("bad arguments for `{name}`: {e}; usage: {}", usage(&name)),
            )),
        }
    }
}

fn usage(name: &str) -> String {
    spec(name).map_or_else(|| format!("{name} [ARGS_JSON]"), |s| s.usage.to_owned())
}

pub(crate) fn unknown_command(name: &str) -> WireError {
    WireError::new(
        ErrorKind::UnknownCommand,
        format!("unknown command `{name}`; `help` lists the commands"),
    )
}

/// A reply: `{"status":"ok","value":...}` or
/// `{"status":"error","kind":"...","message":"..."}`, plus the request's `id` if it had one.
///
/// ```
/// use async_taskpool::control::protocol::{ErrorKind, Reply};
/// let ok = Reply::ok(serde_json::json!(3));
/// assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"status":"ok","value":3}"#);
/// let back: Reply = serde_json::from_str(
///     r#"{"status":"error","kind":"locked","message":"pool `p` is locked"}"#).unwrap();
/// assert!(matches!(back, Reply::Error { kind: ErrorKind::Locked, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Reply {
    /// The command succeeded.
    Ok {
        /// Its result (`null` for commands that return nothing).
        #[serde(default)]
        value: Value,
        /// The request's `id`, echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// The command failed; the session goes on unless the kind says otherwise.
    Error {
        /// A stable, machine-readable kind.
        kind: ErrorKind,
        /// What went wrong and what to do, for people.
        message: String,
        /// The request's `id`, echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
}

impl Reply {
    /// A success with this value.
    pub fn ok(value: Value) -> Self {
        Self::Ok { value, id: None }
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error { .. })
    }

    /// The reply as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| {
            // Values are built from serde_json::Value, which always serializes.
            r#"{"status":"error","kind":"internal","message":"unserializable reply"}"#.into()
        });
        s.push('\n');
        s
    }
}

impl From<Result<Value, WireError>> for Reply {
    fn from(r: Result<Value, WireError>) -> Self {
        match r {
            Ok(value) => Self::ok(value),
            Err(e) => e.into(),
        }
    }
}

impl From<WireError> for Reply {
    fn from(e: WireError) -> Self {
        Self::Error {
            kind: e.kind,
            message: e.message,
            id: e.id,
        }
    }
}

/// A failed command: the error half of a [`Reply`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({kind})")]
pub struct WireError {
    /// The stable kind.
    pub kind: ErrorKind,
    /// The human message.
    pub message: String,
    /// The request's `id`, if known.
    pub id: Option<Value>,
}

impl WireError {
    /// An error of this kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            id: None,
        }
    }

    pub(crate) fn with_id(mut self, id: Option<Value>) -> Self {
        self.id = id;
        self
    }
}

impl From<crate::error::PoolError> for WireError {
    fn from(e: crate::error::PoolError) -> Self {
        use crate::error::PoolError as P;
        let kind = match &e {
            P::Closed { .. } => ErrorKind::Closed,
            P::Locked { .. } => ErrorKind::Locked,
            P::Full { .. } => ErrorKind::Full,
            P::TaskNotFound { .. } => ErrorKind::TaskNotFound,
            P::AlreadyCancelled { .. } => ErrorKind::AlreadyCancelled,
            P::AlreadyEnded { .. } => ErrorKind::AlreadyEnded,
            P::GroupNotFound { .. } => ErrorKind::GroupNotFound,
            P::GroupExists { .. } => ErrorKind::GroupExists,
            P::InvalidLimit { what, value } => {
                // The library's message speaks Rust (`None`); a client types other things.
                return Self::new(
                    ErrorKind::InvalidLimit,
                    format!("invalid {what} {value}: give a whole number of at least 1"),
                );
            }
            _ => ErrorKind::Other(String::from("pool_error")),
        };
        Self::new(kind, e.to_string())
    }
}

/// The stable kinds of error replies. They serialize as snake_case strings; a kind this
/// version does not know deserializes as [`ErrorKind::Other`].
///
/// ```
/// use async_taskpool::control::protocol::ErrorKind;
/// assert_eq!(ErrorKind::TaskNotFound.as_str(), "task_not_found");
/// assert_eq!("line_too_long".parse::<ErrorKind>().unwrap(), ErrorKind::LineTooLong);
/// assert_eq!("new_kind".parse::<ErrorKind>().unwrap(), ErrorKind::Other("new_kind".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The line is not JSON.
    BadJson,
    /// Valid JSON, but not a valid request: missing or mistyped arguments, unknown fields.
    BadRequest,
    /// No command of that name.
    UnknownCommand,
    /// The command exists, but not for this kind of pool (e.g. `start` on a `TaskPool`).
    Unsupported,
    /// The line was longer than the server's bound; it was discarded unread.
    LineTooLong,
    /// The first line must be a hello.
    HelloRequired,
    /// The client's protocol version is not spoken here.
    UnsupportedVersion,
    /// The token was missing or wrong; the server closes the connection.
    AuthFailed,
    /// Too many sessions; the server closes the connection.
    Busy,
    /// The session was idle too long; the server closes the connection.
    IdleTimeout,
    /// The server is shutting down; it closes the connection.
    ShuttingDown,
    /// No job is registered under that name.
    UnknownJob,
    /// The job's arguments do not decode into its argument type.
    BadArgs,
    /// A command the program added ([`ControlServer::command`](super::ControlServer::command))
    /// returned an error, panicked or could not run.
    CommandFailed,
    /// A count or list in the request is over the server's bound ([`Limits`]).
    OverLimit,
    /// No hello within the server's hello timeout; the server closes the connection.
    HelloTimeout,
    /// The pool is closed.
    Closed,
    /// The pool is locked.
    Locked,
    /// The pool is full.
    Full,
    /// No task with that id.
    TaskNotFound,
    /// The task is already being cancelled.
    AlreadyCancelled,
    /// The task already ended (or, for a rate limit, the group: it would never apply).
    AlreadyEnded,
    /// No group of that name.
    GroupNotFound,
    /// A group of that name exists.
    GroupExists,
    /// A limit out of range (0).
    InvalidLimit,
    /// Another kind, from a newer server (or `pool_error`, `internal`).
    Other(String),
}

const KINDS: &[(&str, ErrorKind)] = &[
    ("bad_json", ErrorKind::BadJson),
    ("bad_request", ErrorKind::BadRequest),
    ("unknown_command", ErrorKind::UnknownCommand),
    ("unsupported", ErrorKind::Unsupported),
    ("line_too_long", ErrorKind::LineTooLong),
    ("hello_required", ErrorKind::HelloRequired),
    ("unsupported_version", ErrorKind::UnsupportedVersion),
    ("auth_failed", ErrorKind::AuthFailed),
    ("busy", ErrorKind::Busy),
    ("idle_timeout", ErrorKind::IdleTimeout),
    ("shutting_down", ErrorKind::ShuttingDown),
    ("unknown_job", ErrorKind::UnknownJob),
    ("bad_args", ErrorKind::BadArgs),
    ("command_failed", ErrorKind::CommandFailed),
    ("over_limit", ErrorKind::OverLimit),
    ("hello_timeout", ErrorKind::HelloTimeout),
    ("closed", ErrorKind::Closed),
    ("locked", ErrorKind::Locked),
    ("full", ErrorKind::Full),
    ("task_not_found", ErrorKind::TaskNotFound),
    ("already_cancelled", ErrorKind::AlreadyCancelled),
    ("already_ended", ErrorKind::AlreadyEnded),
    ("group_not_found", ErrorKind::GroupNotFound),
    ("group_exists", ErrorKind::GroupExists),
    ("invalid_limit", ErrorKind::InvalidLimit),
];

impl ErrorKind {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        if let Self::Other(s) = self {
            return s;
        }
        KINDS
            .iter()
            .find(|(_, k)| k == self)
            .map_or("internal", |(s, _)| s)
    }
}

impl std::str::FromStr for ErrorKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(KINDS
            .iter()
            .find(|(n, _)| *n == s)
            .map_or_else(|| Self::Other(s.to_owned()), |(_, k)| k.clone()))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(D::Error::custom("an error kind must not be empty"));
        }
        Ok(s.parse().unwrap_or_else(|never| match never {}))
    }
}

/// What the server answers to a hello: the `value` of its `ok` reply.
///
/// ```
/// use async_taskpool::control::protocol::ServerInfo;
/// let info: ServerInfo = serde_json::from_str(r#"{"server":"async-taskpool 0.1.0","version":1,
///     "pool":"workers","kind":"simple","commands":["stop"],"jobs":[]}"#).unwrap();
/// assert_eq!(info.pool, "workers");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The server's name and version.
    pub server: String,
    /// The protocol version of this session.
    pub version: u32,
    /// The pool's name.
    pub pool: String,
    /// `"task"` for a `TaskPool`, `"simple"` for a `SimpleTaskPool`.
    pub kind: PoolKind,
    /// The commands this pool accepts.
    pub commands: Vec<String>,
    /// The jobs registered for `apply` and `map`.
    pub jobs: Vec<String>,
    /// Each job's argument, as the JSON it takes (e.g. `"a string"`); absent from servers
    /// before this field existed.
    #[serde(default)]
    pub job_args: BTreeMap<String, String>,
    /// The commands the program added, with their one-line help (they are also in
    /// `commands`).
    #[serde(default)]
    pub custom_commands: Vec<CommandInfo>,
    /// What one request may ask for; absent from servers before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// A command the program added to its server: its name and one line of help.
///
/// ```
/// use async_taskpool::control::protocol::CommandInfo;
/// let c: CommandInfo = serde_json::from_str(r#"{"name":"queue-stats","summary":"Job counts"}"#).unwrap();
/// assert_eq!(c.name, "queue-stats");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommandInfo {
    /// The command's name.
    pub name: String,
    /// What it does, in one line.
    pub summary: String,
}

impl CommandInfo {
    /// A command's name and summary.
    pub fn new(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            summary: summary.into(),
        }
    }
}

/// Which kind of pool a server steers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// A [`TaskPool`](crate::TaskPool).
    Task,
    /// A [`SimpleTaskPool`](crate::SimpleTaskPool).
    Simple,
}

/// Which pools a command applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Both kinds.
    Both,
    /// `TaskPool` only.
    Task,
    /// `SimpleTaskPool` only.
    Simple,
}

impl Applies {
    /// Whether a command with this applicability exists on a pool of `kind`.
    pub fn to(self, kind: PoolKind) -> bool {
        matches!(
            (self, kind),
            (Self::Both, _) | (Self::Task, PoolKind::Task) | (Self::Simple, PoolKind::Simple)
        )
    }
}

/// One command's documentation: the text usage (as typed in `taskpool-ctl` or the Python
/// client), a summary, and each argument's meaning.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CommandSpec {
    /// The command's name.
    pub name: &'static str,
    /// Its text usage.
    pub usage: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// `(argument, meaning)` pairs.
    pub args: &'static [(&'static str, &'static str)],
    /// The pools it applies to.
    pub applies: Applies,
}

macro_rules! spec {
    ($name:literal, $usage:literal, $summary:literal, $applies:ident $(, $a:literal => $d:literal)* $(,)?) => {
        CommandSpec { name: $name, usage: $usage, summary: $summary, args: &[$(($a, $d)),*], applies: Applies::$applies }
    };
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandSpec] = &[
    spec!(
        "stats",
        "stats",
        "A snapshot: limit, running, queued, ended, cancelled, groups...",
        Both
    ),
    spec!("tasks", "tasks [--limit N] [--offset N | --after ID] [--state STATE] [--group NAME] [--search TEXT]",
        "A page of the live tasks, by id: id, state, name and group.", Both,
        "--limit, -l N" => "at most N tasks (default 100, at most 1000 unless the server says otherwise)",
        "--offset, -o N" => "skip the first N tasks (not with a filter)",
        "--after, -a ID" => "start after task ID (the `next` a page ends with)",
        "--state, -s STATE" => "only tasks that are queued, running or ending",
        "--group, -g NAME" => "only tasks of the group NAME",
        "--search TEXT" => "only tasks whose id, name or group contains TEXT (ignoring case)"),
    spec!("groups", "groups [--limit N] [--after NAME]",
        "A page of the groups, by name, with their live task counts.", Both,
        "--limit, -l N" => "at most N groups (default 100, at most 1000 unless the server says otherwise)",
        "--after, -a NAME" => "start after the group NAME (the `next` a page ends with)"),
    spec!("group-settings", "group-settings NAME [--priority P] [--weight W] [--num-concurrent N|pool] [--rate N/PERIOD|inf [--burst B]]",
        "Shows a group's priority, weight, concurrency cap and rate limit, or changes them (all, or none if one is refused).", Both,
        "NAME" => "the group's name (see `groups`)",
        "--priority, -p P" => "its priority while its items wait: higher starts first; a whole number, negative for lower (default 0)",
        "--weight, -w W" => "its share of slots against busy lanes of its priority (3 vs 1: 3:1): from 1 to the server's max_weight, 1000 unless configured",
        "--num-concurrent, -n N" => "at most N of its items at once (1 to the server's max_count, 10000 unless configured), or `pool` to follow the pool's limit",
        "--rate, -r N/PERIOD" => "at most N of its items start per PERIOD (`10/s`, `30/min`, `2/h`, `1/day`, `5/250ms`, `3/2.5s`; N from 1 to 1000000000, PERIOD up to 365 days), or `inf` for no rate limit; a group made without one gets one, a keyed group's applies to each key",
        "--burst, -b B" => "with --rate: at most B starts back to back after a quiet spell (1: evenly spaced; default N)"),
    spec!("pool-size", "pool-size [N|inf]", "Shows the limit (`inf`: none), or sets it (growing starts queued work at once).", Both,
        "N" => "the new limit: a whole number of at least 1, or `inf` for no limit"),
    spec!("pool-settings", "pool-settings [--loose-weight W] [--rate N/PERIOD|inf [--burst B]] [--adaptive-min N] [--adaptive-max N]",
        "Shows the limit, the loose tasks' weight, the pool's rate limit and the adaptive limit (limiter, bounds, current limit), or changes the weight, the rate limit or the adaptive bounds (the limit: `pool-size`, which turns an adaptive limit off).", Both,
        "--loose-weight, -w W" => "the share of slots of tasks outside groups (spawn, exec) against busy groups: from 1 to the server's max_weight, 1000 unless configured",
        "--rate, -r N/PERIOD" => "at most N starts per PERIOD across the whole pool, loose tasks and group items together (`10/s`, `30/min`, `5/250ms`; N from 1 to 1000000000, PERIOD up to 365 days), or `inf` for no pool-wide rate limit",
        "--burst, -b B" => "with --rate: at most B starts back to back after a quiet spell (1: evenly spaced; default N)",
        "--adaptive-min N" => "the adaptive limit's lower bound: from 1 to its upper bound (the pool must have an adaptive limit)",
        "--adaptive-max N" => "the adaptive limit's upper bound: from its lower bound to the server's max_pool_size (the limit is clamped into the bounds at once)"),
    spec!(
        "num-running",
        "num-running",
        "How many tasks are running.",
        Both
    ),
    spec!(
        "num-queued",
        "num-queued",
        "How many tasks wait for room.",
        Both
    ),
    spec!(
        "num-ended",
        "num-ended",
        "How many tasks ended since the last flush.",
        Both
    ),
    spec!(
        "num-cancelled",
        "num-cancelled",
        "How many tasks were cancelled since the last flush.",
        Both
    ),
    spec!("is-full", "is-full", "Whether the limit is reached.", Both),
    spec!(
        "is-locked",
        "is-locked",
        "Whether new work is refused.",
        Both
    ),
    spec!(
        "lock",
        "lock",
        "Refuses new work; accepted work carries on.",
        Both
    ),
    spec!(
        "unlock",
        "unlock",
        "Accepts new work again (a closed pool stays closed).",
        Both
    ),
    spec!("start", "start NUM", "Starts NUM copies of the pool's job.", Simple,
        "NUM" => "how many tasks to start"),
    spec!("stop", "stop NUM", "Stops the NUM newest tasks (queued first); prints their ids.", Simple,
        "NUM" => "how many tasks to stop"),
    spec!(
        "stop-all",
        "stop-all",
        "Stops every task; prints their ids.",
        Simple
    ),
    spec!(
        "func-name",
        "func-name",
        "The name of the pool's job.",
        Simple
    ),
    spec!("apply", "apply JOB [ARGS_JSON] [--num N] [--group NAME]",
        "Starts N tasks of a job the program registered, all with the same argument.", Task,
        "JOB" => "the registered job's name",
        "ARGS_JSON" => "the job's argument as JSON, e.g. \"https://x\" or {\"n\":3}; omit for none",
        "--num, -n N" => "how many tasks (default 1)",
        "--group, -g NAME" => "a name for the group (default apply-group-K)"),
    spec!("map", "map JOB ARGS_JSON [--num-concurrent N] [--group NAME]",
        "Runs a registered job once per item of a JSON array, at most N at once.", Task,
        "JOB" => "the registered job's name",
        "ARGS_JSON" => "a JSON array with one argument per task, e.g. [1,2,3]",
        "--num-concurrent, -n N" => "at most N items at once (default 1)",
        "--group, -g NAME" => "a name for the group (default map-group-K)"),
    spec!("cancel", "cancel ID...", "Cancels these tasks; if any id is invalid, none is cancelled.", Both,
        "ID" => "a task id (see `tasks`)"),
    spec!("cancel-group", "cancel-group NAME", "Cancels a group's tasks and forgets the group.", Both,
        "NAME" => "the group's name (see `stats`)"),
    spec!(
        "cancel-all",
        "cancel-all",
        "Cancels every task and group.",
        Both
    ),
    spec!("get-group-ids", "get-group-ids NAME...", "The live task ids of these groups.", Both,
        "NAME" => "a group's name"),
    spec!(
        "flush",
        "flush",
        "Waits for callbacks, then forgets ended tasks and finished groups.",
        Both
    ),
    spec!(
        "gather-and-close",
        "gather-and-close",
        "Locks, waits for all accepted work to end, closes the pool for good.",
        Both
    ),
    spec!(
        "until-closed",
        "until-closed",
        "Waits until the pool is closed.",
        Both
    ),
    spec!("help", "help [COMMAND]", "Lists the commands, or describes one.", Both,
        "COMMAND" => "a command's name"),
];

/// The documentation of the command called `name`.
///
/// ```
/// let stop = async_taskpool::control::protocol::spec("stop").unwrap();
/// assert_eq!(stop.usage, "stop NUM");
/// ```
pub fn spec(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for (name, kind) in KINDS {
            assert_eq!(kind.as_str(), *name);
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), *kind);
        }
    }

    #[test]
    fn every_command_has_a_spec_and_the_same_name() {
        let samples = [
            r#"{"cmd":"lock"}"#,
            r#"{"cmd":"pool-size"}"#,
            r#"{"cmd":"pool-size","value":null}"#,
            r#"{"cmd":"cancel","ids":[]}"#,
            r#"{"cmd":"cancel-group","name":"g"}"#,
            r#"{"cmd":"get-group-ids"}"#,
            r#"{"cmd":"start","num":1}"#,
            r#"{"cmd":"apply","name":"j"}"#,
            r#"{"cmd":"map","name":"j","args":[]}"#,
            r#"{"cmd":"help"}"#,
            r#"{"cmd":"group-settings","name":"g"}"#,
            r#"{"cmd":"group-settings","name":"g","priority":-3,"weight":2,"num_concurrent":null}"#,
            r#"{"cmd":"group-settings","name":"g","num_concurrent":4}"#,
            r#"{"cmd":"pool-settings"}"#,
            r#"{"cmd":"pool-settings","loose_weight":3}"#,
        ];
        for s in samples {
            let (_, cmd) = Command::from_line(s.as_bytes()).unwrap();
            assert!(spec(cmd.name()).is_some(), "{s}");
            let back = serde_json::to_string(&cmd).unwrap();
            assert_eq!(Command::from_line(back.as_bytes()).unwrap().1, cmd);
        }
        let (_, c) = Command::from_line(br#"{"cmd":"pool-size","value":null}"#).unwrap();
        assert_eq!(c, Command::PoolSize { value: Some(None) });
        // `null` follows the pool's limit; absent leaves the cap as it is.
        let cap = |line: &str| match Command::from_line(line.as_bytes()).unwrap().1 {
            Command::GroupSettings { num_concurrent, .. } => num_concurrent,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            cap(r#"{"cmd":"group-settings","name":"g","num_concurrent":null}"#),
            Some(None)
        );
        assert_eq!(cap(r#"{"cmd":"group-settings","name":"g"}"#), None);
    }

    #[test]
    fn request_errors_are_classified() {
        let kind = |s: &str| Command::from_line(s.as_bytes()).unwrap_err().kind;
        assert_eq!(kind("{"), ErrorKind::BadJson);
        assert_eq!(kind("[1]"), ErrorKind::BadRequest);
        assert_eq!(kind(r#"{"cmd":1}"#), ErrorKind::BadRequest);
        // Names that are not built in parse as the program's own commands.
        assert_eq!(
            Command::from_line(br#"{"cmd":"bogus"}"#).unwrap().1,
            Command::Custom {
                name: "bogus".into(),
                args: Value::Null
            }
        );
        assert_eq!(kind(r#"{"cmd":"bogus","x":1}"#), ErrorKind::BadRequest);
        assert_eq!(kind(r#"{"cmd":"stop"}"#), ErrorKind::BadRequest);
        assert_eq!(kind(r#"{"cmd":"stop","num":-1}"#), ErrorKind::BadRequest);
        assert_eq!(kind(r#"{"cmd":"lock","extra":1}"#), ErrorKind::BadRequest);
        let e = Command::from_line(br#"{"id":"a","cmd":"nope","x":1}"#).unwrap_err();
        assert_eq!(e.id, Some(Value::from("a")));
    }
}

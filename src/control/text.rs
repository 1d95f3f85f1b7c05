//! The text form of commands and replies: what an operator types (in `taskpool-ctl` or
//! asyncio-taskpool's Python client) and what they read back.

use super::protocol::{
    spec, unknown_command, Applies, Command, ErrorKind, ServerInfo, WireError, WireQuota, COMMANDS,
};
use serde_json::Value;
use std::fmt::Write as _;

/// Splits a typed line into words on whitespace, keeping JSON together: spaces inside
/// `"strings"`, `[arrays]` and `{objects}` do not split, so `map fetch ["a b", "c"]` is three
/// words.
///
/// ```
/// use async_taskpool::control::text::split_words;
/// assert_eq!(split_words(r#"map job [1, {"a": "b c"}] -n 2"#),
///            ["map", "job", r#"[1, {"a": "b c"}]"#, "-n", "2"]);
/// ```
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for ch in line.chars() {
        if in_str {
            cur.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Parses a typed command line into a [`Command`]. Returns `Ok(None)` for a blank line.
///
/// The spellings are asyncio-taskpool's: `pool-size 3`, `cancel 1 2`, `start 2`, `stop 1`,
/// `get-group-ids a b`, plus `apply JOB [ARGS_JSON] -n N -g NAME` and
/// `map JOB ARGS_JSON -n N -g NAME`; `CMD -h` asks for help. Its ignored options are accepted:
/// `-r`/`--return-exceptions` on `flush` and `gather-and-close`, `-m`/`--msg TEXT` on the
/// cancel commands.
///
/// ```
/// use async_taskpool::control::{protocol::Command, text::parse_line};
/// assert_eq!(parse_line("stop 2").unwrap(), Some(Command::Stop { num: 2 }));
/// assert_eq!(parse_line("pool-size inf").unwrap(), Some(Command::PoolSize { value: Some(None) }));
/// assert!(parse_line("stop two").is_err());
/// assert_eq!(parse_line("   ").unwrap(), None);
/// ```
pub fn parse_line(line: &str) -> Result<Option<Command>, WireError> {
    let words = split_words(line);
    if words.is_empty() {
        return Ok(None);
    }
    parse_words(&words).map(Some)
}

/// Parses a command already split into words (e.g. a program's arguments after `--`).
///
/// ```
/// use async_taskpool::control::{protocol::Command, text::parse_words};
/// assert_eq!(parse_words(&["cancel", "1", "2"]).unwrap(), Command::Cancel { ids: vec![1, 2] });
/// ```
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Command, WireError> {
    let Some((first, rest)) = words.split_first() else {
        return Err(bad("empty command; `help` lists the commands"));
    };
    let name = first.as_ref().to_ascii_lowercase();
    let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
    let Some(spec) = spec(&name) else {
        if name == "-h" || name == "--help" {
            return Ok(Command::Help { command: None });
        }
        return custom(name, &rest);
    };
    if rest.iter().any(|w| *w == "-h" || *w == "--help") && name != "help" {
        return Ok(Command::Help {
            command: Some(name),
        });
    }
    let usage = || format!("usage: {}", spec.usage);
    let mut args = Args {
        words: rest,
        usage: &usage,
    };
    let cmd = match name.as_str() {
        "help" => Command::Help {
            command: args.optional(),
        },
        "stats" => Command::Stats,
        "tasks" => {
            let limit = args.option(&["-l", "--limit"])?;
            let offset = args.option(&["-o", "--offset"])?;
            let after = args.option(&["-a", "--after"])?;
            let state = args.option(&["-s", "--state"])?;
            let group = args.option(&["-g", "--group"])?;
            let search = args.option(&["--search"])?;
            let count = |w: Option<String>, what| w.map(|w| number(&w, what, &usage)).transpose();
            let state = state
                .map(|s| {
                    serde_json::from_value(Value::String(s.to_ascii_lowercase())).map_err(|_| {
                        bad(format!(
                            "STATE is one of queued, running or ending, not `{s}`; {}",
                            usage()
                        ))
                    })
                })
                .transpose()?;
            Command::Tasks {
                limit: count(limit, "N")?,
                offset: count(offset, "N")?,
                after: count(after, "ID")?.map(|id| id as u64),
                state,
                group,
                search,
            }
        }
        "groups" => {
            let limit = args.option(&["-l", "--limit"])?;
            Command::Groups {
                limit: limit.map(|w| number(&w, "N", &usage)).transpose()?,
                after: args.option(&["-a", "--after"])?,
            }
        }
        "lock" => Command::Lock,
        "unlock" => Command::Unlock,
        "is-locked" => Command::IsLocked,
        "is-full" => Command::IsFull,
        "num-running" => Command::NumRunning,
        "num-queued" => Command::NumQueued,
        "num-ended" => Command::NumEnded,
        "num-cancelled" => Command::NumCancelled,
        "stop-all" => Command::StopAll,
        "func-name" => Command::FuncName,
        "until-closed" => Command::UntilClosed,
        "flush" | "gather-and-close" => {
            args.flag(&["-r", "--return-exceptions"]);
            if name == "flush" {
                Command::Flush
            } else {
                Command::GatherAndClose
            }
        }
        "cancel-all" => {
            args.option(&["-m", "--msg"])?;
            Command::CancelAll
        }
        "cancel-group" => {
            args.option(&["-m", "--msg"])?;
            Command::CancelGroup {
                name: args.required("NAME")?,
            }
        }
        "cancel" => {
            args.option(&["-m", "--msg"])?;
            let ids = args
                .rest()
                .iter()
                .map(|w| number(w, "ID", &usage).map(|n| n as u64))
                .collect::<Result<_, _>>()?;
            Command::Cancel { ids }
        }
        "get-group-ids" => Command::GetGroupIds {
            names: args.rest().iter().map(|s| s.to_string()).collect(),
        },
        "group-settings" => {
            let priority = args.option(&["-p", "--priority"])?;
            let weight = args.option(&["-w", "--weight"])?;
            let cap = args.option(&["-n", "--num-concurrent"])?;
            let rate_limit = args.rate_limit()?;
            Command::GroupSettings {
                name: args.required("NAME")?,
                priority: priority
                    .map(|w| signed(&w, "--priority P", &usage))
                    .transpose()?,
                weight: weight
                    .map(|w| number(&w, "--weight W", &usage).map(|n| n as u64))
                    .transpose()?,
                num_concurrent: cap
                    .map(|w| match w.to_ascii_lowercase().as_str() {
                        "pool" | "pool-limit" => Ok(None),
                        _ => number(&w, "--num-concurrent N", &usage)
                            .map(Some)
                            .map_err(|_| {
                                bad(format!(
                                    "--num-concurrent N must be a whole number, or `pool` to \
                                     follow the pool's limit, not `{w}`; {}",
                                    usage()
                                ))
                            }),
                    })
                    .transpose()?,
                rate_limit,
            }
        }
        "pool-settings" => {
            let mut count = |names: &[&str], what: &str| {
                args.option(names)?
                    .map(|w| number(&w, what, &usage).map(|n| n as u64))
                    .transpose()
            };
            let loose_weight = count(&["-w", "--loose-weight"], "--loose-weight W")?;
            let adaptive_min = count(&["--adaptive-min"], "--adaptive-min N")?;
            let adaptive_max = count(&["--adaptive-max"], "--adaptive-max N")?;
            let rate_limit = args.rate_limit()?;
            Command::PoolSettings {
                loose_weight,
                adaptive_min,
                adaptive_max,
                rate_limit,
            }
        }
        "pool-size" => Command::PoolSize {
            value: match args.optional() {
                None => None,
                Some(w) if ["inf", "none", "unlimited"].contains(&&*w.to_ascii_lowercase()) => {
                    Some(None)
                }
                Some(w) => Some(Some(number(&w, "N", &usage)?)),
            },
        },
        "start" | "stop" => {
            let num = number(&args.required("NUM")?, "NUM", &usage)?;
            if name == "start" {
                Command::Start { num }
            } else {
                Command::Stop { num }
            }
        }
        "apply" => {
            let num = args.option(&["-n", "--num"])?;
            let group = args.option(&["-g", "--group", "--group-name"])?;
            let flagged = args.option(&["-a", "--args"])?;
            let job = args.required("JOB")?;
            let raw = match flagged {
                Some(a) => Some(a),
                None => args.optional(),
            };
            Command::Apply {
                name: job,
                // A bare word that is not JSON is taken as a string: `apply greet world`.
                args: raw.map_or(Value::Null, |r| {
                    serde_json::from_str(&r).unwrap_or(Value::String(r))
                }),
                num: num.map_or(Ok(1), |n| number(&n, "N", &usage))?,
                group,
            }
        }
        "map" => {
            let num = args.option(&["-n", "--num-concurrent"])?;
            let group = args.option(&["-g", "--group", "--group-name"])?;
            let job = args.required("JOB")?;
            let raw = args.required("ARGS_JSON")?;
            let items = match serde_json::from_str(&raw) {
                Ok(Value::Array(items)) => items,
                _ => {
                    return Err(bad(format!(
                        "ARGS_JSON must be a JSON array such as [1,2,3], not `{raw}`; {}",
                        usage()
                    )))
                }
            };
            Command::Map {
                name: job,
                args: items,
                num_concurrent: num.map_or(Ok(1), |n| number(&n, "N", &usage))?,
                group,
            }
        }
        _ => return Err(unknown_command(&name)),
    };
    args.done()?;
    Ok(cmd)
}

/// A command the program added: `NAME [ARGS_JSON]`, its argument one JSON value (a bare word
/// that is not JSON is taken as a string). The server says whether it exists.
fn custom(name: String, rest: &[&str]) -> Result<Command, WireError> {
    if super::custom::check_name(&name).is_err() {
        return Err(unknown_command(&name));
    }
    if rest.iter().any(|w| *w == "-h" || *w == "--help") {
        return Ok(Command::Help {
            command: Some(name),
        });
    }
    let args = match rest {
        [] => Value::Null,
        [word] => serde_json::from_str(word).unwrap_or_else(|_| Value::String((*word).to_owned())),
        [_, extra, ..] => {
            return Err(bad(format!(
                "unexpected argument `{extra}`; usage: {name} [ARGS_JSON] (one JSON value, e.g. \
                 {name} {{\"queue\":\"mail\"}})"
            )))
        }
    };
    Ok(Command::Custom { name, args })
}

struct Args<'a, 'u> {
    words: Vec<&'a str>,
    usage: &'u dyn Fn() -> String,
}

impl Args<'_, '_> {
    fn flag(&mut self, names: &[&str]) -> bool {
        let before = self.words.len();
        self.words.retain(|w| !names.contains(w));
        before != self.words.len()
    }

    /// `--rate N/PERIOD [--burst B]` (`group-settings`, `pool-settings`): `None` if not
    /// given, `Some(None)` for `inf`.
    fn rate_limit(&mut self) -> Result<Option<Option<WireQuota>>, WireError> {
        let rate = self.option(&["-r", "--rate"])?;
        let burst = self.option(&["-b", "--burst"])?;
        match (rate, burst) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(bad(format!(
                "--burst B goes with --rate N/PERIOD (e.g. `--rate 10/s --burst 5`); {}",
                (self.usage)()
            ))),
            (Some(r), burst) => rate_option(&r, burst.as_deref(), self.usage).map(Some),
        }
    }

    fn option(&mut self, names: &[&str]) -> Result<Option<String>, WireError> {
        let Some(i) = self.words.iter().position(|w| names.contains(w)) else {
            return Ok(None);
        };
        if i + 1 >= self.words.len() {
            return Err(bad(format!(
                "option {} needs a value; {}",
                self.words[i],
                (self.usage)()
            )));
        }
        let value = self.words[i + 1].to_owned();
        self.words.drain(i..=i + 1);
        Ok(Some(value))
    }

    fn optional(&mut self) -> Option<String> {
        (!self.words.is_empty()).then(|| self.words.remove(0).to_owned())
    }

    fn required(&mut self, what: &str) -> Result<String, WireError> {
        self.optional()
            .ok_or_else(|| bad(format!("missing argument {what}; {}", (self.usage)())))
    }

    fn rest(&mut self) -> Vec<&str> {
        std::mem::take(&mut self.words)
    }

    fn done(&self) -> Result<(), WireError> {
        match self.words.first() {
            None => Ok(()),
            Some(w) => Err(bad(format!(
                "unexpected argument `{w}`; {}",
                (self.usage)()
            ))),
        }
    }
}

fn bad(message: impl Into<String>) -> WireError {
    WireError::new(ErrorKind::BadRequest, message)
}

fn signed(word: &str, what: &str, usage: &dyn Fn() -> String) -> Result<i64, WireError> {
    word.parse().map_err(|_| {
        bad(format!(
            "{what} must be a whole number (negative for lower), not `{word}`; {}",
            usage()
        ))
    })
}

/// `--rate N/PERIOD [--burst B]` as a quota, or `inf` (no rate limit) as `None`; the
/// bounds are `bounds.rs`'s.
fn rate_option(
    word: &str,
    burst: Option<&str>,
    usage: &dyn Fn() -> String,
) -> Result<Option<WireQuota>, WireError> {
    let shape = || {
        bad(format!(
            "--rate takes N/PERIOD, e.g. `10/s`, `30/min`, `2/h`, `1/day`, `5/250ms` or \
             `3/2.5s`, or `inf` for no rate limit, not `{word}`; {}",
            usage()
        ))
    };
    if ["inf", "none", "off"].contains(&&*word.to_ascii_lowercase()) {
        if burst.is_some() {
            return Err(bad(format!(
                "--burst B goes with a rate, not with `--rate {word}`; {}",
                usage()
            )));
        }
        return Ok(None);
    }
    let (count, period) = word.split_once('/').ok_or_else(shape)?;
    let count: u64 = count.trim().parse().map_err(|_| shape())?;
    let period = period.trim().to_ascii_lowercase();
    let split = period
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(shape)?;
    let (n, unit) = period.split_at(split);
    let n: f64 = if n.is_empty() {
        1.0
    } else {
        n.parse().map_err(|_| shape())?
    };
    let unit_ms = match unit {
        "ms" => 1.0,
        "s" | "sec" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" | "hour" => 3_600_000.0,
        "d" | "day" => 86_400_000.0,
        _ => return Err(shape()),
    };
    let burst = burst
        .map(|b| number(b, "--burst B", usage).map(|n| n as u64))
        .transpose()?;
    Ok(Some(WireQuota {
        count,
        period_ms: n * unit_ms,
        burst,
    }))
}

fn number(word: &str, what: &str, usage: &dyn Fn() -> String) -> Result<usize, WireError> {
    word.parse().map_err(|_| {
        bad(format!(
            "{what} must be a whole number, not `{word}`; {}",
            usage()
        ))
    })
}

/// How booleans, sets and "nothing" look in text replies. No limit is `inf` in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As asyncio-taskpool prints them: `True`, `{0, 1}`, `ok`, `inf`.
    Python,
    /// As `taskpool-ctl` prints them: `true`, `[0, 1]`, `ok`, `inf`.
    Plain,
}

/// Renders a command's `ok` value as text.
///
/// ```
/// use async_taskpool::control::text::{render, Style};
/// use serde_json::json;
/// assert_eq!(render("lock", &json!(null), Style::Python), "ok");
/// assert_eq!(render("is-locked", &json!(true), Style::Python), "True");
/// assert_eq!(render("get-group-ids", &json!([0, 1]), Style::Python), "{0, 1}");
/// assert_eq!(render("pool-size", &json!(null), Style::Python), "inf");
/// assert_eq!(render("stop", &json!([3, 2]), Style::Plain), "[3, 2]");
/// ```
pub fn render(command: &str, value: &Value, style: Style) -> String {
    let py = style == Style::Python;
    match (command, value) {
        ("pool-size", Value::Null) => "inf".into(),
        ("stats", Value::Object(map)) => {
            // The operator's order: the numbers that move first, then the rest.
            const FIRST: [&str; 9] = [
                "name",
                "limit",
                "running",
                "queued",
                "ending",
                "ended",
                "cancelled",
                "panicked",
                "timed_out",
            ];
            field_lines(map, &FIRST, style)
        }
        ("group-settings", Value::Object(map)) => field_lines(
            map,
            &["name", "priority", "weight", "num_concurrent", "rate_limit"],
            style,
        ),
        ("pool-settings", Value::Object(map)) => field_lines(
            map,
            &["limit", "loose_weight", "rate_limit", "adaptive"],
            style,
        ),
        ("tasks", Value::Object(page)) => {
            let tasks = page.get("tasks").and_then(Value::as_array);
            let tasks = tasks.map_or(&[][..], Vec::as_slice);
            let num = |k: &str| page.get(k).and_then(Value::as_u64);
            let total = num("total").unwrap_or(tasks.len() as u64);
            let offset = num("offset");
            let mut out = task_lines(tasks);
            let Some(offset) = offset else {
                // A filtered page: its position among the live tasks is not counted.
                if tasks.is_empty() {
                    out = "(no matching tasks on this page)".into();
                } else {
                    out.pop();
                }
                if let Some(next) = num("next") {
                    let _ = write!(
                        out,
                        "\n(more may match: tasks --after {next} with the same filter)"
                    );
                }
                return out;
            };
            if tasks.is_empty() {
                out = if total == 0 {
                    "(no live tasks)".into()
                } else {
                    format!("(no tasks on this page; {total} live)")
                };
            } else if (tasks.len() as u64) < total {
                let last = offset + tasks.len() as u64;
                let _ = write!(out, "\n(tasks {}-{last} of {total}", offset + 1);
                if let Some(next) = num("next") {
                    let _ = write!(out, "; next page: tasks --after {next}");
                }
                out.push(')');
            }
            out
        }
        ("groups", Value::Object(page)) => {
            let groups = page.get("groups").and_then(Value::as_array);
            let groups = groups.map_or(&[][..], Vec::as_slice);
            if groups.is_empty() {
                return "(no groups)".into();
            }
            let mut out = String::new();
            for g in groups {
                let name = g.get("name").and_then(Value::as_str).unwrap_or("?");
                let live = g.get("live").and_then(Value::as_u64).unwrap_or(0);
                let _ = write!(out, "{live:>8} live  {name}");
                // Absent from servers before group settings were shown.
                if let (Some(p), Some(w)) = (g.get("priority"), g.get("weight")) {
                    let cap = g
                        .get("num_concurrent")
                        .map_or("?".into(), |c| shown_value("num_concurrent", c, style));
                    let _ = write!(out, "  (priority {p}, weight {w}, num_concurrent {cap}");
                    match g.get("rate_limit") {
                        Some(r @ Value::Object(_)) => {
                            let _ = write!(out, ", rate {})", shown_value("rate_limit", r, style));
                        }
                        _ => out.push(')'),
                    }
                }
                out.push('\n');
            }
            out.pop();
            if let Some(next) = page.get("next").and_then(Value::as_str) {
                let _ = write!(out, "\n(next page: groups --after {next})");
            }
            out
        }
        ("tasks", Value::Array(tasks)) if tasks.is_empty() => "(no live tasks)".into(),
        ("tasks", Value::Array(tasks)) => task_lines(tasks),
        ("get-group-ids", Value::Array(ids)) if py => {
            if ids.is_empty() {
                "set()".into()
            } else {
                format!("{{{}}}", join(ids, style))
            }
        }
        (_, Value::Null) => "ok".into(),
        (_, Value::Bool(b)) => match (py, b) {
            (true, true) => "True".into(),
            (true, false) => "False".into(),
            (false, b) => b.to_string(),
        },
        (_, Value::String(s)) => s.clone(),
        (_, Value::Number(n)) => n.to_string(),
        (_, Value::Array(items)) => format!("[{}]", join(items, style)),
        (_, Value::Object(_)) => value.to_string(),
    }
}

/// `key: value` lines, right-aligned on the colon: the `first` keys in that order, then the
/// rest as they come.
fn field_lines(map: &serde_json::Map<String, Value>, first: &[&str], style: Style) -> String {
    let known = first.iter().filter_map(|k| map.get_key_value(*k));
    let rest = map.iter().filter(|(k, _)| !first.contains(&k.as_str()));
    let width = map.keys().map(String::len).max().unwrap_or(0).max(10);
    let mut out = String::new();
    for (k, v) in known.chain(rest) {
        let _ = writeln!(out, "{k:>width$}: {}", shown_value(k, v, style));
    }
    out.pop();
    out
}

/// A field's value as an operator reads it: no limit is `inf`, a group that follows the
/// pool's limit is `pool`.
fn shown_value(key: &str, v: &Value, style: Style) -> String {
    match (key, v) {
        ("limit", Value::Null) => "inf".to_owned(),
        ("num_concurrent", Value::Null) => "pool".to_owned(),
        ("rate_limit", Value::Null) => "inf".to_owned(),
        ("rate_limit", Value::Object(q)) => rate_text(q),
        ("adaptive", Value::Null) => "off".to_owned(),
        ("adaptive", Value::Object(a)) => {
            let f = |k: &str| a.get(k).map_or("?".into(), |v| render("", v, style));
            format!(
                "{} at {} (bounds {}..={}; {} samples, {} overloads)",
                f("limiter"),
                f("limit"),
                f("min"),
                f("max"),
                f("samples"),
                f("overloads")
            )
        }
        _ => render("", v, style),
    }
}

/// A quota as `--rate` takes it, with its burst: `10/s, burst 5`.
fn rate_text(q: &serde_json::Map<String, Value>) -> String {
    let count = q.get("count").map_or("?".into(), Value::to_string);
    let ms = q
        .get("period_ms")
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN);
    let period = match ms {
        1_000.0 => "s".to_owned(),
        60_000.0 => "min".to_owned(),
        3_600_000.0 => "h".to_owned(),
        86_400_000.0 => "day".to_owned(),
        ms if ms >= 1_000.0 => format!("{}s", ms / 1_000.0),
        ms => format!("{ms}ms"),
    };
    let mut out = format!("{count}/{period}");
    if let Some(b) = q.get("burst") {
        let _ = write!(out, ", burst {b}");
    }
    out
}

fn task_lines(tasks: &[Value]) -> String {
    let mut out = String::new();
    for t in tasks {
        let field = |k: &str| match t.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "-".into(),
            Some(v) => v.to_string(),
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<8}  {}  (group {})",
            field("id"),
            field("state"),
            field("name"),
            field("group")
        );
    }
    out.pop();
    out
}

fn join(items: &[Value], style: Style) -> String {
    items
        .iter()
        .map(|v| render("", v, style))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `ARGS_JSON` means for a command the program added.
pub(crate) const CUSTOM_ARGS_DOC: &str =
    "the command's argument as one JSON value (see the program's documentation); omit for null";

/// Help text for the server `info` describes (from its hello): the command list, or one
/// command's usage and arguments. `help apply` and `help map` list the registered jobs with
/// the JSON their argument takes, and the program's own commands are listed after the
/// built-in ones.
///
/// ```
/// use async_taskpool::control::protocol::ServerInfo;
/// use async_taskpool::control::text::help_text;
/// let info: ServerInfo = serde_json::from_str(r#"{"server":"async-taskpool 0.1.0","version":1,
///     "pool":"w","kind":"simple","commands":[],"jobs":[],
///     "custom_commands":[{"name":"queue-stats","summary":"Job counts per queue."}]}"#).unwrap();
/// assert!(help_text(&info, None).contains("stop NUM"));
/// assert!(help_text(&info, None).contains("queue-stats [ARGS_JSON]"));
/// assert!(help_text(&info, Some("stop")).contains("how many tasks to stop"));
/// assert!(help_text(&info, Some("queue-stats")).contains("Job counts per queue."));
/// ```
pub fn help_text(info: &ServerInfo, command: Option<&str>) -> String {
    let mut out = String::new();
    let Some(name) = command else {
        out.push_str("commands (`help COMMAND` or `COMMAND -h` for details):");
        for s in COMMANDS.iter().filter(|s| s.applies.to(info.kind)) {
            let _ = write!(out, "\n  {:<50} {}", s.usage, s.summary);
        }
        if !info.custom_commands.is_empty() {
            out.push_str("\ncommands of this program:");
            for c in &info.custom_commands {
                let usage = format!("{} [ARGS_JSON]", c.name);
                let _ = write!(out, "\n  {usage:<50} {}", c.summary);
            }
        }
        return out;
    };
    let name = name.to_ascii_lowercase();
    if let Some(c) = info.custom_commands.iter().find(|c| c.name == name) {
        let _ = write!(
            out,
            "usage: {name} [ARGS_JSON]\n  {}\narguments:\n  {:<24} {CUSTOM_ARGS_DOC}\n(added by the program)",
            c.summary, "ARGS_JSON"
        );
        return out;
    }
    let Some(s) = spec(&name) else {
        return format!("unknown command `{name}`; `help` lists the commands");
    };
    let _ = write!(out, "usage: {}\n  {}", s.usage, s.summary);
    if !s.args.is_empty() {
        out.push_str("\narguments:");
        for (a, d) in s.args {
            let _ = write!(out, "\n  {a:<24} {d}");
        }
    }
    if matches!(s.name, "apply" | "map") {
        if info.job_args.is_empty() && info.jobs.is_empty() {
            out.push_str("\njobs: none registered (the program registers them)");
        } else {
            out.push_str("\njobs (JOB: the JSON its argument takes):");
            for job in &info.jobs {
                let shape = info.job_args.get(job).map_or("?", String::as_str);
                let each = if s.name == "map" { "each item: " } else { "" };
                let _ = write!(out, "\n  {job:<24} {each}{shape}");
            }
        }
    }
    match s.applies {
        Applies::Task => out.push_str("\n(TaskPool only)"),
        Applies::Simple => out.push_str("\n(SimpleTaskPool only)"),
        Applies::Both => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Command {
        parse_line(s).unwrap().unwrap()
    }

    #[test]
    fn python_client_spellings() {
        assert_eq!(
            parse("pool-size 3"),
            Command::PoolSize {
                value: Some(Some(3))
            }
        );
        assert_eq!(parse("pool-size"), Command::PoolSize { value: None });
        assert_eq!(parse("cancel 1 2"), Command::Cancel { ids: vec![1, 2] });
        assert_eq!(parse("cancel 1 -m why"), Command::Cancel { ids: vec![1] });
        assert_eq!(parse("start 2"), Command::Start { num: 2 });
        assert_eq!(parse("stop 1"), Command::Stop { num: 1 });
        assert_eq!(parse("flush -r"), Command::Flush);
        assert_eq!(parse("gather-and-close"), Command::GatherAndClose);
        assert_eq!(
            parse("get-group-ids a b"),
            Command::GetGroupIds {
                names: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            parse("stop -h"),
            Command::Help {
                command: Some("stop".into())
            }
        );
        assert_eq!(parse("-h"), Command::Help { command: None });
        assert_eq!(parse("STATS"), Command::Stats);
    }

    #[test]
    fn apply_and_map() {
        assert_eq!(
            parse(r#"apply fetch "https://x y" -n 3 -g grp"#),
            Command::Apply {
                name: "fetch".into(),
                args: Value::from("https://x y"),
                num: 3,
                group: Some("grp".into())
            }
        );
        assert_eq!(
            parse("apply greet world"),
            Command::Apply {
                name: "greet".into(),
                args: "world".into(),
                num: 1,
                group: None
            }
        );
        assert_eq!(
            parse("apply tick --num 2"),
            Command::Apply {
                name: "tick".into(),
                args: Value::Null,
                num: 2,
                group: None
            }
        );
        assert_eq!(
            parse("map job [1, 2] --num-concurrent 2"),
            Command::Map {
                name: "job".into(),
                args: vec![1.into(), 2.into()],
                num_concurrent: 2,
                group: None
            }
        );
    }

    #[test]
    fn settings_commands() {
        assert_eq!(
            parse("group-settings pages"),
            Command::GroupSettings {
                name: "pages".into(),
                priority: None,
                weight: None,
                num_concurrent: None,
                rate_limit: None
            }
        );
        assert_eq!(
            parse("group-settings pages --priority -5 -w 3 --num-concurrent pool"),
            Command::GroupSettings {
                name: "pages".into(),
                priority: Some(-5),
                weight: Some(3),
                num_concurrent: Some(None),
                rate_limit: None
            }
        );
        assert_eq!(
            parse("group-settings -n 8 pages"),
            Command::GroupSettings {
                name: "pages".into(),
                priority: None,
                weight: None,
                num_concurrent: Some(Some(8)),
                rate_limit: None
            }
        );
        let rate = |s: &str| match parse(s) {
            Command::GroupSettings { rate_limit, .. } => rate_limit,
            other => panic!("{other:?}"),
        };
        let quota = |count, period_ms, burst| {
            Some(Some(WireQuota {
                count,
                period_ms,
                burst,
            }))
        };
        assert_eq!(
            rate("group-settings g --rate 10/s"),
            quota(10, 1000.0, None)
        );
        assert_eq!(
            rate("group-settings g -r 30/min -b 1"),
            quota(30, 60000.0, Some(1))
        );
        assert_eq!(rate("group-settings g -r 5/250ms"), quota(5, 250.0, None));
        assert_eq!(rate("group-settings g -r 3/2.5s"), quota(3, 2500.0, None));
        assert_eq!(
            rate("group-settings g -r 1/day"),
            quota(1, 86_400_000.0, None)
        );
        assert_eq!(rate("group-settings g -r 2/h"), quota(2, 3_600_000.0, None));
        assert_eq!(rate("group-settings g --rate inf"), Some(None));
        assert_eq!(
            parse("pool-settings --loose-weight 2"),
            Command::PoolSettings {
                loose_weight: Some(2),
                adaptive_min: None,
                adaptive_max: None,
                rate_limit: None,
            }
        );
        assert_eq!(
            parse("pool-settings --adaptive-min 2 --adaptive-max 40"),
            Command::PoolSettings {
                loose_weight: None,
                adaptive_min: Some(2),
                adaptive_max: Some(40),
                rate_limit: None,
            }
        );
        assert_eq!(
            parse("pool-settings"),
            Command::PoolSettings {
                loose_weight: None,
                adaptive_min: None,
                adaptive_max: None,
                rate_limit: None,
            }
        );
        assert_eq!(
            parse("pool-settings --rate 10/s --burst 2"),
            Command::PoolSettings {
                loose_weight: None,
                adaptive_min: None,
                adaptive_max: None,
                rate_limit: Some(Some(WireQuota {
                    count: 10,
                    period_ms: 1000.0,
                    burst: Some(2),
                })),
            }
        );
        assert_eq!(
            parse("pool-settings --rate inf"),
            Command::PoolSettings {
                loose_weight: None,
                adaptive_min: None,
                adaptive_max: None,
                rate_limit: Some(None),
            }
        );
        let err = |s: &str| parse_line(s).unwrap_err().message;
        assert!(err("group-settings").contains("missing argument NAME"));
        assert!(err("group-settings g -n many").contains("or `pool`"));
        assert!(err("group-settings g -p high").contains("whole number"));
        assert!(err("group-settings g -w -1").contains("whole number"));
        assert!(err("pool-settings 3").contains("unexpected argument `3`"));
        assert!(err("pool-settings --burst 2").contains("goes with --rate"));
        for bad_rate in [
            "10",
            "10/",
            "ten/s",
            "10/fortnight",
            "10/1000",
            "-1/s",
            "10/s/s",
        ] {
            let m = err(&format!("group-settings g --rate {bad_rate}"));
            assert!(
                m.contains("N/PERIOD") && m.contains("`10/s`"),
                "{bad_rate}: {m}"
            );
        }
        assert!(err("group-settings g --burst 5").contains("goes with --rate"));
        assert!(err("group-settings g --rate inf --burst 5").contains("goes with a rate"));
        assert!(err("group-settings g --rate 1/s --burst many").contains("whole number"));
        assert!(err("pool-settings --adaptive-max lots").contains("whole number"));
    }

    #[test]
    fn settings_replies_read_as_text() {
        let group = serde_json::json!({"name": "pages", "priority": -5, "weight": 3,
            "num_concurrent": null});
        assert_eq!(
            render("group-settings", &group, Style::Plain),
            "          name: pages\n      priority: -5\n        weight: 3\nnum_concurrent: pool"
        );
        let pool = serde_json::json!({"limit": null, "loose_weight": 2});
        assert_eq!(
            render("pool-settings", &pool, Style::Python),
            "       limit: inf\nloose_weight: 2"
        );
        let group = serde_json::json!({"name": "pages", "priority": 0, "weight": 1,
            "num_concurrent": 2, "rate_limit": {"count": 30, "period_ms": 60000, "burst": 1}});
        assert!(
            render("group-settings", &group, Style::Plain)
                .ends_with("\n    rate_limit: 30/min, burst 1"),
            "{}",
            render("group-settings", &group, Style::Plain)
        );
        let group = serde_json::json!({"name": "p", "rate_limit": null});
        assert!(render("group-settings", &group, Style::Plain).ends_with("rate_limit: inf"));
        let pool = serde_json::json!({"limit": 7, "loose_weight": 1, "adaptive":
            {"limiter": "aimd", "min": 1, "max": 20, "limit": 7, "samples": 40, "overloads": 3}});
        assert_eq!(
            render("pool-settings", &pool, Style::Plain),
            "       limit: 7\nloose_weight: 1\n    adaptive: aimd at 7 (bounds 1..=20; 40 \
             samples, 3 overloads)"
        );
        let pool = serde_json::json!({"limit": 7, "loose_weight": 1, "adaptive": null});
        assert!(render("pool-settings", &pool, Style::Plain).ends_with("adaptive: off"));
        let page = serde_json::json!({"total": 1, "next": null, "groups": [
            {"name": "pages", "live": 2, "priority": 1, "weight": 3, "num_concurrent": 4},
            {"name": "hosts", "live": 0, "priority": 0, "weight": 1, "num_concurrent": null,
             "rate_limit": {"count": 1, "period_ms": 2500, "burst": 1}}]});
        assert_eq!(
            render("groups", &page, Style::Plain),
            "       2 live  pages  (priority 1, weight 3, num_concurrent 4)\n       0 live  \
             hosts  (priority 0, weight 1, num_concurrent pool, rate 1/2.5s, burst 1)"
        );
        let old = serde_json::json!({"total": 1, "next": null, "groups": [
            {"name": "pages", "live": 2}]});
        assert_eq!(render("groups", &old, Style::Plain), "       2 live  pages");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |s: &str| parse_line(s).unwrap_err();
        assert_eq!(err("Bo/gus").kind, ErrorKind::UnknownCommand);
        assert!(err("stop").message.contains("missing argument NUM"));
        assert!(err("stop x").message.contains("whole number"));
        assert!(err("lock now")
            .message
            .contains("unexpected argument `now`"));
        assert!(err("map job 3").message.contains("JSON array"));
        assert!(err("apply job -n").message.contains("needs a value"));
        assert!(err("pool-size -1").message.contains("whole number"));
    }

    #[test]
    fn unbalanced_json_does_not_panic() {
        for s in [
            "map j [",
            "map j ]]]",
            "apply j \"",
            "apply j {\"a\":",
            "\\\"",
            "[[[{",
        ] {
            let _ = parse_line(s);
        }
    }
}

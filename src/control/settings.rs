//! The run-time scheduling settings an operator shows and changes: a group's priority, weight,
//! concurrency cap and rate limit (`group-settings`), the loose tasks' weight, the pool's rate
//! limit and the adaptive limit's bounds (`pool-settings`; the limit itself is `pool-size`'s). The same values are in
//! the replies operators already read: `groups` (each group's [`GroupStats`](crate::GroupStats))
//! and `stats` ([`PoolStats::loose_weight`](crate::PoolStats::loose_weight), and `adaptive`,
//! which [`stats`] adds).
//!
//! # Adding a setting
//!
//! A setting the pool gains at run time is shown and changed the same way:
//! 1. an optional field of [`Command::PoolSettings`] or [`Command::GroupSettings`]
//!    (`protocol.rs`), its spec line in `COMMANDS`, and its option in `text.rs`;
//! 2. its bound, checked before anything changes, in `bounds.rs`;
//! 3. here: applied in [`pool`] or [`group`] (a group's through the engine's
//!    `GroupChange`, so a request changes all its fields or none), and shown in the reply
//!    they build;
//! 4. its field in `PoolStats` or `GroupStats`, so `stats` and `groups` show it too (a value
//!    whose type is the engine's is added to the reply here instead, as [`stats`] adds
//!    `adaptive`: `stats.rs` imports nothing from the engine), and a row in `PROTOCOL.md`.
//!
//! [`Command::PoolSettings`]: super::protocol::Command::PoolSettings
//! [`Command::GroupSettings`]: super::protocol::Command::GroupSettings

use super::protocol::{ErrorKind, WireError, WireQuota};
use crate::engine::settings::{GroupChange, GroupSettings};
use crate::error::PoolError;
use crate::stats::quota_or_null;
use crate::{Concurrency, TaskPool};
use serde_json::{json, Value};

/// `group-settings`: changes what the request gives (checked by `bounds.rs` first), all or
/// none, and answers with the group's settings right after.
pub(crate) fn group(
    pool: &TaskPool,
    name: &str,
    priority: Option<i64>,
    weight: Option<u64>,
    num_concurrent: Option<Option<usize>>,
    rate_limit: Option<Option<WireQuota>>,
) -> Result<Value, WireError> {
    let rate = rate_limit.map(|q| q.map(quota).transpose()).transpose()?;
    let change = GroupChange {
        priority: priority.map(narrow).transpose()?,
        weight: weight.map(narrow).transpose()?,
        // `None` inside: follow the pool's limit.
        num_concurrent: num_concurrent.map(|cap| cap.unwrap_or(usize::MAX)),
        rate,
    };
    let now = match pool.core().change_group_named(name, change) {
        Err(PoolError::GroupEnded { name, .. }) => {
            return Err(WireError::new(
                ErrorKind::AlreadyEnded,
                format!(
                    "group `{name}` has ended (or was shed): a rate limit would never apply to \
                     it, so none was set and nothing changed; `groups` lists the groups"
                ),
            ))
        }
        other => other?,
    };
    Ok(group_json(name, now))
}

/// A quota from the wire (its bounds checked by `bounds.rs`).
fn quota(q: WireQuota) -> Result<crate::policy::Quota, WireError> {
    quota_or_null::from_parts(q.count, q.period_ms, q.burst)
        .map_err(|m| WireError::new(ErrorKind::BadRequest, format!("rate_limit: {m}")))
}

fn group_json(name: &str, s: GroupSettings) -> Value {
    let cap = match Concurrency::from_cap(s.num_concurrent) {
        Concurrency::AtMost(n) => json!(n),
        _ => Value::Null,
    };
    json!({
        "name": name,
        "priority": s.priority,
        "weight": s.weight,
        "num_concurrent": cap,
        "rate_limit": quota_json(s.rate),
    })
}

/// A quota as `groups` shows it (`GroupStats::rate_limit`'s JSON).
fn quota_json(q: Option<crate::policy::Quota>) -> Value {
    quota_or_null::serialize(&q, serde_json::value::Serializer).unwrap_or(Value::Null)
}

/// `pool-settings`: sets the loose tasks' weight, the pool's rate limit and the adaptive
/// limit's bounds if given (checked by `bounds.rs` first; a quota that cannot be made, or
/// bounds that cannot be set, change nothing), and answers with the pool's settings.
pub(crate) fn pool(
    pool: &TaskPool,
    loose_weight: Option<u64>,
    adaptive_min: Option<u64>,
    adaptive_max: Option<u64>,
    rate_limit: Option<Option<WireQuota>>,
) -> Result<Value, WireError> {
    let loose = loose_weight.map(narrow::<u64, u32>).transpose()?;
    let rate = rate_limit.map(|q| q.map(quota).transpose()).transpose()?;
    if adaptive_min.is_some() || adaptive_max.is_some() {
        set_adaptive_bounds(pool, adaptive_min, adaptive_max)?;
    }
    if let Some(rate) = rate {
        pool.set_rate_limit(rate);
    }
    let loose_weight = match loose {
        Some(w) => {
            pool.set_loose_weight(w)?;
            w
        }
        None => pool.loose_weight(),
    };
    Ok(json!({
        "limit": pool.limit(),
        "loose_weight": loose_weight,
        "rate_limit": quota_json(pool.rate_limit()),
        "adaptive": pool.adaptive(),
    }))
}

/// `stats`: the pool's [`PoolStats`](crate::PoolStats), `adaptive`
/// ([`TaskPool::adaptive`]) while an adaptive limit is set, and `rate_limit`
/// ([`TaskPool::rate_limit`], as `pool-settings` shows it) while the pool has one; both are
/// absent otherwise. (`AdaptiveStats` is the engine's type, so the snapshot type below it
/// does not carry it.)
pub(crate) fn stats(pool: &TaskPool) -> Value {
    let mut stats = json!(pool.stats());
    if let Some(adaptive) = pool.adaptive() {
        stats["adaptive"] = json!(adaptive);
    }
    if let Some(quota) = pool.rate_limit() {
        stats["rate_limit"] = quota_json(Some(quota));
    }
    stats
}

/// Moves the adaptive limit's bounds; a bound not given stays the limiter's own.
fn set_adaptive_bounds(
    pool: &TaskPool,
    min: Option<u64>,
    max: Option<u64>,
) -> Result<(), WireError> {
    let Some(now) = pool.adaptive() else {
        return Err(WireError::new(
            ErrorKind::Unsupported,
            "this pool has no adaptive limit, so it has no bounds to move: `pool-size N` sets a \
             fixed limit (an adaptive limit is set by the program, with \
             `PoolBuilder::adaptive_limit` or `TaskPool::set_adaptive_limit`)",
        ));
    };
    let min_given = min.is_some();
    let min = min.map(narrow).transpose()?.unwrap_or(now.min);
    let max = max.map(narrow).transpose()?.unwrap_or(now.max);
    if min > max {
        // Both given is `bounds.rs`'s; here one is the limiter's own.
        let which = if min_given {
            format!("`--adaptive-min {min}` is above the adaptive limit's upper bound {max}")
        } else {
            format!("`--adaptive-max {max}` is below the adaptive limit's lower bound {min}")
        };
        return Err(WireError::new(
            ErrorKind::BadRequest,
            format!(
                "{which}: give both, `--adaptive-min` at most `--adaptive-max` (JSON \
                 `adaptive_min`, `adaptive_max`)"
            ),
        ));
    }
    pool.set_adaptive_bounds(min, max).map_err(|e| {
        // The limiter is the program's: it may not move its bounds.
        WireError::new(
            ErrorKind::Unsupported,
            format!("the adaptive limit refused the bounds {min}..={max}: {e}"),
        )
    })
}

/// A wire number into the engine's type. The bounds are checked before (`bounds.rs`); this
/// only keeps a server configured past the type's range from wrapping.
fn narrow<W: Copy + std::fmt::Display, N: TryFrom<W>>(w: W) -> Result<N, WireError> {
    N::try_from(w).map_err(|_| {
        WireError::new(
            ErrorKind::OverLimit,
            format!("{w} is out of range for this setting; `help` gives the range"),
        )
    })
}

//! The run-time scheduling settings an operator shows and changes: a group's priority, weight
//! and concurrency cap (`group-settings`), the loose tasks' weight (`pool-settings`; the limit
//! itself is `pool-size`'s). The same values are in the replies operators already read:
//! `groups` (each group's [`GroupStats`](crate::GroupStats)) and `stats`
//! ([`PoolStats::loose_weight`](crate::PoolStats::loose_weight)).
//!
//! # Adding a setting
//!
//! A setting the pool gains at run time (a rate quota on the pool or a group, an adaptive
//! limiter's bounds) is shown and changed the same way:
//! 1. an optional field of [`Command::PoolSettings`] or [`Command::GroupSettings`]
//!    (`protocol.rs`), its spec line in `COMMANDS`, and its option in `text.rs`;
//! 2. its bound, checked before anything changes, in `bounds.rs`;
//! 3. here: applied in [`pool`] or [`group`] (a group's through the engine's
//!    `GroupChange`, so a request changes all its fields or none), and shown in the reply
//!    they build;
//! 4. its field in `PoolStats` or `GroupStats`, so `stats` and `groups` show it too, and a
//!    row in `PROTOCOL.md`.
//!
//! [`Command::PoolSettings`]: super::protocol::Command::PoolSettings
//! [`Command::GroupSettings`]: super::protocol::Command::GroupSettings

use super::protocol::{ErrorKind, WireError};
use crate::engine::settings::{GroupChange, GroupSettings};
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
) -> Result<Value, WireError> {
    let change = GroupChange {
        priority: priority.map(narrow).transpose()?,
        weight: weight.map(narrow).transpose()?,
        // `None` inside: follow the pool's limit.
        num_concurrent: num_concurrent.map(|cap| cap.unwrap_or(usize::MAX)),
    };
    let now = pool.core().change_group_named(name, change)?;
    Ok(group_json(name, now))
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
    })
}

/// `pool-settings`: sets the loose tasks' weight if given (checked by `bounds.rs` first), and
/// answers with the pool's settings, the weight as this request set it.
pub(crate) fn pool(pool: &TaskPool, loose_weight: Option<u64>) -> Result<Value, WireError> {
    let loose_weight = match loose_weight {
        Some(w) => {
            let w = narrow(w)?;
            pool.set_loose_weight(w)?;
            w
        }
        None => pool.loose_weight(),
    };
    Ok(json!({
        "limit": pool.limit(),
        "loose_weight": loose_weight,
    }))
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

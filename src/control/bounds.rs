//! The bounds on what one request may ask for ([`Limits`]): checked before anything runs, so
//! a request past one changes nothing, and no count from the wire sizes an allocation.

use super::protocol::{Command, ErrorKind, Limits, WireError};

fn over(message: String) -> WireError {
    WireError::new(ErrorKind::OverLimit, message)
}

/// `Err` if `cmd` asks for more than `limits` allow, or for a limit of 0; the message says
/// what the caller may type instead.
pub(crate) fn check(cmd: &Command, limits: &Limits) -> Result<(), WireError> {
    let max = limits.max_count;
    let count = |what: &str, n: usize, instead: &str| {
        if n > max {
            Err(over(format!(
                "`{what} {n}` asks for more than this server takes in one request: give a \
                 whole number from 1 to {max}{instead}"
            )))
        } else {
            Ok(())
        }
    };
    let list = |what: &str, n: usize, instead: &str| {
        if n > max {
            Err(over(format!(
                "{what} has {n} items; this server takes at most {max} in one request: \
                 {instead}"
            )))
        } else {
            Ok(())
        }
    };
    match cmd {
        Command::Start { num } => count("start", *num, " (send several requests for more)"),
        Command::Stop { num } => count("stop", *num, " (`stop-all` stops every task)"),
        Command::Apply { num, .. } => count("apply --num", *num, ""),
        Command::Map {
            num_concurrent,
            args,
            ..
        } => {
            if *num_concurrent == 0 {
                return Err(WireError::new(
                    ErrorKind::InvalidLimit,
                    format!(
                        "`map --num-concurrent` (JSON `num_concurrent`) must be at least 1: \
                         give a whole number from 1 to {max}"
                    ),
                ));
            }
            count("map --num-concurrent", *num_concurrent, "")?;
            list(
                "the `map` argument list",
                args.len(),
                "split it into several `map` requests",
            )
        }
        Command::Cancel { ids } => list(
            "the `cancel` id list",
            ids.len(),
            "cancel in several requests, or use `cancel-group` or `cancel-all`",
        ),
        Command::GetGroupIds { names } => list(
            "the `get-group-ids` name list",
            names.len(),
            "ask in several requests",
        ),
        Command::PoolSize {
            value: Some(Some(n)),
        } => {
            let range = format!(
                "give a whole number from 1 to {}, or `inf` (JSON `null`) for no limit",
                limits.max_pool_size
            );
            if *n == 0 {
                Err(WireError::new(
                    ErrorKind::InvalidLimit,
                    format!("a pool size must be at least 1: {range}"),
                ))
            } else if *n > limits.max_pool_size {
                Err(over(format!(
                    "pool size {n} is above the highest this server lets clients set: {range}"
                )))
            } else {
                Ok(())
            }
        }
        Command::GroupSettings {
            priority,
            weight,
            num_concurrent,
            ..
        } => {
            if let Some(p) = *priority {
                if i32::try_from(p).is_err() {
                    return Err(over(format!(
                        "priority {p} is out of range: give a whole number from {} to {} \
                         (higher starts first)",
                        i32::MIN,
                        i32::MAX
                    )));
                }
            }
            if let Some(w) = *weight {
                check_weight("group-settings --weight", "weight", w, limits)?;
            }
            let range = format!(
                "give a whole number from 1 to {max}, or `pool` (JSON `null`) to follow the \
                 pool's limit"
            );
            match num_concurrent {
                Some(Some(0)) => Err(WireError::new(
                    ErrorKind::InvalidLimit,
                    format!(
                        "`group-settings --num-concurrent` (JSON `num_concurrent`) must be at \
                         least 1: {range}"
                    ),
                )),
                Some(Some(n)) if *n > max => Err(over(format!(
                    "`group-settings --num-concurrent {n}` is more than this server lets a \
                     client set: {range}"
                ))),
                _ => Ok(()),
            }
        }
        Command::PoolSettings {
            loose_weight: Some(w),
        } => check_weight("pool-settings --loose-weight", "loose_weight", *w, limits),
        Command::Tasks {
            offset: Some(_),
            after: Some(_),
            ..
        } => Err(WireError::new(
            ErrorKind::BadRequest,
            "`tasks` takes `offset` or `after`, not both",
        )),
        Command::Tasks {
            offset: Some(_),
            state,
            group,
            search,
            ..
        } if state.is_some() || group.is_some() || search.is_some() => Err(WireError::new(
            ErrorKind::BadRequest,
            "a filtered `tasks` list is paged with `after` (the `next` of the page before), \
             not `offset`",
        )),
        Command::Groups { limit: Some(n), .. } if *n > limits.max_page => Err(over(format!(
            "`groups --limit {n}` is more than one page holds on this server: give a whole \
             number from 0 to {}, and page on with `--after NAME` (JSON `after`)",
            limits.max_page
        ))),
        Command::Tasks { limit: Some(n), .. } if *n > limits.max_page => Err(over(format!(
            "`tasks --limit {n}` is more than one page holds on this server: give a whole \
             number from 0 to {}, and page on with `--after ID` (JSON `after`)",
            limits.max_page
        ))),
        _ => Ok(()),
    }
}

/// A weight from 1 to the server's `max_weight`; `option` and `field` name it as typed and
/// in JSON.
fn check_weight(option: &str, field: &str, w: u64, limits: &Limits) -> Result<(), WireError> {
    let max = limits.max_weight;
    let range = format!(
        "give a whole number from 1 to {max} (weights are shares: lanes of weights 3 and 1 \
         hold slots 3:1)"
    );
    if w == 0 {
        Err(WireError::new(
            ErrorKind::InvalidLimit,
            format!("`{option}` (JSON `{field}`) must be at least 1: {range}"),
        ))
    } else if w > u64::from(max) {
        Err(over(format!(
            "`{option} {w}` is above the highest weight this server lets clients set: {range}"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn kind(cmd: Command) -> Option<ErrorKind> {
        check(&cmd, &Limits::default()).err().map(|e| e.kind)
    }

    #[test]
    fn counts_past_the_bounds_are_refused() {
        let huge = 1_000_000_000_000;
        assert_eq!(
            kind(Command::Start { num: huge }),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(kind(Command::Start { num: 10_000 }), None);
        assert_eq!(
            kind(Command::Stop { num: huge }),
            Some(ErrorKind::OverLimit)
        );
        let map = |n: usize, c: usize| Command::Map {
            name: "j".into(),
            args: vec![Value::Null; n],
            num_concurrent: c,
            group: None,
        };
        assert_eq!(kind(map(10_001, 1)), Some(ErrorKind::OverLimit));
        assert_eq!(kind(map(1, huge)), Some(ErrorKind::OverLimit));
        assert_eq!(kind(map(1, 0)), Some(ErrorKind::InvalidLimit));
        assert_eq!(kind(map(10_000, 10_000)), None);
        let size = |n| Command::PoolSize {
            value: Some(Some(n)),
        };
        assert_eq!(kind(size(0)), Some(ErrorKind::InvalidLimit));
        assert_eq!(kind(size(1_000_001)), Some(ErrorKind::OverLimit));
        assert_eq!(kind(Command::PoolSize { value: Some(None) }), None);
        assert_eq!(
            kind(Command::Cancel {
                ids: vec![0; 10_001]
            }),
            Some(ErrorKind::OverLimit)
        );
        let tasks = |limit, offset, after| Command::Tasks {
            limit,
            offset,
            after,
            state: None,
            group: None,
            search: None,
        };
        assert_eq!(
            kind(tasks(Some(1001), None, None)),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(kind(tasks(Some(0), Some(1), None)), None);
        assert_eq!(
            kind(tasks(None, Some(1), Some(1))),
            Some(ErrorKind::BadRequest)
        );
        let filtered = |offset, after| Command::Tasks {
            limit: None,
            offset,
            after,
            state: Some(crate::TaskState::Running),
            group: None,
            search: None,
        };
        assert_eq!(kind(filtered(Some(5), None)), Some(ErrorKind::BadRequest));
        assert_eq!(kind(filtered(None, Some(5))), None);
        let group = |priority, weight, num_concurrent| Command::GroupSettings {
            name: "g".into(),
            priority,
            weight,
            num_concurrent,
        };
        assert_eq!(kind(group(None, None, None)), None);
        assert_eq!(kind(group(Some(-5), Some(1_000), Some(None))), None);
        assert_eq!(
            kind(group(Some(i64::from(i32::MIN)), None, Some(Some(10_000)))),
            None
        );
        assert_eq!(
            kind(group(Some(i64::from(i32::MAX) + 1), None, None)),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(
            kind(group(None, Some(0), None)),
            Some(ErrorKind::InvalidLimit)
        );
        assert_eq!(
            kind(group(None, Some(1_001), None)),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(
            kind(group(None, None, Some(Some(0)))),
            Some(ErrorKind::InvalidLimit)
        );
        assert_eq!(
            kind(group(None, None, Some(Some(10_001)))),
            Some(ErrorKind::OverLimit)
        );
        let loose = |w| Command::PoolSettings {
            loose_weight: Some(w),
        };
        assert_eq!(kind(loose(0)), Some(ErrorKind::InvalidLimit));
        assert_eq!(kind(loose(1_001)), Some(ErrorKind::OverLimit));
        assert_eq!(kind(loose(1_000)), None);
        let groups = |limit| Command::Groups { after: None, limit };
        assert_eq!(kind(groups(Some(1001))), Some(ErrorKind::OverLimit));
        assert_eq!(kind(groups(Some(1000))), None);
    }

    #[test]
    fn messages_name_what_to_type() {
        let e = check(
            &Command::PoolSize {
                value: Some(Some(0)),
            },
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            e.message.contains("`inf`") && !e.message.contains("None"),
            "{}",
            e.message
        );
        let e = check(&Command::Start { num: 20_000 }, &Limits::default()).unwrap_err();
        assert!(e.message.contains("from 1 to 10000"), "{}", e.message);
        let e = check(
            &Command::PoolSettings {
                loose_weight: Some(0),
            },
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            e.message.contains("--loose-weight") && e.message.contains("from 1 to 1000"),
            "{}",
            e.message
        );
        let e = check(
            &Command::GroupSettings {
                name: "g".into(),
                priority: None,
                weight: None,
                num_concurrent: Some(Some(0)),
            },
            &Limits::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("`pool`"), "{}", e.message);
    }
}

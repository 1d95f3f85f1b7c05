//! The bounds on what one request may ask for ([`Limits`]): checked before anything runs, so
//! a request past one changes nothing, and no count from the wire sizes an allocation.

use super::protocol::{
    Command, ErrorKind, Limits, WireError, WireQuota, MAX_QUOTA_COUNT, MAX_QUOTA_PERIOD_MS,
};

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
            rate_limit,
            ..
        } => {
            if let Some(Some(q)) = rate_limit {
                check_quota(q)?;
            }
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
            loose_weight,
            adaptive_min,
            adaptive_max,
            rate_limit,
        } => {
            if let Some(w) = *loose_weight {
                check_weight("pool-settings --loose-weight", "loose_weight", w, limits)?;
            }
            if let Some(Some(q)) = rate_limit {
                check_quota(q)?;
            }
            check_adaptive(*adaptive_min, *adaptive_max, limits)
        }
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

/// A rate quota a group can take: a count and a burst from 1 to [`MAX_QUOTA_COUNT`], a period
/// above 0 and at most [`MAX_QUOTA_PERIOD_MS`], at least a nanosecond between starts.
fn check_quota(q: &WireQuota) -> Result<(), WireError> {
    let shape = "give `--rate N/PERIOD` (JSON `rate_limit: {\"count\": N, \"period_ms\": MS}`), \
                 e.g. `--rate 10/s`, or `inf` (JSON `null`) for no rate limit";
    let invalid = |m: String| Err(WireError::new(ErrorKind::InvalidLimit, m));
    if q.count == 0 {
        return invalid(format!(
            "a rate limit's count (N in `--rate N/PERIOD`, JSON `count`) must be at least 1 \
             (to start nothing, lock the pool): {shape}"
        ));
    }
    if q.count > MAX_QUOTA_COUNT {
        return Err(over(format!(
            "a rate limit's count {} is above the highest this server takes: give a whole \
             number from 1 to {MAX_QUOTA_COUNT}, or `inf` (JSON `null`) for no rate limit",
            q.count
        )));
    }
    match q.burst {
        Some(0) => {
            return invalid(
                "a rate limit's burst (`--burst B`, JSON `burst`) must be at least 1 (1: starts \
                 evenly spaced, no burst)"
                    .to_owned(),
            )
        }
        Some(b) if b > MAX_QUOTA_COUNT => {
            return Err(over(format!(
                "a rate limit's burst {b} is above the highest this server takes: give a whole \
                 number from 1 to {MAX_QUOTA_COUNT}"
            )))
        }
        _ => {}
    }
    let ms = q.period_ms;
    if !ms.is_finite() || ms <= 0.0 {
        return invalid(format!(
            "a rate limit's period (PERIOD in `--rate N/PERIOD`, JSON `period_ms`) must be \
             longer than 0, not {ms} ms: {shape}"
        ));
    }
    if ms > MAX_QUOTA_PERIOD_MS as f64 {
        return Err(over(format!(
            "a rate limit's period of {ms} ms is longer than this server takes: give at most \
             {MAX_QUOTA_PERIOD_MS} ms (365 days)"
        )));
    }
    // At least a nanosecond between starts (`Quota::new`'s own bound).
    if ms * 1e6 / (q.count as f64) < 1.0 {
        return Err(WireError::new(
            ErrorKind::BadRequest,
            format!(
                "a rate limit of {} per {ms} ms leaves less than a nanosecond between starts: \
                 give a smaller count or a longer period",
                q.count
            ),
        ));
    }
    Ok(())
}

/// The adaptive limit's bounds, each from 1 to the server's `max_pool_size`, the lower not
/// above the upper (when both are given; the other is the limiter's own, checked when set).
fn check_adaptive(min: Option<u64>, max: Option<u64>, limits: &Limits) -> Result<(), WireError> {
    let top = limits.max_pool_size;
    for (option, field, v) in [
        ("--adaptive-min", "adaptive_min", min),
        ("--adaptive-max", "adaptive_max", max),
    ] {
        let Some(v) = v else { continue };
        let range = format!("give a whole number from 1 to {top}");
        if v == 0 {
            return Err(WireError::new(
                ErrorKind::InvalidLimit,
                format!("`pool-settings {option}` (JSON `{field}`) must be at least 1: {range}"),
            ));
        }
        if v > top as u64 {
            return Err(over(format!(
                "`pool-settings {option} {v}` is above the highest limit this server lets \
                 clients set: {range}"
            )));
        }
    }
    match (min, max) {
        (Some(lo), Some(hi)) if lo > hi => Err(WireError::new(
            ErrorKind::BadRequest,
            format!(
                "the adaptive limit's lower bound {lo} is above its upper bound {hi}: give \
                 `--adaptive-min` at most `--adaptive-max` (JSON `adaptive_min` <= \
                 `adaptive_max`)"
            ),
        )),
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
            rate_limit: None,
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
            adaptive_min: None,
            adaptive_max: None,
            rate_limit: None,
        };
        assert_eq!(kind(loose(0)), Some(ErrorKind::InvalidLimit));
        assert_eq!(kind(loose(1_001)), Some(ErrorKind::OverLimit));
        assert_eq!(kind(loose(1_000)), None);
        let rate = |count, period_ms, burst| Command::GroupSettings {
            name: "g".into(),
            priority: None,
            weight: None,
            num_concurrent: None,
            rate_limit: Some(Some(WireQuota {
                count,
                period_ms,
                burst,
            })),
        };
        assert_eq!(kind(rate(10, 1000.0, None)), None);
        assert_eq!(kind(rate(1, 0.000001, Some(1))), None);
        assert_eq!(
            kind(rate(
                MAX_QUOTA_COUNT,
                31_536_000_000.0,
                Some(MAX_QUOTA_COUNT)
            )),
            None
        );
        assert_eq!(kind(rate(0, 1000.0, None)), Some(ErrorKind::InvalidLimit));
        assert_eq!(kind(rate(1, 0.0, None)), Some(ErrorKind::InvalidLimit));
        assert_eq!(kind(rate(1, -1.0, None)), Some(ErrorKind::InvalidLimit));
        assert_eq!(
            kind(rate(1, 1000.0, Some(0))),
            Some(ErrorKind::InvalidLimit)
        );
        assert_eq!(
            kind(rate(u64::MAX, 1000.0, None)),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(
            kind(rate(1, 1000.0, Some(u64::MAX))),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(kind(rate(1, 1e300, None)), Some(ErrorKind::OverLimit));
        assert_eq!(kind(rate(1000, 0.0001, None)), Some(ErrorKind::BadRequest));
        let adaptive = |min, max| Command::PoolSettings {
            loose_weight: None,
            adaptive_min: min,
            adaptive_max: max,
            rate_limit: None,
        };
        assert_eq!(kind(adaptive(Some(2), Some(2))), None);
        assert_eq!(kind(adaptive(None, Some(1_000_000))), None);
        assert_eq!(kind(adaptive(Some(0), None)), Some(ErrorKind::InvalidLimit));
        assert_eq!(
            kind(adaptive(None, Some(1_000_001))),
            Some(ErrorKind::OverLimit)
        );
        assert_eq!(
            kind(adaptive(Some(5), Some(4))),
            Some(ErrorKind::BadRequest)
        );
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
                adaptive_min: None,
                adaptive_max: None,
                rate_limit: None,
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
                rate_limit: None,
            },
            &Limits::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("`pool`"), "{}", e.message);
    }
}

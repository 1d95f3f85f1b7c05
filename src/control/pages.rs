//! Pages of the live tasks and of the groups, read a slice at a time with
//! [`TaskPool::tasks_from`] so a page never copies the whole task table, however many tasks
//! are queued.

use crate::{TaskId, TaskInfo, TaskPool, TaskState};
use serde_json::{json, Value};

/// Tasks read from the pool per call while scanning (one short hold of the pool's lock each).
const CHUNK: usize = 1_000;

/// The most live tasks one filtered request looks at; past it, the page ends early with a
/// `next` to go on from, so a filter that matches nothing never holds the server long.
pub(crate) const SCAN_BUDGET: usize = 10_000;

/// What a `tasks` request keeps.
#[derive(Debug, Default)]
pub(crate) struct TaskFilter {
    pub(crate) state: Option<TaskState>,
    pub(crate) group: Option<String>,
    /// Lowercased.
    pub(crate) search: Option<String>,
}

impl TaskFilter {
    pub(crate) fn new(
        state: Option<TaskState>,
        group: Option<String>,
        search: Option<String>,
    ) -> Self {
        Self {
            state,
            group,
            search: search.map(|s| s.to_lowercase()).filter(|s| !s.is_empty()),
        }
    }

    fn is_empty(&self) -> bool {
        self.state.is_none() && self.group.is_none() && self.search.is_none()
    }

    fn keeps(&self, t: &TaskInfo) -> bool {
        self.state.is_none_or(|s| s == t.state)
            && self
                .group
                .as_deref()
                .is_none_or(|g| t.group.as_deref() == Some(g))
            && self.search.as_deref().is_none_or(|q| {
                t.id.get().to_string().contains(q)
                    || t.name.to_lowercase().contains(q)
                    || t.group
                        .as_deref()
                        .is_some_and(|g| g.to_lowercase().contains(q))
            })
    }
}

/// Calls `visit` on each live task with an id of at least `first`, in id order, until it
/// returns `false` or `budget` tasks were visited. Returns how many were visited and whether
/// the table ended.
fn scan(
    pool: &TaskPool,
    first: u64,
    budget: usize,
    mut visit: impl FnMut(TaskInfo) -> bool,
) -> (usize, bool) {
    let mut next = first;
    let mut seen = 0;
    loop {
        let want = CHUNK.min(budget - seen);
        if want == 0 {
            return (seen, false);
        }
        let chunk = pool.tasks_from(TaskId::new(next), want);
        let ended = chunk.len() < want;
        for t in chunk {
            seen += 1;
            next = t.id.get().saturating_add(1);
            if !visit(t) {
                return (seen, false);
            }
        }
        if ended {
            return (seen, true);
        }
    }
}

/// Live tasks now: queued (with ids), running and ending. The same count as a full scan,
/// without one.
fn live_total(pool: &TaskPool) -> usize {
    let s = pool.stats();
    s.running + s.queued + s.ending
}

/// One `tasks` page: `{"total", "offset", "tasks", "next"}`.
///
/// Unfiltered, `offset` is the position of the page's first task among the live ones; a
/// filtered page has `"offset": null` and may end early (see [`SCAN_BUDGET`]) with a `next`.
pub(crate) fn tasks(
    pool: &TaskPool,
    offset: Option<usize>,
    after: Option<u64>,
    limit: usize,
    filter: &TaskFilter,
) -> Value {
    let total = live_total(pool);
    let first = after.map_or(0, |a| a.saturating_add(1));
    if !filter.is_empty() {
        let mut page = Vec::new();
        let (mut full, mut last) = (false, None);
        let (_, ended) = scan(pool, first, SCAN_BUDGET, |t| {
            let id = t.id.get();
            if filter.keeps(&t) {
                if page.len() == limit {
                    full = true;
                    return false;
                }
                page.push(t);
            }
            last = Some(id);
            true
        });
        let next = if full {
            page.last().map(|t| t.id.get())
        } else if ended {
            None
        } else {
            // Out of budget: go on after the last task looked at.
            last
        };
        return json!({ "total": total, "offset": Value::Null, "tasks": page, "next": next });
    }
    // Where the page starts, and its position among the live tasks.
    let (first, position) = match (offset, after) {
        (Some(skip), None) if skip > 0 => {
            let mut start = 0;
            let (seen, _) = scan(pool, 0, skip.saturating_add(1), |t| {
                start = t.id.get();
                true
            });
            if seen > skip {
                (start, skip)
            } else {
                (u64::MAX, total.min(skip))
            }
        }
        (_, Some(_)) => {
            // Counts the live tasks before the page; the task that stops the count is counted
            // too, unless the table ended first.
            let (seen, ended) = scan(pool, 0, usize::MAX, |t| t.id.get() < first);
            (first, if ended { seen } else { seen - 1 })
        }
        _ => (0, 0),
    };
    let mut page = if first == u64::MAX {
        Vec::new()
    } else {
        pool.tasks_from(TaskId::new(first), limit.saturating_add(1))
    };
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|t| t.id.get())
    } else {
        None
    };
    json!({ "total": total, "offset": position, "tasks": page, "next": next })
}

/// One `groups` page: `{"total", "groups": [{"name", "live", "done", "total", ...}], "next"}`,
/// by name. Each group's fields past `live` are its [`GroupStats`](crate::GroupStats).
pub(crate) fn groups(pool: &TaskPool, after: Option<&str>, limit: usize) -> Value {
    let names = pool.stats().groups;
    let total = names.len();
    let start = after.map_or(0, |a| names.partition_point(|n| n.as_str() <= a));
    let end = start.saturating_add(limit).min(total);
    let page: Vec<Value> = names[start..end]
        .iter()
        .map(|name| {
            // Forgotten between the reads (flushed or cancelled): nothing live.
            let live = pool.group_ids([name.as_str()]).map_or(0, |ids| ids.len());
            let mut group = json!({ "name": name, "live": live });
            if let Ok(stats) = pool.group_stats(name) {
                let Value::Object(fields) = json!(stats) else {
                    unreachable!("a struct serializes as an object")
                };
                for (k, v) in fields {
                    // `live` stays the count of live task ids (queued ones included).
                    group
                        .as_object_mut()
                        .expect("an object")
                        .entry(k)
                        .or_insert(v);
                }
            }
            group
        })
        .collect();
    let next = (end < total).then(|| names[end - 1].clone());
    json!({ "total": total, "groups": page, "next": next })
}

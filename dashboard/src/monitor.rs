//! Polls each control server on a thread of its own (a slow or dead server holds up nobody
//! else) and keeps what the page shows: the hello, the latest `stats` and `groups`, the job
//! queue's views when the server has them, and the last minutes of samples.

use crate::config::ServerSpec;
use crate::history::{Counters, History, Sample};
use crate::link::{Failure, Link};
use async_taskpool::control::protocol::{Command, ServerInfo};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Groups shown per pool (the first page, by name).
const GROUPS_SHOWN: usize = 100;
/// The job queue's views (a database query each) are read every this many polls.
const QUEUE_EVERY: u64 = 5;
/// Dead jobs listed.
const DEAD_SHOWN: u64 = 20;
/// How long a server that refused the dashboard's token is left alone: each refusal makes
/// the server wait longer before the next one from this address, for every client here.
const AFTER_REFUSAL: Duration = Duration::from_secs(30);

/// One watched server and what is known of it.
pub struct Watched {
    /// Its index on the page.
    pub id: usize,
    /// The session the dashboard reads through.
    pub link: Link,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    info: Option<ServerInfo>,
    stats: Option<Value>,
    groups: Option<Value>,
    queue: Option<Value>,
    error: Option<Failure>,
    history: History,
    last: Option<Sample>,
    /// No polls before this (after a refused token).
    quiet_until: Option<Instant>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Watched {
    /// What the page shows of this server now; with `history`, the kept samples too.
    pub fn view(&self, history: bool) -> Value {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let info = st.info.as_ref().map(|i| {
            json!({
                "pool": i.pool,
                "kind": i.kind,
                "server": i.server,
                "commands": i.commands,
                "custom_commands": i.custom_commands,
                "limits": i.limits,
            })
        });
        let mut view = json!({
            "id": self.id,
            "endpoint": self.link.spec().endpoint.to_string(),
            // The page asks for the token before an action only where one is set.
            "needs_token": self.link.spec().token.is_some(),
            "up": st.error.is_none() && st.stats.is_some(),
            "error": st.error,
            "info": info,
            "stats": st.stats,
            "groups": st.groups,
            "queue": st.queue,
            "sample": st.last,
        });
        if history {
            view["history"] = json!(st.history.samples());
        }
        view
    }

    /// One poll: `stats` and `groups`, and every few polls the job queue's views.
    fn poll(&self, n: u64) {
        let quiet = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .quiet_until;
        if quiet.is_some_and(|until| Instant::now() < until) {
            return;
        }
        let info = self.link.info();
        let result = info.and_then(|info| {
            let stats = self.link.request(&Command::Stats)?;
            let groups = self.link.request(&Command::Groups {
                after: None,
                limit: Some(GROUPS_SHOWN),
            })?;
            let queue =
                (n.is_multiple_of(QUEUE_EVERY) && has_queue(&info)).then(|| self.queue_views());
            Ok((info, stats, groups, queue))
        });
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok((info, stats, groups, queue)) => {
                // A server that restarted, or another pool on the same address, starts a
                // new series.
                if st.info.as_ref().is_some_and(|old| old.pool != info.pool) {
                    st.history = History::default();
                }
                let sample = st.history.record(now_ms(), Counters::of(&stats));
                st.last = Some(sample);
                st.info = Some(info);
                st.stats = Some(stats);
                st.groups = Some(groups);
                if let Some(q) = queue {
                    st.queue = Some(q);
                }
                st.error = None;
                st.quiet_until = None;
            }
            Err(mut e) => {
                st.history.break_off();
                if e.kind == "auth_failed" {
                    st.quiet_until = Some(Instant::now() + AFTER_REFUSAL);
                    e.message = format!(
                        "{} (the dashboard's token for this server was refused: give the right \
                         one with ,token-env=VAR, ,token-file=PATH or --token; next try in {} s)",
                        e.message,
                        AFTER_REFUSAL.as_secs()
                    );
                }
                st.error = Some(e);
            }
        }
    }

    /// The job queue's commands (crate `async-taskpool-queue`): the cluster view and the dead
    /// jobs, or the error each gave.
    fn queue_views(&self) -> Value {
        let get = |cmd: Command| match self.link.request(&cmd) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": e }),
        };
        json!({
            "cluster": get(Command::Custom { name: "queue-stats".into(), args: json!("json") }),
            "dead": get(Command::Custom {
                name: "queue-dead".into(),
                args: json!({ "json": true, "limit": DEAD_SHOWN }),
            }),
        })
    }
}

/// Whether the server has the job queue's commands.
fn has_queue(info: &ServerInfo) -> bool {
    info.custom_commands.iter().any(|c| c.name == "queue-stats")
}

/// Every watched server.
pub struct Monitor {
    /// In the order given on the command line.
    pub servers: Vec<Arc<Watched>>,
}

impl Monitor {
    /// Starts a polling thread per server, each polling every `every`.
    pub fn start(specs: Vec<ServerSpec>, every: Duration) -> std::io::Result<Self> {
        let mut servers = Vec::new();
        for (id, spec) in specs.into_iter().enumerate() {
            let watched = Arc::new(Watched {
                id,
                link: Link::new(spec),
                state: Mutex::default(),
            });
            let w = watched.clone();
            std::thread::Builder::new()
                .name(format!("poll-{id}"))
                .spawn(move || {
                    let mut next = Instant::now();
                    for n in 0u64.. {
                        w.poll(n);
                        next += every;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now; // fell behind (a slow server): no catching up
                        }
                    }
                })?;
            servers.push(watched);
        }
        Ok(Self { servers })
    }

    /// The page's data for every server.
    pub fn view(&self, history: bool) -> Value {
        json!({
            "t": now_ms(),
            "servers": self.servers.iter().map(|s| s.view(history)).collect::<Vec<_>>(),
        })
    }

    /// The server with this index.
    pub fn get(&self, id: usize) -> Option<&Arc<Watched>> {
        self.servers.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_taskpool::control::ControlServer;
    use async_taskpool::runtime::TokioSpawner;
    use async_taskpool::TaskPool;

    /// A refused token is not tried again at every poll: each refusal would make the server
    /// answer the next one later, for every client on this address.
    #[test]
    fn a_refused_token_is_left_alone_for_a_while() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let pool = TaskPool::new(TokioSpawner::from_handle(rt.handle().clone()));
        let server = ControlServer::new(&pool)
            .token("right")
            .refusal_delay(Duration::from_millis(1))
            .serve_tcp("127.0.0.1:0")
            .unwrap();
        let spec =
            ServerSpec::parse(&server.local_addr().unwrap().to_string(), Some("wrong")).unwrap();
        let watched = Watched {
            id: 0,
            link: Link::new(spec),
            state: Mutex::default(),
        };
        watched.poll(0);
        let view = watched.view(false);
        assert_eq!(view["error"]["kind"], "auth_failed", "{view}");
        assert!(view["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token-env"));
        assert_eq!(view["up"], false);
        for n in 1..5 {
            watched.poll(n);
        }
        assert_eq!(watched.link.connects(), 1, "no new attempt while quiet");
        server.shutdown();
    }
}

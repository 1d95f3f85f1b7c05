//! What an attacker or a careless client may throw at the control server: counts that would
//! allocate without bound, floods of connections that never say hello, slow readers, token
//! guessing, squatted staging names, refused clients in churn. Each runs over TCP and a Unix
//! socket, on a tokio runtime (the server itself uses std threads whatever the runtime).

use crate::wire::*;
use async_taskpool::control::ControlServer;
use async_taskpool::runtime::TokioSpawner;
use async_taskpool::{SimpleTaskPool, TaskPool};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::settings::settings_are_bounded_and_checked;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Workers that never finish (until stopped), with a limit so most of them queue.
fn idle_workers(rt: &tokio::runtime::Runtime, limit: usize) -> SimpleTaskPool {
    SimpleTaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()), || {
        std::future::pending::<()>()
    })
    .name("workers")
    .limit(limit)
    .build()
    .unwrap()
}

/// Item 1: a count from the wire never sizes an allocation; past the server's bound it gets
/// an `over_limit` error, and the server (and the program) carry on.
pub fn huge_counts_are_refused_and_the_server_lives(net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 4);
    let served = Served::start(ControlServer::new(&workers), net);
    let mut w = served.session();
    let huge = 1_000_000_000_000u64;
    for req in [
        json!({"cmd": "start", "num": huge}),
        json!({"cmd": "stop", "num": huge}),
        json!({"cmd": "pool-size", "value": huge}),
        json!({"cmd": "cancel", "ids": vec![0; 10_001]}),
        json!({"cmd": "get-group-ids", "names": vec!["g"; 10_001]}),
        json!({"cmd": "tasks", "limit": huge}),
    ] {
        let r = w.req(&req.to_string());
        assert_eq!(r["kind"], "over_limit", "{req} -> {r}");
    }
    let r = w.req(r#"{"cmd":"pool-size","value":0}"#);
    assert_eq!(r["kind"], "invalid_limit");
    let message = r["message"].as_str().unwrap();
    assert!(
        message.contains("`inf`") && !message.contains("None"),
        "{message}"
    );
    // Still alive, nothing started, and the bound is not an off-by-one.
    assert_eq!(w.ok(r#"{"cmd":"num-queued"}"#), 0);
    assert_eq!(w.ok(r#"{"cmd":"start","num":10000}"#), "start-group-0");
    assert_eq!(w.ok(r#"{"cmd":"num-queued"}"#), 10_000 - 4);
    assert_eq!(
        w.ok(r#"{"cmd":"stop","num":10000}"#)
            .as_array()
            .unwrap()
            .len(),
        10_000
    );
    // The hello tells clients the bounds.
    let info = served.connect().ok(r#"{"cmd":"hello","version":1}"#);
    assert_eq!(info["limits"]["max_count"], 10_000);
    // asyncio-taskpool's client typing the same.
    let mut py = served.connect();
    py.send_raw(b"{\"terminal_width\": 80}\n");
    assert_eq!(py.recv().unwrap(), "workers");
    py.send_raw(b"start 1000000000000\n");
    let line = py.recv().unwrap();
    assert!(
        line.starts_with("error: ") && line.ends_with("[over_limit]"),
        "{line}"
    );
    py.send_raw(b"pool-size 0\n");
    let line = py.recv().unwrap();
    assert!(
        line.contains("`inf`") && line.ends_with("[invalid_limit]"),
        "{line}"
    );
    py.send_raw(b"num-running\n");
    assert_eq!(py.recv().unwrap(), "0");
    drop(served);

    // TaskPool commands, and a configured bound.
    let pool = TaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()))
        .name("jobs")
        .build()
        .unwrap();
    let served = Served::start(
        ControlServer::new(&pool)
            .register("tick", |(): ()| async {})
            .max_count(5)
            .max_pool_size(8),
        net,
    );
    let mut w = served.session();
    for req in [
        json!({"cmd": "apply", "name": "tick", "num": huge}),
        json!({"cmd": "apply", "name": "tick", "num": 6}),
        json!({"cmd": "map", "name": "tick", "args": [null], "num_concurrent": huge}),
        json!({"cmd": "map", "name": "tick", "args": vec![Value::Null; 6]}),
        json!({"cmd": "cancel", "ids": [1, 2, 3, 4, 5, 6]}),
        json!({"cmd": "pool-size", "value": 9}),
    ] {
        let r = w.req(&req.to_string());
        assert_eq!(r["kind"], "over_limit", "{req} -> {r}");
    }
    let r = w.req(r#"{"cmd":"map","name":"tick","args":[null],"num_concurrent":0}"#);
    assert_eq!(r["kind"], "invalid_limit");
    assert!(!r["message"].as_str().unwrap().contains("None"), "{r}");
    assert_eq!(w.ok(r#"{"cmd":"pool-size","value":8}"#), 8);
    assert_eq!(w.ok(r#"{"cmd":"pool-size","value":null}"#), Value::Null);
    w.ok(r#"{"cmd":"apply","name":"tick","num":5}"#);
    w.ok(r#"{"cmd":"map","name":"tick","args":[null,null,null,null,null],"num_concurrent":5}"#);
    assert_eq!(w.ok(r#"{"cmd":"gather-and-close"}"#), Value::Null);
    assert_eq!(pool.num_ended(), 10);
}

/// Item 3: `tasks` comes in pages, in id order, with the total and a cursor.
pub fn tasks_are_paged(net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 1);
    workers.start(250).unwrap();
    let served = Served::start(ControlServer::new(&workers).tasks_page(100, 120), net);
    let mut w = served.session();
    let page = w.ok(r#"{"cmd":"tasks"}"#);
    let ids = |page: &Value| -> Vec<u64> {
        page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        (page["total"].clone(), page["offset"].clone()),
        (json!(250), json!(0))
    );
    assert_eq!(ids(&page), (0..100).collect::<Vec<_>>());
    assert_eq!(page["next"], 99);
    let page = w.ok(r#"{"cmd":"tasks","after":99,"limit":120}"#);
    assert_eq!(ids(&page), (100..220).collect::<Vec<_>>());
    assert_eq!(
        (page["offset"].clone(), page["next"].clone()),
        (json!(100), json!(219))
    );
    let page = w.ok(r#"{"cmd":"tasks","after":219}"#);
    assert_eq!(ids(&page), (220..250).collect::<Vec<_>>());
    assert_eq!(page["next"], Value::Null, "the last page");
    let page = w.ok(r#"{"cmd":"tasks","offset":245,"limit":3}"#);
    assert_eq!(ids(&page), [245, 246, 247]);
    let page = w.ok(r#"{"cmd":"tasks","limit":0}"#);
    assert_eq!((page["total"].clone(), ids(&page).len()), (json!(250), 0));
    assert_eq!(w.err(r#"{"cmd":"tasks","limit":121}"#), "over_limit");
    assert_eq!(
        w.err(r#"{"cmd":"tasks","offset":1,"after":1}"#),
        "bad_request"
    );
    // A cursor past the end: an empty last page.
    let page = w.ok(r#"{"cmd":"tasks","after":1000}"#);
    assert_eq!(
        (page["total"].clone(), page["next"].clone()),
        (json!(250), Value::Null)
    );
    assert!(ids(&page).is_empty());
}

/// `tasks` filters (state, group, search) page with `after`, and look at a bounded number of
/// tasks per request; `groups` pages the groups with their live counts.
pub fn tasks_filter_and_groups_page(net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 3);
    drop(workers.start(2).unwrap()); // start-group-0: ids 0, 1 (running)
    drop(workers.start(12_000).unwrap()); // start-group-1: 1 running, the rest queued
    let served = Served::start(ControlServer::new(&workers), net);
    let mut w = served.session();
    let ids = |page: &Value| -> Vec<u64> {
        page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect()
    };
    let running = w.ok(r#"{"cmd":"tasks","state":"running"}"#);
    assert_eq!(ids(&running), [0, 1, 2]);
    assert_eq!(running["total"], 12_002);
    assert_eq!(
        running["offset"],
        Value::Null,
        "a filtered page has no position"
    );
    // The scan stopped at its budget (10,000 tasks): the page says where to go on.
    let next = running["next"].as_u64().expect("more to look at");
    assert!((9_999..12_001).contains(&next), "{running}");
    let rest = w.ok(&format!(
        r#"{{"cmd":"tasks","state":"running","after":{next}}}"#
    ));
    assert_eq!((ids(&rest), rest["next"].clone()), (vec![], Value::Null));
    // A full page of matches ends at its last match.
    let group = w.ok(r#"{"cmd":"tasks","group":"start-group-1","limit":2}"#);
    assert_eq!((ids(&group), group["next"].clone()), (vec![2, 3], json!(3)));
    // Ids and names, ignoring case; past the budget, the next request goes on.
    let found = w.ok(r#"{"cmd":"tasks","search":"TASK-1200","limit":20}"#);
    assert_eq!(ids(&found), [1_200]);
    let next = found["next"].as_u64().expect("more to look at");
    let found = w.ok(&format!(
        r#"{{"cmd":"tasks","search":"TASK-1200","limit":20,"after":{next}}}"#
    ));
    assert_eq!(ids(&found), [12_000, 12_001]);
    let page = w.ok(r#"{"cmd":"tasks","search":"group-0"}"#);
    assert_eq!(ids(&page), [0, 1]);
    assert_eq!(
        w.err(r#"{"cmd":"tasks","state":"queued","offset":3}"#),
        "bad_request"
    );
    assert_eq!(w.err(r#"{"cmd":"tasks","state":"asleep"}"#), "bad_request");
    // Unfiltered pages deep in a long queue keep their position.
    let deep = w.ok(r#"{"cmd":"tasks","after":11000,"limit":3}"#);
    assert_eq!(
        (ids(&deep), deep["offset"].clone()),
        (vec![11_001, 11_002, 11_003], json!(11_001))
    );
    let deep = w.ok(r#"{"cmd":"tasks","offset":11001,"limit":1}"#);
    assert_eq!(ids(&deep), [11_001]);

    let groups = w.ok(r#"{"cmd":"groups"}"#);
    assert_eq!(
        groups,
        json!({"total": 2, "next": null, "groups": [
            {"name": "start-group-0", "live": 2, "queued": 0, "backlog": 0, "done": 0,
                "total": 2, "cancelled": false,
                "priority": 0, "weight": 1, "num_concurrent": null, "rate_limit": null},
            {"name": "start-group-1", "live": 12_000, "queued": 11_999, "backlog": 0, "done": 0,
                "total": 12_000, "cancelled": false,
                "priority": 0, "weight": 1, "num_concurrent": null, "rate_limit": null},
        ]})
    );
    let first = w.ok(r#"{"cmd":"groups","limit":1}"#);
    assert_eq!(first["next"], "start-group-0");
    let second = w.ok(r#"{"cmd":"groups","after":"start-group-0"}"#);
    assert_eq!(second["groups"][0]["name"], "start-group-1");
    assert_eq!(w.err(r#"{"cmd":"groups","limit":1001}"#), "over_limit");
    workers.stop_all();
}

/// Items 2 and 7: connections that never say hello have a budget of their own and a short
/// deadline, so they cannot lock an operator out; each one learns why it is closed.
pub fn silent_connections_do_not_lock_the_operator_out(net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 1);
    let served = Served::start(
        ControlServer::new(&workers).hello_timeout(Duration::from_secs(2)),
        net,
    );
    // Far more silent connections than sessions (16) and pending places (32).
    let mut silent: Vec<Wire> = (0..80).map(|_| served.connect()).collect();
    // The operator gets in, at once, while they hold on.
    let mut operator = served.session();
    assert_eq!(operator.ok(r#"{"cmd":"num-running"}"#), 0);
    // Every silent one is told why it is closed: pushed out by newer connections, or out
    // of time for its hello.
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for s in &mut silent {
        let line = s.recv().expect("closed without a word");
        let r: Value = serde_json::from_str(&line).unwrap();
        *kinds
            .entry(r["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert_eq!(s.recv(), None, "closed after the reply");
    }
    assert_eq!(kinds.values().sum::<usize>(), 80, "{kinds:?}");
    assert!(
        kinds.keys().all(|k| k == "busy" || k == "hello_timeout"),
        "{kinds:?}"
    );
    assert!(
        kinds.get("hello_timeout").is_some_and(|&n| n <= 32),
        "{kinds:?}"
    );
    // A garbage sender is held to the same deadline, however many lines it sends.
    let mut garbage = served.connect();
    let until = Instant::now() + Duration::from_secs(20);
    let closed = loop {
        assert!(Instant::now() < until, "garbage kept its connection");
        if garbage.writer.write_all(b"{\"cmd\":\"stats\"}\n").is_err() {
            break true;
        }
        match garbage.recv() {
            None => break true,
            Some(line) => {
                let kind = serde_json::from_str::<Value>(&line).unwrap()["kind"].clone();
                if kind == "hello_timeout" {
                    break garbage.recv().is_none();
                }
                assert_eq!(kind, "hello_required");
            }
        }
    };
    assert!(closed);
    assert_eq!(operator.ok(r#"{"cmd":"is-locked"}"#), false);
}

/// Item 7: during connection churn past the session limit, every refused client reads its
/// `busy` reply: none sees a broken pipe or EOF instead (the refusal comes in reply to the
/// hello, and the server lingers over the goodbye instead of closing under the client).
pub fn refused_clients_always_read_their_refusal(net: Net) {
    use async_taskpool::control::{protocol::Command, ClientError, ControlClient};
    let rt = runtime();
    let workers = idle_workers(&rt, 1);
    let served = Arc::new(Served::start(
        ControlServer::new(&workers).max_connections(4),
        net,
    ));
    let outcomes = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let clients: Vec<_> = (0..12)
        .map(|i| {
            let (served, outcomes) = (served.clone(), outcomes.clone());
            std::thread::spawn(move || {
                for _ in 0..400 {
                    let connected = match served.net {
                        Net::Tcp => {
                            ControlClient::connect_tcp(served.handle().local_addr().unwrap(), None)
                        }
                        #[cfg(unix)]
                        Net::Unix => ControlClient::connect_unix(
                            served.handle().socket_path().unwrap(),
                            None,
                        ),
                        #[cfg(not(unix))]
                        Net::Unix => unreachable!(),
                    };
                    let outcome = match connected {
                        // Half the sessions run a command, half leave at once: churn.
                        Ok(mut c) if i % 2 == 0 => match c.request(&Command::Stats) {
                            Ok(r) if !r.is_error() => "session".to_owned(),
                            other => format!("session failed: {other:?}"),
                        },
                        Ok(_) => "session".to_owned(),
                        Err(ClientError::Refused { kind, .. }) => format!("refused: {kind}"),
                        Err(e) => format!("other: {e}"),
                    };
                    *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    println!("churn over {net:?}: {outcomes:?}");
    assert!(
        outcomes
            .keys()
            .all(|k| k == "session" || k == "refused: busy"),
        "{outcomes:?}"
    );
    // Pipelined input behind the hello is no reason to reset the connection either.
    for _ in 0..200 {
        let mut held: Vec<Wire> = (0..4).filter_map(|_| served.try_session()).collect();
        let mut w = served.connect();
        let _ = w
            .writer
            .write_all(b"{\"cmd\":\"hello\",\"version\":1}\n{\"cmd\":\"stats\"}\n");
        let line = w.recv().expect("EOF instead of a reply");
        let r: Value = serde_json::from_str(&line).unwrap();
        assert!(r["kind"] == "busy" || r["status"] == "ok", "{r}");
        held.clear();
    }
}

/// Item 3: a client that reads a large reply very slowly cannot keep the server from
/// stopping for longer than the write timeout, however steadily it trickles.
pub fn slow_reader_cannot_stall_shutdown(net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 1);
    // ~16 MB of JSON: more than any socket buffers between the two ends.
    workers.start(200_000).unwrap();
    let mut served = Served::start(
        ControlServer::new(&workers)
            .tasks_page(100, 200_000)
            .write_timeout(Duration::from_secs(2)),
        net,
    );
    let mut slow = served.session();
    slow.send_raw(b"{\"cmd\":\"tasks\",\"limit\":200000}\n");
    let (got_some, first_bytes) = mpsc::channel();
    let stop_reading = Arc::new(AtomicBool::new(false));
    let stop = stop_reading.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        // 8 KiB every 100 ms (80 KiB/s): a reply of this size would take minutes.
        while !stop.load(Ordering::SeqCst) {
            match slow.reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
            let _ = got_some.send(());
            std::thread::sleep(Duration::from_millis(100));
        }
        total
    });
    first_bytes
        .recv_timeout(Duration::from_secs(30))
        .expect("the reply never started");
    let (done, stopped) = mpsc::channel();
    let handle = served.handle.take().unwrap();
    std::thread::spawn(move || {
        handle.shutdown();
        let _ = done.send(());
    });
    // Generous: the bound under test is 2 s (the write timeout).
    let waited = stopped.recv_timeout(Duration::from_secs(30));
    stop_reading.store(true, Ordering::SeqCst);
    assert!(
        waited.is_ok(),
        "shutdown still blocked by a slow reader after 30 s"
    );
    let read = reader.join().unwrap();
    assert!(read < 16_000_000, "the whole reply was read ({read} bytes)");
}

/// Item 6: each refused token from a peer is answered later than the one before, so
/// guessing is slow; the right token is never delayed.
pub fn refused_tokens_back_off(net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 1);
    let base = Duration::from_millis(200);
    let served = Served::start(
        ControlServer::new(&workers)
            .token("s3cret")
            .refusal_delay(base),
        net,
    );
    let t = Instant::now();
    for guess in ["a", "b", "c"] {
        let mut w = served.connect();
        let hello = json!({"cmd": "hello", "version": 1, "token": guess}).to_string();
        assert_eq!(w.err(&hello), "auth_failed");
    }
    // A lower bound only: the server waited at least 1x, 2x and 4x the base delay.
    let waited = t.elapsed();
    assert!(waited >= base * 7, "three refusals took only {waited:?}");
    let mut w = served.connect();
    w.ok(r#"{"cmd":"hello","version":1,"token":"s3cret"}"#);
    assert_eq!(w.ok(r#"{"cmd":"is-locked"}"#), false);
    // Guessers waiting for their answer hold no session places: the operator still got in
    // above, and many parallel guesses do not change that.
    let guessers: Vec<Wire> = (0..40)
        .map(|_| {
            let mut g = served.connect();
            g.send_raw(b"{\"cmd\":\"hello\",\"version\":1,\"token\":\"x\"}\n");
            g
        })
        .collect();
    let mut again = served.connect();
    again.ok(r#"{"cmd":"hello","version":1,"token":"s3cret"}"#);
    drop(guessers);
}

/// Item 5: the staging directory next to the socket has an unpredictable name, so a local
/// user who pre-creates names there cannot keep the server from binding.
#[cfg(unix)]
pub fn staging_names_cannot_be_squatted(_net: Net) {
    let rt = runtime();
    let workers = idle_workers(&rt, 1);
    let dir = temp_dir();
    // What another user could pre-create: the old predictable names (`.0`, `.1`, ...,
    // tried up to 1000 in a row), dirs and files.
    for n in 0..2048 {
        let squat = dir.join(format!(".{n}"));
        if n % 2 == 0 {
            std::fs::create_dir(&squat).unwrap();
        } else {
            std::fs::write(&squat, b"").unwrap();
        }
    }
    let before = std::fs::read_dir(&dir).unwrap().count();
    let path = dir.join("ctl.sock");
    let server = ControlServer::new(&workers).serve_unix(&path).unwrap();
    let mut c = async_taskpool::control::ControlClient::connect_unix(&path, None).unwrap();
    assert!(!c
        .request(&async_taskpool::control::protocol::Command::IsLocked)
        .unwrap()
        .is_error());
    drop(server);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        before,
        "the server left something behind, or removed a squatter's file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Figures of one flood, printed for the record (`--nocapture`).
#[derive(Debug, Default)]
struct FloodFigures {
    seconds: f64,
    flood_connections: usize,
    flood_refusals: usize,
    garbage_lines: usize,
    trickled_bytes: usize,
    slow_reader_bytes: usize,
    operator_rounds: usize,
    operator_commands: usize,
    operator_retries: usize,
    latencies_ms: Vec<f64>,
}

/// Items 2, 3 and 7 together: silent, garbage and slow connections at once, for a few
/// seconds, while an operator connects again and again and runs commands. Every operator
/// round must get in and be answered.
pub fn operator_is_answered_during_a_flood(net: Net) {
    const FLOOD: Duration = Duration::from_secs(4);
    let rt = runtime();
    let workers = idle_workers(&rt, 2);
    workers.start(20_000).unwrap();
    let served = Arc::new(Served::start(
        ControlServer::new(&workers)
            .max_count(20_000)
            .tasks_page(100, 20_000)
            .hello_timeout(Duration::from_secs(2))
            .write_timeout(Duration::from_secs(2)),
        net,
    ));
    let until = Instant::now() + FLOOD;
    let figures = Arc::new(Mutex::new(FloodFigures::default()));
    let mut threads = Vec::new();
    let bump = |f: &Arc<Mutex<FloodFigures>>, apply: &dyn Fn(&mut FloodFigures)| {
        apply(&mut f.lock().unwrap())
    };
    // 48 silent connections: hold, reconnect whenever closed.
    for _ in 0..48 {
        let (served, figures) = (served.clone(), figures.clone());
        threads.push(std::thread::spawn(move || {
            while Instant::now() < until {
                let mut w = served.connect();
                w.set_read_timeout(until.saturating_duration_since(Instant::now()));
                bump(&figures, &|f| f.flood_connections += 1);
                if w.recv_quiet().is_some() {
                    bump(&figures, &|f| f.flood_refusals += 1);
                }
            }
        }));
    }
    // 16 garbage senders: random lines, never a hello.
    for seed in 0..16u64 {
        let (served, figures) = (served.clone(), figures.clone());
        threads.push(std::thread::spawn(move || {
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
            while Instant::now() < until {
                let mut w = served.connect();
                bump(&figures, &|f| f.flood_connections += 1);
                while Instant::now() < until {
                    let line: Vec<u8> = (0..64)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            b' ' + (x % 90) as u8
                        })
                        .chain([b'\n'])
                        .collect();
                    if w.writer.write_all(&line).is_err() || w.recv_quiet().is_none() {
                        break;
                    }
                    bump(&figures, &|f| f.garbage_lines += 1);
                }
            }
        }));
    }
    // 16 tricklers: a hello, one byte every 100 ms (never done within the hello timeout).
    for _ in 0..16 {
        let (served, figures) = (served.clone(), figures.clone());
        threads.push(std::thread::spawn(move || {
            let hello = b"{\"cmd\":\"hello\",\"version\":1}\n";
            while Instant::now() < until {
                let mut w = served.connect();
                bump(&figures, &|f| f.flood_connections += 1);
                for b in hello.iter() {
                    if Instant::now() >= until || w.writer.write_all(&[*b]).is_err() {
                        break;
                    }
                    bump(&figures, &|f| f.trickled_bytes += 1);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }
    // 4 slow readers with sessions: a 1.6 MB page each, read at 8 KiB per 100 ms.
    for _ in 0..4 {
        let (served, figures) = (served.clone(), figures.clone());
        threads.push(std::thread::spawn(move || {
            while Instant::now() < until {
                let Some(mut w) = served.try_session() else {
                    continue;
                };
                w.send_raw(b"{\"cmd\":\"tasks\",\"limit\":20000}\n");
                let mut buf = [0u8; 8192];
                while Instant::now() < until {
                    match w.reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => bump(&figures, &|f| f.slow_reader_bytes += n),
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
    }
    // The operator: connect, hello, three commands, leave; again and again.
    let started = Instant::now();
    let mut rounds = 0;
    while Instant::now() < until || rounds < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the operator never got through"
        );
        let t = Instant::now();
        let mut attempts = 0;
        let mut w = loop {
            attempts += 1;
            if let Some(w) = served.try_session() {
                break w;
            }
            assert!(attempts < 20, "operator refused 20 times in a row");
        };
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 2);
        assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["name"], "workers");
        assert_eq!(w.ok(r#"{"cmd":"tasks","limit":5}"#)["total"], 20_000);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut f = figures.lock().unwrap();
        f.operator_rounds += 1;
        f.operator_commands += 3;
        f.operator_retries += attempts - 1;
        f.latencies_ms.push(ms);
        rounds += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    let mut f = std::mem::take(&mut *figures.lock().unwrap());
    f.seconds = started.elapsed().as_secs_f64();
    f.latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| f.latencies_ms[((f.latencies_ms.len() - 1) as f64 * p) as usize];
    println!(
        "flood over {net:?} for {:.1} s: {} flood connections ({} told busy/hello_timeout), \
         {} garbage lines, {} trickled bytes, {} bytes to slow readers; operator: {} rounds, \
         {} commands answered, {} retries, round trip (connect+hello+3 commands) ms: \
         min {:.1} median {:.1} p95 {:.1} max {:.1}",
        f.seconds,
        f.flood_connections,
        f.flood_refusals,
        f.garbage_lines,
        f.trickled_bytes,
        f.slow_reader_bytes,
        f.operator_rounds,
        f.operator_commands,
        f.operator_retries,
        pct(0.0),
        pct(0.5),
        pct(0.95),
        pct(1.0),
    );
    assert!(f.operator_rounds >= 5);
}

/// Item 4: `stop` from many clients at once stops each task once: every id is reported by
/// exactly one client, and as many are stopped as were asked for.
pub fn concurrent_stops_report_each_task_once(net: Net) {
    const TASKS: usize = 1200;
    const CLIENTS: usize = 12;
    let rt = runtime();
    let workers = idle_workers(&rt, 300);
    workers.start(TASKS).unwrap();
    let served = Arc::new(Served::start(ControlServer::new(&workers), net));
    let barrier = Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (served, barrier) = (served.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut w = served.session();
                barrier.wait();
                let mut ids = Vec::new();
                // 12 clients x 20 requests x 5 = 1200: exactly every task.
                for _ in 0..20 {
                    let stopped = w.ok(r#"{"cmd":"stop","num":5}"#);
                    ids.extend(
                        stopped
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_u64().unwrap()),
                    );
                }
                ids
            })
        })
        .collect();
    let all: Vec<u64> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (TASKS, TASKS),
        "ids reported / distinct ids"
    );
    assert_eq!(distinct, (0..TASKS as u64).collect());
    let joined =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), workers.join()).await });
    assert!(matches!(joined, Ok(Ok(()))), "stopped tasks did not end");
    assert_eq!(workers.num_cancelled(), TASKS as u64);
}

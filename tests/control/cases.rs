//! End-to-end cases of the control server over real sockets. Each case takes the spawner of
//! the runtime it runs on and the transport (loopback TCP or a Unix socket).
//!
//! Client code runs on its own threads (`off`), so the runtime stays free to run the pool's
//! tasks; synchronisation is by gates and counters, never by sleeping.

use crate::support::*;
use crate::wire::*;
use async_taskpool::control::text::help_text;
use async_taskpool::control::{ControlError, ControlServer};
use async_taskpool::{SimpleTaskPool, TaskPool};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub use crate::settings::{
    rate_limits_and_the_adaptive_limit_over_the_wire, scheduling_settings_over_the_wire,
};

/// A SimpleTaskPool of workers that count themselves in and wait at `gate`.
fn gated_workers(
    sp: &Sp,
    limit: usize,
    started: &Counter,
    gate: &Gate,
    conc: &Concurrency,
) -> SimpleTaskPool {
    let (s, g, c) = (started.clone(), gate.clone(), conc.clone());
    SimpleTaskPool::builder(sp.clone(), move || {
        let (s, g, c) = (s.clone(), g.clone(), c.clone());
        async move {
            let _in = c.enter();
            s.bump();
            g.wait().await;
        }
    })
    .name("workers")
    .func_name("consume")
    .limit(limit)
    .build()
    .unwrap()
}

pub async fn simple_pool_commands(sp: Sp, net: Net) {
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let pool = gated_workers(&sp, 2, &started, &gate, &conc);
    let served = Served::start(ControlServer::new(&pool), net);
    off(move || {
        let mut w = served.connect();
        let info = w.ok(r#"{"cmd":"hello","version":1,"client":"test"}"#);
        assert_eq!(info["pool"], "workers");
        assert_eq!(info["kind"], "simple");
        let commands = info["commands"].as_array().unwrap();
        assert!(commands.contains(&"stop".into()) && !commands.contains(&"apply".into()));

        assert_eq!(w.ok(r#"{"cmd":"func-name"}"#), "consume");
        assert_eq!(w.ok(r#"{"cmd":"start","num":3}"#), "start-group-0");
        block(started.wait_for(2));
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 2);
        assert_eq!(w.ok(r#"{"cmd":"num-queued"}"#), 1);
        assert_eq!(w.ok(r#"{"cmd":"is-full"}"#), true);
        assert_eq!(w.ok(r#"{"cmd":"pool-size"}"#), 2);
        assert_eq!(
            w.ok(r#"{"cmd":"get-group-ids","names":["start-group-0"]}"#),
            json!([0, 1, 2])
        );
        let page = w.ok(r#"{"cmd":"tasks"}"#);
        assert_eq!(
            (&page["total"], &page["offset"], &page["next"]),
            (&json!(3), &json!(0), &Value::Null)
        );
        let tasks = &page["tasks"];
        let states: Vec<(u64, &str, &str)> = tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_u64().unwrap(),
                    t["state"].as_str().unwrap(),
                    t["group"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                (0, "running", "start-group-0"),
                (1, "running", "start-group-0"),
                (2, "queued", "start-group-0")
            ]
        );
        assert_eq!(tasks[0]["name"], "workers_Task-0");

        // stop picks the newest (the queued one) first
        assert_eq!(w.ok(r#"{"cmd":"stop","num":1}"#), json!([2]));
        assert_eq!(w.ok(r#"{"cmd":"cancel","ids":[1]}"#), Value::Null);
        assert_eq!(w.err(r#"{"cmd":"cancel","ids":[0,99]}"#), "task_not_found");
        assert_eq!(
            w.err(r#"{"cmd":"cancel-group","name":"nope"}"#),
            "group_not_found"
        );
        assert_eq!(
            w.err(r#"{"cmd":"get-group-ids","names":["nope"]}"#),
            "group_not_found"
        );
        assert_eq!(w.err(r#"{"cmd":"apply","name":"x"}"#), "unsupported");
        assert_eq!(
            w.err(r#"{"cmd":"map","name":"x","args":[]}"#),
            "unsupported"
        );

        assert_eq!(w.ok(r#"{"cmd":"lock"}"#), Value::Null);
        assert_eq!(w.ok(r#"{"cmd":"is-locked"}"#), true);
        assert_eq!(w.err(r#"{"cmd":"start","num":1}"#), "locked");
        assert_eq!(w.ok(r#"{"cmd":"unlock"}"#), Value::Null);
        assert_eq!(w.ok(r#"{"cmd":"is-locked"}"#), false);

        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":5}"#), 5);
        assert_eq!(w.err(r#"{"cmd":"pool-size","value":0}"#), "invalid_limit");
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":null}"#), Value::Null);
        let stats = w.ok(r#"{"cmd":"stats"}"#);
        assert_eq!(stats["name"], "workers");
        assert_eq!(stats["limit"], Value::Null);
        assert_eq!(stats["submitted"], 3);
        assert_eq!(stats["is_full"], false);

        let reply = w.req(r#"{"id":"q1","cmd":"is-locked"}"#);
        assert_eq!(reply, json!({"status":"ok","value":false,"id":"q1"}));
        let help = w.ok(r#"{"cmd":"help"}"#);
        assert!(help
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "stop-all"));
        assert_eq!(
            w.ok(r#"{"cmd":"help","command":"stop"}"#)["usage"],
            "stop NUM"
        );

        assert_eq!(w.ok(r#"{"cmd":"stop-all"}"#), json!([0]));
        assert_eq!(w.ok(r#"{"cmd":"cancel-all"}"#), Value::Null);
        assert_eq!(w.ok(r#"{"cmd":"gather-and-close"}"#), Value::Null);
        assert_eq!(w.ok(r#"{"cmd":"num-ended"}"#), 3);
        assert_eq!(w.ok(r#"{"cmd":"num-cancelled"}"#), 3);
        assert_eq!(w.ok(r#"{"cmd":"until-closed"}"#), true);
        assert_eq!(w.err(r#"{"cmd":"start","num":1}"#), "closed");
        assert_eq!(w.ok(r#"{"cmd":"flush"}"#), Value::Null);
        assert_eq!(w.ok(r#"{"cmd":"num-ended"}"#), 0);
        drop(served);
    })
    .await;
    assert!(pool.is_closed());
    assert_eq!(conc.max(), 2);
}

pub async fn task_pool_runs_registered_jobs(sp: Sp, net: Net) {
    let (log, conc) = (Log::<String>::default(), Concurrency::default());
    let pool = TaskPool::builder(sp.clone()).name("jobs").build().unwrap();
    let (l1, l2, l3, c) = (log.clone(), log.clone(), log.clone(), conc.clone());
    let server = ControlServer::new(&pool)
        .register("add", move |(a, b): (u32, u32)| {
            let l = l1.clone();
            async move { l.push(format!("{}", a + b)) }
        })
        .register("greet", move |name: String| {
            let l = l2.clone();
            async move { l.push(format!("hi {name}")) }
        })
        .register("tick", |(): ()| async {})
        .register("square", move |n: u64| {
            let (l, c) = (l3.clone(), c.clone());
            async move {
                let _in = c.enter();
                yield_n(5).await;
                l.push(format!("sq {}", n * n));
            }
        });
    let served = Served::start(server, net);
    off(move || {
        let mut w = served.connect();
        let info = w.ok(r#"{"cmd":"hello","version":1}"#);
        assert_eq!(info["kind"], "task");
        assert_eq!(info["jobs"], json!(["add", "greet", "square", "tick"]));
        assert_eq!(
            w.ok(r#"{"cmd":"apply","name":"add","args":[2,3],"num":2}"#),
            "apply-group-0"
        );
        assert_eq!(
            w.ok(r#"{"cmd":"apply","name":"greet","args":"bob","group":"hello"}"#),
            "hello"
        );
        assert_eq!(w.ok(r#"{"cmd":"apply","name":"tick"}"#), "apply-group-1");
        assert_eq!(
            w.ok(r#"{"cmd":"map","name":"square","args":[1,2,3,4],"num_concurrent":2}"#),
            "map-group-0"
        );
        // refused requests start nothing
        assert_eq!(
            w.err(r#"{"cmd":"apply","name":"add","args":"x"}"#),
            "bad_args"
        );
        let r = w.req(r#"{"cmd":"map","name":"square","args":[5,"six"]}"#);
        assert_eq!(r["kind"], "bad_args");
        // The error names the JSON the job takes, never a Rust type path.
        let message = r["message"].as_str().unwrap();
        assert!(
            message.contains("item 1 for job `square` does not fit its argument (integer >= 0)"),
            "{message}"
        );
        assert!(!message.contains("::"), "{message}");
        let r = w.req(r#"{"cmd":"apply","name":"greet","args":7}"#);
        assert!(r["message"].as_str().unwrap().contains("(string)"), "{r}");
        assert!(!r["message"].as_str().unwrap().contains("alloc::"), "{r}");
        // `help apply` lists the jobs with their argument shapes.
        let help = w.ok(r#"{"cmd":"help","command":"apply"}"#);
        assert_eq!(
            help["jobs"],
            json!([
                {"name": "add", "args": "[integer >= 0, integer >= 0]"},
                {"name": "greet", "args": "string"},
                {"name": "square", "args": "integer >= 0"},
                {"name": "tick", "args": "null"},
            ])
        );
        assert_eq!(info["job_args"]["greet"], "string");
        assert_eq!(w.err(r#"{"cmd":"apply","name":"nope"}"#), "unknown_job");
        assert_eq!(
            w.err(r#"{"cmd":"apply","name":"greet","args":"x","group":"hello"}"#),
            "group_exists"
        );
        assert_eq!(
            w.err(r#"{"cmd":"map","name":"square","args":[1],"num_concurrent":0}"#),
            "invalid_limit"
        );
        assert_eq!(w.err(r#"{"cmd":"start","num":1}"#), "unsupported");
        assert_eq!(w.err(r#"{"cmd":"func-name"}"#), "unsupported");
        assert_eq!(w.ok(r#"{"cmd":"gather-and-close"}"#), Value::Null);
        assert_eq!(w.err(r#"{"cmd":"apply","name":"tick"}"#), "closed");
        assert_eq!(w.ok(r#"{"cmd":"num-ended"}"#), 8);
    })
    .await;
    let mut got = log.get();
    got.sort();
    assert_eq!(got, ["5", "5", "hi bob", "sq 1", "sq 16", "sq 4", "sq 9"]);
    assert!(conc.max() <= 2, "map ran {} at once", conc.max());
}

pub async fn resize_changes_real_concurrency(sp: Sp, net: Net) {
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let pool = gated_workers(&sp, 1, &started, &gate, &conc);
    let served = Served::start(ControlServer::new(&pool), net);
    let c = conc.clone();
    off(move || {
        let mut w = served.session();
        w.ok(r#"{"cmd":"start","num":4}"#);
        block(started.wait_for(1));
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 1);
        assert_eq!(w.ok(r#"{"cmd":"num-queued"}"#), 3);
        assert_eq!(c.now(), 1);
        // Growing starts queued work at once.
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":3}"#), 3);
        block(started.wait_for(3));
        assert_eq!(c.now(), 3);
        assert_eq!(w.ok(r#"{"cmd":"num-queued"}"#), 1);
        // Shrinking lets the running finish and starts nothing until under the limit.
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":1}"#), 1);
        gate.open();
        assert_eq!(w.ok(r#"{"cmd":"gather-and-close"}"#), Value::Null);
        assert_eq!(w.ok(r#"{"cmd":"num-ended"}"#), 4);
    })
    .await;
    assert_eq!(conc.max(), 3);
}

/// A tiny deterministic PRNG for the fuzz-style input.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub async fn bad_input_gets_errors_and_the_session_goes_on(sp: Sp, net: Net) {
    let pool = TaskPool::builder(sp.clone())
        .name("sturdy")
        .build()
        .unwrap();
    let served = Served::start(ControlServer::new(&pool), net);
    off(move || {
        let mut w = served.connect();
        // Before the hello.
        assert_eq!(w.err(r#"{"cmd":"stats"}"#), "hello_required");
        assert_eq!(w.err("hello?"), "hello_required");
        assert_eq!(
            w.err(r#"{"cmd":"hello","version":0}"#),
            "unsupported_version"
        );
        w.ok(r#"{"cmd":"hello","version":7}"#); // newer clients get the version we speak
                                                // Malformed requests.
        assert_eq!(w.err("{"), "bad_json");
        assert_eq!(w.err("stats"), "bad_json");
        assert_eq!(w.err("[1,2]"), "bad_request");
        assert_eq!(w.err(r#"{"cmd":7}"#), "bad_request");
        assert_eq!(w.err(r#"{"no":"cmd"}"#), "bad_request");
        assert_eq!(w.err(r#"{"cmd":"bogus"}"#), "unknown_command");
        assert_eq!(w.err(r#"{"cmd":"pool-size","value":"big"}"#), "bad_request");
        assert_eq!(w.err(r#"{"cmd":"cancel","ids":[-1]}"#), "bad_request");
        assert_eq!(w.err(r#"{"cmd":"cancel-group"}"#), "bad_request");
        assert_eq!(w.err(r#"{"cmd":"lock","force":true}"#), "bad_request");
        assert_eq!(w.err(r#"{"cmd":"hello","version":1}"#), "bad_request");
        let r = w.req(r#"{"id":[1],"cmd":"nope"}"#);
        assert_eq!(
            (r["kind"].as_str(), &r["id"]),
            (Some("unknown_command"), &json!([1]))
        );
        // Not UTF-8.
        w.send_raw(b"\xff\xfe{}\n");
        let r: Value = serde_json::from_str(&w.recv().unwrap()).unwrap();
        assert_eq!(r["kind"], "bad_json");
        // Over the bound: refused, and the stream resynchronises at the next newline.
        let long = vec![b'x'; 100 * 1024];
        w.send_raw(&long);
        w.send_raw(b"\n");
        let r: Value = serde_json::from_str(&w.recv().unwrap()).unwrap();
        assert_eq!(r["kind"], "line_too_long");
        // Blank lines are skipped without a reply.
        w.send_raw(b"\n   \r\n\t\n");
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 0);
        // Random bytes: one reply per non-blank line, never a panic or a hang.
        let mut rng = XorShift(0x5eed_1234_abcd_0001);
        let mut expected = 0;
        for _ in 0..300 {
            let len = (rng.next() % 200) as usize;
            let mut line: Vec<u8> = (0..len)
                .map(|_| (rng.next() % 256) as u8)
                .filter(|&b| b != b'\n')
                .collect();
            if !line.iter().all(u8::is_ascii_whitespace) {
                expected += 1;
            }
            line.push(b'\n');
            w.send_raw(&line);
        }
        for _ in 0..expected {
            let r: Value = serde_json::from_str(&w.recv().unwrap()).unwrap();
            assert!(r["status"] == "error" || r["status"] == "ok", "{r}");
        }
        assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["name"], "sturdy");
    })
    .await;
}

pub async fn concurrent_sessions_are_independent(sp: Sp, net: Net) {
    let pool = TaskPool::builder(sp.clone())
        .name("shared")
        .build()
        .unwrap();
    let served = std::sync::Arc::new(Served::start(ControlServer::new(&pool), net));
    let s = served.clone();
    off(move || {
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut w = s.session();
                    for j in 0..25 {
                        let limit = 1 + (i * 25 + j) % 7;
                        assert_eq!(
                            w.ok(&format!(r#"{{"cmd":"pool-size","value":{limit}}}"#)),
                            limit
                        );
                        assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["name"], "shared");
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        // One session waits in until-closed while another closes the pool.
        let mut waiter = s.session();
        waiter.send_raw(b"{\"id\":\"w\",\"cmd\":\"until-closed\"}\n");
        let mut closer = s.session();
        assert_eq!(closer.ok(r#"{"cmd":"num-running"}"#), 0); // not blocked by the waiter
        assert_eq!(closer.ok(r#"{"cmd":"gather-and-close"}"#), Value::Null);
        let r: Value = serde_json::from_str(&waiter.recv().unwrap()).unwrap();
        assert_eq!(r, json!({"status":"ok","value":true,"id":"w"}));
    })
    .await;
    drop(served);
}

pub async fn connection_limit_refuses_extra_clients(sp: Sp, net: Net) {
    let pool = TaskPool::new(sp.clone());
    let served = Served::start(ControlServer::new(&pool).max_connections(2), net);
    off(move || {
        let a = served.session();
        let mut b = served.session();
        let mut c = served.connect();
        // A hello past the limit is answered `busy`, and the connection closed.
        assert_eq!(c.err(r#"{"id":1,"cmd":"hello","version":1}"#), "busy");
        assert_eq!(c.recv(), None, "a refused client is disconnected");
        assert_eq!(b.ok(r#"{"cmd":"is-locked"}"#), false);
        drop(a);
        // The freed slot is reusable once the server has seen `a` go.
        served.session_when_free("the slot of a closed session was never freed");
    })
    .await;
}

/// A client that hangs up while its command waits on the pool frees its session (thread and
/// connection slot) at once, not when the pool closes.
pub async fn client_hanging_up_mid_wait_frees_its_slot(sp: Sp, net: Net) {
    let pool = TaskPool::new(sp.clone());
    let served = Served::start(ControlServer::new(&pool).max_connections(1), net);
    let open = pool.clone();
    off(move || {
        let mut a = served.session();
        a.send_raw(b"{\"cmd\":\"until-closed\"}\n");
        drop(a);
        let mut b = served.session_when_free("a client that hung up mid-wait kept its slot");
        assert_eq!(b.ok(r#"{"cmd":"is-locked"}"#), false);
        assert!(!open.is_closed());
    })
    .await;
}

pub async fn stalled_client_blocks_nobody(sp: Sp, net: Net) {
    let pool = TaskPool::new(sp.clone());
    let served = Served::start(
        ControlServer::new(&pool).idle_timeout(Duration::from_secs(1)),
        net,
    );
    off(move || {
        let mut stalled = served.session();
        stalled.send_raw(br#"{"cmd":"sta"#); // half a line, then nothing
        let mut other = served.session();
        for _ in 0..50 {
            assert_eq!(other.ok(r#"{"cmd":"num-running"}"#), 0);
        }
        // The stalled one is told and closed after the idle timeout (time under test:
        // generous bound).
        let t = Instant::now();
        let r: Value = serde_json::from_str(&stalled.recv().unwrap()).unwrap();
        assert_eq!(r["kind"], "idle_timeout");
        assert_eq!(stalled.recv(), None);
        assert!(t.elapsed() < Duration::from_secs(20));
    })
    .await;
}

pub async fn many_connections_at_once(sp: Sp, net: Net) {
    let pool = TaskPool::new(sp.clone());
    let served = std::sync::Arc::new(Served::start(
        ControlServer::new(&pool).max_connections(64),
        net,
    ));
    let s = served.clone();
    off(move || {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
        let clients: Vec<_> = (0..40)
            .map(|_| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut w = s.session();
                    assert_eq!(w.ok(r#"{"cmd":"num-queued"}"#), 0);
                    barrier.wait(); // all 40 open at once
                    assert!(w.ok(r#"{"cmd":"stats"}"#).is_object());
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.handle().num_sessions() > 0 {
            assert!(Instant::now() < deadline, "sessions did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await;
    drop(served);
}

pub async fn token_is_required_when_set(sp: Sp, net: Net) {
    let pool = TaskPool::new(sp.clone());
    let served = Served::start(
        ControlServer::new(&pool)
            .token("s3cret")
            .refusal_delay(Duration::from_millis(1)),
        net,
    );
    off(move || {
        let mut w = served.connect();
        assert_eq!(w.err(r#"{"cmd":"hello","version":1}"#), "auth_failed");
        assert_eq!(w.recv(), None);
        let mut w = served.connect();
        assert_eq!(
            w.err(r#"{"cmd":"hello","version":1,"token":"guess"}"#),
            "auth_failed"
        );
        assert_eq!(w.recv(), None);
        let mut w = served.connect();
        w.ok(r#"{"cmd":"hello","version":1,"token":"s3cret"}"#);
        assert_eq!(w.ok(r#"{"cmd":"is-locked"}"#), false);
        // asyncio-taskpool's client cannot send a token: refused in its text form.
        let mut py = served.connect();
        py.send_raw(b"{\"terminal_width\": 80}\n");
        let line = py.recv().unwrap();
        assert!(
            line.starts_with("error:") && line.contains("token"),
            "{line}"
        );
        assert_eq!(py.recv(), None);
    })
    .await;
    let err = ControlServer::new(&pool)
        .serve_tcp("0.0.0.0:0")
        .unwrap_err();
    assert!(matches!(err, ControlError::TokenRequired { .. }), "{err}");
    assert!(err.to_string().contains("token"));
    let err = ControlServer::new(&pool)
        .max_connections(0)
        .serve_tcp("127.0.0.1:0")
        .unwrap_err();
    assert!(matches!(err, ControlError::InvalidConfig { .. }), "{err}");
}

pub async fn python_client_text_mode(sp: Sp, net: Net) {
    let (started, gate, conc) = (Counter::new(), Gate::new(), Concurrency::default());
    let pool = gated_workers(&sp, 8, &started, &gate, &conc);
    let served = Served::start(ControlServer::new(&pool), net);
    off(move || {
        let mut w = served.connect();
        w.send_raw(b"{\"terminal_width\": 80}\n");
        assert_eq!(w.recv().unwrap(), "workers");
        let mut say = |line: &str| {
            w.send_raw(format!("{line}\n").as_bytes());
            w.recv().unwrap()
        };
        assert_eq!(say("start 2"), "start-group-0");
        block(started.wait_for(2));
        assert_eq!(say("num-running"), "2");
        assert_eq!(say("is-locked"), "False");
        assert_eq!(say("pool-size"), "8");
        assert_eq!(say("pool-size inf"), "inf");
        assert_eq!(say("pool-size 3"), "3");
        assert_eq!(say("get-group-ids start-group-0"), "{0, 1}");
        assert_eq!(say("get-group-ids"), "set()");
        assert_eq!(say("func-name"), "consume");
        assert!(say("bogus").starts_with("error: unknown command `bogus`"));
        assert!(say("stop x").starts_with("error: NUM must be a whole number"));
        assert!(say("cancel 42").starts_with("error: pool `workers` has no task with id 42"));
        assert_eq!(say("lock"), "ok");
        assert!(say("start 1").starts_with("error:"));
        assert_eq!(say("unlock"), "ok");
        assert_eq!(say("stop 1"), "[1]");
        // Multi-line replies come in one piece, as the Python client reads them.
        let info = serde_json::from_value(json!({"server": "", "version": 1, "pool": "workers",
            "kind": "simple", "commands": [], "jobs": []}))
        .unwrap();
        let help = help_text(&info, Some("stop"));
        let first = say("stop -h");
        let mut got = vec![first];
        for _ in 1..help.lines().count() {
            got.push(w.recv().unwrap());
        }
        assert_eq!(got.join("\n"), help);
        let mut say = |line: &str| {
            w.send_raw(format!("{line}\n").as_bytes());
            w.recv().unwrap()
        };
        // Random text: one marked error line per line, and the session goes on.
        let mut rng = XorShift(0x7e57_0000_1111_2222);
        for _ in 0..100 {
            let len = 1 + (rng.next() % 80) as usize;
            let line: String = (0..len)
                .map(|_| char::from_u32(0x21 + (rng.next() % 0x2000) as u32).unwrap_or('?'))
                .collect();
            let reply = say(&line);
            assert!(reply.starts_with("error: "), "{line:?} -> {reply:?}");
        }
        assert_eq!(say("stop-all"), "[0]");
        assert_eq!(say("gather-and-close -r"), "ok");
        assert_eq!(say("until-closed"), "True");
        assert_eq!(say("num-cancelled"), "2");
    })
    .await;
}

pub async fn shutdown_ends_waiting_sessions(sp: Sp, net: Net) {
    let gate = Gate::new();
    let pool = TaskPool::new(sp.clone());
    let _blocker = pool.spawn_queued({
        let g = gate.clone();
        async move { g.wait().await }
    });
    let mut served = Served::start(ControlServer::new(&pool), net);
    off(move || {
        let mut waiter = served.session();
        let mut idle = served.session();
        // Both lines in one write: once `stats` is answered, `until-closed` is next in line.
        waiter.send_raw(b"{\"cmd\":\"stats\"}\n{\"cmd\":\"until-closed\"}\n");
        assert_eq!(
            serde_json::from_str::<Value>(&waiter.recv().unwrap()).unwrap()["status"],
            "ok"
        );
        served.shutdown();
        let r: Value = serde_json::from_str(&waiter.recv().unwrap()).unwrap();
        assert_eq!(r["kind"], "shutting_down");
        assert_eq!(waiter.recv(), None);
        // An idle session is told too, then closed.
        let r: Value = serde_json::from_str(&idle.recv().unwrap()).unwrap();
        assert_eq!(r["kind"], "shutting_down");
        assert_eq!(idle.recv(), None);
    })
    .await;
    assert!(
        !pool.is_closed(),
        "stopping the server leaves the pool alone"
    );
    gate.open();
    pool.gather_and_close().await.unwrap();
}

/// Unix-socket file handling; runs once per runtime.
#[cfg(unix)]
pub async fn unix_socket_file_lifecycle(sp: Sp, _net: Net) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let pool = TaskPool::new(sp.clone());
    let dir = temp_dir();
    let path = dir.join("ctl.sock");
    let server = ControlServer::new(&pool).serve_unix(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let err = ControlServer::new(&pool).serve_unix(&path).unwrap_err();
    assert!(matches!(err, ControlError::SocketInUse { .. }), "{err}");
    server.shutdown();
    assert!(!path.exists(), "the socket file is removed on shutdown");

    // A crashed run leaves a socket file nobody listens on: it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ControlServer::new(&pool).serve_unix(&path).unwrap();
    let addr = path.clone();
    off(move || {
        let mut c = async_taskpool::control::ControlClient::connect_unix(&addr, None).unwrap();
        let r = c
            .request(&async_taskpool::control::protocol::Command::IsLocked)
            .unwrap();
        assert!(!r.is_error());
    })
    .await;
    drop(server);
    assert!(!path.exists());

    // Another kind of file is never removed.
    let file = dir.join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let err = ControlServer::new(&pool).serve_unix(&file).unwrap_err();
    assert!(matches!(err, ControlError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A path as long as a Unix socket's can be (107 bytes on Linux) binds too: the staging
    // path fits as well.
    #[cfg(target_os = "linux")]
    {
        let room = 107 - dir.as_os_str().len() - 1;
        assert!(
            room >= 4,
            "temporary directory too deep for this check: {}",
            dir.display()
        );
        let longest = dir.join("l".repeat(room));
        assert_eq!(longest.as_os_str().len(), 107);
        let server = ControlServer::new(&pool).serve_unix(&longest).unwrap();
        drop(server);
        assert!(!longest.exists());
        let too_long = dir.join("l".repeat(room + 1));
        let err = ControlServer::new(&pool).serve_unix(&too_long).unwrap_err();
        assert!(
            matches!(err, ControlError::SocketPathTooLong { len: 108, .. }),
            "{err}"
        );
        assert!(!too_long.exists());
    }

    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("notes.txt")],
        "no staging files left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The program's own commands (`ControlServer::command`): called by name with JSON
/// arguments, run on the pool's executor, listed by `help`, cancelled when the client leaves.
pub async fn custom_commands(sp: Sp, net: Net) {
    let pool = TaskPool::builder(sp.clone()).name("app").build().unwrap();
    let (entered, dropped, gate) = (Counter::new(), Counter::new(), Gate::new());
    let threads = Log::<String>::default();
    let (e, d, g, t) = (
        entered.clone(),
        dropped.clone(),
        gate.clone(),
        threads.clone(),
    );
    let server = ControlServer::new(&pool)
        .command("echo", "Returns its argument.", move |args: Value| {
            let t = t.clone();
            async move {
                t.push(std::thread::current().name().unwrap_or("").to_owned());
                Ok(json!({ "got": args }))
            }
        })
        .command("fail", "Always fails.", |_| async {
            Err::<Value, _>("the queue database is down".to_owned())
        })
        .command("boom", "Panics.", |_| async { panic!("handler bug") })
        .command("hang", "Waits until the test says.", move |_| {
            let (e, d, g) = (e.clone(), d.clone(), g.clone());
            async move {
                let _bump = BumpOnDrop(d);
                e.bump();
                g.wait().await;
                Ok(Value::Null)
            }
        });
    let served = Served::start(server, net);
    let open = pool.clone();
    off(move || {
        let mut w = served.connect();
        let info = w.ok(r#"{"cmd":"hello","version":1}"#);
        let commands = info["commands"].as_array().unwrap();
        assert!(commands.contains(&"echo".into()) && commands.contains(&"stats".into()));
        assert_eq!(
            info["custom_commands"][0],
            json!({"name":"boom","summary":"Panics."})
        );

        assert_eq!(
            w.ok(r#"{"cmd":"echo","args":{"queue":"mail"}}"#),
            json!({"got":{"queue":"mail"}})
        );
        assert_eq!(w.ok(r#"{"cmd":"echo"}"#), json!({"got":null}));
        let r = w.req(r#"{"id":9,"cmd":"echo","args":[1]}"#);
        assert_eq!(r, json!({"status":"ok","value":{"got":[1]},"id":9}));
        // The handler ran as a task on the pool's executor, not on the session's thread.
        for name in threads.get() {
            assert!(!name.starts_with("taskpool-control"), "ran on {name:?}");
        }
        let r = w.req(r#"{"cmd":"fail"}"#);
        assert_eq!(
            (r["kind"].as_str(), r["message"].as_str()),
            (Some("command_failed"), Some("the queue database is down"))
        );
        assert_eq!(w.err(r#"{"cmd":"boom"}"#), "command_failed");
        assert_eq!(w.err(r#"{"cmd":"nope"}"#), "unknown_command");
        assert_eq!(w.err(r#"{"cmd":"echo","argz":1}"#), "bad_request");
        // Not a pool task: it runs on a locked pool too.
        w.ok(r#"{"cmd":"lock"}"#);
        assert_eq!(w.ok(r#"{"cmd":"echo","args":2}"#), json!({"got":2}));
        let help = w.ok(r#"{"cmd":"help"}"#);
        let echo = help
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "echo")
            .unwrap();
        assert_eq!(echo["custom"], true);
        assert_eq!(echo["summary"], "Returns its argument.");
        assert_eq!(
            w.ok(r#"{"cmd":"help","command":"hang"}"#)["usage"],
            "hang [ARGS_JSON]"
        );

        // A client that hangs up while its command runs: the handler's future is dropped.
        let mut quitter = served.session();
        quitter.send_raw(b"{\"cmd\":\"hang\"}\n");
        block(entered.wait_for(1));
        drop(quitter);
        block(dropped.wait_for(1));
        // A finished wait answers normally.
        let mut waiter = served.session();
        waiter.send_raw(b"{\"cmd\":\"hang\"}\n");
        block(entered.wait_for(2));
        gate.open();
        assert_eq!(
            serde_json::from_str::<Value>(&waiter.recv().unwrap()).unwrap(),
            json!({"status":"ok","value":null})
        );

        // The text form, as asyncio-taskpool's client or taskpool-ctl types it.
        let mut py = served.connect();
        py.send_raw(b"{\"terminal_width\": 80}\n");
        assert_eq!(py.recv().unwrap(), "app");
        py.send_raw(b"echo {\"a\": [1, 2]}\n");
        assert_eq!(py.recv().unwrap(), r#"{"got":{"a":[1,2]}}"#);
        py.send_raw(b"fail\n");
        assert_eq!(
            py.recv().unwrap(),
            "error: the queue database is down [command_failed]"
        );
        py.send_raw(b"help\n");
        let mut text = String::new();
        while !text.contains("Waits until the test says.") {
            text.push_str(&py.recv().unwrap());
            text.push('\n');
        }
        assert!(text.contains("commands of this program:"), "{text}");
        assert!(text.contains("echo [ARGS_JSON]"), "{text}");
    })
    .await;
    assert!(!open.is_closed());
}

/// A command name that is taken or malformed is refused when the server starts, with a
/// reason, and never panics.
pub async fn custom_command_names_are_checked(sp: Sp, net: Net) {
    let pool = TaskPool::new(sp.clone());
    for (name, says) in [
        ("stats", "built-in"),
        ("hello", "built-in"),
        ("watch", "taskpool-ctl"),
        ("Queue Stats", "lowercase"),
        ("", "lowercase"),
    ] {
        let server = ControlServer::new(&pool)
            .command("ok-name", "fine", |_| async { Ok(Value::Null) })
            .command(name, "bad", |_| async { Ok(Value::Null) });
        let err = match net {
            Net::Tcp => server.serve_tcp("127.0.0.1:0").unwrap_err(),
            #[cfg(unix)]
            Net::Unix => server.serve_unix(temp_dir().join("ctl.sock")).unwrap_err(),
            #[cfg(not(unix))]
            Net::Unix => unreachable!(),
        };
        assert!(
            matches!(&err, ControlError::InvalidCommand { name: n, .. } if n == name),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{name:?}: {err}");
    }
}

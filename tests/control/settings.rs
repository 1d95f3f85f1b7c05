//! The scheduling settings over the wire: `group-settings` and `pool-settings` change what the
//! pool really does (how many of a group's items run, which group starts first, the loose
//! weight, a group's rate limit, the adaptive limit's bounds), `groups`, `stats` and a
//! program's own `Group` handle show the change, and every bad value gets a clear error that
//! changes nothing.

use crate::support::*;
use crate::wire::*;
use async_taskpool::control::ControlServer;
use async_taskpool::TaskPool;
use serde_json::{json, Value};

/// Runs on every runtime flavour, over TCP and a Unix socket.
pub async fn scheduling_settings_over_the_wire(sp: Sp, net: Net) {
    let pool = TaskPool::builder(sp.clone())
        .name("sched")
        .limit(4)
        .build()
        .unwrap();
    let (started, conc, gate) = (Counter::new(), Concurrency::default(), Gate::new());
    let (order, marked) = (Log::<u32>::default(), Counter::new());
    let (s, c, g) = (started.clone(), conc.clone(), gate.clone());
    let (o, m) = (order.clone(), marked.clone());
    let server = ControlServer::new(&pool)
        // Counts itself in, then waits for the gate (or a cancel).
        .register("hold", move |(): ()| {
            let (s, c, g) = (s.clone(), c.clone(), g.clone());
            async move {
                let _in = c.enter();
                s.bump();
                g.wait().await;
            }
        })
        // Notes its argument in start order, and ends.
        .register("mark", move |n: u32| {
            let (o, m) = (o.clone(), m.clone());
            async move {
                o.push(n);
                m.bump();
            }
        });
    // A group the program holds a handle to, finished but known until a flush.
    let mine = pool
        .build_group()
        .name("mine")
        .priority(1)
        .weight(2)
        .map(0..2, 1, |x| async move { x })
        .unwrap();
    let served = Served::start(server, net);
    let p = pool.clone();
    let mine = off(move || {
        let mut w = served.session();

        // Shown: the group's settings, in `group-settings` and in the `groups` page.
        assert_eq!(
            w.ok(r#"{"cmd":"group-settings","name":"mine"}"#),
            json!({"name": "mine", "priority": 1, "weight": 2, "num_concurrent": 1, "rate_limit": null})
        );
        // Changed by name; the program's handle sees it.
        assert_eq!(
            w.ok(r#"{"cmd":"group-settings","name":"mine","priority":-7,"weight":5,"num_concurrent":null}"#),
            json!({"name": "mine", "priority": -7, "weight": 5, "num_concurrent": null, "rate_limit": null})
        );
        let page = w.ok(r#"{"cmd":"groups"}"#);
        let entry = &page["groups"][0];
        assert_eq!(
            (&entry["name"], &entry["priority"], &entry["weight"], &entry["num_concurrent"]),
            (&json!("mine"), &json!(-7), &json!(5), &Value::Null),
            "{page}"
        );

        // A group's cap, raised at run time, runs more of its items at once; `null` follows
        // the pool's limit, and then its changes.
        assert_eq!(
            w.ok(r#"{"cmd":"map","name":"hold","args":[null,null,null,null,null,null,null,null],"num_concurrent":1,"group":"slow"}"#),
            "slow"
        );
        block(started.wait_for(1));
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 1);
        let set = w.ok(r#"{"cmd":"group-settings","name":"slow","num_concurrent":3}"#);
        assert_eq!(set["num_concurrent"], 3);
        block(started.wait_for(3));
        assert_eq!(conc.now(), 3);
        w.ok(r#"{"cmd":"group-settings","name":"slow","num_concurrent":null}"#);
        block(started.wait_for(4));
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":6}"#), 6);
        block(started.wait_for(6));
        assert_eq!(conc.now(), 6);
        // Lowered: nothing running is stopped, and nothing more starts while over it.
        w.ok(r#"{"cmd":"group-settings","name":"slow","num_concurrent":2}"#);
        let stats = w.ok(r#"{"cmd":"groups"}"#);
        let slow = stats["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "slow")
            .unwrap()
            .clone();
        assert_eq!(slow["num_concurrent"], 2, "{slow}");
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 6);
        w.ok(r#"{"cmd":"cancel-group","name":"slow"}"#);
        // Changing a cancelled group is refused as for any unknown name.
        assert_eq!(
            w.err(r#"{"cmd":"group-settings","name":"slow","weight":2}"#),
            "group_not_found"
        );

        // Priority, changed while both groups wait: the raised one starts first.
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":1}"#), 1);
        // Its slot comes once the cancelled items are gone.
        w.ok(r#"{"cmd":"apply","name":"hold","group":"blocker"}"#);
        block(started.wait_for(7));
        w.ok(r#"{"cmd":"map","name":"mark","args":[1,2],"num_concurrent":1,"group":"low"}"#);
        w.ok(r#"{"cmd":"map","name":"mark","args":[10,20],"num_concurrent":1,"group":"high"}"#);
        let high = w.ok(r#"{"cmd":"group-settings","name":"high","priority":5}"#);
        assert_eq!(high["priority"], 5);
        assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 1);
        w.ok(r#"{"cmd":"cancel-group","name":"blocker"}"#);
        block(marked.wait_for(4));
        assert_eq!(order.get(), [10, 20, 1, 2], "`high` was raised above `low`");

        // The loose tasks' weight: shown in `pool-settings` and `stats`, changed by it.
        assert_eq!(
            w.ok(r#"{"cmd":"pool-settings"}"#),
            json!({"limit": 1, "loose_weight": 1, "rate_limit": null, "adaptive": null})
        );
        assert_eq!(
            w.ok(r#"{"cmd":"pool-settings","loose_weight":3}"#),
            json!({"limit": 1, "loose_weight": 3, "rate_limit": null, "adaptive": null})
        );
        assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["loose_weight"], 3);
        assert_eq!(p.loose_weight(), 3);
        gate.open();
        mine
    })
    .await;
    assert_eq!(
        (mine.priority(), mine.weight(), mine.num_concurrent()),
        (-7, 5, async_taskpool::Concurrency::PoolLimit)
    );
    // The handle changes it back; the pool's record (and the wire) follow.
    mine.set_weight(1).unwrap();
    assert_eq!(pool.group_stats("mine").unwrap().weight, 1);
    pool.join().await.unwrap();
}

/// Every bad value gets an error reply that says what to type, changes nothing, and leaves
/// the session open; the bounds are the server's (`max_count`, `max_weight`).
#[cfg(feature = "tokio")]
pub fn settings_are_bounded_and_checked(net: Net) {
    use async_taskpool::runtime::TokioSpawner;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = TaskPool::builder(TokioSpawner::from_handle(rt.handle().clone()))
        .name("bounded")
        .limit(2)
        .build()
        .unwrap();
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let rx = futures::future::FutureExt::shared(rx);
    let group = pool
        .build_group()
        .name("g")
        .map(0..4, 1, move |_| {
            let rx = rx.clone();
            async move {
                let _ = rx.await;
            }
        })
        .unwrap();
    let served = Served::start(ControlServer::new(&pool), net);
    let mut w = served.session();
    let before = json!({"name": "g", "priority": 0, "weight": 1, "num_concurrent": 1,
        "rate_limit": null});
    assert_eq!(w.ok(r#"{"cmd":"group-settings","name":"g"}"#), before);
    let refused = [
        // (request, kind, words the message must hold)
        (
            json!({"cmd": "group-settings", "name": "nope", "weight": 2}),
            "group_not_found",
            "`nope`",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "weight": 0}),
            "invalid_limit",
            "from 1 to 1000",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "weight": 1001}),
            "over_limit",
            "from 1 to 1000",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "priority": 3, "weight": u64::MAX}),
            "over_limit",
            "from 1 to 1000",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "priority": 2_147_483_648i64}),
            "over_limit",
            "-2147483648 to 2147483647",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "priority": -2_147_483_649i64}),
            "over_limit",
            "-2147483648 to 2147483647",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "priority": 1, "num_concurrent": 0}),
            "invalid_limit",
            "`pool`",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "num_concurrent": 10_001}),
            "over_limit",
            "from 1 to 10000",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "weight": -1}),
            "bad_request",
            "usage: group-settings NAME",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "weight": "heavy"}),
            "bad_request",
            "usage: group-settings NAME",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "weight": 1.5}),
            "bad_request",
            "usage: group-settings NAME",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "num_concurrent": "pool"}),
            "bad_request",
            "or null to follow the pool's limit, not \"pool\"",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "num_concurrent": -3}),
            "bad_request",
            "or null to follow the pool's limit, not -3",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "wieght": 2}),
            "bad_request",
            "unknown field `wieght`",
        ),
        (json!({"cmd": "group-settings"}), "bad_request", "`name`"),
        (
            json!({"cmd": "group-settings", "name": 7}),
            "bad_request",
            "usage: group-settings NAME",
        ),
        (
            json!({"cmd": "pool-settings", "loose_weight": 0}),
            "invalid_limit",
            "--loose-weight",
        ),
        (
            json!({"cmd": "pool-settings", "loose_weight": 5_000_000_000u64}),
            "over_limit",
            "from 1 to 1000",
        ),
        (
            json!({"cmd": "pool-settings", "limit": 3}),
            "bad_request",
            "unknown field `limit`",
        ),
        // Rate limits: zeros, huge counts, shapes that are not a quota.
        (
            json!({"cmd": "group-settings", "name": "g", "priority": 4,
                "rate_limit": {"count": 0, "period_ms": 1000}}),
            "invalid_limit",
            "--rate N/PERIOD",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "rate_limit": {"count": 5, "period_ms": 0}}),
            "invalid_limit",
            "longer than 0",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "rate_limit": {"count": 5, "period_ms": -10}}),
            "invalid_limit",
            "longer than 0",
        ),
        (
            json!({"cmd": "group-settings", "name": "g",
                "rate_limit": {"count": 5, "period_ms": 1000, "burst": 0}}),
            "invalid_limit",
            "`--burst B`",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "weight": 2,
                "rate_limit": {"count": u64::MAX, "period_ms": 1000}}),
            "over_limit",
            "from 1 to 1000000000",
        ),
        (
            json!({"cmd": "group-settings", "name": "g",
                "rate_limit": {"count": 5, "period_ms": 1000, "burst": 5_000_000_000u64}}),
            "over_limit",
            "from 1 to 1000000000",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "rate_limit": {"count": 5, "period_ms": 1e300}}),
            "over_limit",
            "365 days",
        ),
        (
            json!({"cmd": "group-settings", "name": "g",
                "rate_limit": {"count": 1_000_000_000, "period_ms": 0.5}}),
            "bad_request",
            "less than a nanosecond",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "rate_limit": "10/s"}),
            "bad_request",
            "\"period_ms\": MS",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "rate_limit": {"count": 5}}),
            "bad_request",
            "missing field `period_ms`",
        ),
        (
            json!({"cmd": "group-settings", "name": "g",
                "rate_limit": {"count": 5, "period_ms": 1000, "brust": 2}}),
            "bad_request",
            "unknown field `brust`",
        ),
        (
            json!({"cmd": "group-settings", "name": "g", "rate_limit": {"count": -5, "period_ms": 1000}}),
            "bad_request",
            "or null to lift the limit",
        ),
        // The adaptive limit's bounds: out of range, crossed, or on a pool without one.
        (
            json!({"cmd": "pool-settings", "adaptive_min": 0}),
            "invalid_limit",
            "--adaptive-min",
        ),
        (
            json!({"cmd": "pool-settings", "loose_weight": 2, "adaptive_max": 5_000_000_000u64}),
            "over_limit",
            "from 1 to 1000000",
        ),
        (
            json!({"cmd": "pool-settings", "adaptive_min": 9, "adaptive_max": 3}),
            "bad_request",
            "`--adaptive-min` at most `--adaptive-max`",
        ),
        (
            json!({"cmd": "pool-settings", "loose_weight": 2, "adaptive_max": 3}),
            "unsupported",
            "`pool-size N`",
        ),
    ];
    for (req, kind, says) in refused {
        let r = w.req(&req.to_string());
        assert_eq!(r["kind"], kind, "{req} -> {r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(says), "{req} -> {message}");
        assert!(!message.contains("None"), "{message}");
    }
    // Nothing changed, not even the valid half of a refused request.
    assert_eq!(w.ok(r#"{"cmd":"group-settings","name":"g"}"#), before);
    assert_eq!(
        (group.priority(), group.weight()),
        (0, 1),
        "a refused request changed the group"
    );
    assert_eq!(pool.loose_weight(), 1);
    // The bounds themselves are allowed.
    let edge = w.ok(
        r#"{"cmd":"group-settings","name":"g","priority":-2147483648,"weight":1000,"num_concurrent":10000}"#,
    );
    assert_eq!(
        edge,
        json!({"name": "g", "priority": i32::MIN, "weight": 1000, "num_concurrent": 10_000,
            "rate_limit": null})
    );
    assert_eq!(
        w.ok(r#"{"cmd":"pool-settings","loose_weight":1000}"#)["loose_weight"],
        1000
    );
    drop(served);

    // A configured bound, told in the hello, and asyncio-taskpool's client typing the same.
    let served = Served::start(ControlServer::new(&pool).max_weight(5).max_count(8), net);
    let info = served.connect().ok(r#"{"cmd":"hello","version":1}"#);
    assert_eq!(info["limits"]["max_weight"], 5);
    let mut w = served.session();
    let r = w.req(r#"{"cmd":"group-settings","name":"g","weight":6}"#);
    assert_eq!(r["kind"], "over_limit");
    assert!(
        r["message"].as_str().unwrap().contains("from 1 to 5"),
        "{r}"
    );
    assert_eq!(
        w.err(r#"{"cmd":"group-settings","name":"g","num_concurrent":9}"#),
        "over_limit"
    );
    let mut py = served.connect();
    py.send_raw(b"{\"terminal_width\": 80}\n");
    assert_eq!(py.recv().unwrap(), "bounded");
    let mut say = |line: &str, lines: usize| {
        py.send_raw(format!("{line}\n").as_bytes());
        (0..lines)
            .map(|_| py.recv().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let line = say("group-settings g -w 0", 1);
    assert!(
        line.starts_with("error: ")
            && line.contains("from 1 to 5")
            && line.ends_with("[invalid_limit]"),
        "{line}"
    );
    let line = say("group-settings g -w 9", 1);
    assert!(line.ends_with("[over_limit]"), "{line}");
    let line = say("group-settings nope", 1);
    assert!(line.ends_with("[group_not_found]"), "{line}");
    let line = say("group-settings g -n lots", 1);
    assert!(
        line.contains("or `pool`") && line.ends_with("[bad_request]"),
        "{line}"
    );
    assert_eq!(
        say("group-settings g -p 2 -w 4 -n pool", 5),
        "          name: g\n      priority: 2\n        weight: 4\nnum_concurrent: pool\n    \
         rate_limit: inf"
    );
    assert_eq!(
        say("pool-settings -w 2", 4),
        "       limit: 2\nloose_weight: 2\n  rate_limit: inf\n    adaptive: off"
    );
    assert_eq!(
        say("group-settings g --rate 30/min --burst 2", 5)
            .lines()
            .last(),
        Some("    rate_limit: 30/min, burst 2")
    );
    let line = say("group-settings g --rate 0/s", 1);
    assert!(line.ends_with("[invalid_limit]"), "{line}");
    let line = say("group-settings g --rate 10/fortnight", 1);
    assert!(
        line.contains("`10/s`") && line.ends_with("[bad_request]"),
        "{line}"
    );
    let line = say("pool-settings --adaptive-max 5", 1);
    assert!(
        line.contains("no adaptive limit") && line.ends_with("[unsupported]"),
        "{line}"
    );
    assert_eq!(
        say("group-settings g --rate inf", 5).lines().last(),
        Some("    rate_limit: inf")
    );
    assert_eq!((group.priority(), group.weight()), (2, 4));
    let _ = tx.send(());
    rt.block_on(pool.join()).unwrap();
}

/// A group's rate limit and the pool's adaptive limit over the wire, on every runtime flavour,
/// over TCP and a Unix socket: shown in `group-settings`, `groups`, `pool-settings` and
/// `stats`; set, changed and lifted at run time, with the effect the engine gives a program's
/// own `Group::set_rate_limit` and `TaskPool::set_adaptive_bounds`.
pub async fn rate_limits_and_the_adaptive_limit_over_the_wire(sp: Sp, net: Net) {
    use async_taskpool::policy::{Aimd, Quota};
    use std::time::Duration;
    let pool = TaskPool::builder(sp.clone())
        .name("rated")
        .limit(8)
        .build()
        .unwrap();
    let (started, gate, marked) = (Counter::new(), Gate::new(), Counter::new());
    let m = marked.clone();
    let server = ControlServer::new(&pool).register("mark", move |_: u32| {
        let m = m.clone();
        async move { m.bump() }
    });
    // A keyed group (one quota per key, three keys) made with one start per key per hour:
    // three of its six items start, three wait set aside for their keys' tokens.
    let hourly = Quota::new(1, Duration::from_secs(3_600))
        .unwrap()
        .burst(1)
        .unwrap();
    let (s, g) = (started.clone(), gate.clone());
    let keyed = pool
        .build_group()
        .name("hosts")
        .rate_limit_by(|x: &u32| x % 3, hourly)
        .map(0..6u32, 6, move |_| {
            let (s, g) = (s.clone(), g.clone());
            async move {
                s.bump();
                g.wait().await;
            }
        })
        .unwrap();
    started.wait_for(3).await;
    let served = Served::start(server, net);
    let adaptive = TaskPool::builder(sp.clone())
        .name("adaptive")
        .adaptive_limit(Aimd::builder(1, 100).initial(10).build().unwrap())
        .build()
        .unwrap();
    let served_adaptive = Served::start(ControlServer::new(&adaptive), net);
    let hourly_json = json!({"count": 1, "period_ms": 3_600_000, "burst": 1});
    let (p, a, st, gt) = (
        pool.clone(),
        adaptive.clone(),
        started.clone(),
        gate.clone(),
    );
    let keyed = off(move || {
        let mut w = served.session();
        assert_eq!(
            w.ok(r#"{"cmd":"group-settings","name":"hosts"}"#)["rate_limit"],
            hourly_json
        );
        let page = w.ok(r#"{"cmd":"groups"}"#);
        assert_eq!(page["groups"][0]["rate_limit"], hourly_json, "{page}");
        assert_eq!(block(async { st.get() }), 3);

        // A burst of 2 per key: each of the three keys has one more token now, so the three
        // set-aside items start (one group-wide quota would have none left).
        let set = w.ok(
            r#"{"cmd":"group-settings","name":"hosts","rate_limit":{"count":1,"period_ms":3600000,"burst":2}}"#,
        );
        assert_eq!(
            set["rate_limit"],
            json!({"count": 1, "period_ms": 3_600_000, "burst": 2})
        );
        block(st.wait_for(6));
        assert_eq!(
            keyed.rate_limit(),
            Some(hourly.burst(2).unwrap()),
            "the program's handle sees the quota set over the wire"
        );

        // A group made without a rate limit gets one: two starts back to back, then one an
        // hour; lifted (`null`), the rest start at once.
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":6}"#), 6);
        w.ok(r#"{"cmd":"map","name":"mark","args":[1,2,3,4,5],"num_concurrent":1,"group":"late"}"#);
        assert_eq!(
            w.ok(r#"{"cmd":"group-settings","name":"late"}"#)["rate_limit"],
            Value::Null
        );
        let set = w.ok(
            r#"{"cmd":"group-settings","name":"late","num_concurrent":5,"rate_limit":{"count":1,"period_ms":3600000,"burst":2}}"#,
        );
        assert_eq!(
            (&set["num_concurrent"], &set["rate_limit"]),
            (&json!(5), &json!({"count": 1, "period_ms": 3_600_000, "burst": 2})),
        );
        assert_eq!(p.group_stats("late").unwrap().rate_limit, Some(hourly.burst(2).unwrap()));
        gt.open();
        block(marked.wait_for(2));
        let late = p.group_stats("late").unwrap();
        // Two started (the second may still be ending); three wait for the next token.
        assert_eq!((late.done + late.live, late.backlog), (2, 3), "{late:?}");
        let set = w.ok(r#"{"cmd":"group-settings","name":"late","rate_limit":null}"#);
        assert_eq!(set["rate_limit"], Value::Null);
        block(marked.wait_for(5));
        // Once every item ended, a rate limit would never apply: refused, in words.
        block(p.join()).unwrap();
        let r = w.req(r#"{"cmd":"group-settings","name":"late","rate_limit":{"count":1,"period_ms":1000}}"#);
        assert_eq!(r["kind"], "already_ended", "{r}");
        assert!(r["message"].as_str().unwrap().contains("`late` has ended"), "{r}");
        assert_eq!(w.ok(r#"{"cmd":"group-settings","name":"late","weight":2}"#)["weight"], 2);

        // The adaptive limit: shown in `pool-settings` and `stats`, its bounds moved (one
        // or both; the limit is clamped into them at once).
        let mut w = served_adaptive.session();
        assert_eq!(
            w.ok(r#"{"cmd":"pool-settings"}"#),
            json!({"limit": 10, "loose_weight": 1, "rate_limit": null, "adaptive": {"limiter":
                "aimd", "min": 1, "max": 100, "limit": 10, "samples": 0, "overloads": 0}})
        );
        let set = w.ok(r#"{"cmd":"pool-settings","adaptive_max":5}"#);
        assert_eq!((&set["limit"], &set["adaptive"]["max"]), (&json!(5), &json!(5)), "{set}");
        assert_eq!((a.limit(), a.adaptive().unwrap().limit), (Some(5), 5));
        let r = w.req(r#"{"cmd":"pool-settings","adaptive_min":8,"loose_weight":3}"#);
        assert_eq!(r["kind"], "bad_request", "{r}");
        assert!(r["message"].as_str().unwrap().contains("upper bound 5"), "{r}");
        assert_eq!(a.loose_weight(), 1, "a refused request changed the weight");
        let set = w.ok(r#"{"cmd":"pool-settings","adaptive_min":2,"adaptive_max":50}"#);
        assert_eq!(
            (&set["adaptive"]["min"], &set["adaptive"]["max"], &set["limit"]),
            (&json!(2), &json!(50), &json!(5)),
            "{set}"
        );
        assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["adaptive"]["max"], 50);
        // `pool-size` sets a fixed limit: the adaptive one is off for good.
        assert_eq!(w.ok(r#"{"cmd":"pool-size","value":7}"#), 7);
        assert_eq!(
            w.ok(r#"{"cmd":"pool-settings"}"#),
            json!({"limit": 7, "loose_weight": 1, "rate_limit": null, "adaptive": null})
        );
        // The pool-wide rate limit: set, in force (one start, then `try_spawn` is refused
        // until the next token, an hour away), refused with nothing changed, and lifted.
        let set = w.ok(
            r#"{"cmd":"pool-settings","rate_limit":{"count":1,"period_ms":3600000,"burst":1}}"#,
        );
        assert_eq!(set["rate_limit"], hourly_json, "{set}");
        assert_eq!(a.rate_limit(), Some(hourly));
        assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["rate_limit"], hourly_json, "`stats` shows it");
        block(async { a.spawn(async {}).await.unwrap().await.unwrap() });
        let refused = a.try_spawn(async {}).unwrap_err();
        assert!(
            matches!(refused.error(), async_taskpool::PoolError::RateLimited { .. }),
            "{}",
            refused.error()
        );
        let r = w.req(
            r#"{"cmd":"pool-settings","loose_weight":3,"rate_limit":{"count":0,"period_ms":1000}}"#,
        );
        assert_eq!(r["kind"], "invalid_limit", "{r}");
        assert_eq!(a.loose_weight(), 1, "a refused request changed the weight");
        assert_eq!(a.rate_limit(), Some(hourly), "a refused request changed the quota");
        let set = w.ok(r#"{"cmd":"pool-settings","rate_limit":null}"#);
        assert_eq!(set["rate_limit"], Value::Null);
        assert_eq!(a.rate_limit(), None);
        block(async { a.try_spawn(async {}).unwrap().await.unwrap() });
        let stats = w.ok(r#"{"cmd":"stats"}"#);
        assert!(stats.get("adaptive").is_none() && stats.get("rate_limit").is_none(), "{stats}");
        assert_eq!(w.err(r#"{"cmd":"pool-settings","adaptive_max":9}"#), "unsupported");
        keyed
    })
    .await;
    assert_eq!(keyed.join().await.unwrap().completed, 6);
}

//! The dashboard in a real browser: Debian's `chromium`, driven headless through
//! `chromedriver`, against the real `taskpool-dashboard` binary watching two real control
//! servers (TCP with a token, and a Unix socket without one).
//!
//! It needs `chromium` and `chromium-driver` (Debian packages; `.ci/run` installs them and
//! runs this test with `--ignored`). Paths can be given in `CHROMIUM` and `CHROMEDRIVER`.
//! It saves screenshots in `target/dashboard-screenshots/`; with `DASHBOARD_SCREENSHOT=PATH`
//! it also writes the 1280x800 one there (how `docs/dashboard.png` is made).

use async_taskpool::control::ControlServer;
use async_taskpool::policy::{Aimd, Quota};
use async_taskpool::runtime::TokioSpawner;
use async_taskpool::{SimpleTaskPool, TaskPool};
use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-for-the-test";
/// How long the page may take to show a change (generous: two shared cores).
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` from the environment variable `var`, else the first of `paths` that exists.
fn find_program(var: &str, paths: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

fn browser_or_fail() -> (PathBuf, PathBuf) {
    let chromium = find_program(
        "CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let driver = find_program("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => (c, d),
        _ => panic!(
            "this test needs Debian's chromium and chromedriver: `apt-get install chromium \
             chromium-driver` (as .ci/run does), or set CHROMIUM and CHROMEDRIVER to their paths"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver and waits (bounded) until it accepts connections.
fn start_driver(driver: &Path) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let child = Killed(child);
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// Starts the dashboard binary; returns it and the page's address from its first line.
fn start_dashboard(servers: &[String]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskpool-dashboard"))
        .args(["--listen", "127.0.0.1:0", "--interval", "0.25"])
        .args(servers)
        .env("TPD_TEST_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the dashboard binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in the dashboard's first line: {line:?}"))
        .to_owned();
    (Killed(child), url)
}

async fn open_browser(chromium: &Path, port: u16, profile: &Path) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,800",
            ],
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("chromedriver opens a headless chromium session")
}

/// Waits until the text of `css` satisfies `want`; fails with the last text seen.
async fn wait_text(c: &Client, css: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::from("(no such element)");
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if want(&t) {
                    return t;
                }
                last = t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what} at `{css}`; last seen: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn find(c: &Client, css: &str) -> Element {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        assert!(Instant::now() < deadline, "no element `{css}` on the page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Confirms the open dialog with `token` (`None`: leaves the field empty) and returns the
/// outcome (`ok` or `error`) and the reply shown.
async fn confirm(c: &Client, token: Option<&str>) -> (String, String) {
    let field = find(c, "#confirm-token").await;
    if field.is_displayed().await.unwrap() {
        field.clear().await.unwrap();
        if let Some(t) = token {
            field.send_keys(t).await.unwrap();
        }
    }
    find(c, "#confirm-go").await.click().await.unwrap();
    let text = wait_text(c, "#confirm-result", "the server's reply", |t| {
        !t.is_empty()
    })
    .await;
    let outcome = find(c, "#confirm-result")
        .await
        .attr("data-outcome")
        .await
        .unwrap()
        .unwrap_or_default();
    find(c, "#confirm-back").await.click().await.unwrap();
    (outcome, text)
}

/// Sizes the window so that the page itself (not the window) is `w` by `h` CSS pixels.
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.unwrap();
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight]", vec![])
        .await
        .unwrap();
    let (iw, ih) = (
        inner[0].as_u64().unwrap() as u32,
        inner[1].as_u64().unwrap() as u32,
    );
    c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
        .await
        .unwrap();
}

/// One raw HTTP/1.1 request to the dashboard; returns the status code and body.
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
#[ignore = "needs Debian's chromium and chromium-driver; .ci/run installs them and runs this with --ignored"]
fn dashboard_in_a_real_browser() {
    let (chromium, driver) = browser_or_fail();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let spawner = TokioSpawner::from_handle(rt.handle().clone());
    let crawler = TaskPool::builder(spawner.clone())
        .name("crawler")
        .limit(2)
        .track_durations(true)
        .build()
        .unwrap();
    let workers = SimpleTaskPool::builder(spawner.clone(), std::future::pending::<()>)
        .name("workers")
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tpd-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tcp = ControlServer::new(&crawler)
        .token(TOKEN)
        .serve_tcp("127.0.0.1:0")
        .unwrap();
    let socket = dir.join("workers.sock");
    let unix = ControlServer::new(&workers).serve_unix(&socket).unwrap();
    let (_dashboard, url) = start_dashboard(&[
        format!("tcp:{},token-env=TPD_TEST_TOKEN", tcp.local_addr().unwrap()),
        format!("unix:{}", socket.display()),
    ]);
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (_driver, port) = start_driver(&driver);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    rt.block_on(async {
        let c = open_browser(&chromium, port, &dir.join("profile")).await;
        c.goto(&url).await.unwrap();
        let running = "#pool-0 [data-field=running]";
        let queued = "#pool-0 [data-field=queued]";
        wait_text(&c, "#pool-0 .name", "the pool's name", |t| t == "crawler").await;
        wait_text(&c, running, "0 running", |t| t == "0").await;

        // The numbers follow the pool: 2 run (the limit), 3 wait.
        let held: Vec<_> = (0..5)
            .map(|_| crawler.spawn_queued(std::future::pending::<()>()).unwrap())
            .collect();
        wait_text(&c, running, "2 running", |t| t == "2").await;
        wait_text(&c, queued, "3 queued", |t| t == "3").await;
        wait_text(&c, "#pool-0 .pager .info", "the task page", |t| {
            t == "Tasks 1–5 of 5"
        })
        .await;
        // The pool tracks durations: the latency panel (2 started, none ended yet) and each
        // task's age.
        wait_text(
            &c,
            "#pool-0 [data-latency=queue_wait]",
            "queue-wait percentiles",
            |t| t.starts_with("Queue wait") && t.ends_with('2'),
        )
        .await;
        wait_text(
            &c,
            "#pool-0 [data-latency=run_time]",
            "no run time yet",
            |t| t.starts_with("Run time") && t.ends_with('0'),
        )
        .await;
        let age = wait_text(
            &c,
            "#pool-0 tr[data-task=\"4\"] td:nth-child(5)",
            "a queued task's age",
            |t| t.ends_with(" ms") || t.ends_with(" s"),
        )
        .await;
        assert_ne!(age, "–");

        // Resize from the page, with the control server's token: the real limit changes.
        let limit = find(&c, "#pool-0 [data-action=limit-input]").await;
        limit.send_keys("4").await.unwrap();
        find(&c, "#pool-0 [data-action=set-limit]")
            .await
            .click()
            .await
            .unwrap();
        let (outcome, reply) = confirm(&c, Some(TOKEN)).await;
        assert_eq!(outcome, "ok", "{reply}");
        assert_eq!(
            crawler.limit(),
            Some(4),
            "the page's resize reached the pool"
        );
        wait_text(&c, running, "4 running", |t| t == "4").await;

        // An action without the token is refused (by the dashboard, before anything is
        // sent), and one with a wrong token by the control server; the pool is untouched.
        find(&c, "#pool-0 [data-action=cancel-all]")
            .await
            .click()
            .await
            .unwrap();
        let (outcome, reply) = confirm(&c, None).await;
        assert_eq!(outcome, "error");
        assert!(reply.contains("token_required"), "{reply}");
        find(&c, "#pool-0 [data-action=cancel-all]")
            .await
            .click()
            .await
            .unwrap();
        let (outcome, reply) = confirm(&c, Some("not-the-token")).await;
        assert_eq!(outcome, "error");
        assert!(reply.contains("auth_failed"), "{reply}");
        assert_eq!(
            crawler.num_running() + crawler.num_queued(),
            5,
            "nothing was cancelled"
        );

        // The pool's policies: the loose tasks' weight, no adaptive limit.
        wait_text(
            &c,
            "#pool-0 [data-field=policy]",
            "the pool's policies",
            |t| t == "Loose tasks' weight 1 · Adaptive limit: off",
        )
        .await;
        // The pool-wide rate limit, while one is set (as `pool-settings` sets it).
        crawler.set_rate_limit(Some(Quota::per_second(50).unwrap().burst(5).unwrap()));
        wait_text(
            &c,
            "#pool-0 [data-field=policy]",
            "the pool's rate limit",
            |t| t == "Loose tasks' weight 1 · Rate limit 50/s, burst 5 · Adaptive limit: off",
        )
        .await;
        crawler.set_rate_limit(None);
        wait_text(
            &c,
            "#pool-0 [data-field=policy]",
            "the pool's rate limit lifted",
            |t| t == "Loose tasks' weight 1 · Adaptive limit: off",
        )
        .await;

        // A group with its scheduling settings in its row, cancelled from its row.
        let batch = crawler
            .build_group()
            .name("batch")
            .priority(2)
            .weight(3)
            .rate_limit(Quota::per_second(10).unwrap().burst(2).unwrap())
            .apply(3, std::future::pending::<()>)
            .unwrap();
        wait_text(
            &c,
            "#pool-0 tr[data-group=batch]",
            "the group's progress",
            |t| t.contains("0 of 3"),
        )
        .await;
        wait_text(
            &c,
            "#pool-0 tr[data-group=batch] [data-group-settings]",
            "the group's settings",
            |t| t == "priority 2 · weight 3 · pool's limit · rate 10/s, burst 2",
        )
        .await;
        // Changed at run time (as `group-settings` does), the row follows.
        batch.set_rate_limit(None).unwrap();
        batch.set_num_concurrent(2).unwrap();
        wait_text(
            &c,
            "#pool-0 tr[data-group=batch] [data-group-settings]",
            "the group's changed settings",
            |t| t == "priority 2 · weight 3 · ≤ 2 at once · no rate limit",
        )
        .await;
        let cancel = "#pool-0 tr[data-group=batch] [data-action=cancel-group]";
        find(&c, cancel).await.click().await.unwrap();
        let (outcome, reply) = confirm(&c, Some(TOKEN)).await;
        assert_eq!(outcome, "ok", "{reply}");
        assert!(
            !crawler.has_group("batch"),
            "the group was cancelled and forgotten"
        );
        drop(batch);

        // The SimpleTaskPool on the Unix socket, which has no token: its adaptive limit shown,
        // then start from the page.
        wait_text(&c, "#pool-1 .name", "the second pool", |t| t == "workers").await;
        workers
            .as_task_pool()
            .set_adaptive_limit(Aimd::builder(1, 20).initial(8).build().unwrap());
        wait_text(&c, "#pool-1 [data-field=policy]", "the adaptive limit", |t| {
            t == "Loose tasks' weight 1 · Adaptive limit: aimd, bounds 1–20, now 8 (0 samples, 0 \
                  overloads)"
        })
        .await;
        wait_text(
            &c,
            "#pool-1 [data-field=limit]",
            "the adaptive limit's value",
            |t| t == "8",
        )
        .await;
        let count = find(&c, "#pool-1 [data-action=count-input]").await;
        count.clear().await.unwrap();
        count.send_keys("3").await.unwrap();
        find(&c, "#pool-1 [data-action=start]")
            .await
            .click()
            .await
            .unwrap();
        assert!(
            !find(&c, "#confirm-token-row")
                .await
                .is_displayed()
                .await
                .unwrap(),
            "no token asked where the server has none"
        );
        let (outcome, reply) = confirm(&c, None).await;
        assert_eq!(outcome, "ok", "{reply}");
        assert_eq!(workers.num_running(), 3);
        wait_text(&c, "#pool-1 [data-field=running]", "3 running", |t| {
            t == "3"
        })
        .await;

        // The guard, without a browser: no session, another origin, another host name.
        let post = |origin: &str| {
            let body = r#"{"server":0,"action":"cancel-all"}"#;
            format!(
                "POST /api/action HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let (status, body) = http(&host, &post(&format!("http://{host}")));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("bad_session"), "{body}");
        let (status, body) = http(&host, &post("http://evil.example"));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("cross_origin"), "{body}");
        let (status, body) = http(
            &host,
            "GET / HTTP/1.1\r\nHost: rebound.example:80\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 421, "{body}");
        let (status, body) = http(
            &host,
            &format!(
                "GET /api/tasks?server=0 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(
            status, 403,
            "no task pages without the page's session: {body}"
        );
        assert_eq!(crawler.num_running() + crawler.num_queued(), 5);

        // A moving picture for the screenshot: the held tasks go, and short tasks come and
        // go for a few seconds, a few of them timing out (bounded in count and time).
        crawler.cancel(held.iter().map(|h| h.id())).unwrap();
        crawler.set_limit(6).unwrap();
        let until = Instant::now() + Duration::from_secs(12);
        let mut n = 0u64;
        while Instant::now() < until && n < 2_000 {
            n += 1;
            let ms = 40 + (n * 37) % 400;
            // Some overrun their timeout (for the picture's outcomes).
            let timeout = if n.is_multiple_of(23) { 20 } else { 1_000 };
            let _ = crawler
                .build_task()
                .timeout(Duration::from_millis(timeout))
                .spawn_queued(tokio::time::sleep(Duration::from_millis(ms)));
            if n.is_multiple_of(8) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _group = crawler
            .build_group()
            .name("thumbnails")
            .map(0..400u64, 3, |i| async move {
                tokio::time::sleep(Duration::from_millis(100 + i % 200)).await;
            })
            .unwrap();
        wait_text(
            &c,
            "#pool-0 [data-table=groups]",
            "the thumbnails group",
            |t| t.contains("thumbnails"),
        )
        .await;
        // The outcomes chart counts every outcome, shed included (a sixth kind once gave
        // "NaN ended").
        wait_text(
            &c,
            "#pool-0 .charts figure:nth-child(2) figcaption > span.muted",
            "the outcomes' total",
            |t| {
                let n = t.split_whitespace().next().unwrap_or("").replace(',', "");
                n.parse::<u64>().is_ok_and(|n| n > 0) && t.ends_with("completed")
            },
        )
        .await;
        viewport(&c, 1280, 800).await;
        c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(shots.join("dashboard-1280x800.png"), &png).unwrap();
        if let Some(path) = std::env::var_os("DASHBOARD_SCREENSHOT") {
            std::fs::write(path, &png).unwrap();
        }

        // 100,000 queued tasks: the page keeps one page of rows and the counts up to date.
        crawler.cancel_all();
        crawler.set_limit(4).unwrap();
        let held: Vec<_> = (0..4)
            .map(|_| crawler.spawn_queued(std::future::pending::<()>()).unwrap())
            .collect();
        let started = Instant::now();
        let many: Vec<_> = (0..100_000)
            .map(|_| crawler.spawn_queued(std::future::pending::<()>()).unwrap())
            .collect();
        let shown = wait_text(&c, queued, "100,000 queued", |t| t == "100,000").await;
        let rows = c
            .find_all(Locator::Css("#pool-0 [data-table=tasks] tbody tr"))
            .await
            .unwrap()
            .len();
        assert_eq!(rows, 50, "one page of rows, not every task");
        wait_text(&c, "#pool-0 .pager .info", "the page's position", |t| {
            t.starts_with("Tasks 1–50 of 100,00")
        })
        .await;
        // Filtered and paged: running tasks only.
        find(&c, "#pool-0 [data-filter=state]")
            .await
            .select_by_value("running")
            .await
            .unwrap();
        wait_text(&c, "#pool-0 .pager .info", "the filtered page", |t| {
            t.starts_with("4 matching tasks")
        })
        .await;
        eprintln!(
            "100,000 queued: the page showed {shown} queued {:.1?} after the spawns began",
            started.elapsed()
        );
        crawler.cancel_all();
        drop(many);
        drop(held);
        find(&c, "#pool-0 [data-filter=state]")
            .await
            .select_by_value("")
            .await
            .unwrap();

        // A phone's width: nothing runs off the side of the page.
        viewport(&c, 390, 844).await;
        let wide = c
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            wide.as_i64().unwrap() <= 0,
            "the page is {wide} px too wide at 390 px"
        );
        std::fs::write(
            shots.join("dashboard-phone.png"),
            c.screenshot().await.unwrap(),
        )
        .unwrap();
        // The whole page at that width, for a look at the tables.
        let tall = c
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap();
        viewport(&c, 390, tall.as_u64().unwrap().min(6_000) as u32).await;
        std::fs::write(
            shots.join("dashboard-phone-full.png"),
            c.screenshot().await.unwrap(),
        )
        .unwrap();
        c.close().await.unwrap();
    });
    crawler.cancel_all();
    workers.stop_all();
    tcp.shutdown();
    unix.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

//! A real PostgreSQL for the tests and benchmarks: `initdb` in a temp dir, listening on
//! 127.0.0.1 only, on a free port, run as an unprivileged user (the server refuses root),
//! stopped at the end, also if the test process is killed: a guardian process holds the
//! read end of a pipe from us and stops the server when it closes.
//!
//! `TASKPOOL_QUEUE_DATABASE_URL` points at an existing server instead (its role must be
//! allowed to CREATE DATABASE). Without either, the helper fails and says how to get one.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The environment variable naming an existing server.
pub const URL_VAR: &str = "TASKPOOL_QUEUE_DATABASE_URL";

pub const HOW_TO: &str = "these tests need a real PostgreSQL. Either install it \
(Debian: `apt-get install -y postgresql`; the tests run initdb and pg_ctl from \
/usr/lib/postgresql/*/bin as an unprivileged user), or point TASKPOOL_QUEUE_DATABASE_URL at \
a server whose role may CREATE DATABASE, e.g. \
TASKPOOL_QUEUE_DATABASE_URL=postgres://me@127.0.0.1:5432/postgres";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A PostgreSQL server this process started.
pub struct PgServer {
    pub port: u16,
    pub user: Option<String>,
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    guardian: Mutex<Option<(Child, ChildStdin)>>,
}

/// Where the server's binaries are: `TASKPOOL_PG_BIN`, then the newest
/// `/usr/lib/postgresql/*/bin`, then `pg_ctl` on the PATH.
fn find_bin() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("TASKPOOL_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("pg_ctl");
        if p.exists() {
            return Ok(p.parent().unwrap().to_path_buf());
        }
    }
    Err(format!("no PostgreSQL binaries found: {HOW_TO}"))
}

fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).and_then(|u| u.parse().ok()))
        })
        .unwrap_or(1)
}

/// As root, the unprivileged user to run the server as: `postgres` (made by Debian's
/// package), else a system user `taskpool-pg` created here.
fn server_user() -> Result<Option<String>, String> {
    if euid() != 0 {
        return Ok(None);
    }
    for user in ["postgres", "taskpool-pg"] {
        if Command::new("id")
            .arg("-u")
            .arg(user)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            return Ok(Some(user.to_owned()));
        }
    }
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "taskpool-pg",
        ])
        .status()
        .map_err(|e| format!("useradd: {e}"))?;
    if !status.success() {
        return Err("could not create the system user `taskpool-pg` to run PostgreSQL as".into());
    }
    Ok(Some("taskpool-pg".to_owned()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    fn command(&self, program: &str) -> Command {
        as_user(&self.user, &self.bin.join(program))
    }

    /// Starts a fresh server. `extra` are more `-c name=value` settings.
    pub fn start(extra: &[&str]) -> Result<Self, String> {
        let bin = find_bin()?;
        let user = server_user()?;
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("taskpool-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        if let Some(u) = &user {
            run(Command::new("chown").arg(u).arg(&root))?;
        }
        let data = root.join("data");
        let initdb = run(as_user(&user, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]));
        if let Err(e) = initdb {
            let _ = std::fs::remove_dir_all(&root);
            return Err(e);
        }
        // The guardian stops the server and removes its files when our end of the pipe
        // closes: at drop, or when this process dies however it dies.
        let script = format!(
            "cat >/dev/null; {} -D \"$1\" stop -m immediate >/dev/null 2>&1; rm -rf \"$2\"",
            match &user {
                Some(u) => format!("runuser -u {u} -- {}", bin.join("pg_ctl").display()),
                None => bin.join("pg_ctl").display().to_string(),
            }
        );
        let mut guardian = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("guardian")
            .arg(&data)
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        let stdin = guardian.stdin.take().unwrap();
        let mut server = Self {
            port: 0,
            user,
            bin,
            data,
            root,
            guardian: Mutex::new(Some((guardian, stdin))),
        };
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.pg_ctl_start(extra) {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn options(&self, extra: &[&str]) -> String {
        let mut o = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c max_connections=300",
            self.port,
            self.root.display()
        );
        for e in extra {
            o.push_str(" -c ");
            o.push_str(e);
        }
        o
    }

    fn pg_ctl_start(&self, extra: &[&str]) -> Result<(), String> {
        let log = self.root.join("server.log");
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(self.options(extra))
            .arg("start"))
        .map_err(|e| format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Restarts the server ("fast": clients are disconnected), same port and data.
    pub fn restart(&self, extra: &[&str]) {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]))
        .unwrap();
        self.pg_ctl_start(extra).unwrap();
    }

    pub fn stop(&self) {
        if let Some((mut child, mut stdin)) = self.guardian.lock().unwrap().take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn as_user(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.arg("-u").arg(u).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The base URL of the server all tests of this process share (a database name is
/// appended): `TASKPOOL_QUEUE_DATABASE_URL`'s server, or one started here on first use.
/// Panics with how to get one if neither works: a test needing the database never passes
/// without one.
pub fn shared_server() -> &'static str {
    static URL: OnceLock<Result<(String, Option<PgServer>), String>> = OnceLock::new();
    let r = URL.get_or_init(|| {
        if let Ok(url) = std::env::var(URL_VAR) {
            return Ok((url, None));
        }
        let server = PgServer::start(&[
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ])?;
        Ok((server.url("postgres"), Some(server)))
    });
    match r {
        Ok((url, _)) => url,
        Err(e) => panic!("{e}\n\n{HOW_TO}"),
    }
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A unique database name for one test.
pub fn database_name(hint: &str) -> String {
    format!(
        "tq_{}_{}_{}",
        hint.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect::<String>()
            .to_lowercase(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// How long to wait for the server's answer when polling in tests.
pub const POLL: Duration = Duration::from_millis(20);

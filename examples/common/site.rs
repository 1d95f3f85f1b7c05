//! A simulated web for the crawler examples, served over real HTTP on 127.0.0.1: several
//! hosts (one listener each) in front of one backend whose latency rises sharply past a
//! concurrency knee, that turns work away when overloaded, that fails some first requests
//! (transient 503s worth a retry), and that answers 429 to a host asked faster than its
//! politeness quota.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// How the simulated backend behaves.
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    /// Requests in flight (all hosts) it serves at its base latency.
    pub knee: usize,
    /// Its latency at or below the knee.
    pub base: Duration,
    /// Past this many requests in flight it answers 503 at once.
    pub overload: usize,
    /// One first request in `transient_every` fails with a 503 (a retry succeeds).
    pub transient_every: u64,
    /// Pages per host.
    pub pages: u64,
    /// Politeness: starts per second per host it tolerates (with `burst` more at once).
    pub polite_per_sec: u32,
    pub burst: u32,
}

/// What the site saw, for the report.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    pub pages: AtomicUsize,
    pub transient: AtomicUsize,
    pub overloaded: AtomicUsize,
    pub impolite: AtomicUsize,
    pub robots: AtomicUsize,
    in_flight: AtomicUsize,
    knee: AtomicUsize,
    failed_once: Mutex<HashSet<(u16, u64)>>,
}

impl Seen {
    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// The knee now.
    pub fn knee(&self) -> usize {
        self.knee.load(Relaxed)
    }

    /// Moves the knee (the backend got more or less capacity).
    pub fn set_knee(&self, knee: usize) {
        self.knee.store(knee, Relaxed);
    }
}

/// The running site: its hosts' addresses and what it saw.
pub struct Site {
    pub hosts: Vec<SocketAddr>,
    pub seen: Arc<Seen>,
}

/// Starts `hosts` listeners on 127.0.0.1 serving `backend`.
pub async fn start(hosts: usize, backend: Backend) -> std::io::Result<Site> {
    let seen = Arc::new(Seen::default());
    seen.set_knee(backend.knee);
    let mut addrs = Vec::new();
    for _ in 0..hosts {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        let seen = seen.clone();
        let arrivals = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, arrivals) = (seen.clone(), arrivals.clone());
                let port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        serve(backend, seen.clone(), arrivals.clone(), port, req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    Ok(Site { hosts: addrs, seen })
}

async fn serve(
    backend: Backend,
    seen: Arc<Seen>,
    arrivals: Arc<Mutex<VecDeque<Instant>>>,
    port: u16,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    seen.requests.fetch_add(1, Relaxed);
    let reply = |status: u16, body: String| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
        Ok(res)
    };
    // Politeness: more than a second's quota plus its burst within one second is impolite.
    {
        let now = Instant::now();
        let mut arrivals = arrivals.lock().unwrap();
        while arrivals
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            arrivals.pop_front();
        }
        arrivals.push_back(now);
        if arrivals.len() > (backend.polite_per_sec + backend.burst) as usize {
            seen.impolite.fetch_add(1, Relaxed);
            return reply(429, "slow down".into());
        }
    }
    let path = req.uri().path().to_owned();
    if path == "/robots.txt" {
        seen.robots.fetch_add(1, Relaxed);
        tokio::time::sleep(backend.base).await;
        return reply(200, "User-agent: *\nAllow: /\n".into());
    }
    let Some(page) = path.strip_prefix("/p/").and_then(|n| n.parse::<u64>().ok()) else {
        return reply(404, "no such page".into());
    };
    let in_flight = seen.in_flight.fetch_add(1, Relaxed) + 1;
    let _leave = Leave(&seen.in_flight);
    if in_flight > backend.overload {
        seen.overloaded.fetch_add(1, Relaxed);
        return reply(503, "overloaded".into());
    }
    if page % backend.transient_every == 3 && seen.failed_once.lock().unwrap().insert((port, page))
    {
        seen.transient.fetch_add(1, Relaxed);
        return reply(503, "try again".into());
    }
    // Latency: the base up to the knee, then rising with the cube of the overshoot.
    let over = (in_flight as f64 / seen.knee().max(1) as f64).max(1.0);
    tokio::time::sleep(backend.base.mul_f64(over.powi(3).min(50.0))).await;
    seen.pages.fetch_add(1, Relaxed);
    // Each page links to two more of its host and to the same page of the next host.
    let n = backend.pages;
    let links = format!("{} {} +{}", (page * 7 + 1) % n, (page * 13 + 5) % n, page);
    reply(200, links)
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// One GET over a fresh connection: the status and the body.
pub async fn get(host: SocketAddr, path: &str) -> Result<(u16, String), FetchError> {
    let stream = TcpStream::connect(host).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(hyper::header::HOST, host.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connecting: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the server answered {0}")]
    Status(u16),
}

//! The web server: the page and its assets (compiled into the binary), a live stream of the
//! pools (server-sent events), task pages on demand, and actions.

use crate::actions::{self, Action};
use crate::guard::{self, Sessions, COOKIE, CSRF_HEADER};
use crate::link::Failure;
use crate::monitor::Monitor;
use async_taskpool::control::protocol::Command;
use async_taskpool::TaskState;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Rows in one task page, at most.
const MAX_TASK_PAGE: usize = 200;

/// Everything a request handler reaches.
pub struct App {
    pub monitor: Monitor,
    pub sessions: Sessions,
    /// `Host` values the dashboard answers to.
    pub hosts: Vec<String>,
    /// How often the page is sent fresh numbers.
    pub every: Duration,
}

type Shared = Arc<App>;

/// The routes, behind the host check and the security headers.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route("/api/events", get(events))
        .route("/api/tasks", get(tasks))
        .route("/api/action", post(action))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn_with_state(app.clone(), guard_request))
        .with_state(app)
}

/// Refuses other `Host` names (DNS rebinding), checks every non-GET for its origin and
/// anti-CSRF token, and adds the headers that keep the page to its own assets.
async fn guard_request(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app.hosts.iter().any(|h| h == host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            format!(
                "this dashboard answers only as http://{}/ (the request said Host `{host}`)",
                app.hosts[0]
            ),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Some(refusal) = refusal_of_action(&app, headers, host) {
            return refusal;
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    res
}

/// Why an action (any request but GET) is refused, if it is: not from the dashboard's own
/// origin, or without its session's anti-CSRF token.
fn refusal_of_action(app: &App, headers: &HeaderMap, host: &str) -> Option<Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let expected = format!("http://{host}");
    if text("origin") != Some(expected.as_str()) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!(
                "actions are taken only from the dashboard's own page ({expected}); this \
                 request came from {}",
                text("origin").unwrap_or("an unnamed origin")
            ),
        ));
    }
    if text("sec-fetch-site").is_some_and(|s| s != "same-origin") {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "actions are taken only from the dashboard's own page".into(),
        ));
    }
    let csrf = text("cookie")
        .and_then(guard::session_of)
        .and_then(|id| app.sessions.csrf(id));
    match (csrf, text(CSRF_HEADER)) {
        (Some(want), Some(got)) if guard::same(&want, got) => None,
        _ => Some(refuse(
            StatusCode::FORBIDDEN,
            "bad_session",
            "this page's session is unknown or expired: reload the page".into(),
        )),
    }
}

fn refuse(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "kind": kind, "message": message } })),
    )
        .into_response()
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// The page, with a new session: its cookie, and its anti-CSRF token in a `<meta>` tag.
async fn index(State(app): State<Shared>) -> Response {
    let Ok((id, csrf)) = app.sessions.open() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_randomness",
            "the operating system's random number generator failed".into(),
        );
    };
    let page = INDEX.replace("{{CSRF}}", &csrf);
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
        page,
    )
        .into_response()
}

/// Whether the request comes from a page the dashboard served (its session cookie).
fn has_session(app: &App, headers: &HeaderMap) -> bool {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(guard::session_of)
        .is_some_and(|id| app.sessions.csrf(id).is_some())
}

fn no_session() -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "bad_session",
        "open the dashboard's page first (this request has no session of it)".into(),
    )
}

/// Server-sent events: a `snapshot` (with the kept history) at once, then a `tick` per
/// poll interval.
async fn events(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if !has_session(&app, &headers) {
        return no_session();
    }
    let every = app.every;
    let first = Event::default()
        .event("snapshot")
        .data(app.monitor.view(true).to_string());
    let ticks = stream::unfold(
        (
            app,
            tokio::time::interval_at(tokio::time::Instant::now() + every, every),
        ),
        |(app, mut interval)| async move {
            interval.tick().await;
            let event = Event::default()
                .event("tick")
                .data(app.monitor.view(false).to_string());
            Some((Ok::<_, Infallible>(event), (app, interval)))
        },
    );
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(stream::once(async { Ok(first) }).chain(ticks));
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

use futures_util::StreamExt as _;

/// A task page's query: `/api/tasks?server=0&after=99&limit=50&state=running&search=x`.
#[derive(Debug, Deserialize)]
struct TasksQuery {
    server: usize,
    after: Option<u64>,
    limit: Option<usize>,
    state: Option<String>,
    group: Option<String>,
    search: Option<String>,
}

/// One page of a pool's tasks, straight from its control server's `tasks`: the page never
/// holds more than [`MAX_TASK_PAGE`] rows, whatever the pool holds.
async fn tasks(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<TasksQuery>,
) -> Response {
    if !has_session(&app, &headers) {
        return no_session();
    }
    let Some(watched) = app.monitor.get(q.server).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no_server",
            format!("no server {}", q.server),
        );
    };
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match serde_json::from_value::<TaskState>(json!(s)) {
            Ok(state) => Some(state),
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("state is queued, running or ending, not `{s}`"),
                )
            }
        },
    };
    let cmd = Command::Tasks {
        offset: None,
        after: q.after,
        limit: Some(q.limit.unwrap_or(50).min(MAX_TASK_PAGE)),
        state,
        group: q.group.filter(|g| !g.is_empty()),
        search: q.search.filter(|s| !s.is_empty()),
    };
    let result = tokio::task::spawn_blocking(move || watched.link.request(&cmd)).await;
    reply(result.unwrap_or_else(|e| Err(internal(e))))
}

fn internal(e: tokio::task::JoinError) -> Failure {
    Failure {
        kind: "internal".into(),
        message: format!("the request failed inside the dashboard: {e}"),
    }
}

fn reply(result: Result<Value, Failure>) -> Response {
    match result {
        Ok(value) => Json(json!({ "ok": value })).into_response(),
        Err(f) => {
            let status = match f.kind.as_str() {
                "token_required" | "auth_failed" => StatusCode::FORBIDDEN,
                "unreachable" => StatusCode::BAD_GATEWAY,
                _ => StatusCode::OK,
            };
            (status, Json(json!({ "error": f }))).into_response()
        }
    }
}

/// An action from the page (origin and anti-CSRF token already checked by the guard).
async fn action(State(app): State<Shared>, Json(req): Json<actions::Request>) -> Response {
    let Some(watched) = app.monitor.get(req.server).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no_server",
            format!("no server {}", req.server),
        );
    };
    let spec = watched.link.spec().clone();
    let what: Action = req.action;
    let token = req.token;
    let shown = serde_json::to_string(&what).unwrap_or_default();
    let result =
        tokio::task::spawn_blocking(move || actions::run(&spec, token.as_deref(), &what)).await;
    let result = result.unwrap_or_else(|e| Err(internal(e)));
    match &result {
        Ok(_) => {
            tracing::info!(server = %watched.link.spec().endpoint, action = %shown, "action done")
        }
        Err(f) => tracing::warn!(
            server = %watched.link.spec().endpoint,
            action = %shown,
            kind = %f.kind,
            "action refused: {}",
            f.message
        ),
    }
    reply(result)
}

//! A scripted fake PVE HTTP server (plain HTTP, in process) for the client-level tests.
//!
//! Each test hands [`serve`] a closure that gets every request ([`Seen`]) with its 0-based
//! index and returns the exact [`Reply`] to put on the wire: status code, reason phrase, raw
//! body, optional delay. Everything sent is recorded so a test can assert on the method, path,
//! query, `Authorization` header, content type and form body (see [`Seen::wire`]).
//!
//! It exists next to the simulator (`proxmox_manager::sim`) on purpose: the simulator models
//! a cluster faithfully and therefore only answers the way a real PVE does. These tests need
//! answers it would never produce on its own — a chosen status line or reason phrase (older
//! PVE carries the error text only there), a `595`, empty or message-less error bodies, a
//! non-UPID where a UPID belongs, a reply that arrives too late — to pin down how the client
//! maps each one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use proxmox_manager::pve::{ApiToken, Client, ClientOptions, Error};
use secrecy::SecretString;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub auth: String,
    pub content_type: String,
    pub body: String,
}

impl Seen {
    /// `METHOD path[?query][ body]`, the path without `/api2/json`.
    pub fn wire(&self) -> String {
        let mut w = format!(
            "{} {}",
            self.method,
            self.path.trim_start_matches("/api2/json")
        );
        if !self.query.is_empty() {
            w.push_str(&format!("?{}", self.query));
        }
        if !self.body.is_empty() {
            w.push_str(&format!(" {}", self.body));
        }
        w
    }
}

/// What the fake answers. `reason: None` keeps hyper's canonical reason phrase.
pub struct Reply {
    pub status: u16,
    pub reason: Option<&'static str>,
    pub body: String,
    pub delay: Option<Duration>,
}

/// `200 OK` with a JSON body.
pub fn ok(body: serde_json::Value) -> Reply {
    Reply {
        status: 200,
        reason: None,
        body: body.to_string(),
        delay: None,
    }
}

/// An error status with an optional reason phrase. The body is sent as its text, so it can be
/// a `serde_json::Value` or a raw (possibly empty or malformed) string.
pub fn fail(status: u16, reason: Option<&'static str>, body: impl ToString) -> Reply {
    Reply {
        status,
        reason,
        body: body.to_string(),
        delay: None,
    }
}

/// The script: the request and its 0-based index among all requests to this server.
pub type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct Fake {
    seen: Mutex<Vec<Seen>>,
    count: AtomicUsize,
    script: Box<Script>,
}

/// A running fake; it lives until the test's runtime shuts down.
pub struct Server {
    pub url: String,
    fake: Arc<Fake>,
}

impl Server {
    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.fake.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// [`Seen::wire`] of every request so far.
    pub fn wires(&self) -> Vec<String> {
        self.seen().iter().map(Seen::wire).collect()
    }

    /// The latest request.
    pub fn last(&self) -> Result<Seen, String> {
        self.seen()
            .pop()
            .ok_or_else(|| "nothing was sent".to_owned())
    }
}

async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        auth: header("authorization"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let n = fake.count.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut v) = fake.seen.lock() {
        v.push(seen.clone());
    }
    let reply = (fake.script)(&seen, n);
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Body::from(reply.body)).into_response();
    resp.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    if let Some(r) = reply
        .reason
        .and_then(|reason| hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).ok())
    {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// Starts a fake on a free local port that answers every request with `script`.
pub async fn serve(
    script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
) -> Result<Server, std::io::Error> {
    let fake = Arc::new(Fake {
        seen: Mutex::new(Vec::new()),
        count: AtomicUsize::new(0),
        script: Box::new(script),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server {
        url: format!("http://{addr}"),
        fake,
    })
}

/// The token secret the client options carry.
pub const SECRET: &str = "5e2c1f0a-1b2c-4d5e-8f90-123456789abc";

/// Client options for `endpoints` with the manager token and a 5 s timeout; the rest default.
pub fn options(endpoints: Vec<String>) -> Result<ClientOptions, Error> {
    let token = ApiToken::new(
        "claude-code@pve!automation",
        SecretString::from(SECRET.to_owned()),
    )?;
    let mut opts = ClientOptions::new(endpoints, token);
    opts.timeout = Duration::from_secs(5);
    Ok(opts)
}

/// A client for `server` with [`options`] (default retries).
pub fn client(server: &Server) -> Result<Client, Error> {
    Client::new(options(vec![server.url.clone()])?)
}

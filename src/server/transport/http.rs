//! Streamable HTTP transport: `/mcp` behind a bearer token, loopback by default.
//!
//! Why each guard: the token stops other local users and browsers from driving the cluster;
//! rmcp's Host allow-list stops DNS rebinding; the Origin check stops a web page in the user's
//! browser from posting to the loopback port: only the endpoint's own origin (a page it served,
//! which it serves none of) and the `--allow-origin` values are accepted.
//! Tokens are compared in constant time over their SHA-256 digests, so neither content nor
//! length leaks through timing.
//!
//! Resource limits ([`HttpLimits`]): a connection must send its request headers within
//! `header_read_timeout` (also the longest pause between requests on a kept-alive connection)
//! and is closed after `idle_timeout` without a byte in either direction (SSE streams carry a
//! keep-alive comment every 15 s, so an open stream is never idle); beyond `max_connections`
//! open connections a new one gets an immediate `503` and is closed, and the accept loop never
//! waits on a client. MCP sessions are capped as [`super::sessions`] describes. POST bodies are
//! parsed as strictly as stdio lines ([`super::frame`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::frame;
use super::sessions::{CappedSessionManager, Registry};
use crate::server::ProxmoxServer;

/// Resource limits of the HTTP transport (the `serve` flags of the same names).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers (also the longest pause between
    /// requests on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections beyond this get `503` and are closed at once.
    pub max_connections: usize,
    /// MCP sessions held at once (see [`super::sessions`]).
    pub max_sessions: usize,
    /// An MCP session without a request for this long expires.
    pub session_idle_timeout: Duration,
    /// Largest accepted POST body.
    pub max_body_bytes: usize,
}

impl HttpLimits {
    /// The limits from the `serve` flags (seconds as decimals), with warnings for settings that
    /// work against clients.
    ///
    /// # Errors
    /// A duration that is not a positive number of seconds, or a cap of zero.
    pub fn from_flags(
        header_timeout_s: f64,
        idle_timeout_s: f64,
        max_connections: usize,
        max_sessions: usize,
        session_idle_s: f64,
    ) -> Result<(Self, Vec<String>), String> {
        let secs = |v: f64, flag: &str| {
            Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("--{flag} must be a positive number of seconds, not {v}"))
        };
        if max_connections == 0 || max_sessions == 0 {
            return Err("--max-connections and --max-sessions must be at least 1".into());
        }
        let limits = Self {
            header_read_timeout: secs(header_timeout_s, "header-timeout-s")?,
            idle_timeout: secs(idle_timeout_s, "idle-timeout-s")?,
            max_connections,
            max_sessions,
            session_idle_timeout: secs(session_idle_s, "session-idle-s")?,
            ..Self::default()
        };
        let mut warnings = Vec::new();
        if limits.idle_timeout < SSE_KEEP_ALIVE + Duration::from_secs(5) {
            warnings.push(format!(
                "--idle-timeout-s {idle_timeout_s} leaves no margin over the {} s keep-alive of \
                 SSE streams: a long tool call may be cut off",
                SSE_KEEP_ALIVE.as_secs()
            ));
        }
        Ok((limits, warnings))
    }
}

/// rmcp's interval between keep-alive comments on SSE streams.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
            max_sessions: 64,
            session_idle_timeout: Duration::from_secs(1800),
            max_body_bytes: frame::DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// How the HTTP transport is exposed.
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// Bearer token clients must send; `None` only with `--no-auth` on loopback.
    pub token: Option<SecretString>,
    /// Browser origins allowed to call (`https://host:port`) besides the endpoint's own.
    pub allowed_origins: Vec<String>,
    /// Host names clients may use besides loopback and the listen address (`--allow-host`:
    /// the machine's name or address when listening on all interfaces).
    pub allowed_hosts: Vec<String>,
    /// Timeouts and caps.
    pub limits: HttpLimits,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Checks the exposure rules before binding.
///
/// # Errors
/// No token without `no_auth`; `no_auth` on a non-loopback address; a non-loopback address
/// without `allow_remote` (the endpoint drives the whole cluster and speaks plain HTTP).
pub fn validate_exposure(
    listen: &SocketAddr,
    has_token: bool,
    no_auth: bool,
    allow_remote: bool,
) -> Result<(), String> {
    if !has_token && !no_auth {
        return Err("the HTTP transport needs a bearer token: set PROXMOX_MANAGER_HTTP_TOKEN or pass --token-file FILE (or --no-auth, loopback only)".into());
    }
    if no_auth && !listen.ip().is_loopback() {
        return Err(format!(
            "--no-auth is only allowed on a loopback address, not {listen}; configure a token instead"
        ));
    }
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "refusing to listen on the non-loopback address {listen} without --allow-remote: \
             anyone who can reach it and learns the bearer token controls the cluster, and the \
             endpoint speaks plain HTTP (token and traffic unencrypted; put TLS in front). \
             Pass --allow-remote to accept that risk, or listen on 127.0.0.1"
        ));
    }
    Ok(())
}

struct Auth {
    digest: Option<[u8; 32]>,
}

async fn require_bearer(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let Some(expected) = auth.digest else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let ok = presented.is_some_and(|d| bool::from(d.as_slice().ct_eq(&expected)));
    if ok {
        return next.run(req).await;
    }
    tracing::warn!("rejected an HTTP request without a valid bearer token");
    let mut resp = (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"proxmox-manager\""),
    );
    resp
}

/// Origins that name the endpoint itself (`http://` + a loopback name or the listen address,
/// with the bound port): a browser sends one of these only for a page the endpoint served.
fn own_origins(bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    let mut origins = vec![
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://{bound}"),
    ];
    origins.sort();
    origins.dedup();
    origins
}

/// The axum app for an endpoint bound at `bound`: `/mcp` with auth, Host and Origin checks.
pub fn router(
    server: ProxmoxServer,
    opts: &HttpOptions,
    bound: SocketAddr,
    shutdown: CancellationToken,
) -> axum::Router {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    hosts.push(bound.ip().to_string());
    hosts.push(bound.to_string());
    hosts.extend(opts.allowed_hosts.iter().cloned());
    let mut origins = own_origins(bound);
    origins.extend(opts.allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_sse_keep_alive(Some(SSE_KEEP_ALIVE))
        .with_cancellation_token(shutdown.child_token());
    let sessions =
        CappedSessionManager::new(opts.limits.max_sessions, opts.limits.session_idle_timeout);
    let registry = sessions.registry();
    let config = config.with_max_request_body_bytes(opts.limits.max_body_bytes);
    let service = StreamableHttpService::new(move || Ok(server.clone()), sessions.into(), config);
    let auth = Arc::new(Auth {
        digest: opts
            .token
            .as_ref()
            .map(|t| Sha256::digest(t.expose_secret().trim().as_bytes()).into()),
    });
    let strict = Arc::new(Strict {
        registry,
        max_body: opts.limits.max_body_bytes,
    });
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(strict, strict_body))
        .layer(middleware::from_fn_with_state(auth, require_bearer))
}

struct Strict {
    registry: Arc<Registry>,
    max_body: usize,
}

fn rpc_error(status: StatusCode, e: &frame::FrameError) -> Response {
    let mut resp = (status, e.to_line()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// POST bodies get the same strict parsing as stdio lines (duplicate keys, depth, one value);
/// a new session beyond the cap with every session busy is refused here with a clear answer.
async fn strict_body(State(strict): State<Arc<Strict>>, req: Request, next: Next) -> Response {
    // Only JSON bodies are ours to check; rmcp answers any other content type with 415.
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if req.method() != axum::http::Method::POST || !json {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, strict.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let e = frame::too_long(b"", strict.max_body);
            return rpc_error(StatusCode::PAYLOAD_TOO_LARGE, &e);
        }
    };
    let value = match frame::check_client_message(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(code = e.code, "refused an HTTP POST body: {}", e.message);
            return rpc_error(StatusCode::BAD_REQUEST, &e);
        }
    };
    if !parts.headers.contains_key("mcp-session-id") && strict.registry.full_and_busy() {
        let e = frame::FrameError {
            code: rmcp::model::ErrorCode::INTERNAL_ERROR.0,
            message: format!(
                "too many MCP sessions: all {} are busy; close unused sessions (HTTP DELETE \
                 /mcp with their Mcp-Session-Id), retry when a request finishes, or raise \
                 --max-sessions",
                strict.registry.max()
            ),
            id: value.get("id").cloned().unwrap_or(serde_json::Value::Null),
        };
        let mut resp = rpc_error(StatusCode::SERVICE_UNAVAILABLE, &e);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return resp;
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// Serves until `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound or the server fails.
pub async fn serve(
    server: ProxmoxServer,
    opts: HttpOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, auth = opts.token.is_some(), "MCP Streamable HTTP listening on http://{addr}/mcp");
    eprintln!("proxmox-manager: MCP endpoint http://{addr}/mcp");
    let app = router(server, &opts, addr, shutdown.clone());
    serve_connections(listener, app, opts.limits, shutdown).await;
    Ok(())
}

/// A socket that records when a byte last went through it.
struct Watched<T> {
    io: T,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> Watched<T> {
    fn mark(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.mark();
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.mark();
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Resolves once `last` (ms since `epoch`) is `idle` in the past.
async fn idle_expired(last: Arc<AtomicU64>, epoch: Instant, idle: Duration) {
    loop {
        let since = Duration::from_millis(last.load(Ordering::Relaxed));
        let deadline = epoch + since + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n\
Content-Type: text/plain\r\nContent-Length: 60\r\n\r\n\
too many open connections to proxmox-manager; retry shortly\n";

/// The accept loop: one task per connection, bounded by `max_connections`, each with the
/// header-read and idle timeouts; ends (gracefully closing connections) on `shutdown`.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: say so, and give clients a moment to
                // close before trying again, without spinning.
                tracing::warn!("accepting an HTTP connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                %peer,
                max = limits.max_connections,
                "refused an HTTP connection: too many open connections"
            );
            // Best effort and never waiting: a client that does not read just sees the close.
            let _ = stream.try_write(BUSY);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let epoch = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let io = Watched {
            io: stream,
            last: last.clone(),
            epoch,
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                }
                () = idle_expired(last, epoch, limits.idle_timeout) => {
                    tracing::debug!(%peer, "closed an idle HTTP connection");
                }
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    // Every connection task holds a slot: all slots back means all connections closed.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
}

#[cfg(test)]
mod exposure_tests {
    use super::{HttpLimits, validate_exposure};

    #[test]
    fn limits_from_flags_are_checked() {
        let (l, w) = HttpLimits::from_flags(10.0, 300.0, 256, 64, 1800.0).expect("defaults");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(l.header_read_timeout, std::time::Duration::from_secs(10));
        for bad in [0.0, -1.0, f64::NAN] {
            let e = HttpLimits::from_flags(bad, 300.0, 256, 64, 1800.0).expect_err("refused");
            assert!(e.contains("--header-timeout-s"), "{e}");
        }
        assert!(HttpLimits::from_flags(10.0, 300.0, 0, 64, 1800.0).is_err());
        assert!(HttpLimits::from_flags(10.0, 300.0, 1, 0, 1800.0).is_err());
        let (_, w) = HttpLimits::from_flags(10.0, 5.0, 256, 64, 1800.0).expect("allowed");
        assert!(w[0].contains("keep-alive"), "{w:?}");
    }

    #[test]
    fn loopback_and_remote_rules() {
        let lo: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let lo6: std::net::SocketAddr = "[::1]:0".parse().expect("addr");
        let any: std::net::SocketAddr = "0.0.0.0:0".parse().expect("addr");
        assert!(validate_exposure(&lo, true, false, false).is_ok());
        assert!(validate_exposure(&lo6, true, false, false).is_ok());
        assert!(validate_exposure(&lo, false, true, false).is_ok());
        assert!(validate_exposure(&lo, false, false, false).is_err());
        let err = validate_exposure(&any, true, false, false).expect_err("needs --allow-remote");
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(validate_exposure(&any, true, false, true).is_ok());
        assert!(
            validate_exposure(&any, false, false, true).is_err(),
            "still needs a token"
        );
        assert!(
            validate_exposure(&any, false, true, true).is_err(),
            "--no-auth stays loopback"
        );
    }
}

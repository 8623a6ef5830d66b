//! Streamable HTTP transport: `/mcp` behind a bearer token, loopback by default.
//!
//! Why each guard: the token stops other local users and browsers from driving the cluster;
//! rmcp's Host allow-list stops DNS rebinding; the Origin check stops a web page in the user's
//! browser from posting to the loopback port: only the endpoint's own origin (a page it served,
//! which it serves none of) and the `--allow-origin` values are accepted.
//! Tokens are compared in constant time over their SHA-256 digests, so neither content nor
//! length leaks through timing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::server::ProxmoxServer;

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
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
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
        .with_cancellation_token(shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    let auth = Arc::new(Auth {
        digest: opts
            .token
            .as_ref()
            .map(|t| Sha256::digest(t.expose_secret().trim().as_bytes()).into()),
    });
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(auth, require_bearer))
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
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod exposure_tests {
    use super::validate_exposure;

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

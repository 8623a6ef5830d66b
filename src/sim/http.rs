//! The HTTPS front: accepts TLS connections, decodes requests the way pve-http-server does
//! (form bodies split on `&` and `;` with `+` as space, JSON bodies, query overriding body,
//! semantics item 9), authenticates, and renders PVE's envelope and status lines: error reason
//! phrase = first line of the message, `{"data":null,"message":"...\n"}` bodies, 401 with an
//! empty body after a 3 s (× time scale) delay, and `Connection: close` on every status ≥ 400.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::api;
use super::state::Shared;

/// What a handler returns on success: `data`, and `total` for paged lists.
pub struct Reply {
    pub data: Value,
    pub total: Option<usize>,
    /// `data` already serialized (then `data` is null): large listings write their rows
    /// straight into the body instead of building a `Value` tree first.
    pub raw: Option<String>,
    /// A file instead of JSON (a `download_allowed` endpoint's `{download => {...}}`).
    pub download: Option<Download>,
}

/// A file an endpoint sends as itself, with the headers PVE's API server sends it with.
pub struct Download {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// `Content-Encoding` (`gzip` when `body` is compressed).
    pub encoding: Option<&'static str>,
    /// The `Content-Disposition` attachment's file name.
    pub filename: String,
}

impl Reply {
    pub fn data(data: Value) -> Reply {
        Reply {
            data,
            total: None,
            raw: None,
            download: None,
        }
    }
    /// A reply whose `data` is the JSON text `json`.
    pub fn raw(json: String) -> Reply {
        Reply {
            data: Value::Null,
            total: None,
            raw: Some(json),
            download: None,
        }
    }
}

/// Errors rendered the way PVE renders them.
#[derive(Debug)]
pub enum ApiError {
    /// 400 "Parameter verification failed." with per-parameter errors.
    Param(BTreeMap<String, String>),
    /// 403 "Permission check failed (path, priv)".
    Forbidden(String),
    /// 500 from a plain `die`.
    Server(String),
    /// 501 "Method 'GET /x' not implemented" and friends.
    NotImplemented(String),
    /// Node unreachable through the proxy (595).
    NoRoute,
}

impl ApiError {
    pub fn param(name: &str, msg: impl Into<String>) -> ApiError {
        ApiError::Param(BTreeMap::from([(name.to_string(), msg.into())]))
    }
    pub fn perm(path: &str, privs: &str) -> ApiError {
        ApiError::Forbidden(format!("Permission check failed ({path}, {privs})"))
    }
}

pub type ApiResult = Result<Reply, ApiError>;

/// A decoded request as handlers see it.
pub struct Req {
    pub method: String,
    /// Path relative to `/api2/json`, percent-decoded, without trailing slash.
    pub path: String,
    pub params: BTreeMap<String, String>,
    pub authid: String,
    /// The file of a multipart upload (`POST .../upload`).
    pub upload: Option<super::multipart::Upload>,
}

/// Serves TLS connections until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    // aws-lc seeds its random generator from CPU jitter at the first handshake (some 25 ms of
    // CPU): done now, beside start-up, so the first request does not wait for it
    tokio::task::spawn_blocking(|| {
        let mut seed = [0u8; 16];
        let _ = rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut seed);
    });
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((tcp, _peer)) = accepted else { continue };
        // answers go out at once, not after a delayed ACK; a failure only costs latency
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("sim connection: TCP_NODELAY not set: {e}");
        }
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
            // keep-alive: an idle connection stays open for the client's next request (no
            // idle timeout here; the client's pool decides when to drop it)
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = conn => if let Err(e) = r { tracing::debug!("sim connection ended: {e}") },
            }
        });
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(handle_inner(shared, req).await)
}

async fn handle_inner(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let method = req.method().as_str().to_string();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "DELETE") {
        return error_response(501, &format!("method '{method}' not available"), None);
    }
    let raw_path = req.uri().path().to_string();
    let path = percent_encoding::percent_decode_str(&raw_path)
        .decode_utf8_lossy()
        .to_string();
    // `/api2/json` and the ExtJS flavour `/api2/extjs` (HTTP 200, `success` in the body)
    let (rel, extjs) = if let Some(r) = path.strip_prefix("/api2/json") {
        (r, false)
    } else if let Some(r) = path.strip_prefix("/api2/extjs") {
        (r, true)
    } else {
        return error_response(501, "no such uri", None);
    };
    let rel = match rel.trim_end_matches('/') {
        "" => "/".to_string(),
        r => r.to_string(),
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let auth_header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ctype = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let has_len = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0);

    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let uses_token = auth_header
        .as_deref()
        .is_some_and(|h| h.trim_start().starts_with("PVEAPIToken"));
    let ticket = if uses_token {
        None
    } else {
        super::ticket::from_headers(header("cookie").as_deref(), auth_header.as_deref())
    };
    let max_age = shared.scaled(super::ticket::LIFETIME_SECS);
    // the login itself needs no authentication
    let login = method == "POST" && rel == "/access/ticket" && !uses_token;
    // `user => 'world'` reads answer without credentials too
    let world = method == "GET"
        && matches!(rel.as_str(), "/access/domains" | "/access/ticket")
        && auth_header.is_none()
        && ticket.is_none();
    let auth = if login || world {
        Ok(String::new())
    } else if let Some(t) = &ticket {
        let csrf = header("csrfpreventiontoken");
        let st = shared.read();
        match st.access.tickets.user(t, max_age) {
            None => Err(super::auth::AuthFailure::Failure),
            // writes with a ticket need the CSRF prevention token (PVE::APIServer::AnyEvent)
            Some(u)
                if method != "GET"
                    && !csrf
                        .as_deref()
                        .is_some_and(|c| st.access.tickets.csrf_ok(u, c)) =>
            {
                Err(super::auth::AuthFailure::Csrf)
            }
            Some(u) => Ok(u.to_string()),
        }
    } else {
        shared.read().access.authenticate(auth_header.as_deref())
    };
    let authid = match auth {
        Ok(id) => id,
        Err(f) => {
            // PVE delays every failed authentication by 3 seconds
            tokio::time::sleep(shared.scaled(3.0)).await;
            return status_only(401, f.reason());
        }
    };
    if uses_token && token_forbidden(&method, &rel) {
        // allowtoken=0 endpoints fail inside authentication, so they get its delay and no body
        tokio::time::sleep(shared.scaled(3.0)).await;
        return status_only(
            403,
            &format!("URI '{rel}' not available with API token, need proper ticket."),
        );
    }
    if has_len && !matches!(method.as_str(), "POST" | "PUT") {
        return error_response(
            501,
            &format!("Unexpected content for method '{method}'"),
            None,
        );
    }
    let ct = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let upload_req =
        method == "POST" && ct == "multipart/form-data" && super::multipart::is_upload_path(&rel);
    let limit = if upload_req {
        super::multipart::MAX_UPLOAD + 64 * 1024
    } else {
        64 * 1024
    };
    let body = match axum::body::to_bytes(Body::new(req.into_body()), limit).await {
        Ok(b) => b,
        Err(_) => return error_response(501, "for data too large", None),
    };
    let mut params = BTreeMap::new();
    let mut upload = None;
    if upload_req {
        let parsed = super::multipart::boundary(&ctype)
            .and_then(|b| super::multipart::parse(&body, &b, &mut params));
        match parsed {
            Some(u) => upload = u,
            None => return error_response(400, "malformed multipart/form-data body", None),
        }
    } else if !body.is_empty() {
        let ct = ct.as_str();
        if !ct.is_empty() && ct != "application/json" && ct != "application/x-www-form-urlencoded" {
            return error_response(
                506,
                &format!("upload 'Content-Type '{ctype}' not implemented"),
                None,
            );
        }
        if ct == "application/json" {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => {
                    for (k, v) in m {
                        params.insert(k, json_scalar(&v));
                    }
                }
                _ => return error_response(400, "malformed JSON body", None),
            }
        } else {
            decode_form(&String::from_utf8_lossy(&body), &mut params);
        }
    }
    decode_form(&query, &mut params);
    if login {
        let user = params.get("username").cloned().unwrap_or_default();
        let pass = params.get("password").cloned().unwrap_or_default();
        let data = {
            let mut st = shared.lock();
            let data = super::ticket::login(&mut st.access, &user, &pass, max_age);
            if let Some(d) = &data {
                let cluster = st.cluster.clone();
                let mut d = d.clone();
                d["clustername"] = json!(cluster);
                Some(d)
            } else {
                None
            }
        };
        return match data {
            Some(d) => render_ok(Reply::data(d), extjs),
            None => {
                tokio::time::sleep(shared.scaled(3.0)).await;
                error_response(401, "authentication failure", None)
            }
        };
    }
    let r = Req {
        method: method.clone(),
        path: rel,
        params,
        authid,
        upload,
    };
    let result = api::dispatch(&shared, r).await;
    match result {
        Ok(reply) => render_ok(reply, extjs),
        Err(e) if extjs => render_extjs_error(e),
        Err(e) => render_error(e),
    }
}

fn render_ok(reply: Reply, extjs: bool) -> Response<Body> {
    if let Some(d) = reply.download {
        let mut resp = Response::new(Body::from(d.body));
        finish(&mut resp, 200, None);
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(d.content_type),
        );
        if let Some(e) = d.encoding {
            h.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static(e));
        }
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", d.filename)) {
            h.insert(http::header::CONTENT_DISPOSITION, v);
        }
        return resp;
    }
    if let Some(raw) = reply.raw {
        // the same object `json!` builds below, keys in the same (sorted) order; wrapped in
        // place (the data can be megabytes: a fresh buffer cost a copy and its page faults)
        let mut body = raw;
        body.insert_str(0, "{\"data\":");
        if extjs {
            body.push_str(",\"success\":1");
        }
        if let Some(t) = reply.total {
            body.push_str(",\"total\":");
            body.push_str(itoa::Buffer::new().format(t));
        }
        body.push('}');
        return text_response(200, None, body);
    }
    let mut body = json!({ "data": reply.data });
    if extjs {
        body["success"] = json!(1);
    }
    if let Some(t) = reply.total {
        body["total"] = json!(t);
    }
    json_response(200, None, &body)
}

/// `/api2/extjs` errors (PVE::APIServer::Formatter::Standard's extjs): HTTP 200 so ExtJS forms
/// can read them, with `success: 0`, the message, the parameter errors and the status.
fn render_extjs_error(e: ApiError) -> Response<Body> {
    let (status, message, errors) = match e {
        ApiError::Param(errors) => (
            400,
            "Parameter verification failed.".to_string(),
            Some(errors),
        ),
        ApiError::Forbidden(m) => (403, m, None),
        ApiError::Server(m) => (500, m, None),
        ApiError::NotImplemented(m) => (501, m, None),
        ApiError::NoRoute => (595, "No route to host".to_string(), None),
    };
    let msg = message.trim_end_matches('\n');
    let mut body =
        json!({ "data": null, "success": 0, "status": status, "message": format!("{msg}\n") });
    if let Some(e) = errors {
        body["errors"] = json!(e);
    }
    json_response(200, None, &body)
}

/// The five endpoints the schema marks `allowtoken: 0` (semantics item 13).
fn token_forbidden(method: &str, rel: &str) -> bool {
    let segs: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        (method, segs.as_slice()),
        ("POST", ["access", "ticket"])
            | ("PUT", ["access", "password"])
            | ("POST", ["access", "tfa", _])
            | ("PUT" | "DELETE", ["access", "tfa", _, _])
    )
}

fn json_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            if *b {
                "1".into()
            } else {
                "0".into()
            }
        }
        other => other.to_string(),
    }
}

/// pve-http-server's form decoder: pairs split on `&` and `;`, `+` is a space.
pub fn decode_form(s: &str, out: &mut BTreeMap<String, String>) {
    for pair in s.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |x: &str| {
            percent_encoding::percent_decode_str(&x.replace('+', " "))
                .decode_utf8_lossy()
                .to_string()
        };
        out.insert(dec(k), dec(v));
    }
}

pub fn render_error(e: ApiError) -> Response<Body> {
    match e {
        ApiError::Param(errors) => {
            error_response(400, "Parameter verification failed.", Some(errors))
        }
        ApiError::Forbidden(m) => error_response(403, &m, None),
        ApiError::Server(m) => error_response(500, &m, None),
        ApiError::NotImplemented(m) => error_response(501, &m, None),
        ApiError::NoRoute => error_response(595, "No route to host", None),
    }
}

fn error_response(
    status: u16,
    message: &str,
    errors: Option<BTreeMap<String, String>>,
) -> Response<Body> {
    let msg = message.trim_end_matches('\n');
    let mut body = json!({ "data": null, "message": format!("{msg}\n") });
    if let Some(e) = errors {
        body["errors"] = json!(e);
    }
    let reason = msg.lines().next().unwrap_or("").to_string();
    json_response(status, Some(reason), &body)
}

fn json_response(status: u16, reason: Option<String>, body: &Value) -> Response<Body> {
    text_response(status, reason, body.to_string())
}

fn text_response(status: u16, reason: Option<String>, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    finish(&mut resp, status, reason);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}

fn status_only(status: u16, reason: &str) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    finish(&mut resp, status, Some(reason.to_string()));
    resp
}

fn finish(resp: &mut Response<Body>, status: u16, reason: Option<String>) {
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(r) = reason.and_then(|r| ReasonPhrase::try_from(r.into_bytes()).ok()) {
        resp.extensions_mut().insert(r);
    }
    if status >= 400 {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=0"),
    );
    resp.headers_mut().insert(
        http::header::SERVER,
        HeaderValue::from_static("pve-api-daemon/3.0"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_splits_on_semicolon_and_plus() {
        let mut m = BTreeMap::new();
        decode_form("tags=a;b&size=+10G&x=%3B%2B", &mut m);
        assert_eq!(m.get("tags").map(String::as_str), Some("a"));
        assert!(m.contains_key("b"));
        assert_eq!(m.get("size").map(String::as_str), Some(" 10G"));
        assert_eq!(m.get("x").map(String::as_str), Some(";+"));
    }
}

//! The request core: one [`Client`] (cheap to clone) that sends token-authenticated requests,
//! decodes PVE's envelope, retries idempotent GETs with capped backoff, and fails over to the
//! next endpoint only when a connection could not be made (the request was never sent).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;

use super::envelope::{self, Reply, RequestInfo};
use super::error::Error;
use super::tls::{self, TlsMode};
use super::token::ApiToken;

/// First retry delay for GETs; doubled per attempt up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Connect phase limit, so an unreachable endpoint is a [`Error::Connect`] (never sent) and
/// failover happens well before the whole request times out.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection stays in the pool: well beyond the seconds between
/// the calls of a conversation, so they do not pay a new TCP and TLS handshake each.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept per endpoint: as many as the widest burst of reads a tool sends (16
/// task logs at once in `backup_jobs`), so a burst's next wave never pays new handshakes — a
/// cap of 4 or 8 made a warm `backup_jobs` at 10,000 guests take 2-3 times as long. It bounds
/// what the pool holds when `limits.max_parallel` allows more writes at once: an idle
/// connection keeps the read buffers its largest answer grew (up to some 400 KB each).
const POOL_IDLE_PER_ENDPOINT: usize = 16;

/// What answers a [`Client::with_transport`] client's requests: a status and a body in PVE's
/// envelope, as a node would send them.
pub trait Transport: Send + Sync {
    fn send<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
        params: &'a [(&'a str, String)],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Vec<u8>)> + Send + 'a>>;
}

/// How to reach and authenticate to a cluster.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `https://host:port` of cluster nodes, tried in order when a connection fails.
    /// (`http://` is accepted for tests against local fakes; PVE itself only serves HTTPS.)
    pub endpoints: Vec<String>,
    pub tls: TlsMode,
    pub token: ApiToken,
    /// Per request (connect + send + whole response). Default 30 s.
    pub timeout: Duration,
    /// Extra attempts for GETs after a retryable failure. Default 3. Never used for writes.
    pub max_retries: u32,
}

impl ClientOptions {
    /// Options with the defaults: system roots, 30 s timeout, 3 GET retries.
    pub fn new(endpoints: Vec<String>, token: ApiToken) -> ClientOptions {
        ClientOptions {
            endpoints,
            tls: TlsMode::SystemRoots,
            token,
            timeout: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

/// A PVE API client. Clone it freely: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connection pool, replaced by [`Client::release_idle_connections`].
    http: std::sync::RwLock<reqwest::Client>,
    /// In place of the network, when set: `ops` decisions tested in memory (see [`Transport`]).
    transport: Option<Arc<dyn Transport>>,
    endpoints: Vec<String>,
    tls: TlsMode,
    token: ApiToken,
    timeout: Duration,
    max_retries: u32,
    /// Index of the endpoint that last answered; tried first next time.
    preferred: AtomicUsize,
    /// Where each guest lives (see [`super::locate`]).
    guests: super::locate::GuestIndex,
    /// Requests other than GET sent so far (see [`Client::write_generation`]).
    writes: AtomicU64,
}

/// The HTTP client of a [`Client`]: its pool, keep-alive and TLS settings.
fn http_client(tls: &TlsMode, timeout: Duration) -> Result<reqwest::Client, Error> {
    let builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
        .redirect(reqwest::redirect::Policy::none())
        // A connection the server closed while idle is dropped from the pool as soon as
        // its close arrives (hyper watches pooled connections), and a request that found
        // it closed before sending is resent by hyper. What remains is a close racing the
        // request: a GET is then resent at once on a fresh connection (see `execute`), a
        // POST/PUT/DELETE never is (it may have been applied).
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_IDLE_PER_ENDPOINT)
        .tcp_nodelay(true)
        .user_agent(concat!("proxmox-manager/", env!("CARGO_PKG_VERSION")));
    let builder = tls::configure(builder, tls)?;
    builder
        .build()
        .map_err(|e| Error::invalid(format!("cannot build the http client: {e}")))
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("tls", &self.inner.tls)
            .field("token", &self.inner.token)
            .field("timeout", &self.inner.timeout)
            .field("max_retries", &self.inner.max_retries)
            .finish()
    }
}

impl Client {
    /// Builds the client. Nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no endpoints, a malformed endpoint, an unreadable CA file or
    /// a zero timeout.
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        if opts.endpoints.is_empty() {
            return Err(Error::invalid(
                "no pve api endpoint given; list at least one node as https://host:8006",
            ));
        }
        let mut endpoints = Vec::with_capacity(opts.endpoints.len());
        for e in &opts.endpoints {
            let e = e.trim().trim_end_matches('/');
            let url = reqwest::Url::parse(e).map_err(|err| {
                Error::invalid(format!(
                    "invalid pve api endpoint {e:?}: {err}; expected https://host:port"
                ))
            })?;
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Err(Error::invalid(format!(
                    "invalid pve api endpoint {e:?}; expected https://host:port"
                )));
            }
            endpoints.push(e.to_owned());
        }
        if opts.timeout.is_zero() {
            return Err(Error::invalid("the api timeout must be greater than zero"));
        }
        let http = http_client(&opts.tls, opts.timeout)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http: std::sync::RwLock::new(http),
                transport: None,
                endpoints,
                tls: opts.tls,
                token: opts.token,
                timeout: opts.timeout,
                max_retries: opts.max_retries,
                preferred: AtomicUsize::new(0),
                guests: Default::default(),
                writes: AtomicU64::new(0),
            }),
        })
    }

    /// Closes the idle connections: their buffers (hyper keeps each connection's read buffer
    /// at the size its largest answer grew it to, up to 400 KiB) go back to the allocator. The
    /// server calls it once it has been idle a while (`server::memory`); the next request
    /// connects afresh. Requests in flight keep the connections they use until they end. If
    /// the HTTP client cannot be built again (a CA file removed since), the old one is kept.
    pub fn release_idle_connections(&self) {
        if self.inner.transport.is_some() {
            return;
        }
        match http_client(&self.inner.tls, self.inner.timeout) {
            Ok(fresh) => {
                // The old pool is dropped (its connections closed) after the lock is let go.
                let old = std::mem::replace(
                    &mut *self
                        .inner
                        .http
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    fresh,
                );
                drop(old);
            }
            Err(e) => tracing::warn!(error = %e, "idle connections kept"),
        }
    }

    /// The HTTP client of the next request (a handle on the current pool).
    fn http(&self) -> reqwest::Client {
        self.inner
            .http
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A client whose requests go to `transport` instead of the network: everything above
    /// the wire (envelope decoding, errors, retries of GETs, typed methods) runs as it does
    /// against a node. For unit tests of operations with paused time and no HTTP.
    pub fn with_transport(token: ApiToken, transport: Arc<dyn Transport>) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: std::sync::RwLock::new(reqwest::Client::new()),
                transport: Some(transport),
                endpoints: vec!["memory://pve".into()],
                tls: TlsMode::SystemRoots,
                token,
                timeout: Duration::from_secs(30),
                max_retries: 3,
                preferred: AtomicUsize::new(0),
                guests: Default::default(),
                writes: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn guest_index(&self) -> &super::locate::GuestIndex {
        &self.inner.guests
    }

    /// Counts the POST, PUT and DELETE requests this client has sent (or tried to): a cached
    /// view of the cluster taken at one value is outdated by our own writes at another.
    pub fn write_generation(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// The token id this client authenticates as.
    pub fn token_id(&self) -> &str {
        self.inner.token.id()
    }

    /// The configured endpoints, normalized (no trailing `/`).
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// `GET path?query`, returning `data`. Retried on retryable failures.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        self.call(Method::GET, path, query).await
    }

    /// `GET path?query` of a list, decoded leniently: an unexpected value in a row's field
    /// becomes a warning (the field ignored), a row that cannot be read at all is skipped with
    /// a warning. Only a reply that is not a list, or a failed request, is an error.
    pub async fn get_list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Vec<T>, Vec<String>), Error> {
        let reply = self.execute(Method::GET, path, query).await?;
        let (rows, warnings) = envelope::decode_list("GET", path, &reply)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "lenient decoding");
        }
        Ok((rows, warnings))
    }

    /// `GET path?query` of one object, decoded like [`Client::get_list`] decodes a row.
    pub async fn get_lenient<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, Vec<String>), Error> {
        let reply = self.execute(Method::GET, path, query).await?;
        let (v, warnings) = envelope::decode_one("GET", path, &reply)?;
        for w in &warnings {
            tracing::warn!(warning = %w, "lenient decoding");
        }
        Ok((v, warnings))
    }

    /// `POST path` with a form body, returning `data`. Never retried once possibly sent.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<T, Error> {
        self.call(Method::POST, path, form).await
    }

    /// `PUT path` with a form body, returning `data`. Never retried once possibly sent.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<T, Error> {
        self.call(Method::PUT, path, form).await
    }

    /// `DELETE path?query` (PVE rejects a DELETE body), returning `data`.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        self.call(Method::DELETE, path, query).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, Error> {
        let reply = self.execute(method.clone(), path, params).await?;
        envelope::decode(method.as_str(), path, &reply)
    }

    /// Sends with GET retries; returns the whole envelope (for `total`).
    pub(crate) async fn execute(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Reply, Error> {
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(Error::invalid(format!(
                "invalid api path {path:?}: it must start with '/' and carry parameters separately"
            )));
        }
        if method != Method::GET {
            self.inner.writes.fetch_add(1, Ordering::Relaxed);
        }
        let mut delay = BACKOFF_START;
        let mut attempt = 0u32;
        loop {
            match self.send_with_failover(&method, path, params).await {
                Err(e)
                    if method == Method::GET
                        && e.is_retryable()
                        && attempt < self.inner.max_retries =>
                {
                    attempt += 1;
                    tracing::debug!(%method, path, attempt, error = %e, "retrying idempotent request");
                    if attempt == 1 && matches!(e, Error::Transport { .. }) {
                        // Most likely a pooled keep-alive connection the server closed as we
                        // sent: resend at once (on a fresh connection), no backoff needed.
                        continue;
                    }
                    tokio::time::sleep(delay).await;
                    delay = next_backoff(delay);
                }
                other => return other,
            }
        }
    }

    async fn send_with_failover(
        &self,
        method: &Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Reply, Error> {
        let n = self.inner.endpoints.len();
        let start = self.inner.preferred.load(Ordering::Relaxed) % n;
        let mut failures: Vec<Error> = Vec::new();
        for k in 0..n {
            let idx = (start + k) % n;
            match self.send_once(idx, method, path, params).await {
                Err(e @ Error::Connect { .. }) => {
                    tracing::info!(endpoint = %self.inner.endpoints[idx], error = %e, "endpoint unreachable, trying the next one");
                    failures.push(e);
                }
                other => {
                    if other.is_ok() {
                        self.inner.preferred.store(idx, Ordering::Relaxed);
                    }
                    return other;
                }
            }
        }
        Err(combine_connect_failures(failures))
    }

    async fn send_once(
        &self,
        idx: usize,
        method: &Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Reply, Error> {
        let endpoint = &self.inner.endpoints[idx];
        if let Some(t) = &self.inner.transport {
            let info = RequestInfo {
                method: method.as_str(),
                path,
                endpoint,
            };
            let (status, body) = t.send(method.as_str(), path, params).await;
            return envelope::decode_reply(
                &info,
                status,
                None,
                envelope::BodyKind::default(),
                body.into(),
            );
        }
        let mut url = format!("{endpoint}/api2/json{path}");
        let with_body = matches!(*method, Method::POST | Method::PUT);
        let encoded = encode_form(params);
        if !with_body && !encoded.is_empty() {
            url.push('?');
            url.push_str(&encoded);
        }
        let mut req = self
            .http()
            .request(method.clone(), &url)
            .timeout(self.inner.timeout)
            .header(AUTHORIZATION, self.inner.token.header_value()?)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if with_body {
            req = req
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                )
                .body(encoded);
        }
        let info = RequestInfo {
            method: method.as_str(),
            path,
            endpoint,
        };
        tracing::debug!(%method, path, endpoint = %endpoint, "pve request");
        let resp = req
            .send()
            .await
            .map_err(|e| self.map_send_error(&e, &info))?;
        let status = resp.status();
        let reason = reason_phrase(&resp);
        let kind = envelope::BodyKind::of(resp.headers());
        if status.is_success() && kind.is_file() {
            // A file (a task log's download) is kept in the pieces it arrives in: it is read
            // a piece at a time, and joining a megabyte first only copies it.
            let mut resp = resp;
            let mut pieces = Vec::new();
            while let Some(piece) = resp
                .chunk()
                .await
                .map_err(|e| self.map_send_error(&e, &info))?
            {
                pieces.push(piece);
            }
            tracing::debug!(%method, path, status = status.as_u16(), "pve response (a file)");
            return Ok(envelope::Reply::file_of(pieces, kind));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.map_send_error(&e, &info))?;
        tracing::debug!(%method, path, status = status.as_u16(), "pve response");
        envelope::decode_reply(&info, status.as_u16(), reason.as_deref(), kind, body)
    }

    /// `POST path` with a multipart body: the form fields, then `local` streamed as the part
    /// named `filename` (how the PVE GUI uploads). Sent once, to the preferred endpoint, with
    /// `timeout` for the whole transfer; never retried.
    pub(crate) async fn post_file<T: DeserializeOwned>(
        &self,
        path: &str,
        fields: &[(&str, String)],
        local: &std::path::Path,
        timeout: Duration,
    ) -> Result<T, Error> {
        let file = tokio::fs::File::open(local).await.map_err(|e| {
            Error::invalid(format!("cannot read {} to upload it: {e}", local.display()))
        })?;
        let len = file
            .metadata()
            .await
            .map_err(|e| Error::invalid(format!("cannot stat {}: {e}", local.display())))?
            .len();
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".into());
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.clone());
        }
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(name)
            .mime_str("application/octet-stream")
            .map_err(|e| Error::invalid(format!("multipart: {e}")))?;
        form = form.part("filename", part);
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        let idx = self.inner.preferred.load(Ordering::Relaxed) % self.inner.endpoints.len();
        let endpoint = &self.inner.endpoints[idx];
        let info = RequestInfo {
            method: "POST",
            path,
            endpoint,
        };
        let resp = self
            .http()
            .post(format!("{endpoint}/api2/json{path}"))
            .timeout(timeout)
            .header(AUTHORIZATION, self.inner.token.header_value()?)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .multipart(form)
            .send()
            .await
            .map_err(|e| self.map_send_error(&e, &info))?;
        let status = resp.status();
        let reason = reason_phrase(&resp);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.map_send_error(&e, &info))?;
        let reply = envelope::decode_reply(
            &info,
            status.as_u16(),
            reason.as_deref(),
            envelope::BodyKind::default(),
            bytes,
        )?;
        envelope::decode("POST", path, &reply)
    }

    fn map_send_error(&self, err: &reqwest::Error, info: &RequestInfo<'_>) -> Error {
        if let Some(tls_err) = tls::classify(err, info.endpoint, &self.inner.tls) {
            return tls_err;
        }
        if err.is_connect() {
            return Error::Connect {
                endpoint: info.endpoint.to_owned(),
                reason: error_chain(err),
            };
        }
        if err.is_timeout() {
            return Error::Timeout {
                method: info.method.to_owned(),
                path: info.path.to_owned(),
                endpoint: info.endpoint.to_owned(),
                timeout: self.inner.timeout,
            };
        }
        Error::Transport {
            method: info.method.to_owned(),
            path: info.path.to_owned(),
            endpoint: info.endpoint.to_owned(),
            reason: error_chain(err),
        }
    }
}

/// The status line's reason phrase as sent (PVE puts its error message there), or the
/// standard one.
fn reason_phrase(resp: &reqwest::Response) -> Option<String> {
    resp.extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .and_then(|r| std::str::from_utf8(r.as_bytes()).ok().map(str::to_owned))
        .or_else(|| resp.status().canonical_reason().map(str::to_owned))
}

/// 200 ms, 400 ms, 800 ms, 1.6 s, then 2 s for every further GET retry.
fn next_backoff(delay: Duration) -> Duration {
    (delay * 2).min(BACKOFF_MAX)
}

fn combine_connect_failures(mut failures: Vec<Error>) -> Error {
    let Some(last) = failures.pop() else {
        return Error::invalid("no pve api endpoint configured");
    };
    if failures.is_empty() {
        return last;
    }
    let Error::Connect { endpoint, reason } = last else {
        return last;
    };
    let others: Vec<String> = failures
        .iter()
        .filter_map(|f| match f {
            Error::Connect { endpoint, .. } => Some(endpoint.clone()),
            _ => None,
        })
        .collect();
    Error::Connect {
        endpoint,
        reason: format!("{reason} (also unreachable: {})", others.join(", ")),
    }
}

/// `application/x-www-form-urlencoded`, also used for query strings. `+` becomes `%2B` and `;`
/// becomes `%3B`: PVE's decoder turns `+` into a space and splits pairs on `;`.
pub(crate) fn encode_form(params: &[(&str, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// The error and its sources on one line, without URLs' query strings (none carry secrets).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Percent-encodes one URL path segment (node, storage, snapshot names).
pub fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, super::upid::SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn form_encoding_escapes_plus_and_semicolon() {
        let body = encode_form(&[("size", "+10G".to_owned()), ("tags", "a;b".to_owned())]);
        assert_eq!(body, "size=%2B10G&tags=a%3Bb");
        let body = encode_form(&[("description", "a b&c=d".to_owned())]);
        assert_eq!(body, "description=a+b%26c%3Dd");
    }

    #[test]
    fn debug_of_client_and_options_redacts() -> Result<(), Error> {
        let token = ApiToken::new(
            "root@pam!admin",
            SecretString::from("s3cr3t-value".to_owned()),
        )?;
        let opts = ClientOptions::new(vec!["https://127.0.0.1:8006/".to_owned()], token);
        let dbg = format!("{opts:?}");
        assert!(
            dbg.contains("[REDACTED]") && !dbg.contains("s3cr3t-value"),
            "{dbg}"
        );
        let client = Client::new(opts)?;
        let dbg = format!("{client:?}");
        assert!(
            dbg.contains("[REDACTED]") && !dbg.contains("s3cr3t-value"),
            "{dbg}"
        );
        assert_eq!(client.endpoints(), ["https://127.0.0.1:8006"]);
        Ok(())
    }

    #[test]
    fn rejects_bad_options() -> Result<(), Error> {
        let token = ApiToken::new("root@pam!admin", SecretString::from("x1".to_owned()))?;
        assert!(Client::new(ClientOptions::new(vec![], token.clone())).is_err());
        assert!(
            Client::new(ClientOptions::new(
                vec!["pve01:8006".to_owned()],
                token.clone()
            ))
            .is_err()
        );
        let mut opts = ClientOptions::new(vec!["https://a:8006".to_owned()], token);
        opts.tls = TlsMode::CaFile("/nonexistent/ca.pem".into());
        let e = Client::new(opts)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("cannot read the ca file /nonexistent/ca.pem"),
            "{e}"
        );
        Ok(())
    }

    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_and_futures_are_send() -> Result<(), Error> {
        assert_send_sync::<Client>();
        assert_send_sync::<Error>();
        assert_send_sync::<crate::pve::WaitOptions>();
        let token = ApiToken::new("root@pam!admin", SecretString::from("x1".to_owned()))?;
        let client = Client::new(ClientOptions::new(vec!["https://a:8006".to_owned()], token))?;
        let upid: crate::pve::Upid =
            "UPID:a:00000001:00000002:00000003:qmstart:100:root@pam:".parse()?;
        let fut = crate::pve::wait_task(&client, &upid, crate::pve::WaitOptions::default());
        assert_send(&fut);
        let fut = client.get::<serde_json::Value>("/version", &[]);
        assert_send(&fut);
        Ok(())
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut d = BACKOFF_START;
        let mut seen = vec![d.as_millis()];
        for _ in 0..5 {
            d = next_backoff(d);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("pve01"), "pve01");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}

//! HTTP transport limits: header-read and idle timeouts, the connection cap, the MCP session
//! cap, strict POST bodies, and the start-up warnings about the bearer token. Short limits are
//! set through the `serve` flags; waits poll with a deadline.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const TOKEN: &str = "limits-test-bearer-0123456789abcdef0123";

async fn start(extra: &[&str]) -> (Child, String) {
    common::http::start("127.0.0.1:0", extra, Some(TOKEN)).await
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string()
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"limits-test","version":"1"}}})
}

fn request(url: &str, session: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    req
}

async fn post_json(url: &str, body: &Value, session: Option<&str>) -> reqwest::Response {
    request(url, session)
        .body(body.to_string())
        .send()
        .await
        .expect("request sent")
}

/// A new MCP session: initialize, then the initialized notification. Returns its id.
async fn new_session(url: &str, id: u64) -> String {
    let r = post_json(url, &initialize(id), None).await;
    assert_eq!(r.status(), 200, "initialize");
    let sid = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session id")
        .to_string();
    let body = r.text().await.expect("body");
    assert!(body.contains("proxmox-manager"), "{body}");
    let r = post_json(
        url,
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        Some(&sid),
    )
    .await;
    assert!(r.status().is_success(), "initialized: {}", r.status());
    sid
}

async fn ping_status(url: &str, sid: &str) -> u16 {
    let r = post_json(
        url,
        &json!({"jsonrpc":"2.0","id":"p","method":"ping"}),
        Some(sid),
    )
    .await;
    let status = r.status().as_u16();
    let _ = r.text().await;
    status
}

/// Whether the server closes `s` (EOF or reset) within `within`, reading and discarding.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_time_out_and_do_not_lock_clients_out() {
    let (_child, url) = start(&["--header-timeout-s", "1"]).await;
    let a = addr(&url);
    // Many connections that never send a byte, or stop in the middle of their headers.
    let mut idle = Vec::new();
    for i in 0..60 {
        let mut s = TcpStream::connect(&a).await.expect("connect");
        if i % 2 == 0 {
            s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .expect("partial headers");
        }
        idle.push(s);
    }
    // A normal client is served meanwhile.
    let r = post_json(&url, &initialize(1), None).await;
    assert_eq!(r.status(), 200);
    // And each half-open connection is closed by the header-read timeout.
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(20)).await,
            "half-open connection {i} still open"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_connection_cap_a_client_is_refused_at_once_not_left_hanging() {
    // Every wait below is bounded, and so is the whole: a regression fails, never hangs.
    tokio::time::timeout(Duration::from_secs(120), connection_cap_case())
        .await
        .expect("the connection-cap case finished within 120 s");
}

async fn connection_cap_case() {
    let (_child, url) = start(&["--header-timeout-s", "1", "--max-connections", "4"]).await;
    let a = addr(&url);
    let connect = |a: String| async move {
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(a))
            .await
            .expect("connect within 5 s")
            .expect("connect")
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(a.clone()).await);
    }
    // The server accepts in its own time: poll until a fifth connection gets the 503.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = false;
    while Instant::now() < deadline && !refused {
        let mut s = connect(a.clone()).await;
        let mut text = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut text)).await;
        refused = text.starts_with("HTTP/1.1 503") && text.contains("too many open connections");
    }
    assert!(
        refused,
        "a connection beyond the cap is answered 503 and closed"
    );
    // Once the held connections time out, clients are served again.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let served = client
            .post(&url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize(2).to_string())
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if served {
            break;
        }
        assert!(Instant::now() < deadline, "served again after the timeout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_stalled_in_its_body_is_closed_by_the_idle_timeout() {
    let (_child, url) = start(&["--idle-timeout-s", "1"]).await;
    let mut s = TcpStream::connect(addr(&url)).await.expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: 500\r\n\r\n{{\"jsonrpc\""
    );
    s.write_all(head.as_bytes()).await.expect("write");
    assert!(
        closed_within(&mut s, Duration::from_secs(20)).await,
        "closed after the idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_beyond_the_cap_evict_the_least_recently_used_idle_one() {
    let (_child, url) = start(&["--max-sessions", "2"]).await;
    let first = new_session(&url, 1).await;
    let second = new_session(&url, 2).await;
    assert_eq!(ping_status(&url, &second).await, 200);
    assert_eq!(
        ping_status(&url, &first).await,
        200,
        "first is now the newer one used"
    );
    // `second` is now the least recently used: a third session evicts it.
    let third = new_session(&url, 3).await;
    assert_eq!(ping_status(&url, &second).await, 404, "evicted");
    assert_eq!(ping_status(&url, &first).await, 200);
    assert_eq!(ping_status(&url, &third).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_expires_and_frees_its_slot() {
    let (_child, url) = start(&["--session-idle-s", "0.5", "--max-sessions", "1"]).await;
    let sid = new_session(&url, 1).await;
    // Each ping is activity, so look less often than the idle timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if ping_status(&url, &sid).await == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "session {sid} never expired");
    }
    // Its slot is free: with a cap of one, a new session is served.
    let again = new_session(&url, 2).await;
    assert_eq!(ping_status(&url, &again).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_session_is_refused_when_every_session_is_busy() {
    let (_child, url) = start(&["--max-sessions", "1"]).await;
    let sid = new_session(&url, 1).await;
    // An open GET stream keeps the session busy.
    let stream = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("GET stream");
    assert_eq!(stream.status(), 200);
    let r = post_json(&url, &initialize(7), None).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("JSON-RPC error");
    assert_eq!(body["id"], 7, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("too many MCP sessions") && msg.contains("--max-sessions"),
        "{body}"
    );
    // Closing the stream makes the session idle: the next one evicts it.
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = post_json(&url, &initialize(8), None).await;
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "served once the stream closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn post_bodies_are_parsed_as_strictly_as_stdio_lines() {
    let (_child, url) = start(&[]).await;
    let sid = new_session(&url, 1).await;
    let dup = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"vm_delete","arguments":{"vmid":100,"confirm":false,"confirm":true}}}"#;
    let r = request(&url, Some(&sid))
        .body(dup)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("JSON-RPC error");
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"confirm\"")),
        "{body}"
    );
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":6,"method":"ping","params":{{"x":{}0{}}}}}"#,
        "[".repeat(125),
        "]".repeat(125)
    );
    let r = request(&url, Some(&sid))
        .body(deep)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("JSON-RPC error");
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(6), json!(-32700))
    );
    assert_eq!(
        ping_status(&url, &sid).await,
        200,
        "the session still serves"
    );
}

/// Starts `serve --transport http` and returns what it printed on stderr before its endpoint.
async fn startup_stderr(token_file: Option<&std::path::Path>, env_token: Option<&str>) -> String {
    let mut cmd = Command::new(common::binary());
    cmd.args([
        "serve",
        "--sim",
        "--transport",
        "http",
        "--listen",
        "127.0.0.1:0",
    ])
    .env_remove("PROXMOX_MANAGER_HTTP_TOKEN");
    if let Some(f) = token_file {
        cmd.arg("--token-file").arg(f);
    }
    if let Some(t) = env_token {
        cmd.env("PROXMOX_MANAGER_HTTP_TOKEN", t);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("http://") {
                return;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        panic!("server exited: {seen}");
    })
    .await
    .expect("endpoint printed within a minute");
    seen
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn weak_token_and_open_token_file_are_warned_about_without_the_token() {
    use std::os::unix::fs::PermissionsExt;
    let short = "short-bearer-9x";
    let err = startup_stderr(None, Some(short)).await;
    assert!(err.contains("shorter than 32"), "{err}");
    assert!(!err.contains(short), "the token is never printed: {err}");

    let err = startup_stderr(None, Some(TOKEN)).await;
    assert!(
        !err.contains("warning"),
        "a strong token: no warning: {err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bearer");
    std::fs::write(&file, format!("{TOKEN}\n")).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = startup_stderr(Some(&file), None).await;
    assert!(
        err.contains("can be read by other users") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = startup_stderr(Some(&file), None).await;
    assert!(!err.contains("warning"), "{err}");
}

//! Streamable HTTP: bearer token required (401 without or with a wrong one), Host and Origin
//! checked, refusal to start unprotected.

use crate::common;

use std::process::Stdio;

use tokio::process::{Child, Command};

const TOKEN: &str = "test-bearer-7f3e9c";

async fn start_http() -> (Child, String) {
    start_http_on("127.0.0.1:0", &[]).await
}

async fn start_http_on(listen: &str, extra: &[&str]) -> (Child, String) {
    common::http::start(listen, extra, Some(TOKEN)).await
}

fn initialize() -> serde_json::Value {
    serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"http-test","version":"1"}}})
}

async fn post(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request sent")
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_host_and_origin_are_enforced() {
    let (_child, url) = start_http().await;
    assert_guards(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_loopback_with_allow_remote_and_a_token_keeps_every_guard() {
    let (_child, url) = start_http_on(
        "0.0.0.0:0",
        &["--allow-remote", "--allow-host", "pve-manager.lab"],
    )
    .await;
    assert_guards(&url).await;
    // The machine's name, once allowed with --allow-host, is accepted as Host.
    let bearer = format!("Bearer {TOKEN}");
    let r = post(
        &url,
        &[("authorization", &bearer), ("host", "pve-manager.lab")],
    )
    .await;
    assert_eq!(r.status(), 200, "an allowed host name");
}

/// No or a wrong bearer → 401; the right one → 200; a foreign Origin or Host → refused; the
/// endpoint's own origin accepted.
async fn assert_guards(url: &str) {
    let url = url.to_string();

    let r = post(&url, &[]).await;
    assert_eq!(r.status(), 401, "no token");
    assert!(r.headers().contains_key("www-authenticate"));

    let r = post(&url, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(r.status(), 401, "wrong token");

    let bearer = format!("Bearer {TOKEN}");
    let r = post(&url, &[("authorization", &bearer)]).await;
    assert_eq!(r.status(), 200, "right token");
    let body = r.text().await.expect("body");
    assert!(
        body.contains("proxmox-manager"),
        "initialize answered by us: {body}"
    );

    let r = post(
        &url,
        &[
            ("authorization", &bearer),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert!(
        r.status().is_client_error(),
        "foreign Origin refused, got {}",
        r.status()
    );

    // The endpoint's own origin is accepted (what the MCP conformance suite's DNS-rebinding
    // scenario requires); a page on another loopback port (a local dev server) is not.
    let own = url.trim_end_matches("/mcp").to_string();
    let r = post(&url, &[("authorization", &bearer), ("origin", &own)]).await;
    assert_eq!(r.status(), 200, "own origin {own}");
    let refused = [
        ("origin", "http://localhost:1", "another loopback port"),
        ("host", "evil.example", "a foreign Host"),
    ];
    for (header, value, what) in refused {
        let r = post(&url, &[("authorization", &bearer), (header, value)]).await;
        assert!(
            r.status().is_client_error(),
            "{what} refused, got {}",
            r.status()
        );
    }
}

async fn refused(args: &[&str]) -> String {
    refused_with(args, &[]).await
}

async fn refused_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(common::binary())
        .args(args)
        .env_remove("PROXMOX_MANAGER_HTTP_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run");
    assert!(!out.status.success(), "{args:?} should refuse to start");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn http_refuses_to_start_unprotected() {
    let err = refused(&[
        "serve",
        "--sim",
        "--transport",
        "http",
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert!(
        err.contains("PROXMOX_MANAGER_HTTP_TOKEN") && err.contains("--token-file"),
        "{err}"
    );
    let err = refused(&[
        "serve",
        "--sim",
        "--transport",
        "http",
        "--no-auth",
        "--listen",
        "0.0.0.0:0",
    ])
    .await;
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test]
async fn non_loopback_needs_allow_remote_even_with_a_token() {
    let token = [("PROXMOX_MANAGER_HTTP_TOKEN", TOKEN)];
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let err = refused_with(
            &["serve", "--sim", "--transport", "http", "--listen", listen],
            &token,
        )
        .await;
        assert!(
            err.contains("--allow-remote") && err.contains("non-loopback"),
            "{listen}: {err}"
        );
    }
    // --allow-remote does not lift the token requirement.
    let err = refused(&[
        "serve",
        "--sim",
        "--transport",
        "http",
        "--allow-remote",
        "--listen",
        "0.0.0.0:0",
    ])
    .await;
    assert!(err.contains("PROXMOX_MANAGER_HTTP_TOKEN"), "{err}");
}

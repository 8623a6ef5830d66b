//! `serve --sim --transport http` as a child process, for tests that talk to the HTTP endpoint.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the HTTP server on `listen` with `extra` flags and `PROXMOX_MANAGER_HTTP_TOKEN` set to
/// `token` (unset for `None`); returns it and its endpoint, with an unspecified address
/// (0.0.0.0) replaced by 127.0.0.1 so the test can reach it. The child dies with the handle.
pub async fn start(listen: &str, extra: &[&str], token: Option<&str>) -> (Child, String) {
    let mut cmd = Command::new(super::binary());
    cmd.args([
        "serve",
        "--sim",
        "--sim-time-scale",
        "0.01",
        "--transport",
        "http",
        "--listen",
        listen,
    ])
    .args(extra)
    .env_remove("PROXMOX_MANAGER_HTTP_TOKEN");
    if let Some(token) = token {
        cmd.env("PROXMOX_MANAGER_HTTP_TOKEN", token);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(i) = line.find("http://") {
                return line[i..].trim().replace("//0.0.0.0:", "//127.0.0.1:");
            }
        }
        panic!("server exited without printing its endpoint");
    })
    .await
    .expect("endpoint printed within a minute");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

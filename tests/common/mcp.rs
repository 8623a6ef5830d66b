//! An rmcp client that spawns the real binary, records progress notifications, and calls
//! tools with or without a progress token.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, NumberOrString, ProgressNotificationParam, ProgressToken,
    RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::process::Command;

/// Collects the progress notifications the server sends.
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Recorder {
    fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        if let Ok(mut p) = self.progress.lock() {
            p.push(params.message.unwrap_or_default());
        }
        std::future::ready(())
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

/// `serve --config CONFIG` as a child process with the token in the environment and a private
/// audit-log location (`state_dir`), for any MCP client handler to serve.
pub fn spawn_server(
    config: &Path,
    token: &str,
    state_dir: &Path,
    extra: &[&str],
) -> TokioChildProcess {
    let config = config.to_path_buf();
    let token = token.to_string();
    let state = state_dir.to_path_buf();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TokioChildProcess::new(Command::new(super::binary()).configure(move |c| {
        c.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--task-poll-ms", "5"])
            .args(&extra);
        c.env("PROXMOX_MANAGER_TOKEN", &token)
            .env("XDG_STATE_HOME", &state)
            .env_remove("PROXMOX_MANAGER_CONFIG")
            // Hermetic: a developer's ssh-agent must not become the server's SSH identity.
            .env_remove("SSH_AUTH_SOCK");
    }))
    .expect("spawn server")
}

/// Spawns the server ([`spawn_server`]) and connects a recording client.
pub async fn connect(
    config: &Path,
    token: &str,
    state_dir: &Path,
    extra: &[&str],
) -> (Client, Recorder) {
    let transport = spawn_server(config, token, state_dir, extra);
    let recorder = Recorder::default();
    let client = recorder
        .clone()
        .serve(transport)
        .await
        .expect("MCP handshake");
    (client, recorder)
}

/// Calls a tool; returns (is_error, structured content, text).
pub async fn call(client: &Client, tool: &str, args: Value) -> (bool, Value, String) {
    call_with(client, tool, args, false).await
}

pub async fn call_with(
    client: &Client,
    tool: &str,
    args: Value,
    progress: bool,
) -> (bool, Value, String) {
    let Value::Object(args) = args else {
        panic!("args must be an object")
    };
    let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    if progress {
        params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
            NumberOrString::Number(7),
        )));
    }
    let r = client.call_tool(params).await.expect("call_tool");
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (
        r.is_error == Some(true),
        r.structured_content.unwrap_or(Value::Null),
        text,
    )
}

/// A hand-written JSON-RPC session over the binary's stdio, for rules the rmcp client hides
/// (it attaches a progress token to every request) or cannot express (cancelling by id).
pub struct RawSession {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl RawSession {
    /// Spawns `serve --config CONFIG` and completes the MCP handshake.
    pub async fn start(config: &Path, token: &str, state_dir: &Path) -> RawSession {
        use tokio::io::AsyncBufReadExt;
        let mut child = Command::new(super::binary())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--task-poll-ms", "5"])
            .env("PROXMOX_MANAGER_TOKEN", token)
            .env("XDG_STATE_HOME", state_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server");
        let stdin = child.stdin.take().expect("stdin");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut s = RawSession {
            _child: child,
            stdin,
            lines,
        };
        s.send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#).await;
        s.read_until_id(1).await;
        s.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        s
    }

    /// Writes one message.
    pub async fn send(&mut self, msg: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .expect("write to server");
        self.stdin.flush().await.expect("flush");
    }

    /// Every line up to and including the response with `id` (a minute at most).
    pub async fn read_until_id(&mut self, id: u64) -> Vec<String> {
        let marker = format!(r#""id":{id}"#);
        let mut seen = Vec::new();
        let lines = &mut self.lines;
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let done = line.contains(&marker);
                seen.push(line);
                if done {
                    break;
                }
            }
        })
        .await
        .expect("the server answered within a minute");
        seen
    }
}

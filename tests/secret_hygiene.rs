//! Secret hygiene: three canaries — the PVE API token secret, the HTTP bearer token and the
//! SSH key passphrase (read from a real `pass` store) — must never show up anywhere: not on
//! stdout or stderr (with `RUST_LOG=trace`) of the stdio server calling every tool, the HTTP
//! server, `check`, `call` and `rbac bootstrap` (whose new token's secret is a fourth canary),
//! not in any file those runs wrote (audit log, state and config
//! directories), and not in the `Debug` output of the types that hold them.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use common::pass::PassStore;
use proxmox_manager::sim::SimHandle;

const HTTP_CANARY: &str = "canary-http-7f3a9c51e2d84b06";
const SSH_CANARY: &str = "canary-ssh-pass-4c2e91d7b3a0";
const PASS_ENTRY: &str = "annarchy.net/pve/ssh-key";

/// Everything a run printed, labelled, for one final scan.
#[derive(Default)]
struct Captured(Vec<(String, String)>);

impl Captured {
    fn add(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.0.push((label.into(), text.into()));
    }
}

/// The canaries and the encodings of them a leak could take.
fn needles(api_secret: &str) -> Vec<(String, String)> {
    let mut n = vec![
        ("API token secret".to_string(), api_secret.to_string()),
        ("HTTP bearer token".into(), HTTP_CANARY.into()),
        ("SSH key passphrase".into(), SSH_CANARY.into()),
    ];
    for (what, s) in [
        ("HTTP bearer token", HTTP_CANARY),
        ("API token secret", api_secret),
    ] {
        let b = base64::engine::general_purpose::STANDARD.encode(s);
        n.push((
            format!("{what} (base64)"),
            b.trim_end_matches('=').to_string(),
        ));
        let u = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        n.push((format!("{what} (base64url)"), u));
    }
    n
}

fn assert_clean(label: &str, text: &str, needles: &[(String, String)]) {
    for (what, needle) in needles {
        if let Some(i) = text.find(needle.as_str()) {
            let from = text[..i]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(j, _)| j);
            let to = (i + needle.len() + 200).min(text.len());
            let to = (to..=text.len())
                .find(|&j| text.is_char_boundary(j))
                .unwrap_or(text.len());
            panic!(
                "{what} leaked in {label}:\n…{}…",
                &text[from..to].replace(needle.as_str(), "<<CANARY>>")
            );
        }
    }
}

/// A passphrase-protected ed25519 key authorized in the simulator, its host keys, each node's
/// SSH port, and the passphrase's `pass` entry.
fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    common::write_ssh_config_with(dir, sim, Some((SSH_CANARY, PASS_ENTRY)))
}

/// The environment every run gets: the pass store, the API token, trace logging, private
/// state and config directories, no agent.
fn command(bin_args: &[&str], env: &Env) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(common::binary());
    c.args(bin_args)
        .envs(env.pass.env_pairs())
        .env("PROXMOX_MANAGER_TOKEN", &env.token)
        .env("RUST_LOG", "trace")
        .env("XDG_STATE_HOME", env.dir.join("state"))
        .env("XDG_CONFIG_HOME", env.dir.join("config"))
        .env_remove("PROXMOX_MANAGER_CONFIG")
        .env_remove("PROXMOX_MANAGER_HTTP_TOKEN")
        .env_remove("SSH_AUTH_SOCK")
        .kill_on_drop(true);
    c
}

struct Env {
    pass: PassStore,
    token: String,
    dir: PathBuf,
    config: PathBuf,
}

/// A line-delimited JSON-RPC client over the server's stdio that keeps every stdout line.
struct Stdio_ {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stdout: String,
    next_id: u64,
}

impl Stdio_ {
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .expect("write");
        self.stdin.flush().await.expect("flush");
        let lines = &mut self.lines;
        let stdout = &mut self.stdout;
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("read")
                    .expect("server still running");
                stdout.push_str(&line);
                stdout.push('\n');
                let v: Value = serde_json::from_str(&line).expect("JSON line");
                if v["id"] == id && (v.get("result").is_some() || v.get("error").is_some()) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} {params} answered within two minutes"))
    }

    /// Calls a tool; returns (is_error, structured content, text).
    async fn call(&mut self, tool: &str, args: Value) -> (bool, Value, String) {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        if let Some(e) = r.get("error") {
            return (true, Value::Null, e.to_string());
        }
        let res = &r["result"];
        let text = res["content"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|x| x["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        (
            res["isError"] == true,
            res["structuredContent"].clone(),
            text,
        )
    }
}

async fn stdio_server(env: &Env) -> (Stdio_, tokio::task::JoinHandle<String>) {
    let config = env.config.display().to_string();
    let mut child = command(&["serve", "--config", &config, "--task-poll-ms", "5"], env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let err_task = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(l)) = stderr.next_line().await {
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let mut s = Stdio_ {
        stdin: child.stdin.take().expect("stdin"),
        lines: BufReader::new(child.stdout.take().expect("stdout")).lines(),
        child,
        stdout: String::new(),
        next_id: 0,
    };
    s.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "hygiene", "version": "1"}}),
    )
    .await;
    s.stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .expect("write");
    (s, err_task)
}

/// Every tool, with plausible arguments and error paths; a template build over SSH (the
/// passphrase unlocks the key) and a VM's whole life.
async fn exercise_every_tool(s: &mut Stdio_, image_url: &str, digest: &str) {
    let list = s.request("tools/list", json!({})).await;
    let tools: Vec<String> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect();
    let mut called: Vec<String> = Vec::new();
    macro_rules! call {
        ($tool:expr, $args:expr) => {{
            called.push($tool.to_string());
            s.call($tool, $args).await
        }};
    }

    let (err, _, text) = call!("cluster_status", json!({}));
    assert!(!err, "{text}");
    call!("node_status", json!({"node": "pve01"}));
    call!("node_status", json!({"node": "pve99"}));
    call!("storage_list", json!({}));
    call!(
        "storage_content",
        json!({"storage": "local", "node": "pve01"})
    );
    call!(
        "storage_content",
        json!({"storage": "nosuch", "node": "pve01"})
    );
    call!("template_list", json!({}));
    call!("vm_list", json!({"include_templates": true}));
    call!("vm_get", json!({"vmid": 1000}));
    call!("vm_get", json!({"vmid": 987_654}));

    // The SSH path (the manager token may not download): wget, qm disk import, SFTP.
    let (err, r, text) = call!(
        "template_from_cloud_image",
        json!({"image_url": image_url, "checksum": digest, "name": "hygiene-tmpl",
               "node": "pve02", "disk_size": "2G"})
    );
    assert!(!err, "template over SSH: {text}");
    assert_eq!(r["path"]["path"], "ssh", "{r}");
    let tmpl = r["vmid"].as_u64().expect("vmid");
    let upid = r["upids"]
        .as_array()
        .and_then(|u| u.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    let upid =
        upid.unwrap_or_else(|| "UPID:pve02:00000001:00000001:00000001:qmcreate:1:x@pve:".into());
    call!("task_status", json!({"upid": upid}));
    call!("task_log", json!({"upid": upid, "tail": true}));
    call!("task_status", json!({"upid": "UPID:garbage"}));
    call!(
        "template_from_iso",
        json!({"iso": "local:iso/nosuch.iso", "name": "hygiene-iso", "node": "pve01"})
    );
    call!(
        "template_import_disk",
        json!({"name": "hygiene-disk", "image_path": "/nonexistent/disk.qcow2", "node": "pve01"})
    );

    let (err, r, text) = call!(
        "vm_create",
        json!({"template": tmpl.to_string(), "name": "hygiene-vm", "node": "pve02",
               "ci_user": "ada", "tags": ["dev"]})
    );
    assert!(!err, "vm_create: {text}");
    let vm = r["vmid"].as_u64().expect("vmid");
    call!("vm_start", json!({"vmid": vm}));
    call!("vm_reboot", json!({"vmid": vm}));
    call!(
        "vm_shutdown",
        json!({"vmid": vm, "timeout_s": 5, "force_after_timeout": true})
    );
    call!("vm_stop", json!({"vmid": vm, "confirm": true}));
    call!("vm_resize", json!({"vmid": vm, "cores": 2, "memory": 2048}));
    call!("vm_set_tags", json!({"vmid": vm, "add": ["hygiene"]}));
    call!("vm_start", json!({"vmid": 987_654}));
    call!("vm_delete", json!({"vmid": vm, "stop": true}));
    call!(
        "vm_delete",
        json!({"vmid": vm, "stop": true, "confirm": true})
    );
    call!("template_convert", json!({"vmid": 1011}));
    call!("template_convert", json!({"vmid": 987_654}));
    call!("template_delete", json!({"vmid": tmpl}));
    call!("template_delete", json!({"vmid": tmpl, "confirm": true}));

    call!("runbook_list", json!({}));
    call!("runbook_get", json!({"name": "no-such-runbook"}));
    call!(
        "runbook_save",
        json!({"content": "---\nname: hygiene\ndescription: x\n---\n# Hygiene\n\n1. cluster_status\n"})
    );
    let (err, _, text) = call!("access_check", json!({}));
    assert!(!err, "{text}");
    // The bootstrap's preview inspects the node over SSH (the passphrase-protected key).
    let (err, _, text) = call!("rbac_bootstrap", json!({"node": "pve01"}));
    assert!(!err && text.contains("preview only"), "{text}");
    // Whatever the catalogue gained since this test was written: at least an empty call.
    for t in &tools {
        if !called.contains(t) {
            call!(t.as_str(), json!({}));
        }
    }
}

fn read_tree(root: &Path, out: &mut Captured) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            read_tree(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.add(
                format!("file {}", p.display()),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
        }
    }
}

async fn http_run(env: &Env, captured: &mut Captured) {
    let config = env.config.display().to_string();
    let mut child = command(
        &[
            "serve",
            "--config",
            &config,
            "--transport",
            "http",
            "--listen",
            "127.0.0.1:0",
        ],
        env,
    )
    .env("PROXMOX_MANAGER_HTTP_TOKEN", HTTP_CANARY)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn http server");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = stderr.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(i) = line.find("MCP endpoint http://") {
                return line[i + "MCP endpoint ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        panic!("server exited without printing its endpoint:\n{seen}");
    })
    .await
    .expect("endpoint printed");
    let err_task = tokio::spawn(async move {
        let mut all = seen;
        while let Ok(Some(l)) = stderr.next_line().await {
            all.push_str(&l);
            all.push('\n');
        }
        all
    });

    let client = reqwest::Client::new();
    let post = |auth: Option<String>, session: Option<String>, body: Value| {
        let mut req = client
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"hygiene","version":"1"}}});
    let right = format!("Bearer {HTTP_CANARY}");
    for (auth, status) in [
        (None, 401),
        (Some("Bearer wrong-token".to_string()), 401),
        (Some(format!("Bearer {HTTP_CANARY}x")), 401),
        (
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("u:{HTTP_CANARY}"))
            )),
            401,
        ),
    ] {
        let r = post(auth, None, init.clone()).await.expect("request");
        assert_eq!(r.status(), status);
        captured.add("http response", r.text().await.unwrap_or_default());
    }
    let r = post(Some(right.clone()), None, init.clone())
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    captured.add("http initialize", r.text().await.unwrap_or_default());
    let r = post(
        Some(right.clone()),
        session.clone(),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await
    .expect("request");
    captured.add("http initialized", r.text().await.unwrap_or_default());
    for (id, method, params) in [
        (2, "tools/list", json!({})),
        (
            3,
            "tools/call",
            json!({"name": "cluster_status", "arguments": {}}),
        ),
        (
            4,
            "tools/call",
            json!({"name": "vm_get", "arguments": {"vmid": 987_654}}),
        ),
    ] {
        let r = post(
            Some(right.clone()),
            session.clone(),
            json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}),
        )
        .await
        .expect("request");
        assert!(r.status().is_success(), "{method}: {}", r.status());
        captured.add(format!("http {method}"), r.text().await.unwrap_or_default());
    }
    // A wrong token after a session exists.
    let r = post(
        Some("Bearer nope".into()),
        session,
        json!({"jsonrpc":"2.0","id":9,"method":"tools/list","params":{}}),
    )
    .await
    .expect("request");
    assert_eq!(r.status(), 401);

    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use tokio::io::AsyncReadExt;
        let _ = so.read_to_string(&mut out).await;
    }
    captured.add("http server stdout", out);
    let err = err_task.await.expect("stderr task");
    assert!(!err.contains("panicked"), "{err}");
    captured.add("http server stderr", err);
}

async fn cli_run(env: &Env, args: &[&str], captured: &mut Captured) -> String {
    let out = command(args, env)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    captured.add(format!("{args:?} stdout"), stdout.clone());
    captured.add(format!("{args:?} stderr"), stderr);
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn no_canary_leaks_from_any_run_or_file() {
    let image = common::images::qcow2();
    let digest = common::images::sha256(&image);
    let image_url = common::images::serve("noble-server-cloudimg-amd64.img", image).await;
    let sim = common::start_sim().await;
    let token = common::token_env(&sim);
    let api_secret = token.split_once('=').expect("id=secret").1.to_string();
    assert!(api_secret.len() >= 8, "a real canary");
    let tmp = tempfile::tempdir().expect("tmp");
    let pass = PassStore::new();
    pass.insert(PASS_ENTRY, &format!("{SSH_CANARY}\n"));
    let config = write_config(tmp.path(), &sim);
    let env = Env {
        pass,
        token,
        dir: tmp.path().to_path_buf(),
        config,
    };
    let mut captured = Captured::default();

    // 1. stdio, every tool.
    let (mut s, err_task) = stdio_server(&env).await;
    exercise_every_tool(&mut s, &image_url, &digest).await;
    drop(s.stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), s.child.wait()).await;
    let _ = s.child.start_kill();
    while let Ok(Some(l)) = s.lines.next_line().await {
        s.stdout.push_str(&l);
        s.stdout.push('\n');
    }
    let err = err_task.await.expect("stderr task");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("TRACE") || err.contains("DEBUG"),
        "RUST_LOG=trace took effect"
    );
    captured.add("stdio server stdout", s.stdout);
    captured.add("stdio server stderr", err);

    // The audit log: private, one JSON object per line.
    let audit = tmp.path().join("state/proxmox-manager/audit.jsonl");
    check_audit_log(&audit);

    // 2. HTTP with the canary bearer token.
    http_run(&env, &mut captured).await;

    // 3. check and call (and below, the bootstrap).
    let cfg = env.config.display().to_string();
    let out = cli_run(&env, &["check", "--config", &cfg], &mut captured).await;
    assert!(out.contains("ssh pve01"), "check reached SSH: {out}");
    cli_run(
        &env,
        &["call", "cluster_status", "--config", &cfg],
        &mut captured,
    )
    .await;
    cli_run(
        &env,
        &["call", "vm_get", r#"{"vmid": 987654}"#, "--config", &cfg],
        &mut captured,
    )
    .await;
    cli_run(
        &env,
        &[
            "call",
            "vm_set_tags",
            r#"{"vmid": 1000, "add": ["hyg"]}"#,
            "--config",
            &cfg,
        ],
        &mut captured,
    )
    .await;

    // 4. The RBAC bootstrap: a new token whose secret must reach only the pass store.
    let out = cli_run(
        &env,
        &[
            "rbac",
            "bootstrap",
            "--node",
            "pve01",
            "--user",
            "hyg-bot@pve",
            "--config",
            &cfg,
        ],
        &mut captured,
    )
    .await;
    assert!(out.contains("stored in pass entry"), "{out}");
    let shown = std::process::Command::new(crate::common::external::require("pass"))
        .args(["show", "annarchy.net/pve/api-token"])
        .envs(env.pass.env_pairs())
        .output()
        .expect("pass show");
    let bootstrapped = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .nth(1)
        .unwrap_or("")
        .to_string();
    assert_eq!(bootstrapped.len(), 36, "the new token's secret is in pass");

    // 5. Every file the runs left behind.
    read_tree(tmp.path(), &mut captured);
    assert!(
        captured.0.iter().any(|(l, _)| l.ends_with("audit.jsonl")),
        "the audit log was scanned"
    );

    let mut needles = needles(&api_secret);
    needles.push(("bootstrapped token secret".into(), bootstrapped));
    if std::env::var_os("HYGIENE_VERBOSE").is_some() {
        for (label, text) in &captured.0 {
            eprintln!("scanned {label}: {} bytes", text.len());
        }
    }
    for (label, text) in &captured.0 {
        assert_clean(label, text, &needles);
    }
}

#[cfg(unix)]
fn check_audit_log(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).expect("an audit log was written");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "audit log mode");
    let dir = std::fs::metadata(path.parent().expect("dir")).expect("dir");
    assert_eq!(dir.permissions().mode() & 0o777, 0o700, "audit dir mode");
    let text = std::fs::read_to_string(path).expect("read audit log");
    let mut tools = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.is_object() && v["arguments"].is_object(), "{line}");
        tools.push(v["tool"].as_str().unwrap_or_default().to_string());
    }
    assert!(tools.iter().any(|t| t == "vm_create"), "{tools:?}");
}

#[cfg(not(unix))]
fn check_audit_log(_path: &Path) {}

#[test]
fn debug_output_never_shows_a_secret() {
    use proxmox_manager::config::credentials::{CredentialSource, TokenCredential};
    use proxmox_manager::ssh::SshAuth;
    use secrecy::SecretString;

    let api = "canary-api-secret-0b9d2f6a";
    let cred = TokenCredential {
        id: "claude-code@pve!automation".into(),
        secret: SecretString::from(api.to_string()),
        source: CredentialSource::Env,
    };
    let auth = SshAuth::KeyFile {
        path: "/home/ada/.ssh/id_ed25519".into(),
        passphrase: Some(SecretString::from(SSH_CANARY.to_string())),
    };
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cluster-config.yaml");
    let yaml = format!(
        "{}\nssh:\n  key_file: /home/ada/.ssh/id_ed25519\n  key_passphrase_pass_path: {PASS_ENTRY}\n",
        common::config_yaml(8006, &["AB"; 32].join(":"))
    );
    std::fs::write(&path, yaml).expect("write");
    let cfg = proxmox_manager::config::load(&path).expect("config loads");
    let texts = [
        format!("{cred:?}"),
        format!("{cred:#?}"),
        format!("{auth:?}"),
        format!("{auth:#?}"),
        format!("{cfg:?}"),
        format!("{cfg:#?}"),
    ];
    let needles = [
        ("API token secret".to_string(), api.to_string()),
        ("SSH key passphrase".into(), SSH_CANARY.into()),
    ];
    for t in &texts {
        assert_clean("Debug output", t, &needles);
    }
    assert!(texts[0].contains("REDACTED") && texts[2].contains("REDACTED"));
}

#[test]
#[should_panic(expected = "HTTP bearer token (base64) leaked")]
fn the_scan_finds_a_planted_canary() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(HTTP_CANARY);
    assert_clean(
        "a planted line",
        &format!("authorization: Basic {b64}"),
        &needles("unused-api-secret"),
    );
}

/// Cluster profiles (issue 16): the Talos secrets, the machine configurations, talosconfig and
/// kubeconfig live only in their 0600 state files. A spin-up (with an `apply-config` failure on
/// the way, so error paths run too), its resumption, the status and the tear-down, with
/// progress and `RUST_LOG=trace`: none of their values in stdout, stderr, the audit log, the
/// per-run logs, the recorded argv of the programs, or any other file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talos_secrets_stay_in_their_state_files() {
    let sim = common::start_sim().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let clusters = tmp.path().join("clusters");
    std::fs::create_dir_all(&clusters).expect("mkdir");
    std::fs::write(
        clusters.join("hyg.yaml"),
        "name: hyg\ntype: talos\nnetwork:\n  api_endpoint: hyg.example.net:6443\n  pod_cidr: 10.244.0.0/16\n  service_cidr: 10.96.0.0/12\n  node_cidr: 10.31.0.0/24\n  addresses: static\n  gateway: 10.31.0.1\nnodes:\n  controlplane:\n    count: 1\n    cores: 1\n    memory: 1024\n    disk: 12G\n  workers:\n    count: 1\n    cores: 1\n    memory: 1024\n    disk: 12G\ntemplate: 101\ntags: [talos, hyg]\nflux:\n  repo: git@github.com:example/fleet.git\n  path: clusters/hyg\n",
    )
    .expect("profile");
    let fakes = common::fake_clis::FakeClis::install(tmp.path());
    let mut yaml = common::config_yaml(sim.addr().port(), &sim.fingerprint());
    yaml.push_str(&fakes.paths_yaml(&clusters));
    let config = tmp.path().join("cluster-config.yaml");
    std::fs::write(&config, yaml).expect("config");
    let env = Env {
        pass: PassStore::new(),
        token: common::token_env(&sim),
        dir: tmp.path().to_path_buf(),
        config,
    };
    std::fs::write(fakes.dir.join("fail-apply"), "10.31.0.11").expect("control");
    let (mut s, err_task) = stdio_server(&env).await;
    let with_progress = |args: Value| json!({"name": "profile_up", "arguments": args, "_meta": {"progressToken": 1}});
    let r = s
        .request(
            "tools/call",
            with_progress(json!({"profile": "hyg", "confirm": true})),
        )
        .await;
    assert_eq!(r["result"]["isError"], true, "the failure is reported: {r}");
    std::fs::remove_file(fakes.dir.join("fail-apply")).expect("rm");
    let r = s
        .request(
            "tools/call",
            with_progress(json!({"profile": "hyg", "confirm": true})),
        )
        .await;
    assert_ne!(r["result"]["isError"], true, "{r}");
    let (err, _, text) = s.call("profile_status", json!({"profile": "hyg"})).await;
    assert!(!err && text.contains("Talos: healthy"), "{text}");
    let (err, _, text) = s
        .call(
            "profile_down",
            json!({"profile": "hyg", "confirm": true, "ignore_partial": true}),
        )
        .await;
    assert!(!err, "{text}");
    drop(s.stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), s.child.wait()).await;
    let _ = s.child.start_kill();
    let err = err_task.await.expect("stderr task");

    // The secret values, from the (archived) state files that are meant to hold them.
    let root = tmp.path().join("state/proxmox-manager/profiles");
    let archive = std::fs::read_dir(root.join("archive"))
        .expect("archived state")
        .flatten()
        .next()
        .expect("one archive")
        .path();
    let holders = [
        "secrets.yaml",
        "config/controlplane.yaml",
        "config/worker.yaml",
        "config/talosconfig",
        "kubeconfig",
    ];
    let mut needles: Vec<(String, String)> = Vec::new();
    for f in holders {
        let path = archive.join(f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect(f).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} mode");
        }
        for line in std::fs::read_to_string(&path).expect(f).lines() {
            let v = line.split_once(": ").map_or("", |(_, v)| v).trim();
            if v.len() >= 16 && !v.starts_with("http") {
                needles.push((format!("a value of {f}"), v.to_string()));
            }
        }
    }
    assert!(needles.len() >= 10, "the fakes wrote secret material");
    let mut captured = Captured::default();
    captured.add("stdio server stdout (with progress)", s.stdout);
    captured.add("stdio server stderr", err);
    let mut files = Captured::default();
    read_tree(tmp.path(), &mut files);
    for (label, text) in files.0 {
        let holder = label.starts_with(&format!("file {}", root.display()))
            && holders.iter().any(|h| label.ends_with(h));
        if !holder {
            captured.add(label, text);
        }
    }
    assert!(
        captured.0.iter().any(|(l, _)| l.ends_with("-up.log")),
        "the run logs were scanned"
    );
    assert!(
        captured.0.iter().any(|(l, _)| l.ends_with("calls.jsonl")),
        "the argv record was scanned"
    );
    assert!(
        captured.0.iter().any(|(l, _)| l.ends_with("audit.jsonl")),
        "the audit log was scanned"
    );
    for (label, text) in &captured.0 {
        assert_clean(label, text, &needles);
    }
}

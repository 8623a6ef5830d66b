//! Shared helpers of the simulator's lifecycle tests (`sim_lifecycle`, `sim_power`), included
//! by them with `#[path]`; as a test target of its own it has no tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use proxmox_manager::sim::{self, Scenario, SimHandle, SimOptions};
use serde_json::Value;

pub const ROOT: &str = "root@pam!admin";
pub const CLAUDE: &str = "claude-code@pve!automation";
pub const AUDITOR: &str = "auditor@pve!ro";
pub const GIB: u64 = 1024 * 1024 * 1024;

pub async fn start(time_scale: f64) -> SimHandle {
    let opts = SimOptions {
        scenario: Scenario::embedded().expect("embedded scenario"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale,
    };
    sim::start(opts).await.expect("simulator starts")
}

pub struct Api {
    pub h: SimHandle,
    http: reqwest::Client,
}

impl Api {
    pub async fn new(time_scale: f64) -> Api {
        Api::with_scenario(Scenario::embedded().expect("embedded scenario"), time_scale).await
    }

    pub async fn with_scenario(scenario: Scenario, time_scale: f64) -> Api {
        let h = sim::start(SimOptions {
            scenario,
            listen: "127.0.0.1:0".parse().expect("addr"),
            time_scale,
        })
        .await
        .expect("simulator starts");
        let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).expect("ca pem");
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .expect("client");
        Api { h, http }
    }

    /// Sends a request as `who`; form parameters go in the body for POST/PUT, in the query
    /// otherwise. Returns the status and the parsed body.
    pub async fn call(
        &self,
        who: &str,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let t = self.h.token(who).expect("token exists");
        let url = format!("{}/api2/json{path}", self.h.url());
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, url).header(
            "Authorization",
            format!("PVEAPIToken={}={}", t.id, t.secret),
        );
        rb = if matches!(method, "POST" | "PUT") {
            rb.form(params)
        } else {
            rb.query(params)
        };
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A `multipart/form-data` POST as the PVE GUI sends uploads: text `fields`, then the
    /// file as the part named `filename` with `filename="<file_name>"`.
    pub async fn upload(
        &self,
        who: &str,
        path: &str,
        fields: &[(&str, &str)],
        file_name: &str,
        bytes: &[u8],
    ) -> (u16, Value) {
        let t = self.h.token(who).expect("token exists");
        let boundary = "----simtestboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = self
            .http
            .post(format!("{}/api2/json{path}", self.h.url()))
            .header(
                "Authorization",
                format!("PVEAPIToken={}={}", t.id, t.secret),
            )
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(ROOT, "GET", path, &[]).await
    }

    /// A call that must return a UPID.
    pub async fn upid(
        &self,
        who: &str,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> String {
        let (s, b) = self.call(who, method, path, params).await;
        assert_eq!(s, 200, "{method} {path} {params:?}: {b}");
        b["data"].as_str().expect("a UPID").to_string()
    }

    pub async fn task_status(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).expect("node in upid");
        let enc = percent_encoding::utf8_percent_encode(upid, percent_encoding::NON_ALPHANUMERIC);
        let (s, b) = self.get(&format!("/nodes/{node}/tasks/{enc}/status")).await;
        assert_eq!(s, 200, "{b}");
        b["data"].clone()
    }

    /// Polls a task until it stops; returns its exitstatus.
    pub async fn wait(&self, upid: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = self.task_status(upid).await;
            if st["status"] == "stopped" {
                return st["exitstatus"].as_str().unwrap_or("").to_string();
            }
            assert!(Instant::now() < deadline, "task {upid} did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn task_log(&self, upid: &str) -> Vec<String> {
        let node = upid.split(':').nth(1).expect("node in upid");
        let enc = percent_encoding::utf8_percent_encode(upid, percent_encoding::NON_ALPHANUMERIC);
        let (_, b) = self
            .get(&format!("/nodes/{node}/tasks/{enc}/log?limit=500"))
            .await;
        b["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["t"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn run(
        &self,
        who: &str,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> String {
        let upid = self.upid(who, method, path, params).await;
        self.wait(&upid).await
    }

    pub async fn config(&self, node: &str, vmid: u32) -> Value {
        let (s, b) = self.get(&format!("/nodes/{node}/qemu/{vmid}/config")).await;
        assert_eq!(s, 200, "config of {vmid} on {node}: {b}");
        b["data"].clone()
    }

    pub async fn resource(&self, vmid: u32) -> Option<Value> {
        let (_, b) = self.get("/cluster/resources?type=vm").await;
        b["data"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["vmid"] == vmid).cloned())
    }

    pub async fn storage_used(&self, node: &str, storage: &str) -> u64 {
        let (_, b) = self
            .get(&format!("/nodes/{node}/storage?storage={storage}"))
            .await;
        b["data"][0]["used"].as_u64().expect("used")
    }

    pub async fn status(&self, node: &str, vmid: u32) -> Value {
        let (s, b) = self
            .get(&format!("/nodes/{node}/qemu/{vmid}/status/current"))
            .await;
        assert_eq!(s, 200, "{b}");
        b["data"].clone()
    }
}

pub fn message(b: &Value) -> String {
    b["message"].as_str().unwrap_or("").trim_end().to_string()
}

/// The scenario node of a seeded guest.
pub fn node_of(vmid: u32) -> &'static str {
    match vmid {
        100 | 101 | 1000..=1003 | 1012..=1014 => "pve01",
        102 | 1004..=1007 => "pve02",
        _ => "pve03",
    }
}

/// A tiny loopback HTTP/1.1 file server for download-url tests: `GET /<name>` answers with
/// the bytes registered under `name`, anything else with 404. Returns the base URL.
pub async fn serve_files(files: Vec<(String, Vec<u8>)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind file server");
    let addr = listener.local_addr().expect("file server addr");
    let files = std::sync::Arc::new(files);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let files = std::sync::Arc::clone(&files);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let found = files
                    .iter()
                    .find(|(n, _)| format!("/{n}") == path)
                    .map(|(_, b)| b.clone());
                let (status, body) = match found {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let hdr = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(hdr.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A real qcow2 image of `size` (e.g. `64M`) made with `qemu-img`, as bytes.
pub fn qcow2_image(size: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("img.qcow2");
    let out = std::process::Command::new(crate::common::external::require("qemu-img"))
        .args(["create", "-f", "qcow2"])
        .arg(&path)
        .arg(size)
        .output()
        .expect("qemu-img runs");
    assert!(out.status.success(), "qemu-img create failed: {out:?}");
    std::fs::read(&path).expect("read image")
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A root SSH session to the simulator's nodes: a fresh ed25519 key (authorized in the
/// simulator) and its host keys pinned, both in `dir`.
pub struct SimSsh {
    pool: proxmox_manager::ssh::SshPool,
}

impl SimSsh {
    pub fn new(api: &Api, dir: &std::path::Path) -> SimSsh {
        use proxmox_manager::ssh::{HostKeyPolicy, PoolOptions, SshAuth, SshPool};
        let key = dir.join("id");
        crate::common::sshd::keygen(&key, "ed25519", "");
        let public = std::fs::read_to_string(dir.join("id.pub")).expect("pub key");
        api.h.authorize_ssh_key(&public).expect("key authorizes");
        std::fs::write(dir.join("known_hosts"), api.h.ssh_known_hosts()).expect("known_hosts");
        let pool = SshPool::new(PoolOptions::new(
            "root",
            SshAuth::KeyFile {
                path: key,
                passphrase: None,
            },
            HostKeyPolicy::strict(dir.join("known_hosts")),
        ));
        SimSsh { pool }
    }

    /// Runs `args` (program first) on `node`.
    pub async fn run(
        &self,
        api: &Api,
        node: &str,
        args: &[&str],
    ) -> proxmox_manager::ssh::ExecOutput {
        use proxmox_manager::ssh::{Command, ExecOptions, SshTarget};
        let addr = api.h.ssh_addr(node).expect("node has ssh");
        let target = SshTarget::new(addr.ip().to_string(), addr.port());
        let (program, rest) = args.split_first().expect("a program");
        let cmd = Command::new(*program).args(rest.iter().copied());
        self.pool
            .exec(
                &target,
                &cmd,
                ExecOptions::with_timeout(Duration::from_secs(30)),
            )
            .await
            .expect("exec over ssh")
    }
}

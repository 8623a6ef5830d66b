//! Black-box tests of the simulator over real HTTPS: envelope, auth failures, permission and
//! parameter errors in PVE's wording, 501s, nextid, resources filtering, offline nodes (595)
//! and task status/log. JSON via reqwest trusting the simulator's CA; status lines (reason
//! phrases) via a raw TLS client, since they are part of PVE's contract.

use std::sync::Arc;

use proxmox_manager::sim::{self, Scenario, SimHandle, SimOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLAUDE: &str = "claude-code@pve!automation";
const AUDITOR: &str = "auditor@pve!ro";

async fn start() -> SimHandle {
    let opts = SimOptions {
        scenario: Scenario::embedded().expect("embedded scenario"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: 0.001,
    };
    sim::start(opts).await.expect("simulator starts")
}

fn client(h: &SimHandle) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).expect("ca pem");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client")
}

fn auth(h: &SimHandle, id: &str) -> String {
    let t = h.token(id).expect("token exists");
    format!("PVEAPIToken={}={}", t.id, t.secret)
}

/// GET with a token; returns status and parsed body (Null for empty bodies).
async fn get(h: &SimHandle, id: &str, path: &str) -> (u16, Value) {
    let resp = client(h)
        .get(format!("{}/api2/json{path}", h.url()))
        .header("Authorization", auth(h, id))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends a raw HTTP/1.1 request over TLS; returns the whole response text.
async fn raw(h: &SimHandle, request: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    let ca =
        rustls::pki_types::pem::PemObject::from_pem_slice(h.ca_pem().as_bytes()).expect("ca der");
    roots.add(ca).expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(h.addr())
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("tls");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    // the server closes the connection (Connection: close); a TLS close without notify is fine
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).to_string()
}

async fn status_line(h: &SimHandle, path: &str, authz: Option<String>) -> String {
    let a = authz
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let resp = raw(
        h,
        &format!(
            "GET /api2/json{path} HTTP/1.1\r\nHost: localhost\r\n{a}Connection: close\r\n\r\n"
        ),
    )
    .await;
    resp.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn envelope_version_and_fingerprint() {
    let h = start().await;
    let (s, body) = get(&h, CLAUDE, "/version").await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["version"], "9.1.1");
    assert_eq!(body["data"]["release"], "9.1");
    assert!(body["data"]["repoid"].is_string());
    let fp = h.fingerprint();
    assert_eq!(fp.split(':').count(), 32);
    assert!(
        fp.chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert!(h.url().starts_with("https://127.0.0.1:"));
    h.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_requests_get_401_with_empty_body() {
    let h = start().await;
    assert_eq!(
        status_line(&h, "/version", None).await,
        "HTTP/1.1 401 No ticket"
    );
    let bad = format!("PVEAPIToken={CLAUDE}=00000000-0000-0000-0000-000000000000");
    assert_eq!(
        status_line(&h, "/version", Some(bad.clone())).await,
        "HTTP/1.1 401 Authentication failed!"
    );
    let resp = client(&h)
        .get(format!("{}/api2/json/version", h.url()))
        .header("Authorization", bad)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.text().await.expect("body"), "");
    h.shutdown().await;
}

#[tokio::test]
async fn permission_errors_use_pve_wording() {
    let h = start().await;
    // the privsep token has no ACL on /nodes, so the intersection has no Sys.Audit there
    let (s, body) = get(&h, AUDITOR, "/nodes/pve01/status").await;
    assert_eq!(s, 403);
    assert_eq!(
        body["message"],
        "Permission check failed (/nodes/pve01, Sys.Audit)\n"
    );
    assert_eq!(body["data"], Value::Null);
    let line = status_line(&h, "/nodes/pve01/status", Some(auth(&h, AUDITOR))).await;
    assert_eq!(
        line,
        "HTTP/1.1 403 Permission check failed (/nodes/pve01, Sys.Audit)"
    );
    // ...but it can read guests, and /cluster/resources filters silently instead of failing
    let (s, body) = get(&h, AUDITOR, "/nodes/pve01/qemu/1000/config").await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["name"], "web-01");
    let (s, body) = get(&h, AUDITOR, "/cluster/resources?type=storage").await;
    assert_eq!(s, 200);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0));
    let (_, perms) = get(&h, AUDITOR, "/access/permissions").await;
    assert_eq!(perms["data"]["/vms"]["VM.Audit"], 1);
    assert!(perms["data"].get("/").is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn parameter_errors_and_not_implemented() {
    let h = start().await;
    let (s, body) = get(&h, CLAUDE, "/cluster/resources?bogus=1&type=vms").await;
    assert_eq!(s, 400);
    assert_eq!(body["message"], "Parameter verification failed.\n");
    assert_eq!(
        body["errors"]["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert_eq!(
        body["errors"]["type"],
        "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'"
    );
    let line = status_line(&h, "/cluster/resources?bogus=1", Some(auth(&h, CLAUDE))).await;
    assert_eq!(line, "HTTP/1.1 400 Parameter verification failed.");
    let (s, body) = get(&h, CLAUDE, "/nodes/pve01/qemu/abc/config").await;
    assert_eq!(s, 400);
    assert_eq!(
        body["errors"]["vmid"],
        "type check ('integer') failed - got 'abc'"
    );

    let (s, body) = get(&h, CLAUDE, "/nodes/pve01/frobnicate").await;
    assert_eq!(s, 501);
    assert_eq!(
        body["message"],
        "Method 'GET /nodes/pve01/frobnicate' not implemented\n"
    );
    let resp = client(&h)
        .delete(format!("{}/api2/json/cluster/nextid", h.url()))
        .header("Authorization", auth(&h, CLAUDE))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 501);
    let resp = client(&h)
        .post(format!("{}/api2/json/access/ticket", h.url()))
        .header("Authorization", auth(&h, CLAUDE))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 403);
    let resp = client(&h)
        .get(format!("{}/api2/json/version", h.url()))
        .header("Authorization", auth(&h, CLAUDE))
        .body("a=b")
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 501);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["message"], "Unexpected content for method 'GET'\n");
    h.shutdown().await;
}

#[tokio::test]
async fn nextid_is_a_string_and_checks_conflicts() {
    let h = start().await;
    let (s, body) = get(&h, CLAUDE, "/cluster/nextid").await;
    assert_eq!(s, 200);
    assert_eq!(body["data"], Value::String("103".into()));
    let (s, body) = get(&h, CLAUDE, "/cluster/nextid?vmid=5000").await;
    assert_eq!(
        (s, body["data"].clone()),
        (200, Value::String("5000".into()))
    );
    let (s, body) = get(&h, CLAUDE, "/cluster/nextid?vmid=1000").await;
    assert_eq!(s, 400);
    assert_eq!(body["errors"]["vmid"], "VM 1000 already exists");
    h.shutdown().await;
}

#[tokio::test]
async fn resources_filter_by_type_and_show_tags_locks_templates() {
    let h = start().await;
    let (s, body) = get(&h, CLAUDE, "/cluster/resources?type=vm").await;
    assert_eq!(s, 200);
    let rows = body["data"].as_array().cloned().unwrap_or_default();
    // every guest of config/sim.yaml (templates 100-102, guests 1000-1014, containers 110 and
    // 1200-1202)
    assert_eq!(rows.len(), 22);
    let kind = |r: &Value| {
        if r["vmid"] == 110
            || r["vmid"]
                .as_u64()
                .is_some_and(|v| (1200..=1202).contains(&v))
        {
            "lxc"
        } else {
            "qemu"
        }
    };
    assert!(rows.iter().all(|r| r["type"] == kind(r)), "{rows:?}");
    let row = |id: u64| {
        rows.iter()
            .find(|r| r["vmid"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(row(1000)["tags"], "prod;web");
    assert_eq!(row(1000)["status"], "running");
    assert_eq!(row(1006)["lock"], "backup");
    assert_eq!(row(100)["template"], 1);
    assert_eq!(row(1007)["status"], "stopped");
    assert!(
        row(1002)["maxmem"]
            .as_u64()
            .is_some_and(|m| m == 32768 * 1024 * 1024)
    );
    let (_, nodes) = get(&h, CLAUDE, "/cluster/resources?type=node").await;
    assert_eq!(nodes["data"].as_array().map(Vec::len), Some(3));
    // pve03 is overcommitted: allocated guest RAM exceeds physical memory
    let (_, guests) = get(&h, CLAUDE, "/nodes/pve03/qemu").await;
    let alloc: u64 = guests["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["maxmem"].as_u64())
        .sum();
    let (_, st) = get(&h, CLAUDE, "/nodes/pve03/status").await;
    let total = st["data"]["memory"]["total"].as_u64().unwrap_or(u64::MAX);
    assert!(alloc > total, "allocated {alloc} should exceed {total}");
    assert!(
        st["data"]["memory"]["used"]
            .as_u64()
            .is_some_and(|u| u < total)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn wrong_and_unknown_nodes_fail_like_pve() {
    let h = start().await;
    let (s, body) = get(&h, CLAUDE, "/nodes/pve01/qemu/1005/config").await;
    assert_eq!(s, 500);
    assert_eq!(
        body["message"],
        "Configuration file 'nodes/pve01/qemu-server/1005.conf' does not exist\n"
    );
    let (s, body) = get(&h, CLAUDE, "/nodes/pve02/qemu/1005/config").await;
    assert_eq!(s, 200);
    assert!(
        body["data"]["digest"]
            .as_str()
            .is_some_and(|d| d.len() == 40)
    );
    assert!(
        body["data"]["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("nfs-shared:1005/vm-1005-disk-0.qcow2,"))
    );
    let (s, body) = get(&h, CLAUDE, "/nodes/pve02/qemu/1005").await;
    assert_eq!(s, 200);
    assert!(
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["subdir"] == "config")
    );
    let (s, _) = get(&h, CLAUDE, "/nodes/pve01/qemu/1005").await;
    assert_eq!(s, 500);
    let (_, content) = get(
        &h,
        CLAUDE,
        "/nodes/pve03/storage/nfs-shared/content?vmid=1011",
    )
    .await;
    let linked = content["data"].as_array().into_iter().flatten().find(|i| {
        i["volid"]
            .as_str()
            .is_some_and(|v| v.ends_with("vm-1011-disk-0.qcow2"))
    });
    assert_eq!(
        linked.map(|i| i["parent"].clone()),
        Some(Value::from("../100/base-100-disk-0.qcow2"))
    );
    let (s, body) = get(&h, CLAUDE, "/nodes/nope/status").await;
    assert_eq!(s, 500);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("hostname lookup 'nope' failed"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn offline_node_answers_595_and_shows_offline() {
    let h = start().await;
    h.set_node_online("pve03", false).expect("known node");
    assert!(h.set_node_online("pve09", false).is_err());
    let (s, _) = get(&h, CLAUDE, "/nodes/pve03/qemu").await;
    assert_eq!(s, 595);
    assert_eq!(
        status_line(&h, "/nodes/pve03/status", Some(auth(&h, CLAUDE))).await,
        "HTTP/1.1 595 No route to host"
    );
    let (_, res) = get(&h, CLAUDE, "/cluster/resources").await;
    let rows = res["data"].as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter()
            .any(|r| r["id"] == "node/pve03" && r["status"] == "offline")
    );
    assert!(
        rows.iter()
            .any(|r| r["vmid"] == 1008 && r["status"] == "unknown")
    );
    let (_, cs) = get(&h, CLAUDE, "/cluster/status").await;
    assert!(
        cs["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == "pve03" && r["online"] == 0)
    );
    h.set_node_online("pve03", true).expect("known node");
    let (s, _) = get(&h, CLAUDE, "/nodes/pve03/qemu").await;
    assert_eq!(s, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn task_list_status_and_log() {
    let h = start().await;
    let (s, body) = get(&h, CLAUDE, "/nodes/pve02/tasks").await;
    assert_eq!(s, 200);
    assert!(body["total"].as_u64().is_some_and(|t| t >= 2));
    let tasks = body["data"].as_array().cloned().unwrap_or_default();
    let failed = tasks
        .iter()
        .find(|t| t["type"] == "qmclone")
        .cloned()
        .expect("seeded failed clone");
    let upid = failed["upid"].as_str().unwrap_or("").to_string();
    let enc = upid.replace('!', "%21").replace('@', "%40");
    let (s, st) = get(&h, CLAUDE, &format!("/nodes/pve02/tasks/{enc}/status")).await;
    assert_eq!(s, 200);
    assert_eq!(st["data"]["status"], "stopped");
    assert_eq!(st["data"]["user"], "claude-code@pve");
    assert_eq!(st["data"]["tokenid"], "automation");
    assert!(
        st["data"]["exitstatus"]
            .as_str()
            .is_some_and(|e| e.starts_with("clone failed: "))
    );
    let (s, log) = get(
        &h,
        CLAUDE,
        &format!("/nodes/pve02/tasks/{enc}/log?start=0&limit=50"),
    )
    .await;
    assert_eq!(s, 200);
    let lines = log["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(log["total"].as_u64(), Some(lines.len() as u64));
    assert_eq!(lines.first().map(|l| l["n"].clone()), Some(Value::from(1)));
    assert!(
        lines
            .last()
            .and_then(|l| l["t"].as_str())
            .is_some_and(|t| t.starts_with("TASK ERROR: clone failed"))
    );
    // a task of another user needs Sys.Audit on the node
    let (s, body) = get(&h, AUDITOR, &format!("/nodes/pve02/tasks/{enc}/status")).await;
    assert_eq!(s, 403);
    assert_eq!(
        body["message"],
        "Permission check failed (/nodes/pve02, Sys.Audit)\n"
    );
    let (_, mine) = get(&h, AUDITOR, "/nodes/pve02/tasks").await;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(0));
    let (s, body) = get(&h, CLAUDE, "/nodes/pve02/tasks/UPID:garbage/status").await;
    assert_eq!(s, 400);
    assert_eq!(body["errors"]["upid"], "unable to parse worker upid");
    let unknown = "UPID:pve02:0000ABCD:00001234:6734A1B2:qmstart:1005:root@pam:";
    let (s, body) = get(&h, CLAUDE, &format!("/nodes/pve02/tasks/{unknown}/status")).await;
    assert_eq!(s, 400);
    assert_eq!(body["errors"]["upid"], "no such task");
    h.shutdown().await;
}

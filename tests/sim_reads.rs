//! The simulator's read coverage and other-client entry points: every GET path of the PVE
//! schema is walked and the 501s counted (at most [`MAX_UNIMPLEMENTED_GETS`]); node, cluster,
//! access and RRD reads answer from the scenario with the schema's permissions; ticket login
//! (`PVEAuthCookie` + `CSRFPreventionToken`, expiry, renewal), the `/api2/extjs` envelope;
//! clones get fresh MACs.

use crate::support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, ROOT, message};

/// GET paths of the PVE 9.1 schema the simulator still answers with 501 (see the README's
/// simulator section for the groups).
const MAX_UNIMPLEMENTED_GETS: usize = 49;

fn schema() -> Option<Value> {
    let path = std::env::var_os("PVE_APIDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/pve-api/apidata.json")
        });
    match std::fs::read_to_string(&path) {
        Ok(t) => Some(serde_json::from_str(&t).expect("apidata.json is JSON")),
        Err(_) => {
            eprintln!(
                "SKIPPED: the PVE API schema is not at {} (set PVE_APIDATA)",
                path.display()
            );
            None
        }
    }
}

fn get_paths(tree: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = tree.as_array().expect("list").iter().collect();
    while let Some(n) = stack.pop() {
        if let Some(c) = n["children"].as_array() {
            stack.extend(c.iter());
        }
        if n["info"]["GET"].is_object() {
            out.push(n["path"].as_str().unwrap_or("").to_string());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_get_paths_are_served() {
    let Some(tree) = schema() else { return };
    let api = Api::new(0.001).await;
    let (_, tasks) = api.get("/nodes/pve01/tasks").await;
    let upid = tasks["data"][0]["upid"]
        .as_str()
        .expect("a task")
        .to_string();
    let upid = percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let mut missing = Vec::new();
    let paths = get_paths(&tree);
    for p in &paths {
        let concrete = p
            .replace("{node}", "pve01")
            .replace("{vmid}", "1000")
            .replace("{storage}", "local")
            .replace("{upid}", &upid)
            .replace("{service}", "pveproxy")
            .replace("{userid}", "root@pam")
            .replace("{roleid}", "PVEAuditor")
            .replace("{poolid}", "pool1")
            .replace("{volume}", "local:iso/debian-12.12.0-amd64-netinst.iso");
        let concrete = regex_lite_fill(&concrete);
        let (s, _) = api.get(&concrete).await;
        if s == 501 {
            missing.push(p.clone());
        }
    }
    eprintln!(
        "{} of {} GET paths unimplemented:\n{}",
        missing.len(),
        paths.len(),
        missing.join("\n")
    );
    assert!(
        missing.len() <= MAX_UNIMPLEMENTED_GETS,
        "{} GET paths answer 501 (allowed {MAX_UNIMPLEMENTED_GETS})",
        missing.len()
    );
    api.h.shutdown().await;
}

/// Fills the remaining `{param}` placeholders with `x`.
fn regex_lite_fill(p: &str) -> String {
    p.split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread")]
async fn node_cluster_and_access_reads_answer_from_the_scenario() {
    let api = Api::new(0.001).await;
    let data = |b: &Value| b["data"].clone();
    let (s, b) = api.get("/nodes/pve01/dns").await;
    assert_eq!(s, 200);
    assert!(data(&b)["dns1"].is_string(), "{b}");
    let (_, b) = api.get("/nodes/pve02/services/pveproxy/state").await;
    assert_eq!(data(&b)["state"], "running", "{b}");
    let (s, b) = api.get("/nodes/pve02/services/nosuch/state").await;
    assert_eq!(s, 400, "{b}");
    let (_, b) = api.get("/nodes/pve03/apt/versions").await;
    assert_eq!(data(&b)[0]["RunningKernel"], "6.14.11-4-pve", "{b}");
    let (_, b) = api.get("/nodes/pve01/storage/local-lvm/status").await;
    let (total, used) = (data(&b)["total"].as_u64(), data(&b)["used"].as_u64());
    assert!(total.is_some_and(|t| used.is_some_and(|u| u < t)), "{b}");
    let (_, b) = api.get("/nodes/pve01/lxc").await;
    assert_eq!(data(&b), serde_json::json!([]));

    // rrddata: 70 samples, increasing time, one step apart
    for path in [
        "/nodes/pve01/rrddata?timeframe=hour",
        "/nodes/pve01/qemu/1000/rrddata?timeframe=day&cf=MAX",
        "/nodes/pve01/storage/local/rrddata?timeframe=week",
    ] {
        let (s, b) = api.get(path).await;
        assert_eq!(s, 200, "{path}: {b}");
        let rows = data(&b).as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 70, "{path}");
        let times: Vec<i64> = rows.iter().filter_map(|r| r["time"].as_i64()).collect();
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{path}");
    }
    let (s, b) = api.get("/nodes/pve01/rrddata").await;
    assert_eq!(
        (s, b["errors"]["timeframe"].is_string()),
        (400, true),
        "{b}"
    );

    let (_, b) = api.get("/cluster/tasks").await;
    let types: BTreeSet<String> = data(&b)
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["type"].as_str().map(str::to_string))
        .collect();
    assert!(
        types.contains("vzdump") && types.contains("qmigrate"),
        "{types:?}"
    );
    let (_, b) = api.get("/cluster/ha/status/current").await;
    assert_eq!(data(&b)[0]["quorate"], 1, "{b}");
    let (_, b) = api.get("/pools").await;
    assert_eq!(data(&b), serde_json::json!([]));
    let (s, b) = api.get("/pools/none").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "pool 'none' does not exist")
    );

    let (_, b) = api.get("/access/roles/ClaudeCodeManager").await;
    assert_eq!(data(&b)["SDN.Use"], 1, "{b}");
    let (_, b) = api.get("/access/users?full=1").await;
    let users: Vec<&str> = b["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["userid"].as_str())
        .collect();
    assert!(
        users.contains(&"claude-code@pve") && users.contains(&"nosdn@pve"),
        "{users:?}"
    );
    let (_, b) = api.get("/access/acl").await;
    assert!(data(&b).as_array().is_some_and(|a| a.len() >= 4), "{b}");

    // what the scenario does not have, answered as PVE does
    let (s, b) = api.get("/nodes/pve01/lxc/1000/config").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve01/lxc/1000.conf' does not exist"
        )
    );
    let (s, b) = api.get("/nodes/pve01/ceph/status").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "pveceph configuration not initialized")
    );
    let (_, b) = api.get("/cluster/firewall/rules").await;
    assert_eq!(data(&b), serde_json::json!([]));
    let (_, b) = api.get("/nodes/pve01/qemu/1000/agent/get-host-name").await;
    assert_eq!(data(&b)["result"]["host-name"], "web-01", "{b}");
    let (s, b) = api.get("/nodes/pve02/qemu/1007/agent/get-osinfo").await;
    assert_eq!((s, message(&b).as_str()), (500, "VM 1007 is not running"));
    let (_, b) = api.get("/nodes/pve01/qemu/1000/migrate").await;
    let local: Vec<&str> = b["data"]["local_disks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["volid"].as_str())
        .collect();
    assert!(local.contains(&"local-lvm:vm-1000-disk-0"), "{b}");
    let (_, b) = api.get("/storage/nfs-shared").await;
    assert_eq!(
        (data(&b)["type"].as_str(), data(&b)["shared"].as_i64()),
        (Some("nfs"), Some(1))
    );

    // the schema's permissions, with PVE's wording
    let (s, b) = api.call(AUDITOR, "GET", "/nodes/pve01/dns", &[]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (403, "Permission check failed (/nodes/pve01, Sys.Audit)")
    );
    let (s, b) = api
        .call(CLAUDE, "GET", "/nodes/pve01/hardware/usb", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (403, "Permission check failed (/, Sys.Modify)")
    );
    let (_, b) = api.call(CLAUDE, "GET", "/access/acl", &[]).await;
    assert_eq!(
        data(&b),
        serde_json::json!([]),
        "no Permissions.Modify, no entries"
    );
    api.h.shutdown().await;
}

fn http(api: &Api) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(api.h.ca_pem().as_bytes()).expect("ca");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client")
}

async fn login(api: &Api, user: &str, password: &str) -> (u16, Value) {
    let resp = http(api)
        .post(format!("{}/api2/json/access/ticket", api.h.url()))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .expect("request");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn ticket_login_cookie_csrf_and_expiry() {
    // 2 h of ticket lifetime = 0.72 s at this scale
    let api = Api::new(0.0001).await;
    let (s, _) = login(&api, "root@pam", "wrong").await;
    assert_eq!(s, 401);
    let (s, _) = login(&api, "claude-code@pve", "").await;
    assert_eq!(s, 401, "a user without a password cannot log in");
    let (s, b) = login(&api, "root@pam", "sim-root-password").await;
    assert_eq!(s, 200, "{b}");
    let d = &b["data"];
    let ticket = d["ticket"].as_str().expect("ticket").to_string();
    let csrf = d["CSRFPreventionToken"].as_str().expect("csrf").to_string();
    assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
    assert_eq!(d["username"], "root@pam");
    assert_eq!(d["cap"]["vms"]["VM.Allocate"], 1, "{d}");
    let url = |p: &str| format!("{}/api2/json{p}", api.h.url());
    let cookie = format!("PVEAuthCookie={}", urlencode(&ticket));
    let c = http(&api);
    let r = c
        .get(url("/nodes/pve01/status"))
        .header("Cookie", &cookie)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .get(url("/version"))
        .header("Authorization", format!("PVEAuthCookie={ticket}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    // writes need the CSRF token
    let put = |with_csrf: bool| {
        let mut rb = c
            .put(url("/nodes/pve02/qemu/1007/config"))
            .header("Cookie", &cookie)
            .form(&[("description", "via ticket")]);
        if with_csrf {
            rb = rb.header("CSRFPreventionToken", &csrf);
        }
        rb.send()
    };
    let r = put(false).await.expect("put");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.status().canonical_reason().map(|_| ()),
        Some(()),
        "a status line"
    );
    let r = put(true).await.expect("put");
    assert_eq!(r.status().as_u16(), 200);
    // renewal: the ticket as the password
    let (s, b) = login(&api, "root@pam", &ticket).await;
    assert_eq!(s, 200, "{b}");
    // expiry (scaled): the old ticket stops working
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .get(url("/version"))
            .header("Cookie", &cookie)
            .send()
            .await
            .expect("get");
        if r.status().as_u16() == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the ticket never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // world-readable without credentials
    let r = c.get(url("/access/domains")).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
    api.h.shutdown().await;
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn extjs_envelope_reports_success_in_the_body() {
    let api = Api::new(0.001).await;
    let t = api.h.token(ROOT).expect("token");
    let c = http(&api);
    let send = |m: reqwest::Method, p: &str, form: &[(&str, &str)]| {
        c.request(m, format!("{}/api2/extjs{p}", api.h.url()))
            .header(
                "Authorization",
                format!("PVEAPIToken={}={}", t.id, t.secret),
            )
            .form(form)
            .send()
    };
    let r = send(reqwest::Method::GET, "/version", &[])
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().await.expect("json");
    assert_eq!(
        (b["success"].as_i64(), b["data"]["version"].as_str()),
        (Some(1), Some("9.1.1"))
    );
    let r = send(
        reqwest::Method::PUT,
        "/nodes/pve02/qemu/1006/config",
        &[("name", "x")],
    )
    .await
    .expect("put");
    assert_eq!(r.status().as_u16(), 200, "extjs errors are HTTP 200");
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["success"], 0);
    assert_eq!(b["message"], "VM is locked (backup)\n");
    let r = send(reqwest::Method::POST, "/nodes/pve01/qemu/100/clone", &[])
        .await
        .expect("post");
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["success"], 0);
    assert!(b["errors"]["newid"].is_string(), "{b}");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clones_get_fresh_macs_and_a_nic_without_mac_gets_a_new_one() {
    let api = Api::new(0.001).await;
    let mac = |net: &str| {
        net.split(',')
            .next()
            .and_then(|m| m.split_once('='))
            .map(|(_, m)| m.to_string())
            .unwrap_or_default()
    };
    let tmpl = api.config("pve02", 102).await;
    let mut seen = BTreeSet::from([mac(tmpl["net0"].as_str().expect("net0"))]);
    for newid in 3000..3012u32 {
        let id = newid.to_string();
        let full = if newid % 2 == 0 { "0" } else { "1" };
        let st = api
            .run(
                CLAUDE,
                "POST",
                "/nodes/pve02/qemu/102/clone",
                &[("newid", &id), ("full", full)],
            )
            .await;
        assert_eq!(st, "OK");
        let m = mac(api.config("pve02", newid).await["net0"]
            .as_str()
            .expect("net0"));
        assert!(m.starts_with("BC:24:11:"), "{m}");
        assert!(
            seen.insert(m.clone()),
            "MAC {m} of {newid} repeats one seen before"
        );
    }
    let path = "/nodes/pve02/qemu/3000/config";
    let before = mac(api.config("pve02", 3000).await["net0"]
        .as_str()
        .expect("net0"));
    let (s, b) = api
        .call(CLAUDE, "PUT", path, &[("net0", "virtio,bridge=vmbr0")])
        .await;
    assert_eq!(s, 200, "{b}");
    let after = mac(api.config("pve02", 3000).await["net0"]
        .as_str()
        .expect("net0"));
    assert!(
        after.starts_with("BC:24:11:") && after != before,
        "{before} -> {after}"
    );
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            path,
            &[("net0", "virtio=AA:BB:CC:DD:EE:01,bridge=vmbr0")],
        )
        .await;
    assert_eq!(s, 200);
    let kept = api.config("pve02", 3000).await["net0"].clone();
    assert_eq!(mac(kept.as_str().expect("net0")), "AA:BB:CC:DD:EE:01");
    api.h.shutdown().await;
}

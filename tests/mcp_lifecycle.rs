//! The VM-lifecycle tools end to end through MCP against the simulator: the real binary,
//! a real config file, HTTPS with a pinned fingerprint, and the simulator's fault injection.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use common::mcp::{Client, RawSession, call, call_with, connect};

struct Env {
    sim: proxmox_manager::sim::SimHandle,
    dir: tempfile::TempDir,
    client: Client,
    recorder: common::mcp::Recorder,
}

async fn env(extra: &[&str]) -> Env {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (client, recorder) = connect(&config, &common::token_env(&sim), dir.path(), extra).await;
    Env {
        sim,
        dir,
        client,
        recorder,
    }
}

fn audit_lines(dir: &std::path::Path) -> Vec<Value> {
    let path = dir.join("proxmox-manager/audit.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

async fn vm_ids(client: &Client) -> BTreeSet<u64> {
    let (err, s, text) = call(
        client,
        "vm_list",
        json!({"page_size": 200, "include_templates": true}),
    )
    .await;
    assert!(!err, "{text}");
    s["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .filter_map(|v| v["vmid"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_configure_power_and_delete_a_vm() {
    let e = env(&[]).await;
    let c = &e.client;
    let before = vm_ids(c).await;

    let (err, s, text) = call(c, "vm_create", json!({
        "template": "ubuntu-noble-tmpl", "name": "web-09", "cores": 2, "memory": 2048, "disk": "+8G",
        "tags": ["Web", "blue"], "ssh_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRSnqBQw+QuXgQ2K9uvP5qlH4ipIsfZqXVUImG3kSLq test@example",
        "start": true, "wait_for_ip": true
    })).await;
    assert!(!err, "vm_create failed: {text}");
    let vmid = s["vmid"].as_u64().expect("vmid");
    assert!(
        (1000..=9999).contains(&vmid) && !before.contains(&vmid),
        "{vmid}"
    );
    assert_eq!(
        s["config"]["ciuser"], "ada",
        "cloud-init user from the config: {s}"
    );
    assert_eq!(s["config"]["sshkeys"], "1 key(s)");
    assert_eq!(s["config"]["tags"], "blue;web");
    assert_eq!(s["started"], true);
    assert!(
        !s["ip_addresses"].as_array().expect("ips").is_empty(),
        "guest agent address: {s}"
    );
    assert!(
        s["upids"].as_array().expect("upids").len() >= 3,
        "clone, config, resize, start tasks: {s}"
    );

    let (err, v, text) = call(c, "vm_get", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    assert_eq!(
        (
            v["cores"].as_u64(),
            v["memory_mib"].as_u64(),
            v["status"].as_str()
        ),
        (Some(2), Some(2048), Some("running"))
    );
    assert_eq!(v["cloudinit"]["ciuser"], "ada");
    assert!(
        !v["ip_addresses"].as_array().expect("ips").is_empty(),
        "{v}"
    );

    let (err, s, text) = call(
        c,
        "vm_set_tags",
        json!({"vmid": vmid, "add": ["Green"], "remove": ["blue"]}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["after"], json!(["green", "web"]));

    let (err, s, text) = call(c, "vm_resize", json!({"vmid": vmid, "memory": 4096})).await;
    assert!(!err, "{text}");
    assert!(
        s["pending_until_reboot"]
            .as_array()
            .expect("pending")
            .iter()
            .any(|k| k == "memory"),
        "{s}"
    );
    let (err, _, text) = call(c, "vm_resize", json!({"vmid": vmid, "disk": "10G"})).await;
    assert!(err && text.contains("cannot shrink"), "{text}");

    let (err, s, text) = call(c, "vm_start", json!({"vmid": vmid})).await;
    assert!(
        !err && s["noop"] == true,
        "already running is a no-op: {text}"
    );
    let (err, s, text) = call(c, "vm_reboot", json!({"vmid": vmid})).await;
    assert!(
        !err && s["after"] == "running" && s["upid"].is_string(),
        "{text}"
    );
    let (err, s, text) = call(c, "vm_shutdown", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    assert_eq!(s["after"], "stopped");
    let (err, s, text) = call(c, "vm_stop", json!({"vmid": vmid})).await;
    assert!(
        !err && s["noop"] == true,
        "already stopped is a no-op: {text}"
    );
    let (err, _, text) = call(c, "vm_reboot", json!({"vmid": vmid})).await;
    assert!(
        err && text.contains("vm_start"),
        "a stopped VM cannot reboot: {text}"
    );
    let (err, s, text) = call(c, "vm_start", json!({"vmid": vmid})).await;
    assert!(!err && s["after"] == "running", "{text}");
    // A hard stop is destructive: previewed without confirm, nothing sent.
    let (err, s, text) = call(c, "vm_stop", json!({"vmid": vmid})).await;
    assert!(
        !err && s["preview"] == true && s["after"] == "running" && s["upid"].is_null(),
        "{text}"
    );
    assert!(
        text.contains("confirm: true") && text.contains("vm_shutdown"),
        "{text}"
    );
    let (_, s, _) = call(c, "vm_get", json!({"vmid": vmid})).await;
    assert_eq!(s["status"], "running", "the preview stopped nothing");
    let (err, s, text) = call(c, "vm_stop", json!({"vmid": vmid, "confirm": true})).await;
    assert!(
        !err && s["preview"] == false && s["after"] == "stopped",
        "{text}"
    );

    let (err, _, text) = call(c, "vm_start", json!({"vmid": 100})).await;
    assert!(err && text.contains("template"), "{text}");

    let (err, s, text) = call(c, "vm_delete", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    assert_eq!(s["executed"], false);
    assert!(
        !s["disks"].as_array().expect("disks").is_empty()
            && !s["will_remove"].as_array().expect("list").is_empty()
    );
    assert!(
        vm_ids(c).await.contains(&vmid),
        "the preview deleted nothing"
    );

    let (err, s, text) = call(c, "vm_delete", json!({"vmid": vmid, "confirm": true})).await;
    assert!(!err, "{text}");
    assert_eq!(s["executed"], true);
    assert!(!vm_ids(c).await.contains(&vmid));

    let audit = audit_lines(e.dir.path());
    let tools: Vec<&str> = audit.iter().filter_map(|l| l["tool"].as_str()).collect();
    assert_eq!(
        tools.iter().filter(|t| **t == "vm_delete").count(),
        1,
        "the preview is not audited: {tools:?}"
    );
    assert_eq!(
        tools.iter().filter(|t| **t == "vm_stop").count(),
        1,
        "only the confirmed hard stop is audited: {tools:?}"
    );
    for t in ["vm_create", "vm_set_tags", "vm_resize", "vm_shutdown"] {
        assert!(tools.contains(&t), "{t} audited: {tools:?}");
    }
    let create = audit
        .iter()
        .find(|l| l["tool"] == "vm_create")
        .expect("create line");
    assert!(create["upids"].as_array().is_some_and(|u| !u.is_empty()) && create["outcome"] == "ok");
    drop(e.sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_refuse_before_anything_changes() {
    let e = env(&[]).await;
    let c = &e.client;
    let (err, _, text) = call(c, "vm_start", json!({"vmid": 20000})).await;
    assert!(
        err && text.contains("outside the managed ranges") && text.contains("allow_outside_ranges"),
        "{text}"
    );
    let (err, _, text) = call(c, "vm_delete", json!({"vmid": 1002, "confirm": true})).await;
    assert!(
        err && text.contains("protection"),
        "protected VM refused: {text}"
    );
    let (err, _, text) = call(
        c,
        "vm_create",
        json!({"template": "debian-12-tmpl", "name": "x", "vmid": 20000}),
    )
    .await;
    assert!(err && text.contains("outside vmid_ranges.vms"), "{text}");
    let (err, _, text) = call(c, "vm_create", json!({"template": "1000", "name": "x"})).await;
    assert!(err && text.contains("not a template"), "{text}");
    let (err, _, text) = call(
        c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "bad_name"}),
    )
    .await;
    // PVE's dns-name format, refused at the argument's schema.
    assert!(err && text.contains("argument `name`"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_concurrent_creates_are_collision_free() {
    let e = env(&[]).await;
    let before = vm_ids(&e.client).await;
    let mut set = tokio::task::JoinSet::new();
    let client = std::sync::Arc::new(e.client);
    for i in 0..32 {
        let c = std::sync::Arc::clone(&client);
        set.spawn(async move {
            call(
                &c,
                "vm_create",
                json!({"template": "ubuntu-noble-tmpl", "name": format!("load-{i:02}")}),
            )
            .await
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(r) = set.join_next().await {
        let (err, s, text) = r.expect("task");
        assert!(!err, "a create failed: {text}");
        let id = s["vmid"].as_u64().expect("vmid");
        assert!((1000..=9999).contains(&id), "{id} outside vmid_ranges.vms");
        assert!(!before.contains(&id), "{id} was already taken");
        assert!(ids.insert(id), "{id} handed out twice");
    }
    assert_eq!(ids.len(), 32);
    let after = vm_ids(&client).await;
    assert!(ids.iter().all(|id| after.contains(id)), "every VM exists");
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_notifications_arrive_during_a_clone() {
    let e = env(&[]).await;
    e.sim.slow_node("pve01", 200.0);
    e.sim.slow_node("pve02", 200.0);
    e.sim.slow_node("pve03", 200.0);
    let (err, _, text) = call_with(
        &e.client,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "slow-01"}),
        true,
    )
    .await;
    assert!(!err, "{text}");
    let progress = e.recorder.progress.lock().expect("lock").clone();
    assert!(
        progress.iter().any(|m| m.contains("clone")),
        "progress during the clone: {progress:?}"
    );
}

/// Raw JSON-RPC over stdio: the rmcp client attaches a progress token to every request, so the
/// "no token, no notifications" rule is checked with hand-written messages.
#[tokio::test(flavor = "multi_thread")]
async fn no_progress_notifications_without_a_progress_token() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let mut raw = RawSession::start(&config, &common::token_env(&sim), dir.path()).await;
    raw.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"vm_create","arguments":{"template":"ubuntu-noble-tmpl","name":"quiet-01"}}}"#).await;
    let seen = raw.read_until_id(2).await;
    assert!(seen.last().is_some_and(|l| l.contains("vmid")), "{seen:?}");
    assert!(
        !seen.iter().any(|l| l.contains("notifications/progress")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_is_waited_out_and_a_stuck_one_is_named() {
    let e = env(&["--lock-wait-s", "2"]).await;
    e.sim
        .hold_lock_for(1001, "backup", Duration::from_millis(400))
        .expect("hold lock");
    let (err, s, text) = call(
        &e.client,
        "vm_set_tags",
        json!({"vmid": 1001, "add": ["after-backup"]}),
    )
    .await;
    assert!(!err, "the lock was waited out: {text}");
    assert!(
        s["after"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|t| t == "after-backup")
    );

    // 1006 holds `backup` for good in the scenario.
    let (err, _, text) = call(
        &e.client,
        "vm_set_tags",
        json!({"vmid": 1006, "add": ["x"]}),
    )
    .await;
    assert!(err && text.contains("locked (backup)"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_clone_reports_exit_status_and_log_tail() {
    let e = env(&[]).await;
    let before = vm_ids(&e.client).await;
    let (_, t, _) = call(&e.client, "template_list", json!({})).await;
    let node = t["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|x| x["name"] == "ubuntu-noble-tmpl")
        .expect("template")["node"]
        .as_str()
        .expect("node")
        .to_string();
    e.sim
        .fail_next_task(&node, "qmclone", "clone failed: no space left on device");
    let (err, _, text) = call(
        &e.client,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "doomed"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(
        text.contains("no space left on device"),
        "exit status: {text}"
    );
    assert!(text.contains("UPID:"), "names the task: {text}");
    assert_eq!(vm_ids(&e.client).await, before, "no half-created VM left");
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_nodes_and_stubborn_guests_give_clear_errors() {
    let e = env(&[]).await;
    let (_, s, _) = call(&e.client, "vm_get", json!({"vmid": 1003})).await;
    let node = s["node"].as_str().expect("node").to_string();
    e.sim.set_node_online(&node, false).expect("fault");
    let (err, _, text) = call(&e.client, "vm_stop", json!({"vmid": 1003, "confirm": true})).await;
    assert!(
        err && text.contains(&format!("node {node} is offline")),
        "{text}"
    );
    e.sim.set_node_online(&node, true).expect("fault");

    e.sim.set_guest_ignores_acpi(1003, true);
    let (err, _, text) = call(
        &e.client,
        "vm_shutdown",
        json!({"vmid": 1003, "timeout_s": 5}),
    )
    .await;
    assert!(err && text.contains("force_after_timeout"), "{text}");
    let (err, s, text) = call(
        &e.client,
        "vm_shutdown",
        json!({"vmid": 1003, "timeout_s": 5, "force_after_timeout": true, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["after"], "stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn placement_on_another_node_follows_shared_storage() {
    let e = env(&[]).await;
    let c = &e.client;
    let (_, t, _) = call(c, "template_list", json!({})).await;
    let templates = t["templates"].as_array().expect("templates").clone();
    let shared = templates
        .iter()
        .find(|x| x["clonable_to_any_node"] == true)
        .expect("a template on shared storage");
    let local = templates
        .iter()
        .find(|x| x["clonable_to_any_node"] == false)
        .expect("a template on local storage");
    let other = |n: &Value| if n == "pve03" { "pve02" } else { "pve03" };

    let target = other(&shared["node"]);
    let (err, s, text) = call(
        c,
        "vm_create",
        json!({"template": shared["vmid"].to_string(), "name": "far-01", "node": target}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["node"], target);
    let (_, v, _) = call(c, "vm_get", json!({"vmid": s["vmid"]})).await;
    assert_eq!(v["node"], target, "the VM lives on the target node");

    let before = vm_ids(c).await;
    let (err, _, text) = call(c, "vm_create", json!({"template": local["vmid"].to_string(), "name": "far-02", "node": other(&local["node"])})).await;
    assert!(err && text.contains("can only be cloned on"), "{text}");
    assert_eq!(
        vm_ids(c).await,
        before,
        "refused before anything was created"
    );
}

/// Cancellation: the client cancels a slow create; the server stops waiting, the clone task
/// keeps running on PVE, and the audit log (the response is not sent, as MCP requires) names
/// its UPID.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_create_names_the_tasks_that_keep_running() {
    let sim = common::start_sim().await;
    for n in ["pve01", "pve02", "pve03"] {
        sim.slow_node(n, 5000.0);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let mut raw = RawSession::start(&config, &common::token_env(&sim), dir.path()).await;
    raw.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"vm_create","arguments":{"template":"ubuntu-noble-tmpl","name":"cancel-me"}}}"#).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !sim
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path.ends_with("/clone"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clone was never requested"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    raw.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"user changed their mind"}}"#).await;
    let line = loop {
        if let Some(l) = audit_lines(dir.path())
            .into_iter()
            .find(|l| l["tool"] == "vm_create")
        {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit record of the cancelled call"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let outcome = line["outcome"].as_str().unwrap_or("");
    assert!(
        outcome.contains("keep running") && outcome.contains(":qmclone:"),
        "{line}"
    );
    // The VM the clone is making is named, with its state.
    assert!(
        outcome.contains("cancel-me") && outcome.contains("may now exist"),
        "{line}"
    );
    raw.send(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
        .await;
    let seen = raw.read_until_id(3).await;
    assert!(
        !seen.iter().any(|l| l.contains(r#""id":2"#)),
        "no response to the cancelled request: {seen:?}"
    );
}

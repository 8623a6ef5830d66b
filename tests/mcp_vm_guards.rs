//! Issue 13 items on the VM tools, end to end through MCP against the simulator: clones keep
//! their own MAC and never the template marker, VM tools refuse templates, a forced shutdown
//! is previewed, every argument is checked before the first change, duplicate names are
//! refused, a resize reports what PVE has, and errors quote a bounded prefix of the input.

use crate::common;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use common::mcp::{Client, call, connect};

struct Env {
    sim: proxmox_manager::sim::SimHandle,
    _dir: tempfile::TempDir,
    client: Client,
}

async fn env() -> Env {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (client, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Env {
        sim,
        _dir: dir,
        client,
    }
}

fn mutations(sim: &proxmox_manager::sim::SimHandle) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

async fn config_of(sim: &proxmox_manager::sim::SimHandle, node: &str, vmid: u64) -> Value {
    let c = common::client_for(sim, common::MANAGER);
    let cfg: Value = c
        .get(&format!("/nodes/{node}/qemu/{vmid}/config"), &[])
        .await
        .expect("config");
    cfg
}

fn mac(net0: &str) -> String {
    net0.split(',')
        .next()
        .and_then(|m| m.split_once('='))
        .map(|(_, m)| m.to_string())
        .unwrap_or_default()
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRSnqBQw+QuXgQ2K9uvP5qlH4ipIsfZqXVUImG3kSLq ada@lab";

#[tokio::test(flavor = "multi_thread")]
async fn clones_keep_their_own_mac_and_never_the_template_tag() {
    let e = env().await;
    let tpl = config_of(&e.sim, "pve01", 100).await;
    let tpl_mac = mac(tpl["net0"].as_str().expect("template net0"));
    let mut macs = BTreeSet::new();
    for (i, vlan) in [None, Some(20), None, Some(30)].into_iter().enumerate() {
        let mut args = json!({"template": "100", "name": format!("mac-{i}"), "ssh_keys": KEY});
        if let Some(v) = vlan {
            args["vlan"] = json!(v);
        }
        let (err, s, text) = call(&e.client, "vm_create", args).await;
        assert!(!err, "{text}");
        let vmid = s["vmid"].as_u64().expect("vmid");
        let cfg = config_of(&e.sim, "pve01", vmid).await;
        let net0 = cfg["net0"].as_str().expect("net0");
        let m = mac(net0);
        assert_ne!(m, tpl_mac, "vm {vmid} got the template's MAC: {net0}");
        assert!(macs.insert(m.clone()), "MAC {m} given twice");
        if let Some(v) = vlan {
            assert!(net0.contains(&format!("tag={v}")), "{net0}");
        }
        let tags = cfg["tags"].as_str().unwrap_or("");
        assert!(
            !tags.split(';').any(|t| t == "template"),
            "vm {vmid} carries the template marker: {tags}"
        );
        assert!(tags.contains("ubuntu"), "other template tags stay: {tags}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_tools_refuse_templates_and_name_the_template_tool() {
    let e = env().await;
    let before = mutations(&e.sim);
    for (tool, args, instead) in [
        (
            "vm_delete",
            json!({"vmid": 100, "confirm": true}),
            "template_delete",
        ),
        ("vm_resize", json!({"vmid": 100, "cores": 4}), "vm_create"),
        (
            "vm_set_tags",
            json!({"vmid": 100, "add": ["x"]}),
            "template_from_cloud_image",
        ),
    ] {
        let (err, _, text) = call(&e.client, tool, args).await;
        assert!(err, "{tool} accepted a template");
        assert!(
            text.contains("is a template") && text.contains(instead),
            "{tool}: {text}"
        );
    }
    assert_eq!(mutations(&e.sim), before, "nothing was changed");
    // A VM whose id lies in the template range is a VM like any other.
    let (err, s, text) = call(
        &e.client,
        "vm_create",
        json!({"template": "100", "name": "low-id", "vmid": 555, "allow_outside_ranges": true, "ssh_keys": KEY}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["vmid"], 555);
    let (err, s, text) = call(
        &e.client,
        "vm_set_tags",
        json!({"vmid": 555, "add": ["low"]}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(
        s["after"]
            .as_array()
            .expect("after")
            .contains(&json!("low"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_shutdown_is_previewed_without_confirm() {
    let e = env().await;
    let before = mutations(&e.sim);
    let (err, s, text) = call(
        &e.client,
        "vm_shutdown",
        json!({"vmid": 1000, "force_after_timeout": true, "timeout_s": 5}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["preview"], true, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or("")
            .contains("confirm: true"),
        "{s}"
    );
    assert_eq!(mutations(&e.sim), before, "nothing was sent");
    let (err, s, text) = call(
        &e.client,
        "vm_shutdown",
        json!({"vmid": 1000, "force_after_timeout": true, "timeout_s": 5, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["preview"], false);
    assert_eq!(s["after"], "stopped", "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_argument_is_checked_before_anything_changes() {
    let e = env().await;
    let before = mutations(&e.sim);
    let base = json!({"template": "100", "name": "checked", "ssh_keys": KEY});
    let cases: Vec<(&str, Value, &str)> = vec![
        ("bridge", json!("vmbr0,firewall=0,link_down=1"), "bridge"),
        ("bridge", json!("vmbr9"), "bridge vmbr9"),
        ("storage", json!("nosuch"), "storage nosuch"),
        ("storage", json!("local"), "images"),
        ("node", json!("pve01;reboot"), "node"),
        ("ci_user", json!("ada\nroot"), "ci_user"),
        (
            "ipconfig0",
            json!("ip=10.0.0.5/24\nbootcmd: x"),
            "ipconfig0",
        ),
        (
            "ipconfig0",
            json!("ip=10.0.0.5/24,gw=10.0.0.1,foo=1"),
            "ipconfig0",
        ),
        ("nameserver", json!("10.0.0.53\nsearch evil"), "nameserver"),
        (
            "searchdomain",
            json!("lab\nnameserver 1.2.3.4"),
            "searchdomain",
        ),
        ("ssh_keys", json!("not a key"), "ssh_keys"),
        ("cores", json!(2_147_483_648u64), "cores"),
        ("cores", json!(4096), "cores"),
        ("memory", json!(9_223_372_036_854_775_808u64), "memory"),
        ("memory", json!(1u64 << 40), "memory"),
        ("name", json!("x".repeat(1 << 20)), "name"),
    ];
    for (field, value, expect) in cases {
        let mut args = base.clone();
        args[field] = value;
        let (err, _, text) = call(&e.client, "vm_create", args).await;
        assert!(err, "{field} accepted");
        assert!(text.contains(expect), "{field}: {text}");
        assert!(
            text.len() < 1200,
            "{field}: the error quotes a bounded prefix ({} bytes)",
            text.len()
        );
        assert!(
            !text.contains("\nroot") && !text.contains("\nsearch"),
            "{text}"
        );
    }
    assert_eq!(
        mutations(&e.sim),
        before,
        "a refused call sends nothing that changes the cluster"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_names_need_allow_duplicate_name() {
    let e = env().await;
    let (err, _, text) = call(
        &e.client,
        "vm_create",
        json!({"template": "100", "name": "web-01", "ssh_keys": KEY}),
    )
    .await;
    assert!(err, "a second web-01 was created");
    assert!(
        text.contains("web-01") && text.contains("allow_duplicate_name"),
        "{text}"
    );
    let (err, _, text) = call(
        &e.client,
        "vm_create",
        json!({"template": "100", "name": "web-01", "ssh_keys": KEY, "allow_duplicate_name": true}),
    )
    .await;
    assert!(!err, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resize_reports_what_pve_has_now() {
    let e = env().await;
    let (err, s, text) = call(
        &e.client,
        "vm_resize",
        json!({"vmid": 1007, "cores": 3, "memory": 3072, "disk": "+1G"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["config_now"]["cores"], "3", "{s}");
    assert_eq!(s["config_now"]["memory"], "3072", "{s}");
    let cfg = config_of(&e.sim, "pve02", 1007).await;
    let key = s["disk"]["key"].as_str().expect("disk key");
    let size = cfg[key]
        .as_str()
        .and_then(|d| d.split(',').find_map(|p| p.strip_prefix("size=")))
        .expect("size in config");
    assert_eq!(s["disk"]["after"], size, "{s}");
    // A running VM: the new memory is pending, and the report says so.
    let (err, s, text) = call(
        &e.client,
        "vm_resize",
        json!({"vmid": 1000, "memory": 6144}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["config_now"]["memory"], "6144", "{s}");
    let (err, _, text) = call(&e.client, "vm_resize", json!({"vmid": 1000, "cores": 500})).await;
    assert!(err && text.contains("more than node"), "{text}");
}

//! Containers through the guest tools, end to end through MCP against the simulator: each tool
//! finds the guest's type in `/cluster/resources` and calls the `lxc` endpoints for a
//! container; the tools only VMs have refuse one, saying why.
//!
//! The default scenario's containers are on pve02: 1200 pihole (unprivileged, running, tags
//! dns;prod, static 10.10.0.53/24), 1201 legacy-ldap (privileged), 1202 media-share (mp0
//! bind-mounts `/srv/media`), and the container template 110.

use crate::common;

use serde_json::{Value, json};

use common::mcp::{Client, call};

struct Env {
    sim: proxmox_manager::sim::SimHandle,
    _dir: tempfile::TempDir,
    client: Client,
}

async fn env() -> Env {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (client, _) =
        common::mcp::connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Env {
        sim,
        _dir: dir,
        client,
    }
}

async fn ok(c: &Client, tool: &str, args: Value) -> Value {
    let (err, s, text) = call(c, tool, args.clone()).await;
    assert!(!err, "{tool} {args} failed: {text}");
    s
}

async fn refused(c: &Client, tool: &str, args: Value) -> String {
    let (err, _, text) = call(c, tool, args.clone()).await;
    assert!(err, "{tool} {args} should have been refused: {text}");
    text
}

fn disk<'a>(detail: &'a Value, key: &str) -> &'a Value {
    detail["disks"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["key"] == key))
        .unwrap_or_else(|| panic!("no disk {key}: {detail}"))
}

/// What the simulator holds (its own state, not our client's reading).
fn sim_config(sim: &proxmox_manager::sim::SimHandle, vmid: u32, key: &str) -> Option<String> {
    sim.guest_config(vmid).and_then(|c| c.get(key).cloned())
}

fn sim_status(sim: &proxmox_manager::sim::SimHandle, vmid: u32) -> Option<&'static str> {
    sim.guest_placement()
        .get(&vmid)
        .map(|p| if p.running { "running" } else { "stopped" })
}

fn sim_node(sim: &proxmox_manager::sim::SimHandle, vmid: u32) -> Option<String> {
    sim.guest_placement().get(&vmid).map(|p| p.node.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_is_inspected_resized_tagged_and_powered_like_a_vm() {
    let e = env().await;
    let c = &e.client;

    // vm_get: the container's own settings, its mount points and its address.
    let d = ok(c, "vm_get", json!({"vmid": 1200})).await;
    assert_eq!(d["type"], "lxc", "{d}");
    assert_eq!(d["name"], "pihole");
    assert_eq!(d["node"], "pve02");
    assert_eq!(d["container"]["unprivileged"], true, "{d}");
    assert_eq!(disk(&d, "rootfs")["media"], "rootfs");
    assert_eq!(disk(&d, "rootfs")["size"], "8G");
    let nic = &d["nics"][0];
    assert_eq!(nic["model"], "veth", "{d}");
    assert_eq!(nic["ip"], "10.10.0.53/24", "{d}");
    assert_eq!(nic["bridge"], "vmbr0", "{d}");
    assert!(
        d["ip_addresses"]
            .as_array()
            .is_some_and(|a| a.iter().any(|ip| ip == "10.10.0.53")),
        "the running container's address from PVE's interface list: {d}"
    );
    let ldap = ok(c, "vm_get", json!({"vmid": 1201})).await;
    assert_eq!(ldap["container"]["unprivileged"], false, "{ldap}");
    let media = ok(c, "vm_get", json!({"vmid": 1202})).await;
    assert_eq!(disk(&media, "mp0")["media"], "bind", "{media}");
    assert_eq!(disk(&media, "mp0")["volume"], "/srv/media");

    // vm_resize: cores, memory and swap in one PUT, the root disk grown.
    let r = ok(
        c,
        "vm_resize",
        json!({"vmid": 1200, "cores": 2, "memory": 1024, "swap": 256, "disk": "+2G"}),
    )
    .await;
    assert_eq!(r["config_now"]["cores"], "2", "{r}");
    assert_eq!(r["config_now"]["swap"], "256", "{r}");
    assert_eq!(r["disk"]["key"], "rootfs", "{r}");
    assert_eq!(r["disk"]["before"], "8G", "{r}");
    assert_eq!(r["disk"]["after"], "10G", "{r}");
    assert_eq!(sim_config(&e.sim, 1200, "memory").as_deref(), Some("1024"));
    assert!(
        sim_config(&e.sim, 1200, "rootfs").is_some_and(|v| v.contains("size=10G")),
        "the simulator's rootfs grew"
    );
    // Each refusal comes before anything is sent, and says why.
    let t = refused(c, "vm_resize", json!({"vmid": 1200, "disk": "4G"})).await;
    assert!(t.contains("shrink"), "{t}");
    let t = refused(c, "vm_resize", json!({"vmid": 1200, "sockets": 2})).await;
    assert!(t.contains("container") && t.contains("sockets"), "{t}");
    let t = refused(
        c,
        "vm_resize",
        json!({"vmid": 1202, "disk_key": "mp0", "disk": "+1G"}),
    )
    .await;
    assert!(t.contains("bind-mounts") && t.contains("/srv/media"), "{t}");
    let t = refused(
        c,
        "vm_resize",
        json!({"vmid": 1200, "disk_key": "scsi0", "disk": "+1G"}),
    )
    .await;
    assert!(t.contains("rootfs"), "{t}");
    let t = refused(c, "vm_resize", json!({"vmid": 1005, "swap": 512})).await;
    assert!(t.contains("swap is a container setting"), "{t}");

    // vm_set_tags through the container's config.
    let r = ok(c, "vm_set_tags", json!({"vmid": 1200, "add": ["Critical"]})).await;
    assert_eq!(r["after"], json!(["critical", "dns", "prod"]), "{r}");
    assert_eq!(
        sim_config(&e.sim, 1200, "tags").as_deref(),
        Some("critical;dns;prod")
    );

    // Power: shutdown, start, reboot, and a hard stop only when confirmed.
    let r = ok(c, "vm_shutdown", json!({"vmid": 1200, "timeout_s": 30})).await;
    assert_eq!(
        (r["before"].as_str(), r["after"].as_str()),
        (Some("running"), Some("stopped")),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("container 1200")),
        "{r}"
    );
    let r = ok(c, "vm_shutdown", json!({"vmid": 1200})).await;
    assert_eq!(r["noop"], true, "{r}");
    let r = ok(c, "vm_start", json!({"vmid": 1200})).await;
    assert_eq!(r["after"], "running", "{r}");
    let r = ok(c, "vm_reboot", json!({"vmid": 1200})).await;
    assert_eq!(r["after"], "running", "{r}");
    assert!(
        r["upid"]
            .as_str()
            .is_some_and(|u| u.contains(":vzreboot:1200:")),
        "{r}"
    );
    let r = ok(c, "vm_stop", json!({"vmid": 1200})).await;
    assert_eq!(r["preview"], true, "{r}");
    assert_eq!(sim_status(&e.sim, 1200), Some("running"));
    let r = ok(c, "vm_stop", json!({"vmid": 1200, "confirm": true})).await;
    assert_eq!(r["after"], "stopped", "{r}");
    assert!(
        r["upid"]
            .as_str()
            .is_some_and(|u| u.contains(":vzstop:1200:")),
        "{r}"
    );
    let t = refused(
        c,
        "vm_start",
        json!({"vmid": 110, "allow_outside_ranges": true}),
    )
    .await;
    assert!(t.contains("ct_create with template: 110"), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_is_snapshotted_backed_up_moved_and_deleted() {
    let e = env().await;
    let c = &e.client;

    // Snapshots: no RAM state for a container; rollback says what is lost and restarts it.
    let t = refused(
        c,
        "snapshot_create",
        json!({"vmid": 1200, "name": "pre-upgrade", "vmstate": true}),
    )
    .await;
    assert!(t.contains("no RAM state"), "{t}");
    let r = ok(
        c,
        "snapshot_create",
        json!({"vmid": 1200, "name": "pre-upgrade"}),
    )
    .await;
    assert_eq!(r["with_ram"], false, "{r}");
    assert!(
        r["upid"]
            .as_str()
            .is_some_and(|u| u.contains(":vzsnapshot:1200:")),
        "{r}"
    );
    let l = ok(c, "snapshot_list", json!({"vmid": 1200})).await;
    assert_eq!(l["snapshots"][0]["name"], "pre-upgrade", "{l}");
    assert_eq!(l["current_parent"], "pre-upgrade", "{l}");
    let p = ok(
        c,
        "snapshot_rollback",
        json!({"vmid": 1200, "name": "pre-upgrade"}),
    )
    .await;
    assert_eq!(p["executed"], false, "{p}");
    assert!(
        p["effects"]
            .to_string()
            .contains("the container is running and is stopped hard first"),
        "{p}"
    );
    let r = ok(
        c,
        "snapshot_rollback",
        json!({"vmid": 1200, "name": "pre-upgrade", "start": true, "confirm": true}),
    )
    .await;
    assert_eq!(r["status_after"], "running", "{r}");
    let r = ok(
        c,
        "snapshot_delete",
        json!({"vmid": 1200, "name": "pre-upgrade", "confirm": true}),
    )
    .await;
    assert_eq!(r["executed"], true, "{r}");
    let l = ok(c, "snapshot_list", json!({"vmid": 1200})).await;
    assert_eq!(l["snapshots"], json!([]), "{l}");

    // A backup of a container is an lxc archive.
    let b = ok(
        c,
        "backup_now",
        json!({"vmids": [1200], "storage": "nfs-shared"}),
    )
    .await;
    let g = &b["guests"][0];
    assert_eq!(g["ok"], true, "{b}");
    assert!(
        g["volid"]
            .as_str()
            .is_some_and(|v| v.starts_with("nfs-shared:backup/vzdump-lxc-1200-")),
        "{b}"
    );

    // Migration: never live; a running container moves in restart mode.
    let k = ok(
        c,
        "vm_migrate_check",
        json!({"vmid": 1200, "target": "pve01"}),
    )
    .await;
    assert_eq!(k["type"], "lxc", "{k}");
    assert_eq!(k["can_migrate"], true, "{k}");
    assert_eq!(k["mode"], "restart", "{k}");
    assert!(k["notes"].to_string().contains("restart mode"), "{k}");
    let t = refused(
        c,
        "vm_migrate",
        json!({"vmid": 1200, "target": "pve01", "online": true}),
    )
    .await;
    assert!(t.contains("cannot move a container live"), "{t}");
    let m = ok(c, "vm_migrate", json!({"vmid": 1200, "target": "pve01"})).await;
    assert_eq!(m["verified_node"], "pve01", "{m}");
    assert!(
        m["message"]
            .as_str()
            .is_some_and(|t| t.contains("container 1200") && t.contains("restart migration")),
        "{m}"
    );
    assert_eq!(sim_node(&e.sim, 1200).as_deref(), Some("pve01"));
    assert_eq!(sim_status(&e.sim, 1200), Some("running"));
    // The bind mount ties 1202 to its node.
    let k = ok(
        c,
        "vm_migrate_check",
        json!({"vmid": 1202, "target": "pve01"}),
    )
    .await;
    assert_eq!(k["can_migrate"], false, "{k}");
    assert!(k["reasons"].to_string().contains("mp0"), "{k}");

    // Deletion: the preview names what goes and what PVE leaves (a bind mount's source).
    let p = ok(c, "vm_delete", json!({"vmid": 1202})).await;
    let will = p["will_remove"].to_string();
    assert!(will.contains("container 1202 (media-share)"), "{p}");
    assert!(will.contains("local-lvm:vm-1202-disk-0"), "{p}");
    assert!(
        will.contains("not the bind-mounted host directory /srv/media"),
        "{p}"
    );
    assert!(
        p["blocked_by"]
            .as_str()
            .is_some_and(|b| b.contains("running")),
        "{p}"
    );
    let r = ok(
        c,
        "vm_delete",
        json!({"vmid": 1201, "stop": true, "confirm": true}),
    )
    .await;
    assert_eq!(r["executed"], true, "{r}");
    assert!(
        sim_node(&e.sim, 1201).is_none(),
        "the simulator no longer has 1201"
    );
    assert!(r["upids"].to_string().contains(":vzdestroy:1201:"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_only_tools_refuse_a_container_with_the_reason() {
    let e = env().await;
    let c = &e.client;
    for (tool, args) in [
        ("template_convert", json!({"vmid": 1200})),
        (
            "template_delete",
            json!({"vmid": 110, "allow_outside_ranges": true}),
        ),
    ] {
        let t = refused(c, tool, args).await;
        assert!(
            t.contains("is a container") && t.contains(&format!("{tool} works on QEMU VMs only")),
            "{tool}: {t}"
        );
    }
    let t = refused(
        c,
        "vm_create",
        json!({"template": "debian-12-ct-tmpl", "name": "ct-clone"}),
    )
    .await;
    assert!(
        t.contains("is a container template") && t.contains("ct_create"),
        "{t}"
    );
    assert_eq!(sim_status(&e.sim, 1200), Some("running"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_operations_act_on_vms_and_containers_alike() {
    let e = env().await;
    let c = &e.client;
    let p = ok(
        c,
        "bulk_power",
        json!({"action": "shutdown", "vmids": [1005, 1200]}),
    )
    .await;
    let types: Vec<(u64, String)> = p["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .map(|g| {
            (
                g["vmid"].as_u64().unwrap_or(0),
                g["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![(1005, "qemu".to_string()), (1200, "lxc".to_string())],
        "{p}"
    );
    assert_eq!(p["skipped"], json!([]), "{p}");
    let r = ok(
        c,
        "bulk_power",
        json!({"action": "shutdown", "vmids": [1005, 1200], "confirm": true}),
    )
    .await;
    assert!(
        r["results"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|g| g["outcome"] == "done")),
        "{r}"
    );
    assert_eq!(sim_status(&e.sim, 1200), Some("stopped"));
    assert_eq!(sim_status(&e.sim, 1005), Some("stopped"));
    let r = ok(
        c,
        "bulk_power",
        json!({"action": "start", "vmids": [1005, 1200], "rolling": true, "confirm": true}),
    )
    .await;
    assert!(
        r["results"]
            .as_array()
            .is_some_and(|a| a.iter().all(|g| g["outcome"] == "done")),
        "{r}"
    );
    assert_eq!(sim_status(&e.sim, 1200), Some("running"));
    // vmstate applies to the VM; the container's snapshot is of its volumes only.
    let r = ok(
        c,
        "bulk_snapshot",
        json!({"name": "mixed-{vmid}", "vmids": [1005, 1200], "vmstate": true, "confirm": true}),
    )
    .await;
    assert!(
        r["results"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|g| g["outcome"] == "done")),
        "{r}"
    );
    let l = ok(c, "snapshot_list", json!({"vmid": 1200})).await;
    assert_eq!(l["snapshots"][0]["name"], "mixed-1200", "{l}");
}

/// One container from its creation to its deletion, every step through the guest tools.
#[tokio::test(flavor = "multi_thread")]
async fn a_created_container_lives_through_the_guest_tools_to_its_deletion() {
    let e = env().await;
    let c = &e.client;
    let r = ok(
        c,
        "ct_create",
        json!({"template": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
               "hostname": "life-01", "start": true, "disk": 4}),
    )
    .await;
    let vmid = r["vmid"].as_u64().expect("vmid");
    let node = r["node"].as_str().expect("node").to_string();
    assert_eq!(sim_status(&e.sim, vmid as u32), Some("running"), "{r}");
    let r = ok(
        c,
        "vm_resize",
        json!({"vmid": vmid, "memory": 768, "disk": "+1G"}),
    )
    .await;
    assert_eq!(
        (r["disk"]["before"].as_str(), r["disk"]["after"].as_str()),
        (Some("4G"), Some("5G")),
        "{r}"
    );
    ok(c, "snapshot_create", json!({"vmid": vmid, "name": "fresh"})).await;
    let b = ok(
        c,
        "backup_now",
        json!({"vmids": [vmid], "storage": "nfs-shared"}),
    )
    .await;
    let archive = b["guests"][0]["volid"]
        .as_str()
        .expect("archive")
        .to_string();
    assert!(archive.contains(&format!("vzdump-lxc-{vmid}-")), "{b}");
    let r = ok(
        c,
        "backup_restore",
        json!({"archive": archive, "confirm": true}),
    )
    .await;
    let restored = r["vmid"].as_u64().expect("restored vmid");
    assert_ne!(restored, vmid, "a new container by default: {r}");
    let d = ok(c, "vm_get", json!({"vmid": restored})).await;
    assert_eq!(
        (d["type"].as_str(), d["memory_mib"].as_u64()),
        (Some("lxc"), Some(768)),
        "{d}"
    );
    let target = if node == "pve01" { "pve02" } else { "pve01" };
    let m = ok(c, "vm_migrate", json!({"vmid": vmid, "target": target})).await;
    assert_eq!(m["verified_node"], target, "{m}");
    assert_eq!(sim_node(&e.sim, vmid as u32).as_deref(), Some(target));
    assert_eq!(
        sim_status(&e.sim, vmid as u32),
        Some("running"),
        "restarted on {target}"
    );
    for id in [vmid, restored] {
        let r = ok(
            c,
            "vm_delete",
            json!({"vmid": id, "stop": true, "confirm": true}),
        )
        .await;
        assert_eq!(r["executed"], true, "{r}");
        assert!(sim_node(&e.sim, id as u32).is_none(), "{id} is gone");
    }
}

//! Issue 15's snapshots and orphaned disks end to end through MCP against the simulator:
//! a snapshot taken and listed; a name PVE refuses, refused before the call; a rollback preview
//! that changes nothing, then the rollback; a deletion previewed then done; `bulk_snapshot`
//! over a tag; orphans found with their reasons and deleted only after confirm; an orphan that
//! became referenced between preview and deletion is kept.

use crate::common;

use serde_json::{Value, json};

use common::mcp::{Client, call};
use proxmox_manager::sim::SimHandle;

struct Env {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    client: Client,
}

async fn env() -> Env {
    env_with(&[]).await
}

/// The server started with `args` (e.g. `--lock-wait-s 1`).
async fn env_with(args: &[&str]) -> Env {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (client, _) =
        common::mcp::connect(&config, &common::token_env(&sim), dir.path(), args).await;
    Env {
        sim,
        _dir: dir,
        client,
    }
}

fn writes(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["snapshots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_are_taken_listed_rolled_back_after_a_preview_and_deleted() {
    let e = env().await;
    for bad in ["1st", "current", "with space", "x"] {
        let (err, _, text) = call(
            &e.client,
            "snapshot_create",
            json!({"vmid": 1000, "name": bad}),
        )
        .await;
        assert!(err, "{bad}: {text}");
    }
    assert_eq!(
        writes(&e.sim),
        Vec::<String>::new(),
        "refused before any call"
    );

    let (err, s, text) = call(
        &e.client,
        "snapshot_create",
        json!({"vmid": 1000, "name": "before-upgrade", "description": "pre 1.31"}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(
        s["upid"]
            .as_str()
            .is_some_and(|u| u.contains(":qmsnapshot:1000:")),
        "{s}"
    );
    let (err, _, text) = call(
        &e.client,
        "snapshot_create",
        json!({"vmid": 1000, "name": "before-upgrade"}),
    )
    .await;
    assert!(err && text.contains("already has a snapshot"), "{text}");

    let (_, list, _) = call(&e.client, "snapshot_list", json!({"vmid": 1000})).await;
    assert_eq!(names(&list), ["before-upgrade"], "{list}");
    assert_eq!(list["current_parent"], "before-upgrade");
    assert_eq!(list["snapshots"][0]["current"], true);

    // The rollback preview says what is lost and changes nothing.
    let before = writes(&e.sim).len();
    let (err, p, text) = call(
        &e.client,
        "snapshot_rollback",
        json!({"vmid": 1000, "name": "before-upgrade"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(p["executed"], false);
    let effects = p["effects"].to_string();
    assert!(
        effects.contains("lost") && effects.contains("stopped"),
        "a running VM without RAM in the snapshot is stopped: {p}"
    );
    assert_eq!(writes(&e.sim).len(), before, "a preview changes nothing");
    let (err, r, text) = call(
        &e.client,
        "snapshot_rollback",
        json!({"vmid": 1000, "name": "before-upgrade", "confirm": true, "start": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], true);
    assert_eq!(
        r["status_after"], "running",
        "start: true starts it again: {r}"
    );

    let (err, d, text) = call(
        &e.client,
        "snapshot_delete",
        json!({"vmid": 1000, "name": "before-upgrade"}),
    )
    .await;
    assert!(!err && d["executed"] == false, "{text}");
    let (err, _, text) = call(
        &e.client,
        "snapshot_delete",
        json!({"vmid": 1000, "name": "before-upgrade", "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    let (_, list, _) = call(&e.client, "snapshot_list", json!({"vmid": 1000})).await;
    assert!(names(&list).is_empty(), "{list}");
    let (err, _, text) = call(
        &e.client,
        "snapshot_delete",
        json!({"vmid": 1000, "name": "before-upgrade", "confirm": true}),
    )
    .await;
    assert!(err && text.contains("not found"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_with_vmstate_of_a_running_vm_saves_its_ram() {
    let e = env().await;
    // web-01 runs.
    let (err, s, text) = call(
        &e.client,
        "snapshot_create",
        json!({"vmid": 1000, "name": "with-ram", "vmstate": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["with_ram"], true, "{s}");
    let sent = e
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/qemu/1000/snapshot"))
        .expect("the snapshot POST");
    assert!(
        sent.params.iter().any(|p| p == "vmstate"),
        "vmstate is sent: {:?}",
        sent.params
    );
    let (_, list, _) = call(&e.client, "snapshot_list", json!({"vmid": 1000})).await;
    let snap = list["snapshots"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == "with-ram"))
        .unwrap_or_else(|| panic!("with-ram listed: {list}"));
    assert_eq!(snap["with_ram"], true, "the snapshot holds the RAM: {snap}");
    assert!(
        e.sim.guest_placement()[&1000].running,
        "the VM keeps running"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_waits_out_a_lock_and_names_one_that_stays() {
    let e = env_with(&["--lock-wait-s", "1"]).await;
    // A backup holding web-02 for a moment: waited out, then the snapshot is taken.
    e.sim
        .hold_lock_for(1001, "backup", std::time::Duration::from_millis(300))
        .expect("hold lock");
    let (err, s, text) = call(
        &e.client,
        "snapshot_create",
        json!({"vmid": 1001, "name": "after-backup"}),
    )
    .await;
    assert!(!err, "the lock was waited out: {text}");
    assert_eq!(s["name"], "after-backup", "{s}");
    // monitor-01 (1006) holds `lock: backup` for good: the error names the lock and the wait.
    let (err, _, text) = call(
        &e.client,
        "snapshot_create",
        json!({"vmid": 1006, "name": "blocked"}),
    )
    .await;
    assert!(
        err && text.contains("vm 1006")
            && text.contains("locked (backup)")
            && text.contains("after waiting"),
        "{text}"
    );
    let (_, list, _) = call(&e.client, "snapshot_list", json!({"vmid": 1006})).await;
    assert!(!names(&list).contains(&"blocked".to_string()), "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_snapshot_names_each_guest_from_the_pattern() {
    let e = env().await;
    let args = json!({"name": "pre-upgrade-{date}", "tags": ["k8s"]});
    let (err, p, text) = call(&e.client, "bulk_snapshot", args.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(p["executed"], false);
    let guests = p["guests"].as_array().expect("guests").clone();
    assert!(!guests.is_empty());
    assert!(
        guests.iter().all(|g| g["action"]
            .as_str()
            .is_some_and(|n| n.starts_with("pre-upgrade-20"))),
        "{p}"
    );
    assert_eq!(writes(&e.sim), Vec::<String>::new());
    let mut confirmed = args;
    confirmed["confirm"] = json!(true);
    let (err, r, text) = call(&e.client, "bulk_snapshot", confirmed).await;
    assert!(!err, "{text}");
    assert!(
        r["results"]
            .as_array()
            .is_some_and(|rs| rs.len() == guests.len() && rs.iter().all(|x| x["outcome"] == "done")),
        "{r}"
    );
    let vmid = guests[0]["vmid"].as_u64().expect("vmid");
    let (_, list, _) = call(&e.client, "snapshot_list", json!({"vmid": vmid})).await;
    assert!(
        names(&list).iter().any(|n| n.starts_with("pre-upgrade-")),
        "{list}"
    );
    // A pattern that expands to a name PVE refuses is refused before anything is sent.
    let (err, _, text) = call(
        &e.client,
        "bulk_snapshot",
        json!({"name": "{date}-x", "tags": ["k8s"]}),
    )
    .await;
    assert!(err, "{text}");
}

fn orphans(report: &Value) -> Vec<(String, String)> {
    report["orphans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["volid"].as_str().unwrap_or("").to_string(),
                o["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_are_found_with_their_reasons_and_deleted_only_after_confirm() {
    let e = env().await;
    let (err, r, text) = call(&e.client, "disk_orphans", json!({})).await;
    assert!(!err, "{text}");
    let found = orphans(&r);
    for reason in ["owner_missing", "unused", "unreferenced"] {
        assert!(
            found.iter().any(|(_, why)| why == reason),
            "an orphan of each kind: {r}"
        );
    }
    let volids: Vec<String> = found.iter().map(|(v, _)| v.clone()).collect();
    let (err, p, text) = call(&e.client, "disk_orphans_delete", json!({"volids": volids})).await;
    assert!(!err, "{text}");
    assert_eq!(p["executed"], false);
    assert!(p["freed_bytes"].as_u64().unwrap_or(0) > 0, "{p}");
    assert_eq!(
        writes(&e.sim),
        Vec::<String>::new(),
        "a preview deletes nothing"
    );

    // Between the preview and the confirmation, the unreferenced disk is attached again.
    let (unreferenced, _) = found
        .iter()
        .find(|(_, why)| why == "unreferenced")
        .expect("an unreferenced orphan");
    let vmid = r["orphans"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["volid"] == unreferenced.as_str()))
        .and_then(|o| o["vmid"].as_u64())
        .expect("owner");
    let owner = (e.sim.guest_placement()[&(vmid as u32)].node.clone(), vmid);
    let c = common::client_for(&e.sim, common::MANAGER);
    let _: Value = c
        .put(
            &format!("/nodes/{}/qemu/{}/config", owner.0, owner.1),
            &[("scsi9", unreferenced.clone())],
        )
        .await
        .expect("attach the disk again");
    let (err, d, text) = call(
        &e.client,
        "disk_orphans_delete",
        json!({"volids": volids, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    let outcome = |v: &str| {
        d["volumes"]
            .as_array()
            .and_then(|x| x.iter().find(|y| y["volid"] == v))
            .map(|y| y["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(outcome(unreferenced), "kept", "{d}");
    for (v, why) in &found {
        if v != unreferenced {
            assert_eq!(outcome(v), "deleted", "{v} ({why}): {d}");
        }
    }
    let (_, after, _) = call(&e.client, "disk_orphans", json!({})).await;
    assert!(orphans(&after).is_empty(), "{after}");
}

//! Snapshots in the simulator, answered as PVE answers them (see the doc comments of
//! `src/sim/api/qemu/snapshot.rs` and `src/sim/snapshot.rs`): the scenario's tree, each
//! endpoint's happy path and refusals (early HTTP errors and task errors in PVE's wording),
//! the lock a task holds, rollbacks that stop a guest or resume it from its RAM state, the tree
//! after deletes, the RAM state volume in storage content, the template refusal, clones,
//! migration of local disks with snapshots, injected task failures that leave everything as
//! it was, the orphan fixtures and their deletion, and the `qm` snapshot commands over SSH.
//! Every wait polls with a deadline.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, GIB, ROOT, message};

const SCALE: f64 = 0.002;
const MIB: u64 = 1024 * 1024;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn snap_path(node: &str, vmid: u32) -> String {
    format!("/nodes/{node}/qemu/{vmid}/snapshot")
}

async fn list(api: &Api, node: &str, vmid: u32) -> Vec<Value> {
    let (s, b) = api.get(&snap_path(node, vmid)).await;
    assert_eq!(s, 200, "{b}");
    b["data"].as_array().cloned().expect("a list")
}

fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no '{name}' in {list:?}"))
}

fn names(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect()
}

async fn content(api: &Api, node: &str, storage: &str) -> Vec<Value> {
    let (s, b) = api
        .get(&format!("/nodes/{node}/storage/{storage}/content"))
        .await;
    assert_eq!(s, 200, "{b}");
    b["data"].as_array().cloned().expect("a list")
}

fn volume<'a>(items: &'a [Value], volid: &str) -> Option<&'a Value> {
    items.iter().find(|i| i["volid"] == volid)
}

/// Polls until guest `vmid` holds `lock` (`None`: no lock).
async fn wait_lock(api: &Api, vmid: u32, lock: Option<&str>) {
    let end = deadline();
    loop {
        if api.h.guest_placement()[&vmid].lock.as_deref() == lock {
            return;
        }
        assert!(Instant::now() < end, "{vmid} never got lock {lock:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn task_error(
    api: &Api,
    who: &str,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
) -> String {
    let upid = api.upid(who, method, path, params).await;
    let exit = api.wait(&upid).await;
    assert_ne!(
        exit, "OK",
        "{method} {path} {params:?} must fail in its task"
    );
    exit
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scenario_tree_reads_like_pve() {
    let api = Api::new(SCALE).await;
    let l = list(&api, "pve01", 1003).await;
    assert_eq!(names(&l), ["pre-upgrade", "after-upgrade", "current"]);
    let pre = entry(&l, "pre-upgrade");
    assert_eq!(pre["vmstate"], 1);
    assert_eq!(pre["description"], "before the Kubernetes 1.31 upgrade");
    assert!(pre.get("parent").is_none(), "{pre}");
    assert!(pre["snaptime"].as_i64().is_some_and(|t| t > 1_000_000_000));
    let after = entry(&l, "after-upgrade");
    assert_eq!(
        (after["parent"].as_str(), after["vmstate"].as_i64()),
        (Some("pre-upgrade"), Some(0))
    );
    let current = entry(&l, "current");
    assert_eq!(current["parent"], "after-upgrade");
    assert_eq!(current["running"], 1);
    assert_eq!(current["description"], "You are here!");
    let cfg = api.config("pve01", 1003).await;
    assert_eq!(current["digest"], cfg["digest"]);
    assert_eq!(cfg["parent"], "after-upgrade");
    // a guest without snapshots has only `current`, without a parent
    let l = list(&api, "pve01", 1000).await;
    assert_eq!(names(&l), ["current"]);
    assert!(l[0].get("parent").is_none());
    // the snapshot's config as stored: typed like a config, no digest
    let (s, b) = api
        .get("/nodes/pve01/qemu/1003/snapshot/pre-upgrade/config")
        .await;
    assert_eq!(s, 200, "{b}");
    let snap = &b["data"];
    assert_eq!(
        snap["vmstate"],
        "nfs-shared:1003/vm-1003-state-pre-upgrade.raw"
    );
    assert_eq!(snap["memory"], "6144");
    assert_eq!(snap["runningmachine"], "pc-q35-9.2+pve1");
    assert!(snap["snaptime"].is_i64() && snap["cores"] == 4, "{snap}");
    assert!(snap.get("digest").is_none() && snap.get("lock").is_none());
    // `config?snapshot=` adds the file's digest
    let (s, b) = api
        .get("/nodes/pve01/qemu/1003/config?snapshot=after-upgrade")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"]["parent"], "pre-upgrade");
    assert_eq!(b["data"]["digest"], cfg["digest"]);
    let (s, b) = api
        .get("/nodes/pve01/qemu/1003/config?snapshot=after-upgrade&current=1")
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["current"],
        "cannot use 'snapshot' parameter with 'current'"
    );
    let (s, b) = api.get("/nodes/pve01/qemu/1003/config?snapshot=nope").await;
    assert_eq!(
        (s, message(&b)),
        (500, "snapshot 'nope' does not exist".into())
    );
    let (s, b) = api.get("/nodes/pve01/qemu/1003/snapshot/nope/config").await;
    assert_eq!(
        (s, message(&b)),
        (500, "snapshot 'nope' does not exist".into())
    );
    let (s, b) = api.get("/nodes/pve01/qemu/1003/snapshot/nope").await;
    assert_eq!(s, 200, "the index names its sub-paths whatever the name");
    assert_eq!(
        b["data"],
        serde_json::json!([{ "cmd": "rollback" }, { "cmd": "config" }])
    );
    let (s, _) = api.get("/nodes/pve02/qemu/1003/snapshot").await;
    assert_eq!(s, 500, "the guest lives on pve01");
    // the RAM state is an image of the guest in storage content, on every node (shared)
    for node in ["pve01", "pve03"] {
        let items = content(&api, node, "nfs-shared").await;
        let v = volume(&items, "nfs-shared:1003/vm-1003-state-pre-upgrade.raw")
            .unwrap_or_else(|| panic!("vmstate listed on {node}"));
        assert_eq!(
            (v["vmid"].as_u64(), v["format"].as_str()),
            (Some(1003), Some("raw"))
        );
        assert_eq!(v["content"], "images");
        assert_eq!(v["size"], (6144 * 2 + 500) * MIB);
        // disk snapshots are not volumes of their own
        assert!(
            !items
                .iter()
                .any(|i| i["volid"].as_str().is_some_and(|x| x.contains("snap_")))
        );
    }
    let (s, b) = api
        .get(
            "/nodes/pve01/storage/nfs-shared/content/nfs-shared:1003/vm-1003-state-pre-upgrade.raw",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["path"],
        "/mnt/pve/nfs-shared/images/1003/vm-1003-state-pre-upgrade.raw"
    );
    // read permissions: VM.Audit lists, the config needs any snapshot privilege or VM.Audit
    let (s, _) = api
        .call(AUDITOR, "GET", &snap_path("pve01", 1003), &[])
        .await;
    assert_eq!(s, 200);
    let (s, b) = api
        .call(
            AUDITOR,
            "POST",
            &snap_path("pve01", 1003),
            &[("snapname", "x1")],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            403,
            "Permission check failed (/vms/1003, VM.Snapshot)".into()
        )
    );
    let (s, b) = api
        .call(
            AUDITOR,
            "POST",
            "/nodes/pve01/qemu/1003/snapshot/pre-upgrade/rollback",
            &[],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            403,
            "Permission check failed (/vms/1003, VM.Snapshot|VM.Snapshot.Rollback)".into()
        )
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_checked_early_and_the_rest_in_the_task() {
    let api = Api::new(SCALE).await;
    let post = snap_path("pve01", 1003);
    let (s, b) = api
        .call(CLAUDE, "POST", &post, &[("snapname", "1st")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["snapname"],
        "invalid format - invalid configuration ID '1st'\n"
    );
    let long = "a".repeat(41);
    let (s, b) = api
        .call(CLAUDE, "POST", &post, &[("snapname", &long)])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["snapname"],
        "value may only be 40 characters long"
    );
    let (s, b) = api.call(CLAUDE, "POST", &post, &[]).await;
    assert_eq!(
        (s, b["errors"]["snapname"].as_str()),
        (400, Some("property is missing and it is not optional"))
    );
    let (s, b) = api
        .call(CLAUDE, "POST", &post, &[("snapname", "current")])
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            500,
            "unable to use snapshot name 'current' (reserved name)".into()
        )
    );
    let (s, b) = api
        .call(CLAUDE, "POST", &post, &[("snapname", "PENDING")])
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            500,
            "unable to use snapshot name 'pending' (reserved name)".into()
        )
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            &snap_path("pve02", 1003),
            &[("snapname", "ok")],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            500,
            "Configuration file 'nodes/pve02/qemu-server/1003.conf' does not exist".into()
        )
    );
    let digest = api.config("pve01", 1003).await["digest"].clone();
    // in the worker: a name in use, a template, a lock
    let e = task_error(
        &api,
        CLAUDE,
        "POST",
        &post,
        &[("snapname", "after-upgrade")],
    )
    .await;
    assert_eq!(e, "snapshot name 'after-upgrade' already used");
    let e = task_error(
        &api,
        CLAUDE,
        "POST",
        &snap_path("pve01", 100),
        &[("snapname", "t1")],
    )
    .await;
    assert_eq!(e, "you can't take a snapshot if it's a template");
    let e = task_error(
        &api,
        CLAUDE,
        "POST",
        &snap_path("pve02", 1006),
        &[("snapname", "b1")],
    )
    .await;
    assert_eq!(e, "VM is locked (backup)");
    assert_eq!(
        api.config("pve01", 1003).await["digest"],
        digest,
        "nothing changed"
    );

    // a held lock: task errors for create/rollback/delete, a 500 for the description update
    api.h.hold_lock(1003, "backup").expect("lock");
    for (method, path, params) in [
        ("POST", post.clone(), vec![("snapname", "s9")]),
        ("POST", format!("{post}/after-upgrade/rollback"), vec![]),
        ("DELETE", format!("{post}/after-upgrade"), vec![]),
    ] {
        let e = task_error(&api, CLAUDE, method, &path, &params).await;
        assert_eq!(e, "VM is locked (backup)", "{method} {path}");
    }
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            &format!("{post}/after-upgrade/config"),
            &[("description", "x")],
        )
        .await;
    assert_eq!((s, message(&b)), (500, "VM is locked (backup)".into()));
    api.h.release_lock(1003).expect("unlock");
    // the config flock: a 500 where PVE takes it without forking, a task error otherwise
    api.h.flock_timeout(1003, Duration::from_secs(30));
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            &format!("{post}/after-upgrade/config"),
            &[("description", "x")],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            500,
            "can't lock file '/var/lock/qemu-server/lock-1003.conf' - got timeout".into()
        )
    );
    let e = task_error(
        &api,
        CLAUDE,
        "DELETE",
        &format!("{post}/after-upgrade"),
        &[],
    )
    .await;
    assert!(e.starts_with("can't lock file"), "{e}");
    // unknown snapshots
    let e = task_error(&api, CLAUDE, "POST", &format!("{post}/nope/rollback"), &[]).await;
    assert!(
        e.starts_with("can't lock file"),
        "the flock comes first: {e}"
    );
    api.h.flock_timeout(1003, Duration::ZERO);
    let e = task_error(&api, CLAUDE, "POST", &format!("{post}/nope/rollback"), &[]).await;
    assert_eq!(e, "snapshot 'nope' does not exist");
    let e = task_error(&api, CLAUDE, "DELETE", &format!("{post}/nope"), &[]).await;
    assert_eq!(e, "snapshot 'nope' does not exist");
    let e = task_error(
        &api,
        CLAUDE,
        "POST",
        "/nodes/pve01/qemu/4242/snapshot/x1/rollback",
        &[],
    )
    .await;
    assert_eq!(
        e,
        "Configuration file 'nodes/pve01/qemu-server/4242.conf' does not exist"
    );
    assert_eq!(
        api.config("pve01", 1003).await["digest"],
        digest,
        "nothing changed"
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn descriptions_are_updated_in_place() {
    let api = Api::new(SCALE).await;
    let path = "/nodes/pve01/qemu/1003/snapshot/after-upgrade/config";
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            path,
            &[("description", "etcd restored from backup")],
        )
        .await;
    assert_eq!((s, &b["data"]), (200, &Value::Null));
    let l = list(&api, "pve01", 1003).await;
    assert_eq!(
        entry(&l, "after-upgrade")["description"],
        "etcd restored from backup"
    );
    // without a description PVE returns at once, not even looking for the snapshot
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/qemu/1003/snapshot/nope/config",
            &[],
        )
        .await;
    assert_eq!((s, &b["data"]), (200, &Value::Null));
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/qemu/1003/snapshot/nope/config",
            &[("description", "x")],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (500, "snapshot 'nope' does not exist".into())
    );
    // an empty one is not kept
    let (s, _) = api.call(CLAUDE, "PUT", path, &[("description", "")]).await;
    assert_eq!(s, 200);
    let l = list(&api, "pve01", 1003).await;
    assert_eq!(entry(&l, "after-upgrade")["description"], "");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn create_rollback_and_delete_on_a_running_guest() {
    let api = Api::new(SCALE).await;
    let post = snap_path("pve01", 1001);
    // with RAM: the lock and the `prepare` state while the task runs
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            &post,
            &[
                ("snapname", "with-ram"),
                ("vmstate", "1"),
                ("description", "before apt upgrade"),
            ],
        )
        .await;
    api.h.slow_node("pve01", 1.0);
    wait_lock(&api, 1001, Some("snapshot")).await;
    let l = list(&api, "pve01", 1001).await;
    assert_eq!(entry(&l, "with-ram")["snapstate"], "prepare");
    assert!(
        upid.contains(":qmsnapshot:1001:claude-code@pve!automation:"),
        "{upid}"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    wait_lock(&api, 1001, None).await;
    let log = api.task_log(&upid).await;
    for want in [
        "saving VM state and RAM using storage 'local-lvm'",
        "snapshotting 'drive-scsi0' (local-lvm:vm-1001-disk-0)",
        "  Logical volume \"snap_vm-1001-disk-0_with-ram\" created.",
        "snapshotting 'drive-efidisk0' (local-lvm:vm-1001-disk-1)",
    ] {
        assert!(log.iter().any(|l| l == want), "{want:?} in {log:?}");
    }
    assert!(
        log.iter()
            .any(|l| l.starts_with("completed saving the VM state in ")),
        "{log:?}"
    );
    let l = list(&api, "pve01", 1001).await;
    let s1 = entry(&l, "with-ram");
    assert_eq!(
        (s1["vmstate"].as_i64(), s1.get("snapstate")),
        (Some(1), None)
    );
    assert_eq!(s1["description"], "before apt upgrade");
    assert_eq!(entry(&l, "current")["parent"], "with-ram");
    let items = content(&api, "pve01", "local-lvm").await;
    let state = volume(&items, "local-lvm:vm-1001-state-with-ram").expect("vmstate listed");
    assert_eq!(
        (state["vmid"].as_u64(), state["format"].as_str()),
        (Some(1001), Some("raw"))
    );
    assert_eq!(state["size"], (4096 * 2 + 500) * MIB);
    assert!(
        volume(
            &content(&api, "pve02", "local-lvm").await,
            "local-lvm:vm-1001-state-with-ram"
        )
        .is_none(),
        "local storage: only on its node"
    );

    // without RAM, after a change (tags apply at once on a running guest): the new one's
    // parent is the first
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/qemu/1001/config",
            &[("tags", "prod;web;patched")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        api.run(CLAUDE, "POST", &post, &[("snapname", "no-ram")])
            .await,
        "OK"
    );
    let l = list(&api, "pve01", 1001).await;
    assert_eq!(names(&l), ["with-ram", "no-ram", "current"]);
    assert_eq!(entry(&l, "no-ram")["parent"], "with-ram");
    assert_eq!(entry(&l, "no-ram")["vmstate"], 0);
    assert_eq!(entry(&l, "current")["parent"], "no-ram");
    assert!(
        volume(
            &content(&api, "pve01", "local-lvm").await,
            "local-lvm:vm-1001-state-no-ram"
        )
        .is_none()
    );

    // a rollback without RAM stops the running guest and leaves it stopped
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(CLAUDE, "POST", &format!("{post}/no-ram/rollback"), &[])
        .await;
    api.h.slow_node("pve01", 1.0);
    wait_lock(&api, 1001, Some("rollback")).await;
    assert!(
        !api.h.guest_placement()[&1001].running,
        "stopped while it rolls back"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(upid.contains(":qmrollback:1001:"), "{upid}");
    let st = api.status("pve01", 1001).await;
    assert_eq!(st["status"], "stopped");
    assert!(st.get("lock").is_none(), "{st}");
    let cfg = api.config("pve01", 1001).await;
    assert_eq!(
        (cfg["parent"].as_str(), cfg["tags"].as_str()),
        (Some("no-ram"), Some("patched;prod;web"))
    );
    // `start=1` boots it after the rollback
    assert_eq!(
        api.run(
            CLAUDE,
            "POST",
            &format!("{post}/no-ram/rollback"),
            &[("start", "1")]
        )
        .await,
        "OK"
    );
    assert_eq!(api.status("pve01", 1001).await["status"], "running");
    // with RAM the guest runs again from it, with the config it had then
    let vmgenid = api.config("pve01", 1001).await["vmgenid"].clone();
    assert_eq!(
        api.run(CLAUDE, "POST", &format!("{post}/with-ram/rollback"), &[])
            .await,
        "OK"
    );
    assert_eq!(api.status("pve01", 1001).await["status"], "running");
    let cfg = api.config("pve01", 1001).await;
    assert_eq!(
        (cfg["parent"].as_str(), cfg["tags"].as_str()),
        (Some("with-ram"), Some("prod;web"))
    );
    assert_ne!(cfg["vmgenid"], vmgenid, "a rollback is a new generation");
    assert!(
        cfg.get("vmstate").is_none() && cfg.get("runningmachine").is_none(),
        "{cfg}"
    );

    // deleting the first snapshot: its child and the current state lose their parent, the
    // RAM state goes
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(CLAUDE, "DELETE", &format!("{post}/with-ram"), &[])
        .await;
    api.h.slow_node("pve01", 1.0);
    wait_lock(&api, 1001, Some("snapshot-delete")).await;
    assert_eq!(
        entry(&list(&api, "pve01", 1001).await, "with-ram")["snapstate"],
        "delete"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(upid.contains(":qmdelsnapshot:1001:"), "{upid}");
    let log = api.task_log(&upid).await;
    assert!(log.iter().any(|l| l == "  Logical volume \"snap_vm-1001-disk-0_with-ram\" successfully removed."), "{log:?}");
    let l = list(&api, "pve01", 1001).await;
    assert_eq!(names(&l), ["no-ram", "current"]);
    assert!(entry(&l, "no-ram").get("parent").is_none());
    assert!(entry(&l, "current").get("parent").is_none());
    assert!(api.config("pve01", 1001).await.get("parent").is_none());
    assert!(
        volume(
            &content(&api, "pve01", "local-lvm").await,
            "local-lvm:vm-1001-state-with-ram"
        )
        .is_none()
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_middle_snapshot_relinks_the_tree() {
    let api = Api::new(SCALE).await;
    let post = snap_path("pve02", 1007);
    for (name, parent) in [("a1", None), ("b1", Some("a1")), ("c1", Some("b1"))] {
        assert_eq!(
            api.run(
                CLAUDE,
                "POST",
                &post,
                &[("snapname", name), ("vmstate", "1")]
            )
            .await,
            "OK"
        );
        let l = list(&api, "pve02", 1007).await;
        assert_eq!(entry(&l, name)["parent"].as_str(), parent);
        // a stopped guest has no RAM to save
        assert_eq!(entry(&l, name)["vmstate"], 0);
    }
    assert_eq!(
        api.run(CLAUDE, "DELETE", &format!("{post}/b1"), &[("force", "1")])
            .await,
        "OK"
    );
    let l = list(&api, "pve02", 1007).await;
    assert_eq!(names(&l), ["a1", "c1", "current"]);
    assert_eq!(entry(&l, "c1")["parent"], "a1");
    assert_eq!(entry(&l, "current")["parent"], "c1");
    assert_eq!(
        api.run(CLAUDE, "DELETE", &format!("{post}/c1"), &[]).await,
        "OK"
    );
    assert_eq!(
        entry(&list(&api, "pve02", 1007).await, "current")["parent"],
        "a1"
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_clones_and_migrations_see_the_snapshots() {
    let api = Api::new(SCALE).await;
    let post = snap_path("pve02", 1007);
    assert_eq!(
        api.run(CLAUDE, "POST", &post, &[("snapname", "base")])
            .await,
        "OK"
    );
    // template: refused early while snapshots exist
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/qemu/1007/template", &[])
        .await;
    assert_eq!(
        (s, message(&b)),
        (
            500,
            "unable to create template, because VM contains snapshots".into()
        )
    );
    // a clone drops the snapshots; a clone of a snapshot takes that config
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve02/qemu/1007/config",
            &[("memory", "8192")],
        )
        .await;
    assert_eq!(s, 200);
    let clone = "/nodes/pve02/qemu/1007/clone";
    assert_eq!(
        api.run(CLAUDE, "POST", clone, &[("newid", "5101")]).await,
        "OK"
    );
    let l = list(&api, "pve02", 5101).await;
    assert_eq!(names(&l), ["current"]);
    let cfg = api.config("pve02", 5101).await;
    assert!(
        cfg.get("parent").is_none() && cfg["memory"] == "8192",
        "{cfg}"
    );
    assert_eq!(
        api.run(
            CLAUDE,
            "POST",
            clone,
            &[("newid", "5102"), ("snapname", "base")]
        )
        .await,
        "OK"
    );
    let cfg = api.config("pve02", 5102).await;
    assert_eq!(cfg["memory"], "4096", "the snapshot's memory: {cfg}");
    assert!(
        cfg.get("parent").is_none() && cfg.get("snaptime").is_none(),
        "{cfg}"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            clone,
            &[("newid", "5103"), ("snapname", "nope")],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (500, "snapshot 'nope' does not exist".into())
    );
    // a local LVM-thin disk with snapshots cannot be migrated
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1007/migrate",
            &[("target", "pve03")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "migration aborted");
    let log = api.task_log(&upid).await;
    assert!(
        log.iter().any(|l| l.ends_with(
            "can't migrate local disk 'local-lvm:vm-1007-disk-0': non-migratable snapshot exists"
        )),
        "{log:?}"
    );
    assert_eq!(api.h.guest_placement()[&1007].node, "pve02");
    // once the snapshot is gone it migrates
    assert_eq!(
        api.run(CLAUDE, "DELETE", &format!("{post}/base"), &[])
            .await,
        "OK"
    );
    assert_eq!(
        api.run(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1007/migrate",
            &[("target", "pve03")]
        )
        .await,
        "OK"
    );
    // snapshots on shared storage do not hold a guest back
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1003/migrate",
            &[("target", "pve02"), ("online", "1")],
        )
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "OK",
        "{:?}",
        api.task_log(&upid).await
    );
    assert_eq!(
        names(&list(&api, "pve02", 1003).await),
        ["pre-upgrade", "after-upgrade", "current"]
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_failures_leave_the_guest_as_it_was() {
    let api = Api::new(SCALE).await;
    let post = snap_path("pve01", 1003);
    let before = api.config("pve01", 1003).await;
    let tree = list(&api, "pve01", 1003).await;
    let cases = [
        (
            "qmsnapshot",
            "POST",
            post.clone(),
            vec![("snapname", "x1"), ("vmstate", "1")],
        ),
        (
            "qmrollback",
            "POST",
            format!("{post}/pre-upgrade/rollback"),
            vec![],
        ),
        (
            "qmdelsnapshot",
            "DELETE",
            format!("{post}/after-upgrade"),
            vec![],
        ),
    ];
    for (ttype, method, path, params) in cases {
        api.h.fail_next_task("pve01", ttype, "storage went away");
        let upid = api.upid(CLAUDE, method, &path, &params).await;
        assert!(upid.contains(&format!(":{ttype}:1003:")), "{upid}");
        assert_eq!(api.wait(&upid).await, "storage went away", "{ttype}");
        let log = api.task_log(&upid).await;
        assert_eq!(
            log.last().map(String::as_str),
            Some("TASK ERROR: storage went away")
        );
        assert_eq!(
            api.config("pve01", 1003).await,
            before,
            "{ttype} changed the config"
        );
        assert_eq!(
            list(&api, "pve01", 1003).await,
            tree,
            "{ttype} changed the tree"
        );
        assert_eq!(api.status("pve01", 1003).await["status"], "running");
        assert!(api.h.guest_placement()[&1003].lock.is_none());
        if ttype == "qmsnapshot" {
            assert!(
                log.iter()
                    .any(|l| l == "snapshot create failed: starting cleanup"),
                "{log:?}"
            );
            assert!(
                volume(
                    &content(&api, "pve01", "nfs-shared").await,
                    "nfs-shared:1003/vm-1003-state-x1.raw"
                )
                .is_none()
            );
        }
    }
    let (snaps, parent) = api.h.snapshots(1003).expect("guest");
    assert_eq!(parent.as_deref(), Some("after-upgrade"));
    assert_eq!(snaps.len(), 2);
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_are_listed_and_deleted_without_looking_at_configs() {
    let api = Api::new(SCALE).await;
    let lvm = content(&api, "pve02", "local-lvm").await;
    let orphan = volume(&lvm, "local-lvm:vm-1099-disk-0").expect("orphan of a deleted guest");
    assert_eq!(
        (
            orphan["vmid"].as_u64(),
            orphan["format"].as_str(),
            orphan["size"].as_u64()
        ),
        (Some(1099), Some("raw"), Some(8 * GIB))
    );
    assert_eq!(orphan["content"], "images");
    let left = volume(&lvm, "local-lvm:vm-1004-disk-5").expect("unreferenced image of 1004");
    assert_eq!(
        (left["vmid"].as_u64(), left["size"].as_u64()),
        (Some(1004), Some(16 * GIB))
    );
    assert!(
        volume(
            &content(&api, "pve01", "local-lvm").await,
            "local-lvm:vm-1099-disk-0"
        )
        .is_none(),
        "local to pve02"
    );
    let (_, r) = api.get("/cluster/resources?type=vm").await;
    assert!(
        !r["data"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|g| g["vmid"] == 1099),
        "no guest 1099"
    );
    let unused = "nfs-shared:1005/vm-1005-disk-2.qcow2";
    let nfs = content(&api, "pve03", "nfs-shared").await;
    let u = volume(&nfs, unused).expect("the unused disk");
    assert_eq!(
        (u["vmid"].as_u64(), u["format"].as_str(), u["size"].as_u64()),
        (Some(1005), Some("qcow2"), Some(10 * GIB))
    );
    assert_eq!(api.config("pve02", 1005).await["unused0"], unused);
    let (s, b) = api
        .get("/nodes/pve02/storage/local-lvm/content/local-lvm:vm-1099-disk-0")
        .await;
    assert_eq!(
        (s, b["data"]["path"].as_str()),
        (200, Some("/dev/pve/vm-1099-disk-0"))
    );

    let del = |node: &str, storage: &str, volid: &str| {
        format!("/nodes/{node}/storage/{storage}/content/{volid}")
    };
    // the orphan: an `imgdel` task named after its owner and storage
    let upid = api
        .upid(
            CLAUDE,
            "DELETE",
            &del("pve02", "local-lvm", "local-lvm:vm-1099-disk-0"),
            &[],
        )
        .await;
    assert!(upid.contains(":imgdel:1099@local-lvm:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(
        volume(
            &content(&api, "pve02", "local-lvm").await,
            "local-lvm:vm-1099-disk-0"
        )
        .is_none()
    );
    // PVE does not look at configs: the unused disk goes and `unused0` keeps naming it
    assert_eq!(
        api.run(CLAUDE, "DELETE", &del("pve02", "nfs-shared", unused), &[])
            .await,
        "OK"
    );
    assert!(volume(&content(&api, "pve02", "nfs-shared").await, unused).is_none());
    assert_eq!(api.config("pve02", 1005).await["unused0"], unused);
    // so does a stopped guest's disk; the guest then fails to start
    assert_eq!(
        api.run(
            CLAUDE,
            "DELETE",
            &del("pve02", "local-lvm", "vm-1007-disk-0"),
            &[]
        )
        .await,
        "OK"
    );
    assert!(
        volume(
            &content(&api, "pve02", "local-lvm").await,
            "local-lvm:vm-1007-disk-0"
        )
        .is_none()
    );
    assert!(
        api.config("pve02", 1007).await["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("local-lvm:vm-1007-disk-0,"))
    );
    let e = task_error(
        &api,
        CLAUDE,
        "POST",
        "/nodes/pve02/qemu/1007/status/start",
        &[],
    )
    .await;
    assert_eq!(e, "no such logical volume pve/vm-1007-disk-0");
    let (s, _) = api
        .get("/nodes/pve02/storage/local-lvm/content/vm-1007-disk-0")
        .await;
    assert_eq!(s, 500);
    // what the storage refuses: an LV a running guest holds open, a base volume in use
    let e = task_error(
        &api,
        CLAUDE,
        "DELETE",
        &del("pve02", "local-lvm", "local-lvm:vm-1006-disk-0"),
        &[],
    )
    .await;
    assert_eq!(
        e,
        "lvremove 'pve/vm-1006-disk-0' error:   Logical volume pve/vm-1006-disk-0 in use."
    );
    assert!(
        volume(
            &content(&api, "pve02", "local-lvm").await,
            "local-lvm:vm-1006-disk-0"
        )
        .is_some()
    );
    let e = task_error(
        &api,
        CLAUDE,
        "DELETE",
        &del(
            "pve01",
            "nfs-shared",
            "nfs-shared:100/base-100-disk-0.qcow2",
        ),
        &[],
    )
    .await;
    assert_eq!(
        e,
        "base volume '100/base-100-disk-0.qcow2' is still in use by linked clones"
    );
    // a snapshot's RAM state: freed, the section still names it, the rollback cannot resume
    let state = "nfs-shared:1003/vm-1003-state-pre-upgrade.raw";
    assert_eq!(
        api.run(ROOT, "DELETE", &del("pve01", "nfs-shared", state), &[])
            .await,
        "OK"
    );
    assert!(volume(&content(&api, "pve01", "nfs-shared").await, state).is_none());
    assert_eq!(
        entry(&list(&api, "pve01", 1003).await, "pre-upgrade")["vmstate"],
        1
    );
    let e = task_error(
        &api,
        CLAUDE,
        "POST",
        "/nodes/pve01/qemu/1003/snapshot/pre-upgrade/rollback",
        &[],
    )
    .await;
    assert_eq!(e, format!("volume '{state}' does not exist"));
    assert_eq!(api.status("pve01", 1003).await["status"], "stopped");
    // deleting what is not there is no error: the task only says so on a file storage
    let upid = api
        .upid(CLAUDE, "DELETE", &del("pve01", "nfs-shared", state), &[])
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert_eq!(
        log.first().map(String::as_str),
        Some(
            "disk image '/mnt/pve/nfs-shared/images/1003/vm-1003-state-pre-upgrade.raw' does not exist"
        )
    );
    let upid = api
        .upid(
            CLAUDE,
            "DELETE",
            &del("pve02", "local-lvm", "local-lvm:vm-1099-disk-0"),
            &[],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    assert_eq!(
        api.task_log(&upid).await,
        ["Removed volume 'local-lvm:vm-1099-disk-0'", "TASK OK"]
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn qm_snapshot_commands_over_ssh() {
    let api = Api::new(SCALE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = support::SimSsh::new(&api, dir.path());
    let out = pool
        .run(&api, "pve01", &["qm", "listsnapshot", "1003"])
        .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[0].starts_with("`-> pre-upgrade ")
            && lines[0].ends_with(" before the Kubernetes 1.31 upgrade"),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with(" `-> after-upgrade "),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].starts_with("  `-> current ") && lines[2].ends_with("You are here!"),
        "{}",
        out.stdout
    );

    let out = pool
        .run(
            &api,
            "pve01",
            &[
                "qm",
                "snapshot",
                "1000",
                "pre-patch",
                "--description",
                "before patching",
            ],
        )
        .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("snapshotting 'drive-scsi0' (local-lvm:vm-1000-disk-0)"),
        "{}",
        out.stdout
    );
    let out = pool
        .run(&api, "pve01", &["qm", "snapshot", "1000", "pre-patch"])
        .await;
    assert_eq!(out.status, Some(255), "{out:?}");
    assert!(
        out.stdout
            .contains("TASK ERROR: snapshot name 'pre-patch' already used"),
        "{}",
        out.stdout
    );
    let out = pool
        .run(&api, "pve01", &["qm", "snapshot", "1000", "current"])
        .await;
    assert_eq!(out.status, Some(255), "{out:?}");
    assert!(
        out.stderr
            .contains("unable to use snapshot name 'current' (reserved name)"),
        "{}",
        out.stderr
    );
    let out = pool
        .run(
            &api,
            "pve01",
            &["qm", "rollback", "1000", "pre-patch", "--start"],
        )
        .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(api.status("pve01", 1000).await["status"], "running");
    let out = pool
        .run(&api, "pve01", &["qm", "delsnapshot", "1000", "pre-patch"])
        .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(names(&list(&api, "pve01", 1000).await), ["current"]);
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_an_unused_entry_frees_its_volume_at_once_even_on_a_running_guest() {
    let api = Api::new(SCALE).await;
    assert!(nfs_content(&api).await.contains("vm-1005-disk-2.qcow2"));
    // 1005 runs; an unused entry is not a pending change: it goes now, with its volume.
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve02/qemu/1005/config",
            &[("delete", "unused0")],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, cfg) = api.get("/nodes/pve02/qemu/1005/config").await;
    assert!(cfg["data"].get("unused0").is_none(), "{cfg}");
    assert!(
        !nfs_content(&api).await.contains("vm-1005-disk-2.qcow2"),
        "the volume is freed"
    );
}

async fn nfs_content(api: &Api) -> String {
    let (s, b) = api.get("/nodes/pve02/storage/nfs-shared/content").await;
    assert_eq!(s, 200, "{b}");
    b.to_string()
}

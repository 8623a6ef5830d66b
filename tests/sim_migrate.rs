//! Migration and HA in the simulator, answered as PVE answers them (see the doc comments of
//! `src/sim/api/qemu/migrate.rs` and `src/sim/ha.rs`): the early errors of `POST .../migrate`
//! and the ones its `qmigrate` worker meets, the precondition `GET`, online and offline
//! migrations (lock, a log that grows while the task runs, the move at the end, volumes and
//! storage usage following), an injected failure, HA guests moved by the simulated CRM
//! (`hamigrate`, `/cluster/ha/...`, node-affinity rules), node maintenance over SSH with
//! `ha-manager`, and a generated 64-node cluster watched with the `SimHandle` observers. Every
//! wait polls with a deadline.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proxmox_manager::sim::scenario::HaRuleSpec;
use proxmox_manager::sim::{GenerateSpec, Scenario};
use serde_json::Value;
use support::{Api, CLAUDE, ROOT, message};

const SCALE: f64 = 0.002;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// Polls `/cluster/resources` until `vmid` is on `node`.
async fn wait_on_node(api: &Api, vmid: u32, node: &str) -> Value {
    let end = deadline();
    loop {
        if let Some(r) = api.resource(vmid).await
            && r["node"] == node
        {
            return r;
        }
        assert!(
            Instant::now() < end,
            "{vmid} never reached {node}: {:?}\nCRM log: {:?}",
            api.resource(vmid).await,
            api.h.ha_log()
        );
        tick().await;
    }
}

fn has(log: &[String], needle: &str) -> bool {
    log.iter().any(|l| l.contains(needle))
}

/// `YYYY-MM-DD HH:MM:SS ` at the start of a line.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b' '
        && line[..4].bytes().all(|c| c.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread")]
async fn early_errors_come_back_as_pve_sends_them() {
    let api = Api::new(SCALE).await;
    let post = |node: &str, vmid: u32| format!("/nodes/{node}/qemu/{vmid}/migrate");

    let (s, b) = api
        .call(CLAUDE, "POST", &post("pve01", 1000), &[("target", "pve01")])
        .await;
    assert_eq!(
        (s, b["errors"]["target"].as_str()),
        (400, Some("target is local node."))
    );
    let (s, b) = api.call(CLAUDE, "POST", &post("pve01", 1000), &[]).await;
    assert_eq!(
        (s, b["errors"]["target"].as_str()),
        (400, Some("property is missing and it is not optional"))
    );
    let (s, b) = api
        .call(CLAUDE, "POST", &post("pve01", 1000), &[("target", "pve99")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "no such cluster node 'pve99'")
    );
    // root-only options: a token of root@pam is not root@pam (semantics item 15)
    for (who, p, v) in [
        (CLAUDE, "force", "1"),
        (CLAUDE, "migration_type", "insecure"),
        (ROOT, "migration_network", "10.20.0.0/24"),
    ] {
        let (s, b) = api
            .call(
                who,
                "POST",
                &post("pve01", 1000),
                &[("target", "pve02"), (p, v)],
            )
            .await;
        assert_eq!(
            (s, b["errors"][p].as_str()),
            (400, Some("Only root may use this option.")),
            "{p}: {b}"
        );
    }
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            &post("pve01", 1000),
            &[("target", "pve02"), ("migration_network", "10.20.0/24")],
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"]["migration_network"]
            .as_str()
            .is_some_and(|e| e.contains("valid CIDR")),
        "{b}"
    );
    let (s, b) = api
        .call(CLAUDE, "POST", &post("pve01", 1000), &[("target", "pve02")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "can't migrate running VM without --online")
    );
    // the lock is checked before the run state
    let (s, b) = api
        .call(CLAUDE, "POST", &post("pve02", 1006), &[("target", "pve01")])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "VM is locked (backup)"));
    let (s, b) = api
        .call(CLAUDE, "POST", &post("pve02", 1000), &[("target", "pve03")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve02/qemu-server/1000.conf' does not exist"
        )
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            &post("pve02", 1007),
            &[("target", "pve03"), ("targetstorage", "1,nfs-shared")],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["targetstorage"].as_str()),
        (
            400,
            Some(
                "failed to parse storage map: identity mapping cannot be combined with other mappings"
            )
        )
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            &post("pve02", 1007),
            &[("target", "pve03"), ("targetstorage", "local-lvm:local")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "storage 'local' does not support vm images")
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            &post("pve02", 1007),
            &[("target", "pve03"), ("bwlimit", "-1")],
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            &post("pve02", 1007),
            &[("target", "pve03"), ("surprise", "1")],
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // without VM.Migrate
    let (s, _) = api
        .call(
            support::AUDITOR,
            "POST",
            &post("pve02", 1007),
            &[("target", "pve03")],
        )
        .await;
    assert_eq!(s, 403);
    // nothing moved, nothing locked
    assert_eq!(api.resource(1007).await.expect("1007")["node"], "pve02");
    assert!(api.resource(1000).await.expect("1000")["lock"].is_null());
    api.h.shutdown().await;
}

/// Runs a migration that fails in its worker; returns (exit status, log).
async fn failing(
    api: &Api,
    node: &str,
    vmid: u32,
    params: &[(&str, &str)],
) -> (String, Vec<String>) {
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            &format!("/nodes/{node}/qemu/{vmid}/migrate"),
            params,
        )
        .await;
    assert!(upid.contains(&format!(":qmigrate:{vmid}:")), "{upid}");
    let exit = api.wait(&upid).await;
    (exit, api.task_log(&upid).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_refuses_local_devices_attached_local_disks_and_offline_targets() {
    let api = Api::new(SCALE).await;
    // a passed-through GPU: prepare() dies before anything is locked
    let (exit, log) = failing(&api, "pve01", 1013, &[("target", "pve02"), ("online", "1")]).await;
    assert_eq!(exit, "migration aborted");
    assert!(
        has(
            &log,
            "ERROR: migration aborted (duration 00:00:00): can't migrate VM which uses local devices: hostpci0"
        ),
        "{log:#?}"
    );
    assert_eq!(
        log.last().map(String::as_str),
        Some("TASK ERROR: migration aborted")
    );

    // live migration of local-lvm disks without with-local-disks: the volume scan reports
    let (exit, log) = failing(&api, "pve01", 1014, &[("target", "pve02"), ("online", "1")]).await;
    assert_eq!(exit, "migration aborted");
    for line in [
        "conntrack state migration not supported or disabled, active connections might get dropped",
        "starting migration of VM 1014 to node 'pve02' (10.10.0.12)",
        "found generated disk 'local-lvm:vm-1014-cloudinit' (in current VM config)",
        "found local disk 'local-lvm:vm-1014-disk-0' (attached)",
        "can't migrate local disk 'local-lvm:vm-1014-disk-0': can't live migrate attached local disks without with-local-disks option",
        "ERROR: Problem found while scanning volumes - can't migrate VM - check log",
        "aborting phase 1 - cleanup resources",
        "ERROR: migration aborted (duration 00:00:0",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    assert!(log[..log.len() - 1].iter().all(|l| stamped(l)), "{log:#?}");
    let st = api.status("pve01", 1014).await;
    assert_eq!(st["status"], "running");
    assert!(st["lock"].is_null(), "{st}");

    // an offline target passes the API's checks; the worker cannot reach it
    api.h.set_node_online("pve03", false).expect("pve03");
    let (exit, log) = failing(&api, "pve02", 1007, &[("target", "pve03")]).await;
    assert_eq!(exit, "migration aborted");
    assert!(
        has(
            &log,
            "Can't connect to destination address using public key"
        ),
        "{log:#?}"
    );
    assert_eq!(api.resource(1007).await.expect("1007")["node"], "pve02");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_precondition_lists_nodes_disks_and_local_resources() {
    let api = Api::new(SCALE).await;
    api.h.set_node_online("pve03", false).expect("pve03");
    let (s, b) = api.get("/nodes/pve01/qemu/1014/migrate").await;
    assert_eq!(s, 200, "{b}");
    let d = &b["data"];
    assert_eq!(d["running"], 1);
    // offline members are listed too (`get_nodelist`)
    assert_eq!(d["allowed_nodes"], serde_json::json!(["pve02", "pve03"]));
    assert_eq!(d["not_allowed_nodes"]["pve02"], serde_json::json!({}));
    assert_eq!(d["local_resources"], serde_json::json!([]));
    assert_eq!(d["has-dbus-vmstate"], 1);
    let disks = d["local_disks"].as_array().cloned().unwrap_or_default();
    let disk = disks
        .iter()
        .find(|x| x["volid"] == "local-lvm:vm-1014-disk-0")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(
        (
            disk["is_attached"].as_u64(),
            disk["cdrom"].as_u64(),
            disk["drivename"].as_str()
        ),
        (Some(1), Some(0), Some("scsi0"))
    );
    assert_eq!(disk["size"].as_u64(), Some(16 * support::GIB));
    assert!(
        disks
            .iter()
            .any(|x| x["volid"] == "local-lvm:vm-1014-cloudinit" && x["cdrom"] == 1),
        "{d}"
    );

    let (_, b) = api.get("/nodes/pve01/qemu/1013/migrate").await;
    assert_eq!(
        b["data"]["local_resources"],
        serde_json::json!(["hostpci0"]),
        "{b}"
    );
    assert_eq!(b["data"]["local_disks"], serde_json::json!([]), "{b}");
    let (s, b) = api.get("/nodes/pve02/qemu/1006/migrate").await;
    assert_eq!((s, message(&b).as_str()), (500, "VM is locked (backup)"));
    let (s, _) = api
        .call(
            support::AUDITOR,
            "GET",
            "/nodes/pve01/qemu/1014/migrate",
            &[],
        )
        .await;
    assert_eq!(s, 403);
    let (_, b) = api.get("/nodes/pve01/qemu/1012/migrate").await;
    assert_eq!(
        b["data"]["dependent-ha-resources"],
        serde_json::json!([]),
        "{b}"
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_online_migration_locks_logs_as_it_goes_and_moves_the_running_guest() {
    let api = Api::new(SCALE).await;
    // ~9 simulated seconds × 0.002 × 100 = about 1.8 s of real time
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1003/migrate",
            &[("target", "pve02"), ("online", "1")],
        )
        .await;
    assert!(
        upid.contains(":qmigrate:1003:claude-code@pve!automation:"),
        "{upid}"
    );
    let end = deadline();
    let mut lengths = Vec::new();
    let (mut saw_lock, mut saw_progress_while_running, mut saw_placement_lock) =
        (false, false, false);
    loop {
        let st = api.task_status(&upid).await;
        if st["status"] == "stopped" {
            break;
        }
        let log = api.task_log(&upid).await;
        if has(&log, "migration active, transferred") {
            saw_progress_while_running = true;
        }
        lengths.push(log.len());
        // (the task may end between two requests: then the config is on pve02 already)
        let (s, cur) = api.get("/nodes/pve01/qemu/1003/status/current").await;
        if s == 200 {
            assert_eq!(cur["data"]["status"], "running");
            saw_lock |= cur["data"]["lock"] == "migrate";
        }
        saw_placement_lock |= api.h.guest_placement()[&1003].lock.as_deref() == Some("migrate");
        assert!(Instant::now() < end, "the migration never ended");
        tick().await;
    }
    assert!(
        saw_lock && saw_placement_lock,
        "lock: migrate was never visible"
    );
    assert!(saw_progress_while_running, "no transfer line while running");
    lengths.dedup();
    assert!(
        lengths.len() >= 3,
        "the log did not grow while running: {lengths:?}"
    );
    assert_eq!(api.wait(&upid).await, "OK");

    let log = api.task_log(&upid).await;
    for line in [
        "starting migration of VM 1003 to node 'pve02' (10.10.0.12)",
        "starting VM 1003 on remote node 'pve02'",
        "start remote tunnel",
        "starting online/live migration on unix:/run/qemu-server/1003.migrate",
        "migration downtime limit: 100 ms",
        "migration cachesize: 1.0 GiB",
        "migration active, transferred 1.0 GiB of 8.0 GiB VM-state, 1.0 GiB/s",
        "migration status: completed",
        "migration finished successfully (duration 00:00:",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    assert_eq!(log.last().map(String::as_str), Some("TASK OK"));
    assert!(log[..log.len() - 1].iter().all(|l| stamped(l)), "{log:#?}");

    // the guest lives on pve02 now, still running; pve01 no longer has its config
    let cur = api.status("pve02", 1003).await;
    assert_eq!(cur["status"], "running");
    assert!(cur["lock"].is_null(), "{cur}");
    let (s, b) = api.get("/nodes/pve01/qemu/1003/status/current").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve01/qemu-server/1003.conf' does not exist"
        )
    );
    let row = api.resource(1003).await.expect("1003");
    assert_eq!(
        (row["node"].as_str(), row["lock"].is_null()),
        (Some("pve02"), true)
    );
    assert!(
        api.config("pve02", 1003).await["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("nfs-shared:1003/vm-1003-disk-0.qcow2"))
    );
    let (_, b) = api
        .get("/nodes/pve01/tasks?typefilter=qmigrate&vmid=1003")
        .await;
    assert_eq!(b["data"][0]["status"], "OK", "{b}");

    // a second migration of a guest whose first one still runs: the worker waits for the
    // migration lock and gives up
    api.h.slow_node("pve02", 100.0);
    let first = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1004/migrate",
            &[("target", "pve03"), ("online", "1")],
        )
        .await;
    let second = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1004/migrate",
            &[("target", "pve01"), ("online", "1")],
        )
        .await;
    if second.0 == 200 {
        let exit = api.wait(second.1["data"].as_str().expect("upid")).await;
        assert_eq!(
            exit,
            "can't lock file '/var/lock/pve-manager/pve-migrate-1004' - got timeout"
        );
    } else {
        // the first worker set its lock already
        assert_eq!(message(&second.1), "VM is locked (migrate)");
    }
    assert_eq!(api.wait(&first).await, "OK");
    wait_on_node(&api, 1004, "pve03").await;
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_and_live_storage_migrations_move_local_volumes_and_their_usage() {
    let api = Api::new(SCALE).await;
    let used = |n: &'static str| {
        let api = &api;
        async move { api.storage_used(n, "local-lvm").await }
    };
    let (src0, dst0) = (used("pve02").await, used("pve03").await);
    // a stopped guest with a 32 GiB local-lvm disk
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1007/migrate",
            &[("target", "pve03"), ("online", "1")],
        )
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "OK",
        "{:#?}",
        api.task_log(&upid).await
    );
    let log = api.task_log(&upid).await;
    for line in [
        "copying local disk images",
        "  Logical volume \"vm-1007-disk-0\" created.",
        "524288+0 records in",
        "34359738368 bytes (34 GB, 32 GiB) copied, ",
        "successfully imported 'local-lvm:vm-1007-disk-0'",
        "volume 'local-lvm:vm-1007-disk-0' is 'local-lvm:vm-1007-disk-0' on the target",
        "migration finished successfully",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    assert!(
        !has(&log, "starting VM 1007"),
        "an offline migration: {log:#?}"
    );
    let cfg = api.config("pve03", 1007).await;
    assert!(
        cfg["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("local-lvm:vm-1007-disk-0,"))
    );
    assert_eq!(api.status("pve03", 1007).await["status"], "stopped");
    let (src1, dst1) = (used("pve02").await, used("pve03").await);
    assert!(src1 < src0 && dst1 > dst0, "{src0}->{src1}, {dst0}->{dst1}");
    assert_eq!(src0 - src1, dst1 - dst0, "the same bytes left and arrived");
    let (_, b) = api
        .get("/nodes/pve03/storage/local-lvm/content?vmid=1007")
        .await;
    assert!(
        b["data"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v["volid"] == "local-lvm:vm-1007-disk-0")),
        "{b}"
    );

    // live, with its disks mirrored onto the shared storage
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1014/migrate",
            &[
                ("target", "pve02"),
                ("online", "1"),
                ("with-local-disks", "1"),
                ("targetstorage", "nfs-shared"),
                ("bwlimit", "512000"),
            ],
        )
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "OK",
        "{:#?}",
        api.task_log(&upid).await
    );
    let log = api.task_log(&upid).await;
    for line in [
        "volume 'local-lvm:vm-1014-disk-0' is 'nfs-shared:1014/vm-1014-disk-0.raw' on the target",
        "starting storage migration",
        "scsi0: start migration to nbd:unix:/run/qemu-server/1014_nbd.migrate:exportname=drive-scsi0",
        "drive mirror is starting for drive-scsi0 with bandwidth limit: 512000 KiB/s",
        "drive-scsi0: transferred 0.0 B of 16.0 GiB (0.00%) in 0s",
        "drive-scsi0: transferred 16.0 GiB of 16.0 GiB (100.00%) in ",
        "all 'mirror' jobs are ready",
        "migration speed limit: 500.0 MiB/s",
        "drive-scsi0: mirror-job finished",
        "stopping NBD storage migration server on target.",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    // the mirror lines are printed bare, as BlockJob.pm prints them
    assert!(
        log.iter()
            .any(|l| l.starts_with("drive-scsi0: transferred "))
    );
    let cfg = api.config("pve02", 1014).await;
    assert!(
        cfg["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("nfs-shared:1014/vm-1014-disk-0.raw,")),
        "{cfg}"
    );
    assert!(
        cfg["ide2"]
            .as_str()
            .is_some_and(|d| d.starts_with("nfs-shared:1014/vm-1014-cloudinit.raw")),
        "{cfg}"
    );
    assert_eq!(api.status("pve02", 1014).await["status"], "running");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_injected_failure_leaves_the_guest_on_its_node_unlocked() {
    let api = Api::new(SCALE).await;
    api.h
        .fail_next_task("pve01", "qmigrate", "migration aborted");
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1003/migrate",
            &[("target", "pve03"), ("online", "1")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "migration aborted");
    let log = api.task_log(&upid).await;
    let n = log.len();
    assert!(
        log[n - 2].contains("ERROR: migration aborted (duration 00:00:"),
        "{log:#?}"
    );
    assert_eq!(log[n - 1], "TASK ERROR: migration aborted");
    let cur = api.status("pve01", 1003).await;
    assert_eq!(cur["status"], "running");
    assert!(cur["lock"].is_null(), "{cur}");
    assert_eq!(api.resource(1003).await.expect("1003")["node"], "pve01");
    // and the next one goes through
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1003/migrate",
            &[("target", "pve03"), ("online", "1")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    wait_on_node(&api, 1003, "pve03").await;
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ha_guest_is_moved_by_the_crm_after_a_quick_hamigrate() {
    let api = Api::new(SCALE).await;
    let row = api.resource(1012).await.expect("1012");
    assert_eq!(row["hastate"], "started", "{row}");
    assert!(api.resource(1000).await.expect("1000")["hastate"].is_null());
    let cur = api.status("pve01", 1012).await;
    assert_eq!(
        cur["ha"],
        serde_json::json!({ "managed": 1, "state": "started" })
    );

    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1012/migrate",
            &[("target", "pve02"), ("online", "1")],
        )
        .await;
    assert!(
        upid.contains(":hamigrate:1012:claude-code@pve!automation:"),
        "{upid}"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    assert_eq!(
        api.task_log(&upid).await,
        [
            "Requesting HA migration for VM 1012 to node pve02",
            "TASK OK"
        ]
    );
    let row = wait_on_node(&api, 1012, "pve02").await;
    assert_eq!(row["status"], "running");
    // the CRM's LRM ran the real migration as root@pam on the source node
    let (_, b) = api
        .get("/nodes/pve01/tasks?typefilter=qmigrate&vmid=1012")
        .await;
    let task = &b["data"][0];
    assert_eq!(
        (task["user"].as_str(), task["status"].as_str()),
        (Some("root@pam"), Some("OK")),
        "{b}"
    );
    let end = deadline();
    while api.resource(1012).await.expect("1012")["hastate"] != "started" {
        assert!(Instant::now() < end);
        tick().await;
    }

    // the HA API: resources, status, the migrate request
    let (_, b) = api.get("/cluster/ha/resources").await;
    assert_eq!(b["data"][0]["sid"], "vm:1012", "{b}");
    assert_eq!(b["data"][0]["state"], "started", "{b}");
    let (_, b) = api.get("/cluster/ha/resources/1012").await;
    assert_eq!(b["data"]["sid"], "vm:1012", "{b}");
    let (s, b) = api.get("/cluster/ha/resources/vm:1000").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "no such resource 'vm:1000'")
    );
    let (s, b) = api.get("/cluster/ha/groups").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "cannot index groups: ha groups have been migrated to rules"
        )
    );
    let (_, b) = api.get("/cluster/ha/status/current").await;
    let entries = b["data"].as_array().cloned().unwrap_or_default();
    let service = entries
        .iter()
        .find(|e| e["id"] == "service:vm:1012")
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(service["status"], "vm:1012 (pve02, started)", "{b}");
    assert!(entries.iter().any(|e| e["type"] == "master"), "{b}");
    assert!(entries.iter().any(|e| e["id"] == "lrm:pve02"), "{b}");

    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/cluster/ha/resources/vm:1012/migrate",
            &[("node", "pve03")],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"],
        serde_json::json!({ "sid": "vm:1012", "requested-node": "pve03" })
    );
    wait_on_node(&api, 1012, "pve03").await;
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/cluster/ha/resources/vm:1000/migrate",
            &[("node", "pve03")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "resource 'vm:1000' is not HA managed")
    );
    let (s, _) = api
        .call(
            support::AUDITOR,
            "POST",
            "/cluster/ha/resources/vm:1012/migrate",
            &[("node", "pve01")],
        )
        .await;
    assert_eq!(s, 403);
    // a request to an offline node is dropped by the CRM
    api.h.set_node_online("pve01", false).expect("pve01");
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve03/qemu/1012/migrate",
            &[("target", "pve01"), ("online", "1")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    let end = deadline();
    while !api
        .h
        .ha_log()
        .iter()
        .any(|l| l.contains("node not online: migrate vm:1012 pve01"))
    {
        assert!(Instant::now() < end, "{:?}", api.h.ha_log());
        tick().await;
    }
    assert_eq!(api.resource(1012).await.expect("1012")["node"], "pve03");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_affinity_rule_pulls_its_guest_to_the_preferred_node() {
    let mut scenario = Scenario::embedded().expect("scenario");
    scenario.ha_rules.push(HaRuleSpec {
        rule: "ha-app-on-pve02".into(),
        resources: "vm:1012".into(),
        nodes: "pve02:2,pve03:1".into(),
        strict: false,
        comment: None,
    });
    let api = Api::with_scenario(scenario, SCALE).await;
    let (_, b) = api.get("/cluster/ha/rules").await;
    assert_eq!(
        b["data"][0],
        serde_json::json!({ "rule": "ha-app-on-pve02", "type": "node-affinity", "resources": "vm:1012",
            "nodes": "pve02:2,pve03:1", "strict": 0, "order": 1, "digest": b["data"][0]["digest"] })
    );
    let (s, b) = api.get("/cluster/ha/rules/none").await;
    assert_eq!((s, message(&b).as_str()), (500, "no such ha rule 'none'"));
    // failback: the CRM moves it from pve01 to the rule's highest-priority node
    wait_on_node(&api, 1012, "pve02").await;
    assert!(
        api.h
            .ha_log()
            .iter()
            .any(|l| l.contains("migrate service 'vm:1012' to node 'pve02' (running)")),
        "{:?}",
        api.h.ha_log()
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_maintenance_over_ssh_evacuates_ha_guests_and_brings_them_back() {
    let api = Api::new(SCALE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = support::SimSsh::new(&api, dir.path());

    let out = pool.run(&api, "pve02", &["ha-manager", "status"]).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "quorum OK", "{}", out.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("master pve01 (active, ")),
        "{}",
        out.stdout
    );
    assert!(
        lines.contains(&"fencing armed (CRM watchdog active)"),
        "{}",
        out.stdout
    );
    assert!(
        lines.contains(&"service vm:1012 (pve01, started)"),
        "{}",
        out.stdout
    );

    let out = pool
        .run(
            &api,
            "pve02",
            &[
                "ha-manager",
                "crm-command",
                "node-maintenance",
                "enable",
                "pve01",
            ],
        )
        .await;
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "", "")
    );
    // the basic scheduler picks the node with the fewest guests: pve03
    wait_on_node(&api, 1012, "pve03").await;
    let (_, b) = api.get("/cluster/resources?type=node").await;
    let pve01 = b["data"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == "pve01").cloned())
        .expect("pve01");
    assert_eq!(pve01["hastate"], "maintenance", "{b}");
    let out = pool.run(&api, "pve02", &["ha-manager", "status"]).await;
    assert!(
        out.stdout.contains("lrm pve01 (maintenance mode, "),
        "{}",
        out.stdout
    );
    let end = deadline();
    loop {
        let out = pool.run(&api, "pve02", &["ha-manager", "status"]).await;
        if out.stdout.contains("service vm:1012 (pve03, started)") {
            break;
        }
        assert!(Instant::now() < end, "{}", out.stdout);
        tick().await;
    }
    // non-HA guests stay where they are (the operator moves them)
    assert_eq!(api.resource(1000).await.expect("1000")["node"], "pve01");

    let out = pool
        .run(
            &api,
            "pve03",
            &[
                "ha-manager",
                "crm-command",
                "node-maintenance",
                "disable",
                "pve01",
            ],
        )
        .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    wait_on_node(&api, 1012, "pve01").await;
    assert!(
        api.h.ha_log().iter().any(|l| l.contains(
            "moving service 'vm:1012' back to 'pve01', node came back from maintenance."
        )),
        "{:?}",
        api.h.ha_log()
    );

    let out = pool
        .run(
            &api,
            "pve01",
            &[
                "ha-manager",
                "crm-command",
                "node-maintenance",
                "enable",
                "pve99",
            ],
        )
        .await;
    assert_eq!(
        (out.status, out.stderr.as_str()),
        (Some(255), "no such cluster node 'pve99'\n")
    );
    let out = pool.run(&api, "pve01", &["ha-manager", "frobnicate"]).await;
    assert_eq!(out.status, Some(255));
    assert!(
        out.stderr
            .starts_with("ERROR: unknown command 'ha-manager frobnicate'"),
        "{out:?}"
    );
    let out = pool.run(&api, "pve01", &["ha-manager", "config"]).await;
    assert!(out.stdout.starts_with("vm:1012\n"), "{out:?}");
    assert!(out.stdout.contains("\tstate started\n"), "{out:?}");
    let out = pool.run(&api, "pve01", &["ha-managr", "status"]).await;
    assert_eq!(out.status, Some(127));
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generated_cluster_runs_and_the_observers_watch_capacity_during_moves() {
    let spec = GenerateSpec {
        nodes: 64,
        guests: 2000,
        seed: 11,
        ..GenerateSpec::default()
    };
    let scenario = Scenario::generate(&spec);
    let api = Api::with_scenario(scenario, SCALE).await;
    let (_, b) = api.get("/cluster/resources?type=vm").await;
    assert_eq!(b["data"].as_array().map(Vec::len), Some(2000));
    let mem = api.h.node_memory();
    assert_eq!(mem.len(), 64);
    let placement = api.h.guest_placement();
    assert_eq!(placement.len(), 2000);

    let over_capacity = |p: &BTreeMap<u32, proxmox_manager::sim::GuestPlacement>| {
        let mut used: BTreeMap<&str, u64> = BTreeMap::new();
        for g in p.values().filter(|g| g.running) {
            *used.entry(g.node.as_str()).or_default() += g.maxmem_bytes;
        }
        used.into_iter()
            .filter(|(n, u)| *u > mem[*n])
            .map(|(n, u)| format!("{n}: {u} > {}", mem[n]))
            .collect::<Vec<_>>()
    };
    assert!(over_capacity(&placement).is_empty());

    // move a node's running shared-storage guests to the emptiest node, a few at a time
    let mut used: BTreeMap<String, u64> = BTreeMap::new();
    for g in placement.values().filter(|g| g.running) {
        *used.entry(g.node.clone()).or_default() += g.maxmem_bytes;
    }
    let source = used
        .iter()
        .max_by_key(|(_, u)| **u)
        .map(|(n, _)| n.clone())
        .expect("a node");
    let target = mem
        .iter()
        .filter(|(n, _)| **n != source)
        .max_by_key(|(n, m)| m.saturating_sub(used.get(*n).copied().unwrap_or(0)))
        .map(|(n, _)| n.clone())
        .expect("a target");
    let movers: Vec<u32> = placement
        .iter()
        .filter(|(_, g)| g.node == source && g.running && g.lock.is_none())
        .map(|(v, _)| *v)
        .take(6)
        .collect();
    let mut upids = Vec::new();
    for v in &movers {
        let cfg = api.config(&source, *v).await;
        let local = cfg["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("local-lvm:"));
        let mut params = vec![("target", target.as_str()), ("online", "1")];
        if local {
            params.push(("with-local-disks", "1"));
        }
        upids.push(
            api.upid(
                ROOT,
                "POST",
                &format!("/nodes/{source}/qemu/{v}/migrate"),
                &params,
            )
            .await,
        );
    }
    let end = deadline();
    loop {
        let p = api.h.guest_placement();
        let problems = over_capacity(&p);
        assert!(problems.is_empty(), "{problems:?}");
        if movers
            .iter()
            .all(|v| p[v].node == target && p[v].lock.is_none())
        {
            break;
        }
        assert!(Instant::now() < end, "moves never finished");
        tick().await;
    }
    for u in &upids {
        let exit = api.wait(u).await;
        assert!(exit == "OK" || u.contains(":hamigrate:"), "{u}: {exit}");
    }
    api.h.shutdown().await;
}

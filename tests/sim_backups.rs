//! Backups in the simulator, answered as PVE answers them (see the doc comments of
//! `src/sim/api/backup/`): `POST /nodes/{node}/vzdump` (the guest locked while it is backed up,
//! a log that grows, vzdump's per-guest lines, the archive in `content=backup` with its notes;
//! a multi-guest job where one guest fails ends `job errors`), restore through
//! `POST /nodes/{node}/qemu` with `archive` (config from the archive, new MACs with
//! `unique=1`, refusal over an existing guest without `force`, replacement with it, what a
//! failure leaves), the backup jobs of `/cluster/backup` with `next-run`, their seeded last
//! runs in the task archive, and `/cluster/backup-info/not-backed-up`. Every wait polls with a
//! deadline.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, ROOT, message};

/// Small enough for quick tests, large enough to watch a 32 GiB guest's backup run.
const SCALE: f64 = 0.005;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

async fn tick() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

fn has(log: &[String], needle: &str) -> bool {
    log.iter().any(|l| l.contains(needle))
}

/// `content=backup` items of a storage as `node` sees them.
async fn backups(api: &Api, node: &str, storage: &str) -> Vec<Value> {
    let (s, b) = api
        .get(&format!(
            "/nodes/{node}/storage/{storage}/content?content=backup"
        ))
        .await;
    assert_eq!(s, 200, "{b}");
    b["data"].as_array().cloned().unwrap_or_default()
}

/// The archive path of `creating vzdump archive '<path>'` lines, as volume ids.
fn archives_of(log: &[String], storage: &str, dumpdir: &str) -> Vec<String> {
    log.iter()
        .filter_map(|l| l.strip_prefix("INFO: creating vzdump archive '"))
        .filter_map(|l| l.strip_suffix('\''))
        .filter_map(|p| p.strip_prefix(&format!("{dumpdir}/")))
        .map(|f| format!("{storage}:backup/{f}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_of_one_guest_locks_it_logs_as_it_runs_and_leaves_an_archive_with_notes() {
    let api = Api::new(SCALE).await;
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[
                ("vmid", "1000"),
                ("storage", "local"),
                ("compress", "zstd"),
                ("mode", "snapshot"),
                ("notes-template", "{{guestname}} on {{node}} ({{vmid}})"),
            ],
        )
        .await;
    // task id = the vmid when exactly one guest of this node is backed up (semantics item 18)
    assert!(
        upid.contains(":vzdump:1000:claude-code@pve!automation:"),
        "{upid}"
    );
    // while it runs: `lock: backup`, a log that grows
    let end = deadline();
    let (mut saw_lock, mut sizes) = (false, Vec::new());
    loop {
        let st = api.task_status(&upid).await;
        if st["status"] == "stopped" {
            break;
        }
        saw_lock |= api.status("pve01", 1000).await["lock"] == "backup";
        sizes.push(api.task_log(&upid).await.len());
        assert!(Instant::now() < end, "the backup never ended");
        tick().await;
    }
    assert!(saw_lock, "the guest was locked while it was backed up");
    sizes.dedup();
    assert!(
        sizes.len() >= 2,
        "the log grew while the task ran: {sizes:?}"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert_eq!(
        log.first().map(String::as_str),
        Some(
            "INFO: starting new backup job: vzdump 1000 --compress zstd --mode snapshot --node pve01 --notes-template '{{guestname}} on {{node}} ({{vmid}})' --storage local"
        ),
        "{log:#?}"
    );
    for line in [
        "INFO: Starting Backup of VM 1000 (qemu)",
        "INFO: status = running",
        "INFO: VM Name: web-01",
        "INFO: include disk 'scsi0' 'local-lvm:vm-1000-disk-0' 32G",
        "INFO: backup mode: snapshot",
        "INFO: ionice priority: 7",
        "INFO: issuing guest-agent 'fs-freeze' command",
        "INFO: started backup task '",
        "INFO: resuming VM again",
        "INFO: backup is sparse: ",
        "INFO: archive file size: ",
        "INFO: adding notes to backup",
        "INFO: Finished Backup of VM 1000 (",
        "INFO: Backup finished at ",
        "INFO: Backup job finished successfully",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    assert!(
        log.iter()
            .any(|l| l.starts_with("INFO: 100% (32.0 GiB of 32.0 GiB) in ")),
        "{log:#?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("TASK OK"));
    // the archive, as the storage lists it
    let made = archives_of(&log, "local", "/var/lib/vz/dump");
    assert_eq!(made.len(), 1, "{log:#?}");
    assert!(
        made[0].starts_with("local:backup/vzdump-qemu-1000-") && made[0].ends_with(".vma.zst"),
        "{made:?}"
    );
    let items = backups(&api, "pve01", "local").await;
    let item = items
        .iter()
        .find(|i| i["volid"] == made[0].as_str())
        .unwrap_or_else(|| panic!("{} not in {items:#?}", made[0]));
    assert_eq!(item["format"], "vma.zst");
    assert_eq!(item["subtype"], "qemu");
    assert_eq!(item["content"], "backup");
    assert_eq!(item["vmid"], 1000);
    assert_eq!(item["notes"], "web-01 on pve01 (1000)");
    assert!(item.get("protected").is_none() && item.get("verification").is_none());
    let size = item["size"].as_u64().expect("size");
    // zstd of what the guest wrote (a third of 32 GiB on lvmthin): well below the disk
    assert!(size > support::GIB && size < 8 * support::GIB, "{size}");
    assert!(item["ctime"].as_i64().is_some());
    // the guest kept running, unlocked
    let st = api.status("pve01", 1000).await;
    assert_eq!(
        (st["status"].as_str(), st.get("lock")),
        (Some("running"), None)
    );
    // the config inside the archive
    let (s, b) = api
        .call(
            CLAUDE,
            "GET",
            "/nodes/pve01/vzdump/extractconfig",
            &[("volume", made[0].as_str())],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let conf = b["data"].as_str().unwrap_or("");
    assert!(conf.contains("name: web-01\n"), "{conf}");
    assert!(!conf.contains("lock:"), "{conf}");
    assert!(
        conf.ends_with(
            "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
        ),
        "{conf}"
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_where_one_guest_fails_ends_with_job_errors_and_keeps_the_others_archives() {
    let api = Api::new(SCALE).await;
    api.h
        .fail_backup_of(1001, "job failed with err -5 - Input/output error");
    api.h.hold_lock(1003, "migrate").expect("1003");
    let before = backups(&api, "pve01", "nfs-shared").await.len();
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[
                ("vmid", "1000,1001,1003,1004"),
                ("storage", "nfs-shared"),
                ("compress", "zstd"),
            ],
        )
        .await;
    // several guests of this node: the task id is empty
    assert!(
        upid.contains(":vzdump::claude-code@pve!automation:"),
        "{upid}"
    );
    assert_eq!(api.wait(&upid).await, "job errors");
    let log = api.task_log(&upid).await;
    // with the path's `node` as a vzdump option, guests of other nodes are not even listed
    // (`get_included_guests` filters by `node`); the scheduler's runs print them as skipped
    assert!(!has(&log, "skip external VMs"), "{log:#?}");
    for line in [
        "INFO: Starting Backup of VM 1000 (qemu)",
        "INFO: Finished Backup of VM 1000 (",
        "INFO: Starting Backup of VM 1001 (qemu)",
        "ERROR: job failed with err -5 - Input/output error",
        "INFO: aborting backup job",
        "ERROR: Backup of VM 1001 failed - job failed with err -5 - Input/output error",
        "INFO: Starting Backup of VM 1003 (qemu)",
        "ERROR: Backup of VM 1003 failed - VM is locked (migrate)",
        "INFO: Failed at ",
        "INFO: Backup job finished with errors",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    assert!(!has(&log, "Starting Backup of VM 1004"), "{log:#?}");
    assert_eq!(
        log.last().map(String::as_str),
        Some("TASK ERROR: job errors")
    );
    // per guest, in order: 1000 finished before 1001 started, 1001 failed before 1003
    let pos = |needle: &str| log.iter().position(|l| l.contains(needle)).expect(needle);
    assert!(pos("Finished Backup of VM 1000") < pos("Starting Backup of VM 1001"));
    assert!(pos("Backup of VM 1001 failed") < pos("Starting Backup of VM 1003"));
    // only the good guest's archive exists
    let made = archives_of(&log, "nfs-shared", "/mnt/pve/nfs-shared/dump");
    assert_eq!(
        made.len(),
        2,
        "1000 and 1001 got as far as the archive: {made:?}"
    );
    let items = backups(&api, "pve01", "nfs-shared").await;
    assert_eq!(items.len(), before + 1, "{items:#?}");
    assert!(items.iter().any(|i| i["volid"] == made[0].as_str()));
    assert!(!items.iter().any(|i| i["volid"] == made[1].as_str()));
    // the failed guest is unlocked and still running; the other lock is untouched
    let placement = api.h.guest_placement();
    assert_eq!(placement[&1001].lock, None);
    assert!(placement[&1001].running);
    assert_eq!(placement[&1003].lock.as_deref(), Some("migrate"));
    // the guest on pve02 is its node's business: nothing of this job's there
    let (_, b) = api
        .get("/nodes/pve02/tasks?typefilter=vzdump&source=active")
        .await;
    assert_eq!(b["data"], serde_json::json!([]));
    // the fault stays until cleared
    api.h.clear_backup_failure(1001);
    let again = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[("vmid", "1001"), ("storage", "nfs-shared")],
        )
        .await;
    assert_eq!(again, "OK");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vzdump_refuses_early_as_pve_does_and_fails_in_the_task_where_pve_does() {
    let api = Api::new(SCALE).await;
    let post = |params: &'static [(&'static str, &'static str)]| {
        let api = &api;
        async move {
            api.call(CLAUDE, "POST", "/nodes/pve01/vzdump", params)
                .await
        }
    };
    let (s, b) = post(&[("vmid", "1000"), ("all", "1")]).await;
    assert_eq!(
        (s, b["errors"]["all"].as_str()),
        (400, Some("option conflicts with option 'vmid'"))
    );
    let (s, b) = post(&[("storage", "local")]).await;
    assert_eq!(
        (s, b["errors"]["vmid"].as_str()),
        (400, Some("property is missing"))
    );
    let (s, b) = post(&[("vmid", "1000"), ("notes-template", "{{guestname}}")]).await;
    assert_eq!(
        (s, b["errors"]["storage"].as_str()),
        (400, Some("missing property required by 'notes-template'"))
    );
    let (s, b) = post(&[
        ("vmid", "1000"),
        ("storage", "local"),
        ("notes-template", "{{hostname}}"),
    ])
    .await;
    assert_eq!(
        (s, b["errors"]["notes-template"].as_str()),
        (400, Some("found unknown: variable 'hostname' at char 4\n"))
    );
    let (s, b) = post(&[("vmid", "1000"), ("dumpdir", "/tmp")]).await;
    assert_eq!(
        (s, b["errors"]["dumpdir"].as_str()),
        (400, Some("Only root may set this option."))
    );
    let (s, b) = post(&[("vmid", "1000"), ("bwlimit", "1000")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (403, "Permission check failed (/, Sys.Modify)")
    );
    let (s, b) = api
        .call(AUDITOR, "POST", "/nodes/pve01/vzdump", &[("vmid", "1000")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            403,
            "Permission check failed (/storage/local, Datastore.AllocateSpace)"
        )
    );
    // none of the guests on this node: the literal "OK", no task (semantics item 33)
    let (s, b) = post(&[("vmid", "1004")]).await;
    assert_eq!((s, b["data"].as_str()), (200, Some("OK")));
    // a storage without `backup` content fails in the worker
    let exit = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[("vmid", "1014"), ("storage", "local-lvm")],
        )
        .await;
    assert_eq!(
        exit,
        "could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type"
    );
    // stop mode on an HA-managed guest fails that guest
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[("vmid", "1012"), ("mode", "stop"), ("storage", "local")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "job errors");
    assert!(has(
        &api.task_log(&upid).await,
        "ERROR: Backup of VM 1012 failed - Cannot execute a backup with stop mode on a HA managed and enabled Service. Use snapshot mode or disable the Service."
    ));
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_mode_stops_and_restarts_a_running_guest_and_jobs_of_a_node_wait_for_each_other() {
    let api = Api::new(SCALE).await;
    // stretch pve01's tasks so the stopped phase can be watched
    api.h.slow_node("pve01", 20.0);
    let first = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[("vmid", "1014"), ("mode", "stop"), ("storage", "local")],
        )
        .await;
    // a second job on the same node waits for the global lock
    let second = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[("vmid", "101"), ("storage", "local")],
        )
        .await;
    let end = deadline();
    let mut saw_stopped = false;
    while api.task_status(&first).await["status"] == "running" {
        saw_stopped |= !api.h.guest_placement()[&1014].running;
        assert!(Instant::now() < end, "the backup never ended");
        tick().await;
    }
    assert!(saw_stopped, "stop mode stopped the guest for a while");
    assert_eq!(api.wait(&first).await, "OK");
    assert!(
        api.h.guest_placement()[&1014].running,
        "and started it again"
    );
    let log = api.task_log(&first).await;
    for line in [
        "INFO: backup mode: stop",
        "INFO: stopping virtual guest",
        "INFO: starting kvm to execute backup task",
        "INFO: resuming VM again after 10 seconds",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    assert_eq!(api.wait(&second).await, "OK");
    let log2 = api.task_log(&second).await;
    assert_eq!(
        log2.first().map(String::as_str),
        Some("INFO: trying to get global lock - waiting..."),
        "{log2:#?}"
    );
    assert!(has(&log2, "INFO: got global lock"));
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vzdump_stop_interrupts_the_running_job_and_puts_the_guest_back() {
    let api = Api::new(SCALE).await;
    // db-01's 200 GiB take minutes of simulated time
    let long = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[("vmid", "1002"), ("storage", "local"), ("mode", "suspend")],
        )
        .await;
    let end = deadline();
    while api.h.guest_placement()[&1002].lock.is_none() {
        assert!(Instant::now() < end, "the backup never locked the guest");
        tick().await;
    }
    // `stop` needs Sys.Modify on the node
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve01/vzdump", &[("stop", "1")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (403, "Permission check failed (/nodes/pve01, Sys.Modify)")
    );
    let (s, b) = api
        .call(ROOT, "POST", "/nodes/pve01/vzdump", &[("stop", "1")])
        .await;
    assert_eq!((s, b["data"].as_str()), (200, Some("OK")), "{b}");
    assert_eq!(api.wait(&long).await, "interrupted by signal");
    let log = api.task_log(&long).await;
    assert!(
        has(
            &log,
            "ERROR: Backup of VM 1002 failed - interrupted by signal"
        ),
        "{log:#?}"
    );
    assert!(has(
        &log,
        "ERROR: Backup job failed - interrupted by signal"
    ));
    let g = &api.h.guest_placement()[&1002];
    assert_eq!((g.lock.as_deref(), g.running), (None, true));
    assert_ne!(api.status("pve01", 1002).await["qmpstatus"], "paused");
    api.h.shutdown().await;
}

/// A config value without `,key=...` noise: the MAC of `net0`.
fn mac(net: &Value) -> String {
    net.as_str()
        .and_then(|n| n.split(',').next())
        .and_then(|m| m.split_once('='))
        .map(|(_, m)| m.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_to_a_new_vmid_takes_the_archived_config_and_new_macs_with_unique() {
    let api = Api::new(SCALE).await;
    let archive = "local:backup/vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst";
    let web01 = api.config("pve01", 1000).await;
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[
                ("vmid", "1100"),
                ("archive", archive),
                ("unique", "1"),
                ("storage", "nfs-shared"),
            ],
        )
        .await;
    assert!(upid.contains(":qmrestore:1100:"), "{upid}");
    // `lock: create` while it runs; config writes meet the worker's flock
    let end = deadline();
    let mut saw_create = false;
    while api.task_status(&upid).await["status"] == "running" {
        saw_create |= api
            .h
            .guest_placement()
            .get(&1100)
            .and_then(|g| g.lock.clone())
            == Some("create".into());
        assert!(Instant::now() < end, "the restore never ended");
        tick().await;
    }
    assert!(
        saw_create,
        "the new guest was locked 'create' during the restore"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    let c = api.config("pve01", 1100).await;
    assert_eq!(c["name"], "web-01");
    assert_eq!(c["memory"], web01["memory"]);
    assert_eq!(c["cores"], web01["cores"]);
    assert!(c.get("lock").is_none(), "{c}");
    assert_ne!(mac(&c["net0"]), mac(&web01["net0"]), "unique=1: a new MAC");
    assert!(mac(&c["net0"]).starts_with("BC:24:11:"));
    assert_ne!(c["smbios1"], web01["smbios1"]);
    assert_ne!(c["vmgenid"], web01["vmgenid"]);
    // the disks were recreated on `storage`, in the archived format (raw from lvmthin)
    let scsi0 = c["scsi0"].as_str().unwrap_or("");
    assert!(
        scsi0.starts_with("nfs-shared:1100/vm-1100-disk-") && scsi0.contains(".raw,"),
        "{scsi0}"
    );
    assert!(scsi0.ends_with("iothread=1,size=32G"), "{scsi0}");
    assert!(
        c["ide2"]
            .as_str()
            .is_some_and(|v| v == "nfs-shared:1100/vm-1100-cloudinit.raw,media=cdrom"),
        "{c}"
    );
    let log = api.task_log(&upid).await;
    for line in [
        "restore vma archive: zstd -q -d -c /var/lib/vz/dump/vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst | vma extract -v -r /var/tmp/vzdumptmp",
        "DEV: dev_id=2 size: 34359738368 devname: drive-scsi0",
        "CTIME: Fri Nov 20 02:00:03 2026",
        "new volume ID is 'nfs-shared:1100/vm-1100-disk-",
        "map 'drive-scsi0' to '/mnt/pve/nfs-shared/images/1100/vm-1100-disk-",
        "progress 100% (read 34363932672 bytes, duration ",
        "total bytes read ",
        "rescan volumes...",
    ] {
        assert!(has(&log, line), "missing {line:?} in {log:#?}");
    }
    // without `unique` the MACs (and the SMBIOS uuid) are the archive's; disks go back to
    // the storages they came from
    let exit = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[("vmid", "1101"), ("archive", archive), ("start", "1")],
        )
        .await;
    assert_eq!(exit, "OK");
    let c = api.config("pve01", 1101).await;
    assert_eq!(mac(&c["net0"]), mac(&web01["net0"]));
    assert_eq!(c["smbios1"], web01["smbios1"]);
    assert_ne!(c["vmgenid"], web01["vmgenid"], "vmgenid is always new");
    assert!(
        c["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("local-lvm:vm-1101-disk-")),
        "{c}"
    );
    assert_eq!(api.status("pve01", 1101).await["status"], "running");
    // the archive must be on this node
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu",
            &[("vmid", "1102"), ("archive", archive)],
        )
        .await;
    assert_eq!(
        (s, message(&b)),
        (500, format!("can't find file '{archive}'"))
    );
    // `force` and `unique` require `archive`
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[("vmid", "1102"), ("unique", "1")],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["archive"].as_str()),
        (400, Some("missing property required by 'unique'"))
    );
    // drive options conflict with the archive
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[
                ("vmid", "1102"),
                ("archive", archive),
                ("scsi0", "local-lvm:8"),
            ],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["scsi0"].as_str()),
        (400, Some("option conflicts with option 'archive'"))
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_over_an_existing_guest_needs_force_and_then_replaces_it() {
    let api = Api::new(SCALE).await;
    // a backup of the stopped 1007 on the shared storage
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/vzdump",
            &[
                ("vmid", "1007"),
                ("storage", "nfs-shared"),
                ("compress", "zstd"),
            ],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert!(
        has(&log, "INFO: status = stopped") && has(&log, "INFO: stopping kvm after backup task")
    );
    let archive = archives_of(&log, "nfs-shared", "/mnt/pve/nfs-shared/dump")
        .pop()
        .expect("an archive");
    assert!(
        !api.h.guest_placement()[&1007].running,
        "a stopped guest stays stopped"
    );
    let before = api.config("pve02", 1007).await;
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve02/qemu/1007/config",
            &[("memory", "8192"), ("name", "changed")],
        )
        .await;
    assert_eq!(s, 200);
    // without force: refused before the fork
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu",
            &[("vmid", "1007"), ("archive", archive.as_str())],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "unable to restore VM 1007 - VM 1007 already exists on node 'pve02'"
        )
    );
    // with force: the archived config comes back, the disks are new volumes
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu",
            &[
                ("vmid", "1007"),
                ("archive", archive.as_str()),
                ("force", "1"),
            ],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    let after = api.config("pve02", 1007).await;
    assert_eq!(after["name"], "dev-sandbox");
    assert_eq!(after["memory"], before["memory"]);
    assert_eq!(mac(&after["net0"]), mac(&before["net0"]));
    assert!(
        after["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("local-lvm:vm-1007-disk-"))
    );
    assert!(after.get("lock").is_none());
    // over a running guest the task fails and the guest is left as it was
    let exit = api
        .run(
            ROOT,
            "POST",
            "/nodes/pve01/qemu",
            &[
                ("vmid", "1000"),
                (
                    "archive",
                    "local:backup/vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst",
                ),
                ("force", "1"),
            ],
        )
        .await;
    assert_eq!(exit, "unable to restore VM 1000 - vm is running");
    assert_eq!(api.config("pve01", 1000).await["name"], "web-01");
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_leaves_what_pve_leaves() {
    let api = Api::new(SCALE).await;
    api.h.fail_next_task(
        "pve01",
        "qmrestore",
        "vma_queue_write: write error - Broken pipe",
    );
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[
                ("vmid", "1102"),
                (
                    "archive",
                    "local:backup/vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst",
                ),
            ],
        )
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "vma_queue_write: write error - Broken pipe"
    );
    let log = api.task_log(&upid).await;
    assert!(
        has(
            &log,
            "temporary volume 'local-lvm:vm-1102-disk-0' successfully removed"
        ),
        "{log:#?}"
    );
    assert!(has(
        &log,
        "error before or during data restore, some or all disks were not completely restored. VM 1102 state is NOT cleaned up."
    ));
    // the guest stays, with an empty config and no disks
    let c = api.config("pve01", 1102).await;
    assert!(c.get("lock").is_none() && c.get("scsi0").is_none(), "{c}");
    let (_, b) = api
        .get("/nodes/pve01/storage/local-lvm/content?vmid=1102")
        .await;
    assert_eq!(b["data"], serde_json::json!([]));
    // live-restore needs a PBS archive: refused in the task, before any data
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu",
            &[
                ("vmid", "1103"),
                (
                    "archive",
                    "local:backup/vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst",
                ),
                ("live-restore", "1"),
            ],
        )
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "live-restore is only compatible with backup images from a Proxmox Backup Server"
    );
    assert!(!has(&api.task_log(&upid).await, "temporary volume"));
    assert!(api.config("pve01", 1103).await.get("lock").is_none());
    api.h.shutdown().await;
}

/// The next `HH:MM` (UTC) strictly after `now`.
fn next_daily(now: i64, h: i64, m: i64) -> i64 {
    let today = now - now.rem_euclid(86_400) + h * 3600 + m * 60;
    if today > now { today } else { today + 86_400 }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_jobs_list_with_next_run_and_their_seeded_last_runs() {
    let api = Api::new(SCALE).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (s, b) = api.get("/cluster/backup").await;
    assert_eq!(s, 200, "{b}");
    let jobs = b["data"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(ids, ["nightly", "weekly-talos"]);
    let nightly = &jobs[0];
    assert_eq!(nightly["type"], "vzdump");
    assert_eq!(nightly["schedule"], "02:00");
    assert_eq!(nightly["storage"], "nfs-shared");
    assert_eq!(nightly["vmid"], "1000,1001,1002,1004");
    assert_eq!(nightly["enabled"], 1);
    assert_eq!(nightly["notes-template"], "{{guestname}}");
    let next = nightly["next-run"].as_i64().expect("next-run");
    assert!(
        next == next_daily(now, 2, 0) || next == next_daily(now + 2, 2, 0),
        "{next}"
    );
    assert_eq!(jobs[1]["prune-backups"]["keep-last"], 4);
    let (_, one) = api.get("/cluster/backup/nightly").await;
    assert_eq!(one["data"]["schedule"], "02:00");
    assert!(one["data"].get("next-run").is_none());
    let (s, b) = api.get("/cluster/backup/nope").await;
    assert_eq!(
        (s, b["errors"]["id"].as_str()),
        (400, Some("No such job 'nope'"))
    );
    let (_, b) = api.get("/cluster/backup/nightly/included_volumes").await;
    let guests: Vec<i64> = b["data"]["children"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    assert_eq!(guests, [1000, 1001, 1002, 1004]);
    assert_eq!(b["data"]["children"][0]["children"][0]["id"], "1000:scsi0");

    // the last run of `nightly`: one task per node with guests of the job, by root@pam
    let run_start = next_daily(now, 2, 0) - 86_400;
    let task = |node: &'static str| {
        let api = &api;
        async move {
            let (_, b) = api
                .get(&format!(
                    "/nodes/{node}/tasks?typefilter=vzdump&userfilter=root@pam"
                ))
                .await;
            b["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| {
                    t["starttime"]
                        .as_i64()
                        .is_some_and(|s| s >= run_start - 86_400)
                })
                .cloned()
                .unwrap_or(Value::Null)
        }
    };
    let on2 = task("pve02").await;
    assert_eq!(on2["id"], "1004", "{on2}");
    assert_eq!(on2["user"], "root@pam");
    assert_eq!(on2["status"], "job errors");
    let log2 = api.task_log(on2["upid"].as_str().unwrap_or("")).await;
    assert!(
        log2[0].starts_with("INFO: starting new backup job: vzdump 1000 1001 1002 1004 "),
        "{log2:#?}"
    );
    assert!(
        log2[0].contains(" --quiet 1") && !log2[0].contains("--node"),
        "{}",
        log2[0]
    );
    assert!(has(&log2, "INFO: skip external VMs: 1000, 1001, 1002"));
    assert!(has(
        &log2,
        "ERROR: Backup of VM 1004 failed - job failed with err -5 - Input/output error"
    ));
    assert_eq!(
        log2.last().map(String::as_str),
        Some("TASK ERROR: job errors")
    );
    let on1 = task("pve01").await;
    assert_eq!(
        (on1["id"].as_str(), on1["status"].as_str()),
        (Some(""), Some("OK")),
        "{on1}"
    );
    let started = on1["starttime"].as_i64().expect("starttime");
    assert_eq!(started % 86_400, 2 * 3600, "the run started at 02:00");
    let log1 = api.task_log(on1["upid"].as_str().unwrap_or("")).await;
    for v in [1000, 1001, 1002] {
        assert!(
            has(&log1, &format!("INFO: Finished Backup of VM {v} (")),
            "{log1:#?}"
        );
    }
    // its archives, with the job's notes; none for the guest that failed
    let items = backups(&api, "pve01", "nfs-shared").await;
    let recent: Vec<&Value> = items
        .iter()
        .filter(|i| i["ctime"].as_i64().is_some_and(|c| c >= started))
        .collect();
    let vmids: Vec<i64> = recent.iter().filter_map(|i| i["vmid"].as_i64()).collect();
    assert!(
        vmids.contains(&1000) && vmids.contains(&1001) && vmids.contains(&1002),
        "{recent:#?}"
    );
    assert!(!vmids.contains(&1004));
    assert!(recent.iter().any(|i| i["notes"] == "db-01"));
    let (_, b) = api.get("/nodes/pve03/tasks?typefilter=vzdump").await;
    let on3 = b["data"][0].clone();
    assert_eq!(
        (
            on3["status"].as_str(),
            on3["id"].as_str(),
            on3["user"].as_str()
        ),
        (Some("OK"), Some(""), Some("root@pam")),
        "weekly-talos succeeded: {on3}"
    );
    let log3 = api.task_log(on3["upid"].as_str().unwrap_or("")).await;
    assert!(
        has(
            &log3,
            "INFO: prune older backups with retention: keep-last=4"
        ),
        "{log3:#?}"
    );

    // the scheduler's run, on demand
    let upids = api.h.run_backup_job("nightly").expect("job");
    assert_eq!(upids.len(), 2, "pve01 and pve02: {upids:?}");
    for u in &upids {
        assert!(u.ends_with(":root@pam:"), "{u}");
        assert_eq!(api.wait(u).await, "OK");
    }
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_jobs_are_created_validated_and_deleted_like_pve_and_not_backed_up_lists_the_rest() {
    let api = Api::new(SCALE).await;
    let (s, b) = api.get("/cluster/backup-info/not-backed-up").await;
    assert_eq!(s, 200, "{b}");
    let rows = b["data"].as_array().cloned().unwrap_or_default();
    let vmids: Vec<i64> = rows.iter().filter_map(|r| r["vmid"].as_i64()).collect();
    assert_eq!(
        vmids,
        [
            100, 101, 102, 110, 1003, 1005, 1006, 1007, 1011, 1012, 1013, 1014, 1200, 1201, 1202
        ]
    );
    assert_eq!(rows[4]["name"], "k8s-cp-01");
    assert_eq!(rows[4]["type"], "qemu");
    assert_eq!(
        (rows[3]["type"].as_str(), rows[12]["type"].as_str()),
        (Some("lxc"), Some("lxc"))
    );
    let (s, _) = api
        .call(AUDITOR, "GET", "/cluster/backup-info/not-backed-up", &[])
        .await;
    assert_eq!(s, 403);

    let (s, b) = api
        .call(
            ROOT,
            "POST",
            "/cluster/backup",
            &[("id", "bad"), ("schedule", "25:00"), ("vmid", "1003")],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["schedule"].as_str()),
        (
            400,
            Some(
                "invalid format - invalid calendar event '25:00' - unable to parse calendar event\n"
            )
        )
    );
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            "/cluster/backup",
            &[("id", "x"), ("vmid", "1003")],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["schedule"].as_str()),
        (400, Some("neither 'starttime' nor 'schedule' were set"))
    );
    // ClaudeCodeManager has no Sys.Modify
    let (s, _) = api
        .call(
            CLAUDE,
            "POST",
            "/cluster/backup",
            &[
                ("id", "k8s"),
                ("schedule", "mon..fri 22:30"),
                ("vmid", "1003"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    let params = [
        ("id", "k8s"),
        ("schedule", "mon..fri 22:30"),
        ("vmid", "1003,1005"),
        ("storage", "nfs-shared"),
        ("mode", "snapshot"),
        ("comment", "k8s"),
    ];
    let (s, b) = api.call(ROOT, "POST", "/cluster/backup", &params).await;
    assert_eq!((s, &b["data"]), (200, &Value::Null), "{b}");
    let (s, b) = api.call(ROOT, "POST", "/cluster/backup", &params).await;
    assert_eq!((s, message(&b).as_str()), (500, "Job 'k8s' already exists"));
    let (_, b) = api.get("/cluster/backup/k8s").await;
    assert_eq!(b["data"]["enabled"], 1);
    let (_, b) = api.get("/cluster/backup").await;
    assert!(
        b["data"][2]["next-run"].as_i64().is_some(),
        "{}",
        b["data"][2]
    );
    let (_, b) = api.get("/cluster/backup-info/not-backed-up").await;
    assert!(
        !b["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["vmid"] == 1003 || r["vmid"] == 1005)
    );
    // a disabled job still counts as covering its guests (as in PVE)
    let (s, _) = api
        .call(
            ROOT,
            "PUT",
            "/cluster/backup/k8s",
            &[("enabled", "0"), ("delete", "comment")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, b) = api.get("/cluster/backup/k8s").await;
    assert_eq!(
        (b["data"]["enabled"].as_i64(), b["data"].get("comment")),
        (Some(0), None)
    );
    let (_, b) = api.get("/cluster/backup-info/not-backed-up").await;
    assert!(
        !b["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["vmid"] == 1003)
    );
    let (s, _) = api.call(ROOT, "DELETE", "/cluster/backup/k8s", &[]).await;
    assert_eq!(s, 200);
    let (s, b) = api.call(ROOT, "DELETE", "/cluster/backup/k8s", &[]).await;
    assert_eq!(
        (s, b["errors"]["id"].as_str()),
        (400, Some("No such job 'k8s'"))
    );

    // schedule-analyze: Wed 2026-12-02 21:21:49 UTC
    let (s, b) = api
        .get(
            "/cluster/jobs/schedule-analyze?schedule=sat%2003:30&starttime=1796246509&iterations=2",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["data"][0]["utc"], "Sat Dec  5 03:30:00 2026");
    assert_eq!(b["data"][1]["utc"], "Sat Dec 12 03:30:00 2026");
    assert_eq!(
        b["data"][1]["timestamp"].as_i64(),
        b["data"][0]["timestamp"].as_i64().map(|t| t + 7 * 86_400)
    );
    api.h.shutdown().await;
}

//! Issue 15's backups end to end through MCP against the simulator: a backup whose task ends
//! with one guest failed reports both guests correctly; `backup_list` finds the archive;
//! `backup_jobs` shows the last run's failure and the uncovered guests; a restore to a new
//! VMID gets new MACs; a restore over an existing VM is refused without `force` and previewed;
//! `backup_jobs` reads only the logs that can be a job's last run.

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

fn writes(sim: &SimHandle) -> usize {
    sim.requests().iter().filter(|r| r.method != "GET").count()
}

fn mac(net0: &str) -> String {
    net0.split(',')
        .next()
        .and_then(|m| m.split_once('='))
        .map(|(_, m)| m.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_with_one_guest_failing_reports_each_guest() {
    let e = env().await;
    e.sim
        .fail_backup_of(1001, "job failed with err -5 - Input/output error");
    let (err, r, text) = call(
        &e.client,
        "backup_now",
        json!({"vmids": [1000, 1001], "storage": "nfs-shared", "notes": "{{guestname}} before upgrade"}),
    )
    .await;
    assert!(!err, "a partly failed job is a result: {text}");
    let guest = |v: u64| {
        r["guests"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["vmid"] == v))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let ok = guest(1000);
    assert_eq!(ok["ok"], true, "{r}");
    let volid = ok["volid"].as_str().expect("archive").to_string();
    assert!(
        volid.starts_with("nfs-shared:backup/vzdump-qemu-1000-"),
        "{volid}"
    );
    assert!(ok["size"].as_u64().unwrap_or(0) > 0, "{r}");
    let bad = guest(1001);
    assert_eq!(bad["ok"], false, "{r}");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|t| t.contains("Input/output error")),
        "{r}"
    );
    assert!(bad.get("volid").is_none() || bad["volid"].is_null(), "{r}");

    let (err, list, text) = call(&e.client, "backup_list", json!({"vmid": 1000})).await;
    assert!(!err, "{text}");
    let first = &list["archives"][0];
    assert_eq!(first["volid"], volid.as_str(), "newest first: {list}");
    assert!(
        first["notes"]
            .as_str()
            .is_some_and(|n| n.contains("web-01")),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_jobs_show_the_last_runs_outcome_and_uncovered_guests() {
    let e = env().await;
    let (err, r, text) = call(&e.client, "backup_jobs", json!({})).await;
    assert!(!err, "{text}");
    let jobs = r["jobs"].as_array().expect("jobs");
    assert!(jobs.len() >= 2, "{r}");
    let failed: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["last_run"]["ok"] == false)
        .collect();
    assert!(!failed.is_empty(), "a job whose last run failed: {r}");
    assert!(
        failed.iter().all(|j| {
            j["last_run"]["failed_guests"]
                .as_array()
                .is_some_and(|g| !g.is_empty())
        }),
        "the failed run names its failed guests: {r}"
    );
    assert!(
        jobs.iter().any(|j| j["last_run"]["ok"] == true),
        "and one that succeeded: {r}"
    );
    assert!(jobs.iter().all(|j| j["schedule"].is_string()), "{r}");
    assert!(
        jobs.iter()
            .filter(|j| j["enabled"] == true)
            .all(|j| j["next_run"].as_i64().is_some()),
        "{r}"
    );
    assert!(
        r["not_covered"].as_array().is_some_and(|n| !n.is_empty()),
        "{r}"
    );
}

/// Waits (polling, with a deadline) until the simulator runs no task.
async fn idle(sim: &SimHandle) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !sim.running_tasks().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running: {:?}",
            sim.running_tasks()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_jobs_read_only_the_logs_that_can_be_a_last_run() {
    let e = env().await;
    // Every job runs now, as the scheduler runs them (root@pam, --quiet 1).
    let mut ran: Vec<(String, Vec<String>)> = Vec::new();
    for id in ["nightly", "weekly-talos"] {
        ran.push((id.into(), e.sim.run_backup_job(id).expect("job runs")));
    }
    idle(&e.sim).await;
    // Then a token runs vzdump by hand with the nightly job's selection and --quiet 1: not
    // the scheduler (it runs jobs as root@pam), so not the job's run.
    let pve = common::client_for(&e.sim, common::MANAGER);
    let by_hand: String = pve
        .post(
            "/nodes/pve01/vzdump",
            &[
                ("vmid", "1000,1001,1002,1004".to_string()),
                ("storage", "nfs-shared".to_string()),
                ("mode", "snapshot".to_string()),
                ("quiet", "1".to_string()),
            ],
        )
        .await
        .expect("a vzdump by the token");
    idle(&e.sim).await;

    // The task logs read since request `before`.
    let logs_since = |before: usize| -> Vec<String> {
        e.sim.requests()[before..]
            .iter()
            .filter(|q| q.path.ends_with("/log"))
            .map(|q| q.path.clone())
            .collect()
    };
    let before = e.sim.requests().len();
    let (err, r, text) = call(&e.client, "backup_jobs", json!({})).await;
    assert!(!err, "{text}");
    let logs = logs_since(before);
    for (id, upids) in &ran {
        let job = r["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} in {r}"));
        let last: Vec<&str> = job["last_run"]["upids"]
            .as_array()
            .expect("upids")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for u in upids {
            assert!(
                last.contains(&u.as_str()),
                "{id}: {u} in its last run: {job}"
            );
        }
        assert!(!last.contains(&by_hand.as_str()), "{id}: {job}");
    }
    // The token's task is not read at all, nor the week-old vzdump of the scenario's history
    // (more than an hour before every job's newest run).
    let encoded = |u: &str| u.replace(':', "%3A");
    assert!(
        !logs
            .iter()
            .any(|l| l.contains(&by_hand) || l.contains(&encoded(&by_hand))),
        "the token's vzdump log was read: {logs:?}"
    );
    let old = pve
        .list_tasks(
            "pve01",
            proxmox_manager::pve::TaskFilter {
                typefilter: Some("vzdump".into()),
                ..Default::default()
            },
        )
        .await
        .expect("tasks")
        .into_iter()
        .filter(|t| t.starttime < r_started(&r) - 7200)
        .map(|t| t.upid)
        .collect::<Vec<_>>();
    assert!(!old.is_empty(), "the scenario's old vzdump task");
    for u in &old {
        assert!(
            !logs
                .iter()
                .any(|l| l.contains(u) || l.contains(&encoded(u))),
            "an old log ({u}) was read: {logs:?}"
        );
    }
    assert!(
        logs.len() <= ran.iter().map(|(_, u)| u.len()).sum::<usize>() + 2,
        "{logs:?}"
    );
    assert!(!logs.is_empty(), "the first call read the runs' logs");
    // Each is downloaded whole (the file, gzipped), not read as pages of JSON lines.
    for q in e.sim.requests()[before..]
        .iter()
        .filter(|q| q.path.ends_with("/log"))
    {
        assert_eq!(q.params, ["download"], "{q:?}");
    }

    // Those tasks have finished and a finished task's log does not change: the next call reads
    // the task lists again but no log, and says the same.
    let before = e.sim.requests().len();
    let (err, again, text) = call(&e.client, "backup_jobs", json!({})).await;
    assert!(!err, "{text}");
    let reread = logs_since(before);
    assert!(reread.is_empty(), "logs read again: {reread:?}");
    assert!(
        e.sim.requests()[before..]
            .iter()
            .any(|q| q.path.ends_with("/tasks")),
        "the task lists are read again"
    );
    assert_eq!(again["jobs"], r["jobs"]);
}

/// The earliest start of the jobs' last runs in a `backup_jobs` answer.
fn r_started(r: &Value) -> i64 {
    r["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["last_run"]["started"].as_i64())
        .min()
        .expect("a last run")
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_go_to_a_new_vm_with_new_macs_and_never_silently_over_an_existing_one() {
    let e = env().await;
    let (err, made, text) = call(
        &e.client,
        "backup_now",
        json!({"vmids": [1003], "storage": "nfs-shared"}),
    )
    .await;
    assert!(!err, "{text}");
    let archive = made["guests"][0]["volid"]
        .as_str()
        .expect("archive")
        .to_string();

    let (err, p, text) = call(&e.client, "backup_restore", json!({"archive": archive})).await;
    assert!(!err, "{text}");
    assert_eq!(p["executed"], false, "{p}");
    let before = writes(&e.sim);
    let vmid = p["vmid"].as_u64().expect("new vmid");
    assert!(vmid >= 1000, "{p}");
    let (err, r, text) = call(
        &e.client,
        "backup_restore",
        json!({"archive": archive, "confirm": true, "start": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(writes(&e.sim) > before);
    assert_eq!(r["vmid"].as_u64(), Some(vmid));
    assert_eq!(r["status_after"], "running", "{r}");
    let c = common::client_for(&e.sim, common::MANAGER);
    let config = |node: String, v: u64| {
        let c = c.clone();
        async move {
            let cfg: Value = c
                .get(&format!("/nodes/{node}/qemu/{v}/config"), &[])
                .await
                .expect("config");
            cfg
        }
    };
    let node = r["node"].as_str().expect("node").to_string();
    let original = config("pve01".into(), 1003).await;
    let restored = config(node, vmid).await;
    assert_ne!(
        mac(restored["net0"].as_str().unwrap_or("")),
        mac(original["net0"].as_str().unwrap_or("")),
        "new MACs: {restored}"
    );

    // Over an existing VM: refused without force, previewed with it.
    let before = writes(&e.sim);
    let (err, _, text) = call(
        &e.client,
        "backup_restore",
        json!({"archive": archive, "vmid": 1003}),
    )
    .await;
    assert!(err && text.contains("force"), "{text}");
    let (err, p, text) = call(
        &e.client,
        "backup_restore",
        json!({"archive": archive, "vmid": 1003, "force": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("OVERWRITING")),
        "{p}"
    );
    assert_eq!(writes(&e.sim), before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_goes_to_the_named_node_and_storage_and_keeps_the_macs_when_asked() {
    let e = env().await;
    // k8s-cp-01 runs on pve01 with its disk on nfs-shared; back it up to the shared storage.
    let (err, made, text) = call(
        &e.client,
        "backup_now",
        json!({"vmids": [1003], "storage": "nfs-shared"}),
    )
    .await;
    assert!(!err, "{text}");
    let archive = made["guests"][0]["volid"]
        .as_str()
        .expect("archive")
        .to_string();
    let args =
        json!({"archive": archive, "node": "pve02", "storage": "local-lvm", "keep_macs": true});
    let (err, p, text) = call(&e.client, "backup_restore", args.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(p["executed"], false, "{p}");
    assert_eq!(p["node"], "pve02", "{p}");
    assert_eq!(p["storage"], "local-lvm", "{p}");
    assert_eq!(p["new_macs"], false, "{p}");
    let mut confirmed = args.clone();
    confirmed["confirm"] = json!(true);
    let (err, r, text) = call(&e.client, "backup_restore", confirmed).await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], true, "{r}");
    assert_eq!(r["node"], "pve02", "{r}");
    let vmid = r["vmid"].as_u64().expect("vmid");
    let placed = e.sim.guest_placement();
    assert_eq!(placed[&(vmid as u32)].node, "pve02", "restored on pve02");
    let sent = e
        .sim
        .requests()
        .into_iter()
        .find(|q| q.method == "POST" && q.path == "/nodes/pve02/qemu")
        .expect("the restore POST went to pve02");
    assert!(
        sent.params.iter().any(|p| p == "storage"),
        "{:?}",
        sent.params
    );
    assert!(
        !sent.params.iter().any(|p| p == "unique"),
        "keep_macs: no unique=1: {:?}",
        sent.params
    );
    let c = common::client_for(&e.sim, common::MANAGER);
    let original: Value = c
        .get("/nodes/pve01/qemu/1003/config", &[])
        .await
        .expect("config");
    let restored: Value = c
        .get(&format!("/nodes/pve02/qemu/{vmid}/config"), &[])
        .await
        .expect("config");
    assert_eq!(
        mac(restored["net0"].as_str().unwrap_or("")),
        mac(original["net0"].as_str().unwrap_or("")),
        "the MACs are kept: {restored}"
    );
    assert!(
        restored["scsi0"]
            .as_str()
            .is_some_and(|d| d.starts_with("local-lvm:")),
        "the disk is on local-lvm: {restored}"
    );
}

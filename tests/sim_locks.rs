//! Locks answered the way PVE answers them per endpoint (see the table in
//! `src/sim/api/qemu/mod.rs`): a config `lock` or a flock timeout is a 500 where qemu-server
//! checks it before forking, and otherwise a UPID whose task fails with the error; a backup
//! holding `lock: backup` for a while (`hold_backup`, the scenario's `lock_secs`) ends by itself.

use crate::support;

use std::time::{Duration, Instant};

use proxmox_manager::sim::Scenario;
use support::{Api, CLAUDE, message};

const LOCKED: &str = "VM is locked (backup)";

/// Runs a forked request and returns its task's exit status and last log line.
async fn task_end(
    api: &Api,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
) -> (String, String) {
    let upid = api.upid(CLAUDE, method, path, params).await;
    let exit = api.wait(&upid).await;
    let last = api.task_log(&upid).await.pop().unwrap_or_default();
    (exit, last)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_lock_fails_early_or_in_the_worker_per_endpoint() {
    let api = Api::new(0.001).await;
    // 1006 runs under a scenario backup (`lock: backup`)
    let vm = "/nodes/pve02/qemu/1006";
    let (s, b) = api
        .call(CLAUDE, "PUT", &format!("{vm}/config"), &[("name", "m2")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, LOCKED),
        "config checks before forking"
    );
    let (s, b) = api
        .call(CLAUDE, "POST", &format!("{vm}/clone"), &[("newid", "2100")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, LOCKED),
        "clone's early load_and_check"
    );
    let (s, b) = api
        .call(CLAUDE, "POST", &format!("{vm}/template"), &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, LOCKED),
        "template's early check"
    );

    for (path, params) in [
        ("resize", vec![("disk", "scsi0"), ("size", "+1G")]),
        ("status/shutdown", vec![]),
        ("status/stop", vec![]),
        ("status/reboot", vec![]),
    ] {
        let method = if path == "resize" { "PUT" } else { "POST" };
        let (exit, last) = task_end(&api, method, &format!("{vm}/{path}"), &params).await;
        assert_eq!(exit, LOCKED, "{path} fails inside its worker");
        assert_eq!(last, format!("TASK ERROR: {LOCKED}"), "{path}");
    }
    let cfg = api.config("pve02", 1006).await;
    assert!(
        cfg["scsi0"]
            .as_str()
            .is_some_and(|d| d.ends_with("size=64G")),
        "{cfg}"
    );
    assert_eq!(api.status("pve02", 1006).await["status"], "running");

    // a backup allows pause, resume and start (which resumes); not hibernation
    let (exit, _) = task_end(&api, "POST", &format!("{vm}/status/suspend"), &[]).await;
    assert_eq!(exit, "OK");
    assert_eq!(api.status("pve02", 1006).await["qmpstatus"], "paused");
    let (exit, _) = task_end(&api, "POST", &format!("{vm}/status/resume"), &[]).await;
    assert_eq!(exit, "OK");
    let (exit, _) = task_end(&api, "POST", &format!("{vm}/status/start"), &[]).await;
    assert_eq!(
        exit, "OK",
        "start of a running guest under backup resumes it"
    );
    let (exit, _) = task_end(
        &api,
        "POST",
        &format!("{vm}/status/suspend"),
        &[("todisk", "1")],
    )
    .await;
    assert_eq!(exit, "cannot suspend to disk during backup");

    // a stopped guest under a lock: stop is a no-op, start and destroy fail in the worker
    api.h.hold_lock(1007, "backup").expect("1007");
    let vm = "/nodes/pve02/qemu/1007";
    let (exit, _) = task_end(&api, "POST", &format!("{vm}/status/stop"), &[]).await;
    assert_eq!(exit, "OK", "_do_vm_stop returns for a stopped guest");
    let (exit, _) = task_end(&api, "POST", &format!("{vm}/status/start"), &[]).await;
    assert_eq!(exit, LOCKED);
    let (exit, last) = task_end(&api, "DELETE", vm, &[]).await;
    assert_eq!(
        (exit.as_str(), last),
        (LOCKED, format!("TASK ERROR: {LOCKED}"))
    );
    assert_eq!(
        api.config("pve02", 1007).await["lock"],
        "backup",
        "still there"
    );
    api.h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flock_timeout_is_a_500_before_the_fork_and_a_task_error_after() {
    let api = Api::new(0.001).await;
    let timeout = "can't lock file '/var/lock/qemu-server/lock-1007.conf' - got timeout";
    api.h.flock_timeout(1007, Duration::from_secs(60));
    let vm = "/nodes/pve02/qemu/1007";
    let (s, b) = api
        .call(CLAUDE, "PUT", &format!("{vm}/config"), &[("name", "x")])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, timeout));
    for (method, path, params) in [
        ("POST", format!("{vm}/clone"), vec![("newid", "2101")]),
        (
            "PUT",
            format!("{vm}/resize"),
            vec![("disk", "scsi0"), ("size", "+1G")],
        ),
        ("POST", format!("{vm}/status/start"), vec![]),
        ("DELETE", vm.to_string(), vec![]),
    ] {
        let (exit, last) = task_end(&api, method, &path, &params).await;
        assert_eq!(exit, timeout, "{method} {path}");
        assert_eq!(last, format!("TASK ERROR: {timeout}"));
    }
    assert!(
        api.resource(2101).await.is_none(),
        "the clone created nothing"
    );
    assert!(
        api.resource(1007).await.is_some(),
        "the guest was not destroyed"
    );
    api.h.shutdown().await;
}

/// Polls until `PUT config` of the guest succeeds; returns how many 500s it saw first.
async fn wait_unlocked(api: &Api, node: &str, vmid: u32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = 0;
    loop {
        let (s, b) = api
            .call(
                CLAUDE,
                "PUT",
                &format!("/nodes/{node}/qemu/{vmid}/config"),
                &[("description", "after backup")],
            )
            .await;
        if s == 200 {
            return refused;
        }
        assert_eq!((s, message(&b).as_str()), (500, LOCKED));
        refused += 1;
        assert!(Instant::now() < deadline, "the backup never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_backup_holds_the_lock_then_ends_ok() {
    let api = Api::new(0.001).await;
    // 300 simulated seconds = 0.3 s here
    let upid = api.h.hold_backup(1007, 300.0).expect("1007");
    assert!(upid.contains(":vzdump:1007:root@pam:"), "{upid}");
    assert_eq!(api.status("pve02", 1007).await["lock"], "backup");
    assert!(wait_unlocked(&api, "pve02", 1007).await > 0);
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert!(
        log.iter()
            .any(|l| l == "INFO: Backup job finished successfully"),
        "{log:?}"
    );
    assert!(api.h.hold_backup(99_999, 1.0).is_err());
    api.h.shutdown().await;

    // the same from the scenario: `lock: backup` with `lock_secs`
    let mut scenario = Scenario::embedded().expect("scenario");
    let spec = scenario
        .vms
        .iter_mut()
        .find(|v| v.vmid == 1007)
        .expect("1007");
    spec.lock = Some("backup".into());
    spec.lock_secs = Some(300.0);
    let api = Api::with_scenario(scenario, 0.001).await;
    assert!(wait_unlocked(&api, "pve02", 1007).await > 0);
    let (_, b) = api
        .get("/nodes/pve02/tasks?typefilter=vzdump&vmid=1007")
        .await;
    assert_eq!(b["data"][0]["status"], "OK", "{b}");
    api.h.shutdown().await;
}

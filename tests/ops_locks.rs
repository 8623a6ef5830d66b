//! Power actions on a VM locked by a backup, against the scripted fake PVE: PVE accepts the
//! start (or shutdown) and reports the lock only in the task's exit status, `VM is locked
//! (backup)`. The operation waits the lock out like an early lock error, and past the lock
//! deadline names the lock — never blaming ACPI for a shutdown.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proxmox_manager::ops::{
    self, Allocator, Context, PowerAction, PowerRequest, Run, ShutdownArgs, Timeouts,
};
use serde_json::json;

use common::fake_pve::{Reply, Seen, client, ok, serve};

/// A fake PVE with stopped (or running) vm 1006 on pve02 whose power tasks fail with the
/// backup lock `locked_tasks` times (all of them with `usize::MAX`), then succeed.
async fn fake(running: bool, locked_tasks: usize) -> (common::fake_pve::Server, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&started);
    let status = if running { "running" } else { "stopped" };
    let server = serve(move |s: &Seen, _| -> Reply {
        let p = s.path.trim_start_matches("/api2/json");
        if p == "/cluster/resources" {
            return ok(json!({"data": [{"id": "qemu/1006", "type": "qemu", "vmid": 1006,
                "node": "pve02", "name": "monitor-01", "status": status, "template": 0}]}));
        }
        if p == "/nodes/pve02/qemu/1006/status/current" {
            return ok(json!({"data": {"vmid": 1006, "name": "monitor-01", "status": status,
                "qmpstatus": status}}));
        }
        if s.method == "POST" && p.starts_with("/nodes/pve02/qemu/1006/status/") {
            let i = n.fetch_add(1, Ordering::SeqCst);
            return ok(json!({"data": format!(
                "UPID:pve02:0000{i:04X}:00ABCDEF:6700000{i}:qmstart:1006:claude-code@pve!automation:"
            )}));
        }
        if let Some(rest) = p.strip_prefix("/nodes/pve02/tasks/") {
            let upid = rest.trim_end_matches("/status").trim_end_matches("/log");
            let upid = upid.replace("%3A", ":").replace("%21", "!").replace("%40", "@");
            let i = upid
                .split(':')
                .nth(2)
                .and_then(|h| usize::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            if rest.ends_with("/log") {
                return ok(json!({"data": [{"n": 1, "t": "VM is locked (backup)"}]}));
            }
            let exit = if i < locked_tasks {
                "VM is locked (backup)"
            } else {
                "OK"
            };
            return ok(json!({"data": {"upid": upid, "node": "pve02", "status": "stopped",
                "exitstatus": exit, "type": "qmstart", "id": "1006",
                "user": "claude-code@pve!automation", "pid": 1, "pstart": 1, "starttime": 1}}));
        }
        ok(json!({"data": null}))
    })
    .await
    .expect("fake PVE listens");
    (server, started)
}

fn context(server: &common::fake_pve::Server, lock: Duration) -> Context {
    let config = proxmox_manager::config::sim_config(8006, [0u8; 32]);
    Context {
        client: client(server).expect("client"),
        config: Arc::new(config),
        timeouts: Timeouts {
            lock,
            poll: Duration::from_millis(10),
            poll_max: Duration::from_millis(40),
            ..Timeouts::default()
        },
        allocator: Arc::new(Allocator::default()),
        audit: Arc::new(ops::audit::AuditLog::new(Some(std::path::Path::new(
            "/dev/null",
        )))),
        ssh: None,
        previews: Default::default(),
        ansible: Default::default(),
        listings: Default::default(),
        run_logs: Default::default(),
    }
}

#[tokio::test]
async fn a_start_whose_task_reports_the_backup_lock_is_retried_until_it_succeeds() {
    let (server, started) = fake(false, 2).await;
    let ctx = context(&server, Duration::from_secs(30));
    let run = Run::default();
    let r = ops::power(
        &ctx,
        &run,
        &PowerRequest::new(PowerAction::Start, 1006, false),
    )
    .await
    .expect("the start succeeds once the lock is gone");
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "two locked tasks, then one that ran"
    );
    assert_eq!(r.exitstatus.as_deref(), Some("OK"));
    assert!(
        r.upid.as_deref().is_some_and(|u| u.contains(":00000002:")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_lock_that_stays_is_named_after_the_lock_wait_and_never_blamed_on_acpi() {
    let (server, started) = fake(true, usize::MAX).await;
    let lock = Duration::from_millis(300);
    let ctx = context(&server, lock);
    let run = Run::default();
    let args = ShutdownArgs {
        vmid: 1006,
        timeout_s: Some(5),
        force_after_timeout: false,
        allow_outside_ranges: false,
        confirm: false,
    };
    let t0 = Instant::now();
    let e = ops::power(
        &ctx,
        &run,
        &PowerRequest {
            shutdown: Some(&args),
            ..PowerRequest::new(PowerAction::Shutdown, 1006, false)
        },
    )
    .await
    .expect_err("still locked");
    let waited = t0.elapsed();
    let text = e.to_string();
    assert!(matches!(e, ops::Error::Locked { .. }), "{text}");
    assert!(
        text.contains("(backup)") && text.contains("vm 1006"),
        "{text}"
    );
    assert!(
        !text.contains("ACPI") && !text.contains("vm_stop"),
        "{text}"
    );
    assert!(
        waited >= lock,
        "gave up after {waited:?}, before the lock wait"
    );
    assert!(
        started.load(Ordering::SeqCst) >= 3,
        "retried while waiting: {}",
        started.load(Ordering::SeqCst)
    );
}

//! The simulator's power actions, destroy, resize and guest-agent interfaces over real HTTPS
//! with raw reqwest; tasks are polled with deadlines, never fixed sleeps.

use crate::support;

use std::time::{Duration, Instant};

use support::{AUDITOR, Api, CLAUDE, GIB, message};

#[tokio::test(flavor = "multi_thread")]
async fn power_actions() {
    let api = Api::new(0.001).await;
    let mem_before = api.get("/nodes/pve02/status").await.1["data"]["memory"]["used"]
        .as_u64()
        .expect("mem");
    let st = api
        .run(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/start", &[])
        .await;
    assert_eq!(st, "OK");
    let s = api.status("pve02", 1007).await;
    assert_eq!(s["status"], "running");
    assert!(s["uptime"].as_u64().is_some_and(|u| u < 5));
    let mem_after = api.get("/nodes/pve02/status").await.1["data"]["memory"]["used"]
        .as_u64()
        .expect("mem");
    assert!(mem_after > mem_before);
    assert_eq!(api.resource(1007).await.expect("row")["status"], "running");
    // start again: the worker fails, as vm_start does
    let st = api
        .run(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/start", &[])
        .await;
    assert_eq!(st, "VM 1007 already running");
    // a template cannot start
    let st = api
        .run(CLAUDE, "POST", "/nodes/pve01/qemu/100/status/start", &[])
        .await;
    assert_eq!(st, "you can't start a vm if it's a template");
    // clean shutdown
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1007/status/shutdown",
            &[],
        )
        .await;
    assert!(upid.contains(":qmshutdown:1007:"));
    assert_eq!(api.wait(&upid).await, "OK");
    assert_eq!(api.status("pve02", 1007).await["status"], "stopped");
    // stop / shutdown of a stopped guest end OK (vm_stop returns quietly)
    let st = api
        .run(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/stop", &[])
        .await;
    assert_eq!(st, "OK");
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/reboot", &[])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "VM 1007 not running"));

    // a guest that ignores ACPI: shutdown times out, forceStop stops it
    api.h.set_guest_ignores_acpi(1000, true);
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1000/status/shutdown",
            &[("timeout", "30")],
        )
        .await;
    assert_eq!(st, "VM quit/powerdown failed - got timeout");
    assert_eq!(api.status("pve01", 1000).await["status"], "running");
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1000/status/shutdown",
            &[("forceStop", "1")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(
        api.task_log(&upid)
            .await
            .iter()
            .any(|l| l == "VM still running - terminating now with SIGTERM")
    );
    assert_eq!(api.status("pve01", 1000).await["status"], "stopped");
    api.h.set_guest_ignores_acpi(1000, false);

    // reboot, suspend, resume
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/qemu/1001/status/reboot", &[])
            .await,
        "OK"
    );
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/qemu/1001/status/suspend", &[])
            .await,
        "OK"
    );
    assert_eq!(api.status("pve01", 1001).await["qmpstatus"], "paused");
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1001/status/shutdown",
            &[],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "VM is paused - cannot shutdown")
    );
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/qemu/1001/status/resume", &[])
            .await,
        "OK"
    );
    assert_eq!(api.status("pve01", 1001).await["qmpstatus"], "running");
    // permission and parameter checks
    let (s, _) = api
        .call(AUDITOR, "POST", "/nodes/pve01/qemu/1001/status/stop", &[])
        .await;
    assert_eq!(s, 403);
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/1001/status/reboot",
            &[("forceStop", "1")],
        )
        .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_refusals_and_success() {
    let api = Api::new(0.001).await;
    let (s, b) = api
        .call(CLAUDE, "DELETE", "/nodes/pve01/qemu/1002", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "can't remove VM 1002 - protection mode enabled")
    );
    let (s, b) = api
        .call(CLAUDE, "DELETE", "/nodes/pve01/qemu/1000", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "VM 1000 is running - destroy failed")
    );
    // the lock and the flock are met in the worker (`destroy_vm`): the task fails
    api.h.hold_lock(1007, "migrate").expect("1007");
    let upid = api
        .upid(CLAUDE, "DELETE", "/nodes/pve02/qemu/1007", &[])
        .await;
    assert_eq!(api.wait(&upid).await, "VM is locked (migrate)");
    api.h.release_lock(1007).expect("1007");
    api.h.flock_timeout(1007, Duration::from_millis(200));
    let upid = api
        .upid(CLAUDE, "DELETE", "/nodes/pve02/qemu/1007", &[])
        .await;
    assert!(
        api.wait(&upid)
            .await
            .starts_with("can't lock file '/var/lock/qemu-server/lock-1007.conf'")
    );
    assert!(
        api.resource(1007).await.is_some(),
        "a failed destroy keeps the guest"
    );
    // the flock window closes by itself
    let before = api.storage_used("pve02", "local-lvm").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let upid = loop {
        let upid = api
            .upid(
                CLAUDE,
                "DELETE",
                "/nodes/pve02/qemu/1007",
                &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
            )
            .await;
        if api.wait(&upid).await == "OK" {
            break upid;
        }
        assert!(Instant::now() < deadline, "flock never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(upid.contains(":qmdestroy:1007:"));
    let (s, _) = api.get("/nodes/pve02/qemu/1007/config").await;
    assert_eq!(s, 500);
    assert!(api.resource(1007).await.is_none());
    assert!(api.storage_used("pve02", "local-lvm").await < before);
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_grow_equal_shrink() {
    let api = Api::new(0.001).await;
    let path = "/nodes/pve02/qemu/1007/resize";
    let before = api.storage_used("pve02", "local-lvm").await;
    let upid = api
        .upid(CLAUDE, "PUT", path, &[("disk", "scsi0"), ("size", "+2G")])
        .await;
    assert!(upid.contains(":resize:1007:"));
    assert_eq!(api.wait(&upid).await, "OK");
    let c = api.config("pve02", 1007).await;
    assert!(
        c["scsi0"].as_str().is_some_and(|s| s.ends_with("size=34G")),
        "{c}"
    );
    assert!(api.storage_used("pve02", "local-lvm").await > before);
    assert_eq!(api.resource(1007).await.expect("row")["maxdisk"], 34 * GIB);
    let digest = c["digest"].as_str().expect("digest").to_string();
    assert_eq!(
        api.run(
            CLAUDE,
            "PUT",
            path,
            &[("disk", "scsi0"), ("size", "34G"), ("digest", &digest)]
        )
        .await,
        "OK"
    );
    assert_eq!(api.config("pve02", 1007).await["digest"], digest.as_str());
    assert_eq!(
        api.run(CLAUDE, "PUT", path, &[("disk", "scsi0"), ("size", "10G")])
            .await,
        "shrinking disks is not supported"
    );
    // since qemu-server 8 every check after the parameters runs in the `resize` worker
    assert_eq!(
        api.run(CLAUDE, "PUT", path, &[("disk", "ide2"), ("size", "+1G")])
            .await,
        "you can't resize a cdrom"
    );
    let (s, b) = api
        .call(CLAUDE, "PUT", path, &[("disk", "scsi0"), ("size", "big")])
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        api.run(
            CLAUDE,
            "PUT",
            path,
            &[("disk", "scsi0"), ("size", "+1G"), ("digest", "0000")],
        )
        .await,
        "checksum mismatch (file change by other user?)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_interfaces_after_boot_delay() {
    let api = Api::new(0.02).await;
    let agent = "/nodes/pve02/qemu/1007/agent/network-get-interfaces";
    let (s, b) = api.call(CLAUDE, "GET", agent, &[]).await;
    assert_eq!((s, message(&b).as_str()), (500, "VM 1007 is not running"));
    let st = api
        .run(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/start", &[])
        .await;
    assert_eq!(st, "OK");
    let (s, b) = api.call(CLAUDE, "GET", agent, &[]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "QEMU guest agent is not running")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (s, b) = api.call(CLAUDE, "GET", agent, &[]).await;
        if s == 200 {
            break b;
        }
        assert!(Instant::now() < deadline, "agent never came up: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mac = api.config("pve02", 1007).await["net0"]
        .as_str()
        .and_then(|n| n.split(',').next())
        .and_then(|m| m.split_once('='))
        .map(|(_, m)| m.to_lowercase())
        .expect("mac");
    let eth0 = &body["data"]["result"][1];
    assert_eq!(body["data"]["result"][0]["name"], "lo");
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["hardware-address"], mac.as_str());
    let v4 = &eth0["ip-addresses"][0];
    assert_eq!(v4["ip-address-type"], "ipv4");
    assert!(
        v4["ip-address"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10."))
    );
    assert_eq!(eth0["ip-addresses"][1]["ip-address-type"], "ipv6");

    // a static ipconfig0 shows up; the auditor (VM.GuestAgent.Audit) may read it
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/qemu/1000/config",
            &[("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1")],
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = api
        .call(
            AUDITOR,
            "GET",
            "/nodes/pve01/qemu/1000/agent/network-get-interfaces",
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["data"]["result"][1]["ip-addresses"][0]["ip-address"],
        "10.0.0.5"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "GET",
            "/nodes/pve03/qemu/1008/agent/network-get-interfaces",
            &[],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "No QEMU guest agent configured")
    );
}

//! The simulator's VM-lifecycle surface over real HTTPS with raw reqwest: clone (full, linked,
//! target, early errors, lock visibility, concurrency), config writes and pending changes,
//! template conversion and the fault-injection hooks of `SimHandle`. Tasks are polled to
//! completion with deadlines, never fixed sleeps. Power, destroy, resize and the guest agent
//! are in `sim_power.rs`.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, ROOT, message, node_of};

#[tokio::test(flavor = "multi_thread")]
async fn linked_full_and_target_clones() {
    let api = Api::new(0.001).await;
    // linked clone of a template on NFS (qcow2), lock visible while it runs
    api.h.slow_node("pve01", 300.0);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/100/clone",
            &[("newid", "2000")],
        )
        .await;
    let task = api.task_status(&upid).await;
    assert_eq!(
        (&task["type"], &task["id"], &task["node"]),
        (
            &Value::from("qmclone"),
            &Value::from("100"),
            &Value::from("pve01")
        )
    );
    let row = api.resource(2000).await.expect("new VM listed at once");
    assert_eq!(row["lock"], "clone");
    assert_eq!(api.config("pve01", 2000).await["lock"], "clone");
    api.h.slow_node("pve01", 1.0);
    assert_eq!(api.wait(&upid).await, "OK");
    let c = api.config("pve01", 2000).await;
    let src = api.config("pve01", 100).await;
    assert!(
        c.get("lock").is_none() && c.get("template").is_none(),
        "{c}"
    );
    assert_eq!(c["name"], "Copy-of-VM-ubuntu-noble-tmpl");
    // drives are cloned in sorted key order, so efidisk0 takes disk-0 (as on PVE)
    assert!(
        c["scsi0"]
            .as_str()
            .is_some_and(|s| s
                .starts_with("nfs-shared:100/base-100-disk-0.qcow2/2000/vm-2000-disk-1.qcow2,")),
        "{c}"
    );
    assert!(
        c["efidisk0"]
            .as_str()
            .is_some_and(|s| s
                .starts_with("nfs-shared:100/base-100-disk-1.qcow2/2000/vm-2000-disk-0.qcow2,")),
        "{c}"
    );
    let net = c["net0"].as_str().expect("net0");
    assert!(net.starts_with("virtio=BC:24:11:") && net != src["net0"].as_str().unwrap_or(""));
    assert_ne!(c["smbios1"], src["smbios1"]);
    assert_ne!(c["vmgenid"], src["vmgenid"]);
    assert!(
        api.task_log(&upid)
            .await
            .iter()
            .any(|l| l.starts_with("create linked clone of drive scsi0"))
    );

    // full clone of a normal VM (full is forced), new volumes counted in storage usage
    let before = api.storage_used("pve02", "local-lvm").await;
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1007/clone",
            &[("newid", "2001"), ("name", "sandbox-copy")],
        )
        .await;
    assert_eq!(st, "OK");
    let c = api.config("pve02", 2001).await;
    assert_eq!(c["name"], "sandbox-copy");
    assert!(
        c["scsi0"]
            .as_str()
            .is_some_and(|s| s.starts_with("local-lvm:vm-2001-disk-")),
        "{c}"
    );
    assert!(api.storage_used("pve02", "local-lvm").await > before);

    // linked clone on lvmthin
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/101/clone",
            &[("newid", "2003")],
        )
        .await;
    assert_eq!(st, "OK");
    let c = api.config("pve01", 2003).await;
    assert!(
        c["scsi0"]
            .as_str()
            .is_some_and(|s| s.starts_with("local-lvm:base-101-disk-0/vm-2003-disk-")),
        "{c}"
    );

    // target: the task runs on the source node, the VM ends on the target
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/100/clone",
            &[("newid", "2002"), ("target", "pve02"), ("full", "1")],
        )
        .await;
    assert!(upid.starts_with("UPID:pve01:"));
    assert_eq!(api.wait(&upid).await, "OK");
    api.config("pve02", 2002).await;
    let (s, b) = api.get("/nodes/pve01/qemu/2002/config").await;
    assert_eq!(s, 500, "{b}");
    assert_eq!(api.resource(2002).await.expect("row")["node"], "pve02");
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_early_errors() {
    let api = Api::new(0.001).await;
    let clone = |vmid: u32, params: Vec<(&'static str, &'static str)>| {
        let api = &api;
        async move {
            api.call(
                CLAUDE,
                "POST",
                &format!("/nodes/{}/qemu/{vmid}/clone", node_of(vmid)),
                &params,
            )
            .await
        }
    };
    api.h.hold_lock(100, "backup").expect("vm 100");
    let (s, b) = clone(100, vec![("newid", "2000")]).await;
    assert_eq!((s, message(&b).as_str()), (500, "VM is locked (backup)"));
    api.h.release_lock(100).expect("vm 100");

    let (s, b) = clone(100, vec![("newid", "1000")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "unable to create VM 1000: config file already exists")
    );
    let (s, b) = clone(100, vec![("newid", "1004")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "VM 1004 already exists on node 'pve02'")
    );
    let (s, b) = clone(100, vec![("newid", "2000"), ("storage", "local-lvm")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "parameter 'storage' not allowed for linked clones")
    );
    let (s, b) = clone(1007, vec![("newid", "2000"), ("full", "0")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Linked clone feature is not supported for 'local-lvm:vm-1007-disk-0' (scsi0)"
        )
    );
    let (s, b) = clone(101, vec![("newid", "2000"), ("target", "pve02")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "can't clone VM to node 'pve02' (VM uses local storage)"
        )
    );
    let (s, b) = clone(
        100,
        vec![
            ("newid", "2000"),
            ("target", "pve02"),
            ("full", "1"),
            ("storage", "local-lvm"),
        ],
    )
    .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "can't clone to non-shared storage 'local-lvm'")
    );
    api.h.set_node_online("pve03", false).expect("pve03");
    let (s, _) = clone(100, vec![("newid", "2000"), ("target", "pve03")]).await;
    assert_eq!(s, 500);
    // the worker takes the flocks: a timeout fails the task, not the request
    api.h.flock_timeout(100, Duration::from_secs(30));
    let (s, b) = clone(100, vec![("newid", "2000")]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        api.wait(b["data"].as_str().expect("upid")).await,
        "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"
    );
    let (s, b) = api
        .call(
            AUDITOR,
            "POST",
            "/nodes/pve01/qemu/101/clone",
            &[("newid", "2000")],
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = clone(101, vec![("newid", "2000"), ("bogus", "1")]).await;
    assert_eq!(s, 400);
    assert!(b["errors"]["bogus"].is_string());
    // nothing was created by the refused requests
    assert!(api.resource(2000).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_clones_are_atomic() {
    let api = std::sync::Arc::new(Api::new(0.001).await);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..32u32 {
        let api = std::sync::Arc::clone(&api);
        set.spawn(async move {
            let newid = (3000 + i).to_string();
            api.upid(
                CLAUDE,
                "POST",
                "/nodes/pve01/qemu/100/clone",
                &[("newid", &newid)],
            )
            .await
        });
    }
    let mut upids = Vec::new();
    while let Some(r) = set.join_next().await {
        upids.push(r.expect("join"));
    }
    for u in &upids {
        assert_eq!(api.wait(u).await, "OK");
    }
    for i in 0..32u32 {
        assert!(api.resource(3000 + i).await.is_some());
    }
    // two clones to the same newid: one wins, the other fails early
    let (a, b) = tokio::join!(
        api.call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/100/clone",
            &[("newid", "4000")]
        ),
        api.call(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/101/clone",
            &[("newid", "4000")]
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 500]);
    let loser = if a.0 == 500 { a.1 } else { b.1 };
    assert_eq!(
        message(&loser),
        "unable to create VM 4000: config file already exists"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_clone_removes_the_half_created_vm() {
    let api = Api::new(0.001).await;
    api.h
        .fail_next_task("pve01", "qmclone", "clone failed: injected");
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/100/clone",
            &[("newid", "2000")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "clone failed: injected");
    let log = api.task_log(&upid).await;
    assert!(log.iter().any(|l| l.starts_with("create linked clone")));
    assert_eq!(
        log.last().map(String::as_str),
        Some("TASK ERROR: clone failed: injected")
    );
    assert!(api.resource(2000).await.is_none());
    // only the next one fails
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve01/qemu/100/clone",
            &[("newid", "2000")],
        )
        .await;
    assert_eq!(st, "OK");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_writes_digest_and_pending() {
    let api = Api::new(0.001).await;
    let path = "/nodes/pve02/qemu/1007/config";
    let digest = api.config("pve02", 1007).await["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            path,
            &[
                ("tags", "Zeta,alpha;Alpha beta"),
                ("cores", "4"),
                ("digest", &digest),
                ("net1", "virtio,bridge=vmbr0"),
                ("scsi1", "local-lvm:8"),
            ],
        )
        .await;
    assert_eq!((s, &b["data"]), (200, &Value::Null), "{b}");
    let c = api.config("pve02", 1007).await;
    assert_eq!(c["tags"], "alpha;beta;zeta");
    assert_eq!(c["cores"], 4);
    assert!(
        c["net1"]
            .as_str()
            .is_some_and(|n| n.starts_with("virtio=BC:24:11:"))
    );
    assert_eq!(c["scsi1"], "local-lvm:vm-1007-disk-2,size=8G");
    // the old digest no longer matches
    let (s, b) = api
        .call(CLAUDE, "PUT", path, &[("cores", "2"), ("digest", &digest)])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "checksum mismatch (file change by other user?)")
    );
    // POST is asynchronous: a qmconfig task
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            path,
            &[("description", "hello"), ("delete", "net1")],
        )
        .await;
    assert!(upid.contains(":qmconfig:1007:"));
    assert_eq!(api.wait(&upid).await, "OK");
    let c = api.config("pve02", 1007).await;
    assert_eq!(c["description"], "hello");
    assert!(c.get("net1").is_none());
    // validation and root-only skiplock
    let (s, b) = api.call(CLAUDE, "PUT", path, &[("lock", "backup")]).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api.call(CLAUDE, "PUT", path, &[("tags", "bad/tag")]).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api
        .call(CLAUDE, "PUT", path, &[("sshkeys", "ssh-ed25519 AAAA x@y")])
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            path,
            &[("sshkeys", "ssh-ed25519%20AAAAC3Nz%20x%40y")],
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = api
        .call(CLAUDE, "PUT", path, &[("name", "x"), ("skiplock", "1")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["errors"]["skiplock"], "Only root may use this option.");
    // locked guest
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve02/qemu/1006/config",
            &[("name", "m")],
        )
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "VM is locked (backup)"));
    let (s, _) = api
        .call(
            ROOT,
            "PUT",
            "/nodes/pve02/qemu/1006/config",
            &[("onboot", "0"), ("skiplock", "1")],
        )
        .await;
    assert_eq!(s, 400, "a root token is not root@pam itself");

    // running guest: cores/cpu go pending, tags/name apply at once
    let path = "/nodes/pve01/qemu/1000/config";
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            path,
            &[
                ("cores", "4"),
                ("cpu", "host"),
                ("tags", "Web;prod;NEW"),
                ("name", "web-01b"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, cur) = api.get(&format!("{path}?current=1")).await;
    assert_eq!(cur["data"]["cores"], 2);
    assert_eq!(cur["data"]["tags"], "new;prod;web");
    assert_eq!(cur["data"]["name"], "web-01b");
    assert_eq!(api.config("pve01", 1000).await["cores"], 4);
    let (_, p) = api.get("/nodes/pve01/qemu/1000/pending").await;
    let cores = p["data"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["key"] == "cores").cloned())
        .expect("cores row");
    assert_eq!(
        (&cores["value"], &cores["pending"]),
        (&Value::from("2"), &Value::from("4"))
    );
    assert_eq!(
        api.resource(1000).await.expect("row")["tags"],
        "new;prod;web"
    );
    // revert drops a pending change; a pending delete shows as `delete`
    let (s, _) = api
        .call(CLAUDE, "PUT", path, &[("sockets", "2"), ("delete", "vga")])
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .call(CLAUDE, "PUT", path, &[("revert", "sockets")])
        .await;
    assert_eq!(s, 200);
    let (_, p) = api.get("/nodes/pve01/qemu/1000/pending").await;
    let rows = p["data"].as_array().cloned().unwrap_or_default();
    let row = |k: &str| rows.iter().find(|e| e["key"] == k).cloned();
    assert!(row("sockets").is_some_and(|r| r.get("pending").is_none()));
    assert!(row("vga").is_none(), "deleting an unset key is a no-op");
    let (s, b) = api.call(CLAUDE, "PUT", path, &[("name", "bad name")]).await;
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"]["name"],
        "invalid format - value does not look like a valid DNS name\n"
    );
    // pending applied at stop
    let st = api
        .run(CLAUDE, "POST", "/nodes/pve01/qemu/1000/status/stop", &[])
        .await;
    assert_eq!(st, "OK");
    let (_, cur) = api.get(&format!("{path}?current=1")).await;
    assert_eq!(cur["data"]["cores"], 4);
    assert_eq!(cur["data"]["cpu"], "host");
    let (_, p) = api.get("/nodes/pve01/qemu/1000/pending").await;
    assert!(
        p["data"]
            .as_array()
            .is_some_and(|a| a.iter().all(|e| e.get("pending").is_none()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn template_conversion() {
    let api = Api::new(0.001).await;
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve01/qemu/1000/template", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "you can't convert a VM to template if VM is running")
    );
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve01/qemu/100/template", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "you can't convert a template to a template")
    );
    let upid = api
        .upid(CLAUDE, "POST", "/nodes/pve02/qemu/1007/template", &[])
        .await;
    assert!(upid.contains(":qmtemplate:1007:"));
    assert_eq!(api.wait(&upid).await, "OK");
    let c = api.config("pve02", 1007).await;
    assert_eq!(c["template"], 1);
    assert!(
        c["scsi0"]
            .as_str()
            .is_some_and(|s| s.starts_with("local-lvm:base-1007-disk-0,"))
    );
    // and it can now be linked-cloned
    assert_eq!(
        api.run(
            CLAUDE,
            "POST",
            "/nodes/pve02/qemu/1007/clone",
            &[("newid", "2000")]
        )
        .await,
        "OK"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_injection_hooks() {
    let api = Api::new(0.001).await;
    let path = "/nodes/pve02/qemu/1007/config";
    // hold_lock_for releases itself
    api.h
        .hold_lock_for(1007, "backup", Duration::from_millis(150))
        .expect("1007");
    let (s, b) = api.call(CLAUDE, "PUT", path, &[("name", "x1")]).await;
    assert_eq!((s, message(&b).as_str()), (500, "VM is locked (backup)"));
    assert_eq!(api.resource(1007).await.expect("row")["lock"], "backup");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = api.call(CLAUDE, "PUT", path, &[("name", "x1")]).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "lock never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(api.h.hold_lock(99_999, "backup").is_err());
    // flock_timeout on config writes
    api.h.flock_timeout(1007, Duration::from_secs(30));
    let (s, b) = api.call(CLAUDE, "PUT", path, &[("name", "x2")]).await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "can't lock file '/var/lock/qemu-server/lock-1007.conf' - got timeout"
        )
    );
    api.h.flock_timeout(1007, Duration::ZERO);
    // fail_next_task: the start fails after its log, the guest stays stopped
    api.h
        .fail_next_task("pve02", "qmstart", "start failed: QEMU exited with code 1");
    let upid = api
        .upid(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/start", &[])
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "start failed: QEMU exited with code 1"
    );
    assert_eq!(
        api.task_log(&upid).await.last().map(String::as_str),
        Some("TASK ERROR: start failed: QEMU exited with code 1")
    );
    assert_eq!(api.status("pve02", 1007).await["status"], "stopped");
    // slow_node stretches task durations on that node only
    api.h.slow_node("pve02", 400.0);
    let upid = api
        .upid(CLAUDE, "POST", "/nodes/pve02/qemu/1007/status/start", &[])
        .await;
    assert_eq!(api.task_status(&upid).await["status"], "running");
    let started = Instant::now();
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(started.elapsed() >= Duration::from_millis(500));
    // set_node_online: 595 for the offline node
    api.h.set_node_online("pve02", false).expect("pve02");
    let (s, _) = api.call(CLAUDE, "PUT", path, &[("name", "x3")]).await;
    assert_eq!(s, 595);
}

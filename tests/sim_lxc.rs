//! LXC containers in the simulator over real HTTPS (see `src/sim/api/lxc/mod.rs`): the seeded
//! containers in the listings, a container's life from a vztmpl (create, start, resize, snapshot,
//! vzdump, restore to a new vmid, migrate, delete), the appliance index and its download, and
//! the refusals PVE sends (its wording, its status codes). Every wait polls with a deadline.

use crate::support;

use serde_json::Value;
use support::{AUDITOR, Api, CLAUDE, ROOT, message};

const SCALE: f64 = 0.002;

async fn ct_config(api: &Api, node: &str, vmid: u32) -> Value {
    let (s, b) = api.get(&format!("/nodes/{node}/lxc/{vmid}/config")).await;
    assert_eq!(s, 200, "config of CT {vmid} on {node}: {b}");
    b["data"].clone()
}

fn has(log: &[String], needle: &str) -> bool {
    log.iter().any(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_containers_are_listed_as_pve_lists_them() {
    let api = Api::new(SCALE).await;
    let (s, b) = api.get("/cluster/resources?type=vm").await;
    assert_eq!(s, 200);
    let rows = b["data"].as_array().expect("rows");
    let pihole = rows.iter().find(|r| r["vmid"] == 1200).expect("CT 1200");
    assert_eq!(pihole["id"], "lxc/1200");
    assert_eq!(pihole["type"], "lxc");
    assert_eq!(pihole["name"], "pihole");
    assert_eq!(pihole["status"], "running");
    assert_eq!(pihole["tags"], "dns;prod");
    let tmpl = rows.iter().find(|r| r["vmid"] == 110).expect("CT 110");
    assert_eq!(
        (tmpl["type"].as_str(), tmpl["template"].as_u64()),
        (Some("lxc"), Some(1))
    );
    // the node's lists keep the kinds apart
    let (_, b) = api.get("/nodes/pve02/lxc").await;
    let ids: Vec<u64> = b["data"]
        .as_array()
        .expect("lxc list")
        .iter()
        .filter_map(|r| r["vmid"].as_u64())
        .collect();
    assert!(
        ids.contains(&1200) && ids.contains(&1202) && !ids.contains(&1000),
        "{ids:?}"
    );
    let row = b["data"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["vmid"] == 1200))
        .expect("row");
    assert_eq!(
        (row["type"].as_str(), row["maxswap"].as_u64()),
        (Some("lxc"), Some(512 << 20))
    );
    let (_, b) = api.get("/nodes/pve02/qemu").await;
    assert!(
        !b["data"]
            .as_array()
            .expect("qemu list")
            .iter()
            .any(|r| r["vmid"] == 1200),
        "{b}"
    );
    // qemu paths do not see containers, and lxc paths do not see VMs
    let (s, b) = api.get("/nodes/pve02/qemu/1200/config").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve02/qemu-server/1200.conf' does not exist"
        )
    );
    let (s, b) = api.get("/nodes/pve01/lxc/1000/config").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve01/lxc/1000.conf' does not exist"
        )
    );
    // pct's config keys
    let c = ct_config(&api, "pve02", 1200).await;
    assert_eq!(c["hostname"], "pihole");
    assert_eq!(
        (c["unprivileged"].as_u64(), c["memory"].as_u64()),
        (Some(1), Some(512))
    );
    assert_eq!(c["rootfs"], "local-lvm:vm-1200-disk-0,size=8G");
    let net = c["net0"].as_str().expect("net0");
    assert!(
        net.starts_with("name=eth0,bridge=vmbr0,firewall=1,gw=10.10.0.1,hwaddr=BC:24:11:")
            && net.ends_with(",ip=10.10.0.53/24,type=veth"),
        "{net}"
    );
    assert!(c["digest"].as_str().is_some_and(|d| d.len() == 40));
    let privileged = ct_config(&api, "pve02", 1201).await;
    assert!(privileged.get("unprivileged").is_none(), "{privileged}");
    let tmpl = ct_config(&api, "pve02", 110).await;
    assert_eq!(tmpl["rootfs"], "local-lvm:base-110-disk-0,size=4G");
    // volumes are rootdir content; the vztmpl is listed on local
    let (_, b) = api
        .get("/nodes/pve02/storage/local-lvm/content?content=rootdir")
        .await;
    let vols: Vec<&str> = b["data"]
        .as_array()
        .expect("content")
        .iter()
        .filter_map(|v| v["volid"].as_str())
        .collect();
    assert!(vols.contains(&"local-lvm:vm-1200-disk-0"), "{vols:?}");
    assert!(!vols.contains(&"local-lvm:vm-1006-disk-0"), "{vols:?}");
    // the seeded container backup, and a restore of it to a new vmid
    let (_, b) = api
        .get("/nodes/pve02/storage/local/content?content=backup")
        .await;
    let seeded = "local:backup/vzdump-lxc-1200-2026_11_21-01_30_04.tar.zst";
    let row = b["data"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["volid"] == seeded))
        .expect("seeded CT backup");
    assert_eq!(
        (
            row["subtype"].as_str(),
            row["vmid"].as_u64(),
            row["format"].as_str()
        ),
        (Some("lxc"), Some(1200), Some("tar.zst"))
    );
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc",
            &[
                ("vmid", "2500"),
                ("ostemplate", seeded),
                ("restore", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(st, "OK");
    let r = ct_config(&api, "pve02", 2500).await;
    assert_eq!(
        (r["hostname"].as_str(), r["tags"].as_str()),
        (Some("pihole"), Some("dns;prod"))
    );
    assert_eq!(r["rootfs"], "local-lvm:vm-2500-disk-0,size=8G");
    let (_, b) = api
        .get("/nodes/pve01/storage/local/content?content=vztmpl")
        .await;
    assert_eq!(
        b["data"][0]["volid"],
        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_lives_from_template_to_purge() {
    let api = Api::new(SCALE).await;
    let tmpl = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
    // create: rootfs allocated, lock create while the task runs (pve01 slowed down so the
    // task is still running when the config is read), secrets never in the config
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2100"),
                ("ostemplate", tmpl),
                ("hostname", "web-ct"),
                ("rootfs", "local-lvm:8"),
                ("cores", "2"),
                ("memory", "1024"),
                ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
                ("password", "sup3r-secret"),
                (
                    "ssh-public-keys",
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample test@host",
                ),
                ("tags", "web"),
                ("protection", "1"),
            ],
        )
        .await;
    assert!(
        upid.contains(":vzcreate:2100:claude-code@pve!automation:"),
        "{upid}"
    );
    let early = ct_config(&api, "pve01", 2100).await;
    assert_eq!(early["lock"], "create", "{early}");
    api.h.slow_node("pve01", 1.0);
    assert_eq!(api.wait(&upid).await, "OK");
    let c = ct_config(&api, "pve01", 2100).await;
    assert_eq!(c["rootfs"], "local-lvm:vm-2100-disk-0,size=8G");
    assert_eq!(
        (c["ostype"].as_str(), c["unprivileged"].as_u64()),
        (Some("debian"), Some(1))
    );
    assert_eq!((c["swap"].as_u64(), c.get("lock")), (Some(512), None));
    let net = c["net0"].as_str().expect("net0");
    assert!(
        net.contains(",hwaddr=BC:24:11:") && net.ends_with(",ip=dhcp,type=veth"),
        "{net}"
    );
    let text = c.to_string();
    assert!(
        !text.contains("sup3r-secret") && !text.contains("AAAAC3Nza"),
        "{text}"
    );
    // the same vmid again
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[("vmid", "2100"), ("ostemplate", tmpl)],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "CT 2100 already exists on node 'pve01'")
    );

    // start; start again is refused before the fork
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/lxc/2100/status/start", &[])
            .await,
        "OK"
    );
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve01/lxc/2100/status/start", &[])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "CT 2100 already running"));
    let (_, b) = api.get("/nodes/pve01/lxc/2100/status/current").await;
    assert_eq!(
        (
            b["data"]["status"].as_str(),
            b["data"]["ha"]["managed"].as_u64()
        ),
        (Some("running"), Some(0))
    );

    // resize: grow, shrink refused
    let upid = api
        .upid(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/resize",
            &[("disk", "rootfs"), ("size", "+2G")],
        )
        .await;
    assert!(upid.contains(":resize:2100:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    assert_eq!(
        ct_config(&api, "pve01", 2100).await["rootfs"],
        "local-lvm:vm-2100-disk-0,size=10G"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/resize",
            &[("disk", "rootfs"), ("size", "4G")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "unable to shrink disk size")
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/resize",
            &[("disk", "rootfs"), ("size", "10G")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "disk is already at specified size")
    );

    // config writes: hot-pluggable keys at once, read-only ones refused
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/config",
            &[("memory", "2048"), ("ostype", "ubuntu")],
        )
        .await;
    assert_eq!((s, &b["data"]), (200, &Value::Null), "{b}");
    let c = ct_config(&api, "pve01", 2100).await;
    assert_eq!(
        (c["memory"].as_u64(), c["ostype"].as_str()),
        (Some(2048), Some("ubuntu"))
    );
    let (_, b) = api.get("/nodes/pve01/lxc/2100/pending").await;
    let ostype = b["data"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["key"] == "ostype"))
        .expect("ostype row");
    assert_eq!(
        (ostype["value"].as_str(), ostype["pending"].as_str()),
        (Some("debian"), Some("ubuntu"))
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/config",
            &[("unprivileged", "0")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "unable to modify read-only option: 'unprivileged'")
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/config",
            &[("net1", "bridge=vmbr0")],
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["errors"]["net1"]
            .as_str()
            .is_some_and(|e| e.contains("name: property is missing")),
        "{b}"
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve01/lxc/2100/config",
            &[("mp0", "/srv/data,mp=/data")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            403,
            "Permission check failed (mount point type bind is only allowed for root@pam)"
        )
    );

    // snapshot (lock checked while the slowed-down task runs)
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/snapshot",
            &[("snapname", "before"), ("description", "first")],
        )
        .await;
    assert!(upid.contains(":vzsnapshot:2100:"), "{upid}");
    assert_eq!(ct_config(&api, "pve01", 2100).await["lock"], "snapshot");
    api.h.slow_node("pve01", 1.0);
    assert_eq!(api.wait(&upid).await, "OK");
    let (_, b) = api.get("/nodes/pve01/lxc/2100/snapshot").await;
    let names: Vec<&str> = b["data"]
        .as_array()
        .expect("snaps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["before", "current"]);
    assert_eq!(b["data"][1]["parent"], "before");
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/snapshot",
            &[("snapname", "before")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "snapshot name 'before' already used");
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/snapshot",
            &[("snapname", "current")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "unable to use snapshot name 'current' (reserved name)")
    );

    // vzdump of the container: an lxc archive on local
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/vzdump",
            &[
                ("vmid", "2100"),
                ("storage", "local"),
                ("mode", "snapshot"),
                ("compress", "zstd"),
            ],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert!(
        has(&log, "INFO: Starting Backup of VM 2100 (lxc)"),
        "{log:?}"
    );
    assert!(
        has(&log, "INFO: including mount point rootfs ('/') in backup"),
        "{log:?}"
    );
    assert!(has(&log, "INFO: backup mode: snapshot"), "{log:?}");
    let (_, b) = api
        .get("/nodes/pve01/storage/local/content?content=backup&vmid=2100")
        .await;
    let archive = b["data"][0].clone();
    let volid = archive["volid"].as_str().expect("archive").to_string();
    assert!(
        volid.starts_with("local:backup/vzdump-lxc-2100-") && volid.ends_with(".tar.zst"),
        "{volid}"
    );
    assert_eq!(
        (archive["subtype"].as_str(), archive["format"].as_str()),
        (Some("lxc"), Some("tar.zst"))
    );

    // restore to a new vmid
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2101"),
                ("ostemplate", &volid),
                ("restore", "1"),
                ("storage", "local-lvm"),
                ("unique", "1"),
            ],
        )
        .await;
    assert!(upid.contains(":vzrestore:2101:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    let r = ct_config(&api, "pve01", 2101).await;
    assert_eq!(
        (r["hostname"].as_str(), r["memory"].as_u64()),
        (Some("web-ct"), Some(2048))
    );
    assert_eq!(r["rootfs"], "local-lvm:vm-2101-disk-0,size=10G");
    assert_ne!(
        r["net0"],
        ct_config(&api, "pve01", 2100).await["net0"],
        "unique gives a new MAC"
    );
    // over an existing container: `force`, and PVE's protection check (2101 inherited it)
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2101"),
                ("ostemplate", &volid),
                ("restore", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "CT 2101 already exists on node 'pve01'")
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2101"),
                ("ostemplate", &volid),
                ("restore", "1"),
                ("storage", "local-lvm"),
                ("force", "1"),
            ],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "unable to restore CT 2101 - protection mode enabled")
    );
    // restoring from a volume of the wrong content type
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2102"),
                ("ostemplate", tmpl),
                ("restore", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            format!("unable to use volume {tmpl} - content type needs to be 'backup'").as_str()
        )
    );

    // migrate: online refused in the worker, without a mode refused before it, restart works
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/migrate",
            &[("target", "pve02")],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "can't migrate running container without --online or --restart"
        )
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/migrate",
            &[("target", "pve01"), ("restart", "1")],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["target"].as_str()),
        (400, Some("target is local node."))
    );
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/migrate",
            &[("target", "pve02"), ("online", "1")],
        )
        .await;
    assert!(upid.contains(":vzmigrate:2100:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "migration aborted");
    let log = api.task_log(&upid).await;
    assert!(
        has(
            &log,
            "ERROR: migration aborted (duration 00:00:00): lxc live migration is currently not implemented"
        ),
        "{log:?}"
    );
    api.h.slow_node("pve01", 100.0);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc/2100/migrate",
            &[("target", "pve02"), ("restart", "1")],
        )
        .await;
    assert_eq!(ct_config(&api, "pve01", 2100).await["lock"], "migrate");
    api.h.slow_node("pve01", 1.0);
    assert_eq!(api.wait(&upid).await, "OK");
    let log = api.task_log(&upid).await;
    assert!(has(&log, "shutdown CT 2100"), "{log:?}");
    assert!(
        has(
            &log,
            "starting migration of CT 2100 to node 'pve02' (10.10.0.12)"
        ),
        "{log:?}"
    );
    assert!(has(&log, "start container on target node"), "{log:?}");
    let row = api.resource(2100).await.expect("row");
    assert_eq!(
        (row["node"].as_str(), row["status"].as_str()),
        (Some("pve02"), Some("running"))
    );
    // the bind mount blocks the seeded media-share
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc/1202/migrate",
            &[("target", "pve03"), ("restart", "1")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "migration aborted");
    assert!(
        has(
            &api.task_log(&upid).await,
            "cannot migrate local bind mount point 'mp0'"
        ),
        "bind mount reason in the log"
    );
    assert_eq!(api.resource(1202).await.expect("row")["node"], "pve02");

    // delete: protection, running, then stop and purge
    let (s, b) = api
        .call(CLAUDE, "DELETE", "/nodes/pve02/lxc/2100", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "can't remove CT 2100 - protection mode enabled")
    );
    let (s, _) = api
        .call(
            CLAUDE,
            "PUT",
            "/nodes/pve02/lxc/2100/config",
            &[("delete", "protection")],
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = api
        .call(CLAUDE, "DELETE", "/nodes/pve02/lxc/2100", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "unable to destroy CT 2100 - container is running")
    );
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc/2100/status/shutdown",
            &[("timeout", "30")],
        )
        .await;
    assert!(upid.contains(":vzshutdown:2100:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/lxc/2100/status/stop", &[])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "CT 2100 not running"));
    let upid = api
        .upid(
            CLAUDE,
            "DELETE",
            "/nodes/pve02/lxc/2100",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    assert!(upid.contains(":vzdestroy:2100:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(has(
        &api.task_log(&upid).await,
        "purging CT 2100 from related configurations.."
    ));
    assert!(api.resource(2100).await.is_none());
    let (s, b) = api.get("/nodes/pve02/lxc/2100/config").await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve02/lxc/2100.conf' does not exist"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_clones_and_the_appliance_index() {
    let api = Api::new(SCALE).await;
    // linked clone of the seeded template
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc/110/clone",
            &[("newid", "2200"), ("hostname", "ct-clone")],
        )
        .await;
    assert!(upid.contains(":vzclone:110:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    let c = ct_config(&api, "pve02", 2200).await;
    assert_eq!(
        c["rootfs"],
        "local-lvm:base-110-disk-0/vm-2200-disk-0,size=4G"
    );
    assert_eq!(c["hostname"], "ct-clone");
    // clone refusals, before the fork
    for (vmid, params, want) in [
        (
            1200,
            vec![("newid", "2210")],
            "Full clone of a running container is only possible from a snapshot",
        ),
        (
            1200,
            vec![("newid", "2210"), ("full", "0")],
            "Linked clone feature for 'local-lvm:vm-1200-disk-0' is not available",
        ),
        (
            1202,
            vec![("newid", "2210")],
            "unable to clone mountpoint 'mp0' (type bind)",
        ),
        (
            110,
            vec![("newid", "2210"), ("target", "pve03")],
            "can't clone CT to node 'pve03' (CT uses local storage)",
        ),
        (
            110,
            vec![("newid", "1004")],
            "VM 1004 already exists on node 'pve02'",
        ),
    ] {
        let (s, b) = api
            .call(
                CLAUDE,
                "POST",
                &format!("/nodes/pve02/lxc/{vmid}/clone"),
                &params,
            )
            .await;
        assert_eq!((s, message(&b).as_str()), (500, want), "{vmid} {params:?}");
    }
    assert!(
        ct_config(&api, "pve02", 1200).await.get("lock").is_none(),
        "no lock left behind"
    );
    // template: a running CT is refused, a stopped one converted
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/lxc/1200/template", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "you can't convert a CT to template if the CT is running"
        )
    );
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/lxc/2200/template", &[])
        .await;
    assert_eq!((s, &b["data"]), (200, &Value::Null), "{b}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ct_config(&api, "pve02", 2200).await["template"] != 1 {
        assert!(std::time::Instant::now() < end, "template never set");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/lxc/2200/template", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "you can't convert a template to a template")
    );
    let upid = api
        .upid(CLAUDE, "POST", "/nodes/pve02/lxc/2200/status/start", &[])
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "you can't start a CT if it's a template"
    );

    // the appliance index: every user may read it
    let (s, b) = api.call(AUDITOR, "GET", "/nodes/pve02/aplinfo", &[]).await;
    assert_eq!(s, 200, "{b}");
    let rows = b["data"].as_array().expect("aplinfo");
    let deb = rows
        .iter()
        .find(|r| r["package"] == "debian-12-standard")
        .expect("debian");
    assert_eq!(deb["template"], "debian-12-standard_12.7-1_amd64.tar.zst");
    assert_eq!(deb["section"], "system");
    assert_eq!(deb["headline"], "Debian 12 Bookworm (standard)");
    assert!(
        deb["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://download.proxmox.com/images/system/"))
    );
    assert_eq!(deb["sha512sum"].as_str().map(str::len), Some(128));
    assert!(rows.iter().any(|r| r["package"] == "ubuntu-24.04-standard"));
    assert!(rows.iter().any(|r| r["package"] == "alpine-3.20-default"));
    // download: Datastore.AllocateTemplate, a vztmpl storage, a known template
    let ubuntu = "ubuntu-24.04-standard_24.04-2_amd64.tar.zst";
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve02/aplinfo",
            &[("storage", "local"), ("template", ubuntu)],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            403,
            "Permission check failed (/storage/local, Datastore.AllocateTemplate)"
        )
    );
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            "/nodes/pve02/aplinfo",
            &[("storage", "local-lvm"), ("template", ubuntu)],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (500, "storage 'local-lvm' does not support templates")
    );
    let (s, b) = api
        .call(
            ROOT,
            "POST",
            "/nodes/pve02/aplinfo",
            &[("storage", "local"), ("template", "nope.tar.zst")],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["template"].as_str()),
        (400, Some("no such template"))
    );
    let upid = api
        .upid(
            ROOT,
            "POST",
            "/nodes/pve02/aplinfo",
            &[("storage", "local"), ("template", ubuntu)],
        )
        .await;
    assert!(
        upid.contains(&format!(":download:{ubuntu}:root@pam!admin:")),
        "{upid}"
    );
    assert_eq!(api.wait(&upid).await, "OK");
    assert!(has(
        &api.task_log(&upid).await,
        "calculating checksum...OK, checksum verified"
    ));
    let (_, b) = api
        .get("/nodes/pve02/storage/local/content?content=vztmpl")
        .await;
    assert_eq!(b["data"][0]["volid"], format!("local:vztmpl/{ubuntu}"));
    // and a container from it on pve02
    let st = api
        .run(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc",
            &[
                ("vmid", "2201"),
                ("ostemplate", &format!("local:vztmpl/{ubuntu}")),
                ("storage", "local-lvm"),
                ("start", "1"),
            ],
        )
        .await;
    assert_eq!(st, "OK");
    let c = ct_config(&api, "pve02", 2201).await;
    assert_eq!(
        (c["ostype"].as_str(), c["hostname"].as_str()),
        (Some("ubuntu"), Some("CT2201"))
    );
    assert_eq!(c["rootfs"], "local-lvm:vm-2201-disk-0,size=4G");
    assert_eq!(api.resource(2201).await.expect("row")["status"], "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn limited_tokens_are_refused_with_pve_wording() {
    let api = Api::new(SCALE).await;
    let tmpl = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
    // a privileged container needs Sys.Modify on /
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2300"),
                ("ostemplate", tmpl),
                ("unprivileged", "0"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (403, "Permission check failed (/, Sys.Modify)")
    );
    // the read-only token
    let (s, b) = api
        .call(
            AUDITOR,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2300"),
                ("ostemplate", tmpl),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!((s, message(&b).as_str()), (403, "Permission check failed"));
    for (m, p, params) in [
        ("POST", "/nodes/pve02/lxc/1200/status/stop", vec![]),
        (
            "PUT",
            "/nodes/pve02/lxc/1200/config",
            vec![("memory", "1024")],
        ),
        ("DELETE", "/nodes/pve02/lxc/1201", vec![]),
        (
            "POST",
            "/nodes/pve02/lxc/1200/migrate",
            vec![("target", "pve02")],
        ),
        (
            "POST",
            "/nodes/pve02/lxc/1200/snapshot",
            vec![("snapname", "x")],
        ),
    ] {
        let (s, b) = api.call(AUDITOR, m, p, &params).await;
        assert_eq!(s, 403, "{m} {p}: {b}");
        assert!(
            message(&b).starts_with("Permission check failed (/vms/120"),
            "{m} {p}: {b}"
        );
    }
    let (s, b) = api
        .call(AUDITOR, "GET", "/nodes/pve02/lxc/1200/config", &[])
        .await;
    assert_eq!(s, 200, "auditors read configs: {b}");
    // a storage without rootdir content
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[("vmid", "2300"), ("ostemplate", tmpl)],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["storage"].as_str()),
        (
            400,
            Some("storage 'local' does not support container directories")
        )
    );
    // a template that does not exist fails in the worker and leaves nothing behind
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2300"),
                ("ostemplate", "local:vztmpl/none.tar.zst"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "unable to create CT 2300 - volume 'local:vztmpl/none.tar.zst' does not exist"
    );
    assert!(api.resource(2300).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_resume_shutdown_timeouts_and_pct_over_ssh() {
    let api = Api::new(SCALE).await;
    let base = "/nodes/pve02/lxc/1200/status";
    // resume of a running CT, suspend of a stopped one: refused before the fork
    let (s, b) = api
        .call(CLAUDE, "POST", &format!("{base}/resume"), &[])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "CT 1200 already running"));
    let upid = api
        .upid(CLAUDE, "POST", &format!("{base}/suspend"), &[])
        .await;
    assert!(upid.contains(":vzsuspend:1200:"), "{upid}");
    assert_eq!(api.wait(&upid).await, "OK");
    assert_eq!(api.resource(1200).await.expect("row")["status"], "stopped");
    let (s, b) = api
        .call(CLAUDE, "POST", &format!("{base}/suspend"), &[])
        .await;
    assert_eq!((s, message(&b).as_str()), (500, "CT 1200 not running"));
    assert_eq!(
        api.run(CLAUDE, "POST", &format!("{base}/resume"), &[])
            .await,
        "OK"
    );
    assert_eq!(api.resource(1200).await.expect("row")["status"], "running");
    // a resume without a checkpoint fails in lxc-checkpoint
    let upid = api
        .upid(CLAUDE, "POST", "/nodes/pve02/lxc/110/status/resume", &[])
        .await;
    assert_eq!(
        api.wait(&upid).await,
        "command 'lxc-checkpoint -n 110 -r --foreground -D /var/lib/vz/dump' failed: exit code 1"
    );
    // a container that ignores the shutdown request: "container did not stop" unless forceStop
    api.h.set_guest_ignores_acpi(1201, true);
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc/1201/status/shutdown",
            &[("timeout", "5")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "container did not stop");
    assert_eq!(api.resource(1201).await.expect("row")["status"], "running");
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve02/lxc/1201/status/shutdown",
            &[("timeout", "5"), ("forceStop", "1")],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    assert_eq!(api.resource(1201).await.expect("row")["status"], "stopped");

    // qemu endpoints and VM creation meet the container's vmid as PVE words it
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve02/qemu/1200/status/stop", &[])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "Configuration file 'nodes/pve02/qemu-server/1200.conf' does not exist"
        )
    );
    let (s, b) = api
        .call(CLAUDE, "POST", "/nodes/pve01/qemu", &[("vmid", "1200")])
        .await;
    assert_eq!(
        (s, message(&b).as_str()),
        (
            500,
            "unable to create VM 1200 - CT 1200 already exists on node 'pve02'"
        )
    );
    let (s, b) = api
        .call(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2400"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("unique", "1"),
            ],
        )
        .await;
    assert_eq!(
        (s, b["errors"]["restore"].as_str()),
        (400, Some("missing property required by 'unique'"))
    );

    // pct over SSH
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = support::SimSsh::new(&api, dir.path());
    let out = pool.run(&api, "pve02", &["pct", "list"]).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["VMID", "Status", "Lock", "Name"]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1200", "running", "pihole"]),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("1004"),
        "VMs are not containers: {}",
        out.stdout
    );
    let out = pool.run(&api, "pve02", &["pct", "config", "1202"]).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == "mp0: /srv/media,mp=/media"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l == "hostname: media-share"),
        "{}",
        out.stdout
    );
    let out = pool.run(&api, "pve02", &["qm", "list"]).await;
    assert!(
        !out.stdout.contains("pihole"),
        "qm lists no containers: {}",
        out.stdout
    );
    let out = pool.run(&api, "pve01", &["pct", "config", "1202"]).await;
    assert_eq!(out.status, Some(255), "{out:?}");
    assert!(
        out.stderr
            .contains("Configuration file 'nodes/pve01/lxc/1202.conf' does not exist"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn interfaces_read_the_running_containers_addresses() {
    let api = Api::new(SCALE).await;
    let (s, b) = api.get("/nodes/pve02/lxc/1200/interfaces").await;
    assert_eq!(s, 200, "{b}");
    let list = b["data"].as_array().expect("a list for a running CT");
    assert_eq!(list[0]["name"], "lo");
    assert_eq!(list[0]["inet"], "127.0.0.1/8");
    let eth0 = list.iter().find(|i| i["name"] == "eth0").expect("eth0");
    assert_eq!(eth0["inet"], "10.10.0.53/24", "net0's static ip: {b}");
    assert_eq!(
        eth0["hwaddr"], "bc:24:11:40:aa:fc",
        "net0's hwaddr, lower case: {b}"
    );
    assert!(
        eth0["inet6"]
            .as_str()
            .is_some_and(|a| a.starts_with("fe80::") && a.ends_with("/64")),
        "{b}"
    );
    // the template is not running: PVE finds no pid and answers no data
    let (s, b) = api.get("/nodes/pve02/lxc/110/interfaces").await;
    assert_eq!((s, b["data"].clone()), (200, Value::Null), "{b}");
    let (s, b) = api.get("/nodes/pve01/lxc/1200/interfaces").await;
    assert_eq!(s, 500, "CT 1200 is not on pve01: {b}");
}

//! The cluster snapshot read from the simulator over HTTPS, and an evacuation planned on it:
//! the planners' input comes from what PVE really answers, not only from hand-built data.

use crate::common;

use proxmox_manager::config;
use proxmox_manager::ops::{
    self,
    cluster::snapshot::{ClusterSnapshot, GuestKind},
    plan::{EvacuationRequest, MoveMode, Unplaceable, evacuate},
};
use proxmox_manager::pve;

const GIB: u64 = 1024 * 1024 * 1024;

async fn context(sim: &proxmox_manager::sim::SimHandle) -> ops::Context {
    let t = sim.token(common::MANAGER).expect("token");
    let cfg = config::sim_config(
        sim.addr().port(),
        pve::parse_fingerprint(&sim.fingerprint()).expect("fp"),
    );
    let cred = config::credentials::TokenCredential {
        id: t.id,
        secret: secrecy::SecretString::from(t.secret),
        source: config::credentials::CredentialSource::Simulator,
    };
    ops::Context::new(cfg, cred).expect("context")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_has_the_nodes_guests_and_storages_pve_reports() {
    let sim = common::start_sim().await;
    let ctx = context(&sim).await;
    let snap = ClusterSnapshot::read(&ctx).await.expect("snapshot");

    let nodes: Vec<(&str, bool, u64, u64)> = snap
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.online, n.cpus, n.maxmem / GIB))
        .collect();
    assert_eq!(
        nodes,
        [
            ("pve01", true, 48, 256),
            ("pve02", true, 64, 128),
            ("pve03", true, 6, 32)
        ]
    );
    let web = snap.guest(1000).expect("web-01");
    assert_eq!((web.name.as_str(), web.node.as_str()), ("web-01", "pve01"));
    assert_eq!(
        (web.kind, web.maxcpu, web.maxmem),
        (GuestKind::Qemu, 2, 4 * GIB)
    );
    assert_eq!(web.tags, ["prod", "web"]);
    assert!(web.is_running() && web.disks.is_none());
    assert_eq!(snap.guest(1006).unwrap().lock.as_deref(), Some("backup"));
    assert!(snap.guest(100).unwrap().template);

    let lvm = snap
        .storage("pve02", "local-lvm")
        .expect("local-lvm on pve02");
    assert!(!lvm.shared && lvm.active && lvm.content.contains(&"images".to_string()));
    let nfs = snap.storage("pve03", "nfs-shared").expect("nfs on pve03");
    assert!(nfs.shared && nfs.avail < nfs.total);
}

#[tokio::test(flavor = "multi_thread")]
async fn evacuating_the_small_node_moves_everything_to_the_big_ones() {
    let sim = common::start_sim().await;
    let ctx = context(&sim).await;
    let mut snap = ClusterSnapshot::read(&ctx).await.expect("snapshot");

    // Without the disks of pve03's guests, the planner refuses to guess.
    let blind = evacuate(&snap, &EvacuationRequest::new("pve03"));
    assert!(blind.moves.is_empty());
    assert!(
        blind
            .unplaceable
            .iter()
            .all(|s| s.why == Unplaceable::DisksUnknown)
    );

    snap.read_guest_disks(&ctx, "pve03").await;
    let talos = snap.guest(1008).unwrap().disks.clone().expect("disks read");
    assert!(
        talos
            .iter()
            .any(|d| d.storage == "local-lvm" && d.size == 20 * GIB),
        "{talos:?}"
    );
    let plan = evacuate(
        &snap,
        &EvacuationRequest {
            include_stopped: true,
            ..EvacuationRequest::new("pve03")
        },
    );
    assert!(plan.unplaceable.is_empty(), "{:?}", plan.unplaceable);
    let moved: Vec<(u32, MoveMode)> = plan.moves.iter().map(|m| (m.vmid, m.mode)).collect();
    // Running first, larger first: the two 12 GiB workers, the 8 GiB control plane, then the
    // stopped CI runner (offline; its disks are on shared NFS, nothing to copy).
    assert_eq!(
        moved,
        [
            (1009, MoveMode::Online),
            (1010, MoveMode::Online),
            (1008, MoveMode::Online),
            (1011, MoveMode::Offline)
        ]
    );
    assert!(
        plan.moves
            .iter()
            .all(|m| m.to == "pve01" || m.to == "pve02")
    );
    let ci = plan.moves.iter().find(|m| m.vmid == 1011).unwrap();
    assert!(ci.local_disks.is_empty());
    let cp = plan.moves.iter().find(|m| m.vmid == 1008).unwrap();
    assert!(cp.local_disks.iter().all(|d| d.to_storage == "local-lvm"));
    assert!(
        plan.after
            .iter()
            .find(|a| a.node == "pve03")
            .unwrap()
            .running_guests
            == 0
    );
    assert!(plan.after.iter().all(|a| !a.memory_overcommitted));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_guest_stays_and_says_why() {
    let sim = common::start_sim().await;
    let ctx = context(&sim).await;
    let mut snap = ClusterSnapshot::read(&ctx).await.expect("snapshot");
    snap.read_guest_disks(&ctx, "pve02").await;
    let plan = evacuate(&snap, &EvacuationRequest::new("pve02"));
    let monitor = plan.unplaceable.iter().find(|s| s.vmid == 1006).unwrap();
    assert_eq!(
        monitor.why,
        Unplaceable::Locked {
            lock: "backup".into()
        }
    );
    assert_eq!(plan.left_stopped, [102, 110, 1007]);
    // the VMs; the containers of pve02 (1200-1202) are issue 19's client part (1202's bind
    // mount must make it unplaceable)
    let mut moved: Vec<u32> = plan
        .moves
        .iter()
        .map(|m| m.vmid)
        .filter(|v| !(1200..=1202).contains(v))
        .collect();
    moved.sort_unstable();
    assert_eq!(moved, [1004, 1005]);
}

/// Where `/cluster/resources` lacks a node's sizes, `/nodes/{node}/status` fills them; guest
/// disks and passthrough devices come from qemu and lxc configs. A fake PVE answers, because
/// the simulator always reports sizes in `/cluster/resources`.
#[tokio::test(flavor = "multi_thread")]
async fn node_sizes_and_guest_disks_are_read_where_resources_lack_them() {
    use common::fake_pve::{self, Seen, ok};
    let server = fake_pve::serve(|seen: &Seen, _| {
        let data = match seen.path.trim_start_matches("/api2/json") {
            "/cluster/resources" => serde_json::json!([
                {"id":"node/pve1","type":"node","node":"pve1","status":"online"},
                {"id":"qemu/100","type":"qemu","vmid":100,"node":"pve1","status":"running","maxcpu":2,"maxmem":GIB},
                {"id":"lxc/101","type":"lxc","vmid":101,"node":"pve1","status":"running","maxcpu":1,"maxmem":GIB},
            ]),
            "/nodes/pve1/status" => serde_json::json!({
                "memory": {"total": 64 * GIB, "used": GIB, "free": 63 * GIB},
                "cpuinfo": {"cpus": 16, "model": "x"},
            }),
            "/nodes/pve1/qemu/100/config" => serde_json::json!({
                "scsi0": "local-lvm:vm-100-disk-0,size=32G", "hostpci0": "0000:01:00.0",
            }),
            "/nodes/pve1/lxc/101/config" => serde_json::json!({
                "rootfs": "local-lvm:vm-101-disk-0,size=8G", "mp0": "nfs:101/vm-101-disk-1.raw,mp=/data,size=100G",
            }),
            _ => return fake_pve::fail(404, None, "{}"),
        };
        ok(serde_json::json!({ "data": data }))
    })
    .await
    .expect("fake pve");
    let ctx = ops::Context {
        client: fake_pve::client(&server).expect("client"),
        config: std::sync::Arc::new(config::sim_config(8006, [0; 32])),
        timeouts: ops::Timeouts::default(),
        allocator: Default::default(),
        audit: std::sync::Arc::new(ops::audit::AuditLog::new(None)),
        ssh: None,
        previews: Default::default(),
        ansible: Default::default(),
        listings: Default::default(),
        run_logs: Default::default(),
    };
    let mut snap = ClusterSnapshot::read(&ctx).await.expect("snapshot");
    assert_eq!((snap.nodes[0].cpus, snap.nodes[0].maxmem), (16, 64 * GIB));
    snap.read_guest_disks(&ctx, "pve1").await;
    let vm = snap.guest(100).unwrap();
    assert_eq!(vm.local_resources, ["hostpci0"]);
    assert_eq!(vm.disks.as_ref().unwrap()[0].size, 32 * GIB);
    let ct = snap.guest(101).unwrap();
    let disks: Vec<(&str, &str, u64)> = ct
        .disks
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| (d.key.as_str(), d.storage.as_str(), d.size / GIB))
        .collect();
    assert_eq!(disks, [("mp0", "nfs", 100), ("rootfs", "local-lvm", 8)]);
}

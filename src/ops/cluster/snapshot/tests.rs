//! The snapshot built from PVE's rows and guest configs.

use super::*;

#[test]
fn snapshot_from_resources_and_guest_configs() {
    let rows: Vec<crate::pve::ClusterResource> = serde_json::from_value(serde_json::json!([
        {"id":"node/pve1","type":"node","node":"pve1","status":"online","maxcpu":8,"maxmem":34359738368u64,"mem":1000},
        {"id":"node/pve2","type":"node","node":"pve2","status":"offline"},
        {"id":"qemu/100","type":"qemu","vmid":"100","node":"pve1","status":"running","name":"web","maxcpu":2,"maxmem":2147483648u64,"tags":"prod;web","hastate":"started","lock":"backup"},
        {"id":"lxc/101","type":"lxc","vmid":101,"node":"pve1","status":"stopped","maxcpu":1,"maxmem":536870912},
        {"id":"storage/pve1/local-lvm","type":"storage","node":"pve1","storage":"local-lvm","status":"available","shared":0,"content":"images,rootdir","disk":100,"maxdisk":1000}
    ]))
    .unwrap();
    let snap = ClusterSnapshot::from_resources(&rows);
    assert_eq!(snap.nodes[0].cpus, 8);
    assert!(snap.nodes[0].online && !snap.nodes[1].online);
    let web = snap.guest(100).unwrap();
    assert_eq!(
        (web.kind, web.ha_managed, web.lock.as_deref()),
        (GuestKind::Qemu, true, Some("backup"))
    );
    assert_eq!(web.tags, ["prod", "web"]);
    assert_eq!(web.disks, None);
    assert_eq!(snap.guest(101).unwrap().kind, GuestKind::Lxc);
    let s = snap.storage("pve1", "local-lvm").unwrap();
    assert_eq!((s.active, s.shared, s.avail), (true, false, 900));

    let config: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "scsi0": "local-lvm:vm-100-disk-0,size=32G",
            "ide2": "local:iso/debian.iso,media=cdrom",
            "ide0": "none,media=cdrom",
            "ide3": "local-lvm:vm-100-cloudinit,media=cdrom",
            "rootfs": "ceph:subvol-101-disk-0,size=8G",
            "mp0": "/srv/data,mp=/data",
            "mp1": "/mnt/nfs/media,mp=/media,shared=1",
            "hostpci0": "0000:01:00.0",
            "net0": "virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0",
            "cores": 2
        }))
        .unwrap();
    let (disks, local) = disks_of_config(&config);
    let summary: Vec<(&str, &str, u64, bool)> = disks
        .iter()
        .map(|d| (d.key.as_str(), d.storage.as_str(), d.size, d.cdrom))
        .collect();
    assert_eq!(
        summary,
        [
            ("ide2", "local", 0, true),
            ("ide3", "local-lvm", 0, false),
            ("rootfs", "ceph", 8 * GIB, false),
            ("scsi0", "local-lvm", 32 * GIB, false)
        ]
    );
    // A container's bind mount ties it to its node unless it is marked shared.
    assert_eq!(local, ["hostpci0", "mp0"]);
}

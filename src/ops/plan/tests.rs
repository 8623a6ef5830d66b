//! Planners on hand-built clusters: each test is one situation an operator would recognise.

use super::*;
use crate::ops::GIB;

const TB: u64 = 1024 * GIB;

/// Three 16-thread nodes with 66 GiB (64 GiB budget), local `local-lvm` on each and a shared
/// `ceph` pool.
fn three_nodes(guests: Vec<GuestInfo>) -> ClusterSnapshot {
    let names = ["pve1", "pve2", "pve3"];
    let nodes = names
        .iter()
        .map(|n| NodeInfo::new(n, 16, 66 * GIB))
        .collect();
    let storages = names
        .iter()
        .flat_map(|n| {
            [
                StorageInfo::new("local-lvm", n, false, TB, TB),
                StorageInfo::new("ceph", n, true, 10 * TB, 10 * TB),
            ]
        })
        .collect();
    ClusterSnapshot::new(nodes, guests, storages)
}

fn target_of(plan: &EvacuationPlan, vmid: u32) -> &str {
    &plan.moves.iter().find(|m| m.vmid == vmid).unwrap().to
}

fn reason_of(plan: &EvacuationPlan, vmid: u32) -> &Unplaceable {
    &plan
        .unplaceable
        .iter()
        .find(|s| s.vmid == vmid)
        .unwrap()
        .why
}

#[test]
fn allocation_counts_running_load_and_leaves_templates_out() {
    let snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 4, 8 * GIB),
        GuestInfo::qemu(101, "pve1", 2, 4 * GIB).stopped(),
        GuestInfo::qemu(9000, "pve1", 2, 2 * GIB).as_template(),
    ]);
    let a = &allocations(&snap, Ratios::default())[0];
    assert_eq!(
        (a.running_guests, a.running_vcpus, a.running_memory),
        (1, 4, 8 * GIB)
    );
    assert_eq!((a.allocated_vcpus, a.allocated_memory), (6, 12 * GIB));
    assert_eq!(a.memory_load, 0.125);
    assert!(!a.memory_overcommitted && !a.cpu_overcommitted);
}

#[test]
fn cluster_status_overcommit_is_the_allocation_rounded() {
    let row = |v: serde_json::Value| -> crate::pve::ClusterResource {
        serde_json::from_value(v).unwrap()
    };
    let rows = [
        row(
            serde_json::json!({"id":"qemu/100","type":"qemu","vmid":100,"node":"n","status":"running","maxcpu":24,"maxmem":10*GIB}),
        ),
        row(
            serde_json::json!({"id":"qemu/101","type":"qemu","vmid":101,"node":"n","status":"stopped","maxcpu":2,"maxmem":GIB}),
        ),
        row(
            serde_json::json!({"id":"qemu/900","type":"qemu","vmid":900,"node":"n","status":"stopped","template":1,"maxcpu":8,"maxmem":GIB}),
        ),
    ];
    let refs: Vec<_> = rows.iter().collect();
    let o = crate::ops::cluster::status::overcommit(8, 8 * GIB, &refs);
    assert_eq!((o.running_vcpus, o.allocated_vcpus), (24, 26));
    assert_eq!((o.running_memory, o.allocated_memory), (10 * GIB, 11 * GIB));
    assert_eq!((o.cpu_ratio, o.memory_ratio), (3.0, 1.67));
    assert!(o.cpu_overcommitted && o.memory_overcommitted);

    // 501 vCPUs on 250 threads is over 2 per thread, though the displayed ratio rounds to
    // 2.0: the flag compares the counts, not the rounded ratio.
    let big = row(
        serde_json::json!({"id":"qemu/1","type":"qemu","vmid":1,"node":"n","status":"running","maxcpu":501,"maxmem":GIB}),
    );
    let o = crate::ops::cluster::status::overcommit(250, 1024 * GIB, &[&big]);
    assert_eq!(o.cpu_ratio, 2.0);
    assert!(o.cpu_overcommitted);
}

#[test]
fn placement_takes_the_node_with_most_room_and_says_why_others_cannot() {
    let mut snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 4, 60 * GIB),
        GuestInfo::qemu(101, "pve2", 4, 20 * GIB),
        GuestInfo::qemu(102, "pve3", 4, 10 * GIB),
    ]);
    let spec = GuestSpec::new(2, 8 * GIB).with_disk("local-lvm", 32 * GIB);
    let p = place(&snap, &spec, None, Ratios::default());
    assert_eq!(p.node.as_deref(), Some("pve3"));
    assert_eq!(
        p.rejected,
        vec![NodeRejection {
            node: "pve1".into(),
            rejection: Rejection::Memory {
                needed: 8 * GIB,
                available: 4 * GIB
            }
        }]
    );
    snap.nodes[2].online = false;
    let only = ["pve1".to_string(), "pve3".to_string()];
    let p = place(&snap, &spec, Some(&only), Ratios::default());
    assert_eq!(p.node, None);
    let reasons: Vec<_> = p.rejected.iter().map(|r| r.rejection.clone()).collect();
    assert!(matches!(reasons[0], Rejection::Memory { .. }));
    assert_eq!(reasons[1..], [Rejection::NotAllowed, Rejection::Offline]);
}

#[test]
fn placement_needs_the_storage_and_its_free_space() {
    let mut snap = three_nodes(vec![]);
    snap.storages
        .retain(|s| !(s.id == "local-lvm" && s.node == "pve1"));
    snap.storages
        .iter_mut()
        .filter(|s| s.id == "local-lvm" && s.node == "pve2")
        .for_each(|s| s.avail = 10 * GIB);
    let spec = GuestSpec::new(2, 4 * GIB).with_disk("local-lvm", 32 * GIB);
    let p = place(&snap, &spec, None, Ratios::default());
    assert_eq!(p.node.as_deref(), Some("pve3"));
    let reasons: Vec<_> = p.rejected.iter().map(|r| r.rejection.clone()).collect();
    assert_eq!(
        reasons,
        [
            Rejection::MissingStorage {
                storage: "local-lvm".into()
            },
            Rejection::StorageFull {
                storage: "local-lvm".into(),
                needed: 32 * GIB,
                available: 10 * GIB
            }
        ]
    );
}

#[test]
fn placement_ties_go_to_the_first_node_by_name_and_ratios_allow_overcommit() {
    let snap = three_nodes(vec![GuestInfo::qemu(100, "pve1", 4, 60 * GIB)]);
    let spec = GuestSpec::new(2, 8 * GIB);
    assert_eq!(
        place(&snap, &spec, None, Ratios::default()).node.as_deref(),
        Some("pve2")
    );
    let one = ["pve1".to_string()];
    let strict = place(&snap, &spec, Some(&one), Ratios::default());
    assert_eq!(strict.node, None);
    let loose = Ratios {
        memory: 1.5,
        vcpu: 2.0,
    };
    assert_eq!(
        place(&snap, &spec, Some(&one), loose).node.as_deref(),
        Some("pve1")
    );
}

#[test]
fn evacuation_spreads_by_free_capacity_and_never_overcommits_a_target() {
    // The "migrate all to one node" OOM cascade: pve2 is nearly empty but cannot take all
    // four 20 GiB guests; the plan spreads them and leaves out what fits nowhere.
    let snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 2, 20 * GIB),
        GuestInfo::qemu(101, "pve1", 2, 20 * GIB),
        GuestInfo::qemu(102, "pve1", 2, 20 * GIB),
        GuestInfo::qemu(103, "pve1", 2, 20 * GIB),
        GuestInfo::qemu(104, "pve1", 2, 40 * GIB),
        GuestInfo::qemu(200, "pve2", 2, 4 * GIB),
        GuestInfo::qemu(300, "pve3", 2, 30 * GIB),
    ]);
    let plan = evacuate(&snap, &EvacuationRequest::new("pve1"));
    // Largest first: 104 (40 GiB) only fits pve2 (60 free; pve3 has 34). Then 100 goes to
    // pve3 (34 free against pve2's 20), 101 to pve2 (20 against 14), and 102 and 103 fit
    // nowhere (0 and 14 GiB free).
    let order: Vec<(u32, &str)> = plan.moves.iter().map(|m| (m.vmid, m.to.as_str())).collect();
    assert_eq!(order, [(104, "pve2"), (100, "pve3"), (101, "pve2")]);
    assert_eq!(
        plan.unplaceable.iter().map(|s| s.vmid).collect::<Vec<_>>(),
        [102, 103]
    );
    let Unplaceable::NoTarget { nodes } = reason_of(&plan, 102) else {
        panic!("102 should have no target")
    };
    assert_eq!(nodes[0].rejection, Rejection::Source);
    assert!(
        matches!(nodes[1].rejection, Rejection::Memory { needed, available } if needed == 20 * GIB && available == 0)
    );
    assert!(plan.after.iter().all(|a| !a.memory_overcommitted));
    assert_eq!(plan.before[0].running_memory, 120 * GIB);
    assert_eq!(plan.after[0].running_memory, 40 * GIB);
}

#[test]
fn evacuation_says_why_each_guest_stays() {
    let mut locked = GuestInfo::qemu(101, "pve1", 1, GIB);
    locked.lock = Some("backup".into());
    let mut passthrough = GuestInfo::qemu(102, "pve1", 1, GIB);
    passthrough.local_resources = vec!["hostpci0".into()];
    let mut blind = GuestInfo::qemu(103, "pve1", 1, GIB);
    blind.disks = None;
    let mut iso = GuestInfo::qemu(104, "pve1", 1, GIB);
    iso.disks = Some(vec![GuestDisk {
        key: "ide2".into(),
        storage: "local".into(),
        size: 0,
        cdrom: true,
    }]);
    let snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 1, GIB).tagged("pinned"),
        locked,
        passthrough,
        blind,
        iso,
        GuestInfo::qemu(105, "pve1", 1, GIB).stopped(),
    ]);
    let mut req = EvacuationRequest::new("pve1");
    req.pin_tag = Some("pinned".into());
    let plan = evacuate(&snap, &req);
    assert!(plan.moves.is_empty());
    assert_eq!(
        reason_of(&plan, 100),
        &Unplaceable::Pinned {
            tag: "pinned".into()
        }
    );
    assert_eq!(
        reason_of(&plan, 101),
        &Unplaceable::Locked {
            lock: "backup".into()
        }
    );
    assert_eq!(
        reason_of(&plan, 102),
        &Unplaceable::LocalResource {
            keys: vec!["hostpci0".into()]
        }
    );
    assert_eq!(reason_of(&plan, 103), &Unplaceable::DisksUnknown);
    assert_eq!(
        reason_of(&plan, 104),
        &Unplaceable::LocalCdrom {
            storage: "local".into()
        }
    );
    assert_eq!(plan.left_stopped, [105]);
}

#[test]
fn evacuation_moves_local_disks_only_where_the_storage_is() {
    let mut snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 2, 4 * GIB)
            .with_disk("local-lvm", 32 * GIB)
            .with_disk("ceph", 100 * GIB),
        GuestInfo::qemu(101, "pve1", 2, 4 * GIB).with_disk("ceph", 10 * GIB),
        GuestInfo::qemu(300, "pve3", 2, 40 * GIB),
    ]);
    // pve2 has the most room but no local-lvm: 100 must go to pve3.
    snap.storages
        .retain(|s| !(s.id == "local-lvm" && s.node == "pve2"));
    let mut req = EvacuationRequest::new("pve1");
    req.bandwidth = Some(GIB);
    let plan = evacuate(&snap, &req);
    assert_eq!(target_of(&plan, 100), "pve3");
    assert_eq!(target_of(&plan, 101), "pve2");
    let m = &plan.moves[0];
    assert_eq!(m.mode, MoveMode::Online);
    assert_eq!(
        m.local_disks,
        [DiskMove {
            key: "scsi0".into(),
            from_storage: "local-lvm".into(),
            to_storage: "local-lvm".into(),
            size: 32 * GIB
        }]
    );
    // 32 GiB of local disk plus 4 GiB of memory at 1 GiB/s.
    assert_eq!(
        (m.transfer_bytes, m.estimated_seconds),
        (36 * GIB, Some(36))
    );
}

#[test]
fn evacuation_with_stopped_guests_moves_templates_offline_and_containers_restart() {
    let mut ct = GuestInfo::qemu(102, "pve1", 1, 2 * GIB);
    ct.kind = GuestKind::Lxc;
    let snap = three_nodes(vec![
        GuestInfo::qemu(9000, "pve1", 2, 2 * GIB).as_template(),
        GuestInfo::qemu(101, "pve1", 2, 2 * GIB).stopped(),
        ct,
    ]);
    let mut req = EvacuationRequest::new("pve1");
    req.include_stopped = true;
    req.targets = Some(vec!["pve3".into()]);
    let plan = evacuate(&snap, &req);
    let modes: Vec<(u32, MoveMode, &str, u64)> = plan
        .moves
        .iter()
        .map(|m| (m.vmid, m.mode, m.to.as_str(), m.memory))
        .collect();
    assert_eq!(
        modes,
        [
            (102, MoveMode::Restart, "pve3", 2 * GIB),
            (101, MoveMode::Offline, "pve3", 0),
            (9000, MoveMode::Offline, "pve3", 0),
        ]
    );
}

#[test]
fn evacuation_to_a_named_target_storage() {
    let snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 2, 4 * GIB).with_disk("local-lvm", 32 * GIB),
    ]);
    let mut req = EvacuationRequest::new("pve1");
    req.target_storage = Some("zfs".into());
    let plan = evacuate(&snap, &req);
    let Unplaceable::NoTarget { nodes } = reason_of(&plan, 100) else {
        panic!("no node has zfs")
    };
    assert_eq!(
        nodes[1].rejection,
        Rejection::MissingStorage {
            storage: "zfs".into()
        }
    );
}

#[test]
fn balance_moves_from_the_hot_node_into_the_band_and_not_back() {
    let snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 2, 24 * GIB),
        GuestInfo::qemu(101, "pve1", 2, 16 * GIB),
        GuestInfo::qemu(102, "pve1", 2, 8 * GIB),
        GuestInfo::qemu(103, "pve1", 2, 8 * GIB).tagged("pinned"),
        GuestInfo::qemu(200, "pve2", 2, 8 * GIB),
        GuestInfo::qemu(9000, "pve3", 2, 32 * GIB).as_template(),
    ]);
    let req = BalanceRequest {
        pin_tag: Some("pinned".into()),
        ..BalanceRequest::default()
    };
    let plan = balance(&snap, &req);
    // 64 GiB running over 192 GiB of budget: mean 1/3, band up to 0.48 (31 GiB).
    assert!((plan.mean_load - 1.0 / 3.0).abs() < 1e-9);
    let moves: Vec<(u32, &str, &str)> = plan
        .moves
        .iter()
        .map(|m| (m.vmid, m.from.as_str(), m.to.as_str()))
        .collect();
    // 100 (24 GiB) fits the band only on pve3 (pve2 would reach 32 GiB); pve1 is still above
    // the band with 32 GiB, and 101 (16 GiB) fits the band only on pve2 (pve3 would reach 40).
    assert_eq!(moves, [(100, "pve1", "pve3"), (101, "pve1", "pve2")]);
    assert_eq!(plan.imbalance_before, 0.875);
    assert_eq!(plan.imbalance_after, 0.125);
    assert!(plan.overcommitted.is_empty());
}

#[test]
fn a_balanced_cluster_gets_no_moves_and_overcommit_is_flagged() {
    let snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 40, 70 * GIB),
        GuestInfo::qemu(200, "pve2", 40, 70 * GIB),
        GuestInfo::qemu(300, "pve3", 40, 70 * GIB),
    ]);
    let plan = balance(&snap, &BalanceRequest::default());
    assert!(plan.moves.is_empty());
    assert_eq!(plan.imbalance_before, 0.0);
    assert_eq!(plan.overcommitted, ["pve1", "pve2", "pve3"]);
}

#[test]
fn spread_goes_round_robin_and_reports_what_does_not_fit() {
    let snap = three_nodes(vec![GuestInfo::qemu(100, "pve1", 2, 8 * GIB)]);
    let specs = vec![GuestSpec::new(2, 20 * GIB); 8];
    let plan = spread(&snap, &specs, None, Ratios::default());
    let nodes: Vec<&str> = plan
        .placed
        .iter()
        .map(|p| p.node.as_deref().unwrap())
        .collect();
    // Round-robin, the emptiest first; pve1 (8 GiB used) fits two, the others three each.
    assert_eq!(
        nodes,
        [
            "pve2", "pve3", "pve1", "pve2", "pve3", "pve1", "pve2", "pve3"
        ]
    );
    assert!(plan.unplaceable.is_empty());
    let more = vec![GuestSpec::new(2, 20 * GIB); 9];
    let plan = spread(&snap, &more, None, Ratios::default());
    assert_eq!(plan.unplaceable.len(), 1);
    assert_eq!(plan.unplaceable[0].index, 8);
    assert_eq!(plan.unplaceable[0].rejected.len(), 3);
}

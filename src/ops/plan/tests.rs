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
fn cluster_status_counts_rows_as_the_planners_count_their_guests() {
    // cluster_status counts the rows directly; the planners count GuestInfo::from_resource.
    // Odd rows included: no status, "unknown", a running template, fractional and absent sizes.
    let rows: Vec<crate::pve::ClusterResource> = [
        serde_json::json!({"id":"qemu/1","type":"qemu","vmid":1,"node":"n","status":"running","maxcpu":2.6,"maxmem":3*GIB}),
        serde_json::json!({"id":"qemu/2","type":"qemu","vmid":2,"node":"n","status":"stopped","maxcpu":4,"maxmem":GIB}),
        serde_json::json!({"id":"qemu/3","type":"qemu","vmid":3,"node":"n","maxcpu":1}),
        serde_json::json!({"id":"qemu/4","type":"qemu","vmid":4,"node":"n","status":"unknown","maxmem":GIB}),
        serde_json::json!({"id":"qemu/5","type":"qemu","vmid":5,"node":"n","status":"running","template":1,"maxcpu":8,"maxmem":GIB}),
        serde_json::json!({"id":"lxc/6","type":"lxc","vmid":6,"node":"n","status":"running","maxcpu":1.4,"maxmem":GIB/2}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let refs: Vec<_> = rows.iter().collect();
    let node = NodeInfo::new("n", 4, 4 * GIB);
    let guests: Vec<GuestInfo> = rows.iter().map(GuestInfo::from_resource).collect();
    let a = allocation(&node, &guests, Ratios::default());
    let o = crate::ops::cluster::status::overcommit(4, 4 * GIB, &refs);
    assert_eq!(
        (
            o.running_vcpus,
            o.running_memory,
            o.allocated_vcpus,
            o.allocated_memory
        ),
        (
            a.running_vcpus,
            a.running_memory,
            a.allocated_vcpus,
            a.allocated_memory
        )
    );
    assert_eq!((o.running_vcpus, o.allocated_vcpus), (4, 9));
    assert_eq!(
        (o.cpu_overcommitted, o.memory_overcommitted),
        (a.cpu_overcommitted, a.memory_overcommitted)
    );
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
    let mut ha_error = GuestInfo::qemu(106, "pve1", 1, GIB);
    ha_error.ha_state = Some("error".into());
    let mut ha_started = GuestInfo::qemu(107, "pve1", 1, GIB);
    ha_started.ha_state = Some("started".into());
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
        ha_error,
        ha_started,
    ]);
    let mut req = EvacuationRequest::new("pve1");
    req.pin_tag = Some("pinned".into());
    let plan = evacuate(&snap, &req);
    let moved: Vec<u32> = plan.moves.iter().map(|m| m.vmid).collect();
    assert_eq!(moved, [107], "only the HA-started guest moves");
    assert_eq!(
        reason_of(&plan, 106),
        &Unplaceable::HaState {
            state: "error".into()
        }
    );
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

#[test]
fn a_restricted_guest_only_goes_to_its_ha_group() {
    let mut snap = three_nodes(vec![
        // pve2 is the emptiest, but 100's HA group is pve1 and pve3.
        GuestInfo::qemu(100, "pve1", 2, 8 * GIB).restricted_to(&["pve1", "pve3"]),
        // 101's group is pve1 and pve4 (down): nowhere to go.
        GuestInfo::qemu(101, "pve1", 2, 8 * GIB).restricted_to(&["pve1", "pve4"]),
        GuestInfo::qemu(102, "pve1", 2, 8 * GIB),
        GuestInfo::qemu(300, "pve3", 2, 20 * GIB),
    ]);
    snap.nodes.push(NodeInfo {
        online: false,
        ..NodeInfo::new("pve4", 16, 66 * GIB)
    });
    let plan = evacuate(&snap, &EvacuationRequest::new("pve1"));
    assert_eq!(target_of(&plan, 100), "pve3");
    assert_eq!(target_of(&plan, 102), "pve2");
    let Unplaceable::NoTarget { nodes } = reason_of(&plan, 101) else {
        panic!("101 has no node of its group to go to")
    };
    let reasons: Vec<(&str, &Rejection)> = nodes
        .iter()
        .map(|n| (n.node.as_str(), &n.rejection))
        .collect();
    assert_eq!(
        reasons,
        [
            ("pve1", &Rejection::Source),
            ("pve2", &Rejection::HaRestricted),
            ("pve3", &Rejection::HaRestricted),
            ("pve4", &Rejection::Offline),
        ]
    );
    assert_eq!(
        reason_of(&plan, 101).to_string(),
        "no node can take it (the node it leaves: pve1; outside its HA group or affinity rule: \
         pve2, pve3; offline: pve4)"
    );
    // The single check says the same, node by node.
    assert_eq!(
        check_move(&snap, 100, "pve2", &MoveRequest::default()),
        Err(MoveRefusal::Rejected {
            node: "pve2".into(),
            rejection: Rejection::HaRestricted
        })
    );
    assert_eq!(
        best_target(&snap, 100, &MoveRequest::default()).map(|m| m.to),
        Ok("pve3".to_string())
    );
    let json = serde_json::to_value(&plan.unplaceable[0]).unwrap();
    assert_eq!(json["nodes"][1]["reason"], "ha_restricted");
    assert_eq!(
        serde_json::to_value(&snap.guests[0]).unwrap()["allowed_nodes"],
        serde_json::json!(["pve1", "pve3"])
    );
}

#[test]
fn balance_keeps_a_restricted_guest_in_its_group() {
    let snap = three_nodes(vec![
        // The largest guest of the hot node may only run on pve1 and pve2, and pve2 would leave
        // the band with it: 100 stays, the next two go.
        GuestInfo::qemu(100, "pve1", 2, 24 * GIB).restricted_to(&["pve1", "pve2"]),
        GuestInfo::qemu(101, "pve1", 2, 16 * GIB),
        GuestInfo::qemu(102, "pve1", 2, 8 * GIB),
        GuestInfo::qemu(200, "pve2", 2, 16 * GIB),
    ]);
    let plan = balance(&snap, &BalanceRequest::default());
    let moves: Vec<(u32, &str)> = plan.moves.iter().map(|m| (m.vmid, m.to.as_str())).collect();
    assert_eq!(moves, [(101, "pve3"), (102, "pve2")]);
}

#[test]
fn a_new_guest_defaults_to_any_node() {
    let g = GuestInfo::qemu(100, "pve1", 1, GIB);
    assert_eq!(g.allowed_nodes, None);
    assert!(g.may_run_on("anywhere"));
    let row: crate::pve::ClusterResource = serde_json::from_value(
        serde_json::json!({"id":"qemu/100","type":"qemu","vmid":100,"node":"n","status":"running"}),
    )
    .unwrap();
    assert_eq!(GuestInfo::from_resource(&row).allowed_nodes, None);
}

/// pve1 holds the guests under test; pve2 is nearly full (4 GiB and 2 vCPUs free at the
/// default ratios), pve3 is empty but lacks `local-lvm`'s room, pve4 is offline.
fn check_cluster() -> ClusterSnapshot {
    let mut locked = GuestInfo::qemu(102, "pve1", 1, GIB);
    locked.lock = Some("backup".into());
    let mut passthrough = GuestInfo::qemu(103, "pve1", 1, GIB);
    passthrough.local_resources = vec!["hostpci0".into()];
    let mut blind = GuestInfo::qemu(104, "pve1", 1, GIB);
    blind.disks = None;
    let mut iso = GuestInfo::qemu(105, "pve1", 1, GIB);
    iso.disks = Some(vec![GuestDisk {
        key: "ide2".into(),
        storage: "local".into(),
        size: 0,
        cdrom: true,
    }]);
    let mut snap = three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 2, 4 * GIB)
            .with_disk("local-lvm", 32 * GIB)
            .with_disk("ceph", 100 * GIB),
        GuestInfo::qemu(101, "pve1", 1, GIB).tagged("pinned"),
        locked,
        passthrough,
        blind,
        iso,
        GuestInfo::qemu(106, "pve1", 2, 8 * GIB).with_disk("ceph", 10 * GIB),
        GuestInfo::qemu(107, "pve1", 4, 2 * GIB).with_disk("ceph", 10 * GIB),
        GuestInfo::qemu(108, "pve1", 2, 16 * GIB)
            .with_disk("ceph", 10 * GIB)
            .stopped(),
        GuestInfo::qemu(200, "pve2", 30, 60 * GIB),
    ]);
    snap.storages
        .iter_mut()
        .filter(|s| s.id == "local-lvm" && s.node == "pve3")
        .for_each(|s| s.avail = 10 * GIB);
    snap.nodes.push(NodeInfo {
        online: false,
        ..NodeInfo::new("pve4", 16, 66 * GIB)
    });
    snap
}

#[test]
fn check_move_says_why_a_guest_cannot_go_there() {
    let snap = check_cluster();
    let req = MoveRequest {
        pin_tag: Some("pinned".into()),
        ..MoveRequest::default()
    };
    let check = |vmid, node: &str| check_move(&snap, vmid, node, &req).map(|m| m.to);
    let rejected = |node: &str, rejection| {
        Err(MoveRefusal::Rejected {
            node: node.into(),
            rejection,
        })
    };
    let stays = |why| Err(MoveRefusal::Stays { why });
    assert_eq!(
        check(999, "pve2"),
        Err(MoveRefusal::UnknownGuest { vmid: 999 })
    );
    assert_eq!(
        check(100, "pve9"),
        Err(MoveRefusal::UnknownNode {
            node: "pve9".into()
        })
    );
    assert_eq!(
        check(100, "pve1"),
        Err(MoveRefusal::SameNode {
            node: "pve1".into()
        })
    );
    assert_eq!(
        check(101, "pve3"),
        stays(Unplaceable::Pinned {
            tag: "pinned".into()
        })
    );
    assert_eq!(
        check(102, "pve3"),
        stays(Unplaceable::Locked {
            lock: "backup".into()
        })
    );
    assert_eq!(
        check(103, "pve3"),
        stays(Unplaceable::LocalResource {
            keys: vec!["hostpci0".into()]
        })
    );
    assert_eq!(check(104, "pve3"), stays(Unplaceable::DisksUnknown));
    assert_eq!(
        check(105, "pve3"),
        stays(Unplaceable::LocalCdrom {
            storage: "local".into()
        })
    );
    assert_eq!(check(100, "pve4"), rejected("pve4", Rejection::Offline));
    assert_eq!(
        check(100, "pve3"),
        rejected(
            "pve3",
            Rejection::StorageFull {
                storage: "local-lvm".into(),
                needed: 32 * GIB,
                available: 10 * GIB
            }
        )
    );
    let zfs = MoveRequest {
        target_storage: Some("zfs".into()),
        ..req.clone()
    };
    assert_eq!(
        check_move(&snap, 100, "pve3", &zfs).map(|m| m.to),
        rejected(
            "pve3",
            Rejection::MissingStorage {
                storage: "zfs".into()
            }
        )
    );
    assert_eq!(
        check(106, "pve2"),
        rejected(
            "pve2",
            Rejection::Memory {
                needed: 8 * GIB,
                available: 4 * GIB
            }
        )
    );
    assert_eq!(
        check(107, "pve2"),
        rejected(
            "pve2",
            Rejection::Cpu {
                needed: 4,
                available: 2
            }
        )
    );
    assert_eq!(
        check(106, "pve2").unwrap_err().to_string(),
        "pve2: needs 8.0 GiB of memory, 4.0 GiB free at the ratio"
    );
    // The operator may move a pinned guest on purpose; a stopped guest adds no running load,
    // so it fits the full node.
    let ignore = MoveRequest {
        ignore_pin: true,
        ..req.clone()
    };
    assert_eq!(
        check_move(&snap, 101, "pve3", &ignore).map(|m| m.to),
        Ok("pve3".into())
    );
    let stopped = check_move(&snap, 108, "pve2", &req).unwrap();
    assert_eq!(
        (stopped.mode, stopped.memory, stopped.transfer_bytes),
        (MoveMode::Offline, 0, 0)
    );
    // A running VM with a local disk: live, the local disk copied, the estimate from the
    // bandwidth.
    let m = check_move(
        &snap,
        100,
        "pve2",
        &MoveRequest {
            bandwidth: Some(GIB),
            ..req.clone()
        },
    )
    .unwrap();
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
    assert_eq!(
        (m.transfer_bytes, m.estimated_seconds),
        (36 * GIB, Some(36))
    );
    let json = serde_json::to_value(check(106, "pve2")).unwrap();
    assert_eq!(json["Err"]["reason"], "rejected");
    assert_eq!(json["Err"]["rejection"]["reason"], "memory");
}

#[test]
fn best_target_picks_the_lowest_load_or_says_why_none() {
    let snap = check_cluster();
    let req = MoveRequest::default();
    // pve3 is empty; pve2 is nearly full; pve4 is offline.
    assert_eq!(
        best_target(&snap, 106, &req).map(|m| m.to),
        Ok("pve3".to_string())
    );
    // No node has zfs for 100's local disk.
    let zfs = MoveRequest {
        target_storage: Some("zfs".into()),
        ..MoveRequest::default()
    };
    let Err(MoveRefusal::Stays {
        why: Unplaceable::NoTarget { nodes },
    }) = best_target(&snap, 100, &zfs)
    else {
        panic!("100 has no target")
    };
    assert_eq!(nodes.len(), 4);
    assert_eq!(
        best_target(&snap, 102, &req),
        Err(MoveRefusal::Stays {
            why: Unplaceable::Locked {
                lock: "backup".into()
            }
        })
    );
    assert_eq!(
        best_target(&snap, 999, &req),
        Err(MoveRefusal::UnknownGuest { vmid: 999 })
    );
}

#[test]
fn evacuation_fills_nodes_of_different_sizes_to_the_same_level() {
    // pve2 has twice pve3's budget; both are half full. The most free bytes would give pve2
    // ten guests and pve3 two (81 % against 62 %); the lowest load after the move fills both
    // to the same level.
    let mut snap = three_nodes(vec![
        GuestInfo::qemu(200, "pve2", 2, 64 * GIB),
        GuestInfo::qemu(300, "pve3", 2, 32 * GIB),
    ]);
    snap.nodes[1] = NodeInfo::new("pve2", 64, 130 * GIB);
    let guests = (100..112).map(|v| GuestInfo::qemu(v, "pve1", 1, 4 * GIB));
    snap = ClusterSnapshot::new(
        snap.nodes,
        snap.guests.into_iter().chain(guests).collect(),
        snap.storages,
    );
    let plan = evacuate(&snap, &EvacuationRequest::new("pve1"));
    let to = |n: &str| plan.moves.iter().filter(|m| m.to == n).count();
    assert_eq!((to("pve2"), to("pve3")), (8, 4));
    let loads: Vec<f64> = plan.after[1..].iter().map(|a| a.memory_load).collect();
    assert_eq!(loads, [0.75, 0.75]);
}

/// Four guests leave pve1: 100 to pve3 (live, its local disk copied), 101 to pve2, 102 stays
/// (locked), 103 stopped stays in place.
fn digest_cluster() -> ClusterSnapshot {
    let mut locked = GuestInfo::qemu(102, "pve1", 1, 2 * GIB);
    locked.lock = Some("backup".into());
    three_nodes(vec![
        GuestInfo::qemu(100, "pve1", 2, 16 * GIB).with_disk("local-lvm", 32 * GIB),
        GuestInfo::qemu(101, "pve1", 2, 8 * GIB).with_disk("ceph", 10 * GIB),
        locked,
        GuestInfo::qemu(103, "pve1", 1, GIB).stopped(),
        GuestInfo::qemu(200, "pve2", 2, 12 * GIB),
    ])
}

#[test]
fn the_digest_is_stable_and_ignores_what_drifts() {
    let snap = digest_cluster();
    let req = EvacuationRequest::new("pve1");
    let plan = evacuate(&snap, &req);
    let moves: Vec<(u32, &str)> = plan.moves.iter().map(|m| (m.vmid, m.to.as_str())).collect();
    assert_eq!(moves, [(100, "pve3"), (101, "pve2")]);
    assert_eq!(plan.digest, plan.digest());
    // Pinned: a confirm made by another build of this server must accept this preview, so
    // the canonical form may only change with its version line.
    assert_eq!(plan.digest, "b351013a4608d7a8");
    assert_eq!(evacuate(&snap, &req).digest, plan.digest);

    // Live usage, names, disk sizes, bandwidth and the order of the lists move nothing.
    let mut drift = snap.clone();
    drift.nodes.iter_mut().for_each(|n| n.mem_used += 7 * GIB);
    drift.storages.iter_mut().for_each(|s| s.avail -= 3 * GIB);
    drift.guests[0].name = "renamed".into();
    drift.guests[0].disks.as_mut().unwrap()[0].size = 40 * GIB;
    drift.guests.reverse();
    let drift = ClusterSnapshot::new(drift.nodes, drift.guests, drift.storages);
    let drifted = evacuate(
        &drift,
        &EvacuationRequest {
            bandwidth: Some(GIB),
            ..req.clone()
        },
    );
    assert_ne!(drifted.moves, plan.moves);
    assert_eq!(drifted.digest, plan.digest);
    assert!(plan_difference(&plan, &drifted).is_empty());
    assert!(expected_difference(&plan.expected_moves(), &drifted).is_empty());
}

#[test]
fn the_digest_changes_with_what_the_plan_does_and_the_difference_says_how() {
    let snap = digest_cluster();
    let req = EvacuationRequest::new("pve1");
    let plan = evacuate(&snap, &req);
    let changed = |edit: &dyn Fn(&mut Vec<GuestInfo>), req: &EvacuationRequest| {
        let mut guests = snap.guests.clone();
        edit(&mut guests);
        let new = evacuate(
            &ClusterSnapshot::new(snap.nodes.clone(), guests, snap.storages.clone()),
            req,
        );
        assert_ne!(new.digest, plan.digest);
        (
            plan_difference(&plan, &new),
            expected_difference(&plan.expected_moves(), &new),
        )
    };
    fn guest(guests: &mut [GuestInfo], vmid: u32) -> &mut GuestInfo {
        guests.iter_mut().find(|g| g.vmid == vmid).unwrap()
    }

    // pve3 filled up meanwhile: 100 goes to pve2 instead.
    let (diff, expected) = changed(&|g| g.push(GuestInfo::qemu(300, "pve3", 2, 40 * GIB)), &req);
    assert_eq!(diff, ["100 vm100: pve1 → pve2 (was pve1 → pve3)"]);
    assert_eq!(expected, ["100 vm100: pve1 → pve2 (previewed → pve3)"]);

    // 101 got locked; a new guest appeared on pve1.
    let (diff, expected) = changed(
        &|g| {
            guest(g, 101).lock = Some("migrate".into());
            g.push(GuestInfo::qemu(140, "pve1", 1, GIB));
        },
        &req,
    );
    assert_eq!(
        diff,
        [
            "101 vm101 now unplaceable: locked (migrate) (was pve1 → pve2)",
            "new guest 140 vm140 on pve1: pve1 → pve2",
        ]
    );
    assert_eq!(
        expected,
        [
            "101 vm101 now unplaceable: locked (migrate) (previewed → pve2)",
            "140 vm140: pve1 → pve2 (not in the previewed moves)",
        ]
    );

    // 101 was shut down (and is left in place); 102's lock changed; 103 is gone.
    let (diff, _) = changed(
        &|g| {
            guest(g, 101).status = "stopped".into();
            guest(g, 102).lock = Some("snapshot".into());
            g.retain(|g| g.vmid != 103);
        },
        &req,
    );
    assert_eq!(
        diff,
        [
            "101 vm101: left in place (stopped) (was pve1 → pve2)",
            "102 vm102 now unplaceable: locked (snapshot) (was unplaceable: locked (backup))",
            "103 no longer on pve1 (was left in place (stopped))",
        ]
    );

    // Same targets, another mode or disk destination: the detail says which.
    let stopped_too = EvacuationRequest {
        include_stopped: true,
        ..req.clone()
    };
    let with_stopped = evacuate(&snap, &stopped_too);
    let mut guests = snap.guests.clone();
    guest(&mut guests, 101).status = "stopped".into();
    let new = evacuate(
        &ClusterSnapshot::new(snap.nodes.clone(), guests, snap.storages.clone()),
        &stopped_too,
    );
    assert_eq!(
        plan_difference(&with_stopped, &new),
        [
            "101 vm101: pve1 → pve2 (offline) (was pve1 → pve2 (online))",
            // pve2 no longer gets 101's running memory, so the stopped 103 goes there too.
            "103 vm103: pve1 → pve2 (was pve1 → pve3)",
        ]
    );
    let mut zfs = snap.clone();
    zfs.storages
        .push(StorageInfo::new("zfs", "pve3", false, TB, TB));
    let new = evacuate(
        &zfs,
        &EvacuationRequest {
            target_storage: Some("zfs".into()),
            ..req.clone()
        },
    );
    assert_eq!(
        plan_difference(&plan, &new),
        [
            "100 vm100: pve1 → pve3 (online; scsi0 local-lvm → zfs) (was pve1 → pve3 (online; \
             scsi0 local-lvm → local-lvm))"
        ]
    );
}

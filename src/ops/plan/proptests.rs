//! Properties every plan must have, over random clusters: no target over capacity, every move
//! legal, a guest called unplaceable only when no node could take it, and the same input giving
//! the same plan. Checks recompute from the snapshot and the plan alone, not from the planner's
//! own bookkeeping, so a bookkeeping bug cannot hide itself.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::evacuation::apply_moves;
use super::ledger::{Ledger, move_demand};
use super::*;
use crate::ops::GIB;

#[derive(Debug, Clone)]
struct RawGuest {
    node: usize,
    mem_gib: u64,
    cpus: u64,
    state: u8, // 0..=6 running, 7..=8 stopped, 9 template
    lxc: bool,
    pinned: bool,
    locked: bool,
    disks_known: bool,
    disks: Vec<(bool, u64)>, // (on shared ceph, GiB)
}

fn raw_guest(nodes: usize) -> impl Strategy<Value = RawGuest> {
    (
        0..nodes,
        1u64..40,
        1u64..12,
        0u8..10,
        any::<bool>(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.95),
        prop::collection::vec((any::<bool>(), 1u64..300), 0..3),
    )
        .prop_map(
            |(node, mem_gib, cpus, state, lxc, pinned, locked, disks_known, disks)| RawGuest {
                node,
                mem_gib,
                cpus,
                state,
                lxc,
                pinned,
                locked,
                disks_known,
                disks,
            },
        )
}

/// 2 to 6 nodes of random size, mostly online, local storage on most of them, a shared pool
/// on some, and up to 30 guests.
fn cluster() -> impl Strategy<Value = ClusterSnapshot> {
    (2usize..7).prop_flat_map(|n| {
        (
            prop::collection::vec(
                (
                    4u64..64,
                    8u64..200,
                    prop::bool::weighted(0.85),
                    prop::bool::weighted(0.8),
                    0u64..2000,
                ),
                n,
            ),
            prop::collection::vec(prop::bool::weighted(0.7), n),
            1u64..5000,
            prop::collection::vec(raw_guest(n), 0..30),
        )
            .prop_map(build)
    })
}

type RawNode = (u64, u64, bool, bool, u64);

fn build(
    (nodes, ceph_on, ceph_avail, guests): (Vec<RawNode>, Vec<bool>, u64, Vec<RawGuest>),
) -> ClusterSnapshot {
    let name = |i: usize| format!("pve{i}");
    let mut storages = Vec::new();
    let infos = nodes
        .iter()
        .enumerate()
        .map(|(i, &(cpus, mem, online, has_local, local_avail))| {
            if has_local {
                storages.push(StorageInfo::new(
                    "local-lvm",
                    &name(i),
                    false,
                    2000 * GIB,
                    local_avail * GIB,
                ));
            }
            if ceph_on[i] {
                storages.push(StorageInfo::new(
                    "ceph",
                    &name(i),
                    true,
                    5000 * GIB,
                    ceph_avail * GIB,
                ));
            }
            NodeInfo {
                online,
                ..NodeInfo::new(&name(i), cpus, mem * GIB)
            }
        })
        .collect();
    let guests = guests
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut guest = GuestInfo::qemu(100 + i as u32, &name(g.node), g.cpus, g.mem_gib * GIB);
            for (shared, gib) in &g.disks {
                guest = guest.with_disk(if *shared { "ceph" } else { "local-lvm" }, gib * GIB);
            }
            if g.lxc {
                guest.kind = GuestKind::Lxc;
            }
            match g.state {
                7 | 8 => guest = guest.stopped(),
                9 => guest = guest.as_template(),
                _ => {}
            }
            if g.pinned {
                guest = guest.tagged("pinned");
            }
            if g.locked {
                guest.lock = Some("backup".into());
            }
            if !g.disks_known {
                guest.disks = None;
            }
            guest
        })
        .collect();
    ClusterSnapshot::new(infos, guests, storages)
}

fn request() -> impl Strategy<Value = (usize, Option<Vec<usize>>, bool, f64, f64)> {
    (
        0usize..7,
        prop::option::weighted(0.3, prop::collection::vec(0usize..7, 1..4)),
        any::<bool>(),
        prop::sample::select(vec![0.8, 1.0, 1.5]),
        prop::sample::select(vec![1.0, 2.0, 4.0]),
    )
}

/// The snapshot after the plan, storages' free space reduced by what the moves copied.
fn after_plan(snap: &ClusterSnapshot, moves: &[Move]) -> ClusterSnapshot {
    let mut after = apply_moves(snap, moves);
    for m in moves {
        for d in &m.local_disks {
            let shared = snap.storage(&m.to, &d.to_storage).is_some_and(|s| s.shared);
            for s in after.storages.iter_mut() {
                if s.id == d.to_storage && (s.node == m.to || (shared && s.shared)) {
                    s.avail = s.avail.saturating_sub(d.size);
                }
            }
        }
    }
    after
}

/// Capacity at the ratios, computed here rather than taken from the ledger under test.
fn capacity(node: &NodeInfo, ratios: Ratios) -> (u64, u64) {
    let mem = (node.maxmem.saturating_sub(node.reserved_memory) as f64 * ratios.memory).floor();
    (mem as u64, (node.cpus as f64 * ratios.vcpu).floor() as u64)
}

/// Running memory and vCPUs per node, counted from the guests.
fn running_load(snap: &ClusterSnapshot) -> BTreeMap<String, (u64, u64)> {
    let mut load = BTreeMap::new();
    for g in snap
        .guests
        .iter()
        .filter(|g| g.status == "running" && !g.template)
    {
        let l: &mut (u64, u64) = load.entry(g.node.clone()).or_default();
        l.0 += g.maxmem;
        l.1 += g.maxcpu;
    }
    load
}

/// Every node that received a running guest is within capacity; every storage that received
/// a disk had room for it.
fn assert_within_capacity(snap: &ClusterSnapshot, moves: &[Move], ratios: Ratios) {
    let load = running_load(&apply_moves(snap, moves));
    for m in moves.iter().filter(|m| m.memory > 0 || m.vcpus > 0) {
        let (mem, cpu) = load[&m.to];
        let (cap_mem, cap_cpu) = capacity(snap.node(&m.to).unwrap(), ratios);
        assert!(mem <= cap_mem, "{} over memory: {mem} > {cap_mem}", m.to);
        assert!(cpu <= cap_cpu, "{} over vCPU: {cpu} > {cap_cpu}", m.to);
    }
    let mut copied: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in moves {
        for d in &m.local_disks {
            let s = snap
                .storage(&m.to, &d.to_storage)
                .expect("target storage exists");
            let scope = if s.shared {
                String::new()
            } else {
                m.to.clone()
            };
            let total = copied.entry((scope, d.to_storage.clone())).or_default();
            *total += d.size;
            assert!(
                *total <= s.avail,
                "{} on {} over its free space",
                d.to_storage,
                m.to
            );
        }
    }
}

fn assert_legal(
    snap: &ClusterSnapshot,
    m: &Move,
    source: Option<&str>,
    allowed: Option<&[String]>,
) {
    let guest = snap.guest(m.vmid).expect("moved guest exists");
    assert_eq!(m.from, guest.node);
    assert!(source.is_none_or(|s| s == m.from));
    assert_ne!(m.to, m.from);
    assert!(
        snap.node(&m.to).is_some_and(|n| n.online),
        "{} offline",
        m.to
    );
    assert!(
        allowed.is_none_or(|a| a.contains(&m.to)),
        "{} not allowed",
        m.to
    );
    if guest.template || !guest.is_running() {
        assert_eq!(m.mode, MoveMode::Offline);
    }
    for d in guest.disks.as_ref().expect("disks known") {
        let target = m.local_disks.iter().find(|l| l.key == d.key);
        let storage = target.map_or(d.storage.as_str(), |t| t.to_storage.as_str());
        assert!(
            snap.storage(&m.to, storage).is_some_and(|s| s.active),
            "{} lacks {storage}",
            m.to
        );
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn evacuation_plans_are_legal_within_capacity_complete_and_deterministic(
        snap in cluster(),
        (source, targets, include_stopped, mem_ratio, vcpu_ratio) in request(),
    ) {
        let source = format!("pve{}", source % snap.nodes.len());
        let targets: Option<Vec<String>> = targets.map(|t| t.iter().map(|i| format!("pve{i}")).collect());
        let req = EvacuationRequest {
            targets: targets.clone(),
            include_stopped,
            pin_tag: Some("pinned".into()),
            ratios: Ratios { memory: mem_ratio, vcpu: vcpu_ratio },
            ..EvacuationRequest::new(&source)
        };
        let plan = evacuate(&snap, &req);
        for m in &plan.moves {
            assert_legal(&snap, m, Some(&source), targets.as_deref());
        }
        assert_within_capacity(&snap, &plan.moves, req.ratios);

        // Every guest of the source is accounted for exactly once.
        let mut seen: Vec<u32> = plan.moves.iter().map(|m| m.vmid)
            .chain(plan.unplaceable.iter().map(|s| s.vmid))
            .chain(plan.left_stopped.iter().copied())
            .collect();
        seen.sort_unstable();
        let on_source: Vec<u32> = snap.guests_on(&source).map(|g| g.vmid).collect();
        prop_assert_eq!(seen, on_source);

        // "No target" only when no allowed node can take the guest even now.
        let after = after_plan(&snap, &plan.moves);
        let ledger = Ledger::new(&after, req.ratios);
        for s in &plan.unplaceable {
            if let Unplaceable::NoTarget { .. } = s.why {
                let guest = snap.guest(s.vmid).unwrap();
                let demand = move_demand(&snap, guest, Some("pinned"), None).unwrap();
                for n in &snap.nodes {
                    prop_assert!(ledger.check(&n.name, &demand, targets.as_deref(), Some(&source)).is_err(),
                        "{} called unplaceable but {} could take it", s.vmid, n.name);
                }
            }
        }

        // Same input, same plan, however the snapshot's lists were ordered.
        let mut shuffled = snap.clone();
        shuffled.nodes.reverse();
        shuffled.guests.reverse();
        shuffled.storages.reverse();
        let rebuilt = ClusterSnapshot::new(shuffled.nodes, shuffled.guests, shuffled.storages);
        prop_assert_eq!(&evacuate(&rebuilt, &req), &plan);
    }

    #[test]
    fn balance_moves_are_legal_within_capacity_one_way_and_deterministic(
        snap in cluster(),
        band in prop::sample::select(vec![0.0, 0.05, 0.15, 0.3]),
        (_, targets, _, mem_ratio, vcpu_ratio) in request(),
    ) {
        let targets: Option<Vec<String>> = targets.map(|t| t.iter().map(|i| format!("pve{i}")).collect());
        let req = BalanceRequest {
            ratios: Ratios { memory: mem_ratio, vcpu: vcpu_ratio },
            band,
            pin_tag: Some("pinned".into()),
            targets: targets.clone(),
            max_moves: 8,
            bandwidth: None,
        };
        let plan = balance(&snap, &req);
        prop_assert!(plan.moves.len() <= 8);
        for m in &plan.moves {
            assert_legal(&snap, m, None, targets.as_deref());
            prop_assert_eq!(m.mode, if snap.guest(m.vmid).unwrap().kind == GuestKind::Lxc { MoveMode::Restart } else { MoveMode::Online });
            prop_assert!(!plan.moves.iter().any(|o| o.to == m.from), "{} both sends and receives", m.from);
        }
        assert_within_capacity(&snap, &plan.moves, req.ratios);
        prop_assert_eq!(&balance(&snap, &req), &plan);
    }

    #[test]
    fn spread_never_overcommits_and_rejects_only_what_fits_nowhere(
        snap in cluster(),
        sizes in prop::collection::vec((1u64..8, 1u64..48, prop::option::of(1u64..200)), 1..20),
        ratios in (prop::sample::select(vec![0.8, 1.0, 1.5]), prop::sample::select(vec![1.0, 2.0])),
    ) {
        let ratios = Ratios { memory: ratios.0, vcpu: ratios.1 };
        let specs: Vec<GuestSpec> = sizes.iter().map(|&(cores, mem, disk)| {
            let spec = GuestSpec::new(cores, mem * GIB);
            match disk { Some(gib) => spec.with_disk("local-lvm", gib * GIB), None => spec }
        }).collect();
        let plan = spread(&snap, &specs, None, ratios);
        prop_assert_eq!(plan.placed.len() + plan.unplaceable.len(), specs.len());
        // Nodes that received running guests are within capacity.
        let mut load = running_load(&snap);
        for p in &plan.placed {
            let node = p.node.clone().unwrap();
            let l = load.entry(node.clone()).or_default();
            l.0 += specs[p.index].memory;
            l.1 += specs[p.index].cores;
            prop_assert!(snap.node(&node).unwrap().online);
        }
        for p in &plan.placed {
            let node = p.node.as_deref().unwrap();
            let (cap_mem, cap_cpu) = capacity(snap.node(node).unwrap(), ratios);
            prop_assert!(load[node].0 <= cap_mem && load[node].1 <= cap_cpu, "{} over capacity", node);
        }
        // A guest is rejected only when, at its turn, no node could take it.
        let mut ledger = Ledger::new(&snap, ratios);
        let mut all: Vec<&Spreaded> = plan.placed.iter().chain(&plan.unplaceable).collect();
        all.sort_by_key(|s| s.index);
        for s in all {
            let demand = specs[s.index].demand();
            match &s.node {
                Some(node) => ledger.apply(None, node, &demand),
                None => {
                    for n in &snap.nodes {
                        prop_assert!(ledger.check(&n.name, &demand, None, None).is_err());
                    }
                }
            }
        }
        prop_assert_eq!(&spread(&snap, &specs, None, ratios), &plan);
    }

    #[test]
    fn placement_agrees_with_a_one_guest_spread(
        snap in cluster(),
        cores in 1u64..8,
        mem in 1u64..48,
    ) {
        let spec = GuestSpec::new(cores, mem * GIB);
        let p = place(&snap, &spec, None, Ratios::default());
        let s = spread(&snap, std::slice::from_ref(&spec), None, Ratios::default());
        prop_assert_eq!(p.node.clone(), s.placed.first().and_then(|x| x.node.clone()));
        prop_assert_eq!(p.node.is_none(), p.rejected.len() == snap.nodes.len());
    }
}

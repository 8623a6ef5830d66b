//! Properties every plan must have, over random clusters: no node over capacity whichever of
//! its moves are done or in flight (any prefix, any subset), every move legal (online target,
//! allowed by the request and by the guest's HA group, storages there), a guest called
//! unplaceable only when no node could take it even once the plan is done, and the same input
//! giving the same plan and digest. Checks recompute from the snapshot and the plan alone, not
//! from the planner's own bookkeeping, so a bookkeeping bug cannot hide itself. Case counts are
//! kept modest: the suite runs on 2 cores in CI.

use std::collections::{BTreeMap, BTreeSet};

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
    disks: Vec<(bool, u64)>,        // (on shared ceph, GiB)
    restricted: Option<Vec<usize>>, // HA group members, as node indexes
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
        prop::option::weighted(0.2, prop::collection::vec(0..nodes, 1..4)),
    )
        .prop_map(
            |(node, mem_gib, cpus, state, lxc, pinned, locked, disks_known, disks, restricted)| {
                RawGuest {
                    node,
                    mem_gib,
                    cpus,
                    state,
                    lxc,
                    pinned,
                    locked,
                    disks_known,
                    disks,
                    restricted,
                }
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
            if let Some(group) = &g.restricted {
                let names: Vec<String> = group.iter().map(|&i| name(i)).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                guest = guest.restricted_to(&names);
                guest.ha_managed = true;
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
    assert!(
        guest.may_run_on(&m.to),
        "{} outside the HA group of {}",
        m.to,
        m.vmid
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

/// Whatever moves are done or in flight, no node is over capacity unless it already was, and
/// then it received nothing. A move in flight counts on its target and still on its source,
/// so checking the target with every move of `subset` counted and none subtracted covers every
/// interleaving of an executor running them with any parallelism.
fn assert_no_overcommit_in_flight(
    snap: &ClusterSnapshot,
    moves: &[Move],
    subset: &[bool],
    ratios: Ratios,
) {
    let before = running_load(snap);
    let mut incoming: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (m, _) in moves
        .iter()
        .zip(subset.iter().chain(std::iter::repeat(&true)))
        .filter(|(_, on)| **on)
    {
        let l = incoming.entry(&m.to).or_default();
        l.0 += m.memory;
        l.1 += m.vcpus;
    }
    for (node, (mem, cpu)) in incoming.into_iter().filter(|(_, l)| *l != (0, 0)) {
        let (b_mem, b_cpu) = before.get(node).copied().unwrap_or_default();
        let (cap_mem, cap_cpu) = capacity(snap.node(node).unwrap(), ratios);
        assert!(
            b_mem + mem <= cap_mem || mem == 0,
            "{node} over memory: {b_mem} + {mem} > {cap_mem}"
        );
        assert!(
            b_cpu + cpu <= cap_cpu || cpu == 0,
            "{node} over vCPUs: {b_cpu} + {cpu} > {cap_cpu}"
        );
    }
}

/// Every prefix of the move list (executed in order), and the subset `mask` picks (executed or
/// in flight in any order), keeps every node within capacity; no node both sends and receives.
fn assert_safe_in_any_order(snap: &ClusterSnapshot, moves: &[Move], mask: &[bool], ratios: Ratios) {
    for m in moves {
        assert!(
            !moves.iter().any(|o| o.to == m.from),
            "{} both sends and receives",
            m.from
        );
    }
    for end in 0..=moves.len() {
        assert_no_overcommit_in_flight(snap, &moves[..end], &[], ratios);
    }
    assert_no_overcommit_in_flight(snap, moves, mask, ratios);
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
        mask in prop::collection::vec(any::<bool>(), 30),
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
        assert_safe_in_any_order(&snap, &plan.moves, &mask, req.ratios);

        // Each move, checked alone against the cluster as it is, is the same move: targets
        // only gain along the plan, so what the plan booked fits the untouched cluster too.
        let single = MoveRequest {
            ratios: req.ratios,
            pin_tag: req.pin_tag.clone(),
            ..MoveRequest::default()
        };
        for m in &plan.moves {
            prop_assert_eq!(&check_move(&snap, m.vmid, &m.to, &single), &Ok(m.clone()));
        }

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
        let again = evacuate(&rebuilt, &req);
        prop_assert_eq!(&again, &plan);
        prop_assert_eq!(again.digest(), plan.digest.clone());
        prop_assert_eq!(plan.digest.len(), 16);

        // Another plan: the same digest exactly when nothing differs.
        let other = evacuate(&snap, &EvacuationRequest { ratios: Ratios { memory: 1.0, vcpu: 2.0 }, ..req.clone() });
        prop_assert_eq!(plan_difference(&plan, &other).is_empty(), plan.digest == other.digest);
        let targets_of = |p: &EvacuationPlan| -> BTreeSet<(u32, String)> {
            p.moves.iter().map(|m| (m.vmid, m.to.clone())).collect()
        };
        prop_assert_eq!(
            expected_difference(&plan.expected_moves(), &other).is_empty(),
            targets_of(&plan) == targets_of(&other)
        );
    }

    #[test]
    fn balance_moves_are_legal_within_capacity_one_way_and_deterministic(
        snap in cluster(),
        band in prop::sample::select(vec![0.0, 0.05, 0.15, 0.3]),
        (_, targets, _, mem_ratio, vcpu_ratio) in request(),
        mask in prop::collection::vec(any::<bool>(), 8),
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
        }
        assert_within_capacity(&snap, &plan.moves, req.ratios);
        assert_safe_in_any_order(&snap, &plan.moves, &mask, req.ratios);
        // The same input in another order gives the same plan.
        let mut shuffled = snap.clone();
        shuffled.nodes.reverse();
        shuffled.guests.reverse();
        shuffled.storages.reverse();
        let rebuilt = ClusterSnapshot::new(shuffled.nodes, shuffled.guests, shuffled.storages);
        prop_assert_eq!(&balance(&rebuilt, &req), &plan);
    }

    #[test]
    fn balance_reading_configs_lazily_plans_what_reading_all_does(
        snap in cluster(),
        band in prop::sample::select(vec![0.0, 0.05, 0.15]),
        max_moves in 1usize..12,
        batch in 1usize..4,
    ) {
        let req = BalanceRequest {
            band,
            pin_tag: Some("pinned".into()),
            max_moves,
            ..BalanceRequest::default()
        };
        // What the listing alone gives: no guest's disks or local resources known.
        let mut lazy = snap.clone();
        for g in &mut lazy.guests {
            g.disks = None;
            g.local_resources.clear();
        }
        let mut tried = BTreeSet::new();
        let mut size = batch;
        let plan = loop {
            let (plan, exhausted) = balance_traced(&lazy, &req);
            let want = guests_to_read(&lazy, &req, &exhausted, &tried, size);
            if want.is_empty() {
                break plan;
            }
            for v in &want {
                let full = snap.guest(*v).expect("a guest of the snapshot").clone();
                let g = lazy.guests.iter_mut().find(|g| g.vmid == *v).expect("guest");
                g.disks = full.disks;
                g.local_resources = full.local_resources;
            }
            tried.extend(want);
            size *= 2;
        };
        prop_assert_eq!(&plan, &balance(&snap, &req));
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

    #[test]
    fn a_single_move_check_agrees_with_the_ledger_and_the_best_target(
        snap in cluster(),
        pick in any::<prop::sample::Index>(),
        target in 0usize..7,
        ignore_pin in any::<bool>(),
        local in prop::sample::select(vec![None, Some("ceph")]),
    ) {
        prop_assume!(!snap.guests.is_empty());
        let guest = pick.get(&snap.guests);
        let target = format!("pve{target}");
        let req = MoveRequest {
            pin_tag: Some("pinned".into()),
            target_storage: local.map(str::to_string),
            ignore_pin,
            ..MoveRequest::default()
        };
        let pin = if ignore_pin { None } else { Some("pinned") };
        let verdict = check_move(&snap, guest.vmid, &target, &req);
        let ledger = Ledger::new(&snap, req.ratios);
        match (snap.node(&target), move_demand(&snap, guest, pin, local)) {
            (None, _) => prop_assert_eq!(verdict, Err(MoveRefusal::UnknownNode { node: target })),
            (Some(_), _) if guest.node == target => {
                prop_assert_eq!(verdict, Err(MoveRefusal::SameNode { node: target }))
            }
            (Some(_), Err(why)) => prop_assert_eq!(verdict, Err(MoveRefusal::Stays { why })),
            (Some(_), Ok(demand)) => match ledger.check(&target, &demand, None, Some(&guest.node)) {
                Ok(()) => {
                    let m = verdict.unwrap();
                    prop_assert_eq!((&m.to, m.memory), (&target, demand.memory));
                    assert_legal(&snap, &m, Some(&guest.node), None);
                }
                Err(rejection) => prop_assert_eq!(
                    verdict,
                    Err(MoveRefusal::Rejected { node: target, rejection })
                ),
            },
        }
        // The best target is a node the single check accepts; "no target" means none does.
        match best_target(&snap, guest.vmid, &req) {
            Ok(m) => prop_assert_eq!(check_move(&snap, guest.vmid, &m.to, &req), Ok(m)),
            Err(MoveRefusal::Stays { why: Unplaceable::NoTarget { nodes } }) => {
                prop_assert_eq!(nodes.len(), snap.nodes.len());
                for n in &snap.nodes {
                    prop_assert!(check_move(&snap, guest.vmid, &n.name, &req).is_err());
                }
            }
            Err(other) => prop_assert!(matches!(other, MoveRefusal::Stays { .. }), "{:?}", other),
        }
    }
}

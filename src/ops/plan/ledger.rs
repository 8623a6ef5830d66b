//! The move machinery every planner shares: what a guest asks of a node (a [`Demand`]), whether
//! a node can give it (a [`Rejection`] otherwise), which node gives it best, and the running
//! tally of what the plan so far has added to each node and storage (the [`Ledger`]).
//!
//! Planners place guests one at a time against the ledger, so each decision already sees the
//! load of every earlier one: a plan executed in order never takes a node over capacity at any
//! step, not only at the end.

use std::collections::BTreeMap;

use super::{
    ClusterSnapshot, DiskMove, GuestInfo, GuestKind, Move, MoveMode, NodeRejection, Ratios,
    Rejection, Unplaceable,
};

/// What one guest needs from the node it lands on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Demand {
    /// Added to the node's running load (0 for a guest that will not run there).
    pub memory: u64,
    pub vcpus: u64,
    pub disks: Vec<DiskNeed>,
}

/// One disk: the storage it must be on at the target, and whether bytes are copied there.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DiskNeed {
    pub key: String,
    pub from_storage: String,
    pub storage: String,
    pub size: u64,
    /// Local disk (or a new disk): needs free space on the target storage. A disk on shared
    /// storage only needs the target to see that storage.
    pub copied: bool,
}

/// Running load each node carries, and bytes each storage receives, as the plan unfolds.
pub(super) struct Ledger<'a> {
    pub snap: &'a ClusterSnapshot,
    pub ratios: Ratios,
    load: BTreeMap<&'a str, (u64, u64)>,
    /// Keyed by (node, storage), or ("", storage) for a shared storage: its space is one pool.
    storage_added: BTreeMap<(String, String), u64>,
}

impl<'a> Ledger<'a> {
    pub fn new(snap: &'a ClusterSnapshot, ratios: Ratios) -> Ledger<'a> {
        let mut load: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for n in &snap.nodes {
            load.insert(&n.name, (0, 0));
        }
        for g in snap.guests.iter().filter(|g| g.is_running()) {
            if let Some(l) = load.get_mut(g.node.as_str()) {
                l.0 += g.maxmem;
                l.1 += g.maxcpu;
            }
        }
        Ledger {
            snap,
            ratios,
            load,
            storage_added: BTreeMap::new(),
        }
    }

    /// Running memory and vCPUs on `node` after the moves so far.
    pub fn load(&self, node: &str) -> (u64, u64) {
        self.load.get(node).copied().unwrap_or((0, 0))
    }

    /// Memory and vCPUs the node may carry at the configured ratios.
    pub fn capacity(&self, node: &str) -> (u64, u64) {
        self.snap.node(node).map_or((0, 0), |n| {
            let mem = (n.memory_budget() as f64 * self.ratios.memory).floor() as u64;
            let cpu = (n.cpus as f64 * self.ratios.vcpu).floor() as u64;
            (mem, cpu)
        })
    }

    /// Free memory and vCPUs (negative when already over).
    pub fn free(&self, node: &str) -> (i128, i128) {
        let (cap_m, cap_c) = self.capacity(node);
        let (m, c) = self.load(node);
        (cap_m as i128 - m as i128, cap_c as i128 - c as i128)
    }

    fn storage_key(&self, node: &str, storage: &str) -> (String, String) {
        let shared = self.snap.storage(node, storage).is_some_and(|s| s.shared);
        let scope = if shared { "" } else { node };
        (scope.to_string(), storage.to_string())
    }

    /// Whether `node` can take the demand; the first reason it cannot, in a fixed order.
    pub fn check(
        &self,
        node: &str,
        demand: &Demand,
        allowed: Option<&[String]>,
        source: Option<&str>,
    ) -> Result<(), Rejection> {
        if allowed.is_some_and(|a| !a.iter().any(|n| n == node)) {
            return Err(Rejection::NotAllowed);
        }
        if source == Some(node) {
            return Err(Rejection::Source);
        }
        if !self.snap.node(node).is_some_and(|n| n.online) {
            return Err(Rejection::Offline);
        }
        let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &demand.disks {
            *wanted.entry(d.storage.as_str()).or_default() += if d.copied { d.size } else { 0 };
        }
        for (storage, needed) in wanted {
            let Some(s) = self
                .snap
                .storage(node, storage)
                .filter(|s| s.active && s.content.iter().any(|c| c == "images" || c == "rootdir"))
            else {
                return Err(Rejection::MissingStorage {
                    storage: storage.to_string(),
                });
            };
            let added = self.storage_added.get(&self.storage_key(node, storage));
            let available = s.avail.saturating_sub(added.copied().unwrap_or(0));
            if needed > available {
                return Err(Rejection::StorageFull {
                    storage: storage.to_string(),
                    needed,
                    available,
                });
            }
        }
        let (free_m, free_c) = self.free(node);
        if demand.memory > 0 && demand.memory as i128 > free_m {
            return Err(Rejection::Memory {
                needed: demand.memory,
                available: free_m.max(0) as u64,
            });
        }
        if demand.vcpus > 0 && demand.vcpus as i128 > free_c {
            return Err(Rejection::Cpu {
                needed: demand.vcpus,
                available: free_c.max(0) as u64,
            });
        }
        Ok(())
    }

    /// The node that takes the demand with the most room left (memory, then vCPUs, then name
    /// as tie-breaks), or every node's reason when none can. `prefer` ranks first among nodes
    /// that can (used by `spread` to round-robin); lower is better.
    pub fn best(
        &self,
        demand: &Demand,
        allowed: Option<&[String]>,
        source: Option<&str>,
        prefer: impl Fn(&str) -> u64,
    ) -> Result<String, Vec<NodeRejection>> {
        let mut rejected = Vec::new();
        let mut best: Option<(u64, i128, i128, &str)> = None;
        for n in &self.snap.nodes {
            match self.check(&n.name, demand, allowed, source) {
                Err(rejection) => rejected.push(NodeRejection {
                    node: n.name.clone(),
                    rejection,
                }),
                Ok(()) => {
                    let (m, c) = self.free(&n.name);
                    let key = (prefer(&n.name), m, c, n.name.as_str());
                    let better = best
                        .is_none_or(|b| (key.0, -key.1, -key.2, key.3) < (b.0, -b.1, -b.2, b.3));
                    if better {
                        best = Some(key);
                    }
                }
            }
        }
        best.map(|b| b.3.to_string()).ok_or(rejected)
    }

    /// Books the demand on `to` and releases its running load from `from`.
    pub fn apply(&mut self, from: Option<&str>, to: &str, demand: &Demand) {
        if let Some(l) = from.and_then(|f| self.load.get_mut(f)) {
            l.0 = l.0.saturating_sub(demand.memory);
            l.1 = l.1.saturating_sub(demand.vcpus);
        }
        if let Some(l) = self.load.get_mut(to) {
            l.0 += demand.memory;
            l.1 += demand.vcpus;
        }
        for d in demand.disks.iter().filter(|d| d.copied) {
            let key = self.storage_key(to, &d.storage);
            *self.storage_added.entry(key).or_default() += d.size;
        }
    }
}

/// What moving `guest` asks of its target, or why it cannot move at all. Local disks go to
/// `target_storage` when given, else to the storage of the same name on the target.
pub(super) fn move_demand(
    snap: &ClusterSnapshot,
    guest: &GuestInfo,
    pin_tag: Option<&str>,
    target_storage: Option<&str>,
) -> Result<Demand, Unplaceable> {
    if let Some(tag) = pin_tag.filter(|t| guest.tags.iter().any(|g| g == t)) {
        return Err(Unplaceable::Pinned {
            tag: tag.to_string(),
        });
    }
    if let Some(lock) = &guest.lock {
        return Err(Unplaceable::Locked { lock: lock.clone() });
    }
    if !guest.local_resources.is_empty() {
        return Err(Unplaceable::LocalResource {
            keys: guest.local_resources.clone(),
        });
    }
    let Some(disks) = &guest.disks else {
        return Err(Unplaceable::DisksUnknown);
    };
    let mut needs = Vec::new();
    for d in disks {
        // A storage the source does not list is treated as local: assuming shared could
        // strand the disk.
        let shared = snap
            .storage(&guest.node, &d.storage)
            .is_some_and(|s| s.shared);
        if d.cdrom && !shared {
            return Err(Unplaceable::LocalCdrom {
                storage: d.storage.clone(),
            });
        }
        if d.cdrom {
            continue; // a shared ISO is seen from every node that has the storage
        }
        let storage = match target_storage {
            Some(t) if !shared => t.to_string(),
            _ => d.storage.clone(),
        };
        needs.push(DiskNeed {
            key: d.key.clone(),
            from_storage: d.storage.clone(),
            storage,
            size: d.size,
            copied: !shared,
        });
    }
    let running = guest.is_running();
    Ok(Demand {
        memory: if running { guest.maxmem } else { 0 },
        vcpus: if running { guest.maxcpu } else { 0 },
        disks: needs,
    })
}

/// The move record for a guest booked on `to`.
pub(super) fn make_move(
    guest: &GuestInfo,
    to: &str,
    demand: &Demand,
    bandwidth: Option<u64>,
) -> Move {
    let mode = match (guest.is_running(), guest.kind) {
        (true, GuestKind::Qemu) => MoveMode::Online,
        (true, GuestKind::Lxc) => MoveMode::Restart,
        (false, _) => MoveMode::Offline,
    };
    let local_disks: Vec<DiskMove> = demand
        .disks
        .iter()
        .filter(|d| d.copied)
        .map(|d| DiskMove {
            key: d.key.clone(),
            from_storage: d.from_storage.clone(),
            to_storage: d.storage.clone(),
            size: d.size,
        })
        .collect();
    let disk_bytes: u64 = local_disks.iter().map(|d| d.size).sum();
    let transfer_bytes = disk_bytes
        + if mode == MoveMode::Online {
            guest.maxmem
        } else {
            0
        };
    Move {
        vmid: guest.vmid,
        name: guest.name.clone(),
        kind: guest.kind,
        from: guest.node.clone(),
        to: to.to_string(),
        mode,
        ha_managed: guest.ha_managed,
        memory: demand.memory,
        vcpus: demand.vcpus,
        local_disks,
        transfer_bytes,
        estimated_seconds: bandwidth
            .filter(|b| *b > 0)
            .map(|b| transfer_bytes.div_ceil(b)),
    }
}

/// The order guests are considered in: running before stopped, larger memory first (big
/// guests are the hard ones to fit), then vmid.
pub(super) fn visit_order(guests: &mut [&GuestInfo]) {
    guests.sort_by_key(|g| (!g.is_running(), std::cmp::Reverse(g.maxmem), g.vmid));
}

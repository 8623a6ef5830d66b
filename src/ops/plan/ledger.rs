//! The move machinery every planner shares: what a guest asks of a node (a [`Demand`]), whether
//! a node can give it (a [`Rejection`] otherwise), which node gives it best, and the running
//! tally of what the plan so far has added to each node and storage (the [`Ledger`]).
//!
//! Planners place guests one at a time against the ledger, so each decision already sees the
//! load of every earlier one. A planner whose targets only receive (evacuation: the source
//! only sends; balance: a node sends or receives, never both) therefore never takes a node
//! over capacity whichever subset of its moves has run or is in flight, in any order: a
//! target's load only grows along the plan, up to the end state the ledger checked.
//!
//! The ledger indexes the snapshot once (nodes by name, storages by node and id), so a check is
//! a few map lookups, not a scan of the cluster: a plan over thousands of guests stays cheap.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{
    ClusterSnapshot, DiskMove, GuestInfo, GuestKind, Move, MoveMode, NodeRejection, Ratios,
    Rejection, StorageInfo, Unplaceable,
};

/// What one guest needs from the node it lands on.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Demand {
    /// Added to the node's running load (0 for a guest that will not run there).
    pub memory: u64,
    pub vcpus: u64,
    pub disks: Vec<DiskNeed>,
    /// The guest's own restriction (restricted HA group, strict node affinity); `None` = any.
    pub restricted_to: Option<Vec<String>>,
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

impl Demand {
    /// Bytes copied per target storage, by storage name (every storage the disks need appears,
    /// with 0 when nothing is copied to it).
    fn wanted(&self) -> Vec<(&str, u64)> {
        let mut wanted: Vec<(&str, u64)> = Vec::with_capacity(self.disks.len());
        for d in &self.disks {
            let bytes = if d.copied { d.size } else { 0 };
            match wanted.iter_mut().find(|(s, _)| *s == d.storage) {
                Some(w) => w.1 += bytes,
                None => wanted.push((&d.storage, bytes)),
            }
        }
        wanted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        wanted
    }
}

/// How [`Ledger::best`] ranks the nodes that can take a demand. The last tie-break is always
/// the node name, so the choice never depends on the order of the snapshot's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rank {
    /// Most free memory, then most free vCPUs: a new guest gets the most room.
    MostRoom,
    /// Lowest memory load (running memory over budget) once the guest is there, then lowest
    /// vCPU load: moved guests fill nodes of different sizes to the same level.
    LowestLoad,
}

/// One node as the ledger counts it.
#[derive(Debug, Clone)]
struct Slot {
    online: bool,
    budget: u64,
    cpus: u64,
    capacity: (u64, u64),
    load: (u64, u64),
}

/// Running load each node carries, and bytes each storage receives, as the plan unfolds.
pub(super) struct Ledger<'a> {
    pub snap: &'a ClusterSnapshot,
    /// Node name to its slot (the first node of that name).
    index: BTreeMap<&'a str, usize>,
    slots: Vec<Slot>,
    /// The storages each slot's node sees.
    storages: Vec<Vec<&'a StorageInfo>>,
    /// Bytes booked per (slot, storage), or (`SHARED`, storage) for a shared storage: its
    /// space is one pool.
    storage_added: BTreeMap<(usize, &'a str), u64>,
}

/// The scope of a shared storage's bookings in `storage_added`.
const SHARED: usize = usize::MAX;

impl<'a> Ledger<'a> {
    pub fn new(snap: &'a ClusterSnapshot, ratios: Ratios) -> Ledger<'a> {
        let mut index = BTreeMap::new();
        let mut slots = Vec::with_capacity(snap.nodes.len());
        for n in &snap.nodes {
            index.entry(n.name.as_str()).or_insert(slots.len());
            slots.push(Slot {
                online: n.online,
                budget: n.memory_budget(),
                cpus: n.cpus,
                capacity: (
                    (n.memory_budget() as f64 * ratios.memory).floor() as u64,
                    (n.cpus as f64 * ratios.vcpu).floor() as u64,
                ),
                load: (0, 0),
            });
        }
        for g in snap.guests.iter().filter(|g| g.is_running()) {
            if let Some(&i) = index.get(g.node.as_str()) {
                slots[i].load.0 += g.maxmem;
                slots[i].load.1 += g.maxcpu;
            }
        }
        let mut storages = vec![Vec::new(); slots.len()];
        for s in &snap.storages {
            if let Some(&i) = index.get(s.node.as_str()) {
                storages[i].push(s);
            }
        }
        Ledger {
            snap,
            index,
            slots,
            storages,
            storage_added: BTreeMap::new(),
        }
    }

    fn slot(&self, node: &str) -> Option<&Slot> {
        self.index.get(node).map(|&i| &self.slots[i])
    }

    /// The storage `id` as the node of slot `i` sees it.
    fn storage_at(&self, i: usize, id: &str) -> Option<&'a StorageInfo> {
        self.storages[i].iter().find(|s| s.id == id).copied()
    }

    /// Bytes already booked on storage `s` as the node of slot `i` sees it.
    fn booked(&self, i: usize, s: &StorageInfo) -> u64 {
        let scope = if s.shared { SHARED } else { i };
        self.storage_added
            .get(&(scope, s.id.as_str()))
            .copied()
            .unwrap_or(0)
    }

    /// Memory load of `node` (running memory over budget) if `extra` more bytes ran there;
    /// infinite when it has no budget.
    pub fn memory_load(&self, node: &str, extra: u64) -> f64 {
        match self.slot(node) {
            Some(s) if s.budget > 0 => (s.load.0 + extra) as f64 / s.budget as f64,
            _ => f64::INFINITY,
        }
    }

    /// Whether `node` can take the demand; the first reason it cannot, in a fixed order.
    /// `allowed` is the caller's choice of targets; the guest's own restriction is in the
    /// demand.
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
        self.check_node(node, demand, &demand.wanted(), source)
    }

    /// `check` without the caller's target list, with the demand's storage needs summed.
    fn check_node(
        &self,
        node: &str,
        demand: &Demand,
        wanted: &[(&str, u64)],
        source: Option<&str>,
    ) -> Result<(), Rejection> {
        if source == Some(node) {
            return Err(Rejection::Source);
        }
        if demand
            .restricted_to
            .as_ref()
            .is_some_and(|a| !a.iter().any(|n| n == node))
        {
            return Err(Rejection::HaRestricted);
        }
        let Some(&i) = self.index.get(node).filter(|&&i| self.slots[i].online) else {
            return Err(Rejection::Offline);
        };
        let slot = &self.slots[i];
        for &(storage, needed) in wanted {
            let Some(s) = self
                .storage_at(i, storage)
                .filter(|s| s.active && s.content.iter().any(|c| c == "images" || c == "rootdir"))
            else {
                return Err(Rejection::MissingStorage {
                    storage: storage.to_string(),
                });
            };
            let available = s.avail.saturating_sub(self.booked(i, s));
            if needed > available {
                return Err(Rejection::StorageFull {
                    storage: storage.to_string(),
                    needed,
                    available,
                });
            }
        }
        let (free_m, free_c) = free(slot);
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

    /// The node that takes the demand best by `rank` (node name as the last tie-break), or
    /// every node's reason when none can. `prefer` ranks first among nodes that can (used by
    /// `spread` to round-robin); lower is better.
    pub fn best(
        &self,
        demand: &Demand,
        allowed: Option<&[String]>,
        source: Option<&str>,
        rank: Rank,
        prefer: impl Fn(&str) -> u64,
    ) -> Result<String, Vec<NodeRejection>> {
        let mut rejected = Vec::new();
        let eligible = |node: &str| allowed.is_none_or(|a| a.iter().any(|n| n == node));
        let chosen = self.best_where(demand, source, rank, prefer, eligible, |node, rejection| {
            rejected.push(NodeRejection {
                node: node.to_string(),
                rejection,
            })
        });
        chosen.map(str::to_string).ok_or(rejected)
    }

    /// [`Ledger::best`] with the caller's targets as a predicate (a node it refuses is
    /// reported `NotAllowed`), each rejection handed to `rejected` instead of collected.
    pub fn best_where(
        &self,
        demand: &Demand,
        source: Option<&str>,
        rank: Rank,
        prefer: impl Fn(&str) -> u64,
        allowed: impl Fn(&str) -> bool,
        mut rejected: impl FnMut(&str, Rejection),
    ) -> Option<&'a str> {
        let wanted = demand.wanted();
        let snap: &'a ClusterSnapshot = self.snap;
        let mut best: Option<(u64, &Slot, &'a str)> = None;
        for n in &snap.nodes {
            let node = n.name.as_str();
            let verdict = if allowed(node) {
                self.check_node(node, demand, &wanted, source)
            } else {
                Err(Rejection::NotAllowed)
            };
            if let Err(rejection) = verdict {
                rejected(node, rejection);
                continue;
            }
            let Some(slot) = self.slot(node) else {
                continue;
            };
            let candidate = (prefer(node), slot, node);
            let better = best.is_none_or(|b| {
                candidate
                    .0
                    .cmp(&b.0)
                    .then_with(|| compare(rank, demand, candidate.1, b.1))
                    .then_with(|| candidate.2.cmp(b.2))
                    == Ordering::Less
            });
            if better {
                best = Some(candidate);
            }
        }
        best.map(|b| b.2)
    }

    /// Books the demand on `to` and releases its running load from `from`.
    pub fn apply(&mut self, from: Option<&str>, to: &str, demand: &Demand) {
        if let Some(&i) = from.and_then(|f| self.index.get(f)) {
            let l = &mut self.slots[i].load;
            l.0 = l.0.saturating_sub(demand.memory);
            l.1 = l.1.saturating_sub(demand.vcpus);
        }
        let Some(&i) = self.index.get(to) else {
            return;
        };
        self.slots[i].load.0 += demand.memory;
        self.slots[i].load.1 += demand.vcpus;
        for d in demand.disks.iter().filter(|d| d.copied) {
            // A storage the node lacks was refused by `check`: nothing to book.
            if let Some(s) = self.storage_at(i, &d.storage) {
                let scope = if s.shared { SHARED } else { i };
                *self
                    .storage_added
                    .entry((scope, s.id.as_str()))
                    .or_default() += d.size;
            }
        }
    }
}

fn free(s: &Slot) -> (i128, i128) {
    (
        s.capacity.0 as i128 - s.load.0 as i128,
        s.capacity.1 as i128 - s.load.1 as i128,
    )
}

/// `a` against `b` for the demand (Less = `a` is better).
fn compare(rank: Rank, demand: &Demand, a: &Slot, b: &Slot) -> Ordering {
    match rank {
        Rank::MostRoom => {
            let (fa, fb) = (free(a), free(b));
            fb.0.cmp(&fa.0).then(fb.1.cmp(&fa.1))
        }
        Rank::LowestLoad => {
            let after = |s: &Slot| {
                (
                    (s.load.0 + demand.memory, s.budget),
                    (s.load.1 + demand.vcpus, s.cpus),
                )
            };
            let (ma, ca) = after(a);
            let (mb, cb) = after(b);
            fraction_cmp(ma, mb).then(fraction_cmp(ca, cb))
        }
    }
}

/// Compares `a.0 / a.1` with `b.0 / b.1` exactly; a zero denominator is infinite.
fn fraction_cmp(a: (u64, u64), b: (u64, u64)) -> Ordering {
    match (a.1, b.1) {
        (0, 0) => Ordering::Equal,
        (0, _) => Ordering::Greater,
        (_, 0) => Ordering::Less,
        _ => (a.0 as u128 * b.1 as u128).cmp(&(b.0 as u128 * a.1 as u128)),
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
    if let Some(state) = guest
        .ha_state
        .as_deref()
        .filter(|s| super::ha_state_blocks(s))
    {
        return Err(Unplaceable::HaState {
            state: state.to_string(),
        });
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
        restricted_to: guest.allowed_nodes.clone(),
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

//! What each node is asked to carry, against what it has: the one place overcommit is counted
//! (`cluster_status`'s flags, `balance`, and the before/after of every plan).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::{ClusterSnapshot, GuestInfo, Move, NodeInfo, Ratios};

/// One node's allocation. Templates count nowhere; stopped guests count as allocated only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Allocation {
    pub node: String,
    pub online: bool,
    pub cpus: u64,
    /// Physical memory minus the host reserve, bytes.
    pub memory_budget: u64,
    pub running_guests: u64,
    /// vCPUs and memory of running guests.
    pub running_vcpus: u64,
    pub running_memory: u64,
    /// vCPUs and memory of all guests, running or not.
    pub allocated_vcpus: u64,
    pub allocated_memory: u64,
    /// running_memory / memory_budget (0 when the budget is unknown).
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub memory_load: f64,
    /// running_vcpus / cpus (0 when the thread count is unknown).
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub cpu_load: f64,
    /// Present (true) only when the node is over capacity at the configured ratios.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_overcommitted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cpu_overcommitted: bool,
}

/// The allocation of `node` given the guests on it (guests elsewhere are ignored).
pub fn allocation<'a>(
    node: &NodeInfo,
    guests: impl IntoIterator<Item = &'a GuestInfo>,
    ratios: Ratios,
) -> Allocation {
    let mut a = empty(node);
    for g in guests.into_iter().filter(|g| g.node == node.name) {
        count(&mut a, g);
    }
    finish(a, ratios)
}

/// Every node's allocation, in node order.
pub fn allocations(snap: &ClusterSnapshot, ratios: Ratios) -> Vec<Allocation> {
    allocations_where(snap, ratios, |g| g.node.as_str())
}

/// Every node's allocation once `moves` have run (guests re-homed), without copying the
/// snapshot.
pub(super) fn allocations_after(
    snap: &ClusterSnapshot,
    moves: &[Move],
    ratios: Ratios,
) -> Vec<Allocation> {
    let to: BTreeMap<u32, &str> = moves.iter().map(|m| (m.vmid, m.to.as_str())).collect();
    allocations_where(snap, ratios, |g| {
        to.get(&g.vmid).copied().unwrap_or(&g.node)
    })
}

/// Every node's allocation with each guest on `node_of(guest)`: one pass over the guests.
fn allocations_where<'a: 'b, 'b>(
    snap: &'a ClusterSnapshot,
    ratios: Ratios,
    node_of: impl Fn(&'a GuestInfo) -> &'b str,
) -> Vec<Allocation> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut counted: Vec<Allocation> = Vec::new();
    for n in &snap.nodes {
        index.entry(n.name.as_str()).or_insert_with(|| {
            counted.push(empty(n));
            counted.len() - 1
        });
    }
    for g in &snap.guests {
        if let Some(&i) = index.get(node_of(g)) {
            count(&mut counted[i], g);
        }
    }
    // A node listed twice gets the same counts under each entry, as `allocation` would give.
    snap.nodes
        .iter()
        .map(|n| {
            let c = &counted[index[n.name.as_str()]];
            finish(
                Allocation {
                    online: n.online,
                    cpus: n.cpus,
                    memory_budget: n.memory_budget(),
                    ..c.clone()
                },
                ratios,
            )
        })
        .collect()
}

fn empty(node: &NodeInfo) -> Allocation {
    Allocation {
        node: node.name.clone(),
        online: node.online,
        cpus: node.cpus,
        memory_budget: node.memory_budget(),
        running_guests: 0,
        running_vcpus: 0,
        running_memory: 0,
        allocated_vcpus: 0,
        allocated_memory: 0,
        memory_load: 0.0,
        cpu_load: 0.0,
        memory_overcommitted: false,
        cpu_overcommitted: false,
    }
}

/// Adds one guest on the node. Templates count nowhere.
fn count(a: &mut Allocation, g: &GuestInfo) {
    count_one(a, &Load::of(g));
}

/// What one guest asks of its node: all [`allocation`] reads of a [`GuestInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub template: bool,
    pub running: bool,
    pub vcpus: u64,
    pub memory: u64,
}

impl Load {
    pub fn of(g: &GuestInfo) -> Load {
        Load {
            template: g.template,
            running: g.is_running(),
            vcpus: g.maxcpu,
            memory: g.maxmem,
        }
    }
}

/// [`allocation`] of loads already known to be on `node` (no guest copied to count it).
pub fn allocation_of_loads(
    node: &NodeInfo,
    loads: impl IntoIterator<Item = Load>,
    ratios: Ratios,
) -> Allocation {
    let mut a = empty(node);
    for l in loads {
        count_one(&mut a, &l);
    }
    finish(a, ratios)
}

fn count_one(a: &mut Allocation, l: &Load) {
    if l.template {
        return;
    }
    a.allocated_vcpus += l.vcpus;
    a.allocated_memory += l.memory;
    if l.running {
        a.running_guests += 1;
        a.running_vcpus += l.vcpus;
        a.running_memory += l.memory;
    }
}

/// Loads and overcommit flags from the counts.
fn finish(mut a: Allocation, ratios: Ratios) -> Allocation {
    a.memory_load = fraction(a.running_memory, a.memory_budget);
    a.cpu_load = fraction(a.running_vcpus, a.cpus);
    a.memory_overcommitted =
        a.memory_budget > 0 && a.running_memory as f64 > a.memory_budget as f64 * ratios.memory;
    a.cpu_overcommitted = a.cpus > 0 && a.running_vcpus as f64 > a.cpus as f64 * ratios.vcpu;
    a
}

fn fraction(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

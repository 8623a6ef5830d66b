//! What each node is asked to carry, against what it has: the one place overcommit is counted
//! (`cluster_status`'s flags, `balance`, and the before/after of every plan).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ClusterSnapshot, GuestInfo, NodeInfo, Ratios};

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
    pub memory_load: f64,
    /// running_vcpus / cpus (0 when the thread count is unknown).
    pub cpu_load: f64,
    pub memory_overcommitted: bool,
    pub cpu_overcommitted: bool,
}

/// The allocation of `node` given the guests on it (guests elsewhere are ignored).
pub fn allocation<'a>(
    node: &NodeInfo,
    guests: impl IntoIterator<Item = &'a GuestInfo>,
    ratios: Ratios,
) -> Allocation {
    let mut a = Allocation {
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
    };
    for g in guests
        .into_iter()
        .filter(|g| !g.template && g.node == node.name)
    {
        a.allocated_vcpus += g.maxcpu;
        a.allocated_memory += g.maxmem;
        if g.is_running() {
            a.running_guests += 1;
            a.running_vcpus += g.maxcpu;
            a.running_memory += g.maxmem;
        }
    }
    a.memory_load = fraction(a.running_memory, a.memory_budget);
    a.cpu_load = fraction(a.running_vcpus, a.cpus);
    a.memory_overcommitted =
        a.memory_budget > 0 && a.running_memory as f64 > a.memory_budget as f64 * ratios.memory;
    a.cpu_overcommitted = a.cpus > 0 && a.running_vcpus as f64 > a.cpus as f64 * ratios.vcpu;
    a
}

/// Every node's allocation, in node order.
pub fn allocations(snap: &ClusterSnapshot, ratios: Ratios) -> Vec<Allocation> {
    snap.nodes
        .iter()
        .map(|n| allocation(n, snap.guests_on(&n.name), ratios))
        .collect()
}

fn fraction(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

//! Pure planners: where a new guest goes, how a node is emptied, how load is evened out.
//!
//! Every planner takes a [`ClusterSnapshot`] and plain arguments and returns plain data: no
//! I/O, no `async`, no MCP types, no clock, no hash-map iteration. The same input always gives
//! the same plan: guests are visited in an explicit order (running first, then larger memory
//! first, then vmid) and targets are compared with explicit tie-breaks: a new guest goes where
//! there is most room (most free memory, then most free vCPUs, then node name); a moved guest
//! where the memory load is lowest once it is there (then the vCPU load, then node name), so
//! nodes of different sizes fill to the same level. That is what lets a preview be trusted
//! ("dry-run is the plan", and its [`EvacuationPlan::digest()`] says whether a confirm would do
//! the same) and lets the property tests compare two runs.
//!
//! Capacity is counted the way an operator counts it, from configured sizes: a node's memory
//! capacity is `(maxmem - reserved_memory) × ratios.memory`, its vCPU capacity
//! `cpus × ratios.vcpu`, and its load is what its *running* guests are configured with
//! (templates and stopped guests run nothing). A plan never takes a node that receives a
//! running guest above its capacity (the "migrate all to one node" OOM cascade of the field
//! notes), and local disks only go to a node that has the target storage with room for them.
//! A guest with `allowed_nodes` (a restricted HA group, a strict node-affinity rule) only goes
//! to those nodes; the others say `ha_restricted`.
//!
//! Each planner indexes the snapshot once per call (nodes, storages, guests by node), so a plan
//! over a 64-node, 10,000-guest cluster takes milliseconds (`cargo bench --bench plan`).
//!
//! May use: `ops::cluster::snapshot` (plain data). Must not use: `pve`, `server`, I/O.

mod allocation;
mod balance;
mod evacuation;
mod ledger;
mod migration;
mod placement;
mod spread;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::ops::cluster::snapshot::{
    ClusterSnapshot, GuestDisk, GuestInfo, GuestKind, NodeInfo, StorageInfo,
};
pub use allocation::{Allocation, Load, allocation, allocation_of_loads, allocations};
pub use balance::{BalancePlan, BalanceRequest, balance, balance_traced, guests_to_read};
pub use evacuation::{
    EvacuationPlan, EvacuationRequest, ExpectedMove, apply_moves, evacuate, expected_difference,
    plan_difference,
};
pub use migration::{MoveRefusal, MoveRequest, best_target, check_move};
pub use placement::{GuestSpec, Placement, place};
pub use spread::{SpreadPlan, Spreaded, spread};

/// How far configured sizes may exceed physical capacity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ratios {
    /// Running guests' memory per byte of memory budget; 1.0 = never overcommit memory.
    pub memory: f64,
    /// Running guests' vCPUs per physical thread.
    pub vcpu: f64,
}

impl Ratios {
    /// No memory overcommit, two vCPUs per thread: what `cluster_status` flags.
    pub const DEFAULT: Ratios = Ratios {
        memory: 1.0,
        vcpu: 2.0,
    };
}

impl Default for Ratios {
    fn default() -> Ratios {
        Ratios::DEFAULT
    }
}

/// How a guest moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MoveMode {
    /// A running VM, live-migrated.
    Online,
    /// A running container: stopped, moved and started again.
    Restart,
    /// A stopped guest or a template.
    Offline,
}

/// One local disk copied to the target node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskMove {
    pub key: String,
    pub from_storage: String,
    pub to_storage: String,
    pub size: u64,
}

/// One guest moved from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Move {
    pub vmid: u32,
    pub name: String,
    pub kind: GuestKind,
    pub from: String,
    pub to: String,
    pub mode: MoveMode,
    /// Present (true) only for a guest PVE's HA stack manages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ha_managed: bool,
    /// Memory and vCPUs the move adds to the target's running load (0 when offline).
    pub memory: u64,
    pub vcpus: u64,
    /// Local disks copied, each to a storage of the target node (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_disks: Vec<DiskMove>,
    /// Bytes sent: local disks, plus memory for a live migration.
    pub transfer_bytes: u64,
    /// `transfer_bytes / bandwidth`, when a bandwidth was given.
    pub estimated_seconds: Option<u64>,
}

/// Why one node cannot take one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// Not in the allowed targets.
    NotAllowed,
    Offline,
    /// The node the guest is leaving.
    Source,
    /// Outside the guest's restricted HA group or strict node-affinity rule
    /// (`GuestInfo::allowed_nodes`): PVE's HA stack would not let it run there.
    HaRestricted,
    /// The node does not have (or cannot use) a storage the guest's disks need.
    MissingStorage {
        storage: String,
    },
    StorageFull {
        storage: String,
        needed: u64,
        available: u64,
    },
    Memory {
        needed: u64,
        available: u64,
    },
    Cpu {
        needed: u64,
        available: u64,
    },
}

/// One node's verdict for one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeRejection {
    pub node: String,
    #[serde(flatten)]
    pub rejection: Rejection,
}

/// Whether the HA manager refuses to move a resource in `state` (the `hastate` of
/// `/cluster/resources`): anything but a settled started/stopped/disabled/ignored/queued
/// service — `error` until cleared, fence, freeze, recovery, a migration already running.
pub fn ha_state_blocks(state: &str) -> bool {
    !matches!(
        state,
        "started" | "stopped" | "request_stop" | "disabled" | "ignored" | "queued"
    )
}

/// Why a guest stays where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unplaceable {
    /// Carries the "do not move" tag.
    Pinned { tag: String },
    /// A lock (backup, migrate...) means another operation holds it.
    Locked { lock: String },
    /// Passthrough devices tie it to its node.
    LocalResource { keys: Vec<String> },
    /// Its HA resource is in a state in which the HA manager moves nothing (error, fence,
    /// freeze, recovery, a move already running): see [`ha_state_blocks`].
    HaState { state: String },
    /// Its disks were not read; moving it blind could strand a local disk.
    DisksUnknown,
    /// A local CD-ROM image cannot follow it.
    LocalCdrom { storage: String },
    /// No allowed node can take it; every node's reason.
    NoTarget { nodes: Vec<NodeRejection> },
}

/// A guest that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stuck {
    pub vmid: u32,
    pub name: String,
    #[serde(flatten)]
    pub why: Unplaceable,
}

/// Bytes as GiB with one decimal, for messages.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / crate::ops::GIB as f64)
}

impl Rejection {
    /// The reason without its numbers: how `NoTarget` groups nodes in a message.
    fn kind(&self) -> String {
        match self {
            Rejection::NotAllowed => "not a chosen target".into(),
            Rejection::Source => "the node it leaves".into(),
            Rejection::HaRestricted => "outside its HA group or affinity rule".into(),
            Rejection::Offline => "offline".into(),
            Rejection::MissingStorage { storage } => format!("no usable storage {storage}"),
            Rejection::StorageFull { storage, .. } => format!("{storage} too full"),
            Rejection::Memory { .. } => "not enough memory".into(),
            Rejection::Cpu { .. } => "not enough vCPUs".into(),
        }
    }
}

/// One line for an operator, e.g. "needs 8.0 GiB of memory, 4.0 GiB free at the ratio".
impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::StorageFull {
                storage,
                needed,
                available,
            } => write!(
                f,
                "{storage} needs {} free, has {}",
                gib(*needed),
                gib(*available)
            ),
            Rejection::Memory { needed, available } => write!(
                f,
                "needs {} of memory, {} free at the ratio",
                gib(*needed),
                gib(*available)
            ),
            Rejection::Cpu { needed, available } => {
                write!(f, "needs {needed} vCPUs, {available} free at the ratio")
            }
            other => f.write_str(&other.kind()),
        }
    }
}

/// One line for an operator; a `NoTarget` groups the nodes by reason, e.g. "no node can take
/// it (not enough memory: pve02, pve03; offline: pve04)".
impl std::fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplaceable::Pinned { tag } => write!(f, "pinned by the tag {tag}"),
            Unplaceable::Locked { lock } => write!(f, "locked ({lock})"),
            Unplaceable::LocalResource { keys } => {
                write!(f, "tied to its node by {}", keys.join(", "))
            }
            Unplaceable::HaState { state } => write!(
                f,
                "its HA resource is in state '{state}', in which the HA manager moves nothing (see `ha-manager status`)"
            ),
            Unplaceable::DisksUnknown => f.write_str("its disks were not read"),
            Unplaceable::LocalCdrom { storage } => {
                write!(f, "a CD-ROM image on local storage {storage}")
            }
            Unplaceable::NoTarget { nodes } => {
                let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
                for n in nodes {
                    let kind = n.rejection.kind();
                    match groups.iter_mut().find(|(k, _)| *k == kind) {
                        Some((_, names)) => names.push(&n.node),
                        None => groups.push((kind, vec![&n.node])),
                    }
                }
                let groups: Vec<String> = groups
                    .iter()
                    .map(|(kind, names)| format!("{kind}: {}", names.join(", ")))
                    .collect();
                write!(f, "no node can take it ({})", groups.join("; "))
            }
        }
    }
}

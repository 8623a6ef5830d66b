//! Pure planners: where a new guest goes, how a node is emptied, how load is evened out.
//!
//! Every planner takes a [`ClusterSnapshot`] and plain arguments and returns plain data: no
//! I/O, no `async`, no MCP types, no clock. The same input always gives the same plan: guests
//! are visited in an explicit order (running first, then larger memory first, then vmid) and
//! targets are compared with explicit tie-breaks (most free memory, then most free vCPUs, then
//! node name). That is what lets a preview be trusted ("dry-run is the plan") and lets the
//! property tests compare two runs.
//!
//! Capacity is counted the way an operator counts it, from configured sizes: a node's memory
//! capacity is `(maxmem - reserved_memory) × ratios.memory`, its vCPU capacity
//! `cpus × ratios.vcpu`, and its load is what its *running* guests are configured with
//! (templates and stopped guests run nothing). A plan never takes a node that receives a
//! running guest above its capacity (the "migrate all to one node" OOM cascade of the field
//! notes), and local disks only go to a node that has the target storage with room for them.
//!
//! May use: `ops::cluster::snapshot` (plain data). Must not use: `pve`, `server`, I/O.

mod allocation;
mod balance;
mod evacuation;
mod ledger;
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
pub use allocation::{Allocation, allocation, allocations};
pub use balance::{BalancePlan, BalanceRequest, balance};
pub use evacuation::{EvacuationPlan, EvacuationRequest, apply_moves, evacuate};
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
    /// A running VM, live-migrated (`online=1`, `with-local-disks=1` when it has local disks).
    Online,
    /// A running container: PVE stops it, moves it and starts it again (`restart=1`).
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
    pub ha_managed: bool,
    /// Memory and vCPUs the move adds to the target's running load (0 when offline).
    pub memory: u64,
    pub vcpus: u64,
    /// Local disks copied, each to a storage of the target node.
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

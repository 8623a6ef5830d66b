//! Where a new guest goes: the allowed, online node with the storage it needs and the most
//! room left at the given overcommit ratios; or every node's reason when none fits.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ledger::{Demand, DiskNeed, Ledger, Rank};
use super::{ClusterSnapshot, NodeRejection, Ratios};

/// A guest to be created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuestSpec {
    pub cores: u64,
    /// Bytes.
    pub memory: u64,
    /// Disks as (storage id, bytes); the node must have each storage with that much free.
    pub disks: Vec<(String, u64)>,
    /// Whether it will run (a guest created stopped adds no running load).
    pub running: bool,
}

impl GuestSpec {
    /// A running guest with no disk requirement.
    pub fn new(cores: u64, memory: u64) -> GuestSpec {
        GuestSpec {
            cores,
            memory,
            disks: vec![],
            running: true,
        }
    }

    pub fn with_disk(mut self, storage: &str, size: u64) -> GuestSpec {
        self.disks.push((storage.to_string(), size));
        self
    }

    pub(super) fn demand(&self) -> Demand {
        Demand {
            memory: if self.running { self.memory } else { 0 },
            vcpus: if self.running { self.cores } else { 0 },
            disks: self
                .disks
                .iter()
                .enumerate()
                .map(|(i, (storage, size))| DiskNeed {
                    key: format!("disk{i}"),
                    from_storage: storage.clone(),
                    storage: storage.clone(),
                    size: *size,
                    copied: true,
                })
                .collect(),
            restricted_to: None,
        }
    }
}

/// The chosen node, and the reason each other node was not chosen because it could not take
/// the guest (nodes that could but had less room are not listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Placement {
    pub node: Option<String>,
    pub rejected: Vec<NodeRejection>,
}

/// Chooses a node for one new guest. `allowed` = `None` means every node.
pub fn place(
    snap: &ClusterSnapshot,
    spec: &GuestSpec,
    allowed: Option<&[String]>,
    ratios: Ratios,
) -> Placement {
    let ledger = Ledger::new(snap, ratios);
    let demand = spec.demand();
    let rejected: Vec<NodeRejection> = snap
        .nodes
        .iter()
        .filter_map(|n| {
            ledger
                .check(&n.name, &demand, allowed, None)
                .err()
                .map(|rejection| NodeRejection {
                    node: n.name.clone(),
                    rejection,
                })
        })
        .collect();
    Placement {
        node: ledger
            .best(&demand, allowed, None, Rank::MostRoom, |_| 0)
            .ok(),
        rejected,
    }
}

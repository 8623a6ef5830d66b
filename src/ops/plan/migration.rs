//! One guest, one move, against the cluster as it is now: whether it can go to a given node
//! ([`check_move`], `vm_migrate_check`'s verdict) and where it would go best
//! ([`best_target`]). The demand, the checks and the choice are the plans' own (the ledger),
//! so a single check and an evacuation never disagree on what a node can take.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, Rank, make_move, move_demand};
use super::{ClusterSnapshot, Move, Ratios, Rejection, Unplaceable};

/// The rules one move is checked under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MoveRequest {
    pub ratios: Ratios,
    /// Guests with this tag stay where they are (unless `ignore_pin`).
    pub pin_tag: Option<String>,
    /// Storage on the target for local disks; `None` = the storage of the same name.
    pub target_storage: Option<String>,
    /// Bytes per second between nodes, to estimate the move's duration.
    pub bandwidth: Option<u64>,
    /// Check a guest carrying `pin_tag` as if it had none: the operator moves it on purpose.
    pub ignore_pin: bool,
}

impl Default for MoveRequest {
    /// Default ratios, no pin tag, same-name storage, no estimate.
    fn default() -> MoveRequest {
        MoveRequest {
            ratios: Ratios::default(),
            pin_tag: None,
            target_storage: None,
            bandwidth: None,
            ignore_pin: false,
        }
    }
}

/// Why one guest cannot go to one node now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MoveRefusal {
    /// No guest with this VMID in the snapshot.
    UnknownGuest { vmid: u32 },
    /// No node of this name in the snapshot.
    UnknownNode { node: String },
    /// The guest is already on this node.
    SameNode { node: String },
    /// The guest cannot leave its node, whatever the target (pin tag, lock, local resources,
    /// unread disks, a local CD-ROM); from [`best_target`], also `no_target`: no node can
    /// take it.
    Stays { why: Unplaceable },
    /// The target cannot take it (its HA group or affinity rule, offline, storage, memory or
    /// vCPUs at the ratios once it is there).
    Rejected { node: String, rejection: Rejection },
}

impl std::fmt::Display for MoveRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MoveRefusal::UnknownGuest { vmid } => write!(f, "no guest {vmid} in the cluster"),
            MoveRefusal::UnknownNode { node } => write!(f, "no node {node} in the cluster"),
            MoveRefusal::SameNode { node } => write!(f, "the guest is already on {node}"),
            MoveRefusal::Stays { why } => write!(f, "the guest stays: {why}"),
            MoveRefusal::Rejected { node, rejection } => write!(f, "{node}: {rejection}"),
        }
    }
}

/// Whether guest `vmid` can move to `target` now, and the move when it can: mode, local disk
/// moves, bytes sent and the time estimate.
///
/// # Errors
/// The first reason it cannot, in this order: the guest or the node is unknown; the guest is
/// already there; the guest cannot leave (pinned unless `ignore_pin`, locked, local resources,
/// unread disks, a local CD-ROM); the target is outside its HA group or affinity rule, offline,
/// lacks a storage its disks need or the room on it, or would be over its memory or vCPU
/// capacity at `req.ratios` once the guest (if running) is there.
pub fn check_move(
    snap: &ClusterSnapshot,
    vmid: u32,
    target: &str,
    req: &MoveRequest,
) -> Result<Move, MoveRefusal> {
    let guest = snap.guest(vmid).ok_or(MoveRefusal::UnknownGuest { vmid })?;
    if snap.node(target).is_none() {
        return Err(MoveRefusal::UnknownNode {
            node: target.to_string(),
        });
    }
    if guest.node == target {
        return Err(MoveRefusal::SameNode {
            node: target.to_string(),
        });
    }
    let pin = req.pin_tag.as_deref().filter(|_| !req.ignore_pin);
    let demand = move_demand(snap, guest, pin, req.target_storage.as_deref())
        .map_err(|why| MoveRefusal::Stays { why })?;
    let ledger = Ledger::new(snap, req.ratios);
    ledger
        .check(target, &demand, None, Some(&guest.node))
        .map_err(|rejection| MoveRefusal::Rejected {
            node: target.to_string(),
            rejection,
        })?;
    Ok(make_move(guest, target, &demand, req.bandwidth))
}

/// The node guest `vmid` would go to now, chosen as an evacuation chooses (lowest memory
/// load once it is there), and the move.
///
/// # Errors
/// `UnknownGuest`; `Stays` with the reason the guest cannot leave, or `no_target` with every
/// node's reason when no node can take it.
pub fn best_target(
    snap: &ClusterSnapshot,
    vmid: u32,
    req: &MoveRequest,
) -> Result<Move, MoveRefusal> {
    let guest = snap.guest(vmid).ok_or(MoveRefusal::UnknownGuest { vmid })?;
    let pin = req.pin_tag.as_deref().filter(|_| !req.ignore_pin);
    let demand = move_demand(snap, guest, pin, req.target_storage.as_deref())
        .map_err(|why| MoveRefusal::Stays { why })?;
    let ledger = Ledger::new(snap, req.ratios);
    let to = ledger
        .best(&demand, None, Some(&guest.node), Rank::LowestLoad, |_| 0)
        .map_err(|nodes| MoveRefusal::Stays {
            why: Unplaceable::NoTarget { nodes },
        })?;
    Ok(make_move(guest, &to, &demand, req.bandwidth))
}

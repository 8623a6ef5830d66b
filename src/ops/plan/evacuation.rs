//! Emptying a node: which guest goes where, in which order, and which cannot go and why.
//!
//! Guests are visited running first, then largest memory first (the hard ones to fit get the
//! most choice), then by vmid; each goes to the allowed node with the most room left after the
//! moves before it. Targets only ever receive, and every move is checked against the load the
//! earlier moves added, so running the moves in order (or several at once) never takes a node
//! above `capacity × ratio` at any point.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, make_move, move_demand, visit_order};
use super::{Allocation, ClusterSnapshot, Move, Ratios, Stuck, Unplaceable, allocations};

/// What to evacuate and under which rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvacuationRequest {
    pub source: String,
    /// Nodes that may receive guests; `None` = every other node.
    pub targets: Option<Vec<String>>,
    /// Also move stopped guests and templates (offline); otherwise they stay.
    pub include_stopped: bool,
    /// Guests with this tag stay where they are.
    pub pin_tag: Option<String>,
    pub ratios: Ratios,
    /// Storage on the target for local disks; `None` = the storage of the same name.
    pub target_storage: Option<String>,
    /// Bytes per second between nodes, to estimate each move's duration.
    pub bandwidth: Option<u64>,
}

impl EvacuationRequest {
    /// Every running guest to any other node, default ratios.
    pub fn new(source: &str) -> EvacuationRequest {
        EvacuationRequest {
            source: source.to_string(),
            targets: None,
            include_stopped: false,
            pin_tag: None,
            ratios: Ratios::default(),
            target_storage: None,
            bandwidth: None,
        }
    }
}

/// The plan: moves in execution order, who stays and why, and every node before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvacuationPlan {
    pub source: String,
    pub moves: Vec<Move>,
    /// Guests that should leave but cannot, each with the reason.
    pub unplaceable: Vec<Stuck>,
    /// Stopped guests and templates left in place because `include_stopped` was false.
    pub left_stopped: Vec<u32>,
    pub before: Vec<Allocation>,
    pub after: Vec<Allocation>,
}

/// Plans the evacuation of `req.source`.
pub fn evacuate(snap: &ClusterSnapshot, req: &EvacuationRequest) -> EvacuationPlan {
    let mut ledger = Ledger::new(snap, req.ratios);
    let mut guests: Vec<_> = snap.guests_on(&req.source).collect();
    visit_order(&mut guests);
    let mut plan = EvacuationPlan {
        source: req.source.clone(),
        moves: vec![],
        unplaceable: vec![],
        left_stopped: vec![],
        before: allocations(snap, req.ratios),
        after: vec![],
    };
    for guest in guests {
        if !guest.is_running() && !req.include_stopped {
            plan.left_stopped.push(guest.vmid);
            continue;
        }
        let demand = match move_demand(
            snap,
            guest,
            req.pin_tag.as_deref(),
            req.target_storage.as_deref(),
        ) {
            Ok(d) => d,
            Err(why) => {
                plan.unplaceable.push(stuck(guest, why));
                continue;
            }
        };
        match ledger.best(&demand, req.targets.as_deref(), Some(&req.source), |_| 0) {
            Ok(to) => {
                ledger.apply(Some(&req.source), &to, &demand);
                plan.moves
                    .push(make_move(guest, &to, &demand, req.bandwidth));
            }
            Err(nodes) => plan
                .unplaceable
                .push(stuck(guest, Unplaceable::NoTarget { nodes })),
        }
    }
    plan.left_stopped.sort_unstable();
    plan.after = allocations(&apply_moves(snap, &plan.moves), req.ratios);
    plan
}

pub(super) fn stuck(guest: &super::GuestInfo, why: Unplaceable) -> Stuck {
    Stuck {
        vmid: guest.vmid,
        name: guest.name.clone(),
        why,
    }
}

/// The snapshot as it would be after the moves (guests re-homed; storages unchanged).
pub fn apply_moves(snap: &ClusterSnapshot, moves: &[Move]) -> ClusterSnapshot {
    let mut after = snap.clone();
    for m in moves {
        if let Some(g) = after.guests.iter_mut().find(|g| g.vmid == m.vmid) {
            g.node = m.to.clone();
        }
    }
    after
}

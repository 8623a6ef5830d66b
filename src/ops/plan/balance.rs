//! How evenly the cluster is loaded, and the moves that would even it out.
//!
//! Load is running guests' configured memory over each node's memory budget. The imbalance
//! score is the spread between the most and the least loaded online node (0 = perfectly even),
//! which is what an operator reads off the GUI. Suggested moves take the most loaded node above
//! `mean + band` and move its largest movable running guest to the node whose memory load is
//! lowest once it is there, as long as that node stays within `mean + band`, its capacity and
//! the guest's `allowed_nodes`. A node that sends never receives and a node that receives never
//! sends, so the moves can run in any order (or at once, or only some of them) without a node
//! passing its capacity on the way, and no guest bounces back and forth.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::allocation::allocations_after;
use super::ledger::{Ledger, Rank, make_move, move_demand, visit_order};
use super::{Allocation, ClusterSnapshot, GuestInfo, Move, Ratios, allocations};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BalanceRequest {
    pub ratios: Ratios,
    /// Allowed distance of a node's memory load from the cluster mean, e.g. 0.15.
    pub band: f64,
    /// Guests with this tag are never suggested for a move.
    pub pin_tag: Option<String>,
    /// Nodes that may receive guests; `None` = every node.
    pub targets: Option<Vec<String>>,
    /// At most this many moves are suggested.
    pub max_moves: usize,
    /// Bytes per second between nodes, to estimate each move's duration.
    pub bandwidth: Option<u64>,
}

impl Default for BalanceRequest {
    fn default() -> BalanceRequest {
        BalanceRequest {
            ratios: Ratios::default(),
            band: 0.15,
            pin_tag: None,
            targets: None,
            max_moves: 10,
            bandwidth: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BalancePlan {
    pub before: Vec<Allocation>,
    /// Running memory over memory budget across online nodes.
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub mean_load: f64,
    /// Most minus least loaded online node, before and after the moves.
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub imbalance_before: f64,
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub imbalance_after: f64,
    /// Nodes over capacity at the given ratios (memory or vCPU), before any move.
    pub overcommitted: Vec<String>,
    pub moves: Vec<Move>,
    pub after: Vec<Allocation>,
}

/// Scores the cluster and suggests moves that bring nodes within `mean ± band`.
pub fn balance(snap: &ClusterSnapshot, req: &BalanceRequest) -> BalancePlan {
    balance_traced(snap, req).0
}

/// [`balance`], plus the nodes it gave up on: above the band, yet none of their remaining
/// running guests could move (pinned, locked, disks unknown, or no node has room). Only on
/// those nodes did the planner look past the guests it moved, so a guest whose disks are
/// unknown (`None`) changes the plan only if it is on one of them — which lets a caller read
/// guest configs lazily ([`guests_to_read`]) and still get the plan a full read gives.
pub fn balance_traced(
    snap: &ClusterSnapshot,
    req: &BalanceRequest,
) -> (BalancePlan, BTreeSet<String>) {
    let before = allocations(snap, req.ratios);
    let mean = mean_load(&before);
    let upper = mean + req.band.max(0.0);
    let mut ledger = Ledger::new(snap, req.ratios);
    // Each node's running guests in visit order, indexed once.
    let mut running: BTreeMap<&str, Vec<&GuestInfo>> = BTreeMap::new();
    for g in snap.guests.iter().filter(|g| g.is_running()) {
        running.entry(g.node.as_str()).or_default().push(g);
    }
    for guests in running.values_mut() {
        visit_order(guests);
    }
    let (mut senders, mut receivers, mut exhausted) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut moved = BTreeSet::new();
    let mut moves = Vec::new();
    while moves.len() < req.max_moves {
        let Some(source) = most_loaded(&ledger, upper, &receivers, &exhausted) else {
            break;
        };
        let guests = running.get(source).map_or(&[][..], Vec::as_slice);
        let found = guests
            .iter()
            .filter(|g| !moved.contains(&g.vmid))
            .find_map(|g| {
                let demand = move_demand(snap, g, req.pin_tag.as_deref(), None).ok()?;
                // A target may not send, must be one of the request's, and must stay within
                // the band once the guest is there.
                let eligible = |node: &str| {
                    !senders.contains(node)
                        && req
                            .targets
                            .as_ref()
                            .is_none_or(|t| t.iter().any(|n| n == node))
                        && ledger.memory_load(node, demand.memory) <= upper
                };
                let to = ledger.best_where(
                    &demand,
                    Some(source),
                    Rank::LowestLoad,
                    |_| 0,
                    eligible,
                    |_, _| {},
                )?;
                Some((*g, demand, to))
            });
        let Some((guest, demand, to)) = found else {
            exhausted.insert(source);
            continue;
        };
        ledger.apply(Some(source), to, &demand);
        moves.push(make_move(guest, to, &demand, req.bandwidth));
        moved.insert(guest.vmid);
        senders.insert(source);
        receivers.insert(to);
    }
    let after = allocations_after(snap, &moves, req.ratios);
    let plan = BalancePlan {
        mean_load: mean,
        imbalance_before: imbalance(&before),
        imbalance_after: imbalance(&after),
        overcommitted: before
            .iter()
            .filter(|a| a.memory_overcommitted || a.cpu_overcommitted)
            .map(|a| a.node.clone())
            .collect(),
        before,
        moves,
        after,
    };
    (plan, exhausted.into_iter().map(str::to_string).collect())
}

/// The guests whose configs [`balance_traced`] may still need: on each node in `exhausted`,
/// the next `batch` running guests in the planner's visit order whose disks are unknown, not
/// in `tried`, and not kept in place by what the listing already shows (pinned, locked, HA
/// state) — reading those could not change the plan. Empty: the plan is the one a read of
/// every guest's config would give.
pub fn guests_to_read(
    snap: &ClusterSnapshot,
    req: &BalanceRequest,
    exhausted: &BTreeSet<String>,
    tried: &BTreeSet<u32>,
    batch: usize,
) -> Vec<u32> {
    let mut out = Vec::new();
    for node in exhausted {
        let mut guests: Vec<&GuestInfo> = snap
            .guests
            .iter()
            .filter(|g| g.node == *node && g.is_running())
            .collect();
        visit_order(&mut guests);
        out.extend(
            guests
                .into_iter()
                .filter(|g| g.disks.is_none() && !tried.contains(&g.vmid))
                .filter(|g| {
                    matches!(
                        move_demand(snap, g, req.pin_tag.as_deref(), None),
                        Err(super::Unplaceable::DisksUnknown)
                    )
                })
                .take(batch)
                .map(|g| g.vmid),
        );
    }
    out
}

/// The online node most above `upper` that may still send (ties: the first by name).
fn most_loaded<'a>(
    ledger: &Ledger<'a>,
    upper: f64,
    receivers: &BTreeSet<&str>,
    exhausted: &BTreeSet<&str>,
) -> Option<&'a str> {
    let snap: &'a ClusterSnapshot = ledger.snap;
    let mut best: Option<(f64, &'a str)> = None;
    for n in snap.nodes.iter().filter(|n| n.online) {
        let name = n.name.as_str();
        if receivers.contains(name) || exhausted.contains(name) || n.memory_budget() == 0 {
            continue;
        }
        let load = ledger.memory_load(name, 0);
        if load > upper && best.is_none_or(|(b, bn)| load > b || (load == b && name < bn)) {
            best = Some((load, name));
        }
    }
    best.map(|(_, n)| n)
}

fn mean_load(nodes: &[Allocation]) -> f64 {
    let online = nodes.iter().filter(|a| a.online && a.memory_budget > 0);
    let (used, budget) = online.fold((0u64, 0u64), |(u, b), a| {
        (u + a.running_memory, b + a.memory_budget)
    });
    if budget == 0 {
        0.0
    } else {
        used as f64 / budget as f64
    }
}

fn imbalance(nodes: &[Allocation]) -> f64 {
    let loads = nodes
        .iter()
        .filter(|a| a.online && a.memory_budget > 0)
        .map(|a| a.memory_load);
    let (min, max) = loads.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| {
        (lo.min(l), hi.max(l))
    });
    if min.is_finite() { max - min } else { 0.0 }
}

//! Placing a batch of new guests (a cluster spin-up): each in turn goes to the allowed node that
//! has received the fewest of this batch so far, and among those the one with the most room,
//! so equal nodes are filled round-robin and a larger node is not skipped once it is ahead.
//! Each placement is booked before the next is chosen, so the batch as a whole never
//! overcommits a node.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, Rank};
use super::{ClusterSnapshot, GuestSpec, NodeRejection, Ratios};

/// Where each guest of the batch goes (by its index in the input), or why it cannot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpreadPlan {
    pub placed: Vec<Spreaded>,
    pub unplaceable: Vec<Spreaded>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Spreaded {
    pub index: usize,
    pub node: Option<String>,
    /// Every node's reason, when no node could take it.
    pub rejected: Vec<NodeRejection>,
}

/// Places `specs` in input order across `allowed` nodes (`None` = all).
pub fn spread(
    snap: &ClusterSnapshot,
    specs: &[GuestSpec],
    allowed: Option<&[String]>,
    ratios: Ratios,
) -> SpreadPlan {
    let mut ledger = Ledger::new(snap, ratios);
    let mut taken: BTreeMap<String, u64> = BTreeMap::new();
    let mut plan = SpreadPlan {
        placed: vec![],
        unplaceable: vec![],
    };
    for (index, spec) in specs.iter().enumerate() {
        let demand = spec.demand();
        let count = |node: &str| taken.get(node).copied().unwrap_or(0);
        match ledger.best(&demand, allowed, None, Rank::MostRoom, count) {
            Ok(node) => {
                ledger.apply(None, &node, &demand);
                *taken.entry(node.clone()).or_default() += 1;
                plan.placed.push(Spreaded {
                    index,
                    node: Some(node),
                    rejected: vec![],
                });
            }
            Err(rejected) => plan.unplaceable.push(Spreaded {
                index,
                node: None,
                rejected,
            }),
        }
    }
    plan
}

//! Moving guests between nodes: one VM (`vm_migrate_check`, `vm_migrate`), a whole node
//! (`node_evacuate`: the plan is the preview, a confirmed call re-plans and executes it), and
//! the cluster's balance (`cluster_balance`).
//!
//! Every decision comes from the pure planners in [`crate::ops::plan`] on a
//! [`ClusterSnapshot`] read here (resources, HA view, the configs of the guests that may move),
//! under the configured `placement` rules; PVE's own preconditions (`GET .../migrate`) are
//! added on top for single moves. Execution is [`execute::execute`] per move, in the one
//! bounded batch executor for many.
//!
//! May use: `pve`, `config`, `ops::plan`, `ops::batch`. Must not use: `server`.

mod balance;
mod check;
mod evacuate;
mod execute;
mod ha;
mod one;
pub mod progress;

pub use balance::{ClusterBalanceArgs, ClusterBalanceReport, cluster_balance};
pub use check::{MigrateCheckArgs, MigrateCheckReport, vm_migrate_check};
pub use evacuate::{
    MoveFailed, NodeEvacuateArgs, NodeEvacuateReport, PlannedMove, Previews, node_evacuate,
};
pub use execute::{MoveDone, MoveOptions};
pub use one::{VmMigrateArgs, VmMigrateReport, vm_migrate};

use crate::config::Placement;
use crate::ops::cluster::snapshot::ClusterSnapshot;
use crate::ops::plan::Ratios;
use crate::ops::{Context, Error};

/// The planners' ratios from the configured placement rules.
pub fn ratios(p: &Placement) -> Ratios {
    Ratios {
        memory: p.memory_ratio,
        vcpu: p.vcpu_ratio,
    }
}

/// The cluster as the planners need it: resources under the configured host reserve, the HA
/// view, and the disks of every guest on `nodes`. Returns the warnings of the HA read.
pub(crate) async fn read_snapshot(
    ctx: &Context,
    nodes: &[&str],
) -> Result<(ClusterSnapshot, Vec<String>), Error> {
    let mut snap = ClusterSnapshot::read(ctx).await?;
    let ha = ha::HaView::read(ctx).await;
    ha.apply(&mut snap);
    for node in nodes {
        snap.read_guest_disks(ctx, node).await;
    }
    Ok((snap, ha.warnings))
}

/// Checks a node argument against the cluster: it must be one of its nodes.
pub(crate) fn known_node(snap: &ClusterSnapshot, arg: &str, node: &str) -> Result<(), Error> {
    if snap.node(node).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = snap.nodes.iter().map(|n| n.name.as_str()).collect();
    Err(Error::invalid(
        arg,
        format!(
            "node {} is not in this cluster (nodes: {})",
            crate::ops::error::quote(node),
            names.join(", ")
        ),
    ))
}

/// Checks a storage argument: an existing storage for guest images on `node`.
pub(crate) fn known_storage(
    snap: &ClusterSnapshot,
    arg: &str,
    node: &str,
    storage: &str,
) -> Result<(), Error> {
    match snap.storage(node, storage) {
        Some(s) if s.content.iter().any(|c| c == "images") => Ok(()),
        Some(_) => Err(Error::invalid(
            arg,
            format!("storage {storage} on {node} does not hold disk images (content 'images')"),
        )),
        None => {
            let on: Vec<&str> = snap
                .storages
                .iter()
                .filter(|s| s.node == node && s.content.iter().any(|c| c == "images"))
                .map(|s| s.id.as_str())
                .collect();
            Err(Error::invalid(
                arg,
                format!(
                    "storage {} does not exist on {node} (image storages there: {})",
                    crate::ops::error::quote(storage),
                    on.join(", ")
                ),
            ))
        }
    }
}

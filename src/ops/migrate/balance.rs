//! `cluster_balance`: how evenly running guests load the nodes, which nodes are overcommitted
//! under the configured ratios, and the moves (from the same planner as an evacuation) that
//! would bring every node within the band around the mean. Read-only: the moves are
//! suggestions, carried out with `vm_migrate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{known_node, ratios, read_snapshot};
use crate::ops::plan::{self, BalancePlan, BalanceRequest};
use crate::ops::{Context, Error};

/// `cluster_balance` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterBalanceArgs {
    /// Allowed memory-load distance from the mean; default `placement.balance_band` (0.15 = 15
    /// points).
    #[serde(default)]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub band: Option<f64>,
    /// Default 10.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub max_moves: Option<u32>,
    /// Default: every online node.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), inner(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE)))]
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
}

/// Nodes per `cluster_balance` page.
pub const BALANCE_NODES_PAGE: u32 = 3;

/// What one node uses right now, as PVE measures it (`/cluster/resources`, else the node's
/// status). The plan counts configured sizes; this says how busy the node really is.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NodeUsage {
    pub node: String,
    pub online: bool,
    /// Memory in use, bytes.
    pub mem_used: u64,
    /// Physical memory, bytes.
    pub maxmem: u64,
    /// `mem_used` / `maxmem` (0 when unknown).
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub memory_used: f64,
    /// CPU in use, fraction of all the node's threads.
    #[serde(serialize_with = "crate::ops::round::ratio")]
    pub cpu_used: f64,
}

/// `cluster_balance` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ClusterBalanceReport {
    /// The configured ratios the numbers are counted against.
    pub memory_ratio: f64,
    pub vcpu_ratio: f64,
    pub band: f64,
    /// `before`, `after` and `usage` hold one page of nodes, most loaded first; `mean_load`,
    /// the imbalance, `overcommitted` and the moves are the whole cluster's.
    #[serde(flatten)]
    pub plan: BalancePlan,
    /// Measured use per node, next to the allocation in `before` (the moves are planned on
    /// the allocation: use changes by the minute, configured sizes are what a guest may take).
    pub usage: Vec<NodeUsage>,
    pub nodes_total: u64,
    /// The next page of nodes, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// One line per suggested move, for the user.
    pub suggestions: Vec<String>,
    pub message: String,
    pub warnings: Vec<String>,
}

/// Scores the cluster's balance and suggests moves.
///
/// # Errors
/// An unknown target node, or PVE unreachable.
pub async fn cluster_balance(
    ctx: &Context,
    args: &ClusterBalanceArgs,
) -> Result<ClusterBalanceReport, Error> {
    let placement = &ctx.config.placement;
    let page =
        crate::ops::paging::Page::new(args.page, None, BALANCE_NODES_PAGE, BALANCE_NODES_PAGE)?;
    let (mut snap, mut warnings) = read_snapshot(ctx, &[]).await?;
    for t in args.targets.iter().flatten() {
        known_node(&snap, "targets", t)?;
    }
    let band = args.band.unwrap_or(placement.balance_band);
    let req = BalanceRequest {
        ratios: ratios(placement),
        band,
        pin_tag: Some(placement.pin_tag.clone()),
        targets: args.targets.clone(),
        max_moves: args.max_moves.unwrap_or(10) as usize,
        bandwidth: Some(placement.migration_bandwidth),
    };
    // Only guests on nodes above the band can be suggested, and their disks (in their
    // configs, which the listing lacks) decide where they may go. The planner walks each such
    // node's guests largest first and stops at the first that can move, so read configs in
    // that order, a few per node, and more only where the planner ran out of guests it knows:
    // the plan is the one reading every config of those nodes gives, at a number of calls
    // that does not grow with the guests per node.
    let (first, exhausted) = plan::balance_traced(&snap, &req);
    let senders: Vec<String> = first
        .before
        .iter()
        .filter(|a| a.online && a.memory_load > first.mean_load + band)
        .map(|a| a.node.clone())
        .collect();
    let mut tried = std::collections::BTreeSet::new();
    let mut batch = req.max_moves.div_ceil(exhausted.len().max(1)) + 1;
    let mut traced = (first, exhausted);
    let plan = loop {
        let want = plan::guests_to_read(&snap, &req, &traced.1, &tried, batch);
        if want.is_empty() {
            break traced.0;
        }
        snap.read_disks_of(ctx, &want).await;
        tried.extend(want);
        batch *= 2;
        traced = plan::balance_traced(&snap, &req);
    };
    let suggestions: Vec<String> = plan
        .moves
        .iter()
        .map(|m| {
            format!(
                "vm_migrate vmid {} ({}) from {} to {}: {} GiB of running memory",
                m.vmid,
                m.name,
                m.from,
                m.to,
                m.memory >> 30
            )
        })
        .collect();
    let message = if plan.moves.is_empty() && plan.overcommitted.is_empty() {
        format!(
            "balanced: every node within {:.0} points of the mean memory load ({:.0}%), none overcommitted",
            band * 100.0,
            plan.mean_load * 100.0
        )
    } else {
        format!(
            "imbalance {:.0} points (most minus least loaded node), {:.0} after the {} suggested move(s); overcommitted: {}",
            plan.imbalance_before * 100.0,
            plan.imbalance_after * 100.0,
            plan.moves.len(),
            if plan.overcommitted.is_empty() {
                "none".to_string()
            } else {
                plan.overcommitted.join(", ")
            }
        )
    };
    if plan.moves.is_empty() && !senders.is_empty() {
        warnings.push(format!(
            "{} is above the band but no guest there can move (pinned with tag '{}', local devices, or no node has room)",
            senders.join(", "),
            placement.pin_tag
        ));
    }
    let usage: Vec<NodeUsage> = snap
        .nodes
        .iter()
        .map(|n| NodeUsage {
            node: n.name.clone(),
            online: n.online,
            mem_used: n.mem_used,
            maxmem: n.maxmem,
            memory_used: if n.maxmem == 0 {
                0.0
            } else {
                n.mem_used as f64 / n.maxmem as f64
            },
            cpu_used: n.cpu_used,
        })
        .collect();
    let (plan, usage, nodes_total, next_page) = nodes_page(plan, usage, page);
    Ok(ClusterBalanceReport {
        memory_ratio: placement.memory_ratio,
        vcpu_ratio: placement.vcpu_ratio,
        band,
        plan,
        usage,
        nodes_total,
        next_page,
        suggestions,
        message,
        warnings,
    })
}

/// One page of the per-node rows (`before`, `after`, `usage`): the nodes ordered most loaded
/// first (memory load before the moves, then name), so the first page shows where the pressure
/// is; the totals, the moves and the lists of names stay whole.
fn nodes_page(
    mut plan: BalancePlan,
    usage: Vec<NodeUsage>,
    page: crate::ops::paging::Page,
) -> (BalancePlan, Vec<NodeUsage>, u64, Option<u32>) {
    let mut order: Vec<(f64, String)> = plan
        .before
        .iter()
        .map(|a| (a.memory_load, a.node.clone()))
        .collect();
    for u in &usage {
        if !order.iter().any(|(_, n)| *n == u.node) {
            order.push((0.0, u.node.clone()));
        }
    }
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let names: Vec<String> = order.into_iter().map(|(_, n)| n).collect();
    let (shown, total, next) = page.cut(names);
    let rank = |n: &str| shown.iter().position(|s| s == n);
    let keep = |rows: Vec<crate::ops::plan::Allocation>| {
        let mut rows: Vec<_> = rows
            .into_iter()
            .filter(|a| rank(&a.node).is_some())
            .collect();
        rows.sort_by_key(|a| rank(&a.node));
        rows
    };
    plan.before = keep(std::mem::take(&mut plan.before));
    plan.after = keep(std::mem::take(&mut plan.after));
    let mut usage: Vec<NodeUsage> = usage
        .into_iter()
        .filter(|u| rank(&u.node).is_some())
        .collect();
    usage.sort_by_key(|u| rank(&u.node));
    (plan, usage, total, next)
}

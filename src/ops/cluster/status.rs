//! Cluster and node health: what is running where, how full each node is, and which nodes
//! are overcommitted.
//!
//! One `/cluster/resources` call gives every node, guest and storage row at once (per-node
//! loops are minutes on a big cluster, one call is seconds); `/cluster/status` adds quorum.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Placement;
use crate::pve::ClusterResource;

use crate::ops::plan::{Load, NodeInfo, allocation_of_loads};
use crate::ops::{Context, Error, GIB, is_guest, is_node, pct};

/// Allocation against physical capacity on one node (templates excluded).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Overcommit {
    /// vCPUs of running guests.
    pub running_vcpus: u64,
    /// Configured memory of running guests, bytes.
    pub running_memory: u64,
    /// vCPUs of all guests, running or not.
    pub allocated_vcpus: u64,
    /// Configured memory of all guests, bytes.
    pub allocated_memory: u64,
    /// running_vcpus / physical threads.
    pub cpu_ratio: f64,
    /// running_memory / (physical memory - host reserve).
    pub memory_ratio: f64,
    pub cpu_overcommitted: bool,
    pub memory_overcommitted: bool,
}

/// One node at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NodeSummary {
    pub node: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    /// CPU use in percent of all threads.
    pub cpu_pct: f64,
    pub cpus: u64,
    pub memory_used: u64,
    pub memory_total: u64,
    pub memory_pct: f64,
    /// Root filesystem use, bytes.
    pub rootfs_used: u64,
    pub rootfs_total: u64,
    pub uptime_s: u64,
    pub vms_running: u64,
    pub vms_total: u64,
    pub templates: u64,
    pub overcommit: Overcommit,
}

/// `cluster_status` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ClusterStatusReport {
    /// Cluster name from PVE (falls back to the configured name on a single node).
    pub cluster: String,
    pub quorate: bool,
    pub nodes_online: u64,
    pub nodes_total: u64,
    /// One page of nodes, by name.
    pub nodes: Vec<NodeSummary>,
    /// The next page of nodes, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Shared pools (once), then this page's nodes' own pools.
    pub storage: Vec<crate::ops::StorageSummary>,
    /// Things an operator should look at: offline nodes, overcommit, full storage (the first
    /// few; `node_status` and `storage_list` show the rest).
    pub warnings: Vec<String>,
    /// All warnings, listed or not.
    pub warnings_total: u64,
}

/// `cluster_status` arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterStatusArgs {
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
}

/// Nodes per `cluster_status` page: a small cluster whole, a big one a
/// few KB a page.
pub const CLUSTER_NODES_PAGE: u32 = 3;

/// `node_status` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeStatusArgs {
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: String,
    /// Of the guest list.
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
    /// Default 10.
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub page_size: Option<u32>,
}

/// Guests per `node_status` page unless asked otherwise: a page stays a few KB however many
/// guests the node runs.
pub const NODE_GUESTS_PAGE: u32 = 10;

/// Warnings `cluster_status` lists; the rest are counted in `warnings_total`.
pub const TOP_WARNINGS: usize = 6;

/// `node_status` output: one node in detail.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NodeStatusReport {
    #[serde(flatten)]
    pub summary: NodeSummary,
    /// e.g. `pve-manager/9.1.1/...`.
    pub pve_version: Option<String>,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    /// 1, 5 and 15 minute load averages.
    pub loadavg: Vec<f64>,
    pub swap_used: u64,
    pub swap_total: u64,
    /// Guests on this node, running first: one page.
    pub guests: Vec<crate::ops::VmSummary>,
    /// Guests on this node over all pages.
    pub guests_total: u64,
    /// The next page of guests, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Storage pools as this node sees them.
    pub storage: Vec<crate::ops::StorageSummary>,
    pub warnings: Vec<String>,
}

/// Overcommit of one node's guests, counted by the planners' allocation (one arithmetic for
/// `cluster_status`, balance and every plan's before/after) and rounded for display.
#[cfg(test)]
pub fn overcommit(cpus: u64, memory_total: u64, guests: &[&ClusterResource]) -> Overcommit {
    overcommit_with(cpus, memory_total, guests, &Placement::default())
}

/// [`overcommit`] under the configured placement rules (ratios and host reserve).
pub fn overcommit_with(
    cpus: u64,
    memory_total: u64,
    guests: &[&ClusterResource],
    rules: &Placement,
) -> Overcommit {
    let node = NodeInfo {
        reserved_memory: rules.host_reserve,
        ..NodeInfo::new("", cpus, memory_total)
    };
    let loads = guests.iter().map(|g| Load::of_row(g));
    let a = allocation_of_loads(&node, loads, crate::ops::migrate::ratios(rules));
    Overcommit {
        running_vcpus: a.running_vcpus,
        running_memory: a.running_memory,
        allocated_vcpus: a.allocated_vcpus,
        allocated_memory: a.allocated_memory,
        cpu_ratio: round2(a.cpu_load),
        memory_ratio: round2(a.memory_load),
        cpu_overcommitted: a.cpu_overcommitted,
        memory_overcommitted: a.memory_overcommitted,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The guest rows of `node` (listing order).
fn guests_on<'a>(all: &'a [ClusterResource], node: &str) -> Vec<&'a ClusterResource> {
    all.iter()
        .filter(|r| is_guest(r) && r.node.as_deref() == Some(node))
        .collect()
}

/// `row`'s summary; `guests` are the guest rows on its node.
fn summarize_node(
    row: &ClusterResource,
    guests: &[&ClusterResource],
    rules: &Placement,
) -> NodeSummary {
    let name = row.node.clone().unwrap_or_default();
    let cpus = row.maxcpu.unwrap_or(0.0).round() as u64;
    let memory_total = row.maxmem.unwrap_or(0);
    let memory_used = row.mem.unwrap_or(0);
    let running = guests
        .iter()
        .filter(|g| !g.is_template() && g.status.as_deref() == Some("running"))
        .count();
    let templates = guests.iter().filter(|g| g.is_template()).count();
    NodeSummary {
        status: row.status.clone().unwrap_or_else(|| "unknown".into()),
        cpu_pct: (row.cpu.unwrap_or(0.0) * 1000.0).round() / 10.0,
        cpus,
        memory_used,
        memory_total,
        memory_pct: pct(memory_used as f64, memory_total as f64),
        rootfs_used: row.disk.unwrap_or(0),
        rootfs_total: row.maxdisk.unwrap_or(0),
        uptime_s: row.uptime.unwrap_or(0),
        vms_running: running as u64,
        vms_total: (guests.len() - templates) as u64,
        templates: templates as u64,
        overcommit: overcommit_with(cpus, memory_total, guests, rules),
        node: name,
    }
}

fn node_warnings(n: &NodeSummary, rules: &Placement, out: &mut Vec<String>) {
    if n.status != "online" {
        out.push(format!(
            "node {} is {}: its guests cannot be managed until it is back; check the node or migrate HA guests",
            n.node, n.status
        ));
        return;
    }
    let o = &n.overcommit;
    if o.memory_overcommitted {
        out.push(format!(
            "node {} memory overcommitted: running guests are configured with {:.1} GiB, the node has {:.1} GiB ({:.1} GiB kept for the host); cluster_balance suggests moves",
            n.node,
            o.running_memory as f64 / GIB as f64,
            n.memory_total as f64 / GIB as f64,
            rules.host_reserve as f64 / GIB as f64
        ));
    }
    if o.cpu_overcommitted {
        out.push(format!(
            "node {} cpu overcommitted: {} vCPUs of running guests on {} threads (ratio {:.2} > {:.1})",
            n.node, o.running_vcpus, n.cpus, o.cpu_ratio, rules.vcpu_ratio
        ));
    }
}

/// Whole-cluster overview.
///
/// # Errors
/// When PVE cannot be reached or refuses the token (`Sys.Audit` is needed for node rows).
pub async fn cluster_status(
    ctx: &Context,
    args: &ClusterStatusArgs,
) -> Result<ClusterStatusReport, Error> {
    let page =
        crate::ops::paging::Page::new(args.page, None, CLUSTER_NODES_PAGE, CLUSTER_NODES_PAGE)?;
    // Lenient: an odd optional field in a row is reported in `warnings`, not a failure.
    let ((status, status_odd), (resources, resources_odd)) = tokio::try_join!(
        ctx.client.get_cluster_status_reporting(),
        ctx.client.get_cluster_resources_reporting(None)
    )?;
    let mut cluster = ctx.config.cluster.name.clone();
    let mut quorate = true;
    for item in &status {
        if item.item_type == "cluster" {
            cluster = item.name.clone();
            quorate = item.quorate.unwrap_or(true);
        }
    }
    // One pass over the guests, not one per node (64 x 10,000 string compares).
    let mut by_node: HashMap<&str, Vec<&ClusterResource>> = HashMap::new();
    for r in resources.iter().filter(|r| is_guest(r)) {
        if let Some(n) = r.node.as_deref() {
            by_node.entry(n).or_default().push(r);
        }
    }
    let mut nodes: Vec<NodeSummary> = resources
        .iter()
        .filter(|r| is_node(r))
        .map(|r| {
            let guests = r
                .node
                .as_deref()
                .and_then(|n| by_node.get(n))
                .map_or(&[][..], Vec::as_slice);
            summarize_node(r, guests, &ctx.config.placement)
        })
        .collect();
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    let nodes_online = nodes.iter().filter(|n| n.status == "online").count() as u64;
    let all_storage = crate::ops::storage::pools::summarize_rows(&resources, None);
    let mut warnings = Vec::new();
    if !quorate {
        warnings.push(
            "cluster is not quorate: configuration changes will fail until quorum returns".into(),
        );
    }
    for n in &nodes {
        node_warnings(n, &ctx.config.placement, &mut warnings);
    }
    crate::ops::storage::pools::storage_warnings(&all_storage, &mut warnings);
    warnings.extend(status_odd);
    warnings.extend(resources_odd);
    let warnings_total = warnings.len() as u64;
    if warnings.len() > TOP_WARNINGS {
        warnings.truncate(TOP_WARNINGS - 1);
        warnings.push(format!(
            "{} more warnings: node_status <node> shows a node's, storage_list the storage ones",
            warnings_total - (TOP_WARNINGS as u64 - 1)
        ));
    }
    let (nodes, nodes_total, next_page) = page.cut(nodes);
    // Shared pools on every page (they are the cluster's), each node's own with its node.
    let storage = all_storage
        .into_iter()
        .filter(|s| s.shared || nodes.iter().any(|n| n.node == s.node))
        .collect();
    Ok(ClusterStatusReport {
        cluster,
        quorate,
        nodes_online,
        nodes_total,
        nodes,
        next_page,
        storage,
        warnings,
        warnings_total,
    })
}

/// One node in detail: the summary plus version, kernel, load, its guests and its storage.
///
/// # Errors
/// `NotFound` when the node is not a cluster member; `pve::Error::NodeOffline` when it is
/// offline.
pub async fn node_status(ctx: &Context, args: &NodeStatusArgs) -> Result<NodeStatusReport, Error> {
    let (resources, odd) = ctx.client.get_cluster_resources_reporting(None).await?;
    let Some(row) = resources
        .iter()
        .find(|r| is_node(r) && r.node.as_deref() == Some(args.node.as_str()))
    else {
        let known: Vec<&str> = resources
            .iter()
            .filter(|r| is_node(r))
            .filter_map(|r| r.node.as_deref())
            .collect();
        return Err(Error::NotFound {
            what: format!("node {}", args.node),
            hint: format!(
                "the cluster has {}; use one of those names",
                known.join(", ")
            ),
        });
    };
    let on_node = guests_on(&resources, &args.node);
    let summary = summarize_node(row, &on_node, &ctx.config.placement);
    let mut warnings = odd;
    node_warnings(&summary, &ctx.config.placement, &mut warnings);
    let mut guests: Vec<crate::ops::VmSummary> = on_node
        .into_iter()
        .map(crate::ops::vm::inventory::summarize_vm)
        .collect();
    guests.sort_by_key(|g| (g.status != "running", g.vmid));
    let guests_total = guests.len() as u64;
    let page = args.page.unwrap_or(1).max(1);
    let page_size = args.page_size.unwrap_or(NODE_GUESTS_PAGE).clamp(1, 200);
    let start = (u64::from(page - 1) * u64::from(page_size)).min(guests_total) as usize;
    let guests: Vec<crate::ops::VmSummary> = guests
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    let next_page = (u64::from(page) * u64::from(page_size) < guests_total).then_some(page + 1);
    if summary.status != "online" {
        return Ok(NodeStatusReport {
            summary,
            pve_version: None,
            kernel: None,
            cpu_model: None,
            loadavg: vec![],
            swap_used: 0,
            swap_total: 0,
            guests,
            guests_total,
            next_page,
            storage: crate::ops::storage::pools::summarize_rows(&resources, Some(&args.node)),
            warnings,
        });
    }
    let (st, (storage, storage_odd)) = tokio::try_join!(
        ctx.client.get_node_status(&args.node),
        ctx.client.list_node_storage_reporting(&args.node)
    )?;
    warnings.extend(storage_odd);
    let storage = crate::ops::storage::pools::summarize_node_storage(&args.node, &storage);
    crate::ops::storage::pools::storage_warnings(&storage, &mut warnings);
    Ok(NodeStatusReport {
        pve_version: st.pveversion.clone(),
        kernel: st.kversion.clone(),
        cpu_model: st.cpuinfo.as_ref().and_then(|c| c.model.clone()),
        loadavg: st
            .loadavg
            .iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
            .collect(),
        swap_used: st.swap.as_ref().and_then(|s| s.used).unwrap_or(0),
        swap_total: st.swap.as_ref().and_then(|s| s.total).unwrap_or(0),
        summary,
        guests,
        guests_total,
        next_page,
        storage,
        warnings,
    })
}

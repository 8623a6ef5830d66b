//! Containers: create one (from an OS template or by cloning a container template), the OS
//! templates available (downloaded `vztmpl` volumes and the node's appliance index), and the
//! download of an appliance template (API, or `pveam` over SSH for a token that may not).

pub(crate) mod create;
pub(crate) mod templates;

pub use create::{CtCreateArgs, CtCreateReport, ct_create};
pub use templates::{
    ApplianceSummary, CtTemplateDownloadArgs, CtTemplateDownloadReport, CtTemplatesArgs,
    CtTemplatesReport, DownloadedTemplate, ct_template_download, ct_templates,
};

use crate::ops::cluster::snapshot::{StorageInfo, storage_from_row};
use crate::pve::ClusterResource;

use crate::ops::{Context, Error, is_node, is_storage};

/// The node and storage rows of `/cluster/resources`, read as two filtered listings at once:
/// the container template tools need nothing else, and the unfiltered listing carries every
/// guest too (3 MB at 10,000 guests).
pub(crate) async fn nodes_and_storages(ctx: &Context) -> Result<Vec<ClusterResource>, Error> {
    let (mut nodes, storages) = tokio::try_join!(
        ctx.client
            .get_cluster_resources(Some(crate::pve::ResourceType::Node)),
        ctx.client
            .get_cluster_resources(Some(crate::pve::ResourceType::Storage)),
    )?;
    nodes.extend(storages);
    Ok(nodes)
}

/// Every storage row of `/cluster/resources` (one per node for a shared storage), sorted by
/// storage then node: the planner's [`StorageInfo`].
pub(crate) fn storage_rows(rows: &[ClusterResource]) -> Vec<StorageInfo> {
    let mut out: Vec<StorageInfo> = rows
        .iter()
        .filter(|r| is_storage(r))
        .filter_map(storage_from_row)
        .collect();
    out.sort_by(|a, b| (&a.id, &a.node).cmp(&(&b.id, &b.node)));
    out
}

/// The cluster's online nodes, sorted.
pub(crate) fn online_nodes(rows: &[ClusterResource]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter(|r| is_node(r) && r.status.as_deref() == Some("online"))
        .filter_map(|r| r.node.clone())
        .collect();
    v.sort();
    v
}

/// Refuses a node the cluster does not have or that is not online.
pub(crate) fn require_online(rows: &[ClusterResource], node: &str) -> Result<(), Error> {
    let mut known: Vec<String> = rows
        .iter()
        .filter(|r| is_node(r))
        .filter_map(|r| r.node.clone())
        .collect();
    known.sort();
    match rows
        .iter()
        .find(|r| is_node(r) && r.node.as_deref() == Some(node))
    {
        None => Err(Error::NotFound {
            what: format!("node {}", crate::ops::error::quote(node)),
            hint: format!("the cluster's nodes are {}", known.join(", ")),
        }),
        Some(n) if n.status.as_deref() != Some("online") => Err(Error::refused(format!(
            "node {node} is {}; pick an online node ({})",
            n.status.clone().unwrap_or_else(|| "unknown".into()),
            online_nodes(rows).join(", ")
        ))),
        Some(_) => Ok(()),
    }
}

/// The storages of `node` that can hold `content`, available there.
pub(crate) fn storages_with(stores: &[StorageInfo], node: &str, content: &str) -> Vec<String> {
    stores
        .iter()
        .filter(|s| s.node == node && s.active && s.holds(content))
        .map(|s| s.id.clone())
        .collect()
}

/// Refuses a storage `node` does not have, or that cannot hold `content`, naming the ones
/// that can.
pub(crate) fn require_storage(
    stores: &[StorageInfo],
    node: &str,
    storage: &str,
    content: &str,
    what: &str,
) -> Result<(), Error> {
    let fit = storages_with(stores, node, content);
    let fit_text = if fit.is_empty() {
        format!("no storage of {node} has content `{content}`")
    } else {
        format!("storages of {node} with `{content}`: {}", fit.join(", "))
    };
    match stores.iter().find(|s| s.node == node && s.id == storage) {
        None => Err(Error::NotFound {
            what: format!(
                "storage {} on node {node}",
                crate::ops::error::quote(storage)
            ),
            hint: fit_text,
        }),
        Some(s) if !s.active => Err(Error::refused(format!(
            "storage {storage} is not available on {node}; {fit_text}"
        ))),
        Some(s) if !s.holds(content) => Err(Error::refused(format!(
            "storage {storage} on {node} cannot hold {what} (content {}, no `{content}`); {fit_text}",
            s.content.join(",")
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, storage: &str, content: &str) -> StorageInfo {
        StorageInfo {
            content: content.split(',').map(str::to_string).collect(),
            ..StorageInfo::new(storage, node, false, 0, 0)
        }
    }

    #[test]
    fn a_storage_without_rootdir_is_refused_naming_the_ones_with_it() {
        let stores = vec![
            row("pve01", "local", "iso,vztmpl,backup"),
            row("pve01", "local-lvm", "images,rootdir"),
        ];
        let e = require_storage(&stores, "pve01", "local", "rootdir", "container disks")
            .expect_err("local has no rootdir")
            .to_string();
        assert!(e.contains("local-lvm") && e.contains("rootdir"), "{e}");
        require_storage(&stores, "pve01", "local-lvm", "rootdir", "x").expect("fits");
        let e = require_storage(&stores, "pve01", "nope", "rootdir", "x")
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("local-lvm"), "{e}");
    }
}

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

use crate::pve::ClusterResource;

use crate::ops::{Error, is_node, is_storage};

/// One storage as one node sees it, from `/cluster/resources`.
#[derive(Debug, Clone)]
pub(crate) struct StoreRow {
    pub node: String,
    pub storage: String,
    pub content: Vec<String>,
    pub shared: bool,
    pub available: bool,
}

impl StoreRow {
    pub(crate) fn holds(&self, content: &str) -> bool {
        self.content.iter().any(|c| c == content)
    }
}

pub(crate) fn storage_rows(rows: &[ClusterResource]) -> Vec<StoreRow> {
    let mut out: Vec<StoreRow> = rows
        .iter()
        .filter(|r| is_storage(r))
        .filter_map(|r| {
            Some(StoreRow {
                node: r.node.clone()?,
                storage: r.storage.clone()?,
                content: r
                    .content
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                shared: r.shared == Some(true),
                available: r.status.as_deref() == Some("available"),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.storage, &a.node).cmp(&(&b.storage, &b.node)));
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
pub(crate) fn storages_with(stores: &[StoreRow], node: &str, content: &str) -> Vec<String> {
    stores
        .iter()
        .filter(|s| s.node == node && s.available && s.holds(content))
        .map(|s| s.storage.clone())
        .collect()
}

/// Refuses a storage `node` does not have, or that cannot hold `content`, naming the ones
/// that can.
pub(crate) fn require_storage(
    stores: &[StoreRow],
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
    match stores
        .iter()
        .find(|s| s.node == node && s.storage == storage)
    {
        None => Err(Error::NotFound {
            what: format!(
                "storage {} on node {node}",
                crate::ops::error::quote(storage)
            ),
            hint: fit_text,
        }),
        Some(s) if !s.available => Err(Error::refused(format!(
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

    fn row(node: &str, storage: &str, content: &str) -> StoreRow {
        StoreRow {
            node: node.into(),
            storage: storage.into(),
            content: content.split(',').map(str::to_string).collect(),
            shared: false,
            available: true,
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

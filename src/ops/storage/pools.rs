//! Storage pools and their content.

use std::borrow::Cow;
use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{ClusterResource, NodeStorage, ResourceType, StorageContentRow};

use crate::ops::{Context, Error, is_storage, pct};

/// Pools fuller than this (percent) are reported as warnings.
pub const STORAGE_WARN_PCT: f64 = 85.0;

/// One storage pool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StorageSummary {
    pub storage: String,
    /// The node it was read on; for a shared pool, the first node that reported it.
    pub node: String,
    /// PVE plugin type: `dir`, `lvmthin`, `nfs`, `zfspool`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub shared: bool,
    /// Content types: `images`, `iso`, `vztmpl`, `backup`, `snippets`, `import`, `rootdir`.
    pub content: Vec<String>,
    pub used: u64,
    pub total: u64,
    pub avail: u64,
    pub used_pct: f64,
    /// `available`, or why not (`unknown` on an offline node, `inactive`, `disabled`).
    pub status: String,
}

pub(crate) fn split_content(s: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = s
        .unwrap_or_default()
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Storage rows of `/cluster/resources`, shared pools once; optionally for one node only.
pub(crate) fn summarize_rows(rows: &[ClusterResource], node: Option<&str>) -> Vec<StorageSummary> {
    let mut seen_shared = BTreeSet::new();
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| is_storage(r)) {
        let (Some(storage), Some(n)) = (r.storage.clone(), r.node.clone()) else {
            continue;
        };
        if node.is_some_and(|want| want != n) {
            continue;
        }
        let shared = r.shared == Some(true);
        if shared && node.is_none() && !seen_shared.insert(storage.clone()) {
            continue;
        }
        let used = r.disk.unwrap_or(0);
        let total = r.maxdisk.unwrap_or(0);
        out.push(StorageSummary {
            storage,
            node: n,
            kind: r.plugintype.clone().unwrap_or_default(),
            shared,
            content: split_content(r.content.as_deref()),
            used,
            total,
            avail: total.saturating_sub(used),
            used_pct: pct(used as f64, total as f64),
            status: r.status.clone().unwrap_or_else(|| "unknown".into()),
        });
    }
    out.sort_by(|a, b| (&a.storage, &a.node).cmp(&(&b.storage, &b.node)));
    out
}

/// `/nodes/{node}/storage` rows as summaries.
pub(crate) fn summarize_node_storage(node: &str, rows: &[NodeStorage]) -> Vec<StorageSummary> {
    let mut out: Vec<StorageSummary> = rows
        .iter()
        .map(|s| {
            let used = s.used.unwrap_or(0);
            let total = s.total.unwrap_or(0);
            let status = if s.enabled == Some(false) {
                "disabled"
            } else if s.active == Some(false) {
                "inactive"
            } else {
                "available"
            };
            StorageSummary {
                storage: s.storage.clone(),
                node: node.to_string(),
                kind: s.storage_type.clone(),
                shared: s.shared == Some(true),
                content: split_content(s.content.as_deref()),
                used,
                total,
                avail: s.avail.unwrap_or(total.saturating_sub(used)),
                used_pct: pct(used as f64, total as f64),
                status: status.into(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.storage.cmp(&b.storage));
    out
}

pub(crate) fn storage_warnings(storage: &[StorageSummary], out: &mut Vec<String>) {
    for s in storage {
        if s.used_pct >= STORAGE_WARN_PCT {
            out.push(format!(
                "storage {} on {} is {:.0}% full ({} GiB free); clean up orphaned disks or old backups",
                s.storage,
                s.node,
                s.used_pct,
                s.avail / crate::ops::GIB
            ));
        }
    }
}

/// `storage_list` arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageListArgs {
    /// As this node sees them.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    /// e.g. `images`, `iso`, `backup`.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub content: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub page_size: Option<u32>,
}

/// Pools per `storage_list` page unless asked otherwise.
pub const STORAGE_PAGE: u32 = 12;

/// Warnings a listing shows; the rest are counted.
pub const TOP_WARNINGS: usize = 5;

/// `storage_list` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StorageListReport {
    /// One page, by storage then node.
    pub storage: Vec<StorageSummary>,
    /// Pools over all pages.
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Pools over 85% full on any page (the first few), and odd answers.
    pub warnings: Vec<String>,
}

/// Storage pools with capacity.
///
/// # Errors
/// When PVE cannot be reached, or the node is unknown or offline.
pub async fn storage_list(
    ctx: &Context,
    args: &StorageListArgs,
) -> Result<StorageListReport, Error> {
    if let Some(c) = &args.content {
        require_content_type(c)?;
    }
    let page = crate::ops::paging::Page::new(args.page, args.page_size, STORAGE_PAGE, 200)?;
    // Lenient decoding: an odd optional field of a pool is a warning, not a failure.
    let (mut storage, odd) = match &args.node {
        Some(node) => {
            crate::ops::require_cluster_node(ctx, node).await?;
            let (rows, odd) = ctx.client.list_node_storage_reporting(node).await?;
            (summarize_node_storage(node, &rows), odd)
        }
        None => {
            let (rows, odd) = ctx
                .client
                .get_cluster_resources_reporting(Some(ResourceType::Storage))
                .await?;
            (summarize_rows(&rows, None), odd)
        }
    };
    if let Some(c) = &args.content {
        storage.retain(|s| s.content.iter().any(|x| x == c));
    }
    let mut warnings = Vec::new();
    storage_warnings(&storage, &mut warnings);
    warnings.extend(odd);
    crate::ops::paging::cap_lines(
        &mut warnings,
        TOP_WARNINGS,
        "each pool's used_pct shows the rest",
    );
    let (storage, total, next_page) = page.cut(storage);
    Ok(StorageListReport {
        storage,
        total,
        next_page,
        warnings,
    })
}

/// PVE's storage content types.
const CONTENT_TYPES: [&str; 7] = [
    "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
];

/// Refuses a content filter PVE does not know (it would only ever match nothing).
fn require_content_type(c: &str) -> Result<(), Error> {
    if CONTENT_TYPES.contains(&c) {
        Ok(())
    } else {
        Err(Error::invalid(
            "content",
            format!(
                "'{c}' is not a storage content type; use one of {}",
                CONTENT_TYPES.join(", ")
            ),
        ))
    }
}

/// `storage_content` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageContentArgs {
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub storage: String,
    /// Optional for shared storage.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    /// e.g. `iso`, `backup`, `images`.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub content: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub page_size: Option<u32>,
}

/// Volumes per `storage_content` page unless asked otherwise.
pub const CONTENT_PAGE: u32 = 15;

/// One volume.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StorageContentItem {
    pub volid: String,
    pub content: String,
    pub format: Option<String>,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Creation time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctime: Option<u64>,
    /// Base volume of a linked clone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
}

/// `storage_content` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StorageContentReport {
    pub storage: String,
    pub node: String,
    /// One page, by volid.
    pub items: Vec<StorageContentItem>,
    /// Volumes over all pages.
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Bytes, over all pages.
    pub total_size: u64,
    /// Volumes and bytes per content type, over all pages.
    pub by_content: Vec<ContentCount>,
}

/// Volumes of one content type.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ContentCount {
    pub content: String,
    pub count: u64,
    pub size: u64,
}

/// Lists the volumes on one storage.
///
/// # Errors
/// When the storage is unknown, local but no node was given, or the node is offline.
pub async fn storage_content(
    ctx: &Context,
    args: &StorageContentArgs,
) -> Result<StorageContentReport, Error> {
    if let Some(c) = &args.content {
        require_content_type(c)?;
    }
    let page = crate::ops::paging::Page::new(args.page, args.page_size, CONTENT_PAGE, 200)?;
    let node = match &args.node {
        Some(n) => {
            crate::ops::require_cluster_node(ctx, n).await?;
            let pools = ctx.client.list_node_storage(n).await?;
            if !pools.iter().any(|p| p.storage == args.storage) {
                let mut known: Vec<&str> = pools.iter().map(|p| p.storage.as_str()).collect();
                known.sort_unstable();
                return Err(Error::NotFound {
                    what: format!("storage {} on node {n}", args.storage),
                    hint: format!(
                        "{n} has {}; storage_list shows every pool",
                        known.join(", ")
                    ),
                });
            }
            n.clone()
        }
        None => {
            let rows = ctx
                .client
                .get_cluster_resources(Some(ResourceType::Storage))
                .await?;
            let matching: Vec<&ClusterResource> = rows
                .iter()
                .filter(|r| r.storage.as_deref() == Some(args.storage.as_str()))
                .collect();
            if matching.is_empty() {
                return Err(Error::NotFound {
                    what: format!("storage {}", args.storage),
                    hint: "run storage_list to see the pools of this cluster".into(),
                });
            }
            let shared = matching.iter().any(|r| r.shared == Some(true));
            let online = matching
                .iter()
                .find(|r| r.status.as_deref() == Some("available"));
            match (shared, online) {
                (true, Some(r)) => r.node.clone().unwrap_or_default(),
                (true, None) => {
                    return Err(Error::Setup(format!(
                        "shared storage {} is not available on any online node",
                        args.storage
                    )));
                }
                (false, _) => {
                    let nodes: Vec<&str> =
                        matching.iter().filter_map(|r| r.node.as_deref()).collect();
                    return Err(Error::invalid(
                        "node",
                        format!(
                            "storage {} is local to each node ({}); say which node to read",
                            args.storage,
                            nodes.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    // The listing can be tens of thousands of volumes: they are read in place, counted, and
    // only the page shown is copied out.
    let (items, total, next_page, total_size, by_content) = ctx
        .client
        .with_storage_content(&node, &args.storage, args.content.as_deref(), |rows| {
            content_page(rows, args.vmid, page)
        })
        .await?;
    Ok(StorageContentReport {
        storage: args.storage.clone(),
        node,
        items,
        total,
        next_page,
        total_size,
        by_content,
    })
}

/// One page of a storage's volumes (of `vmid`, when given) by volid, with the count, bytes
/// and per-content counts over all pages: `(items, total, next_page, total_size, by_content)`.
fn content_page(
    rows: Vec<StorageContentRow<'_>>,
    vmid: Option<u32>,
    page: crate::ops::paging::Page,
) -> (
    Vec<StorageContentItem>,
    u64,
    Option<u32>,
    u64,
    Vec<ContentCount>,
) {
    let mut rows: Vec<StorageContentRow<'_>> = rows
        .into_iter()
        .filter(|r| vmid.is_none_or(|v| r.vmid == Some(v)))
        .collect();
    rows.sort_by(|a, b| a.volid.cmp(&b.volid));
    let size = |r: &StorageContentRow<'_>| r.size.unwrap_or(0);
    let total_size = rows.iter().map(size).sum();
    let mut counts: Vec<(&str, u64, u64)> = Vec::new();
    for r in &rows {
        let content = r.content.as_deref().unwrap_or_default();
        match counts.iter_mut().find(|c| c.0 == content) {
            Some(c) => {
                c.1 += 1;
                c.2 += size(r);
            }
            None => counts.push((content, 1, size(r))),
        }
    }
    counts.sort_by(|a, b| a.0.cmp(b.0));
    let by_content = counts
        .into_iter()
        .map(|(content, count, size)| ContentCount {
            content: content.to_owned(),
            count,
            size,
        })
        .collect();
    let (rows, total, next_page) = page.cut(rows);
    let items = rows
        .into_iter()
        .map(|r| StorageContentItem {
            size: size(&r),
            content: r.content.map(Cow::into_owned).unwrap_or_default(),
            volid: r.volid.into_owned(),
            format: r.format.map(Cow::into_owned),
            vmid: r.vmid,
            ctime: r.ctime.and_then(|t| u64::try_from(t).ok()),
            parent: r.parent.map(Cow::into_owned),
            notes: r.notes.map(Cow::into_owned),
            protected: r.protected,
        })
        .collect();
    (items, total, next_page, total_size, by_content)
}

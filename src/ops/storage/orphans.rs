//! Orphaned disks: guest images no configuration needs. `disk_orphans` finds them (volumes
//! whose owner VMID does not exist, `unusedN` disks, images referenced by no config or
//! snapshot of their owner) a page of owner VMIDs at a time; `disk_orphans_delete` deletes the
//! ones the user picked, each re-checked when the call starts.
//!
//! PVE has no bulk config read, so what a call reads is bounded by the page, not the cluster:
//! one `/cluster/resources`, one content listing per scanned storage (a local storage once per
//! node), then the config, snapshot list and snapshot configs of the page's existing owners
//! only (at most [`classify::OWNERS_PAGE`]), up to `limits.max_parallel` at a time. Owners
//! that do not exist cost no read. A deletion lists only the storages its volumes are on and
//! reads only their owners' configs. [`classify`] says what decides each volume.
//!
//! A guest whose config (or a snapshot's) cannot be read makes its volumes "referenced": a
//! disk is never called an orphan without its owner's configs having been read, nor a base
//! volume while a linked clone may still use it.

mod classify;
mod delete;

pub use delete::disk_orphans_delete;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::{Context, Error};
use crate::pve::{ResourceKind, ResourcePlace};

use classify::{Config, Listing, References, Verdict, Volume};

/// Why a volume is an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrphanReason {
    /// Its owner VMID is no guest of the cluster (left behind by a deletion or a failed move).
    OwnerMissing,
    /// Its owner lists it as `unusedN`: detached, still taking space.
    Unused,
    /// Its owner exists but neither its config nor any snapshot references it.
    Unreferenced,
}

/// One orphaned volume.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Orphan {
    pub volid: String,
    pub storage: String,
    /// The node it lives on; for a shared storage, the node it was listed from.
    pub node: String,
    pub shared: bool,
    pub vmid: Option<u32>,
    /// Bytes (the image's size).
    pub size: u64,
    pub format: Option<String>,
    pub reason: OrphanReason,
    /// The reason in words, e.g. "vm 1099 does not exist".
    pub detail: String,
    /// For an `unused` disk: the owner's node and the config key (`unused0`). Deleting it
    /// removes that entry, which makes PVE destroy the volume — no dangling `unusedN` is left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_entry: Option<(String, String)>,
}

/// `disk_orphans` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskOrphansArgs {
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub storage: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
}

/// `disk_orphans` output: one page of owner VMIDs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiskOrphansReport {
    /// The orphans of this page's owners, by owner VMID.
    pub orphans: Vec<Orphan>,
    /// Bytes this page's orphans take.
    pub total_bytes: u64,
    /// The lowest and highest owner VMID on this page (none on an empty page).
    pub vmid_from: Option<u32>,
    pub vmid_to: Option<u32>,
    /// Owner VMIDs on this page.
    pub owners: u64,
    /// Owner VMIDs with volumes on the scanned storages, over all pages.
    pub owners_total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Image storages listed: `storage (shared)` or `storage on <nodes>`.
    pub scanned: Vec<String>,
    pub warnings: Vec<String>,
}

/// `disk_orphans_delete` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskOrphansDeleteArgs {
    /// From `disk_orphans`.
    #[schemars(
        length(min = 1, max = 100),
        inner(
            length(max = 255),
            regex(pattern = r"^[A-Za-z][-_.A-Za-z0-9]*:[^\s:][^\s]*$")
        )
    )]
    pub volids: Vec<String>,
    #[serde(default)]
    pub confirm: bool,
}

/// One volume's fate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VolumeResult {
    pub volid: String,
    /// `would_delete`, `deleted`, `kept` or `failed`.
    pub outcome: String,
    pub size: u64,
    pub message: String,
}

/// `disk_orphans_delete` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiskOrphansDeleteReport {
    pub executed: bool,
    pub volumes: Vec<VolumeResult>,
    /// Bytes freed (or that would be).
    pub freed_bytes: u64,
    pub message: String,
}

/// Warnings an answer shows; the rest are counted.
const TOP_WARNINGS: usize = 8;

/// A guest `/cluster/resources` shows.
#[derive(Clone)]
struct Guest {
    vmid: u32,
    /// Its node (a row without one makes its configs unreadable).
    node: Option<Arc<str>>,
    lxc: bool,
}

/// The guests `/cluster/resources` shows.
struct Guests {
    existing: BTreeSet<u32>,
    home: HashMap<u32, Guest>,
}

impl Guests {
    /// The guests of `places` (node names shared).
    fn of(places: &[ResourcePlace<'_>]) -> Self {
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut existing = BTreeSet::new();
        let mut home = HashMap::new();
        for g in places.iter().filter(|p| p.is_guest()) {
            let Some(vmid) = g.vmid else { continue };
            existing.insert(vmid);
            let node = g
                .node
                .as_deref()
                .map(|n| Arc::clone(names.entry(n).or_insert_with(|| Arc::from(n))));
            let lxc = matches!(g.kind, ResourceKind::Lxc);
            home.insert(vmid, Guest { vmid, node, lxc });
        }
        Guests { existing, home }
    }

    /// These guests (those that exist).
    fn rows_of(&self, vmids: &BTreeSet<u32>) -> Vec<Guest> {
        vmids
            .iter()
            .filter_map(|v| self.home.get(v))
            .cloned()
            .collect()
    }

    /// Whether `vmid` is a VM (not a container).
    fn is_vm(&self, vmid: u32) -> bool {
        self.home.get(&vmid).is_some_and(|g| !g.lxc)
    }
}

/// An image storage to list: (node, storage, shared, plugin type).
type Target = (String, String, bool, String);

/// The available image storages, a shared one once, optionally of one node or one storage id.
fn image_storages(
    rows: &[ResourcePlace<'_>],
    node: Option<&str>,
    storage: impl Fn(&str) -> bool,
) -> Vec<Target> {
    let mut seen_shared = BTreeSet::new();
    let mut targets = Vec::new();
    for r in rows
        .iter()
        .filter(|r| matches!(r.kind, ResourceKind::Storage))
    {
        let (Some(n), Some(s)) = (r.node.as_deref(), r.storage.as_deref()) else {
            continue;
        };
        let images = r
            .content
            .as_deref()
            .unwrap_or("")
            .split(',')
            .any(|c| matches!(c.trim(), "images" | "rootdir"));
        let available = r.status.as_deref() == Some("available");
        let shared = r.shared == Some(true);
        if !images || !available || node.is_some_and(|want| want != n) || !storage(s) {
            continue;
        }
        if shared && !seen_shared.insert(s) {
            continue;
        }
        let plugin = r.plugintype.as_deref().unwrap_or_default();
        targets.push((n.into(), s.into(), shared, plugin.into()));
    }
    targets
}

/// Lists the image content of every target, up to `limits.max_parallel` at a time, keeping of
/// each volume what [`Volume`] holds; the second list says which storages could not be listed
/// (as `storage on node could not be listed: why`) so their volumes are not looked at.
async fn list_all(ctx: &Context, targets: Vec<Target>) -> (Vec<Listing>, Vec<(String, String)>) {
    let parallel = ctx.config.limits.max_parallel.max(1) as usize;
    let results: Vec<Result<Listing, (String, String, crate::pve::Error)>> =
        futures::stream::iter(targets)
            .map(|(node, storage, shared, plugin)| async move {
                let (n, s) = (node.clone(), storage.clone());
                ctx.client
                    .with_storage_content(&n, &s, Some("images"), |rows| {
                        Listing::of(node, storage, shared, plugin, &rows)
                    })
                    .await
                    .map_err(|e| (n, s, e))
            })
            .buffered(parallel)
            .collect()
            .await;
    let mut listings = Vec::new();
    let mut warnings = Vec::new();
    for result in results {
        match result {
            Ok(listing) => listings.push(listing),
            Err((node, storage, e)) => {
                let why = format!("{storage} on {node} could not be listed: {e}");
                warnings.push((storage, why));
            }
        }
    }
    (listings, warnings)
}

/// `scanned` lines: a shared storage once, a local one with its nodes (counted past three).
fn scanned(listings: &[Listing]) -> Vec<String> {
    let mut local: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut out = Vec::new();
    for l in listings {
        if l.shared {
            out.push(format!("{} (shared)", l.storage));
        } else {
            local.entry(&l.storage).or_default().push(&l.node);
        }
    }
    for (storage, nodes) in local {
        out.push(if nodes.len() > 3 {
            format!("{storage} on {} nodes", nodes.len())
        } else {
            format!("{storage} on {}", nodes.join(", "))
        });
    }
    out.sort();
    out
}

/// Every config and snapshot config of one guest.
async fn configs_of(ctx: &Context, g: &Guest) -> Result<Vec<Config>, Error> {
    let Some(node) = &g.node else {
        return Err(Error::refused(format!(
            "vm {} has no node in /cluster/resources",
            g.vmid
        )));
    };
    let node = crate::pve::path_segment(node);
    let kind = if g.lxc { "lxc" } else { "qemu" };
    let base = format!("/nodes/{node}/{kind}/{}", g.vmid);
    let mut out = vec![
        ctx.client
            .get::<Config>(&format!("{base}/config"), &[])
            .await?,
    ];
    let snaps: Vec<serde_json::Value> = ctx.client.get(&format!("{base}/snapshot"), &[]).await?;
    for s in snaps {
        let Some(name) = s
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|n| *n != "current")
        else {
            continue;
        };
        let path = format!("{base}/snapshot/{}/config", crate::pve::path_segment(name));
        out.push(ctx.client.get::<Config>(&path, &[]).await?);
    }
    Ok(out)
}

/// What the configs of `guests` reference, read up to `limits.max_parallel` guests at a time
/// (each guest's reads one after another: its snapshot list says which configs follow).
async fn references(ctx: &Context, guests: Vec<Guest>) -> References {
    let reads = guests.into_iter().map(|g| {
        let ctx = ctx.clone();
        async move { (g.vmid, configs_of(&ctx, &g).await) }
    });
    let results: Vec<(u32, Result<Vec<Config>, Error>)> = futures::stream::iter(reads)
        .buffer_unordered(ctx.config.limits.max_parallel.max(1) as usize)
        .collect()
        .await;
    let mut refs = References::default();
    for (vmid, r) in results {
        match r {
            Ok(configs) => configs.iter().for_each(|c| refs.add(vmid, c)),
            Err(_) => {
                refs.unreadable.insert(vmid);
            }
        }
    }
    refs
}

/// The orphan a verdict makes of a listed volume.
fn orphan(
    l: &Listing,
    item: &Volume,
    reason: OrphanReason,
    detail: String,
    unused: Option<(u32, String)>,
    guests: &Guests,
) -> Orphan {
    // Only a VM's unused entry is removed through its config (a container's goes through the
    // storage like any other volume).
    let config_entry = unused
        .filter(|(owner, _)| guests.is_vm(*owner))
        .and_then(|(owner, key)| Some((guests.home.get(&owner)?.node.as_deref()?.into(), key)));
    Orphan {
        volid: item.volid.clone(),
        storage: l.storage.clone(),
        node: l.node.clone(),
        shared: l.shared,
        vmid: item.vmid,
        size: item.size,
        format: item.format.clone(),
        reason,
        detail,
        config_entry,
    }
}

/// Why a base volume is not reported although nothing read references it.
fn base_unsure(l: &Listing, volid: &str) -> String {
    format!(
        "{volid} on {}: a base volume no config read references, but a {} storage's listing does not show linked clones; not reported, a clone may still use it",
        l.node,
        if l.plugin.is_empty() {
            "block"
        } else {
            &l.plugin
        }
    )
}

/// Scans one page of owners for orphans.
///
/// # Errors
/// A page 0, an unknown node or storage, PVE unreachable. A storage whose content cannot be
/// listed is a warning.
pub async fn disk_orphans(
    ctx: &Context,
    args: &DiskOrphansArgs,
) -> Result<DiskOrphansReport, Error> {
    let page = crate::ops::paging::Page::new(
        args.page,
        None,
        classify::OWNERS_PAGE as u32,
        classify::OWNERS_PAGE as u32,
    )?;
    let (guests, targets) = ctx
        .client
        .with_resource_places(|places| {
            let targets = image_storages(&places, args.node.as_deref(), |s| {
                args.storage.as_ref().is_none_or(|want| want == s)
            });
            (Guests::of(&places), targets)
        })
        .await?;
    if let Some(node) = &args.node {
        crate::ops::require_cluster_node(ctx, node).await?;
    }
    if let Some(s) = &args.storage
        && targets.is_empty()
    {
        return Err(Error::NotFound {
            what: format!("image storage {}", crate::ops::error::quote(s)),
            hint: "list storages with storage_list".into(),
        });
    }
    let (listings, failed) = list_all(ctx, targets).await;
    let mut warnings: Vec<String> = failed.into_iter().map(|(_, why)| why).collect();
    let owners = classify::owners(&listings, &guests.existing);
    let plan = classify::plan_page(&owners, page.page);
    let on_page: BTreeSet<u32> = plan.owners.iter().copied().collect();
    let refs = references(ctx, guests.rows_of(&on_page)).await;
    warnings.extend(refs.unreadable.iter().map(|v| {
        format!(
            "the config or a snapshot of vm {v} could not be read; its volumes are not reported"
        )
    }));
    let mut orphans = Vec::new();
    for l in &listings {
        let shows = classify::listing_shows_clones(&l.plugin);
        for item in l
            .items
            .iter()
            .filter(|i| i.vmid.is_some_and(|v| on_page.contains(&v)))
        {
            match classify::classify(item, &guests.existing, &refs, &l.bases, shows) {
                Some(Verdict::Orphan {
                    reason,
                    detail,
                    unused,
                }) => orphans.push(orphan(l, item, reason, detail, unused, &guests)),
                Some(Verdict::BaseUnsure) => warnings.push(base_unsure(l, &item.volid)),
                _ => {}
            }
        }
    }
    orphans.sort_by(|a, b| (a.vmid, &a.volid, &a.node).cmp(&(b.vmid, &b.volid, &b.node)));
    crate::ops::paging::cap_lines(
        &mut warnings,
        TOP_WARNINGS,
        "narrow the scan with node or storage to see them",
    );
    Ok(DiskOrphansReport {
        total_bytes: orphans.iter().map(|o| o.size).sum(),
        orphans,
        vmid_from: plan.owners.first().copied(),
        vmid_to: plan.owners.last().copied(),
        owners: plan.owners.len() as u64,
        owners_total: owners.len() as u64,
        next_page: plan.next,
        scanned: scanned(&listings),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pve::fake::FakePve;

    /// A guest whose `/cluster/resources` row names no node cannot have its configs read, so
    /// its volumes are never called orphans (they are reported as unreadable instead).
    #[tokio::test]
    async fn a_guest_without_a_node_keeps_its_volumes() -> Result<(), Error> {
        let fake = FakePve::new();
        fake.on(
            "GET",
            "/cluster/resources",
            json!([
                {"id": "qemu/2000", "type": "qemu", "vmid": 2000, "status": "unknown"},
                {"id": "storage/pve01/nfs-shared", "type": "storage", "node": "pve01",
                 "storage": "nfs-shared", "plugintype": "nfs", "content": "images,iso",
                 "shared": 1, "status": "available"},
            ]),
        );
        fake.on(
            "GET",
            "/nodes/pve01/storage/nfs-shared/content",
            json!([
                {"volid": "nfs-shared:2000/vm-2000-disk-0.qcow2", "vmid": 2000,
                 "content": "images", "format": "qcow2", "size": 1024},
                {"volid": "nfs-shared:2001/vm-2001-disk-0.qcow2", "vmid": 2001,
                 "content": "images", "format": "qcow2", "size": 2048},
            ]),
        );
        let ctx = Context::with_client(crate::config::sim_config(8006, [0; 32]), fake.client());
        let report = disk_orphans(&ctx, &DiskOrphansArgs::default()).await?;
        let found: Vec<(&str, OrphanReason)> = report
            .orphans
            .iter()
            .map(|o| (o.volid.as_str(), o.reason))
            .collect();
        assert_eq!(
            found,
            [(
                "nfs-shared:2001/vm-2001-disk-0.qcow2",
                OrphanReason::OwnerMissing
            )],
            "{report:?}"
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("vm 2000 could not be read")),
            "{:?}",
            report.warnings
        );
        assert_eq!(report.owners, 2);
        Ok(())
    }
}

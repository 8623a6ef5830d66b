//! Orphaned disks: guest images no configuration needs. `disk_orphans` finds them (volumes
//! whose owner VMID does not exist, `unusedN` disks, images referenced by no config or
//! snapshot); `disk_orphans_delete` deletes the ones the user picked, each re-checked against
//! a fresh scan made when the call starts (one scan per call, not one per volume: a scan reads
//! every guest's config).
//!
//! A guest whose config (or a snapshot's) cannot be read makes its volumes "referenced": the
//! scan never calls a disk an orphan without having read everything that could use it.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::{Context, Error, Run, is_guest, is_storage};
use crate::pve::{ClusterResource, ResourceKind};

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
}

/// `disk_orphans` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiskOrphansReport {
    pub orphans: Vec<Orphan>,
    /// Bytes all of them take.
    pub total_bytes: u64,
    /// `node/storage` pairs scanned (a shared storage once).
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

/// What the configs say: volumes in use, and volumes held only as `unusedN`.
#[derive(Default)]
struct References {
    used: BTreeSet<String>,
    unused: BTreeMap<String, (u32, String)>,
    /// Guests whose configs could not all be read: their volumes are never orphans.
    unreadable: BTreeSet<u32>,
}

/// The volume ids a config value references: the volume itself, and for a linked clone also
/// its base (`base-100-disk-0/vm-1011-disk-0` → both).
fn volumes_of(value: &str) -> Vec<String> {
    let volume = value.split(',').next().unwrap_or("").trim();
    let Some((storage, rest)) = volume.split_once(':') else {
        return vec![];
    };
    if rest.is_empty() || rest == "cloudinit" {
        return vec![];
    }
    let parts: Vec<&str> = rest.split('/').collect();
    match parts
        .iter()
        .position(|p| p.starts_with("base-"))
        .filter(|i| i + 1 < parts.len())
    {
        // PVE lists a linked clone's image under its full name (`100/base-100-disk-0.qcow2/
        // 1011/vm-1011-disk-0.qcow2` on a directory storage) or its own (`vm-1011-disk-0` on
        // LVM-thin): all three names are in use.
        Some(i) => vec![
            volume.to_string(),
            format!("{storage}:{}", parts[..=i].join("/")),
            format!("{storage}:{}", parts[i + 1..].join("/")),
        ],
        None => vec![volume.to_string()],
    }
}

/// Config keys that hold a guest's volumes (`unusedN` separately).
fn is_volume_key(key: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "ide", "sata", "scsi", "virtio", "efidisk", "tpmstate", "mp", "rootfs",
    ];
    key == "vmstate"
        || PREFIXES.iter().any(|p| {
            key.strip_prefix(p).is_some_and(|n| {
                n.bytes().all(|b| b.is_ascii_digit()) && (*p == "rootfs") == n.is_empty()
            })
        })
}

impl References {
    fn add(&mut self, vmid: u32, config: &BTreeMap<String, serde_json::Value>) {
        for (key, value) in config {
            let Some(text) = value.as_str() else { continue };
            if key.starts_with("unused") {
                for v in volumes_of(text) {
                    self.unused.insert(v, (vmid, key.clone()));
                }
            } else if is_volume_key(key) {
                self.used.extend(volumes_of(text));
            }
        }
    }
}

type Config = BTreeMap<String, serde_json::Value>;

/// Every config and snapshot config of one guest.
async fn configs_of(ctx: &Context, g: &ClusterResource) -> Result<Vec<Config>, Error> {
    let vmid = g.vmid.unwrap_or(0);
    let node = crate::pve::path_segment(g.node.as_deref().unwrap_or(""));
    let kind = if matches!(g.kind, ResourceKind::Lxc) {
        "lxc"
    } else {
        "qemu"
    };
    let base = format!("/nodes/{node}/{kind}/{vmid}");
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

async fn references(ctx: &Context, guests: &[ClusterResource]) -> References {
    let reads = guests.iter().cloned().map(|g| {
        let ctx = ctx.clone();
        async move { (g.vmid.unwrap_or(0), configs_of(&ctx, &g).await) }
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

/// Scans for orphans.
///
/// # Errors
/// An unknown node or storage, PVE unreachable. A storage whose content cannot be listed is
/// a warning.
pub async fn disk_orphans(
    ctx: &Context,
    args: &DiskOrphansArgs,
) -> Result<DiskOrphansReport, Error> {
    let rows = ctx.client.get_cluster_resources(None).await?;
    if let Some(node) = &args.node {
        crate::ops::require_cluster_node(ctx, node).await?;
    }
    let guests: Vec<ClusterResource> = rows.iter().filter(|r| is_guest(r)).cloned().collect();
    let existing: BTreeSet<u32> = guests.iter().filter_map(|g| g.vmid).collect();
    let qemu: BTreeSet<u32> = guests
        .iter()
        .filter(|g| matches!(g.kind, ResourceKind::Qemu))
        .filter_map(|g| g.vmid)
        .collect();
    let home: BTreeMap<u32, String> = guests
        .iter()
        .filter_map(|g| Some((g.vmid?, g.node.clone()?)))
        .collect();
    let mut seen_shared = BTreeSet::new();
    let mut targets = Vec::new();
    for r in rows.iter().filter(|r| is_storage(r)) {
        let (Some(node), Some(storage)) = (r.node.clone(), r.storage.clone()) else {
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
        if !images || !available {
            continue;
        }
        if args.node.as_ref().is_some_and(|n| *n != node)
            || args.storage.as_ref().is_some_and(|s| *s != storage)
            || (shared && !seen_shared.insert(storage.clone()))
        {
            continue;
        }
        targets.push((node, storage, shared));
    }
    if let Some(s) = &args.storage
        && targets.is_empty()
    {
        return Err(Error::NotFound {
            what: format!("image storage {}", crate::ops::error::quote(s)),
            hint: "list storages with storage_list".into(),
        });
    }
    let refs = references(ctx, &guests).await;
    let mut report = DiskOrphansReport {
        orphans: vec![],
        total_bytes: 0,
        scanned: vec![],
        warnings: refs
            .unreadable
            .iter()
            .map(|v| format!("the config or a snapshot of vm {v} could not be read; its volumes are not reported"))
            .collect(),
    };
    for (node, storage, shared) in targets {
        report.scanned.push(format!("{node}/{storage}"));
        let items = match ctx
            .client
            .list_storage_content(&node, &storage, Some("images"))
            .await
        {
            Ok(items) => items,
            Err(e) => {
                report
                    .warnings
                    .push(format!("{storage} on {node} could not be listed: {e}"));
                continue;
            }
        };
        for item in items {
            let vmid = item.vmid;
            if vmid.is_some_and(|v| refs.unreadable.contains(&v)) || refs.used.contains(&item.volid)
            {
                continue;
            }
            // Only a VM's unused entry is removed through its config (a container's goes
            // through the storage like any other volume).
            let entry = refs
                .unused
                .get(&item.volid)
                .filter(|(owner, _)| qemu.contains(owner))
                .and_then(|(owner, key)| Some((home.get(owner)?.clone(), key.clone())));
            let (reason, detail) = match (vmid, refs.unused.get(&item.volid)) {
                (Some(v), _) if !existing.contains(&v) => {
                    (OrphanReason::OwnerMissing, format!("vm {v} does not exist"))
                }
                (_, Some((owner, key))) => (
                    OrphanReason::Unused,
                    format!("vm {owner} lists it as {key} (detached)"),
                ),
                (Some(v), None) => (
                    OrphanReason::Unreferenced,
                    format!("vm {v} exists but no config or snapshot of it references this volume"),
                ),
                (None, None) => continue,
            };
            report.total_bytes += item.size.unwrap_or(0);
            report.orphans.push(Orphan {
                volid: item.volid.clone(),
                storage: storage.clone(),
                node: node.clone(),
                shared,
                vmid,
                size: item.size.unwrap_or(0),
                format: item.format.clone(),
                reason,
                detail,
                config_entry: entry.filter(|_| reason == OrphanReason::Unused),
            });
        }
    }
    report
        .orphans
        .sort_by(|a, b| (&a.node, &a.volid).cmp(&(&b.node, &b.volid)));
    Ok(report)
}

/// Previews or deletes orphaned volumes; each is re-checked against a fresh scan made when the
/// call starts, and kept (with the reason) when something references it by then.
///
/// # Errors
/// PVE unreachable. Per-volume failures and kept volumes are results.
pub async fn disk_orphans_delete(
    ctx: &Context,
    run: &Run,
    args: &DiskOrphansDeleteArgs,
) -> Result<DiskOrphansDeleteReport, Error> {
    let mut volids = args.volids.clone();
    volids.sort();
    volids.dedup();
    let mut report = DiskOrphansDeleteReport {
        executed: args.confirm,
        volumes: vec![],
        freed_bytes: 0,
        message: String::new(),
    };
    let scan = disk_orphans(ctx, &DiskOrphansArgs::default()).await?;
    for volid in volids {
        let Some(o) = scan.orphans.iter().find(|o| o.volid == volid) else {
            report.volumes.push(VolumeResult {
                volid: volid.clone(),
                outcome: "kept".into(),
                size: 0,
                message: format!(
                    "{} is not an orphan now (it is referenced, or does not exist); it is not deleted",
                    crate::ops::error::quote(&volid)
                ),
            });
            continue;
        };
        if !args.confirm {
            report.freed_bytes += o.size;
            report.volumes.push(VolumeResult {
                volid: o.volid.clone(),
                outcome: "would_delete".into(),
                size: o.size,
                message: format!("would delete {} on {} ({})", o.volid, o.node, o.detail),
            });
            continue;
        }
        run.note(format!("deleting {} on {}", o.volid, o.node));
        let result = match (&o.config_entry, o.vmid) {
            // An `unusedN` entry: removing it from the config destroys the volume.
            (Some((owner_node, key)), Some(owner)) => ctx
                .client
                .set_qemu_config_sync(owner_node, owner, &[("delete".into(), key.clone())], None)
                .await
                .map_err(Error::from),
            _ => match ctx
                .client
                .delete_volume(&o.node, &o.storage, &o.volid)
                .await
            {
                Ok(Some(upid)) => run
                    .wait(ctx, &upid, &format!("delete {}", o.volid))
                    .await
                    .map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            },
        };
        match result {
            Ok(()) => {
                report.freed_bytes += o.size;
                report.volumes.push(VolumeResult {
                    volid: o.volid.clone(),
                    outcome: "deleted".into(),
                    size: o.size,
                    message: format!("deleted {} on {} ({})", o.volid, o.node, o.detail),
                });
            }
            Err(e) => report.volumes.push(VolumeResult {
                volid: o.volid.clone(),
                outcome: "failed".into(),
                size: o.size,
                message: format!("{} on {}: {e}", o.volid, o.node),
            }),
        }
    }
    let count = |s: &str| report.volumes.iter().filter(|v| v.outcome == s).count();
    report.message = if args.confirm {
        format!(
            "{} deleted ({:.1} GiB freed), {} kept, {} failed",
            count("deleted"),
            report.freed_bytes as f64 / crate::ops::GIB as f64,
            count("kept"),
            count("failed")
        )
    } else {
        format!(
            "preview, nothing deleted: {} volume(s) would be deleted, freeing {:.1} GiB; {} kept. Call again with confirm: true after the user agreed",
            count("would_delete"),
            report.freed_bytes as f64 / crate::ops::GIB as f64,
            count("kept")
        )
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_name_their_volumes_and_linked_clone_bases() {
        assert_eq!(
            volumes_of("local-lvm:vm-101-disk-0,iothread=1,size=32G"),
            ["local-lvm:vm-101-disk-0"]
        );
        assert_eq!(
            volumes_of("local-lvm:base-100-disk-0/vm-1011-disk-0,size=8G"),
            [
                "local-lvm:base-100-disk-0/vm-1011-disk-0",
                "local-lvm:base-100-disk-0",
                "local-lvm:vm-1011-disk-0"
            ]
        );
        assert_eq!(
            volumes_of("nfs-shared:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2,size=60G"),
            [
                "nfs-shared:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2",
                "nfs-shared:100/base-100-disk-0.qcow2",
                "nfs-shared:1011/vm-1011-disk-0.qcow2"
            ]
        );
        assert!(volumes_of("none,media=cdrom").is_empty());
        assert!(is_volume_key("scsi0") && is_volume_key("rootfs") && is_volume_key("vmstate"));
        assert!(!is_volume_key("unused0") && !is_volume_key("rootfs1") && !is_volume_key("net0"));
    }
}

//! `disk_orphans_delete`: each volume re-checked when the call starts (only the storages the
//! volumes are on listed, every guest's config read), then previewed or deleted.
//!
//! `disk_orphans` reads a page of owners at a time, so a volume attached to a guest that is not
//! its owner (a hand-edited config) can look unreferenced there; the deletion, the one step
//! that destroys data, reads every config and snapshot before it calls anything an orphan.

use std::collections::{BTreeMap, BTreeSet};

use super::classify::Volume;
use super::classify::{self, Listing, Verdict};
use super::{
    DiskOrphansDeleteArgs, DiskOrphansDeleteReport, Guests, Orphan, VolumeResult, image_storages,
    list_all, orphan, references,
};
use crate::ops::{Context, Error, Run};

/// What a deletion finds for one volume when its call starts.
enum Recheck {
    Orphan(Orphan),
    /// Kept, and why.
    Kept(String),
}

/// Re-checks `volids` (sorted, distinct): lists only the storages they are on, reads every
/// guest's configs, and decides each as [`super::disk_orphans`] would.
async fn recheck(ctx: &Context, volids: &[String]) -> Result<Vec<(String, Recheck)>, Error> {
    let storages: BTreeSet<&str> = volids
        .iter()
        .filter_map(|v| v.split_once(':').map(|(s, _)| s))
        .collect();
    let (guests, targets) = ctx
        .client
        .with_resource_places(|places| {
            let targets = image_storages(&places, None, |s| storages.contains(s));
            (Guests::of(&places), targets)
        })
        .await?;
    let (listings, failed) = list_all(ctx, targets).await;
    // each volume where it is listed (a local volume id on two nodes: the first node's)
    let mut found: BTreeMap<&str, (&Listing, &Volume)> = BTreeMap::new();
    let mut by_node: Vec<&Listing> = listings.iter().collect();
    by_node.sort_by(|a, b| (&a.node, &a.storage).cmp(&(&b.node, &b.storage)));
    for l in by_node {
        for item in &l.items {
            if let Ok(i) = volids.binary_search(&item.volid) {
                found.entry(volids[i].as_str()).or_insert((l, item));
            }
        }
    }
    // nothing listed, nothing to delete: no config needs reading
    let refs = if found.is_empty() {
        classify::References::default()
    } else {
        references(ctx, guests.rows_of(&guests.existing)).await
    };
    let not_now = |volid: &str, why: &str| {
        format!(
            "{} is not an orphan now ({why}); it is not deleted",
            crate::ops::error::quote(volid)
        )
    };
    let mut out = Vec::new();
    for volid in volids {
        let Some((l, item)) = found.get(volid.as_str()) else {
            let storage = volid.split_once(':').map_or("", |(s, _)| s);
            let why = match failed.iter().find(|(s, _)| s == storage) {
                Some((_, w)) => format!("it was not found: {w}"),
                None => "it is referenced, or does not exist".into(),
            };
            out.push((volid.clone(), Recheck::Kept(not_now(volid, &why))));
            continue;
        };
        let shows = classify::listing_shows_clones(&l.plugin);
        let r = match classify::classify(item, &guests.existing, &refs, &l.bases, shows) {
            Some(Verdict::Orphan {
                reason,
                detail,
                unused,
            }) => Recheck::Orphan(orphan(l, item, reason, detail, unused, &guests)),
            Some(Verdict::Unreadable(v)) => Recheck::Kept(not_now(
                volid,
                &format!("the config or a snapshot of vm {v} could not be read"),
            )),
            Some(Verdict::BaseUnsure) => Recheck::Kept(not_now(
                volid,
                "a base volume whose linked clones this storage's listing may not show",
            )),
            Some(Verdict::BaseInUse) => {
                Recheck::Kept(not_now(volid, "a linked clone is based on it"))
            }
            Some(Verdict::Referenced { by, key }) => {
                Recheck::Kept(not_now(volid, &format!("vm {by} uses it as {key}")))
            }
            None => Recheck::Kept(not_now(volid, "no guest owns it")),
        };
        out.push((volid.clone(), r));
    }
    Ok(out)
}

/// An orphan's fate in the report.
fn result_of(o: &Orphan, outcome: &str, message: String) -> VolumeResult {
    VolumeResult {
        volid: o.volid.clone(),
        outcome: outcome.into(),
        size: o.size,
        message,
    }
}

/// Previews or deletes orphaned volumes; each is re-checked when the call starts (its storage
/// listed, every guest's configs read), and kept (with the reason) when something references
/// it by then.
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
    for (volid, check) in recheck(ctx, &volids).await? {
        let o = match check {
            Recheck::Orphan(o) => o,
            Recheck::Kept(message) => {
                report.volumes.push(VolumeResult {
                    volid,
                    outcome: "kept".into(),
                    size: 0,
                    message,
                });
                continue;
            }
        };
        if !args.confirm {
            report.freed_bytes += o.size;
            report.volumes.push(result_of(
                &o,
                "would_delete",
                format!("would delete {} on {} ({})", o.volid, o.node, o.detail),
            ));
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
                report.volumes.push(result_of(
                    &o,
                    "deleted",
                    format!("deleted {} on {} ({})", o.volid, o.node, o.detail),
                ));
            }
            Err(e) => report.volumes.push(result_of(
                &o,
                "failed",
                format!("{} on {}: {e}", o.volid, o.node),
            )),
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

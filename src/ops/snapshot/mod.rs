//! Snapshots of a VM or a container: the tree, create, roll back (destructive: the state since the snapshot
//! is lost), delete (destructive). Names are checked as PVE checks them before anything is
//! sent; locks (`snapshot`, `rollback`, `backup`) are waited out like every other write.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::guard::{guest_type, node_of, resolve_guest};
use crate::ops::{Context, Error, Run};
use crate::pve::{GuestType, SnapshotItem};

/// PVE's `pve-configid` (a snapshot name): a letter, then letters, digits, `_` or `-`; at
/// most 40 characters; `current` and `pending` are reserved.
pub const SCHEMA_SNAPNAME: &str = r"^[A-Za-z][A-Za-z0-9_-]{1,39}$";

/// `snapshot_list` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotListArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    pub name: String,
    /// The snapshot it was taken after; none for the first.
    pub parent: Option<String>,
    /// Unix time it was taken.
    pub time: Option<i64>,
    pub description: String,
    /// It includes the RAM: rolling back resumes the VM where it was.
    pub with_ram: bool,
    /// The VM's present state derives from this one (the parent of `current`).
    pub current: bool,
}

/// `snapshot_list` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotListReport {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// Oldest first (parents before children).
    pub snapshots: Vec<Snapshot>,
    /// The snapshot the present state derives from.
    pub current_parent: Option<String>,
}

/// `snapshot_create` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreateArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Not `current`, `pending` or one in use.
    #[schemars(length(max = 40), regex(pattern = SCHEMA_SNAPNAME))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Include a running VM's RAM (a rollback resumes it).
    #[serde(default)]
    pub vmstate: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// `snapshot_create` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotCreateReport {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    pub with_ram: bool,
    pub upid: String,
    pub exitstatus: String,
    pub message: String,
}

/// `snapshot_rollback` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRollbackArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[schemars(length(max = 40), regex(pattern = SCHEMA_SNAPNAME))]
    pub name: String,
    /// Start it afterwards (a RAM snapshot resumes anyway).
    #[serde(default)]
    pub start: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// `snapshot_delete` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDeleteArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[schemars(length(max = 40), regex(pattern = SCHEMA_SNAPNAME))]
    pub name: String,
    /// Drop it from the config even if a disk snapshot cannot be removed; only on request.
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// `snapshot_rollback` and `snapshot_delete` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotChangeReport {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    /// False for a preview.
    pub executed: bool,
    /// What is (or would be) lost or removed.
    pub effects: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exitstatus: Option<String>,
    /// The VM's state afterwards (read back), when executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_after: Option<String>,
    pub message: String,
}

/// Checks a snapshot name as PVE does, before anything is sent.
///
/// # Errors
/// PVE's own reason, naming the name (bounded).
pub fn check_name(name: &str) -> Result<(), Error> {
    let valid = name.len() >= 2
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(Error::invalid(
            "name",
            format!(
                "{} is not a snapshot name PVE accepts: a letter, then letters, digits, _ or - (2-40 characters)",
                crate::ops::error::quote(name)
            ),
        ));
    }
    if name.eq_ignore_ascii_case("current") || name.eq_ignore_ascii_case("pending") {
        return Err(Error::invalid(
            "name",
            "`current` and `pending` are reserved by PVE (the VM's present state and its pending changes); pick another name",
        ));
    }
    Ok(())
}

/// The tree, oldest first, from PVE's list.
fn tree(items: &[SnapshotItem]) -> (Vec<Snapshot>, Option<String>) {
    let current_parent = items
        .iter()
        .find(|s| s.name == "current")
        .and_then(|s| s.parent.clone());
    let mut snaps: Vec<Snapshot> = items
        .iter()
        .filter(|s| s.name != "current")
        .map(|s| Snapshot {
            name: s.name.clone(),
            parent: s.parent.clone(),
            time: s.snaptime,
            description: s
                .description
                .clone()
                .unwrap_or_default()
                .trim_end()
                .to_string(),
            with_ram: s.vmstate.unwrap_or(false),
            current: current_parent.as_deref() == Some(s.name.as_str()),
        })
        .collect();
    snaps.sort_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name)));
    (snaps, current_parent)
}

/// Lists a VM's snapshots.
///
/// # Errors
/// An unknown VM, PVE unreachable.
pub async fn snapshot_list(
    ctx: &Context,
    args: &SnapshotListArgs,
) -> Result<SnapshotListReport, Error> {
    let row = resolve_guest(ctx, args.vmid, true).await?;
    let node = node_of(&row);
    let (items, _) = ctx
        .client
        .list_snapshots(guest_type(&row), &node, args.vmid)
        .await?;
    let (snapshots, current_parent) = tree(&items);
    Ok(SnapshotListReport {
        vmid: args.vmid,
        name: row.name.clone().unwrap_or_default(),
        node,
        snapshots,
        current_parent,
    })
}

/// Takes a snapshot and waits for it.
///
/// # Errors
/// A name PVE refuses or already used (before anything is sent), a lock past the deadline, the
/// task's failure.
pub async fn snapshot_create(
    ctx: &Context,
    run: &Run,
    args: &SnapshotCreateArgs,
) -> Result<SnapshotCreateReport, Error> {
    check_name(&args.name)?;
    let row = resolve_guest(ctx, args.vmid, args.allow_outside_ranges).await?;
    let node = node_of(&row);
    let t = guest_type(&row);
    let vm = t.word();
    if row.is_template() {
        return Err(Error::refused(format!(
            "{vm} {} is a template; snapshot the guests cloned from it instead",
            args.vmid
        )));
    }
    if args.vmstate && t == GuestType::Lxc {
        return Err(Error::invalid(
            "vmstate",
            format!(
                "container {} has no RAM state to save (PVE snapshots a container's volumes only); call again without vmstate",
                args.vmid
            ),
        ));
    }
    let (items, _) = ctx.client.list_snapshots(t, &node, args.vmid).await?;
    if items.iter().any(|s| s.name == args.name) {
        return Err(Error::invalid(
            "name",
            format!(
                "{vm} {} already has a snapshot named {}; pick another name or delete the old one",
                args.vmid, args.name
            ),
        ));
    }
    let running = row.status.as_deref() == Some("running");
    let with_ram = args.vmstate && running;
    let object = format!("{vm} {} on {node}", args.vmid);
    let what = format!("snapshot {} of {object}", args.name);
    let done = run
        .task_locked(ctx, &object, &what, || async {
            Ok(Some(
                ctx.client
                    .create_snapshot(
                        t,
                        &node,
                        args.vmid,
                        &args.name,
                        args.description.as_deref(),
                        with_ram,
                    )
                    .await?,
            ))
        })
        .await?;
    let Some((upid, outcome)) = done else {
        return Err(Error::Setup(format!("{what}: PVE answered without a task")));
    };
    let mut message = format!("{what} taken ({})", outcome.exitstatus);
    if args.vmstate && !running {
        message += "; the VM is stopped, so there was no RAM to include";
    }
    Ok(SnapshotCreateReport {
        vmid: args.vmid,
        node,
        name: args.name.clone(),
        with_ram,
        upid: upid.to_string(),
        exitstatus: outcome.exitstatus,
        message,
    })
}

/// The VM, its snapshots, and the one named `name`.
async fn find(
    ctx: &Context,
    vmid: u32,
    name: &str,
    allow_outside_ranges: bool,
) -> Result<(crate::pve::ClusterResource, String, Vec<Snapshot>, Snapshot), Error> {
    check_name(name)?;
    let row = resolve_guest(ctx, vmid, allow_outside_ranges).await?;
    let node = node_of(&row);
    let (items, _) = ctx
        .client
        .list_snapshots(guest_type(&row), &node, vmid)
        .await?;
    let (snaps, _) = tree(&items);
    let Some(snap) = snaps.iter().find(|s| s.name == name).cloned() else {
        let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::NotFound {
            what: format!("snapshot {name} of {} {vmid}", guest_type(&row).word()),
            hint: if names.is_empty() {
                format!("the {} has no snapshots", guest_type(&row).noun())
            } else {
                format!("its snapshots are {}", names.join(", "))
            },
        });
    };
    Ok((row, node, snaps, snap))
}

/// Previews or rolls back to a snapshot.
///
/// # Errors
/// An unknown VM or snapshot, a lock past the deadline, the task's failure.
pub async fn snapshot_rollback(
    ctx: &Context,
    run: &Run,
    args: &SnapshotRollbackArgs,
) -> Result<SnapshotChangeReport, Error> {
    let (row, node, snaps, snap) =
        find(ctx, args.vmid, &args.name, args.allow_outside_ranges).await?;
    let running = row.status.as_deref() == Some("running");
    let t = guest_type(&row);
    let vm = t.word();
    let mut effects = vec![format!(
        "every change to the {}'s disks and configuration since snapshot {} ({}) is lost",
        snap.name,
        snap.time
            .map(|t| format!("taken at unix time {t}"))
            .unwrap_or_else(|| "time unknown".into()),
        t.noun()
    )];
    if snap.with_ram {
        effects.push("the VM resumes from the RAM saved in the snapshot".into());
    } else if running {
        effects.push(format!(
            "the {} is running and is stopped hard first (the snapshot has no RAM){}",
            t.noun(),
            if args.start {
                "; it is started again afterwards"
            } else {
                "; it stays stopped unless start: true"
            }
        ));
    }
    let newer: Vec<&str> = snaps
        .iter()
        .filter(|s| s.time > snap.time && s.name != snap.name)
        .map(|s| s.name.as_str())
        .collect();
    if !newer.is_empty() {
        effects.push(format!(
            "newer snapshots stay in the tree: {} (some storages, e.g. ZFS, refuse to roll back past them)",
            newer.join(", ")
        ));
    }
    let mut report = SnapshotChangeReport {
        vmid: args.vmid,
        node: node.clone(),
        name: args.name.clone(),
        executed: false,
        effects,
        upid: None,
        exitstatus: None,
        status_after: None,
        message: String::new(),
    };
    if !args.confirm {
        report.message = format!(
            "preview, nothing changed: rolling {vm} {} back to {} would do what `effects` lists; call again with confirm: true after the user agreed",
            args.vmid, args.name
        );
        return Ok(report);
    }
    let object = format!("{vm} {} on {node}", args.vmid);
    let what = format!("rollback of {object} to {}", args.name);
    let done = run
        .task_locked(ctx, &object, &what, || async {
            Ok(Some(
                ctx.client
                    .rollback_snapshot(t, &node, args.vmid, &args.name, args.start)
                    .await?,
            ))
        })
        .await?;
    finish(ctx, t, report, done, &what).await
}

/// Previews or deletes a snapshot.
///
/// # Errors
/// An unknown VM or snapshot, a lock past the deadline, the task's failure.
pub async fn snapshot_delete(
    ctx: &Context,
    run: &Run,
    args: &SnapshotDeleteArgs,
) -> Result<SnapshotChangeReport, Error> {
    let (row, node, snaps, snap) =
        find(ctx, args.vmid, &args.name, args.allow_outside_ranges).await?;
    let t = guest_type(&row);
    let vm = t.word();
    let mut effects = vec![format!(
        "snapshot {} is removed: its disk snapshots{} are deleted and the {} can no longer return to it",
        snap.name,
        if snap.with_ram {
            " and its saved RAM"
        } else {
            ""
        },
        t.noun()
    )];
    let children: Vec<&str> = snaps
        .iter()
        .filter(|s| s.parent.as_deref() == Some(snap.name.as_str()))
        .map(|s| s.name.as_str())
        .collect();
    if !children.is_empty() {
        effects.push(format!(
            "its children ({}) are re-parented to {}",
            children.join(", "),
            snap.parent.as_deref().unwrap_or("the root")
        ));
    }
    if args.force {
        effects.push(
            "force: it is removed from the config even if deleting a disk snapshot fails (that disk snapshot may be left behind)"
                .into(),
        );
    }
    let report = SnapshotChangeReport {
        vmid: args.vmid,
        node: node.clone(),
        name: args.name.clone(),
        executed: false,
        effects,
        upid: None,
        exitstatus: None,
        status_after: None,
        message: String::new(),
    };
    if !args.confirm {
        return Ok(SnapshotChangeReport {
            message: format!(
                "preview, nothing changed: deleting snapshot {} of {vm} {} would do what `effects` lists; call again with confirm: true after the user agreed",
                args.name, args.vmid
            ),
            ..report
        });
    }
    let object = format!("{vm} {} on {node}", args.vmid);
    let what = format!("deletion of snapshot {} of {object}", args.name);
    let done = run
        .task_locked(ctx, &object, &what, || async {
            Ok(Some(
                ctx.client
                    .delete_snapshot(t, &node, args.vmid, &args.name, args.force)
                    .await?,
            ))
        })
        .await?;
    finish(ctx, t, report, done, &what).await
}

async fn finish(
    ctx: &Context,
    t: GuestType,
    mut report: SnapshotChangeReport,
    done: Option<(crate::pve::Upid, crate::pve::TaskOutcome)>,
    what: &str,
) -> Result<SnapshotChangeReport, Error> {
    let Some((upid, outcome)) = done else {
        return Err(Error::Setup(format!("{what}: PVE answered without a task")));
    };
    report.executed = true;
    report.upid = Some(upid.to_string());
    report.status_after = ctx
        .client
        .get_guest_status(t, &report.node, report.vmid)
        .await
        .ok()
        .map(|s| s.status);
    report.message = format!(
        "{what} finished: {}{}",
        outcome.exitstatus,
        report
            .status_after
            .as_deref()
            .map(|s| format!("; the VM is {s}"))
            .unwrap_or_default()
    );
    report.exitstatus = Some(outcome.exitstatus);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_pve_checks_them() {
        for ok in ["pre-upgrade", "a1", "Before_2026-12-02"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "1abc",
            "-x",
            "with space",
            "x;y",
            "current",
            &"a".repeat(41),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tree_marks_the_parent_of_current() {
        let item = |name: &str, parent: Option<&str>, t: Option<i64>| SnapshotItem {
            name: name.into(),
            parent: parent.map(str::to_owned),
            snaptime: t,
            ..SnapshotItem::default()
        };
        let (snaps, cur) = tree(&[
            item("current", Some("b"), None),
            item("b", Some("a"), Some(20)),
            item("a", None, Some(10)),
        ]);
        assert_eq!(cur.as_deref(), Some("b"));
        assert_eq!(
            snaps
                .iter()
                .map(|s| (s.name.as_str(), s.current))
                .collect::<Vec<_>>(),
            [("a", false), ("b", true)]
        );
    }
}

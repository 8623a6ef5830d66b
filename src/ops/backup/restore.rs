//! `backup_restore`: an archive back into a VM — by default a new VM with the lowest free id
//! of `vmid_ranges.vms` and new MACs; over an existing VM only with `force`, the preview naming
//! what is overwritten. Always previewed until `confirm: true`. A container archive
//! (`vzdump-lxc-*`) restores through `POST /nodes/{node}/lxc` (`ostemplate` = the archive,
//! `restore=1`) onto a storage with `rootdir` content; a container it overwrites must be
//! stopped.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::{Context, Error, Run, is_storage};
use crate::pve::{ClusterResource, GuestType};

/// `backup_restore` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRestoreArgs {
    /// Volume id from `backup_list`.
    #[schemars(
        length(max = 255),
        regex(pattern = r"^[A-Za-z][-_.A-Za-z0-9]*:backup/[^\s/]+$")
    )]
    pub archive: String,
    /// Default: a new VM, lowest free id in `vmid_ranges.vms`.
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Overwrite an existing `vmid` (disks and config replaced).
    #[serde(default)]
    pub force: bool,
    /// Default: an existing VM's node, else the archive's (any online node for shared storage).
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    /// Storage for the disks; default the archive's (a container's: `defaults.storage`).
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Keep the archive's MACs (else new ones, no clash with the original).
    #[serde(default)]
    pub keep_macs: bool,
    #[serde(default)]
    pub start: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// `backup_restore` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupRestoreReport {
    pub archive: String,
    /// `qemu` or `lxc`, from the archive's name.
    pub guest_type: String,
    /// The guest the archive was taken of.
    pub source_vmid: Option<u32>,
    pub vmid: u32,
    pub node: String,
    pub storage: Option<String>,
    pub new_macs: bool,
    /// The existing VM that is (or would be) overwritten: `vmid name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overwrites: Option<String>,
    /// False for the preview.
    pub executed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    /// The VM's state afterwards (read back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_after: Option<String>,
    pub message: String,
}

/// Previews or restores an archive.
///
/// # Errors
/// An unknown archive, node or storage; an existing target without `force`; a range guard —
/// all before anything is sent; then the task's failure.
pub async fn backup_restore(
    ctx: &Context,
    run: &Run,
    a: &BackupRestoreArgs,
) -> Result<BackupRestoreReport, Error> {
    let storage_id = a.archive.split(':').next().unwrap_or("");
    let rows = ctx.client.get_cluster_resources(None).await?;
    let (archive_node, source_vmid) = find_archive(ctx, &rows, storage_id, &a.archive).await?;
    let existing = a.vmid.and_then(|v| {
        rows.iter()
            .find(|r| crate::ops::is_guest(r) && r.vmid == Some(v))
            .cloned()
    });
    let is_ct = is_ct_archive(&a.archive);
    let kind = if is_ct { "container" } else { "VM" };
    if let Some(r) = &existing {
        let ct_there = r.kind == crate::pve::ResourceKind::Lxc;
        if ct_there != is_ct {
            return Err(Error::refused(format!(
                "{} {} is a {}, and {} holds a {kind}: a restore only overwrites a guest of the archive's type; pick another vmid or leave it out",
                if ct_there { "container" } else { "vm" },
                r.vmid.unwrap_or(0),
                if ct_there { "container" } else { "VM" },
                a.archive
            )));
        }
        if is_ct && a.force && r.status.as_deref() == Some("running") {
            return Err(Error::refused(format!(
                "container {} ({}) is running; PVE can't overwrite a running container: stop it first (vm_shutdown), then restore",
                r.vmid.unwrap_or(0),
                r.name.clone().unwrap_or_default()
            )));
        }
    }
    if let Some(v) = a.vmid {
        crate::ops::guard::check_range(ctx, v, a.allow_outside_ranges)?;
    }
    let overwrites = existing.as_ref().map(|r| {
        format!(
            "{} {} on {}",
            r.vmid.unwrap_or(0),
            r.name.clone().unwrap_or_default(),
            r.node.clone().unwrap_or_default()
        )
    });
    if let (Some(r), false) = (&existing, a.force) {
        return Err(Error::refused(format!(
            "{} {} ({}) exists: restoring into it replaces its disks and config with the archive's; pass force: true (and confirm after the user agreed) to overwrite it, or leave vmid unset to restore as a new {}",
            if is_ct { "container" } else { "vm" },
            r.vmid.unwrap_or(0),
            r.name.clone().unwrap_or_default(),
            if is_ct { "container" } else { "VM" }
        )));
    }
    let node = match (&existing, &a.node, archive_node) {
        (Some(r), Some(n), _) if r.node.as_deref() != Some(n.as_str()) => {
            return Err(Error::invalid(
                "node",
                format!(
                    "vm {} lives on {}; a restore over it runs there",
                    r.vmid.unwrap_or(0),
                    r.node.clone().unwrap_or_default()
                ),
            ));
        }
        (Some(r), _, _) => r.node.clone().unwrap_or_default(),
        (None, Some(n), _) => {
            crate::ops::require_cluster_node(ctx, n).await?;
            n.clone()
        }
        (None, None, Some(n)) => n,
        (None, None, None) => crate::ops::template::create::first_online_node(ctx).await?,
    };
    let storage = if is_ct {
        // PVE's default is `local`, which often cannot hold container disks: pick one that can.
        let s = a
            .storage
            .clone()
            .unwrap_or_else(|| ctx.config.defaults.storage.clone());
        let stores = crate::ops::ct::storage_rows(&rows);
        crate::ops::ct::require_storage(&stores, &node, &s, "rootdir", "container disks")?;
        Some(s)
    } else {
        if let Some(s) = &a.storage {
            let pools = ctx.client.list_node_storage(&node).await?;
            crate::ops::validate::vm_storage(&pools, s, &node)?;
        }
        a.storage.clone()
    };
    let mut report = BackupRestoreReport {
        archive: a.archive.clone(),
        guest_type: if is_ct { "lxc" } else { "qemu" }.into(),
        source_vmid,
        vmid: 0,
        node: node.clone(),
        storage: storage.clone(),
        new_macs: !a.keep_macs,
        overwrites: overwrites.clone(),
        executed: false,
        upid: None,
        status_after: None,
        message: String::new(),
    };
    let reservation;
    if !a.confirm {
        report.vmid = match a.vmid {
            Some(v) => v,
            None => preview_vm_id(&rows, ctx)?,
        };
        report.message = format!(
            "preview, nothing changed: would restore {} as {} {} on {node}{}{}, with {} MAC addresses{}. Call again with confirm: true after the user agreed",
            a.archive,
            if is_ct { "container" } else { "vm" },
            report.vmid,
            storage
                .as_ref()
                .map(|s| format!(", disks on {s}"))
                .unwrap_or_default(),
            overwrites
                .as_ref()
                .map(|o| {
                    let what = if is_ct { "container" } else { "vm" };
                    format!(", OVERWRITING {what} {o}: its disks and config are replaced")
                })
                .unwrap_or_default(),
            if a.keep_macs { "the archive's" } else { "new" },
            if a.start { ", then start it" } else { "" }
        );
        return Ok(report);
    }
    report.vmid = match a.vmid {
        Some(v) => {
            reservation = None;
            v
        }
        None => {
            let r = ctx
                .allocator
                .reserve(ctx, &ctx.config.vmid_ranges.vms, "vms", &Default::default())
                .await?;
            let v = r.vmid;
            reservation = Some(r);
            v
        }
    };
    // A container restores through the lxc create (`ostemplate` = the archive, `restore=1`),
    // a VM through the qemu create (`archive`); the rest is the same.
    let t = if is_ct {
        GuestType::Lxc
    } else {
        GuestType::Qemu
    };
    let vmid = report.vmid;
    let overwrite = existing.is_some();
    let object = format!("{} {vmid} on {node}", t.word());
    let what = format!("restore of {} into {object}", a.archive);
    let done = run
        .task_locked(ctx, &object, &what, || async {
            let c = &ctx.client;
            Ok(Some(match t {
                GuestType::Qemu => {
                    c.create_qemu(&node, vmid, &vm_params(a, storage.as_deref(), overwrite))
                        .await?
                }
                GuestType::Lxc => {
                    c.create_lxc(&node, &ct_params(a, vmid, storage.clone(), overwrite))
                        .await?
                }
            }))
        })
        .await?;
    drop(reservation);
    let Some((upid, outcome)) = done else {
        return Err(Error::Setup(format!("{what}: PVE answered without a task")));
    };
    report.executed = true;
    report.upid = Some(upid.to_string());
    report.status_after = ctx
        .client
        .get_guest_status(t, &node, vmid)
        .await
        .ok()
        .map(|s| s.status);
    report.message = format!(
        "{what} finished ({}); the {} is {}",
        outcome.exitstatus,
        t.noun(),
        report.status_after.as_deref().unwrap_or("unknown")
    );
    Ok(report)
}

/// The qemu create's form for a restore: the archive, the storage, `force` over an existing
/// VM, `unique` for new MACs, `start`.
fn vm_params(
    a: &BackupRestoreArgs,
    storage: Option<&str>,
    overwrite: bool,
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = vec![("archive".into(), a.archive.clone())];
    if let Some(s) = storage {
        params.push(("storage".into(), s.to_string()));
    }
    if overwrite {
        params.push(("force".into(), "1".into()));
    }
    if !a.keep_macs {
        params.push(("unique".into(), "1".into()));
    }
    if a.start {
        params.push(("start".into(), "1".into()));
    }
    params
}

/// The lxc create's form for a restore: the archive as `ostemplate`, `restore=1`, the storage,
/// `force` over an existing container, `unique` for new MACs, `start`.
fn ct_params(
    a: &BackupRestoreArgs,
    vmid: u32,
    storage: Option<String>,
    overwrite: bool,
) -> crate::pve::CreateLxc {
    crate::pve::CreateLxc {
        vmid,
        ostemplate: a.archive.clone(),
        storage,
        restore: true,
        force: overwrite,
        unique: (!a.keep_macs).then_some(true),
        start: a.start,
        ..Default::default()
    }
}

/// Whether an archive is a container's (`vzdump-lxc-*`).
fn is_ct_archive(volid: &str) -> bool {
    volid
        .rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("vzdump-lxc-"))
}

/// The node holding the archive (`None` for a shared storage) and the guest it was taken of.
async fn find_archive(
    ctx: &Context,
    rows: &[ClusterResource],
    storage: &str,
    volid: &str,
) -> Result<(Option<String>, Option<u32>), Error> {
    let mut nodes: Vec<(bool, String)> = rows
        .iter()
        .filter(|r| is_storage(r) && r.storage.as_deref() == Some(storage))
        .filter(|r| r.status.as_deref() == Some("available"))
        .filter_map(|r| Some((r.shared == Some(true), r.node.clone()?)))
        .collect();
    nodes.sort();
    for (shared, node) in nodes {
        let items = ctx
            .client
            .list_storage_content(&node, storage, Some("backup"))
            .await
            .unwrap_or_default();
        if let Some(i) = items.iter().find(|i| i.volid == volid) {
            return Ok(((!shared).then_some(node), i.vmid));
        }
    }
    Err(Error::NotFound {
        what: format!("backup archive {}", crate::ops::error::quote(volid)),
        hint: "list archives with backup_list".into(),
    })
}

fn preview_vm_id(rows: &[ClusterResource], ctx: &Context) -> Result<u32, Error> {
    let used: std::collections::BTreeSet<u32> = rows.iter().filter_map(|r| r.vmid).collect();
    crate::ops::allocate::lowest_free(&ctx.config.vmid_ranges.vms, &used).ok_or_else(|| {
        Error::refused(format!(
            "vmid_ranges.vms ({}) is full",
            ctx.config.vmid_ranges.vms
        ))
    })
}

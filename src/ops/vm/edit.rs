//! Changing an existing VM: CPU, memory and disk size (`vm_resize`), tags (`vm_set_tags`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{DiskEntry, QemuConfig};

use crate::ops::error::quote;
use crate::ops::guard::{node_of, normalize_tags, refuse_template, resolve_vm};
use crate::ops::run::Run;
use crate::ops::{Context, Error};

/// Bytes of a PVE size (`32G`, `528K`, `1.5T`, a bare number is bytes); `None` when malformed.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    Some((v * mult as f64).round() as u64)
}

/// Human size in PVE's style (`34G`, `512M`).
pub fn format_size(bytes: u64) -> String {
    for (unit, m) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    let g = bytes as f64 / (1u64 << 30) as f64;
    format!("{g:.2}G")
}

/// What a disk-size request means against the current size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskChange {
    /// Grow to this many bytes; the string is what PVE receives.
    Grow { to: u64, wire: String },
    /// Already that size.
    Same,
}

/// Plans a disk size change; pure. `+N` grows by N, a bare size is absolute.
///
/// # Errors
/// A malformed size, or a shrink (PVE cannot shrink disks; refused before any call).
pub fn plan_disk_change(current: u64, requested: &str, key: &str) -> Result<DiskChange, Error> {
    let r = requested.trim();
    let (relative, body) = match r.strip_prefix('+') {
        Some(b) => (true, b),
        None => (false, r),
    };
    let n = parse_size(body).filter(|n| *n > 0).ok_or_else(|| {
        Error::invalid(
            "disk",
            format!(
                "'{}' is not a size: write +10G to grow by 10 GiB or 50G for an absolute size",
                quote(requested)
            ),
        )
    })?;
    let to = if relative {
        current.saturating_add(n)
    } else {
        n
    };
    if to < current {
        return Err(Error::refused(format!(
            "{key} is {} and cannot shrink to {}: PVE does not shrink disks. Ask for at least {}, or grow with +N",
            format_size(current),
            format_size(to),
            format_size(current)
        )));
    }
    if to == current {
        return Ok(DiskChange::Same);
    }
    let wire = if relative {
        format!("+{}", body.to_uppercase())
    } else {
        body.to_uppercase()
    };
    Ok(DiskChange::Grow { to, wire })
}

/// The boot disk: first disk of `boot: order=`, else the first non-cdrom scsi/virtio/sata/ide.
pub fn boot_disk(config: &QemuConfig) -> Option<DiskEntry> {
    let disks: Vec<DiskEntry> = config
        .disks()
        .into_iter()
        .filter(|d| !d.is_cdrom && !d.is_unused && !d.volume.contains("cloudinit"))
        .collect();
    let order = config.get_str("boot").and_then(|b| {
        b.split(',')
            .find_map(|p| p.strip_prefix("order=").map(str::to_string))
    });
    if let Some(order) = order {
        for key in order.split(';') {
            if let Some(d) = disks.iter().find(|d| d.key == key) {
                return Some(d.clone());
            }
        }
    }
    ["scsi", "virtio", "sata", "ide"]
        .iter()
        .find_map(|p| disks.iter().find(|d| d.key.starts_with(p)).cloned())
}

/// `vm_resize` arguments; give at least one of cores, sockets, memory, disk.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmResizeArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Cores per socket (at most the node's CPU count).
    #[serde(default)]
    #[schemars(range(min = 1, max = 512))]
    pub cores: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    pub sockets: Option<u32>,
    /// Memory in MiB (at most the node's memory).
    #[serde(default)]
    #[schemars(range(min = 16, max = 16_777_216))]
    pub memory: Option<u64>,
    /// Disk size: `+10G` grows by 10 GiB, `50G` sets 50 GiB. Shrinking is refused.
    #[serde(default)]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^\+?[0-9]+(\.[0-9]+)?[KMGTkmgt]?$")
    )]
    pub disk: Option<String>,
    /// Which disk (`scsi0`, `virtio1`...); default the boot disk.
    #[serde(default)]
    #[schemars(
        length(max = 16),
        regex(pattern = r"^(scsi|virtio|sata|ide|efidisk|tpmstate)[0-9]{1,2}$")
    )]
    pub disk_key: Option<String>,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// A disk that was grown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiskResize {
    pub key: String,
    pub before: String,
    pub after: String,
}

/// `vm_resize` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmResizeReport {
    pub vmid: u32,
    pub node: String,
    /// Config keys written (`cores`, `memory`...).
    pub changed: Vec<String>,
    /// Keys that only take effect after the VM is stopped and started (it is running).
    pub pending_until_reboot: Vec<String>,
    /// Each changed key as PVE has it now, read back after the change (the pending value when
    /// it waits for a restart).
    pub config_now: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskResize>,
    pub upids: Vec<String>,
    pub message: String,
}

/// Applies CPU, memory and disk changes and waits for every task.
///
/// # Errors
/// Guards, a shrink or malformed size (before any call), PVE errors, locks past the deadline.
pub async fn vm_resize(
    ctx: &Context,
    run: &Run,
    a: &VmResizeArgs,
) -> Result<VmResizeReport, Error> {
    if a.cores.is_none() && a.sockets.is_none() && a.memory.is_none() && a.disk.is_none() {
        return Err(Error::invalid(
            "cores",
            "give at least one of cores, sockets, memory or disk",
        ));
    }
    if a.cores == Some(0) || a.sockets == Some(0) || a.memory.is_some_and(|m| m < 16) {
        return Err(Error::invalid(
            "memory",
            "cores and sockets must be at least 1, memory at least 16 MiB",
        ));
    }
    let row = resolve_vm(ctx, a.vmid, a.allow_outside_ranges).await?;
    refuse_template(
        &row,
        "vm_resize",
        "a template's size is what its clones start with: clone it with vm_create and give cores, memory or disk there, or rebuild the template",
    )?;
    let node = node_of(&row);
    let object = format!("vm {} on {node}", a.vmid);
    fits_node(ctx, &node, a.cores, a.sockets, a.memory).await?;
    let config = ctx.client.get_qemu_config(&node, a.vmid).await?;
    // Plan the disk first: a shrink is refused before anything is changed.
    let disk_plan = match &a.disk {
        None => None,
        Some(req) => {
            let disk = match &a.disk_key {
                Some(k) => config
                    .disks()
                    .into_iter()
                    .find(|d| &d.key == k)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("disk {} of {object}", quote(k)),
                        hint: format!(
                            "its disks are {}",
                            config
                                .disks()
                                .iter()
                                .map(|d| d.key.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?,
                None => boot_disk(&config).ok_or_else(|| {
                    Error::invalid(
                        "disk_key",
                        format!("{object} has no boot disk to resize; name one with disk_key"),
                    )
                })?,
            };
            if disk.is_cdrom {
                return Err(Error::invalid(
                    "disk_key",
                    format!("{} of {object} is a CD-ROM and cannot be resized", disk.key),
                ));
            }
            let current = disk.size.as_deref().and_then(parse_size).unwrap_or(0);
            Some((
                disk.key.clone(),
                current,
                plan_disk_change(current, req, &disk.key)?,
            ))
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(c) = a.cores {
        params.push(("cores".into(), c.to_string()));
    }
    if let Some(s) = a.sockets {
        params.push(("sockets".into(), s.to_string()));
    }
    if let Some(m) = a.memory {
        params.push(("memory".into(), m.to_string()));
    }
    let mut report = VmResizeReport {
        vmid: a.vmid,
        node: node.clone(),
        changed: vec![],
        pending_until_reboot: vec![],
        config_now: BTreeMap::new(),
        disk: None,
        upids: vec![],
        message: String::new(),
    };
    if !params.is_empty() {
        run.task_locked(ctx, &object, &format!("update {object}"), || async {
            let digest = ctx.client.get_qemu_config(&node, a.vmid).await?.digest();
            Ok(ctx
                .client
                .update_qemu_config(&node, a.vmid, &params, digest.as_deref())
                .await?)
        })
        .await?;
        report.changed = params.iter().map(|(k, _)| k.clone()).collect();
        // What PVE has now, not what was asked: the pending value when it waits for a restart.
        let status = ctx.client.get_qemu_status(&node, a.vmid).await?;
        let pending = ctx.client.get_qemu_pending(&node, a.vmid).await?;
        for p in pending.iter().filter(|p| report.changed.contains(&p.key)) {
            if let Some(v) = p.pending.clone().or_else(|| p.value.clone()) {
                report.config_now.insert(p.key.clone(), v);
            }
            if status.status == "running" && p.pending.is_some() {
                report.pending_until_reboot.push(p.key.clone());
            }
        }
    }
    if let Some((key, current, plan)) = disk_plan {
        match plan {
            DiskChange::Same => {
                report.disk = Some(DiskResize {
                    key,
                    before: format_size(current),
                    after: format_size(current),
                });
            }
            DiskChange::Grow { to, wire } => {
                run.task_locked(
                    ctx,
                    &object,
                    &format!("resize {key} of {object}"),
                    || async {
                        Ok(ctx
                            .client
                            .resize_qemu_disk(&node, a.vmid, &key, &wire, None)
                            .await?)
                    },
                )
                .await
                .map_err(|e| partial(&report, "growing the disk", e))?;
                // The size PVE now records (it may round), not the one asked for.
                let after = ctx
                    .client
                    .get_qemu_config(&node, a.vmid)
                    .await
                    .ok()
                    .and_then(|c| c.disks().into_iter().find(|d| d.key == key))
                    .and_then(|d| d.size)
                    .and_then(|s| parse_size(&s))
                    .unwrap_or(to);
                report.disk = Some(DiskResize {
                    key,
                    before: format_size(current),
                    after: format_size(after),
                });
            }
        }
    }
    report.upids = run.upids();
    report.message = if report.pending_until_reboot.is_empty() {
        format!("{object} updated")
    } else {
        format!(
            "{object} updated; {} take effect after the VM is stopped and started again (a reboot from inside the guest is not enough)",
            report.pending_until_reboot.join(", ")
        )
    };
    Ok(report)
}

/// Refuses CPU or memory beyond what `node` has (PVE would accept the config and then fail to
/// start the VM).
///
/// # Errors
/// `InvalidArgument` naming the node's size.
pub(crate) async fn fits_node(
    ctx: &Context,
    node: &str,
    cores: Option<u32>,
    sockets: Option<u32>,
    memory: Option<u64>,
) -> Result<(), Error> {
    if cores.is_none() && sockets.is_none() && memory.is_none() {
        return Ok(());
    }
    let rows = ctx
        .client
        .get_cluster_resources(Some(crate::pve::ResourceType::Node))
        .await?;
    let Some(row) = rows
        .iter()
        .find(|r| crate::ops::is_node(r) && r.node.as_deref() == Some(node))
    else {
        return Ok(());
    };
    let vcpus = u64::from(cores.unwrap_or(1)) * u64::from(sockets.unwrap_or(1));
    let arg = if cores.is_some() { "cores" } else { "sockets" };
    fits(row, node, arg, vcpus, memory)
}

/// Refuses `vcpus` or `memory` (MiB) beyond what the node row says the node has; pure.
///
/// # Errors
/// `InvalidArgument` naming the node's size.
pub(crate) fn fits(
    row: &crate::pve::ClusterResource,
    node: &str,
    cpu_arg: &str,
    vcpus: u64,
    memory: Option<u64>,
) -> Result<(), Error> {
    if let Some(max) = row
        .maxcpu
        .map(|c| c as u64)
        .filter(|m| *m > 0 && vcpus > *m)
    {
        return Err(Error::invalid(
            cpu_arg,
            format!(
                "{vcpus} vCPUs (cores × sockets) is more than node {node} has ({max}); ask for at most {max}"
            ),
        ));
    }
    let maxmem_mib = row.maxmem.map(|m| m / crate::ops::MIB).filter(|m| *m > 0);
    if let (Some(m), Some(max)) = (memory, maxmem_mib)
        && m > max
    {
        return Err(Error::invalid(
            "memory",
            format!("{m} MiB is more than node {node} has ({max} MiB)"),
        ));
    }
    Ok(())
}

fn partial(report: &VmResizeReport, step: &str, e: Error) -> Error {
    if report.changed.is_empty() {
        return e;
    }
    Error::Partial {
        done: format!(
            "vm {} on {}: {} already changed",
            report.vmid,
            report.node,
            report.changed.join(", ")
        ),
        step: step.into(),
        source: Box::new(e),
        next: "fix the cause and call vm_resize again with only the disk".into(),
    }
}

/// `vm_set_tags` arguments: replace the tags with `set`, or `add` / `remove` some.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSetTagsArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Replace all tags with these.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 128),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+.;, -]*$")
        )
    )]
    pub set: Option<Vec<String>>,
    /// Tags to add.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 128),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+.;, -]*$")
        )
    )]
    pub add: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 128),
            regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+.;, -]*$")
        )
    )]
    pub remove: Vec<String>,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// `vm_set_tags` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmSetTagsReport {
    pub vmid: u32,
    pub node: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// False when the tags already were as asked (nothing was sent).
    pub changed: bool,
}

/// Sets, adds or removes tags (normalised as PVE does: lowercase, deduplicated, sorted).
///
/// # Errors
/// Guards, invalid tags, PVE errors.
pub async fn vm_set_tags(
    ctx: &Context,
    run: &Run,
    a: &VmSetTagsArgs,
) -> Result<VmSetTagsReport, Error> {
    if a.set.is_none() && a.add.is_empty() && a.remove.is_empty() {
        return Err(Error::invalid("set", "give set, add or remove"));
    }
    let add = normalize_tags(a.add.clone())?;
    let remove = normalize_tags(a.remove.clone())?;
    let set = a.set.clone().map(normalize_tags).transpose()?;
    let row = resolve_vm(ctx, a.vmid, a.allow_outside_ranges).await?;
    refuse_template(
        &row,
        "vm_set_tags",
        "a template's tags come from the template tools (the `templates` tag group and the tags given to template_from_cloud_image / template_import_disk / template_from_iso); rebuild it with replace: true to change them",
    )?;
    let node = node_of(&row);
    let object = format!("vm {} on {node}", a.vmid);
    // Computed from the config read inside the retry, so a concurrent change is never lost:
    // the digest makes PVE refuse a write based on a stale read, and the retry re-reads.
    let new_tags = |current: Vec<String>| -> Result<Vec<String>, Error> {
        let mut after = set.clone().unwrap_or(current);
        after.extend(add.iter().cloned());
        after.retain(|t| !remove.contains(t));
        normalize_tags(after)
    };
    let before = normalize_tags(ctx.client.get_qemu_config(&node, a.vmid).await?.tags())?;
    if new_tags(before.clone())? == before {
        return Ok(VmSetTagsReport {
            vmid: a.vmid,
            node,
            after: before.clone(),
            before,
            changed: false,
        });
    }
    run.retry_locked(ctx, &object, || async {
        let config = ctx.client.get_qemu_config(&node, a.vmid).await?;
        let after = new_tags(normalize_tags(config.tags())?)?;
        let params: Vec<(String, String)> = if after.is_empty() {
            vec![("delete".into(), "tags".into())]
        } else {
            vec![("tags".into(), after.join(";"))]
        };
        Ok(ctx
            .client
            .set_qemu_config_sync(&node, a.vmid, &params, config.digest().as_deref())
            .await?)
    })
    .await?;
    let now = ctx.client.get_qemu_config(&node, a.vmid).await?;
    Ok(VmSetTagsReport {
        vmid: a.vmid,
        node,
        before,
        after: now.tags(),
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32G"), Some(32 << 30));
        assert_eq!(parse_size("528K"), Some(528 << 10));
        assert_eq!(parse_size("1.5T"), Some(3 << 39));
        assert_eq!(parse_size("x"), None);
        assert_eq!(format_size(34 << 30), "34G");
    }

    #[test]
    fn disk_plans() {
        let g = 1u64 << 30;
        assert_eq!(
            plan_disk_change(32 * g, "+10G", "scsi0").expect("grow"),
            DiskChange::Grow {
                to: 42 * g,
                wire: "+10G".into()
            }
        );
        assert_eq!(
            plan_disk_change(32 * g, "50g", "scsi0").expect("abs"),
            DiskChange::Grow {
                to: 50 * g,
                wire: "50G".into()
            }
        );
        assert_eq!(
            plan_disk_change(32 * g, "32G", "scsi0").expect("same"),
            DiskChange::Same
        );
        let e = plan_disk_change(32 * g, "20G", "scsi0").expect_err("shrink");
        assert!(e.to_string().contains("cannot shrink"), "{e}");
        assert!(plan_disk_change(32 * g, "+0G", "scsi0").is_err());
    }
}

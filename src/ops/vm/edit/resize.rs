//! `vm_resize` of a VM or a container: CPU, memory (and a container's swap) and disk size,
//! checked against the node and read back after. Disks only grow.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::error::quote;
use crate::ops::guard::{guest_type, node_of, refuse_template, resolve_guest};
use crate::ops::run::Run;
use crate::ops::{Context, Error};
use crate::pve::GuestType;

use super::size::{DiskChange, boot_disk, format_size, parse_size, plan_disk_change};

/// `vm_resize` arguments; give at least one of cores, sockets, memory, swap, disk.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmResizeArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Per socket; at most the node's CPUs.
    #[serde(default)]
    #[schemars(range(min = 1, max = 512))]
    pub cores: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    pub sockets: Option<u32>,
    /// MiB; at most the node's.
    #[serde(default)]
    #[schemars(range(min = 16, max = 16_777_216))]
    pub memory: Option<u64>,
    /// MiB; containers only.
    #[serde(default)]
    #[schemars(range(max = 16_777_216))]
    pub swap: Option<u64>,
    /// `+10G` grows by 10 GiB, `50G` sets 50 GiB.
    #[serde(default)]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^\+?[0-9]+(\.[0-9]+)?[KMGTkmgt]?$")
    )]
    pub disk: Option<String>,
    /// e.g. `virtio1`, a container's `mp0`; default the boot disk or `rootfs`.
    #[serde(default)]
    #[schemars(
        length(max = 16),
        regex(
            pattern = r"^((scsi|virtio|sata|ide|efidisk|tpmstate)[0-9]{1,2}|rootfs|mp[0-9]{1,3})$"
        )
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
    if a.cores.is_none()
        && a.sockets.is_none()
        && a.memory.is_none()
        && a.swap.is_none()
        && a.disk.is_none()
    {
        return Err(Error::invalid(
            "cores",
            "give at least one of cores, sockets, memory, swap or disk",
        ));
    }
    if a.cores == Some(0) || a.sockets == Some(0) || a.memory.is_some_and(|m| m < 16) {
        return Err(Error::invalid(
            "memory",
            "cores and sockets must be at least 1, memory at least 16 MiB",
        ));
    }
    let row = resolve_guest(ctx, a.vmid, a.allow_outside_ranges).await?;
    let t = guest_type(&row);
    refuse_template(
        &row,
        "vm_resize",
        "a template's size is what its clones start with: clone it with vm_create and give cores, memory or disk there, or rebuild the template",
    )?;
    let node = node_of(&row);
    let object = format!("{} {} on {node}", t.word(), a.vmid);
    refuse_other_type(t, a, &object)?;
    fits_node(ctx, &node, a.cores, a.sockets, a.memory).await?;
    let config = ctx.client.get_guest_config(t, &node, a.vmid).await?;
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
                None if t == GuestType::Lxc => config
                    .disks()
                    .into_iter()
                    .find(|d| d.key == "rootfs")
                    .ok_or_else(|| {
                        Error::invalid(
                            "disk_key",
                            format!("{object} has no rootfs; name a mount point with disk_key"),
                        )
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
            if disk.volume.starts_with('/') {
                return Err(Error::invalid(
                    "disk_key",
                    format!(
                        "{} of {object} bind-mounts the host directory {}; it has no size to change (grow the host's file system instead)",
                        disk.key, disk.volume
                    ),
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
    if let Some(m) = a.swap {
        params.push(("swap".into(), m.to_string()));
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
            let c = &ctx.client;
            let digest = c.get_guest_config(t, &node, a.vmid).await?.digest();
            match t {
                GuestType::Qemu => Ok(c
                    .update_qemu_config(&node, a.vmid, &params, digest.as_deref())
                    .await?),
                GuestType::Lxc => {
                    c.set_lxc_config(&node, a.vmid, &params, digest.as_deref())
                        .await?;
                    Ok(None)
                }
            }
        })
        .await?;
        report.changed = params.iter().map(|(k, _)| k.clone()).collect();
        // What PVE has now, not what was asked: the pending value when it waits for a restart.
        let status = ctx.client.get_guest_status(t, &node, a.vmid).await?;
        let pending = ctx.client.get_guest_pending(t, &node, a.vmid).await?;
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
                        let c = &ctx.client;
                        Ok(match t {
                            GuestType::Qemu => {
                                c.resize_qemu_disk(&node, a.vmid, &key, &wire, None).await?
                            }
                            GuestType::Lxc => {
                                c.resize_lxc_disk(&node, a.vmid, &key, &wire, None).await?
                            }
                        })
                    },
                )
                .await
                .map_err(|e| partial(&report, "growing the disk", e))?;
                // The size PVE now records (it may round), not the one asked for.
                let after = ctx
                    .client
                    .get_guest_config(t, &node, a.vmid)
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
            "{object} updated; {} take effect after the {} is stopped and started again (a reboot from inside the guest is not enough)",
            report.pending_until_reboot.join(", "),
            t.noun()
        )
    };
    Ok(report)
}

/// Refuses what the guest's type does not have: a container's sockets or a VM's swap and
/// `rootfs`/`mpN` disks (and a container's QEMU disk keys).
fn refuse_other_type(t: GuestType, a: &VmResizeArgs, object: &str) -> Result<(), Error> {
    let ct_disk = a
        .disk_key
        .as_deref()
        .is_some_and(|k| k == "rootfs" || k.starts_with("mp"));
    match t {
        GuestType::Lxc if a.sockets.is_some() => Err(Error::invalid(
            "sockets",
            format!("{object} is a container: it has no sockets, give cores instead"),
        )),
        GuestType::Lxc if a.disk_key.is_some() && !ct_disk => Err(Error::invalid(
            "disk_key",
            format!("{object} is a container: its disks are rootfs and mp0, mp1, ..."),
        )),
        GuestType::Qemu if a.swap.is_some() => Err(Error::invalid(
            "swap",
            format!(
                "{object} is a VM: swap is a container setting (a VM's swap lives inside the guest)"
            ),
        )),
        GuestType::Qemu if ct_disk => Err(Error::invalid(
            "disk_key",
            format!(
                "{object} is a VM: rootfs and mpN are a container's disks; name one of its own such as scsi0"
            ),
        )),
        _ => Ok(()),
    }
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
            "guest {} on {}: {} already changed",
            report.vmid,
            report.node,
            report.changed.join(", ")
        ),
        step: step.into(),
        source: Box::new(e),
        next: "fix the cause and call vm_resize again with only the disk".into(),
    }
}

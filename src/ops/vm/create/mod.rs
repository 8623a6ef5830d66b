//! `vm_create`: clone a template into a new VM with the cluster's defaults, cloud-init applied
//! in the same call, every task waited for, and a safe VMID.
//!
//! Order of work, and why: everything that can be refused (name, sizes, placement, linked
//! clone rules, range) is checked before the clone, so a refusal changes nothing. After the
//! clone every failure is reported as a partial result naming the VM that now exists.

pub(crate) mod plan;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::pve::{CloneQemu, ResourceType, StartQemu};

use crate::ops::run::Run;
use crate::ops::validate::{
    MAX_DESCRIPTION, MAX_LINE, MAX_SSH_KEYS, SCHEMA_BRIDGE, SCHEMA_DNS_NAME, SCHEMA_LINE,
    SCHEMA_NODE, SCHEMA_SIZE, SCHEMA_STORAGE, SCHEMA_USER,
};
use crate::ops::vm::agent::wait_for_ip;
use crate::ops::vm::edit::{DiskChange, DiskResize, boot_disk, format_size};
use crate::ops::{Context, Error};

use plan::{Plan, check_formats, decide, gather, rewrite_net0};

/// Collisions with other clients tolerated before giving up on automatic VMIDs.
const MAX_VMID_ATTEMPTS: usize = 8;

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SN {
        S(String),
        N(u64),
    }
    Ok(match SN::deserialize(d)? {
        SN::S(s) => s,
        SN::N(n) => n.to_string(),
    })
}

/// `vm_create` arguments. Everything not given comes from `cluster-config.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmCreateArgs {
    /// vmid (`"100"`) or exact name.
    #[serde(deserialize_with = "string_or_number")]
    #[schemars(length(min = 1, max = 128))]
    pub template: String,
    /// In use: refused unless `allow_duplicate_name`.
    #[schemars(length(min = 1, max = 253), regex(pattern = SCHEMA_DNS_NAME))]
    pub name: String,
    /// Default: lowest free in `vmid_ranges.vms`.
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// Default the template's node; another needs its disks on shared storage.
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Default true; `false`: linked clone on the template's storage, if it supports one.
    #[serde(default)]
    pub full: Option<bool>,
    /// Full clone's disks; default `defaults.storage` (shared when `node` differs).
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Per socket; default the template's, at most the node's CPUs.
    #[serde(default)]
    #[schemars(range(min = 1, max = 512))]
    pub cores: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    pub sockets: Option<u32>,
    /// MiB; default the template's, at most the node's.
    #[serde(default)]
    #[schemars(range(min = 16, max = 16_777_216))]
    pub memory: Option<u64>,
    /// Grow the boot disk: `+10G` or `40G`.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_SIZE))]
    pub disk: Option<String>,
    /// net0 bridge or SDN vnet on the node; default `defaults.network_bridge`.
    #[serde(default)]
    #[schemars(length(max = 15), regex(pattern = SCHEMA_BRIDGE))]
    pub bridge: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    /// Default `cloudinit.default_user`.
    #[serde(default)]
    #[schemars(length(max = 32), regex(pattern = SCHEMA_USER))]
    pub ci_user: Option<String>,
    /// OpenSSH public keys, one per line; default the file `cloudinit.ssh_keys_source`.
    #[serde(default)]
    #[schemars(length(max = MAX_SSH_KEYS))]
    pub ssh_keys: Option<String>,
    /// Default `dhcp`; static: `ip=10.0.10.5/24,gw=10.0.10.1` (also ip6, gw6).
    #[serde(default)]
    #[schemars(length(max = MAX_LINE), regex(pattern = SCHEMA_LINE))]
    pub ipconfig0: Option<String>,
    /// DNS server IPs, space-separated.
    #[serde(default)]
    #[schemars(length(max = MAX_LINE), regex(pattern = SCHEMA_LINE))]
    pub nameserver: Option<String>,
    /// Space-separated.
    #[serde(default)]
    #[schemars(length(max = MAX_LINE), regex(pattern = SCHEMA_LINE))]
    pub searchdomain: Option<String>,
    /// Merged with `tags.vms` and `tag_groups`; with none, the template's tags minus its template
    /// markers.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    /// From `cluster-config.yaml`, e.g. `["talos"]`.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(max = 64)))]
    pub tag_groups: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = MAX_DESCRIPTION))]
    pub description: Option<String>,
    #[serde(default)]
    pub start: bool,
    /// After starting, wait for the agent's IP.
    #[serde(default)]
    pub wait_for_ip: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
    #[serde(default)]
    pub allow_duplicate_name: bool,
    /// Create although the Ansible inventory gives this name, VMID or address to another host.
    #[serde(default)]
    pub allow_inventory_conflict: bool,
}

/// `vm_create` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmCreateReport {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// Template vmid it was cloned from.
    pub template: u32,
    pub full_clone: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Config written after the clone (secrets and keys summarised).
    pub config: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskResize>,
    pub started: bool,
    pub ip_addresses: Vec<String>,
    pub upids: Vec<String>,
    pub warnings: Vec<String>,
    pub message: String,
}

fn mac_of(net0: Option<&str>) -> Option<String> {
    net0?
        .split(',')
        .next()?
        .split_once('=')
        .map(|(_, mac)| mac.to_string())
}

/// Clones, configures, optionally grows, starts and waits for an address.
///
/// # Errors
/// Refusals before the clone change nothing; failures after it — an interruption included —
/// are `Error::Partial` naming the VM that exists and its state.
pub async fn vm_create(
    ctx: &Context,
    run: &Run,
    a: &VmCreateArgs,
) -> Result<VmCreateReport, Error> {
    check_formats(a)?;
    let facts = gather(ctx, a).await?;
    let p = decide(ctx, a, &facts)?;
    if !a.allow_inventory_conflict {
        crate::ops::ansible::hooks::check_create(ctx, &a.name, a.vmid, a.ipconfig0.as_deref())
            .await?;
    }
    run.note(format!(
        "cloning template {} on {} into {} on {}",
        p.template, p.source_node, a.name, p.target_node
    ));
    let vmid = clone_with_vmid(ctx, run, a, &p).await?;
    let node = p.target_node.clone();
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    let configured = std::sync::atomic::AtomicBool::new(false);
    let partial = |step: &str, e: Error| {
        let state = if configured.load(std::sync::atomic::Ordering::Relaxed) {
            "it is configured and stopped"
        } else {
            "it is stopped and not configured yet: it still carries the template's tags and net0, and has no cloud-init settings"
        };
        let e = Error::Partial {
            done: format!("{object} was cloned from template {} ({state})", p.template),
            step: step.to_string(),
            source: Box::new(e),
            next: format!(
                "fix the cause and finish with vm_resize / vm_set_tags / vm_start, or remove it with vm_delete vmid {vmid}"
            ),
        };
        if e.is_cancelled() {
            // The client will not read the answer: the last progress message says what exists.
            run.note(format!("cancelled: {object} exists; {state}"));
        }
        e
    };
    // Cloud-init, resources, tags and net0 in one write: the clone's own net0 (its fresh MAC)
    // with the asked bridge and VLAN.
    let mut config = p.config.clone();
    let mut shown = p.shown.clone();
    let clone_cfg = ctx
        .client
        .get_qemu_config(&node, vmid)
        .await
        .map_err(|e| partial("reading its config", e.into()))?;
    if let Some(net0) = rewrite_net0(clone_cfg.get_str("net0").as_deref(), &p.bridge, p.vlan) {
        shown.insert("net0".into(), net0.clone());
        config.push(("net0".into(), net0));
    }
    run.task_locked(ctx, &object, &format!("configure {object}"), || async {
        Ok(ctx
            .client
            .update_qemu_config(&node, vmid, &config, None)
            .await?)
    })
    .await
    .map_err(|e| partial("configuring it", e))?;
    configured.store(true, std::sync::atomic::Ordering::Relaxed);
    let disk_report = grow_disk(ctx, run, &p, &node, vmid, &object)
        .await
        .map_err(|e| partial("growing its disk", e))?;
    let mut ips = Vec::new();
    let mut warnings = p.warnings.clone();
    if a.start {
        run.task_locked(ctx, &object, &format!("start {object}"), || async {
            Ok(Some(
                ctx.client
                    .start_qemu(&node, vmid, &StartQemu::default())
                    .await?,
            ))
        })
        .await
        .map_err(|e| partial("starting it", e))?;
        if a.wait_for_ip {
            let cfg = ctx
                .client
                .get_qemu_config(&node, vmid)
                .await
                .map_err(|e| partial("reading its config", e.into()))?;
            match wait_for_ip(
                ctx,
                run,
                &node,
                vmid,
                mac_of(cfg.get_str("net0").as_deref()).as_deref(),
            )
            .await
            {
                Ok(v) => ips = v,
                Err(e) => warnings.push(format!("the VM is created and running, but: {e}")),
            }
        }
    } else if a.wait_for_ip {
        warnings.push("wait_for_ip needs start: true; the VM was left stopped".into());
    }
    let message = format!(
        "{object} created from template {} ({} clone){}{}",
        p.template,
        if p.full { "full" } else { "linked" },
        if a.start { ", running" } else { ", stopped" },
        if ips.is_empty() {
            String::new()
        } else {
            format!(", address {}", ips.join(", "))
        }
    );
    Ok(VmCreateReport {
        vmid,
        name: a.name.clone(),
        node,
        template: p.template,
        full_clone: p.full,
        storage: p.storage.clone(),
        config: shown,
        disk: disk_report,
        started: a.start,
        ip_addresses: ips,
        upids: run.upids(),
        warnings,
        message,
    })
}

/// Grows the clone's boot disk as planned.
async fn grow_disk(
    ctx: &Context,
    run: &Run,
    p: &Plan,
    node: &str,
    vmid: u32,
    object: &str,
) -> Result<Option<DiskResize>, Error> {
    let Some((_, current, DiskChange::Grow { to, wire })) = &p.disk else {
        return Ok(None);
    };
    let cfg = ctx.client.get_qemu_config(node, vmid).await?;
    let key = boot_disk(&cfg)
        .map(|d| d.key)
        .unwrap_or_else(|| "scsi0".into());
    run.task_locked(
        ctx,
        object,
        &format!("resize {key} of {object}"),
        || async {
            Ok(ctx
                .client
                .resize_qemu_disk(node, vmid, &key, wire, None)
                .await?)
        },
    )
    .await?;
    Ok(Some(DiskResize {
        key,
        before: format_size(*current),
        after: format_size(*to),
    }))
}

/// Reserves a VMID, clones, and retries with the next free id when another client took it.
///
/// # Errors
/// Refusals before the clone; once PVE accepted the clone, a failure to see it finish (the
/// call cancelled, PVE no longer answering, the wait deadline) is `Partial`, naming the VMID.
async fn clone_with_vmid(
    ctx: &Context,
    run: &Run,
    a: &VmCreateArgs,
    p: &Plan,
) -> Result<u32, Error> {
    let mut avoid = BTreeSet::new();
    for _ in 0..MAX_VMID_ATTEMPTS {
        let reservation = match a.vmid {
            Some(v) => {
                if ctx
                    .client
                    .get_cluster_resources(Some(ResourceType::Vm))
                    .await?
                    .iter()
                    .any(|r| r.vmid == Some(v))
                {
                    return Err(Error::refused(format!(
                        "vmid {v} is already in use; leave vmid out to get the lowest free one in vmid_ranges.vms"
                    )));
                }
                None
            }
            None => Some(
                ctx.allocator
                    .reserve(ctx, &ctx.config.vmid_ranges.vms, "vms", &avoid)
                    .await?,
            ),
        };
        let vmid = reservation.as_ref().map(|r| r.vmid).or(a.vmid).unwrap_or(0);
        let params = CloneQemu {
            newid: vmid,
            name: Some(a.name.clone()),
            description: a.description.clone(),
            target: (p.target_node != p.source_node).then(|| p.target_node.clone()),
            full: Some(p.full),
            storage: p.storage.clone(),
            ..Default::default()
        };
        let object = format!("template {} on {}", p.template, p.source_node);
        let what = format!("clone template {} to vm {vmid}", p.template);
        let started = run
            .task_locked(ctx, &object, &what, || async {
                Ok(Some(
                    ctx.client
                        .clone_qemu(&p.source_node, p.template, &params)
                        .await?,
                ))
            })
            .await;
        // The new VM's config exists once PVE accepted the clone: the reservation can go.
        drop(reservation);
        match started {
            Ok(_) => {
                ctx.client.note_vm_node(vmid, &p.target_node);
                return Ok(vmid);
            }
            Err(e) if e.is_vmid_taken() && a.vmid.is_none() => {
                run.note(format!(
                    "vmid {vmid} was taken meanwhile; trying the next free id"
                ));
                avoid.insert(vmid);
                continue;
            }
            Err(e) if e.is_vmid_taken() => {
                return Err(Error::refused(format!(
                    "vmid {vmid} was taken by someone else; leave vmid out to get a free one"
                )));
            }
            Err(e) if clone_may_exist(&e) => {
                let state = format!(
                    "the clone of template {} into vm {vmid} ({}) on {} was started; vm {vmid} may now exist, stopped and unconfigured (template's tags and net0, no cloud-init)",
                    p.template, a.name, p.target_node
                );
                if e.is_cancelled() {
                    run.note(format!("cancelled: {state}"));
                }
                return Err(Error::Partial {
                    done: state,
                    step: "waiting for the clone".into(),
                    source: Box::new(e),
                    next: format!(
                        "check it with vm_get vmid {vmid}; finish it with vm_resize / vm_set_tags / vm_start, or remove it with vm_delete vmid {vmid}"
                    ),
                });
            }
            Err(e) => return Err(clone_hint(e)),
        }
    }
    Err(Error::refused(format!(
        "gave up after {MAX_VMID_ATTEMPTS} VMID collisions; another tool is creating VMs in vmid_ranges.vms at the same time"
    )))
}

/// Whether a clone failure may have left the VM behind: PVE accepted the clone (a task was
/// started) but its end was not seen — cancelled, timed out, or PVE stopped answering. A
/// clone task that failed removes its half-made VM itself; an early refusal made nothing.
fn clone_may_exist(e: &Error) -> bool {
    use crate::pve::Error as P;
    match e {
        Error::Pve(P::Cancelled { upids_running }) => !upids_running.is_empty(),
        Error::Pve(P::TaskTimeout { .. }) => true,
        Error::Pve(P::Connect { .. } | P::Timeout { .. } | P::Transport { .. }) => true,
        _ => false,
    }
}

fn clone_hint(e: Error) -> Error {
    let text = e.to_string();
    if text.contains("Linked clone feature is not supported") {
        return Error::refused(format!(
            "{text} — this storage cannot do linked clones: use full: true"
        ));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_read_from_net0() {
        assert_eq!(
            mac_of(Some("virtio=BC:24:11:00:00:01,bridge=vmbr0")).as_deref(),
            Some("BC:24:11:00:00:01")
        );
    }
}

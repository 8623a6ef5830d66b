//! `vm_create`: clone a template into a new VM with the cluster's defaults, cloud-init applied
//! in the same call, every task waited for, and a safe VMID.
//!
//! Order of work, and why: everything that can be refused (name, sizes, placement, linked
//! clone rules, range) is checked before the clone, so a refusal changes nothing. After the
//! clone every failure is reported as a partial result naming the VM that now exists.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::pve::{CloneQemu, ClusterResource, QemuConfig, ResourceType, StartQemu, encode_sshkeys};

use crate::ops::guard::{check_range, normalize_tags};
use crate::ops::run::Run;
use crate::ops::vm::agent::wait_for_ip;
use crate::ops::vm::edit::{
    DiskChange, DiskResize, boot_disk, format_size, parse_size, plan_disk_change,
};
use crate::ops::{Context, Error};

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
    /// Template to clone: its vmid (`"100"`) or its exact name.
    #[serde(deserialize_with = "string_or_number")]
    pub template: String,
    /// Name of the new VM (a DNS name: letters, digits, `-` and `.`).
    pub name: String,
    /// VMID for the new VM; default the lowest free id in `vmid_ranges.vms`.
    #[serde(default)]
    pub vmid: Option<u32>,
    /// Node for the new VM; default the template's node. Another node needs the template's
    /// disks on shared storage.
    #[serde(default)]
    pub node: Option<String>,
    /// Full clone (independent copy; default true) or linked clone (`false`: fast, shares the
    /// template's base disk, only on storage that supports it, same storage as the template).
    #[serde(default)]
    pub full: Option<bool>,
    /// Storage for a full clone's disks; default `defaults.storage` (a shared one when `node`
    /// differs from the template's node).
    #[serde(default)]
    pub storage: Option<String>,
    /// Cores per socket (default: the template's).
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub sockets: Option<u32>,
    /// Memory in MiB (default: the template's).
    #[serde(default)]
    pub memory: Option<u64>,
    /// Grow the boot disk: `+10G` or an absolute size such as `40G`.
    #[serde(default)]
    pub disk: Option<String>,
    /// Bridge of net0 (default `defaults.network_bridge`).
    #[serde(default)]
    pub bridge: Option<String>,
    /// VLAN tag of net0.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Cloud-init user (default `cloudinit.default_user`).
    #[serde(default)]
    pub ci_user: Option<String>,
    /// Public SSH keys, one per line (default: the file `cloudinit.ssh_keys_source`).
    #[serde(default)]
    pub ssh_keys: Option<String>,
    /// `dhcp` (default) or a static address such as `ip=10.0.10.5/24,gw=10.0.10.1`.
    #[serde(default)]
    pub ipconfig0: Option<String>,
    #[serde(default)]
    pub nameserver: Option<String>,
    #[serde(default)]
    pub searchdomain: Option<String>,
    /// Tags for the VM, merged with the configured `tags.vms` group and any `tag_groups`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Tag groups from `cluster-config.yaml` to add, e.g. `["talos"]`.
    #[serde(default)]
    pub tag_groups: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Start the VM once configured (default false).
    #[serde(default)]
    pub start: bool,
    /// After starting, wait until the guest agent reports an IP address (default false).
    #[serde(default)]
    pub wait_for_ip: bool,
    /// Allow an explicit `vmid` outside `vmid_ranges.vms` (default false).
    #[serde(default)]
    pub allow_outside_ranges: bool,
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

pub(crate) fn valid_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63 * 4
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `dhcp`, `ip=…` / `ip6=…`, or a bare CIDR, as PVE's ipconfig0 string.
fn ipconfig(s: &str) -> Result<String, Error> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("dhcp") {
        return Ok("ip=dhcp".into());
    }
    if s.starts_with("ip=") || s.starts_with("ip6=") {
        return Ok(s.to_string());
    }
    if s.contains('/') && !s.contains(',') {
        return Ok(format!("ip={s}"));
    }
    Err(Error::invalid(
        "ipconfig0",
        format!("'{s}' is neither dhcp nor ip=ADDRESS/PREFIX[,gw=GATEWAY]"),
    ))
}

/// net0 with the bridge and VLAN replaced, model and MAC kept.
fn rewrite_net0(current: Option<&str>, bridge: &str, vlan: Option<u16>) -> String {
    let mut parts: Vec<String> = current
        .unwrap_or("virtio")
        .split(',')
        .filter(|p| !p.starts_with("bridge=") && !p.starts_with("tag="))
        .map(str::to_string)
        .collect();
    if parts.is_empty() {
        parts.push("virtio".into());
    }
    parts.insert(1.min(parts.len()), format!("bridge={bridge}"));
    if let Some(v) = vlan {
        parts.push(format!("tag={v}"));
    }
    parts.join(",")
}

fn mac_of(net0: Option<&str>) -> Option<String> {
    net0?
        .split(',')
        .next()?
        .split_once('=')
        .map(|(_, mac)| mac.to_string())
}

/// Finds the template by vmid or name.
fn find_template<'a>(
    rows: &'a [ClusterResource],
    wanted: &str,
) -> Result<&'a ClusterResource, Error> {
    let by_id = wanted.parse::<u32>().ok();
    let matches: Vec<&ClusterResource> = rows
        .iter()
        .filter(|r| match by_id {
            Some(id) => r.vmid == Some(id),
            None => r.name.as_deref() == Some(wanted),
        })
        .collect();
    let templates: Vec<String> = rows
        .iter()
        .filter(|r| r.is_template())
        .map(|r| {
            format!(
                "{} ({})",
                r.vmid.unwrap_or(0),
                r.name.clone().unwrap_or_default()
            )
        })
        .collect();
    match matches.as_slice() {
        [one] if one.is_template() => Ok(one),
        [one] => Err(Error::invalid(
            "template",
            format!(
                "vm {} ({}) is not a template; pick one of: {}",
                one.vmid.unwrap_or(0),
                one.name.clone().unwrap_or_default(),
                templates.join(", ")
            ),
        )),
        [] => Err(Error::NotFound {
            what: format!("template {wanted}"),
            hint: format!("the cluster's templates are: {}", templates.join(", ")),
        }),
        _ => Err(Error::invalid(
            "template",
            format!("several guests are named {wanted}; give the template's vmid instead"),
        )),
    }
}

/// Everything decided before the clone.
struct Plan {
    template: u32,
    source_node: String,
    target_node: String,
    full: bool,
    storage: Option<String>,
    disk: Option<(String, u64, DiskChange)>,
    config: Vec<(String, String)>,
    shown: BTreeMap<String, String>,
    warnings: Vec<String>,
}

async fn plan(ctx: &Context, a: &VmCreateArgs) -> Result<Plan, Error> {
    if !valid_dns_name(&a.name) {
        return Err(Error::invalid(
            "name",
            format!(
                "'{}' is not a valid VM name: use letters, digits, '-' and '.', e.g. web-03",
                a.name
            ),
        ));
    }
    if let Some(v) = a.vmid {
        if !a.allow_outside_ranges && !ctx.config.vmid_ranges.vms.contains(v) {
            return Err(Error::refused(format!(
                "vmid {v} is outside vmid_ranges.vms ({}); pick one inside it, leave vmid out to get the lowest free one, or pass allow_outside_ranges: true",
                ctx.config.vmid_ranges.vms
            )));
        }
        check_range(ctx, v, true)?;
    }
    let rows = ctx.client.get_cluster_resources(None).await?;
    let tpl = find_template(&rows, a.template.trim())?;
    let template = tpl.vmid.unwrap_or(0);
    let source_node = tpl.node.clone().unwrap_or_default();
    let target_node = a.node.clone().unwrap_or_else(|| source_node.clone());
    match rows
        .iter()
        .find(|r| crate::ops::is_node(r) && r.node.as_deref() == Some(target_node.as_str()))
    {
        None => {
            return Err(Error::NotFound {
                what: format!("node {target_node}"),
                hint: "use a node name from cluster_status".into(),
            });
        }
        Some(n) if n.status.as_deref() != Some("online") => {
            return Err(Error::refused(format!(
                "node {target_node} is {}; pick an online node",
                n.status.clone().unwrap_or_default()
            )));
        }
        Some(_) => {}
    }
    let tconfig: QemuConfig = ctx.client.get_qemu_config(&source_node, template).await?;
    let storage_cfg = ctx.client.list_storage_config().await?;
    // `/cluster/resources` computes `shared` per storage row; storage.cfg only carries the
    // flag for plugins that are not shared by nature (an NFS entry has no `shared` key).
    let shared: BTreeSet<String> = rows
        .iter()
        .filter(|r| crate::ops::is_storage(r) && r.shared == Some(true))
        .filter_map(|r| r.storage.clone())
        .collect();
    let tdisks: Vec<String> = tconfig
        .disks()
        .into_iter()
        .filter(|d| !d.is_cdrom && !d.is_unused && !d.volume.contains("cloudinit"))
        .filter_map(|d| d.storage)
        .collect();
    let cross_node = target_node != source_node;
    if cross_node && !tdisks.iter().all(|s| shared.contains(s)) {
        return Err(Error::refused(format!(
            "template {template} keeps its disks on local storage ({}) of {source_node}, so it can only be cloned on {source_node}: leave node out or set node: {source_node}, or keep the template on shared storage",
            tdisks.join(", ")
        )));
    }
    let full = a.full.unwrap_or(true);
    let storage = if full {
        let s = a.storage.clone().unwrap_or_else(|| {
            if cross_node && !shared.contains(&ctx.config.defaults.storage) {
                tdisks
                    .first()
                    .cloned()
                    .unwrap_or_else(|| ctx.config.defaults.storage.clone())
            } else {
                ctx.config.defaults.storage.clone()
            }
        });
        if !storage_cfg.iter().any(|c| c.storage == s) {
            return Err(Error::NotFound {
                what: format!("storage {s}"),
                hint: format!(
                    "storages: {}",
                    storage_cfg
                        .iter()
                        .map(|c| c.storage.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if cross_node && !shared.contains(&s) {
            return Err(Error::refused(format!(
                "storage {s} is local to each node; a clone onto another node needs shared storage ({})",
                shared.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Some(s)
    } else {
        if a.storage.is_some() {
            return Err(Error::invalid(
                "storage",
                "a linked clone stays on the template's storage; drop storage or use full: true",
            ));
        }
        None
    };
    let disk = match &a.disk {
        None => None,
        Some(req) => {
            let d = boot_disk(&tconfig).ok_or_else(|| {
                Error::invalid(
                    "disk",
                    format!("template {template} has no boot disk to grow"),
                )
            })?;
            let current = d.size.as_deref().and_then(parse_size).unwrap_or(0);
            Some((
                d.key.clone(),
                current,
                plan_disk_change(current, req, &d.key)?,
            ))
        }
    };
    let mut config = Vec::new();
    let mut shown = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut put = |k: &str, v: String, show: Option<String>| {
        shown.insert(k.to_string(), show.unwrap_or_else(|| v.clone()));
        config.push((k.to_string(), v));
    };
    if let Some(c) = a.cores {
        put("cores", c.to_string(), None);
    }
    if let Some(s) = a.sockets {
        put("sockets", s.to_string(), None);
    }
    if let Some(m) = a.memory {
        if m < 16 {
            return Err(Error::invalid(
                "memory",
                "memory is in MiB and must be at least 16",
            ));
        }
        put("memory", m.to_string(), None);
    }
    let bridge = a
        .bridge
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.network_bridge.clone());
    put(
        "net0",
        rewrite_net0(tconfig.get_str("net0").as_deref(), &bridge, a.vlan),
        None,
    );
    if ctx.config.defaults.guest_agent
        && tconfig.get_str("agent").is_none_or(|v| v.starts_with('0'))
    {
        put("agent", "1".into(), None);
    }
    put(
        "ciuser",
        a.ci_user
            .clone()
            .unwrap_or_else(|| ctx.config.cloudinit.default_user.clone()),
        None,
    );
    put(
        "ipconfig0",
        ipconfig(a.ipconfig0.as_deref().unwrap_or("dhcp"))?,
        None,
    );
    let keys = match (&a.ssh_keys, &ctx.config.cloudinit.ssh_keys_source) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(k) => Some(k),
            Err(e) => {
                warnings.push(format!(
                    "no SSH keys added: cloudinit.ssh_keys_source {} could not be read ({e})",
                    path.display()
                ));
                None
            }
        },
        (None, None) => None,
    };
    if let Some(k) = keys
        .map(|k| {
            k.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|k| !k.is_empty())
    {
        let n = k.lines().count();
        put("sshkeys", encode_sshkeys(&k), Some(format!("{n} key(s)")));
    }
    if let Some(ns) = &a.nameserver {
        put("nameserver", ns.clone(), None);
    }
    if let Some(sd) = &a.searchdomain {
        put("searchdomain", sd.clone(), None);
    }
    let mut tags: Vec<String> = a.tags.clone();
    tags.extend(ctx.config.tags.get("vms").cloned().unwrap_or_default());
    for g in &a.tag_groups {
        let group = ctx.config.tags.get(g).ok_or_else(|| {
            Error::invalid(
                "tag_groups",
                format!(
                    "cluster-config.yaml has no tag group `{g}`; it has {}",
                    ctx.config
                        .tags
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        tags.extend(group.iter().cloned());
    }
    let tags = normalize_tags(tags)?;
    if !tags.is_empty() {
        put("tags", tags.join(";"), None);
    }
    Ok(Plan {
        template,
        source_node,
        target_node,
        full,
        storage,
        disk,
        config,
        shown,
        warnings,
    })
}

/// Clones, configures, optionally grows, starts and waits for an address.
///
/// # Errors
/// Refusals before the clone change nothing; failures after it are `Error::Partial` naming
/// the VM that exists.
pub async fn vm_create(
    ctx: &Context,
    run: &Run,
    a: &VmCreateArgs,
) -> Result<VmCreateReport, Error> {
    let p = plan(ctx, a).await?;
    run.note(format!(
        "cloning template {} on {} into {} on {}",
        p.template, p.source_node, a.name, p.target_node
    ));
    let vmid = clone_with_vmid(ctx, run, a, &p).await?;
    let node = p.target_node.clone();
    let object = format!("vm {vmid} ({}) on {node}", a.name);
    let done = format!("{object} was cloned from template {}", p.template);
    let partial = |step: &str, e: Error| Error::Partial {
        done: done.clone(),
        step: step.to_string(),
        source: Box::new(e),
        next: format!(
            "the VM exists (stopped); fix the cause and finish with vm_resize / vm_set_tags / vm_start, or remove it with vm_delete vmid {vmid}"
        ),
    };
    // Cloud-init and resources, in the same call as the clone.
    let upid = run
        .retry_locked(ctx, &object, || async {
            Ok(ctx
                .client
                .update_qemu_config(&node, vmid, &p.config, None)
                .await?)
        })
        .await
        .map_err(|e| partial("configuring it", e))?;
    if let Some(u) = upid {
        run.wait(ctx, &u, &format!("configure {object}"))
            .await
            .map_err(|e| partial("configuring it", e))?;
    }
    let mut disk_report = None;
    if let Some((_, current, plan)) = &p.disk {
        let cfg = ctx
            .client
            .get_qemu_config(&node, vmid)
            .await
            .map_err(|e| partial("reading its config", e.into()))?;
        let key = boot_disk(&cfg)
            .map(|d| d.key)
            .unwrap_or_else(|| "scsi0".into());
        if let DiskChange::Grow { to, wire } = plan {
            let upid = run
                .retry_locked(ctx, &object, || async {
                    Ok(ctx
                        .client
                        .resize_qemu_disk(&node, vmid, &key, wire, None)
                        .await?)
                })
                .await
                .map_err(|e| partial("growing its disk", e))?;
            if let Some(u) = upid {
                run.wait(ctx, &u, &format!("resize {key} of {object}"))
                    .await
                    .map_err(|e| partial("growing its disk", e))?;
            }
            disk_report = Some(DiskResize {
                key,
                before: format_size(*current),
                after: format_size(*to),
            });
        }
    }
    let mut ips = Vec::new();
    let mut warnings = p.warnings.clone();
    if a.start {
        let upid = run
            .retry_locked(ctx, &object, || async {
                Ok(ctx
                    .client
                    .start_qemu(&node, vmid, &StartQemu::default())
                    .await?)
            })
            .await
            .map_err(|e| partial("starting it", e))?;
        run.wait(ctx, &upid, &format!("start {object}"))
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
        config: p.shown.clone(),
        disk: disk_report,
        started: a.start,
        ip_addresses: ips,
        upids: run.upids(),
        warnings,
        message,
    })
}

/// Reserves a VMID, clones, and retries with the next free id when another client took it.
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
        let started = run
            .retry_locked(ctx, &object, || async {
                Ok(ctx
                    .client
                    .clone_qemu(&p.source_node, p.template, &params)
                    .await?)
            })
            .await;
        let upid = match started {
            Ok(u) => u,
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
            Err(e) => return Err(clone_hint(e)),
        };
        // The new VM's config exists now: the cluster lists it, the reservation can go.
        drop(reservation);
        match run
            .wait(
                ctx,
                &upid,
                &format!("clone template {} to vm {vmid}", p.template),
            )
            .await
        {
            Ok(_) => return Ok(vmid),
            Err(e) if e.is_vmid_taken() && a.vmid.is_none() => {
                avoid.insert(vmid);
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::refused(format!(
        "gave up after {MAX_VMID_ATTEMPTS} VMID collisions; another tool is creating VMs in vmid_ranges.vms at the same time"
    )))
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
    fn net0_keeps_model_and_mac() {
        assert_eq!(
            rewrite_net0(
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr1,firewall=1,tag=5"),
                "vmbr0",
                Some(20)
            ),
            "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=20"
        );
        assert_eq!(
            mac_of(Some("virtio=BC:24:11:00:00:01,bridge=vmbr0")).as_deref(),
            Some("BC:24:11:00:00:01")
        );
    }

    #[test]
    fn ipconfig_forms() {
        assert_eq!(ipconfig("dhcp").expect("dhcp"), "ip=dhcp");
        assert_eq!(ipconfig("10.0.0.5/24").expect("cidr"), "ip=10.0.0.5/24");
        assert_eq!(
            ipconfig("ip=10.0.0.5/24,gw=10.0.0.1").expect("full"),
            "ip=10.0.0.5/24,gw=10.0.0.1"
        );
        assert!(ipconfig("10.0.0.5").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_dns_name("web-03.lab"));
        assert!(!valid_dns_name("web_03"));
        assert!(!valid_dns_name("-web"));
    }
}

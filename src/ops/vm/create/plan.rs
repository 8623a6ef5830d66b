//! `vm_create`'s decisions, before anything is changed: [`gather`] reads what the cluster has
//! (the template, its config, the target node's bridges and storages, the guests' names), and
//! [`decide`] turns those facts and the arguments into a [`Plan`] without any I/O — every
//! refusal happens in one of the two, so a refused call changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::pve::{ClusterResource, NodeStorage, QemuConfig, encode_sshkeys};

use crate::ops::error::quote;
use crate::ops::guard::{check_range, normalize_tags};
use crate::ops::validate;
use crate::ops::vm::edit::{DiskChange, boot_disk, parse_size, plan_disk_change};
use crate::ops::{Context, Error};

use super::VmCreateArgs;

/// Everything decided before the clone.
pub(super) struct Plan {
    pub template: u32,
    pub source_node: String,
    pub target_node: String,
    pub full: bool,
    pub storage: Option<String>,
    pub disk: Option<(String, u64, DiskChange)>,
    /// Bridge and VLAN of net0; applied to the clone's own net0 (its MAC kept).
    pub bridge: String,
    pub vlan: Option<u16>,
    /// The first config write after the clone (net0 is added from the clone's config).
    pub config: Vec<(String, String)>,
    pub shown: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

/// What the cluster has, read before deciding.
pub(super) struct Facts {
    pub rows: Vec<ClusterResource>,
    pub tpl: ClusterResource,
    pub tconfig: QemuConfig,
    /// Storages of the target node (with `enabled`, `active`, `content`).
    pub node_storage: Vec<NodeStorage>,
    /// Bridges of the target node plus SDN vnets.
    pub bridges: BTreeSet<String>,
    /// The SSH keys file from the configuration: its text, or why it could not be read.
    pub keys_file: Option<Result<String, String>>,
}

/// Checks every argument's format; no I/O.
///
/// # Errors
/// The first argument PVE would refuse or that would smuggle extra properties or lines.
pub(super) fn check_formats(a: &VmCreateArgs) -> Result<(), Error> {
    if a.template.trim().is_empty() || a.template.len() > 128 {
        return Err(Error::invalid(
            "template",
            format!("'{}' is not a template vmid or name", quote(&a.template)),
        ));
    }
    validate::vm_name("name", &a.name)?;
    if let Some(n) = &a.node {
        validate::node("node", n)?;
    }
    if let Some(s) = &a.storage {
        validate::storage("storage", s)?;
    }
    if let Some(b) = &a.bridge {
        validate::bridge("bridge", b)?;
    }
    if let Some(u) = &a.ci_user {
        validate::user("ci_user", u)?;
    }
    if let Some(ip) = &a.ipconfig0 {
        ipconfig(ip)?;
    }
    if let Some(ns) = &a.nameserver {
        validate::address_list("nameserver", ns)?;
    }
    if let Some(sd) = &a.searchdomain {
        validate::dns_name_list("searchdomain", sd)?;
    }
    if let Some(k) = &a.ssh_keys {
        validate::ssh_keys("ssh_keys", k)?;
    }
    if let Some(d) = &a.description {
        validate::description("description", d)?;
    }
    if let Some(d) = a.disk.as_ref().filter(|d| d.len() > 32) {
        return Err(Error::invalid(
            "disk",
            format!("'{}' is not a size such as +10G or 40G", quote(d)),
        ));
    }
    for (arg, v) in [("cores", a.cores), ("sockets", a.sockets)] {
        if v == Some(0) {
            return Err(Error::invalid(arg, format!("{arg} must be at least 1")));
        }
    }
    if a.vlan.is_some_and(|v| v == 0 || v > 4094) {
        return Err(Error::invalid("vlan", "a VLAN tag is 1 to 4094"));
    }
    Ok(())
}

/// `dhcp`, `ip=…` / `ip6=…`, or a bare CIDR, as PVE's ipconfig0 string, checked against
/// PVE's `pve-qm-ipconfig` format.
pub(super) fn ipconfig(s: &str) -> Result<String, Error> {
    let t = s.trim();
    let wire = if t.eq_ignore_ascii_case("dhcp") {
        "ip=dhcp".to_string()
    } else if t.contains('=') {
        t.to_string()
    } else if t.contains('/') {
        format!("ip={t}")
    } else {
        return Err(Error::invalid(
            "ipconfig0",
            format!(
                "'{}' is neither dhcp nor ip=ADDRESS/PREFIX[,gw=GATEWAY]",
                quote(s)
            ),
        ));
    };
    validate::ipconfig("ipconfig0", &wire)?;
    Ok(wire)
}

/// Finds the template by vmid or name.
pub(super) fn find_template<'a>(
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
        .filter(|r| r.is_template() && r.kind == crate::pve::ResourceKind::Qemu)
        .map(|r| {
            format!(
                "{} ({})",
                r.vmid.unwrap_or(0),
                r.name.clone().unwrap_or_default()
            )
        })
        .collect();
    match matches.as_slice() {
        [one] if one.kind == crate::pve::ResourceKind::Lxc => Err(Error::invalid(
            "template",
            format!(
                "{} ({}) is a container{}; vm_create clones VM templates — create a container with ct_create (template: {}), or pick one of: {}",
                one.vmid.unwrap_or(0),
                one.name.clone().unwrap_or_default(),
                if one.is_template() { " template" } else { "" },
                one.vmid.unwrap_or(0),
                templates.join(", ")
            ),
        )),
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
            what: format!("template {}", quote(wanted)),
            hint: format!("the cluster's templates are: {}", templates.join(", ")),
        }),
        _ => Err(Error::invalid(
            "template",
            format!(
                "several guests are named {}; give the template's vmid instead",
                quote(wanted)
            ),
        )),
    }
}

/// Reads what [`decide`] needs. Every read happens before the clone.
///
/// # Errors
/// Unknown template, PVE read errors.
pub(super) async fn gather(ctx: &Context, a: &VmCreateArgs) -> Result<Facts, Error> {
    let rows = ctx.client.get_cluster_resources(None).await?;
    let tpl = find_template(&rows, a.template.trim())?.clone();
    let source_node = tpl.node.clone().unwrap_or_default();
    let target_node = a.node.clone().unwrap_or_else(|| source_node.clone());
    let node_row = rows
        .iter()
        .find(|r| crate::ops::is_node(r) && r.node.as_deref() == Some(target_node.as_str()));
    match node_row {
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
    let vmid = tpl.vmid.unwrap_or(0);
    let tconfig = ctx.client.get_qemu_config(&source_node, vmid).await?;
    let node_storage = ctx.client.list_node_storage(&target_node).await?;
    let bridges = bridges(ctx, &target_node).await?;
    let keys_file = match (&a.ssh_keys, &ctx.config.cloudinit.ssh_keys_source) {
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("{} could not be read ({e})", path.display())),
        ),
        _ => None,
    };
    Ok(Facts {
        rows,
        tpl,
        tconfig,
        node_storage,
        bridges,
        keys_file,
    })
}

/// The bridges a NIC on `node` can use: Linux and OVS bridges (`GET /nodes/{node}/network`)
/// and SDN vnets (when the cluster has SDN and the token may read it).
pub(crate) async fn bridges(ctx: &Context, node: &str) -> Result<BTreeSet<String>, Error> {
    let rows: Vec<serde_json::Value> = ctx
        .client
        .get(
            &format!("/nodes/{}/network", crate::pve::path_segment(node)),
            &[("type", "any_bridge".to_string())],
        )
        .await?;
    let mut out: BTreeSet<String> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.get("type").and_then(|t| t.as_str()),
                Some("bridge" | "OVSBridge") | None
            )
        })
        .filter_map(|r| r.get("iface").and_then(|i| i.as_str()).map(str::to_string))
        .collect();
    // SDN is optional: no SDN, or no right to read it, means no vnets.
    if let Ok(vnets) = ctx
        .client
        .get::<Vec<serde_json::Value>>("/cluster/sdn/vnets", &[])
        .await
    {
        out.extend(
            vnets
                .iter()
                .filter_map(|v| v.get("vnet").and_then(|i| i.as_str()).map(str::to_string)),
        );
    }
    Ok(out)
}

/// Refuses a bridge `node` does not have, naming the ones it has.
pub(crate) async fn require_bridge(ctx: &Context, node: &str, bridge: &str) -> Result<(), Error> {
    let known = bridges(ctx, node).await?;
    if known.contains(bridge) {
        return Ok(());
    }
    Err(Error::NotFound {
        what: format!("bridge {} on node {node}", crate::ops::error::quote(bridge)),
        hint: format!(
            "its bridges are {}; set defaults.network_bridge in cluster-config.yaml to one of them",
            known.into_iter().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Turns the facts and the arguments into a plan; pure.
///
/// # Errors
/// Every refusal that depends on the cluster: placement, storage, bridge, node size,
/// duplicate name, range, tags.
pub(super) fn decide(ctx: &Context, a: &VmCreateArgs, f: &Facts) -> Result<Plan, Error> {
    if let Some(v) = a.vmid {
        if !a.allow_outside_ranges && !ctx.config.vmid_ranges.vms.contains(v) {
            return Err(Error::refused(format!(
                "vmid {v} is outside vmid_ranges.vms ({}); pick one inside it, leave vmid out to get the lowest free one, or pass allow_outside_ranges: true",
                ctx.config.vmid_ranges.vms
            )));
        }
        check_range(ctx, v, true)?;
    }
    let same_name = f
        .rows
        .iter()
        .find(|r| crate::ops::is_guest(r) && r.name.as_deref() == Some(a.name.as_str()));
    if let Some(other) = same_name.filter(|_| !a.allow_duplicate_name) {
        return Err(Error::refused(format!(
            "a guest named {} already exists (vmid {} on {}); pick another name, or pass allow_duplicate_name: true if two guests should share it",
            a.name,
            other.vmid.unwrap_or(0),
            other.node.clone().unwrap_or_default()
        )));
    }
    let template = f.tpl.vmid.unwrap_or(0);
    let source_node = f.tpl.node.clone().unwrap_or_default();
    let target_node = a.node.clone().unwrap_or_else(|| source_node.clone());
    // `/cluster/resources` computes `shared` per storage row; storage.cfg only carries the
    // flag for plugins that are not shared by nature (an NFS entry has no `shared` key).
    let shared: BTreeSet<String> = f
        .rows
        .iter()
        .filter(|r| crate::ops::is_storage(r) && r.shared == Some(true))
        .filter_map(|r| r.storage.clone())
        .collect();
    let tdisks: Vec<String> = f
        .tconfig
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
        validate::vm_storage(&f.node_storage, &s, &target_node)?;
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
    let bridge = a
        .bridge
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.network_bridge.clone());
    if !f.bridges.contains(&bridge) {
        return Err(Error::NotFound {
            what: format!("bridge {} on node {target_node}", quote(&bridge)),
            hint: format!(
                "its bridges are {}; pick one of them",
                f.bridges.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    fits(a, f, &target_node)?;
    let disk = match &a.disk {
        None => None,
        Some(req) => {
            let d = boot_disk(&f.tconfig).ok_or_else(|| {
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
        put("memory", m.to_string(), None);
    }
    if ctx.config.defaults.guest_agent
        && f.tconfig
            .get_str("agent")
            .is_none_or(|v| v.starts_with('0'))
    {
        put("agent", "1".into(), None);
    }
    let user = a
        .ci_user
        .clone()
        .unwrap_or_else(|| ctx.config.cloudinit.default_user.clone());
    validate::user("ci_user", &user)?;
    put("ciuser", user, None);
    put(
        "ipconfig0",
        ipconfig(a.ipconfig0.as_deref().unwrap_or("dhcp"))?,
        None,
    );
    let keys = match (&a.ssh_keys, &f.keys_file) {
        (Some(k), _) => validate::ssh_keys("ssh_keys", k)?,
        (None, Some(Ok(k))) => {
            // An authorized_keys file may carry options or other lines: use the plain keys.
            let (keys, skipped): (Vec<&str>, Vec<&str>) = k
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .partition(|l| validate::ssh_keys("ssh_keys", l).is_ok());
            if !skipped.is_empty() {
                warnings.push(format!(
                    "{} line(s) of cloudinit.ssh_keys_source are not plain OpenSSH public keys and were not added",
                    skipped.len()
                ));
            }
            keys.into_iter().map(str::to_string).collect()
        }
        (None, Some(Err(why))) => {
            warnings.push(format!(
                "no SSH keys added: cloudinit.ssh_keys_source {why}"
            ));
            vec![]
        }
        (None, None) => vec![],
    };
    if !keys.is_empty() {
        let n = keys.len();
        put(
            "sshkeys",
            encode_sshkeys(&keys.join("\n")),
            Some(format!("{n} key(s)")),
        );
    }
    if let Some(ns) = &a.nameserver {
        put("nameserver", ns.clone(), None);
    }
    if let Some(sd) = &a.searchdomain {
        put("searchdomain", sd.clone(), None);
    }
    let tags = vm_tags(ctx, a, &f.tconfig)?;
    if tags.is_empty() {
        // The clone carries the template's tags; a VM never keeps the template marker.
        if !f.tconfig.tags().is_empty() {
            put("delete", "tags".into(), None);
        }
    } else {
        put("tags", tags.join(";"), None);
    }
    Ok(Plan {
        template,
        source_node,
        target_node,
        full,
        storage,
        disk,
        bridge,
        vlan: a.vlan,
        config,
        shown,
        warnings,
    })
}

/// Refuses more vCPUs or memory than the target node has.
fn fits(a: &VmCreateArgs, f: &Facts, node: &str) -> Result<(), Error> {
    if a.cores.is_none() && a.sockets.is_none() && a.memory.is_none() {
        return Ok(());
    }
    let Some(row) = f
        .rows
        .iter()
        .find(|r| crate::ops::is_node(r) && r.node.as_deref() == Some(node))
    else {
        return Ok(());
    };
    let tnum = |k: &str| {
        f.tconfig
            .get_str(k)
            .and_then(|v| v.split(',').next().and_then(|n| n.parse::<u64>().ok()))
    };
    let cores = a
        .cores
        .map(u64::from)
        .or_else(|| tnum("cores"))
        .unwrap_or(1);
    let sockets = a
        .sockets
        .map(u64::from)
        .or_else(|| tnum("sockets"))
        .unwrap_or(1);
    let vcpus = cores.saturating_mul(sockets);
    let arg = if a.cores.is_some() {
        "cores"
    } else {
        "sockets"
    };
    crate::ops::vm::edit::fits(row, node, arg, vcpus, a.memory)
}

/// The VM's tags, decided before the clone: the given tags, the `vms` group and the asked
/// tag groups; without any, the template's own tags. Never the tags that mark templates.
fn vm_tags(ctx: &Context, a: &VmCreateArgs, tconfig: &QemuConfig) -> Result<Vec<String>, Error> {
    let mut tags: Vec<String> = a.tags.clone();
    tags.extend(ctx.config.tags.get("vms").cloned().unwrap_or_default());
    for g in &a.tag_groups {
        let group = ctx.config.tags.get(g).ok_or_else(|| {
            Error::invalid(
                "tag_groups",
                format!(
                    "cluster-config.yaml has no tag group `{}`; it has {}",
                    quote(g),
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
    let mut tags = normalize_tags(tags)?;
    if tags.is_empty() {
        tags = normalize_tags(tconfig.tags()).unwrap_or_default();
    }
    let marks = template_marks(ctx);
    tags.retain(|t| !marks.contains(t));
    Ok(tags)
}

/// The tags that mark templates: the `templates` tag group (and `template` when the
/// configuration has none).
pub(super) fn template_marks(ctx: &Context) -> BTreeSet<String> {
    let group = ctx
        .config
        .tags
        .get("templates")
        .cloned()
        .unwrap_or_else(|| vec!["template".to_string()]);
    normalize_tags(group)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// net0 of the clone with the bridge and VLAN set: model, MAC and every other option of the
/// clone's own net0 kept (PVE gave the clone a fresh MAC; it must not get the template's).
/// `None` when nothing changes.
pub(super) fn rewrite_net0(
    current: Option<&str>,
    bridge: &str,
    vlan: Option<u16>,
) -> Option<String> {
    let cur = current.unwrap_or("virtio");
    let mut parts: Vec<String> = cur
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
    let new = parts.join(",");
    let same = |a: &str, b: &str| {
        let set = |s: &str| s.split(',').map(str::to_string).collect::<BTreeSet<_>>();
        set(a) == set(b)
    };
    if current.is_some_and(|c| same(c, &new)) {
        None
    } else {
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net0_keeps_model_mac_and_options() {
        assert_eq!(
            rewrite_net0(
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr1,firewall=1,tag=5"),
                "vmbr0",
                Some(20)
            )
            .as_deref(),
            Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=20")
        );
        assert_eq!(
            rewrite_net0(
                Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"),
                "vmbr0",
                None
            ),
            None,
            "nothing to change: net0 is not written"
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
        assert!(ipconfig("ip=10.0.0.5/24\nbootcmd").is_err());
        assert!(ipconfig("ip=10.0.0.5/24,gw=10.0.0.1,x=1").is_err());
    }
}

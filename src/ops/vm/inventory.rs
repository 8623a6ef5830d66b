//! Guests and templates: listing with filters and paging, one VM in detail.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pve::{ClusterResource, DiskEntry, GuestType, QemuConfig, ResourceType};

use crate::ops::{Context, Error, GIB, MIB, is_guest};

/// Largest page `vm_list` returns, so one call cannot flood the model's context.
pub const MAX_PAGE_SIZE: u32 = 200;

/// Guests per `vm_list` page unless asked otherwise: a page, with its two copies in a
/// `tools/call` result (structured and as text), stays under 8 KB.
pub const VM_LIST_PAGE: u32 = 20;

/// A guest at a glance (from `/cluster/resources`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmSummary {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// `qemu` or `lxc`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `running`, `stopped`, `paused` or `unknown` (node offline or stats not in yet).
    pub status: String,
    /// Present (true) only for a template.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
    pub tags: Vec<String>,
    /// PVE config lock (`backup`, `clone`, `migrate`, ...), when held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    pub vcpus: u64,
    pub memory_mib: u64,
    /// Size of the boot disk(s) in GiB.
    pub disk_gib: f64,
    pub uptime_s: u64,
}

/// Shell-style glob with `*` and `?`, case-insensitive (VM names are DNS-like).
///
/// The classic two-pointer wildcard match: on a mismatch it resumes after the most recent `*`
/// with one more character consumed by it, so it runs in O(pattern × name) at worst, never the
/// exponential backtracking of a naive recursion (`*a*a*a*a*b` on a long run of `a`s).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // (index of the last `*` in p, index in n where it started matching)
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub(crate) fn summarize_vm(r: &ClusterResource) -> VmSummary {
    VmSummary {
        vmid: r.vmid.unwrap_or(0),
        name: r.name.clone().unwrap_or_default(),
        node: r.node.clone().unwrap_or_default(),
        kind: String::from(r.kind.clone()),
        status: r.status.clone().unwrap_or_else(|| "unknown".into()),
        template: r.is_template(),
        tags: r.tag_list(),
        lock: r.lock.clone(),
        vcpus: r.maxcpu.unwrap_or(0.0).round() as u64,
        memory_mib: r.maxmem.unwrap_or(0) / MIB,
        disk_gib: (r.maxdisk.unwrap_or(0) as f64 / GIB as f64 * 10.0).round() / 10.0,
        uptime_s: r.uptime.unwrap_or(0),
    }
}

/// `vm_list` arguments. All filters combine (AND).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmListArgs {
    /// Case-insensitive.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub tag: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_LINE)))]
    pub tags: Option<Vec<String>>,
    /// Default `all`.
    #[serde(default)]
    pub tags_match: Option<super::select::TagsMatch>,
    #[serde(default)]
    #[schemars(length(max = 1000), inner(range(min = 100, max = 999_999_999)))]
    pub vmids: Option<Vec<u32>>,
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: Option<String>,
    /// `running`, `stopped`, `paused` or `unknown`.
    #[serde(default)]
    #[schemars(length(max = 16), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub status: Option<String>,
    /// Glob with `*` and `?`.
    #[serde(default)]
    #[schemars(length(max = 128), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub name: Option<String>,
    #[serde(default)]
    pub include_templates: bool,
    /// From 1.
    #[serde(default)]
    #[schemars(range(max = 1_000_000))]
    pub page: Option<u32>,
    /// Default 20.
    #[serde(default)]
    #[schemars(range(max = 200))]
    pub page_size: Option<u32>,
}

/// `vm_list` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmListReport {
    pub vms: Vec<VmSummary>,
    /// Guests matching the filters, over all pages.
    pub total: u32,
    pub page: u32,
    pub page_size: u32,
    /// The next page number, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
}

/// The guests of `rows` the filters match, sorted by vmid; pure.
///
/// # Errors
/// On an unknown status value.
pub fn select_vms(rows: &[ClusterResource], args: &VmListArgs) -> Result<Vec<VmSummary>, Error> {
    let tags: Vec<String> = args
        .tag
        .iter()
        .chain(args.tags.iter().flatten())
        .cloned()
        .collect();
    let selector = args.selector(&tags);
    selector.validate()?;
    let mut vms: Vec<VmSummary> = rows
        .iter()
        .filter(|r| is_guest(r))
        .map(summarize_vm)
        .filter(|v| selector.matches(v))
        .collect();
    vms.sort_by_key(|v| v.vmid);
    Ok(vms)
}

/// One page of an already filtered, sorted listing.
///
/// # Errors
/// On a zero page.
pub fn page_of(vms: &[VmSummary], args: &VmListArgs) -> Result<VmListReport, Error> {
    paged(vms.len(), args, |start, count| {
        vms.iter().skip(start).take(count).cloned().collect()
    })
}

/// One page of a listing of `total` guests, whose rows `start..start + count` `rows` gives.
fn paged(
    total: usize,
    args: &VmListArgs,
    rows: impl FnOnce(usize, usize) -> Vec<VmSummary>,
) -> Result<VmListReport, Error> {
    let page = args.page.unwrap_or(1);
    if page == 0 {
        return Err(Error::invalid("page", "pages start at 1"));
    }
    let page_size = args
        .page_size
        .unwrap_or(VM_LIST_PAGE)
        .clamp(1, MAX_PAGE_SIZE);
    let start = (u64::from(page - 1) * u64::from(page_size)).min(total as u64) as usize;
    let vms = rows(start, page_size as usize);
    let total = total as u32;
    let next_page = (u64::from(page) * u64::from(page_size) < u64::from(total)).then_some(page + 1);
    Ok(VmListReport {
        vms,
        total,
        page,
        page_size,
        next_page,
    })
}

impl VmListArgs {
    /// The selector these filters describe (`tags` holds `tag` and `tags` together).
    pub fn selector<'a>(&'a self, tags: &'a [String]) -> super::select::Selector<'a> {
        super::select::Selector {
            tags,
            tags_match: self.tags_match.unwrap_or_default(),
            node: self.node.as_deref(),
            status: self.status.as_deref(),
            name: self.name.as_deref(),
            vmids: self.vmids.as_deref(),
            include_templates: self.include_templates,
        }
    }
}

/// Lists guests across the cluster with one `/cluster/resources` call; pages after the first
/// are cut from the listing page 1 read (see [`super::listing`]).
///
/// # Errors
/// On invalid filters, or when PVE cannot be reached.
pub async fn vm_list(ctx: &Context, args: &VmListArgs) -> Result<VmListReport, Error> {
    if args.page == Some(0) {
        return Err(Error::invalid("page", "pages start at 1"));
    }
    let key = super::listing::key(args);
    let generation = ctx.client.write_generation();
    if args.page.unwrap_or(1) > 1
        && let Some(kept) = ctx.listings.get(&key, generation)
    {
        return paged(kept.len(), args, |start, count| {
            kept.summaries(start, count)
        });
    }
    if let Some(node) = &args.node {
        crate::ops::require_cluster_node(ctx, node).await?;
    }
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Vm))
        .await?;
    let vms = select_vms(&rows, args)?;
    drop(rows);
    if let Some(kept) = super::listing::Kept::new(&vms) {
        ctx.listings.put(key, generation, std::sync::Arc::new(kept));
    }
    page_of(&vms, args)
}

/// `vm_get` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmGetArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmDisk {
    /// Config key, e.g. `scsi0`, `efidisk0`, `ide2`, `unused0`.
    pub key: String,
    /// Volume id, e.g. `local-lvm:vm-1001-disk-0`, or `none`.
    pub volume: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Size as PVE writes it, e.g. `32G`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `disk`, `cdrom`, `cloudinit`, `efidisk`, `tpm` or `unused`.
    pub media: String,
}

/// A network interface of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmNic {
    pub key: String,
    /// `virtio`, `e1000`...; `veth` for a container.
    pub model: String,
    pub mac: Option<String>,
    pub bridge: Option<String>,
    pub vlan: Option<u32>,
    /// A container's interface name and `ip=` setting (`dhcp` or a CIDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// `vm_get` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmDetail {
    pub vmid: u32,
    /// `qemu` (a VM) or `lxc` (a container), from the cluster inventory.
    #[serde(rename = "type")]
    pub guest_type: String,
    pub name: String,
    /// Node resolved from the cluster inventory.
    pub node: String,
    /// Live state from `/status/current`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qmp_status: Option<String>,
    pub template: bool,
    pub protection: bool,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    pub cores: u64,
    pub sockets: u64,
    pub memory_mib: u64,
    pub cpu_type: Option<String>,
    pub bios: Option<String>,
    pub machine: Option<String>,
    pub disks: Vec<VmDisk>,
    pub nics: Vec<VmNic>,
    /// Cloud-init settings (`ciuser`, `ipconfig0`, `nameserver`, ...), SSH keys counted not shown.
    pub cloudinit: BTreeMap<String, String>,
    pub uptime_s: u64,
    /// Addresses the guest agent reports for net0's interface (IPv4 first).
    pub ip_addresses: Vec<String>,
    /// Guest agent: `running`, `not running`, `disabled`, `vm not running`, or why it is unavailable.
    pub guest_agent: String,
    /// A container's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every config key as PVE returned it, for anything not summarised above.
    pub config: BTreeMap<String, Value>,
}

/// What only a container has.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ContainerInfo {
    /// Root in the container is an unprivileged user on the host.
    pub unprivileged: bool,
    /// `features` as set, e.g. `nesting=1,keyctl=1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<String>,
    pub swap_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ostype: Option<String>,
}

/// A disk entry of the config as the tools report it.
pub(crate) fn vm_disk(d: DiskEntry) -> VmDisk {
    let media = if d.is_unused {
        "unused"
    } else if d.key == "rootfs" {
        "rootfs"
    } else if d.key.starts_with("mp") && d.volume.starts_with('/') {
        "bind"
    } else if d.key.starts_with("mp") {
        "mountpoint"
    } else if d.key.starts_with("efidisk") {
        "efidisk"
    } else if d.key.starts_with("tpmstate") {
        "tpm"
    } else if d.volume.contains("cloudinit") {
        "cloudinit"
    } else if d.is_cdrom {
        "cdrom"
    } else {
        "disk"
    };
    VmDisk {
        key: d.key,
        volume: d.volume,
        storage: d.storage,
        size: d.size,
        media: media.into(),
    }
}

/// Parses network interfaces from a VM config; pure.
pub fn parse_nics(config: &QemuConfig) -> Vec<VmNic> {
    let mut out = Vec::new();
    for (key, v) in &config.0 {
        let is_net = key
            .strip_prefix("net")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let (true, Some(s)) = (is_net, crate::pve::perl::value_as_string(v)) else {
            continue;
        };
        let mut model = String::new();
        let mut mac = None;
        let mut bridge = None;
        let mut vlan = None;
        let mut name = None;
        let mut ip = None;
        for part in s.split(',') {
            let Some((k, val)) = part.split_once('=') else {
                continue;
            };
            match k {
                "bridge" => bridge = Some(val.to_string()),
                "tag" => vlan = val.parse().ok(),
                "macaddr" | "hwaddr" => mac = Some(val.to_string()),
                "type" => model = val.to_string(),
                "name" => name = Some(val.to_string()),
                "ip" => ip = Some(val.to_string()),
                _ if model.is_empty()
                    && ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"].contains(&k) =>
                {
                    model = k.to_string();
                    mac = Some(val.to_string());
                }
                _ => {}
            }
        }
        out.push(VmNic {
            key: key.clone(),
            model,
            mac,
            bridge,
            vlan,
            name,
            ip,
        });
    }
    out
}

/// One VM in detail; its node is resolved from the cluster inventory.
///
/// # Errors
/// `pve::Error` when the VM does not exist, its node is offline, or the token lacks VM.Audit.
pub async fn vm_get(ctx: &Context, args: &VmGetArgs) -> Result<VmDetail, Error> {
    let row = ctx.client.find_vm(args.vmid).await?;
    let node = row.node.clone().unwrap_or_default();
    let t = crate::ops::guard::guest_type(&row);
    let (config, status) = tokio::try_join!(
        ctx.client.get_guest_config(t, &node, args.vmid),
        ctx.client.get_guest_status(t, &node, args.vmid)
    )?;
    let mut cloudinit = BTreeMap::new();
    for k in [
        "ciuser",
        "citype",
        "ipconfig0",
        "ipconfig1",
        "nameserver",
        "searchdomain",
        "cicustom",
        "ciupgrade",
    ] {
        if let Some(v) = config.get_str(k) {
            cloudinit.insert(k.to_string(), v);
        }
    }
    if let Some(keys) = config.get_str("sshkeys") {
        let decoded = percent_encoding::percent_decode_str(&keys)
            .decode_utf8_lossy()
            .to_string();
        let n = decoded.lines().filter(|l| !l.trim().is_empty()).count();
        cloudinit.insert("sshkeys".into(), format!("{n} key(s)"));
    }
    let tags: BTreeSet<String> = config.tags().into_iter().collect();
    let agent_enabled = config
        .get_str("agent")
        .is_some_and(|v| v.starts_with('1') || v.contains("enabled=1"));
    let mac = config.get_str("net0").and_then(|n| {
        n.split(',')
            .next()
            .and_then(|m| m.split_once('='))
            .map(|(_, mac)| mac.to_string())
    });
    let (ip_addresses, guest_agent) = if t == GuestType::Lxc {
        (
            container_addresses(ctx, &node, args.vmid, status.is_running()).await,
            "none: containers have no guest agent (addresses from PVE's interface list)".into(),
        )
    } else if status.status != "running" {
        (vec![], "vm not running".to_string())
    } else if !agent_enabled {
        (vec![], "disabled (agent: 0 in the VM config)".to_string())
    } else {
        match crate::ops::vm::agent::agent_addresses(ctx, &node, args.vmid, mac.as_deref()).await {
            Ok(Some(ips)) => (ips, "running".to_string()),
            Ok(None) => (
                vec![],
                "not running (yet): the guest agent has not answered".to_string(),
            ),
            Err(e) => (vec![], format!("unavailable: {e}")),
        }
    };
    let container = (t == GuestType::Lxc).then(|| ContainerInfo {
        unprivileged: config.get_flag("unprivileged").unwrap_or(false),
        features: config.get_str("features"),
        swap_mib: config.get_number("swap").unwrap_or(512),
        ostype: config.get_str("ostype"),
    });
    Ok(VmDetail {
        vmid: args.vmid,
        guest_type: t.as_str().into(),
        name: config.name().unwrap_or_default(),
        node,
        status: status.status.clone(),
        qmp_status: status.qmpstatus.clone(),
        template: config.template(),
        protection: config.protection(),
        tags: tags.into_iter().collect(),
        lock: config.lock().or(status.lock.clone()),
        cores: config.cores(),
        sockets: config.sockets(),
        memory_mib: config.memory_mib(),
        cpu_type: config.get_str("cpu"),
        bios: config.get_str("bios"),
        machine: config.get_str("machine"),
        disks: config.disks().into_iter().map(vm_disk).collect(),
        nics: parse_nics(&config),
        cloudinit,
        uptime_s: status.uptime.unwrap_or(0),
        ip_addresses,
        guest_agent,
        container,
        description: config.get_str("description"),
        config: config.0,
    })
}

/// A running container's addresses from `GET .../lxc/{vmid}/interfaces` (IPv4 first, no
/// loopback); none when it is stopped or PVE cannot read them.
async fn container_addresses(ctx: &Context, node: &str, vmid: u32, running: bool) -> Vec<String> {
    if !running {
        return vec![];
    }
    let Ok(ifaces) = ctx.client.get_lxc_interfaces(node, vmid).await else {
        return vec![];
    };
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for i in ifaces.iter().filter(|i| i.name.as_deref() != Some("lo")) {
        v4.extend(i.inet.iter().map(|a| strip_prefix_len(a)));
        v6.extend(i.inet6.iter().map(|a| strip_prefix_len(a)));
    }
    v4.extend(v6);
    v4
}

fn strip_prefix_len(addr: &str) -> String {
    addr.split('/').next().unwrap_or(addr).to_string()
}

#[cfg(test)]
mod glob_tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match("web-*", "web-01"));
        assert!(glob_match("WEB-??", "web-01"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("*-db", "prod-db"));
        assert!(!glob_match("web-?", "web-01"));
        assert!(!glob_match("a*b", "aXXbYYc"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("**a", "bba"));
        assert!(glob_match("a*", "a"));
    }

    #[test]
    fn a_pathological_pattern_is_answered_without_backtracking() {
        // The old recursion tried every split of the `a`s over the five stars: minutes for this.
        let name = "a".repeat(5000);
        assert!(!glob_match("*a*a*a*a*a*a*a*b", &name));
        let mut with_b = name.clone();
        with_b.push('b');
        assert!(glob_match("*a*a*a*a*a*a*a*b", &with_b));
    }
}

//! `ct_create`: a container from an OS template (`vztmpl` volume, or an appliance name of the
//! node's index that is downloaded) or by cloning a container template, with the cluster's
//! defaults, the root password from `pass` (never an argument, never shown), SSH keys from the
//! config, every task waited for, and the address reported.
//!
//! Everything that can be refused (formats, node, storage `rootdir`, bridge, template, VMID)
//! is checked before the first write; after it, a failure is a partial result naming the
//! container that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::pve::{CloneLxc, ClusterResource, CreateLxc, GuestType, ResourceKind};

use crate::ops::error::quote;
use crate::ops::guard::normalize_tags;
use crate::ops::run::Run;
use crate::ops::validate::{self, SCHEMA_BRIDGE, SCHEMA_NODE, SCHEMA_STORAGE};
use crate::ops::{Context, Error};

use super::templates::{downloaded, file_of, resolve_appliance};
use super::{online_nodes, require_online, require_storage, storage_rows};
use crate::ops::cluster::snapshot::StorageInfo;

/// Collisions with other clients tolerated before giving up on automatic VMIDs.
const MAX_VMID_ATTEMPTS: usize = 8;
/// Root disk of a new container when `disk` is not given (GiB), as PVE's GUI proposes.
const DEFAULT_DISK_GIB: u32 = 8;
/// A vmid, an appliance name, or a `vztmpl` volid (checked in full by `check_formats`).
pub const SCHEMA_TEMPLATE: &str = r"^[\w.+:/-]+$";
/// A `dns-name` (labels checked in full by `check_formats`).
pub const SCHEMA_HOSTNAME: &str = r"^[A-Za-z0-9][A-Za-z0-9.-]*$";
/// `dhcp`, or `ip=CIDR[,gw=IP]` (also ip6/gw6).
pub const SCHEMA_CT_IP: &str = r"^[\w.:/=,]+$";

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

/// `ct_create` arguments. Everything not given comes from `cluster-config.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtCreateArgs {
    /// vztmpl volid, appliance name (or start), or CT template vmid.
    #[serde(deserialize_with = "string_or_number")]
    #[schemars(length(min = 1, max = 255), regex(pattern = SCHEMA_TEMPLATE))]
    pub template: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = SCHEMA_HOSTNAME))]
    pub hostname: String,
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    #[serde(default)]
    #[schemars(length(max = 63), regex(pattern = SCHEMA_NODE))]
    pub node: Option<String>,
    /// Content `rootdir`.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = SCHEMA_STORAGE))]
    pub storage: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 8192))]
    pub cores: Option<u32>,
    /// MiB
    #[serde(default)]
    #[schemars(range(min = 16, max = 4_194_304))]
    pub memory: Option<u64>,
    /// MiB
    #[serde(default)]
    #[schemars(range(max = 4_194_304))]
    pub swap: Option<u64>,
    /// GiB (default 8)
    #[serde(default)]
    #[schemars(range(min = 1, max = 65536))]
    pub disk: Option<u32>,
    #[serde(default)]
    #[schemars(length(max = 15), regex(pattern = SCHEMA_BRIDGE))]
    pub bridge: Option<String>,
    /// `dhcp` (default) or `ip=10.0.0.5/24,gw=10.0.0.1`.
    #[serde(default)]
    #[schemars(length(max = 200), regex(pattern = SCHEMA_CT_IP))]
    pub ipconfig: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub tags: Vec<String>,
    #[serde(default)]
    pub start: bool,
    /// Default true.
    #[serde(default)]
    pub unprivileged: Option<bool>,
    /// Default: unprivileged.
    #[serde(default)]
    pub nesting: Option<bool>,
}

/// `ct_create` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CtCreateReport {
    pub vmid: u32,
    pub hostname: String,
    pub node: String,
    /// The OS template volid, or `ct N` for a clone.
    pub template: String,
    /// `template` or `clone`.
    pub method: String,
    pub storage: String,
    pub unprivileged: bool,
    /// Options sent (password and keys summarised).
    pub config: BTreeMap<String, String>,
    pub started: bool,
    pub ip_addresses: Vec<String>,
    pub upids: Vec<String>,
    pub warnings: Vec<String>,
    pub message: String,
}

/// Where the container comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A `vztmpl` volume; `node` holds it (`None`: shared storage).
    Volume { volid: String, node: Option<String> },
    /// A container template.
    Clone { vmid: u32, node: String },
}

/// The container's net0, from the bridge and `dhcp` / `ip=…,gw=…` (PVE's `net[n]` keys for
/// containers: ip `CIDR|dhcp|manual`, gw IPv4, ip6 `CIDR|auto|dhcp|manual`, gw6 IPv6).
pub(crate) fn net0(bridge: &str, ipconfig: &str) -> Result<(String, Option<String>), Error> {
    let t = ipconfig.trim();
    let parts: Vec<(String, String)> = if t.eq_ignore_ascii_case("dhcp") {
        vec![("ip".into(), "dhcp".into())]
    } else {
        let mut v = Vec::new();
        for p in t.split(',') {
            let Some((k, val)) = p.split_once('=') else {
                return Err(Error::invalid(
                    "ipconfig",
                    format!(
                        "'{}' is neither dhcp nor ip=ADDRESS/PREFIX[,gw=GATEWAY]",
                        quote(ipconfig)
                    ),
                ));
            };
            v.push((k.to_string(), val.to_string()));
        }
        v
    };
    let mut seen = BTreeSet::new();
    let mut static_ip = None;
    for (k, v) in &parts {
        let ok = match k.as_str() {
            "ip" => v == "dhcp" || v == "manual" || validate::cidr(v, false),
            "gw" => v.parse::<std::net::Ipv4Addr>().is_ok(),
            "ip6" => matches!(v.as_str(), "dhcp" | "auto" | "manual") || validate::cidr(v, true),
            "gw6" => v.parse::<std::net::Ipv6Addr>().is_ok(),
            _ => false,
        };
        if !ok || !seen.insert(k.clone()) {
            return Err(Error::invalid(
                "ipconfig",
                format!(
                    "`{}={}` is not a container address: use ip=ADDRESS/PREFIX|dhcp|manual, gw=IPv4, ip6=ADDRESS/PREFIX|dhcp|auto|manual, gw6=IPv6, each once",
                    quote(k),
                    quote(v)
                ),
            ));
        }
        if k == "ip" && validate::cidr(v, false) {
            static_ip = v.split('/').next().map(str::to_string);
        }
    }
    if parts.iter().any(|(k, _)| k == "gw") && static_ip.is_none() {
        return Err(Error::invalid(
            "ipconfig",
            "gw needs a static ip=ADDRESS/PREFIX",
        ));
    }
    let mut s = format!("name=eth0,bridge={bridge}");
    for (k, v) in &parts {
        s.push_str(&format!(",{k}={v}"));
    }
    Ok((s, static_ip))
}

/// Every format PVE would refuse, before any read.
fn check_formats(a: &CtCreateArgs) -> Result<(), Error> {
    let t = a.template.trim();
    let is_volid = t.contains(':');
    let ok = !t.is_empty()
        && t.len() <= 255
        && if is_volid {
            t.split_once(":vztmpl/").is_some_and(|(s, f)| {
                validate::storage("template", s).is_ok()
                    && !f.is_empty()
                    && f.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
            })
        } else {
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        };
    if !ok {
        return Err(Error::invalid(
            "template",
            format!(
                "'{}' is not a vztmpl volid (local:vztmpl/NAME), an appliance name or a container template's vmid",
                quote(&a.template)
            ),
        ));
    }
    if !validate::is_dns_name(&a.hostname) || a.hostname.len() > 253 {
        return Err(Error::invalid(
            "hostname",
            format!(
                "'{}' is not a host name: letters, digits and '-' in dot-separated labels of at most 63, e.g. pihole-02",
                quote(&a.hostname)
            ),
        ));
    }
    if let Some(n) = &a.node {
        validate::node("node", n)?;
    }
    if let Some(s) = &a.storage {
        validate::storage("storage", s)?;
    }
    if let Some(b) = &a.bridge {
        validate::bridge("bridge", b)?;
    }
    if a.cores == Some(0) {
        return Err(Error::invalid("cores", "cores must be at least 1"));
    }
    if a.memory.is_some_and(|m| m < 16) {
        return Err(Error::invalid("memory", "memory is at least 16 MiB"));
    }
    if a.disk == Some(0) {
        return Err(Error::invalid("disk", "disk is at least 1 GiB"));
    }
    if a.unprivileged == Some(false) && a.nesting == Some(true) {
        return Err(Error::invalid(
            "nesting",
            "PVE lets only root@pam set features on a privileged container; drop nesting or keep unprivileged",
        ));
    }
    Ok(())
}

/// Resolves `template` to a source and the node to create on.
async fn resolve_source(
    ctx: &Context,
    a: &CtCreateArgs,
    rows: &[ClusterResource],
) -> Result<(Source, String), Error> {
    let t = a.template.trim();
    if let Ok(id) = t.parse::<u32>() {
        let Some(r) = rows
            .iter()
            .find(|r| crate::ops::is_guest(r) && r.vmid == Some(id))
        else {
            return Err(Error::NotFound {
                what: format!("container template {id}"),
                hint: "list container templates with vm_list include_templates: true".into(),
            });
        };
        if r.kind != ResourceKind::Lxc {
            return Err(Error::invalid(
                "template",
                format!("{id} is a VM, not a container template; use vm_create for VMs"),
            ));
        }
        if !r.is_template() {
            return Err(Error::invalid(
                "template",
                format!(
                    "container {id} ({}) is not a template; convert it first or use an OS template",
                    r.name.clone().unwrap_or_default()
                ),
            ));
        }
        let tnode = r.node.clone().unwrap_or_default();
        if let Some(n) = a.node.as_ref().filter(|n| **n != tnode) {
            return Err(Error::invalid(
                "node",
                format!(
                    "container template {id} lives on {tnode}; clone it there (leave node out) and migrate the container to {n} afterwards"
                ),
            ));
        }
        return Ok((
            Source::Clone {
                vmid: id,
                node: tnode.clone(),
            },
            tnode,
        ));
    }
    let online = online_nodes(rows);
    let have = downloaded(ctx, rows).await?;
    let fits_node = |d: &super::DownloadedTemplate| match (&a.node, &d.node) {
        (Some(n), Some(dn)) => n == dn,
        _ => true,
    };
    let found: Option<&super::DownloadedTemplate> = if t.contains(':') {
        have.iter().filter(|d| d.volid == t).find(|d| fits_node(d))
    } else {
        let exact: Vec<&super::DownloadedTemplate> = have
            .iter()
            .filter(|d| file_of(&d.volid) == t && fits_node(d))
            .collect();
        let prefix: Vec<&super::DownloadedTemplate> = have
            .iter()
            .filter(|d| file_of(&d.volid).starts_with(t) && fits_node(d))
            .collect();
        let files: BTreeSet<&str> = prefix.iter().map(|d| file_of(&d.volid)).collect();
        match (exact.first(), files.len()) {
            (Some(d), _) => Some(*d),
            (None, 1) => prefix.first().copied(),
            (None, 0) => None,
            (None, _) => {
                return Err(Error::invalid(
                    "template",
                    format!(
                        "{} matches several downloaded templates ({}); give the volid",
                        quote(t),
                        files.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    };
    if let Some(d) = found {
        let node = match (&a.node, &d.node) {
            (Some(n), _) => n.clone(),
            (None, Some(n)) => n.clone(),
            (None, None) => online
                .first()
                .cloned()
                .ok_or_else(|| Error::refused("no node of the cluster is online"))?,
        };
        return Ok((
            Source::Volume {
                volid: d.volid.clone(),
                node: d.node.clone(),
            },
            node,
        ));
    }
    // Not downloaded where it is needed: say where it is, or what to download.
    let elsewhere: Vec<String> = have
        .iter()
        .filter(|d| d.volid == t || file_of(&d.volid).starts_with(t))
        .map(|d| format!("{} on {}", d.volid, d.node.clone().unwrap_or_default()))
        .collect();
    let node = a
        .node
        .clone()
        .or_else(|| online.first().cloned())
        .ok_or_else(|| Error::refused("no node of the cluster is online"))?;
    if !elsewhere.is_empty() {
        return Err(Error::refused(format!(
            "template {} is not on a storage {node} can read (found: {}); leave node out to create where it is, or run ct_template_download with node: {node}",
            quote(t),
            elsewhere.join(", ")
        )));
    }
    let name = file_of(t);
    let index = ctx.client.list_appliances(&node).await?;
    match resolve_appliance(&index, name, &node) {
        Ok(app) => Err(Error::refused(format!(
            "OS template {} is in {node}'s appliance index but not downloaded; run ct_template_download with template: {} (node: {node}) first",
            app.template, app.template
        ))),
        Err(Error::NotFound { .. }) => Err(Error::NotFound {
            what: format!("OS template {}", quote(t)),
            hint: "list downloaded templates and the appliance index with ct_templates".into(),
        }),
        Err(e) => Err(e),
    }
}

/// The container's tags: the given ones plus the `containers` tag group (else `vms`).
fn ct_tags(ctx: &Context, a: &CtCreateArgs) -> Result<Vec<String>, Error> {
    let mut tags = a.tags.clone();
    let group = ctx
        .config
        .tags
        .get("containers")
        .or_else(|| ctx.config.tags.get("vms"));
    tags.extend(group.cloned().unwrap_or_default());
    normalize_tags(tags)
}

/// SSH keys from `cloudinit.ssh_keys_source`, plain OpenSSH keys only.
fn config_keys(ctx: &Context, warnings: &mut Vec<String>) -> Vec<String> {
    let Some(path) = &ctx.config.cloudinit.ssh_keys_source else {
        return vec![];
    };
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| validate::ssh_keys("ssh_keys", l).is_ok())
            .map(str::to_string)
            .collect(),
        Err(e) => {
            warnings.push(format!(
                "no SSH keys added: cloudinit.ssh_keys_source {} could not be read ({e})",
                path.display()
            ));
            vec![]
        }
    }
}

/// The root password from `pass`, when the config names an entry.
async fn root_password(ctx: &Context) -> Result<Option<SecretString>, Error> {
    if ctx.config.credentials.ct_password_pass_path.is_none() {
        return Ok(None);
    }
    let cfg = ctx.config.clone();
    tokio::task::spawn_blocking(move || {
        crate::config::credentials::ct_root_password(&cfg, &crate::config::process_env)
    })
    .await
    .map_err(|e| Error::Setup(format!("reading the container root password: {e}")))?
    .map_err(|e| Error::Setup(format!("credentials.ct_password_pass_path: {e}")))
}

/// Creates (or clones) the container, starts it when asked and reports its address.
///
/// # Errors
/// Refusals before the first write change nothing; after it, failures are `Error::Partial`
/// naming the container that exists.
pub async fn ct_create(
    ctx: &Context,
    run: &Run,
    a: &CtCreateArgs,
) -> Result<CtCreateReport, Error> {
    check_formats(a)?;
    let rows = ctx.client.get_cluster_resources(None).await?;
    let (source, node) = resolve_source(ctx, a, &rows).await?;
    require_online(&rows, &node)?;
    let stores: Vec<StorageInfo> = storage_rows(&rows);
    let storage = a
        .storage
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.storage.clone());
    let is_clone = matches!(source, Source::Clone { .. });
    if !is_clone || a.storage.is_some() {
        require_storage(&stores, &node, &storage, "rootdir", "container disks").map_err(|e| {
            if a.storage.is_none() {
                Error::refused(format!(
                    "the default storage (defaults.storage) does not fit: {e} — pass storage"
                ))
            } else {
                e
            }
        })?;
    }
    let bridge = a
        .bridge
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.network_bridge.clone());
    crate::ops::vm::create::plan::require_bridge(ctx, &node, &bridge).await?;
    let (net0, static_ip) = net0(&bridge, a.ipconfig.as_deref().unwrap_or("dhcp"))?;
    if let Some(v) = a.vmid {
        if !ctx.config.vmid_ranges.vms.contains(v) {
            return Err(Error::refused(format!(
                "vmid {v} is outside vmid_ranges.vms ({}); pick one inside it, or leave vmid out to get the lowest free one",
                ctx.config.vmid_ranges.vms
            )));
        }
        if let Some(r) = rows.iter().find(|r| r.vmid == Some(v)) {
            return Err(Error::refused(format!(
                "vmid {v} is already in use ({} on {}); leave vmid out to get the lowest free one in vmid_ranges.vms",
                r.name.clone().unwrap_or_default(),
                r.node.clone().unwrap_or_default()
            )));
        }
    }
    let tags = ct_tags(ctx, a)?;
    let unprivileged = a.unprivileged.unwrap_or(true);
    let nesting = a.nesting.unwrap_or(unprivileged);
    let mut warnings = Vec::new();
    // What the create or the config write after a clone sets.
    let mut options: Vec<(String, String)> = Vec::new();
    if let Some(c) = a.cores {
        options.push(("cores".into(), c.to_string()));
    }
    if let Some(m) = a.memory {
        options.push(("memory".into(), m.to_string()));
    }
    if let Some(s) = a.swap {
        options.push(("swap".into(), s.to_string()));
    }
    options.push(("net0".into(), net0));
    if !tags.is_empty() {
        options.push(("tags".into(), tags.join(";")));
    }
    if nesting && (!is_clone || a.nesting.is_some()) {
        options.push(("features".into(), "nesting=1".into()));
    }
    let mut shown: BTreeMap<String, String> = options.iter().cloned().collect();
    let (password, keys) = if is_clone {
        if ctx.config.credentials.ct_password_pass_path.is_some() {
            warnings.push(
                "a clone keeps the template's root password and SSH keys; credentials.ct_password_pass_path is used only for containers made from OS templates".into(),
            );
        }
        (None, vec![])
    } else {
        let p = root_password(ctx).await?;
        (p, config_keys(ctx, &mut warnings))
    };
    if password.is_some() {
        shown.insert("password".into(), "set from pass".into());
    } else if !is_clone && keys.is_empty() {
        warnings.push(
            "no root password (credentials.ct_password_pass_path) and no SSH keys (cloudinit.ssh_keys_source) are configured: log in with `pct enter` on the node".into(),
        );
    }
    if !keys.is_empty() {
        shown.insert("ssh-public-keys".into(), format!("{} key(s)", keys.len()));
    }
    let (template_text, method) = match &source {
        Source::Volume { volid, .. } => (volid.clone(), "template"),
        Source::Clone { vmid, .. } => (format!("ct {vmid}"), "clone"),
    };
    run.note(format!(
        "creating container {} on {node} from {template_text}",
        a.hostname
    ));
    let vmid = match &source {
        Source::Volume { volid, .. } => {
            let disk = a.disk.unwrap_or(DEFAULT_DISK_GIB);
            let mut opts = options.clone();
            opts.insert(0, ("hostname".into(), a.hostname.clone()));
            opts.push(("rootfs".into(), format!("{storage}:{disk}")));
            shown.insert("rootfs".into(), format!("{storage}:{disk}"));
            shown.insert("hostname".into(), a.hostname.clone());
            let params = CreateLxc {
                ostemplate: volid.clone(),
                storage: Some(storage.clone()),
                options: opts,
                unprivileged: Some(unprivileged),
                ssh_public_keys: (!keys.is_empty()).then(|| keys.join("\n")),
                password,
                ..Default::default()
            };
            let on: &str = &node;
            with_vmid(ctx, run, a, on, &template_text, |vmid| {
                let mut p = params.clone();
                p.vmid = vmid;
                async move { ctx.client.create_lxc(on, &p).await }
            })
            .await?
        }
        Source::Clone {
            vmid: tid,
            node: tnode,
        } => {
            let params = CloneLxc {
                hostname: Some(a.hostname.clone()),
                full: a.storage.is_some().then_some(true),
                storage: a.storage.clone(),
                ..Default::default()
            };
            shown.insert("hostname".into(), a.hostname.clone());
            let (tn, tid): (&str, u32) = (tnode, *tid);
            with_vmid(ctx, run, a, &node, &template_text, |vmid| {
                let mut p = params.clone();
                p.newid = vmid;
                async move { ctx.client.clone_lxc(tn, tid, &p).await }
            })
            .await?
        }
    };
    ctx.client.note_vm_node(vmid, &node);
    let object = format!("container {vmid} ({}) on {node}", a.hostname);
    let partial = |done: &str, step: &str, e: Error| {
        if e.is_cancelled() {
            run.note(format!("cancelled: {object} exists; {done}"));
        }
        Error::Partial {
            done: format!("{object} was created from {template_text} ({done})"),
            step: step.to_string(),
            source: Box::new(e),
            next: format!(
                "fix the cause and finish with vm_start / vm_resize, or remove it with vm_delete vmid {vmid}"
            ),
        }
    };
    let storage_used = if let Source::Clone {
        vmid: tid,
        node: tnode,
    } = &source
    {
        // The clone carries the template's resources and net0: apply the asked ones.
        ctx.client
            .set_lxc_config(&node, vmid, &options, None)
            .await
            .map_err(|e| {
                partial(
                    "stopped, still with the template's resources and network",
                    "configuring it",
                    e.into(),
                )
            })?;
        if let Some(gib) = a.disk {
            grow_rootfs(ctx, run, &node, vmid, gib, &object)
                .await
                .map_err(|e| partial("configured and stopped", "growing its root disk", e))?;
        }
        match a.storage.clone() {
            Some(s) => s,
            None => template_storage_of(ctx, tnode, *tid).await,
        }
    } else {
        storage.clone()
    };
    let mut ips = Vec::new();
    if a.start {
        run.task_locked(ctx, &object, &format!("start {object}"), || async {
            Ok(Some(
                ctx.client.start_guest(GuestType::Lxc, &node, vmid).await?,
            ))
        })
        .await
        .map_err(|e| partial("stopped", "starting it", e))?;
        match &static_ip {
            Some(ip) => ips.push(ip.clone()),
            None => match wait_for_address(ctx, run, &node, vmid).await {
                Ok(v) => ips = v,
                Err(e) if e.is_cancelled() => {
                    return Err(partial("running", "waiting for its address", e));
                }
                Err(e) => warnings.push(format!("the container runs, but: {e}")),
            },
        }
    } else if let Some(ip) = &static_ip {
        ips.push(ip.clone());
    }
    let message = format!(
        "{object} created from {template_text} on {storage_used}{}{}",
        if a.start { ", running" } else { ", stopped" },
        if ips.is_empty() {
            String::new()
        } else {
            format!(", address {}", ips.join(", "))
        }
    );
    Ok(CtCreateReport {
        vmid,
        hostname: a.hostname.clone(),
        node,
        template: template_text,
        method: method.into(),
        storage: storage_used,
        unprivileged,
        config: shown,
        started: a.start,
        ip_addresses: ips,
        upids: run.upids(),
        warnings,
        message,
    })
}

/// The storage of a container template's rootfs (a linked clone stays there).
async fn template_storage_of(ctx: &Context, node: &str, vmid: u32) -> String {
    ctx.client
        .get_guest_config(GuestType::Lxc, node, vmid)
        .await
        .ok()
        .and_then(|c| c.get_str("rootfs"))
        .and_then(|r| r.split(':').next().map(str::to_string))
        .unwrap_or_default()
}

/// Grows a clone's rootfs to `gib` GiB; smaller than it is is refused.
async fn grow_rootfs(
    ctx: &Context,
    run: &Run,
    node: &str,
    vmid: u32,
    gib: u32,
    object: &str,
) -> Result<(), Error> {
    let cfg = ctx
        .client
        .get_guest_config(GuestType::Lxc, node, vmid)
        .await?;
    let current = cfg
        .get_str("rootfs")
        .and_then(|r| {
            r.split(',')
                .find_map(|p| p.strip_prefix("size=").map(str::to_string))
        })
        .and_then(|s| crate::ops::parse_size(&s))
        .unwrap_or(0);
    let want = u64::from(gib) * crate::ops::GIB;
    if want < current {
        return Err(Error::invalid(
            "disk",
            format!(
                "the template's root disk is {}; a container disk only grows",
                crate::ops::format_size(current)
            ),
        ));
    }
    if want == current {
        return Ok(());
    }
    run.task_locked(
        ctx,
        object,
        &format!("resize rootfs of {object}"),
        || async {
            Ok(ctx
                .client
                .resize_lxc_disk(node, vmid, "rootfs", &format!("{gib}G"), None)
                .await?)
        },
    )
    .await?;
    Ok(())
}

/// Polls the container's interfaces until eth0 has an IPv4 address, up to the agent deadline.
async fn wait_for_address(
    ctx: &Context,
    run: &Run,
    node: &str,
    vmid: u32,
) -> Result<Vec<String>, Error> {
    let start = Instant::now();
    let mut delay = ctx.timeouts.poll;
    loop {
        // PVE answers null until the container runs (no list to decode): no address yet.
        let ifaces = match ctx.client.get_lxc_interfaces(node, vmid).await {
            Ok(v) => v,
            Err(crate::pve::Error::Decode { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let found: Vec<String> = ifaces
            .iter()
            .filter(|i| i.name.as_deref() == Some("eth0"))
            .filter_map(|i| i.inet.as_deref())
            .filter_map(|a| a.split('/').next())
            .map(str::to_string)
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        if start.elapsed() >= ctx.timeouts.agent {
            return Err(Error::refused(format!(
                "container {vmid} on {node} got no IPv4 address on eth0 within {:.0} s; check the DHCP server on its bridge",
                ctx.timeouts.agent.as_secs_f64()
            )));
        }
        run.note(format!("container {vmid}: waiting for an address on eth0"));
        tokio::select! {
            _ = run.cancel.cancelled() => return Err(Error::Pve(crate::pve::Error::Cancelled { upids_running: vec![] })),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(ctx.timeouts.poll_max);
    }
}

/// Reserves a VMID, runs the create (or clone) with it, waits for the task, and retries with
/// the next free id when another client took it.
async fn with_vmid<F, Fut>(
    ctx: &Context,
    run: &Run,
    a: &CtCreateArgs,
    node: &str,
    from: &str,
    op: F,
) -> Result<u32, Error>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<crate::pve::Upid, crate::pve::Error>>,
{
    let mut avoid = BTreeSet::new();
    for _ in 0..MAX_VMID_ATTEMPTS {
        let reservation = match a.vmid {
            Some(_) => None,
            None => Some(
                ctx.allocator
                    .reserve(ctx, &ctx.config.vmid_ranges.vms, "vms", &avoid)
                    .await?,
            ),
        };
        let vmid = reservation.as_ref().map(|r| r.vmid).or(a.vmid).unwrap_or(0);
        let object = format!("container {vmid} on {node}");
        let what = format!("create container {vmid} from {from}");
        let started = run
            .task_locked(ctx, &object, &what, || async { Ok(Some(op(vmid).await?)) })
            .await;
        drop(reservation);
        match started {
            Ok(_) => return Ok(vmid),
            Err(e) if e.is_vmid_taken() && a.vmid.is_none() => {
                run.note(format!(
                    "vmid {vmid} was taken meanwhile; trying the next free id"
                ));
                avoid.insert(vmid);
            }
            Err(e) if e.is_vmid_taken() => {
                return Err(Error::refused(format!(
                    "vmid {vmid} was taken by someone else; leave vmid out to get a free one"
                )));
            }
            Err(e) if may_exist(&e) => {
                let state = format!(
                    "the creation of container {vmid} ({}) on {node} from {from} was started; it may now exist",
                    a.hostname
                );
                if e.is_cancelled() {
                    run.note(format!("cancelled: {state}"));
                }
                return Err(Error::Partial {
                    done: state,
                    step: "waiting for the create task".into(),
                    source: Box::new(e),
                    next: format!(
                        "check it with vm_get vmid {vmid}; finish it with vm_start, or remove it with vm_delete vmid {vmid}"
                    ),
                });
            }
            Err(e) if e.to_string().contains("Linked clone feature") => {
                return Err(Error::refused(format!(
                    "{e} — the template's storage cannot make linked clones: pass storage (a full clone onto it)"
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::refused(format!(
        "gave up after {MAX_VMID_ATTEMPTS} VMID collisions; another tool is creating guests in vmid_ranges.vms at the same time"
    )))
}

/// Whether a create failure may have left the container behind: PVE accepted it but its end
/// was not seen. A failed create task removes its half-made container itself.
fn may_exist(e: &Error) -> bool {
    use crate::pve::Error as P;
    match e {
        Error::Pve(P::Cancelled { upids_running }) => !upids_running.is_empty(),
        Error::Pve(P::TaskTimeout { .. }) => true,
        Error::Pve(P::Connect { .. } | P::Timeout { .. } | P::Transport { .. }) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net0_follows_pves_container_format() {
        assert_eq!(
            net0("vmbr0", "dhcp").expect("dhcp").0,
            "name=eth0,bridge=vmbr0,ip=dhcp"
        );
        let (s, ip) = net0("vmbr0", "ip=10.0.0.5/24,gw=10.0.0.1").expect("static");
        assert_eq!(s, "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1");
        assert_eq!(ip.as_deref(), Some("10.0.0.5"));
        for bad in [
            "10.0.0.5",
            "ip=10.0.0.5",
            "ip=10.0.0.5/24,ip=10.0.0.6/24",
            "ip=dhcp,gw=10.0.0.1",
            "ip=10.0.0.5/24,hwaddr=00:11:22:33:44:55",
            "ip=10.0.0.5/24,gw=10.0.0.1\nx",
        ] {
            assert!(net0("vmbr0", bad).is_err(), "{bad}");
        }
    }
}

//! Cluster profiles (`clusters/*.yaml`): a whole cluster defined once — the seed's format
//! (`name`, `type`, `network`, `nodes.controlplane` / `nodes.workers`, `template`, `tags`,
//! `flux`) plus optional extensions with safe defaults (static addressing from a node range,
//! the bridge, the disk storage, the nodes a role may use).
//!
//! The raw serde shapes deny unknown keys; every problem of one file is reported as
//! `FILE:LINE: REASON`, with "did you mean" for a misspelt key. Rules that look at several
//! profiles at once (CIDR overlaps, tag sets, Flux paths) are in `ops::profile`; this module
//! checks one file and needs no cluster.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::closest;

/// `type:` — what runs on the guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// Talos Linux: `talosctl` generates, applies and bootstraps the configuration.
    Talos,
    /// Plain cloud-init VMs (k3s, kubeadm, Ansible): the VM phases only.
    Vms,
}

impl fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileKind::Talos => "talos",
            ProfileKind::Vms => "vms",
        })
    }
}

/// How guests get their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// DHCP (default): found through the guest agent, else the node's neighbour table.
    #[default]
    Dhcp,
    /// One address per guest from `network.node_cidr`, written as cloud-init `ipconfig0`.
    Static,
}

/// `placement:` of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementMode {
    /// Round-robin over the nodes with room, capacity-aware (default).
    #[default]
    Spread,
}

/// A cluster profile file, as written (the JSON Schema editors get).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// The profile's name; the file is `NAME.yaml`. Guests are named `NAME-cp-1`, `NAME-worker-1`.
    pub name: String,
    /// `talos` or `vms`.
    #[serde(rename = "type")]
    pub kind: ProfileKind,
    pub network: RawNetwork,
    pub nodes: RawNodes,
    /// Template to clone: its vmid or its exact name.
    pub template: RawTemplate,
    /// Tags every guest of the cluster carries; together they identify this cluster and no other.
    pub tags: Vec<String>,
    /// Flux bootstrap after the cluster is up (optional).
    #[serde(default)]
    pub flux: Option<RawFlux>,
    /// Storage for the clones' disks (default `defaults.storage`).
    #[serde(default)]
    pub storage: Option<String>,
    /// Per-node copies of the template (node name -> vmid or name): a guest placed on such a
    /// node is cloned from its copy there instead of being cloned on the template's node and
    /// moved (PVE clones to another node only from shared storage).
    #[serde(default)]
    pub template_copies: Option<std::collections::BTreeMap<String, RawTemplate>>,
}

/// A template named by vmid or by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawTemplate {
    Vmid(u32),
    Name(String),
}

impl fmt::Display for RawTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawTemplate::Vmid(v) => write!(f, "{v}"),
            RawTemplate::Name(n) => f.write_str(n),
        }
    }
}

/// `network:`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// Kubernetes API endpoint `host:port` (required for `type: talos`).
    #[serde(default)]
    pub api_endpoint: Option<String>,
    /// Pod network, e.g. `10.245.0.0/16`.
    #[serde(default)]
    pub pod_cidr: Option<String>,
    /// Service network, e.g. `10.97.0.0/12`.
    #[serde(default)]
    pub service_cidr: Option<String>,
    /// The guests' own network, e.g. `10.30.0.0/24` (required for `addresses: static`).
    #[serde(default)]
    pub node_cidr: Option<String>,
    /// `dhcp` (default) or `static` (from `node_cidr`, via cloud-init `ipconfig0`).
    #[serde(default)]
    pub addresses: Addressing,
    /// Gateway for static addresses.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Host number in `node_cidr` of the first guest (default 10); the next guests follow.
    #[serde(default)]
    pub first_host: Option<u32>,
    /// DNS servers for static addresses, separated by spaces.
    #[serde(default)]
    pub nameserver: Option<String>,
    /// Bridge of net0 (default `defaults.network_bridge`).
    #[serde(default)]
    pub bridge: Option<String>,
    /// VLAN tag of net0.
    #[serde(default)]
    pub vlan: Option<u16>,
}

/// `nodes:`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNodes {
    pub controlplane: RawRole,
    #[serde(default)]
    pub workers: Option<RawRole>,
}

/// One role's guests.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub count: u32,
    pub cores: u32,
    /// MiB.
    pub memory: u64,
    /// Boot disk size, e.g. `100G` (grown from the template's).
    pub disk: String,
    /// `auto` (default: the lowest free ids in `vmid_ranges.vms`) or the first vmid.
    #[serde(default)]
    pub start_vmid: Option<RawStartVmid>,
    /// `spread` (default).
    #[serde(default)]
    pub placement: PlacementMode,
    /// Only these nodes (default: all).
    #[serde(default)]
    pub on_nodes: Option<Vec<String>>,
}

/// `start_vmid: auto` or a number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawStartVmid {
    Vmid(u32),
    Word(String),
}

/// `flux:`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlux {
    /// Git repository, `git@host:org/repo.git` or `ssh://git@host/org/repo.git`.
    pub repo: String,
    /// Path of this cluster in the repository, e.g. `clusters/staging`.
    pub path: String,
    #[serde(default = "default_branch")]
    pub branch: String,
}

fn default_branch() -> String {
    "main".into()
}

/// A network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/16`; host bits must be zero.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not in CIDR notation; write e.g. 10.245.0.0/16"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("`/{p}` is not a prefix length (0-{max})"))?;
        // Host bits are allowed, as Kubernetes and Talos allow them (the seed's
        // `10.97.0.0/12` is the network 10.96.0.0/12): the network is what counts.
        let c = Cidr { addr, prefix };
        Ok(c)
    }

    fn width(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn bits(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn mask(&self) -> u128 {
        let w = self.width();
        let host = w - u32::from(self.prefix);
        let all = if w == 128 {
            u128::MAX
        } else {
            (1u128 << w) - 1
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    fn network_bits(&self) -> u128 {
        self.bits() & self.mask()
    }

    fn from_bits(bits: u128, v4: bool, prefix: u8) -> Cidr {
        let addr = if v4 {
            IpAddr::V4(std::net::Ipv4Addr::from(bits as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        };
        Cidr { addr, prefix }
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        (self.bits() & shorter.mask()) == (other.bits() & shorter.mask())
    }

    /// Number of host addresses (IPv4: without network and broadcast), capped.
    pub fn hosts(&self) -> u64 {
        let host = self.width() - u32::from(self.prefix);
        if host >= 63 {
            return u64::MAX;
        }
        let n = 1u64 << host;
        if self.addr.is_ipv4() {
            n.saturating_sub(2)
        } else {
            n
        }
    }

    /// The `n`-th address of the network (0 = the network address).
    pub fn nth(&self, n: u64) -> IpAddr {
        Cidr::from_bits(
            self.network_bits() + u128::from(n),
            self.addr.is_ipv4(),
            self.prefix,
        )
        .addr
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let c = Cidr {
            addr: *ip,
            prefix: self.prefix,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && c.bits() & self.mask() == self.network_bits()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A role of the cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Controlplane,
    Worker,
}

impl Role {
    /// The name part of its guests: `cp`, `worker`.
    pub fn short(self) -> &'static str {
        match self {
            Role::Controlplane => "cp",
            Role::Worker => "worker",
        }
    }

    /// The tag added to its guests beside the profile's.
    pub fn tag(self) -> &'static str {
        match self {
            Role::Controlplane => "controlplane",
            Role::Worker => "worker",
        }
    }
}

/// A validated role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    pub role: Role,
    pub count: u32,
    pub cores: u32,
    pub memory_mib: u64,
    /// As written, e.g. `100G`.
    pub disk: String,
    pub disk_bytes: u64,
    /// `None` = auto.
    pub start_vmid: Option<u32>,
    pub placement: PlacementMode,
    pub on_nodes: Option<Vec<String>>,
}

/// A validated `network:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileNetwork {
    pub api_endpoint: Option<String>,
    pub pod_cidr: Option<Cidr>,
    pub service_cidr: Option<Cidr>,
    pub node_cidr: Option<Cidr>,
    pub addressing: Addressing,
    pub gateway: Option<IpAddr>,
    pub first_host: u32,
    pub nameserver: Option<String>,
    pub bridge: Option<String>,
    pub vlan: Option<u16>,
}

/// A validated `flux:`.
#[derive(Debug, Clone, PartialEq)]
pub struct FluxSpec {
    pub repo: String,
    pub path: String,
    pub branch: String,
}

impl FluxSpec {
    /// The repository as the `ssh://` URL `flux bootstrap git --url` takes (scp-like
    /// `git@host:org/repo.git` is rewritten).
    pub fn url(&self) -> String {
        if self.repo.contains("://") {
            return self.repo.clone();
        }
        match self.repo.split_once(':') {
            Some((userhost, path)) => format!("ssh://{userhost}/{}", path.trim_start_matches('/')),
            None => self.repo.clone(),
        }
    }
}

/// A profile that passed the single-file checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterProfile {
    pub name: String,
    pub kind: ProfileKind,
    pub network: ProfileNetwork,
    /// Control plane first, then workers (a role with `count: 0` is kept).
    pub roles: Vec<RoleSpec>,
    pub template: RawTemplate,
    /// Lower-case, sorted, deduplicated.
    pub tags: Vec<String>,
    pub flux: Option<FluxSpec>,
    pub storage: Option<String>,
    /// `(node, template)` copies of the template, by node name.
    pub template_copies: Vec<(String, RawTemplate)>,
    /// Where it was read from (`shipped:NAME` for the built-in examples).
    pub origin: String,
    /// The file's text (line lookups for the cross-profile problems).
    pub text: String,
}

impl ClusterProfile {
    /// Every CIDR the profile claims, with its key.
    pub fn cidrs(&self) -> Vec<(&'static str, Cidr)> {
        let n = &self.network;
        [
            ("network.pod_cidr", n.pod_cidr),
            ("network.service_cidr", n.service_cidr),
            ("network.node_cidr", n.node_cidr),
        ]
        .into_iter()
        .filter_map(|(k, c)| c.map(|c| (k, c)))
        .collect()
    }

    /// Guests in all.
    pub fn guest_count(&self) -> u32 {
        self.roles.iter().map(|r| r.count).sum()
    }

    /// `FILE:LINE: REASON` for a key path of this profile (line when the key is found).
    pub fn problem(&self, key: &str, reason: impl Into<String>) -> ProfileProblem {
        ProfileProblem {
            file: self.origin.clone(),
            line: key_line(&self.text, key),
            reason: reason.into(),
        }
    }
}

/// One problem of a profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileProblem {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for ProfileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// JSON Schema (draft 2020-12) of a cluster profile, for editors.
pub fn profile_json_schema() -> serde_json::Value {
    schemars::schema_for!(RawProfile).to_value()
}

/// Parses and checks one profile file's text; `origin` names it in problems, `stem` is the
/// file name without `.yaml` (the profile's name must match it).
///
/// # Errors
/// Every problem found, as `FILE:LINE: REASON`.
pub fn parse_profile(
    text: &str,
    origin: &str,
    stem: &str,
) -> Result<ClusterProfile, Vec<ProfileProblem>> {
    let at = |line: Option<usize>, reason: String| ProfileProblem {
        file: origin.to_string(),
        line,
        reason,
    };
    if text.trim().is_empty() {
        return Err(vec![at(
            None,
            "the file is empty; copy clusters/talos-staging.yaml and edit it".into(),
        )]);
    }
    let de = yaml_serde::Deserializer::from_str(text);
    let raw: RawProfile = match serde_path_to_error::deserialize(de) {
        Ok(r) => r,
        Err(e) => return Err(vec![serde_problem(&e, text, origin)]),
    };
    let mut problems = Vec::new();
    let mut bad = |key: &str, reason: String| problems.push(at(key_line(text, key), reason));

    if !valid_name(&raw.name) {
        bad(
            "name",
            format!(
                "`{}` is not a valid profile name: lower-case letters, digits and `-`, starting with a letter, at most 40 characters",
                raw.name
            ),
        );
    } else if raw.name != stem {
        bad(
            "name",
            format!(
                "the name `{}` differs from the file name `{stem}.yaml`; rename one of them",
                raw.name
            ),
        );
    }
    let mut tags: Vec<String> = raw.tags.iter().map(|t| t.to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    if tags.is_empty() {
        bad(
            "tags",
            "no tags: a profile's guests are found (and torn down) by its tags; give at least one, e.g. [talos, staging]".into(),
        );
    }
    for t in &tags {
        if !super::valid_tag(t) {
            bad(
                "tags",
                format!("`{t}` is not a valid PVE tag: letters, digits and _ - + ."),
            );
        }
        if t == Role::Controlplane.tag() || t == Role::Worker.tag() {
            bad(
                "tags",
                format!("`{t}` is the role tag added to each guest; choose another tag"),
            );
        }
    }
    let n = &raw.network;
    let mut cidr = |key: &str, v: &Option<String>| -> Option<Cidr> {
        let s = v.as_deref()?;
        match Cidr::parse(s) {
            Ok(c) => Some(c),
            Err(e) => {
                bad(key, format!("{key}: {e}"));
                None
            }
        }
    };
    let pod_cidr = cidr("network.pod_cidr", &n.pod_cidr);
    let service_cidr = cidr("network.service_cidr", &n.service_cidr);
    let node_cidr = cidr("network.node_cidr", &n.node_cidr);
    let mut problems2 = Vec::new();
    let mut bad2 = |key: &str, reason: String| problems2.push(at(key_line(text, key), reason));
    if raw.kind == ProfileKind::Talos {
        for (key, v) in [
            ("network.api_endpoint", n.api_endpoint.is_some()),
            ("network.pod_cidr", n.pod_cidr.is_some()),
            ("network.service_cidr", n.service_cidr.is_some()),
        ] {
            if !v {
                bad2(
                    "network",
                    format!(
                        "`{key}` is required for type: talos (see clusters/talos-staging.yaml)"
                    ),
                );
            }
        }
    }
    if let Some(ep) = &n.api_endpoint
        && !valid_endpoint(ep)
    {
        bad2(
            "network.api_endpoint",
            format!("`{ep}` is not host:port, e.g. k8s-staging.example.net:6443"),
        );
    }
    let named = [
        ("network.pod_cidr", pod_cidr),
        ("network.service_cidr", service_cidr),
        ("network.node_cidr", node_cidr),
    ];
    for (i, (ka, a)) in named.iter().enumerate() {
        for (kb, b) in &named[i + 1..] {
            if let (Some(a), Some(b)) = (a, b)
                && a.overlaps(b)
            {
                bad2(
                    kb,
                    format!("{kb} {b} overlaps {ka} {a} of the same profile"),
                );
            }
        }
    }
    let gateway = match &n.gateway {
        None => None,
        Some(g) => match g.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                bad2("network.gateway", format!("`{g}` is not an IP address"));
                None
            }
        },
    };
    let first_host = n.first_host.unwrap_or(10);
    let total: u32 =
        raw.nodes.controlplane.count + raw.nodes.workers.as_ref().map(|w| w.count).unwrap_or(0);
    if n.addresses == Addressing::Static {
        match node_cidr {
            None if n.node_cidr.is_none() => bad2(
                "network.addresses",
                "addresses: static needs `network.node_cidr` (e.g. 10.30.0.0/24) and `network.gateway`".into(),
            ),
            None => {}
            Some(c) => {
                if u64::from(first_host) + u64::from(total) > c.hosts() {
                    bad2(
                        "network.node_cidr",
                        format!(
                            "{c} has {} host addresses; {total} guests from host {first_host} do not fit",
                            c.hosts()
                        ),
                    );
                }
                match gateway {
                    None if n.gateway.is_none() => bad2(
                        "network.addresses",
                        "addresses: static needs `network.gateway`".into(),
                    ),
                    Some(g) if !c.contains(&g) => bad2(
                        "network.gateway",
                        format!("gateway {g} is not inside network.node_cidr {c}"),
                    ),
                    _ => {}
                }
            }
        }
    }
    if let Some(b) = &n.bridge
        && !valid_bridge(b)
    {
        bad2(
            "network.bridge",
            format!("`{b}` is not a bridge name (e.g. vmbr0)"),
        );
    }
    if let Some(v) = n.vlan
        && !(1..=4094).contains(&v)
    {
        bad2("network.vlan", format!("VLAN {v} is not in 1-4094"));
    }
    let mut roles = Vec::new();
    let role_list = [
        (
            Role::Controlplane,
            "nodes.controlplane",
            Some(&raw.nodes.controlplane),
        ),
        (Role::Worker, "nodes.workers", raw.nodes.workers.as_ref()),
    ];
    for (role, key, r) in role_list {
        let Some(r) = r else { continue };
        if role == Role::Controlplane && r.count == 0 {
            bad2(
                &format!("{key}.count"),
                "a cluster needs at least one control-plane node".into(),
            );
        }
        if r.count > 64 {
            bad2(
                &format!("{key}.count"),
                format!("{} guests in one role is more than the 64 allowed", r.count),
            );
        }
        if !(1..=512).contains(&r.cores) {
            bad2(
                &format!("{key}.cores"),
                format!("cores {} is not in 1-512", r.cores),
            );
        }
        if !(16..=16_777_216).contains(&r.memory) {
            bad2(
                &format!("{key}.memory"),
                format!(
                    "memory {} MiB is not in 16-16777216 (MiB, e.g. 8192)",
                    r.memory
                ),
            );
        }
        let disk_bytes = match parse_disk(&r.disk) {
            Some(b) => b,
            None => {
                bad2(
                    &format!("{key}.disk"),
                    format!("`{}` is not a disk size such as 100G", r.disk),
                );
                0
            }
        };
        let start_vmid = match &r.start_vmid {
            None => None,
            Some(RawStartVmid::Vmid(v)) if *v >= 100 => Some(*v),
            Some(RawStartVmid::Vmid(v)) => {
                bad2(
                    &format!("{key}.start_vmid"),
                    format!("{v} is below 100, the lowest vmid PVE allows"),
                );
                None
            }
            Some(RawStartVmid::Word(w)) if w == "auto" => None,
            Some(RawStartVmid::Word(w)) => {
                bad2(
                    &format!("{key}.start_vmid"),
                    format!("`{w}` is neither `auto` nor a vmid"),
                );
                None
            }
        };
        roles.push(RoleSpec {
            role,
            count: r.count,
            cores: r.cores,
            memory_mib: r.memory,
            disk: r.disk.clone(),
            disk_bytes,
            start_vmid,
            placement: r.placement,
            on_nodes: r.on_nodes.clone(),
        });
    }
    let flux = raw.flux.as_ref().map(|f| FluxSpec {
        repo: f.repo.clone(),
        path: f.path.trim_matches('/').to_string(),
        branch: f.branch.clone(),
    });
    if let Some(f) = &flux {
        if !(f.repo.starts_with("ssh://") || f.repo.starts_with("https://") || f.repo.contains('@'))
        {
            bad2(
                "flux.repo",
                format!(
                    "`{}` is not a git URL: write git@host:org/repo.git or ssh://git@host/org/repo.git",
                    f.repo
                ),
            );
        }
        if f.path.is_empty() || f.path.contains("..") {
            bad2(
                "flux.path",
                format!(
                    "`{}` is not a path inside the repository, e.g. clusters/staging",
                    f.path
                ),
            );
        }
        if raw.kind != ProfileKind::Talos {
            bad2(
                "flux",
                "flux needs a Kubernetes cluster the server bootstraps: only type: talos has one"
                    .into(),
            );
        }
    }
    problems.extend(problems2);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ClusterProfile {
        name: raw.name,
        kind: raw.kind,
        network: ProfileNetwork {
            api_endpoint: n.api_endpoint.clone(),
            pod_cidr,
            service_cidr,
            node_cidr,
            addressing: n.addresses,
            gateway,
            first_host,
            nameserver: n.nameserver.clone(),
            bridge: n.bridge.clone(),
            vlan: n.vlan,
        },
        roles,
        template: raw.template,
        tags,
        flux,
        storage: raw.storage,
        template_copies: raw
            .template_copies
            .unwrap_or_default()
            .into_iter()
            .collect(),
        origin: origin.to_string(),
        text: text.to_string(),
    })
}

/// Reads and parses one profile file.
///
/// # Errors
/// An unreadable file, or the problems of [`parse_profile`].
pub fn load_profile(path: &Path) -> Result<ClusterProfile, Vec<ProfileProblem>> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ProfileProblem {
            file: origin.clone(),
            line: None,
            reason: format!("cannot be read: {e}"),
        }]
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    parse_profile(&text, &origin, &stem)
}

/// The profile files of a directory (`*.yaml`, `*.yml`), sorted; none when it does not exist.
pub fn profile_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    v.sort();
    v
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn valid_endpoint(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

fn valid_bridge(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `100G`, `512M`, `1T`, `1024` (bytes, for sizes without a unit… PVE's disk sizes default to
/// G, as here).
pub fn parse_disk(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        (i, 'G' | 'g') => (&s[..i], 1 << 30),
        (i, 'T' | 't') => (&s[..i], 1 << 40),
        _ => (s, 1 << 30),
    };
    let n: u64 = num.parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(mult)
}

/// A serde error as `FILE:LINE: REASON`, with "did you mean" for an unknown key.
fn serde_problem(
    e: &serde_path_to_error::Error<yaml_serde::Error>,
    text: &str,
    origin: &str,
) -> ProfileProblem {
    let key = e.path().to_string();
    let inner = e.inner();
    let line = inner.location().map(|l| l.line());
    let mut message = inner.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    if let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.contains(' ')
    {
        message = rest.to_string();
    }
    let reason = if let Some(rest) = message.strip_prefix("unknown field ") {
        let names: Vec<String> = rest
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect();
        match names.split_first() {
            Some((field, allowed)) => {
                let hint = closest(field, allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                format!(
                    "unknown key `{key}`; {hint}allowed here: {}",
                    allowed.join(", ")
                )
            }
            None => message.clone(),
        }
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        let field = rest.trim_matches('`');
        let full = if key == "." || key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        format!("required key `{full}` is missing (see clusters/talos-staging.yaml)")
    } else if key == "." || key.is_empty() {
        message.clone()
    } else {
        format!("`{key}`: {message}")
    };
    ProfileProblem {
        file: origin.to_string(),
        line: line.or_else(|| key_line(text, &key)),
        reason,
    }
}

/// The 1-based line of a dotted key path (`network.pod_cidr`) in a YAML text, found by
/// indentation; the deepest segment found when the full path is not.
pub fn key_line(text: &str, key: &str) -> Option<usize> {
    let mut found = None;
    let mut from = 0usize;
    let mut min_indent: Option<usize> = None;
    for seg in key.split('.').filter(|s| !s.is_empty()) {
        let seg = seg.split('[').next().unwrap_or(seg);
        let mut hit = None;
        for (i, line) in text.lines().enumerate().skip(from) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if let Some(m) = min_indent
                && indent <= m
                && found.is_some()
                && i > from
            {
                break;
            }
            if trimmed.starts_with(&format!("{seg}:")) {
                hit = Some((i, indent));
                break;
            }
        }
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                from = i + 1;
                min_indent = Some(indent);
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../clusters/talos-staging.yaml");

    #[test]
    fn the_seed_profile_parses() {
        let p = parse_profile(SEED, "clusters/talos-staging.yaml", "talos-staging").expect("ok");
        assert_eq!(p.kind, ProfileKind::Talos);
        assert_eq!(p.roles[0].count, 3);
        assert_eq!(p.roles[1].count, 0);
        assert_eq!(p.tags, vec!["kubernetes", "staging", "talos"]);
        assert_eq!(p.template, RawTemplate::Vmid(101));
        assert_eq!(
            p.flux.as_ref().map(FluxSpec::url).as_deref(),
            Some("ssh://git@github.com/adamancini/fleet-infra.git")
        );
    }

    #[test]
    fn unknown_key_names_line_and_suggestion() {
        let text = SEED.replace("  pod_cidr:", "  pod_cdir:");
        let e = parse_profile(&text, "f.yaml", "talos-staging").expect_err("bad");
        let s = e[0].to_string();
        assert!(s.starts_with("f.yaml:5: "), "{s}");
        assert!(s.contains("did you mean `pod_cidr`"), "{s}");
    }

    #[test]
    fn semantic_problems_carry_lines() {
        let text = SEED.replace("10.97.0.0/12", "10.245.0.0/24");
        let e = parse_profile(&text, "f.yaml", "talos-staging").expect_err("bad");
        assert_eq!(e[0].line, Some(6), "{e:?}");
        assert!(e[0].reason.contains("overlaps"), "{e:?}");
        assert_eq!(key_line(SEED, "nodes.workers.disk"), Some(19));
    }

    #[test]
    fn cidr_overlap_and_hosts() {
        let a = Cidr::parse("10.96.0.0/12").expect("ok");
        let b = Cidr::parse("10.97.0.0/16").expect("ok");
        let c = Cidr::parse("10.112.0.0/16").expect("ok");
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(
            Cidr::parse("10.97.0.0/12")
                .expect("ok")
                .overlaps(&Cidr::parse("10.96.0.1/32").expect("ok"))
        );
        let n = Cidr::parse("10.30.0.0/24").expect("ok");
        assert_eq!(n.hosts(), 254);
        assert_eq!(n.nth(10).to_string(), "10.30.0.10");
    }
}

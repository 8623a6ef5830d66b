//! `access_check`: which toolsets the configured token can use, privilege by privilege.
//!
//! Each tool's [`ToolSpec`] names the PVE endpoints it calls and the privileges each checks, on
//! the schema's path templates. Every tool works cluster-wide, so a need is tested on the
//! parent PVE's effective permissions show (`/`, `/vms`, `/storage`, `/nodes`, see
//! [`check_path`]): a privilege granted there propagates to every object.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::access::endpoints::VIA_SSH;
use crate::ops::spec::{Need, ToolSpec};
use crate::ops::{Context, Error};

/// `GET /access/permissions`: `{acl path: {privilege: propagate}}`.
pub type Permissions = BTreeMap<String, BTreeMap<String, u8>>;

/// The role the seed creates and `grant` commands extend.
pub const MANAGER_ROLE: &str = "ClaudeCodeManager";

/// Whether `perms` grants `privilege` on `path` or on one of its ancestors (effective
/// privileges propagate from parents: `/storage/local` is covered by `/storage` and `/`).
pub fn has_privilege(perms: &Permissions, path: &str, privilege: &str) -> bool {
    let mut cur = path.to_string();
    loop {
        if perms.get(&cur).is_some_and(|m| m.contains_key(privilege)) {
            return true;
        }
        match cur.rfind('/') {
            Some(0) if cur != "/" => cur = "/".into(),
            Some(i) if i > 0 => cur.truncate(i),
            _ => return false,
        }
    }
}

/// One privilege the token lacks, and where.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct MissingPrivilege {
    pub privilege: String,
    pub path: String,
}

/// What the API download/upload of an image or ISO needs
/// (`POST /nodes/{node}/storage/{storage}/download-url`: Datastore.AllocateTemplate on the
/// storage, and Sys.AccessNetwork on the node or Sys.Modify on `/`;
/// `POST .../upload`: Datastore.AllocateTemplate on the storage). Empty when the token may.
pub fn download_missing(
    perms: &Permissions,
    storage_path: &str,
    node_path: &str,
    network: bool,
) -> Vec<MissingPrivilege> {
    let mut missing = Vec::new();
    if !has_privilege(perms, storage_path, "Datastore.AllocateTemplate") {
        missing.push(MissingPrivilege {
            privilege: "Datastore.AllocateTemplate".into(),
            path: storage_path.into(),
        });
    }
    if network
        && !has_privilege(perms, "/", "Sys.Modify")
        && !has_privilege(perms, node_path, "Sys.AccessNetwork")
    {
        missing.push(MissingPrivilege {
            privilege: "Sys.AccessNetwork".into(),
            path: node_path.into(),
        });
    }
    missing
}

/// Guest-agent reads (`GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces`): PVE 9
/// checks VM.GuestAgent.Audit (or .Unrestricted); PVE 8 checks VM.Monitor, which 9 removed.
/// [`version_privilege`] swaps the name for PVE 8.
pub const GUEST_AGENT: &str = "VM.GuestAgent.Audit";

/// The ACL path `access_check` tests a need on. Tools work cluster-wide, so an object
/// placeholder goes up to its parent, the path PVE's effective permissions show for a grant on
/// every object (`/vms/{vmid}` -> `/vms`); a bridge is the configured default bridge, the one
/// tools use unless told otherwise.
pub fn check_path(template: &str, bridge: &str) -> String {
    let path = template.replace("{bridge}", bridge);
    match path.find("/{") {
        Some(0) => "/".to_string(),
        Some(i) => path[..i].to_string(),
        None => path,
    }
}

/// The privilege's name on this PVE major version (0: unknown, treated as current).
pub fn version_privilege(privilege: &'static str, pve_major: u32) -> &'static str {
    if privilege == GUEST_AGENT && (1..9).contains(&pve_major) {
        "VM.Monitor"
    } else {
        privilege
    }
}

/// One tool's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolAccess {
    pub tool: String,
    /// PVE will not refuse the tool for want of a privilege.
    pub ready: bool,
    /// Every privilege the token lacks for this tool, required or not (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingPrivilege>,
    /// What degrades, or which part uses SSH, when an optional privilege is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One toolset's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolsetAccess {
    pub toolset: String,
    /// `ready` (every tool), `partial` (some tools) or `missing` (no tool).
    pub status: String,
    pub tools: Vec<ToolAccess>,
    /// The `pveum` command adding this toolset's missing privileges to the manager role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// One toolset in `access_check`'s answer: the tools with something to say are listed, the
/// others counted (the catalogue names them).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolsetVerdict {
    pub toolset: String,
    /// `ready` (every tool), `partial` (some tools) or `missing` (no tool).
    pub status: String,
    /// Tools PVE will not refuse and that lose nothing: not listed in `tools`.
    pub ready_tools: u32,
    /// The tools PVE would refuse (`ready: false`, with what is `missing`) or that degrade or
    /// use SSH (`note`, naming the privileges `grant` adds).
    pub tools: Vec<ToolAccess>,
    /// The `pveum` command adding this toolset's missing privileges to the manager role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

impl From<ToolsetAccess> for ToolsetVerdict {
    fn from(set: ToolsetAccess) -> Self {
        let (quiet, mut tools): (Vec<ToolAccess>, Vec<ToolAccess>) = set
            .tools
            .into_iter()
            .partition(|t| t.ready && t.note.is_none());
        // A tool that runs but degrades: its note names the privileges and the toolset's
        // `grant` adds them.
        for t in tools.iter_mut().filter(|t| t.ready) {
            t.missing.clear();
        }
        Self {
            toolset: set.toolset,
            status: set.status,
            ready_tools: u32::try_from(quiet.len()).unwrap_or(u32::MAX),
            tools,
            grant: set.grant,
        }
    }
}

/// `access_check` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AccessCheckReport {
    /// The configured token id (never its secret).
    pub token: String,
    /// PVE version of the first online node (privilege names differ between 8 and 9).
    pub pve_version: String,
    pub toolsets: Vec<ToolsetVerdict>,
    /// Operations that use SSH on a node instead of the API, and why.
    pub ssh_fallback: Vec<String>,
    /// Who approves destructive calls: the mode, whether this client can show the
    /// confirmation dialog (MCP elicitation), and what that means.
    pub confirmations: crate::ops::approval::ConfirmationStatus,
    pub message: String,
}

/// What the verdict is computed from.
#[derive(Debug, Clone)]
pub struct AccessInput<'a> {
    pub perms: &'a Permissions,
    pub pve_major: u32,
    /// Node whose `/nodes/{node}` path the download check names.
    pub node: &'a str,
    /// The bridge `SDN.Use` is checked on (`defaults.network_bridge`).
    pub bridge: &'a str,
    /// Whether SSH to the nodes is configured (the download fallback).
    pub ssh_configured: bool,
}

fn privs_missing(input: &AccessInput<'_>, need: &Need) -> Vec<MissingPrivilege> {
    let path = check_path(need.path, input.bridge);
    let names: Vec<&str> = need
        .privs
        .iter()
        .map(|p| version_privilege(p, input.pve_major))
        .collect();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|p| !has_privilege(input.perms, &path, p))
        .collect();
    let as_missing = |p: &str| MissingPrivilege {
        privilege: p.into(),
        path: path.clone(),
    };
    if need.any {
        if missing.len() < names.len() {
            vec![]
        } else {
            names.first().map(|p| as_missing(p)).into_iter().collect()
        }
    } else {
        missing.into_iter().map(as_missing).collect()
    }
}

fn push_unique(v: &mut Vec<MissingPrivilege>, m: MissingPrivilege) {
    if !v.contains(&m) {
        v.push(m);
    }
}

/// One tool's verdict from its spec.
fn tool_access(input: &AccessInput<'_>, spec: &ToolSpec) -> ToolAccess {
    let mut missing = Vec::new();
    // What degrades, with what is missing for it, in declaration order.
    let mut degraded: Vec<(&str, Vec<MissingPrivilege>)> = Vec::new();
    let mut ready = true;
    for need in spec.needs() {
        let m = privs_missing(input, need);
        if m.is_empty() {
            continue;
        }
        match need.optional {
            None => ready = false,
            Some(why) => {
                let at = match degraded.iter().position(|(w, _)| *w == why) {
                    Some(i) => i,
                    None => {
                        degraded.push((why, Vec::new()));
                        degraded.len() - 1
                    }
                };
                for x in &m {
                    push_unique(&mut degraded[at].1, x.clone());
                }
            }
        }
        for x in m {
            push_unique(&mut missing, x);
        }
    }
    let notes: Vec<String> = degraded
        .iter()
        .map(|(why, m)| {
            let unreachable = *why == VIA_SSH && !input.ssh_configured;
            format!(
                "{why}{} without {}",
                if unreachable {
                    " (SSH is not configured: they will fail)"
                } else {
                    ""
                },
                m.iter()
                    .map(|x| format!("{} on {}", x.privilege, x.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    ToolAccess {
        tool: spec.name.into(),
        ready,
        missing,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// Evaluates the tools' specs against the token's permissions, one verdict per toolset (in
/// the order the specs name them), plus the operations that fall back to SSH. Pure:
/// unit-tested on hand-made permission maps; [`access_check`] and `check` feed it the real one.
pub fn evaluate(input: &AccessInput<'_>, specs: &[&ToolSpec]) -> (Vec<ToolsetAccess>, Vec<String>) {
    let mut toolsets: Vec<&str> = Vec::new();
    for s in specs {
        if !toolsets.contains(&s.toolset) {
            toolsets.push(s.toolset);
        }
    }
    let mut out = Vec::new();
    for set in toolsets {
        let tools: Vec<ToolAccess> = specs
            .iter()
            .filter(|s| s.toolset == set)
            .map(|s| tool_access(input, s))
            .collect();
        let mut toolset_missing: Vec<MissingPrivilege> = Vec::new();
        for x in tools.iter().flat_map(|t| t.missing.iter()) {
            push_unique(&mut toolset_missing, x.clone());
        }
        let ready = tools.iter().filter(|t| t.ready).count();
        let status = if ready == tools.len() {
            "ready"
        } else if ready == 0 {
            "missing"
        } else {
            "partial"
        };
        out.push(ToolsetAccess {
            toolset: set.into(),
            status: status.into(),
            tools,
            grant: grant_command(&toolset_missing),
        });
    }
    // Which tools transfer over SSH, and for want of what.
    let mut via_ssh: Vec<&str> = Vec::new();
    let mut lacking: Vec<MissingPrivilege> = Vec::new();
    for s in specs {
        let m: Vec<MissingPrivilege> = s
            .needs()
            .filter(|n| n.optional == Some(VIA_SSH))
            .flat_map(|n| privs_missing(input, n))
            .collect();
        if !m.is_empty() {
            via_ssh.push(s.name);
            for x in m {
                push_unique(&mut lacking, x);
            }
        }
    }
    let mut ssh_fallback = Vec::new();
    if !via_ssh.is_empty() {
        ssh_fallback.push(format!(
            "{} downloads use SSH: the token lacks {}",
            via_ssh.join(" / "),
            lacking
                .iter()
                .map(|x| format!("{} on {}", x.privilege, x.path))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    (out, ssh_fallback)
}

/// `pveum role modify ClaudeCodeManager --append 1 --privs "..."` for these privileges.
pub fn grant_command(missing: &[MissingPrivilege]) -> Option<String> {
    let privs: BTreeSet<&str> = missing.iter().map(|m| m.privilege.as_str()).collect();
    (!privs.is_empty()).then(|| {
        format!(
            "pveum role modify {MANAGER_ROLE} --append 1 --privs \"{}\"",
            privs.into_iter().collect::<Vec<_>>().join(" ")
        )
    })
}

/// Major version of a `9.0.3`-style PVE version (0 when unparseable).
pub fn pve_major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The first online node and its PVE version (`GET /nodes/{node}/version`), or the version
/// the API endpoint reports when no node is online.
pub(crate) async fn first_online_node(ctx: &Context) -> Result<(String, String), Error> {
    let rows = ctx.client.get_cluster_resources(None).await?;
    let node = rows
        .iter()
        .filter(|r| crate::ops::is_node(r) && r.status.as_deref() == Some("online"))
        .find_map(|r| r.node.clone());
    match node {
        Some(n) => {
            let v = ctx.client.get_node_version(&n).await?.version;
            Ok((n, v))
        }
        None => {
            let v = ctx.client.get_version().await?.version;
            let n = ctx
                .config
                .cluster
                .nodes
                .first()
                .map(|n| n.name.clone())
                .unwrap_or_default();
            Ok((n, v))
        }
    }
}

/// The `access_check` tool: the token's privileges per toolset.
///
/// # Errors
/// When PVE cannot be reached or refuses the permission read.
pub async fn access_check(ctx: &Context, specs: &[&ToolSpec]) -> Result<AccessCheckReport, Error> {
    let perms = ctx.client.get_permissions(None).await?;
    let (node, version) = first_online_node(ctx).await?;
    let input = AccessInput {
        perms: &perms,
        pve_major: pve_major(&version),
        node: &node,
        bridge: &ctx.config.defaults.network_bridge,
        ssh_configured: ctx.ssh.is_some(),
    };
    let (toolsets, ssh_fallback) = evaluate(&input, specs);
    let not_ready: Vec<String> = toolsets
        .iter()
        .filter(|t| t.status != "ready")
        .map(|t| format!("{} ({})", t.toolset, t.status))
        .collect();
    let message = if not_ready.is_empty() {
        format!(
            "every toolset is ready for this token on PVE {version}{}",
            if ssh_fallback.is_empty() {
                ""
            } else {
                "; some operations fall back to SSH (see ssh_fallback)"
            }
        )
    } else {
        format!(
            "the token lacks privileges for {}: each toolset's `grant` adds them to the {MANAGER_ROLE} role (run it on a node as root)",
            not_ready.join(", ")
        )
    };
    Ok(AccessCheckReport {
        token: ctx.client.token_id().to_string(),
        pve_version: version,
        toolsets: toolsets.into_iter().map(ToolsetVerdict::from).collect(),
        ssh_fallback,
        confirmations: crate::ops::approval::status(ctx.config.confirmations.mode, None),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(entries: &[(&str, &[&str])]) -> Permissions {
        entries
            .iter()
            .map(|(path, privs)| {
                (
                    path.to_string(),
                    privs.iter().map(|p| (p.to_string(), 1)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn privileges_propagate_from_ancestors() {
        let p = perms(&[("/", &["Sys.Audit"]), ("/storage", &["Datastore.Audit"])]);
        assert!(has_privilege(&p, "/", "Sys.Audit"));
        assert!(has_privilege(&p, "/nodes/pve01", "Sys.Audit"));
        assert!(has_privilege(&p, "/storage/local", "Datastore.Audit"));
        assert!(has_privilege(&p, "/storage", "Datastore.Audit"));
        assert!(!has_privilege(&p, "/", "Datastore.Audit"));
        assert!(!has_privilege(&p, "/vms/100", "Datastore.Audit"));
        assert!(!has_privilege(&p, "/vms/100", "VM.Audit"));
        assert!(!has_privilege(&perms(&[]), "/", "Sys.Audit"));
    }

    #[test]
    fn download_needs_network_access_only_for_urls() {
        let p = perms(&[("/storage", &["Datastore.AllocateTemplate"])]);
        assert!(download_missing(&p, "/storage/local", "/nodes/pve01", false).is_empty());
        let m = download_missing(&p, "/storage/local", "/nodes/pve01", true);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].privilege, "Sys.AccessNetwork");
        let p = perms(&[("/", &["Datastore.AllocateTemplate", "Sys.Modify"])]);
        assert!(download_missing(&p, "/storage/local", "/nodes/pve01", true).is_empty());
    }

    #[test]
    fn object_paths_are_checked_on_their_parent_and_bridges_by_name() {
        assert_eq!(check_path("/vms/{vmid}", "vmbr0"), "/vms");
        assert_eq!(check_path("/storage/{storage}", "vmbr0"), "/storage");
        assert_eq!(check_path("/nodes/{node}", "vmbr0"), "/nodes");
        assert_eq!(check_path("/", "vmbr0"), "/");
        assert_eq!(
            check_path("/sdn/zones/localnetwork/{bridge}", "vmbr1"),
            "/sdn/zones/localnetwork/vmbr1"
        );
    }
}

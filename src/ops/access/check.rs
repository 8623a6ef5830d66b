//! `access_check`: which toolsets the configured token can use, privilege by privilege.
//!
//! [`TOOL_NEEDS`] says, per tool, which privileges the PVE endpoints it calls check and on
//! which path. It is written from the tools' ops code and the endpoints' permission schema
//! (`check: [...]` / the description of `user: all` endpoints); each entry names its endpoint.
//! Every tool works cluster-wide, so paths are the parents PVE's effective permissions show
//! (`/`, `/vms`, `/storage`, `/nodes`): a privilege granted there propagates to every object.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// What one requirement costs when it is not met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The tool is refused by PVE.
    Required,
    /// Only part of the tool degrades; the text says which part.
    Optional(&'static str),
}

/// Privileges (all of them, or with `any` one of them) an endpoint checks on a path.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub path: &'static str,
    pub privs: &'static [&'static str],
    pub any: bool,
    pub effect: Effect,
}

const fn all(path: &'static str, privs: &'static [&'static str]) -> Need {
    Need {
        path,
        privs,
        any: false,
        effect: Effect::Required,
    }
}

const fn any(path: &'static str, privs: &'static [&'static str]) -> Need {
    Need {
        path,
        privs,
        any: true,
        effect: Effect::Required,
    }
}

const fn optional(path: &'static str, privs: &'static [&'static str], why: &'static str) -> Need {
    Need {
        path,
        privs,
        any: true,
        effect: Effect::Optional(why),
    }
}

/// Guest-agent reads (`GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces`): PVE 9
/// checks VM.GuestAgent.Audit (or .Unrestricted); PVE 8 checks VM.Monitor, which 9 removed.
/// [`version_privilege`] swaps the name for PVE 8.
const GUEST_AGENT: &str = "VM.GuestAgent.Audit";

/// The privileges of one tool, and whether it downloads images (API when the token may,
/// else SSH on the node).
#[derive(Debug, Clone, Copy)]
pub struct ToolNeeds {
    pub tool: &'static str,
    pub read_only: bool,
    pub needs: &'static [Need],
    pub downloads: bool,
}

/// The privileges of each toolset's tools.
#[derive(Debug, Clone, Copy)]
pub struct ToolsetNeeds {
    pub toolset: &'static str,
    pub tools: &'static [ToolNeeds],
}

const fn ro(tool: &'static str, needs: &'static [Need]) -> ToolNeeds {
    ToolNeeds {
        tool,
        read_only: true,
        needs,
        downloads: false,
    }
}

const fn rw(tool: &'static str, needs: &'static [Need]) -> ToolNeeds {
    ToolNeeds {
        tool,
        read_only: false,
        needs,
        downloads: false,
    }
}

const fn rw_download(tool: &'static str, needs: &'static [Need]) -> ToolNeeds {
    ToolNeeds {
        tool,
        read_only: false,
        needs,
        downloads: true,
    }
}

// `GET /cluster/resources` (user: all) only lists guests with VM.Audit and storages with
// Datastore.Audit/AllocateSpace; `GET /nodes/{node}/storage` (user: all) likewise.
const SEE_GUESTS: Need = all("/vms", &["VM.Audit"]);
const SEE_STORAGE: Need = any("/storage", &["Datastore.Audit", "Datastore.AllocateSpace"]);
// `GET /nodes/{node}/qemu/{vmid}/config`, `.../status/current`, `.../pending`: VM.Audit.
const READ_VM: Need = all("/vms", &["VM.Audit"]);
// `POST /nodes/{node}/qemu/{vmid}/status/{start,stop,shutdown,reboot}`: VM.PowerMgmt.
const POWER: Need = all("/vms", &["VM.PowerMgmt"]);
// `POST /nodes/{node}/qemu` (create_vm): VM.Allocate on /vms/{vmid}, Datastore.AllocateSpace
// on every storage a disk is created on, and the config privilege of each option given
// (check_vm_modify_config_perm: cores/sockets CPU, memory, net*, ide/scsi disks, efidisk and
// machine/bios HWType, agent/name/tags Options, ciuser/ipconfig Cloudinit).
const CREATE_VM_ALLOCATE: Need = all("/vms", &["VM.Allocate"]);
const CREATE_VM_SPACE: Need = all("/storage", &["Datastore.AllocateSpace"]);
const CREATE_VM_CONFIG: Need = all(
    "/vms",
    &[
        "VM.Config.Disk",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.HWType",
        "VM.Config.Options",
        "VM.Config.Cloudinit",
    ],
);

/// Per toolset, per tool: what PVE checks (see the module comment).
pub const TOOL_NEEDS: &[ToolsetNeeds] = &[
    ToolsetNeeds {
        toolset: "cluster",
        tools: &[
            ro(
                "cluster_status",
                &[
                    // GET /cluster/status: perm / Sys.Audit
                    all("/", &["Sys.Audit"]),
                    // GET /nodes/{node}/status: perm /nodes/{node} Sys.Audit
                    all("/nodes", &["Sys.Audit"]),
                    // GET /cluster/resources, GET /nodes/{node}/storage: filtered
                    SEE_GUESTS,
                    SEE_STORAGE,
                ],
            ),
            ro(
                "node_status",
                &[
                    // GET /nodes/{node}/status: perm /nodes/{node} Sys.Audit
                    all("/nodes", &["Sys.Audit"]),
                    // GET /cluster/resources, GET /nodes/{node}/storage: filtered
                    SEE_GUESTS,
                    SEE_STORAGE,
                ],
            ),
            ro(
                "task_status",
                // GET /nodes/{node}/tasks/{upid}/status: user all; Sys.Audit on the node for
                // tasks the token did not start
                &[optional(
                    "/nodes",
                    &["Sys.Audit"],
                    "only tasks this token started can be read",
                )],
            ),
            ro(
                "task_log",
                // GET /nodes/{node}/tasks/{upid}/log: as task_status
                &[optional(
                    "/nodes",
                    &["Sys.Audit"],
                    "only tasks this token started can be read",
                )],
            ),
        ],
    },
    ToolsetNeeds {
        toolset: "vm",
        tools: &[
            // GET /cluster/resources (filtered by VM.Audit)
            ro("vm_list", &[SEE_GUESTS]),
            ro(
                "vm_get",
                &[
                    // GET .../qemu/{vmid}/config, .../status/current
                    READ_VM,
                    // GET .../qemu/{vmid}/agent/network-get-interfaces
                    optional("/vms", &[GUEST_AGENT], "no guest IP addresses"),
                ],
            ),
            rw(
                "vm_create",
                &[
                    // GET .../qemu/{template}/config
                    READ_VM,
                    // POST .../qemu/{template}/clone: VM.Clone on /vms/{template}, VM.Allocate
                    // on /vms/{newid}, Datastore.AllocateSpace on the target storage
                    all("/vms", &["VM.Clone", "VM.Allocate"]),
                    all("/storage", &["Datastore.AllocateSpace"]),
                    // POST .../qemu/{newid}/config: cores/sockets, memory, agent/tags,
                    // ciuser/ipconfig/sshkeys, net0
                    all(
                        "/vms",
                        &[
                            "VM.Config.CPU",
                            "VM.Config.Memory",
                            "VM.Config.Options",
                            "VM.Config.Cloudinit",
                            "VM.Config.Network",
                        ],
                    ),
                    // PUT .../qemu/{newid}/resize: VM.Config.Disk
                    all("/vms", &["VM.Config.Disk"]),
                    // POST .../qemu/{newid}/status/start
                    POWER,
                    // GET .../agent/network-get-interfaces (wait_for_ip)
                    optional(
                        "/vms",
                        &[GUEST_AGENT],
                        "wait_for_ip cannot learn the address",
                    ),
                ],
            ),
            // POST .../status/start, .../stop, .../shutdown, .../reboot; GET .../status/current
            rw("vm_start", &[READ_VM, POWER]),
            rw("vm_shutdown", &[READ_VM, POWER]),
            rw("vm_stop", &[READ_VM, POWER]),
            rw("vm_reboot", &[READ_VM, POWER]),
            rw(
                "vm_resize",
                &[
                    READ_VM,
                    // PUT .../qemu/{vmid}/config (cores, sockets, memory)
                    all("/vms", &["VM.Config.CPU", "VM.Config.Memory"]),
                    // PUT .../qemu/{vmid}/resize
                    all("/vms", &["VM.Config.Disk"]),
                ],
            ),
            // PUT .../qemu/{vmid}/config (tags): VM.Config.Options
            rw(
                "vm_set_tags",
                &[READ_VM, all("/vms", &["VM.Config.Options"])],
            ),
            rw(
                "vm_delete",
                &[
                    READ_VM,
                    // POST .../status/stop (a running VM is stopped first)
                    POWER,
                    // DELETE /nodes/{node}/qemu/{vmid}: VM.Allocate
                    all("/vms", &["VM.Allocate"]),
                ],
            ),
        ],
    },
    ToolsetNeeds {
        toolset: "template",
        tools: &[
            // GET /cluster/resources, .../qemu/{vmid}/config, .../storage/{storage}/content
            ro("template_list", &[SEE_GUESTS, READ_VM, SEE_STORAGE]),
            rw_download(
                "template_from_cloud_image",
                &[
                    // GET /nodes/{node}/storage (import storage lookup)
                    SEE_STORAGE,
                    // POST /nodes/{node}/qemu with import-from, then config and resize;
                    // POST .../qemu/{vmid}/template: VM.Allocate (CREATE_VM_ALLOCATE)
                    CREATE_VM_ALLOCATE,
                    CREATE_VM_SPACE,
                    CREATE_VM_CONFIG,
                    // DELETE .../storage/{storage}/content/{volume}: Datastore.Allocate
                    all("/storage", &["Datastore.Allocate"]),
                ],
            ),
            rw_download(
                "template_import_disk",
                &[
                    SEE_STORAGE,
                    CREATE_VM_ALLOCATE,
                    CREATE_VM_SPACE,
                    CREATE_VM_CONFIG,
                    // DELETE .../storage/{storage}/content/{volume}: Datastore.Allocate
                    all("/storage", &["Datastore.Allocate"]),
                ],
            ),
            rw_download(
                "template_from_iso",
                &[
                    // GET .../storage/{storage}/content (the ISO already there?)
                    SEE_STORAGE,
                    // POST /nodes/{node}/qemu
                    CREATE_VM_ALLOCATE,
                    CREATE_VM_SPACE,
                    CREATE_VM_CONFIG,
                    // POST .../status/start (boots the installer)
                    POWER,
                ],
            ),
            // POST .../qemu/{vmid}/template: VM.Allocate
            rw(
                "template_convert",
                &[READ_VM, all("/vms", &["VM.Allocate"])],
            ),
            // DELETE /nodes/{node}/qemu/{vmid}: VM.Allocate
            rw("template_delete", &[READ_VM, all("/vms", &["VM.Allocate"])]),
        ],
    },
    ToolsetNeeds {
        toolset: "storage",
        tools: &[
            // GET /nodes/{node}/storage (filtered)
            ro("storage_list", &[SEE_STORAGE]),
            // GET /nodes/{node}/storage/{storage}/content: Datastore.Audit or AllocateSpace
            ro("storage_content", &[SEE_STORAGE]),
        ],
    },
    ToolsetNeeds {
        toolset: "runbook",
        // Runbooks are files on this machine: no PVE call.
        tools: &[
            ro("runbook_list", &[]),
            ro("runbook_get", &[]),
            rw("runbook_save", &[]),
        ],
    },
    ToolsetNeeds {
        toolset: "access",
        // access_check: GET /access/permissions (own token), GET /nodes/{node}/version: user all.
        // rbac_bootstrap: pveum as root over SSH; the token needs nothing (it may not exist yet).
        tools: &[ro("access_check", &[]), rw("rbac_bootstrap", &[])],
    },
];

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
    /// Every privilege the token lacks for this tool, required or not.
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

/// `access_check` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AccessCheckReport {
    /// The configured token id (never its secret).
    pub token: String,
    /// PVE version of the first online node (privilege names differ between 8 and 9).
    pub pve_version: String,
    pub toolsets: Vec<ToolsetAccess>,
    /// Operations that use SSH on a node instead of the API, and why.
    pub ssh_fallback: Vec<String>,
    pub message: String,
}

/// Where downloads go in the verdict: the node they run on.
#[derive(Debug, Clone)]
pub struct AccessInput<'a> {
    pub perms: &'a Permissions,
    pub pve_major: u32,
    /// Node whose `/nodes/{node}` path the download check names.
    pub node: &'a str,
    /// Whether SSH to the nodes is configured (the download fallback).
    pub ssh_configured: bool,
}

fn privs_missing(perms: &Permissions, need: &Need, pve_major: u32) -> Vec<MissingPrivilege> {
    let names: Vec<&str> = need
        .privs
        .iter()
        .map(|p| version_privilege(p, pve_major))
        .collect();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|p| !has_privilege(perms, need.path, p))
        .collect();
    let as_missing = |p: &str| MissingPrivilege {
        privilege: p.into(),
        path: need.path.into(),
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

/// Evaluates the whole table against the token's permissions. Pure: unit-tested on hand-made
/// permission maps; [`access_check`] and `check` feed it the real one.
pub fn evaluate(input: &AccessInput<'_>) -> (Vec<ToolsetAccess>, Vec<String>) {
    let node_path = format!("/nodes/{}", input.node);
    let download = download_missing(input.perms, "/storage", &node_path, true);
    let mut ssh_fallback = Vec::new();
    let mut downloaders = Vec::new();
    let mut out = Vec::new();
    for set in TOOL_NEEDS {
        let mut tools = Vec::new();
        let mut toolset_missing: Vec<MissingPrivilege> = Vec::new();
        for t in set.tools {
            let mut missing = Vec::new();
            let mut notes = Vec::new();
            let mut ready = true;
            for need in t.needs {
                let m = privs_missing(input.perms, need, input.pve_major);
                if m.is_empty() {
                    continue;
                }
                match need.effect {
                    Effect::Required => ready = false,
                    Effect::Optional(why) => notes.push(format!(
                        "{why} without {}",
                        m.iter()
                            .map(|x| format!("{} on {}", x.privilege, x.path))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
                for x in m {
                    push_unique(&mut missing, x);
                }
            }
            if t.downloads && !download.is_empty() {
                downloaders.push(t.tool);
                notes.push(format!(
                    "downloads and uploads use SSH on the node{}",
                    if input.ssh_configured {
                        ""
                    } else {
                        " (not configured: they will fail)"
                    }
                ));
                for x in &download {
                    push_unique(&mut missing, x.clone());
                }
            }
            for x in &missing {
                push_unique(&mut toolset_missing, x.clone());
            }
            tools.push(ToolAccess {
                tool: t.tool.into(),
                ready,
                missing,
                note: (!notes.is_empty()).then(|| notes.join("; ")),
            });
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
            toolset: set.toolset.into(),
            status: status.into(),
            tools,
            grant: grant_command(&toolset_missing),
        });
    }
    if !downloaders.is_empty() {
        ssh_fallback.push(format!(
            "{} downloads use SSH: the token lacks {}",
            downloaders.join(" / "),
            download
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
pub async fn access_check(ctx: &Context) -> Result<AccessCheckReport, Error> {
    let perms = ctx.client.get_permissions(None).await?;
    let (node, version) = first_online_node(ctx).await?;
    let (toolsets, ssh_fallback) = evaluate(&AccessInput {
        perms: &perms,
        pve_major: pve_major(&version),
        node: &node,
        ssh_configured: ctx.ssh.is_some(),
    });
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
        toolsets,
        ssh_fallback,
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
    fn read_only_token_gets_a_grant_for_the_write_tools() {
        let p = perms(&[("/vms", &["VM.Audit"])]);
        let (sets, _) = evaluate(&AccessInput {
            perms: &p,
            pve_major: 9,
            node: "pve01",
            ssh_configured: false,
        });
        let vm = sets.iter().find(|s| s.toolset == "vm").expect("vm");
        assert_eq!(vm.status, "partial");
        assert!(vm.tools.iter().any(|t| t.tool == "vm_list" && t.ready));
        let create = vm.tools.iter().find(|t| t.tool == "vm_create").expect("t");
        assert!(!create.ready);
        assert!(create.missing.iter().any(|m| m.privilege == "VM.Clone"));
        let grant = vm.grant.as_deref().expect("grant");
        assert!(grant.starts_with("pveum role modify ClaudeCodeManager --append 1 --privs \""));
        assert!(grant.contains("VM.Clone") && grant.contains("VM.GuestAgent.Audit"));
        let runbook = sets.iter().find(|s| s.toolset == "runbook").expect("rb");
        assert_eq!(runbook.status, "ready");
        assert!(runbook.grant.is_none());
    }

    #[test]
    fn guest_agent_privilege_follows_the_pve_version() {
        let p = perms(&[("/", &["VM.Audit", "VM.Monitor"])]);
        for (major, ok) in [(8, true), (9, false)] {
            let (sets, _) = evaluate(&AccessInput {
                perms: &p,
                pve_major: major,
                node: "pve01",
                ssh_configured: true,
            });
            let vm_get = sets[1]
                .tools
                .iter()
                .find(|t| t.tool == "vm_get")
                .expect("vm_get");
            assert!(vm_get.ready, "optional only");
            assert_eq!(vm_get.missing.is_empty(), ok, "PVE {major}: {vm_get:?}");
        }
    }
}

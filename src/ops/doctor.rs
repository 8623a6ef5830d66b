//! `check`: the doctor. Walks from configuration to credentials to the wire to the token's
//! privileges to SSH on every node and says, for each, what is fine and what to fix. Never
//! prints a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, TlsSetting, credentials::TokenCredential};

use super::access::check::{AccessInput, ToolAccess, has_privilege};
use super::node_ssh::NodeShell;
use super::run::Run;
use super::spec::ToolSpec;
use super::{Context, Error};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The doctor's report; `ok` is false when any check failed.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub items: Vec<CheckItem>,
}

impl CheckReport {
    pub fn push(
        &mut self,
        name: &str,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        if status == CheckStatus::Fail {
            self.ok = false;
        }
        self.items.push(CheckItem {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        });
    }
}

fn tls_description(cfg: &Config) -> String {
    match &cfg.api.tls {
        TlsSetting::System => "verified against the system's root certificates".into(),
        TlsSetting::CaFile(p) => format!("verified against the CA file {}", p.display()),
        TlsSetting::Fingerprint(fp) => format!(
            "pinned SHA-256 leaf fingerprint {}… (handshake signature still verified)",
            fp.iter()
                .take(4)
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        ),
    }
}

/// Runs every check it can; stops early only when a later check cannot run at all.
pub async fn check(
    config: Config,
    credential: Result<TokenCredential, String>,
    ssh: Result<Option<Arc<NodeShell>>, String>,
    specs: &[&ToolSpec],
) -> CheckReport {
    let mut r = CheckReport {
        ok: true,
        items: Vec::new(),
    };
    r.push(
        "config",
        CheckStatus::Ok,
        format!(
            "{} (cluster {}, {} node(s))",
            config.path.display(),
            config.cluster.name,
            config.cluster.nodes.len()
        ),
        None,
    );
    ansible_checks(&config, &mut r).await;
    let confirmations = super::approval::status(config.confirmations.mode, None);
    r.push(
        "confirmations",
        CheckStatus::Ok,
        format!(
            "mode {}: {} (whether a client can show the dialog is known per connection: access_check)",
            confirmations.mode, confirmations.meaning
        ),
        None,
    );
    let credential = match credential {
        Ok(c) => {
            r.push(
                "credentials",
                CheckStatus::Ok,
                format!("token {} from {}", c.id, c.source),
                None,
            );
            c
        }
        Err(e) => {
            r.push("credentials", CheckStatus::Fail, e, None);
            return r;
        }
    };
    r.push("tls", CheckStatus::Ok, tls_description(&config), None);
    let ctx = match Context::new(config, credential) {
        Ok(mut c) => {
            c.ssh = ssh.clone().unwrap_or_default();
            c
        }
        Err(e) => {
            r.push("client", CheckStatus::Fail, e.to_string(), None);
            return r;
        }
    };
    let version = match ctx.client.get_version().await {
        Ok(v) => v.version,
        Err(e) => {
            r.push("connectivity", CheckStatus::Fail, e.to_string(), None);
            return r;
        }
    };
    r.push(
        "connectivity",
        CheckStatus::Ok,
        format!("Proxmox VE {version} reached"),
        None,
    );
    let pve_major = super::access::check::pve_major(&version);
    if let Err(e) = cluster_checks(&ctx, &mut r).await {
        r.push("cluster", CheckStatus::Fail, e.to_string(), None);
    }
    let node = match super::access::check::first_online_node(&ctx).await {
        Ok((n, _)) => n,
        Err(_) => ctx
            .config
            .cluster
            .nodes
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default(),
    };
    match ctx.client.get_permissions(None).await {
        Ok(perms) => privilege_checks(
            &AccessInput {
                perms: &perms,
                pve_major,
                node: &node,
                bridge: &ctx.config.defaults.network_bridge,
                ssh_configured: matches!(ssh, Ok(Some(_))),
            },
            specs,
            &mut r,
        ),
        Err(e) => r.push("privileges", CheckStatus::Fail, e.to_string(), None),
    }
    match ssh {
        Ok(_) => ssh_checks(&ctx, &mut r).await,
        Err(e) => r.push("ssh", CheckStatus::Fail, e, None),
    }
    r
}

/// The Ansible integration, when configured: the programs run, the inventory parses. Its
/// problems are failures: delegation and the inventory guards depend on them.
async fn ansible_checks(config: &Config, r: &mut CheckReport) {
    let Some(items) = super::ansible::check_items(config).await else {
        return;
    };
    for (name, ok, detail, fix) in items {
        let status = if ok {
            CheckStatus::Ok
        } else {
            CheckStatus::Fail
        };
        r.push(&name, status, detail, fix);
    }
}

/// Reaches every node over SSH (when configured) and checks that the vendor snippet directory
/// exists there. SSH is optional, so its problems are warnings.
async fn ssh_checks(ctx: &Context, r: &mut CheckReport) {
    let Some(sh) = ctx.ssh.as_deref() else {
        r.push(
            "ssh",
            CheckStatus::Warn,
            super::node_ssh::unavailable_reason(&ctx.config),
            Some("template builds with a least-privilege token and vendor snippets need ssh; see README \"SSH to the nodes\"".into()),
        );
        return;
    };
    let dir = ctx
        .config
        .cloudinit
        .vendor_snippet_path
        .trim_end_matches('/');
    let run = Run::default();
    for node in &ctx.config.cluster.nodes {
        let name = format!("ssh {}", node.name);
        let cmd = crate::ssh::Command::new("test").arg("-d").arg(dir);
        match sh
            .run_status(&run, &node.name, &cmd, Duration::from_secs(20))
            .await
        {
            Ok(out) if out.success() => r.push(
                &name,
                CheckStatus::Ok,
                format!("connected as {}; {dir} exists", ctx.config.credentials.ssh_user),
                None,
            ),
            Ok(_) => r.push(
                &name,
                CheckStatus::Warn,
                format!("connected, but {dir} does not exist there"),
                Some("enable `snippets` content on the storage that owns it (e.g. `pvesm set local --content iso,vztmpl,backup,snippets,import`) or fix cloudinit.vendor_snippet_path".into()),
            ),
            Err(e) => r.push(&name, CheckStatus::Warn, e.to_string(), None),
        }
    }
}

async fn cluster_checks(ctx: &Context, r: &mut CheckReport) -> Result<(), Error> {
    let rows = ctx.client.get_cluster_resources(None).await?;
    let cluster_nodes: BTreeMap<String, String> = rows
        .iter()
        .filter(|x| super::is_node(x))
        .filter_map(|x| Some((x.node.clone()?, x.status.clone().unwrap_or_default())))
        .collect();
    for n in &ctx.config.cluster.nodes {
        match cluster_nodes.get(&n.name).map(String::as_str) {
            Some("online") => r.push(&format!("node {}", n.name), CheckStatus::Ok, "online", None),
            Some(s) => r.push(
                &format!("node {}", n.name),
                CheckStatus::Warn,
                s.to_string(),
                Some("operations on its guests will fail until it is back".into()),
            ),
            None => r.push(
                &format!("node {}", n.name),
                CheckStatus::Fail,
                format!(
                    "not a member of the cluster (members: {})",
                    cluster_nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                Some(format!(
                    "fix cluster.nodes in {}",
                    ctx.config.path.display()
                )),
            ),
        }
    }
    let storages: BTreeSet<String> = rows
        .iter()
        .filter(|x| super::is_storage(x))
        .filter_map(|x| x.storage.clone())
        .collect();
    let want = &ctx.config.defaults.storage;
    if storages.contains(want) {
        r.push(
            "defaults.storage",
            CheckStatus::Ok,
            format!("{want} exists"),
            None,
        );
    } else {
        r.push(
            "defaults.storage",
            CheckStatus::Fail,
            format!(
                "storage {want} does not exist in the cluster (it has {})",
                storages.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            Some(format!(
                "set defaults.storage in {} to one of those",
                ctx.config.path.display()
            )),
        );
    }
    bridge_check(ctx, &cluster_nodes, r).await;
    Ok(())
}

async fn bridge_check(ctx: &Context, nodes: &BTreeMap<String, String>, r: &mut CheckReport) {
    let want = &ctx.config.defaults.network_bridge;
    let mut missing = Vec::new();
    for (node, status) in nodes {
        if status != "online" {
            continue;
        }
        match list_bridges(ctx, node).await {
            Ok(bridges) if bridges.iter().any(|b| b == want) => {}
            Ok(_) => missing.push(node.clone()),
            Err(e) => {
                r.push(
                    "defaults.network_bridge",
                    CheckStatus::Warn,
                    format!("could not list bridges on {node}: {e}"),
                    None,
                );
                return;
            }
        }
    }
    if missing.is_empty() {
        r.push(
            "defaults.network_bridge",
            CheckStatus::Ok,
            format!("{want} exists on every online node"),
            None,
        );
    } else {
        r.push(
            "defaults.network_bridge",
            CheckStatus::Fail,
            format!("bridge {want} is missing on {}", missing.join(", ")),
            Some(format!(
                "create it on those nodes or set defaults.network_bridge in {}",
                ctx.config.path.display()
            )),
        );
    }
}

/// Bridge names of a node (`GET /nodes/{node}/network?type=bridge`).
async fn list_bridges(ctx: &Context, node: &str) -> Result<Vec<String>, Error> {
    let path = format!("/nodes/{}/network", crate::pve::path_segment(node));
    let rows: Vec<serde_json::Value> = ctx
        .client
        .get(&path, &[("type", "bridge".to_string())])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r["iface"].as_str().map(str::to_string))
        .collect())
}

/// One line per toolset from [`super::access::check::evaluate`]: a read-only tool PVE would refuse
/// fails the check, a write tool only warns; then the SSH fallbacks and the PVE 9 guest-agent
/// privilege.
fn privilege_checks(input: &AccessInput<'_>, specs: &[&ToolSpec], r: &mut CheckReport) {
    let (toolsets, ssh_fallback) = super::access::check::evaluate(input, specs);
    for set in &toolsets {
        let name = format!("privileges ({})", set.toolset);
        let blocked: Vec<&ToolAccess> = set.tools.iter().filter(|t| !t.ready).collect();
        if blocked.is_empty() {
            r.push(
                &name,
                CheckStatus::Ok,
                format!("every tool ({})", set.tools.len()),
                None,
            );
            continue;
        }
        let read_only_blocked = blocked
            .iter()
            .any(|t| specs.iter().any(|s| s.name == t.tool && s.read_only()));
        let detail = blocked
            .iter()
            .map(|t| {
                format!(
                    "{} lacks {}",
                    t.tool,
                    t.missing
                        .iter()
                        .map(|m| format!("{} on {}", m.privilege, m.path))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let grant = set.grant.clone().unwrap_or_default();
        r.push(
            &name,
            if read_only_blocked {
                CheckStatus::Fail
            } else {
                CheckStatus::Warn
            },
            format!("{detail}: PVE will refuse these tools"),
            Some(if read_only_blocked {
                format!("`{grant}` (a privilege-separated token also needs its own ACL, e.g. `pveum acl modify / --tokens <token> --role ClaudeCodeManager`)")
            } else {
                format!("`{grant}`")
            }),
        );
    }
    for f in ssh_fallback {
        r.push(
            "privileges (ssh fallback)",
            if input.ssh_configured {
                CheckStatus::Ok
            } else {
                CheckStatus::Warn
            },
            f,
            None,
        );
    }
    let has = |p: &str| has_privilege(input.perms, "/", p);
    let pve_major = input.pve_major;
    // PVE 9 removed VM.Monitor; reading guest-agent data needs VM.GuestAgent.Audit there.
    if pve_major >= 9 && !has("VM.GuestAgent.Audit") {
        r.push(
            "privileges (guest agent)",
            CheckStatus::Warn,
            "the token lacks VM.GuestAgent.Audit on /: vm_get cannot show guest addresses and vm_create cannot wait_for_ip (PVE 9 replaced VM.Monitor with VM.GuestAgent.*)",
            Some("`pveum role modify ClaudeCodeManager --append 1 --privs VM.GuestAgent.Audit`".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::access::endpoints as api;

    /// A small catalogue: one read tool and one write tool per toolset checked.
    const SPECS: &[ToolSpec] = &[
        ToolSpec::read("vm_list", "List")
            .toolset("vm")
            .calls(&[api::RESOURCES_GUESTS]),
        ToolSpec::read("vm_get", "Get")
            .toolset("vm")
            .calls(&[api::AGENT_INTERFACES]),
        ToolSpec::write("vm_create", "Create")
            .toolset("vm")
            .calls(&[api::QEMU_CLONE]),
        ToolSpec::read("runbook_list", "List").toolset("runbook"),
        ToolSpec::write("template_from_cloud_image", "Build")
            .toolset("template")
            .calls(&[api::STORAGE_DOWNLOAD]),
    ];

    fn perms(privs: &[&str]) -> BTreeMap<String, BTreeMap<String, u8>> {
        let root: BTreeMap<String, u8> = privs.iter().map(|p| (p.to_string(), 1)).collect();
        [("/".to_string(), root)].into_iter().collect()
    }

    fn run(privs: &[&str], pve_major: u32) -> CheckReport {
        let p = perms(privs);
        let mut r = CheckReport {
            ok: true,
            items: vec![],
        };
        let specs: Vec<&ToolSpec> = SPECS.iter().collect();
        privilege_checks(
            &AccessInput {
                perms: &p,
                pve_major,
                node: "pve01",
                bridge: "vmbr0",
                ssh_configured: true,
            },
            &specs,
            &mut r,
        );
        r
    }

    const EVERYTHING: &[&str] = &[
        "VM.Audit",
        "VM.Clone",
        "VM.Allocate",
        "Datastore.AllocateSpace",
        "SDN.Use",
        "VM.Monitor",
    ];

    #[test]
    fn guest_agent_privilege_is_asked_for_on_pve9_only() {
        let r = run(EVERYTHING, 9);
        let agent = r
            .items
            .iter()
            .find(|i| i.name == "privileges (guest agent)")
            .expect("warned");
        assert_eq!(agent.status, CheckStatus::Warn);
        assert!(
            agent
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("VM.GuestAgent.Audit"))
        );
        let r8 = run(EVERYTHING, 8);
        assert!(
            !r8.items
                .iter()
                .any(|i| i.name == "privileges (guest agent)")
        );
        assert!(r8.ok && r.ok, "a warning does not fail the check");
    }

    #[test]
    fn granted_toolsets_are_ok_and_downloads_name_the_ssh_fallback() {
        let r = run(EVERYTHING, 8);
        for set in ["vm", "template", "runbook"] {
            let i = r
                .items
                .iter()
                .find(|i| i.name == format!("privileges ({set})"))
                .expect("one line per toolset");
            assert_eq!(i.status, CheckStatus::Ok, "{i:?}");
        }
        let ssh = r
            .items
            .iter()
            .find(|i| i.name == "privileges (ssh fallback)")
            .expect("downloads use ssh");
        assert!(ssh.detail.contains("Datastore.AllocateTemplate"), "{ssh:?}");
    }

    #[test]
    fn missing_write_privileges_come_with_the_command_to_add_them() {
        let r = run(&["VM.Audit"], 8);
        let w = r
            .items
            .iter()
            .find(|i| i.name == "privileges (vm)")
            .expect("vm check");
        assert_eq!(w.status, CheckStatus::Warn);
        assert!(
            w.fix
                .as_deref()
                .is_some_and(|f| f.contains("pveum role modify")
                    && f.contains("VM.Clone")
                    && f.contains("SDN.Use")),
            "{w:?}"
        );
        assert!(r.ok, "read-only tools work");
        let none = run(&[], 8);
        assert!(!none.ok, "read-only tools refused fail the check");
    }
}

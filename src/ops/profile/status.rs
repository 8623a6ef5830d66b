//! `profile_status`: the profile's guests found by tags (and the ones with only some of them,
//! flagged), their state, node and address; with `talosctl` / `kubectl` available and the
//! profile's local state present, Talos health, the Kubernetes nodes and Flux's
//! reconciliation.

use std::ffi::OsString;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::profile::{ProfileKind, Role};
use crate::ops::{Context, Error, Run};

use super::external::{Exec, Program, Redactor, RunLog};
use super::store::{find, private_dir, state_root};
use super::talos::StateFiles;
use super::up::gather;

/// `profile_status` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileStatusArgs {
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub profile: String,
}

/// One guest of the profile.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusGuest {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub status: String,
    /// `controlplane`, `worker`, or absent for a guest without a role tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `profile_status` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileStatusReport {
    pub profile: String,
    pub tags: Vec<String>,
    /// Guests carrying all the tags.
    pub guests: Vec<StatusGuest>,
    /// How many the profile asks for.
    pub expected: u32,
    /// Guests carrying some but not all of the tags (not part of the cluster; flagged).
    pub partial: Vec<StatusGuest>,
    /// Talos health (`talosctl health`), when it could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talos: Option<String>,
    /// Kubernetes nodes Ready (`kubectl get nodes`), when it could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<String>,
    /// Flux Kustomizations ready, when it could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flux: Option<String>,
    /// Why a health check was not made (a program missing, no local state yet).
    pub notes: Vec<String>,
    pub message: String,
}

/// Reads the profile's guests and, when possible, its cluster's health.
///
/// # Errors
/// Unknown profile, PVE unreachable.
pub async fn profile_status(
    ctx: &Context,
    run: &Run,
    a: &ProfileStatusArgs,
) -> Result<ProfileStatusReport, Error> {
    let (p, _) = find(&ctx.config, &a.profile)?;
    let f = gather(ctx, &p).await?;
    let files = StateFiles::new(state_root(&ctx.config).join(&p.name));
    let state = files.load();
    let role_of = |vmid: u32| {
        f.snap.guest(vmid).and_then(|g| {
            [Role::Controlplane, Role::Worker]
                .into_iter()
                .find(|r| g.tags.iter().any(|t| t == r.tag()))
                .map(|r| r.tag().to_string())
        })
    };
    let mut guests = Vec::new();
    for m in &f.members {
        let mut address = state.addresses.get(&m.vmid).cloned();
        if address.is_none()
            && let Ok(cfg) = ctx
                .client
                .get_guest_config(
                    crate::pve::GuestType::from_name(&m.guest_type),
                    &m.node,
                    m.vmid,
                )
                .await
        {
            // A VM's static address is in `ipconfig0`, a container's in net0's `ip=`.
            let key = if m.guest_type == "lxc" {
                "net0"
            } else {
                "ipconfig0"
            };
            address = cfg.get_str(key).and_then(|c| {
                c.split(',')
                    .find_map(|x| x.strip_prefix("ip="))
                    .filter(|ip| *ip != "dhcp")
                    .map(|ip| ip.split('/').next().unwrap_or(ip).to_string())
            });
            if address.is_none() && m.status == "running" && m.guest_type != "lxc" {
                let mac = cfg.get_str("net0").and_then(|n| {
                    n.split(',')
                        .next()
                        .and_then(|x| x.split_once('='))
                        .map(|(_, m)| m.to_string())
                });
                address =
                    crate::ops::vm::agent::agent_addresses(ctx, &m.node, m.vmid, mac.as_deref())
                        .await
                        .ok()
                        .flatten()
                        .and_then(|v| v.into_iter().next());
            }
        }
        guests.push(StatusGuest {
            vmid: m.vmid,
            name: m.name.clone(),
            node: m.node.clone(),
            status: m.status.clone(),
            role: role_of(m.vmid),
            address,
        });
    }
    let partial = f
        .partial
        .iter()
        .map(|m| StatusGuest {
            vmid: m.vmid,
            name: m.name.clone(),
            node: m.node.clone(),
            status: m.status.clone(),
            role: None,
            address: None,
        })
        .collect();
    let mut report = ProfileStatusReport {
        profile: p.name.clone(),
        tags: p.tags.clone(),
        expected: p.guest_count(),
        guests,
        partial,
        talos: None,
        kubernetes: None,
        flux: None,
        notes: vec![],
        message: String::new(),
    };
    if p.kind == ProfileKind::Talos && !report.guests.is_empty() {
        health(ctx, run, &files, &state, &mut report).await;
    }
    let running = report
        .guests
        .iter()
        .filter(|g| g.status == "running")
        .count();
    report.message = format!(
        "{}: {} of {} guest(s) exist, {running} running{}{}",
        p.name,
        report.guests.len(),
        report.expected,
        if report.partial.is_empty() {
            String::new()
        } else {
            format!(
                "; {} guest(s) carry only some of its tags (not part of it)",
                report.partial.len()
            )
        },
        [
            report.talos.as_ref(),
            report.kubernetes.as_ref(),
            report.flux.as_ref()
        ]
        .into_iter()
        .flatten()
        .map(|s| format!("; {s}"))
        .collect::<String>()
    );
    Ok(report)
}

async fn health(
    ctx: &Context,
    run: &Run,
    files: &StateFiles,
    state: &super::talos::TalosState,
    report: &mut ProfileStatusReport,
) {
    let redactor = Redactor::default();
    files.learn(&redactor);
    if private_dir(&files.runs()).is_err() {
        return;
    }
    let log = RunLog::open(files.runs().join("status.log"));
    let cp = report
        .guests
        .iter()
        .find(|g| g.role.as_deref() == Some("controlplane"))
        .and_then(|g| g.address.clone());
    let exec = |program: Program, path: &std::path::Path| -> Exec<'_> {
        Exec {
            run,
            log: &log,
            redactor: &redactor,
            program,
            path: path.to_path_buf(),
            env: vec![],
            timeout: Duration::from_secs(60),
        }
    };
    match (Program::Talosctl.locate(&ctx.config), &cp) {
        (None, _) => report.notes.push(format!(
            "Talos health not checked: {}",
            Program::Talosctl.install_hint()
        )),
        (Some(_), _) if !files.talosconfig().is_file() || !state.bootstrapped => {
            report.notes.push("Talos health not checked: the cluster was not bootstrapped by this server (no talosconfig in the state directory)".into());
        }
        (Some(_), None) => report
            .notes
            .push("Talos health not checked: no control-plane address known".into()),
        (Some(path), Some(ip)) => {
            let args: Vec<OsString> = ["health", "--nodes", ip, "--endpoints", ip, "--talosconfig"]
                .iter()
                .map(OsString::from)
                .chain([
                    files.talosconfig().into(),
                    "--wait-timeout".into(),
                    "30s".into(),
                ])
                .collect();
            report.talos = Some(match exec(Program::Talosctl, &path).run(&args).await {
                Ok(_) => "Talos: healthy".into(),
                Err(e) => format!("Talos: unhealthy ({e})"),
            });
        }
    }
    if !files.kubeconfig().is_file() {
        report
            .notes
            .push("Kubernetes not checked: no kubeconfig in the state directory yet".into());
        return;
    }
    let Some(kubectl) = Program::Kubectl.locate(&ctx.config) else {
        report.notes.push(format!(
            "Kubernetes and Flux not checked: {}",
            Program::Kubectl.install_hint()
        ));
        return;
    };
    let kube = |what: &str| -> Vec<OsString> {
        vec![
            "--kubeconfig".into(),
            files.kubeconfig().into(),
            "get".into(),
            what.into(),
            "-A".into(),
            "-o".into(),
            "json".into(),
        ]
    };
    match exec(Program::Kubectl, &kubectl).run(&kube("nodes")).await {
        Ok(out) => {
            let (ready, total) = ready_count(&out);
            report.kubernetes = Some(format!("Kubernetes: {ready} of {total} node(s) Ready"));
        }
        Err(e) => report.kubernetes = Some(format!("Kubernetes: not reachable ({e})")),
    }
    match exec(Program::Kubectl, &kubectl)
        .run(&kube("kustomizations.kustomize.toolkit.fluxcd.io"))
        .await
    {
        Ok(out) => {
            let (ready, total) = ready_count(&out);
            report.flux = Some(format!(
                "Flux: {ready} of {total} Kustomization(s) reconciled"
            ));
        }
        Err(e) => report.flux = Some(format!("Flux: not readable ({e})")),
    }
}

/// `(ready, total)` items of a `kubectl get -o json` list (condition `Ready` = `True`).
pub fn ready_count(json: &str) -> (usize, usize) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return (0, 0);
    };
    let items = v
        .get("items")
        .and_then(|i| i.as_array())
        .cloned()
        .unwrap_or_default();
    let ready = items
        .iter()
        .filter(|i| {
            i.pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some("Ready")
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                })
        })
        .count();
    (ready, items.len())
}

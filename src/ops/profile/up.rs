//! `profile_up`: the plan without `confirm`; with it, the phases in order — allocate and place
//! (the plan), clone (and move, for a template on local storage) and configure through the
//! `vm_create` path, start, find each guest's address, then Talos and Flux. Resumable: the
//! guests that exist are found by the profile's tags and kept, and each later phase starts at
//! its first unfinished step.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::profile::{Addressing, ClusterProfile, ProfileKind};
use crate::ops::batch::{BatchLimits, Outcome as StepOutcome, Policy, Step, run_batch};
use crate::ops::migrate::{VmMigrateArgs, vm_migrate};
use crate::ops::plan::ClusterSnapshot;
use crate::ops::vm::agent::wait_for_ip;
use crate::ops::vm::create::{VmCreateArgs, vm_create};
use crate::ops::vm::power::{PowerAction, PowerRequest, power};
use crate::ops::{Context, Error, Run};

use super::external::{Program, Redactor, RunLog};
use super::plan::{Member, PlanInput, PlannedGuest, ProfilePlan, TemplateFacts, plan};
use super::store::{ProfileSource, find, private_dir, state_root};
use super::talos::{PhaseResult, StateFiles, TALOS_PHASES, TalosRun};

/// `profile_up` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpArgs {
    /// As `profile_list` shows it.
    #[schemars(length(min = 1, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub profile: String,
    /// Default `limits.max_parallel`; per node at most `limits.per_node_parallel`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 32))]
    pub max_parallel: Option<u32>,
    #[serde(default)]
    pub confirm: bool,
}

/// `profile_up` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProfileUpReport {
    pub profile: String,
    #[serde(rename = "type")]
    pub kind: ProfileKind,
    /// False for the plan: nothing was changed.
    pub executed: bool,
    pub template: TemplateFacts,
    /// Every guest of the profile: VMID, name, role, node, address; `exists` for the ones
    /// found by tags.
    pub guests: Vec<PlannedGuest>,
    /// New guests per node.
    pub per_node: Vec<NodeCount>,
    /// Each phase, in order, with what it does (plan) or did.
    pub phases: Vec<PhaseResult>,
    /// Programs the plan needs that are not installed, with how to install each.
    pub missing_programs: Vec<String>,
    pub max_parallel: u32,
    pub per_node_parallel: u32,
    /// The local state directory (secrets, configs, kubeconfig: 0600) and this run's log.
    pub state_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    pub warnings: Vec<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NodeCount {
    pub node: String,
    pub new_guests: u32,
}

/// What the cluster says about a profile.
pub(crate) struct Facts {
    pub snap: ClusterSnapshot,
    pub template: TemplateFacts,
    /// `template_copies`, resolved.
    pub copies: Vec<TemplateFacts>,
    /// Guests with every tag of the profile (not templates).
    pub members: Vec<Member>,
    /// Guests with some but not all of its tags.
    pub partial: Vec<Member>,
}

/// One template of `p` (`key` names the profile key in problems) as found in `snap`.
async fn template_facts(
    ctx: &Context,
    p: &ClusterProfile,
    snap: &mut ClusterSnapshot,
    which: &crate::config::profile::RawTemplate,
    key: &str,
) -> Result<TemplateFacts, Error> {
    let candidates: Vec<&crate::ops::plan::GuestInfo> = snap
        .guests
        .iter()
        .filter(|g| match which {
            crate::config::profile::RawTemplate::Vmid(v) => g.vmid == *v,
            crate::config::profile::RawTemplate::Name(n) => g.name == *n && g.template,
        })
        .collect();
    let t = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::NotFound {
                what: format!("template {which} of profile {}", p.name),
                hint: format!(
                    "{}: template_list shows the templates; build one with a runbook (runbook_list), or fix `template:`",
                    p.problem(key, "")
                ),
            });
        }
        many => {
            return Err(Error::invalid(
                "template",
                format!(
                    "{} templates are named {} (vmids {}); write the vmid in `template:`",
                    many.len(),
                    which,
                    many.iter()
                        .map(|g| g.vmid.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    if !t.template {
        return Err(Error::refused(format!(
            "{}: vm {} ({}) is not a template; convert it with template_convert or name a template",
            p.problem(key, "").to_string().trim_end_matches(": "),
            t.vmid,
            t.name
        )));
    }
    // Only the template's own config: its node's other guests are not needed (reading them
    // all made a profile read cost one call per guest on that node). An unreadable config
    // leaves the disks unknown, as before.
    let _ = snap.read_guest_config(ctx, t.vmid).await;
    let disk = snap
        .guest(t.vmid)
        .and_then(|g| g.disks.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !d.cdrom && !d.key.starts_with("efidisk") && !d.key.starts_with("tpmstate"))
        .min_by_key(|d| (!d.key.starts_with("scsi"), d.key.clone()));
    let storage = disk.map(|d| d.storage).unwrap_or_default();
    let shared = snap.storages.iter().any(|s| s.id == storage && s.shared);
    let container = t.kind == crate::ops::plan::GuestKind::Lxc;
    let agent = !container
        && ctx
            .client
            .get_qemu_config(&t.node, t.vmid)
            .await
            .ok()
            .and_then(|c| c.get_str("agent"))
            .is_some_and(|a| {
                let first = a.split(',').next().unwrap_or("");
                first == "1" || first == "enabled=1" || a.split(',').any(|x| x == "enabled=1")
            });
    Ok(TemplateFacts {
        vmid: t.vmid,
        name: t.name.clone(),
        node: t.node.clone(),
        storage,
        shared,
        agent,
        tags: t.tags.clone(),
        container,
    })
}

/// Reads the cluster for `p`: the snapshot (with the templates' disks), the template and
/// its per-node copies, the guests carrying its tags.
///
/// # Errors
/// PVE unreachable; a template missing, not a template, ambiguous, or a copy on another node.
pub(crate) async fn gather(ctx: &Context, p: &ClusterProfile) -> Result<Facts, Error> {
    let (mut snap, _) = crate::ops::migrate::read_snapshot(ctx, &[]).await?;
    let found = find_in(ctx, p, &mut snap).await?;
    Ok(found.on(snap))
}

/// [`Facts`] without the snapshot they were found in.
pub(crate) struct Found {
    template: TemplateFacts,
    copies: Vec<TemplateFacts>,
    members: Vec<Member>,
    partial: Vec<Member>,
}

impl Found {
    pub(crate) fn on(self, snap: ClusterSnapshot) -> Facts {
        Facts {
            snap,
            template: self.template,
            copies: self.copies,
            members: self.members,
            partial: self.partial,
        }
    }
}

/// What [`gather`] finds for `p` in a snapshot already read (`profile_validate` reads one for
/// all profiles); the templates' configs read are kept in it.
///
/// # Errors
/// As [`gather`], less the snapshot's own read.
pub(crate) async fn find_in(
    ctx: &Context,
    p: &ClusterProfile,
    snap: &mut ClusterSnapshot,
) -> Result<Found, Error> {
    let template = template_facts(ctx, p, snap, &p.template, "template").await?;
    let mut copies = Vec::new();
    for (node, which) in &p.template_copies {
        let copy = template_facts(ctx, p, snap, which, "template_copies").await?;
        if copy.node != *node {
            return Err(Error::invalid(
                "template_copies",
                format!(
                    "{}: template {} ({}) is on {}, not on {node}; name the copy that lives on {node}",
                    p.problem("template_copies", "")
                        .to_string()
                        .trim_end_matches(": "),
                    copy.vmid,
                    copy.name,
                    copy.node
                ),
            ));
        }
        copies.push(copy);
    }
    let mut members = Vec::new();
    let mut partial = Vec::new();
    for g in snap.guests.iter().filter(|g| !g.template) {
        let have = p.tags.iter().filter(|t| g.tags.contains(t)).count();
        let m = Member {
            vmid: g.vmid,
            guest_type: match g.kind {
                crate::ops::plan::GuestKind::Lxc => "lxc",
                _ => "qemu",
            }
            .into(),
            name: g.name.clone(),
            node: g.node.clone(),
            status: g.status.clone(),
        };
        if have == p.tags.len() {
            members.push(m);
        } else if have > 0 {
            partial.push(m);
        }
    }
    Ok(Found {
        template,
        copies,
        members,
        partial,
    })
}

/// The plan for `p` on these facts.
pub(crate) fn plan_for(ctx: &Context, p: &ClusterProfile, f: &Facts) -> ProfilePlan {
    let storage = clone_storage(ctx, p);
    plan(&PlanInput {
        profile: p,
        snap: &f.snap,
        members: &f.members,
        template: &f.template,
        copies: &f.copies,
        vms_range: ctx.config.vmid_ranges.vms,
        storage: &storage,
        ratios: crate::ops::migrate::ratios(&ctx.config.placement),
    })
}

fn clone_storage(ctx: &Context, p: &ClusterProfile) -> String {
    p.storage
        .clone()
        .unwrap_or_else(|| ctx.config.defaults.storage.clone())
}

/// The programs the profile's phases need and their paths (`None` = missing).
pub(crate) fn programs(
    ctx: &Context,
    p: &ClusterProfile,
) -> Vec<(Program, Option<std::path::PathBuf>)> {
    let mut v = Vec::new();
    if p.kind == ProfileKind::Talos {
        v.push((Program::Talosctl, Program::Talosctl.locate(&ctx.config)));
        if p.flux.is_some() {
            v.push((Program::Flux, Program::Flux.locate(&ctx.config)));
        }
    }
    v
}

/// The phases as planned.
fn planned_phases(
    p: &ClusterProfile,
    plan: &ProfilePlan,
    f: &Facts,
    missing: &[Program],
) -> Vec<PhaseResult> {
    let new = plan.guests.iter().filter(|g| !g.exists).count();
    let existing = plan.guests.len() - new;
    let moved = plan.guests.iter().filter(|g| !g.exists && g.moved).count();
    let mut v = vec![
        PhaseResult::new("allocate", "planned", format!(
            "{new} new VMID(s) in the vms range; {existing} guest(s) already exist and are kept")),
        PhaseResult::new("place", "planned", format!(
            "placement: spread over {}",
            plan.per_node.iter().map(|(n, c)| format!("{n} ×{c}")).collect::<Vec<_>>().join(", "))),
        PhaseResult::new("clone", "planned", format!(
            "full clones of template {} ({}) on {}{}",
            f.template.vmid, f.template.name, f.template.node,
            if moved > 0 { format!("; {moved} moved offline to their node afterwards (the template is on local storage {})", f.template.storage) } else { String::new() })),
        PhaseResult::new("configure", "planned", format!(
            "cores, memory, disk, net0, ipconfig0 ({}), tags [{}] plus the role tag",
            if p.network.addressing == Addressing::Static { "static" } else { "dhcp" },
            p.tags.join(", "))),
        PhaseResult::new("start", "planned", "start every guest that is not running"),
        PhaseResult::new("address", "planned", match (p.network.addressing, f.template.agent) {
            (Addressing::Static, _) => "static addresses from network.node_cidr".to_string(),
            (_, true) => "the guest agent's address for net0's MAC".to_string(),
            (_, false) => "the node's neighbour table (ip neigh, over SSH) for net0's MAC: the template has no guest agent".to_string(),
        }),
    ];
    if p.kind == ProfileKind::Talos {
        for name in TALOS_PHASES {
            let status = if missing.contains(&Program::Talosctl) {
                "skipped"
            } else {
                "planned"
            };
            let detail = if status == "skipped" {
                format!("needs talosctl: {}", Program::Talosctl.install_hint())
            } else {
                talos_detail(name, p)
            };
            v.push(PhaseResult::new(name, status, detail));
        }
        if let Some(flux) = &p.flux {
            let status = if missing.contains(&Program::Flux) || missing.contains(&Program::Talosctl)
            {
                "skipped"
            } else {
                "planned"
            };
            let detail = if missing.contains(&Program::Flux) {
                format!("needs flux: {}", Program::Flux.install_hint())
            } else {
                format!(
                    "flux bootstrap git --url={} --branch={} --path={}",
                    flux.url(),
                    flux.branch,
                    flux.path
                )
            };
            v.push(PhaseResult::new("flux", status, detail));
        }
    }
    v
}

fn talos_detail(name: &str, p: &ClusterProfile) -> String {
    match name {
        "talos_secrets" => {
            "talosctl gen secrets (kept for rebuilds; 0600 in the state directory)".into()
        }
        "talos_config" => format!(
            "talosctl gen config {} https://{} with pod {} and service {} as a config patch",
            p.name,
            p.network.api_endpoint.clone().unwrap_or_default(),
            p.network
                .pod_cidr
                .map(|c| c.to_string())
                .unwrap_or_default(),
            p.network
                .service_cidr
                .map(|c| c.to_string())
                .unwrap_or_default()
        ),
        "talos_apply" => {
            "talosctl apply-config --insecure per guest (controlplane.yaml / worker.yaml)".into()
        }
        "talos_bootstrap" => "talosctl bootstrap on the first control-plane guest".into(),
        "talos_health" => "talosctl health (up to 10 minutes)".into(),
        _ => "talosctl kubeconfig into the state directory (0600)".into(),
    }
}

/// Previews, or with `confirm` performs, the spin-up.
///
/// # Errors
/// An unknown or invalid profile, a template problem, a plan that does not fit (refused before
/// anything changes); after that, the first failing phase, naming the guest and what exists.
pub async fn profile_up(
    ctx: &Context,
    run: &Run,
    a: &ProfileUpArgs,
) -> Result<ProfileUpReport, Error> {
    let (p, source) = find(&ctx.config, &a.profile)?;
    let f = gather(ctx, &p).await?;
    up_with(ctx, run, &p, source, f, a.max_parallel, a.confirm).await
}

pub(crate) async fn up_with(
    ctx: &Context,
    run: &Run,
    p: &ClusterProfile,
    _source: ProfileSource,
    f: Facts,
    max_parallel: Option<u32>,
    confirm: bool,
) -> Result<ProfileUpReport, Error> {
    if let Some(why) = super::validate::template_problem(p, &f.template) {
        return Err(Error::refused(p.problem("template", why).to_string()));
    }
    let plan = plan_for(ctx, p, &f);
    let problems = super::validate::plan_problems(p, &plan);
    if !problems.is_empty() {
        return Err(Error::refused(format!(
            "the profile does not fit the cluster, nothing was changed: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let progs = programs(ctx, p);
    let missing: Vec<Program> = progs
        .iter()
        .filter(|(_, path)| path.is_none())
        .map(|(p, _)| *p)
        .collect();
    let max_parallel = max_parallel
        .unwrap_or(ctx.config.limits.max_parallel)
        .max(1);
    let limits = BatchLimits {
        global: max_parallel as usize,
        per_node: ctx.config.limits.per_node_parallel.max(1) as usize,
    };
    let files = StateFiles::new(state_root(&ctx.config).join(&p.name));
    let mut warnings = Vec::new();
    let partial_names: Vec<String> = f
        .partial
        .iter()
        .map(|m| format!("{} {}", m.vmid, m.name))
        .collect();
    if !partial_names.is_empty() {
        warnings.push(format!(
            "guests carrying some but not all of the tags [{}] are not part of this cluster and are left alone: {}",
            p.tags.join(", "),
            partial_names.join(", ")
        ));
    }
    let mut report = ProfileUpReport {
        profile: p.name.clone(),
        kind: p.kind,
        executed: false,
        template: f.template.clone(),
        guests: plan.guests.clone(),
        per_node: plan
            .per_node
            .iter()
            .map(|(n, c)| NodeCount {
                node: n.clone(),
                new_guests: *c,
            })
            .collect(),
        phases: planned_phases(p, &plan, &f, &missing),
        missing_programs: missing
            .iter()
            .map(|m| format!("{}: {}", m.name(), m.install_hint()))
            .collect(),
        max_parallel,
        per_node_parallel: limits.per_node as u32,
        state_dir: files.dir.display().to_string(),
        log_file: None,
        warnings,
        message: String::new(),
    };
    if !confirm {
        let new = plan.guests.iter().filter(|g| !g.exists).count();
        report.message = format!(
            "plan, nothing changed: {} guest(s), {new} to create, {} already there. Show the plan to the user; call again with confirm: true to run it",
            plan.guests.len(),
            plan.guests.len() - new
        );
        return Ok(report);
    }
    report.executed = true;
    private_dir(&files.runs()).map_err(|e| super::talos::io_error(&files.runs(), &e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let log = RunLog::open(files.runs().join(format!("{stamp}-up.log")));
    report.log_file = Some(log.path.display().to_string());
    log.line(&format!(
        "profile_up {}: {} guest(s)",
        p.name,
        plan.guests.len()
    ));
    let mut phases: Vec<PhaseResult> = report
        .phases
        .drain(..2)
        .map(|mut ph| {
            ph.status = "done".into();
            ph
        })
        .collect();

    // clone + configure (+ move): the vm_create path, per guest.
    let storage = p.storage.clone();
    let to_create: Vec<PlannedGuest> = plan.guests.iter().filter(|g| !g.exists).cloned().collect();
    run.note(format!(
        "phase clone: {} guest(s) to create from template {}",
        to_create.len(),
        f.template.vmid
    ));
    let steps: Vec<Step<()>> = to_create
        .iter()
        .map(|g| {
            let ctx = ctx.clone();
            let g = g.clone();
            let t = f.template.clone();
            let args = create_args(p, &g, &t, storage.clone());
            log.line(&format!("create {} {} on {}", g.vmid, g.name, g.node));
            let key = g.clone_on.clone();
            Step::new(
                format!("{} {}", g.vmid, g.name),
                Some(&key),
                async move |run: Run| {
                    vm_create(&ctx, &run, &args).await?;
                    if g.moved {
                        run.note(format!(
                            "{} {}: moving offline from {} to {}",
                            g.vmid, g.name, t.node, g.node
                        ));
                        move_offline(&ctx, &run, g.vmid, &g.node)
                            .await
                            .map_err(|e| Error::Partial {
                                done: format!(
                                    "vm {} ({}) was cloned and configured on {}",
                                    g.vmid, g.name, t.node
                                ),
                                step: format!("moving it to {}", g.node),
                                source: Box::new(e),
                                next: "call profile_up again with confirm: true to retry the move"
                                    .into(),
                            })?;
                    }
                    Ok(())
                },
            )
        })
        .collect();
    let batch = run_batch(steps, limits, Policy::Continue, run).await;
    let failed = failures(&batch.results);
    if !failed.is_empty() {
        log.line(&format!("clone failed: {}", failed.join("; ")));
        return Err(Error::refused(format!(
            "phase clone failed for {}; the other guests were created (found by their tags next time). Fix the cause and call profile_up again with confirm: true: it keeps what exists and continues",
            failed.join("; ")
        )));
    }
    let created = to_create.len();
    phases.push(PhaseResult::new(
        "clone",
        if created == 0 { "already_done" } else { "done" },
        format!(
            "{created} guest(s) cloned from template {}",
            f.template.vmid
        ),
    ));
    phases.push(PhaseResult::new(
        "configure",
        if created == 0 { "already_done" } else { "done" },
        format!("{created} guest(s) configured (cores, memory, disk, net0, ipconfig0, tags)"),
    ));

    // start
    let not_running: Vec<&PlannedGuest> = plan
        .guests
        .iter()
        .filter(|g| g.status.as_deref() != Some("running"))
        .collect();
    run.note(format!(
        "phase start: starting {} guest(s)",
        not_running.len()
    ));
    let steps: Vec<Step<()>> = not_running
        .iter()
        .map(|g| {
            let ctx = ctx.clone();
            let vmid = g.vmid;
            Step::new(
                format!("{} {}", g.vmid, g.name),
                Some(&g.node),
                async move |run: Run| {
                    power(
                        &ctx,
                        &run,
                        &PowerRequest::new(PowerAction::Start, vmid, false),
                    )
                    .await?;
                    Ok(())
                },
            )
        })
        .collect();
    let batch = run_batch(steps, limits, Policy::Continue, run).await;
    let failed = failures(&batch.results);
    if !failed.is_empty() {
        return Err(Error::refused(format!(
            "phase start failed for {}; every guest exists. Fix the cause and call profile_up again with confirm: true",
            failed.join("; ")
        )));
    }
    phases.push(PhaseResult::new(
        "start",
        if not_running.is_empty() {
            "already_done"
        } else {
            "done"
        },
        format!("{} guest(s) started", not_running.len()),
    ));

    // addresses
    run.note("phase address: finding each guest's address");
    let mut addressed: Vec<(PlannedGuest, String)> = Vec::new();
    let steps: Vec<Step<String>> = plan
        .guests
        .iter()
        .map(|g| {
            let ctx = ctx.clone();
            let g = g.clone();
            let agent = f.template.agent;
            let key = g.node.clone();
            Step::new(
                format!("{} {}", g.vmid, g.name),
                Some(&key),
                async move |run: Run| address_of(&ctx, &run, &g, agent).await,
            )
        })
        .collect();
    let batch = run_batch(
        steps,
        BatchLimits {
            global: plan.guests.len().max(1),
            per_node: plan.guests.len().max(1),
        },
        Policy::Continue,
        run,
    )
    .await;
    let mut failed = Vec::new();
    for (r, g) in batch.results.into_iter().zip(&plan.guests) {
        match r.outcome {
            StepOutcome::Done { value } => addressed.push((g.clone(), value)),
            StepOutcome::Failed { error } => failed.push(format!("{} {}: {error}", g.vmid, g.name)),
            StepOutcome::NotStarted { reason } => {
                failed.push(format!("{} {}: {reason}", g.vmid, g.name))
            }
        }
    }
    if !failed.is_empty() {
        return Err(Error::refused(format!(
            "phase address failed for {}; every guest exists and runs. Fix the cause (or use addresses: static in the profile) and call profile_up again with confirm: true",
            failed.join("; ")
        )));
    }
    let by_vmid: BTreeMap<u32, String> = addressed
        .iter()
        .map(|(g, ip)| (g.vmid, ip.clone()))
        .collect();
    for g in &mut report.guests {
        g.address = by_vmid.get(&g.vmid).cloned();
        g.exists = true;
        g.status = Some("running".into());
    }
    phases.push(PhaseResult::new(
        "address",
        "done",
        addressed
            .iter()
            .map(|(g, ip)| format!("{} {ip}", g.name))
            .collect::<Vec<_>>()
            .join(", "),
    ));

    // Talos and Flux
    if p.kind == ProfileKind::Talos {
        match progs
            .iter()
            .find(|(pr, _)| *pr == Program::Talosctl)
            .and_then(|(_, path)| path.clone())
        {
            None => {
                for name in TALOS_PHASES {
                    phases.push(PhaseResult::new(
                        name,
                        "skipped",
                        format!("needs talosctl: {}", Program::Talosctl.install_hint()),
                    ));
                }
            }
            Some(talosctl) => {
                let redactor = Redactor::default();
                let flux = progs
                    .iter()
                    .find(|(pr, _)| *pr == Program::Flux)
                    .and_then(|(_, path)| path.clone());
                let tr = TalosRun {
                    run,
                    profile: p,
                    files: &files,
                    log: &log,
                    redactor: &redactor,
                    talosctl,
                    flux,
                    limits,
                };
                let result = tr.execute(&addressed, &mut phases).await;
                if let Err(e) = result {
                    log.line(&format!("failed: {}", redactor.redact(&e.to_string())));
                    return Err(Error::Partial {
                        done: format!(
                            "the {} guest(s) of {} exist, run and have addresses ({})",
                            plan.guests.len(),
                            p.name,
                            addressed
                                .iter()
                                .map(|(g, ip)| format!("{} {ip}", g.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        step: "the Talos phases".into(),
                        source: Box::new(Error::refused(redactor.redact(&e.to_string()))),
                        next: format!("the run's log is {}", log.path.display()),
                    });
                }
            }
        }
    }
    report.phases = phases;
    log.line("done");
    report.message = format!(
        "{} is up: {} guest(s) ({}){}",
        p.name,
        report.guests.len(),
        report
            .guests
            .iter()
            .map(|g| format!(
                "{} on {} at {}",
                g.name,
                g.node,
                g.address.clone().unwrap_or_default()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        if p.kind == ProfileKind::Talos
            && report
                .phases
                .iter()
                .any(|ph| ph.name == "kubeconfig" && ph.status != "skipped")
        {
            format!("; kubeconfig at {}", files.kubeconfig().display())
        } else {
            String::new()
        }
    );
    Ok(report)
}

fn failures<T>(results: &[crate::ops::batch::StepResult<T>]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| match &r.outcome {
            StepOutcome::Failed { error } => Some(format!("{}: {error}", r.label)),
            StepOutcome::NotStarted { reason } => {
                Some(format!("{}: not started ({reason})", r.label))
            }
            StepOutcome::Done { .. } => None,
        })
        .collect()
}

/// The `vm_create` arguments of one planned guest.
fn create_args(
    p: &ClusterProfile,
    g: &PlannedGuest,
    t: &TemplateFacts,
    storage: Option<String>,
) -> VmCreateArgs {
    let mut tags = p.tags.clone();
    tags.push(g.role.tag().to_string());
    VmCreateArgs {
        template: g.template.to_string(),
        name: g.name.clone(),
        vmid: Some(g.vmid),
        // Straight to its node from shared storage; else on the template's node, moved after.
        node: Some(if g.moved {
            t.node.clone()
        } else {
            g.node.clone()
        }),
        full: Some(true),
        storage,
        cores: Some(g.cores),
        sockets: None,
        memory: Some(g.memory_mib),
        disk: Some(g.disk.clone()),
        bridge: p.network.bridge.clone(),
        vlan: p.network.vlan,
        ci_user: None,
        ssh_keys: None,
        ipconfig0: Some(g.ipconfig0.clone()),
        nameserver: p.network.nameserver.clone(),
        searchdomain: None,
        tags,
        tag_groups: vec![],
        description: Some(format!("cluster profile {} ({})", p.name, g.role.tag())),
        start: false,
        wait_for_ip: false,
        allow_outside_ranges: false,
        allow_duplicate_name: false,
        // A guest the fleet's inventory assigns to another host is refused like any vm_create.
        allow_inventory_conflict: false,
    }
}

/// Moves a stopped clone with its local disks to `target`.
async fn move_offline(ctx: &Context, run: &Run, vmid: u32, target: &str) -> Result<(), Error> {
    vm_migrate(
        ctx,
        run,
        &VmMigrateArgs {
            vmid,
            target: target.to_string(),
            online: Some(false),
            with_local_disks: Some(true),
            target_storage: None,
            bwlimit_kib: None,
            allow_pinned: false,
            allow_outside_ranges: false,
        },
    )
    .await
    .map(|_| ())
}

/// The guest's address: static (known), the guest agent (MAC of net0), else the node's
/// neighbour table over SSH.
async fn address_of(
    ctx: &Context,
    run: &Run,
    g: &PlannedGuest,
    agent: bool,
) -> Result<String, Error> {
    if let Some(a) = &g.address {
        return Ok(a.clone());
    }
    let cfg = ctx.client.get_qemu_config(&g.node, g.vmid).await?;
    let mac = cfg.get_str("net0").and_then(|n| {
        n.split(',')
            .next()
            .and_then(|m| m.split_once('='))
            .map(|(_, m)| m.to_string())
    });
    let agent_on = cfg.get_str("agent").is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|x| x == "1" || x == "enabled=1")
    });
    if agent || agent_on {
        let ips = wait_for_ip(ctx, run, &g.node, g.vmid, mac.as_deref()).await?;
        return ips.into_iter().find(|ip| !ip.contains(':')).ok_or_else(|| {
            Error::refused(format!(
                "vm {} ({}) reported no IPv4 address",
                g.vmid, g.name
            ))
        });
    }
    let Some(mac) = mac else {
        return Err(Error::refused(format!(
            "vm {} ({}) has no net0 MAC address",
            g.vmid, g.name
        )));
    };
    neighbour(ctx, run, &g.node, g.vmid, &mac).await
}

/// Polls `ip neigh show` on the node until the MAC appears, up to the agent deadline.
async fn neighbour(
    ctx: &Context,
    run: &Run,
    node: &str,
    vmid: u32,
    mac: &str,
) -> Result<String, Error> {
    let Some(ssh) = &ctx.ssh else {
        return Err(Error::refused(format!(
            "vm {vmid} has no guest agent and SSH to the nodes is not configured, so its DHCP address cannot be found: configure ssh (key_file, known_hosts) or use addresses: static in the profile"
        )));
    };
    let start = std::time::Instant::now();
    let mut delay = ctx.timeouts.poll;
    let cmd = crate::ssh::Command::new("ip").arg("neigh").arg("show");
    loop {
        let out = ssh
            .run(
                &Run::new(None, run.cancel.clone()),
                node,
                &cmd,
                Duration::from_secs(30),
            )
            .await?;
        if let Some(ip) = parse_neigh(&out.stdout, mac) {
            return Ok(ip);
        }
        if start.elapsed() >= ctx.timeouts.agent {
            return Err(Error::refused(format!(
                "vm {vmid}: no neighbour entry for MAC {mac} on {node} within {:.0} s; check that it got a DHCP lease on the node's network, or use addresses: static",
                ctx.timeouts.agent.as_secs_f64()
            )));
        }
        tokio::select! {
            _ = run.cancel.cancelled() => return Err(Error::Cancelled { what: format!("vm {vmid}'s address") }),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(ctx.timeouts.poll_max);
    }
}

/// The IPv4 address of `mac` in `ip neigh show` output (`IP dev DEV lladdr MAC STATE`).
pub fn parse_neigh(text: &str, mac: &str) -> Option<String> {
    let mac = mac.to_lowercase();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let i = f.iter().position(|x| *x == "lladdr")?;
        let ok = f.get(i + 1)?.to_lowercase() == mac
            && !f
                .last()
                .is_some_and(|s| *s == "FAILED" || *s == "INCOMPLETE")
            && f[0].parse::<std::net::Ipv4Addr>().is_ok();
        ok.then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_lines_are_matched_by_mac() {
        let t = "10.20.4.2 dev vmbr0 lladdr bc:24:11:aa:bb:cc REACHABLE\nfe80::1 dev vmbr0 lladdr bc:24:11:aa:bb:cc STALE\n10.20.4.9 dev vmbr0 lladdr bc:24:11:00:00:01 FAILED\n";
        assert_eq!(
            parse_neigh(t, "BC:24:11:AA:BB:CC").as_deref(),
            Some("10.20.4.2")
        );
        assert_eq!(parse_neigh(t, "bc:24:11:00:00:01"), None);
    }
}

//! `bulk_power`: start, shut down, stop or reboot every guest a selector matches. The preview
//! lists exactly those guests and what would happen to each; with `confirm: true` the actions
//! run with at most `max_parallel` at once (`rolling: true`: one at a time, each guest back —
//! running, and answering through its guest agent when it has one — before the next).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::select::{BulkGuest, BulkResult, Skipped, resolve, results};
use crate::ops::batch::{BatchLimits, Policy, Step, run_batch};
use crate::ops::vm::inventory::VmSummary;
use crate::ops::vm::power::{PowerAction, PowerRequest, ShutdownArgs, power};
use crate::ops::vm::select::{Selector, TagsMatch};
use crate::ops::{Context, Error, Run};
use crate::pve::GuestType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    Start,
    Shutdown,
    Stop,
    Reboot,
}

impl BulkAction {
    fn power(self) -> PowerAction {
        match self {
            BulkAction::Start => PowerAction::Start,
            BulkAction::Shutdown => PowerAction::Shutdown,
            BulkAction::Stop => PowerAction::Stop,
            BulkAction::Reboot => PowerAction::Reboot,
        }
    }

    /// What the action would do to a guest in `status`.
    fn would(self, status: &str) -> String {
        let running = status == "running";
        match (self, running) {
            (BulkAction::Start, true) => "nothing: already running".into(),
            (BulkAction::Start, false) => "start".into(),
            (BulkAction::Shutdown | BulkAction::Stop, false) => {
                format!("nothing: already {status}")
            }
            (BulkAction::Shutdown, true) => "shut down gracefully (ACPI)".into(),
            (BulkAction::Stop, true) => "stop hard (like pulling the power cord)".into(),
            (BulkAction::Reboot, true) => "reboot".into(),
            (BulkAction::Reboot, false) => format!("nothing: {status}, a reboot needs it running"),
        }
    }
}

/// `bulk_power` arguments. The selector's criteria combine (AND); at least one is needed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkPowerArgs {
    /// `shutdown` is ACPI (waits `timeout_s`), `stop` a hard power-off.
    pub action: BulkAction,
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_LINE)))]
    pub tags: Option<Vec<String>>,
    /// Default `all`.
    #[serde(default)]
    pub tags_match: Option<TagsMatch>,
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
    #[schemars(length(max = 1000), inner(range(min = 100, max = 999_999_999)))]
    pub vmids: Option<Vec<u32>>,
    /// Default `limits.max_parallel`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 32))]
    pub max_parallel: Option<u32>,
    /// One at a time in vmid order, each back up (agent answering) before the next; for cluster
    /// members.
    #[serde(default)]
    pub rolling: bool,
    /// Start nothing more after a failure.
    #[serde(default)]
    pub stop_on_error: bool,
    /// Shutdown seconds per guest; default 180.
    #[serde(default)]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_s: Option<u64>,
    #[serde(default)]
    pub confirm: bool,
}

/// `bulk_power` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BulkPowerReport {
    pub action: BulkAction,
    /// False for a preview.
    pub executed: bool,
    pub rolling: bool,
    pub max_parallel: u32,
    /// The guests acted on (or that would be), in vmid order.
    pub guests: Vec<BulkGuest>,
    /// Matching guests left alone, with the reason.
    pub skipped: Vec<Skipped>,
    /// After `confirm`: one result per guest of `guests`.
    pub results: Vec<BulkResult>,
    pub message: String,
}

/// Previews, or with `confirm` runs, one power action over a selection.
///
/// # Errors
/// A selector without any criterion or with a bad value, PVE unreachable. Per-guest failures
/// are results, not errors.
pub async fn bulk_power(
    ctx: &Context,
    run: &Run,
    args: &BulkPowerArgs,
) -> Result<BulkPowerReport, Error> {
    let tags = args.tags.clone().unwrap_or_default();
    let selector = Selector {
        tags: &tags,
        tags_match: args.tags_match.unwrap_or_default(),
        node: args.node.as_deref(),
        status: args.status.as_deref(),
        name: args.name.as_deref(),
        vmids: args.vmids.as_deref(),
        include_templates: false,
    };
    let (targets, skipped) = resolve(ctx, &selector).await?;
    let max_parallel = if args.rolling {
        1
    } else {
        args.max_parallel
            .unwrap_or(ctx.config.limits.max_parallel)
            .max(1)
    };
    let inventory = crate::ops::ansible::hooks::inventory_for_previews(ctx).await;
    let guests: Vec<BulkGuest> = targets
        .iter()
        .map(|v| BulkGuest {
            vmid: v.vmid,
            guest_type: v.kind.clone(),
            name: v.name.clone(),
            node: v.node.clone(),
            status: v.status.clone(),
            action: args.action.would(&v.status),
            ansible_managed: crate::ops::ansible::hooks::managed_host(
                inventory.as_deref(),
                v.vmid,
                &v.name,
            ),
        })
        .collect();
    let mut report = BulkPowerReport {
        action: args.action,
        executed: false,
        rolling: args.rolling,
        max_parallel,
        guests,
        skipped,
        results: vec![],
        message: String::new(),
    };
    if !args.confirm {
        let acting = report
            .guests
            .iter()
            .filter(|g| !g.action.starts_with("nothing"))
            .count();
        report.message = format!(
            "preview, nothing changed: {} guest(s) match, {acting} would be acted on, {} skipped. Show the list to the user; call again with confirm: true to run it",
            report.guests.len(),
            report.skipped.len()
        );
        return Ok(report);
    }
    let steps: Vec<Step<BulkResult>> = targets
        .into_iter()
        .map(|v| {
            let ctx = ctx.clone();
            let (action, rolling, timeout) = (args.action, args.rolling, args.timeout_s);
            let label = format!("{} {}", v.vmid, v.name);
            let node = v.node.clone();
            Step::new(label, Some(&node), async move |run: Run| {
                act(&ctx, &run, &v, action, rolling, timeout).await
            })
        })
        .collect();
    let limits = BatchLimits {
        global: max_parallel as usize,
        per_node: ctx.config.limits.per_node_parallel.max(1) as usize,
    };
    let policy = if args.stop_on_error || args.rolling {
        Policy::StopOnFirstSurprise
    } else {
        Policy::Continue
    };
    let batch = run_batch(steps, limits, policy, run).await;
    report.executed = true;
    report.results = results(batch, &report.guests);
    let count = |o: &str| report.results.iter().filter(|r| r.outcome == o).count();
    report.message = format!(
        "{} done, {} had nothing to do, {} failed, {} not started, {} skipped",
        count("done"),
        count("nothing_to_do"),
        count("failed"),
        count("not_started"),
        report.skipped.len()
    );
    Ok(report)
}

/// One guest's action; with `rolling`, also waits until it is back.
async fn act(
    ctx: &Context,
    run: &Run,
    v: &VmSummary,
    action: BulkAction,
    rolling: bool,
    timeout_s: Option<u64>,
) -> Result<BulkResult, Error> {
    let shutdown = ShutdownArgs {
        vmid: v.vmid,
        timeout_s,
        force_after_timeout: false,
        allow_outside_ranges: false,
        confirm: false,
    };
    let req = PowerRequest {
        shutdown: (action == BulkAction::Shutdown).then_some(&shutdown),
        ..PowerRequest::new(action.power(), v.vmid, false)
    };
    // A reboot of a stopped guest is nothing to do here, not an error.
    if action == BulkAction::Reboot && v.status != "running" {
        return Ok(result(v, "nothing_to_do", action.would(&v.status), None));
    }
    let r = power(ctx, run, &req).await?;
    if rolling && matches!(action, BulkAction::Start | BulkAction::Reboot) && !r.noop {
        back_up(ctx, run, &r.node, v).await?;
    }
    let outcome = if r.noop { "nothing_to_do" } else { "done" };
    Ok(result(v, outcome, r.message, r.upid))
}

fn result(v: &VmSummary, outcome: &str, message: String, upid: Option<String>) -> BulkResult {
    BulkResult {
        vmid: v.vmid,
        name: v.name.clone(),
        node: v.node.clone(),
        outcome: outcome.into(),
        message,
        upid,
    }
}

/// Waits until the guest runs and, when its config enables the guest agent, the agent
/// answers — up to the agent deadline.
async fn back_up(ctx: &Context, run: &Run, node: &str, v: &VmSummary) -> Result<(), Error> {
    let vmid = v.vmid;
    let t = GuestType::from_name(&v.kind);
    let has_agent = t == GuestType::Qemu
        && ctx
            .client
            .get_qemu_config(node, vmid)
            .await
            .ok()
            .and_then(|c| c.get_str("agent").map(|a| agent_enabled(&a)))
            .unwrap_or(false);
    let start = Instant::now();
    let mut delay = ctx.timeouts.poll;
    loop {
        let running = ctx
            .client
            .get_guest_status(t, node, vmid)
            .await
            .is_ok_and(|s| s.status == "running");
        let answering = !has_agent
            || crate::ops::vm::agent::agent_addresses(ctx, node, vmid, None)
                .await
                .is_ok_and(|a| a.is_some());
        if running && answering {
            run.note(format!(
                "{} {vmid}: back (running{})",
                t.word(),
                if has_agent { ", agent answering" } else { "" }
            ));
            return Ok(());
        }
        if start.elapsed() >= ctx.timeouts.agent {
            return Err(Error::refused(format!(
                "{} {vmid} on {node} is not back after {:.0} s ({}); the rolling run stops here — check the guest's console",
                t.word(),
                ctx.timeouts.agent.as_secs_f64(),
                if running {
                    "running, but its guest agent does not answer"
                } else {
                    "not running"
                }
            )));
        }
        tokio::select! {
            _ = run.cancel.cancelled() => return Err(Error::Cancelled { what: format!("vm {vmid} to come back") }),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(ctx.timeouts.poll_max);
    }
}

/// `agent: 1` or `agent: enabled=1,...`.
fn agent_enabled(v: &str) -> bool {
    let first = v.split(',').next().unwrap_or("");
    matches!(first, "1" | "enabled=1") || v.split(',').any(|p| p == "enabled=1")
}

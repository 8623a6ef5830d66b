//! Power of a VM or a container: start, stop (hard), shutdown (ACPI or the container's init,
//! with timeout and optional force), reboot. The type comes from the cluster inventory.
//! A guest already in the asked state is a reported no-op; templates cannot be started. A hard stop
//! is destructive (the guest loses what it has not written): without `confirm` it is previewed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::{GuestType, ShutdownQemu, StartQemu, StopQemu, Upid};

use crate::ops::guard::{guest_type, node_of, resolve_guest};
use crate::ops::run::Run;
use crate::ops::{Context, Error};

/// Which power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    Start,
    Stop,
    Shutdown,
    Reboot,
}

impl PowerAction {
    fn verb(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Shutdown => "shutdown",
            PowerAction::Reboot => "reboot",
        }
    }
}

/// Arguments of `vm_start` and `vm_reboot`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// Arguments of `vm_stop`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[serde(default)]
    pub allow_outside_ranges: bool,
    #[serde(default)]
    pub confirm: bool,
}

/// Arguments of `vm_shutdown`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Default 180.
    #[serde(default)]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_s: Option<u64>,
    /// Hard-stop it after the timeout; needs `confirm`.
    #[serde(default)]
    pub force_after_timeout: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
    /// Confirms `force_after_timeout`.
    #[serde(default)]
    pub confirm: bool,
}

/// What a power tool did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PowerReport {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    pub action: PowerAction,
    /// State before the call.
    pub before: String,
    /// Read back after the call.
    pub after: String,
    /// Already in that state: nothing was sent.
    pub noop: bool,
    /// Nothing was sent: the action needs `confirm: true`; `message` says what it would do.
    pub preview: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    /// `OK` or `WARNINGS: N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exitstatus: Option<String>,
    pub message: String,
}

/// One power action as a tool asked for it.
#[derive(Debug, Clone, Copy)]
pub struct PowerRequest<'a> {
    pub action: PowerAction,
    pub vmid: u32,
    pub allow_outside_ranges: bool,
    /// `vm_shutdown`'s timeout and force settings.
    pub shutdown: Option<&'a ShutdownArgs>,
    /// False for an unconfirmed `vm_stop`: only the preview is returned.
    pub confirmed: bool,
}

impl PowerRequest<'_> {
    /// A confirmed `action` on `vmid`, without shutdown settings.
    pub fn new(action: PowerAction, vmid: u32, allow_outside_ranges: bool) -> Self {
        PowerRequest {
            action,
            vmid,
            allow_outside_ranges,
            shutdown: None,
            confirmed: true,
        }
    }
}

/// Runs one power action and waits for its task.
///
/// # Errors
/// Guards, a template start, a failed or timed-out task, a held lock past the deadline.
pub async fn power(ctx: &Context, run: &Run, req: &PowerRequest<'_>) -> Result<PowerReport, Error> {
    let &PowerRequest {
        action,
        vmid,
        allow_outside_ranges,
        shutdown,
        confirmed,
    } = req;
    let row = resolve_guest(ctx, vmid, allow_outside_ranges).await?;
    let node = node_of(&row);
    let t = guest_type(&row);
    let vm = t.word();
    let status = ctx.client.get_guest_status(t, &node, vmid).await?;
    let name = status.name.clone().or(row.name.clone()).unwrap_or_default();
    let before = status.status.clone();
    let template = status.template.unwrap_or(false) || row.is_template();
    let mut report = PowerReport {
        vmid,
        node: node.clone(),
        name,
        action,
        before: before.clone(),
        after: before.clone(),
        noop: false,
        preview: false,
        upid: None,
        exitstatus: None,
        message: String::new(),
    };
    let running = before == "running";
    if template && matches!(action, PowerAction::Start | PowerAction::Reboot) {
        return Err(Error::refused(format!(
            "{vm} {vmid} is a template and templates cannot be started; clone it ({}) and start the clone",
            if t == GuestType::Lxc {
                format!("ct_create with template: {vmid}")
            } else {
                "vm_create".to_string()
            }
        )));
    }
    match (action, running) {
        (PowerAction::Start, true) | (PowerAction::Stop | PowerAction::Shutdown, false) => {
            report.noop = true;
            report.message = format!("{vm} {vmid} on {node} is already {before}; nothing to do");
            return Ok(report);
        }
        (PowerAction::Reboot, false) => {
            return Err(Error::refused(format!(
                "{vm} {vmid} on {node} is {before}; a reboot needs a running {} — use vm_start",
                t.noun()
            )));
        }
        _ => {}
    }
    let forced = shutdown.is_some_and(|a| a.force_after_timeout);
    if action == PowerAction::Shutdown && forced && !confirmed {
        let timeout = shutdown.and_then(|a| a.timeout_s).unwrap_or(180);
        report.preview = true;
        report.message = format!(
            "would shut down {vm} {vmid} ({}) on {node} and, if the guest has not powered off after \
             {timeout} s, stop it hard (the guest loses what it has not written). Nothing was \
             done: call vm_shutdown again with confirm: true, or without force_after_timeout \
             for a graceful shutdown only",
            report.name
        );
        return Ok(report);
    }
    if action == PowerAction::Stop && !confirmed {
        report.preview = true;
        report.message = format!(
            "would stop {vm} {vmid} ({}) on {node} hard, like pulling the power cord: the guest \
             gets no chance to flush its disks or close its services. Nothing was done: call \
             vm_stop again with confirm: true, or shut it down gracefully with vm_shutdown",
            report.name
        );
        return Ok(report);
    }
    let object = format!("{vm} {vmid} on {node}");
    let what = format!("{} {object}", action.verb());
    let done = run
        .task_locked(ctx, &object, &what, || async {
            let c = &ctx.client;
            let timeout = shutdown.and_then(|a| a.timeout_s).unwrap_or(180);
            let upid: Upid = match (action, t) {
                (PowerAction::Start, GuestType::Qemu) => {
                    c.start_qemu(&node, vmid, &StartQemu::default()).await?
                }
                (PowerAction::Start, GuestType::Lxc) => c.start_guest(t, &node, vmid).await?,
                (PowerAction::Stop, GuestType::Qemu) => {
                    c.stop_qemu(&node, vmid, &StopQemu::default()).await?
                }
                (PowerAction::Stop, GuestType::Lxc) => c.stop_lxc(&node, vmid, false).await?,
                (PowerAction::Reboot, GuestType::Qemu) => c.reboot_qemu(&node, vmid, None).await?,
                (PowerAction::Reboot, GuestType::Lxc) => c.reboot_lxc(&node, vmid, None).await?,
                (PowerAction::Shutdown, GuestType::Qemu) => {
                    let p = ShutdownQemu {
                        timeout: Some(timeout),
                        force_stop: Some(forced),
                        ..Default::default()
                    };
                    c.shutdown_qemu(&node, vmid, &p).await?
                }
                (PowerAction::Shutdown, GuestType::Lxc) => {
                    c.shutdown_lxc(&node, vmid, Some(timeout), forced).await?
                }
            };
            Ok(Some(upid))
        })
        .await;
    let (upid, outcome) = match done {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Err(Error::Setup(format!(
                "{what}: PVE answered without a task; check the {} with vm_get",
                t.noun()
            )));
        }
        // A lock is reported as a lock (waited out above); anything else that stops a
        // shutdown task is the guest not powering off.
        Err(Error::Pve(crate::pve::Error::TaskFailed {
            exitstatus,
            log_tail,
            upid,
        })) if action == PowerAction::Shutdown => {
            return Err(Error::refused(format!(
                "{vm} {vmid} on {node} did not shut down ({exitstatus}; task {upid}; last log: {}). {}: retry with force_after_timeout: true and confirm: true, or use vm_stop",
                log_tail.last().cloned().unwrap_or_default(),
                if t == GuestType::Lxc {
                    "The container's init did not stop its services in time"
                } else {
                    "The guest may ignore ACPI or lack the guest agent"
                }
            )));
        }
        Err(e) => return Err(e),
    };
    report.upid = Some(upid.to_string());
    report.exitstatus = Some(outcome.exitstatus.clone());
    report.after = ctx
        .client
        .get_guest_status(t, &node, vmid)
        .await
        .map(|s| s.status)
        .unwrap_or_else(|_| "unknown".into());
    report.message = format!(
        "{} of {vm} {vmid} on {node} finished: {}, now {}",
        action.verb(),
        outcome.exitstatus,
        report.after
    );
    Ok(report)
}

//! Toolset `vm` (writes): create, power, resize, tags, delete. Each call gets a [`Run`] that
//! forwards progress to the client (only when it sent a progress token), honours
//! cancellation, and collects the UPIDs it started for the audit log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::ops::{
    self, PowerAction, PowerArgs, PowerReport, PowerRequest, ProgressFn, Run, ShutdownArgs,
    StopArgs, VmCreateArgs, VmCreateReport, VmDeleteArgs, VmDeleteReport, VmResizeArgs,
    VmResizeReport, VmSetTagsArgs, VmSetTagsReport,
};

use super::{ProxmoxServer, tool_error};

/// One tool call's [`Run`] plus the task forwarding its progress notifications.
pub(super) struct Call {
    pub(super) run: Run,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Call {
    /// A [`Run`] for one request: progress notifications when the client asked for them.
    pub(super) fn start(rc: &RequestContext<RoleServer>, cancel: CancellationToken) -> Self {
        let Some(token) = rc.meta.get_progress_token() else {
            return Call {
                run: Run::new(None, cancel),
                forwarder: None,
            };
        };
        let peer = rc.peer.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let step = Arc::new(AtomicU64::new(0));
        // Notifications go out in order from one task; it ends when the Run (the sender) is dropped.
        let forwarder = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let n = step.fetch_add(1, Ordering::Relaxed) + 1;
                let param =
                    ProgressNotificationParam::new(token.clone(), n as f64).with_message(msg);
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        let f: ProgressFn = Arc::new(move |m: String| {
            let _ = tx.send(m);
        });
        Call {
            run: Run::new(Some(f), cancel),
            forwarder: Some(forwarder),
        }
    }

    /// Flushes the progress notifications (they must precede the response) and returns the
    /// UPIDs the call started.
    pub(super) async fn finish(self) -> Vec<String> {
        let upids = self.run.upids();
        drop(self.run);
        if let Some(f) = self.forwarder {
            let _ = f.await;
        }
        upids
    }
}

impl ProxmoxServer {
    /// Records a mutating call in the audit log and maps the result for the model.
    pub(super) fn audited<T, A: Serialize>(
        &self,
        tool: &str,
        args: &A,
        upids: &[String],
        result: Result<T, ops::Error>,
    ) -> Result<Json<T>, String> {
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        if let Err(e @ ops::Error::Pve(crate::pve::Error::Cancelled { .. })) = &result {
            // The client will not read a response to a cancelled request: stderr and the audit
            // log are where the still-running tasks are reported.
            tracing::warn!(tool, error = %e, "call cancelled");
        }
        let args = serde_json::to_value(args).unwrap_or_default();
        self.ctx.audit.record(tool, &args, upids, &outcome);
        result.map(Json).map_err(tool_error)
    }

    /// Runs a power action; audited unless it was only a preview.
    async fn power_tool<A: Serialize>(
        &self,
        tool: &str,
        req: PowerRequest<'_>,
        args: &A,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        let call = Call::start(&rc, ct);
        let r = ops::power(&self.ctx, &call.run, &req).await;
        let upids = call.finish().await;
        if !req.confirmed {
            // A preview changes nothing: no audit record.
            return r.map(Json).map_err(tool_error);
        }
        self.audited(tool, args, &upids, r)
    }
}

#[tool_router(router = lifecycle_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Create a VM by cloning a template (by vmid or name), with the cluster defaults for
    /// everything not given: lowest free VMID in vmid_ranges.vms, full clone on
    /// defaults.storage, net0 on defaults.network_bridge, cloud-init user, SSH keys and
    /// ipconfig0 applied in the same call, tags merged, optional disk growth, start and wait
    /// for the guest agent's IP. Every PVE task is waited for.
    #[tool(
        name = "vm_create",
        annotations(
            title = "Create VM from template",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn vm_create(
        &self,
        Parameters(args): Parameters<VmCreateArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmCreateReport>, String> {
        let call = Call::start(&rc, ct);
        let r = ops::vm_create(&self.ctx, &call.run, &args).await;
        let upids = call.finish().await;
        self.audited("vm_create", &args, &upids, r)
    }

    /// Start a VM and wait until its start task finished. Already running is a reported
    /// no-op; templates cannot be started.
    #[tool(
        name = "vm_start",
        annotations(
            title = "Start VM",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn vm_start(
        &self,
        Parameters(args): Parameters<PowerArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        let req = PowerRequest::new(PowerAction::Start, args.vmid, args.allow_outside_ranges);
        self.power_tool("vm_start", req, &args, rc, ct).await
    }

    /// Stop a VM hard (like pulling the power cord) and wait for it. Prefer vm_shutdown.
    /// Destructive: without confirm: true it returns what it would stop and changes nothing.
    /// Already stopped is a reported no-op.
    #[tool(
        name = "vm_stop",
        annotations(
            title = "Stop VM (hard)",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn vm_stop(
        &self,
        Parameters(args): Parameters<StopArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        let req = PowerRequest {
            confirmed: args.confirm,
            ..PowerRequest::new(PowerAction::Stop, args.vmid, args.allow_outside_ranges)
        };
        self.power_tool("vm_stop", req, &args, rc, ct).await
    }

    /// Shut a VM down gracefully (ACPI) and wait, up to timeout_s (default 180); with
    /// force_after_timeout it is stopped hard if the guest does not power off in time.
    /// Already stopped is a reported no-op.
    #[tool(
        name = "vm_shutdown",
        annotations(
            title = "Shut down VM",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn vm_shutdown(
        &self,
        Parameters(args): Parameters<ShutdownArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        let req = PowerRequest {
            shutdown: Some(&args),
            ..PowerRequest::new(PowerAction::Shutdown, args.vmid, args.allow_outside_ranges)
        };
        self.power_tool("vm_shutdown", req, &args, rc, ct).await
    }

    /// Reboot a running VM (ACPI reboot) and wait for the task.
    #[tool(
        name = "vm_reboot",
        annotations(
            title = "Reboot VM",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn vm_reboot(
        &self,
        Parameters(args): Parameters<PowerArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        let req = PowerRequest::new(PowerAction::Reboot, args.vmid, args.allow_outside_ranges);
        self.power_tool("vm_reboot", req, &args, rc, ct).await
    }

    /// Change a VM's cores, sockets, memory (MiB) and/or grow a disk (`+10G` or an absolute
    /// size; shrinking is refused before anything is changed). On a running VM the result
    /// lists the changes pending until it is stopped and started.
    #[tool(
        name = "vm_resize",
        annotations(
            title = "Resize VM",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn vm_resize(
        &self,
        Parameters(args): Parameters<VmResizeArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmResizeReport>, String> {
        let call = Call::start(&rc, ct);
        let r = ops::vm_resize(&self.ctx, &call.run, &args).await;
        let upids = call.finish().await;
        self.audited("vm_resize", &args, &upids, r)
    }

    /// Set, add or remove a VM's tags (normalised as PVE does: lowercase, deduplicated, sorted).
    #[tool(
        name = "vm_set_tags",
        annotations(
            title = "Set VM tags",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn vm_set_tags(
        &self,
        Parameters(args): Parameters<VmSetTagsArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmSetTagsReport>, String> {
        let call = Call::start(&rc, ct);
        let r = ops::vm_set_tags(&self.ctx, &call.run, &args).await;
        let upids = call.finish().await;
        self.audited("vm_set_tags", &args, &upids, r)
    }

    /// Delete a VM and its disks (purged from backup jobs and HA). Without confirm: true it
    /// only returns the preview: the VM, its node, state, disks and everything that would be
    /// removed. Protected VMs are refused; a running VM needs stop: true.
    #[tool(
        name = "vm_delete",
        annotations(
            title = "Delete VM",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn vm_delete(
        &self,
        Parameters(args): Parameters<VmDeleteArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmDeleteReport>, String> {
        let call = Call::start(&rc, ct);
        let r = ops::vm_delete(&self.ctx, &call.run, &args).await;
        let upids = call.finish().await;
        if !args.confirm {
            // A preview changes nothing: no audit record.
            return r.map(Json).map_err(tool_error);
        }
        self.audited("vm_delete", &args, &upids, r)
    }
}

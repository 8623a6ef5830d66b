//! Toolset `vm` (writes): create, power, resize, tags, delete. Each call gets a [`Run`] that
//! forwards progress to the client (only when it sent a progress token), honours
//! cancellation, and collects the UPIDs it started for the audit log.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::ops::{
    self, PowerAction, PowerArgs, PowerReport, PowerRequest, ShutdownArgs, StopArgs, VmCreateArgs,
    VmCreateReport, VmDeleteArgs, VmDeleteReport, VmResizeArgs, VmResizeReport, VmSetTagsArgs,
    VmSetTagsReport,
};

use crate::server::call::Call;
use crate::server::{ProxmoxServer, tool_error};

impl ProxmoxServer {
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
    /// force_after_timeout it is stopped hard if the guest does not power off in time — that
    /// is destructive: it needs confirm: true, otherwise the tool returns what it would do and
    /// changes nothing. Already stopped is a reported no-op.
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
            // Only the forced variant needs confirmation; a graceful shutdown is not destructive.
            confirmed: args.confirm || !args.force_after_timeout,
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

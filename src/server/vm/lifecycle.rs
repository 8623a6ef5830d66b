//! Toolset `vm` (writes): create, power, resize, tags, delete. Each call gets a [`Run`] that
//! forwards progress to the client (only when it sent a progress token), honours
//! cancellation, and collects the UPIDs it started for the audit log.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::ops::{
    self, PowerAction, PowerArgs, PowerReport, PowerRequest, ShutdownArgs, StopArgs, VmCreateArgs,
    VmCreateReport, VmDeleteArgs, VmDeleteReport, VmResizeArgs, VmResizeReport, VmSetTagsArgs,
    VmSetTagsReport,
};

use crate::ops::access::endpoints as api;
use crate::ops::spec::{Endpoint, ToolSpec};
use crate::server::ProxmoxServer;

impl ProxmoxServer {
    /// Runs a power action through the one mutating-call path; `req` reads the request from
    /// the arguments (the path may run it twice: as a preview, then confirmed).
    async fn power_tool<A: Serialize + DeserializeOwned + Clone>(
        &self,
        spec: &ToolSpec,
        args: &A,
        req: impl for<'a> Fn(&'a A) -> PowerRequest<'a>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        self.mutate(spec, args, rc, ct, async |run, args| {
            ops::power(&self.ctx, run, &req(&args)).await
        })
        .await
    }
}

pub(crate) const VM_CREATE: ToolSpec = ToolSpec::write("vm_create", "Create VM from template")
    .toolset("vm")
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::RESOURCES_ALL,
        api::NEXTID,
        api::QEMU_CONFIG,
        api::QEMU_CLONE,
        api::QEMU_CONFIG_CREATE,
        api::QEMU_RESIZE,
        api::QEMU_START,
        api::AGENT_INTERFACES_WAIT,
        api::NODE_NETWORK,
        api::SDN_VNETS,
    ]);
/// What every power tool reads and calls.
const POWER_READS: [Endpoint; 4] = [
    api::RESOURCES_GUESTS,
    api::QEMU_CONFIG,
    api::QEMU_STATUS,
    api::LXC_STATUS,
];
pub(crate) const VM_START: ToolSpec = ToolSpec::write("vm_start", "Start VM")
    .toolset("vm")
    .idempotent(true)
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        POWER_READS[0],
        POWER_READS[1],
        POWER_READS[2],
        POWER_READS[3],
        api::QEMU_START,
        api::LXC_START,
    ]);
pub(crate) const VM_STOP: ToolSpec = ToolSpec::destructive("vm_stop", "Stop VM (hard)")
    .toolset("vm")
    .idempotent(true)
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        POWER_READS[0],
        POWER_READS[1],
        POWER_READS[2],
        POWER_READS[3],
        api::QEMU_STOP,
        api::LXC_STOP,
    ]);
pub(crate) const VM_SHUTDOWN: ToolSpec = ToolSpec::write("vm_shutdown", "Shut down VM")
    .toolset("vm")
    .confirm_args(&["force_after_timeout"])
    .idempotent(true)
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        POWER_READS[0],
        POWER_READS[1],
        POWER_READS[2],
        POWER_READS[3],
        api::QEMU_SHUTDOWN,
        api::QEMU_STOP,
        api::LXC_SHUTDOWN,
    ]);
pub(crate) const VM_REBOOT: ToolSpec = ToolSpec::write("vm_reboot", "Reboot VM")
    .toolset("vm")
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        POWER_READS[0],
        POWER_READS[1],
        POWER_READS[2],
        POWER_READS[3],
        api::QEMU_REBOOT,
        api::LXC_REBOOT,
    ]);
pub(crate) const VM_RESIZE: ToolSpec = ToolSpec::write("vm_resize", "Resize VM")
    .toolset("vm")
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::RESOURCES_GUESTS,
        api::QEMU_CONFIG,
        api::QEMU_STATUS,
        api::QEMU_PENDING,
        api::QEMU_CONFIG_SIZE,
        api::QEMU_RESIZE,
        api::LXC_CONFIG,
        api::LXC_STATUS,
        api::LXC_PENDING,
        api::LXC_CONFIG_SIZE,
        api::LXC_RESIZE,
    ]);
pub(crate) const VM_SET_TAGS: ToolSpec = ToolSpec::write("vm_set_tags", "Set VM tags")
    .toolset("vm")
    .idempotent(true)
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::RESOURCES_GUESTS,
        api::QEMU_STATUS,
        api::QEMU_CONFIG,
        api::QEMU_CONFIG_TAGS,
        api::LXC_CONFIG,
        api::LXC_CONFIG_TAGS,
    ]);
pub(crate) const VM_DELETE: ToolSpec = ToolSpec::destructive("vm_delete", "Delete VM")
    .toolset("vm")
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::RESOURCES_GUESTS,
        api::QEMU_CONFIG,
        api::QEMU_STATUS,
        api::QEMU_STOP,
        api::QEMU_DELETE,
        api::LXC_CONFIG,
        api::LXC_STATUS,
        api::LXC_STOP,
        api::LXC_DELETE,
    ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[
    VM_CREATE,
    VM_START,
    VM_STOP,
    VM_SHUTDOWN,
    VM_REBOOT,
    VM_RESIZE,
    VM_SET_TAGS,
    VM_DELETE,
];

#[tool_router(router = lifecycle_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Create a VM by cloning a template, with the cluster defaults for everything not given;
    /// cloud-init user, SSH keys and network applied in the same call; optionally grow the disk,
    /// start, and wait for the guest agent's IP. Every PVE task is waited for.
    #[tool(
        name = "vm_create",
        input_schema = crate::server::schema::input::<VmCreateArgs>(),
        output_schema = crate::server::schema::output::<VmCreateReport>()
    )]
    async fn vm_create(
        &self,
        Parameters(args): Parameters<VmCreateArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmCreateReport>, String> {
        self.mutate(&VM_CREATE, &args, rc, ct, async |run, args| {
            ops::vm_create(&self.ctx, run, &args).await
        })
        .await
    }

    /// Start a VM or container and wait for its task. Already running is a no-op; templates cannot be started.
    #[tool(
        name = "vm_start",
        input_schema = crate::server::schema::input::<PowerArgs>(),
        output_schema = crate::server::schema::output::<PowerReport>()
    )]
    async fn vm_start(
        &self,
        Parameters(args): Parameters<PowerArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        self.power_tool(
            &VM_START,
            &args,
            |a| PowerRequest::new(PowerAction::Start, a.vmid, a.allow_outside_ranges),
            rc,
            ct,
        )
        .await
    }

    /// Stop a VM or container hard (like pulling the power cord) and wait. Prefer vm_shutdown. Without confirm:
    /// true it returns what it would stop and changes nothing. Already stopped is a no-op.
    #[tool(
        name = "vm_stop",
        input_schema = crate::server::schema::input::<StopArgs>(),
        output_schema = crate::server::schema::output::<PowerReport>()
    )]
    async fn vm_stop(
        &self,
        Parameters(args): Parameters<StopArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        fn req(a: &StopArgs) -> PowerRequest<'_> {
            PowerRequest {
                confirmed: a.confirm,
                ..PowerRequest::new(PowerAction::Stop, a.vmid, a.allow_outside_ranges)
            }
        }
        self.power_tool(&VM_STOP, &args, req, rc, ct).await
    }

    /// Shut a VM or container down gracefully and wait. force_after_timeout stops it hard if it does not
    /// power off in time: destructive, it needs confirm: true, else the tool returns what it would
    /// do. Already stopped is a no-op.
    #[tool(
        name = "vm_shutdown",
        input_schema = crate::server::schema::input::<ShutdownArgs>(),
        output_schema = crate::server::schema::output::<PowerReport>()
    )]
    async fn vm_shutdown(
        &self,
        Parameters(args): Parameters<ShutdownArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        fn req(a: &ShutdownArgs) -> PowerRequest<'_> {
            PowerRequest {
                shutdown: Some(a),
                // Only the forced variant needs confirmation; a graceful shutdown is not destructive.
                confirmed: a.confirm || !a.force_after_timeout,
                ..PowerRequest::new(PowerAction::Shutdown, a.vmid, a.allow_outside_ranges)
            }
        }
        self.power_tool(&VM_SHUTDOWN, &args, req, rc, ct).await
    }

    /// Reboot a running VM or container and wait for the task.
    #[tool(
        name = "vm_reboot",
        input_schema = crate::server::schema::input::<PowerArgs>(),
        output_schema = crate::server::schema::output::<PowerReport>()
    )]
    async fn vm_reboot(
        &self,
        Parameters(args): Parameters<PowerArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<PowerReport>, String> {
        self.power_tool(
            &VM_REBOOT,
            &args,
            |a| PowerRequest::new(PowerAction::Reboot, a.vmid, a.allow_outside_ranges),
            rc,
            ct,
        )
        .await
    }

    /// Change a VM's or container's cores, sockets, memory, swap (containers) and/or grow a
    /// disk (rootfs/mpN for containers); shrinking is refused before anything changes. On a running VM the result lists changes pending until it is stopped and
    /// started.
    #[tool(
        name = "vm_resize",
        input_schema = crate::server::schema::input::<VmResizeArgs>(),
        output_schema = crate::server::schema::output::<VmResizeReport>()
    )]
    async fn vm_resize(
        &self,
        Parameters(args): Parameters<VmResizeArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmResizeReport>, String> {
        self.mutate(&VM_RESIZE, &args, rc, ct, async |run, args| {
            ops::vm_resize(&self.ctx, run, &args).await
        })
        .await
    }

    /// Set, add or remove a VM's or container's tags (normalised as PVE does: lowercase, deduplicated, sorted).
    #[tool(
        name = "vm_set_tags",
        input_schema = crate::server::schema::input::<VmSetTagsArgs>(),
        output_schema = crate::server::schema::output::<VmSetTagsReport>()
    )]
    async fn vm_set_tags(
        &self,
        Parameters(args): Parameters<VmSetTagsArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmSetTagsReport>, String> {
        self.mutate(&VM_SET_TAGS, &args, rc, ct, async |run, args| {
            ops::vm_set_tags(&self.ctx, run, &args).await
        })
        .await
    }

    /// Delete a VM or container and its disks (also from backup jobs and HA). Without confirm: true it returns
    /// the preview (node, state, disks, all that would be removed) and changes nothing. Protected
    /// VMs are refused; a running VM needs stop: true.
    #[tool(
        name = "vm_delete",
        input_schema = crate::server::schema::input::<VmDeleteArgs>(),
        output_schema = crate::server::schema::output::<VmDeleteReport>()
    )]
    async fn vm_delete(
        &self,
        Parameters(args): Parameters<VmDeleteArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmDeleteReport>, String> {
        self.mutate(&VM_DELETE, &args, rc, ct, async |run, args| {
            ops::vm_delete(&self.ctx, run, &args).await
        })
        .await
    }
}

//! Toolset `migrate`: check and migrate one VM, evacuate a node (plan → confirm → execute).

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::access::endpoints as api;
use crate::ops::migrate::{
    self, MigrateCheckArgs, MigrateCheckReport, NodeEvacuateArgs, NodeEvacuateReport,
    VmMigrateArgs, VmMigrateReport,
};
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

/// What every migration tool reads to plan: the cluster, the HA view, guest configs.
macro_rules! planning_reads {
    ($($extra:expr),* $(,)?) => {
        &[
            api::RESOURCES_ALL,
            api::NODE_STATUS,
            api::HA_RESOURCES,
            api::HA_GROUPS,
            api::HA_RULES,
            api::QEMU_CONFIG,
            api::QEMU_STATUS,
            $($extra),*
        ]
    };
}

pub(crate) const VM_MIGRATE_CHECK: ToolSpec =
    ToolSpec::read("vm_migrate_check", "Check a VM migration")
        .toolset("migrate")
        .calls(planning_reads![api::QEMU_MIGRATE_CHECK, api::LXC_CONFIG]);
pub(crate) const VM_MIGRATE: ToolSpec = ToolSpec::write("vm_migrate", "Migrate VM")
    .toolset("migrate")
    .calls(planning_reads![
        api::QEMU_MIGRATE_CHECK,
        api::QEMU_MIGRATE,
        api::LXC_CONFIG,
        api::LXC_MIGRATE,
        api::RESOURCES_GUESTS,
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
    ]);
pub(crate) const NODE_EVACUATE: ToolSpec = ToolSpec::write("node_evacuate", "Evacuate node")
    .toolset("migrate")
    .person_approves()
    .calls(planning_reads![
        api::LXC_CONFIG,
        api::QEMU_MIGRATE,
        api::LXC_MIGRATE,
        api::RESOURCES_GUESTS,
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
    ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[VM_MIGRATE_CHECK, VM_MIGRATE, NODE_EVACUATE];

#[tool_router(router = migrate_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Can this VM or container move to that node now, and how? PVE's preconditions plus ours
    /// (the target's memory and vCPUs under the configured ratios, storage room, HA, pin tag,
    /// locks). Says live, restart (containers) or offline, which disks are copied, transfer size
    /// and time, or every reason it cannot go (and a node that could take it).
    #[tool(
        name = "vm_migrate_check",
        input_schema = crate::server::schema::input::<MigrateCheckArgs>(),
        output_schema = crate::server::schema::output::<MigrateCheckReport>()
    )]
    async fn vm_migrate_check(
        &self,
        Parameters(args): Parameters<MigrateCheckArgs>,
    ) -> Result<Json<MigrateCheckReport>, String> {
        migrate::vm_migrate_check(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Migrate a VM or container to another node and verify it arrived. Refused, sending
    /// nothing, when vm_migrate_check finds the move impossible or overcommitting. A running VM
    /// moves live, a running container in restart mode, a stopped guest offline; local disks
    /// are copied; HA-managed guests move through the HA manager.
    #[tool(
        name = "vm_migrate",
        input_schema = crate::server::schema::input::<VmMigrateArgs>(),
        output_schema = crate::server::schema::output::<VmMigrateReport>()
    )]
    async fn vm_migrate(
        &self,
        Parameters(args): Parameters<VmMigrateArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<VmMigrateReport>, String> {
        self.mutate(&VM_MIGRATE, &args, rc, ct, async |run, args| {
            migrate::vm_migrate(&self.ctx, run, &args).await
        })
        .await
    }

    /// Empty a node for maintenance. Without confirm: true it returns the plan and changes nothing:
    /// ordered moves (guest, target, mode, disks, transfer), guests that cannot move and why,
    /// node loads before and after, and a digest of the whole plan. Confirm with that digest:
    /// the cluster is re-planned (a changed plan is refused with the difference), the moves run
    /// and are verified, stopping at the first failure. Run again to continue.
    #[tool(
        name = "node_evacuate",
        input_schema = crate::server::schema::input::<NodeEvacuateArgs>(),
        output_schema = crate::server::schema::output::<NodeEvacuateReport>()
    )]
    async fn node_evacuate(
        &self,
        Parameters(args): Parameters<NodeEvacuateArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<NodeEvacuateReport>, String> {
        self.mutate(&NODE_EVACUATE, &args, rc, ct, async |run, args| {
            migrate::node_evacuate(&self.ctx, run, &args).await
        })
        .await
    }
}

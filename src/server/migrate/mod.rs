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
        .calls(planning_reads![api::QEMU_MIGRATE_CHECK]);
pub(crate) const VM_MIGRATE: ToolSpec = ToolSpec::write("vm_migrate", "Migrate VM")
    .toolset("migrate")
    .calls(planning_reads![
        api::QEMU_MIGRATE_CHECK,
        api::QEMU_MIGRATE,
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
    /// Can this VM move to that node now, and how? PVE's own preconditions (running, local
    /// disks, local devices, storages the target lacks) plus ours: memory and vCPUs on the
    /// target after the move against the configured ratios, storage room for local disks, HA
    /// state and restrictions, the pin tag, locks. Says online or offline, whether local disks are
    /// copied and why, the transfer size and time, or every reason it cannot go (and a node
    /// that could take it).
    #[tool(name = "vm_migrate_check")]
    async fn vm_migrate_check(
        &self,
        Parameters(args): Parameters<MigrateCheckArgs>,
    ) -> Result<Json<MigrateCheckReport>, String> {
        migrate::vm_migrate_check(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Migrate a VM to another node and verify it arrived. Runs vm_migrate_check's checks first and
    /// refuses (sending nothing) when the move is impossible or would overcommit the target. A
    /// running VM moves live, a stopped one offline; local disks are copied along; HA-managed VMs
    /// move through the HA manager.
    #[tool(name = "vm_migrate")]
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
    /// ordered moves (target, live or offline, local disks, time), guests that cannot move and
    /// why, node loads before and after, and a digest of the whole plan. Show the plan,
    /// then call with confirm: true and that digest: the cluster is re-planned, a changed plan is
    /// refused with the difference, and the moves run, each verified, stopping at the first
    /// failure. Run again to continue.
    #[tool(name = "node_evacuate")]
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

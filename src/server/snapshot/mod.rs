//! Toolset `snapshot`: a VM's or a container's snapshot tree, take one, roll back to one, delete one.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::access::endpoints as api;
use crate::ops::snapshot::{
    self, SnapshotChangeReport, SnapshotCreateArgs, SnapshotCreateReport, SnapshotDeleteArgs,
    SnapshotListArgs, SnapshotListReport, SnapshotRollbackArgs,
};
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const SNAPSHOT_LIST: ToolSpec = ToolSpec::read("snapshot_list", "List snapshots")
    .toolset("snapshot")
    .calls(&[
        api::RESOURCES_GUESTS,
        api::QEMU_SNAPSHOTS,
        api::QEMU_STATUS,
        api::LXC_SNAPSHOTS,
    ]);
pub(crate) const SNAPSHOT_CREATE: ToolSpec = ToolSpec::write("snapshot_create", "Take a snapshot")
    .toolset("snapshot")
    .calls(&[
        api::RESOURCES_GUESTS,
        api::QEMU_STATUS,
        api::QEMU_SNAPSHOTS,
        api::QEMU_SNAPSHOT_CREATE,
        api::LXC_SNAPSHOTS,
        api::LXC_SNAPSHOT_CREATE,
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
    ]);
pub(crate) const SNAPSHOT_ROLLBACK: ToolSpec =
    ToolSpec::destructive("snapshot_rollback", "Roll back to a snapshot")
        .toolset("snapshot")
        .calls(&[
            api::RESOURCES_GUESTS,
            api::QEMU_SNAPSHOTS,
            api::QEMU_SNAPSHOT_ROLLBACK,
            api::QEMU_STATUS,
            api::LXC_SNAPSHOTS,
            api::LXC_SNAPSHOT_ROLLBACK,
            api::LXC_STATUS,
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
        ]);
pub(crate) const SNAPSHOT_DELETE: ToolSpec =
    ToolSpec::destructive("snapshot_delete", "Delete a snapshot")
        .toolset("snapshot")
        .calls(&[
            api::RESOURCES_GUESTS,
            api::QEMU_SNAPSHOTS,
            api::QEMU_SNAPSHOT_DELETE,
            api::QEMU_STATUS,
            api::LXC_SNAPSHOTS,
            api::LXC_SNAPSHOT_DELETE,
            api::LXC_STATUS,
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
        ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[
    SNAPSHOT_LIST,
    SNAPSHOT_CREATE,
    SNAPSHOT_ROLLBACK,
    SNAPSHOT_DELETE,
];

#[tool_router(router = snapshot_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// A VM's or container's snapshots, oldest first: name, parent, time, description, whether it holds RAM, and
    /// which one the current state derives from.
    #[tool(
        name = "snapshot_list",
        input_schema = crate::server::schema::input::<SnapshotListArgs>(),
        output_schema = crate::server::schema::output::<SnapshotListReport>()
    )]
    async fn snapshot_list(
        &self,
        Parameters(args): Parameters<SnapshotListArgs>,
    ) -> Result<Json<SnapshotListReport>, String> {
        snapshot::snapshot_list(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Take a snapshot of a VM or container and wait for it. The name is checked as PVE checks it before
    /// anything is sent.
    #[tool(
        name = "snapshot_create",
        input_schema = crate::server::schema::input::<SnapshotCreateArgs>(),
        output_schema = crate::server::schema::output::<SnapshotCreateReport>()
    )]
    async fn snapshot_create(
        &self,
        Parameters(args): Parameters<SnapshotCreateArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<SnapshotCreateReport>, String> {
        self.mutate(&SNAPSHOT_CREATE, &args, rc, ct, async |run, args| {
            snapshot::snapshot_create(&self.ctx, run, &args).await
        })
        .await
    }

    /// Roll a VM or container back to a snapshot. Without confirm: true it says what would be lost (every change
    /// since; a running VM is stopped unless the snapshot holds its RAM) and changes nothing.
    #[tool(
        name = "snapshot_rollback",
        input_schema = crate::server::schema::input::<SnapshotRollbackArgs>(),
        output_schema = crate::server::schema::output::<SnapshotChangeReport>()
    )]
    async fn snapshot_rollback(
        &self,
        Parameters(args): Parameters<SnapshotRollbackArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<SnapshotChangeReport>, String> {
        self.mutate(&SNAPSHOT_ROLLBACK, &args, rc, ct, async |run, args| {
            snapshot::snapshot_rollback(&self.ctx, run, &args).await
        })
        .await
    }

    /// Delete a snapshot. Without confirm: true it says what would be removed and changes nothing.
    #[tool(
        name = "snapshot_delete",
        input_schema = crate::server::schema::input::<SnapshotDeleteArgs>(),
        output_schema = crate::server::schema::output::<SnapshotChangeReport>()
    )]
    async fn snapshot_delete(
        &self,
        Parameters(args): Parameters<SnapshotDeleteArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<SnapshotChangeReport>, String> {
        self.mutate(&SNAPSHOT_DELETE, &args, rc, ct, async |run, args| {
            snapshot::snapshot_delete(&self.ctx, run, &args).await
        })
        .await
    }
}

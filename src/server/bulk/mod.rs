//! Toolset `bulk`: one action over every guest a selector matches, previewed first.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::access::endpoints as api;
use crate::ops::bulk::{
    self, BulkPowerArgs, BulkPowerReport, BulkSnapshotArgs, BulkSnapshotReport,
};
use crate::ops::spec::ToolSpec;
use crate::server::ProxmoxServer;

pub(crate) const BULK_POWER: ToolSpec = ToolSpec::destructive("bulk_power", "Bulk power action")
    .toolset("bulk")
    .calls(&[
        api::NODES,
        api::RESOURCES_GUESTS,
        api::QEMU_CONFIG,
        api::QEMU_STATUS,
        api::QEMU_START,
        api::QEMU_STOP,
        api::QEMU_SHUTDOWN,
        api::QEMU_REBOOT,
        api::LXC_CONFIG,
        api::LXC_STATUS,
        api::LXC_START,
        api::LXC_STOP,
        api::LXC_SHUTDOWN,
        api::LXC_REBOOT,
        api::AGENT_INTERFACES_WAIT,
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
    ]);

pub(crate) const BULK_SNAPSHOT: ToolSpec = ToolSpec::write("bulk_snapshot", "Bulk snapshot")
    .toolset("bulk")
    .calls(&[
        api::NODES,
        api::RESOURCES_GUESTS,
        api::QEMU_CONFIG,
        api::QEMU_SNAPSHOTS,
        api::QEMU_SNAPSHOT_CREATE,
        api::LXC_CONFIG,
        api::LXC_SNAPSHOTS,
        api::LXC_SNAPSHOT_CREATE,
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
    ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[BULK_POWER, BULK_SNAPSHOT];

#[tool_router(router = bulk_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Start, shut down, stop or reboot every VM and container a selector matches (at least one
    /// of tags, node, status, name, vmids). Without confirm: true it lists the guests matched,
    /// what it would do to each, and the ones it skips (templates, outside vmid_ranges.vms,
    /// protected); nothing changes. Confirmed: at most max_parallel at once, or rolling: true
    /// one at a time, each back (running, agent answering) before the next.
    #[tool(
        name = "bulk_power",
        input_schema = crate::server::schema::input::<BulkPowerArgs>(),
        output_schema = crate::server::schema::output::<BulkPowerReport>()
    )]
    async fn bulk_power(
        &self,
        Parameters(args): Parameters<BulkPowerArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<BulkPowerReport>, String> {
        self.mutate(&BULK_POWER, &args, rc, ct, async |run, args| {
            bulk::bulk_power(&self.ctx, run, &args).await
        })
        .await
    }

    /// Snapshot every VM and container a selector matches (at least one of tags, node, status,
    /// name_glob, vmids), named from a pattern: {date} (YYYYMMDD), {time} (HHMM, UTC), {vmid},
    /// e.g. pre-upgrade-{date}. Without confirm: true it lists the guests, each one's name and
    /// the ones skipped (templates, outside vmid_ranges.vms, protected); nothing changes. One
    /// failure does not stop the others unless stop_on_error.
    #[tool(
        name = "bulk_snapshot",
        input_schema = crate::server::schema::input::<BulkSnapshotArgs>(),
        output_schema = crate::server::schema::output::<BulkSnapshotReport>()
    )]
    async fn bulk_snapshot(
        &self,
        Parameters(args): Parameters<BulkSnapshotArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<BulkSnapshotReport>, String> {
        self.mutate(&BULK_SNAPSHOT, &args, rc, ct, async |run, args| {
            bulk::bulk_snapshot(&self.ctx, run, &args).await
        })
        .await
    }
}

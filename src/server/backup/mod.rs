//! Toolset `backup`: take a backup now, list archives, the scheduled jobs with their last run,
//! restore an archive (previewed).

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::access::endpoints as api;
use crate::ops::backup::{
    self, BackupJobsArgs, BackupJobsReport, BackupListArgs, BackupListReport, BackupNowArgs,
    BackupNowReport, BackupRestoreArgs, BackupRestoreReport,
};
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const BACKUP_NOW: ToolSpec = ToolSpec::write("backup_now", "Back up now")
    .toolset("backup")
    .calls(&[
        api::RESOURCES_ALL,
        api::VZDUMP,
        api::STORAGE_CONTENT,
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
    ]);
pub(crate) const BACKUP_LIST: ToolSpec = ToolSpec::read("backup_list", "List backups")
    .toolset("backup")
    .calls(&[api::RESOURCES_ALL, api::STORAGE_CONTENT]);
pub(crate) const BACKUP_JOBS: ToolSpec = ToolSpec::read("backup_jobs", "Backup jobs")
    .toolset("backup")
    .calls(&[
        api::BACKUP_JOBS,
        api::NOT_BACKED_UP,
        api::RESOURCES_ALL,
        api::NODE_TASKS,
        api::TASK_LOG,
    ]);
pub(crate) const BACKUP_RESTORE: ToolSpec =
    ToolSpec::destructive("backup_restore", "Restore a backup")
        .toolset("backup")
        .calls(&[
            api::RESOURCES_ALL,
            api::NODES,
            api::NODE_STORAGE,
            api::STORAGE_CONTENT,
            api::QEMU_RESTORE,
            api::QEMU_STATUS,
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::LXC_RESTORE,
            api::LXC_STATUS,
        ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[BACKUP_NOW, BACKUP_LIST, BACKUP_JOBS, BACKUP_RESTORE];

#[tool_router(router = backup_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Back up guests now (vzdump, one task per node) and wait. Reports each guest's archive
    /// (volid, size) or why its backup failed: a job can partly succeed.
    #[tool(
        name = "backup_now",
        input_schema = crate::server::schema::input::<BackupNowArgs>(),
        output_schema = crate::server::schema::output::<BackupNowReport>()
    )]
    async fn backup_now(
        &self,
        Parameters(args): Parameters<BackupNowArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<BackupNowReport>, String> {
        self.mutate(&BACKUP_NOW, &args, rc, ct, async |run, args| {
            backup::backup_now(&self.ctx, run, &args).await
        })
        .await
    }

    /// Backup archives across backup storages, newest first.
    #[tool(
        name = "backup_list",
        input_schema = crate::server::schema::input::<BackupListArgs>(),
        output_schema = crate::server::schema::output::<BackupListReport>()
    )]
    async fn backup_list(
        &self,
        Parameters(args): Parameters<BackupListArgs>,
    ) -> Result<Json<BackupListReport>, String> {
        backup::backup_list(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Scheduled backup jobs, how each one's last run went (failed guests and why), and the
    /// guests no enabled job covers.
    #[tool(
        name = "backup_jobs",
        input_schema = crate::server::schema::input::<BackupJobsArgs>(),
        output_schema = crate::server::schema::output::<BackupJobsReport>()
    )]
    async fn backup_jobs(
        &self,
        Parameters(args): Parameters<BackupJobsArgs>,
    ) -> Result<Json<BackupJobsReport>, String> {
        backup::backup_jobs(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Restore a VM or container backup, by default as a new guest with new MACs; over an
    /// existing vmid only with force: true. Without confirm: true it says exactly what would
    /// happen (and be overwritten) and changes nothing.
    #[tool(
        name = "backup_restore",
        input_schema = crate::server::schema::input::<BackupRestoreArgs>(),
        output_schema = crate::server::schema::output::<BackupRestoreReport>()
    )]
    async fn backup_restore(
        &self,
        Parameters(args): Parameters<BackupRestoreArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<BackupRestoreReport>, String> {
        self.mutate(&BACKUP_RESTORE, &args, rc, ct, async |run, args| {
            backup::backup_restore(&self.ctx, run, &args).await
        })
        .await
    }
}

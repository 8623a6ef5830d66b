//! Toolset `storage`: pools and their content.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::storage::orphans::{
    self, DiskOrphansArgs, DiskOrphansDeleteArgs, DiskOrphansDeleteReport, DiskOrphansReport,
};

use crate::ops::{
    self, StorageContentArgs, StorageContentReport, StorageListArgs, StorageListReport,
};

use crate::ops::access::endpoints as api;
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const STORAGE_LIST: ToolSpec = ToolSpec::read("storage_list", "List storage")
    .toolset("storage")
    .calls(&[api::NODES, api::RESOURCES_ALL, api::NODE_STORAGE]);
pub(crate) const STORAGE_CONTENT: ToolSpec = ToolSpec::read("storage_content", "Storage content")
    .toolset("storage")
    .calls(&[
        api::NODE_STORAGE,
        api::NODES,
        api::RESOURCES_ALL,
        api::STORAGE_CONTENT,
    ]);

/// What finding orphans reads: the image storages, and the configs and snapshots of one page
/// of owners (of a deletion's volumes' owners).
const ORPHAN_READS: [crate::ops::spec::Endpoint; 8] = [
    api::NODES,
    api::RESOURCES_ALL,
    api::QEMU_CONFIG,
    api::QEMU_SNAPSHOTS,
    api::QEMU_SNAPSHOT_CONFIG,
    api::LXC_CONFIG,
    api::LXC_SNAPSHOTS,
    api::LXC_SNAPSHOT_CONFIG,
];
pub(crate) const DISK_ORPHANS: ToolSpec = ToolSpec::read("disk_orphans", "Find orphaned disks")
    .toolset("storage")
    .calls(&[
        ORPHAN_READS[0],
        ORPHAN_READS[1],
        ORPHAN_READS[2],
        ORPHAN_READS[3],
        ORPHAN_READS[4],
        ORPHAN_READS[5],
        ORPHAN_READS[6],
        ORPHAN_READS[7],
        api::STORAGE_CONTENT,
    ]);
pub(crate) const DISK_ORPHANS_DELETE: ToolSpec =
    ToolSpec::destructive("disk_orphans_delete", "Delete orphaned disks")
        .toolset("storage")
        .calls(&[
            ORPHAN_READS[0],
            ORPHAN_READS[1],
            ORPHAN_READS[2],
            ORPHAN_READS[3],
            ORPHAN_READS[4],
            ORPHAN_READS[5],
            ORPHAN_READS[6],
            ORPHAN_READS[7],
            api::STORAGE_CONTENT,
            api::STORAGE_DELETE_VOLUME,
            api::QEMU_CONFIG_UNUSED,
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
        ]);

pub(crate) const ISO_UPLOAD: ToolSpec = ToolSpec::write("iso_upload", "Upload an ISO")
    .toolset("storage")
    .open_world()
    .confirm_args(&["replace"])
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::NODES,
        api::RESOURCES_ALL,
        api::PERMISSIONS,
        api::NODE_VERSION,
        api::NODE_STORAGE,
        api::STORAGE_CONTENT,
        api::STORAGE_DOWNLOAD,
        api::STORAGE_UPLOAD,
        api::STORAGE_DELETE_VOLUME,
        api::QEMU_CONFIG,
    ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[
    STORAGE_LIST,
    STORAGE_CONTENT,
    ISO_UPLOAD,
    DISK_ORPHANS,
    DISK_ORPHANS_DELETE,
];

#[tool_router(router = storage_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Storage pools with use and warnings over 85% full: cluster-wide (shared pools once) or as
    /// one node sees them.
    #[tool(
        name = "storage_list",
        input_schema = crate::server::schema::input::<StorageListArgs>(),
        output_schema = crate::server::schema::output::<StorageListReport>()
    )]
    async fn storage_list(
        &self,
        Parameters(args): Parameters<StorageListArgs>,
    ) -> Result<Json<StorageListReport>, String> {
        ops::storage_list(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Volumes on one storage, with counts and sizes per content type.
    #[tool(
        name = "storage_content",
        input_schema = crate::server::schema::input::<StorageContentArgs>(),
        output_schema = crate::server::schema::output::<StorageContentReport>()
    )]
    async fn storage_content(
        &self,
        Parameters(args): Parameters<StorageContentArgs>,
    ) -> Result<Json<StorageContentReport>, String> {
        ops::storage_content(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Put an installer ISO into a storage from a URL (PVE downloads it, or wget on the node over
    /// SSH) or a file on this server's machine (API upload or SFTP), checksum checked after. A
    /// same-named ISO is refused unless replace: true with confirm: true (else a preview); an ISO
    /// in a VM's CD drive is never replaced.
    #[tool(
        name = "iso_upload",
        input_schema = crate::server::schema::input::<crate::ops::storage::iso_upload::IsoUploadArgs>(),
        output_schema = crate::server::schema::output::<crate::ops::storage::iso_upload::IsoUploadReport>()
    )]
    async fn iso_upload(
        &self,
        Parameters(args): Parameters<crate::ops::storage::iso_upload::IsoUploadArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<crate::ops::storage::iso_upload::IsoUploadReport>, String> {
        self.mutate(&ISO_UPLOAD, &args, rc, ct, async |run, args| {
            crate::ops::storage::iso_upload::iso_upload(&self.ctx, run, &args).await
        })
        .await
    }

    /// Orphaned disks: images whose owner VMID does not exist, `unusedN` disks, images no config
    /// or snapshot of their owner references. One page per 50 owner VMIDs: follow next_page.
    #[tool(
        name = "disk_orphans",
        input_schema = crate::server::schema::input::<DiskOrphansArgs>(),
        output_schema = crate::server::schema::output::<DiskOrphansReport>()
    )]
    async fn disk_orphans(
        &self,
        Parameters(args): Parameters<DiskOrphansArgs>,
    ) -> Result<Json<DiskOrphansReport>, String> {
        orphans::disk_orphans(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Delete orphaned disks by volume id (from disk_orphans). Without confirm: true it lists
    /// what would be deleted and the space freed, and changes nothing. Each is re-checked when
    /// the call starts: one referenced by then is kept.
    #[tool(
        name = "disk_orphans_delete",
        input_schema = crate::server::schema::input::<DiskOrphansDeleteArgs>(),
        output_schema = crate::server::schema::output::<DiskOrphansDeleteReport>()
    )]
    async fn disk_orphans_delete(
        &self,
        Parameters(args): Parameters<DiskOrphansDeleteArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<DiskOrphansDeleteReport>, String> {
        self.mutate(&DISK_ORPHANS_DELETE, &args, rc, ct, async |run, args| {
            orphans::disk_orphans_delete(&self.ctx, run, &args).await
        })
        .await
    }
}

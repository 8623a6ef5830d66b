//! Toolset `storage`: pools and their content.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

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

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[STORAGE_LIST, STORAGE_CONTENT];

#[tool_router(router = storage_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Storage pools with type, content types, shared flag, used / total / free space, and
    /// warnings for pools over 85% full. Cluster-wide by default (shared pools once), or as
    /// one node sees them.
    #[tool(name = "storage_list")]
    async fn storage_list(
        &self,
        Parameters(args): Parameters<StorageListArgs>,
    ) -> Result<Json<StorageListReport>, String> {
        ops::storage_list(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Volumes on one storage (disk images, ISOs, container templates, backups, snippets,
    /// import images), optionally filtered by content type or owning vmid.
    #[tool(name = "storage_content")]
    async fn storage_content(
        &self,
        Parameters(args): Parameters<StorageContentArgs>,
    ) -> Result<Json<StorageContentReport>, String> {
        ops::storage_content(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }
}

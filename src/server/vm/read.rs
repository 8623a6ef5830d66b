//! Toolset `vm` (reads): list and inspect guests.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::ops::{self, VmDetail, VmGetArgs, VmListArgs, VmListReport};

use crate::ops::access::endpoints as api;
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const VM_LIST: ToolSpec = ToolSpec::read("vm_list", "List VMs")
    .toolset("vm")
    .calls(&[api::NODES, api::RESOURCES_GUESTS]);
pub(crate) const VM_GET: ToolSpec = ToolSpec::read("vm_get", "Get VM").toolset("vm").calls(&[
    api::RESOURCES_GUESTS,
    api::QEMU_CONFIG,
    api::QEMU_STATUS,
    api::AGENT_INTERFACES,
    api::LXC_CONFIG,
    api::LXC_STATUS,
    api::LXC_INTERFACES,
]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[VM_LIST, VM_GET];

#[tool_router(router = vm_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Guests across the cluster, filters combined, sorted by vmid, paged. Templates only with
    /// include_templates (template_list lists only templates).
    #[tool(
        name = "vm_list",
        input_schema = crate::server::schema::input::<VmListArgs>(),
        output_schema = crate::server::schema::output::<VmListReport>()
    )]
    async fn vm_list(
        &self,
        Parameters(args): Parameters<VmListArgs>,
    ) -> Result<Json<VmListReport>, String> {
        ops::vm_list(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// One VM or container in detail: live state, lock, protection, tags, CPU, memory, disks or
    /// mount points, NICs, cloud-init or container settings, raw config.
    #[tool(
        name = "vm_get",
        input_schema = crate::server::schema::input::<VmGetArgs>(),
        output_schema = crate::server::schema::output::<VmDetail>()
    )]
    async fn vm_get(
        &self,
        Parameters(args): Parameters<VmGetArgs>,
    ) -> Result<Json<VmDetail>, String> {
        ops::vm_get(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }
}

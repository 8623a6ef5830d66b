//! Containers (toolset `vm`): create one, the OS templates available, download one.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::access::endpoints as api;
use crate::ops::ct::{
    self, CtCreateArgs, CtCreateReport, CtTemplateDownloadArgs, CtTemplateDownloadReport,
    CtTemplatesArgs, CtTemplatesReport,
};
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const CT_CREATE: ToolSpec = ToolSpec::write("ct_create", "Create container")
    .toolset("vm")
    .calls(&[
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::RESOURCES_ALL,
        api::STORAGE_CONTENT,
        api::APLINFO,
        api::NODE_NETWORK,
        api::SDN_VNETS,
        api::LXC_CREATE,
        api::LXC_CLONE,
        api::LXC_CONFIG,
        api::LXC_CONFIG_CREATE,
        api::LXC_RESIZE,
        api::LXC_START,
        api::LXC_INTERFACES,
    ]);
pub(crate) const CT_TEMPLATES: ToolSpec = ToolSpec::read("ct_templates", "Container OS templates")
    .toolset("vm")
    .calls(&[api::RESOURCES_ALL, api::STORAGE_CONTENT, api::APLINFO]);
pub(crate) const CT_TEMPLATE_DOWNLOAD: ToolSpec =
    ToolSpec::write("ct_template_download", "Download container template")
        .toolset("vm")
        .idempotent(true)
        .open_world()
        .calls(&[
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::RESOURCES_ALL,
            api::STORAGE_CONTENT,
            api::APLINFO,
            api::APLINFO_DOWNLOAD,
        ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[CT_CREATE, CT_TEMPLATES, CT_TEMPLATE_DOWNLOAD];

#[tool_router(router = ct_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Create a container from an OS template or a CT template (cluster defaults; root password
    /// and SSH keys from the config); start reports its address.
    #[tool(
        name = "ct_create",
        input_schema = crate::server::schema::input::<CtCreateArgs>(),
        output_schema = crate::server::schema::output::<CtCreateReport>()
    )]
    async fn ct_create(
        &self,
        Parameters(args): Parameters<CtCreateArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<CtCreateReport>, String> {
        self.mutate(&CT_CREATE, &args, rc, ct, async |run, args| {
            ct::ct_create(&self.ctx, run, &args).await
        })
        .await
    }

    /// Container OS templates: downloaded ones, and a node's appliance index (paged).
    #[tool(
        name = "ct_templates",
        input_schema = crate::server::schema::input::<CtTemplatesArgs>(),
        output_schema = crate::server::schema::output::<CtTemplatesReport>()
    )]
    async fn ct_templates(
        &self,
        Parameters(args): Parameters<CtTemplatesArgs>,
    ) -> Result<Json<CtTemplatesReport>, String> {
        ct::ct_templates(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Download an appliance-index template for containers (over SSH if the token may not).
    #[tool(
        name = "ct_template_download",
        input_schema = crate::server::schema::input::<CtTemplateDownloadArgs>(),
        output_schema = crate::server::schema::output::<CtTemplateDownloadReport>()
    )]
    async fn ct_template_download(
        &self,
        Parameters(args): Parameters<CtTemplateDownloadArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<CtTemplateDownloadReport>, String> {
        self.mutate(&CT_TEMPLATE_DOWNLOAD, &args, rc, ct, async |run, args| {
            ct::ct_template_download(&self.ctx, run, &args).await
        })
        .await
    }
}

// These always act.
impl crate::ops::spec::Outcome for CtCreateReport {}
impl crate::ops::spec::Outcome for CtTemplateDownloadReport {}

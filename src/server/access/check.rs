//! Toolset `access`: the token's privileges per toolset.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};

use crate::ops::{self, AccessCheckReport};

use crate::ops::access::endpoints as api;
use crate::ops::spec::ToolSpec;
use crate::server::{NoArgs, ProxmoxServer, tool_error};

/// `access_check`: the token's own permissions and the node's version.
pub(crate) const ACCESS_CHECK: ToolSpec =
    ToolSpec::read("access_check", "Check the token's privileges")
        .toolset("access")
        .calls(&[
            api::PERMISSIONS,
            api::RESOURCES_ALL,
            api::NODE_VERSION,
            api::VERSION,
        ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[ACCESS_CHECK];

#[tool_router(router = access_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// What the API token may do, per toolset: each tool ready or not, missing privileges and their
    /// paths, the `pveum role modify ClaudeCodeManager` command granting them, which operations
    /// fall back to SSH and why; and who approves destructive calls (confirmation mode, whether
    /// this client can show a dialog). Read before a write PVE might refuse.
    #[tool(
        name = "access_check",
        input_schema = crate::server::schema::input::<NoArgs>(),
        output_schema = crate::server::schema::output::<AccessCheckReport>()
    )]
    async fn access_check(
        &self,
        Parameters(_): Parameters<NoArgs>,
        rc: RequestContext<RoleServer>,
    ) -> Result<Json<AccessCheckReport>, String> {
        let mut report = ops::access_check(&self.ctx, &crate::server::tool_specs())
            .await
            .map_err(tool_error)?;
        let can = crate::server::elicit::client_can_elicit(&rc.peer);
        report.confirmations = ops::approval::status(self.ctx.config.confirmations.mode, Some(can));
        Ok(Json(report))
    }
}

//! Toolset `access`: the RBAC bootstrap (the token's privilege report lives beside it).

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::{self, RbacBootstrapArgs, RbacBootstrapReport};

use crate::ops::spec::ToolSpec;
use crate::server::ProxmoxServer;

/// `rbac_bootstrap`: `pveum` as root over SSH; the token needs nothing (it may not exist yet).
pub(crate) const RBAC_BOOTSTRAP: ToolSpec =
    ToolSpec::destructive("rbac_bootstrap", "Bootstrap service account").toolset("access");

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[RBAC_BOOTSTRAP];

#[tool_router(router = rbac_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Bootstrap the least-privilege service account over SSH as root on one node: user, role (the
    /// design's privileges for the node's PVE version, never Sys.Modify, Permissions.Modify or
    /// User.Modify), its ACL on /, and an API token whose secret goes straight into the pass
    /// entry (never shown). Without confirm: true it only returns the plan. An existing token is
    /// kept unless rotate: true.
    #[tool(
        name = "rbac_bootstrap",
        input_schema = crate::server::schema::input::<RbacBootstrapArgs>(),
        output_schema = crate::server::schema::output::<RbacBootstrapReport>()
    )]
    async fn rbac_bootstrap(
        &self,
        Parameters(args): Parameters<RbacBootstrapArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<RbacBootstrapReport>, String> {
        self.mutate(&RBAC_BOOTSTRAP, &args, rc, ct, async |run, args| {
            ops::rbac_bootstrap(&self.ctx.config, self.ctx.ssh.as_deref(), run, &args).await
        })
        .await
    }
}

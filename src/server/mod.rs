//! The MCP surface: one tool router per toolset (`cluster`, `vm`, `storage`), composed in
//! [`ProxmoxServer::new`], trimmed by [`ToolFilter`], served over stdio or Streamable HTTP.
//!
//! Handlers are thin: parse typed arguments, call [`crate::ops`], map the result. Domain
//! failures (PVE said no, not found, locked) come back as tool results with `isError: true`
//! written for the model; only malformed requests and bugs become protocol errors.
//!
//! May use: `ops`, `config`, and `pve` types. Must not use: `sim`.

mod access;
mod ansible;
mod backup;
mod bulk;
mod call;
mod catalogue;
mod cluster;
pub mod compact;
mod ct;
mod elicit;
pub mod memory;
mod migrate;
mod portable;
mod profile;
mod prompts;
mod registry;
mod resources;
mod runbook;
pub(crate) mod schema;
mod snapshot;
mod storage;
mod template;
mod toolsets;
pub mod transport;
mod validate;
mod vm;

pub use transport::http;

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt_handler, tool_handler};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::ops;

pub use catalogue::{Catalogue, render_markdown, snapshot_json};
pub use registry::{annotations, spec as tool_spec, specs as tool_specs};
pub use resources::CONFIG_URI;
pub use toolsets::{TOOLSETS, ToolFilter, Toolset, toolset_of};

/// What the model reads once at connection time.
pub const INSTRUCTIONS: &str = "\
proxmox-manager manages one Proxmox VE cluster. Guidance:
- Start with cluster_status for an overview; vm_list filters guests by tag, node, status and name glob.
- Address VMs by vmid; the server resolves the node itself. Never guess node names: use the ones cluster_status returns.
- Tools that change things say so in their annotations. Destructive tools return a preview unless called with confirm: true; show the preview to the user and ask before confirming.
- Long operations wait for their PVE task and report its UPID; task_status and task_log inspect any task.
- Credentials are held by the server. Never ask the user for a token or password in the conversation.
- When a tool fails, its message names the object, the cause and what to try next: follow it rather than retrying blindly.
- Runbooks (runbook_list, runbook_get) are the cluster's procedures: render one for the plan, show it, then run its calls. The resources hold every runbook and the effective configuration.
- Multi-node orchestration the fleet's Ansible playbooks cover (provisioning, rolling or fleet-wide changes) is delegated to them: ansible_playbooks, then ansible_run (previewed). Guests ansible_inventory lists are Ansible-managed.";

/// The instructions' line on who approves destructive calls in this server's mode.
pub fn confirmation_instructions(mode: crate::config::ConfirmMode) -> String {
    use crate::config::ConfirmMode;
    let how = match mode {
        ConfirmMode::Auto => {
            "if this client supports MCP elicitation, a confirmed destructive call (confirm: true, or an option such as replace, force_after_timeout or stop) opens a confirmation dialog for the person, worded by the server from the tool's preview, and runs only if they approve there; without elicitation, confirm: true approves"
        }
        ConfirmMode::Elicit => {
            "a confirmed destructive call opens a confirmation dialog for the person and runs only if they approve there; clients that cannot show such dialogs (no MCP elicitation) cannot run destructive calls at all, only their previews"
        }
        ConfirmMode::Argument => {
            "confirm: true approves a destructive call; no dialog is shown, so ask the user yourself first"
        }
    };
    format!(
        "- Confirmations (mode {mode}): {how}. You cannot approve in the person's place: a declined, dismissed or unanswered dialog means nothing was done — say so and do not retry unless they ask again. access_check shows the mode and whether this client can show the dialog."
    )
}

/// Arguments of a tool that takes none.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// The MCP server: the operation context, the tool router it exposes, its prompts, and the
/// catalogue of every tool (with argument names) runbooks are checked and rendered against.
#[derive(Clone)]
pub struct ProxmoxServer {
    ctx: ops::Context,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    runbook_catalog: Arc<ops::ToolCatalog>,
}

impl ProxmoxServer {
    /// Composes every toolset's router, then drops what the filter excludes.
    ///
    /// # Errors
    /// On an unknown toolset name.
    pub fn new(ctx: ops::Context, filter: &ToolFilter) -> Result<Self, String> {
        filter.validate()?;
        // The routes are built once: the runbook catalogue reads the whole router before the
        // filter trims it.
        let mut tool_router = Self::all_tools();
        let runbook_catalog = Arc::new(catalog_of(&tool_router));
        tool_router
            .map
            .retain(|name, _| registry::spec(name).is_some_and(|s| filter.keeps(s)));
        Ok(ProxmoxServer {
            ctx,
            tool_router,
            prompt_router: Self::prompt_router(),
            runbook_catalog,
        })
    }

    /// Every tool of every toolset, unfiltered, as the server serves them: the schemas are the
    /// checked-in catalogue's ([`registry::all_routes`]).
    pub fn all_tools() -> ToolRouter<Self> {
        registry::all_routes()
    }

    /// The tools this instance exposes.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tool_router.list_all()
    }
}

/// Every tool (filtered or not: a runbook stays valid when a deployment trims tools) with the
/// names of its arguments.
fn catalog_of(router: &ToolRouter<ProxmoxServer>) -> ops::ToolCatalog {
    ops::ToolCatalog::new(router.map.values().map(|route| {
        let t = &route.attr;
        let args: Vec<String> = t
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        (t.name.to_string(), args)
    }))
}

/// Turns an operation failure into the message the model sees (`isError: true`).
pub(crate) fn tool_error(e: ops::Error) -> String {
    tracing::info!(error = %e, "tool failed");
    e.to_string()
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for ProxmoxServer {
    /// Every call's arguments are first checked against the tool's input schema ([`validate`]):
    /// a violation is a tool error naming the argument, and the tool does not run.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let client = self.ctx.client.clone();
        let _call = memory::CallGuard::start(Some(Box::new(move || {
            client.release_idle_connections();
        })));
        if let Some(tool) = self.tool_router.get(&request.name)
            && let Err(why) = validate::arguments(&tool.input_schema, request.arguments.as_ref())
        {
            tracing::info!(tool = %request.name, error = %why, "arguments refused");
            let msg = format!(
                "{}: {why}; nothing was done — fix it and call again",
                request.name
            );
            return Ok(CallToolResult::error(vec![ContentBlock::text(msg)]).into());
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                .with_title("Proxmox VE manager"),
        )
        .with_instructions(format!(
            "{INSTRUCTIONS}\n{}",
            confirmation_instructions(self.ctx.config.confirmations.mode)
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            self.resource_list().await,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.resource_read(&request.uri).await.map(Into::into)
    }
}

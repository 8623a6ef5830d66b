//! Toolset `runbook`: list the runbooks, render one as a plan for this cluster, save a new one
//! (preview unless `confirm`). The runbooks are files; the tools only read and, confirmed,
//! write the user runbook directory.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::{
    self, RunbookGetArgs, RunbookGetReport, RunbookListArgs, RunbookListReport, RunbookSaveArgs,
    RunbookSaveReport,
};

use crate::ops::spec::ToolSpec;
use crate::server::resources::off_workers;
use crate::server::{ProxmoxServer, tool_error};

// Runbooks are files on this machine: no PVE call.
pub(crate) const RUNBOOK_LIST: ToolSpec =
    ToolSpec::read("runbook_list", "List runbooks").toolset("runbook");
pub(crate) const RUNBOOK_GET: ToolSpec =
    ToolSpec::read("runbook_get", "Render runbook").toolset("runbook");
pub(crate) const RUNBOOK_SAVE: ToolSpec = ToolSpec::destructive("runbook_save", "Save runbook")
    .toolset("runbook")
    .idempotent(true);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[RUNBOOK_LIST, RUNBOOK_GET, RUNBOOK_SAVE];

#[tool_router(router = runbook_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// The runbooks (procedures in markdown): name, description, image type, requirements (ssh,
    /// api), shipped or user (a user runbook overrides a shipped one of that name). Invalid user
    /// runbooks are listed with their problems.
    #[tool(
        name = "runbook_list",
        input_schema = crate::server::schema::input::<RunbookListArgs>(),
        output_schema = crate::server::schema::output::<RunbookListReport>()
    )]
    async fn runbook_list(
        &self,
        Parameters(_args): Parameters<RunbookListArgs>,
    ) -> Result<Json<RunbookListReport>, String> {
        let config = std::sync::Arc::clone(&self.ctx.config);
        let catalog = std::sync::Arc::clone(&self.runbook_catalog);
        off_workers("listing the runbooks", move || {
            ops::runbook_list(&config, &catalog)
        })
        .await?
        .map(Json)
        .map_err(tool_error)
    }

    /// A runbook rendered for this cluster: parameters filled from `parameters` and
    /// cluster-config.yaml, required ones still missing, each step with the tool call that performs
    /// it. Changes nothing: show the plan to the user, then make the calls yourself.
    #[tool(
        name = "runbook_get",
        input_schema = crate::server::schema::input::<RunbookGetArgs>(),
        output_schema = crate::server::schema::output::<RunbookGetReport>()
    )]
    async fn runbook_get(
        &self,
        Parameters(args): Parameters<RunbookGetArgs>,
    ) -> Result<Json<RunbookGetReport>, String> {
        let config = std::sync::Arc::clone(&self.ctx.config);
        let catalog = std::sync::Arc::clone(&self.runbook_catalog);
        let what = format!("reading runbook {}", args.name);
        off_workers(&what, move || ops::runbook_get(&config, &catalog, &args))
            .await?
            .map(Json)
            .map_err(tool_error)
    }

    /// Save a runbook into the user runbook directory (format: resource runbook://_template; adapt
    /// a source to the cluster's conventions first). Validates it and returns the normalised file
    /// and a diff against an existing user runbook; writes only with confirm: true. Never
    /// overwrites a shipped runbook.
    #[tool(
        name = "runbook_save",
        input_schema = crate::server::schema::input::<RunbookSaveArgs>(),
        output_schema = crate::server::schema::output::<RunbookSaveReport>()
    )]
    async fn runbook_save(
        &self,
        Parameters(args): Parameters<RunbookSaveArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<RunbookSaveReport>, String> {
        // The content is recorded by its name and size only: it can be long.
        let summary = serde_json::json!({
            "name": ops::runbook_name(&args.content),
            "content_bytes": args.content.len(),
            "confirm": args.confirm,
        });
        self.mutate_recorded(&RUNBOOK_SAVE, &args, summary, rc, ct, async |_run, args| {
            let config = std::sync::Arc::clone(&self.ctx.config);
            let catalog = std::sync::Arc::clone(&self.runbook_catalog);
            let owned = args.clone();
            off_workers("saving the runbook", move || {
                ops::runbook_save(&config, &catalog, &owned)
            })
            .await
            .map_err(|reason| ops::Error::Refused { reason })?
        })
        .await
    }
}

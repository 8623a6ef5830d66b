//! Toolset `runbook`: list the runbooks, render one as a plan for this cluster, save a new one
//! (preview unless `confirm`). The runbooks are files; the tools only read and, confirmed,
//! write the user runbook directory.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::ops::{
    self, RunbookGetArgs, RunbookGetReport, RunbookListArgs, RunbookListReport, RunbookSaveArgs,
    RunbookSaveReport,
};

use crate::server::resources::off_workers;
use crate::server::{ProxmoxServer, tool_error};

#[tool_router(router = runbook_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// List the runbooks (operational procedures as markdown files): name, description, image
    /// type, requirements (ssh, api), and whether each is shipped with the server or a user
    /// runbook (a user runbook of the same name overrides the shipped one). Invalid user
    /// runbooks are listed with their problems.
    #[tool(
        name = "runbook_list",
        annotations(
            title = "List runbooks",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
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

    /// A runbook rendered for this cluster: its parameters filled from `parameters` and from
    /// cluster-config.yaml (storage, bridge, ranges, cloud-init user, snippet path), the
    /// required ones still missing, and every step with the concrete tool call that performs
    /// it. Changes nothing: run the calls yourself, after showing the plan to the user.
    #[tool(
        name = "runbook_get",
        annotations(
            title = "Render runbook",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
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

    /// Save a runbook (markdown in the runbook format; adapt a source to the cluster's
    /// conventions first — see the ingest_runbook prompt) into the user runbook directory.
    /// Validates it and returns the normalised file and a diff against an existing user
    /// runbook of that name; writes only with confirm: true. Never overwrites a shipped
    /// runbook and never writes outside the user runbook directory.
    #[tool(
        name = "runbook_save",
        annotations(
            title = "Save runbook",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn runbook_save(
        &self,
        Parameters(args): Parameters<RunbookSaveArgs>,
    ) -> Result<Json<RunbookSaveReport>, String> {
        let config = std::sync::Arc::clone(&self.ctx.config);
        let catalog = std::sync::Arc::clone(&self.runbook_catalog);
        let owned = args.clone();
        let r = off_workers("saving the runbook", move || {
            ops::runbook_save(&config, &catalog, &owned)
        })
        .await?;
        if !args.confirm {
            // A preview changes nothing: no audit record.
            return r.map(Json).map_err(tool_error);
        }
        // The content is recorded by name and size only: it can be long.
        let summary = serde_json::json!({
            "name": r.as_ref().map(|x| x.name.clone()).unwrap_or_default(),
            "content_bytes": args.content.len(),
            "confirm": true,
        });
        self.audited("runbook_save", &summary, &[], r)
    }
}

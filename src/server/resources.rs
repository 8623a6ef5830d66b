//! MCP resources: every effective runbook (`runbook://NAME`, markdown), the runbook skeleton
//! to write a new one from (`runbook://_template`, markdown; no runbook name starts with `_`)
//! and the effective cluster configuration with secrets removed (`config://cluster-config`,
//! JSON).

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents};

use crate::{config, ops};

use super::ProxmoxServer;

/// URI of the effective configuration.
pub const CONFIG_URI: &str = "config://cluster-config";
const RUNBOOK_PREFIX: &str = "runbook://";
/// URI of the runbook skeleton ([`ops::RUNBOOK_TEMPLATE`]).
const RUNBOOK_TEMPLATE_URI: &str = "runbook://_template";

impl ProxmoxServer {
    pub(crate) fn resource_list(&self) -> Vec<Resource> {
        let mut out = vec![
            Resource::new(CONFIG_URI, "cluster-config")
                .with_title("Effective cluster configuration")
                .with_description("cluster-config.yaml as the server loaded it, with defaults applied and no secrets (credential sources are named, never read)")
                .with_mime_type("application/json"),
            Resource::new(RUNBOOK_TEMPLATE_URI, "_template")
                .with_title("Runbook skeleton")
                .with_description("The runbook format as a fill-in example (frontmatter, parameters, steps ending in their tool): start a new runbook from it, then check and save it with runbook_save. Not a runbook itself")
                .with_mime_type("text/markdown"),
        ];
        match ops::runbook_list(&self.ctx.config, &self.runbook_catalog) {
            Ok(list) => out.extend(list.runbooks.into_iter().map(|r| {
                Resource::new(format!("{RUNBOOK_PREFIX}{}", r.name), r.name.clone())
                    .with_description(r.description)
                    .with_mime_type("text/markdown")
            })),
            Err(e) => tracing::warn!(error = %e, "cannot list runbooks as resources"),
        }
        out
    }

    pub(crate) fn resource_read(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        if uri == CONFIG_URI {
            let json = config::redacted_json(&self.ctx.config);
            let text = serde_json::to_string_pretty(&json)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            return Ok(ReadResourceResult::new(vec![
                ResourceContents::text(text, uri).with_mime_type("application/json"),
            ]));
        }
        if uri == RUNBOOK_TEMPLATE_URI {
            return Ok(ReadResourceResult::new(vec![
                ResourceContents::text(ops::RUNBOOK_TEMPLATE, uri).with_mime_type("text/markdown"),
            ]));
        }
        if let Some(name) = uri.strip_prefix(RUNBOOK_PREFIX) {
            return match ops::runbook_text(&self.ctx.config, name) {
                Ok((text, _)) => Ok(ReadResourceResult::new(vec![
                    ResourceContents::text(text, uri).with_mime_type("text/markdown"),
                ])),
                Err(e) => Err(ErrorData::resource_not_found(e.to_string(), None)),
            };
        }
        Err(ErrorData::resource_not_found(
            format!("no resource {uri}; list them with resources/list"),
            None,
        ))
    }
}

//! MCP resources: every effective runbook (`runbook://NAME`, markdown), the runbook skeleton
//! to write a new one from (`runbook://_template`, markdown; no runbook name starts with `_`)
//! and the effective cluster configuration with secrets removed (`config://cluster-config`,
//! JSON).

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents};

use crate::{config, ops};

use super::ProxmoxServer;

/// Longest a runbook file operation may hold a call: files are read on the blocking pool (a
/// FIFO or a stuck mount never blocks the async workers), and the answer comes within this.
const FILE_OP_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs file I/O on the blocking pool with a deadline, so the server stays responsive.
pub(crate) async fn off_workers<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(FILE_OP_TIMEOUT, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what} failed: {e}")),
        Err(_) => Err(format!(
            "{what} did not finish within {} s (a file in the runbook directory that cannot be read?); run runbook_list to see which entries are skipped",
            FILE_OP_TIMEOUT.as_secs()
        )),
    }
}

/// URI of the effective configuration.
pub const CONFIG_URI: &str = "config://cluster-config";
const RUNBOOK_PREFIX: &str = "runbook://";
/// URI of the runbook skeleton ([`ops::RUNBOOK_TEMPLATE`]).
const RUNBOOK_TEMPLATE_URI: &str = "runbook://_template";

impl ProxmoxServer {
    pub(crate) async fn resource_list(&self) -> Vec<Resource> {
        let config = Arc::clone(&self.ctx.config);
        let catalog = Arc::clone(&self.runbook_catalog);
        let listed = off_workers("listing the runbooks", move || {
            ops::runbook_list(&config, &catalog).map_err(|e| e.to_string())
        })
        .await
        .and_then(|r| r);
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
        match listed {
            Ok(list) => out.extend(list.runbooks.into_iter().map(|r| {
                Resource::new(format!("{RUNBOOK_PREFIX}{}", r.name), r.name.clone())
                    .with_description(r.description)
                    .with_mime_type("text/markdown")
            })),
            Err(e) => tracing::warn!(error = %e, "cannot list runbooks as resources"),
        }
        out
    }

    pub(crate) async fn resource_read(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
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
            let config = Arc::clone(&self.ctx.config);
            let owned = name.to_string();
            let read = off_workers(&format!("reading runbook {name}"), move || {
                ops::runbook_text(&config, &owned).map_err(|e| e.to_string())
            })
            .await
            .and_then(|r| r);
            return match read {
                Ok((text, _)) => Ok(ReadResourceResult::new(vec![
                    ResourceContents::text(text, uri).with_mime_type("text/markdown"),
                ])),
                Err(e) => Err(ErrorData::resource_not_found(e, None)),
            };
        }
        Err(ErrorData::resource_not_found(
            format!("no resource {uri}; list them with resources/list"),
            None,
        ))
    }
}

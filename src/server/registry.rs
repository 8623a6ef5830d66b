//! Every tool, once: each domain file's router beside the specs of the tools it serves. The
//! MCP annotations, the toolsets, the catalogue and the access table derive from the specs.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{JsonObject, ToolAnnotations};
use serde::Deserialize;

use crate::ops::spec::ToolSpec;

use super::ct;
use super::profile;
use super::{
    ProxmoxServer, TOOLSETS, access, ansible, backup, bulk, cluster, migrate, portable, runbook,
    snapshot, storage, template, vm,
};

/// One file of tools: its router and its specs.
struct Domain {
    router: fn() -> ToolRouter<ProxmoxServer>,
    specs: &'static [ToolSpec],
}

/// Every domain. A new tool is added to its file's router and `SPECS`; nothing here changes
/// unless a new file of tools is added.
const DOMAINS: &[Domain] = &[
    Domain {
        router: ProxmoxServer::cluster_router,
        specs: cluster::SPECS,
    },
    Domain {
        router: ProxmoxServer::vm_router,
        specs: vm::read::SPECS,
    },
    Domain {
        router: ProxmoxServer::lifecycle_router,
        specs: vm::lifecycle::SPECS,
    },
    Domain {
        router: ProxmoxServer::migrate_router,
        specs: migrate::SPECS,
    },
    Domain {
        router: ProxmoxServer::backup_router,
        specs: backup::SPECS,
    },
    Domain {
        router: ProxmoxServer::bulk_router,
        specs: bulk::SPECS,
    },
    Domain {
        router: ProxmoxServer::snapshot_router,
        specs: snapshot::SPECS,
    },
    Domain {
        router: ProxmoxServer::template_router,
        specs: template::SPECS,
    },
    Domain {
        router: ProxmoxServer::storage_router,
        specs: storage::SPECS,
    },
    Domain {
        router: ProxmoxServer::runbook_router,
        specs: runbook::SPECS,
    },
    Domain {
        router: ProxmoxServer::access_router,
        specs: access::check::SPECS,
    },
    Domain {
        router: ProxmoxServer::rbac_router,
        specs: access::rbac::SPECS,
    },
    Domain {
        router: ProxmoxServer::profile_router,
        specs: profile::SPECS,
    },
    Domain {
        router: ProxmoxServer::ansible_router,
        specs: ansible::SPECS,
    },
    Domain {
        router: ProxmoxServer::ct_router,
        specs: ct::SPECS,
    },
];

/// Every tool's spec, grouped by toolset in [`TOOLSETS`] order, then in declaration order.
pub fn specs() -> Vec<&'static ToolSpec> {
    let all: Vec<&'static ToolSpec> = DOMAINS.iter().flat_map(|d| d.specs.iter()).collect();
    let mut out: Vec<&'static ToolSpec> = Vec::with_capacity(all.len());
    for set in TOOLSETS {
        out.extend(all.iter().copied().filter(|s| s.toolset == set.name));
    }
    // A spec naming no known toolset still appears (the registry test reports it).
    out.extend(
        all.iter()
            .copied()
            .filter(|s| !TOOLSETS.iter().any(|t| t.name == s.toolset)),
    );
    out
}

/// The spec of one tool.
pub fn spec(name: &str) -> Option<&'static ToolSpec> {
    DOMAINS
        .iter()
        .flat_map(|d| d.specs.iter())
        .find(|s| s.name == name)
}

/// The MCP annotations a spec declares (all four hints set explicitly).
pub fn annotations(spec: &ToolSpec) -> ToolAnnotations {
    ToolAnnotations::with_title(spec.title)
        .read_only(spec.read_only())
        .destructive(spec.destructive_hint())
        .idempotent(spec.idempotent)
        .open_world(spec.open_world)
}

/// Every route of every domain with its spec's annotations, its schemas taken from the
/// checked-in catalogue (`tools/tools.json`, which `tools_json_matches_the_code` keeps equal to
/// [`generated_routes`]). Should the catalogue lack a tool or not parse (a tool added and the
/// snapshot not yet rewritten), every schema is generated instead: never an empty one.
pub fn all_routes() -> ToolRouter<ProxmoxServer> {
    routes_with(CATALOGUE)
}

fn routes_with(catalogue: &str) -> ToolRouter<ProxmoxServer> {
    let mut router = routes();
    let Some(mut embedded) = schemas_of(catalogue) else {
        tracing::warn!("tools/tools.json does not parse: generating every schema");
        return generated_routes();
    };
    if let Some(missing) = router
        .map
        .keys()
        .find(|n| !embedded.contains_key(n.as_ref()))
    {
        tracing::warn!(tool = %missing, "tools/tools.json lacks a tool: generating every schema");
        return generated_routes();
    }
    for route in router.map.values_mut() {
        if let Some(entry) = embedded.remove(route.attr.name.as_ref()) {
            route.attr.input_schema = Arc::new(entry.input);
            route.attr.output_schema = entry.output.map(Arc::new);
        }
        super::compact::one_line_description(&mut route.attr);
    }
    router
}

/// Every route with the schemas its argument and output types generate, in the portable,
/// compact spelling: what `tools/tools.json` is written from.
pub fn generated_routes() -> ToolRouter<ProxmoxServer> {
    let mut router = super::schema::generating(routes);
    for route in router.map.values_mut() {
        portable::make_portable(&mut route.attr);
        super::compact::compact(&mut route.attr);
    }
    router
}

/// Every domain's routes with their specs' annotations.
fn routes() -> ToolRouter<ProxmoxServer> {
    let mut router = ToolRouter::new();
    for d in DOMAINS {
        router += (d.router)();
    }
    for route in router.map.values_mut() {
        if let Some(s) = spec(&route.attr.name) {
            route.attr.annotations = Some(annotations(s));
        }
    }
    router
}

/// The checked-in catalogue, built into the executable.
const CATALOGUE: &str = include_str!("../../tools/tools.json");

#[derive(Deserialize)]
struct Snapshot {
    tools: Vec<SnapshotTool>,
}

/// What the server takes from each tool of the snapshot; the rest comes from the code.
#[derive(Deserialize)]
struct SnapshotTool {
    name: String,
    #[serde(rename = "inputSchema")]
    input: JsonObject,
    #[serde(rename = "outputSchema")]
    output: Option<JsonObject>,
}

fn schemas_of(catalogue: &str) -> Option<HashMap<String, SnapshotTool>> {
    let snapshot: Snapshot = serde_json::from_str(catalogue).ok()?;
    Some(
        snapshot
            .tools
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn listed(router: &ToolRouter<ProxmoxServer>) -> Value {
        let mut tools = router.list_all();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        serde_json::to_value(tools).unwrap_or_default()
    }

    #[test]
    fn a_catalogue_lacking_a_tool_or_not_parsing_gives_the_generated_schemas() {
        let generated = listed(&generated_routes());
        let mut lacking: Value = serde_json::from_str(CATALOGUE).unwrap_or_default();
        let Some(tools) = lacking["tools"].as_array_mut() else {
            panic!("tools/tools.json has no tools array");
        };
        tools.remove(0);
        for catalogue in [lacking.to_string(), "{\"tools\": 3}".to_string()] {
            assert_eq!(listed(&routes_with(&catalogue)), generated);
        }
        // Not vacuous: a placeholder schema is what the routes carry without the fallback.
        let bare = listed(&routes());
        assert_ne!(bare, generated);
    }
}

//! Every tool, once: each domain file's router beside the specs of the tools it serves. The
//! MCP annotations, the toolsets, the catalogue and the access table derive from the specs.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::ToolAnnotations;

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

/// Every route of every domain with its spec's annotations and the portable schema spelling.
/// A route without a spec keeps no annotations: the registry test fails on it.
pub fn all_routes() -> ToolRouter<ProxmoxServer> {
    let mut router = ToolRouter::new();
    for d in DOMAINS {
        router += (d.router)();
    }
    for route in router.map.values_mut() {
        if let Some(s) = spec(&route.attr.name) {
            route.attr.annotations = Some(annotations(s));
        }
        portable::make_portable(&mut route.attr);
        super::compact::compact(&mut route.attr);
    }
    router
}

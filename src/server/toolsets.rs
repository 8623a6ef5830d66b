//! The toolsets a user can enable with `--toolsets`, and how `--toolsets` and `--read-only`
//! trim the server at start-up (read-only wins). Which tool belongs to which toolset is said
//! once, in the tool's [`ToolSpec`]; this file only names and describes the toolsets.

use crate::ops::spec::ToolSpec;

use super::registry;

/// A named group of tools.
#[derive(Debug, Clone, Copy)]
pub struct Toolset {
    pub name: &'static str,
    pub description: &'static str,
}

impl Toolset {
    /// The tools whose spec names this toolset, in catalogue order.
    pub fn tools(&self) -> Vec<&'static str> {
        registry::specs()
            .into_iter()
            .filter(|s| s.toolset == self.name)
            .map(|s| s.name)
            .collect()
    }
}

/// Every toolset, in catalogue order. A registry test checks that every spec names one of
/// these and every toolset has a tool.
pub const TOOLSETS: &[Toolset] = &[
    Toolset {
        name: "cluster",
        description: "Cluster and node health, PVE tasks",
    },
    Toolset {
        name: "vm",
        description: "Guests: list, inspect, create from a template (VMs; containers also from OS templates), power, resize, tag, delete",
    },
    Toolset {
        name: "migrate",
        description: "Moving guests: check and migrate one VM, evacuate a node (plan, confirm, execute)",
    },
    Toolset {
        name: "snapshot",
        description: "Snapshots: the tree, take one, roll back (previewed), delete (previewed)",
    },
    Toolset {
        name: "backup",
        description: "Backups: take one now, list archives, scheduled jobs and their last run, restore (previewed)",
    },
    Toolset {
        name: "bulk",
        description: "One action over every guest a selector (tags, node, status, name, vmids) matches, previewed first",
    },
    Toolset {
        name: "template",
        description: "Templates: list, build from a cloud image, a disk image or an ISO, convert a VM, delete",
    },
    Toolset {
        name: "storage",
        description: "Storage pools and their content",
    },
    Toolset {
        name: "runbook",
        description: "Runbooks: list, render one as a plan for this cluster, save a new one",
    },
    Toolset {
        name: "access",
        description: "The token's privileges per toolset, and the RBAC bootstrap",
    },
    Toolset {
        name: "profile",
        description: "Cluster profiles: list, validate, spin up, tear down and rebuild whole clusters (Talos, Flux), status",
    },
    Toolset {
        name: "ansible",
        description: "Delegation to the fleet's Ansible: list playbooks, the inventory matched to guests, run a playbook (previewed)",
    },
];

/// Which tools a server instance exposes.
#[derive(Debug, Clone, Default)]
pub struct ToolFilter {
    /// Only these toolsets (empty: all).
    pub toolsets: Vec<String>,
    /// Remove every tool that is not read-only. Wins over `toolsets`.
    pub read_only: bool,
}

impl ToolFilter {
    /// Checks the toolset names against [`TOOLSETS`].
    ///
    /// # Errors
    /// Names an unknown toolset and lists the known ones.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.toolsets {
            if !TOOLSETS.iter().any(|s| s.name == t) {
                let known: Vec<&str> = TOOLSETS.iter().map(|s| s.name).collect();
                return Err(format!(
                    "unknown toolset `{t}`; known toolsets: {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether the tool stays.
    pub fn keeps(&self, spec: &ToolSpec) -> bool {
        if self.read_only && !spec.read_only() {
            return false;
        }
        self.toolsets.is_empty() || self.toolsets.iter().any(|t| t == spec.toolset)
    }
}

/// The toolset a tool belongs to.
pub fn toolset_of(tool: &str) -> Option<&'static Toolset> {
    let spec = registry::spec(tool)?;
    TOOLSETS.iter().find(|s| s.name == spec.toolset)
}

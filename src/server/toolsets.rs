//! The one explicit list of toolsets: which tool belongs where, and how `--toolsets` and
//! `--read-only` trim the server at start-up (read-only wins).

/// A named group of tools a user can enable with `--toolsets`.
#[derive(Debug, Clone, Copy)]
pub struct Toolset {
    pub name: &'static str,
    pub description: &'static str,
    pub tools: &'static [&'static str],
}

/// Every toolset, in catalogue order. A registry test checks that each tool of the router is
/// in exactly one toolset and every listed tool exists.
pub const TOOLSETS: &[Toolset] = &[
    Toolset {
        name: "cluster",
        description: "Cluster and node health, PVE tasks",
        tools: &["cluster_status", "node_status", "task_status", "task_log"],
    },
    Toolset {
        name: "vm",
        description: "Guests: list, inspect, create from a template, power, resize, tag, delete",
        tools: &[
            "vm_list",
            "vm_get",
            "vm_create",
            "vm_start",
            "vm_shutdown",
            "vm_stop",
            "vm_reboot",
            "vm_resize",
            "vm_set_tags",
            "vm_delete",
        ],
    },
    Toolset {
        name: "template",
        description: "Templates: list, build from a cloud image, a disk image or an ISO, convert a VM, delete",
        tools: &[
            "template_list",
            "template_from_cloud_image",
            "template_import_disk",
            "template_from_iso",
            "template_convert",
            "template_delete",
        ],
    },
    Toolset {
        name: "storage",
        description: "Storage pools and their content",
        tools: &["storage_list", "storage_content"],
    },
    Toolset {
        name: "runbook",
        description: "Runbooks: list, render one as a plan for this cluster, save a new one",
        tools: &["runbook_list", "runbook_get", "runbook_save"],
    },
    Toolset {
        name: "access",
        description: "The token's privileges per toolset, and the RBAC bootstrap",
        tools: &["access_check", "rbac_bootstrap"],
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

    /// Whether the tool stays, given whether it is read-only.
    pub fn keeps(&self, tool: &str, read_only_tool: bool) -> bool {
        if self.read_only && !read_only_tool {
            return false;
        }
        self.toolsets.is_empty()
            || TOOLSETS
                .iter()
                .any(|s| self.toolsets.iter().any(|t| t == s.name) && s.tools.contains(&tool))
    }
}

/// The toolset a tool belongs to.
pub fn toolset_of(tool: &str) -> Option<&'static Toolset> {
    TOOLSETS.iter().find(|s| s.tools.contains(&tool))
}

//! Runbooks: markdown files that encode an operational procedure as parameters and numbered
//! steps, each step naming the tool that performs it.
//!
//! Shipped runbooks (in `runbooks/` of the source tree) are embedded in the binary; the user's
//! live in [`user_runbook_dir`] (`*.md`, names starting with `_` skipped) and override a shipped
//! one of the same name. [`runbook_get`] renders a runbook with parameter values from the call,
//! the configuration and the defaults, and turns its steps into ready tool calls;
//! [`runbook_save`] validates, normalises and (with `confirm`) writes a user runbook.
//!
//! # Format
//!
//! ```markdown
//! ---
//! name: create-cloudinit-template
//! description: Create a cloud-init VM template from a cloud image
//! image_type: cloudinit
//! requires: [ssh, api]
//! ---
//!
//! # Create a cloud-init template
//!
//! ## Parameters
//! - image_url: Cloud image download URL
//! - checksum: Expected digest, sha256:HEX (optional)
//! - vmid: Template ID (optional: auto-assigned from vmid_ranges.templates)
//! - disk_size: Resize the image to this size (default: 32G)
//! - storage: Storage for the disks (default: config.defaults.storage)
//!
//! ## Steps
//! 1. Download the cloud image {image_url} — `template_from_cloud_image`
//! 2. Install the OS on the console (manual step, no tool)
//! ```
//!
//! - Frontmatter between `---` lines, YAML: `name` (`^[a-z0-9][a-z0-9-]{0,63}$`, equal to the
//!   file name without `.md`), `description` (non-empty), `image_type` (`cloudinit`, `iso`,
//!   `qcow2` or `none`), `requires` (list of `ssh`, `api`). Other keys are errors.
//! - A `# Title` line, then `## Parameters` and `## Steps` (both required, in any order); other
//!   `##` sections (`## Notes`, ...) and text between the title and the first section are kept.
//! - Parameter lines `- NAME: MEANING`, NAME `^[a-z][a-z0-9_]*$`, optionally ending in
//!   `(default: VALUE)`, `(optional)` or `(optional: NOTE)`. VALUE is a literal or
//!   `config.<path>` (`defaults.storage`, `defaults.network_bridge`, `defaults.bios`,
//!   `defaults.machine`, `defaults.cpu`, `defaults.scsi_controller`, `vmid_ranges.templates`,
//!   `vmid_ranges.vms`, `cloudinit.default_user`, `cloudinit.vendor_snippet_path`,
//!   `credentials.ssh_user`). A parameter with neither is required.
//! - Step lines `N. TEXT`, numbered 1, 2, ... without gaps, optionally ending in
//!   `` — `tool_name` `` (also `--` or `-` before the backticked name) for the tool that performs
//!   the step; a step without one is manual. The call gets every parameter the tool accepts,
//!   or exactly the arguments written in the backticks: `` `tool(arg=value, other={param})` ``.
//!   `{param}` placeholders must be declared parameters.
//!
//! [`validate`] reports every problem as `FILE:LINE: REASON`.

mod frontmatter;
mod parse;
mod render;
mod save;
mod store;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{self, Config};
use crate::ops::Error;

pub use parse::Problem;
pub use render::{RenderedParameter, RenderedStep, RunbookGetArgs, RunbookGetReport, ToolCall};
pub use save::{RunbookSaveArgs, RunbookSaveReport, runbook_save};
pub use store::{
    RUNBOOK_TEMPLATE, RunbookListArgs, RunbookListReport, RunbookSummary, runbook_get,
    runbook_list, runbook_text,
};
pub use validate::validate;

/// Tool names and their argument names, given by the server (which knows the MCP tools).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCatalog {
    tools: BTreeMap<String, BTreeSet<String>>,
}

impl ToolCatalog {
    /// A catalogue of `(tool name, argument names)`.
    pub fn new<I, S>(tools: I) -> Self
    where
        I: IntoIterator<Item = (S, Vec<String>)>,
        S: Into<String>,
    {
        ToolCatalog {
            tools: tools
                .into_iter()
                .map(|(t, args)| (t.into(), args.into_iter().collect()))
                .collect(),
        }
    }

    /// Whether the server has a tool of this name.
    pub fn has(&self, tool: &str) -> bool {
        self.tools.contains_key(tool)
    }

    /// The argument names of `tool`, `None` for an unknown tool.
    pub fn arguments(&self, tool: &str) -> Option<&BTreeSet<String>> {
        self.tools.get(tool)
    }
}

/// Where a runbook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunbookSource {
    /// Shipped with the server (embedded in the binary).
    Shipped,
    /// A file in the user's runbook directory; it overrides a shipped runbook of the same name.
    User,
}

/// What kind of image a runbook starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    /// A distribution's cloud image prepared with cloud-init.
    Cloudinit,
    /// An installer ISO, installed on the console.
    Iso,
    /// A pre-built qcow2/raw disk image.
    Qcow2,
    /// No image involved.
    #[serde(rename = "none")]
    NoImage,
}

impl ImageType {
    /// Every image type, in documentation order.
    pub const ALL: [ImageType; 4] = [
        ImageType::Cloudinit,
        ImageType::Iso,
        ImageType::Qcow2,
        ImageType::NoImage,
    ];

    /// The frontmatter spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageType::Cloudinit => "cloudinit",
            ImageType::Iso => "iso",
            ImageType::Qcow2 => "qcow2",
            ImageType::NoImage => "none",
        }
    }

    fn parse(s: &str) -> Option<ImageType> {
        ImageType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A way to reach the cluster that a runbook needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// SSH to the nodes.
    Ssh,
    /// The PVE API.
    Api,
}

impl Requirement {
    /// The frontmatter spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Ssh => "ssh",
            Requirement::Api => "api",
        }
    }

    fn parse(s: &str) -> Option<Requirement> {
        [Requirement::Ssh, Requirement::Api]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Where user runbooks live: `config.paths.runbooks`, else
/// `$XDG_CONFIG_HOME/proxmox-manager/runbooks`, else `~/.config/proxmox-manager/runbooks`.
pub fn user_runbook_dir(config: &Config) -> PathBuf {
    user_runbook_dir_with(config, &config::process_env)
}

/// [`user_runbook_dir`] with an injectable environment. Without `$HOME` either, the path is
/// relative (`.config/proxmox-manager/runbooks`), which the save guard still confines.
pub(crate) fn user_runbook_dir_with(config: &Config, env: config::Env<'_>) -> PathBuf {
    if let Some(dir) = &config.paths.runbooks {
        return dir.clone();
    }
    let base = env("XDG_CONFIG_HOME")
        .filter(|s| std::path::Path::new(s).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("proxmox-manager").join("runbooks")
}

#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_parse;
#[cfg(test)]
mod tests_save;

/// The name a runbook's frontmatter gives (empty when it has none), for the audit record of
/// a save, which keeps the name and the size but not the text.
pub fn runbook_name(content: &str) -> String {
    parse::parse("<content>", content).0.name
}

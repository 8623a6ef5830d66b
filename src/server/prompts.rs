//! MCP prompts: short, precise instructions that name the tools. `ingest_runbook` turns a
//! source into a runbook for this cluster; `create_template` walks the template builds;
//! `evacuate_node` walks plan → confirm → execute → verify; `spin_up_cluster` plans work whose
//! tools are not in this version yet, and says so instead of letting the model improvise.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{PromptMessage, Role};
use rmcp::{prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::ProxmoxServer;

/// `ingest_runbook` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct IngestArgs {
    /// A URL of a how-to, or the instructions pasted as text.
    pub source: String,
}

/// `create_template` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CreateTemplateArgs {
    /// `cloudinit` (a cloud image), `iso` (an installer) or `qcow2` (a pre-built disk image).
    #[serde(default)]
    pub image_type: Option<String>,
}

/// `evacuate_node` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EvacuateArgs {
    /// The node to empty, as cluster_status names it.
    pub node: String,
}

/// `spin_up_cluster` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SpinUpArgs {
    /// The cluster profile name (a file in the clusters directory), e.g. talos-staging.
    pub profile: String,
}

fn user(text: String) -> Vec<PromptMessage> {
    vec![PromptMessage::new_text(Role::User, text)]
}

#[prompt_router(vis = "pub(crate)")]
impl ProxmoxServer {
    /// Turn a how-to (URL or pasted text) into a runbook adapted to this cluster and save it.
    #[prompt(name = "ingest_runbook")]
    async fn ingest_runbook(&self, Parameters(a): Parameters<IngestArgs>) -> Vec<PromptMessage> {
        user(format!(
            "Turn this source into a proxmox-manager runbook and save it:\n\n{}\n\n\
             1. Read the source (fetch it if it is a URL). Identify the procedure's steps.\n\
             2. Read the conventions: the resource config://cluster-config (storage, bridge, bios, machine, VMID ranges, cloud-init user, snippet path), the format skeleton runbook://_template, and an existing runbook (runbook_list, then runbook_get or the runbook://NAME resource) as a worked example.\n\
             3. Write the runbook in that format: frontmatter (name, description, image_type, requires), ## Parameters (defaults as `config.<path>` references to the cluster's conventions instead of the source's hard-coded values), ## Steps (numbered; end each step with ` — `tool`` when a proxmox-manager tool performs it; keep manual steps as text).\n\
             4. Call runbook_save with the content and without confirm. Show the user the normalised file, the diff and any problem; fix problems and repeat.\n\
             5. Only when the user agrees, call runbook_save again with confirm: true. Never save under a shipped runbook's name.",
            a.source
        ))
    }

    /// Build a VM template: pick the right runbook and tool, show the plan, then run it.
    #[prompt(name = "create_template")]
    async fn create_template(
        &self,
        Parameters(a): Parameters<CreateTemplateArgs>,
    ) -> Vec<PromptMessage> {
        let kind = a
            .image_type
            .unwrap_or_else(|| "ask the user: cloudinit, iso or qcow2".into());
        user(format!(
            "Create a Proxmox VM template (image type: {kind}).\n\
             1. runbook_get the matching runbook (create-cloudinit-template, create-iso-template or import-qcow2-template) with the parameters the user gave; ask for the ones listed as missing.\n\
             2. Check for name clashes with template_list. A name in use is refused; replacing needs replace: true and, after showing the preview to the user, confirm: true.\n\
             3. Run the calls the runbook lists (template_from_cloud_image, template_import_disk, or template_from_iso then vm_start, the user's installation, vm_shutdown and template_convert).\n\
             4. Report which path ran (the result's `path`: API or SSH, and why), any warnings, and the new template's vmid; verify with template_list."
        ))
    }

    /// Empty a node: plan, show, confirm, execute, verify.
    #[prompt(name = "evacuate_node")]
    async fn evacuate_node(&self, Parameters(a): Parameters<EvacuateArgs>) -> Vec<PromptMessage> {
        let n = a.node;
        user(format!(
            "Evacuate node {n}.\n\
             1. node_evacuate with node {n} and without confirm: this is the plan, nothing changes. Show the user every move (guest, target, live or offline, local disks, estimated time), the guests that cannot move and why, and each node's memory load before and after.\n\
             2. Ask the user. Only after their yes, call node_evacuate again with confirm: true and the plan's digest. If it is refused because the plan changed, show the new plan and ask again.\n\
             3. Report what moved (verified on the target), what failed and where that guest is now, what was not started, and what remains on {n}. After a failure, read the task log (task_log) and let the user decide; running the evacuation again continues from the current state.\n\
             4. If HA must not move guests back, offer maintenance: true (needs SSH) and tell the user how to leave maintenance afterwards.\n\
             Never move a guest the plan says cannot move by other means (no delete-and-recreate)."
        ))
    }

    /// Spin up a cluster from a profile with the profile tools.
    #[prompt(name = "spin_up_cluster")]
    async fn spin_up_cluster(&self, Parameters(a): Parameters<SpinUpArgs>) -> Vec<PromptMessage> {
        let p = a.profile;
        user(format!(
            "Spin up the cluster of profile {p}.\n\
             1. profile_validate profile {p}: fix every problem it names (FILE:LINE: REASON) before going on; a missing template is built with a runbook (runbook_list, runbook_get).\n\
             2. profile_status profile {p}: what exists already (a second run resumes; guests with only some of its tags are not part of it).\n\
             3. profile_up profile {p} without confirm: show the plan (VMIDs, names, nodes, addresses, phases, missing programs such as talosctl or flux and how to install them) and ask the user.\n\
             4. On yes: profile_up profile {p} confirm: true, with progress. If a phase fails, report the phase, the guest and the command it names; after the fix call profile_up confirm: true again: it continues where it stopped.\n\
             5. Finish with profile_status profile {p} and tell the user where the kubeconfig is. Never print the contents of the state directory (secrets)."
        ))
    }
}

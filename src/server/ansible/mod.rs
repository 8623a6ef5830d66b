//! Toolset `ansible`: delegation to the fleet's own playbooks (the seed's "Ansible
//! Integration"). List the playbooks, read the inventory as Ansible resolves it (matched to the
//! cluster's guests), run a playbook (previewed: the exact command and the targeted hosts).
//! The server never writes inside the fleet-infra repository.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::access::endpoints as api;
use crate::ops::ansible::{
    self, AnsibleInventoryArgs, AnsibleInventoryReport, AnsiblePlaybooksArgs,
    AnsiblePlaybooksReport, AnsibleRunArgs, AnsibleRunReport,
};
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

// The playbooks are files on this machine: no PVE call.
pub(crate) const ANSIBLE_PLAYBOOKS: ToolSpec =
    ToolSpec::read("ansible_playbooks", "List Ansible playbooks").toolset("ansible");
pub(crate) const ANSIBLE_INVENTORY: ToolSpec =
    ToolSpec::read("ansible_inventory", "Ansible inventory")
        .toolset("ansible")
        .calls(&[api::RESOURCES_GUESTS]);
// A playbook can do anything to any host: confirm first; it reaches beyond the cluster.
pub(crate) const ANSIBLE_RUN: ToolSpec = ToolSpec::destructive("ansible_run", "Run a playbook")
    .toolset("ansible")
    .open_world();

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[ANSIBLE_PLAYBOOKS, ANSIBLE_INVENTORY, ANSIBLE_RUN];

#[tool_router(router = ansible_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// The fleet-infra playbooks (ansible.playbook_dir of cluster-config.yaml): for each, the
    /// path ansible_run takes, a one-line purpose (its leading comment), its plays with their
    /// `hosts` patterns and tags, the variables it expects (vars_prompt and the ones its
    /// comment documents), and what check mode would not show. Runs nothing. Multi-node
    /// orchestration (cluster provisioning, rolling operations, fleet-wide config) belongs to
    /// these playbooks, not to direct tool calls.
    #[tool(name = "ansible_playbooks")]
    async fn ansible_playbooks(
        &self,
        Parameters(args): Parameters<AnsiblePlaybooksArgs>,
    ) -> Result<Json<AnsiblePlaybooksReport>, String> {
        ansible::ansible_playbooks(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// The Ansible inventory as Ansible itself resolves it (`ansible-inventory --list` in
    /// the repository): groups, hosts and their Proxmox variables (VMID, node, address, tags),
    /// each host matched to a guest of the cluster (by VMID, else by name) with any
    /// disagreement named, and the VMIDs the inventory reserves for guests not created yet.
    /// Guests listed here are Ansible-managed: change them through the playbooks.
    #[tool(name = "ansible_inventory")]
    async fn ansible_inventory(
        &self,
        Parameters(args): Parameters<AnsibleInventoryArgs>,
    ) -> Result<Json<AnsibleInventoryReport>, String> {
        ansible::ansible_inventory(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Run a fleet-infra playbook with ansible-playbook (optional limit, tags, skip_tags,
    /// extra_vars, check mode, diff). Without confirm: true it returns the exact command line,
    /// the hosts each play targets (--list-hosts) and a note when check mode would not show
    /// everything; show it to the user. Confirmed, it runs in the repository (its ansible.cfg
    /// applies), streams the output as progress, stops the whole run on cancellation or
    /// timeout, and returns the PLAY RECAP per host, the failed tasks with their messages and
    /// the log's tail. Never pass secrets in extra_vars: they belong in the repository's vault.
    #[tool(name = "ansible_run")]
    async fn ansible_run(
        &self,
        Parameters(args): Parameters<AnsibleRunArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<AnsibleRunReport>, String> {
        self.mutate(&ANSIBLE_RUN, &args, rc, ct, async |run, args| {
            ansible::ansible_run(&self.ctx, run, &args).await
        })
        .await
    }
}

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
    /// The fleet-infra playbooks (`ansible.playbook_dir`): path for ansible_run, purpose, plays
    /// with hosts patterns and tags, expected variables, what check mode would not show. Runs
    /// nothing. Multi-node orchestration (provisioning, rolling operations, fleet-wide config)
    /// belongs to these playbooks, not to direct tool calls.
    #[tool(
        name = "ansible_playbooks",
        input_schema = crate::server::schema::input::<AnsiblePlaybooksArgs>(),
        output_schema = crate::server::schema::output::<AnsiblePlaybooksReport>()
    )]
    async fn ansible_playbooks(
        &self,
        Parameters(args): Parameters<AnsiblePlaybooksArgs>,
    ) -> Result<Json<AnsiblePlaybooksReport>, String> {
        ansible::ansible_playbooks(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// The Ansible inventory as `ansible-inventory --list` resolves it: groups, hosts, their
    /// Proxmox variables, each host matched to a guest (by VMID, else name) with disagreements
    /// named, and the VMIDs reserved for guests not yet created. Listed guests are Ansible-managed:
    /// change them through the playbooks.
    #[tool(
        name = "ansible_inventory",
        input_schema = crate::server::schema::input::<AnsibleInventoryArgs>(),
        output_schema = crate::server::schema::output::<AnsibleInventoryReport>()
    )]
    async fn ansible_inventory(
        &self,
        Parameters(args): Parameters<AnsibleInventoryArgs>,
    ) -> Result<Json<AnsibleInventoryReport>, String> {
        ansible::ansible_inventory(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Run a fleet-infra playbook with ansible-playbook. Without confirm: true it returns the exact
    /// command line, the hosts each play targets and what check mode would not show; show it to the
    /// user. Confirmed, it runs in the repository, streams output as progress, stops on
    /// cancellation or timeout, and returns the PLAY RECAP per host, failed tasks and the log's
    /// tail. Secrets belong in the vault, never in extra_vars.
    #[tool(
        name = "ansible_run",
        input_schema = crate::server::schema::input::<AnsibleRunArgs>(),
        output_schema = crate::server::schema::output::<AnsibleRunReport>()
    )]
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

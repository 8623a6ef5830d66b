//! Toolset `profile`: cluster lifecycle from a profile — list, validate, spin up (plan unless
//! `confirm`), tear down and rebuild (preview unless `confirm`), status.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::ops::Run;
use crate::ops::access::endpoints as api;
use crate::ops::profile::{
    self, ProfileDownArgs, ProfileDownReport, ProfileListArgs, ProfileListReport,
    ProfileRebuildArgs, ProfileRebuildReport, ProfileStatusArgs, ProfileStatusReport,
    ProfileUpArgs, ProfileUpReport, ProfileValidateArgs, ProfileValidateReport,
};
use crate::ops::spec::{Outcome, ToolSpec};
use crate::server::{ProxmoxServer, tool_error};

/// What every profile tool reads to find the template, the guests and the capacity.
macro_rules! profile_reads {
    ($($extra:expr),* $(,)?) => {
        &[
            api::RESOURCES_ALL,
            api::NODE_STATUS,
            api::HA_RESOURCES,
            api::HA_GROUPS,
            api::HA_RULES,
            api::QEMU_CONFIG,
            $($extra),*
        ]
    };
}

// Profiles are files on this machine: no PVE call.
pub(crate) const PROFILE_LIST: ToolSpec =
    ToolSpec::read("profile_list", "List cluster profiles").toolset("profile");
pub(crate) const PROFILE_VALIDATE: ToolSpec =
    ToolSpec::read("profile_validate", "Validate cluster profiles")
        .toolset("profile")
        .calls(profile_reads![]);
pub(crate) const PROFILE_STATUS: ToolSpec =
    ToolSpec::read("profile_status", "Cluster profile status")
        .toolset("profile")
        .calls(profile_reads![api::AGENT_INTERFACES, api::LXC_CONFIG]);
pub(crate) const PROFILE_UP: ToolSpec = ToolSpec::write("profile_up", "Spin up cluster")
    .toolset("profile")
    .idempotent(true)
    .calls(profile_reads![
        api::TASK_WAIT,
        api::TASK_WAIT_LOG,
        api::NEXTID,
        api::QEMU_CLONE,
        api::QEMU_CONFIG_CREATE,
        api::QEMU_RESIZE,
        api::QEMU_STATUS,
        api::QEMU_START,
        api::QEMU_MIGRATE_CHECK,
        api::QEMU_MIGRATE,
        api::RESOURCES_GUESTS,
        api::AGENT_INTERFACES_WAIT,
    ]);
pub(crate) const PROFILE_DOWN: ToolSpec =
    ToolSpec::destructive("profile_down", "Tear down cluster")
        .toolset("profile")
        .idempotent(true)
        .calls(profile_reads![
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::RESOURCES_GUESTS,
            api::QEMU_STATUS,
            api::QEMU_STOP,
            api::QEMU_DELETE,
            api::LXC_CONFIG,
            api::LXC_STATUS,
            api::LXC_STOP,
            api::LXC_DELETE,
        ]);
pub(crate) const PROFILE_REBUILD: ToolSpec =
    ToolSpec::destructive("profile_rebuild", "Rebuild cluster")
        .toolset("profile")
        .calls(profile_reads![
            api::TASK_WAIT,
            api::TASK_WAIT_LOG,
            api::RESOURCES_GUESTS,
            api::QEMU_STATUS,
            api::QEMU_STOP,
            api::QEMU_DELETE,
            api::LXC_CONFIG,
            api::LXC_STATUS,
            api::LXC_STOP,
            api::LXC_DELETE,
            api::NEXTID,
            api::QEMU_CLONE,
            api::QEMU_CONFIG_CREATE,
            api::QEMU_RESIZE,
            api::QEMU_START,
            api::QEMU_MIGRATE_CHECK,
            api::QEMU_MIGRATE,
            api::AGENT_INTERFACES_WAIT,
        ]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[
    PROFILE_LIST,
    PROFILE_VALIDATE,
    PROFILE_STATUS,
    PROFILE_UP,
    PROFILE_DOWN,
    PROFILE_REBUILD,
];

#[tool_router(router = profile_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// The cluster profiles (type talos or vms, node counts, template, tags, Flux): user files in
    /// the clusters directory and the shipped examples. A file that does not parse is listed with
    /// its problems as FILE:LINE: REASON.
    #[tool(
        name = "profile_list",
        input_schema = crate::server::schema::input::<ProfileListArgs>(),
        output_schema = crate::server::schema::output::<ProfileListReport>()
    )]
    async fn profile_list(
        &self,
        Parameters(_args): Parameters<ProfileListArgs>,
    ) -> Result<Json<ProfileListReport>, String> {
        Ok(Json(profile::profile_list(&self.ctx)))
    }

    /// Check cluster profiles (one or all): the file; isolation across user profiles (pod, service
    /// and node CIDRs disjoint, tag sets unique, Flux paths distinct); the cluster (template exists
    /// and suits the type, VMID range has room, nodes can hold placement: spread). Every problem as
    /// FILE:LINE: REASON.
    #[tool(
        name = "profile_validate",
        input_schema = crate::server::schema::input::<ProfileValidateArgs>(),
        output_schema = crate::server::schema::output::<ProfileValidateReport>()
    )]
    async fn profile_validate(
        &self,
        Parameters(args): Parameters<ProfileValidateArgs>,
    ) -> Result<Json<ProfileValidateReport>, String> {
        profile::profile_validate(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// A profile's cluster now: its guests found by tags (state, node, role, address), guests
    /// carrying only some of its tags (flagged), and, when talosctl/kubectl are installed and this
    /// server bootstrapped it, Talos health, Kubernetes nodes Ready and Flux Kustomizations
    /// reconciled.
    #[tool(
        name = "profile_status",
        input_schema = crate::server::schema::input::<ProfileStatusArgs>(),
        output_schema = crate::server::schema::output::<ProfileStatusReport>()
    )]
    async fn profile_status(
        &self,
        Parameters(args): Parameters<ProfileStatusArgs>,
        ct: CancellationToken,
    ) -> Result<Json<ProfileStatusReport>, String> {
        let run = Run::new(None, ct);
        profile::profile_status(&self.ctx, &run, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Spin up a profile's cluster. Without confirm: true it returns the plan (VMIDs, names, nodes,
    /// addresses, phases, missing programs) and changes nothing. Confirmed: clone, configure,
    /// start, find addresses; for talos also configs, bootstrap, health, kubeconfig, Flux.
    /// Resumable: calling again keeps existing guests (by tags) and continues where it stopped.
    #[tool(
        name = "profile_up",
        input_schema = crate::server::schema::input::<ProfileUpArgs>(),
        output_schema = crate::server::schema::output::<ProfileUpReport>()
    )]
    async fn profile_up(
        &self,
        Parameters(args): Parameters<ProfileUpArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<ProfileUpReport>, String> {
        self.mutate(&PROFILE_UP, &args, rc, ct, async |run, args| {
            profile::profile_up(&self.ctx, run, &args).await
        })
        .await
    }

    /// Tear down a profile's cluster. Without confirm: true it lists the guests carrying ALL the
    /// profile's tags, flags those carrying only some (never touched; they block until
    /// ignore_partial: true), and refuses protected or out-of-range members. Confirmed, it stops
    /// and deletes the members and their disks and archives the local Talos/kube state.
    #[tool(
        name = "profile_down",
        input_schema = crate::server::schema::input::<ProfileDownArgs>(),
        output_schema = crate::server::schema::output::<ProfileDownReport>()
    )]
    async fn profile_down(
        &self,
        Parameters(args): Parameters<ProfileDownArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<ProfileDownReport>, String> {
        self.mutate(&PROFILE_DOWN, &args, rc, ct, async |run, args| {
            profile::profile_down(&self.ctx, run, &args).await
        })
        .await
    }

    /// Rebuild a profile's cluster: profile_down then profile_up. Without confirm: true one preview
    /// covers both. The Talos secrets are reused unless rotate_secrets: true.
    #[tool(
        name = "profile_rebuild",
        input_schema = crate::server::schema::input::<ProfileRebuildArgs>(),
        output_schema = crate::server::schema::output::<ProfileRebuildReport>()
    )]
    async fn profile_rebuild(
        &self,
        Parameters(args): Parameters<ProfileRebuildArgs>,
        rc: RequestContext<RoleServer>,
        ct: CancellationToken,
    ) -> Result<Json<ProfileRebuildReport>, String> {
        self.mutate(&PROFILE_REBUILD, &args, rc, ct, async |run, args| {
            profile::profile_rebuild(&self.ctx, run, &args).await
        })
        .await
    }
}

impl Outcome for ProfileUpReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ProfileDownReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}
impl Outcome for ProfileRebuildReport {
    fn is_preview(&self) -> bool {
        !self.executed
    }
}

//! Toolset `cluster`: cluster and node health, PVE tasks.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::ops::{
    self, ClusterStatusArgs, ClusterStatusReport, NodeStatusArgs, NodeStatusReport, TaskLogArgs,
    TaskLogReport, TaskStatusArgs, TaskStatusReport,
};

use crate::ops::access::endpoints as api;
use crate::ops::spec::ToolSpec;
use crate::server::{ProxmoxServer, tool_error};

pub(crate) const CLUSTER_STATUS: ToolSpec = ToolSpec::read("cluster_status", "Cluster status")
    .toolset("cluster")
    .calls(&[
        api::CLUSTER_STATUS,
        api::RESOURCES_ALL,
        api::NODE_STATUS,
        api::NODE_STORAGE,
    ]);
pub(crate) const NODE_STATUS: ToolSpec = ToolSpec::read("node_status", "Node status")
    .toolset("cluster")
    .calls(&[
        api::NODES,
        api::NODE_STATUS,
        api::RESOURCES_ALL,
        api::NODE_STORAGE,
    ]);
pub(crate) const CLUSTER_BALANCE: ToolSpec = ToolSpec::read("cluster_balance", "Cluster balance")
    .toolset("cluster")
    .calls(&[
        api::RESOURCES_ALL,
        api::NODE_STATUS,
        api::HA_RESOURCES,
        api::HA_GROUPS,
        api::HA_RULES,
        api::QEMU_CONFIG,
        api::LXC_CONFIG,
    ]);
pub(crate) const TASK_STATUS: ToolSpec = ToolSpec::read("task_status", "Task status")
    .toolset("cluster")
    .calls(&[api::TASK_STATUS]);
pub(crate) const TASK_LOG: ToolSpec = ToolSpec::read("task_log", "Task log")
    .toolset("cluster")
    .calls(&[api::TASK_LOG]);

/// This file's tools, in catalogue order.
pub(crate) const SPECS: &[ToolSpec] = &[
    CLUSTER_STATUS,
    NODE_STATUS,
    CLUSTER_BALANCE,
    TASK_STATUS,
    TASK_LOG,
];

#[tool_router(router = cluster_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// Cluster overview: quorum, each node's CPU, memory and root disk use, guest counts,
    /// allocation against capacity (overcommit), storage pools, and warnings.
    #[tool(
        name = "cluster_status",
        input_schema = crate::server::schema::input::<ClusterStatusArgs>(),
        output_schema = crate::server::schema::output::<ClusterStatusReport>()
    )]
    async fn cluster_status(
        &self,
        Parameters(args): Parameters<ClusterStatusArgs>,
    ) -> Result<Json<ClusterStatusReport>, String> {
        ops::cluster_status(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Is the cluster balanced? Per node: running guests' memory and vCPUs against capacity
    /// under the configured overcommit ratios, measured memory and CPU use, the imbalance score
    /// (most minus least loaded node), overcommitted nodes, and suggested moves that bring every
    /// node within the band around the mean. Read-only: carry a suggestion out with vm_migrate.
    #[tool(
        name = "cluster_balance",
        input_schema = crate::server::schema::input::<ops::migrate::ClusterBalanceArgs>(),
        output_schema = crate::server::schema::output::<ops::migrate::ClusterBalanceReport>()
    )]
    async fn cluster_balance(
        &self,
        Parameters(args): Parameters<ops::migrate::ClusterBalanceArgs>,
    ) -> Result<Json<ops::migrate::ClusterBalanceReport>, String> {
        ops::migrate::cluster_balance(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// One node in detail: CPU, memory, swap, load, PVE version, kernel, its guests (running first,
    /// paged), storage pools and overcommit.
    #[tool(
        name = "node_status",
        input_schema = crate::server::schema::input::<NodeStatusArgs>(),
        output_schema = crate::server::schema::output::<NodeStatusReport>()
    )]
    async fn node_status(
        &self,
        Parameters(args): Parameters<NodeStatusArgs>,
    ) -> Result<Json<NodeStatusReport>, String> {
        ops::node_status(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// Status of a PVE task by UPID: running or stopped, and when stopped its exit status
    /// (`OK` and `WARNINGS: N` are success).
    #[tool(
        name = "task_status",
        input_schema = crate::server::schema::input::<TaskStatusArgs>(),
        output_schema = crate::server::schema::output::<TaskStatusReport>()
    )]
    async fn task_status(
        &self,
        Parameters(args): Parameters<TaskStatusArgs>,
    ) -> Result<Json<TaskStatusReport>, String> {
        ops::task_status(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }

    /// A page of a PVE task's log by UPID (`tail: true` for the last lines).
    #[tool(
        name = "task_log",
        input_schema = crate::server::schema::input::<TaskLogArgs>(),
        output_schema = crate::server::schema::output::<TaskLogReport>()
    )]
    async fn task_log(
        &self,
        Parameters(args): Parameters<TaskLogArgs>,
    ) -> Result<Json<TaskLogReport>, String> {
        ops::task_log(&self.ctx, &args)
            .await
            .map(Json)
            .map_err(tool_error)
    }
}

//! Per-node reads: node list, node status, node version.

use super::client::{Client, path_segment};
use super::error::Error;
use super::types::{NodeListItem, NodeStatus, Version};

impl Client {
    /// `GET /nodes`.
    pub async fn list_nodes(&self) -> Result<Vec<NodeListItem>, Error> {
        Ok(self.get_list("/nodes", &[]).await?.0)
    }

    /// `GET /nodes/{node}/status` (needs Sys.Audit on `/nodes/{node}`).
    pub async fn get_node_status(&self, node: &str) -> Result<NodeStatus, Error> {
        Ok(self
            .get_lenient(&format!("/nodes/{}/status", path_segment(node)), &[])
            .await?
            .0)
    }

    /// `GET /nodes/{node}/version`.
    pub async fn get_node_version(&self, node: &str) -> Result<Version, Error> {
        self.get(&format!("/nodes/{}/version", path_segment(node)), &[])
            .await
    }
}

//! Storage reads: per-node storage status, content, and datacenter storage definitions.

use super::client::{Client, path_segment};
use super::error::Error;
use super::storage_types::{NodeStorage, StorageConfigItem, StorageContentItem};

impl Client {
    /// `GET /nodes/{node}/storage`.
    pub async fn list_node_storage(&self, node: &str) -> Result<Vec<NodeStorage>, Error> {
        self.get(&format!("/nodes/{}/storage", path_segment(node)), &[])
            .await
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=]`.
    pub async fn list_storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageContentItem>, Error> {
        let query: Vec<(&str, String)> = content
            .map(|c| ("content", c.to_owned()))
            .into_iter()
            .collect();
        let path = format!(
            "/nodes/{}/storage/{}/content",
            path_segment(node),
            path_segment(storage)
        );
        self.get(&path, &query).await
    }

    /// `GET /storage`.
    pub async fn list_storage_config(&self) -> Result<Vec<StorageConfigItem>, Error> {
        self.get("/storage", &[]).await
    }
}

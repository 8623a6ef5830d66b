//! Storage reads: per-node storage status, content, and datacenter storage definitions.

use super::client::{Client, path_segment};
use super::error::Error;
use super::storage_types::{NodeStorage, StorageConfigItem, StorageContentItem};

impl Client {
    /// `GET /nodes/{node}/storage`.
    pub async fn list_node_storage(&self, node: &str) -> Result<Vec<NodeStorage>, Error> {
        Ok(self.list_node_storage_reporting(node).await?.0)
    }

    /// `GET /nodes/{node}/storage`, with the warnings of lenient decoding.
    pub async fn list_node_storage_reporting(
        &self,
        node: &str,
    ) -> Result<(Vec<NodeStorage>, Vec<String>), Error> {
        self.get_list(&format!("/nodes/{}/storage", path_segment(node)), &[])
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
        Ok(self.get_list(&path, &query).await?.0)
    }

    /// `GET /storage`.
    pub async fn list_storage_config(&self) -> Result<Vec<StorageConfigItem>, Error> {
        Ok(self.get_list("/storage", &[]).await?.0)
    }
}

/// `POST /nodes/{node}/storage/{storage}/download-url` parameters.
#[derive(Debug, Clone, Default)]
pub struct DownloadUrl {
    pub url: String,
    /// `iso`, `vztmpl` or `import`.
    pub content: String,
    pub filename: String,
    pub checksum: Option<String>,
    /// `sha256`, `sha512`, ...
    pub checksum_algorithm: Option<String>,
}

impl Client {
    /// `POST /nodes/{node}/storage/{storage}/download-url` (task `download`). Needs
    /// Datastore.AllocateTemplate on the storage and Sys.Modify on `/` or Sys.AccessNetwork on
    /// the node.
    pub async fn download_url(
        &self,
        node: &str,
        storage: &str,
        p: &DownloadUrl,
    ) -> Result<super::Upid, Error> {
        let mut form = vec![
            ("url", p.url.clone()),
            ("content", p.content.clone()),
            ("filename", p.filename.clone()),
        ];
        if let Some(c) = &p.checksum {
            form.push(("checksum", c.clone()));
        }
        if let Some(a) = &p.checksum_algorithm {
            form.push(("checksum-algorithm", a.clone()));
        }
        let path = format!(
            "/nodes/{}/storage/{}/download-url",
            path_segment(node),
            path_segment(storage)
        );
        self.post(&path, &form).await
    }

    /// `POST /nodes/{node}/storage/{storage}/upload` (task `imgcopy`): streams the local file
    /// `local` into the storage as `filename` of `content` (`iso`, `vztmpl`, `import`). Needs
    /// Datastore.AllocateTemplate on the storage.
    pub async fn upload_file(
        &self,
        node: &str,
        storage: &str,
        content: &str,
        filename: &str,
        local: &std::path::Path,
        checksum: Option<(String, String)>,
    ) -> Result<super::Upid, Error> {
        let mut form = vec![
            ("content", content.to_string()),
            ("filename", filename.to_string()),
        ];
        if let Some((sum, alg)) = checksum {
            form.push(("checksum", sum));
            form.push(("checksum-algorithm", alg));
        }
        let path = format!(
            "/nodes/{}/storage/{}/upload",
            path_segment(node),
            path_segment(storage)
        );
        self.post_file(
            &path,
            &form,
            local,
            std::time::Duration::from_secs(6 * 3600),
        )
        .await
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}`: PVE answers a UPID (or null
    /// on older versions).
    pub async fn delete_volume(
        &self,
        node: &str,
        storage: &str,
        volid: &str,
    ) -> Result<Option<super::Upid>, Error> {
        let path = format!(
            "/nodes/{}/storage/{}/content/{}",
            path_segment(node),
            path_segment(storage),
            path_segment(volid)
        );
        self.delete(&path, &[]).await
    }
}

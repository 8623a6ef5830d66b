//! Cluster-wide reads: version, membership, the resource index and the next free vmid. A VM's
//! node is resolved in [`super::locate`] (never trusted from a caller).

use super::client::Client;
use super::error::Error;
use super::perl;
use super::types::{ClusterResource, ClusterStatusItem, ResourceType, Version};

impl Client {
    /// `GET /version` of the node answering.
    pub async fn get_version(&self) -> Result<Version, Error> {
        self.get("/version", &[]).await
    }

    /// `GET /cluster/status`.
    pub async fn get_cluster_status(&self) -> Result<Vec<ClusterStatusItem>, Error> {
        Ok(self.get_cluster_status_reporting().await?.0)
    }

    /// `GET /cluster/status`, with the warnings of lenient decoding (odd optional fields).
    pub async fn get_cluster_status_reporting(
        &self,
    ) -> Result<(Vec<ClusterStatusItem>, Vec<String>), Error> {
        self.get_list("/cluster/status", &[]).await
    }

    /// `GET /cluster/resources[?type=]`. PVE filters silently by the token's privileges.
    pub async fn get_cluster_resources(
        &self,
        kind: Option<ResourceType>,
    ) -> Result<Vec<ClusterResource>, Error> {
        Ok(self.get_cluster_resources_reporting(kind).await?.0)
    }

    /// `GET /cluster/resources[?type=]`, with the warnings of lenient decoding.
    pub async fn get_cluster_resources_reporting(
        &self,
        kind: Option<ResourceType>,
    ) -> Result<(Vec<ClusterResource>, Vec<String>), Error> {
        let query: Vec<(&str, String)> = kind
            .map(|k| ("type", k.as_str().to_owned()))
            .into_iter()
            .collect();
        let (rows, warnings) = self.get_list("/cluster/resources", &query).await?;
        if matches!(kind, None | Some(ResourceType::Vm)) {
            // Every guest the token may see: where each lives, for the next per-VM call.
            self.guest_index().refresh(&rows);
        }
        Ok((rows, warnings))
    }

    /// `GET /cluster/nextid[?vmid=]`. PVE returns the id as a JSON string; nothing is reserved.
    ///
    /// # Errors
    /// With `Some(vmid)` taken: [`Error::Api`] 400 with `errors["vmid"]` "VM N already exists".
    pub async fn get_next_id(&self, vmid: Option<u32>) -> Result<u32, Error> {
        let query: Vec<(&str, String)> =
            vmid.map(|v| ("vmid", v.to_string())).into_iter().collect();
        let value: serde_json::Value = self.get("/cluster/nextid", &query).await?;
        perl::value_as_u64(&value)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::Decode {
                method: "GET".into(),
                path: "/cluster/nextid".into(),
                json_path: "data".into(),
                reason: format!("expected a vmid, got {value}"),
            })
    }
}

//! Wire types of storage reads: per-node storage status, datacenter storage definitions and
//! storage content. Lenient and forward-compatible like [`super::types`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::Extra;

/// `GET /nodes/{node}/storage`: storages as one node sees them (bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStorage {
    pub storage: String,
    #[serde(rename = "type")]
    pub storage_type: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub avail: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub used_fraction: Option<f64>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl NodeStorage {
    /// Content types (`images`, `iso`, `backup`...).
    pub fn content_list(&self) -> Vec<String> {
        split_list(self.content.as_deref())
    }
}

fn split_list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `GET /storage`: datacenter storage definitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageConfigItem {
    pub storage: String,
    #[serde(rename = "type")]
    pub storage_type: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub disable: Option<bool>,
    /// Comma-separated node list the storage is limited to; `None` = all nodes.
    #[serde(default)]
    pub nodes: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl StorageConfigItem {
    pub fn content_list(&self) -> Vec<String> {
        split_list(self.content.as_deref())
    }
    /// Nodes the storage is restricted to (empty = all).
    pub fn node_list(&self) -> Vec<String> {
        split_list(self.nodes.as_deref())
    }
}

/// `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageContentItem {
    pub volid: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "super::perl::opt_i64")]
    pub ctime: Option<i64>,
    /// Base volume of a linked clone.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub protected: Option<bool>,
    #[serde(default)]
    pub verification: Option<Value>,
}

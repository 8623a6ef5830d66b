//! Wire types of storage reads: per-node storage status, datacenter storage definitions and
//! storage content. Lenient and forward-compatible like [`super::types`].

use std::borrow::Cow;

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

/// A row of `GET /nodes/{node}/storage/{storage}/content` read in place from the reply's
/// bytes: the text fields borrow from it (copied only when JSON escapes forced a copy), the
/// fields no tool shows (`used`, `verification`, `subtype`, ...) are skipped unread. At tens
/// of thousands of volumes this is what lets a tool keep a page without first building an
/// owned [`StorageContentItem`] for every volume. Numbers and booleans are read as leniently
/// as there (Perl-ish strings, `0`/`1`).
#[derive(Debug, Clone, Deserialize)]
pub struct StorageContentRow<'a> {
    #[serde(borrow, deserialize_with = "cow")]
    pub volid: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub format: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "super::perl::opt_i64")]
    pub ctime: Option<i64>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub parent: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub notes: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub protected: Option<bool>,
}

impl<'a> StorageContentRow<'a> {
    /// A row borrowing from an owned item (the lenient path's result).
    pub fn of(item: &'a StorageContentItem) -> StorageContentRow<'a> {
        let b = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
        StorageContentRow {
            volid: Cow::Borrowed(&item.volid),
            content: b(&item.content),
            format: b(&item.format),
            size: item.size,
            vmid: item.vmid,
            ctime: item.ctime,
            parent: b(&item.parent),
            notes: b(&item.notes),
            protected: item.protected,
        }
    }

    /// The owned item of this row (the fields it skipped are `None`).
    pub fn to_item(&self) -> StorageContentItem {
        let o = |s: &Option<Cow<'a, str>>| s.as_deref().map(str::to_owned);
        StorageContentItem {
            volid: self.volid.clone().into_owned(),
            content: o(&self.content),
            format: o(&self.format),
            size: self.size,
            used: None,
            vmid: self.vmid,
            ctime: self.ctime,
            parent: o(&self.parent),
            notes: o(&self.notes),
            protected: self.protected,
            verification: None,
        }
    }
}

/// A JSON string, borrowed from the input when it holds no escapes.
struct CowStr;

impl<'de> serde::de::Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// `Option<Cow<str>>`: a string or null.
struct OptCowStr;

impl<'de> serde::de::Visitor<'de> for OptCowStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(CowStr).map(Some)
    }
}

pub(super) fn cow<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'de, str>, D::Error> {
    d.deserialize_str(CowStr)
}

pub(super) fn opt_cow<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_option(OptCowStr)
}

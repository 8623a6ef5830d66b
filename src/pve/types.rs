//! Wire types for the reads the client makes: hand-written from PVE's behaviour, lenient
//! (numbers and booleans through [`super::perl`]), forward-compatible (unknown fields are kept in
//! `extra` or ignored, never an error). Storage and task types live in [`super::storage_types`] and [`super::task_types`],
//! QEMU config in [`super::qemu_config`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::storage_types::{cow, opt_cow};

/// Unknown fields, kept so they survive a round trip.
pub type Extra = BTreeMap<String, Value>;

/// `GET /version`, `GET /nodes/{node}/version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    #[serde(deserialize_with = "super::perl::string")]
    pub version: String,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub release: Option<String>,
    #[serde(default)]
    pub repoid: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /cluster/status`: one `cluster` row (when clustered) and one row per node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatusItem {
    #[serde(rename = "type")]
    pub item_type: String,
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub nodeid: Option<u64>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub online: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub local: Option<bool>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub quorate: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub nodes: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub version: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `type=` filter of `GET /cluster/resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Vm,
    Storage,
    Node,
    Sdn,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Vm => "vm",
            ResourceType::Storage => "storage",
            ResourceType::Node => "node",
            ResourceType::Sdn => "sdn",
        }
    }
}

/// The `type` of a `/cluster/resources` row; unknown kinds are kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ResourceKind {
    Qemu,
    Lxc,
    Node,
    Storage,
    Sdn,
    Pool,
    Other(String),
}

impl ResourceKind {
    /// The kind a `type` names; `None` for one this client does not know.
    fn known(s: &str) -> Option<ResourceKind> {
        Some(match s {
            "qemu" => ResourceKind::Qemu,
            "lxc" => ResourceKind::Lxc,
            "node" => ResourceKind::Node,
            "storage" => ResourceKind::Storage,
            "sdn" => ResourceKind::Sdn,
            "pool" => ResourceKind::Pool,
            _ => return None,
        })
    }

    /// A `type` read without copying the text of a known kind.
    fn of_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ResourceKind, D::Error> {
        let text = cow(d)?;
        Ok(ResourceKind::known(&text).unwrap_or_else(|| ResourceKind::Other(text.into_owned())))
    }
}

impl From<String> for ResourceKind {
    fn from(s: String) -> Self {
        ResourceKind::known(&s).unwrap_or(ResourceKind::Other(s))
    }
}

impl From<ResourceKind> for String {
    fn from(k: ResourceKind) -> String {
        match k {
            ResourceKind::Qemu => "qemu".into(),
            ResourceKind::Lxc => "lxc".into(),
            ResourceKind::Node => "node".into(),
            ResourceKind::Storage => "storage".into(),
            ResourceKind::Sdn => "sdn".into(),
            ResourceKind::Pool => "pool".into(),
            ResourceKind::Other(s) => s,
        }
    }
}

/// One row of `GET /cluster/resources`. Stats come from pvestatd (about 10 s old); a fresh
/// guest may show `status: "unknown"` and no name. Fields the tools do not use are skipped
/// while decoding (no catch-all map): the listing is the largest answer PVE sends, 3 MB at
/// 10,000 guests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterResource {
    /// `qemu/100`, `node/pve01`, `storage/pve01/local`...
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    #[serde(default, deserialize_with = "super::perl::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub template: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub disk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub netin: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub netout: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub diskread: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub diskwrite: Option<u64>,
    /// `;`-joined.
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub tags: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub hastate: Option<String>,
    /// Storage rows: storage id, plugin type, content, shared.
    #[serde(default)]
    pub storage: Option<String>,
    #[serde(default)]
    pub plugintype: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub shared: Option<bool>,
}

impl ClusterResource {
    /// Tags split on `;` (and `,`/space, which PVE also accepts), empty ones dropped.
    pub fn tag_list(&self) -> Vec<String> {
        split_tags(self.tags.as_deref().unwrap_or(""))
    }
    pub fn is_template(&self) -> bool {
        self.template.unwrap_or(false)
    }
}

/// Where a `/cluster/resources` row is, read in place from the reply's bytes: a guest's vmid,
/// kind and node, a storage's id, plugin type, content and state, nothing else (the other
/// fields are skipped unread). A tool that needs only that at 10,000 guests (`disk_orphans`)
/// reads the largest answer PVE sends without an owned [`ClusterResource`] per row. Numbers and
/// booleans are read as leniently as there.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourcePlace<'a> {
    #[serde(rename = "type", deserialize_with = "ResourceKind::of_text")]
    pub kind: ResourceKind,
    #[serde(default, deserialize_with = "super::perl::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub node: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub storage: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub plugintype: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub shared: Option<bool>,
}

impl<'a> ResourcePlace<'a> {
    /// The place of an owned row (the lenient path's result).
    pub fn of(row: &'a ClusterResource) -> ResourcePlace<'a> {
        let b = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
        ResourcePlace {
            kind: row.kind.clone(),
            vmid: row.vmid,
            node: b(&row.node),
            status: b(&row.status),
            storage: b(&row.storage),
            plugintype: b(&row.plugintype),
            content: b(&row.content),
            shared: row.shared,
        }
    }

    /// A guest's row (a VM or a container).
    pub fn is_guest(&self) -> bool {
        matches!(self.kind, ResourceKind::Qemu | ResourceKind::Lxc)
    }
}

/// Splits a PVE tag string on `;`, `,` and whitespace.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([';', ',', ' ', '\0'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `GET /nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeListItem {
    pub node: String,
    /// `online`, `offline`, `unknown`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub disk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `total/used/free/available` of memory or swap, in bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryInfo {
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub free: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub available: Option<u64>,
}

/// Root filesystem usage in bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFsInfo {
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub used: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub free: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub avail: Option<u64>,
}

/// CPU model and topology.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuInfo {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub cpus: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub cores: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub sockets: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub mhz: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET /nodes/{node}/status` (needs Sys.Audit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    #[serde(default)]
    pub memory: Option<MemoryInfo>,
    #[serde(default)]
    pub swap: Option<MemoryInfo>,
    #[serde(default)]
    pub rootfs: Option<RootFsInfo>,
    #[serde(default)]
    pub cpuinfo: Option<CpuInfo>,
    /// 1, 5 and 15 minute load, as strings (PVE's shape).
    #[serde(default, deserialize_with = "string_list")]
    pub loadavg: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub wait: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default)]
    pub kversion: Option<String>,
    #[serde(default)]
    pub pveversion: Option<String>,
    #[serde(default, rename = "current-kernel")]
    pub current_kernel: Option<Value>,
    #[serde(default, rename = "boot-info")]
    pub boot_info: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v: Option<Vec<Value>> = Option::deserialize(d)?;
    Ok(v.map(|items| {
        items
            .iter()
            .map(|i| super::perl::value_as_string(i).unwrap_or_else(|| i.to_string()))
            .collect()
    }))
}

/// `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QemuListItem {
    #[serde(deserialize_with = "super::perl::u32")]
    pub vmid: u32,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub qmpstatus: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpus: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub disk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub template: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub tags: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current`: the authoritative state of one guest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QemuStatus {
    /// `running` or `stopped`.
    pub status: String,
    #[serde(default, deserialize_with = "super::perl::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub name: Option<String>,
    /// `running`, `paused`, `prelaunch`... when running.
    #[serde(default)]
    pub qmpstatus: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub template: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub tags: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpus: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub agent: Option<bool>,
    #[serde(default)]
    pub ha: Option<Value>,
    #[serde(default, rename = "running-qemu")]
    pub running_qemu: Option<String>,
    #[serde(default, rename = "running-machine")]
    pub running_machine: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl QemuStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_resource_lenient_and_forward_compatible() -> Result<(), serde_json::Error> {
        let r: ClusterResource = serde_json::from_value(serde_json::json!({
            "id": "qemu/100", "type": "qemu", "vmid": "100", "node": "pve01",
            "status": "running", "name": "web", "template": "0", "maxcpu": 2,
            "maxmem": "4294967296", "tags": "prod;web", "brand-new-field": {"x": 1}
        }))?;
        assert_eq!(r.vmid, Some(100));
        assert_eq!(r.kind, ResourceKind::Qemu);
        assert_eq!(r.template, Some(false));
        assert_eq!(r.maxmem, Some(4_294_967_296));
        assert_eq!(r.tag_list(), ["prod", "web"]);
        let s: ClusterResource = serde_json::from_value(serde_json::json!({
            "id": "storage/pve01/local", "type": "storage", "shared": 0, "plugintype": "dir"
        }))?;
        assert_eq!(s.shared, Some(false));
        let o: ClusterResource =
            serde_json::from_value(serde_json::json!({"id": "x", "type": "openvz"}))?;
        assert_eq!(o.kind, ResourceKind::Other("openvz".into()));
        Ok(())
    }

    #[test]
    fn node_status_nested() -> Result<(), serde_json::Error> {
        let s: NodeStatus = serde_json::from_value(serde_json::json!({
            "memory": {"total": 100, "used": "40", "free": 60, "available": 70},
            "rootfs": {"total": 10, "used": 1, "free": 9, "avail": 9},
            "cpuinfo": {"model": "EPYC", "cpus": 8, "cores": 4, "sockets": 1, "mhz": "2400.000"},
            "loadavg": ["0.10", 0.2, "0.30"], "cpu": "0.05", "uptime": 1000,
            "pveversion": "pve-manager/9.1.1/abc", "current-kernel": {"release": "6.14"}
        }))?;
        assert_eq!(s.memory.and_then(|m| m.used), Some(40));
        assert_eq!(s.loadavg.as_deref().map(<[String]>::len), Some(3));
        assert_eq!(s.cpuinfo.and_then(|c| c.cores), Some(4));
        assert_eq!(s.cpu, Some(0.05));
        Ok(())
    }
}

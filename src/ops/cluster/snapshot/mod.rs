//! The cluster as plain data, read once: what the planners (`ops::plan`) decide on.
//!
//! Planners must be pure and deterministic, so they cannot talk to PVE: everything they need
//! (node sizes, what each guest asks for, where its disks live, which storages each node sees)
//! is read here into plain structs, once, and handed over. Tests build the same structs by hand
//! with the small constructors below, so a planner is tested on any cluster without a single
//! request.
//!
//! One `GET /cluster/resources` gives nodes, guests and storages; `GET /nodes/{node}/status` is
//! asked only for online nodes whose row lacks sizes. Guest disks are not in
//! `/cluster/resources`: [`ClusterSnapshot::read_guest_disks`] reads the configs of one node's
//! guests, which is all an evacuation or a migration check needs.

mod read;
#[cfg(test)]
mod tests;

pub use read::disks_of_config;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::{GIB, is_guest, is_node, is_storage};
use crate::pve::{ClusterResource, ResourceKind};

/// Host memory kept out of the guests' budget (the hypervisor, ZFS ARC and page cache need
/// room). PVE reports no reserve, so every node starts with this one; a caller that knows
/// better sets `reserved_memory`.
pub const DEFAULT_HOST_RESERVE: u64 = 2 * GIB;

/// Everything the planners know about the cluster, sorted (nodes by name, guests by vmid,
/// storages by node then id) so that two reads of the same cluster compare equal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterSnapshot {
    pub nodes: Vec<NodeInfo>,
    pub guests: Vec<GuestInfo>,
    pub storages: Vec<StorageInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeInfo {
    pub name: String,
    pub online: bool,
    /// Physical threads.
    pub cpus: u64,
    /// Physical memory, bytes.
    pub maxmem: u64,
    /// Memory in use right now, bytes (informational: planners count configured sizes).
    pub mem_used: u64,
    /// CPU in use right now, as a fraction of all threads (informational, like `mem_used`).
    #[serde(default)]
    pub cpu_used: f64,
    /// Memory kept for the host, bytes; not available to guests.
    pub reserved_memory: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Qemu,
    Lxc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GuestInfo {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub kind: GuestKind,
    /// As PVE reports it: `running`, `stopped`, `paused`, `unknown`...
    pub status: String,
    pub template: bool,
    /// Configured memory, bytes.
    pub maxmem: u64,
    /// Configured vCPUs.
    pub maxcpu: u64,
    pub tags: Vec<String>,
    pub lock: Option<String>,
    /// Managed by PVE's HA stack (moves go through `hamigrate`).
    pub ha_managed: bool,
    /// The HA manager's state for it (`hastate`: `started`, `stopped`, `error`, `migrate`,
    /// `ignored`...), `None` when it is no HA resource.
    #[serde(default)]
    pub ha_state: Option<String>,
    /// Disks from the guest's config; `None` until read (see `read_guest_disks`).
    pub disks: Option<Vec<GuestDisk>>,
    /// Config keys that tie the guest to its node (`hostpci0`, `usb1`...).
    pub local_resources: Vec<String>,
    /// Nodes this guest may run on: the members of its HA group when the group is
    /// `restricted`, or of a PVE 9 strict node-affinity rule. `None` = any node. Every planner
    /// keeps the guest on these nodes.
    #[serde(default)]
    pub allowed_nodes: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GuestDisk {
    /// Config key, e.g. `scsi0`, `rootfs`, `mp0`.
    pub key: String,
    pub storage: String,
    /// Bytes, from `size=`; 0 when the config does not say.
    pub size: u64,
    pub cdrom: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StorageInfo {
    pub id: String,
    /// The node this row is seen from (a shared storage has one row per node).
    pub node: String,
    pub shared: bool,
    pub active: bool,
    /// `images`, `rootdir`, `iso`...
    pub content: Vec<String>,
    pub total: u64,
    pub avail: u64,
}

impl NodeInfo {
    /// An online node with the default host reserve.
    pub fn new(name: &str, cpus: u64, maxmem: u64) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            online: true,
            cpus,
            maxmem,
            mem_used: 0,
            cpu_used: 0.0,
            reserved_memory: DEFAULT_HOST_RESERVE,
        }
    }

    /// Memory guests may be configured with before counting as overcommitted.
    pub fn memory_budget(&self) -> u64 {
        self.maxmem.saturating_sub(self.reserved_memory)
    }
}

impl GuestInfo {
    /// A running VM with no tags, no lock and no disks (disks known: none).
    pub fn qemu(vmid: u32, node: &str, cpus: u64, maxmem: u64) -> GuestInfo {
        GuestInfo {
            vmid,
            name: format!("vm{vmid}"),
            node: node.to_string(),
            kind: GuestKind::Qemu,
            status: "running".into(),
            template: false,
            maxmem,
            maxcpu: cpus,
            tags: vec![],
            lock: None,
            ha_managed: false,
            ha_state: None,
            disks: Some(vec![]),
            local_resources: vec![],
            allowed_nodes: None,
        }
    }

    pub fn stopped(mut self) -> GuestInfo {
        self.status = "stopped".into();
        self
    }

    pub fn as_template(mut self) -> GuestInfo {
        self.template = true;
        self.status = "stopped".into();
        self
    }

    pub fn tagged(mut self, tag: &str) -> GuestInfo {
        self.tags.push(tag.to_string());
        self
    }

    pub fn with_disk(mut self, storage: &str, size: u64) -> GuestInfo {
        let disks = self.disks.get_or_insert_with(Vec::new);
        let key = format!("scsi{}", disks.len());
        disks.push(GuestDisk {
            key,
            storage: storage.to_string(),
            size,
            cdrom: false,
        });
        self
    }

    /// May run only on `nodes` (a restricted HA group or a strict node-affinity rule).
    pub fn restricted_to(mut self, nodes: &[&str]) -> GuestInfo {
        self.allowed_nodes = Some(nodes.iter().map(|n| n.to_string()).collect());
        self
    }

    /// Whether the guest's HA group or affinity rule lets it run on `node`.
    pub fn may_run_on(&self, node: &str) -> bool {
        self.allowed_nodes
            .as_ref()
            .is_none_or(|a| a.iter().any(|n| n == node))
    }

    pub fn is_running(&self) -> bool {
        self.status == "running" && !self.template
    }

    /// A guest row of `/cluster/resources`; disks unknown until read.
    pub fn from_resource(r: &ClusterResource) -> GuestInfo {
        GuestInfo {
            vmid: r.vmid.unwrap_or(0),
            name: r.name.clone().unwrap_or_default(),
            node: r.node.clone().unwrap_or_default(),
            kind: match r.kind {
                ResourceKind::Lxc => GuestKind::Lxc,
                _ => GuestKind::Qemu,
            },
            status: r.status.clone().unwrap_or_else(|| "unknown".into()),
            template: r.is_template(),
            maxmem: r.maxmem.unwrap_or(0),
            maxcpu: r.maxcpu.unwrap_or(0.0).round() as u64,
            tags: r.tag_list(),
            lock: r.lock.clone().filter(|l| !l.is_empty()),
            // `hastate` is present only for HA resources.
            ha_managed: r.hastate.as_deref().is_some_and(|s| !s.is_empty()),
            ha_state: r.hastate.clone().filter(|s| !s.is_empty()),
            disks: None,
            local_resources: vec![],
            allowed_nodes: None,
        }
    }
}

impl crate::ops::plan::Load {
    /// What a guest row asks of its node: the figures [`GuestInfo::from_resource`] gives
    /// ([`crate::ops::plan::Load::of`]), without copying the row's strings (`cluster_status`
    /// counts every guest of the cluster).
    pub fn of_row(r: &ClusterResource) -> Self {
        let template = r.is_template();
        Self {
            template,
            running: !template && r.status.as_deref() == Some("running"),
            vcpus: r.maxcpu.unwrap_or(0.0).round() as u64,
            memory: r.maxmem.unwrap_or(0),
        }
    }
}

impl StorageInfo {
    /// An active storage for guest images seen from `node`.
    pub fn new(id: &str, node: &str, shared: bool, total: u64, avail: u64) -> StorageInfo {
        StorageInfo {
            id: id.to_string(),
            node: node.to_string(),
            shared,
            active: true,
            content: vec!["images".into(), "rootdir".into()],
            total,
            avail,
        }
    }

    /// Whether its content list has `content` (`rootdir`, `vztmpl`...).
    pub fn holds(&self, content: &str) -> bool {
        self.content.iter().any(|c| c == content)
    }
}

impl ClusterSnapshot {
    /// A snapshot from parts in any order; sorted so equal clusters compare equal.
    pub fn new(
        mut nodes: Vec<NodeInfo>,
        mut guests: Vec<GuestInfo>,
        mut storages: Vec<StorageInfo>,
    ) -> ClusterSnapshot {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        guests.sort_by_key(|g| g.vmid);
        storages.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        ClusterSnapshot {
            nodes,
            guests,
            storages,
        }
    }

    /// Builds the snapshot from `/cluster/resources` rows alone.
    pub fn from_resources(rows: &[ClusterResource]) -> ClusterSnapshot {
        let nodes = rows.iter().filter(|r| is_node(r)).map(node_from_row);
        let guests = rows
            .iter()
            .filter(|r| is_guest(r))
            .map(GuestInfo::from_resource);
        let storages = rows
            .iter()
            .filter(|r| is_storage(r))
            .filter_map(storage_from_row);
        ClusterSnapshot::new(nodes.collect(), guests.collect(), storages.collect())
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn guest(&self, vmid: u32) -> Option<&GuestInfo> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }

    pub fn guests_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a GuestInfo> + 'a {
        self.guests.iter().filter(move |g| g.node == node)
    }

    /// The storage `id` as `node` sees it.
    pub fn storage(&self, node: &str, id: &str) -> Option<&StorageInfo> {
        self.storages.iter().find(|s| s.node == node && s.id == id)
    }
}

fn node_from_row(r: &ClusterResource) -> NodeInfo {
    NodeInfo {
        name: r.node.clone().unwrap_or_default(),
        online: r.status.as_deref() == Some("online"),
        cpus: r.maxcpu.unwrap_or(0.0).round() as u64,
        maxmem: r.maxmem.unwrap_or(0),
        mem_used: r.mem.unwrap_or(0),
        cpu_used: r.cpu.unwrap_or(0.0),
        reserved_memory: DEFAULT_HOST_RESERVE,
    }
}

pub(crate) fn storage_from_row(r: &ClusterResource) -> Option<StorageInfo> {
    let total = r.maxdisk.unwrap_or(0);
    Some(StorageInfo {
        id: r.storage.clone()?,
        node: r.node.clone()?,
        shared: r.shared == Some(true),
        active: r.status.as_deref() == Some("available"),
        content: r
            .content
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        total,
        avail: total.saturating_sub(r.disk.unwrap_or(0)),
    })
}
